"""Stack area ``system_nodes``: the pods gpufleet pins to the system node group must fit it.

Nothing scales the system node group (Karpenter provisions GPU pools only, and it runs *on* these
nodes), so what is pinned there has to fit at ``gpufleet:cluster.systemNodes.minSize`` or the first
``pulumi up`` leaves controllers, Ray heads and weights loaders Pending. :func:`cross_check` adds up
the CPU and memory requests of everything on the system nodes (:func:`system_node_pods`) and
compares them with the allocatable resources of ``minSize`` nodes of the smallest listed instance
type (:func:`allocatable`), keeping :data:`HEADROOM` free.

Where each figure comes from (one source each, never a copy):

- pods whose requests gpufleet renders (Ray heads, their autoscaler sidecars, RayJob submitters,
  weights loader Jobs, the KubeRay operator) are built by the very component functions the program
  uses (:func:`~gpufleet.components.ray_cluster.plan_cluster`, :func:`~gpufleet.components.ray_job.plan_job`,
  :func:`~gpufleet.components.model_loader.loader_job_spec`, ``kuberay.operator_values``) and their
  pod templates are summed;
- replicas and resources the stack sets (Karpenter, Kueue, KubeRay, KEDA) are read from the stack
  configuration the components receive;
- requests left to a chart are the chart's defaults at the pinned tag (:data:`CHART_DEFAULTS`, each
  checked against the chart's ``values.yaml`` by the tests);
- the EKS pieces on every node (:data:`EKS_SYSTEM_PODS`) are the requests of the EKS-managed
  manifests.

This area declares nothing: the node group is the Cluster's (``infra/program.py``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

from gpufleet.components.autoscaling import keda_values
from gpufleet.components.gpu_scheduling import SYSTEM_NODE_SELECTOR
from gpufleet.components.kuberay import operator_values as kuberay_values
from gpufleet.components.model_loader import loader_job_spec
from gpufleet.components.triton_models import repository_job_spec
from gpufleet.components.ray_cluster import plan_cluster
from gpufleet.components.ray_job import plan_job
from gpufleet.infra.areas.base import Platform

# -- instance facts and allocatable ----------------------------------------------------------------


@dataclass(frozen=True)
class InstanceFacts:
    """What the kubelet of a system node has to share out."""

    vcpus: int
    memory_gib: int
    max_pods: int
    """Pods the VPC CNI allows (``eni-max-pods.txt``), which the kube-reserved memory scales with."""


def _family(prefix: str, sizes: Iterable[tuple[str, int, int, int]]) -> dict[str, InstanceFacts]:
    return {f"{prefix}.{size}": InstanceFacts(vcpus, memory, pods) for size, vcpus, memory, pods in sizes}


# vCPUs and memory: the EC2 instance type pages (general purpose M, compute optimised C, memory
# optimised R). Max pods: amazon-vpc-cni-k8s ``misc/eni-max-pods.txt`` (ENIs × (IPs per ENI - 1) + 2),
# which EKS's AL2023 AMI uses for the kubelet's maxPods without prefix delegation.
_GENERAL = (("large", 2, 8, 29), ("xlarge", 4, 16, 58), ("2xlarge", 8, 32, 58), ("4xlarge", 16, 64, 234),
            ("8xlarge", 32, 128, 234))
_COMPUTE = (("large", 2, 4, 29), ("xlarge", 4, 8, 58), ("2xlarge", 8, 16, 58), ("4xlarge", 16, 32, 234))
_MEMORY = (("large", 2, 16, 29), ("xlarge", 4, 32, 58), ("2xlarge", 8, 64, 58), ("4xlarge", 16, 128, 234))
SYSTEM_INSTANCE_TYPES: Mapping[str, InstanceFacts] = {
    **{k: v for family in ("m5", "m6i", "m6a", "m7i", "m7a", "m6g", "m7g", "m8g") for k, v in _family(family, _GENERAL).items()},
    **{k: v for family in ("c6i", "c7i", "c7g") for k, v in _family(family, _COMPUTE).items()},
    **{k: v for family in ("r6i", "r7i", "r7g") for k, v in _family(family, _MEMORY).items()},
}
"""Instance types the system node group may use, with what the check needs to know of them."""

EVICTION_HARD_MEMORY_MIB = 100
"""The kubelet's ``evictionHard: memory.available<100Mi`` on EKS AMIs: not allocatable either."""
MEMORY_CAPACITY_SHARE = 0.94
"""The kubelet's memory capacity is the kernel's ``MemTotal``, below the nominal size by what
firmware and the kernel keep (an m5/m6i/m7i.xlarge reports about 15.1 GiB of 16). A conservative
share of the nominal size stands for it."""
HEADROOM = 0.15
"""Share of the allocatable resources kept free: room for what gpufleet does not declare on these
nodes (the Prometheus stack the alerts need, rolling updates' surge pods) and for bin-packing loss."""


def kube_reserved_cpu_millis(vcpus: int) -> int:
    """CPU the kubelet reserves for itself on EKS AMIs (amazon-eks-ami, AL2023 ``nodeadm``
    ``internal/kubelet/config.go``, ``getCPUMillicoresToReserve``, GKE's formula): 6 % of the first
    core, 1 % of the second, 0.5 % of the third and fourth, 0.25 % of every further core."""
    tiers = ((1, 60.0), (1, 10.0), (2, 5.0), (math.inf, 2.5))
    reserved, left = 0.0, vcpus
    for cores, per_core in tiers:
        taken = min(left, cores)
        reserved += taken * per_core
        left -= taken
        if left <= 0:
            break
    return int(math.ceil(reserved))


def kube_reserved_memory_mib(max_pods: int) -> int:
    """Memory the kubelet reserves on EKS AMIs (``getMemoryMebibytesToReserve``): 11 MiB per pod the
    node may run plus 255 MiB."""
    return 11 * max_pods + 255


def allocatable(facts: InstanceFacts) -> tuple[int, int]:
    """``(millicores, MiB)`` a node of this type offers to pods."""
    cpu = facts.vcpus * 1000 - kube_reserved_cpu_millis(facts.vcpus)
    capacity = int(facts.memory_gib * 1024 * MEMORY_CAPACITY_SHARE)
    memory = capacity - kube_reserved_memory_mib(facts.max_pods) - EVICTION_HARD_MEMORY_MIB
    return cpu, memory


# -- what runs on the system nodes -----------------------------------------------------------------


@dataclass(frozen=True)
class SystemPods:
    """``count`` identical pods on the system nodes, with their requests."""

    what: str
    count: int
    cpu_millis: int
    """Per pod."""
    memory_mib: int
    """Per pod."""
    per_node: bool = False
    """A DaemonSet: ``count`` is per system node."""

    def total(self, nodes: int) -> tuple[int, int]:
        pods = self.count * (nodes if self.per_node else 1)
        return pods * self.cpu_millis, pods * self.memory_mib


CHART_DEFAULTS: Mapping[tuple[str, str], Mapping[str, str]] = {
    ("gpu-operator", "operator.resources.requests"): {"cpu": "200m", "memory": "100Mi"},
    ("gpu-operator/node-feature-discovery", "master.resources.requests"): {"cpu": "100m", "memory": "128Mi"},
    ("gpu-operator/node-feature-discovery", "gc.resources.requests"): {"cpu": "10m", "memory": "128Mi"},
    ("gpu-operator/node-feature-discovery", "worker.resources.requests"): {"cpu": "5m", "memory": "64Mi"},
    ("kueue", "controllerManager.manager.resources.requests"): {"cpu": "500m", "memory": "512Mi"},
    ("keda", "resources.operator.requests"): {"cpu": "100m", "memory": "100Mi"},
    ("keda", "resources.metricServer.requests"): {"cpu": "100m", "memory": "100Mi"},
    ("keda", "resources.webhooks.requests"): {"cpu": "100m", "memory": "100Mi"},
    ("kserve-resources", "kserve.controller.resources.requests"): {"cpu": "100m", "memory": "300Mi"},
}
"""Requests gpufleet leaves to a chart: ``(chart, values path) → requests`` at the pinned chart
version (``<chart>/values.yaml``; the GPU Operator's NFD subchart in its ``charts/`` folder). The
cert-manager chart and the EFS/FSx CSI add-ons set no requests (``resources: {}``)."""

EKS_SYSTEM_PODS: tuple[SystemPods, ...] = (
    # The EKS default add-ons' manifests: CoreDNS (2 replicas, 100m/70Mi), kube-proxy (100m) and the
    # VPC CNI's aws-node pod (aws-node and aws-eks-nodeagent containers, 25m each).
    SystemPods("CoreDNS", 2, 100, 70),
    SystemPods("kube-proxy", 1, 100, 0, per_node=True),
    SystemPods("aws-node (VPC CNI)", 1, 50, 0, per_node=True),
)
"""EKS's own pods on every cluster: the GPU nodes are tainted, so CoreDNS lands on system nodes."""


def cpu_millis(quantity: Any) -> int:
    """A Kubernetes CPU quantity (``"2"``, ``"500m"``, ``1.5``) in millicores."""
    text = str(quantity)
    if text.endswith("m"):
        return int(math.ceil(float(text[:-1])))
    return int(math.ceil(float(text) * 1000))


_MEMORY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def memory_mib(quantity: Any) -> int:
    """A Kubernetes memory quantity (``"8Gi"``, ``"512Mi"``, ``"1G"``) in MiB, rounded up."""
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(quantity))
    if not match or (match.group(2) and match.group(2) not in _MEMORY_UNITS):
        raise ValueError(f"not a memory quantity: {quantity!r}")
    amount = float(match.group(1)) * _MEMORY_UNITS.get(match.group(2), 1)
    return int(math.ceil(amount / 2**20))


def container_requests(resources: Optional[Mapping[str, Any]]) -> tuple[int, int]:
    """``(millicores, MiB)`` a container requests; a resource with a limit and no request requests the
    limit (Kubernetes defaults requests to limits)."""
    resources = resources or {}
    requests = dict(resources.get("limits") or {})
    requests.update(resources.get("requests") or {})
    return (cpu_millis(requests["cpu"]) if "cpu" in requests else 0,
            memory_mib(requests["memory"]) if "memory" in requests else 0)


def pod_requests(pod_spec: Mapping[str, Any], *sidecars: Mapping[str, Any]) -> tuple[int, int]:
    """``(millicores, MiB)`` the scheduler reserves for a pod: its containers' requests (plus those of
    ``sidecars`` an operator injects), or its largest init container's when larger."""
    containers = [*pod_spec.get("containers", []), *({"resources": s} for s in sidecars)]
    cpu = sum(container_requests(c.get("resources"))[0] for c in containers)
    memory = sum(container_requests(c.get("resources"))[1] for c in containers)
    for init in pod_spec.get("initContainers", []):
        init_cpu, init_memory = container_requests(init.get("resources"))
        cpu, memory = max(cpu, init_cpu), max(memory, init_memory)
    return cpu, memory


def chart_requests(chart: str, path: str, values: Optional[Mapping[str, Any]] = None) -> tuple[int, int]:
    """Requests at ``path`` of a chart's values: gpufleet's ``values`` when they set them, else the
    chart's default (:data:`CHART_DEFAULTS`)."""
    node: Any = values or {}
    resources_path = path.rsplit(".", 1)[0]
    for key in resources_path.split("."):
        node = node.get(key) if isinstance(node, Mapping) else None
    if isinstance(node, Mapping) and (node.get("requests") or node.get("limits")):
        return container_requests(node)
    return container_requests({"requests": CHART_DEFAULTS[(chart, path)]})


def _on_system_nodes(pod_spec: Mapping[str, Any]) -> bool:
    return dict(pod_spec.get("nodeSelector") or {}) == dict(SYSTEM_NODE_SELECTOR)


def _ray_pods(config: Any) -> list[SystemPods]:
    """Heads (with the autoscaler sidecar KubeRay injects) and RayJob submitters on the system nodes,
    from the specs :func:`plan_cluster`/:func:`plan_job` render. Workloads the ray area refuses are
    left to its problems."""
    from gpufleet.infra.areas.gpu_pools import configured_placements
    from gpufleet.infra.areas.ray import RayJobConfig, RayServiceConfig, _component_args

    section = config.ray
    if not section.enabled:
        return []
    placements = configured_placements(config)
    pods: list[SystemPods] = []
    for workload in (*section.clusters, *section.jobs, *section.services):
        if any(p not in placements for p in [workload.pool, *(g.pool for g in workload.worker_groups if g.pool)]):
            continue
        args = {**_component_args(workload, placements), "namespace": workload.team}
        try:
            if isinstance(workload, RayJobConfig):
                plan, spec = plan_job({**args, "job_name": workload.name}, workload.name, name="ray")
            else:
                serve = isinstance(workload, RayServiceConfig)
                plan = plan_cluster(args, workload.name, name="ray", role_default="inference" if serve else "batch",
                                    serve=serve, idle_default=600 if serve else 300)
                spec = None
        except (ValueError, TypeError):
            continue
        kind = type(workload).__name__.removesuffix("Config")
        head = plan.spec["headGroupSpec"]["template"]["spec"]
        if _on_system_nodes(head):
            autoscaler = plan.spec.get("autoscalerOptions", {}).get("resources") if plan.spec["enableInTreeAutoscaling"] else None
            cpu, memory = pod_requests(head, *([autoscaler] if autoscaler else []))
            pods.append(SystemPods(f"{kind} {workload.team}/{workload.name} head", 1, cpu, memory))
        if spec is not None and _on_system_nodes(spec["submitterPodTemplate"]["spec"]):
            cpu, memory = pod_requests(spec["submitterPodTemplate"]["spec"])
            pods.append(SystemPods(f"RayJob {workload.team}/{workload.name} submitter", 1, cpu, memory))
    return pods


def _loader_pods(config: Any) -> list[SystemPods]:
    """One weights loader Job per served variant with a ``weightsSource``: on the first ``pulumi up``
    they all run at once, as the Job spec :func:`loader_job_spec` renders."""
    pods: list[SystemPods] = []
    for service in config.serving.inference_services:
        variants = [("", service.weights_source)]
        if service.canary is not None:
            variants.append((f" canary {service.canary.name}", service.canary.weights_source))
        for suffix, source in variants:
            if source is None:
                continue
            try:
                job = loader_job_spec({"namespace": service.team, "claim_name": "model-weights", "path": "weights",
                                       "source": source, "job_name": "weights"}, name="serving")
            except (ValueError, TypeError):
                continue  # the serving area reports it
            pod = job["template"]["spec"]
            if _on_system_nodes(pod):
                cpu, memory = pod_requests(pod)
                pods.append(SystemPods(f"weights loader {service.team}/{service.name}{suffix}", 1, cpu, memory))
    for triton in config.serving.triton_services:
        # the Triton model repository Job: the same hardened pod, one per service
        pod = repository_job_spec("model-weights", "models", [], name="serving")["template"]["spec"]
        if _on_system_nodes(pod):
            cpu, memory = pod_requests(pod)
            pods.append(SystemPods(f"model repository {triton.team}/{triton.name}", 1, cpu, memory))
    return pods


def system_node_pods(config: Any) -> list[SystemPods]:
    """Every pod the stack puts on the system nodes, with its requests."""
    pods = list(EKS_SYSTEM_PODS)
    karpenter = config.karpenter
    pods.append(SystemPods("Karpenter controller", karpenter.replicas, cpu_millis(karpenter.resources.cpu),
                           memory_mib(karpenter.resources.memory)))
    if config.gpu_operator.enabled and config.gpu_pools:
        pods.append(SystemPods("GPU Operator", 1, *chart_requests("gpu-operator", "operator.resources.requests")))
        nfd = "gpu-operator/node-feature-discovery"
        pods.append(SystemPods("NFD master", 1, *chart_requests(nfd, "master.resources.requests")))
        pods.append(SystemPods("NFD garbage collector", 1, *chart_requests(nfd, "gc.resources.requests")))
        # The worker DaemonSet tolerates the GPU taint and selects no nodes: it runs on every node.
        pods.append(SystemPods("NFD worker", 1, *chart_requests(nfd, "worker.resources.requests"), per_node=True))
    if config.kueue.enabled and config.gpu_pools:
        pods.append(SystemPods("Kueue controller", config.kueue.replicas,
                               *chart_requests("kueue", "controllerManager.manager.resources.requests")))
    if config.ray.enabled:
        values = kuberay_values({"replicas": config.ray.operator.replicas})
        pods.append(SystemPods("KubeRay operator", values["replicas"], *container_requests(values["resources"])))
    serving = config.serving
    if serving.kserve_enabled:
        pods.append(SystemPods("KServe controller", 1, *chart_requests("kserve-resources", "kserve.controller.resources.requests")))
        if serving.kserve.install_cert_manager:
            pods.append(SystemPods("cert-manager (controller, webhook, cainjector)", 3, 0, 0))
    if serving.keda_enabled:
        values = keda_values({"replicas": serving.keda.replicas})
        for component, resources in (("operator", "operator"), ("metricsServer", "metricServer"), ("webhooks", "webhooks")):
            pods.append(SystemPods(f"KEDA {component}", values[component]["replicaCount"],
                                   *chart_requests("keda", f"resources.{resources}.requests", values)))
    if config.model_cache.enabled:
        driver = "FSx" if config.model_cache.backend == "fsxLustre" else "EFS"
        pods.append(SystemPods(f"{driver} CSI controller", 2, 0, 0))
    return pods + _ray_pods(config) + _loader_pods(config)


# -- the check -----------------------------------------------------------------------------------


def _cores(millis: float) -> str:
    return f"{millis / 1000:.2f} vCPU"


def _gib(mib: float) -> str:
    return f"{mib / 1024:.1f} GiB"


def cross_check(config: Any) -> list[str]:
    """The system node group's instance types are known, and the pods pinned to it fit ``minSize``
    nodes of its smallest type with :data:`HEADROOM` to spare; no single pod is larger than a node."""
    nodes = config.cluster.system_nodes
    where = "gpufleet:cluster.systemNodes"
    unknown = [t for t in nodes.instance_types if t not in SYSTEM_INSTANCE_TYPES]
    if unknown:
        return [f"{where}.instanceTypes: {', '.join(unknown)} not in gpufleet's system instance table, so the "
                f"requests pinned to these nodes cannot be checked; use one of the m, c or r types "
                f"(e.g. m7i.xlarge, m7i.2xlarge)"]
    per_node = {t: allocatable(SYSTEM_INSTANCE_TYPES[t]) for t in nodes.instance_types}
    smallest = min(per_node, key=lambda t: per_node[t])
    node_cpu, node_memory = per_node[smallest]
    count = nodes.min_size
    pods = system_node_pods(config)
    cpu = sum(p.total(count)[0] for p in pods)
    memory = sum(p.total(count)[1] for p in pods)
    budget_cpu, budget_memory = node_cpu * count * (1 - HEADROOM), node_memory * count * (1 - HEADROOM)
    problems = []
    if cpu > budget_cpu or memory > budget_memory:
        largest = sorted(pods, key=lambda p: p.total(count)[0], reverse=True)[:4]
        problems.append(
            f"{where}: the pods pinned to the system nodes request {_cores(cpu)} and {_gib(memory)}, but "
            f"minSize {count} × {smallest} (the smallest of instanceTypes) allocate {_cores(node_cpu * count)} and "
            f"{_gib(node_memory * count)}, of which {int(HEADROOM * 100)} % is kept free "
            f"({_cores(budget_cpu)} and {_gib(budget_memory)} usable); nothing scales this group, so pods would stay "
            f"Pending: raise minSize or use a larger instance type. Largest: "
            + "; ".join(f"{p.what} {_cores(p.total(count)[0])}/{_gib(p.total(count)[1])}" for p in largest)
        )
    # The Karpenter chart's default affinity (values.yaml ``affinity.podAntiAffinity``, which gpufleet
    # keeps) requires one controller per node: more replicas than nodes stay Pending.
    if config.karpenter.replicas > count:
        problems.append(f"{where}.minSize: {count} nodes hold at most {count} Karpenter controllers (one per node, "
                        f"the chart's required anti-affinity), but gpufleet:karpenter.replicas is {config.karpenter.replicas}")
    for pod in pods:
        if pod.cpu_millis > node_cpu or pod.memory_mib > node_memory:
            problems.append(f"{where}.instanceTypes: {pod.what} requests {_cores(pod.cpu_millis)} and "
                            f"{_gib(pod.memory_mib)}, more than one {smallest} allocates "
                            f"({_cores(node_cpu)}, {_gib(node_memory)})")
    return problems


def compose(platform: Platform) -> None:
    """Nothing to declare: the node group belongs to the Cluster; this area only checks it."""
