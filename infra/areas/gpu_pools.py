"""Stack area ``gpu_pools``: Karpenter (``gpufleet:karpenter``) and the GPU NodePools
(``gpufleet:gpuPools``).

Each pool is checked against the GPU instance table when the stack configuration is read (the same
checks :class:`~gpufleet.components.gpu_node_pool.GpuNodePool` runs), so a wrong instance type, a GPU
limit below one node or MIG on a GPU without MIG is reported with its ``gpufleet:gpuPools[i]`` path
before anything is planned. Sharing is carried into each pool's placement; the ``gpu_operator`` area
checks its semantics against the environment.

Pools are built with the GPU Operator's configured MIG strategy (``gpufleet:gpuOperator.migStrategy``),
so a MIG pool's placement and NodeOverlays name the resource the device plugin will advertise.
Karpenter's ``nodeOverlay`` feature gate is turned on exactly when some pool needs NodeOverlays
(time-slicing, MPS, or MIG with the ``mixed`` strategy).

With ``gpufleet:cluster.autoMode`` there is no Karpenter to install: every pool is an EKS Auto Mode
NodePool on the cluster's ``auto_mode`` nodes (what Auto Mode refuses is the ``auto_mode`` area's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from gpufleet.components.efa import EfaDevicePlugin
from gpufleet.components.gpu_node_pool import GpuNodePool, PoolArgumentError, node_overlays, pool_spec
from gpufleet.components.gpu_scheduling import DRA_ALLOCATION, DRA_MIG_DEVICE_CLASS, DRA_MIN_KUBERNETES, GpuPlacement
from gpufleet.components.karpenter import Karpenter
from gpufleet.components.karpenter_policy import KARPENTER_VERSION
from gpufleet.infra.areas.base import (
    ConfigModel, DnsLabel, FieldProblem, LabelKey, Labels, Platform, camel_path, label_value_problem,
)
from gpufleet.infra.areas.workload_identity import workload_identity_args

if TYPE_CHECKING:
    from gpufleet.infra.config import StackConfig


class ControllerResourcesConfig(ConfigModel):
    """CPU and memory of each Karpenter controller pod (requests = limits)."""

    cpu: str = Field("1", pattern=r"^[0-9]+(\.[0-9]+)?m?$")
    """CPU. Default ``"1"``."""
    memory: str = Field("1Gi", pattern=r"^[0-9]+(Mi|Gi)$")
    """Memory. Default ``"1Gi"``."""


class KarpenterSection(ConfigModel):
    """Karpenter: controller (on the system nodes, IRSA), IAM, interruption queue."""

    version: str = Field(KARPENTER_VERSION, pattern=r"^1\.14\.[0-9]+$")
    """Chart and controller version, a 1.14 patch release. Default ``1.14.1``."""
    replicas: int = Field(2, ge=1, le=10)
    """Controller replicas (one per system node). Default 2."""
    log_level: Literal["debug", "info", "error"] = "info"
    """Controller log level. Default ``info``."""
    resources: ControllerResourcesConfig = ControllerResourcesConfig()
    """Controller pod CPU and memory."""


class PoolLimitsConfig(ConfigModel):
    """Upper bounds of a pool (Karpenter ``spec.limits``): all required."""

    gpus: int = Field(ge=1)
    """Physical GPUs (``nvidia.com/gpu``); at least one node's GPUs."""
    cpu: int = Field(ge=1)
    """vCPUs; at least the largest instance type's."""
    memory_gib: int = Field(ge=1)
    """Memory in GiB; at least the largest instance type's."""


class BudgetConfig(ConfigModel):
    """A Karpenter disruption budget."""

    nodes: str
    """Nodes disrupted at once: a count (``"1"``) or percentage (``"10%"``)."""
    reasons: Optional[tuple[Literal["Underutilized", "Empty", "Drifted"], ...]] = None
    """Reasons it applies to, each once. Default all."""
    schedule: Optional[str] = None
    """Cron schedule (UTC) when it starts; needs ``duration``. Default always."""
    duration: Optional[str] = None
    """How long it lasts after each schedule hit, e.g. ``8h``. Default always."""

    @field_validator("reasons")
    @classmethod
    def _unique_reasons(cls, value: Optional[tuple[str, ...]]) -> Optional[tuple[str, ...]]:
        # Karpenter's CRD: reasons is a set (x-kubernetes-list-type: set); the API server refuses repeats.
        if value is not None and len(set(value)) != len(value):
            raise ValueError("a reason is listed twice")
        return value


class DisruptionConfig(ConfigModel):
    """When Karpenter may remove or replace a pool's nodes."""

    consolidation_policy: Optional[Literal["WhenEmpty", "WhenEmptyOrUnderutilized"]] = None
    """When Karpenter may consolidate nodes: ``WhenEmptyOrUnderutilized`` or ``WhenEmpty``. Default
    ``WhenEmptyOrUnderutilized``; ``WhenEmpty`` on a pool with ``allocation: dra``, which refuses
    ``WhenEmptyOrUnderutilized`` (Karpenter ignores DRA claims when it consolidates)."""
    consolidate_after: str = "30m"
    """Quiet time before consolidation, or ``Never``. Default ``30m``."""
    budgets: tuple[BudgetConfig, ...] = Field((BudgetConfig(nodes="10%"),), max_length=50)
    """How many nodes Karpenter may disrupt at once, and when. Default one budget of 10%."""


class RootVolumeConfig(ConfigModel):
    """Encrypted gp3 volume for images and ephemeral storage."""

    size_gib: int = Field(200, ge=20, le=16_384)
    """Size of the encrypted gp3 root volume (images, ephemeral storage). Default 200 GiB (gp3: at most 16 TiB)."""
    iops: int = Field(6000, ge=3000, le=80_000)
    """Provisioned gp3 IOPS. Default 6000 (gp3: 3000-80000)."""
    throughput_mibps: int = Field(500, ge=125, le=2000)
    """Provisioned gp3 throughput. Default 500 MiB/s (gp3: 125-2000)."""


class TaintConfig(ConfigModel):
    """A Kubernetes taint."""

    key: LabelKey
    """Taint key."""
    value: Optional[str] = None
    """Taint value. Default none."""

    @field_validator("value")
    @classmethod
    def _value(cls, value: Optional[str]) -> Optional[str]:
        problem = label_value_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
    """Taint effect."""


class SharingConfig(ConfigModel):
    """How the GPU Operator shares a pool's GPUs."""

    mode: Literal["none", "time-slicing", "mps", "mig"] = "none"
    """``none``, ``time-slicing``, ``mps`` (CUDA MPS: concurrent, memory- and compute-limited clients,
    no fault isolation; al2023, no MIG) or ``mig``. Default ``none``."""
    replicas: Optional[int] = Field(None, ge=1, le=64)
    """time-slicing: pods per GPU (2-64); mps: MPS clients per GPU (2-48)."""
    acknowledge_no_isolation: Optional[bool] = None
    """mps: accept that one client's fatal GPU fault fails every client on that GPU; required for
    mps in prod. Default false."""
    mig_profile: Optional[str] = None
    """mig: the profile every GPU is cut into, e.g. ``1g.10gb``."""


class GpuPoolSection(ConfigModel):
    """One GPU pool: a Karpenter NodePool and its EC2NodeClass."""

    name: DnsLabel
    """Pool name (NodePool, EC2NodeClass, ``gpufleet.io/gpu-pool`` label value)."""
    instance_families: tuple[str, ...] = ()
    """GPU instance families, e.g. ``[g6e]`` (or ``instanceTypes``, not both)."""
    instance_types: tuple[str, ...] = ()
    """GPU instance types, e.g. ``[p4de.24xlarge, p5.48xlarge]``."""
    capacity_types: tuple[Literal["on-demand", "spot", "reserved"], ...] = ("on-demand",)
    """Purchase options Karpenter may launch: ``on-demand``, ``spot``, ``reserved`` (capacity reservations). Default ``[on-demand]``."""
    capacity_reservation_ids: tuple[str, ...] = ()
    """Capacity reservations / capacity blocks (``cr-...``) for ``reserved``. Default none."""
    ami_family: Literal["al2023", "bottlerocket"] = "al2023"
    """NVIDIA variant of this AMI family. Default ``al2023``. Not on EKS Auto Mode (it picks the AMI)."""
    ami_version: str = "latest"
    """AMI alias version (pin it in production). Default ``latest``. Not on EKS Auto Mode."""
    limits: PoolLimitsConfig
    """Required: ``{gpus, cpu, memoryGib}``."""
    labels: Labels = {}
    """Extra node labels. Default none."""
    taints: tuple[TaintConfig, ...] = ()
    """Taints besides ``nvidia.com/gpu=true:NoSchedule`` (always set). Default none."""
    disruption: DisruptionConfig = DisruptionConfig()
    """Consolidation and budgets."""
    expire_after: str = "720h"
    """Node lifetime, or ``Never``. Default ``720h`` (EKS Auto Mode: ``336h``, its own default, and at
    most ``504h``, its 21-day node lifetime)."""
    termination_grace_period: Optional[str] = None
    """Longest drain of a node, e.g. ``2h``; after it Karpenter evicts pods despite PDBs and
    do-not-disrupt. Default ``24h`` (the component's)."""
    weight: Optional[int] = Field(None, ge=1, le=100)
    """Priority among pools, 1-100. Default none."""
    root_volume: RootVolumeConfig = RootVolumeConfig()
    """Root/data volume."""
    sharing: SharingConfig = SharingConfig()
    """GPU sharing. Default none."""
    allocation: Literal["devicePlugin", "dra"] = "devicePlugin"
    """How pods get the pool's GPUs: ``devicePlugin`` (``nvidia.com/gpu`` limits) or ``dra`` (Dynamic
    Resource Allocation, Kubernetes 1.34+ (``gpufleet:kubernetesVersion``): the GPU Operator's device
    plugin is kept off the pool's nodes, the NVIDIA DRA driver publishes their GPUs, and workloads claim
    them with ResourceClaimTemplates on ``gpu.nvidia.com``, or ``mig.nvidia.com`` with mode mig). A DRA
    pool has no time-slicing or MPS, no Bottlerocket, one GPU count across its instance types and
    ``WhenEmpty`` consolidation; TrainJobs cannot run there. Default ``devicePlugin``."""
    efa: bool = False
    """Elastic Fabric Adapter for multi-node training: an EFA security group (all traffic among its
    members) on the nodes, every EFA interface attached for pods that request ``vpc.amazonaws.com/efa``,
    and the EFA device plugin. Every instance type must have EFA (p4d/p4de 4, p5/p5e 32, p5en 16
    interfaces), all the same number. Default false."""

    @model_validator(mode="after")
    def _against_instance_facts(self) -> "GpuPoolSection":
        try:
            pool_spec(self.name, self.component_args())
        except PoolArgumentError as error:
            raise FieldProblem(camel_path(error.field), error.problem) from None
        return self

    def component_args(self) -> dict[str, Any]:
        """The :class:`GpuNodePoolArgs` of this pool, without ``karpenter`` and ``tags``."""
        args: dict[str, Any] = {
            "capacity_types": list(self.capacity_types),
            "limits": {"gpus": self.limits.gpus, "cpu": self.limits.cpu, "memory_gib": self.limits.memory_gib},
            "labels": dict(self.labels),
            "taints": [taint.model_dump(exclude_none=True) for taint in self.taints],
            "disruption": {
                "consolidation_policy": self.disruption.consolidation_policy or (
                    "WhenEmpty" if self.allocation == DRA_ALLOCATION else "WhenEmptyOrUnderutilized"),
                "consolidate_after": self.disruption.consolidate_after,
                "budgets": [budget.model_dump(exclude_none=True) for budget in self.disruption.budgets],
            },
            "root_volume": self.root_volume.model_dump(),
            "sharing": self.sharing.model_dump(exclude_none=True),
        }
        # Set only when the stack sets them: the component's defaults depend on the provisioner
        # (EKS Auto Mode refuses an AMI and lets a node live 336h by default).
        for key in ("ami_family", "ami_version", "expire_after"):
            if key in self.model_fields_set:
                args[key] = getattr(self, key)
        if self.efa:
            args["efa"] = True
        if self.allocation != "devicePlugin":
            args["allocation"] = self.allocation
        if self.instance_families:
            args["instance_families"] = list(self.instance_families)
        if self.instance_types:
            args["instance_types"] = list(self.instance_types)
        if self.capacity_reservation_ids:
            args["capacity_reservation_ids"] = list(self.capacity_reservation_ids)
        if self.termination_grace_period is not None:
            args["termination_grace_period"] = self.termination_grace_period
        if self.weight is not None:
            args["weight"] = self.weight
        return args


def pool_args(config: StackConfig, pool: GpuPoolSection) -> dict[str, Any]:
    """The :class:`GpuNodePoolArgs` of ``pool`` in this stack (without ``karpenter`` and ``tags``):
    built with the GPU Operator's cluster-wide MIG strategy."""
    return {**pool.component_args(), "mig_strategy": config.gpu_operator.mig_strategy}


_last_placements: Optional[tuple[StackConfig, dict[str, GpuPlacement]]] = None
"""The last config :func:`configured_placements` was asked about, and its answer. Held strongly, so
the identity check cannot match a new config at a reused address; the config is frozen, so the
answer cannot go stale (a ``model_copy`` is a new object)."""


def configured_placements(config: StackConfig) -> dict[str, GpuPlacement]:
    """Placement of every valid pool, as :func:`compose` builds it (invalid pools are reported by
    their section), for the cross-checks of the areas that place workloads on the pools.

    Computed once per config: every area's cross-check and :func:`compose` ask for the same one."""
    global _last_placements
    if _last_placements is None or _last_placements[0] is not config:
        found = {}
        for pool in config.gpu_pools:
            try:
                found[pool.name] = pool_spec(pool.name, pool_args(config, pool), auto_mode=config.cluster.auto_mode).placement
            except PoolArgumentError:
                continue
        _last_placements = (config, found)
    return dict(_last_placements[1])


def needs_node_overlays(config: StackConfig) -> bool:
    """Some valid pool shares its GPUs in a way Karpenter learns only from NodeOverlays."""
    return any(node_overlays(placement) for placement in configured_placements(config).values())


def cross_check(config: StackConfig) -> list[str]:
    """Pool names are unique (they name cluster-scoped NodePools and EC2NodeClasses); DRA pools need
    Kubernetes 1.34+, and the MIG ones one Kueue resource name between them."""
    problems = []
    seen: dict[str, int] = {}
    for index, pool in enumerate(config.gpu_pools):
        if pool.name in seen:
            problems.append(f"gpufleet:gpuPools[{index}].name: {pool.name!r} is already the name of gpuPools[{seen[pool.name]}]")
        seen.setdefault(pool.name, index)
    return problems + dra_problems(config)


def dra_problems(config: StackConfig) -> list[str]:
    """``allocation: dra`` needs ``resource.k8s.io/v1`` (Kubernetes 1.34+); and Kueue maps each
    DeviceClass to one resource name (``resources.deviceClassMappings``), so the DRA MIG pools, which
    all claim ``mig.nvidia.com``, must agree on the resource their quotas are kept in."""
    problems = []
    version = tuple(int(part) for part in config.kubernetes_version.split(".")[:2])
    mig_resources: dict[str, int] = {}
    placements = configured_placements(config)
    for index, pool in enumerate(config.gpu_pools):
        if pool.allocation != DRA_ALLOCATION:
            continue
        if version < DRA_MIN_KUBERNETES:
            problems.append(
                f"gpufleet:gpuPools[{index}].allocation: dra needs Kubernetes {'.'.join(map(str, DRA_MIN_KUBERNETES))} "
                f"or later (resource.k8s.io/v1 is GA there), but gpufleet:kubernetesVersion is "
                f"{config.kubernetes_version!r}; raise gpufleet:kubernetesVersion or use allocation devicePlugin")
        placement = placements.get(pool.name)
        if placement is not None and placement.sharing == "mig":
            first = mig_resources.setdefault(placement.gpu_resource, index)
            others = [i for r, i in mig_resources.items() if r != placement.gpu_resource]
            if others and first == index:
                problems.append(
                    f"gpufleet:gpuPools[{index}].sharing.migProfile: DRA MIG pools all claim {DRA_MIG_DEVICE_CLASS}, "
                    f"which Kueue maps to one resource name, but this pool's {placement.gpu_resource} differs from "
                    f"gpuPools[{others[0]}]'s; give the DRA MIG pools one profile (or set "
                    "gpufleet:gpuOperator.migStrategy single)")
    return problems


def compose(platform: Platform) -> None:
    """Karpenter first (with the NodeOverlay feature gate when a pool needs it), then one GpuNodePool
    per pool (each depends on Karpenter); on EKS Auto Mode no Karpenter, and the pools are Auto Mode's."""
    config = platform.config
    cluster = platform.cluster
    provisioner: dict[str, Any]
    if config.cluster.auto_mode:
        provisioner = {"auto_mode": cluster.auto_mode}
    else:
        provisioner = {"karpenter": _karpenter(platform)}
    # The AWS provider's default tags do not reach instances Karpenter launches: tag them here.
    instance_tags = {"gpufleet:stack": platform.stack, "gpufleet:environment": config.environment, **config.tags}
    efa_pools: list[GpuNodePool] = []
    for pool in config.gpu_pools:
        node_pool = GpuNodePool(
            pool.name,
            {**pool_args(config, pool), **provisioner, "tags": instance_tags,
             **({"vpc_id": platform.network.vpc_id} if pool.efa else {})},
            opts=platform.opts,
        )
        platform.placements[pool.name] = node_pool.placement
        if pool.efa:
            efa_pools.append(node_pool)
    if efa_pools:
        # Advertises vpc.amazonaws.com/efa on the EFA pools' nodes (tolerating their taints).
        platform.components["efa-device-plugin"] = EfaDevicePlugin(
            "efa-device-plugin", {"placements": [p.placement for p in efa_pools],
                                  "wait_for": [provisioner["karpenter"]] if "karpenter" in provisioner else efa_pools},
            opts=platform.opts)


def _karpenter(platform: Platform) -> Karpenter:
    """The self-managed Karpenter installation (with the NodeOverlay feature gate when a pool needs it)."""
    config = platform.config
    cluster = platform.cluster
    section = config.karpenter
    karpenter = Karpenter(
        "karpenter",
        {
            "cluster_name": cluster.cluster_name,
            **workload_identity_args(platform),
            "cluster_security_group_id": cluster.cluster_security_group_id,
            "version": section.version,
            "replicas": section.replicas,
            "log_level": section.log_level,
            "controller_resources": {"cpu": section.resources.cpu, "memory": section.resources.memory},
            "node_overlays": needs_node_overlays(config),
        },
        opts=platform.opts,
    )
    platform.components["karpenter"] = karpenter
    return karpenter
