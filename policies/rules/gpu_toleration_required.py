"""``gpu-toleration-required``: GPU pods tolerate the GPU node taint."""

from __future__ import annotations

from typing import Iterator

from gpufleet.components.gpu_scheduling import GPU_TAINT_KEY, GPU_TAINT_VALUE
from gpufleet.policies.core import Rule, RuleContext, Subject, contains_unknown
from gpufleet.policies.pod_templates import pod_templates
from gpufleet.policies.rules._common import tolerates, value_mismatch


def check(subject: Subject, context: RuleContext) -> Iterator[str]:
    key, value, effect = context["taintKey"], context["taintValue"], context["taintEffect"]
    for template in pod_templates(subject):
        if not template.uses_gpu or contains_unknown(template.spec.get("tolerations")):
            continue
        if tolerates(template.tolerations, key, value, effect):
            continue
        other = value_mismatch(template.tolerations, key, value, effect)
        if other is not None:
            yield (f"{template.where}: tolerates {key}={other} but the GPU node taint is {key}={value}:{effect}: the "
                   f"values differ, so the toleration only matches nodes tainted {key}={other} (use operator: Exists "
                   f"to tolerate any value)")
        else:
            yield (f"{template.where}: requests GPUs but does not tolerate the GPU node taint {key}={value}:{effect} "
                   f"(add a toleration {{key: {key}, operator: Exists, effect: {effect}}})")


RULE = Rule(
    name="gpu-toleration-required",
    description=(
        "Pods that request GPUs tolerate the taint every GPU node carries (nvidia.com/gpu:NoSchedule). GPU nodes "
        "are tainted so that only GPU work lands on them; a GPU pod without the toleration never schedules."
    ),
    settings_schema={
        "taintKey": {"type": "string", "description": "Key of the GPU node taint."},
        "taintValue": {"type": "string", "description": "Value of the GPU node taint (for Equal tolerations)."},
        "taintEffect": {"type": "string", "enum": ["NoSchedule", "NoExecute", "PreferNoSchedule"]},
    },
    defaults={"taintKey": GPU_TAINT_KEY, "taintValue": GPU_TAINT_VALUE, "taintEffect": "NoSchedule"},
    check_resource=check,
    summary="GPU pods tolerate the GPU node taint",
    why=(
        "Production checklist (Scheduling): node taints + tolerations, to keep non-GPU pods off GPU nodes. GPU "
        "nodes carry nvidia.com/gpu:NoSchedule; a GPU pod without the toleration matches no node and stays "
        "Pending."
    ),
    fix=(
        "Add the toleration {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule} to the pod spec (KServe: "
        "predictor.tolerations; KubeRay: every worker group's template; the taint is the rule's taintKey "
        "setting)."
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
      tolerations:
        - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
      containers:
        - name: server
          image: vllm/vllm-openai:v0.11.0
          resources:
            requests: {nvidia.com/gpu: 1, cpu: "8", memory: 48Gi}
            limits: {nvidia.com/gpu: 1, memory: 48Gi}
""",
)
