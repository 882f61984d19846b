"""Karpenter NodePools and NodeOverlays as plain facts: which GPU instance types a pool may launch, the
labels its nodes may carry, its taints, limits and GPU sharing, resolved through :mod:`gpu_instances`;
and which extended resources NodeOverlays add to the instance types Karpenter simulates.

A NodePool whose ``nodeClassRef`` names an ``eks.amazonaws.com`` NodeClass is EKS Auto Mode's: its nodes
carry Auto Mode's instance labels (``eks.amazonaws.com/instance-family``, ``-gpu-count``, ... and
``eks.amazonaws.com/compute-type: auto``; Amazon EKS User Guide, "EKS Auto Mode Supported Labels"),
never Karpenter's ``karpenter.k8s.aws/instance-*``; a self-managed Karpenter pool's nodes carry
Karpenter's, never Auto Mode's. A requirement or a pod's node selection on the other provisioner's
labels matches no node of the pool.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Mapping, Optional, Sequence

from gpufleet.components.gpu_instances import INSTANCE_TYPES, GpuInstanceType
from gpufleet.components.gpu_scheduling import (
    DEVICE_PLUGIN_CONFIG_LABEL, DEVICE_PLUGIN_DEPLOY_LABEL, DRA_GPU_DEVICE_CLASS, DRA_MIG_DEVICE_CLASS, GPU_RESOURCE,
    MIG_CONFIG_LABEL, MIG_RESOURCE_PREFIX, SHARED_GPU_RESOURCE, GpuPlacement,
)
from gpufleet.policies.core import (
    Malformed, Subject, as_list, as_mapping, as_number, as_str, contains_unknown, is_unknown, parse_quantity,
)
from gpufleet.policies.rules._device_plugin import chart_name

INSTANCE_TYPE_KEY = "node.kubernetes.io/instance-type"
FAMILY_KEY = "karpenter.k8s.aws/instance-family"
CATEGORY_KEY = "karpenter.k8s.aws/instance-category"
GPU_COUNT_KEY = "karpenter.k8s.aws/instance-gpu-count"
GPU_NAME_KEY = "karpenter.k8s.aws/instance-gpu-name"
GPU_MANUFACTURER_KEY = "karpenter.k8s.aws/instance-gpu-manufacturer"
CAPACITY_TYPE_KEY = "karpenter.sh/capacity-type"
NODEPOOL_KEY = "karpenter.sh/nodepool"
KARPENTER_PREFIX = "karpenter.k8s.aws/instance-"
AUTO_MODE_PREFIX = "eks.amazonaws.com/instance-"
"""EKS Auto Mode's well-known instance labels (``eks.amazonaws.com/instance-category``, ``-family``,
``-gpu-count``...): what Karpenter's ``karpenter.k8s.aws/instance-*`` labels say, on Auto Mode's nodes."""
AUTO_MODE_GROUP = "eks.amazonaws.com"
"""The API group of EKS Auto Mode's NodeClass: a NodePool referencing it is Auto Mode's."""
COMPUTE_TYPE_KEY = "eks.amazonaws.com/compute-type"
"""``auto`` on every EKS Auto Mode node."""
KARPENTER_AWS_PREFIX = "karpenter.k8s.aws/"

FREE_KEYS = frozenset({
    "topology.kubernetes.io/zone", "topology.kubernetes.io/region", "topology.k8s.aws/zone-id",
    "kubernetes.io/hostname", "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
})
"""Well-known labels every node gets with a value the pool does not fix: any value can be asked for."""
_ANY_VALUE = "\x00any"
"""Stands for a label value nobody named (a pool that allows any value of a key)."""
KARPENTER_CHART = "karpenter"
_GPU_SIGNAL_KEYS = (INSTANCE_TYPE_KEY, FAMILY_KEY, CATEGORY_KEY, GPU_COUNT_KEY, GPU_NAME_KEY, GPU_MANUFACTURER_KEY)


def instance_labels(instance: GpuInstanceType, auto_mode: bool = False) -> Mapping[str, str]:
    """The well-known labels Karpenter (``auto_mode``: EKS Auto Mode) puts on a node of ``instance``
    (known before launch)."""
    return (_AUTO_MODE_LABELS if auto_mode else _INSTANCE_LABELS)[instance.name]


def instance_keys(auto_mode: bool = False) -> frozenset[str]:
    """The keys of :func:`instance_labels`."""
    return AUTO_MODE_INSTANCE_KEYS if auto_mode else INSTANCE_KEYS


def never_carried(key: str, auto_mode: bool = False) -> bool:
    """A label the nodes of a Karpenter (``auto_mode``: EKS Auto Mode) pool never carry: the other
    provisioner's instance labels."""
    if auto_mode:
        return key.startswith(KARPENTER_AWS_PREFIX)
    return key.startswith(AUTO_MODE_PREFIX) or key == COMPUTE_TYPE_KEY


def _auto_mode_key(key: str) -> str:
    return AUTO_MODE_PREFIX + key[len(KARPENTER_PREFIX):] if key.startswith(KARPENTER_PREFIX) else key


def _karpenter_key(key: str) -> str:
    return KARPENTER_PREFIX + key[len(AUTO_MODE_PREFIX):] if key.startswith(AUTO_MODE_PREFIX) else key


def _instance_labels(instance: GpuInstanceType) -> dict[str, str]:
    family = instance.family.family
    return {
        INSTANCE_TYPE_KEY: instance.name,
        FAMILY_KEY: family,
        CATEGORY_KEY: family[0],
        "karpenter.k8s.aws/instance-generation": re.sub(r"\D", "", family),
        "karpenter.k8s.aws/instance-size": instance.name.split(".", 1)[1],
        GPU_NAME_KEY: instance.family.gpu_name,
        GPU_MANUFACTURER_KEY: "nvidia",
        GPU_COUNT_KEY: str(instance.gpus),
        "karpenter.k8s.aws/instance-gpu-memory": str(instance.family.gpu_memory_gib * 1024),
        "karpenter.k8s.aws/instance-cpu": str(instance.vcpus),
        "karpenter.k8s.aws/instance-memory": str(instance.memory_gib * 1024),
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
    }


_INSTANCE_LABELS = {name: _instance_labels(instance) for name, instance in INSTANCE_TYPES.items()}
INSTANCE_KEYS = frozenset(next(iter(_INSTANCE_LABELS.values())))
_AUTO_MODE_LABELS = {name: {**{_auto_mode_key(k): v for k, v in labels.items()}, COMPUTE_TYPE_KEY: "auto"}
                     for name, labels in _INSTANCE_LABELS.items()}
AUTO_MODE_INSTANCE_KEYS = frozenset(next(iter(_AUTO_MODE_LABELS.values())))
ABSENT_ON_GPU_INSTANCES = frozenset({
    "karpenter.k8s.aws/instance-accelerator-name", "karpenter.k8s.aws/instance-accelerator-manufacturer",
    "karpenter.k8s.aws/instance-accelerator-count",
})
"""Labels of Inferentia/Trainium accelerators: NVIDIA GPU instances never carry them, so a pool that
requires one (e.g. ``instance-accelerator-name In [inferentia, trainium]``) launches no GPU instance."""


@dataclass(frozen=True)
class Requirement:
    """One node selector requirement (NodePool requirement, nodeSelector entry or affinity expression)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def allows(self, value: Optional[str]) -> bool:
        """Does a node whose label ``key`` is ``value`` (None: absent) satisfy it?"""
        if self.operator == "In":
            return value is not None and value in self.values
        if self.operator == "NotIn":
            return value is None or value not in self.values
        if self.operator == "Exists":
            return value is not None
        if self.operator == "DoesNotExist":
            return value is None
        if self.operator in _COMPARISONS and value is not None and self.values:
            try:
                number, bound = int(value), int(self.values[0])
            except ValueError:
                return False
            return _COMPARISONS[self.operator](number, bound)
        return False


_COMPARISONS = {
    "Gt": lambda a, b: a > b, "Lt": lambda a, b: a < b, "Gte": lambda a, b: a >= b, "Lte": lambda a, b: a <= b,
}
"""Numeric operators (``Gte``/``Lte`` exist on NodeOverlay requirements only)."""


def requirement(raw: Any) -> Optional[Requirement]:
    """A Requirement from a manifest's ``{key, operator, values}``; None when any part is unknown."""
    if contains_unknown(raw):
        return None
    raw = as_mapping(raw)
    key, operator, values = raw.get("key"), raw.get("operator"), raw.get("values")
    if not isinstance(key, str) or not isinstance(operator, str) or is_unknown(values):
        return None
    values = as_list(values)
    if not all(isinstance(v, str) for v in values):
        return None
    return Requirement(key, operator, tuple(values))


@dataclass(frozen=True)
class NodePool:
    """A Karpenter NodePool's scheduling facts."""

    subject: Subject
    name: str
    labels: Mapping[str, str]
    requirements: tuple[Requirement, ...]
    taints: tuple[Mapping[str, str], ...]
    limits: Mapping[str, Decimal]
    instance_types: tuple[GpuInstanceType, ...]
    """GPU instance types (of gpufleet's table) its requirements and labels allow."""
    names_gpus: bool
    """Its requirements ask for GPU instances explicitly."""
    auto_mode: bool = False
    """An EKS Auto Mode pool (``nodeClassRef`` group ``eks.amazonaws.com``): its nodes carry Auto Mode's
    instance labels."""

    @property
    def instance_keys(self) -> frozenset[str]:
        """The well-known instance label keys of its nodes."""
        return instance_keys(self.auto_mode)

    def instance_labels(self, instance: GpuInstanceType) -> Mapping[str, str]:
        """The well-known labels of its node of ``instance``."""
        return instance_labels(instance, self.auto_mode)

    @property
    def can_launch_gpus(self) -> bool:
        """Its requirements leave some GPU instance type open: gpufleet's table, or any GPU its
        requirements name (a family the table lacks, e.g. g4dn)."""
        return bool(self.instance_types) or self.names_gpus

    def placement(self, time_slicing_replicas: Mapping[str, int],
                  mps_replicas: Optional[Mapping[str, int]] = None) -> GpuPlacement:
        """The pool's facts as a :class:`GpuPlacement` (sharing from its template labels): the device
        plugin config its nodes select is MPS when ``mps_replicas`` names it, else time-slicing; a pool
        whose nodes keep the GPU Operator's device plugin off
        (``nvidia.com/gpu.deploy.device-plugin: "false"``) allocates its GPUs with DRA."""
        mig = self.labels.get(MIG_CONFIG_LABEL, "")
        config = self.labels.get(DEVICE_PLUGIN_CONFIG_LABEL, "")
        dra = self.labels.get(DEVICE_PLUGIN_DEPLOY_LABEL) == "false"
        if dra:
            if mig.startswith("all-") and mig != "all-disabled":
                return GpuPlacement(self.name, self.instance_types, sharing="mig", mig_profile=mig[len("all-"):],
                                    allocation="dra")
            return GpuPlacement(self.name, self.instance_types, allocation="dra")
        if mig.startswith("all-") and mig != "all-disabled":
            return GpuPlacement(self.name, self.instance_types, sharing="mig", mig_profile=mig[len("all-"):])
        if config and mps_replicas and config in mps_replicas:
            return GpuPlacement(self.name, self.instance_types, sharing="mps", mps_replicas=mps_replicas[config])
        if config:
            return GpuPlacement(self.name, self.instance_types, sharing="time-slicing",
                                time_slicing_replicas=time_slicing_replicas.get(config, 0))
        return GpuPlacement(self.name, self.instance_types)

    def offered_resources(self, placement: GpuPlacement) -> tuple[str, ...]:
        """Resource names the device plugin advertises on this pool's nodes once they run (either MIG
        strategy, shared GPUs renamed or not). Karpenter's simulation knows only ``nvidia.com/gpu`` of
        them by itself: the others need a :class:`NodeOverlay`. A DRA pool advertises none: its
        devices are claimed (:meth:`offered_device_classes`)."""
        if placement.dra:
            return ()
        if placement.sharing == "mig":
            return (MIG_RESOURCE_PREFIX + placement.mig_profile, GPU_RESOURCE)
        if placement.sharing in ("time-slicing", "mps"):
            return (SHARED_GPU_RESOURCE, GPU_RESOURCE)
        return (GPU_RESOURCE,)

    @staticmethod
    def offers_device_class(placement: GpuPlacement, device_class: str) -> bool:
        """Can a claim on ``device_class`` (an NVIDIA GPU DeviceClass) get devices on this pool's
        nodes? Only a DRA pool publishes devices: MIG devices (``mig.nvidia.com``) on a MIG pool,
        whole GPUs (``gpu.nvidia.com``) on the others; another GPU class (one of the cluster's own,
        selecting the driver's devices) on either."""
        if not placement.dra:
            return False
        other = DRA_GPU_DEVICE_CLASS if placement.sharing == "mig" else DRA_MIG_DEVICE_CLASS
        return device_class != other

    def can_carry(self, req: Requirement) -> bool:
        """Can a node of this pool carry a label (other than an instance type's well-known labels)
        that satisfies ``req``? Known before launch: the pool's template labels and requirements,
        ``karpenter.sh/nodepool``, the default capacity type and the free topology labels."""
        on_key = [r for r in self.requirements if r.key == req.key]
        if never_carried(req.key, self.auto_mode):
            return req.allows(None)
        if req.key == NODEPOOL_KEY:
            values: list[Optional[str]] = [self.name]
        elif req.key in self.labels:
            values = [self.labels[req.key]]
        elif req.key == CAPACITY_TYPE_KEY and not on_key:
            values = ["on-demand"]
        elif req.key in FREE_KEYS or on_key:
            values = [*req.values, *(v for r in on_key for v in r.values), _ANY_VALUE]
            values += [str(int(v) + d) for v in req.values + tuple(x for r in on_key for x in r.values)
                       if v.lstrip("-").isdigit() for d in (-1, 1)]
            if req.key not in FREE_KEYS:
                values.append(None)
        else:
            values = [None]
        return any(req.allows(v) and all(r.allows(v) for r in on_key) for v in values)

    def can_launch(self, instance: GpuInstanceType) -> bool:
        """One node of ``instance`` fits in the pool's limits."""
        checks = ((GPU_RESOURCE, instance.gpus), ("cpu", instance.vcpus), ("memory", instance.memory_gib * 2 ** 30))
        return all(self.limits.get(key) is None or self.limits[key] >= need for key, need in checks)


def node_pool(subject: Subject) -> Optional[NodePool]:
    """The NodePool's facts; None when it is not a NodePool or a part is unknown."""
    if not subject.is_a("karpenter.sh", "NodePool"):
        return None
    return subject.derived("node_pool", _node_pool)


def _node_pool(subject: Subject) -> Optional[NodePool]:
    template = subject.spec.get("template")
    spec = as_mapping(template).get("spec")
    labels = as_mapping(as_mapping(template).get("metadata")).get("labels")
    raw_requirements, raw_taints = as_mapping(spec).get("requirements"), as_mapping(spec).get("taints")
    raw_limits = subject.spec.get("limits")
    if any(is_unknown(v) for v in (template, spec, raw_limits)) or any(
            contains_unknown(v) for v in (labels, raw_requirements, raw_taints)):
        return None
    requirements = [requirement(r) for r in as_list(raw_requirements)]
    if any(r is None for r in requirements):
        return None
    labels = {k: v for k, v in as_mapping(labels).items() if isinstance(v, str)}
    auto_mode = as_str(as_mapping(as_mapping(spec).get("nodeClassRef")).get("group")) == AUTO_MODE_GROUP
    keys = instance_keys(auto_mode)
    limits: dict[str, Decimal] = {}
    for key, value in as_mapping(raw_limits).items():
        try:
            amount = parse_quantity(value)
        except Malformed:
            continue
        if amount is not None:
            limits[key] = amount
    chosen = tuple(
        t for t in INSTANCE_TYPES.values()
        if all(r.allows(instance_labels(t, auto_mode).get(r.key)) for r in requirements  # type: ignore[union-attr]
               if r.key in keys or r.key in ABSENT_ON_GPU_INSTANCES or never_carried(r.key, auto_mode))  # type: ignore[union-attr]
        and all(instance_labels(t, auto_mode).get(k, v) == v for k, v in labels.items())
    )
    # GPU requests are judged in Karpenter's keys; a key the pool's nodes never carry names nothing.
    names_gpus = any(_names_gpus(Requirement(_karpenter_key(r.key), r.operator, r.values))  # type: ignore[union-attr]
                     for r in requirements if not never_carried(r.key, auto_mode))  # type: ignore[union-attr]
    taints = tuple(as_mapping(t) for t in as_list(raw_taints))
    return NodePool(subject, subject.object_name, labels, tuple(requirements), taints, limits, chosen,  # type: ignore[arg-type]
                    names_gpus, auto_mode)


def _names_gpus(req: Requirement) -> bool:
    if req.key in (INSTANCE_TYPE_KEY, FAMILY_KEY, CATEGORY_KEY, GPU_NAME_KEY, GPU_MANUFACTURER_KEY):
        if req.operator != "In":
            return req.operator == "Exists" and req.key in (GPU_NAME_KEY, GPU_MANUFACTURER_KEY)
        gpu_values = {
            INSTANCE_TYPE_KEY: set(INSTANCE_TYPES), FAMILY_KEY: {t.family.family for t in INSTANCE_TYPES.values()},
            CATEGORY_KEY: {"g", "p"}, GPU_NAME_KEY: None, GPU_MANUFACTURER_KEY: {"nvidia"},
        }[req.key]
        return gpu_values is None or bool(set(req.values) & gpu_values)
    if req.key == GPU_COUNT_KEY:
        return req.operator in ("Exists", "Gt") or (req.operator == "In" and any(v != "0" for v in req.values))
    return False


def node_pools(subjects: Sequence[Subject]) -> tuple[list[NodePool], bool]:
    """Every NodePool among ``subjects``, and whether any NodePool could not be read (unknowns)."""
    pools, unreadable = [], False
    for subject in subjects:
        if subject.is_a("karpenter.sh", "NodePool"):
            pool = node_pool(subject)
            if pool is None:
                unreadable = True
            else:
                pools.append(pool)
    return pools, unreadable


@dataclass(frozen=True)
class NodeOverlay:
    """A Karpenter ``karpenter.sh/v1alpha1`` NodeOverlay's scheduling facts: the extended resources
    (``spec.capacity``) it adds to the instance types its requirements select in Karpenter's
    scheduling simulation. Karpenter knows only ``nvidia.com/gpu`` of an AWS GPU instance type: MIG
    slices and time-sliced GPUs exist for it only through an overlay."""

    subject: Subject
    name: str
    requirements: tuple[Requirement, ...]
    capacity: Mapping[str, Decimal]
    weight: int

    def applies_to(self, pool: NodePool, instance: GpuInstanceType) -> bool:
        """Its requirements select nodes of ``instance`` launched by ``pool`` (instance labels, the
        pool's labels and requirements, ``karpenter.sh/nodepool``)."""
        labels = pool.instance_labels(instance)
        return all(req.allows(labels[req.key]) if req.key in pool.instance_keys else pool.can_carry(req)
                   for req in self.requirements)


def node_overlays(subjects: Iterable[Subject]) -> tuple[list[NodeOverlay], bool]:
    """Every NodeOverlay among ``subjects``, and whether any could not be read (unknowns)."""
    overlays, unreadable = [], False
    for subject in subjects:
        if subject.is_a("karpenter.sh", "NodeOverlay"):
            overlay = subject.derived("node_overlay", _node_overlay)
            if overlay is None:
                unreadable = True
            else:
                overlays.append(overlay)
    return overlays, unreadable


def _node_overlay(subject: Subject) -> Optional[NodeOverlay]:
    raw_requirements, raw_capacity = subject.spec.get("requirements"), subject.spec.get("capacity")
    raw_weight = subject.spec.get("weight")
    if is_unknown(subject.props.get("spec")) or any(contains_unknown(v) for v in (raw_requirements, raw_capacity, raw_weight)):
        return None
    requirements = [requirement(r) for r in as_list(raw_requirements)]
    if any(r is None for r in requirements):
        return None
    capacity: dict[str, Decimal] = {}
    for key, value in as_mapping(raw_capacity).items():
        try:
            amount = parse_quantity(value)
        except Malformed:
            continue
        if amount is not None:
            capacity[key] = amount
    weight = as_number(raw_weight)
    return NodeOverlay(subject, subject.object_name, tuple(requirements), capacity,  # type: ignore[arg-type]
                       int(weight) if weight is not None else 0)


def overlay_capacity(overlays: Sequence[NodeOverlay], pool: NodePool, instance: GpuInstanceType,
                     resource: str) -> Optional[Decimal]:
    """Units of ``resource`` Karpenter's simulation gives a node of ``instance`` in ``pool``; None when
    no overlay adds it. Of several matching overlays the highest ``weight`` wins; on a tie (Karpenter
    then marks the overlays conflicting) the smallest amount counts."""
    matching = [o for o in overlays if resource in o.capacity and o.applies_to(pool, instance)]
    if not matching:
        return None
    top = max(o.weight for o in matching)
    return min(o.capacity[resource] for o in matching if o.weight == top)


def node_overlay_gate(subjects: Iterable[Subject]) -> Optional[tuple[Subject, bool]]:
    """The Karpenter Helm release among ``subjects`` and whether its values enable the NodeOverlay
    feature gate (``settings.featureGates.nodeOverlay``, off by default); None when no Karpenter
    release is checked or the value is unknown."""
    for subject in subjects:
        if subject.is_helm_release and chart_name(subject) == KARPENTER_CHART:
            values = subject.props.get("values")
            settings = as_mapping(values).get("settings")
            gates = as_mapping(settings).get("featureGates")
            enabled = as_mapping(gates).get("nodeOverlay")
            if any(is_unknown(v) for v in (values, settings, gates, enabled)):
                return None
            return subject, enabled is True or enabled == "true"
    return None
