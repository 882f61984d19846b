"""What the GPU pools and the teams' namespace quotas must hold beyond Kueue (area ``tenancy``).

Kueue admits queued workloads against its ClusterQueues, but KServe predictors (vLLM and Triton), the
groups of unqueued multi-node services and the weights loader and model repository Jobs run outside
it: their GPUs count against the pools' ``limits.gpus`` beside the teams' nominal quotas, and their
cpu and memory come out of the namespace ResourceQuota before the queue gets the rest
(:func:`kueue_cpu_memory`). The checks here are :mod:`gpufleet.infra.areas.tenancy`'s
``cross_check`` problems about that capacity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Mapping

from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.components.inference_service import plan_inference_service
from gpufleet.components.kueue import resources_per_gpu
from gpufleet.components.model_loader import loader_job_spec
from gpufleet.infra.areas import multi_node_serving
from gpufleet.infra.areas.gpu_pools import configured_placements
from gpufleet.infra.areas import triton as triton_area
from gpufleet.infra.areas.serving import component_args
from gpufleet.policies.core import format_quantity, parse_quantity

if TYPE_CHECKING:
    from gpufleet.infra.areas.tenancy import TeamSection

_GIB = Decimal(2) ** 30


def over_committed(config, pools: dict[str, Any]) -> list[str]:
    """Nominal quotas above a pool's GPU limit promise GPUs Karpenter will never launch."""
    problems = []
    for name, pool in pools.items():
        limit = pool.limits.gpus
        shares = [
            (i, j, team.name, quota.gpus)
            for i, team in enumerate(config.teams)
            for j, quota in enumerate(team.gpu_quotas)
            if quota.pool == name
        ]
        total = sum(gpus for *_, gpus in shares)
        if limit is not None and total > limit:
            i, j, *_ = shares[-1]
            parts = ", ".join(f"{team} {gpus}" for _, _, team, gpus in shares)
            problems.append(
                f"gpufleet:teams[{i}].gpuQuotas[{j}].gpus: nominal GPU quotas on pool {name!r} sum to {total} "
                f"({parts}), above the pool's limits.gpus ({limit})"
            )
        for i, j, _team, gpus in shares:
            borrow = config.teams[i].gpu_quotas[j].borrowing_limit
            if limit is not None and borrow is not None and gpus + borrow > limit:
                problems.append(
                    f"gpufleet:teams[{i}].gpuQuotas[{j}].borrowingLimit: gpus + borrowingLimit "
                    f"({gpus} + {borrow}) exceeds pool {name!r} limits.gpus ({limit})"
                )
    return problems


def predictor_units(service) -> int:
    """Most pool resource units a KServe InferenceService holds at once: its replicas at most
    (``maxReplicas``, else ``minReplicas``; ``minReplicas: 0`` alone scales to 1) plus its canary's
    fixed replicas, ``gpus`` units each."""
    replicas = service.max_replicas if service.max_replicas is not None else max(service.min_replicas, 1)
    canary = getattr(service, "canary", None)  # Triton services have none
    if canary is not None:
        replicas += canary.min_replicas
    return replicas * service.gpus


def _gpus(units: int, per_gpu: int) -> str:
    return str(units // per_gpu) if units % per_gpu == 0 else f"{units / per_gpu:.2f}"


def served(config) -> tuple[Any, ...]:
    """Every KServe service of ``gpufleet:serving``: the vLLM ``inferenceServices`` and the
    ``tritonServices`` (both hold GPUs outside Kueue)."""
    serving = getattr(config, "serving", None)
    return (*(getattr(serving, "inference_services", ()) or ()), *(getattr(serving, "triton_services", ()) or ()))


def shared_with_predictors(config, pools: dict[str, Any]) -> list[str]:
    """KServe predictors are not admitted by Kueue but run on the same pools: Kueue's nominal GPU
    quotas plus the predictors' most GPUs must fit the pool's ``limits.gpus``, or Kueue admits jobs
    whose pods Karpenter can never place (and predictors starve admitted jobs). Counted in the
    pool's units (time-sliced replicas, MIG slices) against ``limits.gpus`` × units per GPU."""
    services = served(config)
    if not services:
        return []
    placements = configured_placements(config)
    problems = []
    for name, pool in pools.items():
        on_pool = [s for s in services if s.pool == name]
        if not on_pool or pool.limits.gpus is None or name not in placements:
            continue
        shares = [
            (i, j, team.name, quota.gpus)
            for i, team in enumerate(config.teams)
            for j, quota in enumerate(team.gpu_quotas)
            if quota.pool == name
        ]
        queued = sum(gpus for *_, gpus in shares)
        if not shares or queued > pool.limits.gpus:
            continue  # no Kueue quota here, or already reported by over_committed
        per_gpu = resources_per_gpu(placements[name])
        predictors = [(s.name, predictor_units(s)) for s in on_pool]
        total = queued * per_gpu + sum(units for _, units in predictors)
        if total > pool.limits.gpus * per_gpu:
            i, j, *_ = shares[-1]
            teams = ", ".join(f"{team} {gpus}" for _, _, team, gpus in shares)
            services_text = ", ".join(f"{service} {_gpus(units, per_gpu)}" for service, units in predictors)
            problems.append(
                f"gpufleet:teams[{i}].gpuQuotas[{j}].gpus: on pool {name!r} the nominal GPU quotas ({teams}) "
                f"plus the GPUs of the inference services at their most replicas ({services_text}; not admitted "
                f"by Kueue) need {_gpus(total, per_gpu)} GPUs, above the pool's limits.gpus ({pool.limits.gpus})"
            )
    return problems


@dataclass(frozen=True)
class KueueCpuMemory:
    """A team's cpu/memory split between the namespace ResourceQuota and its Kueue ClusterQueue."""

    quota_cpu: Decimal
    """Cores of the namespace ResourceQuota (``requests.cpu``)."""
    quota_memory: Decimal
    """Bytes of the namespace ResourceQuota (``requests.memory``)."""
    held: tuple[tuple[str, Decimal, Decimal], ...]
    """(what, cores, bytes) per workload outside Kueue: each predictor at its most replicas (canary
    included) and each weights loader Job."""

    @property
    def held_cpu(self) -> Decimal:
        return sum((cpu for _, cpu, _ in self.held), Decimal(0))

    @property
    def held_memory(self) -> Decimal:
        return sum((memory for *_, memory in self.held), Decimal(0))

    @property
    def cpu(self) -> int:
        """Kueue's nominal cpu quota: whole cores left (may be 0 or negative: no room)."""
        return math.floor(self.quota_cpu - self.held_cpu)

    @property
    def memory_gib(self) -> int:
        """Kueue's nominal memory quota: whole GiB left (may be 0 or negative: no room)."""
        return math.floor((self.quota_memory - self.held_memory) / _GIB)


def _pod_requests(pod: Mapping[str, Any]) -> tuple[Decimal, Decimal]:
    """(cores, bytes) a pod counts against a ResourceQuota: its containers' requests together, or
    its largest init container's when that is more (Kubernetes' effective request)."""

    def requests(container: Mapping[str, Any]) -> tuple[Decimal, Decimal]:
        wanted = container.get("resources", {}).get("requests", {})
        return (parse_quantity(wanted.get("cpu")) or Decimal(0), parse_quantity(wanted.get("memory")) or Decimal(0))

    running = [requests(c) for c in pod.get("containers", ())]
    init = [requests(c) for c in pod.get("initContainers", ())]
    cpu = max([sum((c for c, _ in running), Decimal(0))] + [c for c, _ in init])
    memory = max([sum((m for _, m in running), Decimal(0))] + [m for _, m in init])
    return cpu, memory


def _outside_kueue(config, team_name: str, placements: Mapping[str, GpuPlacement]) -> list[tuple[str, Decimal, Decimal]]:
    """(what, cores, bytes) of each workload of ``team_name`` that Kueue does not admit, from the
    specs gpufleet renders for it: every predictor of its ``gpufleet:serving`` services at its most
    replicas (``maxReplicas``, else ``minReplicas``) plus the canary's replicas, and every weights
    loader Job (one pod). Services the serving area refuses (unknown pool, invalid arguments) are
    skipped: that area reports them."""
    serving = getattr(config, "serving", None)
    services = [s for s in (getattr(serving, "inference_services", ()) or ()) if s.team == team_name]
    cache = getattr(config, "model_cache", None)
    held = []
    for service in services:
        if service.pool not in placements:
            continue
        try:
            plan = plan_inference_service(service.name, component_args(
                service, placements[service.pool], serving.prometheus_url, getattr(cache, "claim_name", None),
                kserve=serving.kserve))
        except (ValueError, TypeError):
            continue
        predictors = plan.predictors
        cpu = memory = Decimal(0)
        for predictor in predictors:
            replicas = max(predictor.get("maxReplicas", 0), predictor["minReplicas"])
            pod_cpu, pod_memory = _pod_requests(predictor)
            cpu, memory = cpu + replicas * pod_cpu, memory + replicas * pod_memory
        held.append((service.name, cpu, memory))
        for loader in plan.loaders.values():
            pod = loader_job_spec(loader)["template"]["spec"]
            held.append((f"{loader['job_name']} (loader Job)", *_pod_requests(pod)))
    for service in getattr(serving, "triton_services", ()) or ():
        if service.team != team_name or service.pool not in placements:
            continue
        try:
            triton_plan = triton_area.plan_of(config, service, placements[service.pool])
        except (ValueError, TypeError):
            continue  # the triton area reports it
        pod_cpu, pod_memory = _pod_requests(triton_plan.predictor)
        replicas = service.most_replicas
        held.append((service.name, replicas * pod_cpu, replicas * pod_memory))
        held.append((f"{triton_plan.job_name} (model repository Job)",
                     *_pod_requests(triton_plan.job["template"]["spec"])))
    # multi-node services outside Kueue: every pod of every group; their loader Jobs
    return held + multi_node_serving.held_outside_kueue(config, team_name)


def kueue_cpu_memory(config, team: TeamSection, placements: Mapping[str, GpuPlacement]) -> KueueCpuMemory:
    """The team's Kueue cpu/memory quota: its namespace ResourceQuota (``cpu``, ``memoryGib``) minus
    the most its workloads outside Kueue request at once, i.e. its KServe predictors at their most
    replicas (canary included) and its weights loader Jobs. Both run in the team namespace and pay
    from the same ResourceQuota; a queue given the whole quota admits jobs whose pods the quota then
    refuses (evicted and requeued by ``waitForPodsReady``, over and over). Rounded down to whole cores
    and GiB. Requests are read from the specs gpufleet renders (KServe adds no containers in
    Standard mode for ``pvc://`` storage; a storage initializer requests less than any predictor)."""
    return KueueCpuMemory(quota_cpu=Decimal(team.cpu), quota_memory=Decimal(team.memory_gib) * _GIB,
                          held=tuple(_outside_kueue(config, team.name, placements)))


def room_for_kueue(config) -> list[str]:
    """A team whose predictors and loaders request all of (or more than) its ResourceQuota's cpu or
    memory leaves its ClusterQueue no quota (and, beyond it, the quota refuses predictor pods)."""
    serving = getattr(config, "serving", None)
    if not served(config) and not getattr(serving, "multi_node_services", ()):
        return []
    placements = configured_placements(config)
    kueue = getattr(config, "kueue", None)
    problems = []
    for i, team in enumerate(config.teams):
        split = kueue_cpu_memory(config, team, placements)
        if not split.held:
            continue
        queued = bool(team.gpu_quotas) and bool(getattr(kueue, "enabled", False))
        checks = (
            ("cpu", split.cpu, 1, split.held_cpu, split.quota_cpu, "cores", Decimal(1)),
            ("memoryGib", split.memory_gib, 2, split.held_memory, split.quota_memory, "GiB", _GIB),
        )
        for field, left, column, held, quota, unit, scale in checks:
            if (left >= 1) if queued else (held <= quota):
                continue

            def amount(value: Decimal, scale: Decimal = scale) -> str:
                return format_quantity((value / scale).quantize(Decimal("0.01")))

            detail = ", ".join(f"{entry[0]} {amount(entry[column])}" for entry in split.held)
            tail = (f"leaving its Kueue ClusterQueue less than one whole {unit.rstrip('s')}: raise {field} or "
                    f"lower the services' replicas"
                    if queued else "so the ResourceQuota refuses predictor pods at their most replicas")
            groups = (", the pods of its unqueued gpufleet:serving.multiNodeServices"
                      if any(s.team == team.name and not s.queued for s in getattr(serving, "multi_node_services", ()))
                      else "")
            problems.append(
                f"gpufleet:teams[{i}].{field}: the team's workloads outside Kueue (predictors of "
                f"gpufleet:serving.inferenceServices and tritonServices at their most replicas, canary included{groups}, "
                f"and weights loader and model repository Jobs: [{detail}]) hold up to {amount(held)} of the namespace ResourceQuota's {amount(quota)} "
                f"{unit}, {tail}"
            )
    return problems
