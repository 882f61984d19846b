"""``container-non-root``: containers run as non-root, without privilege escalation, dropping ALL.

Checked: every pod of a workload that requests GPUs (device-plugin resources) and DaemonSets (node agents, where root
means the node). CPU, TPU and Neuron workloads are outside a GPU policy's scope. The NVIDIA GPU stack's
DaemonSets are exempt by name."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any, Iterator, Mapping

from gpufleet.policies.core import (
    Rule, RuleContext, Subject, as_list, as_mapping, as_number, as_str, contains_unknown, is_unknown,
)
from gpufleet.policies.pod_templates import pod_templates

GPU_SYSTEM_DAEMONSETS = (
    "nvidia-device-plugin*", "*nvidia-device-plugin-daemonset*", "nvidia-dcgm-exporter*", "dcgm-exporter*",
    "*-dcgm-exporter", "gpu-feature-discovery*", "nvidia-gpu-feature-discovery*", "*-gpu-feature-discovery",
    "nvidia-driver-daemonset*", "nvidia-container-toolkit-daemonset*", "nvidia-operator-validator*",
    "nvidia-mig-manager*", "nvidia-mps-control-daemon*", "nvidia-node-status-exporter*", "nvidia-vgpu-*",
    "nvidia-sandbox-*", "nvidia-kata-manager*", "nvidia-cc-manager*", "nvidia-fs-*", "nvidia-gds-*",
    # GPU Operator v26.7.0 operands (manifests/state-*/ and the NVIDIADriver controller): the driver of an
    # NVIDIADriver CR (nvidia-gpu-driver-<os>-<hash>), standalone DCGM (nvidia-dcgm, nvidia-dcgm-dra), the
    # DRA driver's kubelet plugin and validator, Kata/VFIO sandbox operands.
    "nvidia-gpu-driver-*", "nvidia-dcgm", "nvidia-dcgm-*", "nvidia-dra-driver-*", "nvidia-dra-validator*",
    "nvidia-kata-sandbox-device-plugin-daemonset*", "nvidia-vfio-manager*", "nvidia-vgpu-device-manager*",
    "nvidia-sandbox-validator*", "nvidia-driver-*", "nvidia-imex-*", "*-dra-driver-gpu-kubelet-plugin",
    "nvidia-dra-driver-gpu-*",
)
"""DaemonSets of the NVIDIA GPU stack: they load drivers, talk to the kubelet's device-plugin socket and
read GPU counters, which needs root and host access. Patterns match ``metadata.name``; the GPU
Operator's names follow its v26.7.0 ``manifests/state-*`` and ``assets/state-*`` templates."""


def check(subject: Subject, context: RuleContext) -> Iterator[str]:
    if subject.kind == "DaemonSet" and any(fnmatchcase(subject.object_name, p) for p in context["exemptDaemonSets"]):
        return
    templates = pod_templates(subject)
    if not (subject.kind == "DaemonSet" or any(t.uses_gpu for t in templates)):
        return  # CPU, TPU and Neuron workloads are outside a GPU policy's scope
    for template in templates:
        pod_context = template.spec.get("securityContext")
        if is_unknown(pod_context):
            continue
        pod_context = as_mapping(pod_context)
        for container in template.all_containers():
            problems = _problems(pod_context, container.get("securityContext"))
            if problems:
                yield f"{template.where} container {as_str(container.get('name')) or '?'}: {'; '.join(problems)}"


def _problems(pod: Mapping[str, Any], raw: Any) -> list[str]:
    if is_unknown(raw):
        return []
    own = as_mapping(raw)
    problems: list[str] = []
    non_root = own.get("runAsNonRoot", pod.get("runAsNonRoot"))
    user = own.get("runAsUser", pod.get("runAsUser"))
    uid = as_number(user)
    if not (non_root is True or (uid is not None and uid > 0) or is_unknown(non_root) or is_unknown(user)):
        problems.append("may run as root (set runAsNonRoot: true or a non-zero runAsUser)")
    if uid == 0:
        problems.append("runAsUser is 0 (root)")
    escalation = own.get("allowPrivilegeEscalation")
    if escalation is not False and not is_unknown(escalation):
        problems.append("allowPrivilegeEscalation is not false")
    if own.get("privileged") is True:
        problems.append("is privileged")
    capabilities = own.get("capabilities")
    drop = as_mapping(capabilities).get("drop")
    if not (is_unknown(capabilities) or contains_unknown(drop)) and "ALL" not in [as_str(d) for d in as_list(drop)]:
        problems.append("does not drop ALL capabilities")
    return problems


RULE = Rule(
    name="container-non-root",
    description=(
        "Every container runs as a non-root user, cannot escalate privileges and drops ALL Linux capabilities, "
        "to limit the blast radius of a compromised model server (they run third-party code and weights). The "
        "NVIDIA GPU stack's DaemonSets (device plugin, DCGM exporter, GPU feature discovery, the GPU Operator's "
        "operands) need host access and are exempt by a configurable list of name patterns."
    ),
    settings_schema={
        "exemptDaemonSets": {
            "type": "array", "items": {"type": "string"},
            "description": "fnmatch patterns of DaemonSet names that may run privileged (GPU system DaemonSets).",
        },
    },
    defaults={"exemptDaemonSets": list(GPU_SYSTEM_DAEMONSETS)},
    check_resource=check,
    summary="containers run as non-root, without privilege escalation, dropping ALL capabilities",
    why=(
        "Production checklist (Security): non-root containers, to limit the blast radius. Model servers run "
        "third-party code and weights (pickles, trust_remote_code); compromised as root with capabilities, they "
        "reach the node and its GPUs' neighbours."
    ),
    fix=(
        "Set the pod's securityContext runAsNonRoot: true (with a runAsUser the image can run as), and each "
        "container's securityContext allowPrivilegeEscalation: false and capabilities.drop: [ALL]. GPU system "
        "DaemonSets are exempt through the exemptDaemonSets setting."
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
      securityContext: {runAsNonRoot: true, runAsUser: 1000}
      containers:
        - name: server
          image: vllm/vllm-openai:v0.11.0
          resources:
            requests: {nvidia.com/gpu: 1, cpu: "8", memory: 48Gi}
            limits: {nvidia.com/gpu: 1, memory: 48Gi}
          securityContext:
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
""",
)
