"""``gpu-pdb-required``: multi-replica GPU services have a PDB that keeps some replica up."""

from __future__ import annotations

import math
from typing import Any, Iterator, Optional, Sequence

from gpufleet.policies.core import Rule, RuleContext, Subject, as_number, as_str, is_unknown
from gpufleet.policies.pod_templates import gpu_pod_templates
from gpufleet.policies.rules._common import (
    SelectorIndex, can_run_several, replica_range, scaler_index, selector_matches, up_to,
)


def check(subjects: Sequence[Subject], context: RuleContext) -> Iterator[tuple[Subject, str]]:
    if context.assumes("disruption-budgets"):
        return  # budgets defined outside the checked resources
    budgets = SelectorIndex()
    for subject in subjects:
        if subject.is_a("policy", "PodDisruptionBudget"):
            if not subject.namespace:
                return  # a budget in an unknown namespace might cover any workload
            budgets.add(subject, subject.spec.get("selector"))
    all_scalers = scaler_index(subjects)
    for template in gpu_pod_templates(subjects):
        if not template.serving or not template.namespace:
            continue
        fewest, most = replica_range(template, all_scalers)
        if not can_run_several(template, most):
            continue
        floor = max(fewest or 1, 1)
        covering = []
        for budget, selector in budgets.candidates(template.namespace, template.labels):
            matches = selector_matches(selector, template.labels, empty_matches=True)
            if matches is None:
                covering = None
                break
            if matches:
                covering.append(budget)
        if covering is None:
            continue
        if not covering:
            yield template.owner, (
                f"{template.where}: {up_to(template, most)} GPU replicas and no PodDisruptionBudget selects them: a node "
                f"drain or consolidation may evict every replica at once")
            continue
        reasons = [_weakness(budget, floor) for budget in covering]
        if all(reason for reason in reasons):
            yield template.owner, (
                f"{template.where}: {'; '.join(reasons)}: set maxUnavailable below the replica count (0 keeps every "
                f"replica) or minAvailable >= 1")  # type: ignore[arg-type]


def _weakness(budget: Subject, replicas: int) -> str:
    """Why the budget lets every one of ``replicas`` pods be evicted; empty when it does not (or when
    that is unknown)."""
    spec, name = budget.spec, budget.object_name
    for field in ("minAvailable", "maxUnavailable"):
        if is_unknown(spec.get(field)):
            return ""
    if spec.get("minAvailable") is not None:
        kept = _scaled(spec["minAvailable"], replicas)
        return f"PodDisruptionBudget {name} minAvailable {spec['minAvailable']} keeps no replica" \
            if kept is not None and kept < 1 else ""
    if spec.get("maxUnavailable") is not None:
        evictable = _scaled(spec["maxUnavailable"], replicas)
        return (f"PodDisruptionBudget {name} maxUnavailable {spec['maxUnavailable']} allows evicting all {replicas} "
                f"replicas (at the fewest)") if evictable is not None and evictable >= replicas else ""
    return f"PodDisruptionBudget {name} sets neither minAvailable nor maxUnavailable"


def _scaled(value: Any, replicas: int) -> Optional[float]:
    """An IntOrString budget as a pod count (percentages round up, as the disruption controller does)."""
    text = as_str(value)
    if text is not None and text.endswith("%"):
        percent = as_number(text[:-1])
        return None if percent is None else math.ceil(percent * replicas / 100)
    return as_number(value) if not isinstance(value, str) else None


RULE = Rule(
    name="gpu-pdb-required",
    description=(
        "Every GPU serving workload that can run more than one replica is selected by a PodDisruptionBudget that "
        "never lets all of its replicas be evicted (minAvailable >= 1, or maxUnavailable below the fewest "
        "replicas): Karpenter consolidation and node drains otherwise take the whole model offline, and it "
        "takes minutes to load again."
    ),
    check_stack=check,
    summary="multi-replica GPU serving has a PodDisruptionBudget that keeps a replica",
    why=(
        "Production checklist (Scaling): PodDisruptionBudget, to never evict all inference replicas. Node drains "
        "and Karpenter consolidation otherwise take the model offline for the minutes it takes to load again."
    ),
    fix=(
        "Add a PodDisruptionBudget selecting the pods with maxUnavailable below the fewest replicas (e.g. 1) or "
        "minAvailable: 1. If budgets are managed outside the checked files, run gpufleet check with --assume "
        "disruption-budgets."
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
      containers:
        - name: server
          image: vllm/vllm-openai:v0.11.0
          resources:
            requests: {nvidia.com/gpu: 1, cpu: "8", memory: 48Gi}
            limits: {nvidia.com/gpu: 1, memory: 48Gi}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: llm
  namespace: serving
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {app: llm}
""",
)
