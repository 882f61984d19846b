"""``gpu-no-time-slicing-in-production``: production GPUs are not shared by time-slicing."""

from __future__ import annotations

from typing import Iterator, Sequence

from gpufleet.components.gpu_scheduling import SHARED_GPU_RESOURCE
from gpufleet.policies.core import Rule, RuleContext, Subject
from gpufleet.policies.pod_templates import gpu_pod_templates
from gpufleet.policies.rules._common import production_namespaces
from gpufleet.policies.rules._device_plugin import time_slicing_configs

_WHY = "time-slicing has no memory or fault isolation: one pod's OOM or spike hits every pod on the GPU (use MIG)"


def check(subjects: Sequence[Subject], context: RuleContext) -> Iterator[tuple[Subject, str]]:
    prod = production_namespaces(subjects)

    def production(namespace: str) -> bool:
        return context.production or namespace in prod

    for entry in time_slicing_configs(subjects):
        if production(entry.subject.namespace):
            yield entry.subject, (f"device plugin config {entry.config!r} shares each GPU between {entry.replicas} pods "
                                  f"by time-slicing in production: {_WHY}")
    for template in gpu_pod_templates(subjects):
        if SHARED_GPU_RESOURCE in template.gpu_resources() and production(template.namespace):
            yield template.owner, f"{template.where}: requests {SHARED_GPU_RESOURCE} (a time-sliced GPU) in production: {_WHY}"


RULE = Rule(
    name="gpu-no-time-slicing-in-production",
    description=(
        "No GPU time-slicing where the stack (config production: true) or the namespace (label "
        "gpufleet.io/environment=prod) is production: no device plugin config with sharing.timeSlicing (ConfigMap or "
        "gpu-operator values), no pods requesting nvidia.com/gpu.shared. Time-sliced pods share GPU memory "
        "without isolation, so one model's OOM or spike breaks its neighbours' latency SLOs; MIG isolates."
    ),
    check_stack=check,
    summary="no GPU time-slicing in production",
    why=(
        "Production checklist takeaway: use MIG over time-slicing for production. Time-slicing has no isolation: "
        "one model's OOM or load spike breaks its neighbours' latency; MIG partitions memory and compute in "
        "hardware on A100/H100."
    ),
    fix=(
        "In production namespaces (label gpufleet.io/environment=prod) and production stacks, request whole GPUs "
        "or MIG slices (nvidia.com/mig-<profile>) instead of nvidia.com/gpu.shared, and drop sharing.timeSlicing "
        "from the device plugin config."
    ),
    example="""\
apiVersion: v1
kind: Namespace
metadata:
  name: serving
  labels: {gpufleet.io/environment: prod}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: embed
  namespace: serving
spec:
  replicas: 1
  selector:
    matchLabels: {app: embed}
  template:
    metadata:
      labels: {app: embed}
    spec:
      containers:
        - name: server
          image: vllm/vllm-openai:v0.11.0
          resources:
            limits: {nvidia.com/mig-1g.10gb: 1, memory: 16Gi}
""",
)
