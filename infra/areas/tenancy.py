"""Stack area `tenancy`: teams (namespaces, quotas, access), priorities and Kueue queueing.

Config keys: ``gpufleet:teams`` (a list of :class:`TeamSection`) and ``gpufleet:kueue``
(:class:`KueueSection`). A team's GPU quota is set per GPU pool, in physical GPUs; the pool's sharing
decides the unit Kueue counts (whole GPUs, time-sliced replicas or MIG slices). Each pool a team
names becomes (through Kueue) a ResourceFlavor of that name, so a quota naming an unknown pool is a
flavor without nodes: :func:`cross_check` refuses it, and refuses nominal quotas that together
exceed a pool's ``limits.gpus`` (GPUs promised that Karpenter may never launch), also counting the
GPUs of the KServe predictors on the pool (``gpufleet:serving``), which Kueue does not admit.
Every ClusterQueue holds the team's cpu and memory once, on Kueue's CPU flavor (``cpu``, its own
resource group, no borrowing); no pool may be named ``cpu``. The namespace ResourceQuota
(``cpu``/``memoryGib``) also pays for the team's pods Kueue does not admit: its KServe predictors
(vLLM ``inferenceServices`` and ``tritonServices``), their weights loader Jobs and the Triton model
repository Jobs. The queue gets what those leave at most (:func:`kueue_cpu_memory`),
so Kueue never admits pods the quota refuses; :func:`cross_check` refuses a team whose
predictors and loaders leave its queue nothing.

Composition makes every team Namespace depend on the Kueue component: on destroy the namespaces
(and their Workloads, whose finalizers Kueue removes) go before Kueue.

Composition puts each team's Namespace in ``platform.namespaces[team]``, its LocalQueue name in
``platform.local_queues[team]``, the Kueue component in ``platform.components["kueue"]`` and the
PriorityClasses in ``platform.components["priority-classes"]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Mapping, Optional, Sequence

import pulumi
from pydantic import Field, field_validator, model_validator

from gpufleet.components.gpu_scheduling import GPU_RESOURCE, GpuPlacement
from gpufleet.components.inference_service import plan_inference_service
from gpufleet.components.kueue import CPU_FLAVOR, DEFAULT_FRAMEWORKS, KNOWN_FRAMEWORKS, Kueue, resources_per_gpu
from gpufleet.components.model_loader import loader_job_spec
from gpufleet.components.priority_classes import PriorityClasses
from gpufleet.components.team import Team
from gpufleet.infra.areas.base import ConfigModel, DnsLabel, IamPrincipalArn, Platform
from gpufleet.infra.areas.gpu_pools import configured_placements
from gpufleet.infra.areas import triton as triton_area
from gpufleet.infra.areas.serving import component_args
from gpufleet.policies.core import format_quantity, parse_quantity

_GIB = Decimal(2) ** 30

_RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease", "kueue-system")


class TeamAccessConfig(ConfigModel):
    """An IAM principal of the team, given access to the team namespace only."""

    principal_arn: IamPrincipalArn
    """ARN of the IAM role or user (an EKS access entry is created for it)."""
    access_policy: Literal["admin", "edit", "view"] = "edit"
    """``edit`` (AmazonEKSEditPolicy + ``edit`` role), ``view`` or ``admin``, namespace-scoped.
    Default ``edit``."""


class GpuQuotaConfig(ConfigModel):
    """A team's share of one GPU pool, in physical GPUs of that pool."""

    pool: str
    """Name of a GPU pool (``gpufleet:gpuPools[].name``); also the Kueue ResourceFlavor's name."""
    gpus: int = Field(ge=0, le=100_000)
    """Nominal quota: GPUs guaranteed to the team (0: the team only borrows idle GPUs)."""
    borrowing_limit: Optional[int] = Field(None, ge=0, le=100_000)
    """GPUs the team may borrow beyond ``gpus`` while other teams leave theirs idle. Default: no limit
    (up to what the cohort has idle)."""
    lending_limit: Optional[int] = Field(None, ge=0, le=100_000)
    """GPUs of ``gpus`` other teams may borrow while this team leaves them idle. Default all."""

    @model_validator(mode="after")
    def _lending(self) -> "GpuQuotaConfig":
        if self.lending_limit is not None and self.lending_limit > self.gpus:
            raise ValueError(f"lendingLimit ({self.lending_limit}) exceeds gpus ({self.gpus})")
        return self


class TeamSection(ConfigModel):
    """A tenant: namespace (named after the team), hard quotas, namespace-scoped access, Kueue queue."""

    name: DnsLabel
    """Team name: the namespace, ClusterQueue and LocalQueue name."""
    access: tuple[TeamAccessConfig, ...] = ()
    """IAM principals of the team. Default none."""
    gpu_quotas: tuple[GpuQuotaConfig, ...] = ()
    """One entry per GPU pool the team may use, in order of preference: Kueue admits a job to the
    first pool (flavor) where it fits. Default none (no GPUs, no queue)."""
    cpu: int = Field(64, ge=1, le=100_000)
    """CPU cores the team's pods may request together (namespace ResourceQuota). The team's Kueue cpu
    quota (held once on Kueue's CPU flavor for all its queued pods, GPU pods included, never
    borrowed) is this minus what its KServe predictors (at their most replicas, canary included)
    and weights loader Jobs request, rounded down to whole cores. Default 64."""
    memory_gib: int = Field(256, ge=1, le=10_000_000)
    """Memory the team's pods may request together, GiB; its Kueue memory quota is this minus its
    predictors' and loaders' memory, rounded down to whole GiB, like ``cpu``. Default 256."""
    pvcs: int = Field(20, ge=0, le=10_000)
    """PersistentVolumeClaims in the namespace. Default 20."""
    storage_gib: int = Field(2000, ge=0, le=10_000_000)
    """Storage all PVCs may request together, GiB. Default 2000."""
    fair_sharing_weight: int = Field(1, ge=0, le=1000)
    """Share of idle GPUs this team gets relative to others (Kueue fair sharing). Default 1."""
    pod_security: Literal["privileged", "baseline", "restricted"] = "baseline"
    """Pod Security Standard enforced in the namespace. Default ``baseline``."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value in _RESERVED_NAMESPACES or value.startswith("kube-"):
            raise ValueError(f"{value!r} is a system namespace")
        return value

    @model_validator(mode="after")
    def _unique(self) -> "TeamSection":
        pools = [quota.pool for quota in self.gpu_quotas]
        if len(set(pools)) != len(pools):
            raise ValueError("gpuQuotas names the same pool twice")
        arns = [entry.principal_arn for entry in self.access]
        if len(set(arns)) != len(arns):
            raise ValueError("access names the same principalArn twice")
        return self


class KueueSection(ConfigModel):
    """Kueue: job queueing with gang admission, a ClusterQueue per team in one cohort."""

    enabled: bool = True
    """Install Kueue (needs at least one GPU pool). Default true."""
    cohort: DnsLabel = "gpufleet"
    """Cohort of the teams' ClusterQueues: teams borrow each other's idle quota. Default ``gpufleet``."""
    replicas: int = Field(2, ge=1, le=5)
    """Controller replicas. Default 2."""
    fair_sharing: bool = True
    """Share idle GPUs by team weight and preempt towards fair shares. Default true."""
    pods_ready_timeout_minutes: int = Field(15, ge=1, le=180)
    """Gang admission: minutes an admitted job has for all its pods to run before it is evicted and
    requeued, releasing its GPUs. Default 15 (GPU node launch plus image pull)."""
    block_admission: bool = False
    """Admit nothing else until the last admitted job is ready (strictly sequential). Default false."""
    frameworks: tuple[str, ...] = DEFAULT_FRAMEWORKS
    """Kueue integrations. Default batch/job, ray.io/rayjob, ray.io/raycluster, ray.io/rayservice.
    ``pod`` (and ``deployment``/``statefulset``, which need it) are opt-in: Kueue's pod webhook then
    fails closed for pod creation in every namespace but kube-system and kueue-system while the Kueue
    controller is down or upgrading (the namespace selector only applies inside the webhook)."""

    @field_validator("frameworks")
    @classmethod
    def _frameworks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for framework in value:
            if framework not in KNOWN_FRAMEWORKS:
                raise ValueError(f"{framework!r} is not a Kueue 0.19 integration")
        if len(set(value)) != len(value):
            raise ValueError("an integration is listed twice")
        return value


def cross_check(config) -> list[str]:
    """Problems between the teams and the GPU pools, each starting with its field path."""
    problems: list[str] = []
    pools = {pool.name: pool for pool in config.gpu_pools}
    seen: dict[str, int] = {}
    for i, team in enumerate(config.teams):
        if team.name in seen:
            problems.append(f"gpufleet:teams[{i}].name: team {team.name!r} is already gpufleet:teams[{seen[team.name]}]")
        seen.setdefault(team.name, i)
        for j, quota in enumerate(team.gpu_quotas):
            if quota.pool not in pools:
                known = ", ".join(sorted(pools)) or "none"
                problems.append(
                    f"gpufleet:teams[{i}].gpuQuotas[{j}].pool: {quota.pool!r} is not a GPU pool "
                    f"(gpufleet:gpuPools names: {known})"
                )
    if config.kueue.enabled and any(t.gpu_quotas for t in config.teams):
        for i, pool in enumerate(config.gpu_pools):
            if pool.name == CPU_FLAVOR:
                problems.append(
                    f"gpufleet:gpuPools[{i}].name: {CPU_FLAVOR!r} is Kueue's CPU flavor (Ray heads, CPU-only jobs); "
                    "rename the pool"
                )
    problems += _over_committed(config, pools)
    problems += _shared_with_predictors(config, pools)
    problems += _room_for_kueue(config)
    problems += _principals(config)
    if config.teams and any(t.gpu_quotas for t in config.teams) and config.kueue.enabled and not pools:
        problems.append("gpufleet:kueue: teams have gpuQuotas but gpufleet:gpuPools is empty")
    return problems


def _over_committed(config, pools: dict[str, Any]) -> list[str]:
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


def _predictor_units(service) -> int:
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


def _served(config) -> tuple[Any, ...]:
    """Every KServe service of ``gpufleet:serving``: the vLLM ``inferenceServices`` and the
    ``tritonServices`` (both hold GPUs outside Kueue)."""
    serving = getattr(config, "serving", None)
    return (*(getattr(serving, "inference_services", ()) or ()), *(getattr(serving, "triton_services", ()) or ()))


def _shared_with_predictors(config, pools: dict[str, Any]) -> list[str]:
    """KServe predictors are not admitted by Kueue but run on the same pools: Kueue's nominal GPU
    quotas plus the predictors' most GPUs must fit the pool's ``limits.gpus``, or Kueue admits jobs
    whose pods Karpenter can never place (and predictors starve admitted jobs). Counted in the
    pool's units (time-sliced replicas, MIG slices) against ``limits.gpus`` × units per GPU."""
    services = _served(config)
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
            continue  # no Kueue quota here, or already reported by _over_committed
        per_gpu = resources_per_gpu(placements[name])
        predictors = [(s.name, _predictor_units(s)) for s in on_pool]
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
    return held


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


def _room_for_kueue(config) -> list[str]:
    """A team whose predictors and loaders request all of (or more than) its ResourceQuota's cpu or
    memory leaves its ClusterQueue no quota (and, beyond it, the quota refuses predictor pods)."""
    serving = getattr(config, "serving", None)
    if not _served(config):
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
            problems.append(
                f"gpufleet:teams[{i}].{field}: the team's workloads outside Kueue (predictors of "
                f"gpufleet:serving.inferenceServices and tritonServices at their most replicas, canary included, "
                f"and weights loader and model repository Jobs: [{detail}]) hold up to {amount(held)} of the namespace ResourceQuota's {amount(quota)} "
                f"{unit}, {tail}"
            )
    return problems


def _principals(config) -> list[str]:
    """EKS allows one access entry per principal: a team principal cannot have another entry."""
    problems = []
    owners = {entry.principal_arn: "gpufleet:cluster.adminAccess" for entry in config.cluster.admin_access}
    for i, team in enumerate(config.teams):
        for k, entry in enumerate(team.access):
            owner = owners.get(entry.principal_arn)
            if owner:
                problems.append(
                    f"gpufleet:teams[{i}].access[{k}].principalArn: {entry.principal_arn} already has an "
                    f"access entry ({owner}); EKS allows one per principal"
                )
            else:
                owners[entry.principal_arn] = f"gpufleet:teams[{i}]"
    return problems


def namespace_gpu_caps(team: TeamSection, placements: dict[str, GpuPlacement], services: Sequence[Any] = ()) -> dict[str, int]:
    """The namespace ResourceQuota's GPU ceilings: per GPU resource, the most the team can hold at
    once through Kueue (nominal + borrowing limit, at most the pool), plus the most its KServe
    predictors (``services`` of ``gpufleet:serving`` in the team's namespace, not admitted by Kueue)
    hold, in the resource's units: without them, predictors and admitted jobs would take each
    other's room in the quota. ``nvidia.com/gpu`` is always capped (0 for a team without whole-GPU
    pools) so no pod in the namespace grabs whole GPUs outside its quota."""
    caps: dict[str, int] = {GPU_RESOURCE: 0}
    for service in services:
        if service.team == team.name and service.pool in placements:
            resource = placements[service.pool].gpu_resource
            caps[resource] = caps.get(resource, 0) + _predictor_units(service)
    for quota in team.gpu_quotas:
        placement = placements[quota.pool]
        if quota.borrowing_limit is not None:
            most = quota.gpus + quota.borrowing_limit
        else:
            most = placement.gpu_limit
        if placement.gpu_limit:
            most = min(most, placement.gpu_limit)
        most = max(most, quota.gpus)
        resource = placement.gpu_resource
        caps[resource] = caps.get(resource, 0) + most * resources_per_gpu(placement)
    return caps


def compose(platform: Platform) -> None:
    """PriorityClasses, Kueue (when there are GPU pools) and one Team per ``gpufleet:teams`` entry."""
    config = platform.config
    platform.components["priority-classes"] = PriorityClasses("priority-classes", opts=platform.opts)

    teams = config.teams
    services = _served(config)
    for team in teams:
        for quota in team.gpu_quotas:
            if quota.pool not in platform.placements:
                raise ValueError(f"gpufleet:teams: team {team.name!r} names pool {quota.pool!r}, which has no placement")

    kueue: Optional[Kueue] = None
    splits = {team.name: kueue_cpu_memory(config, team, platform.placements) for team in teams}
    if config.kueue.enabled and platform.placements:
        settings = config.kueue
        kueue = Kueue(
            "kueue",
            {
                "placements": list(platform.placements.values()),
                "cluster_queues": [
                    {
                        "name": team.name,
                        "namespaces": [team.name],
                        "gpu_quotas": [
                            {
                                "pool": quota.pool,
                                "gpus": quota.gpus,
                                "borrowing_limit": quota.borrowing_limit,
                                "lending_limit": quota.lending_limit,
                            }
                            for quota in team.gpu_quotas
                        ],
                        "cpu": splits[team.name].cpu,
                        "memory_gib": splits[team.name].memory_gib,
                        "fair_sharing_weight": team.fair_sharing_weight,
                    }
                    for team in teams
                    if team.gpu_quotas
                ],
                "cohort": settings.cohort,
                "replicas": settings.replicas,
                "fair_sharing": settings.fair_sharing,
                "pods_ready_timeout_minutes": settings.pods_ready_timeout_minutes,
                "block_admission": settings.block_admission,
                "frameworks": list(settings.frameworks),
            },
            opts=platform.opts,
        )
        platform.components["kueue"] = kueue

    # Namespaces after Kueue: destroyed while Kueue still runs to remove its Workloads' finalizers.
    # (Kueue depends on nothing team-related, so this adds no cycle.)
    team_opts = pulumi.ResourceOptions.merge(platform.opts, pulumi.ResourceOptions(depends_on=[kueue])) if kueue else platform.opts
    for team in teams:
        queue = kueue.cluster_queue_names.get(team.name) if kueue else None
        component = Team(
            f"team-{team.name}",
            {
                "team": team.name,
                "environment": config.environment,
                "cluster_name": platform.cluster.cluster_name,
                "access": [
                    {"principal_arn": entry.principal_arn, "access_policy": entry.access_policy}
                    for entry in team.access
                ],
                "quota": {
                    "cpu": team.cpu,
                    "memory_gib": team.memory_gib,
                    "gpus": namespace_gpu_caps(team, platform.placements, services),
                    "pvcs": team.pvcs,
                    "storage_gib": team.storage_gib,
                },
                "pod_security": team.pod_security,
                **({"cluster_queue": queue} if queue is not None else {}),
            },
            opts=team_opts,
        )
        platform.namespaces[team.name] = component.namespace
        if component.local_queue_name:
            platform.local_queues[team.name] = component.local_queue_name
