"""``gpu-workload-schedulable``: every GPU workload fits some NodePool.

Karpenter launches a node only for a pod that some NodePool can serve: it must tolerate the pool's
taints, select only labels the pool's nodes will carry (labels known before launch: the pool's own,
its requirements, well-known instance labels; not GPU feature discovery's, which appear after), and ask
for a GPU resource the pool's sharing mode advertises, in an amount one allowed instance type holds,
within the pool's limits. A pod that fits no pool stays Pending with no error at deploy time.

Karpenter's simulation knows only ``nvidia.com/gpu`` of an AWS GPU instance type. A MIG slice
(``nvidia.com/mig-*``) or a shared GPU (``nvidia.com/gpu.shared``, time-slicing or MPS) exists for it only when a
``karpenter.sh/v1alpha1`` NodeOverlay whose requirements select the pool's nodes (e.g.
``gpufleet.io/gpu-pool In [<pool>]``, optionally per instance type) adds that resource in
``spec.capacity`` (and Karpenter runs with the ``nodeOverlay`` feature gate): otherwise a scaled-to-zero
pool never launches a node for the pod, whatever the device plugin would advertise once it runs.

Pods that claim GPUs through DRA (a ResourceClaimTemplate on an NVIDIA DeviceClass) fit only a pool
whose nodes publish devices: one whose template keeps the GPU Operator's device plugin off
(``nvidia.com/gpu.deploy.device-plugin: "false"``, gpufleet's ``allocation: dra``), MIG devices
(``mig.nvidia.com``) on a MIG pool, whole GPUs on the others, in a number one instance type holds; an
``nvidia.com/gpu`` request never fits such a pool (no device plugin advertises it). Karpenter ignores
the claims themselves (``settings.ignoreDRARequests``), so no NodeOverlay is needed. Claims are judged
only when some pool is such a DRA pool: otherwise the checked resources do not show where the DRA
driver runs (e.g. the GPU Operator's ``GPUCluster`` stack on every GPU node).

Only NodePools that can launch GPU instances are judged against: when none can (CPU, Neuron or TPU
pools only), GPU nodes come from node groups or another provider the checked resources do not show.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterator, Mapping, Optional, Sequence

from gpufleet.components.gpu_instances import GpuInstanceType
from gpufleet.components.gpu_scheduling import GPU_RESOURCE, POOL_LABEL, GpuPlacement
from gpufleet.policies.core import (
    Malformed, Rule, RuleContext, Subject, as_list, as_mapping, as_str, contains_unknown, format_quantity, is_unknown,
    parse_quantity,
)
from gpufleet.policies.pod_templates import PodTemplate, gpu_pod_templates
from gpufleet.policies.rules._common import tolerates
from gpufleet.policies.rules._device_plugin import mps_configs, time_slicing_configs
from gpufleet.policies.rules._karpenter import (
    NODEPOOL_KEY, NodeOverlay, NodePool, Requirement, node_overlay_gate,
    node_overlays, node_pools, overlay_capacity, requirement,
)


class _Overlays:
    """The NodeOverlays Karpenter applies: none when its Helm release leaves the feature gate off."""

    def __init__(self, subjects: Sequence[Subject], overlays: list[NodeOverlay]):
        gate = node_overlay_gate(subjects)
        self.gate_off = gate[0] if gate is not None and not gate[1] else None
        self.all = [] if self.gate_off is not None else overlays
        self.named = {resource for overlay in self.all for resource in overlay.capacity}


def check(subjects: Sequence[Subject], context: RuleContext) -> Iterator[tuple[Subject, str]]:
    if context.assumes("node-pools=external"):
        return  # a workload that fits no checked pool may fit one outside them
    pools, unreadable = node_pools(subjects)
    if unreadable:
        return
    pools = [pool for pool in pools if pool.can_launch_gpus]
    if not pools:
        return  # GPU nodes come from elsewhere (node groups, another provider): nothing to judge against
    found, unreadable = node_overlays(subjects)
    if unreadable:
        return
    overlays = _Overlays(subjects, found)
    replicas = {entry.config: entry.replicas or 0 for entry in time_slicing_configs(subjects)}
    mps = {entry.config: entry.replicas or 0 for entry in mps_configs(subjects)}
    # DRA claims are judged only against a fleet that shows where DRA runs (a pool keeping the device
    # plugin off): without one the driver may come from elsewhere (the operator's GPUCluster stack).
    dra_pools = any(pool.placement(replicas, mps).dra for pool in pools)
    for template in gpu_pod_templates(subjects):
        if not template.gpu_resources() and not dra_pools:
            continue  # GPUs through DRA claims only, and no pool that says it runs the DRA driver
        pod = _Pod.of(template)
        if pod is None:
            continue
        reasons = []
        for pool in pools:
            reason = _misfit(pool, pod, pool.placement(replicas, mps), overlays)
            if reason is None:
                break
            reasons.append(f"{pool.name}: {reason}")
        else:
            yield template.owner, f"{template.where}: fits no NodePool ({'; '.join(reasons)})"


class _Pod:
    """What scheduling needs from a pod template."""

    def __init__(self, template: PodTemplate, terms: list[list[Requirement]], gpus: Mapping[str, Decimal],
                 cpu: Decimal, memory: Decimal):
        self.template, self.terms, self.gpus, self.cpu, self.memory = template, terms, gpus, cpu, memory
        self.claims: Mapping[str, Decimal] = template.dra_gpus
        """DeviceClass → devices the pod's DRA claims ask for."""

    @classmethod
    def of(cls, template: PodTemplate) -> Optional["_Pod"]:
        spec = template.spec
        if any(is_unknown(spec.get(k)) for k in ("nodeSelector", "affinity", "tolerations")):
            return None
        if contains_unknown(spec.get("tolerations")):
            return None
        terms = _terms(spec)
        if terms is None:
            return None
        totals = _cpu_memory(template)
        if totals is None:
            return None
        return cls(template, terms, template.gpu_resources(), *totals)


def _terms(spec: Mapping[str, Any]) -> Optional[list[list[Requirement]]]:
    """The pod's node constraints as OR-ed terms of AND-ed requirements; None when unknown."""
    selector = spec.get("nodeSelector")
    base: list[Requirement] = []
    for key, value in as_mapping(selector).items():
        if as_str(value) is None:
            return None
        base.append(Requirement(key, "In", (value,)))
    required = as_mapping(as_mapping(as_mapping(spec.get("affinity")).get("nodeAffinity"))
                          .get("requiredDuringSchedulingIgnoredDuringExecution"))
    raw_terms = required.get("nodeSelectorTerms")
    if is_unknown(raw_terms):
        return None
    terms = []
    for raw in as_list(raw_terms):
        expressions = as_mapping(raw).get("matchExpressions")
        if is_unknown(expressions):
            return None
        term = [requirement(e) for e in as_list(expressions)]
        if any(r is None for r in term):
            return None
        terms.append(base + term)  # type: ignore[operator]
    return terms or [base]


def _cpu_memory(template: PodTemplate) -> Optional[tuple[Decimal, Decimal]]:
    def amount(container: Mapping[str, Any], resource: str) -> Optional[Decimal]:
        resources = as_mapping(container.get("resources"))
        for section in ("requests", "limits"):
            value = as_mapping(resources.get(section)).get(resource)
            if value is not None:
                try:
                    return parse_quantity(value)
                except Malformed:
                    return Decimal(0)
        return Decimal(0)

    totals = []
    for resource in ("cpu", "memory"):
        values = [amount(c, resource) for c in template.containers]
        init = [amount(c, resource) for c in template.init_containers]
        if any(v is None for v in values + init):
            return None
        totals.append(max([sum(values, Decimal(0)), *init]))  # type: ignore[arg-type]
    return totals[0], totals[1]


def _misfit(pool: NodePool, pod: _Pod, placement: GpuPlacement, overlays: _Overlays) -> Optional[str]:
    """Why ``pod`` cannot run on ``pool``; None when it can."""
    for taint in pool.taints:
        key, value, effect = (str(taint.get(k) or "") for k in ("key", "value", "effect"))
        if effect in ("NoSchedule", "NoExecute") and not tolerates(pod.template.tolerations, key, value, effect):
            return f"does not tolerate taint {key}{'=' + value if value else ''}:{effect}"
    if not pool.instance_types:
        return "its requirements allow none of gpufleet's GPU instance types"
    offered = pool.offered_resources(placement)
    for resource in pod.gpus:
        if resource not in offered:
            if placement.dra:
                return (f"its nodes run no device plugin (nvidia.com/gpu.deploy.device-plugin: \"false\", DRA): "
                        f"nothing advertises {resource}; claim {placement.device_class} with a ResourceClaimTemplate")
            return f"its nodes advertise {' / '.join(offered)}, not {resource}{_sharing(placement)}"
    for device_class in pod.claims:
        if not pool.offers_device_class(placement, device_class):
            where = (f"its DRA nodes publish {placement.device_class} devices" if placement.dra
                     else f"its nodes run the device plugin ({' / '.join(offered)}), no DRA driver")
            return f"the pod claims {device_class} devices, and {where}{_sharing(placement)}"
    reason = ""
    for term in pod.terms:
        reason = _term_misfit(pool, pod, placement, term, overlays)
        if not reason:
            return None
    return reason


def _term_misfit(pool: NodePool, pod: _Pod, placement: GpuPlacement, term: list[Requirement],
                 overlays: _Overlays) -> str:
    candidates = list(pool.instance_types)
    for req in term:
        if req.key in pool.instance_keys:
            candidates = [t for t in candidates if req.allows(pool.instance_labels(t)[req.key])]
            if not candidates:
                return f"none of its instance types matches {_describe(req)}"
        elif not pool.can_carry(req):
            return f"its nodes cannot carry {_describe(req)} (not a pool label or requirement)"
    fitting = [t for t in candidates if _holds(t, pod, placement)]
    if not fitting:
        largest = max(candidates, key=lambda t: (t.gpus, t.vcpus))
        asked = ", ".join([*(f"{format_quantity(n)} {r}" for r, n in sorted(pod.gpus.items())),
                           *(f"{format_quantity(n)} {c} devices (DRA)" for c, n in sorted(pod.claims.items()))])
        return f"one pod asks for {asked} (cpu {format_quantity(pod.cpu)}, memory {_gib(pod.memory)}) and no allowed " \
               f"instance type holds it (largest {largest.name}){_sharing(placement)}"
    simulated = [t for t in fitting if not _unknown_to_karpenter(pool, t, pod, overlays)]
    if not simulated:
        return _overlay_missing(pool, pod, placement, fitting, overlays)
    if not any(pool.can_launch(t) for t in simulated):
        limits = ", ".join(f"{k}={format_quantity(v)}" for k, v in sorted(pool.limits.items()))
        return f"its limits ({limits}) are below one node of {min(simulated, key=lambda t: t.gpus).name}"
    return ""


def _extended(pod: _Pod) -> dict[str, Decimal]:
    """The pod's GPU resources Karpenter does not know by itself (all but ``nvidia.com/gpu``)."""
    return {r: n for r, n in sorted(pod.gpus.items()) if r != GPU_RESOURCE}


def _unknown_to_karpenter(pool: NodePool, instance: GpuInstanceType, pod: _Pod, overlays: _Overlays) -> list[str]:
    """The pod's extended GPU resources no NodeOverlay gives a node of ``instance`` in ``pool`` in the
    amount the pod asks for."""
    missing = []
    for resource, amount in _extended(pod).items():
        capacity = overlay_capacity(overlays.all, pool, instance, resource)
        if capacity is None or capacity < amount:
            missing.append(resource)
    return missing


def _overlay_missing(pool: NodePool, pod: _Pod, placement: GpuPlacement, fitting: list[GpuInstanceType],
                     overlays: _Overlays) -> str:
    resources = sorted({r for t in fitting for r in _unknown_to_karpenter(pool, t, pod, overlays)})
    resource = resources[0]
    amount = format_quantity(pod.gpus[resource])
    unknown = f"Karpenter knows only {GPU_RESOURCE} of an instance type, not {' / '.join(resources)}"
    if overlays.gate_off is not None:
        return (f"{unknown}, and Karpenter's Helm release {overlays.gate_off.object_name} leaves the NodeOverlay "
                f"feature gate off (set settings.featureGates.nodeOverlay: true): no node is launched for it")
    selector = (f"{POOL_LABEL} In [{pool.labels[POOL_LABEL]}]" if POOL_LABEL in pool.labels
                else f"{NODEPOOL_KEY} In [{pool.name}]")
    per_node = placement.gpu_resources_per_node(fitting[0]) if placement.gpu_resource == resource else 0
    example = f"{resource}: {per_node} on {fitting[0].name}" if per_node else f"{resource} (units per node)"
    add = (f"add a karpenter.sh/v1alpha1 NodeOverlay with requirements {selector} (per instance type if the "
           f"units differ) and capacity {example}")
    if resource not in overlays.named:
        return f"{unknown}: no NodeOverlay in the checked resources adds {resource}; {add}"
    capacities = {t.name: overlay_capacity(overlays.all, pool, t, resource) for t in fitting}
    short = {name: c for name, c in capacities.items() if c is not None}
    if not short:
        return (f"{unknown}: no NodeOverlay whose requirements select its nodes ({', '.join(capacities)}) adds "
                f"{resource}; {add}")
    by_units: dict[Decimal, list[str]] = {}
    for name, units in short.items():
        by_units.setdefault(units, []).append(name)
    given = "; ".join(f"{format_quantity(units)} on {', '.join(names)}" for units, names in sorted(by_units.items()))
    return f"its NodeOverlays give {resource} {given}: less than the {amount} one pod asks for"


def _holds(instance: GpuInstanceType, pod: _Pod, placement: GpuPlacement) -> bool:
    if pod.claims and sum(pod.claims.values()) > placement.gpu_resources_per_node(instance):
        return False  # a DRA node publishes its GPUs, or its MIG slices of the pool's profile
    for resource, amount in pod.gpus.items():
        # Karpenter picks an instance type by its physical GPUs for nvidia.com/gpu, whatever the
        # device plugin later advertises (MIG's single strategy, time-slicing without renaming).
        per_node = instance.gpus if resource == GPU_RESOURCE else placement.gpu_resources_per_node(instance)
        unknown_replicas = placement.sharing in ("time-slicing", "mps") and placement.shared_replicas == 0
        if not unknown_replicas and amount > per_node:
            return False
    return pod.cpu <= instance.vcpus and pod.memory <= Decimal(instance.memory_gib) * 2 ** 30


def _describe(req: Requirement) -> str:
    if req.operator == "In" and len(req.values) == 1:
        return f"{req.key}={req.values[0]}"
    return f"{req.key} {req.operator} {list(req.values)}" if req.values else f"{req.key} {req.operator}"


def _sharing(placement: GpuPlacement) -> str:
    if placement.sharing == "mig":
        return f" (MIG {placement.mig_profile})"
    if placement.sharing == "time-slicing":
        return " (time-sliced)"
    if placement.sharing == "mps":
        return " (MPS)"
    return ""


def _gib(memory: Decimal) -> str:
    return f"{format_quantity((memory / 2 ** 30).quantize(Decimal('0.1')))}Gi"


RULE = Rule(
    name="gpu-workload-schedulable",
    description=(
        "Every GPU workload fits at least one Karpenter NodePool: it tolerates the pool's taints, its nodeSelector "
        "and required node affinity name only labels the pool's nodes carry before launch, it asks for the GPU "
        "resource the pool's sharing mode advertises (whole GPUs, a MIG slice via nvidia.com/mig.config, a "
        "time-sliced or MPS-shared GPU via nvidia.com/device-plugin.config) in an amount one allowed instance type holds, and a "
        "node of that type fits the pool's limits. Karpenter knows only nvidia.com/gpu of an instance type: a MIG "
        "slice or a shared GPU also needs a karpenter.sh/v1alpha1 NodeOverlay selecting the pool's nodes whose "
        "capacity adds that resource in the amount the pod asks for (and Karpenter's nodeOverlay feature gate, "
        "when its Helm release is checked). Otherwise the pod stays Pending and nothing says why. Skipped when "
        "the checked resources contain no NodePool."
    ),
    check_stack=check,
    summary="every GPU workload fits some Karpenter NodePool",
    why=(
        "Karpenter launches a node only for a pod some NodePool can serve; a GPU pod that fits none stays Pending"
        " with no error at deploy time, and the model simply never comes up."
    ),
    fix=(
        "Align the workload with a pool: tolerate its taints, select only labels its nodes carry (e.g. "
        "gpufleet.io/gpu-pool), request the GPU resource its sharing mode advertises in an amount one allowed "
        "instance type holds (MIG slices and shared GPUs also need a NodeOverlay). If the cluster's NodePools are"
        " not all in the checked files, run gpufleet check with --assume node-pools=external."
    ),
    example="""\
apiVersion: karpenter.sh/v1
kind: NodePool
metadata:
  name: serving
spec:
  template:
    metadata:
      labels: {gpufleet.io/gpu-pool: serving}
    spec:
      nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: gpu}
      requirements:
        - {key: karpenter.k8s.aws/instance-family, operator: In, values: [g6e]}
      taints:
        - {key: nvidia.com/gpu, value: "true", effect: NoSchedule}
  limits:
    nvidia.com/gpu: 16
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: llm
  namespace: serving
spec:
  replicas: 1
  selector:
    matchLabels: {app: llm}
  template:
    metadata:
      labels: {app: llm}
    spec:
      nodeSelector: {gpufleet.io/gpu-pool: serving}
      tolerations:
        - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
      containers:
        - name: server
          image: vllm/vllm-openai:v0.11.0
          resources:
            requests: {nvidia.com/gpu: 1, cpu: "8", memory: 48Gi}
            limits: {nvidia.com/gpu: 1, memory: 48Gi}
""",
)
