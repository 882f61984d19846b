"""Stack area ``ray``: the KubeRay operator, and the RayClusters, RayJobs and RayServices teams run on
GPU pools.

Each cluster, job or service names its team (its namespace) and its GPU pool; composition takes the
pool's placement, the team's Kueue LocalQueue and the team's model-cache claim from the platform,
so a RayCluster or RayJob always fits the pool it names and is admitted by the team's quota.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.components.kuberay import DEFAULT_NAMESPACE, KubeRayOperator
from gpufleet.components.ray_cluster import RAY_VERSION, RayCluster, RayService, plan_cluster, worker_capacity
from gpufleet.components.ray_job import MAX_JOB_NAME, RayJob, plan_job
from gpufleet.components.ray_serve_config import serve_config
from gpufleet.infra.areas.base import ConfigModel, DnsLabel, ImageRef, Labels, Platform, PositiveQuantity, camel_path
from gpufleet.infra.areas.gpu_pools import configured_placements


class RayOperatorConfig(ConfigModel):
    """The KubeRay operator (chart ``kuberay-operator`` 1.7.0) on the system nodes."""

    namespace: DnsLabel = DEFAULT_NAMESPACE
    """Namespace of the operator. Default ``kuberay-system``."""
    replicas: int = Field(2, ge=1, le=5)
    """Operator replicas (leader election). Default 2."""
    reconcile_concurrency: int = Field(1, ge=1, le=64)
    """Parallel reconciles. Default 1."""
    service_monitor: bool = False
    """Create a ServiceMonitor for the operator (needs prometheus-operator). Default false."""


class RayHeadConfig(ConfigModel):
    """The head pod, on CPU nodes (the system node group unless ``nodeSelector`` names others)."""

    cpu: PositiveQuantity = "1"
    """CPU request = limit. Default ``"1"``."""
    memory: PositiveQuantity = "4Gi"
    """Memory request = limit. Default ``4Gi``."""
    shm_size: PositiveQuantity = "1Gi"
    """``/dev/shm`` size. Default ``1Gi``."""
    node_selector: Optional[Labels] = None
    """CPU nodes for the head. Default the system node group."""


class RayWorkerGroupConfig(ConfigModel):
    """A group of identical GPU workers."""

    group_name: str
    """Group name (DNS label, at most 30 characters)."""
    gpus: int = Field(ge=1, le=64)
    """GPUs per worker (units of the pool's GPU resource), request = limit."""
    cpu: PositiveQuantity
    """CPU per worker, request = limit, e.g. ``"8"``."""
    memory: PositiveQuantity
    """Memory per worker, request = limit, e.g. ``64Gi`` (includes ``/dev/shm``)."""
    min_replicas: int = Field(0, ge=0, le=1000)
    """Workers kept when idle. Default 0."""
    max_replicas: int = Field(1, ge=1, le=1000)
    """Most workers the autoscaler starts. Default 1."""
    shm_size: PositiveQuantity = "8Gi"
    """``/dev/shm`` per worker. Default ``8Gi``."""
    pool: Optional[DnsLabel] = None
    """GPU pool of this group. Default the cluster's ``pool``."""
    spread: bool = True
    """Prefer one worker of the group per node. Default true."""


class _RayWorkload(ConfigModel):
    name: DnsLabel
    """Object name (DNS label, at most 47 characters)."""
    team: DnsLabel
    """Team (= namespace) that owns it: its quota, queue and model cache apply."""
    pool: DnsLabel
    """GPU pool of the worker groups (``gpufleet:gpuPools`` name)."""
    image: Optional[ImageRef] = None
    """Ray image, pinned by tag or digest (``latest`` is refused in prod). Default ``rayproject/ray:<rayVersion>-py312-gpu``."""
    ray_version: str = RAY_VERSION
    """Ray version of the image. Default the version gpufleet is tested with."""
    head: RayHeadConfig = RayHeadConfig()
    """The head pod."""
    worker_groups: tuple[RayWorkerGroupConfig, ...]
    """GPU worker groups, at least one."""
    startup_seconds: int = Field(300, ge=10, le=3600)
    """Worst-case raylet start time; the startup probe allows twice this. Default 300."""
    weights: Optional[bool] = None
    """Mount the team's model-cache claim on the workers: ``true`` requires it, ``false`` never.
    Default: mount it when ``gpufleet:modelCache`` covers the team."""

    @model_validator(mode="after")
    def _groups(self) -> "_RayWorkload":
        if not self.worker_groups:
            raise ValueError("workerGroups: define at least one worker group")
        return self


class RayClusterConfig(_RayWorkload):
    """A RayCluster for training or batch inference, submitted to the team's Kueue queue."""

    role: Literal["training", "batch"] = "batch"
    """PriorityClass role of the pods. Default ``batch``."""
    autoscaling: bool = True
    """Ray autoscaler between each group's min and max replicas. Default true."""
    idle_timeout_seconds: int = Field(300, ge=30, le=86400)
    """Idle time before a worker is removed. Default 300."""
    queue: bool = True
    """Submit to the team's Kueue LocalQueue. Default true."""


class RayJobConfig(_RayWorkload):
    """A RayJob: ``entrypoint`` on its own Ray cluster, deleted after the job, submitted to the team's
    Kueue queue (Kueue suspends it until the whole cluster fits the team's quota)."""

    entrypoint: str = Field(min_length=1)
    """Command the job runs, e.g. ``python /app/train.py``; its driver runs in the head pod."""
    runtime_env: dict[str, Any] = {}
    """Ray runtime environment (``pip``, ``env_vars``, ``working_dir`` URI, ...). Default none."""
    role: Literal["training", "batch"] = "batch"
    """PriorityClass role of the pods. Default ``batch``."""
    autoscaling: bool = False
    """Ray autoscaler between each group's min and max replicas (an elastic Kueue workload).
    Default false: the whole cluster (every group at ``maxReplicas``) is admitted at once."""
    idle_timeout_seconds: int = Field(300, ge=30, le=86400)
    """Idle time before a worker is removed (with ``autoscaling``). Default 300."""
    ttl_seconds_after_finished: int = Field(60, ge=0, le=86400)
    """Seconds the finished job's cluster is kept before deletion. Default 60."""
    active_deadline_seconds: Optional[int] = Field(None, ge=60, le=30 * 86400)
    """Most seconds the job may run. Default no limit."""
    queue: bool = True
    """Submit to the team's Kueue LocalQueue. Default true."""

    @field_validator("name")
    @classmethod
    def _job_name(cls, value: str) -> str:
        if len(value) > MAX_JOB_NAME:
            raise ValueError(f"at most {MAX_JOB_NAME} characters (KubeRay appends a suffix for the job's cluster)")
        return value


class ServeDeploymentConfig(ConfigModel):
    """GPU and autoscaling settings of one Serve deployment."""

    name: str
    """Deployment name as in the application code."""
    gpus: float = Field(1, gt=0, le=64)
    """GPUs per replica. Default 1."""
    min_replicas: int = Field(1, ge=0)
    """Fewest replicas Ray Serve autoscaling keeps. Default 1."""
    max_replicas: int = Field(1, ge=1)
    """Most replicas Ray Serve autoscaling starts. Default 1."""
    target_ongoing_requests: int = Field(2, ge=1)
    """Ongoing requests per replica Ray Serve autoscaling aims for. Default 2."""
    max_ongoing_requests: int = Field(8, ge=1)
    """Requests a replica takes at once before callers queue. Default 8."""


class ServeApplicationConfig(ConfigModel):
    """One Ray Serve application."""

    name: str
    """Application name."""
    import_path: str
    """``module:app`` of the bound application."""
    route_prefix: str = "/"
    """HTTP route. Default ``/``."""
    runtime_env: dict[str, Any] = {}
    """Ray runtime environment. Default none."""
    deployments: tuple[ServeDeploymentConfig, ...] = ()
    """Per-deployment settings. Default none."""


class RayServiceConfig(_RayWorkload):
    """A RayService: Ray Serve applications on a RayCluster built the same way (inference priority)."""

    applications: tuple[ServeApplicationConfig, ...]
    """Serve applications, at least one."""
    idle_timeout_seconds: int = Field(600, ge=30, le=86400)
    """Idle time before a worker is removed. Default 600."""
    queue: bool = False
    """Submit to the team's Kueue LocalQueue. Default false (serving is not queued)."""


class RaySection(ConfigModel):
    """``gpufleet:ray``: the KubeRay operator and the stack's Ray clusters and services."""

    enabled: bool = False
    """Install the KubeRay operator. Default false."""
    operator: RayOperatorConfig = RayOperatorConfig()
    """Operator settings."""
    clusters: tuple[RayClusterConfig, ...] = ()
    """RayClusters. Default none."""
    jobs: tuple[RayJobConfig, ...] = ()
    """RayJobs. Default none."""
    services: tuple[RayServiceConfig, ...] = ()
    """RayServices. Default none."""


# -- checks across sections --------------------------------------------------------------------------

def _config_problem(prefix: str, error: Exception) -> str:
    """A component argument error → the stack-config path it comes from, e.g.
    ``gpufleet:ray.clusters[0].workerGroups[0].gpus: (9) exceeds ...``."""
    message = str(error).split(": ", 1)[-1]
    match = re.match(r"^([a-z_]+(\[\d+\])?(\.[a-z_]+(\[\d+\])?)*)( .*)$", message)
    if match and ("_" in match.group(1) or "[" in match.group(1) or "." in match.group(1)
                  or match.group(1) in ("image", "name")):
        return f"{prefix}.{camel_path(match.group(1))}:{match.group(5)}"
    return f"{prefix}: {message}"


def _component_args(workload: _RayWorkload, placements: dict[str, GpuPlacement]) -> dict[str, Any]:
    """The component arguments of a cluster or service, except namespace, queue and weights."""
    head: dict[str, Any] = {"cpu": workload.head.cpu, "memory": workload.head.memory, "shm_size": workload.head.shm_size}
    if workload.head.node_selector is not None:
        head["node_selector"] = dict(workload.head.node_selector)
    groups = []
    for group in workload.worker_groups:
        entry: dict[str, Any] = {
            "group_name": group.group_name,
            "gpus": group.gpus,
            "cpu": group.cpu,
            "memory": group.memory,
            "min_replicas": group.min_replicas,
            "max_replicas": group.max_replicas,
            "shm_size": group.shm_size,
            "spread": group.spread,
        }
        if group.pool is not None:
            entry["placement"] = placements[group.pool]
        groups.append(entry)
    args: dict[str, Any] = {
        "placement": placements[workload.pool],
        "worker_groups": groups,
        "ray_version": workload.ray_version,
        "head": head,
        "startup_seconds": workload.startup_seconds,
        "idle_timeout_seconds": workload.idle_timeout_seconds,
    }
    if workload.image is not None:
        args["image"] = workload.image
    if isinstance(workload, RayClusterConfig):
        args.update(role=workload.role, autoscaling=workload.autoscaling)
    elif isinstance(workload, RayJobConfig):
        args.update(role=workload.role, autoscaling=workload.autoscaling, entrypoint=workload.entrypoint,
                    runtime_env=dict(workload.runtime_env),
                    ttl_seconds_after_finished=workload.ttl_seconds_after_finished)
        if workload.active_deadline_seconds is not None:
            args["active_deadline_seconds"] = workload.active_deadline_seconds
    else:
        args["applications"] = [
            {
                "name": app.name,
                "import_path": app.import_path,
                "route_prefix": app.route_prefix,
                "runtime_env": dict(app.runtime_env),
                "deployments": [d.model_dump() for d in app.deployments],
            }
            for app in workload.applications
        ]
    return args


def _has_queue(config: Any, team: str) -> bool:
    """Tenancy gives a team a LocalQueue when Kueue is on and the team has GPU quotas."""
    teams = {t.name: t for t in config.teams}
    return bool(config.kueue.enabled and config.gpu_pools and team in teams and teams[team].gpu_quotas)


def cross_check(config) -> list[str]:
    """Teams and pools exist, the operator is enabled, queues and caches exist where required, and
    every cluster, job and service passes its component's checks (GPUs per worker against the pool,
    Kueue's RayJob rules, ...)."""
    section = config.ray
    problems: list[str] = []
    teams = [team.name for team in config.teams]
    pools = [pool.name for pool in config.gpu_pools]
    placements = configured_placements(config)
    covered = set(config.model_cache.covered_teams(config))
    names: dict[tuple[str, str], str] = {}
    workloads = [("clusters", i, w) for i, w in enumerate(section.clusters)]
    workloads += [("jobs", i, w) for i, w in enumerate(section.jobs)]
    workloads += [("services", i, w) for i, w in enumerate(section.services)]
    if workloads and not section.enabled:
        problems.append("gpufleet:ray.enabled: clusters, jobs and services need the KubeRay operator (set enabled: true)")
    for kind, index, workload in workloads:
        path = f"gpufleet:ray.{kind}[{index}]"
        known = True
        if workload.team not in teams:
            problems.append(f"{path}.team: {workload.team!r} is not a team (gpufleet:teams names: {', '.join(teams) or 'none'})")
            known = False
        for pool_path, pool in [(f"{path}.pool", workload.pool)] + [
            (f"{path}.workerGroups[{j}].pool", g.pool) for j, g in enumerate(workload.worker_groups) if g.pool is not None
        ]:
            if pool not in pools:
                problems.append(f"{pool_path}: {pool!r} is not a GPU pool (gpufleet:gpuPools names: {', '.join(pools) or 'none'})")
                known = False
        key = (workload.team, workload.name)
        if key in names:
            problems.append(f"{path}.name: {workload.name!r} is already {names[key]} in namespace {workload.team!r}")
        names.setdefault(key, path)
        if workload.queue and known and not _has_queue(config, workload.team):
            problems.append(
                f"{path}.queue: team {workload.team!r} has no Kueue LocalQueue (needs gpuQuotas and gpufleet:kueue.enabled); "
                f"set queue: false"
            )
        if workload.weights and workload.team not in covered:
            problems.append(f"{path}.weights: gpufleet:modelCache does not cover team {workload.team!r}")
        if not known or any(p not in placements for p in [workload.pool] + [g.pool for g in workload.worker_groups if g.pool]):
            continue
        args = _component_args(workload, placements)
        if workload.queue and known and _has_queue(config, workload.team):
            args["queue_name"] = workload.team  # Kueue's limits on queued objects apply
        try:
            if kind == "jobs":
                plan_job({**args, "namespace": workload.team, "job_name": workload.name}, workload.name, name="ray")
            elif kind == "clusters":
                plan_cluster({**args, "namespace": workload.team}, workload.name, name="ray",
                             role_default="batch", serve=False, idle_default=300)
            else:
                plan = plan_cluster({**args, "namespace": workload.team}, workload.name, name="ray",
                                    role_default="inference", serve=True, idle_default=600)
                serve_config(args["applications"], worker_capacity(plan), name="ray")
        except (ValueError, TypeError) as error:
            problems.append(_config_problem(path, error))
    return problems


# -- composition ---------------------------------------------------------------------------------------

def compose(platform: Platform) -> None:
    """The operator, then each cluster, job and service in its team's namespace, after the operator,
    the PriorityClasses, Kueue and the model cache."""
    config = platform.config
    section = config.ray
    if not section.enabled:
        return
    operator = KubeRayOperator(
        "kuberay",
        {
            "namespace": section.operator.namespace,
            "replicas": section.operator.replicas,
            "reconcile_concurrency": section.operator.reconcile_concurrency,
            "service_monitor": section.operator.service_monitor,
        },
        opts=platform.opts,
    )
    platform.components["kuberay"] = operator
    wait_for = [platform.components[n] for n in ("kuberay", "priority-classes", "kueue", "model-cache")
                if n in platform.components]
    for workload in (*section.clusters, *section.jobs, *section.services):
        args = _component_args(workload, platform.placements)
        args["wait_for"] = wait_for
        namespace = platform.namespaces.get(workload.team)
        # The namespace's name as an output of the Namespace: the workload waits for it.
        args["namespace"] = (
            namespace.metadata.apply(lambda m, team=workload.team: (m or {}).get("name", team) if isinstance(m, dict) else m.name)
            if namespace is not None else workload.team
        )
        if workload.queue and workload.team in platform.local_queues:
            args["queue_name"] = platform.local_queues[workload.team]
        claim = platform.model_caches.get(workload.team)
        if claim and workload.weights is not False:
            args["weights_claim"] = claim
        if isinstance(workload, RayClusterConfig):
            args["cluster_name"] = workload.name
            RayCluster(f"ray-{workload.team}-{workload.name}", args, opts=platform.opts)
        elif isinstance(workload, RayJobConfig):
            args["job_name"] = workload.name
            RayJob(f"rayjob-{workload.team}-{workload.name}", args, opts=platform.opts)
        else:
            args["service_name"] = workload.name
            RayService(f"ray-{workload.team}-{workload.name}", args, opts=platform.opts)
