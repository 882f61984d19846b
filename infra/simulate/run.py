"""One simulation at one scale: Kueue admission, placement, then what the outcome means: nodes and
their cost, pending pods, drains blocked by PodDisruptionBudgets and GPU allocation per pool."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping, Sequence

from gpufleet.infra.simulate.cluster import Pod, label_selector_matches
from gpufleet.infra.simulate.inputs import SYSTEM_POOL, ClusterInputs, Scale, kueue_requests
from gpufleet.infra.simulate.kueue import Admission, injected
from gpufleet.infra.simulate.scheduler import Pending, Placement, place
from gpufleet.policies.core import as_mapping, as_str


@dataclass
class ScaleResult:
    scale: Scale
    placement: Placement
    pending: list[Pending]
    blocked_drains: list[dict[str, str]]
    notes: list[str] = field(default_factory=list)
    pools: dict[str, Any] = field(default_factory=dict)

    def node_rows(self) -> list[dict[str, Any]]:
        """Nodes per pool, instance type and capacity type: count and $/h (all of them)."""
        groups: dict[tuple[str, str, str], list[float]] = {}
        for node in self.placement.nodes:
            node_type, capacity, price = node.chosen
            groups.setdefault((node.pool, node_type.instance_type, capacity), []).append(price)
        return [{"pool": pool, "instanceType": itype, "capacityType": capacity, "count": len(prices),
                 "hourlyUsd": round(sum(prices), 4)}
                for (pool, itype, capacity), prices in sorted(groups.items(), key=lambda kv: (kv[0][0] != SYSTEM_POOL, kv[0]))]

    def pending_groups(self) -> list[tuple[str, int, str]]:
        """Pending pods grouped per pod set (per workload when Kueue holds it back): (``Kind
        namespace/name``, how many pods, reason), in first-seen order."""
        groups: dict[tuple[str, str], int] = {}
        for pending in self.pending:
            pod = pending.pod
            name = pod.name
            if pending.reason.startswith("quota:") and pod.workload:
                name = pod.workload.split("/", 2)[-1]  # Kueue holds the whole workload back: one line for it
            what = f"{pod.kind} {pod.namespace + '/' if pod.namespace else ''}{name}"
            groups[(what, pending.reason)] = groups.get((what, pending.reason), 0) + 1
        return [(what, count, reason) for (what, reason), count in groups.items()]

    @property
    def hourly_usd(self) -> float:
        return round(sum(node.chosen[2] for node in self.placement.nodes), 4)

    def gpus(self) -> dict[str, Any]:
        """GPUs requested and provisioned: physical GPUs overall (a slice or shared replica counts as its
        share of one GPU), and per pool in the unit its pods request (fragmentation)."""
        pools = []
        requested_total = 0.0
        provisioned_total = 0
        for pool in self.pools.values():
            if pool.system:
                continue
            nodes = [n for n in self.placement.nodes if n.pool == pool.name]
            resource = pool.gpu_resource
            offered = sum(n.chosen[0].allocatable.get(resource, 0) for n in nodes)
            physical = sum(n.chosen[0].gpus for n in nodes)
            asked = sum(p.requests.get(resource, 0) for n in nodes for p in n.pods)
            per_gpu = [n.chosen[0].allocatable.get(resource, 0) / n.chosen[0].gpus for n in nodes if n.chosen[0].gpus]
            share = (1 / per_gpu[0]) if per_gpu and per_gpu[0] else 1.0
            requested_total += asked * share
            provisioned_total += physical
            pools.append({"pool": pool.name, "resource": resource, "requested": asked, "provisioned": offered,
                          "gpus": physical})
        return {"requested": round(requested_total, 3), "provisioned": provisioned_total, "pools": pools}

    def document(self) -> dict[str, Any]:
        return {
            "nodes": self.node_rows(),
            "hourlyUsd": self.hourly_usd,
            "pending": [{"kind": p.pod.kind, "namespace": p.pod.namespace, "name": f"{p.pod.name}-{p.pod.index}",
                         "reason": p.reason} for p in self.pending],
            "blockedDrains": self.blocked_drains,
            "gpus": self.gpus(),
            "notes": self.notes,
        }


def _admit(inputs: ClusterInputs, pods: list[Pod]) -> tuple[list[Pod], list[Pending]]:
    """Kueue: each queued workload is admitted as a whole against its ClusterQueue (in the order the
    stack declares them) or waits; admitted pods get their flavors' node labels and tolerations."""
    if not inputs.cluster_queues:
        return pods, []
    admission = Admission(inputs.cluster_queues, inputs.flavors)

    def charged(group: list[Pod]) -> dict[str, Any]:
        # DRA claims in the resource Kueue's deviceClassMappings name
        return kueue_requests(group, inputs.kueue_excluded_prefixes, inputs.kueue_device_classes)

    workloads: dict[str, list[Pod]] = {}
    for pod in pods:
        if pod.queue:
            workloads.setdefault(pod.workload, []).append(pod)
    rejected: dict[str, str] = {}
    adjusted: dict[str, Mapping[str, Any]] = {}
    # Workloads created together are admitted in a fixed order (kind, namespace, name).
    for key, members in sorted(workloads.items()):
        namespace, queue = members[0].namespace, members[0].queue
        cluster_queue = inputs.local_queues.get((namespace, queue))
        if not cluster_queue or cluster_queue not in inputs.cluster_queues:
            rejected[key] = f"quota: no LocalQueue {queue!r} in {namespace} leads to a ClusterQueue"
            continue
        pod_sets: dict[str, list[Pod]] = {}
        for pod in members:
            pod_sets.setdefault(pod.name, []).append(pod)
        assignments = admission.admit_workload(
            cluster_queue, [(group[0].spec, charged(group)) for group in pod_sets.values()])
        if assignments is None:
            requests = charged(members)
            asks = ", ".join(f"{k} {_quantity(k, v)}" for k, v in sorted(requests.items()) if k not in ("cpu", "memory"))
            rejected[key] = (f"quota: ClusterQueue {cluster_queue} has no room for it ({asks or 'its CPU and memory'}): "
                             f"its nominal quota and what its cohort may lend are in use or too small")
            continue
        for group, assignment in zip(pod_sets.values(), assignments):
            selector, tolerations = injected(inputs.flavors, assignment)
            spec = {**group[0].spec, "nodeSelector": {**(group[0].spec.get("nodeSelector") or {}), **selector},
                    "tolerations": [*(group[0].spec.get("tolerations") or []), *tolerations]}
            for pod in group:
                adjusted[pod.id] = spec  # one object per pod set: the scheduler caches by it
    admitted, pending = [], []
    for pod in pods:
        if pod.workload in rejected and pod.queue:
            pending.append(Pending(pod, rejected[pod.workload]))
        elif pod.id in adjusted:
            admitted.append(Pod(pod.kind, pod.namespace, pod.name, pod.index, pod.requests, pod.labels,
                                adjusted[pod.id], pod.queue, pod.workload))
        else:
            admitted.append(pod)
    return admitted, pending


def _quantity(resource: str, amount: Decimal) -> str:
    if resource == "memory":
        return f"{amount / 2**30:g}Gi"
    return f"{amount.normalize():f}"


def _blocked_drains(inputs: ClusterInputs, placement: Placement) -> list[dict[str, str]]:
    """PDBs that allow no disruption of the pods they select (kube-controller-manager's disruption
    controller, ``getExpectedScale``/``disruptionsAllowed``: minAvailable and maxUnavailable as counts
    or percentages of the pods, rounded up): a drain of a node with one of them waits forever."""
    blocked: list[dict[str, str]] = []
    for pdb in inputs.pdbs:
        selector = as_mapping(pdb.spec.get("selector"))
        pods = [(pod, node) for node in placement.nodes for pod in node.pods
                if pod.namespace == pdb.namespace and selector and label_selector_matches(selector, pod.labels)]
        if not pods:
            continue
        count = len(pods)
        if "minAvailable" in pdb.spec:
            need = _absolute(pdb.spec["minAvailable"], count)
            allowed = count - need
            rule = f"minAvailable {pdb.spec['minAvailable']}"
        elif "maxUnavailable" in pdb.spec:
            allowed = _absolute(pdb.spec["maxUnavailable"], count)
            rule = f"maxUnavailable {pdb.spec['maxUnavailable']}"
        else:
            continue
        if allowed > 0:
            continue
        for pool in sorted({node.pool for _, node in pods}):
            blocked.append({"pool": pool, "pdb": f"{pdb.namespace}/{pdb.object_name}",
                            "reason": f"{rule} with {count} pod(s): no pod may be evicted, so a drain of a node "
                                      f"running one never finishes"})
    return blocked


def _absolute(value: Any, count: int) -> int:
    text = as_str(value)
    if text is not None and text.endswith("%"):
        return int(math.ceil(float(text[:-1]) * count / 100))
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def simulate_scale(inputs: ClusterInputs, scale: Scale) -> ScaleResult:
    pods, notes = inputs.pods(scale)
    admitted, waiting = _admit(inputs, pods)
    placement = place(inputs, admitted)
    result = ScaleResult(scale, placement, waiting + placement.pending, _blocked_drains(inputs, placement), notes)
    result.pools = {p.name: p for p in inputs.pools}
    return result


@dataclass
class Simulation:
    stack: str
    region: str
    results: dict[str, ScaleResult]

    def document(self) -> dict[str, Any]:
        return {"stack": self.stack, "region": self.region,
                **{scale: result.document() for scale, result in self.results.items()}}

    @property
    def ok(self) -> bool:
        minimum = self.results.get("min")
        checked = [minimum] if minimum is not None else list(self.results.values())
        return all(not r.pending and not r.blocked_drains for r in checked)


def simulate(inputs: ClusterInputs, scales: Sequence[Scale] = ("min", "max")) -> Simulation:
    return Simulation(inputs.stack, inputs.region, {scale: simulate_scale(inputs, scale) for scale in scales})


def simulate_plan(plan: Any, config: Any, scales: Sequence[Scale] = ("min", "max")) -> Simulation:
    """Simulate a :class:`~gpufleet.infra.offline.plan.Plan` of a stack whose parsed config is ``config``."""
    from gpufleet.infra.offline.engine import plain
    from gpufleet.infra.simulate.inputs import read_inputs
    from gpufleet.policies.core import Subject

    subjects = [Subject(type=r.type, name=r.name, props=plain(r.inputs), urn=r.urn) for r in plan.recording.resources]
    return simulate(read_inputs(plan.stack, config.region, subjects, config), scales)


