"""Stack area ``serving`` (``gpufleet:serving``): the KServe platform, KEDA, and the
InferenceServices the teams serve.

Each service names its ``team`` (its namespace) and its GPU ``pool``; the pool's placement gives
tolerations, node selection and the GPU resource name. ``storage: pvc://<path>`` means ``<path>``
on the team's model-weights claim (``gpufleet:modelCache``), mounted read-only; ``hf://``,
``s3://``, ``gs://`` and ``https://`` URIs are downloaded. A fresh claim is empty: ``pvc://`` storage
needs ``weightsSource: hf://<org>/<model>[@<revision>]`` (a loader Job downloads the weights into the
claim before the InferenceService is created) unless ``preloaded: true`` says the weights are
already there. Gated models need ``hfTokenSecret``: ``{name: hf-token}`` works only with
``gpufleet:hfToken`` set (gpufleet then creates that Secret). Every service is checked like the
component checks it (GPUs per replica against the pool's instance types, memory shares on
time-sliced pools, replicas, canary, ...) when the stack configuration is read, with its
``gpufleet:serving.inferenceServices[i]`` path.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Optional

import pulumi
from pydantic import Field, field_validator, model_validator

from gpufleet.components.autoscaling import Keda
from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.components.hf_token import SECRET_KEY as HF_TOKEN_KEY
from gpufleet.components.hf_token import SECRET_NAME as HF_TOKEN_SECRET
from gpufleet.components.hf_token import HuggingFaceToken
from gpufleet.components.inference_service import TYPE as SERVICE_TYPE
from gpufleet.components.inference_service import InferenceService, check_labels, plan_inference_service
from gpufleet.components.kserve import DEFAULT_NAMESPACE as KSERVE_NAMESPACE
from gpufleet.components.kserve import KServe
from gpufleet.infra.areas.base import (
    ConfigModel, DnsLabel, DnsSubdomain, ImageRef, Platform, PositiveQuantity, SecretKey, camel_path,
)
from gpufleet.infra.areas.gpu_pools import configured_placements

PREFIX = "gpufleet:serving"


class GatewayApiConfig(ConfigModel):
    """KServe's Gateway API ingress (needed for canary traffic splits)."""

    gateway: Optional[str] = Field(None, pattern=r"^[a-z0-9-]+/[a-z0-9-]+$")
    """``<namespace>/<name>`` of the Gateway. Default ``<kserve namespace>/kserve-ingress-gateway``."""
    create_gateway: bool = True
    """Let the KServe chart create that Gateway. Default true."""
    class_name: Optional[DnsLabel] = None
    """GatewayClass of a created Gateway (e.g. Envoy Gateway's). Required when ``createGateway``."""

    @model_validator(mode="after")
    def _class_name(self) -> "GatewayApiConfig":
        # The same rule as components.kserve.kserve_values, named by its YAML path here.
        if self.create_gateway and self.class_name is None:
            raise ValueError("className is required when createGateway is true (the GatewayClass of the Gateway)")
        return self


class KServeConfig(ConfigModel):
    """The KServe platform (Standard mode) and cert-manager."""

    enabled: Optional[bool] = None
    """Install KServe. Default: when ``inferenceServices`` is not empty."""
    namespace: DnsLabel = KSERVE_NAMESPACE
    """Controller namespace. Default ``kserve-system``."""
    install_cert_manager: bool = True
    """Install cert-manager too (false when the cluster has one). Default true."""
    domain: str = Field("example.com", max_length=253, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")
    """Domain of InferenceService hostnames. Default ``example.com``."""
    ingress_class_name: Optional[DnsLabel] = None
    """Create Ingresses of this class. Default none (in-cluster only, or ``gatewayApi``)."""
    gateway_api: Optional[GatewayApiConfig] = None
    """Route with Gateway API HTTPRoutes. Default none."""

    @model_validator(mode="after")
    def _one_ingress(self) -> "KServeConfig":
        # The same rule as components.kserve.kserve_values, named by its YAML path here.
        if self.ingress_class_name is not None and self.gateway_api is not None:
            raise ValueError("set ingressClassName or gatewayApi, not both")
        return self


class KedaConfig(ConfigModel):
    """KEDA, which autoscales InferenceServices."""

    enabled: Optional[bool] = None
    """Install KEDA. Default: when a service autoscales."""
    replicas: int = Field(2, ge=1, le=5)
    """Operator and metrics-server replicas. Default 2."""


class HfTokenSecretConfig(ConfigModel):
    """A Secret key holding a Hugging Face token (the token never goes in the stack file)."""

    name: DnsSubdomain
    """Secret name in the team namespace."""
    key: SecretKey = "token"
    """Key in the Secret. Default ``token``."""


class CanaryConfig(ConfigModel):
    """A second model version receiving a traffic share (KServe Standard-mode canary)."""

    storage: str
    """Weights of the new version (same forms as the service's ``storage``)."""
    weights_source: Optional[str] = None
    """``hf://<org>/<model>[@<revision>]`` downloaded into ``pvc://`` storage first. Required with
    ``pvc://`` storage unless ``preloaded``."""
    preloaded: bool = False
    """The ``pvc://`` weights are already in the claim (no loader Job). Default false."""
    traffic_percent: int
    """Share of requests, 1–99."""
    name: str = "canary"
    """Canary name. Default ``canary``."""
    image: Optional[str] = None
    """vLLM image. Default the service's."""
    min_replicas: int = 1
    """Replicas (fixed). Default 1."""


class KafkaConfig(ConfigModel):
    """Kafka consumer lag as an extra scaling signal (queue-driven batch; allows ``minReplicas: 0``)."""

    bootstrap_servers: str
    consumer_group: str
    topic: str
    lag_threshold: int = 10
    """Target lag per replica. Default 10."""
    authentication_ref: Optional[str] = None
    """KEDA TriggerAuthentication in the team namespace. Default none."""


class QueueConfig(ConfigModel):
    """A queue depth in Prometheus as an extra scaling signal (allows ``minReplicas: 0``)."""

    query: str
    """PromQL returning the total number of waiting items."""
    target: int = Field(ge=1)
    """Waiting items per replica."""


class AutoscalingConfig(ConfigModel):
    """KEDA targets of a service (used when ``maxReplicas > minReplicas``)."""

    gpu_utilization: int = 70
    """Target GPU utilisation per replica, percent. Default 70."""
    waiting_requests: int = 5
    """Target ``vllm:num_requests_waiting`` per replica. Default 5."""
    kafka: Optional[KafkaConfig] = None
    """Kafka lag trigger. Default none."""
    queue: Optional[QueueConfig] = None
    """Prometheus queue-depth trigger. Default none."""


class InferenceServiceConfig(ConfigModel):
    """One model served with vLLM on KServe."""

    name: str
    """InferenceService name (≤ 45 characters)."""
    team: str
    """Team (``gpufleet:teams[].name``) whose namespace serves it."""
    pool: str
    """GPU pool (``gpufleet:gpuPools[].name``) it runs on."""
    model: str = Field(pattern=r"^\S{1,256}$")
    """Model name clients request (vLLM ``--served-model-name``; no whitespace)."""
    storage: str
    """``pvc://<path>`` on the team's model cache, or an ``hf://``, ``s3://``, ``gs://``, ``https://`` URI."""
    weights_source: Optional[str] = None
    """``hf://<org>/<model>[@<revision>]``: a loader Job downloads it into the ``pvc://`` path before
    the service starts (using ``hfTokenSecret``). Required with ``pvc://`` storage unless ``preloaded``."""
    preloaded: bool = False
    """The ``pvc://`` weights are already in the claim (no loader Job). Default false."""
    image: Optional[ImageRef] = None
    """vLLM image, with a tag or digest (``latest`` is refused in prod). Default the component's pinned
    vLLM release."""
    gpus: int = Field(1, ge=1, le=64)
    """GPUs (pool resource units) per replica. Default 1."""
    cpu: PositiveQuantity = "8"
    """CPU per replica. Default ``"8"``."""
    memory: PositiveQuantity = "32Gi"
    """Memory per replica. Default ``"32Gi"``."""
    shm_size: PositiveQuantity = "8Gi"
    """``/dev/shm`` size. Default ``"8Gi"``."""
    min_replicas: int = 1
    """Default 1."""
    max_replicas: Optional[int] = None
    """Default ``minReplicas`` (no autoscaling)."""
    max_model_len: Optional[int] = None
    """vLLM ``--max-model-len``. Default the model's."""
    gpu_memory_utilization: Optional[float] = Field(None, gt=0, le=1)
    """vLLM ``--gpu-memory-utilization``. Default 0.9 (0.9 / replicas on time-sliced pools)."""
    extra_args: tuple[str, ...] = ()
    """More vLLM flags. Default none."""
    hf_token_secret: Optional[HfTokenSecretConfig] = None
    """Hugging Face token Secret read by the predictors and weights loaders (canary's too), for gated
    models: ``{name: hf-token}`` is the Secret gpufleet makes from ``gpufleet:hfToken`` (key
    ``token``); another name is a Secret you create in the team namespace. Default none."""
    load_seconds: int = 300
    """Expected model load time (startup probe allows twice it). Default 300."""
    anti_affinity: Literal["preferred", "required"] = "preferred"
    """Hostname anti-affinity between replicas. Default ``preferred``."""
    drain_seconds: int = 15
    """preStop drain before vLLM stops. Default 15."""
    termination_grace_seconds: int = 120
    """Termination grace period. Default 120."""
    do_not_disrupt: bool = False
    """``karpenter.sh/do-not-disrupt`` on the pods. Default false."""
    canary: Optional[CanaryConfig] = None
    """A canary version. Default none."""
    autoscaling: AutoscalingConfig = AutoscalingConfig()
    """KEDA targets."""

    def reads_secret(self, name: str, key: str) -> bool:
        """Its predictors and weights loaders (canary's included) read ``key`` of the Secret ``name``
        (``hfTokenSecret``)."""
        return self.hf_token_secret is not None and (self.hf_token_secret.name, self.hf_token_secret.key) == (name, key)

    @property
    def scales(self) -> bool:
        """Whether KEDA scales it (``minReplicas: 0`` alone implies a maximum of 1)."""
        maximum = self.max_replicas if self.max_replicas is not None else max(self.min_replicas, 1)
        return maximum > self.min_replicas


class ServingSection(ConfigModel):
    """KServe, KEDA and the InferenceServices."""

    kserve: KServeConfig = KServeConfig()
    """KServe platform options."""
    keda: KedaConfig = KedaConfig()
    """KEDA options."""
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    """Prometheus that KEDA queries (DCGM and vLLM metrics). Default the Prometheus Operator's
    ``prometheus-operated`` Service in ``monitoring``."""
    pod_monitor_labels: dict[str, str] = {}
    """Labels of the services' vLLM PodMonitors, so the Prometheus Operator selects them
    (kube-prometheus-stack selects ``release: <its release name>``). Default none."""
    inference_services: tuple[InferenceServiceConfig, ...] = ()
    """Models to serve. Default none."""

    @field_validator("pod_monitor_labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        try:
            return check_labels(value, "labels")
        except (TypeError, ValueError) as error:
            raise ValueError(str(error).removeprefix(f"{SERVICE_TYPE}: labels ")) from None

    @field_validator("prometheus_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            raise ValueError("must be an http(s) URL (no spaces)")
        return value

    @property
    def kserve_enabled(self) -> bool:
        return self.kserve.enabled if self.kserve.enabled is not None else bool(self.inference_services)

    @property
    def keda_enabled(self) -> bool:
        if self.keda.enabled is not None:
            return self.keda.enabled
        return any(service.scales for service in self.inference_services)


def component_args(service: InferenceServiceConfig, placement: GpuPlacement, prometheus_url: str,
                   claim: Optional[str], monitor_labels: Optional[dict[str, str]] = None) -> dict[str, Any]:
    """The :class:`InferenceServiceArgs` of one configured service (``claim``: the team's model-cache
    claim, for ``pvc://`` storage)."""

    def storage(uri: str) -> str:
        return f"pvc://{claim}/{uri[len('pvc://'):].lstrip('/')}" if uri.startswith("pvc://") else uri

    args: dict[str, Any] = {
        "namespace": service.team,
        "placement": placement,
        "service_name": service.name,
        "model_name": service.model,
        "storage_uri": storage(service.storage),
        "gpus": service.gpus,
        "cpu": service.cpu,
        "memory": service.memory,
        "shm_size": service.shm_size,
        "min_replicas": service.min_replicas,
        "extra_args": list(service.extra_args),
        "load_seconds": service.load_seconds,
        "anti_affinity": service.anti_affinity,
        "drain_seconds": service.drain_seconds,
        "termination_grace_seconds": service.termination_grace_seconds,
        "do_not_disrupt": service.do_not_disrupt,
    }
    optional = {"image": service.image, "max_replicas": service.max_replicas, "max_model_len": service.max_model_len,
                "gpu_memory_utilization": service.gpu_memory_utilization}
    args.update({key: value for key, value in optional.items() if value is not None})
    if service.weights_source is not None:
        args["weights_source"] = service.weights_source
    if monitor_labels:
        args["monitor_labels"] = dict(monitor_labels)
    if service.hf_token_secret is not None:
        args["hf_token_secret"] = {"name": service.hf_token_secret.name, "key": service.hf_token_secret.key}
    if service.canary is not None:
        canary = service.canary
        args["canary"] = {"storage_uri": storage(canary.storage), "traffic_percent": canary.traffic_percent,
                          "name": canary.name, "min_replicas": canary.min_replicas,
                          **({"image": canary.image} if canary.image else {}),
                          **({"weights_source": canary.weights_source} if canary.weights_source else {})}
    if service.scales:
        scaling = service.autoscaling
        args["autoscaling"] = {"prometheus_url": prometheus_url, "gpu_utilization": scaling.gpu_utilization,
                               "waiting_requests": scaling.waiting_requests}
        if scaling.kafka is not None:
            args["autoscaling"]["kafka"] = scaling.kafka.model_dump(exclude_none=True)
        if scaling.queue is not None:
            args["autoscaling"]["queue"] = scaling.queue.model_dump()
    return args


_CONFIG_FIELDS = {"storage_uri": "storage", "canary.storage_uri": "canary.storage", "service_name": "name",
                  "namespace": "team", "model_name": "model"}


def _field_problem(index: int, error: Exception) -> str:
    """A component error → ``gpufleet:serving.inferenceServices[i].<field>: <problem>``."""
    message = str(error)
    if message.startswith(f"{SERVICE_TYPE}: "):
        message = message[len(SERVICE_TYPE) + 2:]
    match = re.match(r"^([a-z_]+(?:\.[a-z_]+)*)\b:? ?(.*)$", message)
    path = f"{PREFIX}.inferenceServices[{index}]"
    if not match:
        return f"{path}: {message}"
    field, rest = match.groups()
    return f"{path}.{camel_path(_CONFIG_FIELDS.get(field, field))}: {rest}"


def cross_check(config: Any) -> list[str]:
    """Unknown teams and pools, duplicate names, services impossible on their pool, pvc:// without a
    model cache, canaries without Gateway API routing, Secret ``hf-token`` named without
    ``gpufleet:hfToken`` (or with another key), each with its field path."""
    section = config.serving
    problems: list[str] = []
    teams = [team.name for team in config.teams]
    pools = [pool.name for pool in config.gpu_pools]
    placements = configured_placements(config)
    cached = set(config.model_cache.covered_teams(config)) if config.model_cache.enabled else set()
    seen: dict[tuple[str, str], int] = {}
    # (team, pvc:// path) → (field path, weightsSource) of the first loader writing there
    loaded: dict[tuple[str, str], tuple[str, str]] = {}
    for i, service in enumerate(section.inference_services):
        path = f"{PREFIX}.inferenceServices[{i}]"
        if service.team not in teams:
            problems.append(f"{path}.team: {service.team!r} is not a team "
                            f"(gpufleet:teams[].name: {', '.join(teams) or 'none'})")
        if service.pool not in pools:
            problems.append(f"{path}.pool: {service.pool!r} is not a GPU pool "
                            f"(gpufleet:gpuPools[].name: {', '.join(pools) or 'none'})")
        key = (service.team, service.name)
        if key in seen:
            problems.append(f"{path}.name: {service.name!r} is already served by team {service.team!r} "
                            f"(inferenceServices[{seen[key]}])")
        seen.setdefault(key, i)
        uses_cache = service.storage.startswith("pvc://") or (
            service.canary is not None and service.canary.storage.startswith("pvc://"))
        if uses_cache and service.team in teams and service.team not in cached:
            problems.append(f"{path}.storage: pvc:// reads the team's model cache, but team {service.team!r} has "
                            f"none (enable gpufleet:modelCache for it)")
        problems += _weights_problems(path, service)
        problems += _conflicting_loads(path, service, loaded)
        problems += _token_problems(path, service, has_token=config.hf_token is not None)
        if service.canary is not None and section.kserve.gateway_api is None:
            problems.append(f"{path}.canary: KServe splits canary traffic with Gateway API HTTPRoutes; "
                            f"set {PREFIX}.kserve.gatewayApi")
        if service.pool in placements:
            try:
                plan_inference_service(service.name, component_args(
                    service, placements[service.pool], section.prometheus_url, config.model_cache.claim_name,
                    section.pod_monitor_labels))
            except (ValueError, TypeError) as error:
                problems.append(_field_problem(i, error))
    if section.keda.enabled is False and any(s.scales for s in section.inference_services):
        problems.append(f"{PREFIX}.keda.enabled: services autoscale (maxReplicas > minReplicas) but KEDA is disabled")
    return problems


def _weights_problems(path: str, service: InferenceServiceConfig) -> list[str]:
    """``pvc://`` storage needs a ``weightsSource`` or ``preloaded: true`` (a fresh claim is empty);
    the two exclude each other, and neither applies to downloaded storage."""
    problems = []
    variants = [("", service)] + ([("canary.", service.canary)] if service.canary is not None else [])
    for prefix, variant in variants:
        on_claim = variant.storage.startswith("pvc://")
        if variant.weights_source is not None and variant.preloaded:
            problems.append(f"{path}.{prefix}weightsSource: set weightsSource or preloaded: true, not both")
        elif on_claim and variant.weights_source is None and not variant.preloaded:
            problems.append(f"{path}.{prefix}weightsSource: is required with pvc:// storage (a new model cache is "
                            f"empty): hf://<org>/<model>[@<revision>] to download, or preloaded: true")
        elif not on_claim and variant.preloaded:
            problems.append(f"{path}.{prefix}preloaded: applies to pvc:// storage only, got {variant.storage!r}")
    return problems


def _token_problems(path: str, service: InferenceServiceConfig, *, has_token: bool) -> list[str]:
    """Secret ``hf-token`` is gpufleet's (made from ``gpufleet:hfToken``, key ``token``): naming it
    without the token, or with another key, leaves the loader and predictor pods (the canary's too)
    in CreateContainerConfigError until the loader's deadline, hours later."""
    secret = service.hf_token_secret
    if secret is None or secret.name != HF_TOKEN_SECRET:
        return []
    problems = []
    if not has_token:
        problems.append(
            f"{path}.hfTokenSecret.name: Secret {HF_TOKEN_SECRET!r} is created by gpufleet from gpufleet:hfToken, "
            f"which is not set: run `pulumi config set --secret hfToken <token>`, or name a Secret you create "
            f"in namespace {service.team!r}")
    if secret.key != HF_TOKEN_KEY:
        problems.append(
            f"{path}.hfTokenSecret.key: gpufleet's Secret {HF_TOKEN_SECRET!r} holds the token under key "
            f"{HF_TOKEN_KEY!r}, got {secret.key!r}")
    return problems


def _conflicting_loads(path: str, service: InferenceServiceConfig,
                       loaded: dict[tuple[str, str], tuple[str, str]]) -> list[str]:
    """Two loaders writing different models into the same directory of a team's cache would mix
    their files; the same source twice is harmless (the download skips what is there)."""
    problems = []
    variants = [("", service)] + ([("canary.", service.canary)] if service.canary is not None else [])
    for prefix, variant in variants:
        if variant.weights_source is None or not variant.storage.startswith("pvc://"):
            continue
        key = (service.team, variant.storage[len("pvc://"):].strip("/"))
        first = loaded.setdefault(key, (f"{path}.{prefix}weightsSource", variant.weights_source))
        if first[1] != variant.weights_source:
            problems.append(f"{path}.{prefix}weightsSource: {variant.weights_source!r} would be written into "
                            f"{variant.storage}, where {first[0]} writes {first[1]!r}")
    return problems


def compose(platform: Platform) -> None:
    """KServe (and KEDA when needed), then each InferenceService in its team's namespace, after the
    namespace, the platform, the priority classes and the team's model cache."""
    section = platform.config.serving
    if not section.kserve_enabled:
        return
    kserve_config = section.kserve
    kserve_args: dict[str, Any] = {
        "namespace": kserve_config.namespace,
        "install_cert_manager": kserve_config.install_cert_manager,
        "domain": kserve_config.domain,
    }
    if kserve_config.ingress_class_name:
        kserve_args["ingress_class_name"] = kserve_config.ingress_class_name
    if kserve_config.gateway_api is not None:
        gateway = kserve_config.gateway_api
        kserve_args["gateway_api"] = {"create_gateway": gateway.create_gateway,
                                      **({"gateway": gateway.gateway} if gateway.gateway else {}),
                                      **({"class_name": gateway.class_name} if gateway.class_name else {})}
    kserve = KServe("kserve", kserve_args, opts=platform.opts)
    platform.components["kserve"] = kserve
    if section.keda_enabled:
        platform.components["keda"] = Keda("keda", {"replicas": section.keda.replicas}, opts=platform.opts)

    hf_token = _hf_token(platform)
    for service in section.inference_services:
        waits_for: list[pulumi.Resource] = [kserve]
        if hf_token is not None and service.reads_secret(HF_TOKEN_SECRET, HF_TOKEN_KEY):
            waits_for.append(hf_token)
        # predictor pods name the `inference` PriorityClass: admission rejects them until it exists
        if "priority-classes" in platform.components:
            waits_for.append(platform.components["priority-classes"])
        if service.scales and "keda" in platform.components:
            waits_for.append(platform.components["keda"])
        if service.team in platform.namespaces:
            waits_for.append(platform.namespaces[service.team])
        claim = platform.model_caches.get(service.team)
        if claim is not None and "model-cache" in platform.components:
            waits_for.append(platform.components["model-cache"])
        InferenceService(
            f"{service.team}-{service.name}",
            component_args(service, platform.placements[service.pool], section.prometheus_url, claim,
                           section.pod_monitor_labels),
            opts=pulumi.ResourceOptions.merge(platform.opts, pulumi.ResourceOptions(depends_on=waits_for)),
        )


def _hf_token(platform: Platform) -> Optional[HuggingFaceToken]:
    """The stack's ``hfToken`` as Secret ``hf-token`` in every namespace that serves models."""
    token = platform.config.hf_token
    teams = sorted({service.team for service in platform.config.serving.inference_services})
    if token is None or not teams:
        return None
    namespaces = [platform.namespaces[team] for team in teams if team in platform.namespaces]
    return HuggingFaceToken(
        "hf-token",
        {"token": pulumi.Output.secret(token.get_secret_value()), "namespaces": teams},
        opts=pulumi.ResourceOptions.merge(platform.opts, pulumi.ResourceOptions(depends_on=namespaces)),
    )
