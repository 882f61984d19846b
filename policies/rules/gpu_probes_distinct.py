"""``gpu-probes-distinct``: liveness and readiness both exist and differ."""

from __future__ import annotations

from typing import Iterator

from gpufleet.policies.core import Rule, RuleContext, Subject, is_unknown
from gpufleet.policies.rules._common import gpu_serving_containers


def check(subject: Subject, context: RuleContext) -> Iterator[str]:
    for where, container in gpu_serving_containers(subject):
        liveness, readiness = container.get("livenessProbe"), container.get("readinessProbe")
        if is_unknown(liveness) or is_unknown(readiness):
            continue
        missing = [n for n, p in (("livenessProbe", liveness), ("readinessProbe", readiness)) if p is None]
        if missing:
            yield (f"{where}: no {' and no '.join(missing)}: readiness says the model is loaded, liveness says the "
                   f"process is alive; a serving container needs both")
        elif liveness == readiness:
            yield (f"{where}: livenessProbe is identical to readinessProbe: a slow model load or a busy GPU then "
                   f"restarts the pod instead of only taking it out of rotation")


RULE = Rule(
    name="gpu-probes-distinct",
    description=(
        "Serving containers on GPUs declare both a livenessProbe and a readinessProbe, and the two are not "
        "identical: readiness tracks \"model loaded, can take traffic\", liveness \"process alive\"; one probe for "
        "both restarts pods that are merely busy or loading."
    ),
    check_resource=check,
    summary="GPU serving containers have distinct liveness and readiness probes",
    why=(
        "Production checklist (Probes): separate liveness and readiness. Readiness means the model is loaded and "
        "can take traffic; liveness means the process is alive. One probe for both restarts a pod that is merely "
        "busy or still loading."
    ),
    fix=(
        "Point readinessProbe at the model's ready endpoint (e.g. /health, /v2/health/ready) and livenessProbe at"
        " a cheap process check (tcpSocket, /v2/health/live) with a longer period or failure threshold."
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
          readinessProbe:
            httpGet: {path: /health, port: 8000}
            initialDelaySeconds: 120
          livenessProbe:
            tcpSocket: {port: 8000}
            initialDelaySeconds: 120
            periodSeconds: 30
""",
)
