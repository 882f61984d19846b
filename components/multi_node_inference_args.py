"""The arguments of :class:`~gpufleet.components.multi_node_inference.MultiNodeInferenceService` and
the plain facts they derive from a pool: GPUs per node, the EFA interfaces each pod requests, and
the startup budget sized to the model's weights."""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence, TypedDict

from typing_extensions import NotRequired

from gpufleet.components.gpu_scheduling import EFA_ENV, EFA_RESOURCE, GpuPlacement
from gpufleet.components.inference_service_args import DisruptionBudgetArgs, HfTokenSecret

TYPE = "gpufleet:lws:MultiNodeInferenceService"

"""Extended resource the AWS EFA device plugin advertises (one unit per EFA interface)."""

LOAD_OVERHEAD_SECONDS = 600
"""Fixed part of a group's expected start: the other nodes of the group launching (Karpenter) and
pulling the vLLM image, Ray forming its cluster, CUDA graph capture and the KV cache profile run."""
LOAD_GIB_PER_SECOND_PER_NODE = 0.25
"""Conservative weights read rate of one node from the model cache (EFS elastic throughput, FSx for
Lustre or a download): each node reads about its pipeline stage's share of the weights."""


class MultiNodeInferenceServiceArgs(TypedDict):
    """Inputs of :class:`~gpufleet.components.multi_node_inference.MultiNodeInferenceService`."""

    namespace: str
    """The team namespace to serve in. Required."""
    placement: GpuPlacement
    """The GPU pool every pod of every group runs on: whole GPUs (no MIG, no time-slicing). Required."""
    model_name: str
    """Model name clients request (vLLM ``--served-model-name``). Required."""
    storage_uri: str
    """The weights: ``pvc://<claim>/<path>`` (mounted read-only on every pod of the group) or
    ``hf://<org>/<model>`` (each pod downloads its own copy into its home emptyDir). Required."""
    nodes: int
    """Pods (one node each) per group: the leader and ``nodes - 1`` workers; vLLM's pipeline-parallel
    size. At least 2 (a model that fits one node is an InferenceService). Required."""
    service_name: NotRequired[str]
    """Kubernetes name of the LeaderWorkerSet and of the leader's Service (≤ 45 characters).
    Default: the resource name."""
    image: NotRequired[str]
    """vLLM image (with Ray, as ``vllm/vllm-openai``). Default
    :data:`~gpufleet.components.inference_service.DEFAULT_IMAGE`."""
    gpus_per_node: NotRequired[int]
    """GPUs per pod: vLLM's tensor-parallel size inside a node. Default: the GPUs of the pool's
    largest instance type (the whole node)."""
    groups: NotRequired[int]
    """Groups (model replicas, LeaderWorkerSet ``replicas``), each ``nodes`` nodes. Default 1."""
    cpu: NotRequired[str]
    """CPU per pod (request = limit). Default ``"32"``."""
    memory: NotRequired[str]
    """Memory per pod (request = limit), including ``/dev/shm``. Default ``"256Gi"``."""
    shm_size: NotRequired[str]
    """Size of the memory-backed ``/dev/shm`` (NCCL buffers, Ray's object store). Default ``"32Gi"``."""
    max_model_len: NotRequired[int]
    """vLLM ``--max-model-len``. Default: the model's."""
    gpu_memory_utilization: NotRequired[float]
    """vLLM ``--gpu-memory-utilization``. Default 0.9."""
    extra_args: NotRequired[Sequence[str]]
    """More ``vllm serve`` flags. Default none."""
    hf_token_secret: NotRequired[HfTokenSecret]
    """Hugging Face token as env ``HF_TOKEN`` on every pod (and the weights loader) from a Secret.
    Default none."""
    weights_gib: NotRequired[int]
    """Size of the weights; sizes the startup budget when ``load_seconds`` is not set. Default none."""
    load_seconds: NotRequired[int]
    """Expected time from the group's creation to the leader serving; the startup probes allow twice
    it. Default: :func:`expected_load_seconds` of ``weights_gib`` (1200 without it)."""
    exclusive_topology: NotRequired[Optional[str]]
    """Node label whose value each group takes exclusively (LWS
    ``leaderworkerset.sigs.k8s.io/exclusive-topology``): a group's pods share one such domain and no
    other group of the namespace enters it. Default ``topology.kubernetes.io/zone`` (a group never
    spans zones; the namespace runs at most one group per zone); ``None`` turns it off."""
    drain_seconds: NotRequired[int]
    """Leader ``preStop`` sleep before vLLM gets SIGTERM, so the Service stops routing to it. Default 15."""
    termination_grace_seconds: NotRequired[int]
    """Termination grace period of every pod. Default 120."""
    disruption_budget: NotRequired[DisruptionBudgetArgs]
    """The PodDisruptionBudget over every pod of the service, in pods. Default ``{"max_unavailable": 1}``:
    one pod (so one group) at a time."""
    queue_name: NotRequired[str]
    """Kueue LocalQueue admitting each group as one workload (label ``kueue.x-k8s.io/queue-name``;
    needs Kueue's ``pod`` and ``leaderworkerset.x-k8s.io/leaderworkerset`` integrations). Default
    none: not queued."""
    efa_interfaces: NotRequired[int]
    """EFA interfaces each pod requests (``vpc.amazonaws.com/efa``). Default :func:`efa_interfaces`
    of the pool (0: none)."""
    weights_source: NotRequired[str]
    """``hf://<org>/<model>[@<revision>]``: download the weights into the ``pvc://`` storage with a
    :class:`~gpufleet.components.model_loader.ModelWeightsLoader` Job before the LeaderWorkerSet is
    created. Default none (the claim already holds them)."""


def default_gpus_per_node(placement: GpuPlacement) -> int:
    """GPUs of the largest instance type the pool may launch: each pod takes a whole node of it
    (pods never share a node), and Karpenter launches that type for it."""
    return placement.max_gpus_per_node


def efa_interfaces(placement: GpuPlacement) -> int:
    """EFA interfaces each pod of the pool requests: every interface of its node when the pool has
    EFA switched on (``GpuPlacement.efa_interfaces``), else none."""
    return placement.efa_interfaces


def efa_pod_fragment(interfaces: int) -> tuple[dict[str, int], list[dict[str, str]]]:
    """``(resources, env)`` a pod adds to use ``interfaces`` EFA interfaces for NCCL: the
    ``vpc.amazonaws.com/efa`` request (= limit) and libfabric's EFA provider with GPUDirect RDMA
    (AWS EFA user guide, "Get started with EFA and NCCL for ML workloads"), fork-safe registered
    memory, and NCCL's socket bootstrap on any interface but loopback. The image needs libfabric and
    the aws-ofi-nccl plugin (vLLM's stock image has neither: NCCL then falls back to TCP sockets)."""
    if interfaces <= 0:
        return {}, []
    return {EFA_RESOURCE: interfaces}, [{"name": k, "value": v} for k, v in EFA_ENV.items()]


def expected_load_seconds(weights_gib: Optional[int], nodes: int) -> int:
    """Time to expect from a group's creation to its leader serving: :data:`LOAD_OVERHEAD_SECONDS`
    plus each node reading its share of ``weights_gib`` at :data:`LOAD_GIB_PER_SECOND_PER_NODE`
    (1200 s when the size is unknown)."""
    if weights_gib is None:
        return 1200
    return LOAD_OVERHEAD_SECONDS + math.ceil(weights_gib / nodes / LOAD_GIB_PER_SECOND_PER_NODE)


def check_hf_token(token: Any) -> Optional[Mapping[str, Any]]:
    if token is not None and (not isinstance(token, Mapping) or not isinstance(token.get("name"), str)
                              or not token["name"]):
        raise ValueError(f"{TYPE}: hf_token_secret.name is required (a Secret reference, never a token)")
    return token
