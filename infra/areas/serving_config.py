"""The ``gpufleet:serving`` section of the stack configuration (pydantic models): KServe and its
Gateway API routing, KEDA, and the InferenceServices with their canary, autoscaling and disruption
budget. :mod:`gpufleet.infra.areas.serving` checks them across sections and composes the components."""

from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from gpufleet.components.inference_service import TYPE as SERVICE_TYPE
from gpufleet.components.inference_service import check_labels
from gpufleet.components.kserve import DEFAULT_NAMESPACE as KSERVE_NAMESPACE
from gpufleet.infra.areas.base import ConfigModel, DnsLabel, DnsSubdomain, ImageRef, PositiveQuantity, SecretKey
from gpufleet.infra.areas.multi_node_config import LeaderWorkerSetConfig, MultiNodeServiceConfig


class GatewayApiConfig(ConfigModel):
    """Gateway API routing of the services (needed for canary traffic splits)."""

    gateway: Optional[str] = Field(None, pattern=r"^[a-z0-9-]+/[a-z0-9-]+$")
    """``<namespace>/<name>`` of the Gateway. Default ``<kserve namespace>/inference-gateway``."""
    create_gateway: bool = True
    """gpufleet creates that Gateway (never the KServe chart: its Gateway's class is hard-coded
    ``envoy``). Default true; false to attach to an existing Gateway."""
    class_name: Optional[DnsLabel] = None
    """GatewayClass of the created Gateway (e.g. Envoy Gateway's ``eg``). Required when ``createGateway``."""
    request_timeout_seconds: int = Field(300, ge=1, le=3600)
    """Longest a request may take through a service's route. Default 300."""

    @model_validator(mode="after")
    def _class_name(self) -> "GatewayApiConfig":
        # The same rule as components.kserve (gateway_api.class_name), named by its YAML path here.
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
    """Share of requests the route sends to the canary, 1–100 (100: the promotion step before the swap)."""
    name: str = "canary"
    """Canary name: its InferenceService is ``<service>-<name>``. Default ``canary``."""
    image: Optional[str] = None
    """vLLM image. Default the service's."""
    min_replicas: int = 1
    """Replicas (fixed). Default 1."""


class KafkaConfig(ConfigModel):
    """Kafka consumer lag as an extra scaling signal (queue-driven batch; allows ``minReplicas: 0``)."""

    bootstrap_servers: str
    """Kafka brokers, ``host:port[,host:port...]``. Required."""
    consumer_group: str
    """Consumer group whose lag is measured. Required."""
    topic: str
    """Topic the service consumes. Required."""
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


class DisruptionBudgetConfig(ConfigModel):
    """The PodDisruptionBudget of each variant of a service: one of the two, whole pods."""

    min_available: Optional[int] = None
    """Pods that stay up; must be below ``minReplicas`` (and the canary's)."""
    max_unavailable: Optional[int] = None
    """Pods that may be down at once; at least 1."""


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
    """Replicas kept at all times (0 only with a Kafka or queue trigger). Default 1."""
    max_replicas: Optional[int] = None
    """Most replicas KEDA scales to. Default ``minReplicas`` (no autoscaling)."""
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
    anti_affinity: Optional[Literal["preferred", "required"]] = None
    """Hostname anti-affinity between replicas. Default ``preferred`` on whole-GPU pools; refused on
    MIG and time-sliced pools (Karpenter would launch a large GPU node per small replica)."""
    disruption_budget: Optional[DisruptionBudgetConfig] = None
    """The PodDisruptionBudget of each variant. Default ``maxUnavailable: 1`` (nodes stay drainable)."""
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
    triton_services: "tuple[TritonServiceConfig, ...]" = ()
    """Triton Inference Servers, each serving a model repository from its team's model cache. Default none."""
    leader_worker_set: LeaderWorkerSetConfig = LeaderWorkerSetConfig()
    """The LeaderWorkerSet controller that multi-node services need."""
    multi_node_services: tuple[MultiNodeServiceConfig, ...] = ()
    """Models served by vLLM across GPU nodes (LeaderWorkerSet groups). Default none."""

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
        return self.kserve.enabled if self.kserve.enabled is not None else bool(
            self.inference_services or self.triton_services)

    @property
    def keda_enabled(self) -> bool:
        if self.keda.enabled is not None:
            return self.keda.enabled
        return any(service.scales for service in (*self.inference_services, *self.triton_services))


# The Triton models use the disruption budget and Secret models above: imported last, then resolved.
from gpufleet.infra.areas.triton_config import TritonServiceConfig  # noqa: E402

ServingSection.model_rebuild()
