"""The simulated cluster's parts: pods with their requests and scheduling constraints, node types with
what they allocate, and nodes with the pods placed on them; plus the label, taint and affinity
matching kube-scheduler and Karpenter share.

Resources are integers: ``cpu`` in millicores, ``memory`` in MiB, extended resources (GPUs, MIG
slices, shared GPUs, EFA interfaces) in units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from gpufleet.infra.areas.system_nodes import container_requests

Resources = dict[str, int]
HOSTNAME_KEY = "kubernetes.io/hostname"
ZONE_KEY = "topology.kubernetes.io/zone"
NON_SCHEDULED = frozenset({"ephemeral-storage", "hugepages-2Mi", "hugepages-1Gi"})
"""Requests the simulation does not account (local storage is not a node limit it models)."""


def fits(requests: Mapping[str, int], free: Mapping[str, int]) -> bool:
    """Every requested amount is available (a resource the node lacks is 0)."""
    return all(amount <= free.get(name, 0) for name, amount in requests.items() if amount)


def add(a: Mapping[str, int], b: Mapping[str, int], sign: int = 1) -> Resources:
    total = dict(a)
    for name, amount in b.items():
        total[name] = total.get(name, 0) + sign * amount
    return total


def _units(value: Any) -> int:
    from gpufleet.policies.core import parse_quantity

    amount = parse_quantity(value)
    return int(math.ceil(amount)) if amount is not None else 0


def requests_of(containers: Sequence[Mapping[str, Any]], init_containers: Sequence[Mapping[str, Any]] = ()) -> Resources:
    """What the scheduler reserves for a pod: the containers' requests summed (a limit stands in for a
    missing request), or an init container's when larger."""

    def one(container: Mapping[str, Any]) -> Resources:
        resources = container.get("resources") or {}
        cpu, memory = container_requests(resources)
        merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        found: Resources = {"cpu": cpu, "memory": memory}
        for name, value in merged.items():
            if name not in ("cpu", "memory") and name not in NON_SCHEDULED:
                found[name] = _units(value)
        return found

    total: Resources = {"cpu": 0, "memory": 0}
    for container in containers:
        total = add(total, one(container))
    for container in init_containers:
        for name, amount in one(container).items():
            total[name] = max(total.get(name, 0), amount)
    return {k: v for k, v in total.items() if v}


@dataclass
class Pod:
    """One pod of a workload at the simulated scale."""

    kind: str
    """The owning workload's kind (``InferenceService``, ``RayCluster``, ``Job``, ``System``...)."""
    namespace: str
    name: str
    """The owning workload's name (with its role, e.g. ``batch/gpu-8x``)."""
    index: int
    requests: Resources
    labels: Mapping[str, str] = field(default_factory=dict)
    spec: Mapping[str, Any] = field(default_factory=dict)
    """Pod-spec fields the scheduler reads: ``nodeSelector``, ``tolerations``, ``affinity``,
    ``topologySpreadConstraints``."""
    queue: str = ""
    """The LocalQueue its workload is submitted to (``kueue.x-k8s.io/queue-name``)."""
    workload: str = ""
    """Key of the workload Kueue admits as one (all its pods together)."""

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}-{self.index}" if self.namespace else f"{self.name}-{self.index}"

    @property
    def node_selector(self) -> Mapping[str, str]:
        return self.spec.get("nodeSelector") or {}

    @property
    def tolerations(self) -> list[Mapping[str, Any]]:
        return list(self.spec.get("tolerations") or [])

    @property
    def affinity(self) -> Mapping[str, Any]:
        return self.spec.get("affinity") or {}

    def gpu_units(self) -> int:
        return sum(v for k, v in self.requests.items() if k.startswith("nvidia.com/"))


@dataclass(frozen=True)
class NodeType:
    """What a node of one instance type in one pool (or node group) offers."""

    instance_type: str
    labels: Mapping[str, str]
    """Labels known before the node exists (instance labels, the pool's template labels)."""
    allocatable: Mapping[str, int]
    """What pods may request on a running node (after kube-reserved, eviction threshold, device plugin)."""
    karpenter_view: Mapping[str, int]
    """What Karpenter's simulation believes the type offers (``nvidia.com/gpu`` and NodeOverlays only)."""
    gpus: int = 0
    """Physical GPUs."""
    capacity: Mapping[str, int] = field(default_factory=dict)
    """What the node counts against its pool's limits (``cpu``, ``memory``, ``nvidia.com/gpu``)."""


@dataclass
class Node:
    """A node: fixed (a node group's) or a Karpenter NodeClaim whose instance type is still open
    among ``candidates`` (offerings: (node type, capacity type, $/h)) until the simulation ends."""

    name: str
    pool: str
    candidates: list[tuple[NodeType, str, float]]
    labels: dict[str, str]
    taints: tuple[Mapping[str, Any], ...]
    pods: list[Pod] = field(default_factory=list)
    daemon: Resources = field(default_factory=dict)
    """What the DaemonSets on every node take."""
    managed: bool = True
    """Launched by Karpenter (False: a node group's)."""

    _headroom: Optional[Resources] = field(default=None, repr=False)
    _used: Optional[Resources] = field(default=None, repr=False)
    rejects: set = field(default_factory=set, repr=False)
    """Keys of pod shapes this node could not take as it is (see the scheduler); cleared on change."""

    def changed(self) -> None:
        """Pods or candidates changed: forget the cached sums."""
        self._headroom = None
        self._used = None
        self.rejects.clear()

    def headroom(self) -> Resources:
        """Per resource, the most any remaining offering leaves free: a pod asking for more fits none
        (a quick test before the exact one)."""
        if self._headroom is None:
            used = self.used
            room: Resources = {}
            for node_type, _, _ in self.candidates:
                for name, amount in node_type.allocatable.items():
                    room[name] = max(room.get(name, 0), amount - used.get(name, 0))
            self._headroom = room
        return self._headroom

    def __post_init__(self) -> None:
        self.candidates = sorted(self.candidates, key=lambda c: (c[2], c[0].instance_type))

    @property
    def chosen(self) -> tuple[NodeType, str, float]:
        """The cheapest offering still holding every pod (candidates stay sorted by price)."""
        return self.candidates[0]

    @property
    def used(self) -> Resources:
        """What the DaemonSets and the pods request (cached until :meth:`changed`)."""
        if self._used is None:
            total = dict(self.daemon)
            for pod in self.pods:
                total = add(total, pod.requests)
            self._used = total
        return self._used

    def offerings_for(self, requests: Mapping[str, int]) -> list[tuple[NodeType, str, float]]:
        """Offerings that still hold the pods placed so far plus ``requests``: in what the node will
        allocate and, for a NodeClaim, in what Karpenter believes it offers."""
        need = add(self.used, requests)
        return [c for c in self.candidates if fits(need, c[0].allocatable)
                and (not self.managed or fits(need, c[0].karpenter_view))]


# -- matching ------------------------------------------------------------------------------------


def tolerates(tolerations: Sequence[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    """Kubernetes ``Toleration.ToleratesTaint`` (k8s.io/api core/v1 toleration.go): a PreferNoSchedule
    taint never blocks."""
    if taint.get("effect") == "PreferNoSchedule":
        return True
    for toleration in tolerations:
        if toleration.get("effect") not in (None, "", taint.get("effect")):
            continue
        key = toleration.get("key")
        if toleration.get("operator") == "Exists":
            if key in (None, "") or key == taint.get("key"):
                return True
        elif key == taint.get("key") and str(toleration.get("value", "")) == str(taint.get("value", "")):
            return True
    return False


def tolerates_all(tolerations: Sequence[Mapping[str, Any]], taints: Sequence[Mapping[str, Any]]) -> bool:
    return all(tolerates(tolerations, taint) for taint in taints)


def expression_matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """One ``NodeSelectorRequirement`` / ``LabelSelectorRequirement`` against labels."""
    key, operator = expression.get("key"), expression.get("operator")
    values = [str(v) for v in expression.get("values") or []]
    value = labels.get(key)  # type: ignore[arg-type]
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and values:
        try:
            return int(value) > int(values[0]) if operator == "Gt" else int(value) < int(values[0])
        except ValueError:
            return False
    return False


def node_term_matches(term: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    return all(expression_matches(e, labels) for e in term.get("matchExpressions") or [])


def selects_node(pod: Pod, labels: Mapping[str, str], strict: bool) -> bool:
    """The pod's nodeSelector and required node affinity (and, ``strict``, every preferred node
    affinity term, as Karpenter treats preferences until they cannot be met) accept ``labels``."""
    if any(labels.get(k) != str(v) for k, v in pod.node_selector.items()):
        return False
    node_affinity = pod.affinity.get("nodeAffinity") or {}
    required = (node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    if required and not any(node_term_matches(t, labels) for t in required):
        return False
    if strict:
        for preferred in node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
            if not node_term_matches(preferred.get("preference") or {}, labels):
                return False
    return True


def label_selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A ``LabelSelector`` (matchLabels and matchExpressions); an empty selector matches everything."""
    if any(labels.get(k) != str(v) for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(expression_matches(e, labels) for e in selector.get("matchExpressions") or [])
