"""``InferenceService``: an LLM or embedding model served by vLLM through KServe (Standard mode), with
the production checklist generated instead of hand-written.

What it creates, in the team's namespace:

- a KServe ``InferenceService`` (``serving.kserve.io/v1beta1``, ``deploymentMode: Standard``) per
  variant whose predictor runs the vLLM OpenAI server as KServe's ``kserve-container``, with every
  :mod:`~gpufleet.components.gpu_pod` piece: GPU requests = limits in the pool's resource,
  tolerations and node selection of the pool, replica spreading where it costs no extra node
  (hostname anti-affinity on whole-GPU pools, none on MIG or time-sliced pools: see
  :func:`gpu_pod.replica_spread`), a sized memory-backed ``/dev/shm``, the weights PVC mounted
  read-only, a startup probe budget of at least 2× the expected load time plus distinct readiness
  and liveness probes, a restricted security context, the ``inference`` priority class, and
  graceful shutdown (a ``preStop`` sleep so endpoints drop the pod before vLLM stops, inside a
  termination grace period). The stable variant is the InferenceService ``<service>`` (Deployment
  and Service ``<service>-predictor``);
- an optional canary: a second model version as its own InferenceService ``<service>-<canary>``
  (Deployment and Service ``<service>-<canary>-predictor``) under the same served model name. No
  ``spec.canary``: KServe v0.20.0's webhook refuses it on a custom-container predictor without a
  ``STORAGE_URI`` env (``inference_service_validation.go``), and its Standard-mode HTTPRoute
  sends every request to the stable predictor anyway (one backendRef). The legacy
  ``canaryTrafficPercent`` is Knative-only: gpufleet never sets it;
- with ``route`` (Gateway API), an ``HTTPRoute`` ``<service>-route`` on the given Gateway whose
  weighted backendRefs split the requests for ``route.hostname`` between the variants' predictor
  Services (``100 - traffic_percent`` : ``traffic_percent``). The InferenceServices are then
  labelled ``networking.kserve.io/visibility: cluster-local`` so KServe creates no competing route
  of its own. A canary needs ``route``;
- a ``PodDisruptionBudget`` per variant, ``maxUnavailable: 1`` by default, so nodes stay drainable
  even with a single replica (``disruption_budget`` that would allow no disruption is refused: it
  would block every drain, and Karpenter's consolidation, expiry and drift of the node). A
  single-replica variant is therefore offline while its pod restarts on another node: run two
  replicas where that matters;
- with autoscaling, a KEDA ``ScaledObject`` on the stable Deployment (``<name>-predictor``): GPU
  utilisation from DCGM and ``vllm:num_requests_waiting``, optionally Kafka consumer lag or a queue
  depth from Prometheus for queue-driven batch (either allows ``min_replicas: 0``), with the seeds'
  HPA behaviour; and a ``PodMonitor`` so Prometheus scrapes vLLM's metrics. The ISVC carries
  ``serving.kserve.io/autoscalerClass: external``: KServe then authors no HPA/ScaledObject and
  ignores replica drift, so exactly one autoscaler owns the Deployment (``none`` when min = max).

- with ``weights_source`` (``hf://<org>/<model>[@<revision>]``) on ``pvc://`` storage, a
  :class:`~gpufleet.components.model_loader.ModelWeightsLoader` Job per variant that downloads the
  weights into the claim; the variant's InferenceService depends on it, so it is created once the
  weights are there (an empty claim would crash-loop the predictors).

The PodMonitor carries ``monitor_labels``: a Prometheus Operator only selects monitors matching its
``podMonitorSelector`` (kube-prometheus-stack: ``release: <release name>``); without them vLLM's
metrics are never scraped and KEDA sees no waiting requests.

The canary is fixed-size: it runs its ``min_replicas`` (raise them before sending it more traffic).
Promotion is two configuration changes: ``traffic_percent: 100`` (the stable predictor keeps
running with weight 0), then the swap: the stable variant takes the canary's storage and image and
the canary goes (the route returns to the stable Service once it has rolled out). The pods run as UID
1000 with a writable ``$HOME`` emptyDir (the image's home belongs to root; vLLM, PyTorch and Hugging
Face keep their caches there).

``karpenter.sh/do-not-disrupt`` is opt-in and applies for the pod's whole life: Kubernetes offers
no declarative way to annotate a pod only while it loads (that needs a controller removing the
annotation on readiness), and a permanent one would block consolidation of every serving node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import pulumi
import pulumi_kubernetes as k8s

from gpufleet.components import gpu_claims, gpu_pod
from gpufleet.components._validate import check_arg_keys, require, require_int_range
from gpufleet.components.autoscaling import (
    SCALED_OBJECT_API_VERSION,
    kafka_trigger,
    prometheus_trigger,
    scaled_object_spec,
)
from gpufleet.components.gateway_api import API_VERSION as GATEWAY_API_VERSION
from gpufleet.components.gateway_api import CLUSTER_LOCAL, VISIBILITY_LABEL, predictor_service, weighted_route_spec
from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.components.inference_service_args import (  # noqa: F401  (the component's public argument types)
    STABLE,
    TYPE,
    AutoscalingArgs,
    CanaryArgs,
    DisruptionBudgetArgs,
    HfTokenSecret,
    InferenceServiceArgs,
    QueueQuery,
    RouteArgs,
    check_canary,
    check_image,
    check_labels,
    check_memory_utilization,
    check_name,
    check_route,
    check_storage,
    default_memory_utilization,
)
from gpufleet.components.model_loader import ModelWeightsLoader, check_path, job_name_for, loader_job_spec, parse_source

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
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"

DCGM_NAMESPACE_LABEL = "namespace"
DCGM_POD_LABEL = "pod"
"""dcgm-exporter's labels naming the pod using each GPU, as Prometheus stores them: gpufleet's DCGM
ServiceMonitor (:mod:`~gpufleet.components.gpu_monitoring`) honours the exporter's labels; with the
charts' own ServiceMonitors (``honorLabels: false``) they would be ``exported_namespace``/``exported_pod``."""

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


@dataclass(frozen=True)
class VariantPlan:
    """One variant (stable or canary) of a service: its own KServe InferenceService."""

    name: str
    """Kubernetes name of the InferenceService (its predictor Deployment/Service: ``<name>-predictor``)."""
    labels: dict[str, str]
    """Labels of the InferenceService object."""
    annotations: dict[str, str]
    spec: dict[str, Any]
    """The InferenceService ``spec``."""
    disruption_budget: Optional[dict[str, Any]]
    """The PodDisruptionBudget ``spec`` (none while scaled to zero: nothing to protect)."""
    weight: Optional[int]
    """Its share of the route's traffic (with ``route``)."""


@dataclass(frozen=True)
class ServicePlan:
    """Everything an :class:`InferenceService` creates, as plain Kubernetes data."""

    service: str
    namespace: str
    variants: dict[str, VariantPlan]
    """Variant (``stable`` first, then the canary's name) → its InferenceService."""
    route: Optional[dict[str, Any]]
    """The HTTPRoute ``spec`` splitting the traffic, with ``route``."""
    scaled_object: Optional[dict[str, Any]]
    """The KEDA ScaledObject ``spec``, when the service autoscales."""
    pod_monitor: Optional[dict[str, Any]]
    """The PodMonitor ``spec`` scraping vLLM's metrics, when the service autoscales."""
    monitor_labels: dict[str, str]
    """Extra labels of the PodMonitor."""
    loaders: dict[str, dict[str, Any]]
    """Variant → :class:`~gpufleet.components.model_loader.ModelWeightsLoaderArgs` of its weights
    download (variants with a ``weights_source`` only)."""
    claim_template: Optional[dict[str, Any]] = None
    """On a DRA pool: the ``spec`` of the ResourceClaimTemplate ``<service>-gpus`` every predictor pod
    claims its GPUs from (:mod:`~gpufleet.components.gpu_claims`); none on a device-plugin pool."""

    @property
    def stable(self) -> VariantPlan:
        return self.variants[STABLE]

    @property
    def predictors(self) -> list[dict[str, Any]]:
        """The predictor spec of every variant, stable first."""
        return [variant.spec["predictor"] for variant in self.variants.values()]


def plan_inference_service(name: str, args: InferenceServiceArgs) -> ServicePlan:
    """Check ``args`` and build every object's spec; raises ``ValueError``/``TypeError`` naming the
    argument. Used by :class:`InferenceService` and by stack-config checks before anything runs."""
    namespace = check_name(require(args, "namespace", str, name=TYPE), "namespace")
    placement = require(args, "placement", GpuPlacement, name=TYPE)
    service = check_name(args.get("service_name", name), "service_name")
    model_name = require(args, "model_name", str, name=TYPE)
    storage_uri = check_storage(require(args, "storage_uri", str, name=TYPE), "storage_uri")
    image = check_image(args.get("image", DEFAULT_IMAGE), "image")
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
    anti = args.get("anti_affinity")
    if anti is None and placement.sharing == "none":
        anti = "preferred"
    gpu_pod.replica_spread(placement, {}, anti, name=TYPE)  # refused on shared pools whatever the replicas
    drain = require_int_range(args.get("drain_seconds", 15), "drain_seconds", 1, 300, name=TYPE)
    grace = require_int_range(args.get("termination_grace_seconds", 120), "termination_grace_seconds",
                              drain + 1, 3600, name=TYPE)
    do_not_disrupt = args.get("do_not_disrupt", False)
    if not isinstance(do_not_disrupt, bool):
        raise TypeError(f"{TYPE}: do_not_disrupt must be bool")
    utilization = check_memory_utilization(
        args.get("gpu_memory_utilization", default_memory_utilization(placement)), placement)
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
    canary = check_canary(args.get("canary"), image, service)
    route = check_route(args.get("route"))
    if canary is not None and route is None:
        raise ValueError(f"{TYPE}: canary needs route: KServe v0.20.0 routes each InferenceService to its own "
                         f"predictor only, so the canary's traffic share is split by gpufleet's HTTPRoute on a "
                         f"Gateway (route.gateway, route.hostname)")
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
            **gpu_claims.pod_claims(placement, gpu_claims.template_name(service)),
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
        if max(replicas, max_replicas if scaled else replicas) > 1:
            spec.update(gpu_pod.replica_spread(placement, labels, anti, name=TYPE))
        if storage_uris:
            spec["storageUris"] = storage_uris
        if do_not_disrupt:
            spec["annotations"] = {DO_NOT_DISRUPT: "true"}
        return spec

    budget = args.get("disruption_budget")
    labels = {"app.kubernetes.io/managed-by": "gpufleet"}
    if route is not None:
        # KServe then creates no HTTPRoute of its own for it (the route below serves the hostname)
        labels[VISIBILITY_LABEL] = CLUSTER_LOCAL
    annotations = {"serving.kserve.io/deploymentMode": DEPLOYMENT_MODE}

    def variant(key: str, isvc_name: str, uri: str, variant_image: str, replicas: int, scaled: bool,
                weight: Optional[int], field: str) -> VariantPlan:
        selector = {SERVICE_LABEL: service, VARIANT_LABEL: key}
        return VariantPlan(
            name=isvc_name,
            labels=dict(labels),
            annotations={**annotations, "serving.kserve.io/autoscalerClass": "external" if scaled else "none"},
            spec={"predictor": predictor(key, uri, variant_image, replicas, scaled)},
            disruption_budget=gpu_pod.disruption_budget(replicas, selector, budget, name=TYPE,
                                                        replicas_field=f"{field}min_replicas") if replicas > 0 else None,
            weight=weight,
        )

    canary_share = canary["traffic_percent"] if canary is not None else 0
    variants = {STABLE: variant(STABLE, service, storage_uri, image, min_replicas, scales,
                                100 - canary_share if route is not None else None, "")}
    if canary is not None:
        variants[canary["name"]] = variant(canary["name"], f"{service}-{canary['name']}", canary["storage_uri"],
                                           canary["image"], canary["min_replicas"], False, canary_share, "canary.")
    route_spec = None
    if route is not None:
        route_spec = weighted_route_spec(
            route["gateway"], [route["hostname"]],
            [(predictor_service(plan.name), plan.weight or 0) for plan in variants.values()],
            timeout_seconds=route["request_timeout_seconds"])
    return ServicePlan(
        service=service,
        namespace=namespace,
        variants=variants,
        route=route_spec,
        scaled_object=scaled_object_spec(f"{service}-predictor", min_replicas=min_replicas,
                                         max_replicas=max_replicas, triggers=triggers) if scales else None,
        pod_monitor={
            "selector": {"matchLabels": {SERVICE_LABEL: service}},
            "podMetricsEndpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
        } if scales else None,
        monitor_labels=monitor_labels,
        loaders=loaders,
        claim_template=gpu_claims.claim_template_spec(placement, gpus) if placement.dra else None,
    )


class InferenceService(pulumi.ComponentResource):
    """A vLLM service on a GPU pool: an InferenceService per variant (stable, optional canary), PDBs,
    optional Gateway API route splitting the traffic, optional KEDA autoscaling (see the module
    docstring). ``predictor_url`` is the stable predictor's in-cluster URL; ``url`` the routed one
    (``http://<route.hostname>``, the variants' split), or the stable predictor's without a route."""

    service_name: str
    predictor_url: str
    url: str

    def __init__(self, name: str, args: InferenceServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, InferenceServiceArgs, name=TYPE)
        plan = plan_inference_service(name, args)
        super().__init__(TYPE, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        service, namespace = plan.service, plan.namespace
        self.service_name = service
        meta = {"namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "gpufleet"}}

        claims: list[pulumi.Resource] = []
        if plan.claim_template is not None:
            claims.append(k8s.resource.v1.ResourceClaimTemplate(
                f"{name}-gpu-claim",
                metadata={**meta, "name": gpu_claims.template_name(service)},
                spec=plan.claim_template,
                opts=child,
            ))
        isvcs: dict[str, k8s.apiextensions.CustomResource] = {}
        for key, variant in plan.variants.items():
            loader_args = plan.loaders.get(key)
            loaders = [ModelWeightsLoader(f"{name}-weights" if key == STABLE else f"{name}-weights-{key}",
                                          loader_args, opts=child)] if loader_args is not None else []
            isvcs[key] = k8s.apiextensions.CustomResource(
                # the stable variant keeps the child name of the single InferenceService it always was
                f"{name}-isvc" if key == STABLE else f"{name}-isvc-{key}",
                api_version=API_VERSION,
                kind="InferenceService",
                metadata={"namespace": namespace, "name": variant.name, "labels": variant.labels,
                          "annotations": variant.annotations},
                spec=variant.spec,
                # the predictors mount the weights (download them first) and claim their GPUs
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*loaders, *claims] or None),
            )
            if variant.disruption_budget is not None:
                k8s.policy.v1.PodDisruptionBudget(
                    f"{name}-pdb-{key}",
                    metadata={**meta, "name": f"{service}-{key}"},
                    spec=variant.disruption_budget,
                    opts=child,
                )
        if plan.route is not None:
            k8s.apiextensions.CustomResource(
                f"{name}-route",
                api_version=GATEWAY_API_VERSION,
                kind="HTTPRoute",
                metadata={**meta, "name": f"{service}-route"},
                spec=plan.route,
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(isvcs.values())),
            )
        if plan.scaled_object is not None:
            k8s.apiextensions.CustomResource(
                f"{name}-scaler",
                api_version=SCALED_OBJECT_API_VERSION,
                kind="ScaledObject",
                metadata={**meta, "name": service},
                spec=plan.scaled_object,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[isvcs[STABLE]]),
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
        self.predictor_url = f"http://{predictor_service(service)}.{namespace}.svc.cluster.local"
        self.url = f"http://{plan.route['hostnames'][0]}" if plan.route is not None else self.predictor_url
        self.register_outputs({"predictorUrl": self.predictor_url, "url": self.url})


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
