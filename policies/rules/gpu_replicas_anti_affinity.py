"""``gpu-replicas-anti-affinity``: replicated GPU services spread across nodes."""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from gpufleet.components.gpu_scheduling import MIG_RESOURCE_PREFIX, SHARED_GPU_RESOURCE
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
        if _shares_gpus(template):
            continue
        if template.gpu_count() >= WHOLE_NODE_GPUS:
            continue  # each pod takes a whole GPU node: two replicas never share one
        verdict = _spreads(template, topology)
        if verdict is False:
            yield template.owner, (
                f"{template.where}: {up_to(template, most)} GPU replicas without pod anti-affinity or a topology spread "
                f"constraint on {topology} that selects them: one node failure can take down every replica")


def _shares_gpus(template: PodTemplate) -> bool:
    """Pods asking for MIG slices or time-sliced GPUs only: many of them share one node by design, and
    spreading them (Karpenter treats preferred anti-affinity and ScheduleAnyway spread constraints as
    required while it can add nodes) would launch a large GPU node per small replica."""
    names = set(template.gpu_resources())
    return bool(names) and all(name == SHARED_GPU_RESOURCE or name.startswith(MIG_RESOURCE_PREFIX) for name in names)


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
        "interruption takes the whole service down. Pods asking only for MIG slices or time-sliced GPUs are "
        "exempt: they share nodes by design, and spreading them would make Karpenter launch a large GPU node "
        "per small replica."
    ),
    enforcement="advisory",
    settings_schema={"topologyKey": {"type": "string", "description": "Node label the replicas spread over."}},
    defaults={"topologyKey": "kubernetes.io/hostname"},
    check_stack=check,
    summary="multi-replica GPU workloads spread across nodes",
    why=(
        "Production checklist (Scheduling): pod anti-affinity, to spread replicas across nodes. Packed on one "
        "node, one node failure, spot interruption or consolidation takes every replica of the model down at "
        "once."
    ),
    fix=(
        "Add pod anti-affinity on kubernetes.io/hostname (preferred is enough) or a topologySpreadConstraint on "
        "it, with a label selector that selects the workload's own pods."
    ),
    example="""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: llm
  namespace: serving
spec:
  replicas: 2
  selector:
    matchLabels: {app: llm}
  template:
    metadata:
      labels: {app: llm}
    spec:
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                labelSelector:
                  matchLabels: {app: llm}
                topologyKey: kubernetes.io/hostname
      containers:
        - name: server
          image: vllm/vllm-openai:v0.11.0
          resources:
            requests: {nvidia.com/gpu: 1, cpu: "8", memory: 48Gi}
            limits: {nvidia.com/gpu: 1, memory: 48Gi}
""",
)
