"""``gpu-replicas-anti-affinity``: replicated GPU services spread across nodes."""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from gpufleet.policies.core import Rule, RuleContext, Subject, as_list, as_mapping, as_str, is_unknown
from gpufleet.policies.pod_templates import PodTemplate, gpu_pod_templates
from gpufleet.policies.rules._common import (
    WHOLE_NODE_GPUS, can_run_several, replica_range, scaler_index, selector_matches, up_to,
)


def check(subjects: Sequence[Subject], context: RuleContext) -> Iterator[tuple[Subject, str]]:
    topology = context["topologyKey"]
    all_scalers = scaler_index(subjects)
    for template in gpu_pod_templates(subjects):
        if not template.serving:
            continue
        _, most = replica_range(template, all_scalers)
        if not can_run_several(template, most):
            continue
        if template.gpu_count() >= WHOLE_NODE_GPUS:
            continue  # each pod takes a whole GPU node: two replicas never share one
        verdict = _spreads(template, topology)
        if verdict is False:
            yield template.owner, (
                f"{template.where}: {up_to(template, most)} GPU replicas without pod anti-affinity or a topology spread "
                f"constraint on {topology} that selects them: one node failure can take down every replica")


def _spreads(template: PodTemplate, topology: str) -> bool | None:
    affinity = template.spec.get("affinity")
    spread = template.spec.get("topologySpreadConstraints")
    if is_unknown(affinity) or is_unknown(spread):
        return None
    anti = as_mapping(as_mapping(affinity).get("podAntiAffinity"))
    terms: list[Any] = list(as_list(anti.get("requiredDuringSchedulingIgnoredDuringExecution")))
    terms += [as_mapping(t).get("podAffinityTerm") for t in as_list(anti.get("preferredDuringSchedulingIgnoredDuringExecution"))]
    terms += list(as_list(spread))
    for term in terms:
        term = as_mapping(term)
        key = term.get("topologyKey")
        if is_unknown(key):
            return None
        if as_str(key) != topology:
            continue
        matches = selector_matches(term.get("labelSelector"), template.labels, empty_matches=False)
        if matches is None or matches:
            return True
    return False


RULE = Rule(
    name="gpu-replicas-anti-affinity",
    description=(
        "GPU serving workloads that can run more than one replica (replicas, maxReplicas or their autoscaler's "
        "bound) spread them across nodes with pod anti-affinity or a topology spread constraint on "
        "kubernetes.io/hostname selecting their own pods: packed on one node, a single node failure or spot "
        "interruption takes the whole service down."
    ),
    enforcement="advisory",
    settings_schema={"topologyKey": {"type": "string", "description": "Node label the replicas spread over."}},
    defaults={"topologyKey": "kubernetes.io/hostname"},
    check_stack=check,
)
