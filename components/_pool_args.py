"""Checks of :class:`~gpufleet.components.gpu_node_pool.GpuNodePoolArgs` values, run before anything is
registered (by the component, and by the ``gpu_pools`` stack area when it reads the stack config).

Each check takes one argument as given, raises :class:`PoolArgumentError` naming its field path
(``limits.gpus``, ``taints[1].effect``) when it is wrong, and returns it in the form the Karpenter
objects use. The limits and sharing checks compare against the GPU instance table
(:mod:`gpufleet.components.gpu_instances`): a pool too small for one node, or MIG on a GPU without it,
is refused here rather than by a Karpenter that never launches a node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from gpufleet.components.gpu_instances import EFA_INTERFACES, FAMILIES, INSTANCE_TYPES, GpuInstanceType, instance_types_of
from gpufleet.components.gpu_scheduling import (
    ACCELERATOR_LABEL,
    DEVICE_PLUGIN_CONFIG_LABEL,
    DEVICE_PLUGIN_DEPLOY_LABEL,
    DRA_ALLOCATION,
    GPU_TAINT_KEY,
    MIG_CONFIG_LABEL,
    MIG_PROFILES,
    MPS_MAX_REPLICAS,
    POOL_LABEL,
    mig_slices,
)

TYPE = "gpufleet:karpenter:GpuNodePool"
"""The component's type token, which every error message starts with."""

CAPACITY_TYPES = ("on-demand", "spot", "reserved")
CONSOLIDATION_POLICIES = ("WhenEmpty", "WhenEmptyOrUnderutilized")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
BUDGET_REASONS = ("Underutilized", "Empty", "Drifted")
AMI_FAMILIES = ("al2023", "bottlerocket")
MIG_STRATEGIES = ("single", "mixed")
ALLOCATIONS = ("devicePlugin", "dra")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DURATION = re.compile(r"^(([0-9]+(s|m|h))+|Never)$")
_GRACE = re.compile(r"^([0-9]+(s|m|h))+$")
_BUDGET_NODES = re.compile(r"^((100|[0-9]{1,2})%|[0-9]+)$")
_BUDGET_DURATION = re.compile(r"^(([0-9]+(h|m))|([0-9]+h[0-9]+m))(0s)?$")
_AMI_VERSION = re.compile(r"^(latest|v\d{8}|\d+\.\d+\.\d+)$")

# Label domains Karpenter manages or refuses on a NodePool template (besides hostname/nodepool).
_RESTRICTED_DOMAINS = ("kubernetes.io", "k8s.io", "karpenter.sh", "karpenter.k8s.aws")
_ALLOWED_DOMAINS = ("node.kubernetes.io", "node-restriction.kubernetes.io")
_OWN_LABELS = {ACCELERATOR_LABEL, POOL_LABEL, MIG_CONFIG_LABEL, DEVICE_PLUGIN_CONFIG_LABEL, DEVICE_PLUGIN_DEPLOY_LABEL}
_RESTRICTED_TAGS = ("eks:eks-cluster-name", "karpenter.sh/nodepool", "karpenter.sh/nodeclaim", "karpenter.k8s.aws/ec2nodeclass")


class PoolArgumentError(ValueError):
    """An invalid :class:`GpuNodePoolArgs` value; ``field`` is its path (e.g. ``limits.gpus``)."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"{TYPE}: {field} {problem}")


def pool_name(name: object) -> str:
    """The pool's name names cluster-scoped objects and a label value: a DNS label."""
    if not isinstance(name, str) or not _DNS_LABEL.match(name):
        raise PoolArgumentError("name", f"must be a DNS label (lowercase letters, digits, '-'; at most 63), got {name!r}")
    return name


def instance_types(args: Mapping) -> list[GpuInstanceType]:
    families = args.get("instance_families")
    types = args.get("instance_types")
    if bool(families) == bool(types):
        raise PoolArgumentError("instance_families", "or instance_types: give exactly one of them (a non-empty list)")
    if families:
        if isinstance(families, str):
            raise PoolArgumentError("instance_families", f"must be a list of families, got the string {families!r}")
        for index, family in enumerate(families):
            if family not in FAMILIES:
                raise PoolArgumentError(f"instance_families[{index}]", f"{family!r} is not a GPU instance family gpufleet knows ({', '.join(FAMILIES)})")
        if len(set(families)) != len(families):
            raise PoolArgumentError("instance_families", "must not repeat a family")
        return instance_types_of(families=families)
    if isinstance(types, str):
        raise PoolArgumentError("instance_types", f"must be a list of instance types, got the string {types!r}")
    for index, instance_type in enumerate(types):
        if instance_type not in INSTANCE_TYPES:
            raise PoolArgumentError(f"instance_types[{index}]", f"{instance_type!r} is not a GPU instance type gpufleet knows "
                                                    f"(families {', '.join(FAMILIES)})")
    if len(set(types)) != len(types):
        raise PoolArgumentError("instance_types", "must not repeat a type")
    return instance_types_of(types=types)


def capacity_types(values: Sequence[str]) -> list[str]:
    if isinstance(values, str) or not values:
        raise PoolArgumentError("capacity_types", f"must be a non-empty list of {', '.join(CAPACITY_TYPES)}, got {values!r}")
    for index, value in enumerate(values):
        if value not in CAPACITY_TYPES:
            raise PoolArgumentError(f"capacity_types[{index}]", f"must be one of {', '.join(map(repr, CAPACITY_TYPES))}, got {value!r}")
    if len(set(values)) != len(values):
        raise PoolArgumentError("capacity_types", "must not repeat a capacity type")
    return list(values)


def reservations(ids: Sequence[str], capacity_types: list[str]) -> list[str]:
    if isinstance(ids, str):
        raise PoolArgumentError("capacity_reservation_ids", f"must be a list of reservation ids, got the string {ids!r}")
    for index, reservation in enumerate(ids):
        if not isinstance(reservation, str) or not re.fullmatch(r"cr-[0-9a-z]+", reservation):
            raise PoolArgumentError(f"capacity_reservation_ids[{index}]", f"must be a capacity reservation id like 'cr-0123abcd', got {reservation!r}")
    if "reserved" in capacity_types and not ids:
        raise PoolArgumentError("capacity_types", "includes 'reserved' but capacity_reservation_ids is empty: Karpenter would find no reservation")
    if ids and "reserved" not in capacity_types:
        raise PoolArgumentError("capacity_reservation_ids", "is set but capacity_types does not include 'reserved'")
    return list(ids)


def limits(limits: Optional[Mapping], types: list[GpuInstanceType]) -> dict[str, int]:
    if not isinstance(limits, Mapping):
        raise PoolArgumentError("limits", "is required (gpus, cpu, memory_gib): a GPU pool without limits can grow without bound")
    result = {}
    for key in ("gpus", "cpu", "memory_gib"):
        value = limits.get(key)
        if value is None:
            raise PoolArgumentError(f"limits.{key}", "is required")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise PoolArgumentError(f"limits.{key}", f"must be a positive integer, got {value!r}")
        result[key] = value
    unknown = sorted(set(limits) - set(result))
    if unknown:
        raise PoolArgumentError("limits", f"has unknown keys {unknown} (gpus, cpu, memory_gib)")
    for key, what, attribute in (("gpus", "GPUs", "gpus"), ("cpu", "vCPUs", "vcpus"), ("memory_gib", "GiB of memory", "memory_gib")):
        largest = max(types, key=lambda t: getattr(t, attribute))
        need = getattr(largest, attribute)
        if result[key] < need:
            raise PoolArgumentError(f"limits.{key}", f"({result[key]}) is below one node's {what} ({need} on {largest.name}): "
                                         f"raise it or drop the larger instance types")
    return result


def labels(labels: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(labels, Mapping):
        raise PoolArgumentError("labels", f"must be a mapping of label keys to values, got {type(labels).__name__}")
    for key, value in labels.items():
        prefix, _, label = str(key).rpartition("/")
        if not _LABEL_NAME.match(label) or (prefix and (len(prefix) > 253 or not _LABEL_PREFIX.match(prefix))):
            raise PoolArgumentError(f"labels[{key!r}]", "is not a valid label key")
        domain = prefix.lower()
        if domain and domain not in _ALLOWED_DOMAINS and any(domain == d or domain.endswith("." + d) for d in _RESTRICTED_DOMAINS):
            raise PoolArgumentError(f"labels[{key!r}]", f"is in a domain Kubernetes or Karpenter reserves ({domain}); "
                                            "Karpenter sets its well-known labels itself")
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            raise PoolArgumentError(f"labels[{key!r}]", f"value {value!r} is not a valid label value")
    clashes = sorted(set(labels) & _OWN_LABELS)
    if clashes:
        raise PoolArgumentError("labels", f"must not set gpufleet's own node labels {clashes} (derived from the pool and sharing)")
    return dict(labels)


def taints(taints: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    if isinstance(taints, (str, Mapping)):
        raise PoolArgumentError("taints", "must be a list of taints (key, value, effect)")
    rendered = []
    for index, taint in enumerate(taints):
        where = f"taints[{index}]"
        unknown = sorted(set(taint) - {"key", "value", "effect"})
        if unknown:
            raise PoolArgumentError(where, f"has unknown keys {unknown} (key, value, effect)")
        key = taint.get("key")
        prefix, _, label = str(key).rpartition("/")
        if not key or not _LABEL_NAME.match(label) or (prefix and not _LABEL_PREFIX.match(prefix)):
            raise PoolArgumentError(f"{where}.key", f"is not a valid taint key: {key!r}")
        if key == GPU_TAINT_KEY:
            raise PoolArgumentError(f"{where}.key", f"{GPU_TAINT_KEY} is the GPU taint every pool already has")
        effect = taint.get("effect")
        if effect not in TAINT_EFFECTS:
            raise PoolArgumentError(f"{where}.effect", f"must be one of {', '.join(TAINT_EFFECTS)}, got {effect!r}")
        item = {"key": key, "effect": effect}
        if "value" in taint:
            value = taint["value"]
            if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
                raise PoolArgumentError(f"{where}.value", f"{value!r} is not a valid taint value")
            item = {"key": key, "value": value, "effect": effect}
        rendered.append(item)
    if len({(t["key"], t["effect"]) for t in rendered}) != len(rendered):
        raise PoolArgumentError("taints", "repeats a key and effect")
    return rendered


@dataclass(frozen=True)
class CheckedSharing:
    """A checked ``sharing`` argument."""

    mode: str
    """``none``, ``time-slicing``, ``mps`` or ``mig``."""
    replicas: int = 0
    """Pods per GPU with ``time-slicing`` or ``mps``; 0 otherwise."""
    mig_profile: str = ""
    """The MIG profile with ``mig``; empty otherwise."""
    acknowledge_no_isolation: bool = False
    """With ``mps``: the owner accepts that MPS clients are not isolated from each other's faults."""


SHARING_MODES = ("none", "time-slicing", "mps", "mig")
_SHARING_KEYS = {"mode", "replicas", "mig_profile", "acknowledge_no_isolation"}


def sharing(sharing: Mapping, types: list[GpuInstanceType]) -> CheckedSharing:
    if not isinstance(sharing, Mapping):
        raise PoolArgumentError("sharing", "must be a mapping with mode (none, time-slicing, mps, mig)")
    unknown = sorted(set(sharing) - _SHARING_KEYS)
    if unknown:
        raise PoolArgumentError("sharing", f"has unknown keys {unknown} ({', '.join(sorted(_SHARING_KEYS))})")
    mode = sharing.get("mode", "none")
    replicas = sharing.get("replicas")
    profile = sharing.get("mig_profile")
    acknowledged = sharing.get("acknowledge_no_isolation")
    if acknowledged is not None and not isinstance(acknowledged, bool):
        raise PoolArgumentError("sharing.acknowledge_no_isolation", f"must be true or false, got {acknowledged!r}")
    if acknowledged is not None and mode != "mps":
        raise PoolArgumentError("sharing.acknowledge_no_isolation", f"only applies to mode 'mps' (mode is {mode!r})")
    if mode == "none":
        if replicas is not None or profile is not None:
            raise PoolArgumentError("sharing", "sets replicas or mig_profile but mode is 'none'")
        return CheckedSharing("none")
    if mode == "time-slicing":
        if profile is not None:
            raise PoolArgumentError("sharing.mig_profile", "is set but mode is 'time-slicing'")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or not 2 <= replicas <= 64:
            raise PoolArgumentError("sharing.replicas", f"must be an integer from 2 to 64 with time-slicing, got {replicas!r}")
        return CheckedSharing("time-slicing", replicas=replicas)
    if mode == "mps":
        if profile is not None:
            # k8s-device-plugin README, "With CUDA MPS": sharing with MPS is not supported on devices
            # with MIG enabled (and only full GPUs, nvidia.com/gpu, can be MPS-shared).
            raise PoolArgumentError("sharing.mig_profile", "is set but mode is 'mps': the NVIDIA device plugin cannot "
                                               "share MIG devices with MPS (MPS works on whole GPUs only); "
                                               "use mode 'mig' or drop mig_profile")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or not 2 <= replicas <= MPS_MAX_REPLICAS:
            raise PoolArgumentError("sharing.replicas", f"must be an integer from 2 to {MPS_MAX_REPLICAS} with mps "
                                            f"(MPS serves at most {MPS_MAX_REPLICAS} clients per GPU), got {replicas!r}")
        return CheckedSharing("mps", replicas=replicas, acknowledge_no_isolation=bool(acknowledged))
    if mode == "mig":
        if replicas is not None:
            raise PoolArgumentError("sharing.replicas", "is set but mode is 'mig' (MIG slices are fixed by mig_profile)")
        unable = sorted({t.family.family for t in types if not t.mig_capable})
        if unable:
            models = ", ".join(f"{f} ({FAMILIES[f].gpu_model})" for f in unable)
            raise PoolArgumentError("sharing.mode", f"is 'mig' but {models} cannot run Multi-Instance GPU "
                                        "(MIG needs A100, H100 or H200: p4d, p4de, p5, p5e, p5en)")
        if not isinstance(profile, str) or not profile:
            raise PoolArgumentError("sharing.mig_profile", "is required with mode 'mig', e.g. '1g.10gb'")
        misfits = sorted({t.name for t in types if mig_slices(t, profile) == 0})
        if misfits:
            memory = sorted({t.family.gpu_memory_gib for t in types if t.name in misfits})
            offered = sorted({p for m in memory for p in MIG_PROFILES.get(m, {})})
            raise PoolArgumentError("sharing.mig_profile", f"{profile!r} does not exist on {', '.join(misfits)} "
                                               f"(profiles there: {', '.join(offered)})")
        return CheckedSharing("mig", mig_profile=profile)
    raise PoolArgumentError("sharing.mode", f"must be one of {', '.join(map(repr, SHARING_MODES))}, got {mode!r}")


def sharing_on_ami(sharing: CheckedSharing, ami_family: str) -> None:
    """Time-slicing and MPS are configured in the GPU Operator's device plugin, which does not run on
    Bottlerocket (its AMI ships its own plugin, whose ``device-sharing-strategy`` setting offers
    ``time-slicing`` and ``mig`` but no MPS, and no MPS control daemon)."""
    if sharing.mode == "mps" and ami_family == "bottlerocket":
        raise PoolArgumentError("sharing.mode", "is 'mps' but ami_family is 'bottlerocket': Bottlerocket's own NVIDIA "
                                    "device plugin has no MPS sharing strategy and the GPU Operator's plugin (with "
                                    "its MPS control daemon) is off there; use ami_family 'al2023'")


def efa(value: object, types: list[GpuInstanceType], sharing_mode: str) -> bool:
    """``efa``: only on pools whose every instance type has EFA interfaces, all the same number (a pod
    requests every interface of its node: 4 on a p5 would leave 28 idle, 32 never fit a p4d), and
    with whole GPUs (one training pod per node uses the node's interfaces)."""
    if not isinstance(value, bool):
        raise PoolArgumentError("efa", f"must be true or false, got {value!r}")
    if not value:
        return False
    without = sorted(t.name for t in types if t.efa_interfaces == 0)
    if without:
        with_efa = ", ".join(f"{name} ({count})" for name, count in EFA_INTERFACES.items())
        raise PoolArgumentError("efa", f"is true but {', '.join(without)} {'has' if len(without) == 1 else 'have'} no EFA "
                                       f"interfaces gpufleet knows of (EFA types: {with_efa})")
    counts = sorted({t.efa_interfaces for t in types})
    if len(counts) > 1:
        detail = ", ".join(f"{t.name} {t.efa_interfaces}" for t in types)
        raise PoolArgumentError("efa", f"needs instance types with the same number of EFA interfaces (pods request "
                                       f"all of a node's), got {detail}: split them into pools")
    if sharing_mode != "none":
        raise PoolArgumentError("efa", f"is true but sharing.mode is {sharing_mode!r}: EFA serves one multi-node "
                                       "training pod per node on whole GPUs")
    return True


def allocation(value: object, sharing: CheckedSharing, ami_family: str, types: list[GpuInstanceType],
               consolidation_policy: str) -> str:
    """``allocation``: ``devicePlugin`` or ``dra``. A DRA pool runs the NVIDIA DRA driver's kubelet
    plugin instead of the device plugin, so what only the device plugin does cannot be asked of it:

    - time-slicing and MPS are the device plugin's sharing (its config's ``sharing`` entries); the DRA
      driver shares a device only among the containers of one claim;
    - Bottlerocket's NVIDIA variants run their own device plugin, which no node label turns off;
    - Karpenter v1.14 ignores DRA requests when it sizes and consolidates nodes
      (karpenter-provider-aws v1.14.1 ``charts/karpenter/values.yaml`` ``settings.ignoreDRARequests:
      true``): it would launch the cheapest type the pool allows whatever GPU count a claim asks for,
      and consolidation (``WhenEmptyOrUnderutilized``) would move claims onto nodes whose GPUs are
      taken. A DRA pool therefore has one GPU count across its instance types and consolidates only
      empty nodes (``WhenEmpty``)."""
    if value not in ALLOCATIONS:
        raise PoolArgumentError("allocation", f"must be one of {', '.join(map(repr, ALLOCATIONS))}, got {value!r}")
    if value != DRA_ALLOCATION:
        return str(value)
    if sharing.mode in ("time-slicing", "mps"):
        raise PoolArgumentError("allocation", f"is 'dra' but sharing.mode is {sharing.mode!r}: {sharing.mode} is the "
                                              "NVIDIA device plugin's sharing, and the device plugin does not run on a "
                                              "DRA pool; use mode 'none' or 'mig', or allocation 'devicePlugin'")
    if ami_family == "bottlerocket":
        raise PoolArgumentError("allocation", "is 'dra' but ami_family is 'bottlerocket': its NVIDIA variant runs its "
                                              "own device plugin, which would advertise the GPUs the DRA driver "
                                              "allocates a second time; use ami_family 'al2023'")
    counts = sorted({t.gpus for t in types})
    if len(counts) > 1:
        detail = ", ".join(f"{t.name} {t.gpus}" for t in types)
        raise PoolArgumentError("allocation", f"is 'dra' but the instance types have different GPU counts ({detail}): "
                                              "Karpenter ignores DRA claims when it picks a type "
                                              "(settings.ignoreDRARequests), so a claim for more GPUs than the cheapest "
                                              "type has would never get a node; list types with one GPU count "
                                              "(instance_types) or split them into pools")
    if consolidation_policy == "WhenEmptyOrUnderutilized":
        raise PoolArgumentError("disruption.consolidation_policy", "is 'WhenEmptyOrUnderutilized' but allocation is "
                                "'dra': Karpenter ignores DRA claims when it consolidates (settings.ignoreDRARequests) "
                                "and would move pods onto nodes whose GPUs are all claimed; use 'WhenEmpty' (the "
                                "default on DRA pools)")
    return DRA_ALLOCATION


def ami_family(value: object) -> str:
    if value not in AMI_FAMILIES:
        raise PoolArgumentError("ami_family", f"must be one of {', '.join(map(repr, AMI_FAMILIES))}, got {value!r}")
    return value


def ami_version(value: object) -> str:
    if not isinstance(value, str) or not _AMI_VERSION.match(value):
        raise PoolArgumentError("ami_version", f"must be 'latest' or a release like 'v20260101' / '1.40.0', got {value!r}")
    return value


def mig_strategy(value: object) -> str:
    if value not in MIG_STRATEGIES:
        raise PoolArgumentError("mig_strategy", f"must be one of {', '.join(map(repr, MIG_STRATEGIES))}, got {value!r}")
    return value


def weight(value: object) -> Optional[int]:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100):
        raise PoolArgumentError("weight", f"must be an integer from 1 to 100, got {value!r}")
    return value


def expire_after(value: object) -> str:
    return _duration(value, "expire_after", _DURATION)


def grace_period(value: object) -> str:
    return _duration(value, "termination_grace_period", _GRACE)


def minutes(duration: str) -> int:
    """Whole minutes (rounded up) of a checked ``1h30m``-style duration."""
    seconds = sum(int(amount) * {"h": 3600, "m": 60, "s": 1}[unit] for amount, unit in re.findall(r"([0-9]+)([hms])", duration))
    return -(-seconds // 60)


def _duration(value: object, field: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise PoolArgumentError(field, f"must be a duration like '30m' or '720h'{' or Never' if 'Never' in pattern.pattern else ''}, got {value!r}")
    return value


def consolidation_policy(disruption: object, allocation: object) -> object:
    """The consolidation policy asked for, else the default: ``WhenEmpty`` on a DRA pool (see
    :func:`allocation`), ``WhenEmptyOrUnderutilized`` otherwise."""
    default = "WhenEmpty" if allocation == DRA_ALLOCATION else "WhenEmptyOrUnderutilized"
    return disruption.get("consolidation_policy", default) if isinstance(disruption, Mapping) else default


def disruption(disruption: Mapping, policy_default: str = "WhenEmptyOrUnderutilized") -> dict:
    if not isinstance(disruption, Mapping):
        raise PoolArgumentError("disruption", "must be a mapping")
    policy = disruption.get("consolidation_policy", policy_default)
    if policy not in CONSOLIDATION_POLICIES:
        raise PoolArgumentError("disruption.consolidation_policy", f"must be one of {', '.join(map(repr, CONSOLIDATION_POLICIES))}, got {policy!r}")
    after = _duration(disruption.get("consolidate_after", "30m"), "disruption.consolidate_after", _DURATION)
    budgets = disruption.get("budgets", [{"nodes": "10%"}])
    if isinstance(budgets, (str, Mapping)) or not budgets:
        raise PoolArgumentError("disruption.budgets", "must be a non-empty list of budgets")
    rendered = []
    for index, budget in enumerate(budgets):
        where = f"disruption.budgets[{index}]"
        nodes = budget.get("nodes")
        if not isinstance(nodes, str) or not _BUDGET_NODES.match(nodes):
            raise PoolArgumentError(f"{where}.nodes", f"must be a count like '1' or a percentage like '10%', got {nodes!r}")
        item: dict = {"nodes": nodes}
        reasons = budget.get("reasons")
        if reasons is not None:
            if isinstance(reasons, str) or not reasons or any(r not in BUDGET_REASONS for r in reasons):
                raise PoolArgumentError(f"{where}.reasons", f"must be a non-empty list of {', '.join(BUDGET_REASONS)}, got {reasons!r}")
            item["reasons"] = list(reasons)
        if ("schedule" in budget) != ("duration" in budget):
            raise PoolArgumentError(f"{where}.schedule", "and duration must be set together")
        if "schedule" in budget:
            schedule = budget["schedule"]
            if not isinstance(schedule, str) or not (schedule.startswith("@") or len(schedule.split()) == 5):
                raise PoolArgumentError(f"{where}.schedule", f"must be a cron expression (5 fields) or @daily-style macro, got {schedule!r}")
            item["schedule"] = schedule
            if not isinstance(budget["duration"], str) or not _BUDGET_DURATION.match(budget["duration"]):
                raise PoolArgumentError(f"{where}.duration", f"must be minutes or hours like '8h' or '1h30m', got {budget['duration']!r}")
            item["duration"] = budget["duration"]
        rendered.append(item)
    return {"consolidationPolicy": policy, "consolidateAfter": after, "budgets": rendered}


def block_devices(volume: Mapping, ami_family: str) -> list[dict]:
    if not isinstance(volume, Mapping):
        raise PoolArgumentError("root_volume", "must be a mapping")
    size = volume.get("size_gib", 200)
    iops = volume.get("iops", 6000)
    throughput = volume.get("throughput_mibps", 500)
    for key, value, low, high in (("size_gib", size, 50, 16384), ("iops", iops, 3000, 16000), ("throughput_mibps", throughput, 125, 1000)):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise PoolArgumentError(f"root_volume.{key}", f"must be an integer from {low} to {high}, got {value!r}")
    # gp3: at most 500 IOPS per GiB and 0.25 MiB/s per provisioned IOPS.
    if iops > size * 500:
        raise PoolArgumentError("root_volume.iops", f"({iops}) exceeds gp3's 500 IOPS per GiB for {size} GiB")
    if throughput * 4 > iops:
        raise PoolArgumentError("root_volume.throughput_mibps", f"({throughput}) exceeds gp3's 0.25 MiB/s per IOPS ({iops} IOPS)")
    ebs = {
        "volumeSize": f"{size}Gi",
        "volumeType": "gp3",
        "iops": iops,
        "throughput": throughput,
        "encrypted": True,
        "deleteOnTermination": True,
    }
    if ami_family == "bottlerocket":
        # Bottlerocket: a small OS volume, and a data volume for images, containers and ephemeral storage.
        return [
            {"deviceName": "/dev/xvda", "ebs": {"volumeSize": "4Gi", "volumeType": "gp3", "encrypted": True, "deleteOnTermination": True}},
            {"deviceName": "/dev/xvdb", "ebs": ebs},
        ]
    return [{"deviceName": "/dev/xvda", "ebs": ebs}]


def tags(tags: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(tags, Mapping):
        raise PoolArgumentError("tags", "must be a mapping")
    for key, value in tags.items():
        if not key or not isinstance(value, str):
            raise PoolArgumentError(f"tags[{key!r}]", "needs a non-empty key and a string value")
        if key in _RESTRICTED_TAGS or key.startswith("kubernetes.io/cluster"):
            raise PoolArgumentError(f"tags[{key!r}]", "is a tag Karpenter sets itself")
    return dict(tags)
