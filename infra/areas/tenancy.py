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
repository Jobs. The queue gets what those leave at most
(:func:`~gpufleet.infra.areas.tenancy_capacity.kueue_cpu_memory`),
so Kueue never admits pods the quota refuses; :func:`cross_check` refuses a team whose
predictors and loaders leave its queue nothing.

Composition makes every team Namespace depend on the Kueue component: on destroy the namespaces
(and their Workloads, whose finalizers Kueue removes) go before Kueue.

Composition puts each team's Namespace in ``platform.namespaces[team]``, its LocalQueue name in
``platform.local_queues[team]``, the Kueue component in ``platform.components["kueue"]`` and the
PriorityClasses in ``platform.components["priority-classes"]``.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, Optional, Sequence

import pulumi
from pydantic import Field, field_validator, model_validator

from gpufleet.components.gpu_scheduling import GPU_RESOURCE, GpuPlacement
from gpufleet.components.kueue import CPU_FLAVOR, Kueue, resources_per_gpu
from gpufleet.components.kueue_controller import DEFAULT_FRAMEWORKS, KNOWN_FRAMEWORKS
from gpufleet.components.priority_classes import PriorityClasses
from gpufleet.components.team import Team
from gpufleet.infra.areas.base import ConfigModel, DnsLabel, IamPrincipalArn, Platform
from gpufleet.infra.areas import multi_node_serving
from gpufleet.infra.areas.tenancy_capacity import (
    kueue_cpu_memory, over_committed, predictor_units, room_for_kueue, served, shared_with_predictors,
)


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
    problems += over_committed(config, pools)
    problems += shared_with_predictors(config, pools)
    problems += room_for_kueue(config)
    problems += _principals(config)
    if config.teams and any(t.gpu_quotas for t in config.teams) and config.kueue.enabled and not pools:
        problems.append("gpufleet:kueue: teams have gpuQuotas but gpufleet:gpuPools is empty")
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


def namespace_gpu_caps(team: TeamSection, placements: dict[str, GpuPlacement], services: Sequence[Any] = (),
                       held: Optional[Mapping[str, int]] = None) -> dict[str, int]:
    """The namespace ResourceQuota's GPU ceilings: per GPU resource, the most the team can hold at
    once through Kueue (nominal + borrowing limit, at most the pool), plus the most its KServe
    predictors (``services`` of ``gpufleet:serving`` in the team's namespace, not admitted by Kueue)
    hold, in the resource's units (DRA pools: devices of their DeviceClass, :func:`quota_key`): without
    them, predictors and admitted jobs would take each other's room in the quota; ``held`` adds other
    GPU units outside Kueue (multi-node services, per resource). ``nvidia.com/gpu`` is always capped
    (0 for a team without whole-GPU pools) so no pod in the namespace grabs whole GPUs outside its
    quota."""
    caps: dict[str, int] = {GPU_RESOURCE: 0}
    for service in services:
        if service.team == team.name and service.pool in placements:
            resource = quota_key(placements[service.pool])
            caps[resource] = caps.get(resource, 0) + predictor_units(service)
    for resource, units in (held or {}).items():
        caps[resource] = caps.get(resource, 0) + units
    for quota in team.gpu_quotas:
        placement = placements[quota.pool]
        if quota.borrowing_limit is not None:
            most = quota.gpus + quota.borrowing_limit
        else:
            most = placement.gpu_limit
        if placement.gpu_limit:
            most = min(most, placement.gpu_limit)
        most = max(most, quota.gpus)
        resource = quota_key(placement)
        caps[resource] = caps.get(resource, 0) + most * resources_per_gpu(placement)
    return caps


def quota_key(placement: GpuPlacement) -> str:
    """The key of :func:`namespace_gpu_caps` for ``placement``'s GPUs: its GPU resource
    (``nvidia.com/gpu``, ...; quota ``requests.<resource>``), or on a DRA pool the ResourceQuota name
    of its DeviceClass (``gpu.nvidia.com.deviceclass.resource.k8s.io/devices``, devices claimed)."""
    return placement.quota_resource.removeprefix("requests.")


def compose(platform: Platform) -> None:
    """PriorityClasses, Kueue (when there are GPU pools) and one Team per ``gpufleet:teams`` entry."""
    config = platform.config
    platform.components["priority-classes"] = PriorityClasses("priority-classes", opts=platform.opts)

    teams = config.teams
    services = served(config)
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
                # queued multi-node services add the pod and LeaderWorkerSet integrations
                "frameworks": multi_node_serving.kueue_frameworks(config, settings.frameworks),
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
                    "gpus": namespace_gpu_caps(team, platform.placements, services,
                                               multi_node_serving.namespace_gpus(config, team.name, platform.placements)),
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
