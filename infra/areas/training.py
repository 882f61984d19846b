"""Stack area ``training``: Kubeflow Trainer and the multi-node TrainJobs teams run on GPU pools
(``gpufleet:training``).

Each job names its team (its namespace) and GPU pool; composition takes the pool's placement
(tolerations, selector, EFA), the team's Kueue LocalQueue and, unless the job names another claim,
the team's model-cache claim for checkpoints. The cross-checks refuse, with the field's path, what
would never run: an unknown team or pool, a job larger than the pool's limit or than the team's GPU
quota on that pool can ever admit (Kueue would keep it pending for ever), a queued job without a
LocalQueue or with Kueue's TrainJob integration switched off, checkpoints without a claim, and
whatever :func:`~gpufleet.components.training_job.train_job_spec` refuses (GPUs per node above a
node's, ``/dev/shm`` not below memory, a shared-GPU pool, ...).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Literal, Optional

from pydantic import Field

from gpufleet.components.kubeflow_trainer import DEFAULT_NAMESPACE, DEFAULT_RUNTIME_IMAGE, KubeflowTrainer
from gpufleet.components.training_job import TrainingJob, train_job_spec
from gpufleet.infra.areas.base import ConfigModel, DnsLabel, Platform, camel_path
from gpufleet.infra.areas.gpu_pools import configured_placements
from gpufleet.policies.core import parse_quantity

TRAINJOB_FRAMEWORK = "trainer.kubeflow.org/trainjob"


class TrainerConfig(ConfigModel):
    """The Kubeflow Trainer controller (chart ``kubeflow-trainer`` 2.3.0, with JobSet 0.12.0)."""

    namespace: DnsLabel = DEFAULT_NAMESPACE
    """Namespace of the controllers. Default ``kubeflow-system``."""
    replicas: int = Field(2, ge=1, le=5)
    """Controller replicas (leader election). Default 2."""
    runtime_image: str = DEFAULT_RUNTIME_IMAGE
    """Default image of the ``gpufleet-torch-distributed`` runtime, pinned. Default Trainer's PyTorch image."""
    max_restarts: int = Field(3, ge=0, le=100)
    """Times a failed job's nodes are all recreated (each restart resumes from the last checkpoint). Default 3."""


class CheckpointConfig(ConfigModel):
    """Where a job writes and resumes checkpoints."""

    claim: Optional[DnsLabel] = None
    """PersistentVolumeClaim in the team namespace (e.g. an FSx for Lustre claim). Default the team's
    model-cache claim (``gpufleet:modelCache``)."""
    path: Optional[str] = None
    """Directory inside the claim, passed as ``CHECKPOINT_DIR``. Default ``checkpoints/<name>``."""


class TrainingJobConfig(ConfigModel):
    """A multi-node PyTorch TrainJob, submitted to the team's Kueue queue and admitted as one gang."""

    name: DnsLabel
    """TrainJob name (at most 40 characters)."""
    team: DnsLabel
    """Team (= namespace) that owns it: its quota, queue and model cache apply."""
    pool: DnsLabel
    """GPU pool (``gpufleet:gpuPools`` name); an EFA pool gives the pods its EFA interfaces."""
    image: str
    """Training image (PyTorch; libfabric and aws-ofi-nccl for EFA), pinned by tag or digest."""
    command: tuple[str, ...] = Field(min_length=1)
    """Command of each node, e.g. ``[torchrun, /app/train.py]``."""
    args: tuple[str, ...] = ()
    """Arguments. Default none."""
    num_nodes: int = Field(2, ge=1, le=64)
    """Nodes (one pod each). Default 2."""
    gpus_per_node: Optional[int] = Field(None, ge=1)
    """GPUs per node, request = limit. Default all GPUs of the pool's largest instance type."""
    cpu: str
    """CPU per node, request = limit, e.g. ``"90"``."""
    memory: str
    """Memory per node, request = limit, e.g. ``1000Gi`` (includes ``/dev/shm``)."""
    shm_size: str = "64Gi"
    """``/dev/shm`` per node. Default ``64Gi``."""
    checkpoint: CheckpointConfig = CheckpointConfig()
    """Checkpoint claim and directory."""
    env: dict[str, str] = {}
    """Extra environment. Default none."""
    role: Literal["training", "batch"] = "training"
    """Kueue WorkloadPriorityClass role. Default ``training``."""
    queue: bool = True
    """Submit to the team's Kueue LocalQueue (gang admission). Default true."""
    active_deadline_seconds: Optional[int] = Field(None, ge=60, le=30 * 86400)
    """Most seconds a run may take. Default no limit."""


class TrainingSection(ConfigModel):
    """``gpufleet:training``: Kubeflow Trainer and the stack's TrainJobs."""

    enabled: bool = False
    """Install Kubeflow Trainer (and JobSet). Default false."""
    trainer: TrainerConfig = TrainerConfig()
    """Controller settings."""
    jobs: tuple[TrainingJobConfig, ...] = ()
    """TrainJobs. Default none."""


# -- checks across sections --------------------------------------------------------------------------

def _config_problem(prefix: str, error: Exception) -> str:
    """A component error → the stack-config path of the argument it names, e.g.
    ``gpufleet:training.jobs[0].gpusPerNode: (16) exceeds ...``."""
    message = str(error).split(": ", 1)[-1]
    match = re.match(r"^([a-z_]+)( .*)$", message)
    fields = {"gpus_per_node", "shm_size", "memory", "cpu", "image", "command", "env", "job_name", "num_nodes",
              "checkpoint_path", "checkpoint_claim", "active_deadline_seconds", "placement"}
    if match and match.group(1) in fields:
        field = {"job_name": "name", "checkpoint_path": "checkpoint.path", "checkpoint_claim": "checkpoint.claim",
                 "placement": "pool"}.get(match.group(1), match.group(1))
        return f"{prefix}.{camel_path(field)}:{match.group(2)}"
    return f"{prefix}: {message}"


def _has_queue(config: Any, team: str) -> bool:
    teams = {t.name: t for t in config.teams}
    return bool(config.kueue.enabled and config.gpu_pools and team in teams and teams[team].gpu_quotas)


def _component_args(job: TrainingJobConfig, placement: Any, claim: str) -> dict[str, Any]:
    args: dict[str, Any] = {
        "placement": placement,
        "job_name": job.name,
        "image": job.image,
        "command": list(job.command),
        "num_nodes": job.num_nodes,
        "cpu": job.cpu,
        "memory": job.memory,
        "shm_size": job.shm_size,
        "checkpoint_claim": claim,
        "env": dict(job.env),
        "role": job.role,
    }
    if job.args:
        args["args"] = list(job.args)
    if job.gpus_per_node is not None:
        args["gpus_per_node"] = job.gpus_per_node
    if job.checkpoint.path is not None:
        args["checkpoint_path"] = job.checkpoint.path
    if job.active_deadline_seconds is not None:
        args["active_deadline_seconds"] = job.active_deadline_seconds
    return args


def cross_check(config: Any) -> list[str]:
    """Teams, pools, queues and claims exist; each job fits its pool and the team's quota there; the
    component accepts it."""
    section = config.training
    problems: list[str] = []
    if section.jobs and not section.enabled:
        problems.append("gpufleet:training.enabled: jobs need Kubeflow Trainer (set enabled: true)")
    teams = {t.name: t for t in config.teams}
    pools = {p.name: p for p in config.gpu_pools}
    placements = configured_placements(config)
    covered = set(config.model_cache.covered_teams(config))
    seen: dict[tuple[str, str], int] = {}
    queued = False
    for index, job in enumerate(section.jobs):
        path = f"gpufleet:training.jobs[{index}]"
        key = (job.team, job.name)
        if key in seen:
            problems.append(f"{path}.name: {job.name!r} is already jobs[{seen[key]}] in namespace {job.team!r}")
        seen.setdefault(key, index)
        if job.team not in teams:
            problems.append(f"{path}.team: {job.team!r} is not a team (gpufleet:teams names: {', '.join(teams) or 'none'})")
        if job.pool not in pools:
            problems.append(f"{path}.pool: {job.pool!r} is not a GPU pool (gpufleet:gpuPools names: {', '.join(pools) or 'none'})")
        if job.team not in teams or job.pool not in placements:
            continue
        claim = job.checkpoint.claim
        if claim is None:
            if job.team not in covered:
                problems.append(f"{path}.checkpoint.claim: gpufleet:modelCache does not cover team {job.team!r}; "
                                "name the claim checkpoints go to")
                continue
            claim = config.model_cache.claim_name
        placement = placements[job.pool]
        try:
            _, _, spec = train_job_spec(_component_args(job, placement, claim), job.name, name="training")
        except (ValueError, TypeError) as error:
            problems.append(_config_problem(path, error))
            continue
        gpus = spec["trainer"]["numNodes"] * spec["trainer"]["numProcPerNode"]
        limit = pools[job.pool].limits.gpus
        if gpus > limit:
            problems.append(f"{path}.numNodes: {job.num_nodes} nodes × {spec['trainer']['numProcPerNode']} GPUs = {gpus} GPUs, "
                            f"more than pool {job.pool!r} may hold (gpufleet:gpuPools limits.gpus {limit})")
            continue
        if job.queue:
            queued = True
            if not _has_queue(config, job.team):
                problems.append(f"{path}.queue: team {job.team!r} has no Kueue LocalQueue (needs gpuQuotas and "
                                "gpufleet:kueue.enabled); set queue: false")
                continue
            quota = next((q for q in teams[job.team].gpu_quotas if q.pool == job.pool), None)
            if quota is None:
                problems.append(f"{path}.pool: team {job.team!r} has no gpuQuotas entry for pool {job.pool!r}: "
                                "Kueue would never admit the job")
                continue
            ceiling = limit if quota.borrowing_limit is None else min(limit, quota.gpus + quota.borrowing_limit)
            if gpus > ceiling:
                problems.append(f"{path}.numNodes: the job needs {gpus} GPUs at once (gang admission) but team "
                                f"{job.team!r} can hold at most {ceiling} on pool {job.pool!r} (gpuQuotas gpus "
                                f"{quota.gpus} + borrowingLimit {quota.borrowing_limit}): Kueue would never admit it")
                continue
        problems += _cpu_memory_problems(config, path, job, teams[job.team], placements)
    if queued and config.kueue.enabled and TRAINJOB_FRAMEWORK not in config.kueue.frameworks:
        problems.append(f"gpufleet:kueue.frameworks: queued training jobs need Kueue's TrainJob integration "
                        f"({TRAINJOB_FRAMEWORK!r})")
    return problems


def _cpu_memory_problems(config: Any, path: str, job: TrainingJobConfig, team: Any, placements: Any) -> list[str]:
    """All nodes' CPU and memory must fit the team's namespace ResourceQuota (else pods are refused)
    and, queued, its Kueue cpu/memory quota (never borrowed: else the job is never admitted)."""
    from gpufleet.infra.areas.tenancy_capacity import kueue_cpu_memory

    cpu = parse_quantity(job.cpu) * job.num_nodes
    memory_gib = parse_quantity(job.memory) * job.num_nodes / Decimal(2) ** 30
    limits = [("the namespace ResourceQuota", team.cpu, team.memory_gib)]
    if job.queue:
        split = kueue_cpu_memory(config, team, placements)
        limits.append(("the team's Kueue cpu/memory quota", split.cpu, split.memory_gib))
    for what, cores, gib in limits:
        if cpu > cores or memory_gib > gib:
            return [f"{path}.numNodes: {job.num_nodes} nodes request {cpu.normalize():f} CPUs and "
                    f"{memory_gib.normalize():f} GiB, more than {what} of team {team.name!r} allows "
                    f"({cores} CPUs, {gib} GiB: gpufleet:teams cpu/memoryGib)"]
    return []


# -- composition ---------------------------------------------------------------------------------------

def compose(platform: Platform) -> None:
    """The trainer (and its runtime), then each job in its team's namespace after the trainer, the
    PriorityClasses, Kueue and the model cache."""
    config = platform.config
    section = config.training
    if not section.enabled:
        return
    trainer = KubeflowTrainer(
        "kubeflow-trainer",
        {
            "namespace": section.trainer.namespace,
            "replicas": section.trainer.replicas,
            "runtime_image": section.trainer.runtime_image,
            "max_restarts": section.trainer.max_restarts,
        },
        opts=platform.opts,
    )
    platform.components["kubeflow-trainer"] = trainer
    wait_for = [platform.components[n] for n in ("kubeflow-trainer", "priority-classes", "kueue", "model-cache")
                if n in platform.components]
    for job in section.jobs:
        claim = job.checkpoint.claim or platform.model_caches[job.team]
        args = _component_args(job, platform.placements[job.pool], claim)
        namespace = platform.namespaces.get(job.team)
        args["namespace"] = (
            namespace.metadata.apply(lambda m, team=job.team: (m or {}).get("name", team) if isinstance(m, dict) else m.name)
            if namespace is not None else job.team
        )
        if job.queue and job.team in platform.local_queues:
            args["queue_name"] = platform.local_queues[job.team]
        args["wait_for"] = wait_for
        TrainingJob(f"trainjob-{job.team}-{job.name}", args, opts=platform.opts)
