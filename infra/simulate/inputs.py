"""What the simulation reads from a planned stack: the NodePools (with their instance types, what
each allocates and what it costs), the system node group, every workload's pods at a scale, the
PodDisruptionBudgets and Kueue's queues.

Workloads are read with the policy engine's pod-template extraction
(:func:`gpufleet.policies.pod_templates.resolved_pod_templates`: replicas, scale bounds and GPU
requests of every workload kind), NodePools and NodeOverlays with the policies' Karpenter facts
(:mod:`gpufleet.policies.rules._karpenter`), and the system node group and the controllers on it with
the ``system_nodes`` area's tables (:mod:`gpufleet.infra.areas.system_nodes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Iterable, Iterator, Literal, Mapping, Optional, Sequence

from gpufleet.components.gpu_instances import GpuInstanceType
from gpufleet.components.gpu_scheduling import GPU_RESOURCE, QUEUE_NAME_LABEL, SYSTEM_NODE_SELECTOR
from gpufleet.infra.areas.system_nodes import (
    SYSTEM_INSTANCE_TYPES, InstanceFacts, SystemPods, allocatable, controller_pods,
)
from gpufleet.infra.simulate.cluster import NodeType, Pod, Resources, add, requests_of
from gpufleet.infra.simulate.prices import hourly_usd
from gpufleet.policies.core import Subject, as_mapping, as_str
from gpufleet.policies.pod_templates import PodTemplate, resolved_pod_templates
from gpufleet.policies.rules._device_plugin import helm_releases, mps_configs, time_slicing_configs
from gpufleet.policies.rules._karpenter import (
    CAPACITY_TYPE_KEY, NODEPOOL_KEY, NodeOverlay, NodePool, node_overlays, node_pools,
    overlay_capacity,
)
from gpufleet.policies.workloads import RAY_CLUSTER_PATHS

Scale = Literal["min", "max"]
EFA_RESOURCE = "vpc.amazonaws.com/efa"
SYSTEM_POOL = "system"
"""The ``pool`` of the system node group's nodes in the report."""


def max_pods(vcpus: int) -> int:
    """Pods the VPC CNI allows on a GPU instance (amazon-vpc-cni-k8s ``misc/eni-max-pods.txt``: 58 up
    to 8 vCPUs, 234 up to 48, 737 above), which kube-reserved memory scales with."""
    return 58 if vcpus <= 8 else 234 if vcpus <= 48 else 737


def _efa(instance: GpuInstanceType) -> int:
    """EFA interfaces of the type, when gpufleet's instance table records them."""
    for holder in (instance, instance.family):
        for attribute in ("efa_interfaces", "efa"):
            value = getattr(holder, attribute, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return 0


@dataclass
class PoolSpec:
    """One Karpenter NodePool as the simulation uses it."""

    name: str
    taints: tuple[Mapping[str, Any], ...]
    capacity_type: str
    """``spot`` when the pool allows it (Karpenter prefers spot), else ``on-demand``/``reserved``."""
    limits: Resources
    offerings: list[tuple[NodeType, str, float]]
    """(node type, capacity type, $/h), every instance type the pool may launch."""
    weight: int = 0
    gpu_resource: str = GPU_RESOURCE
    """The GPU resource its pods request (MIG slice, shared GPU or whole GPU)."""
    system: bool = False
    """EKS Auto Mode's system NodePool: the controllers' nodes, no GPUs."""


@dataclass
class ClusterInputs:
    """Everything the simulation needs, read once per stack."""

    stack: str
    region: str
    pools: list[PoolSpec]
    system_type: NodeType
    system_count: int
    system_price: float
    templates: list[PodTemplate]
    scale_bounds: Mapping[tuple[str, str, str], tuple[int, Optional[int]]]
    """(namespace, kind, name) of a scale target → (min, max) an HPA or ScaledObject sets."""
    controllers: list[SystemPods]
    daemon: Resources
    """What the DaemonSets on every node request."""
    pdbs: list[Subject] = field(default_factory=list)
    cluster_queues: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    flavors: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    local_queues: dict[tuple[str, str], str] = field(default_factory=dict)
    kueue_excluded_prefixes: tuple[str, ...] = ()
    kueue_device_classes: dict[str, str] = field(default_factory=dict)
    """DeviceClass → the resource Kueue charges its claimed devices in (``deviceClassMappings``)."""
    """Resource name prefixes Kueue's configuration leaves out of quota (``resources.excludeResourcePrefixes``)."""
    """(namespace, LocalQueue) → ClusterQueue."""

    def pods(self, scale: Scale) -> tuple[list[Pod], list[str]]:
        """Every pod at ``scale`` and notes on counts the simulation had to assume."""
        return workload_pods(self, scale)


def read_inputs(stack: str, region: str, subjects: Sequence[Subject], config: Any) -> ClusterInputs:
    """Read a planned stack (its subjects and parsed stack config). Raises
    :class:`~gpufleet.infra.simulate.prices.PriceError` for a region or type the price table lacks."""
    pools, _ = node_pools(subjects)
    overlays, _ = node_overlays(subjects)
    replicas = {entry.config: entry.replicas or 0 for entry in time_slicing_configs(subjects)}
    mps = {entry.config: entry.replicas or 0 for entry in mps_configs(subjects)}
    strategy = next((as_str(as_mapping(as_mapping(r.props.get("values")).get("mig")).get("strategy"))
                     for r in helm_releases(subjects, "gpu-operator")), None) or "mixed"
    auto_mode = config.cluster.auto_mode
    # On EKS Auto Mode the system nodes are a NodePool too (no GPUs): it scales like the GPU pools.
    system_pools = [pool for pool in pools if auto_mode and pool.name == SYSTEM_POOL and not pool.can_launch_gpus]
    specs = [_pool_spec(pool, overlays, replicas, strategy, region, mps) for pool in pools if pool not in system_pools]
    nodes = config.cluster.system_nodes
    # An on-demand managed node group launches the first listed type (allocation strategy "prioritized").
    system_name = nodes.instance_types[0]
    facts = SYSTEM_INSTANCE_TYPES.get(system_name)
    if facts is None:
        from gpufleet.infra.simulate.prices import PriceError

        raise PriceError(f"gpufleet:cluster.systemNodes.instanceTypes: {system_name} is not in gpufleet's system "
                         "instance table (infra/areas/system_nodes.py SYSTEM_INSTANCE_TYPES)")
    cpu, memory = allocatable(facts, auto_mode=auto_mode)
    system_type = NodeType(system_name, {**SYSTEM_NODE_SELECTOR, "node.kubernetes.io/instance-type": system_name},
                           {"cpu": cpu, "memory": memory}, {"cpu": cpu, "memory": memory})
    specs += [_system_pool_spec(pool, nodes.instance_types, region) for pool in system_pools]
    controllers = controller_pods(config)
    daemon: Resources = {}
    for pods in controllers:
        if pods.per_node:
            daemon = add(daemon, {"cpu": pods.cpu_millis * pods.count, "memory": pods.memory_mib * pods.count})
    inputs = ClusterInputs(
        stack=stack, region=region, pools=specs, system_type=system_type,
        system_count=0 if system_pools else nodes.min_size,
        system_price=hourly_usd(region, system_name, "on-demand"),
        # Registration order follows thread scheduling: sort, so admission and placement are repeatable.
        templates=sorted(resolved_pod_templates(list(subjects)), key=lambda t: (t.owner.urn, t.path)),
        scale_bounds=_scale_bounds(subjects), controllers=[p for p in controllers if not p.per_node],
        daemon={k: v for k, v in daemon.items() if v},
        pdbs=[s for s in subjects if s.is_a("policy", "PodDisruptionBudget")],
    )
    inputs.kueue_excluded_prefixes = kueue_excluded_prefixes(subjects)
    inputs.kueue_device_classes = kueue_device_classes(subjects)
    for subject in subjects:
        if subject.is_a("kueue.x-k8s.io", "ClusterQueue"):
            inputs.cluster_queues[subject.object_name] = subject.spec
        elif subject.is_a("kueue.x-k8s.io", "ResourceFlavor"):
            inputs.flavors[subject.object_name] = subject.spec
        elif subject.is_a("kueue.x-k8s.io", "LocalQueue"):
            inputs.local_queues[(subject.namespace, subject.object_name)] = as_str(subject.spec.get("clusterQueue")) or ""
    return inputs


def _pool_spec(pool: NodePool, overlays: list[NodeOverlay], replicas: Mapping[str, int], strategy: str,
               region: str, mps_replicas: Optional[Mapping[str, int]] = None) -> PoolSpec:
    placement = replace(pool.placement(replicas, mps_replicas), mig_strategy=strategy)  # type: ignore[arg-type]
    allowed = next((r.values for r in pool.requirements if r.key == CAPACITY_TYPE_KEY and r.operator == "In"),
                   ("on-demand",))
    # Karpenter launches spot when a NodePool allows it; on-demand is the fallback
    # (karpenter.sh docs, NodePools: "capacity-type ... prioritizes spot").
    capacity_type = "spot" if "spot" in allowed else ("on-demand" if "on-demand" in allowed else allowed[0])
    offerings = []
    for instance in pool.instance_types:
        cpu, memory = allocatable(InstanceFacts(instance.vcpus, instance.memory_gib, max_pods(instance.vcpus)))
        base: Resources = {"cpu": cpu, "memory": memory}
        real = dict(base)
        units = placement.gpu_resources_per_node(instance)
        if placement.dra:
            # The DRA driver publishes the GPUs (or MIG slices) as devices of the pool's DeviceClass;
            # no device plugin advertises nvidia.com/gpu. Karpenter ignores claims
            # (settings.ignoreDRARequests): its view holds the devices only so a claiming pod is not
            # judged unfit, the pool's types all having one GPU count.
            real[dra_resource(placement.device_class)] = units
            real[GPU_RESOURCE] = 0
            view = {**base, GPU_RESOURCE: instance.gpus, dra_resource(placement.device_class): units}
        else:
            real[placement.gpu_resource] = units
            if placement.sharing != "none" and placement.gpu_resource != GPU_RESOURCE:
                real[GPU_RESOURCE] = 0  # MIG (mixed) and renamed shared GPUs: no whole GPUs advertised
            view = {**base, GPU_RESOURCE: instance.gpus}
        for overlay in overlays:
            for resource in overlay.capacity:
                amount = overlay_capacity(overlays, pool, instance, resource)
                if amount is not None:
                    view[resource] = int(amount)
                    real.setdefault(resource, int(amount))
        efa = _efa(instance)
        if efa:
            real[EFA_RESOURCE] = view[EFA_RESOURCE] = efa
        labels = {**pool.instance_labels(instance), **pool.labels, NODEPOOL_KEY: pool.name, CAPACITY_TYPE_KEY: capacity_type}
        node_type = NodeType(instance.name, labels, real, view, instance.gpus,
                             {"cpu": instance.vcpus * 1000, "memory": instance.memory_gib * 1024, GPU_RESOURCE: instance.gpus})
        offerings.append((node_type, capacity_type, hourly_usd(region, instance.name, capacity_type)))
    weight = pool.subject.spec.get("weight")
    return PoolSpec(pool.name, pool.taints, capacity_type, _limits(pool), offerings,
                    int(weight) if isinstance(weight, (int, float)) else 0,
                    dra_resource(placement.device_class) if placement.dra else placement.gpu_resource)


def _system_pool_spec(pool: NodePool, instance_types: Sequence[str], region: str) -> PoolSpec:
    """EKS Auto Mode's system NodePool: on-demand nodes of the system instance types (as allocatable on
    Auto Mode, at most 110 pods a node), labelled for the controllers, within the pool's limits."""
    offerings = []
    for name in instance_types:
        facts = SYSTEM_INSTANCE_TYPES.get(name)
        if facts is None:
            from gpufleet.infra.simulate.prices import PriceError

            raise PriceError(f"gpufleet:cluster.systemNodes.instanceTypes: {name} is not in gpufleet's system instance "
                             "table (components/system_instances.py SYSTEM_INSTANCE_TYPES)")
        cpu, memory = allocatable(facts, auto_mode=True)
        labels = {**SYSTEM_NODE_SELECTOR, **pool.labels, "node.kubernetes.io/instance-type": name,
                  NODEPOOL_KEY: pool.name, CAPACITY_TYPE_KEY: "on-demand"}
        node_type = NodeType(name, labels, {"cpu": cpu, "memory": memory}, {"cpu": cpu, "memory": memory}, 0,
                             {"cpu": facts.vcpus * 1000, "memory": facts.memory_gib * 1024})
        offerings.append((node_type, "on-demand", hourly_usd(region, name, "on-demand")))
    return PoolSpec(pool.name, pool.taints, "on-demand", _limits(pool), offerings, system=True)


def _limits(pool: NodePool) -> Resources:
    """The pool's limits in the simulation's units (millicores, MiB, counts)."""
    limits: Resources = {}
    for key, amount in pool.limits.items():
        limits[key] = int(amount * 1000) if key == "cpu" else int(amount / 2**20) if key == "memory" else int(amount)
    return limits


def dra_resource(device_class: str) -> str:
    """The simulator's resource name of devices of ``device_class``: a DRA claim's devices, in the name
    the ResourceQuota counts them in (``<class>.deviceclass.resource.k8s.io/devices``)."""
    return f"{device_class}{DRA_RESOURCE_SUFFIX}"


DRA_RESOURCE_SUFFIX = ".deviceclass.resource.k8s.io/devices"


def _scale_bounds(subjects: Iterable[Subject]) -> dict[tuple[str, str, str], tuple[int, Optional[int]]]:
    bounds: dict[tuple[str, str, str], tuple[int, Optional[int]]] = {}
    for subject in subjects:
        if subject.is_a("keda.sh", "ScaledObject"):
            # KEDA: minReplicaCount defaults to 0, maxReplicaCount to 100 (keda.sh docs, ScaledObject spec).
            low, high, default_low, default_high = "minReplicaCount", "maxReplicaCount", 0, 100
        elif subject.is_a("autoscaling", "HorizontalPodAutoscaler"):
            low, high, default_low, default_high = "minReplicas", "maxReplicas", 1, None
        else:
            continue
        target = as_mapping(subject.spec.get("scaleTargetRef"))
        kind, name = as_str(target.get("kind")) or "Deployment", as_str(target.get("name"))
        if name is None:
            continue
        lo, hi = subject.spec.get(low, default_low), subject.spec.get(high, default_high)
        bounds[(subject.namespace, kind, name)] = (int(lo) if isinstance(lo, (int, float)) else default_low,
                                                    int(hi) if isinstance(hi, (int, float)) else None)
    return bounds


# -- pods ----------------------------------------------------------------------------------------


def _role(template: PodTemplate, siblings: int) -> str:
    if siblings <= 1:
        return template.owner.object_name
    group = template.labels.get("ray.io/group") or template.labels.get("ray.io/node-type")
    if group:
        return f"{template.owner.object_name}/{'head' if group == 'headgroup' else group}"
    parts = [p for p in template.path.split(".") if p not in ("spec", "template")]
    return f"{template.owner.object_name}/{parts[-1] if parts else 'pod'}"


def _count(inputs: ClusterInputs, template: PodTemplate, scale: Scale) -> tuple[int, Optional[str]]:
    low, high = template.min_replicas, template.max_replicas
    for kind, name in template.scale_targets:
        bound = inputs.scale_bounds.get((template.namespace, kind, name))
        if bound is not None:
            low, high = bound
            break
    low = low if low is not None else 1
    if scale == "min":
        return low, None
    if high is None:
        return low, f"{template.kind} {template.namespace}/{template.owner.object_name}: no upper bound on replicas; counted at {low}"
    return max(low, high), None


def _ray_extras(template: PodTemplate) -> tuple[list[Mapping[str, Any]], Optional[Mapping[str, Any]]]:
    """KubeRay adds the autoscaler sidecar to the head of a cluster with in-tree autoscaling (kuberay
    v1.7.0 ``ray-operator/controllers/ray/common/pod.go``, ``BuildAutoscalerContainer``, resources from
    ``autoscalerOptions.resources``); a RayJob's submitter runs from ``submitterPodTemplate``."""
    path = RAY_CLUSTER_PATHS.get(template.kind)
    if path is None or ".headGroupSpec." not in template.path:
        return [], None
    cluster: Any = template.owner.props
    for part in path.split("."):
        cluster = as_mapping(cluster).get(part)
    sidecars: list[Mapping[str, Any]] = []
    if as_mapping(cluster).get("enableInTreeAutoscaling") is True:
        resources = as_mapping(as_mapping(as_mapping(cluster).get("autoscalerOptions")).get("resources"))
        if resources:
            sidecars.append({"name": "autoscaler", "resources": resources})
    submitter = as_mapping(template.owner.spec.get("submitterPodTemplate")) if template.kind == "RayJob" else {}
    return sidecars, (submitter or None)


def workload_pods(inputs: ClusterInputs, scale: Scale) -> tuple[list[Pod], list[str]]:
    pods: list[Pod] = []
    notes: list[str] = []
    per_owner: dict[str, int] = {}
    for template in inputs.templates:
        per_owner[template.owner.urn] = per_owner.get(template.owner.urn, 0) + 1
    for template in inputs.templates:
        count, note = _count(inputs, template, scale)
        if note:
            notes.append(note)
        queue = as_str(template.owner.labels.get(QUEUE_NAME_LABEL)) or template.labels.get(QUEUE_NAME_LABEL, "")
        workload = f"{template.kind}/{template.namespace}/{template.owner.object_name}"
        sidecars, submitter = _ray_extras(template)
        requests = requests_of([*template.containers, *sidecars], template.init_containers)
        for device_class, gpus in template.dra_gpus.items():
            # A claim's devices, in its DeviceClass (only DRA nodes publish them).
            key = dra_resource(device_class)
            requests[key] = requests.get(key, 0) + int(gpus)
        name = _role(template, per_owner[template.owner.urn])
        for index in range(count):
            pods.append(Pod(template.kind, template.namespace, name, index, requests, template.labels,
                            template.spec, queue, workload))
        if submitter is not None:
            spec = as_mapping(submitter.get("spec"))
            labels = {k: str(v) for k, v in as_mapping(as_mapping(submitter.get("metadata")).get("labels")).items()}
            pods.append(Pod(template.kind, template.namespace, f"{template.owner.object_name}/submitter", 0,
                            requests_of(list(spec.get("containers") or []), list(spec.get("initContainers") or [])),
                            labels, spec, queue, workload))
    for controller in inputs.controllers:
        for index in range(controller.count):
            pods.append(Pod("System", "", controller.what, index,
                            {k: v for k, v in {"cpu": controller.cpu_millis, "memory": controller.memory_mib}.items() if v},
                            {}, {"nodeSelector": dict(SYSTEM_NODE_SELECTOR)}))
    return pods, notes


def _kueue_resources_configs(subjects: Iterable[Subject]) -> Iterator[Mapping[str, Any]]:
    """The ``resources`` section of each Kueue release's manager configuration
    (``managerConfig.controllerManagerConfigYaml``); a release whose YAML does not parse has none."""
    import yaml

    for release in helm_releases(subjects, "kueue"):
        text = as_str(as_mapping(as_mapping(release.props.get("values")).get("managerConfig")).get("controllerManagerConfigYaml"))
        try:
            document = yaml.safe_load(text) if text else None
        except yaml.YAMLError:
            continue
        yield as_mapping(as_mapping(document).get("resources"))


def kueue_excluded_prefixes(subjects: Iterable[Subject]) -> tuple[str, ...]:
    """``resources.excludeResourcePrefixes`` of the Kueue release's manager configuration
    (``managerConfig.controllerManagerConfigYaml``): resources Kueue neither charges nor requires a
    ClusterQueue to cover (kueue v0.19 ``apis/config/v1beta1`` ``Resources.ExcludeResourcePrefixes``)."""
    prefixes: list[str] = []
    for resources in _kueue_resources_configs(subjects):
        for prefix in resources.get("excludeResourcePrefixes") or []:
            if isinstance(prefix, str):
                prefixes.append(prefix)
    return tuple(prefixes)


def kueue_device_classes(subjects: Iterable[Subject]) -> dict[str, str]:
    """DeviceClass → logical resource from ``resources.deviceClassMappings`` of the Kueue release's
    manager configuration (kueue v0.19.2 ``apis/config/v1beta2`` ``DeviceClassMapping``: ``name``,
    ``deviceClassNames``)."""
    mapped: dict[str, str] = {}
    for resources in _kueue_resources_configs(subjects):
        for mapping in resources.get("deviceClassMappings") or []:
            name = as_str(as_mapping(mapping).get("name"))
            for device_class in as_mapping(mapping).get("deviceClassNames") or []:
                if name and isinstance(device_class, str):
                    mapped[device_class] = name
    return mapped


def kueue_requests(pods: Sequence[Pod], excluded_prefixes: Sequence[str] = (),
                   device_classes: Mapping[str, str] = {}) -> dict[str, Decimal]:
    """What Kueue charges a workload of ``pods``: cpu in cores and memory in bytes, other resources in
    units; resources under ``excluded_prefixes`` are not charged. Devices claimed from a DeviceClass
    are charged in the resource ``device_classes`` maps it to (Kueue's ``deviceClassMappings``); an
    unmapped class stays under its own name, which no ClusterQueue covers (Kueue then refuses the
    workload, as it does: ``pkg/dra/claims.go`` returns NotFound for an unmapped class)."""
    total: dict[str, Decimal] = {}
    for pod in pods:
        for name, amount in pod.requests.items():
            if any(name.startswith(prefix) for prefix in excluded_prefixes):
                continue
            if name.endswith(DRA_RESOURCE_SUFFIX):
                name = device_classes.get(name.removesuffix(DRA_RESOURCE_SUFFIX), name)
            value = Decimal(amount) / 1000 if name == "cpu" else Decimal(amount) * 2**20 if name == "memory" else Decimal(amount)
            total[name] = total.get(name, Decimal(0)) + value
    return total


