"""Stack area ``multi_node_serving`` (``gpufleet:serving.leaderWorkerSet`` and
``gpufleet:serving.multiNodeServices``): the LeaderWorkerSet controller and the models served by
vLLM across GPU nodes.

Each service names its ``team`` (namespace) and a whole-GPU ``pool``; ``storage: pvc://<path>`` is a
path on the team's model cache (filled by ``weightsSource`` or ``preloaded``), like the
InferenceServices'. Its GPUs (``groups × nodes × gpusPerNode``) are held outside Kueue unless
``queued``: they then count, with the KServe predictors, against the pool's ``limits.gpus`` next to
the teams' nominal Kueue quotas on it, and against the team's namespace ResourceQuota (GPUs, cpu and
memory, which its Kueue queue no longer gets). A ``queued`` service is admitted group by group
through the team's LocalQueue: one group must fit the team's quota on the pool (nominal plus
borrowing), and its expected load time must end before Kueue's ``podsReadyTimeoutMinutes`` (or
Kueue evicts the group while it loads, forever). ``hf://`` storage is downloaded by every pod into
its node's root volume, so weights at least that large are refused. Each problem names its
``gpufleet:serving.multiNodeServices[i]`` field.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Mapping, Optional

import pulumi

from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.components.hf_token import SECRET_KEY as HF_TOKEN_KEY
from gpufleet.components.hf_token import SECRET_NAME as HF_TOKEN_SECRET
from gpufleet.components.hf_token import HuggingFaceToken
from gpufleet.components.kueue import resources_per_gpu
from gpufleet.components.leader_worker_set import LeaderWorkerSetController
from gpufleet.components.model_loader import loader_job_spec
from gpufleet.components.multi_node_inference import (
    DEFAULT_EXCLUSIVE_TOPOLOGY,
    TYPE,
    MultiNodeInferenceService,
    MultiNodePlan,
    plan_multi_node_service,
)
from gpufleet.infra.areas.base import Platform, camel_path
from gpufleet.infra.areas.gpu_pools import configured_placements
from gpufleet.infra.areas.multi_node_config import MultiNodeServiceConfig, lws_enabled

PREFIX = "gpufleet:serving"
KUEUE_FRAMEWORKS = ("pod", "leaderworkerset.x-k8s.io/leaderworkerset")
"""Kueue 0.19 integrations a queued LeaderWorkerSet needs (the LWS integration builds on ``pod``)."""


def component_args(service: MultiNodeServiceConfig, placement: GpuPlacement, claim: Optional[str],
                   queue: Optional[str] = None) -> dict[str, Any]:
    """The :class:`MultiNodeInferenceServiceArgs` of one configured service (``claim``: the team's
    model-cache claim; ``queue``: its LocalQueue when ``queued``)."""
    storage = service.storage
    if storage.startswith("pvc://"):
        storage = f"pvc://{claim}/{storage[len('pvc://'):].lstrip('/')}"
    args: dict[str, Any] = {
        "namespace": service.team,
        "placement": placement,
        "service_name": service.name,
        "model_name": service.model,
        "storage_uri": storage,
        "nodes": service.nodes,
        "groups": service.groups,
        "cpu": service.cpu,
        "memory": service.memory,
        "shm_size": service.shm_size,
        "extra_args": list(service.extra_args),
        "exclusive_topology": service.exclusive_topology,
        "drain_seconds": service.drain_seconds,
        "termination_grace_seconds": service.termination_grace_seconds,
    }
    optional = {"image": service.image, "gpus_per_node": service.gpus_per_node, "max_model_len": service.max_model_len,
                "gpu_memory_utilization": service.gpu_memory_utilization, "weights_gib": service.weights_gib,
                "load_seconds": service.load_seconds, "weights_source": service.weights_source,
                "queue_name": queue}
    args.update({key: value for key, value in optional.items() if value is not None})
    if service.hf_token_secret is not None:
        args["hf_token_secret"] = {"name": service.hf_token_secret.name, "key": service.hf_token_secret.key}
    if service.disruption_budget is not None:
        args["disruption_budget"] = service.disruption_budget.model_dump(exclude_none=True)
    return args


def plans(config: Any) -> list[tuple[int, MultiNodeServiceConfig, MultiNodePlan]]:
    """The plan of every configured service the component accepts (the others are
    :func:`cross_check`'s problems), with its index."""
    placements = configured_placements(config)
    claim = config.model_cache.claim_name if config.model_cache.enabled else None
    result = []
    for i, service in enumerate(config.serving.multi_node_services):
        if service.pool not in placements:
            continue
        try:
            plan = plan_multi_node_service(service.name, component_args(
                service, placements[service.pool], claim or "model-weights",
                "queue" if service.queued else None))
        except (ValueError, TypeError):
            continue
        result.append((i, service, plan))
    return result


def gpu_units_outside_kueue(config: Any, pool: str) -> list[tuple[str, int]]:
    """``(service, units of the pool's GPU resource)`` of every service on ``pool`` that Kueue does
    not admit (not ``queued``): all its groups at once."""
    return [(service.name, plan.gpus) for _, service, plan in plans(config)
            if service.pool == pool and not service.queued]


def namespace_gpus(config: Any, team: str, placements: Mapping[str, GpuPlacement]) -> dict[str, int]:
    """GPU resource → units the team's services outside Kueue hold (its namespace ResourceQuota must
    allow them besides what Kueue admits)."""
    held: dict[str, int] = {}
    for _, service, plan in plans(config):
        if service.team == team and not service.queued and service.pool in placements:
            resource = placements[service.pool].quota_resource.removeprefix("requests.")
            held[resource] = held.get(resource, 0) + plan.gpus
    return held


def _pod_requests(pod: Mapping[str, Any]) -> tuple[Decimal, Decimal]:
    from gpufleet.policies.core import parse_quantity

    cpu = memory = Decimal(0)
    for container in pod.get("containers", ()):
        wanted = container.get("resources", {}).get("requests", {})
        cpu += parse_quantity(wanted.get("cpu")) or Decimal(0)
        memory += parse_quantity(wanted.get("memory")) or Decimal(0)
    return cpu, memory


def held_outside_kueue(config: Any, team: str) -> list[tuple[str, Decimal, Decimal]]:
    """(what, cores, bytes) the team's services outside Kueue request from its namespace
    ResourceQuota: every pod of every group, and each weights loader Job."""
    held = []
    for _, service, plan in plans(config):
        if service.team != team:
            continue
        if not service.queued:
            leader_cpu, leader_memory = _pod_requests(plan.leader["spec"])
            worker_cpu, worker_memory = _pod_requests(plan.worker["spec"])
            workers = plan.nodes - 1
            held.append((f"{service.name} ({plan.groups} × {plan.nodes} pods)",
                         plan.groups * (leader_cpu + workers * worker_cpu),
                         plan.groups * (leader_memory + workers * worker_memory)))
        if plan.loader is not None:
            pod = loader_job_spec(plan.loader)["template"]["spec"]
            held.append((f"{plan.loader['job_name']} (loader Job)", *_pod_requests(pod)))
    return held


def kueue_frameworks(config: Any, configured: tuple[str, ...]) -> list[str]:
    """Kueue's integrations: ``configured`` plus :data:`KUEUE_FRAMEWORKS` when a service is queued."""
    frameworks = list(configured)
    if any(service.queued for service in config.serving.multi_node_services):
        frameworks += [f for f in KUEUE_FRAMEWORKS if f not in frameworks]
    return frameworks


_CONFIG_FIELDS = {"gpus": "gpus_per_node", "storage_uri": "storage", "service_name": "name", "namespace": "team", "model_name": "model",
                  "queue_name": "queued", "efa_interfaces": "pool", "placement": "pool"}
_SERVICE_FIELDS = frozenset(MultiNodeServiceConfig.model_fields)


def _field_problem(path: str, error: Exception) -> str:
    """A component error → ``<path>.<field>: <problem>``, in the stack file's spelling."""
    message = str(error).removeprefix(f"{TYPE}: ")
    match = re.match(r"^([a-z_]+(?:\.[a-z_]+)*)\b:? ?(.*)$", message)
    if not match:
        return f"{path}: {message}"
    field, rest = match.groups()
    if rest.startswith("× "):  # "groups × nodes × gpus_per_node (...)": the sum is groups'
        rest = f"{field} {rest}"
    rest = re.sub(r"\b[a-z]+(?:_[a-z]+)+\b",
                  lambda word: camel_path(word.group(0)) if word.group(0) in _SERVICE_FIELDS else word.group(0), rest)
    return f"{path}.{camel_path(_CONFIG_FIELDS.get(field, field))}: {rest}"


def cross_check(config: Any) -> list[str]:
    """Unknown teams and pools, duplicate names, services the component refuses, weights and token
    problems, queued services Kueue could never admit in time, more exclusive groups than zones, and
    pools whose GPU limit the services, predictors and Kueue quotas together exceed."""
    section = config.serving
    services = section.multi_node_services
    problems: list[str] = []
    if not services:
        return problems
    if section.leader_worker_set.enabled is False:
        problems.append(f"{PREFIX}.leaderWorkerSet.enabled: multiNodeServices need the LeaderWorkerSet controller")
    teams = {team.name: team for team in config.teams}
    pools = {pool.name: pool for pool in config.gpu_pools}
    placements = configured_placements(config)
    cached = set(config.model_cache.covered_teams(config)) if config.model_cache.enabled else set()
    taken = {(s.team, s.name): f"{PREFIX}.inferenceServices[{j}]" for j, s in enumerate(section.inference_services)}
    exclusive: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for i, service in enumerate(services):
        path = f"{PREFIX}.multiNodeServices[{i}]"
        team = teams.get(service.team)
        if team is None:
            problems.append(f"{path}.team: {service.team!r} is not a team (gpufleet:teams[].name: {', '.join(teams) or 'none'})")
        if service.pool not in pools:
            problems.append(f"{path}.pool: {service.pool!r} is not a GPU pool "
                            f"(gpufleet:gpuPools[].name: {', '.join(pools) or 'none'})")
        first = taken.setdefault((service.team, service.name), f"{path}")
        if first != path:
            problems.append(f"{path}.name: {service.name!r} is already served in namespace {service.team!r} ({first})")
        problems += _weights_problems(path, service, cached)
        problems += _token_problems(path, service, has_token=config.hf_token is not None)
        pool = pools.get(service.pool)
        if service.storage.startswith("hf://") and pool is not None and service.weights_gib is not None \
                and service.weights_gib >= pool.root_volume.size_gib:
            problems.append(f"{path}.storage: with hf:// every pod downloads the whole model ({service.weights_gib} GiB) "
                            f"into its node's root volume, but pool {service.pool!r} has rootVolume.sizeGib "
                            f"{pool.root_volume.size_gib}: use pvc:// storage on the model cache")
        if service.exclusive_topology is not None:
            exclusive.setdefault((service.team, service.exclusive_topology), []).append((path, service.groups))
        plan = None
        if service.pool in placements:
            queue = "queue" if service.queued else None
            try:
                plan = plan_multi_node_service(service.name, component_args(
                    service, placements[service.pool], config.model_cache.claim_name, queue))
            except (ValueError, TypeError) as error:
                problems.append(_field_problem(path, error))
        if service.queued and team is not None:
            problems += _queue_problems(config, path, service, team, plan)
    zones = config.network.az_count
    for (team_name, topology), entries in exclusive.items():
        total = sum(groups for _, groups in entries)
        if topology == DEFAULT_EXCLUSIVE_TOPOLOGY and total > zones:
            problems.append(
                f"{entries[-1][0]}.groups: team {team_name!r} runs {total} groups with exclusive placement per "
                f"{topology} (each group takes a zone no other group of the namespace may enter), but "
                f"gpufleet:network.azCount is {zones}: the extra groups would stay Pending; set exclusiveTopology: "
                f"null or fewer groups")
    problems += _pool_limits(config, pools, placements)
    return problems


def _weights_problems(path: str, service: MultiNodeServiceConfig, cached: set[str]) -> list[str]:
    on_claim = service.storage.startswith("pvc://")
    if on_claim and service.team not in cached:
        return [f"{path}.storage: pvc:// reads the team's model cache, but team {service.team!r} has none "
                f"(enable gpufleet:modelCache for it)"]
    if service.weights_source is not None and service.preloaded:
        return [f"{path}.weightsSource: set weightsSource or preloaded: true, not both"]
    if on_claim and service.weights_source is None and not service.preloaded:
        return [f"{path}.weightsSource: is required with pvc:// storage (a new model cache is empty): "
                f"hf://<org>/<model>[@<revision>] to download, or preloaded: true"]
    if not on_claim and service.preloaded:
        return [f"{path}.preloaded: applies to pvc:// storage only, got {service.storage!r}"]
    return []


def _token_problems(path: str, service: MultiNodeServiceConfig, *, has_token: bool) -> list[str]:
    secret = service.hf_token_secret
    if secret is None or secret.name != HF_TOKEN_SECRET:
        return []
    problems = []
    if not has_token:
        problems.append(f"{path}.hfTokenSecret.name: Secret {HF_TOKEN_SECRET!r} is created by gpufleet from "
                        f"gpufleet:hfToken, which is not set: run `pulumi config set --secret hfToken <token>`, or "
                        f"name a Secret you create in namespace {service.team!r}")
    if secret.key != HF_TOKEN_KEY:
        problems.append(f"{path}.hfTokenSecret.key: gpufleet's Secret {HF_TOKEN_SECRET!r} holds the token under key "
                        f"{HF_TOKEN_KEY!r}, got {secret.key!r}")
    return problems


def _queue_problems(config: Any, path: str, service: MultiNodeServiceConfig, team: Any,
                    plan: Optional[MultiNodePlan]) -> list[str]:
    """A queued service needs the team's LocalQueue, a quota on its pool one group fits, and a load
    time inside Kueue's waitForPodsReady timeout."""
    if not config.kueue.enabled or not team.gpu_quotas:
        return [f"{path}.queued: team {service.team!r} has no Kueue queue (gpufleet:kueue.enabled and the team's "
                f"gpuQuotas make one)"]
    quota = next((q for q in team.gpu_quotas if q.pool == service.pool), None)
    if quota is None:
        return [f"{path}.queued: team {service.team!r} has no gpuQuotas entry for pool {service.pool!r}: Kueue would "
                f"never admit a group"]
    if plan is None:
        return []
    problems = []
    group_gpus = plan.nodes * plan.gpus_per_node
    most = quota.gpus + quota.borrowing_limit if quota.borrowing_limit is not None else None
    pool_limit = next(p.limits.gpus for p in config.gpu_pools if p.name == service.pool)
    ceiling = min(x for x in (most, pool_limit) if x is not None) if (most, pool_limit) != (None, None) else None
    if ceiling is not None and group_gpus > ceiling:
        problems.append(f"{path}.nodes: one group needs {plan.nodes} × {plan.gpus_per_node} = {group_gpus} GPUs at "
                        f"once, but team {service.team!r} can hold at most {ceiling} on pool {service.pool!r} "
                        f"(gpuQuotas gpus + borrowingLimit, limits.gpus): Kueue would never admit it")
    timeout = config.kueue.pods_ready_timeout_minutes * 60
    if plan.load_seconds >= timeout:
        problems.append(f"{path}.loadSeconds: a group is expected to take {plan.load_seconds} s to be ready, but "
                        f"Kueue evicts and requeues a workload whose pods are not ready within "
                        f"gpufleet:kueue.podsReadyTimeoutMinutes ({config.kueue.pods_ready_timeout_minutes} min): "
                        f"raise the timeout or do not queue the service")
    return problems


def _pool_limits(config: Any, pools: Mapping[str, Any], placements: Mapping[str, GpuPlacement]) -> list[str]:
    """The services' GPUs outside Kueue, the KServe predictors' and the teams' nominal Kueue quotas on
    a pool must fit its ``limits.gpus`` together."""
    from gpufleet.infra.areas.tenancy_capacity import predictor_units

    problems = []
    for name, pool in pools.items():
        multi = gpu_units_outside_kueue(config, name)
        if not multi or pool.limits.gpus is None or name not in placements:
            continue
        per_gpu = resources_per_gpu(placements[name])
        predictors = [(s.name, predictor_units(s)) for s in config.serving.inference_services if s.pool == name]
        queued = sum(q.gpus for team in config.teams for q in team.gpu_quotas if q.pool == name) \
            if config.kueue.enabled else 0
        total = queued * per_gpu + sum(units for _, units in multi + predictors)
        if total > pool.limits.gpus * per_gpu:
            index = max(i for i, s in enumerate(config.serving.multi_node_services) if s.pool == name)
            parts = ", ".join(f"{service} {units // per_gpu}" for service, units in multi + predictors)
            problems.append(
                f"{PREFIX}.multiNodeServices[{index}].groups: on pool {name!r} the multi-node services and inference "
                f"services ({parts}) plus the teams' nominal Kueue quotas ({queued}) need {total // per_gpu} GPUs, "
                f"above the pool's limits.gpus ({pool.limits.gpus})")
    return problems


def compose(platform: Platform) -> None:
    """The LWS controller, then each service in its team's namespace, after the namespace, the
    controller, the priority classes, the model cache and the ``hf-token`` Secret."""
    section = platform.config.serving
    if not lws_enabled(section):
        return
    controller = LeaderWorkerSetController(
        "lws", {"namespace": section.leader_worker_set.namespace, "replicas": section.leader_worker_set.replicas},
        opts=platform.opts)
    platform.components["lws"] = controller
    hf_tokens = [t for t in (platform.components.get("hf-token"), _hf_token(platform)) if t is not None]
    for service in section.multi_node_services:
        waits_for: list[pulumi.Resource] = [controller]
        if "priority-classes" in platform.components:
            waits_for.append(platform.components["priority-classes"])
        if service.team in platform.namespaces:
            waits_for.append(platform.namespaces[service.team])
        claim = platform.model_caches.get(service.team)
        if claim is not None and "model-cache" in platform.components:
            waits_for.append(platform.components["model-cache"])
        secret = service.hf_token_secret
        if secret is not None and (secret.name, secret.key) == (HF_TOKEN_SECRET, HF_TOKEN_KEY):
            waits_for += hf_tokens
        queue = platform.local_queues.get(service.team) if service.queued else None
        if service.queued and "kueue" in platform.components:
            waits_for.append(platform.components["kueue"])
        MultiNodeInferenceService(
            f"{service.team}-{service.name}",
            component_args(service, platform.placements[service.pool], claim, queue),
            opts=pulumi.ResourceOptions.merge(platform.opts, pulumi.ResourceOptions(depends_on=waits_for)),
        )


def _hf_token(platform: Platform) -> Optional[HuggingFaceToken]:
    """Secret ``hf-token`` in the namespaces of the multi-node services that read it and where the
    serving area made none (it makes one in every namespace serving InferenceServices)."""
    token = platform.config.hf_token
    serving = platform.config.serving
    covered = {s.team for s in serving.inference_services} if "hf-token" in platform.components else set()
    teams = sorted({s.team for s in serving.multi_node_services
                    if s.hf_token_secret is not None and s.hf_token_secret.name == HF_TOKEN_SECRET} - covered)
    if token is None or not teams:
        return None
    namespaces = [platform.namespaces[team] for team in teams if team in platform.namespaces]
    return HuggingFaceToken(
        "hf-token-multi-node",
        {"token": pulumi.Output.secret(token.get_secret_value()), "namespaces": teams},
        opts=pulumi.ResourceOptions.merge(platform.opts, pulumi.ResourceOptions(depends_on=namespaces)),
    )
