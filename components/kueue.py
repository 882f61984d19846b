"""``Kueue``: job queueing that turns GPU pools into a shared, policy-governed substrate.

Kueue admits a job (batch Job, RayJob, RayCluster, ...) only when its whole quota is free, so a
4-GPU job never holds 3 GPUs idle waiting for the 4th; ``waitForPodsReady`` evicts and requeues an
admitted job whose pods do not all become ready in time (all-or-nothing, no deadlock on capacity
that never arrives).

The component installs the controller (Helm chart, on the system nodes) and declares:

- one **ResourceFlavor per GPU pool**: its node labels and tolerations come from the pool's
  :class:`~gpufleet.components.gpu_scheduling.GpuPlacement`, so an admitted pod lands on that pool;
- the **CPU flavor** :data:`CPU_FLAVOR`, which holds every pod set's cpu and memory: no node labels
  and no tolerations, so Kueue adds nothing for them and a CPU-only pod set (a RayCluster's or
  RayJob's head, the CPU steps of a batch Job) keeps its own node selection (the Ray head: the
  system nodes), never a GPU pool's node;
- one **ClusterQueue per team** in one cohort, with two resource groups: cpu/memory on the CPU
  flavor (what the team's namespace quota leaves after its pods outside Kueue, never borrowed), and
  nominal GPU quota per pool with borrowing and lending limits; preemption of lower priorities,
  fair sharing of idle GPUs;
- the **WorkloadPriorityClasses** ``inference`` > ``training`` > ``batch`` (same names and values as
  the PriorityClasses of :mod:`gpufleet.components.priority_classes`).

Every custom resource depends on the Helm release: created after the CRDs exist, deleted before the
controller (whose finalizers must run) goes away.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional, Sequence, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes._utilities import get_version as k8s_version
from typing_extensions import NotRequired

from gpufleet.components._k8s import DNS_LABEL, controller_chart
from gpufleet.components._validate import check_arg_keys, require, require_int_range
from gpufleet.components.gpu_scheduling import POOL_LABEL, PRIORITY_CLASSES, GpuPlacement
from gpufleet.components.kueue_controller import (
    CHART, CHART_VERSION, DEFAULT_FRAMEWORKS, TYPE, check_frameworks, device_class_mappings, helm_values,
)
from gpufleet.components.priority_classes import DESCRIPTIONS, PRIORITY_VALUES

API_VERSION = "kueue.x-k8s.io/v1beta2"
CPU_FLAVOR = "cpu"
"""ResourceFlavor of every pod set's cpu and memory (the only flavor of the ClusterQueues'
cpu/memory resource group). It has no node labels and no tolerations: Kueue injects nothing for it,
so a CPU-only pod set (a Ray head) keeps its "not a GPU node" affinity, and a GPU pod set gets its
node selector and toleration from the pool flavor assigned to its GPUs (the other resource group).
No GPU pool may use this name."""

_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class GpuQuota(TypedDict):
    """A ClusterQueue's share of one GPU pool (flavor), in physical GPUs of that pool.

    The ClusterQueue's quota is in the pool's GPU resource (``placement.gpu_resource``): whole GPUs,
    time-sliced replicas or MIG slices; GPUs are converted with the pool's units per GPU (e.g. 4
    time-slicing replicas, or 7 ``1g.10gb`` slices of an 80 GB A100/H100)."""

    pool: str
    """Name of the GPU pool; a placement of that name must be among ``placements``. Required."""
    gpus: int
    """Nominal quota: GPUs of the pool guaranteed to the queue. Required (0 allowed: borrow only)."""
    borrowing_limit: NotRequired[Optional[int]]
    """GPUs the queue may borrow beyond ``gpus`` from idle quota of the cohort. Default no limit."""
    lending_limit: NotRequired[Optional[int]]
    """GPUs of ``gpus`` other queues may borrow while idle. Default all of them."""


class ClusterQueueSpec(TypedDict):
    """One team's ClusterQueue."""

    name: str
    """ClusterQueue name (cluster-scoped; gpufleet uses the team name). Required."""
    namespaces: Sequence[str]
    """Namespaces whose LocalQueues may submit to this queue. Required, at least one."""
    gpu_quotas: Sequence[GpuQuota]
    """One entry per pool the queue may use, in order of preference (Kueue tries the flavors in
    this order). Required, at least one."""
    cpu: NotRequired[int]
    """CPU cores of the queue's workloads together, on the CPU flavor, whichever pool their GPUs are
    on; never borrowed from the cohort. Set it to (at most) the namespace ResourceQuota's
    ``requests.cpu`` minus what the namespace's pods outside Kueue (KServe predictors at their most
    replicas, weights loader Jobs) request, so Kueue never admits pods the quota refuses. Default 64."""
    memory_gib: NotRequired[int]
    """Memory of the queue's workloads together, GiB, like ``cpu``. Default 256."""
    fair_sharing_weight: NotRequired[int]
    """Weight of this queue when idle GPUs are shared in the cohort. Default 1."""


class KueueArgs(TypedDict):
    """Inputs of :class:`Kueue`."""

    placements: Sequence[GpuPlacement]
    """The GPU pools: one ResourceFlavor each, named after the pool. Required, at least one."""
    cluster_queues: NotRequired[Sequence[ClusterQueueSpec]]
    """The teams' ClusterQueues. Default none."""
    cohort: NotRequired[str]
    """Cohort of every ClusterQueue: queues in it lend each other idle quota. Default ``gpufleet``."""
    namespace: NotRequired[str]
    """Namespace of the controller. Default ``kueue-system``."""
    replicas: NotRequired[int]
    """Controller replicas (leader election; a PodDisruptionBudget keeps one when more). Default 2:
    Kueue's webhooks must be up for queued kinds (and, with the ``pod`` integration, any pod) to be
    created."""
    fair_sharing: NotRequired[bool]
    """Share idle quota by queue weight and preempt towards fair shares. Default true."""
    pods_ready_timeout_minutes: NotRequired[int]
    """waitForPodsReady: minutes an admitted workload has for all its pods to be ready before it is
    evicted and requeued (covers GPU node launch and image pull). Default 15."""
    block_admission: NotRequired[bool]
    """waitForPodsReady: admit nothing else until the last admitted workload is ready (strict
    sequential gang admission; slower). Default false."""
    frameworks: NotRequired[Sequence[str]]
    """Kueue integrations. Default :data:`DEFAULT_FRAMEWORKS` (batch/job and the KubeRay kinds).
    Adding ``pod`` (needed by ``deployment``, ``statefulset``, LeaderWorkerSet) makes Kueue's pod
    webhook fail closed for pod creation in nearly every namespace of the cluster (all but
    ``kube-system`` and Kueue's namespace) whenever the Kueue controller is unavailable."""
    enable_prometheus: NotRequired[bool]
    """Create the chart's ServiceMonitor (needs the Prometheus Operator CRDs). Default false."""


def resources_per_gpu(placement: GpuPlacement) -> int:
    """Units of ``placement.gpu_resource`` one physical GPU of the pool advertises (the smallest
    over its instance types): 1, the time-slicing replicas, or MIG slices of the pool's profile."""
    per_gpu = [placement.gpu_resources_per_node(t) // t.gpus for t in placement.instance_types if t.gpus]
    return min(per_gpu, default=0)


class Kueue(pulumi.ComponentResource):
    """The Kueue controller (chart ``0.19.2``), a ResourceFlavor per GPU pool and the CPU flavor, a
    ClusterQueue per team in one cohort, and the WorkloadPriorityClasses."""

    release: k8s.helm.v3.Release
    flavors: Mapping[str, k8s.apiextensions.CustomResource]
    """Pool name → its ResourceFlavor; :data:`CPU_FLAVOR` → the CPU flavor."""
    cluster_queues: Mapping[str, k8s.apiextensions.CustomResource]
    """ClusterQueue name → the ClusterQueue."""
    cluster_queue_names: Mapping[str, pulumi.Output[str]]
    """ClusterQueue name → the name as an output of the ClusterQueue: a LocalQueue that uses it waits
    for (and is deleted before) the ClusterQueue."""

    def __init__(self, name: str, args: KueueArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, KueueArgs, name=TYPE)
        placements = _placements(args.get("placements"))
        queues = [_queue(q, i, placements) for i, q in enumerate(args.get("cluster_queues", []))]
        names = [q["name"] for q in queues]
        if len(set(names)) != len(names):
            raise ValueError(f"{TYPE}: cluster_queues names must be unique, got {names}")
        cohort = args.get("cohort", "gpufleet")
        if not isinstance(cohort, str) or not DNS_LABEL.match(cohort):
            raise ValueError(f"{TYPE}: cohort must be a DNS label, got {cohort!r}")
        namespace = args.get("namespace", "kueue-system")
        if not isinstance(namespace, str) or not DNS_LABEL.match(namespace):
            raise ValueError(f"{TYPE}: namespace must be a DNS label, got {namespace!r}")
        replicas = require_int_range(args.get("replicas", 2), "replicas", 1, 5, name=TYPE)
        fair_sharing = args.get("fair_sharing", True)
        if not isinstance(fair_sharing, bool):
            raise TypeError(f"{TYPE}: fair_sharing must be bool")
        values = helm_values(
            frameworks=check_frameworks(args.get("frameworks", DEFAULT_FRAMEWORKS)),
            replicas=replicas,
            fair_sharing=fair_sharing,
            pods_ready_timeout_minutes=require_int_range(
                args.get("pods_ready_timeout_minutes", 15), "pods_ready_timeout_minutes", 1, 180, name=TYPE),
            block_admission=bool(args.get("block_admission", False)),
            enable_prometheus=bool(args.get("enable_prometheus", False)),
            device_class_mappings=device_class_mappings(placements.values()),
        )

        super().__init__(TYPE, name, {}, opts)
        self.release = controller_chart(
            name,
            namespace=namespace,
            release_name="kueue",
            chart=CHART,
            version=CHART_VERSION,
            values=values,
            parent=self,
        )
        # After the CRDs and the webhooks; deleted before the controller that runs their finalizers.
        after_release = pulumi.ResourceOptions(parent=self, depends_on=[self.release])

        for role, class_name in PRIORITY_CLASSES.items():
            _WorkloadPriorityClass(
                f"{name}-priority-{role}",
                class_name=class_name,
                value=PRIORITY_VALUES[role],
                description=DESCRIPTIONS[role],
                opts=after_release,
            )
        self.flavors = {
            pool: k8s.apiextensions.CustomResource(
                f"{name}-flavor-{pool}",
                api_version=API_VERSION,
                kind="ResourceFlavor",
                metadata={"name": pool, "labels": {POOL_LABEL: pool}},
                spec=resource_flavor_spec(placement),
                opts=after_release,
            )
            for pool, placement in placements.items()
        }
        self.flavors[CPU_FLAVOR] = k8s.apiextensions.CustomResource(
            f"{name}-flavor-{CPU_FLAVOR}",
            api_version=API_VERSION,
            kind="ResourceFlavor",
            metadata={"name": CPU_FLAVOR},
            spec=cpu_flavor_spec(),
            opts=after_release,
        )
        self.cluster_queues = {
            queue["name"]: k8s.apiextensions.CustomResource(
                f"{name}-queue-{queue['name']}",
                api_version=API_VERSION,
                kind="ClusterQueue",
                metadata={"name": queue["name"]},
                spec=cluster_queue_spec(queue, placements, cohort=cohort, fair_sharing=fair_sharing),
                # Admission needs the flavors: create them first, delete the queue first.
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[self.release, self.flavors[CPU_FLAVOR],
                                *(self.flavors[q["pool"]] for q in queue["gpu_quotas"])],
                ),
            )
            for queue in queues
        }
        self.cluster_queue_names = {
            queue_name: queue.metadata.apply(lambda m: m["name"])
            for queue_name, queue in self.cluster_queues.items()
        }
        self.register_outputs({"cluster_queue_names": self.cluster_queue_names})


class _WorkloadPriorityClass(pulumi.CustomResource):
    """A Kueue WorkloadPriorityClass. Its fields (``value``, ``description``) sit at the top level of
    the object, which ``k8s.apiextensions.CustomResource`` (``spec`` only) cannot express."""

    def __init__(self, resource_name: str, *, class_name: str, value: int, description: str,
                 opts: pulumi.ResourceOptions):
        props = {
            "apiVersion": API_VERSION,
            "kind": "WorkloadPriorityClass",
            "metadata": {"name": class_name},
            "value": value,
            "description": description,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(version=k8s_version()))
        super().__init__(f"kubernetes:{API_VERSION}:WorkloadPriorityClass", resource_name, props, opts)


def resource_flavor_spec(placement: GpuPlacement) -> dict[str, Any]:
    """A ResourceFlavor that steers admitted pods onto ``placement``'s pool: Kueue adds the node
    labels as a node selector and the tolerations to every pod it admits with this flavor."""
    return {"nodeLabels": placement.node_selector(), "tolerations": placement.tolerations()}


def cpu_flavor_spec() -> dict[str, Any]:
    """The CPU flavor: no node labels, no tolerations. Kueue injects nothing into a pod admitted
    with it; without a GPU toleration the pod cannot land on a (tainted) GPU node, and its own node
    selector decides among the CPU nodes (the Ray head's: the system nodes; a head that selects
    other CPU nodes is admitted too, which a flavor labelled for the system nodes would refuse)."""
    return {}


def cluster_queue_spec(
    queue: Mapping[str, Any], placements: Mapping[str, GpuPlacement], *, cohort: str, fair_sharing: bool
) -> dict[str, Any]:
    """The ClusterQueue ``spec`` of a validated :class:`ClusterQueueSpec`.

    Two resource groups, as in Kueue's "Resource Groups" example (cpu/memory tied to one set of
    flavors, GPUs to another); Kueue picks one flavor *per group* for a pod set and injects the node
    labels and tolerations of every flavor it assigned:

    - ``[cpu, memory]`` with the CPU flavor alone, holding the team's cpu/memory once, with
      ``borrowingLimit: 0``. Quota per flavor is counted separately by Kueue: giving every pool
      flavor the team's cpu/memory again (one group for everything) let Kueue admit (1 + pools) ×
      the namespace ResourceQuota, and the quota then refused the pods (waitForPodsReady
      evict/requeue loops). With one flavor, Σ nominal = ``cpu``/``memory_gib`` (at most the
      ResourceQuota less the namespace's pods outside Kueue), and no borrowing keeps admitted usage
      under it. The flavor has no labels, so it adds nothing to any pod.
    - the GPU resources of the queue's pools, one flavor per pool in the queue's order, each listing
      every GPU resource of the group (Kueue requires it) with 0 for other pools' resources: a GPU
      pod set gets its pool's node selector and toleration from here, a CPU-only pod set requests
      nothing of this group and gets no GPU flavor at all.

    Pods that request a resource outside ``coveredResources`` are never admitted."""
    quotas = queue["gpu_quotas"]
    gpu_resources = sorted({placements[q["pool"]].gpu_resource for q in quotas})
    cpu_group = {
        "coveredResources": ["cpu", "memory"],
        "flavors": [{"name": CPU_FLAVOR, "resources": [
            {"name": "cpu", "nominalQuota": str(queue["cpu"]), "borrowingLimit": "0"},
            {"name": "memory", "nominalQuota": f"{queue['memory_gib']}Gi", "borrowingLimit": "0"},
        ]}],
    }
    flavors = []
    for quota in quotas:
        placement = placements[quota["pool"]]
        per_gpu = resources_per_gpu(placement)
        resources = []
        for resource in gpu_resources:
            if resource != placement.gpu_resource:
                resources.append({"name": resource, "nominalQuota": "0"})
                continue
            entry: dict[str, Any] = {"name": resource, "nominalQuota": str(quota["gpus"] * per_gpu)}
            if quota.get("borrowing_limit") is not None:
                entry["borrowingLimit"] = str(quota["borrowing_limit"] * per_gpu)
            if quota.get("lending_limit") is not None:
                entry["lendingLimit"] = str(quota["lending_limit"] * per_gpu)
            resources.append(entry)
        flavors.append({"name": placement.pool, "resources": resources})
    gpu_group = {"coveredResources": gpu_resources, "flavors": flavors}

    preemption: dict[str, Any] = {
        # A team gets its lent-out nominal quota back by preempting borrowers.
        "reclaimWithinCohort": "Any",
        # Inside a team, inference preempts training, training preempts batch.
        "withinClusterQueue": "LowerPriority",
    }
    if not fair_sharing:
        # Without fair sharing, a borrowing workload may only preempt batch work of other queues.
        preemption["borrowWithinCohort"] = {
            "policy": "LowerPriority",
            "maxPriorityThreshold": PRIORITY_VALUES["batch"],
        }
    spec: dict[str, Any] = {
        "cohortName": cohort,
        "namespaceSelector": {
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": list(queue["namespaces"])},
            ],
        },
        "queueingStrategy": "BestEffortFIFO",
        "resourceGroups": [cpu_group, gpu_group],
        "preemption": preemption,
    }
    if fair_sharing:
        spec["fairSharing"] = {"weight": str(queue["fair_sharing_weight"])}
    return spec


def _placements(value: Any) -> dict[str, GpuPlacement]:
    if not value:
        raise ValueError(f"{TYPE}: placements is required (one GPU pool at least)")
    result: dict[str, GpuPlacement] = {}
    for index, placement in enumerate(value):
        if not isinstance(placement, GpuPlacement):
            raise TypeError(f"{TYPE}: placements[{index}] must be a GpuPlacement, got {type(placement).__name__}")
        if placement.pool in result:
            raise ValueError(f"{TYPE}: placements[{index}] repeats pool {placement.pool!r}")
        if not DNS_LABEL.match(placement.pool):
            raise ValueError(f"{TYPE}: placements[{index}].pool must be a DNS label, got {placement.pool!r}")
        if placement.pool == CPU_FLAVOR:
            raise ValueError(f"{TYPE}: placements[{index}].pool {CPU_FLAVOR!r} is the name of Kueue's CPU flavor; rename the pool")
        if resources_per_gpu(placement) < 1:
            raise ValueError(
                f"{TYPE}: placements[{index}] (pool {placement.pool!r}) advertises no {placement.gpu_resource} "
                "on its instance types"
            )
        if len(placement.tolerations()) > 8 or len(placement.node_selector()) > 8:
            # ResourceFlavor holds at most 8 tolerations and 8 node labels.
            raise ValueError(f"{TYPE}: placements[{index}] (pool {placement.pool!r}) has more than 8 taints or selector labels")
        result[placement.pool] = placement
    return result


def _queue(queue: Mapping[str, Any], index: int, placements: Mapping[str, GpuPlacement]) -> dict[str, Any]:
    where = f"cluster_queues[{index}]"
    queue_name = require(queue, "name", str, name=f"{TYPE}: {where}")
    if not _DNS_NAME.match(queue_name) or len(queue_name) > 253:
        raise ValueError(f"{TYPE}: {where}.name must be a DNS subdomain name, got {queue_name!r}")
    namespaces = list(queue.get("namespaces") or [])
    if not namespaces:
        raise ValueError(f"{TYPE}: {where}.namespaces must name at least one namespace")
    for namespace in namespaces:
        if not isinstance(namespace, str) or not DNS_LABEL.match(namespace):
            raise ValueError(f"{TYPE}: {where}.namespaces has an invalid namespace name {namespace!r}")
    quotas = list(queue.get("gpu_quotas") or [])
    if not quotas:
        raise ValueError(f"{TYPE}: {where}.gpu_quotas must name at least one pool")
    pools = [q.get("pool") for q in quotas]
    if len(set(pools)) != len(pools):
        raise ValueError(f"{TYPE}: {where}.gpu_quotas names a pool twice: {pools}")
    for j, quota in enumerate(quotas):
        field = f"{where}.gpu_quotas[{j}]"
        if quota.get("pool") not in placements:
            raise ValueError(
                f"{TYPE}: {field}.pool {quota.get('pool')!r} is not a GPU pool (known: {', '.join(placements)})"
            )
        require_int_range(quota.get("gpus"), f"{field}.gpus", 0, 100_000, name=TYPE)
        for limit in ("borrowing_limit", "lending_limit"):
            if quota.get(limit) is not None:
                require_int_range(quota[limit], f"{field}.{limit}", 0, 100_000, name=TYPE)
        if quota.get("lending_limit") is not None and quota["lending_limit"] > quota["gpus"]:
            raise ValueError(f"{TYPE}: {field}.lending_limit ({quota['lending_limit']}) exceeds gpus ({quota['gpus']})")
    return {
        "name": queue_name,
        "namespaces": namespaces,
        "gpu_quotas": quotas,
        "cpu": require_int_range(queue.get("cpu", 64), f"{where}.cpu", 1, 100_000, name=TYPE),
        "memory_gib": require_int_range(queue.get("memory_gib", 256), f"{where}.memory_gib", 1, 10_000_000, name=TYPE),
        "fair_sharing_weight": require_int_range(
            queue.get("fair_sharing_weight", 1), f"{where}.fair_sharing_weight", 0, 1000, name=TYPE),
    }


__all__ = [
    "CPU_FLAVOR",
    "ClusterQueueSpec",
    "GpuQuota",
    "Kueue",
    "KueueArgs",
    "resources_per_gpu",
]
