"""Stack area ``triton`` (``gpufleet:serving.tritonServices``): Triton Inference Servers on KServe.

Each service names its ``team`` (its namespace, which needs a model cache: the repository lives
there), its GPU ``pool`` and ``repository: pvc://<path>`` on the team's model-weights claim. A
Job writes every model into ``<path>/<model>/``: the files of its ``source`` (``hf://``) and the
``config.pbtxt`` rendered from its ``maxBatchSize``, ``dynamicBatching`` and ``instanceGroups``. With
``serving.kserve.gatewayApi`` the service is reached at ``<name>-<team>.<domain>`` through an
HTTPRoute, as the vLLM services are; otherwise in-cluster only (``<name>-predictor.<team>``).

Every service is checked like the component checks it when the stack configuration is read, with
its ``gpufleet:serving.tritonServices[i]`` path. KServe, KEDA, the priority classes and the model
cache come from the serving, tenancy and model-cache areas (composed before this one).
"""

from __future__ import annotations

import re
from typing import Any, Optional

import pulumi

from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.components.triton_models import TritonModelArgs
from gpufleet.components.triton_service import TYPE as TRITON_TYPE
from gpufleet.components.triton_service import TritonPlan, TritonService, plan_triton_service
from gpufleet.infra.areas.base import Platform, camel_path
from gpufleet.infra.areas.gpu_pools import configured_placements
from gpufleet.infra.areas.serving import gateway_of
from gpufleet.infra.areas.serving_config import KServeConfig
from gpufleet.infra.areas.triton_config import (
    TritonAutoscalingConfig,
    TritonDynamicBatchingConfig,
    TritonModelConfig,
    TritonServiceConfig,
)

PREFIX = "gpufleet:serving.tritonServices"
GPUFLEET_HF_SECRET = "hf-token"


def component_args(service: TritonServiceConfig, placement: GpuPlacement, prometheus_url: str,
                   claim: Optional[str], monitor_labels: Optional[dict[str, str]] = None,
                   kserve: Optional[KServeConfig] = None) -> dict[str, Any]:
    """The :class:`TritonServiceArgs` of one configured service (``claim``: the team's model cache)."""
    models: list[TritonModelArgs] = []
    for model in service.models:
        entry: dict[str, Any] = {
            "name": model.name, "backend": model.backend, "max_batch_size": model.max_batch_size,
            "instance_groups": [group.model_dump() for group in model.instance_groups], "version": model.version,
        }
        if model.dynamic_batching is not None:
            entry["dynamic_batching"] = {**model.dynamic_batching.model_dump(),
                                         "preferred_batch_sizes": list(model.dynamic_batching.preferred_batch_sizes)}
        if model.source is not None:
            entry["source"] = model.source
        if model.files is not None:
            entry["files"] = list(model.files)
        models.append(entry)  # type: ignore[arg-type]
    args: dict[str, Any] = {
        "namespace": service.team,
        "placement": placement,
        "service_name": service.name,
        "storage_uri": f"pvc://{claim or 'model-weights'}/{service.repository[len('pvc://'):].strip('/')}",
        "models": models,
        "gpus": service.gpus,
        "cpu": service.cpu,
        "memory": service.memory,
        "shm_size": service.shm_size,
        "min_replicas": service.min_replicas,
        "load_seconds": service.load_seconds,
        "drain_seconds": service.drain_seconds,
        "termination_grace_seconds": service.termination_grace_seconds,
    }
    optional = {"image": service.image, "max_replicas": service.max_replicas, "anti_affinity": service.anti_affinity}
    args.update({key: value for key, value in optional.items() if value is not None})
    if service.disruption_budget is not None:
        args["disruption_budget"] = service.disruption_budget.model_dump(exclude_none=True)
    if service.hf_token_secret is not None:
        args["hf_token_secret"] = {"name": service.hf_token_secret.name, "key": service.hf_token_secret.key}
    if monitor_labels:
        args["monitor_labels"] = dict(monitor_labels)
    if kserve is not None and kserve.gateway_api is not None:
        args["route"] = {"gateway": gateway_of(kserve), "hostname": f"{service.name}-{service.team}.{kserve.domain}",
                         "request_timeout_seconds": kserve.gateway_api.request_timeout_seconds}
    if service.scales:
        scaling = service.autoscaling
        args["autoscaling"] = {"prometheus_url": prometheus_url, "gpu_utilization": scaling.gpu_utilization,
                               "pending_requests": scaling.pending_requests, "queue_time_ms": scaling.queue_time_ms}
    return args


def plan_of(config: Any, service: TritonServiceConfig, placement: GpuPlacement) -> TritonPlan:
    """The component plan of a configured service (raises like the component)."""
    serving = config.serving
    return plan_triton_service(service.name, component_args(
        service, placement, serving.prometheus_url, config.model_cache.claim_name, serving.pod_monitor_labels,
        serving.kserve))


_CONFIG_FIELDS = {"storage_uri": "repository", "service_name": "name", "namespace": "team",
                  "route.hostname": "name", "route.gateway": "gpufleet:serving.kserve.gatewayApi.gateway",
                  "loader_image": "image"}


_FIELDS = frozenset(field for model in (TritonServiceConfig, TritonModelConfig, TritonDynamicBatchingConfig,
                                        TritonAutoscalingConfig) for field in model.model_fields) | {"dynamic_batching"}


def _field_problem(index: int, error: Exception) -> str:
    """A component error → ``gpufleet:serving.tritonServices[i].<field>: <problem>``."""
    message = str(error)
    if message.startswith(f"{TRITON_TYPE}: "):
        message = message[len(TRITON_TYPE) + 2:]
    path = f"{PREFIX}[{index}]"
    match = re.match(r"^([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)*)\b:? ?(.*)$", message, re.DOTALL)
    if not match:
        return f"{path}: {message}"
    field, rest = match.groups()
    # the component's argument names, as the stack file spells them
    rest = re.sub(r"\b[a-z]+(?:_[a-z]+)+\b",
                  lambda word: camel_path(word.group(0)) if word.group(0) in _FIELDS else word.group(0), rest)
    mapped = _CONFIG_FIELDS.get(field, field)
    if mapped.startswith("gpufleet:"):
        return f"{mapped}: {rest}"
    return f"{path}.{camel_path(mapped)}: {rest}"


def cross_check(config: Any) -> list[str]:
    """Unknown teams and pools, teams without a model cache, names taken by another service of the
    team, two services writing one repository, gpufleet's ``hf-token`` Secret (made for the vLLM
    services only), KEDA disabled while a service scales, and every component refusal, each with
    its field path."""
    section = config.serving
    services = section.triton_services
    if not services:
        return []
    problems: list[str] = []
    teams = [team.name for team in config.teams]
    pools = [pool.name for pool in config.gpu_pools]
    placements = configured_placements(config)
    cached = set(config.model_cache.covered_teams(config)) if config.model_cache.enabled else set()
    taken: dict[tuple[str, str], str] = {}
    for i, vllm in enumerate(section.inference_services):
        taken[(vllm.team, vllm.name)] = f"gpufleet:serving.inferenceServices[{i}]"
        if vllm.canary is not None:
            taken[(vllm.team, f"{vllm.name}-{vllm.canary.name}")] = f"gpufleet:serving.inferenceServices[{i}].canary"
    repositories: dict[tuple[str, str], str] = {}
    for i, service in enumerate(services):
        path = f"{PREFIX}[{i}]"
        if service.team not in teams:
            problems.append(f"{path}.team: {service.team!r} is not a team "
                            f"(gpufleet:teams[].name: {', '.join(teams) or 'none'})")
        elif service.team not in cached:
            problems.append(f"{path}.repository: the model repository lives on the team's model cache, but team "
                            f"{service.team!r} has none (enable gpufleet:modelCache for it)")
        if service.pool not in pools:
            problems.append(f"{path}.pool: {service.pool!r} is not a GPU pool "
                            f"(gpufleet:gpuPools[].name: {', '.join(pools) or 'none'})")
        owner = taken.setdefault((service.team, service.name), path)
        if owner != path:
            problems.append(f"{path}.name: InferenceService {service.name!r} in namespace {service.team!r} is "
                            f"already {owner}'s")
        repository = service.repository[len("pvc://"):].strip("/")
        writer = repositories.setdefault((service.team, repository), path)
        if writer != path:
            problems.append(f"{path}.repository: {service.repository} is already {writer}'s repository (its Job "
                            f"would overwrite the other's models)")
        if service.hf_token_secret is not None and service.hf_token_secret.name == GPUFLEET_HF_SECRET:
            problems.append(f"{path}.hfTokenSecret.name: Secret {GPUFLEET_HF_SECRET!r} is made for "
                            f"inferenceServices only; create a Secret of your own in namespace {service.team!r}")
        if service.pool in placements:
            try:
                plan_of(config, service, placements[service.pool])
            except (ValueError, TypeError) as error:
                problems.append(_field_problem(i, error))
    if section.keda.enabled is False and any(s.scales for s in services):
        problems.append("gpufleet:serving.keda.enabled: Triton services autoscale (maxReplicas > minReplicas) "
                        "but KEDA is disabled")
    return problems


def compose(platform: Platform) -> None:
    """Each Triton service in its team's namespace, after KServe (and KEDA when it scales), the
    namespace, the priority classes and the team's model cache."""
    section = platform.config.serving
    if not section.triton_services or "kserve" not in platform.components:
        return
    for service in section.triton_services:
        waits_for: list[pulumi.Resource] = [platform.components["kserve"]]
        for key in ("priority-classes", "model-cache"):
            if key in platform.components:
                waits_for.append(platform.components[key])
        if service.scales and "keda" in platform.components:
            waits_for.append(platform.components["keda"])
        if service.team in platform.namespaces:
            waits_for.append(platform.namespaces[service.team])
        TritonService(
            f"{service.team}-{service.name}",
            component_args(service, platform.placements[service.pool], section.prometheus_url,
                           platform.model_caches.get(service.team), section.pod_monitor_labels, section.kserve),
            opts=pulumi.ResourceOptions.merge(platform.opts, pulumi.ResourceOptions(depends_on=waits_for)),
        )
