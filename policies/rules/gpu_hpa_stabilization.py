"""``gpu-hpa-stabilization``: autoscalers of GPU workloads scale down slowly and up in bounded steps.

A scale-up policy is *bounded* when it adds at most ``maxScaleUpPods`` pods (``type: Pods``) or
``maxScaleUpPercent`` percent of the current replicas (``type: Percent``) per period, and its
``periodSeconds`` is at least ``minScaleUpPeriodSeconds``. With ``selectPolicy: Max`` (the default) the
HPA takes the largest step any policy allows, so every policy must be bounded; with ``Min`` one bounded
policy caps the step. The same check covers an HPA's ``spec.behavior``, a KEDA ScaledObject's
``advanced.horizontalPodAutoscalerConfig.behavior`` and the ``autoScaling.behavior`` of a KServe
Standard-mode predictor (for the HPA KServe creates).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional, Sequence

from gpufleet.policies.core import Rule, RuleContext, Subject, as_list, as_mapping, as_number, as_str, is_unknown
from gpufleet.policies.pod_templates import PodTemplate, gpu_pod_templates
from gpufleet.policies.rules._common import scaler_for, scalers

HPA_DEFAULT_SCALE_DOWN_WINDOW = 300
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
STANDARD_MODES = ("Standard", "RawDeployment")
"""KServe modes that scale with a Kubernetes HPA (Knative mode uses Knative's autoscaler instead)."""


def check(subjects: Sequence[Subject], context: RuleContext) -> Iterator[tuple[Subject, str]]:
    gpu_targets = {
        (t.namespace, kind, name) for t in gpu_pod_templates(subjects) for kind, name in t.scale_targets
    }
    limits = _Limits.of(context)
    all_scalers = scalers(subjects)
    for scaler in all_scalers:
        if (scaler.namespace, scaler.target_kind, scaler.target_name) not in gpu_targets:
            continue
        field = "spec.behavior" if scaler.subject.kind == "HorizontalPodAutoscaler" else \
            "spec.advanced.horizontalPodAutoscalerConfig.behavior"
        target = f"GPU workload {scaler.target_kind} {scaler.target_name}"
        for message in _behavior(scaler.behavior, field, target, limits):
            yield scaler.subject, message
    index = {(s.namespace, s.target_kind, s.target_name): s for s in all_scalers}
    for template in gpu_pod_templates(subjects):
        if _kserve_hpa(template) and scaler_for(template, index) is None:
            behavior = as_mapping(template.spec.get("autoScaling")).get("behavior")
            if is_unknown(template.spec.get("autoScaling")):
                continue
            field = f"{template.path}.autoScaling.behavior"
            target = f"its {template.max_replicas} GPU replicas (KServe creates the HPA)"
            for message in _behavior(behavior, field, target, limits):
                yield template.owner, message


def _kserve_hpa(template: PodTemplate) -> bool:
    """An InferenceService component that KServe scales with an HPA it creates: Standard (raw
    deployment) mode and more replicas allowed than the minimum."""
    if template.kind != "InferenceService" or template.path.endswith("workerSpec"):
        return False
    mode = as_str(template.owner.annotations.get(DEPLOYMENT_MODE_ANNOTATION))
    low, high = template.min_replicas, template.max_replicas
    return mode in STANDARD_MODES and low is not None and high is not None and high > low


@dataclass(frozen=True)
class _Limits:
    """The rule's thresholds, from its settings."""

    min_down_window: float
    min_up_window: float
    max_pods: float
    max_percent: float
    min_period: float

    @classmethod
    def of(cls, context: RuleContext) -> "_Limits":
        return cls(float(context["minScaleDownStabilizationSeconds"]), float(context["minScaleUpStabilizationSeconds"]),
                   float(context["maxScaleUpPods"]), float(context["maxScaleUpPercent"]),
                   float(context["minScaleUpPeriodSeconds"]))


def _behavior(behavior: Any, field: str, target: str, limits: _Limits) -> Iterator[str]:
    if is_unknown(behavior):
        return
    behavior = as_mapping(behavior)
    down, up = behavior.get("scaleDown"), behavior.get("scaleUp")
    if is_unknown(down) or is_unknown(up):
        return
    window = _window(down)
    if window is not None and window < limits.min_down_window:
        yield (f"{field}.scaleDown.stabilizationWindowSeconds is {window:g}s for {target}: scale-down "
               f"kills in-flight requests and a GPU replica takes minutes to come back; wait at least "
               f"{limits.min_down_window:g}s")
    up = as_mapping(up)
    up_window = up.get("stabilizationWindowSeconds")
    if up_window is not None and not is_unknown(up_window):
        seconds = as_number(up_window)
        if seconds is not None and seconds < limits.min_up_window:
            yield (f"{field}.scaleUp.stabilizationWindowSeconds is {seconds:g}s for {target}: it must be at least "
                   f"{limits.min_up_window:g}s")
    select = up.get("selectPolicy")
    if select == "Disabled" or is_unknown(select):
        return
    policies = up.get("policies")
    if is_unknown(policies):
        return
    if not as_list(policies):
        yield (f"{field}.scaleUp.policies is not set for {target}: the default lets the HPA double the "
               f"replicas (or add 4) every 15s, each one a GPU node; add Pods/Percent policies that bound a step "
               f"(at most {limits.max_pods:g} pods or {limits.max_percent:g}% per {limits.min_period:g}s)")
        return
    verdicts = [_unbounded(as_mapping(p), limits) if not is_unknown(p) else None
                for p in as_list(policies)]
    if any(v is None for v in verdicts):
        return  # some policy is not known yet: never flag on an unknown
    unbounded = [f"policies[{i}] {v}" for i, v in enumerate(verdicts) if v]
    if not unbounded:
        return
    if select == "Min" and len(unbounded) < len(verdicts):
        return  # the HPA takes the smallest step: one bounded policy caps it
    mode = "selectPolicy Min" if select == "Min" else f"selectPolicy {select or 'Max (default)'}"
    yield (f"{field}.scaleUp ({mode}) lets {target} grow by more than {limits.max_pods:g} pods or "
           f"{limits.max_percent:g}% per {limits.min_period:g}s: {'; '.join(unbounded)}; each replica is a GPU node "
           f"(with Max every policy must stay within the bounds, with Min at least one)")


def _unbounded(policy: Mapping[str, Any], limits: _Limits) -> Optional[str]:
    """Why one scale-up policy is unbounded ("" when bounded); None when a value is unknown."""
    kind, value, period = policy.get("type"), policy.get("value"), policy.get("periodSeconds")
    if any(is_unknown(v) for v in (kind, value, period)):
        return None
    number, seconds = as_number(value), as_number(period)
    if kind not in ("Pods", "Percent") or number is None or seconds is None:
        return f"({kind} {value} / {period}s) is not a Pods or Percent policy with a value and periodSeconds"
    bound, unit = (limits.max_pods, " pods") if kind == "Pods" else (limits.max_percent, "%")
    if number > bound:
        return f"adds {number:g}{unit} (at most {bound:g}{unit})"
    if seconds < limits.min_period:
        return f"adds {number:g}{unit} every {seconds:g}s (period at least {limits.min_period:g}s)"
    return ""


def _window(down: Any) -> Optional[float]:
    if down is None:
        return HPA_DEFAULT_SCALE_DOWN_WINDOW
    value = as_mapping(down).get("stabilizationWindowSeconds")
    if value is None:
        return HPA_DEFAULT_SCALE_DOWN_WINDOW
    return as_number(value)


RULE = Rule(
    name="gpu-hpa-stabilization",
    description=(
        "HorizontalPodAutoscalers, KEDA ScaledObjects (advanced.horizontalPodAutoscalerConfig.behavior) and KServe "
        "Standard-mode InferenceServices (predictor.autoScaling.behavior, for the HPA KServe creates) that "
        "scale a GPU workload wait at least 600 s (configurable) before scaling down and bound each scale-up "
        "step with explicit policies: at most 4 pods (Pods) or 100% (Percent) per period of at least 60 s "
        "(configurable), every policy with selectPolicy Max (the default), one with Min; scale-up stabilization "
        "not below 0 s (configurable). GPU replicas cost dollars an hour and minutes to start, so thrashing is "
        "expensive and scale-down drops in-flight requests."
    ),
    settings_schema={
        "minScaleDownStabilizationSeconds": {
            "type": "number", "minimum": 0, "description": "Least scaleDown.stabilizationWindowSeconds.",
        },
        "minScaleUpStabilizationSeconds": {
            "type": "number", "minimum": 0, "description": "Least scaleUp.stabilizationWindowSeconds (when set).",
        },
        "maxScaleUpPods": {
            "type": "number", "minimum": 1, "description": "Most pods a Pods scale-up policy adds per period.",
        },
        "maxScaleUpPercent": {
            "type": "number", "minimum": 1,
            "description": "Most percent of the current replicas a Percent scale-up policy adds per period.",
        },
        "minScaleUpPeriodSeconds": {
            "type": "number", "minimum": 1, "description": "Least periodSeconds of a scale-up policy.",
        },
    },
    defaults={"minScaleDownStabilizationSeconds": 600, "minScaleUpStabilizationSeconds": 0, "maxScaleUpPods": 4,
              "maxScaleUpPercent": 100, "minScaleUpPeriodSeconds": 60},
    check_stack=check,
    summary="GPU autoscalers scale down slowly and up in bounded steps",
    why=(
        "Production checklist (Scaling): long stabilization windows, because GPU pods are too expensive for "
        "thrashing. A new replica takes minutes to load its model and scale-down drops in-flight requests: wait 5"
        " to 10 minutes before scaling down."
    ),
    fix=(
        "Set behavior.scaleDown.stabilizationWindowSeconds to at least 600 and bound scale-up with "
        "behavior.scaleUp.policies (Pods <= 4 or Percent <= 100 per periodSeconds >= 60); KEDA: under "
        "advanced.horizontalPodAutoscalerConfig.behavior; KServe: predictor.autoScaling.behavior."
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
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: llm
  namespace: serving
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: llm}
  minReplicas: 1
  maxReplicas: 4
  metrics:
    - type: Resource
      resource:
        name: cpu
        target: {type: Utilization, averageUtilization: 80}
  behavior:
    scaleUp:
      policies:
        - {type: Pods, value: 1, periodSeconds: 300}
    scaleDown:
      stabilizationWindowSeconds: 600
""",
)
