"""``gpu-no-mps-in-production``: production GPUs are shared by CUDA MPS only where that was acknowledged.

MPS (the k8s-device-plugin's ``sharing.mps``) runs the kernels of several pods on one GPU at once and
limits each pod to an equal share of the GPU's memory and compute, which time-slicing does not. It
does not isolate faults: the pods are clients of one MPS server per GPU, and a fatal GPU exception in
one client ends the contexts of every client on that GPU (NVIDIA Multi-Process Service guide,
"Memory Protection and Error Containment"). MIG is the production answer; MPS is allowed there only
when the pool's owner accepted the risk (gpufleet: ``sharing.acknowledge_no_isolation``, rendered as
the ConfigMap annotation ``gpufleet.io/mps-no-isolation-acknowledged`` naming the entries).
"""

from __future__ import annotations

from typing import Iterator, Sequence

from gpufleet.components.gpu_scheduling import SHARED_GPU_RESOURCE
from gpufleet.policies.core import Rule, RuleContext, Subject
from gpufleet.policies.pod_templates import gpu_pod_templates
from gpufleet.policies.rules._common import production_namespaces
from gpufleet.policies.rules._device_plugin import MPS_ACKNOWLEDGED_ANNOTATION, SharedGpuSources, mps_configs

_WHY = ("MPS clients have no fault isolation: one pod's fatal GPU fault ends every pod sharing the GPU "
        f"(use MIG, or name the entry in the ConfigMap's {MPS_ACKNOWLEDGED_ANNOTATION} annotation to accept it)")


def check(subjects: Sequence[Subject], context: RuleContext) -> Iterator[tuple[Subject, str]]:
    prod = production_namespaces(subjects)

    def production(namespace: str) -> bool:
        return context.production or namespace in prod

    entries = mps_configs(subjects)
    for entry in entries:
        if production(entry.subject.namespace) and not entry.acknowledged:
            yield entry.subject, (f"device plugin config {entry.config!r} shares each GPU between {entry.replicas} "
                                  f"pods by MPS in production: {_WHY}")
    sources = SharedGpuSources(subjects)
    all_acknowledged = bool(entries) and all(entry.acknowledged for entry in entries)
    for template in gpu_pod_templates(subjects):
        if SHARED_GPU_RESOURCE not in template.gpu_resources() or not production(template.namespace):
            continue
        entry = sources.entry_of(template.spec)
        if entry is not None:
            unacknowledged = entry.mode == "mps" and not entry.acknowledged
        else:
            unacknowledged = sources.mode_of(template.spec) == "mps" and not all_acknowledged
        if unacknowledged:
            yield template.owner, (f"{template.where}: requests {SHARED_GPU_RESOURCE} shared by MPS in production: "
                                   f"{_WHY}")


RULE = Rule(
    name="gpu-no-mps-in-production",
    description=(
        "No unacknowledged CUDA MPS GPU sharing where the stack (config production: true) or the namespace (label "
        "gpufleet.io/environment=prod) is production: no device plugin config with sharing.mps (ConfigMap or "
        "gpu-operator values devicePlugin.config.data) unless the ConfigMap's "
        f"{MPS_ACKNOWLEDGED_ANNOTATION} annotation names the entry, and no pods requesting nvidia.com/gpu.shared "
        "from such an entry (their NodePool selects it through nvidia.com/device-plugin.config). MPS limits each "
        "pod's memory and compute but shares faults: one client's fatal GPU error ends every client on that GPU."
    ),
    check_stack=check,
    summary="no unacknowledged GPU MPS sharing in production",
    why=(
        "MPS sits between time-slicing and MIG: clients run concurrently with a fixed share of memory and compute, "
        "but they are clients of one MPS server per GPU, so a fatal GPU exception in one pod (an illegal address, "
        "an ECC error) takes down every pod on that GPU. Production serving needs MIG's hardware isolation, or an "
        "explicit, reviewable acceptance of that blast radius."
    ),
    fix=(
        "Use MIG (nvidia.com/mig-<profile>) or whole GPUs in production; or, if the shared blast radius is "
        "accepted, set the pool's sharing.acknowledgeNoIsolation: true (gpufleet renders the "
        f"{MPS_ACKNOWLEDGED_ANNOTATION} annotation naming the entry on the device plugin ConfigMap)."
    ),
    example="""\
apiVersion: v1
kind: Namespace
metadata:
  name: serving
  labels: {gpufleet.io/environment: prod}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: gpufleet-device-plugin-config
  namespace: gpu-operator
  annotations:
    gpufleet.io/mps-no-isolation-acknowledged: embed-mps
data:
  default: |
    version: v1
    flags: {migStrategy: none}
  embed-mps: |
    version: v1
    flags: {migStrategy: none}
    sharing:
      mps:
        renameByDefault: true
        failRequestsGreaterThanOne: true
        resources:
          - {name: nvidia.com/gpu, replicas: 4}
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
            limits: {nvidia.com/gpu.shared: 1, memory: 16Gi}
""",
)
