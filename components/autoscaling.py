"""GPU autoscaling with KEDA: the ``Keda`` install component and builders of ``ScaledObject`` specs.

Why KEDA rather than prometheus-adapter: KEDA reads Prometheus (and Kafka, ...) directly, creates and
owns the HorizontalPodAutoscaler of each ``ScaledObject`` (``keda-hpa-<name>``) and can scale to zero
for queue-driven batch work. One ScaledObject per workload means one HPA per workload: gpufleet's
InferenceServices set KServe's ``serving.kserve.io/autoscalerClass: external`` so KServe authors no
HPA or ScaledObject of its own and never fights KEDA over the Deployment's replicas.

The HPA behaviour is the seeds' (GPU pods are expensive to start and to stop): scale up by at most 2
pods per 5 minutes after a 120 s stabilisation window; scale down 1 pod per 10 minutes after 600 s.
KEDA carries it in ``spec.advanced.horizontalPodAutoscalerConfig.behavior``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, TypedDict

import pulumi
from typing_extensions import NotRequired

from gpufleet.components._k8s import controller_chart, require_dns_label
from gpufleet.components._validate import check_arg_keys, require_int_range
from gpufleet.components.gpu_scheduling import SYSTEM_NODE_SELECTOR

TYPE = "gpufleet:autoscaling:Keda"

CHART = "keda"
CHART_VERSION = "2.20.2"
"""KEDA release whose ScaledObject CRD gpufleet's manifests are validated against."""
CHART_REPOSITORY = "https://kedacore.github.io/charts"
DEFAULT_NAMESPACE = "keda"

SCALED_OBJECT_API_VERSION = "keda.sh/v1alpha1"

SCALE_UP_STABILIZATION_SECONDS = 120
SCALE_UP_PODS = 2
SCALE_UP_PERIOD_SECONDS = 300
SCALE_DOWN_STABILIZATION_SECONDS = 600
SCALE_DOWN_PODS = 1
SCALE_DOWN_PERIOD_SECONDS = 600


class KedaArgs(TypedDict):
    """Inputs of :class:`Keda`."""

    namespace: NotRequired[str]
    """Namespace created for KEDA. Default ``keda``."""
    replicas: NotRequired[int]
    """Replicas of the operator (one leader) and of the metrics API server (which every HPA of a
    ScaledObject reads). Default 2."""


def keda_values(args: KedaArgs) -> dict[str, Any]:
    """The chart values gpufleet sets (plain data: tests compare it with the chart's values.yaml)."""
    replicas = require_int_range(args.get("replicas", 2), "replicas", 1, 5, name=TYPE)
    budget = {"minAvailable": 1} if replicas > 1 else {}
    return {
        "crds": {"install": True},
        "operator": {"replicaCount": replicas},
        "metricsServer": {"replicaCount": replicas},
        "webhooks": {"replicaCount": replicas},
        "podDisruptionBudget": {"operator": budget, "metricServer": budget, "webhooks": budget},
        "nodeSelector": dict(SYSTEM_NODE_SELECTOR),
    }


class Keda(pulumi.ComponentResource):
    """KEDA (chart ``keda`` pinned to :data:`CHART_VERSION`) on the system nodes, in a ``restricted``
    namespace. Components that create ScaledObjects depend on it so the CRDs exist first."""

    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: Optional[KedaArgs] = None, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, KedaArgs, name=TYPE)
        args = args or {}
        namespace_name = args.get("namespace", DEFAULT_NAMESPACE)
        require_dns_label(namespace_name, "namespace", name=TYPE)
        values = keda_values(args)

        super().__init__(TYPE, name, {}, opts)
        release = controller_chart(
            name,
            namespace=namespace_name,
            release_name=CHART,
            chart=CHART,
            version=CHART_VERSION,
            repository=CHART_REPOSITORY,
            values=values,
            parent=self,
        )
        self.namespace = release.status.apply(lambda _: namespace_name)
        self.register_outputs({"namespace": self.namespace})


def hpa_behavior() -> dict[str, Any]:
    """The seeds' HPA ``behavior`` for GPU workloads (see the module docstring)."""
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": SCALE_UP_STABILIZATION_SECONDS,
            "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": SCALE_UP_PODS, "periodSeconds": SCALE_UP_PERIOD_SECONDS}],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": SCALE_DOWN_STABILIZATION_SECONDS,
            "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": SCALE_DOWN_PODS, "periodSeconds": SCALE_DOWN_PERIOD_SECONDS}],
        },
    }


def _number(value: float) -> str:
    return f"{value:g}"


def prometheus_trigger(name: str, server_address: str, query: str, threshold: float, *,
                       activation_threshold: Optional[float] = None) -> dict[str, Any]:
    """A KEDA ``prometheus`` trigger. ``AverageValue``: the HPA wants ``ceil(query / threshold)``
    replicas, so ``query`` must be a *total* over the workload's pods (a ``sum``)."""
    metadata = {"serverAddress": server_address, "query": query, "threshold": _number(threshold)}
    if activation_threshold is not None:
        metadata["activationThreshold"] = _number(activation_threshold)
    return {"type": "prometheus", "name": name, "metricType": "AverageValue", "metadata": metadata}


class KafkaTrigger(TypedDict):
    """Consumer lag of a Kafka consumer group, for queue-driven batch inference."""

    bootstrap_servers: str
    """Comma-separated ``host:port`` list. Required."""
    consumer_group: str
    """The workload's consumer group. Required."""
    topic: str
    """The topic it consumes. Required."""
    lag_threshold: NotRequired[int]
    """Target lag per replica. Default 10."""
    authentication_ref: NotRequired[str]
    """Name of a KEDA ``TriggerAuthentication`` in the workload's namespace (SASL/TLS secrets, never
    inline credentials). Default none (plaintext)."""


def kafka_trigger(kafka: KafkaTrigger, *, name: str, field: str = "kafka") -> dict[str, Any]:
    """A KEDA ``kafka`` trigger that wakes a workload from zero on any lag (activation 0)."""
    for key in ("bootstrap_servers", "consumer_group", "topic"):
        if not isinstance(kafka.get(key), str) or not kafka[key]:
            raise ValueError(f"{name}: {field}.{key} is required")
    lag = require_int_range(kafka.get("lag_threshold", 10), f"{field}.lag_threshold", 1, 1_000_000, name=name)
    trigger: dict[str, Any] = {
        "type": "kafka",
        "name": "kafka-lag",
        "metadata": {
            "bootstrapServers": kafka["bootstrap_servers"],
            "consumerGroup": kafka["consumer_group"],
            "topic": kafka["topic"],
            "lagThreshold": str(lag),
            "activationLagThreshold": "0",
            "offsetResetPolicy": "earliest",
        },
    }
    if kafka.get("authentication_ref"):
        trigger["authenticationRef"] = {"name": kafka["authentication_ref"]}
    return trigger


def scaled_object_spec(target: str, *, min_replicas: int, max_replicas: int, triggers: Sequence[Mapping[str, Any]],
                       kind: str = "Deployment", api_version: str = "apps/v1",
                       cooldown_seconds: int = SCALE_DOWN_STABILIZATION_SECONDS) -> dict[str, Any]:
    """``spec`` of a ScaledObject scaling ``target`` between the bounds with the seeds' behaviour.
    ``cooldown_seconds`` only matters with ``min_replicas == 0`` (time idle before going to zero)."""
    return {
        "scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": target},
        "minReplicaCount": min_replicas,
        "maxReplicaCount": max_replicas,
        "cooldownPeriod": cooldown_seconds,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": hpa_behavior()}},
        "triggers": [dict(t) for t in triggers],
    }
