"""``gpu-dcgm-exporter-present``: a cluster with GPU workloads exports GPU metrics."""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

from gpufleet.policies.core import Rule, RuleContext, Subject, as_mapping, as_str, is_unknown
from gpufleet.policies.pod_templates import gpu_pod_templates, pod_templates
from gpufleet.policies.rules._device_plugin import chart_name

DCGM_CHART = "dcgm-exporter"
OPERATOR_CHART = "gpu-operator"


def check(subjects: Sequence[Subject], context: RuleContext) -> Iterator[tuple[Subject, str]]:
    if context.assumes("dcgm-exporter"):
        return  # installed outside the checked resources
    first = next(iter(gpu_pod_templates(subjects)), None)
    if first is None:
        return
    if any(_exports(subject) for subject in subjects):
        return
    yield first.owner, (
        "GPU workloads run but nothing exports GPU metrics: no gpu-operator release with dcgmExporter enabled, no "
        "dcgm-exporter release, no DCGM exporter DaemonSet; GPU utilization, memory and XID errors stay invisible "
        "and GPU autoscaling has no signal")


def _exports(subject: Subject) -> Optional[bool]:
    """True: it runs the DCGM exporter (or may: unknown values); False: a GPU Operator with it
    disabled; None: unrelated."""
    if subject.is_helm_release:
        chart = chart_name(subject)
        if chart == DCGM_CHART:
            return True
        if chart == OPERATOR_CHART:
            values = subject.props.get("values")
            exporter = as_mapping(values).get("dcgmExporter")
            enabled = as_mapping(exporter).get("enabled")
            return is_unknown(values) or is_unknown(exporter) or enabled is not False
        return None
    if subject.is_a("nvidia.com", "ClusterPolicy"):
        return as_mapping(subject.spec.get("dcgmExporter")).get("enabled") is not False
    if subject.is_a("apps", "DaemonSet"):
        if DCGM_CHART in subject.object_name:
            return True
        for template in pod_templates(subject):
            if any(DCGM_CHART in (as_str(c.get("image")) or "") for c in template.containers):
                return True
    return None


RULE = Rule(
    name="gpu-dcgm-exporter-present",
    description=(
        "A cluster that runs GPU workloads runs NVIDIA's DCGM exporter: a gpu-operator Helm release whose "
        "dcgmExporter is not disabled, a dcgm-exporter release, or its DaemonSet. Without it GPU utilization, "
        "memory and health are invisible to Prometheus, and GPU-metric autoscaling has nothing to act on."
    ),
    check_stack=check,
    summary="a cluster with GPU workloads runs the DCGM exporter",
    why=(
        "Production checklist (Observability): DCGM exporter DaemonSet, for GPU metrics in Prometheus. Without it"
        " GPU utilization, memory and XID errors are invisible and GPU-metric autoscaling has no signal."
    ),
    fix=(
        "Install the GPU Operator with dcgmExporter enabled (its default) or NVIDIA's dcgm-exporter chart. If it "
        "is installed outside the checked files, run gpufleet check with --assume dcgm-exporter."
    ),
    example="""\
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: nvidia-dcgm-exporter
  namespace: gpu-operator
spec:
  selector:
    matchLabels: {app: nvidia-dcgm-exporter}
  template:
    metadata:
      labels: {app: nvidia-dcgm-exporter}
    spec:
      containers:
        - name: nvidia-dcgm-exporter
          image: nvcr.io/nvidia/k8s/dcgm-exporter:4.2.3-4.1.3-ubuntu22.04
---
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
