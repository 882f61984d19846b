"""How GPU workloads find GPU nodes: the names every gpufleet component agrees on.

A :class:`GpuNodePool` labels and taints its nodes; every workload component (InferenceService,
RayCluster, Kueue ResourceFlavor, ...) derives its tolerations and node selection from the pool's
:class:`GpuPlacement` instead of repeating label strings, so a workload always fits the pool it names.
The policies use the same constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Literal, Mapping, Sequence

from gpufleet.components.gpu_instances import GpuInstanceType

GPU_RESOURCE = "nvidia.com/gpu"
"""The extended resource the NVIDIA device plugin advertises (whole GPUs, or MIG slices with the
``single`` strategy)."""
SHARED_GPU_RESOURCE = "nvidia.com/gpu.shared"
"""The resource name of a shared GPU (time-slicing or MPS) when the device plugin renames shared
replicas (``renameByDefault: true``, which gpufleet always sets)."""
MPS_MAX_REPLICAS = 48
"""Most MPS clients one GPU serves: CUDA MPS on Volta and later GPUs (every GPU of
:data:`gpu_instances.FAMILIES`) accepts up to 48 client CUDA contexts per device (NVIDIA Multi-Process
Service guide, "Limitations")."""
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"
"""Prefix of MIG slice resources with the ``mixed`` strategy, e.g. ``nvidia.com/mig-1g.10gb``."""

EFA_RESOURCE = "vpc.amazonaws.com/efa"
"""The extended resource the AWS EFA device plugin advertises: one per EFA interface of the node."""
EFA_ENV: Mapping[str, str] = {
    # libfabric: use the EFA provider (aws-ofi-nccl's transport), never fall back to TCP sockets silently.
    "FI_PROVIDER": "efa",
    # GPUDirect RDMA over EFA (p4d, p4de, p5, p5e, p5en all support RDMA read/write).
    "FI_EFA_USE_DEVICE_RDMA": "1",
    # Registered memory stays valid across fork() (data loader worker processes).
    "FI_EFA_FORK_SAFE": "1",
    # NCCL's bootstrap and socket fallback: any interface but loopback (the pod's eth0).
    "NCCL_SOCKET_IFNAME": "^lo",
}
"""NCCL/libfabric environment of pods using EFA. Sources: the AWS EFA user guide ("Get started with EFA
and NCCL for ML workloads": ``FI_PROVIDER=efa``, ``FI_EFA_USE_DEVICE_RDMA=1`` on RDMA-capable types),
the SageMaker training toolkit's torch-distributed launcher for EFA RDMA instances
(aws/sagemaker-training-toolkit ``src/sagemaker_training/torch_distributed.py``: ``FI_EFA_USE_DEVICE_RDMA``,
``RDMAV_FORK_SAFE``, ``NCCL_SOCKET_IFNAME``) and SageMaker HyperPod's PyTorch job example
(``FI_PROVIDER=efa``, ``FI_EFA_FORK_SAFE=1``, ``NCCL_SOCKET_IFNAME=^lo``). ``NCCL_PROTO=simple`` is not
set: aws-ofi-nccl 1.7+ handles EFA's out-of-order delivery itself."""

GPU_TAINT_KEY = "nvidia.com/gpu"
"""Taint key on every GPU node (effect ``NoSchedule``): only pods that tolerate it land there."""
GPU_TAINT_VALUE = "true"
ACCELERATOR_LABEL = "accelerator"
ACCELERATOR_VALUE = "nvidia-gpu"
"""``accelerator: nvidia-gpu`` on every GPU node (the seeds' node selector for GPU DaemonSets)."""
POOL_LABEL = "gpufleet.io/gpu-pool"
"""Name of the GpuNodePool a node belongs to: workloads select their pool with it."""

MIG_CONFIG_LABEL = "nvidia.com/mig.config"
"""Node label the GPU Operator's mig-manager reads: the MIG layout (e.g. ``all-1g.10gb``) to apply."""
DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"
"""Node label that picks the device plugin's config (e.g. a time-slicing config) for that node."""
DEVICE_PLUGIN_DEPLOY_LABEL = "nvidia.com/gpu.deploy.device-plugin"
"""Node label the GPU Operator places its device plugin DaemonSet with. The operator's node labeller
sets it to ``"true"`` on GPU nodes only when it is absent (gpu-operator v26.7.0
``controllers/state_manager.go``, ``gpuWorkloadConfiguration.addGPUStateLabels``: "If a required
state label already exists on the node, honor the current value"), so a pool whose nodes start with
``"false"`` never runs the device plugin: DRA pools (:data:`DRA_ALLOCATION`)."""

DEVICE_PLUGIN_ALLOCATION = "devicePlugin"
"""GPUs advertised as extended resources (``nvidia.com/gpu``) by the NVIDIA device plugin."""
DRA_ALLOCATION = "dra"
"""GPUs published as DRA devices (ResourceSlices) by the NVIDIA DRA driver's kubelet plugin and claimed
through ResourceClaimTemplates (``resource.k8s.io/v1``, Kubernetes 1.34 or later)."""
DRA_GPU_DEVICE_CLASS = "gpu.nvidia.com"
"""DeviceClass of whole GPUs the NVIDIA DRA driver installs (k8s-dra-driver-gpu v25.12.0 chart,
``templates/deviceclass-gpu.yaml``: ``device.driver == 'gpu.nvidia.com' &&
device.attributes['gpu.nvidia.com'].type == 'gpu'``)."""
DRA_MIG_DEVICE_CLASS = "mig.nvidia.com"
"""DeviceClass of MIG devices the NVIDIA DRA driver installs (its ``type`` attribute is ``mig``). The
driver publishes the MIG devices that exist (mig-manager cuts them) with a ``profile`` string
attribute, e.g. ``1g.10gb`` (k8s-dra-driver-gpu v25.12.0 ``cmd/gpu-kubelet-plugin/deviceinfo.go``,
``MigDeviceInfo.GetDevice``)."""
DRA_DRIVER = "gpu.nvidia.com"
"""The NVIDIA DRA driver's name: the domain of its device attributes (``device.attributes['gpu.nvidia.com']``)."""
DRA_MIN_KUBERNETES = (1, 34)
"""``resource.k8s.io/v1`` (DRA GA) is served from Kubernetes 1.34."""

SYSTEM_NODE_SELECTOR = {"gpufleet.io/node-role": "system"}
"""Selector of the system node group (controllers, operators). Same label as ``cluster.SYSTEM_NODE_LABEL``."""

ENVIRONMENT_LABEL = "gpufleet.io/environment"
"""Namespace label naming the stack environment (``dev``, ``staging``, ``prod``); policies treat
``prod`` namespaces as production."""

QUEUE_NAME_LABEL = "kueue.x-k8s.io/queue-name"
"""Label that submits a Job, RayJob or RayCluster to a Kueue LocalQueue."""
WORKLOAD_PRIORITY_CLASS_LABEL = "kueue.x-k8s.io/priority-class"
"""Label naming the Kueue WorkloadPriorityClass of a queued object. Kueue reads it before any pod
PriorityClass (Kueue 0.19 ``jobframework.ExtractPriority``: the label's WorkloadPriorityClass, else
the pods' ``priorityClassName``); gpufleet's WorkloadPriorityClasses carry the PriorityClasses' names
and values (:data:`PRIORITY_CLASSES`)."""

PRIORITY_CLASSES: Mapping[str, str] = {
    "inference": "gpufleet-inference",
    "training": "gpufleet-training",
    "batch": "gpufleet-batch",
}
"""Role → PriorityClass name. Inference preempts; batch never preempts."""

AmiFamily = Literal["al2023", "bottlerocket", "eks-auto-mode"]
"""What the pool's nodes boot: an EKS NVIDIA AMI Karpenter selects (``al2023``, ``bottlerocket``), or
the AMI EKS Auto Mode picks (``eks-auto-mode``, :data:`gpufleet.components.auto_mode.AUTO_MODE_AMI`)."""
Allocation = Literal["devicePlugin", "dra"]
Sharing = Literal["none", "time-slicing", "mps", "mig"]
MigStrategy = Literal["single", "mixed"]

MIG_PROFILES: Mapping[int, Mapping[str, int]] = {
    40: {"1g.5gb": 7, "1g.10gb": 4, "2g.10gb": 3, "3g.20gb": 2, "4g.20gb": 1, "7g.40gb": 1},
    80: {"1g.10gb": 7, "1g.20gb": 4, "2g.20gb": 3, "3g.40gb": 2, "4g.40gb": 1, "7g.80gb": 1},
    141: {"1g.18gb": 7, "1g.35gb": 4, "2g.35gb": 3, "3g.71gb": 2, "4g.71gb": 1, "7g.141gb": 1},
}
"""GPU memory (GiB) → MIG profile → slices of that profile one GPU holds (homogeneous layout).
Source: NVIDIA MIG User Guide, "Supported MIG Profiles" (A100 40GB, A100/H100 80GB, H200 141GB)."""


def mig_slices(instance_type: GpuInstanceType, profile: str) -> int:
    """How many ``profile`` slices one node of ``instance_type`` offers; 0 when it cannot."""
    if not instance_type.mig_capable:
        return 0
    return instance_type.gpus * MIG_PROFILES.get(instance_type.family.gpu_memory_gib, {}).get(profile, 0)


@dataclass(frozen=True)
class GpuPlacement:
    """Plain facts about one GPU NodePool, known before anything is deployed.

    Workload components take a placement to derive tolerations, node selection and the GPU resource
    name, and to check their arguments (e.g. GPUs per replica against ``max_gpus_per_node``).
    """

    pool: str
    """The pool's name (value of :data:`POOL_LABEL` on its nodes)."""
    instance_types: tuple[GpuInstanceType, ...]
    """Every instance type the pool may launch."""
    capacity_types: tuple[str, ...] = ("on-demand",)
    """Karpenter capacity types: ``on-demand``, ``spot``, ``reserved``."""
    gpu_limit: int = 0
    """The pool's ``limits["nvidia.com/gpu"]``: at most this many GPUs at once."""
    ami_family: AmiFamily = "al2023"
    """The NVIDIA AMI the nodes boot (decides which GPU Operator components are needed)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Extra labels on the pool's nodes, besides :meth:`node_labels`' standard ones."""
    sharing: Sharing = "none"
    """How the GPU Operator shares this pool's GPUs."""
    time_slicing_replicas: int = 0
    """With ``time-slicing``: pods that share one GPU."""
    mps_replicas: int = 0
    """With ``mps``: MPS clients (pods) that share one GPU, each limited by the MPS control daemon to
    an equal share (1/replicas) of its memory and compute."""
    no_isolation_acknowledged: bool = False
    """With ``mps``: the pool's owner accepted that MPS clients have no fault isolation (a fatal GPU
    fault in one client fails every client on that GPU); required for MPS in production."""
    mig_profile: str = ""
    """With ``mig``: the one profile every GPU is cut into (e.g. ``1g.10gb``; mig-manager config
    ``all-<profile>``)."""
    mig_strategy: MigStrategy = "mixed"
    """With ``mig``: the GPU Operator's strategy (cluster-wide; the gpu_pools area sets it from
    ``gpufleet:gpuOperator.migStrategy``)."""
    extra_taints: tuple[Mapping[str, str], ...] = ()
    """Taints on the pool's nodes besides the GPU taint (Kubernetes Taint objects, e.g. a taint that
    dedicates the pool to one team); :meth:`tolerations` covers them too."""
    efa: bool = False
    """The pool's nodes get their EFA interfaces (GpuNodePool ``efa``): pods requesting
    :data:`EFA_RESOURCE` make Karpenter attach them, and the EFA security group is on the nodes."""
    allocation: Allocation = "devicePlugin"
    """How pods get the pool's GPUs: ``devicePlugin`` (``nvidia.com/gpu`` limits) or ``dra`` (a
    ResourceClaimTemplate on :attr:`device_class`; the device plugin is off on these nodes)."""

    def node_labels(self) -> dict[str, str]:
        """Every label gpufleet puts on this pool's nodes."""
        labels = {ACCELERATOR_LABEL: ACCELERATOR_VALUE, POOL_LABEL: self.pool, **self.labels}
        if self.sharing == "mig":
            labels[MIG_CONFIG_LABEL] = f"all-{self.mig_profile}"
        elif self.sharing in ("time-slicing", "mps"):
            labels[DEVICE_PLUGIN_CONFIG_LABEL] = self.device_plugin_config
        if self.dra:
            labels[DEVICE_PLUGIN_DEPLOY_LABEL] = "false"
        return labels

    @property
    def dra(self) -> bool:
        """Pods claim this pool's GPUs through DRA (``allocation: dra``)."""
        return self.allocation == DRA_ALLOCATION

    @property
    def device_class(self) -> str:
        """The DeviceClass a DRA claim on this pool names: ``mig.nvidia.com`` on a MIG pool, else
        ``gpu.nvidia.com``; empty on a device-plugin pool."""
        if not self.dra:
            return ""
        return DRA_MIG_DEVICE_CLASS if self.sharing == "mig" else DRA_GPU_DEVICE_CLASS

    @property
    def quota_resource(self) -> str:
        """The ResourceQuota key that counts this pool's GPUs: ``requests.<gpu_resource>`` for the
        device plugin, ``<device class>.deviceclass.resource.k8s.io/devices`` for DRA (the quota
        evaluator of ResourceClaims, Kubernetes ``pkg/quota/v1/evaluator/core/resource_claims.go``,
        ``resourceClaimEvaluator.Usage``)."""
        if self.dra:
            return f"{self.device_class}.deviceclass.resource.k8s.io/devices"
        return f"requests.{self.gpu_resource}"

    @property
    def device_plugin_config(self) -> str:
        """Name of this pool's entry in the device plugin config ConfigMap (``<pool>-time-slicing`` or
        ``<pool>-mps``); empty for whole GPUs and MIG."""
        return f"{self.pool}-{self.sharing}" if self.sharing in ("time-slicing", "mps") else ""

    @property
    def shared_replicas(self) -> int:
        """Pods that share one GPU: the time-slicing or MPS replicas; 0 without such sharing."""
        return {"time-slicing": self.time_slicing_replicas, "mps": self.mps_replicas}.get(self.sharing, 0)

    @property
    def gpu_resource(self) -> str:
        """The resource name pods request on this pool: ``nvidia.com/gpu``, ``nvidia.com/gpu.shared``
        (time-slicing or MPS, renamed by default) or ``nvidia.com/mig-<profile>`` (MIG, mixed strategy).
        On a DRA pool pods claim devices instead; this stays the name quotas are kept in (Kueue maps
        the pool's DeviceClass to it, ``Kueue`` ``deviceClassMappings``)."""
        if self.sharing in ("time-slicing", "mps"):
            return SHARED_GPU_RESOURCE
        if self.sharing == "mig" and self.mig_strategy == "mixed":
            return MIG_RESOURCE_PREFIX + self.mig_profile
        return GPU_RESOURCE

    def gpu_resources_per_node(self, instance_type: GpuInstanceType) -> int:
        """How many :attr:`gpu_resource` units one node of ``instance_type`` advertises."""
        if self.sharing in ("time-slicing", "mps"):
            return instance_type.gpus * self.shared_replicas
        if self.sharing == "mig":
            return mig_slices(instance_type, self.mig_profile)
        return instance_type.gpus

    def node_selector(self) -> dict[str, str]:
        """The node selector of a pod that must run on this pool."""
        return {POOL_LABEL: self.pool}

    def taints(self) -> list[dict[str, str]]:
        """The taints on this pool's nodes (Kubernetes Taint objects)."""
        return [{"key": GPU_TAINT_KEY, "value": GPU_TAINT_VALUE, "effect": "NoSchedule"}, *map(dict, self.extra_taints)]

    def tolerations(self) -> list[dict[str, str]]:
        """Tolerations a pod needs to run on this pool."""
        return [{"key": t["key"], "operator": "Exists", "effect": t["effect"]} for t in self.taints()]

    @property
    def max_gpus_per_node(self) -> int:
        """Physical GPUs of the largest instance type the pool may launch."""
        return max((t.gpus for t in self.instance_types), default=0)

    @property
    def max_resources_per_node(self) -> int:
        """The ceiling of one pod: the most :attr:`gpu_resource` units a node Karpenter launches for
        it brings. That is what a node advertises, except with MIG's ``single`` strategy: slices are
        then advertised as ``nvidia.com/gpu``, which Karpenter counts as physical GPUs when it picks
        an instance type, so a pod asking for more GPUs than the largest type has never gets a node."""
        return max((self.pod_ceiling(t) for t in self.instance_types), default=0)

    def pod_ceiling(self, instance_type: GpuInstanceType) -> int:
        """Most :attr:`gpu_resource` units one pod can get on a node of ``instance_type`` that
        Karpenter launches for it (see :attr:`max_resources_per_node`)."""
        units = self.gpu_resources_per_node(instance_type)
        if self.sharing == "mig" and self.mig_strategy == "single":
            return min(units, instance_type.gpus)
        return units

    @property
    def efa_interfaces(self) -> int:
        """EFA interfaces one pod per node requests on this pool (``vpc.amazonaws.com/efa``, request =
        limit): every interface of the node (the pool's types all have the same count, checked by
        GpuNodePool), so NCCL gets the instance's full inter-node bandwidth. 0 without ``efa``."""
        if not self.efa or not self.instance_types:
            return 0
        return min(t.efa_interfaces for t in self.instance_types)

    def efa_resources(self) -> dict[str, str]:
        """Resource requests (= limits) of a pod using every EFA interface of its node: empty without EFA."""
        return {EFA_RESOURCE: str(self.efa_interfaces)} if self.efa_interfaces else {}

    def efa_env(self) -> list[dict[str, str]]:
        """The NCCL/libfabric environment (:data:`EFA_ENV`) of a pod using EFA; empty without EFA."""
        return [{"name": k, "value": v} for k, v in EFA_ENV.items()] if self.efa_interfaces else []

    @property
    def mig_capable(self) -> bool:
        """Every instance type of the pool can run MIG."""
        return bool(self.instance_types) and all(t.mig_capable for t in self.instance_types)


def pools_tolerations(placements: Iterable[GpuPlacement],
                      first: Iterable[Mapping[str, str]] = ()) -> list[dict[str, str]]:
    """Tolerations a node agent (a DaemonSet such as a device plugin or a driver's kubelet plugin)
    needs to run on every node of these pools: ``first``, then each pool's, each once, in order."""
    tolerations: list[dict[str, str]] = [dict(t) for t in first]
    for placement in placements:
        for toleration in placement.tolerations():
            if toleration not in tolerations:
                tolerations.append(dict(toleration))
    return tolerations


def agent_placements(placements: Sequence[GpuPlacement], *, name: str, what: str,
                     serves: Callable[[GpuPlacement], bool], lacking: str) -> list[GpuPlacement]:
    """``placements`` of a node agent's component: at least one, each a :class:`GpuPlacement` of a
    pool the agent ``serves`` (``what``: the pools' kind, e.g. ``EFA``; ``lacking``: why a pool it does
    not serve is wrong for it); raises ValueError naming the index."""
    placements = list(placements)
    if not placements:
        raise ValueError(f"{name}: placements must name at least one {what} pool")
    for index, placement in enumerate(placements):
        if not isinstance(placement, GpuPlacement):
            raise ValueError(f"{name}: placements[{index}] must be a GpuPlacement, got {type(placement).__name__}")
        if not serves(placement):
            raise ValueError(f"{name}: placements[{index}] (pool {placement.pool!r}) {lacking}")
    return placements
