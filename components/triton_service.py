"""``TritonService``: NVIDIA Triton Inference Server on a GPU pool through KServe (Standard mode),
serving a model repository on the team's model-cache claim, with the production checklist of
:class:`~gpufleet.components.inference_service.InferenceService`.

What it creates, in the team's namespace:

- a ``ModelRepository`` Job (``<service>-model-repository``) that writes each model into
  ``<claim>/<path>/<model>/``: its files downloaded from a Hugging Face repository (optional) into
  the version directory, and its ``config.pbtxt`` rendered from the arguments (dynamic batching,
  instance groups; :mod:`~gpufleet.components.triton_models`). It runs on the system nodes with the
  weights loader's hardening; the InferenceService waits for it, and the predictor pods carry a
  digest of what it wrote, so a changed model configuration rolls them (Triton reads its repository
  at start: ``--model-control-mode=none``);
- a KServe ``InferenceService`` whose predictor runs ``tritonserver`` as KServe's
  ``kserve-container`` (a custom container with a pinned ``nvcr.io/nvidia/tritonserver`` image, not
  the chart's ``kserve-tritonserver`` ClusterServingRuntime: that runtime pins
  ``tritonserver:23.05-py3`` in the v0.20.0 ``kserve-runtime-configs`` chart and copies ``pvc://``
  storage through the storage initializer; here the claim is mounted read-only, no copy). HTTP on
  8080 (KServe's predictor port, as the runtime's ``--http-port``), gRPC on 9000, metrics on 8002;
  KServe's ``<service>-predictor`` Service maps the first container port to 80 and the others to
  their own numbers, a port named ``grpc`` with ``appProtocol: kubernetes.io/h2c`` (v0.20.0
  ``reconcilers/service/service_reconciler.go``, ``createDefaultSvc``);
  readiness on ``/v2/health/ready`` (every model loaded, ``--strict-readiness``), liveness on
  ``/v2/health/live``, a startup budget of twice ``load_seconds``; the GPU hygiene of
  :mod:`~gpufleet.components.gpu_pod` (requests = limits, pool tolerations and node selection, sized
  ``/dev/shm``, non-root UID 1000 with a writable ``$HOME``, the ``inference`` priority class,
  ``preStop`` drain inside the grace period; Triton's ``--exit-timeout-secs`` lets in-flight requests
  finish within what is left of it);
- a ``PodDisruptionBudget`` (``maxUnavailable: 1`` by default: nodes stay drainable);
- a ``PodMonitor`` on the metrics port, so Prometheus scrapes ``nv_inference_*`` and GPU metrics;
- with ``max_replicas > min_replicas``, a KEDA ``ScaledObject`` on ``<service>-predictor`` with
  three triggers: DCGM GPU utilisation, Triton's pending requests
  (``nv_inference_pending_request_count``, per replica) and the average time a request waits in
  Triton's queue (``nv_inference_queue_duration_us`` over ``nv_inference_request_success``, a
  ``Value`` target for the whole service); the InferenceService says ``autoscalerClass: external``;
- with ``route``, an ``HTTPRoute`` ``<service>-route`` for ``route.hostname`` on the Gateway; the
  InferenceService is labelled cluster-local either way (no route of KServe's own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Optional, Sequence, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from gpufleet.components import gpu_claims, gpu_pod
from gpufleet.components._k8s import require_dns_label
from gpufleet.components._validate import check_arg_keys, require, require_int_range
from gpufleet.components.autoscaling import SCALED_OBJECT_API_VERSION, prometheus_trigger, scaled_object_spec
from gpufleet.components.gateway_api import API_VERSION as GATEWAY_API_VERSION
from gpufleet.components.gateway_api import CLUSTER_LOCAL, VISIBILITY_LABEL, predictor_service, weighted_route_spec
from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.components.inference_service import (
    API_VERSION,
    CONTAINER_NAME,
    DCGM_NAMESPACE_LABEL,
    DCGM_POD_LABEL,
    DEPLOYMENT_MODE,
    MODEL_DIR,
    SERVICE_LABEL,
)
from gpufleet.components.inference_service_args import (
    DisruptionBudgetArgs,
    HfTokenSecret,
    RouteArgs,
    check_image,
    check_labels,
    check_name,
    check_route,
)
from gpufleet.components.model_loader import DEADLINE_MARGIN_SECONDS, REPLACE_UNREADY, check_path
from gpufleet.components.model_loader import DEFAULT_IMAGE as LOADER_IMAGE
from gpufleet.components.triton_models import (
    COMPONENT_LABEL,
    TritonModelArgs,
    check_model,
    repository_digest,
    repository_job_spec,
)

TYPE = "gpufleet:kserve:TritonService"
DEFAULT_IMAGE = "nvcr.io/nvidia/tritonserver:25.01-py3"
"""Triton Inference Server 2.54.0 (NGC release 25.01; pin a digest in production through ``image``)."""
HTTP_PORT = 8080
GRPC_PORT = 9000
METRICS_PORT = 8002
HOME = "/home/triton"
DIGEST_ANNOTATION = "gpufleet.io/model-repository-digest"
"""Pod annotation: digest of the model repository the loader wrote (a change rolls the pods)."""
_MIN_EXIT_SECONDS = 5


class TritonAutoscalingArgs(TypedDict):
    """KEDA autoscaling of the predictor (used when ``max_replicas > min_replicas``)."""

    prometheus_url: str
    """Prometheus query endpoint. Required."""
    gpu_utilization: NotRequired[int]
    """Target average GPU utilisation per replica, percent. Default 70."""
    pending_requests: NotRequired[int]
    """Target ``nv_inference_pending_request_count`` per replica. Default 16."""
    queue_time_ms: NotRequired[int]
    """Target average time a request waits in Triton's queue, milliseconds; above every model's
    ``max_queue_delay_microseconds`` (that wait is the batcher's, on purpose). Default 50."""


class TritonServiceArgs(TypedDict):
    """Inputs of :class:`TritonService`."""

    namespace: str
    """The team namespace to serve in. Required."""
    placement: GpuPlacement
    """The GPU pool the predictor runs on. Required."""
    storage_uri: str
    """``pvc://<claim>/<path>``: the model repository directory on the model-cache claim (written by
    the repository Job, mounted read-only by the predictors). Required."""
    models: Sequence[TritonModelArgs]
    """The models of the repository (at least one). Required."""
    service_name: NotRequired[str]
    """Kubernetes name of the InferenceService (≤ 45 characters). Default: the resource name."""
    image: NotRequired[str]
    """Triton image. Default :data:`DEFAULT_IMAGE`."""
    gpus: NotRequired[int]
    """GPUs per replica (``KIND_GPU`` instances go on each). Default 1."""
    cpu: NotRequired[str]
    """CPU per replica (request = limit). Default ``"4"``."""
    memory: NotRequired[str]
    """Memory per replica (request = limit), including ``/dev/shm``. Default ``"16Gi"``."""
    shm_size: NotRequired[str]
    """Size of the memory-backed ``/dev/shm`` (Python backend stubs, pinned buffers). Default ``"2Gi"``."""
    min_replicas: NotRequired[int]
    """Fewest replicas. Default 1."""
    max_replicas: NotRequired[int]
    """Most replicas; above ``min_replicas`` it needs ``autoscaling``. Default ``min_replicas``."""
    load_seconds: NotRequired[int]
    """Expected time to load every model; the startup probe allows twice it. Default 300."""
    anti_affinity: NotRequired[Literal["preferred", "required"]]
    """Hostname anti-affinity between replicas. Default ``preferred`` on whole-GPU pools; refused on
    shared pools (see :func:`gpu_pod.replica_spread`)."""
    drain_seconds: NotRequired[int]
    """``preStop`` sleep before Triton gets SIGTERM. Default 15."""
    termination_grace_seconds: NotRequired[int]
    """Termination grace period. Default 120."""
    disruption_budget: NotRequired[DisruptionBudgetArgs]
    """The PodDisruptionBudget. Default ``{"max_unavailable": 1}``."""
    autoscaling: NotRequired[TritonAutoscalingArgs]
    """KEDA autoscaling; required when ``max_replicas > min_replicas``. Default none."""
    route: NotRequired[RouteArgs]
    """An HTTPRoute for ``route.hostname`` on a Gateway. Default none (in-cluster only)."""
    monitor_labels: NotRequired[Mapping[str, str]]
    """Labels of the PodMonitor (kube-prometheus-stack: ``{"release": "<release name>"}``). Default none."""
    hf_token_secret: NotRequired[HfTokenSecret]
    """Hugging Face token Secret for the repository Job's downloads. Default none."""
    loader_image: NotRequired[str]
    """Image of the repository Job. Default the weights loader's Python image."""


@dataclass(frozen=True)
class TritonPlan:
    """Everything a :class:`TritonService` creates, as plain Kubernetes data."""

    service: str
    namespace: str
    isvc: dict[str, Any]
    """``metadata`` (name, labels, annotations) and ``spec`` of the InferenceService."""
    disruption_budget: dict[str, Any]
    job_name: str
    job: dict[str, Any]
    """The repository Job ``spec``."""
    pod_monitor: dict[str, Any]
    monitor_labels: dict[str, str]
    scaled_object: Optional[dict[str, Any]]
    route: Optional[dict[str, Any]]
    models: list[dict[str, Any]]
    """The checked models."""
    claim_template: Optional[dict[str, Any]] = None
    """On a DRA pool: the ``spec`` of the ResourceClaimTemplate ``<service>-gpus`` the predictor pods
    claim their GPUs from; none on a device-plugin pool."""

    @property
    def predictor(self) -> dict[str, Any]:
        return self.isvc["spec"]["predictor"]


def plan_triton_service(name: str, args: TritonServiceArgs) -> TritonPlan:
    """Check ``args`` and build every object's spec; ``ValueError``/``TypeError`` naming the argument."""
    namespace = check_name(require(args, "namespace", str, name=TYPE), "namespace")
    placement = require(args, "placement", GpuPlacement, name=TYPE)
    service = check_name(args.get("service_name", name), "service_name")
    uri = require(args, "storage_uri", str, name=TYPE)
    if not uri.startswith("pvc://"):
        raise ValueError(f"{TYPE}: storage_uri must be pvc://<claim>/<path> (the model repository on the model "
                         f"cache), got {uri!r}")
    claim, _, path = uri[len("pvc://"):].partition("/")
    require_dns_label(claim, "storage_uri", name=TYPE, what="claim name")
    path = check_path(path, "storage_uri", name=TYPE)
    raw_models = args.get("models")
    if isinstance(raw_models, (str, bytes)) or not isinstance(raw_models, Sequence) or not raw_models:
        raise ValueError(f"{TYPE}: models must list at least one model")
    models = [check_model(m, f"models[{i}]", name=TYPE) for i, m in enumerate(raw_models)]
    names = [m["name"] for m in models]
    for i, model_name in enumerate(names):
        if model_name in names[:i]:
            raise ValueError(f"{TYPE}: models[{i}].name {model_name!r} is already models[{names.index(model_name)}]'s")
    image = check_image(args.get("image", DEFAULT_IMAGE), "image")
    gpus = args.get("gpus", 1)
    cpu, memory, shm_size = args.get("cpu", "4"), args.get("memory", "16Gi"), args.get("shm_size", "2Gi")
    resources = gpu_pod.gpu_resources(placement, gpus, cpu, memory, name=TYPE)
    if placement.sharing != "none" and gpus != 1:
        raise ValueError(f"{TYPE}: gpus must be 1 on {placement.sharing} pool {placement.pool!r}, got {gpus}")
    shm_volume, shm_mount = gpu_pod.shm_volume(shm_size, name=TYPE)
    gpu_pod.check_shm_fits(shm_size, memory, name=TYPE)
    min_replicas = require_int_range(args.get("min_replicas", 1), "min_replicas", 1, 100, name=TYPE)
    max_replicas = require_int_range(args.get("max_replicas", min_replicas), "max_replicas", min_replicas, 100,
                                     name=TYPE)
    probes = gpu_pod.probes(args.get("load_seconds", 300), HTTP_PORT, ready_path="/v2/health/ready",
                            live_path="/v2/health/live", name=TYPE)
    anti = args.get("anti_affinity")
    if anti is None and placement.sharing == "none":
        anti = "preferred"
    gpu_pod.replica_spread(placement, {}, anti, name=TYPE)
    drain = require_int_range(args.get("drain_seconds", 15), "drain_seconds", 1, 300, name=TYPE)
    grace = require_int_range(args.get("termination_grace_seconds", 120), "termination_grace_seconds",
                              drain + _MIN_EXIT_SECONDS + 1, 3600, name=TYPE)
    token = args.get("hf_token_secret")
    if token is not None and (not isinstance(token, Mapping) or not isinstance(token.get("name"), str)
                              or not token["name"]):
        raise ValueError(f"{TYPE}: hf_token_secret.name is required (a Secret reference, never a token)")
    route = check_route(args.get("route"))
    monitor_labels = check_labels(args.get("monitor_labels", {}), "monitor_labels")
    scales = max_replicas > min_replicas
    autoscaling = args.get("autoscaling")
    if scales and not autoscaling:
        raise ValueError(f"{TYPE}: autoscaling is required when max_replicas ({max_replicas}) > "
                         f"min_replicas ({min_replicas})")
    triggers = _triggers(autoscaling, namespace, service, placement, gpus, models) if scales else []

    job_name = f"{service}-model-repository"
    secret = {"name": token["name"], "key": token.get("key", "token")} if token is not None else None
    job = repository_job_spec(claim, path, models, name=TYPE, hf_token_secret=secret,
                              image=check_image(args.get("loader_image", LOADER_IMAGE), "loader_image"))
    labels = {SERVICE_LABEL: service}
    container = {
        "name": CONTAINER_NAME,
        "image": image,
        # the image's entrypoint (nvidia_entrypoint.sh) runs its arguments
        "args": [
            "tritonserver",
            f"--model-repository={MODEL_DIR}/{path}",
            f"--http-port={HTTP_PORT}",
            f"--grpc-port={GRPC_PORT}",
            f"--metrics-port={METRICS_PORT}",
            "--allow-metrics=true",
            "--allow-gpu-metrics=true",
            "--model-control-mode=none",
            "--strict-readiness=true",
            "--exit-on-error=true",
            # in-flight requests may finish in what the grace period leaves after the drain
            f"--exit-timeout-secs={grace - drain - _MIN_EXIT_SECONDS}",
        ],
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
                  {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "resources": resources,
        "securityContext": gpu_pod.container_security_context(),
        "volumeMounts": [shm_mount, {"name": "home", "mountPath": HOME},
                         {"name": "model-repository", "mountPath": MODEL_DIR, "readOnly": True}],
        "env": [{"name": "HOME", "value": HOME}],
        "lifecycle": {"preStop": {"sleep": {"seconds": drain}}},
        **probes,
    }
    predictor: dict[str, Any] = {
        "minReplicas": min_replicas,
        "labels": labels,
        "annotations": {DIGEST_ANNOTATION: repository_digest(models, path)},
        **gpu_pod.gpu_scheduling(placement),
        **gpu_claims.pod_claims(placement, gpu_claims.template_name(service)),
        "securityContext": gpu_pod.pod_security_context(),
        "priorityClassName": gpu_pod.priority_class_name("inference"),
        "terminationGracePeriodSeconds": grace,
        "automountServiceAccountToken": False,
        "deploymentStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "containers": [container],
        "volumes": [shm_volume, {"name": "home", "emptyDir": {}},
                    {"name": "model-repository", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}],
    }
    if scales:
        predictor["maxReplicas"] = max_replicas
    if max_replicas > 1:
        predictor.update(gpu_pod.replica_spread(placement, labels, anti, name=TYPE))
    isvc = {
        "metadata": {
            "name": service,
            # in-cluster only unless gpufleet's route serves it: KServe creates no route of its own
            "labels": {"app.kubernetes.io/managed-by": "gpufleet", VISIBILITY_LABEL: CLUSTER_LOCAL},
            "annotations": {"serving.kserve.io/deploymentMode": DEPLOYMENT_MODE,
                            "serving.kserve.io/autoscalerClass": "external" if scales else "none"},
        },
        "spec": {"predictor": predictor},
    }
    route_spec = None
    if route is not None:
        route_spec = weighted_route_spec(route["gateway"], [route["hostname"]], [(predictor_service(service), 100)],
                                         timeout_seconds=route["request_timeout_seconds"])
    return TritonPlan(
        service=service,
        namespace=namespace,
        isvc=isvc,
        disruption_budget=gpu_pod.disruption_budget(min_replicas, labels, args.get("disruption_budget"), name=TYPE),
        job_name=job_name,
        job=job,
        pod_monitor={"selector": {"matchLabels": dict(labels)},
                     "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": "15s"}]},
        monitor_labels=monitor_labels,
        scaled_object=scaled_object_spec(f"{service}-predictor", min_replicas=min_replicas, max_replicas=max_replicas,
                                         triggers=triggers) if scales else None,
        route=route_spec,
        models=models,
        claim_template=gpu_claims.claim_template_spec(placement, gpus) if placement.dra else None,
    )


def _triggers(autoscaling: Any, namespace: str, service: str, placement: GpuPlacement, gpus: int,
              models: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if not isinstance(autoscaling, Mapping):
        raise TypeError(f"{TYPE}: autoscaling must be a mapping")
    unknown = set(autoscaling) - set(TritonAutoscalingArgs.__annotations__)
    if unknown:
        raise ValueError(f"{TYPE}: autoscaling has unknown keys {sorted(unknown)}")
    url = autoscaling.get("prometheus_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"{TYPE}: autoscaling.prometheus_url must be an http(s) URL, got {url!r}")
    utilization = require_int_range(autoscaling.get("gpu_utilization", 70), "autoscaling.gpu_utilization",
                                    1, 100, name=TYPE)
    pending = require_int_range(autoscaling.get("pending_requests", 16), "autoscaling.pending_requests",
                                1, 100_000, name=TYPE)
    queue_ms = require_int_range(autoscaling.get("queue_time_ms", 50), "autoscaling.queue_time_ms",
                                 1, 600_000, name=TYPE)
    batched = [m for m in models if m["dynamic_batching"] is not None]
    longest = max((m["dynamic_batching"]["max_queue_delay_microseconds"] for m in batched), default=0)
    if queue_ms * 1000 <= longest:
        worst = next(m["name"] for m in batched if m["dynamic_batching"]["max_queue_delay_microseconds"] == longest)
        raise ValueError(f"{TYPE}: autoscaling.queue_time_ms ({queue_ms}) must exceed the longest "
                         f"dynamic_batching.max_queue_delay_microseconds ({longest} µs, model {worst!r}): the "
                         f"batcher holds requests that long on purpose, so the service would scale up when idle")
    pods = f"{service}-predictor-[a-z0-9]+-[a-z0-9]+"
    dcgm = f'{DCGM_NAMESPACE_LABEL}="{namespace}",{DCGM_POD_LABEL}=~"{pods}"'
    busy = (f"sum(DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{dcgm}}}) * 100" if placement.sharing == "mig"
            else f"sum(DCGM_FI_DEV_GPU_UTIL{{{dcgm}}})")
    triton = f'namespace="{namespace}",pod=~"{pods}"'
    # Average queue time per successful request over the service, in ms; no traffic gives 0, not NaN.
    queue = (f"sum(rate(nv_inference_queue_duration_us{{{triton}}}[2m])) / 1000 / "
             f"(sum(rate(nv_inference_request_success{{{triton}}}[2m])) > 0) or vector(0)")
    return [
        prometheus_trigger("gpu-utilization", url, f"{busy} / {gpus}", utilization),
        prometheus_trigger("triton-pending-requests", url,
                           f"sum(nv_inference_pending_request_count{{{triton}}})", pending),
        # a per-request average, not a total: compared with the target as a whole (Value)
        {**prometheus_trigger("triton-queue-time", url, queue, queue_ms), "metricType": "Value"},
    ]


class TritonService(pulumi.ComponentResource):
    """Triton on a GPU pool: the repository Job, the InferenceService, its PDB and PodMonitor, and
    optionally KEDA autoscaling and an HTTPRoute (see the module docstring). ``predictor_url`` is the
    in-cluster URL (``/v2/models/<model>/infer``); ``url`` the routed one, or the in-cluster one."""

    service_name: str
    predictor_url: str
    url: str

    def __init__(self, name: str, args: TritonServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, TritonServiceArgs, name=TYPE)
        plan = plan_triton_service(name, args)
        super().__init__(TYPE, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        service, namespace = plan.service, plan.namespace
        managed = {"app.kubernetes.io/managed-by": "gpufleet"}
        meta = {"namespace": namespace, "labels": managed}
        timeout = f"{(plan.job['activeDeadlineSeconds'] + DEADLINE_MARGIN_SECONDS) // 60}m"
        job = k8s.batch.v1.Job(
            f"{name}-models",
            metadata={"name": plan.job_name, "namespace": namespace, "labels": {**managed, **COMPONENT_LABEL},
                      "annotations": dict(REPLACE_UNREADY)},
            spec=plan.job,
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True,
                                        custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout)),
        )
        before: list[pulumi.Resource] = [job]
        if plan.claim_template is not None:
            before.append(k8s.resource.v1.ResourceClaimTemplate(
                f"{name}-gpu-claim",
                metadata={**meta, "name": gpu_claims.template_name(service)},
                spec=plan.claim_template,
                opts=child,
            ))
        isvc = k8s.apiextensions.CustomResource(
            f"{name}-isvc",
            api_version=API_VERSION,
            kind="InferenceService",
            metadata={"namespace": namespace, **plan.isvc["metadata"]},
            spec=plan.isvc["spec"],
            # Triton loads the repository at start (write it first); its pods claim their GPUs
            opts=pulumi.ResourceOptions(parent=self, depends_on=before),
        )
        k8s.policy.v1.PodDisruptionBudget(f"{name}-pdb", metadata={**meta, "name": service},
                                          spec=plan.disruption_budget, opts=child)
        k8s.apiextensions.CustomResource(
            f"{name}-metrics",
            api_version="monitoring.coreos.com/v1",
            kind="PodMonitor",
            metadata={**meta, "name": service, "labels": {**plan.monitor_labels, **managed}},
            spec=plan.pod_monitor,
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
        if plan.route is not None:
            k8s.apiextensions.CustomResource(
                f"{name}-route",
                api_version=GATEWAY_API_VERSION,
                kind="HTTPRoute",
                metadata={**meta, "name": f"{service}-route"},
                spec=plan.route,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[isvc]),
            )
        self.service_name = service
        self.predictor_url = f"http://{predictor_service(service)}.{namespace}.svc.cluster.local"
        self.url = f"http://{plan.route['hostnames'][0]}" if plan.route is not None else self.predictor_url
        self.register_outputs({"predictorUrl": self.predictor_url, "url": self.url})
