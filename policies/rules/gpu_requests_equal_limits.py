"""``gpu-requests-equal-limits``: GPU requests equal limits, in whole units."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Iterator, Mapping

from gpufleet.policies.core import (
    Malformed, Rule, RuleContext, Subject, as_mapping, as_str, format_quantity, parse_quantity,
)
from gpufleet.policies.pod_templates import is_gpu_resource, pod_templates


def check(subject: Subject, context: RuleContext) -> Iterator[str]:
    for template in pod_templates(subject):
        for container in template.all_containers():
            yield from _container(template.where, container)


def _container(where: str, container: Mapping[str, Any]) -> Iterator[str]:
    resources = as_mapping(container.get("resources"))
    requests, limits = as_mapping(resources.get("requests")), as_mapping(resources.get("limits"))
    name = as_str(container.get("name")) or "?"
    for resource in sorted({k for k in (*requests, *limits) if is_gpu_resource(k)}):
        if any(_placeholder(v) for v in (requests.get(resource), limits.get(resource))):
            continue  # a template variable (${N}, {{ .N }}): unknown until rendered
        try:
            request = parse_quantity(requests.get(resource))
            limit = parse_quantity(limits.get(resource))
        except Malformed as error:
            yield f"{where} container {name}: {resource} {error.args[0]!r} is not a quantity"
            continue
        if resource in requests and resource not in limits:
            yield (f"{where} container {name}: requests {resource} without a limit: GPUs are not overcommittable, "
                   f"set limits.{resource} (the request defaults to it)")
            continue
        if request is not None and limit is not None and request != limit:
            yield (f"{where} container {name}: {resource} request {format_quantity(request)} differs from limit "
                   f"{format_quantity(limit)}: GPUs are not overcommittable, set them equal")
        for amount in (request, limit):
            if amount is not None and amount != amount.to_integral_value():
                yield f"{where} container {name}: {resource} {format_quantity(amount)} is not a whole number of devices"
                break
            if amount is not None and amount < Decimal(0):
                yield f"{where} container {name}: {resource} {format_quantity(amount)} is negative"
                break


_PLACEHOLDER = re.compile(r"^\$\{?\w+\}?$|^[A-Z][A-Z0-9_]*$|\$\{|\{\{")


def _placeholder(value: Any) -> bool:
    """A template variable left for a renderer (``$N``, ``${N}``, ``{{ .N }}``, ``PLACEHOLDER_N``)."""
    return isinstance(value, str) and bool(_PLACEHOLDER.search(value.strip()))


RULE = Rule(
    name="gpu-requests-equal-limits",
    description=(
        "Containers asking for nvidia.com/gpu, nvidia.com/gpu.shared or a MIG slice (nvidia.com/mig-*) set the "
        "request equal to the limit, as a whole number: GPUs cannot be overcommitted or split, and a mismatch "
        "leaves the pod unschedulable."
    ),
    check_resource=check,
    summary="GPU requests equal limits, as whole numbers",
    why=(
        "Production checklist (Scheduling): GPU requests = limits, because GPUs are not overcommittable. The "
        "device plugin hands out whole devices (or whole MIG slices); a request below the limit or a fraction "
        "leaves the pod rejected or unschedulable, the most common GPU misconfiguration."
    ),
    fix=(
        "Set requests and limits of the GPU resource (nvidia.com/gpu, nvidia.com/gpu.shared, nvidia.com/mig-*) to"
        " the same whole number, or set only the limit (Kubernetes copies it to the request)."
    ),
    example="""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: llm
  namespace: serving
spec:
  replicas: 1
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
""",
)
