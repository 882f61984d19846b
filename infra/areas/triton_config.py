"""``gpufleet:serving.tritonServices``: Triton Inference Server services (pydantic models). Each
serves a model repository on its team's model cache; each model's ``config.pbtxt`` (dynamic
batching, instance groups) is rendered from here. :mod:`gpufleet.infra.areas.triton` checks them
across sections and composes :class:`~gpufleet.components.triton_service.TritonService`."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, ValidationInfo, field_validator

from gpufleet.components.triton_models import BACKEND_FILES
from gpufleet.infra.areas.base import ConfigModel, ImageRef
from gpufleet.infra.areas.serving_config import DisruptionBudgetConfig, HfTokenSecretConfig

Backend = Literal["onnxruntime", "tensorrt", "pytorch", "tensorflow", "openvino", "python"]
assert set(Backend.__args__) == set(BACKEND_FILES)  # type: ignore[attr-defined]


class TritonDynamicBatchingConfig(ConfigModel):
    """Triton's dynamic batcher of one model (``dynamic_batching`` in its ``config.pbtxt``)."""

    max_queue_delay_microseconds: int = Field(0, ge=0, le=10_000_000)
    """Longest a request waits for others to join its batch. Default 0."""
    preferred_batch_sizes: tuple[int, ...] = ()
    """Batch sizes the batcher aims for, each 1..``maxBatchSize``. Default none."""
    preserve_ordering: bool = False
    """Responses leave in request order. Default false."""


class TritonInstanceGroupConfig(ConfigModel):
    """One ``instance_group`` entry of a model."""

    count: int = Field(1, ge=1, le=64)
    """Instances (per GPU with ``KIND_GPU``), at least 1 (Triton would silently turn 0 into 1). Default 1."""
    kind: Literal["KIND_GPU", "KIND_CPU"] = "KIND_GPU"
    """Where the instances run. Default ``KIND_GPU``."""


class TritonModelConfig(ConfigModel):
    """One model of a Triton model repository."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    """Model name: its directory in the repository and the name clients use (``/v2/models/<name>``)."""
    backend: Backend
    """Triton backend: ``onnxruntime``, ``tensorrt``, ``pytorch``, ``tensorflow``, ``openvino`` or ``python``."""
    max_batch_size: int = Field(0, ge=0, le=1 << 20)
    """Largest batch Triton forms (0: no batch dimension). Default 0."""
    dynamic_batching: Optional[TritonDynamicBatchingConfig] = None
    """Enable the dynamic batcher (needs ``maxBatchSize`` ≥ 1). Default none."""
    instance_groups: tuple[TritonInstanceGroupConfig, ...] = (TritonInstanceGroupConfig(),)
    """Model instances. Default one per GPU."""
    source: Optional[str] = None
    """``hf://<org>/<model>[@<revision>]`` to download ``files`` from (pin a commit). Default none
    (the model is already in the claim)."""
    files: Optional[tuple[str, ...]] = None
    """Files of ``source`` to download into the version directory; the first is the one Triton
    loads. Default the backend's default name (``model.onnx``, ``model.plan``, ...)."""
    version: int = Field(1, ge=1)
    """Version directory. Default 1."""

    @field_validator("dynamic_batching")
    @classmethod
    def _batching(cls, value: Optional[TritonDynamicBatchingConfig],
                  info: ValidationInfo) -> Optional[TritonDynamicBatchingConfig]:
        if value is None:
            return value
        batch = info.data.get("max_batch_size")
        if batch == 0:
            raise ValueError("needs maxBatchSize of at least 1: a model with maxBatchSize 0 takes no batch "
                             "dimension, and Triton refuses every preferred batch size above maxBatchSize")
        if batch is not None:
            wrong = [size for size in value.preferred_batch_sizes if not 1 <= size <= batch]
            if wrong:
                raise ValueError(f"preferredBatchSizes must be from 1 to maxBatchSize ({batch}), got {wrong}")
        return value

    @field_validator("instance_groups")
    @classmethod
    def _groups(cls, value: tuple[TritonInstanceGroupConfig, ...]) -> tuple[TritonInstanceGroupConfig, ...]:
        if not value:
            raise ValueError("must list at least one instance group")
        return value


class TritonAutoscalingConfig(ConfigModel):
    """KEDA targets of a Triton service (used when ``maxReplicas > minReplicas``)."""

    gpu_utilization: int = Field(70, ge=1, le=100)
    """Target GPU utilisation per replica, percent. Default 70."""
    pending_requests: int = Field(16, ge=1)
    """Target ``nv_inference_pending_request_count`` per replica. Default 16."""
    queue_time_ms: int = Field(50, ge=1)
    """Target average time a request waits in Triton's queue, ms; must exceed every model's
    ``maxQueueDelayMicroseconds``. Default 50."""


class TritonServiceConfig(ConfigModel):
    """One Triton Inference Server on KServe, serving a model repository from the team's model cache."""

    name: str
    """InferenceService name (≤ 45 characters)."""
    team: str
    """Team (``gpufleet:teams[].name``) whose namespace serves it."""
    pool: str
    """GPU pool (``gpufleet:gpuPools[].name``) it runs on."""
    repository: str
    """``pvc://<path>``: the model repository directory on the team's model cache."""
    models: tuple[TritonModelConfig, ...]
    """The models of the repository."""
    image: Optional[ImageRef] = None
    """Triton image, with a tag or digest (``latest`` is refused in prod). Default the component's pinned
    ``nvcr.io/nvidia/tritonserver`` release."""
    gpus: int = 1
    """GPUs per replica. Default 1."""
    cpu: str = "4"
    """CPU per replica. Default ``"4"``."""
    memory: str = "16Gi"
    """Memory per replica. Default ``"16Gi"``."""
    shm_size: str = "2Gi"
    """``/dev/shm`` size. Default ``"2Gi"``."""
    min_replicas: int = Field(1, ge=1)
    """Replicas kept at all times. Default 1."""
    max_replicas: Optional[int] = None
    """Most replicas KEDA scales to. Default ``minReplicas`` (no autoscaling)."""
    load_seconds: int = 300
    """Expected time to load every model (startup probe allows twice it). Default 300."""
    anti_affinity: Optional[Literal["preferred", "required"]] = None
    """Hostname anti-affinity between replicas. Default ``preferred`` on whole-GPU pools."""
    disruption_budget: Optional[DisruptionBudgetConfig] = None
    """The PodDisruptionBudget. Default ``maxUnavailable: 1``."""
    drain_seconds: int = 15
    """preStop drain before Triton stops. Default 15."""
    termination_grace_seconds: int = 120
    """Termination grace period. Default 120."""
    hf_token_secret: Optional[HfTokenSecretConfig] = None
    """A Secret you create in the team namespace with a Hugging Face token, for the repository Job's
    downloads. Default none."""
    autoscaling: TritonAutoscalingConfig = TritonAutoscalingConfig()
    """KEDA targets."""

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not value.startswith("pvc://") or not value[len("pvc://"):].strip("/"):
            raise ValueError("must be pvc://<path>: a directory on the team's model cache")
        return value

    @field_validator("models")
    @classmethod
    def _models(cls, value: tuple[TritonModelConfig, ...]) -> tuple[TritonModelConfig, ...]:
        if not value:
            raise ValueError("must list at least one model")
        names = [model.name for model in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique in a repository, got {duplicates} more than once")
        return value

    @property
    def scales(self) -> bool:
        return self.max_replicas is not None and self.max_replicas > self.min_replicas

    @property
    def most_replicas(self) -> int:
        return max(self.max_replicas or 0, self.min_replicas)
