"""Placement: kube-scheduler's filters on the nodes there are, and Karpenter's provisioning of new
NodeClaims when no node takes a pod.

The run is one pass over the pods (largest first, as Karpenter's provisioner sorts them: GPUs, then
CPU, then memory). For each pod:

1. the nodes that pass kube-scheduler's filters (NodeResourcesFit, TaintToleration, NodeAffinity,
   InterPodAffinity, PodTopologySpread) take it: on the system node group the least allocated first
   (kube-scheduler's default ``LeastAllocated`` score), on Karpenter's nodes the most allocated
   first (the steady state consolidation converges to);
2. else Karpenter opens a NodeClaim on the heaviest-weighted NodePool whose taints the pod tolerates
   and whose instance types can hold it within the pool's limits;
3. steps 1-2 run first with the pod's *preferred* node affinity, pod (anti-)affinity and
   ``ScheduleAnyway`` spread treated as required, as Karpenter does
   (karpenter ``pkg/controllers/provisioning/scheduling/preferences.go``, ``Relax``: preferences are
   removed one at a time only when the pod cannot schedule), then without them;
4. otherwise the pod stays Pending, with the reason.

A NodeClaim keeps every instance type that still holds its pods and takes the cheapest at the end
(karpenter ``scheduling/nodeclaim.go``, ``Add`` filters the instance types; launch picks the cheapest
offering). A pod joins an open NodeClaim only when that costs less than a node of its own, as
consolidation would settle it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

from gpufleet.infra.simulate.cluster import (
    HOSTNAME_KEY, ZONE_KEY, Node, NodeType, Pod, Resources, add, fits, label_selector_matches, selects_node,
    tolerates_all,
)
from gpufleet.infra.simulate.inputs import SYSTEM_POOL, ClusterInputs, PoolSpec

ZONES = ("a", "b", "c")


@dataclass
class Pending:
    pod: Pod
    reason: str


@dataclass
class Placement:
    """The outcome of placing a set of pods."""

    nodes: list[Node] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    where: dict[str, Node] = field(default_factory=dict)
    """Pod id → its node."""


class Scheduler:
    def __init__(self, inputs: ClusterInputs):
        self.inputs = inputs
        self.result = Placement()
        self.by_pool: dict[str, list[Node]] = {}
        self.zones = [f"{inputs.region}{z}" for z in ZONES]
        self._pools = {p.name: p for p in inputs.pools}
        self._pool_cache: dict[tuple[int, str, bool], bool] = {}
        self._usage: dict[str, Resources] = {}
        self._selection: dict[int, str] = {}
        self._zone_counts: dict[tuple[str, str, str, str], int] = {}
        for index in range(inputs.system_count):
            zone = self.zones[index % len(self.zones)]
            name = f"system-{index + 1}"
            node = Node(name, SYSTEM_POOL, [(inputs.system_type, "on-demand", inputs.system_price)],
                        {**inputs.system_type.labels, HOSTNAME_KEY: name, ZONE_KEY: zone}, (),
                        daemon=dict(inputs.daemon), managed=False)
            self._add_node(node)

    def _add_node(self, node: Node) -> None:
        self._usage[node.pool] = add(self._usage.get(node.pool, {}), node.chosen[0].capacity)
        self.result.nodes.append(node)
        self.by_pool.setdefault(node.pool, []).append(node)

    # -- pod affinity and topology ---------------------------------------------------------------

    def _domain_pods(self, node: Node, key: str) -> list[Pod]:
        value = node.labels.get(key)
        if value is None:
            return []
        if key == HOSTNAME_KEY:
            return node.pods
        return [p for n in self.result.nodes if n.labels.get(key) == value for p in n.pods]

    @staticmethod
    def _term_selects(term: Mapping[str, Any], pod: Pod, other: Pod) -> bool:
        namespaces = term.get("namespaces") or [pod.namespace]
        return other.namespace in namespaces and label_selector_matches(term.get("labelSelector") or {}, other.labels)

    def _affinity_ok(self, pod: Pod, node: Node, strict: bool) -> bool:
        affinity = pod.affinity
        for kind, anti in (("podAntiAffinity", True), ("podAffinity", False)):
            section = affinity.get(kind) or {}
            terms = list(section.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
            if strict:
                terms += [t.get("podAffinityTerm") or {} for t in section.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
            for term in terms:
                key = term.get("topologyKey", HOSTNAME_KEY)
                found = any(self._term_selects(term, pod, other) for other in self._domain_pods(node, key))
                if anti and found:
                    return False
                if not anti and not found:
                    # kube-scheduler lets the first pod of a group that matches its own term in.
                    anywhere = any(self._term_selects(term, pod, o) for n in self.result.nodes for o in n.pods)
                    if anywhere or not self._term_selects(term, pod, pod):
                        return False
        # Symmetry: a placed pod's required anti-affinity keeps this pod away from its domain.
        for other in node.pods:
            for term in ((other.affinity.get("podAntiAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or []):
                if term.get("topologyKey", HOSTNAME_KEY) == HOSTNAME_KEY and self._term_selects(term, other, pod):
                    return False
        for constraint in pod.spec.get("topologySpreadConstraints") or []:
            hard = constraint.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"
            if not hard and not strict:
                continue
            if not self._spread_ok(pod, node, constraint):
                return False
        return True

    def _spread_ok(self, pod: Pod, node: Node, constraint: Mapping[str, Any]) -> bool:
        key = constraint.get("topologyKey", HOSTNAME_KEY)
        selector = constraint.get("labelSelector") or {}
        skew = int(constraint.get("maxSkew", 1))

        def matching(n: Node) -> int:
            return sum(1 for p in n.pods if p.namespace == pod.namespace and label_selector_matches(selector, p.labels))

        eligible = [n for n in self.result.nodes if n.pool == node.pool] or [node]
        counts: dict[str, int] = {}
        if key == ZONE_KEY:
            counts = {z: 0 for z in self.zones}
        for n in eligible:
            if key in n.labels:
                counts[n.labels[key]] = counts.get(n.labels[key], 0) + matching(n)
        domain = node.labels.get(key)
        if domain is None:
            return True
        counts.setdefault(domain, 0)
        if node not in eligible and key == HOSTNAME_KEY:
            counts[domain] = 0
        return counts[domain] + 1 - min(counts.values()) <= skew

    # -- kube-scheduler --------------------------------------------------------------------------

    def _fits_node(self, pod: Pod, node: Node, strict: bool) -> bool:
        """A node group's node takes the pod: taints, node selection, resources."""
        if not tolerates_all(pod.tolerations, node.taints):
            return False
        labels = node.labels
        return selects_node(pod, labels, strict) and fits(add(node.used, pod.requests), node.chosen[0].allocatable)

    def _pool_open(self, pod: Pod, pool: str, strict: bool) -> bool:
        """Whether any node of ``pool`` could take the pod by taints and labels (cached per pod set)."""
        key = (id(pod.spec), pool, strict)
        known = self._pool_cache.get(key)
        if known is None:
            if pool == SYSTEM_POOL and pool not in self._pools:  # the node group, not Auto Mode's NodePool
                node = self.by_pool[pool][0]
                known = tolerates_all(pod.tolerations, node.taints) and selects_node(pod, node.labels, strict)
            else:
                spec = self._pools[pool]
                known = tolerates_all(pod.tolerations, spec.taints) and any(
                    selects_node(pod, {**o[0].labels, ZONE_KEY: self.zones[0], HOSTNAME_KEY: "n"}, strict)
                    or any(k in (ZONE_KEY, HOSTNAME_KEY) for k in pod.node_selector) for o in spec.offerings)
            self._pool_cache[key] = known
        return known

    def _shape(self, pod: Pod) -> tuple[Any, ...]:
        """What decides whether a NodeClaim's offerings can take a pod: its requests and its node
        selection (pods of different sets may share a shape)."""
        spec_key = id(pod.spec)
        selection = self._selection.get(spec_key)
        if selection is None:
            node_affinity = pod.affinity.get("nodeAffinity") or {}
            selection = repr((sorted(pod.node_selector.items()), node_affinity))
            self._selection[spec_key] = selection
        return (tuple(sorted(pod.requests.items())), selection)

    def _existing(self, pod: Pod, strict: bool, fresh_price: Optional[float]) -> Optional[Node]:
        best: Optional[tuple[float, Node]] = None
        shape = self._shape(pod)
        for pool, nodes in self.by_pool.items():
            if not self._pool_open(pod, pool, strict):
                continue
            for node in nodes:
                if not fits(pod.requests, node.headroom()):
                    continue
                if node.managed:
                    # The cheapest offering that still holds everything, if joining costs less than a
                    # node of its own would (candidates are sorted by price).
                    key = (shape, strict, fresh_price)
                    if key in node.rejects:
                        continue
                    limit = node.chosen[2] + (fresh_price if fresh_price is not None else float("inf")) + 1e-9
                    need = add(node.used, pod.requests)
                    if not any(fits(need, c[0].allocatable) and fits(need, c[0].karpenter_view)
                               and selects_node(pod, {**c[0].labels, **node.labels}, strict)
                               for c in node.candidates if c[2] <= limit):
                        node.rejects.add(key)
                        continue
                elif not self._fits_node(pod, node, strict):
                    continue
                if not self._affinity_ok(pod, node, strict):
                    continue
                allocatable = node.chosen[0].allocatable
                used = add(node.used, pod.requests)
                share = max((used.get(k, 0) / v for k, v in allocatable.items() if v), default=0.0)
                # kube-scheduler's default scoring (NodeResourcesFit LeastAllocated) spreads pods over a
                # node group's nodes; Karpenter's NodeClaims are packed, as consolidation leaves them.
                score = share if not node.managed else -share  # ties: the node met first (oldest) wins
                if best is None or score < best[0]:
                    best = (score, node)
        return best[1] if best else None

    # -- Karpenter -------------------------------------------------------------------------------

    def _pool_usage(self, pool: str) -> Resources:
        """What the pool's nodes count against its limits: their cheapest offerings' capacity, kept
        up to date as nodes are added and their offerings narrow."""
        return self._usage.get(pool, {})

    def _offerings(self, pod: Pod, pool: PoolSpec, strict: bool, zone: str) -> tuple[list[tuple[NodeType, str, float]], str]:
        """Offerings of ``pool`` a new node for ``pod`` may use, or ([], why not)."""
        if not tolerates_all(pod.tolerations, pool.taints):
            return [], "taints"
        selected = [o for o in pool.offerings
                    if selects_node(pod, {**o[0].labels, ZONE_KEY: zone, HOSTNAME_KEY: "new"}, strict)]
        if not selected:
            return [], "selection"
        need = add(self.inputs.daemon, pod.requests)
        holding = [o for o in selected if fits(need, o[0].allocatable) and fits(need, o[0].karpenter_view)]
        if not holding:
            return [], "size"
        used = self._pool_usage(pool.name)
        within = [o for o in holding if all(add(used, o[0].capacity).get(k, 0) <= v for k, v in pool.limits.items())]
        if not within:
            return [], "limit"
        return within, ""

    def _zone_for(self, pod: Pod, pool: str) -> str:
        """The zone with the fewest pods of the pod's set in the pool (Karpenter spreads NodeClaims)."""
        counts = {z: self._zone_counts.get((pool, pod.workload, pod.name, z), 0) for z in self.zones}
        return min(self.zones, key=lambda z: (counts[z], self.zones.index(z)))

    def _provision(self, pod: Pod, strict: bool, commit: bool) -> tuple[Optional[Node], float, dict[str, str]]:
        """A new NodeClaim for ``pod`` (committed when ``commit``): (node, its price, pool → why not)."""
        why: dict[str, str] = {}
        for pool in sorted(self.inputs.pools, key=lambda p: (-p.weight, p.name)):
            zone = str(pod.node_selector.get(ZONE_KEY) or self._zone_for(pod, pool.name))
            offerings, reason = self._offerings(pod, pool, strict, zone)
            if not offerings:
                why[pool.name] = reason
                continue
            name = f"{pool.name}-{len(self.by_pool.get(pool.name, [])) + 1}"
            labels = {HOSTNAME_KEY: name, ZONE_KEY: zone}
            node = Node(name, pool.name, offerings, labels, pool.taints, daemon=dict(self.inputs.daemon))
            if not self._affinity_ok(pod, node, strict):
                why[pool.name] = "affinity"
                continue
            price = node.chosen[2]
            if commit:
                self._add_node(node)
            return node, price, why
        return None, 0.0, why

    # -- the pass --------------------------------------------------------------------------------

    def place(self, pods: Sequence[Pod]) -> None:
        order = sorted(pods, key=lambda p: (-p.gpu_units(), -p.requests.get("cpu", 0), -p.requests.get("memory", 0), p.id))
        for pod in order:
            self._place(pod)

    def _has_preferences(self, pod: Pod) -> bool:
        affinity = pod.affinity
        if any((affinity.get(k) or {}).get("preferredDuringSchedulingIgnoredDuringExecution")
               for k in ("nodeAffinity", "podAffinity", "podAntiAffinity")):
            return True
        return any(c.get("whenUnsatisfiable") == "ScheduleAnyway" for c in pod.spec.get("topologySpreadConstraints") or [])

    def _place(self, pod: Pod) -> None:
        why: dict[str, str] = {}
        for strict in ((True, False) if self._has_preferences(pod) else (False,)):
            _, fresh, _ = self._provision(pod, strict, commit=False)
            node = self._existing(pod, strict, fresh or None)
            if node is None:
                node, _, why = self._provision(pod, strict, commit=True)
            if node is not None:
                self._bind(pod, node, strict)
                return
        self.result.pending.append(Pending(pod, self._reason(pod, why)))

    def _bind(self, pod: Pod, node: Node, strict: bool) -> None:
        if node.managed:
            before = node.chosen[0].capacity
            node.candidates = [c for c in node.offerings_for(pod.requests)
                               if selects_node(pod, {**c[0].labels, **node.labels}, strict)]
            usage = add(self._usage.get(node.pool, {}), before, -1)
            self._usage[node.pool] = add(usage, node.chosen[0].capacity)
        node.pods.append(pod)
        node.changed()
        zone_key = (node.pool, pod.workload, pod.name, node.labels.get(ZONE_KEY, ""))
        self._zone_counts[zone_key] = self._zone_counts.get(zone_key, 0) + 1
        self.result.where[pod.id] = node

    def _reason(self, pod: Pod, why: Mapping[str, str]) -> str:
        wants_system = any(pod.node_selector.get(k) == v for k, v in self.inputs.system_type.labels.items()
                           if k != "node.kubernetes.io/instance-type")
        if (wants_system and self.inputs.system_count) or not self.inputs.pools:
            if wants_system:
                return (f"system node group full: {self.inputs.system_count} × {self.inputs.system_type.instance_type} "
                        f"cannot hold it and nothing scales the group (raise gpufleet:cluster.systemNodes.minSize)")
        limit = [p for p, r in why.items() if r == "limit"]
        if limit:
            pools = {p.name: p for p in self.inputs.pools}
            text = "; ".join(f"{p}: " + ", ".join(f"{k} {_show(k, v)}" for k, v in pools[p].limits.items()) for p in limit)
            return f"pool limit reached ({text})"
        size = [p for p, r in why.items() if r == "size"]
        if size:
            asks = ", ".join(f"{k} {_show(k, v)}" for k, v in sorted(pod.requests.items()))
            return f"too large for any instance type of {', '.join(size)} (asks {asks})"
        if any(r == "affinity" for r in why.values()):
            return "its pod (anti-)affinity or topology spread cannot be met on any node"
        return "no NodePool tolerates it and matches its node selection"


def _show(resource: str, amount: int) -> str:
    if resource == "cpu":
        return f"{amount / 1000:g}"
    if resource == "memory":
        return f"{amount / 1024:g}Gi"
    return str(amount)


def place(inputs: ClusterInputs, pods: Sequence[Pod]) -> Placement:
    scheduler = Scheduler(inputs)
    scheduler.place(pods)
    return scheduler.result
