"""``GpuNodePool``: one Karpenter ``NodePool`` and its ``EC2NodeClass`` for GPU nodes.

The pool is bounded (``limits`` are required: an unbounded GPU pool is an unbounded bill), tainted
``nvidia.com/gpu=true:NoSchedule`` so only GPU workloads land on it, labelled so workloads can select
it, and boots the NVIDIA variant of the chosen AMI family with IMDSv2 enforced and an encrypted gp3
root volume large enough for CUDA images and model weights.

Destroy order: the NodePool goes first (Karpenter deletes its NodeClaims), then the EC2NodeClass, whose
finalizer holds until those nodes are terminated, and only then the Karpenter release and its IAM.
Both deletions wait for the pool's nodes to drain, which takes at most ``termination_grace_period``
(default 24h): their Pulumi delete timeouts are that period plus 20 minutes for the instances to stop.

Every pool has a ``terminationGracePeriod`` (default ``24h``): the longest Karpenter waits for a node's
PodDisruptionBudgets and ``karpenter.sh/do-not-disrupt`` pods before it evicts them anyway. Without it, a
single-replica service whose PDB says ``minAvailable: 1`` blocks expiry, drift and consolidation of
its node for ever, and the node keeps billing.

Shared GPUs and Karpenter: Karpenter's simulation knows only ``nvidia.com/gpu`` (physical GPUs) of an
AWS instance type, so a pod asking for ``nvidia.com/gpu.shared`` (time-slicing or MPS) or
``nvidia.com/mig-<profile>`` (MIG, ``mixed`` strategy) never gets a node from a scaled-to-zero pool
(aws/containers-roadmap#2690, kubernetes-sigs/karpenter#729). Such a pool therefore renders one
``karpenter.sh/v1alpha1`` NodeOverlay per instance type it may launch, named
``<pool>-<instance-type with dots as dashes>``, adding the resource in the amount the device plugin
will advertise on that type (:meth:`GpuPlacement.gpu_resources_per_node`). Its requirements are the
instance type and ``gpufleet.io/gpu-pool In [<pool>]``: Karpenter matches overlay requirements against
each NodePool's instance types together with the pool's ``karpenter.sh/nodepool`` and template labels,
so the overlay never reaches another pool launching the same type (an instance-type requirement alone
would give a whole-GPU pool's nodes a shared resource they do not have). The overlays need Karpenter's
``nodeOverlay`` feature gate (``Karpenter`` ``node_overlays=True``; checked here) and depend on the
Karpenter release, whose ``karpenter-crd`` chart installs the NodeOverlay CRD.

MIG with the ``single`` strategy needs no overlay: the device plugin advertises the slices as
``nvidia.com/gpu``, which Karpenter already knows, counting one per physical GPU. It over-provisions
(a p4de node holds 56 ``1g.10gb`` slices but Karpenter plans for 8) yet always schedules a pod asking
for at most the physical GPUs of a node. An overlay cannot correct the count: NodeOverlay capacity is
documented as adding extended resources only, and raising ``nvidia.com/gpu`` would also make one node
exceed the pool's ``limits.gpus``, which count physical GPUs.

On EKS Auto Mode (``auto_mode``, the cluster's :class:`~gpufleet.components.auto_mode.AutoModeNodes`)
there is no Karpenter release: the NodePool references an ``eks.amazonaws.com/v1`` NodeClass (node role,
subnets, security groups, the root volume as ``ephemeralStorage``), its requirements name Auto Mode's
labels, and the pool depends on the node role's access entry instead. What Auto Mode cannot do is
refused by :mod:`gpufleet.components.auto_mode_pools` (AMI, GPU sharing, a node lifetime past 21 days).

The arguments are checked (:mod:`gpufleet.components._pool_args`) against the GPU instance table
(:mod:`gpufleet.components.gpu_instances`) before anything is registered, and the resulting
:class:`~gpufleet.components.gpu_scheduling.GpuPlacement` (``placement``) is what workload components
are given: its labels and taints are exactly the ones on the NodePool template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Optional, Sequence, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from gpufleet.components import _pool_args as checks
from gpufleet.components import auto_mode as auto
from gpufleet.components import auto_mode_pools as auto_pools
from gpufleet.components._pool_args import TYPE, PoolArgumentError
from gpufleet.components.auto_mode import AutoModeNodes
from gpufleet.components.gpu_scheduling import GPU_RESOURCE, POOL_LABEL, GpuPlacement
from gpufleet.components._validate import check_arg_keys
from gpufleet.components.karpenter import DISCOVERY_TAG, Karpenter

DEFAULT_TERMINATION_GRACE_PERIOD = "24h"
"""Longest Karpenter waits for a draining node's PDBs and do-not-disrupt pods before forcing them."""
DRAIN_TIMEOUT_MARGIN_MINUTES = 20
"""Added to the termination grace period for the Pulumi delete timeouts (instance shutdown, finalizers)."""
INSTANCE_TYPE_KEY = "node.kubernetes.io/instance-type"


class PoolLimits(TypedDict):
    """Most capacity the pool may hold at once (Karpenter ``spec.limits``); all required."""

    gpus: int
    """``nvidia.com/gpu``: physical GPUs. At least one node's GPUs (the largest allowed type)."""
    cpu: int
    """vCPUs. At least the largest allowed type's vCPUs."""
    memory_gib: int
    """Memory in GiB. At least the largest allowed type's memory."""


class DisruptionBudget(TypedDict):
    """How many of the pool's nodes Karpenter may disrupt at once (Karpenter ``Budget``)."""

    nodes: str
    """A count (``"1"``) or percentage (``"10%"``). Required."""
    reasons: NotRequired[Sequence[Literal["Underutilized", "Empty", "Drifted"]]]
    """Disruption reasons the budget applies to. Default all."""
    schedule: NotRequired[str]
    """Cron schedule when the budget starts (UTC); needs ``duration``. Default always active."""
    duration: NotRequired[str]
    """How long it stays active after each ``schedule`` hit, e.g. ``"8h"``. Default always active."""


class PoolDisruption(TypedDict):
    """When Karpenter may remove or replace the pool's nodes."""

    consolidation_policy: NotRequired[Literal["WhenEmpty", "WhenEmptyOrUnderutilized"]]
    """``WhenEmptyOrUnderutilized`` also repacks busy nodes. Default ``WhenEmptyOrUnderutilized``
    (``WhenEmpty`` with ``allocation: dra``, which refuses ``WhenEmptyOrUnderutilized``)."""
    consolidate_after: NotRequired[str]
    """Quiet time before a node is consolidated, e.g. ``"30m"``, or ``"Never"``. Default ``"30m"``
    (GPU nodes take minutes to become ready: do not churn them)."""
    budgets: NotRequired[Sequence[DisruptionBudget]]
    """Disruption budgets. Default ``[{"nodes": "10%"}]``."""


class RootVolume(TypedDict):
    """The encrypted gp3 volume holding container images and ephemeral storage (weights caches)."""

    size_gib: NotRequired[int]
    """Size in GiB (CUDA images are several GiB; weights more). Default 200."""
    iops: NotRequired[int]
    """Provisioned IOPS, 3000-16000. Default 6000."""
    throughput_mibps: NotRequired[int]
    """Throughput in MiB/s, 125-1000. Default 500."""


class Taint(TypedDict):
    """A Kubernetes taint."""

    key: str
    """Taint key, e.g. ``gpufleet.io/dedicated``. Required."""
    value: NotRequired[str]
    """Taint value. Default none."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
    """Taint effect. Required."""


class PoolSharing(TypedDict):
    """How the GPU Operator shares this pool's GPUs (carried into ``placement``)."""

    mode: Literal["none", "time-slicing", "mps", "mig"]
    """``none`` (whole GPUs), ``time-slicing``, ``mps`` (CUDA Multi-Process Service: concurrent clients,
    each limited to 1/replicas of the GPU's memory and compute, but no fault isolation; not on MIG
    or Bottlerocket) or ``mig``. Required."""
    replicas: NotRequired[int]
    """With ``time-slicing``: pods per GPU, 2-64; with ``mps``: MPS clients per GPU, 2-48. Required then."""
    acknowledge_no_isolation: NotRequired[bool]
    """With ``mps``: accept that a fatal GPU fault in one MPS client fails every client sharing that
    GPU. :class:`~gpufleet.components.gpu_operator.GpuOperator` refuses an MPS pool in production
    without it. Default false."""
    mig_profile: NotRequired[str]
    """With ``mig``: the profile every GPU is cut into, e.g. ``1g.10gb``. Required then."""


class GpuNodePoolArgs(TypedDict):
    """Inputs of :class:`GpuNodePool`. The pool's name is the component's name."""

    karpenter: NotRequired[Karpenter]
    """The Karpenter installation that provisions the pool: node role, discovery tag, and the
    release both objects depend on. Exactly one of this and ``auto_mode`` is required."""
    auto_mode: NotRequired[AutoModeNodes]
    """The EKS Auto Mode cluster that provisions the pool (``Cluster.auto_mode``): the pool becomes a
    NodePool on an ``eks.amazonaws.com/v1`` NodeClass with requirements on Auto Mode's labels, and
    ``ami_family``, ``ami_version`` and GPU sharing are refused (AWS picks the AMI and runs the NVIDIA
    device plugin). ``expire_after`` defaults to ``336h`` there and may not exceed ``504h`` (Auto Mode
    replaces nodes after 21 days). Exactly one of this and ``karpenter`` is required."""
    limits: PoolLimits
    """Upper bounds of the pool's capacity. Required."""
    instance_families: NotRequired[Sequence[str]]
    """GPU instance families (all their sizes), e.g. ``["g6e"]``. Exactly one of this and
    ``instance_types`` is required."""
    instance_types: NotRequired[Sequence[str]]
    """GPU instance types, e.g. ``["p4de.24xlarge", "p5.48xlarge"]``."""
    capacity_types: NotRequired[Sequence[Literal["on-demand", "spot", "reserved"]]]
    """Karpenter capacity types (``reserved`` needs ``capacity_reservation_ids``). Default ``["on-demand"]``."""
    capacity_reservation_ids: NotRequired[Sequence[str]]
    """On-demand capacity reservations or capacity blocks (``cr-...``) the pool may use. Default none."""
    ami_family: NotRequired[Literal["al2023", "bottlerocket"]]
    """AMI alias family; Karpenter picks its NVIDIA variant for GPU instances. Default ``al2023``
    (not with ``auto_mode``)."""
    ami_version: NotRequired[str]
    """AMI alias version: ``latest`` or a release such as ``v20260101`` (AL2023) / ``1.40.0``
    (Bottlerocket). Pin it in production: ``latest`` rolls every node when AWS publishes an AMI.
    Default ``latest``."""
    labels: NotRequired[Mapping[str, str]]
    """Extra node labels (not in Kubernetes' or Karpenter's reserved domains). Default none."""
    taints: NotRequired[Sequence[Taint]]
    """Taints besides ``nvidia.com/gpu=true:NoSchedule``, which every pool has. Default none."""
    disruption: NotRequired[PoolDisruption]
    """Consolidation and budgets. Default: see :class:`PoolDisruption`."""
    expire_after: NotRequired[str]
    """Node lifetime before replacement (picks up new AMIs), e.g. ``"720h"``, or ``"Never"``. Default
    ``"720h"`` (with ``auto_mode``: ``"336h"``, at most ``"504h"``)."""
    termination_grace_period: NotRequired[str]
    """Longest a draining node waits for its pods, e.g. ``"2h"``: after it Karpenter evicts pods
    despite their PodDisruptionBudgets or ``karpenter.sh/do-not-disrupt``, so a single-replica
    service cannot hold a node (and its bill) for ever. Also bounds ``pulumi destroy`` of the pool
    (delete timeouts: this plus 20 minutes). Default ``"24h"``."""
    weight: NotRequired[int]
    """Priority among pools that fit a pod, 1-100 (higher first). Default none (0)."""
    root_volume: NotRequired[RootVolume]
    """Root (AL2023) or data (Bottlerocket) volume. Default 200 GiB, 6000 IOPS, 500 MiB/s."""
    sharing: NotRequired[PoolSharing]
    """GPU sharing. Default ``{"mode": "none"}``."""
    mig_strategy: NotRequired[Literal["single", "mixed"]]
    """The GPU Operator's cluster-wide MIG strategy (pass the one the operator runs with): ``mixed``
    advertises ``nvidia.com/mig-<profile>`` (NodeOverlays tell Karpenter about it), ``single``
    advertises the slices as ``nvidia.com/gpu`` (no overlay). Only matters with ``sharing.mode`` ``mig``.
    Default ``"mixed"``."""
    tags: NotRequired[Mapping[str, str]]
    """Tags on the instances, volumes and network interfaces Karpenter creates. Default none."""
    efa: NotRequired[bool]
    """Elastic Fabric Adapter for multi-node training: a security group allowing all traffic among its
    members (EFA's OS-bypass traffic needs it) is created and attached to the nodes, and the placement
    says so (``placement.efa_interfaces``): pods requesting ``vpc.amazonaws.com/efa`` make Karpenter
    launch the node with all of its EFA interfaces. Every instance type must have EFA (p4d, p4de: 4;
    p5, p5e: 32; p5en: 16), all the same number; needs ``vpc_id`` and the EFA device plugin
    (:class:`~gpufleet.components.efa.EfaDevicePlugin`). Default false."""
    vpc_id: NotRequired[pulumi.Input[str]]
    """VPC of the cluster, for the EFA security group. Required with ``efa``."""
    allocation: NotRequired[Literal["devicePlugin", "dra"]]
    """How pods get the GPUs: ``devicePlugin`` (``nvidia.com/gpu`` limits) or ``dra`` (Kubernetes 1.34+:
    the nodes are labelled ``nvidia.com/gpu.deploy.device-plugin: "false"`` so the GPU Operator runs no
    device plugin there, the NVIDIA DRA driver's kubelet plugin publishes the GPUs, and workloads claim
    them with ResourceClaimTemplates). A DRA pool has no time-slicing or MPS, no Bottlerocket, one GPU
    count across its instance types and ``WhenEmpty`` consolidation (Karpenter ignores DRA claims).
    Default ``devicePlugin``."""


class GpuNodePool(pulumi.ComponentResource):
    """A Karpenter ``karpenter.sh/v1`` NodePool and ``karpenter.k8s.aws/v1`` EC2NodeClass for GPUs, plus
    a ``karpenter.sh/v1alpha1`` NodeOverlay per instance type when the pool shares its GPUs (see the
    module docstring), all depending on the Karpenter release (destroyed first, so the controller
    removes their nodes)."""

    placement: GpuPlacement
    """Plain facts for workload components: labels, taints, GPU resource, sharing."""
    node_pool_name: pulumi.Output[str]

    def __init__(self, name: str, args: GpuNodePoolArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, GpuNodePoolArgs, name=TYPE)
        karpenter = args.get("karpenter")
        nodes = args.get("auto_mode")
        if karpenter is None and nodes is None:
            raise ValueError(f"{TYPE}: karpenter is required (the Karpenter component that provisions the pool), "
                             "or auto_mode (Cluster.auto_mode) on an EKS Auto Mode cluster")
        if karpenter is not None and nodes is not None:
            raise ValueError(f"{TYPE}: give karpenter or auto_mode, not both: an EKS Auto Mode cluster provisions "
                             "nodes itself, self-managed Karpenter would compete for the same pods")
        if karpenter is not None and not isinstance(karpenter, Karpenter):
            raise ValueError(f"{TYPE}: karpenter must be the Karpenter component, got {type(karpenter).__name__}")
        if nodes is not None and not isinstance(nodes, AutoModeNodes):
            raise ValueError(f"{TYPE}: auto_mode must be Cluster.auto_mode (AutoModeNodes), got {type(nodes).__name__}")
        spec = pool_spec(name, args, auto_mode=nodes is not None)
        if karpenter is not None and spec.node_overlays and not karpenter.node_overlays:
            raise PoolArgumentError("karpenter", (
                f"must run with node_overlays=True: the pool's {spec.placement.gpu_resource} (sharing.mode "
                f"{spec.placement.sharing!r}) exists for Karpenter only through NodeOverlays, which it ignores "
                "while its nodeOverlay feature gate is off"))
        if spec.placement.efa and args.get("vpc_id") is None:
            raise PoolArgumentError("vpc_id", "is required with efa (the VPC of the EFA security group)")
        self.placement = spec.placement

        super().__init__(TYPE, name, {}, opts)
        efa_group = _efa_security_group(name, args["vpc_id"], spec.tags, parent=self) if spec.placement.efa else None
        # Everything needs the controller (and its CRDs, IAM and queue), or on Auto Mode the node
        # role's access entry, and must be deleted before it.
        provisioner: list[pulumi.Resource] = [karpenter] if karpenter is not None else list(nodes.ready)  # type: ignore[union-attr]
        after_karpenter = pulumi.ResourceOptions(parent=self, depends_on=provisioner)
        # Deleting the pool's objects waits for its nodes to drain (at most the grace period).
        drain = pulumi.CustomTimeouts(delete=spec.delete_timeout)

        efa_group_id = efa_group.id if efa_group is not None else None
        if nodes is not None:
            api_version, kind = auto.NODE_CLASS_API_VERSION, auto.NODE_CLASS_KIND
            class_spec = auto.node_class_spec(
                role=nodes.node_role_name, cluster_name=nodes.cluster_name,
                security_group_ids=[nodes.cluster_security_group_id, *([efa_group_id] if efa_group_id is not None else [])],
                storage=spec.ephemeral_storage or {}, tags=spec.tags, capacity_reservation_ids=spec.capacity_reservation_ids)
        else:
            api_version, kind = "karpenter.k8s.aws/v1", "EC2NodeClass"
            class_spec = _node_class_spec(spec, karpenter, efa_group_id)  # type: ignore[arg-type]
        node_class = k8s.apiextensions.CustomResource(
            f"{name}-nodeclass",
            api_version=api_version,
            kind=kind,
            metadata={"name": name},
            spec=class_spec,
            opts=pulumi.ResourceOptions.merge(after_karpenter, pulumi.ResourceOptions(
                # Its finalizer holds the deletion until the pool's nodes are drained and terminated.
                custom_timeouts=drain,
            )),
        )
        node_pool = k8s.apiextensions.CustomResource(
            f"{name}-nodepool",
            api_version="karpenter.sh/v1",
            kind="NodePool",
            metadata={"name": name},
            spec=spec.node_pool,
            # Deleted before its node class, whose finalizer waits for the pool's nodes to go. The
            # deletion itself cascades (foreground) to the pool's NodeClaims, which drain first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*provisioner, node_class], custom_timeouts=drain),
        )
        for overlay_name, overlay_spec in spec.node_overlays.items():
            k8s.apiextensions.CustomResource(
                f"{name}-overlay-{overlay_name.removeprefix(name + '-')}",
                api_version="karpenter.sh/v1alpha1",
                kind="NodeOverlay",
                metadata={"name": overlay_name},
                spec=overlay_spec,
                opts=after_karpenter,
            )
        self.node_pool_name = node_pool.id.apply(lambda _: name)
        self.register_outputs({"node_pool_name": self.node_pool_name})


@dataclass(frozen=True)
class PoolSpec:
    """The checked plain form of a pool: its placement and the NodePool/EC2NodeClass spec parts."""

    placement: GpuPlacement
    node_pool: dict
    """The NodePool ``spec``."""
    block_devices: list[dict]
    ami_alias: str
    tags: dict[str, str]
    capacity_reservation_ids: list[str]
    delete_timeout: str
    """Pulumi delete timeout of the NodePool and EC2NodeClass: grace period + 20 minutes."""
    node_overlays: dict[str, dict]
    """NodeOverlay name → ``spec``: one per instance type when Karpenter needs to learn the pool's
    shared GPU resource; empty otherwise."""
    auto_mode: bool = False
    """The pool is an EKS Auto Mode NodePool (an ``eks.amazonaws.com/v1`` NodeClass)."""
    ephemeral_storage: Optional[dict] = None
    """On Auto Mode: the NodeClass ``ephemeralStorage`` (the root volume's size, IOPS, throughput)."""


def pool_spec(name: str, args: Mapping, *, auto_mode: bool = False) -> PoolSpec:
    """Check ``args`` against the GPU instance table (and, with ``auto_mode``, against what EKS Auto
    Mode supports: :func:`gpufleet.components.auto_mode_pools.check_args`); raise
    :class:`PoolArgumentError` naming the field."""
    checks.pool_name(name)
    if auto_mode:
        auto_pools.check_args(name, args)
    # Every family of the GPU instance table is one Auto Mode launches (a test keeps it so).
    types = checks.instance_types(args)
    capacity_types = checks.capacity_types(args.get("capacity_types", ["on-demand"]))
    reservations = checks.reservations(args.get("capacity_reservation_ids", []), capacity_types)
    limits = checks.limits(args.get("limits"), types)
    ami_family = auto.AUTO_MODE_AMI if auto_mode else checks.ami_family(args.get("ami_family", "al2023"))
    ami_version = "" if auto_mode else checks.ami_version(args.get("ami_version", "latest"))
    labels = checks.labels(args.get("labels", {}))
    extra_taints = checks.taints(args.get("taints", []))
    sharing = checks.sharing(args.get("sharing", {"mode": "none"}), types)
    if auto_mode:
        auto_pools.check_sharing(sharing)
    else:
        checks.sharing_on_ami(sharing, ami_family)
    efa = checks.efa(args.get("efa", False), types, sharing.mode)
    allocation = args.get("allocation", "devicePlugin")
    policy = checks.consolidation_policy(args.get("disruption", {}), allocation)
    allocation = checks.allocation(allocation, sharing, ami_family, types, str(policy))
    placement = GpuPlacement(
        pool=name,
        instance_types=tuple(types),
        capacity_types=tuple(capacity_types),
        gpu_limit=limits["gpus"],
        ami_family=ami_family,
        labels=labels,
        sharing=sharing.mode,
        time_slicing_replicas=sharing.replicas if sharing.mode == "time-slicing" else 0,
        mps_replicas=sharing.replicas if sharing.mode == "mps" else 0,
        no_isolation_acknowledged=sharing.acknowledge_no_isolation,
        mig_profile=sharing.mig_profile,
        mig_strategy=checks.mig_strategy(args.get("mig_strategy", "mixed")),
        extra_taints=tuple(extra_taints),
        efa=efa,
        allocation=allocation,  # type: ignore[arg-type]
    )
    if auto_mode:
        expire_after = auto_pools.expire_after(args.get("expire_after", auto.DEFAULT_EXPIRE_AFTER))
    else:
        expire_after = checks.expire_after(args.get("expire_after", "720h"))
    grace = args.get("termination_grace_period")
    grace = checks.grace_period(DEFAULT_TERMINATION_GRACE_PERIOD if grace is None else grace)
    template_spec: dict = {
        "nodeClassRef": (auto.node_class_ref(name) if auto_mode
                         else {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": name}),
        "requirements": _requirements(args, capacity_types, auto_mode=auto_mode),
        "taints": placement.taints(),
        "expireAfter": expire_after,
        "terminationGracePeriod": grace,
    }
    node_pool: dict = {
        "template": {"metadata": {"labels": placement.node_labels()}, "spec": template_spec},
        "limits": {GPU_RESOURCE: limits["gpus"], "cpu": limits["cpu"], "memory": f"{limits['memory_gib']}Gi"},
        "disruption": checks.disruption(args.get("disruption", {}),
                                        "WhenEmpty" if placement.dra else "WhenEmptyOrUnderutilized"),
    }
    weight = checks.weight(args.get("weight"))
    if weight is not None:
        node_pool["weight"] = weight
    volume = args.get("root_volume", {})
    tags = checks.tags(args.get("tags", {}))
    if auto_mode:
        auto_pools.check_tags(tags)
    return PoolSpec(
        placement=placement,
        node_pool=node_pool,
        block_devices=checks.block_devices(volume, "al2023" if auto_mode else ami_family),
        ami_alias="" if auto_mode else f"{ami_family}@{ami_version}",
        tags=tags,
        capacity_reservation_ids=reservations,
        delete_timeout=f"{checks.minutes(grace) + DRAIN_TIMEOUT_MARGIN_MINUTES}m",
        node_overlays=node_overlays(placement),
        auto_mode=auto_mode,
        ephemeral_storage=auto_pools.ephemeral_storage(volume) if auto_mode else None,
    )


def node_overlays(placement: GpuPlacement) -> dict[str, dict]:
    """The NodeOverlays (name → ``spec``) that tell Karpenter the shared GPU resource of ``placement``'s
    nodes, one per instance type (the amount differs per type); none for whole GPUs or MIG with the
    ``single`` strategy, whose ``nvidia.com/gpu`` Karpenter already knows."""
    if placement.gpu_resource == GPU_RESOURCE or placement.dra:
        # DRA pods claim devices, not the extended resource an overlay would add.
        return {}
    return {
        f"{placement.pool}-{instance.name.replace('.', '-')}": {
            "requirements": [
                # Template labels take part in overlay matching: this keeps the overlay to this pool.
                {"key": POOL_LABEL, "operator": "In", "values": [placement.pool]},
                {"key": INSTANCE_TYPE_KEY, "operator": "In", "values": [instance.name]},
            ],
            "capacity": {placement.gpu_resource: str(placement.gpu_resources_per_node(instance))},
        }
        for instance in placement.instance_types
    }


def _efa_security_group(name: str, vpc_id: pulumi.Input[str], tags: Mapping[str, str], *, parent: pulumi.Resource) -> aws.ec2.SecurityGroup:
    """The EFA security group: all traffic to and from its own members, nothing else (AWS EC2 user
    guide, "Get started with EFA", step "Prepare an EFA-enabled security group": inbound and
    outbound rules allowing all traffic from/to the security group itself). Nodes also keep the
    cluster security group (discovery tag), which carries their other traffic."""
    return aws.ec2.SecurityGroup(
        f"{name}-efa-sg",
        description=f"EFA among the GPU nodes of pool {name}: all traffic between members only",
        vpc_id=vpc_id,
        ingress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "self": True,
                  "description": "all traffic from EFA peers"}],
        egress=[{"protocol": "-1", "from_port": 0, "to_port": 0, "self": True,
                 "description": "all traffic to EFA peers"}],
        tags={**tags, "Name": f"{name}-efa"},
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _node_class_spec(spec: PoolSpec, karpenter: Karpenter, efa_group_id: Optional[pulumi.Input[str]] = None) -> dict:
    discovery = [{"tags": {DISCOVERY_TAG: karpenter.cluster_name}}]
    node_class: dict = {
        # role (not instanceProfile): Karpenter manages the instance profile for it.
        "role": karpenter.node_role_name,
        "amiSelectorTerms": [{"alias": spec.ami_alias}],
        "subnetSelectorTerms": discovery,
        # Terms are ORed: the discovery-tagged cluster group, plus the pool's EFA group.
        "securityGroupSelectorTerms": discovery + ([{"id": efa_group_id}] if efa_group_id is not None else []),
        "associatePublicIPAddress": False,
        "metadataOptions": {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            # One hop: pods cannot reach the node role's credentials through IMDS.
            "httpPutResponseHopLimit": 1,
            "httpTokens": "required",
        },
        "blockDeviceMappings": spec.block_devices,
    }
    if spec.tags:
        node_class["tags"] = spec.tags
    if spec.capacity_reservation_ids:
        node_class["capacityReservationSelectorTerms"] = [{"id": r} for r in spec.capacity_reservation_ids]
    return node_class


def _requirements(args: Mapping, capacity_types: list[str], *, auto_mode: bool = False) -> list[dict]:
    if args.get("instance_families"):
        family_key = auto.FAMILY_LABEL if auto_mode else "karpenter.k8s.aws/instance-family"
        selection = {"key": family_key, "operator": "In", "values": list(args["instance_families"])}
    else:
        selection = {"key": INSTANCE_TYPE_KEY, "operator": "In", "values": list(args["instance_types"])}
    requirements = [
        selection,
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": capacity_types},
        # Every supported GPU family is x86; the NVIDIA AMI variants are chosen per architecture.
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
    ]
    if not auto_mode:
        # Auto Mode runs Linux only and refuses kubernetes.io/os in NodePool requirements.
        requirements.append({"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]})
    return requirements
