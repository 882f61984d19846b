"""The multi-node serving part of ``gpufleet:serving`` (pydantic models): the LeaderWorkerSet
controller (``serving.leaderWorkerSet``) and the models served across GPU nodes
(``serving.multiNodeServices``). :mod:`gpufleet.infra.areas.multi_node_serving` checks them across
sections and composes the components."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field

from gpufleet.components.multi_node_inference import DEFAULT_EXCLUSIVE_TOPOLOGY
from gpufleet.infra.areas.base import ConfigModel, DnsLabel


class LeaderWorkerSetConfig(ConfigModel):
    """The LeaderWorkerSet controller (chart ``oci://registry.k8s.io/lws/charts/lws`` 0.10.0)."""

    enabled: Optional[bool] = None
    """Install the LWS controller. Default: when ``multiNodeServices`` is not empty."""
    namespace: DnsLabel = "lws-system"
    """Controller namespace. Default ``lws-system``."""
    replicas: int = Field(2, ge=1, le=5)
    """Controller replicas (its webhooks admit LeaderWorkerSets and their pods). Default 2."""


class MultiNodeHfTokenConfig(ConfigModel):
    """A Secret key holding a Hugging Face token (the token never goes in the stack file)."""

    name: str
    """Secret name in the team namespace (``hf-token``: the one gpufleet makes from ``gpufleet:hfToken``)."""
    key: str = "token"
    """Key in the Secret. Default ``token``."""


class MultiNodeBudgetConfig(ConfigModel):
    """The PodDisruptionBudget over every pod of a multi-node service: one of the two, whole pods."""

    min_available: Optional[int] = None
    """Pods that stay up; must be below ``groups × nodes``."""
    max_unavailable: Optional[int] = None
    """Pods that may be down at once; at least 1 (any pod down takes its whole group down)."""


class MultiNodeServiceConfig(ConfigModel):
    """One model served by vLLM across the GPU nodes of LeaderWorkerSet groups."""

    name: str
    """LeaderWorkerSet and leader Service name (≤ 45 characters)."""
    team: str
    """Team (``gpufleet:teams[].name``) whose namespace serves it."""
    pool: str
    """Whole-GPU pool (``gpufleet:gpuPools[].name``) every node of every group comes from."""
    model: str
    """Model name clients request (vLLM ``--served-model-name``)."""
    storage: str
    """``pvc://<path>`` on the team's model cache, or ``hf://<org>/<model>`` (each pod downloads it)."""
    weights_source: Optional[str] = None
    """``hf://<org>/<model>[@<revision>]`` downloaded into the ``pvc://`` path before the groups start.
    Required with ``pvc://`` storage unless ``preloaded``."""
    preloaded: bool = False
    """The ``pvc://`` weights are already in the claim (no loader Job). Default false."""
    image: Optional[str] = None
    """vLLM image (with Ray). Default the component's pinned vLLM release."""
    nodes: int = Field(ge=2, le=64)
    """Nodes per group: vLLM's pipeline-parallel size (one leader, ``nodes - 1`` workers)."""
    gpus_per_node: Optional[int] = None
    """GPUs per node: vLLM's tensor-parallel size. Default the pool's largest instance type's GPUs."""
    groups: int = Field(1, ge=1, le=100)
    """Groups (model replicas), each ``nodes`` nodes. Default 1."""
    cpu: str = "32"
    """CPU per pod. Default ``"32"``."""
    memory: str = "256Gi"
    """Memory per pod (``/dev/shm`` included). Default ``"256Gi"``."""
    shm_size: str = "32Gi"
    """``/dev/shm`` size (NCCL, Ray's object store). Default ``"32Gi"``."""
    max_model_len: Optional[int] = None
    """vLLM ``--max-model-len``. Default the model's."""
    gpu_memory_utilization: Optional[float] = None
    """vLLM ``--gpu-memory-utilization``. Default 0.9."""
    extra_args: tuple[str, ...] = ()
    """More ``vllm serve`` flags. Default none."""
    hf_token_secret: Optional[MultiNodeHfTokenConfig] = None
    """Hugging Face token Secret for gated models (``{name: hf-token}``: gpufleet's, from
    ``gpufleet:hfToken``). Default none."""
    weights_gib: Optional[int] = Field(None, ge=1)
    """Size of the weights, GiB: sizes the startup budget when ``loadSeconds`` is not set. Default none."""
    load_seconds: Optional[int] = Field(None, ge=1)
    """Expected time from a group's creation to its leader serving (startup probes allow twice it).
    Default 600 s plus each node reading its share of ``weightsGib`` at 0.25 GiB/s (1200 s without it)."""
    exclusive_topology: Optional[str] = DEFAULT_EXCLUSIVE_TOPOLOGY
    """Node label each group takes a domain of exclusively (LWS exclusive placement). Default
    ``topology.kubernetes.io/zone``: a group never spans zones and the team runs at most one group per
    zone; ``null`` turns it off."""
    disruption_budget: Optional[MultiNodeBudgetConfig] = None
    """The PodDisruptionBudget over the service's pods. Default ``maxUnavailable: 1`` (one group at a time)."""
    drain_seconds: int = 15
    """Leader preStop drain before vLLM stops. Default 15."""
    termination_grace_seconds: int = 120
    """Termination grace period. Default 120."""
    queued: bool = False
    """Submit each group to the team's Kueue LocalQueue (all its nodes admitted at once against the
    team's GPU quota on the pool); turns on Kueue's ``pod`` and ``leaderworkerset`` integrations.
    Default false: the groups' GPUs are held outside Kueue, like InferenceServices'."""


def lws_enabled(serving: Any) -> bool:
    """Whether the LWS controller is installed for a ``gpufleet:serving`` section."""
    settings = serving.leader_worker_set
    return settings.enabled if settings.enabled is not None else bool(serving.multi_node_services)
