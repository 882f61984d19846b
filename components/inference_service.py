"""``InferenceService``: an LLM or embedding model served by vLLM through KServe (Standard mode), with
the production checklist generated instead of hand-written.

What it creates, in the team's namespace:

- a KServe ``InferenceService`` (``serving.kserve.io/v1beta1``, ``deploymentMode: Standard``) whose
  predictor runs the vLLM OpenAI server as KServe's ``kserve-container``, with every
  :mod:`~gpufleet.components.gpu_pod` piece: GPU requests = limits in the pool's resource,
  tolerations and node selection of the pool, hostname anti-affinity when replicas > 1, a sized
  memory-backed ``/dev/shm``, the weights PVC mounted read-only, a startup probe budget of at least
  2× the expected load time plus distinct readiness and liveness probes, a restricted security
  context, the ``inference`` priority class, and graceful shutdown (a ``preStop`` sleep so endpoints
  drop the pod before vLLM stops, inside a termination grace period);
- an optional canary: a second model version in ``spec.canary`` (KServe v0.20's Standard-mode canary:
  its own Deployment ``<name>-<canary>-predictor``, traffic split by weighted Gateway API HTTPRoute
  backends, so KServe needs its Gateway API ingress). The legacy ``predictor.canaryTrafficPercent`` is
  a Knative (Serverless) feature that Standard mode silently ignores: gpufleet never sets it;
- a ``PodDisruptionBudget`` per variant (stable, canary) that never lets all replicas go;
- with autoscaling, a KEDA ``ScaledObject`` on the stable Deployment (``<name>-predictor``): GPU
  utilisation from DCGM and ``vllm:num_requests_waiting``, optionally Kafka consumer lag or a queue
  depth from Prometheus for queue-driven batch (either allows ``min_replicas: 0``), with the seeds'
  HPA behaviour; and a ``PodMonitor`` so Prometheus scrapes vLLM's metrics. The ISVC carries
  ``serving.kserve.io/autoscalerClass: external``: KServe then authors no HPA/ScaledObject and
  ignores replica drift, so exactly one autoscaler owns the Deployment (``none`` when min = max).

- with ``weights_source`` (``hf://<org>/<model>[@<revision>]``) on ``pvc://`` storage, a
  :class:`~gpufleet.components.model_loader.ModelWeightsLoader` Job per variant that downloads the
  weights into the claim; the InferenceService depends on it, so it is created once the weights are
  there (an empty claim would crash-loop the predictors).

The PodMonitor carries ``monitor_labels``: a Prometheus Operator only selects monitors matching its
``podMonitorSelector`` (kube-prometheus-stack: ``release: <release name>``); without them vLLM's
metrics are never scraped and KEDA sees no waiting requests.

The canary is fixed-size (KServe refuses autoscaling fields on a canary predictor): it runs its
``min_replicas``. The pods run as UID 1000 with a writable ``$HOME`` emptyDir (the image's home
belongs to root; vLLM, PyTorch and Hugging Face keep their caches there).

A single-replica service gets ``minAvailable: 1``, which blocks voluntary eviction of its only pod
(node consolidation and drains wait until a second replica exists, or a NodePool's
``terminationGracePeriod`` runs out): that is the price of never taking the model offline; run two
replicas where nodes must stay drainable.

``karpenter.sh/do-not-disrupt`` is opt-in and applies for the pod's whole life: Kubernetes offers
no declarative way to annotate a pod only while it loads (that needs a controller removing the
annotation on readiness), and a permanent one would block consolidation of every serving node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Optional, Sequence, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from gpufleet.components import gpu_pod
from gpufleet.components._validate import check_arg_keys, require, require_int_range, require_one_of
from gpufleet.components.autoscaling import (
    SCALED_OBJECT_API_VERSION,
    KafkaTrigger,
    kafka_trigger,
    prometheus_trigger,
    scaled_object_spec,
)
from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.components.model_loader import ModelWeightsLoader, check_path, job_name_for, loader_job_spec, parse_source

TYPE = "gpufleet:kserve:InferenceService"

API_VERSION = "serving.kserve.io/v1beta1"
DEPLOYMENT_MODE = "Standard"
DEFAULT_IMAGE = "vllm/vllm-openai:v0.28.0"
"""vLLM's OpenAI-compatible server image (pin a digest in production through ``image``)."""
CONTAINER_NAME = "kserve-container"
"""KServe's name for the model server container of a custom predictor."""
PORT = 8080
MODEL_DIR = "/mnt/models"
HOME = "/home/vllm"
"""Writable home of the non-root server (an emptyDir): the image's own home belongs to root, and vLLM,
PyTorch, Triton and Hugging Face write their caches under ``$HOME``."""
HF_HOME = f"{HOME}/.cache/huggingface"

SERVICE_LABEL = "gpufleet.io/inference-service"
"""Pod label naming the InferenceService (PDB, anti-affinity and PodMonitor select on it)."""
VARIANT_LABEL = "gpufleet.io/variant"
"""Pod label telling the stable predictor (``stable``) from a canary (its name)."""
STABLE = "stable"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"

DCGM_NAMESPACE_LABEL = "namespace"
DCGM_POD_LABEL = "pod"
"""dcgm-exporter's labels naming the pod using each GPU, as Prometheus stores them: gpufleet's DCGM
ServiceMonitor (:mod:`~gpufleet.components.gpu_monitoring`) honours the exporter's labels; with the
charts' own ServiceMonitors (``honorLabels: false``) they would be ``exported_namespace``/``exported_pod``."""

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
    """Share of requests sent to the canary, 1–99. Required."""
    name: NotRequired[str]
    """Canary name (Deployment ``<service>-<name>-predictor``). Default ``canary``."""
    image: NotRequired[str]
    """vLLM image of the canary. Default: the stable predictor's."""
    min_replicas: NotRequired[int]
    """Replicas of the canary (fixed). Default 1."""
    weights_source: NotRequired[str]
    """Download the canary's weights into its ``pvc://`` storage first (like the service's
    ``weights_source``). Default none."""


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
    """vLLM image. Default :data:`DEFAULT_IMAGE`."""
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
    """Hostname anti-affinity between replicas (see :func:`gpu_pod.hostname_anti_affinity`).
    Default ``preferred``."""
    drain_seconds: NotRequired[int]
    """``preStop`` sleep before vLLM gets SIGTERM, so endpoints stop routing to it. Default 15."""
    termination_grace_seconds: NotRequired[int]
    """Termination grace period (drain + finishing in-flight requests). Default 120."""
    do_not_disrupt: NotRequired[bool]
    """Annotate pods ``karpenter.sh/do-not-disrupt`` (for their whole life). Default false."""
    canary: NotRequired[CanaryArgs]
    """A second model version with a traffic share. Default none."""
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


def _check_name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(f"{TYPE}: {field} must be a lowercase DNS label of at most 45 characters starting "
                         f"with a letter, got {value!r}")
    return value


def _check_image(image: Any, field: str) -> str:
    if not isinstance(image, str) or not re.fullmatch(r"[a-z0-9][\w./-]*(:[\w.-]+)?(@sha256:[0-9a-f]{64})?", image):
        raise ValueError(f"{TYPE}: {field} must be an image reference like 'vllm/vllm-openai:v0.28.0', got {image!r}")
    return image


def _check_storage(uri: Any, field: str) -> str:
    if not isinstance(uri, str) or not uri.startswith(_SCHEMES):
        raise ValueError(f"{TYPE}: {field} must start with one of {', '.join(_SCHEMES)}, got {uri!r}")
    if uri.startswith("pvc://"):
        claim, _, path = uri[len("pvc://"):].partition("/")
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", claim):
            raise ValueError(f"{TYPE}: {field} must be pvc://<claim>/<path>, got {uri!r}")
    elif uri.endswith("://") or uri.rstrip("/").endswith(":/"):
        raise ValueError(f"{TYPE}: {field} names no model: {uri!r}")
    return uri


def weights(uri: str) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """How the predictor gets ``uri``: ``(vLLM --model value, volumes, volumeMounts, storageUris)``."""
    if uri.startswith("pvc://"):
        claim, _, path = uri[len("pvc://"):].partition("/")
        volume = {"name": "model-weights", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        mount = {"name": "model-weights", "mountPath": MODEL_DIR, "readOnly": True}
        model = f"{MODEL_DIR}/{path.strip('/')}" if path.strip("/") else MODEL_DIR
        return model, [volume], [mount], []
    if uri.startswith("hf://"):
        return uri[len("hf://"):].strip("/"), [], [], []
    return MODEL_DIR, [], [], [{"uri": uri, "mountPath": MODEL_DIR}]


def _default_memory_utilization(placement: GpuPlacement) -> float:
    if placement.sharing == "time-slicing" and placement.time_slicing_replicas > 1:
        return int(90 / placement.time_slicing_replicas) / 100
    return 0.9


def _check_memory_utilization(value: Any, placement: GpuPlacement) -> float:
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


def _pdb_spec(replicas: int, selector: Mapping[str, str]) -> dict[str, Any]:
    """Never all replicas at once: ``maxUnavailable: 1`` with ≥ 2 replicas, ``minAvailable: 1`` with
    one (which blocks voluntary eviction of the last pod). Unready pods may always be evicted, so a
    crash-looping pod never blocks a node drain."""
    budget = {"maxUnavailable": 1} if replicas >= 2 else {"minAvailable": 1}
    return {**budget, "selector": {"matchLabels": dict(selector)}, "unhealthyPodEvictionPolicy": "AlwaysAllow"}


@dataclass(frozen=True)
class ServicePlan:
    """Everything an :class:`InferenceService` creates, as plain Kubernetes data."""

    service: str
    namespace: str
    annotations: dict[str, str]
    spec: dict[str, Any]
    """The InferenceService ``spec``."""
    disruption_budgets: dict[str, dict[str, Any]]
    """Variant (``stable`` or the canary's name) → PodDisruptionBudget ``spec``."""
    scaled_object: Optional[dict[str, Any]]
    """The KEDA ScaledObject ``spec``, when the service autoscales."""
    pod_monitor: Optional[dict[str, Any]]
    """The PodMonitor ``spec`` scraping vLLM's metrics, when the service autoscales."""
    monitor_labels: dict[str, str]
    """Extra labels of the PodMonitor."""
    loaders: dict[str, dict[str, Any]]
    """Variant → :class:`~gpufleet.components.model_loader.ModelWeightsLoaderArgs` of its weights
    download (variants with a ``weights_source`` only)."""


def plan_inference_service(name: str, args: InferenceServiceArgs) -> ServicePlan:
    """Check ``args`` and build every object's spec; raises ``ValueError``/``TypeError`` naming the
    argument. Used by :class:`InferenceService` and by stack-config checks before anything runs."""
    namespace = _check_name(require(args, "namespace", str, name=TYPE), "namespace")
    placement = require(args, "placement", GpuPlacement, name=TYPE)
    service = _check_name(args.get("service_name", name), "service_name")
    model_name = require(args, "model_name", str, name=TYPE)
    storage_uri = _check_storage(require(args, "storage_uri", str, name=TYPE), "storage_uri")
    image = _check_image(args.get("image", DEFAULT_IMAGE), "image")
    gpus = args.get("gpus", 1)
    cpu, memory, shm_size = args.get("cpu", "8"), args.get("memory", "32Gi"), args.get("shm_size", "8Gi")
    resources = gpu_pod.gpu_resources(placement, gpus, cpu, memory, name=TYPE)
    if placement.sharing != "none" and gpus != 1:
        raise ValueError(f"{TYPE}: gpus must be 1 on {placement.sharing} pool {placement.pool!r}: "
                         f"tensor parallelism cannot span shared GPUs or MIG slices, got {gpus}")
    shm_volume, shm_mount = gpu_pod.shm_volume(shm_size, name=TYPE)
    gpu_pod.check_shm_fits(shm_size, memory, name=TYPE)
    min_replicas = require_int_range(args.get("min_replicas", 1), "min_replicas", 0, 100, name=TYPE)
    max_replicas = require_int_range(args.get("max_replicas", max(min_replicas, 1)), "max_replicas",
                                     max(min_replicas, 1), 100, name=TYPE)
    load_seconds = args.get("load_seconds", 300)
    probes = gpu_pod.probes(load_seconds, PORT, ready_path="/health", name=TYPE)
    anti = require_one_of(args.get("anti_affinity", "preferred"), "anti_affinity", ("preferred", "required"),
                          name=TYPE)
    drain = require_int_range(args.get("drain_seconds", 15), "drain_seconds", 1, 300, name=TYPE)
    grace = require_int_range(args.get("termination_grace_seconds", 120), "termination_grace_seconds",
                              drain + 1, 3600, name=TYPE)
    do_not_disrupt = args.get("do_not_disrupt", False)
    if not isinstance(do_not_disrupt, bool):
        raise TypeError(f"{TYPE}: do_not_disrupt must be bool")
    utilization = _check_memory_utilization(
        args.get("gpu_memory_utilization", _default_memory_utilization(placement)), placement)
    max_model_len = args.get("max_model_len")
    if max_model_len is not None:
        require_int_range(max_model_len, "max_model_len", 128, 10_000_000, name=TYPE)
    extra_args = list(args.get("extra_args", []))
    if not all(isinstance(a, str) for a in extra_args):
        raise TypeError(f"{TYPE}: extra_args must be strings")
    token = args.get("hf_token_secret")
    if token is not None and (not isinstance(token, Mapping) or not isinstance(token.get("name"), str)
                              or not token["name"]):
        raise ValueError(f"{TYPE}: hf_token_secret.name is required (a Secret reference, never a token)")
    canary = _check_canary(args.get("canary"), image)
    monitor_labels = check_labels(args.get("monitor_labels", {}), "monitor_labels")
    loaders: dict[str, dict[str, Any]] = {}
    stable_loader = _loader_args(namespace, job_name_for(service), storage_uri, args.get("weights_source"),
                                 token, "")
    if stable_loader is not None:
        loaders[STABLE] = stable_loader
    if canary is not None:
        canary_loader = _loader_args(namespace, job_name_for(service, canary["name"]), canary["storage_uri"],
                                     canary.get("weights_source"), token, "canary.")
        if canary_loader is not None:
            loaders[canary["name"]] = canary_loader
    autoscaling = args.get("autoscaling")
    scales = max_replicas > min_replicas
    if scales and not autoscaling:
        raise ValueError(f"{TYPE}: autoscaling is required when max_replicas ({max_replicas}) > "
                         f"min_replicas ({min_replicas})")
    if min_replicas == 0 and not (autoscaling and (autoscaling.get("kafka") or autoscaling.get("queue"))):
        raise ValueError(f"{TYPE}: min_replicas 0 needs autoscaling.kafka or autoscaling.queue: nothing "
                         f"else can wake a service with no pods")
    triggers = _triggers(autoscaling, namespace, service, placement, gpus) if scales else []

    vllm_args = [
        "--served-model-name", model_name,
        "--port", str(PORT),
        "--gpu-memory-utilization", f"{utilization:g}",
    ]
    if placement.sharing == "none":
        vllm_args += ["--tensor-parallel-size", str(gpus)]
    if max_model_len is not None:
        vllm_args += ["--max-model-len", str(max_model_len)]

    def predictor(variant: str, uri: str, variant_image: str, replicas: int, scaled: bool) -> dict[str, Any]:
        model, volumes, mounts, storage_uris = weights(uri)
        labels = {SERVICE_LABEL: service, VARIANT_LABEL: variant}
        env: list[dict[str, Any]] = [{"name": "HOME", "value": HOME}, {"name": "HF_HOME", "value": HF_HOME}]
        if token is not None:
            env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
                "name": token["name"], "key": token.get("key", "token")}}})
        container = {
            "name": CONTAINER_NAME,
            "image": variant_image,
            # The image's entrypoint is ``vllm serve``: the model comes first, positionally.
            "args": [model, *vllm_args, *extra_args],
            "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
            "resources": resources,
            "securityContext": gpu_pod.container_security_context(),
            "volumeMounts": [shm_mount, {"name": "home", "mountPath": HOME}, *mounts],
            "env": env,
            "lifecycle": {"preStop": {"sleep": {"seconds": drain}}},
            **probes,
        }
        spec: dict[str, Any] = {
            "minReplicas": replicas,
            "labels": labels,
            **gpu_pod.gpu_scheduling(placement),
            "securityContext": gpu_pod.pod_security_context(),
            "priorityClassName": gpu_pod.priority_class_name("inference"),
            "terminationGracePeriodSeconds": grace,
            "automountServiceAccountToken": False,
            "deploymentStrategy": {"type": "RollingUpdate",
                                   "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "containers": [container],
            "volumes": [shm_volume, {"name": "home", "emptyDir": {}}, *volumes],
        }
        if scaled:
            spec["maxReplicas"] = max_replicas
        # A canary gets it too: KServe fills unset canary fields from the stable predictor.
        if max(replicas, max_replicas) > 1:
            spec["affinity"] = gpu_pod.hostname_anti_affinity(labels, required=anti == "required")
        if storage_uris:
            spec["storageUris"] = storage_uris
        if do_not_disrupt:
            spec["annotations"] = {DO_NOT_DISRUPT: "true"}
        return spec

    isvc_spec: dict[str, Any] = {"predictor": predictor(STABLE, storage_uri, image, min_replicas, True)}
    if canary is not None:
        canary_predictor = predictor(canary["name"], canary["storage_uri"], canary["image"],
                                     canary["min_replicas"], False)
        isvc_spec["canary"] = [{"trafficPercent": canary["traffic_percent"],
                                "predictor": {"name": canary["name"], **canary_predictor}}]

    variants = [(STABLE, min_replicas)] + ([(canary["name"], canary["min_replicas"])] if canary else [])
    return ServicePlan(
        service=service,
        namespace=namespace,
        annotations={
            "serving.kserve.io/deploymentMode": DEPLOYMENT_MODE,
            "serving.kserve.io/autoscalerClass": "external" if scales else "none",
        },
        spec=isvc_spec,
        # nothing to protect while scaled to zero
        disruption_budgets={variant: _pdb_spec(replicas, {SERVICE_LABEL: service, VARIANT_LABEL: variant})
                            for variant, replicas in variants if replicas > 0},
        scaled_object=scaled_object_spec(f"{service}-predictor", min_replicas=min_replicas,
                                         max_replicas=max_replicas, triggers=triggers) if scales else None,
        pod_monitor={
            "selector": {"matchLabels": {SERVICE_LABEL: service}},
            "podMetricsEndpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
        } if scales else None,
        monitor_labels=monitor_labels,
        loaders=loaders,
    )


class InferenceService(pulumi.ComponentResource):
    """A vLLM InferenceService on a GPU pool with PDBs, optional canary and KEDA autoscaling (see the
    module docstring). ``predictor_url`` is the stable predictor's in-cluster URL (the canary split
    happens at KServe's HTTPRoute, not there)."""

    service_name: str
    predictor_url: str

    def __init__(self, name: str, args: InferenceServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, InferenceServiceArgs, name=TYPE)
        plan = plan_inference_service(name, args)
        super().__init__(TYPE, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        service, namespace = plan.service, plan.namespace
        self.service_name = service
        meta = {"namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "gpufleet"}}

        loaders = [
            ModelWeightsLoader(f"{name}-weights" if variant == STABLE else f"{name}-weights-{variant}",
                               loader_args, opts=child)
            for variant, loader_args in plan.loaders.items()
        ]
        isvc = k8s.apiextensions.CustomResource(
            f"{name}-isvc",
            api_version=API_VERSION,
            kind="InferenceService",
            metadata={**meta, "name": service, "annotations": plan.annotations},
            spec=plan.spec,
            # the predictors mount the weights: download them first
            opts=pulumi.ResourceOptions(parent=self, depends_on=loaders or None),
        )
        for variant, budget in plan.disruption_budgets.items():
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-pdb-{variant}",
                metadata={**meta, "name": f"{service}-{variant}"},
                spec=budget,
                opts=child,
            )
        if plan.scaled_object is not None:
            k8s.apiextensions.CustomResource(
                f"{name}-scaler",
                api_version=SCALED_OBJECT_API_VERSION,
                kind="ScaledObject",
                metadata={**meta, "name": service},
                spec=plan.scaled_object,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[isvc]),
            )
        if plan.pod_monitor is not None:
            k8s.apiextensions.CustomResource(
                f"{name}-metrics",
                api_version="monitoring.coreos.com/v1",
                kind="PodMonitor",
                metadata={**meta, "name": service, "labels": {**plan.monitor_labels, **meta["labels"]}},
                spec=plan.pod_monitor,
                opts=child,
            )
        self.predictor_url = f"http://{service}-predictor.{namespace}.svc.cluster.local"
        self.register_outputs({"predictorUrl": self.predictor_url})


def _check_canary(canary: Any, image: str) -> Optional[dict[str, Any]]:
    if canary is None:
        return None
    if not isinstance(canary, Mapping):
        raise TypeError(f"{TYPE}: canary must be a mapping")
    uri = _check_storage(canary.get("storage_uri"), "canary.storage_uri")
    percent = canary.get("traffic_percent")
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 99:
        raise ValueError(f"{TYPE}: canary.traffic_percent must be an integer from 1 to 99, got {percent!r}")
    canary_name = canary.get("name", "canary")
    if not isinstance(canary_name, str) or not re.fullmatch(r"[a-z]([-a-z0-9]{0,14}[a-z0-9])?", canary_name) \
            or canary_name == STABLE:
        raise ValueError(f"{TYPE}: canary.name must be a short DNS label other than 'stable', got {canary_name!r}")
    replicas = require_int_range(canary.get("min_replicas", 1), "canary.min_replicas", 1, 100, name=TYPE)
    checked = {"storage_uri": uri, "traffic_percent": percent, "name": canary_name,
               "image": _check_image(canary.get("image", image), "canary.image"), "min_replicas": replicas}
    if canary.get("weights_source") is not None:
        checked["weights_source"] = canary["weights_source"]
    return checked


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


def _loader_args(namespace: str, job_name: str, storage_uri: str, source: Any, token: Any,
                 field: str) -> Optional[dict[str, Any]]:
    """The weights loader of one variant, or None without ``weights_source``."""
    if source is None:
        return None
    if not storage_uri.startswith("pvc://"):
        raise ValueError(f"{TYPE}: {field}weights_source fills a model-cache claim: it needs pvc:// "
                         f"{field}storage_uri, got {storage_uri!r}")
    parse_source(source, f"{field}weights_source", name=TYPE)
    claim, _, path = storage_uri[len("pvc://"):].partition("/")
    check_path(path, f"{field}storage_uri", name=TYPE)
    loader = {"namespace": namespace, "claim_name": claim, "path": path, "source": source, "job_name": job_name}
    if token is not None:
        loader["hf_token_secret"] = {"name": token["name"], "key": token.get("key", "token")}
    loader_job_spec(loader, name=TYPE)
    return loader

def _triggers(autoscaling: Mapping[str, Any], namespace: str, service: str, placement: GpuPlacement,
              gpus: int) -> list[dict[str, Any]]:
    url = autoscaling.get("prometheus_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"{TYPE}: autoscaling.prometheus_url must be an http(s) URL, got {url!r}")
    utilization = require_int_range(autoscaling.get("gpu_utilization", 70), "autoscaling.gpu_utilization",
                                    1, 100, name=TYPE)
    waiting = require_int_range(autoscaling.get("waiting_requests", 5), "autoscaling.waiting_requests",
                                1, 10_000, name=TYPE)
    pods = f'{service}-predictor-[a-z0-9]+-[a-z0-9]+'
    dcgm = f'{DCGM_NAMESPACE_LABEL}="{namespace}",{DCGM_POD_LABEL}=~"{pods}"'
    # MIG slices report no DCGM_FI_DEV_GPU_UTIL; their graphics-engine activity (0..1) stands in.
    busy = (f"sum(DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{dcgm}}}) * 100" if placement.sharing == "mig"
            else f"sum(DCGM_FI_DEV_GPU_UTIL{{{dcgm}}})")
    triggers = [
        prometheus_trigger("gpu-utilization", url, f"{busy} / {gpus}", utilization),
        prometheus_trigger("vllm-requests-waiting", url,
                           f'sum(vllm:num_requests_waiting{{namespace="{namespace}",pod=~"{pods}"}})', waiting),
    ]
    if autoscaling.get("kafka"):
        triggers.append(kafka_trigger(autoscaling["kafka"], name=TYPE, field="autoscaling.kafka"))
    queue = autoscaling.get("queue")
    if queue:
        if not isinstance(queue.get("query"), str) or not queue["query"].strip():
            raise ValueError(f"{TYPE}: autoscaling.queue.query is required")
        target = require_int_range(queue.get("target"), "autoscaling.queue.target", 1, 1_000_000, name=TYPE)
        # Activation 0: any waiting item wakes a service scaled to zero.
        triggers.append(prometheus_trigger("queue-depth", url, queue["query"], target, activation_threshold=0))
    return triggers
