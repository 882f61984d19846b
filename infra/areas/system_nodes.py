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
  :func:`~gpufleet.components.model_loader.loader_job_spec`, ``kuberay.operator_values``,
  ``leader_worker_set.controller_values``) and their
  pod templates are summed;
- replicas and resources the stack sets (Karpenter, Kueue, KubeRay, KEDA) are read from the stack
  configuration the components receive;
- requests left to a chart are the chart's defaults at the pinned tag (:data:`CHART_DEFAULTS`, each
  checked against the chart's ``values.yaml`` by the tests);
- the EKS pieces on every node (:data:`EKS_SYSTEM_PODS`) are the requests of the EKS-managed
  manifests.

On EKS Auto Mode (``gpufleet:cluster.autoMode``) the system nodes are Auto Mode's ``system`` NodePool,
which grows with the pods on it up to its limits (``maxSize`` nodes of the largest type): the pods must
fit ``maxSize`` nodes of the smallest type with the same headroom, at most 110 pods a node (kube-reserved
memory), and neither EKS's add-on pods nor Karpenter run there.

This area declares nothing: the node group is the Cluster's (``infra/program.py``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

from gpufleet.components.auto_mode import MAX_PODS as AUTO_MODE_MAX_PODS
from gpufleet.components.autoscaling import keda_values
from gpufleet.components.gpu_scheduling import SYSTEM_NODE_SELECTOR
from gpufleet.components.kubeflow_trainer import JOBSET_CONTROLLER_REQUESTS, trainer_values
from gpufleet.components.kuberay import operator_values as kuberay_values
from gpufleet.components.leader_worker_set import controller_values as lws_values
from gpufleet.components.model_loader import loader_job_spec
from gpufleet.components.triton_models import repository_job_spec
from gpufleet.components.observability import stack_values
from gpufleet.components.ray_cluster import plan_cluster
from gpufleet.components.ray_job import plan_job
from gpufleet.components.system_instances import SYSTEM_INSTANCE_TYPES, InstanceFacts
from gpufleet.infra.areas.base import Platform
from gpufleet.infra.areas.multi_node_config import lws_enabled
from gpufleet.infra.areas.observability import ebs_csi_driver

# -- instance facts and allocatable ----------------------------------------------------------------


# SYSTEM_INSTANCE_TYPES and InstanceFacts (imported above) live with the components: Cluster sizes
# EKS Auto Mode's system NodePool from the same table.

EVICTION_HARD_MEMORY_MIB = 100
"""The kubelet's ``evictionHard: memory.available<100Mi`` on EKS AMIs: not allocatable either."""
MEMORY_CAPACITY_SHARE = 0.94
"""The kubelet's memory capacity is the kernel's ``MemTotal``, below the nominal size by what
firmware and the kernel keep (an m5/m6i/m7i.xlarge reports about 15.1 GiB of 16). A conservative
share of the nominal size stands for it."""
HEADROOM = 0.15
"""Share of the allocatable resources kept free: room for what gpufleet does not declare on these
nodes (a Prometheus stack installed outside gpufleet, rolling updates' surge pods) and for
bin-packing loss."""


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


def allocatable(facts: InstanceFacts, *, auto_mode: bool = False) -> tuple[int, int]:
    """``(millicores, MiB)`` a node of this type offers to pods. EKS Auto Mode caps a node's pods at
    110 (``create-node-class.adoc``, "Considerations"), which the kube-reserved memory scales with."""
    max_pods = min(facts.max_pods, AUTO_MODE_MAX_PODS) if auto_mode else facts.max_pods
    cpu = facts.vcpus * 1000 - kube_reserved_cpu_millis(facts.vcpus)
    capacity = int(facts.memory_gib * 1024 * MEMORY_CAPACITY_SHARE)
    memory = capacity - kube_reserved_memory_mib(max_pods) - EVICTION_HARD_MEMORY_MIB
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
    ("lws", "resources.requests"): {"cpu": "1", "memory": "1Gi"},
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
"""EKS's own pods on every cluster: the GPU nodes are tainted, so CoreDNS lands on system nodes. On EKS
Auto Mode none of them is a pod: networking, kube-proxy and DNS run as part of the node (``automode.adoc``,
"Managed Components"; node-local DNS, ``auto-change.adoc``), and so does the Pod Identity agent."""


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
    for service in config.serving.multi_node_services:
        if service.weights_source is None:
            continue
        try:
            job = loader_job_spec({"namespace": service.team, "claim_name": "model-weights", "path": "weights",
                                   "source": service.weights_source, "job_name": "weights"}, name="serving")
        except (ValueError, TypeError):
            continue  # the multi-node serving area reports it
        pod = job["template"]["spec"]
        if _on_system_nodes(pod):
            pods.append(SystemPods(f"weights loader {service.team}/{service.name}", 1, *pod_requests(pod)))
    return pods


def system_node_pods(config: Any) -> list[SystemPods]:
    """Every pod the stack puts on the system nodes, with its requests."""
    return controller_pods(config) + _ray_pods(config) + _loader_pods(config)


def controller_pods(config: Any) -> list[SystemPods]:
    """The pods on the system nodes that no rendered object of the stack describes: EKS's own, and the
    controllers the stack installs with Helm charts (their requests from the stack or the charts)."""
    auto_mode = config.cluster.auto_mode
    pods = [] if auto_mode else list(EKS_SYSTEM_PODS)
    if not auto_mode:
        # On Auto Mode EKS runs the provisioner outside the cluster's nodes.
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
    if config.training.enabled:
        values = trainer_values({"replicas": config.training.trainer.replicas})
        pods.append(SystemPods("Kubeflow Trainer controller", values["manager"]["replicas"],
                               *container_requests(values["manager"]["resources"])))
        # The trainer chart's JobSet dependency: no node selector settable, lands on the untainted system nodes.
        pods.append(SystemPods("JobSet controller", 1, *container_requests({"requests": JOBSET_CONTROLLER_REQUESTS})))
    if config.ray.enabled:
        values = kuberay_values({"replicas": config.ray.operator.replicas})
        pods.append(SystemPods("KubeRay operator", values["replicas"], *container_requests(values["resources"])))
    serving = config.serving
    if serving.kserve_enabled:
        pods.append(SystemPods("KServe controller", 1, *chart_requests("kserve-resources", "kserve.controller.resources.requests")))
        if serving.kserve.install_cert_manager:
            pods.append(SystemPods("cert-manager (controller, webhook, cainjector)", 3, 0, 0))
    if lws_enabled(serving):
        values = lws_values({"replicas": serving.leader_worker_set.replicas})
        pods.append(SystemPods("LeaderWorkerSet controller", values["replicaCount"],
                               *chart_requests("lws", "resources.requests", values)))
    if serving.keda_enabled:
        values = keda_values({"replicas": serving.keda.replicas})
        for component, resources in (("operator", "operator"), ("metricsServer", "metricServer"), ("webhooks", "webhooks")):
            pods.append(SystemPods(f"KEDA {component}", values[component]["replicaCount"],
                                   *chart_requests("keda", f"resources.{resources}.requests", values)))
    if config.model_cache.enabled:
        if config.model_cache.backend == "s3":
            pods.append(SystemPods("Mountpoint S3 CSI controller", 1, 0, 0))
            pods.append(SystemPods("Mountpoint S3 CSI node", 1, *ADDON_REQUESTS["s3-csi-node"], per_node=True))
        else:
            driver = "FSx" if config.model_cache.backend == "fsxLustre" else "EFS"
            pods.append(SystemPods(f"{driver} CSI controller", 2, 0, 0))
    return pods + _monitoring_pods(config)


ADDON_REQUESTS: Mapping[str, tuple[int, int]] = {
    # aws-mountpoint-s3-csi-driver chart v2.7.0 values.yaml: node.resources.requests 10m / 40Mi
    # (the registrar and liveness sidecars set none); the controller sets none.
    "s3-csi-node": (10, 40),
    # aws-ebs-csi-driver chart values.yaml: every controller and node container requests 10m / 40Mi
    # (controller: plugin, provisioner, attacher, snapshotter, resizer, liveness probe; node:
    # plugin, registrar, liveness probe).
    "ebs-csi-controller": (60, 240),
    "ebs-csi-node": (30, 120),
    # prometheus-operator's default config-reloader sidecar requests (``--config-reloader-cpu-request``
    # 10m, ``--config-reloader-memory-request`` 50Mi), added to Prometheus and Alertmanager pods.
    "config-reloader": (10, 50),
}
"""Requests of add-ons and injected sidecars whose figures are not in a chart gpufleet pins."""


def _monitoring_pods(config: Any) -> list[SystemPods]:
    """The bundled kube-prometheus-stack (``monitoring.install``) at the requests gpufleet sets in
    its values (:func:`~gpufleet.components.observability.stack_values`); Grafana, kube-state-metrics
    and node-exporter keep their subcharts' defaults, which request nothing."""
    monitoring = config.monitoring
    if not monitoring.install:
        return []
    stack = monitoring.stack
    values = stack_values({"prometheus_resources": {"cpu": stack.prometheus.cpu, "memory": stack.prometheus.memory},
                           "storage_gib": stack.prometheus.storage_gib, "grafana": stack.grafana})
    reloader = ADDON_REQUESTS["config-reloader"]
    prometheus = container_requests(values["prometheus"]["prometheusSpec"]["resources"])
    alertmanager = container_requests(values["alertmanager"]["alertmanagerSpec"]["resources"])
    pods = [
        SystemPods("Prometheus (+ config reloader)", 1, prometheus[0] + reloader[0], prometheus[1] + reloader[1]),
        SystemPods("Alertmanager (+ config reloader)", 1, alertmanager[0] + reloader[0], alertmanager[1] + reloader[1]),
        SystemPods("Prometheus Operator", 1, *container_requests(values["prometheusOperator"]["resources"])),
        SystemPods("kube-state-metrics", 1, 0, 0),
        SystemPods("node-exporter", 1, 0, 0, per_node=True),
    ]
    if stack.grafana:
        pods.append(SystemPods("Grafana", 1, 0, 0))
    if ebs_csi_driver(config):
        pods.append(SystemPods("EBS CSI controller", 2, *ADDON_REQUESTS["ebs-csi-controller"]))
        pods.append(SystemPods("EBS CSI node", 1, *ADDON_REQUESTS["ebs-csi-node"], per_node=True))
    return pods


# -- the check -----------------------------------------------------------------------------------


def _cores(millis: float) -> str:
    return f"{millis / 1000:.2f} vCPU"


def _gib(mib: float) -> str:
    return f"{mib / 1024:.1f} GiB"


def cross_check(config: Any) -> list[str]:
    """The system node group's instance types are known, and the pods pinned to it fit ``minSize``
    nodes of its smallest type with :data:`HEADROOM` to spare; no single pod is larger than a node.

    On EKS Auto Mode the system NodePool grows with the pods on it, up to its limits (``maxSize``
    nodes): the pods must fit ``maxSize`` nodes of the smallest type, with the same headroom."""
    nodes = config.cluster.system_nodes
    auto_mode = config.cluster.auto_mode
    where = "gpufleet:cluster.systemNodes"
    unknown = [t for t in nodes.instance_types if t not in SYSTEM_INSTANCE_TYPES]
    if unknown:
        return [f"{where}.instanceTypes: {', '.join(unknown)} not in gpufleet's system instance table, so the "
                f"requests pinned to these nodes cannot be checked; use one of the m, c or r types "
                f"(e.g. m7i.xlarge, m7i.2xlarge)"]
    per_node = {t: allocatable(SYSTEM_INSTANCE_TYPES[t], auto_mode=auto_mode) for t in nodes.instance_types}
    smallest = min(per_node, key=lambda t: per_node[t])
    node_cpu, node_memory = per_node[smallest]
    count = nodes.max_size if auto_mode else nodes.min_size
    pods = system_node_pods(config)
    cpu = sum(p.total(count)[0] for p in pods)
    memory = sum(p.total(count)[1] for p in pods)
    budget_cpu, budget_memory = node_cpu * count * (1 - HEADROOM), node_memory * count * (1 - HEADROOM)
    problems = []
    if cpu > budget_cpu or memory > budget_memory:
        largest = sorted(pods, key=lambda p: p.total(count)[0], reverse=True)[:4]
        if auto_mode:
            bound = (f"the system NodePool's limits hold maxSize {count} × {smallest} (the smallest of instanceTypes), "
                     f"which allocate")
            remedy = "EKS Auto Mode adds no node past the limits, so pods would stay Pending: raise maxSize or use a larger instance type"
        else:
            bound = f"minSize {count} × {smallest} (the smallest of instanceTypes) allocate"
            remedy = "nothing scales this group, so pods would stay Pending: raise minSize or use a larger instance type"
        problems.append(
            f"{where}: the pods pinned to the system nodes request {_cores(cpu)} and {_gib(memory)}, but "
            f"{bound} {_cores(node_cpu * count)} and "
            f"{_gib(node_memory * count)}, of which {int(HEADROOM * 100)} % is kept free "
            f"({_cores(budget_cpu)} and {_gib(budget_memory)} usable); {remedy}. Largest: "
            + "; ".join(f"{p.what} {_cores(p.total(count)[0])}/{_gib(p.total(count)[1])}" for p in largest)
        )
    # The Karpenter chart's default affinity (values.yaml ``affinity.podAntiAffinity``, which gpufleet
    # keeps) requires one controller per node: more replicas than nodes stay Pending.
    if not auto_mode and config.karpenter.replicas > count:
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
