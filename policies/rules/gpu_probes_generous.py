"""``gpu-probes-generous``: readiness waits long enough for the model to load."""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional

from gpufleet.policies.core import Rule, RuleContext, Subject, as_mapping, as_number, is_unknown
from gpufleet.policies.rules._common import gpu_serving_containers


def check(subject: Subject, context: RuleContext) -> Iterator[str]:
    threshold = float(context["minInitialDelaySeconds"])
    for where, container in gpu_serving_containers(subject):
        message = _container(container, threshold)
        if message:
            yield f"{where}: {message}"


def _container(container: Mapping[str, Any], threshold: float) -> Optional[str]:
    readiness, startup = container.get("readinessProbe"), container.get("startupProbe")
    if is_unknown(readiness) or is_unknown(startup):
        return None
    budget = startup_budget(startup)
    if budget is None:
        return None
    if startup is not None and budget >= threshold:
        return None
    if readiness is None:
        if startup is None:
            return (f"no readinessProbe: traffic reaches the pod before the model is loaded (add one with "
                    f"initialDelaySeconds >= {threshold:g}, or a startupProbe allowing {threshold:g}s)")
        return f"startupProbe allows {budget:g}s, less than {threshold:g}s of model loading"
    delay = as_number(as_mapping(readiness).get("initialDelaySeconds", 0))
    if delay is None or delay >= threshold:
        return None
    extra = f" and the startupProbe allows only {budget:g}s" if startup is not None else ""
    return (f"readinessProbe.initialDelaySeconds is {delay:g}s{extra}: loading a model takes minutes, give it at "
            f"least {threshold:g}s (initialDelaySeconds or a startupProbe)")


def startup_budget(probe: Any) -> Optional[float]:
    """Seconds a startupProbe lets the container start: initialDelaySeconds + periodSeconds ×
    failureThreshold (Kubernetes defaults 0, 10, 3); 0 without a probe; None when unknown."""
    if probe is None:
        return 0.0
    probe = as_mapping(probe)
    values = [as_number(probe.get(k, d)) for k, d in (("initialDelaySeconds", 0), ("periodSeconds", 10),
                                                       ("failureThreshold", 3))]
    if any(v is None for v in values):
        return None
    delay, period, failures = values
    return delay + period * failures  # type: ignore[operator]


RULE = Rule(
    name="gpu-probes-generous",
    description=(
        "Serving containers on GPUs have a readinessProbe with initialDelaySeconds at least the threshold "
        "(default 60 s), or a startupProbe whose budget (initialDelaySeconds + periodSeconds × failureThreshold) "
        "reaches it: loading a model takes minutes, and probing too early restarts the pod in a loop that burns "
        "GPU hours."
    ),
    settings_schema={
        "minInitialDelaySeconds": {"type": "number", "minimum": 0, "description": "Seconds a model needs to load."},
    },
    defaults={"minInitialDelaySeconds": 60},
    check_resource=check,
    summary="GPU serving probes wait for the model to load",
    why=(
        "Production checklist (Probes): generous initialDelaySeconds, because model loading takes minutes. A "
        "probe that fails while weights load restarts the pod, which loads again: a loop that burns GPU hours."
    ),
    fix=(
        "Give the serving container a startupProbe whose initialDelaySeconds + periodSeconds x failureThreshold "
        "covers the load time, or a readinessProbe with initialDelaySeconds of at least minInitialDelaySeconds "
        "(default 60)."
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
          startupProbe:
            httpGet: {path: /health, port: 8000}
            periodSeconds: 10
            failureThreshold: 30
          readinessProbe:
            httpGet: {path: /health, port: 8000}
            periodSeconds: 10
          livenessProbe:
            tcpSocket: {port: 8000}
            periodSeconds: 30
""",
)
