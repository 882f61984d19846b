"""How GPU workloads find GPU nodes: the names every gpufleet component agrees on.

A :class:`GpuNodePool` labels and taints its nodes; every workload component (InferenceService,
RayCluster, Kueue ResourceFlavor, ...) derives its tolerations and node selection from the pool's
:class:`GpuPlacement` instead of repeating label strings, so a workload always fits the pool it names.
The policies use the same constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping

from gpufleet.components.gpu_instances import GpuInstanceType

GPU_RESOURCE = "nvidia.com/gpu"
"""The extended resource the NVIDIA device plugin advertises (whole GPUs, or MIG slices with the
``single`` strategy)."""
SHARED_GPU_RESOURCE = "nvidia.com/gpu.shared"
"""The resource name of a time-sliced GPU when the device plugin renames shared replicas."""
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"
"""Prefix of MIG slice resources with the ``mixed`` strategy, e.g. ``nvidia.com/mig-1g.10gb``."""

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

AmiFamily = Literal["al2023", "bottlerocket"]
Sharing = Literal["none", "time-slicing", "mig"]
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
    mig_profile: str = ""
    """With ``mig``: the one profile every GPU is cut into (e.g. ``1g.10gb``; mig-manager config
    ``all-<profile>``)."""
    mig_strategy: MigStrategy = "mixed"
    """With ``mig``: the GPU Operator's strategy (cluster-wide; the gpu_pools area sets it from
    ``gpufleet:gpuOperator.migStrategy``)."""
    extra_taints: tuple[Mapping[str, str], ...] = ()
    """Taints on the pool's nodes besides the GPU taint (Kubernetes Taint objects, e.g. a taint that
    dedicates the pool to one team); :meth:`tolerations` covers them too."""

    def node_labels(self) -> dict[str, str]:
        """Every label gpufleet puts on this pool's nodes."""
        labels = {ACCELERATOR_LABEL: ACCELERATOR_VALUE, POOL_LABEL: self.pool, **self.labels}
        if self.sharing == "mig":
            labels[MIG_CONFIG_LABEL] = f"all-{self.mig_profile}"
        elif self.sharing == "time-slicing":
            labels[DEVICE_PLUGIN_CONFIG_LABEL] = self.device_plugin_config
        return labels

    @property
    def device_plugin_config(self) -> str:
        """Name of this pool's entry in the device plugin config ConfigMap (time-slicing)."""
        return f"{self.pool}-time-slicing" if self.sharing == "time-slicing" else ""

    @property
    def gpu_resource(self) -> str:
        """The resource name pods request on this pool: ``nvidia.com/gpu``, ``nvidia.com/gpu.shared``
        (time-slicing, renamed by default) or ``nvidia.com/mig-<profile>`` (MIG, mixed strategy)."""
        if self.sharing == "time-slicing":
            return SHARED_GPU_RESOURCE
        if self.sharing == "mig" and self.mig_strategy == "mixed":
            return MIG_RESOURCE_PREFIX + self.mig_profile
        return GPU_RESOURCE

    def gpu_resources_per_node(self, instance_type: GpuInstanceType) -> int:
        """How many :attr:`gpu_resource` units one node of ``instance_type`` advertises."""
        if self.sharing == "time-slicing":
            return instance_type.gpus * self.time_slicing_replicas
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
    def mig_capable(self) -> bool:
        """Every instance type of the pool can run MIG."""
        return bool(self.instance_types) and all(t.mig_capable for t in self.instance_types)
