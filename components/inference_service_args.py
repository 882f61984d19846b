"""The arguments of :class:`~gpufleet.components.inference_service.InferenceService` and their
plain-value checks (names, images, storage URIs, canary, route, labels, GPU memory shares), so the
component and the stack-config cross-checks refuse the same values with the same messages."""

from __future__ import annotations

import re
from typing import Any, Literal, Mapping, Optional, Sequence, TypedDict

from typing_extensions import NotRequired

from gpufleet.components._validate import require_int_range
from gpufleet.components.autoscaling import KafkaTrigger
from gpufleet.components.gateway_api import check_hostname, parse_gateway_ref
from gpufleet.components.gpu_scheduling import GpuPlacement

TYPE = "gpufleet:kserve:InferenceService"
STABLE = "stable"
"""Variant name of the stable predictor (the canary has its own name)."""

_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,43}[a-z0-9])?$")
_SCHEMES = ("pvc://", "hf://", "s3://", "gs://", "https://")


class HfTokenSecret(TypedDict):
    """A key of a Kubernetes Secret holding a Hugging Face token (never the token itself)."""

    name: str
    """Secret name, in the service's namespace. Required."""
    key: NotRequired[str]
    """Key in the Secret. Default ``token``."""


class CanaryArgs(TypedDict):
    """A second model version receiving a share of the traffic."""

    storage_uri: str
    """Where the canary's weights are (same schemes as ``storage_uri``). Required."""
    traffic_percent: int
    """Share of requests the route sends to the canary, 1–100 (100: the promotion step before the
    swap; the stable predictor keeps running with weight 0). Required."""
    name: NotRequired[str]
    """Canary name: its InferenceService is ``<service>-<name>`` (Deployment and Service
    ``<service>-<name>-predictor``). Default ``canary``."""
    image: NotRequired[str]
    """vLLM image of the canary. Default: the stable predictor's."""
    min_replicas: NotRequired[int]
    """Replicas of the canary (fixed). Default 1."""
    weights_source: NotRequired[str]
    """Download the canary's weights into its ``pvc://`` storage first (like the service's
    ``weights_source``). Default none."""


class RouteArgs(TypedDict):
    """Gateway API routing of the service: an HTTPRoute splitting its hostname between the variants."""

    gateway: str
    """``<namespace>/<name>`` of the Gateway the route attaches to (e.g. the one
    :class:`~gpufleet.components.kserve.KServe` creates: ``KServe.gateway``). Required."""
    hostname: str
    """Host name clients use, e.g. ``chat-serving.ml.example.com``. Required."""
    request_timeout_seconds: NotRequired[int]
    """Longest a request may take end to end (long completions). Default 300."""


class DisruptionBudgetArgs(TypedDict, total=False):
    """A PodDisruptionBudget of each variant: exactly one field, whole pods."""

    min_available: int
    """Pods that must stay up; must be below each variant's replicas (else no node running them
    could ever be drained)."""
    max_unavailable: int
    """Pods that may be down at once; at least 1."""


class AutoscalingArgs(TypedDict):
    """KEDA autoscaling of the stable predictor (used when ``max_replicas > min_replicas``)."""

    prometheus_url: str
    """Prometheus query endpoint, e.g. ``http://prometheus-operated.monitoring.svc:9090``. Required."""
    gpu_utilization: NotRequired[int]
    """Target average GPU utilisation per replica, percent. Default 70."""
    waiting_requests: NotRequired[int]
    """Target ``vllm:num_requests_waiting`` per replica. Default 5."""
    kafka: NotRequired[KafkaTrigger]
    """Scale on a Kafka consumer group's lag too (queue-driven batch); allows ``min_replicas: 0``.
    Default none."""
    queue: NotRequired["QueueQuery"]
    """Scale on a queue depth in Prometheus too (e.g. an SQS or RabbitMQ exporter's metric); allows
    ``min_replicas: 0``. Default none."""


class QueueQuery(TypedDict):
    """A queue's depth as a Prometheus query, for queue-driven batch inference."""

    query: str
    """PromQL returning the total number of waiting items. Required."""
    target: int
    """Waiting items per replica. Required."""


class InferenceServiceArgs(TypedDict):
    """Inputs of :class:`InferenceService`."""

    namespace: str
    """The team namespace to serve in. Required."""
    placement: GpuPlacement
    """The GPU pool the predictor runs on. Required."""
    model_name: str
    """Model name clients request (vLLM ``--served-model-name``). Required."""
    storage_uri: str
    """The weights: ``pvc://<claim>/<path>`` (mounted read-only, no copy), ``hf://<org>/<model>``
    (vLLM downloads it into its home emptyDir, using ``hf_token_secret``), or ``s3://``/``gs://``/``https://`` (KServe's
    storage initializer copies it into the pod). Required."""
    service_name: NotRequired[str]
    """Kubernetes name of the InferenceService (≤ 45 characters). Default: the resource name."""
    image: NotRequired[str]
    """vLLM image. Default :data:`~gpufleet.components.inference_service.DEFAULT_IMAGE`."""
    gpus: NotRequired[int]
    """GPUs (units of ``placement.gpu_resource``) per replica; vLLM's tensor parallelism on whole
    GPUs. Default 1."""
    cpu: NotRequired[str]
    """CPU per replica (request = limit). Default ``"8"``."""
    memory: NotRequired[str]
    """Memory per replica (request = limit), including ``/dev/shm``. Default ``"32Gi"``."""
    shm_size: NotRequired[str]
    """Size of the memory-backed ``/dev/shm``. Default ``"8Gi"``."""
    min_replicas: NotRequired[int]
    """Fewest replicas (0 only with ``autoscaling.kafka`` or ``autoscaling.queue``). Default 1."""
    max_replicas: NotRequired[int]
    """Most replicas; above ``min_replicas`` it needs ``autoscaling``. Default ``min_replicas``."""
    max_model_len: NotRequired[int]
    """vLLM ``--max-model-len`` (context length). Default: the model's."""
    gpu_memory_utilization: NotRequired[float]
    """vLLM ``--gpu-memory-utilization``. Default 0.9, or 0.9 / replicas on a time-sliced pool
    (time-sliced pods share one GPU's memory)."""
    extra_args: NotRequired[Sequence[str]]
    """More vLLM flags. Default none."""
    hf_token_secret: NotRequired[HfTokenSecret]
    """Hugging Face token as env ``HF_TOKEN`` from a Secret. Default none."""
    load_seconds: NotRequired[int]
    """Expected model load time; the startup probe allows twice it. Default 300."""
    anti_affinity: NotRequired[Literal["preferred", "required"]]
    """Hostname anti-affinity between replicas (see :func:`gpu_pod.replica_spread`). Default
    ``preferred`` on whole-GPU pools; refused on MIG and time-sliced pools, where replicas share
    nodes (spreading them would launch a large GPU node per small replica)."""
    drain_seconds: NotRequired[int]
    """``preStop`` sleep before vLLM gets SIGTERM, so endpoints stop routing to it. Default 15."""
    termination_grace_seconds: NotRequired[int]
    """Termination grace period (drain + finishing in-flight requests). Default 120."""
    do_not_disrupt: NotRequired[bool]
    """Annotate pods ``karpenter.sh/do-not-disrupt`` (for their whole life). Default false."""
    canary: NotRequired[CanaryArgs]
    """A second model version with a traffic share (needs ``route``). Default none."""
    route: NotRequired[RouteArgs]
    """Route ``route.hostname`` through a Gateway API Gateway with an HTTPRoute gpufleet owns.
    Default none (in-cluster only: ``<service>-predictor.<namespace>``, or KServe's own ingress)."""
    disruption_budget: NotRequired[DisruptionBudgetArgs]
    """The PodDisruptionBudget of each variant. Default ``{"max_unavailable": 1}``."""
    autoscaling: NotRequired[AutoscalingArgs]
    """KEDA autoscaling; required when ``max_replicas > min_replicas``. Default none."""
    monitor_labels: NotRequired[Mapping[str, str]]
    """Labels of the PodMonitor, so the Prometheus Operator selects it (kube-prometheus-stack:
    ``{"release": "<release name>"}``). Default none."""
    weights_source: NotRequired[str]
    """``hf://<org>/<model>[@<revision>]``: download the weights into the ``pvc://`` storage with a
    :class:`~gpufleet.components.model_loader.ModelWeightsLoader` Job (using ``hf_token_secret``)
    before the InferenceService is created. Only with ``pvc://`` storage. Default none (the claim
    already holds them)."""


def check_name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(f"{TYPE}: {field} must be a lowercase DNS label of at most 45 characters starting "
                         f"with a letter, got {value!r}")
    return value


def check_image(image: Any, field: str) -> str:
    if not isinstance(image, str) or not re.fullmatch(r"[a-z0-9][\w./-]*(:[\w.-]+)?(@sha256:[0-9a-f]{64})?", image):
        raise ValueError(f"{TYPE}: {field} must be an image reference like 'vllm/vllm-openai:v0.28.0', got {image!r}")
    return image


def check_storage(uri: Any, field: str) -> str:
    if not isinstance(uri, str) or not uri.startswith(_SCHEMES):
        raise ValueError(f"{TYPE}: {field} must start with one of {', '.join(_SCHEMES)}, got {uri!r}")
    if uri.startswith("pvc://"):
        claim, _, path = uri[len("pvc://"):].partition("/")
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", claim):
            raise ValueError(f"{TYPE}: {field} must be pvc://<claim>/<path>, got {uri!r}")
    elif uri.endswith("://") or uri.rstrip("/").endswith(":/"):
        raise ValueError(f"{TYPE}: {field} names no model: {uri!r}")
    return uri



def default_memory_utilization(placement: GpuPlacement) -> float:
    if placement.sharing == "time-slicing" and placement.time_slicing_replicas > 1:
        return int(90 / placement.time_slicing_replicas) / 100
    return 0.9


def check_memory_utilization(value: Any, placement: GpuPlacement) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{TYPE}: gpu_memory_utilization must be a number in (0, 1], got {value!r}")
    if placement.sharing == "time-slicing" and placement.time_slicing_replicas > 1:
        share = 1 / placement.time_slicing_replicas
        if value > share:
            raise ValueError(
                f"{TYPE}: gpu_memory_utilization ({value}) exceeds 1/{placement.time_slicing_replicas} = "
                f"{share:.2f} on time-sliced pool {placement.pool!r}: pods sharing a GPU share its memory"
            )
    return float(value)


def check_canary(canary: Any, image: str, service: str) -> Optional[dict[str, Any]]:
    if canary is None:
        return None
    if not isinstance(canary, Mapping):
        raise TypeError(f"{TYPE}: canary must be a mapping")
    uri = check_storage(canary.get("storage_uri"), "canary.storage_uri")
    percent = canary.get("traffic_percent")
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
        raise ValueError(f"{TYPE}: canary.traffic_percent must be an integer from 1 to 100, got {percent!r}")
    canary_name = canary.get("name", "canary")
    if not isinstance(canary_name, str) or not re.fullmatch(r"[a-z]([-a-z0-9]{0,14}[a-z0-9])?", canary_name) \
            or canary_name == STABLE:
        raise ValueError(f"{TYPE}: canary.name must be a short DNS label other than 'stable', got {canary_name!r}")
    if not _NAME.match(f"{service}-{canary_name}"):
        raise ValueError(f"{TYPE}: canary.name makes the canary InferenceService {service}-{canary_name!s} longer "
                         f"than 45 characters (its Deployment is <name>-predictor); shorten it")
    replicas = require_int_range(canary.get("min_replicas", 1), "canary.min_replicas", 1, 100, name=TYPE)
    checked = {"storage_uri": uri, "traffic_percent": percent, "name": canary_name,
               "image": check_image(canary.get("image", image), "canary.image"), "min_replicas": replicas}
    if canary.get("weights_source") is not None:
        checked["weights_source"] = canary["weights_source"]
    return checked


def check_route(route: Any) -> Optional[dict[str, Any]]:
    if route is None:
        return None
    if not isinstance(route, Mapping):
        raise TypeError(f"{TYPE}: route must be a mapping")
    return {
        "gateway": parse_gateway_ref(route.get("gateway"), "route.gateway", name=TYPE),
        "hostname": check_hostname(route.get("hostname"), "route.hostname", name=TYPE),
        "request_timeout_seconds": require_int_range(route.get("request_timeout_seconds", 300),
                                                     "route.request_timeout_seconds", 1, 3600, name=TYPE),
    }


_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                        r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def check_labels(labels: Any, field: str) -> dict[str, str]:
    """``labels`` if it maps valid Kubernetes label keys to valid values (error names ``field``)."""
    if not isinstance(labels, Mapping):
        raise TypeError(f"{TYPE}: {field} must be a mapping of label keys to values")
    for key, value in labels.items():
        if not isinstance(key, str) or not _LABEL_KEY.match(key) or not isinstance(value, str) \
                or not _LABEL_VALUE.match(value):
            raise ValueError(f"{TYPE}: {field} has an invalid Kubernetes label {key!r}: {value!r}")
    return dict(labels)
