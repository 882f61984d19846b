"""``gpu-no-time-slicing-in-production``: production GPUs are not shared by time-slicing."""

from __future__ import annotations

from typing import Iterator, Sequence

from gpufleet.components.gpu_instances import INSTANCE_TYPES
from gpufleet.components.gpu_scheduling import GPU_RESOURCE, SHARED_GPU_RESOURCE
from gpufleet.policies.core import Rule, RuleContext, Subject
from gpufleet.policies.pod_templates import gpu_pod_templates
from gpufleet.policies.rules._common import production_namespaces
from gpufleet.policies.rules._device_plugin import bottlerocket_time_slicing, time_slicing_configs
from gpufleet.policies.rules._karpenter import INSTANCE_KEYS, NodeOverlay, instance_labels, node_overlays

_WHY = "time-slicing has no memory or fault isolation: one pod's OOM or spike hits every pod on the GPU (use MIG)"


def check(subjects: Sequence[Subject], context: RuleContext) -> Iterator[tuple[Subject, str]]:
    prod = production_namespaces(subjects)

    def production(namespace: str) -> bool:
        return context.production or namespace in prod

    for entry in time_slicing_configs(subjects):
        if production(entry.subject.namespace):
            yield entry.subject, (f"device plugin config {entry.config!r} shares each GPU between {entry.replicas} pods "
                                  f"by time-slicing in production: {_WHY}")
    if context.production:  # node-level settings: the whole cluster is production
        for entry in bottlerocket_time_slicing(subjects):
            shared = f"between {entry.replicas} pods" if entry.replicas else "between pods"
            yield entry.subject, (f"{entry.config} sets Bottlerocket's kubelet-device-plugins.nvidia."
                                  f"device-sharing-strategy to time-slicing, sharing each GPU {shared} in production: "
                                  f"{_WHY}")
        overlays, _ = node_overlays(subjects) if not time_slicing_configs(subjects) else ([], False)
        for overlay in overlays:  # the only evidence when no device plugin config is checked
            message = _overlay_sharing(overlay)
            if message:
                yield overlay.subject, f"{message} in production: {_WHY}"
    for template in gpu_pod_templates(subjects):
        if SHARED_GPU_RESOURCE in template.gpu_resources() and production(template.namespace):
            yield template.owner, f"{template.where}: requests {SHARED_GPU_RESOURCE} (a time-sliced GPU) in production: {_WHY}"


def _overlay_sharing(overlay: NodeOverlay) -> str:
    """Why a NodeOverlay advertises time-sliced GPUs ("" when it does not): it adds
    nvidia.com/gpu.shared, or more nvidia.com/gpu than the physical GPUs of an instance type its
    requirements select (time-slicing without renaming)."""
    if SHARED_GPU_RESOURCE in overlay.capacity:
        return f"NodeOverlay capacity advertises {SHARED_GPU_RESOURCE} (time-sliced GPUs)"
    amount = overlay.capacity.get(GPU_RESOURCE)
    if amount is None:
        return ""
    selected = [t for t in INSTANCE_TYPES.values()
                if all(r.allows(instance_labels(t)[r.key]) for r in overlay.requirements if r.key in INSTANCE_KEYS)]
    shared = [t for t in selected if amount > t.gpus]
    if not shared:
        return ""
    return (f"NodeOverlay capacity advertises {amount} {GPU_RESOURCE} on {shared[0].name} (which has {shared[0].gpus} "
            f"GPU{'s' if shared[0].gpus > 1 else ''}): GPUs shared by time-slicing")


RULE = Rule(
    name="gpu-no-time-slicing-in-production",
    description=(
        "No GPU time-slicing where the stack (config production: true) or the namespace (label "
        "gpufleet.io/environment=prod) is production: no device plugin config with sharing.timeSlicing (ConfigMap or "
        "gpu-operator values), no Bottlerocket device-sharing-strategy time-slicing (EC2NodeClass userData, eksctl "
        "bottlerocket settings) or NodeOverlay advertising shared GPUs on a production stack, no pods requesting "
        "nvidia.com/gpu.shared. Time-sliced pods share GPU memory "
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
