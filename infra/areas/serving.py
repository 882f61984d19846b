"""Stack area ``serving`` (``gpufleet:serving``): the KServe platform, KEDA, and the
InferenceServices the teams serve.

Each service names its ``team`` (its namespace) and its GPU ``pool``; the pool's placement gives
tolerations, node selection and the GPU resource name. ``storage: pvc://<path>`` means ``<path>``
on the team's model-weights claim (``gpufleet:modelCache``), mounted read-only; ``hf://``,
``s3://``, ``gs://`` and ``https://`` URIs are downloaded. A fresh claim is empty: ``pvc://`` storage
needs ``weightsSource: hf://<org>/<model>[@<revision>]`` (a loader Job downloads the weights into the
claim before the InferenceService is created) unless ``preloaded: true`` says the weights are
already there. Gated models need ``hfTokenSecret``: ``{name: hf-token}`` works only with
``gpufleet:hfToken`` set (gpufleet then creates that Secret). Every service is checked like the
component checks it (GPUs per replica against the pool's instance types, memory shares on
time-sliced pools, replicas, canary, disruption budget, spreading on shared pools, ...) when the
stack configuration is read, with its ``gpufleet:serving.inferenceServices[i]`` path.

With ``serving.kserve.gatewayApi``, gpufleet creates the Gateway (class ``className``) and every
service gets an HTTPRoute ``<name>-route`` for the host ``<name>-<team>.<domain>`` (KServe's own
host-name format) on it; a canary is its own InferenceService ``<name>-<canary>`` under the same
served model name, and the route splits the host's requests by ``canary.trafficPercent``.
Promotion: ``trafficPercent: 100``, then move the canary's ``storage``/``weightsSource``/``image`` to
the service and remove ``canary``.
"""

from __future__ import annotations

import re
from typing import Any, Optional

import pulumi

from gpufleet.components.autoscaling import Keda
from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.components.hf_token import SECRET_KEY as HF_TOKEN_KEY
from gpufleet.components.hf_token import SECRET_NAME as HF_TOKEN_SECRET
from gpufleet.components.hf_token import HuggingFaceToken
from gpufleet.components.inference_service import TYPE as SERVICE_TYPE
from gpufleet.components.inference_service import InferenceService, plan_inference_service
from gpufleet.components.kserve import DEFAULT_GATEWAY as KSERVE_GATEWAY
from gpufleet.components.kserve import KServe
from gpufleet.components.team import TEAM_LABEL
from gpufleet.infra.areas.base import Platform, camel_path
from gpufleet.infra.areas.gpu_pools import configured_placements
from gpufleet.infra.areas.serving_config import (  # noqa: F401  (the section's models, as infra.config imports them)
    AutoscalingConfig,
    CanaryConfig,
    DisruptionBudgetConfig,
    GatewayApiConfig,
    HfTokenSecretConfig,
    InferenceServiceConfig,
    KafkaConfig,
    KedaConfig,
    KServeConfig,
    QueueConfig,
    ServingSection,
)

PREFIX = "gpufleet:serving"


def component_args(service: InferenceServiceConfig, placement: GpuPlacement, prometheus_url: str,
                   claim: Optional[str], monitor_labels: Optional[dict[str, str]] = None,
                   kserve: Optional[KServeConfig] = None) -> dict[str, Any]:
    """The :class:`InferenceServiceArgs` of one configured service (``claim``: the team's model-cache
    claim, for ``pvc://`` storage; ``kserve``: the platform settings, for its Gateway API route)."""

    def storage(uri: str) -> str:
        return f"pvc://{claim}/{uri[len('pvc://'):].lstrip('/')}" if uri.startswith("pvc://") else uri

    args: dict[str, Any] = {
        "namespace": service.team,
        "placement": placement,
        "service_name": service.name,
        "model_name": service.model,
        "storage_uri": storage(service.storage),
        "gpus": service.gpus,
        "cpu": service.cpu,
        "memory": service.memory,
        "shm_size": service.shm_size,
        "min_replicas": service.min_replicas,
        "extra_args": list(service.extra_args),
        "load_seconds": service.load_seconds,
        "drain_seconds": service.drain_seconds,
        "termination_grace_seconds": service.termination_grace_seconds,
        "do_not_disrupt": service.do_not_disrupt,
    }
    optional = {"image": service.image, "max_replicas": service.max_replicas, "max_model_len": service.max_model_len,
                "gpu_memory_utilization": service.gpu_memory_utilization, "anti_affinity": service.anti_affinity}
    args.update({key: value for key, value in optional.items() if value is not None})
    if service.weights_source is not None:
        args["weights_source"] = service.weights_source
    if monitor_labels:
        args["monitor_labels"] = dict(monitor_labels)
    if service.disruption_budget is not None:
        args["disruption_budget"] = service.disruption_budget.model_dump(exclude_none=True)
    if kserve is not None and kserve.gateway_api is not None:
        args["route"] = {"gateway": gateway_of(kserve), "hostname": service_hostname(service, kserve),
                         "request_timeout_seconds": kserve.gateway_api.request_timeout_seconds}
    if service.hf_token_secret is not None:
        args["hf_token_secret"] = {"name": service.hf_token_secret.name, "key": service.hf_token_secret.key}
    if service.canary is not None:
        canary = service.canary
        args["canary"] = {"storage_uri": storage(canary.storage), "traffic_percent": canary.traffic_percent,
                          "name": canary.name, "min_replicas": canary.min_replicas,
                          **({"image": canary.image} if canary.image else {}),
                          **({"weights_source": canary.weights_source} if canary.weights_source else {})}
    if service.scales:
        scaling = service.autoscaling
        args["autoscaling"] = {"prometheus_url": prometheus_url, "gpu_utilization": scaling.gpu_utilization,
                               "waiting_requests": scaling.waiting_requests}
        if scaling.kafka is not None:
            args["autoscaling"]["kafka"] = scaling.kafka.model_dump(exclude_none=True)
        if scaling.queue is not None:
            args["autoscaling"]["queue"] = scaling.queue.model_dump()
    return args


def gateway_of(kserve: KServeConfig) -> str:
    """``<namespace>/<name>`` of the Gateway the services' routes attach to."""
    assert kserve.gateway_api is not None
    return kserve.gateway_api.gateway or f"{kserve.namespace}/{KSERVE_GATEWAY}"


def service_hostname(service: InferenceServiceConfig, kserve: KServeConfig) -> str:
    """The host a service is reached at through the Gateway: ``<name>-<team>.<domain>``, the host
    KServe itself would give the InferenceService (its default ``domainTemplate``)."""
    return f"{service.name}-{service.team}.{kserve.domain}"


_CONFIG_FIELDS = {"storage_uri": "storage", "canary.storage_uri": "canary.storage", "service_name": "name",
                  "namespace": "team", "model_name": "model", "route.hostname": "name",
                  "route.gateway": f"{PREFIX}.kserve.gatewayApi.gateway"}


_SERVICE_FIELDS = frozenset(field for model in (InferenceServiceConfig, CanaryConfig, DisruptionBudgetConfig)
                            for field in model.model_fields)


def _field_problem(index: int, error: Exception) -> str:
    """A component error → ``gpufleet:serving.inferenceServices[i].<field>: <problem>``."""
    message = str(error)
    if message.startswith(f"{SERVICE_TYPE}: "):
        message = message[len(SERVICE_TYPE) + 2:]
    match = re.match(r"^([a-z_]+(?:\.[a-z_]+)*)\b:? ?(.*)$", message)
    path = f"{PREFIX}.inferenceServices[{index}]"
    if not match:
        return f"{path}: {message}"
    field, rest = match.groups()
    # the component's argument names, as the stack file spells them
    rest = re.sub(r"\b[a-z]+(?:_[a-z]+)+\b",
                  lambda word: camel_path(word.group(0)) if word.group(0) in _SERVICE_FIELDS else word.group(0), rest)
    mapped = _CONFIG_FIELDS.get(field, field)
    if mapped.startswith(f"{PREFIX}."):
        return f"{mapped}: {rest}"
    return f"{path}.{camel_path(mapped)}: {rest}"


def cross_check(config: Any) -> list[str]:
    """Unknown teams and pools, duplicate names, services impossible on their pool, pvc:// without a
    model cache, canaries without Gateway API routing, Secret ``hf-token`` named without
    ``gpufleet:hfToken`` (or with another key), each with its field path."""
    section = config.serving
    problems: list[str] = []
    teams = [team.name for team in config.teams]
    pools = [pool.name for pool in config.gpu_pools]
    placements = configured_placements(config)
    cached = set(config.model_cache.covered_teams(config)) if config.model_cache.enabled else set()
    seen: dict[tuple[str, str], int] = {}
    # (team, pvc:// path) → (field path, weightsSource) of the first loader writing there
    loaded: dict[tuple[str, str], tuple[str, str]] = {}
    # (team, InferenceService name) → field path of the variant that takes it
    owners: dict[tuple[str, str], str] = {}
    for i, service in enumerate(section.inference_services):
        path = f"{PREFIX}.inferenceServices[{i}]"
        if service.team not in teams:
            problems.append(f"{path}.team: {service.team!r} is not a team "
                            f"(gpufleet:teams[].name: {', '.join(teams) or 'none'})")
        if service.pool not in pools:
            problems.append(f"{path}.pool: {service.pool!r} is not a GPU pool "
                            f"(gpufleet:gpuPools[].name: {', '.join(pools) or 'none'})")
        key = (service.team, service.name)
        if key in seen:
            problems.append(f"{path}.name: {service.name!r} is already served by team {service.team!r} "
                            f"(inferenceServices[{seen[key]}])")
        seen.setdefault(key, i)
        uses_cache = service.storage.startswith("pvc://") or (
            service.canary is not None and service.canary.storage.startswith("pvc://"))
        if uses_cache and service.team in teams and service.team not in cached:
            problems.append(f"{path}.storage: pvc:// reads the team's model cache, but team {service.team!r} has "
                            f"none (enable gpufleet:modelCache for it)")
        problems += _weights_problems(path, service)
        problems += _conflicting_loads(path, service, loaded)
        problems += _token_problems(path, service, has_token=config.hf_token is not None)
        unrouted_canary = service.canary is not None and section.kserve.gateway_api is None
        if unrouted_canary:
            problems.append(f"{path}.canary: the canary's traffic share is split by gpufleet's Gateway API HTTPRoute "
                            f"(KServe v0.20.0's own routes reach the stable predictor only); set "
                            f"{PREFIX}.kserve.gatewayApi")
        problems += _name_clashes(path, service, owners)
        if service.pool in placements:
            try:
                plan_inference_service(service.name, component_args(
                    service, placements[service.pool], section.prometheus_url, config.model_cache.claim_name,
                    section.pod_monitor_labels, section.kserve))
            except (ValueError, TypeError) as error:
                problem = _field_problem(i, error)
                if not (unrouted_canary and problem.startswith(f"{path}.canary: needs route")):
                    problems.append(problem)
    if section.keda.enabled is False and any(s.scales for s in section.inference_services):
        problems.append(f"{PREFIX}.keda.enabled: services autoscale (maxReplicas > minReplicas) but KEDA is disabled")
    return problems


def _name_clashes(path: str, service: InferenceServiceConfig, owners: dict[tuple[str, str], str]) -> list[str]:
    """A canary is the InferenceService ``<name>-<canary>``: it must not take the name of another
    service's variant in the same team (their Deployments, Services and routes would collide)."""
    problems = []
    variants = [(f"{path}.name", service.name)]
    if service.canary is not None:
        variants.append((f"{path}.canary.name", f"{service.name}-{service.canary.name}"))
    for field, isvc in variants:
        first = owners.setdefault((service.team, isvc), field)
        # two services of one name are reported as such (``.name``) already
        if first != field and (field.endswith(".canary.name") or first.endswith(".canary.name")):
            problems.append(f"{field}: InferenceService {isvc!r} in namespace {service.team!r} is already "
                            f"{first.rsplit('.', 1)[0]}'s")
    return problems


def _weights_problems(path: str, service: InferenceServiceConfig) -> list[str]:
    """``pvc://`` storage needs a ``weightsSource`` or ``preloaded: true`` (a fresh claim is empty);
    the two exclude each other, and neither applies to downloaded storage."""
    problems = []
    variants = [("", service)] + ([("canary.", service.canary)] if service.canary is not None else [])
    for prefix, variant in variants:
        on_claim = variant.storage.startswith("pvc://")
        if variant.weights_source is not None and variant.preloaded:
            problems.append(f"{path}.{prefix}weightsSource: set weightsSource or preloaded: true, not both")
        elif on_claim and variant.weights_source is None and not variant.preloaded:
            problems.append(f"{path}.{prefix}weightsSource: is required with pvc:// storage (a new model cache is "
                            f"empty): hf://<org>/<model>[@<revision>] to download, or preloaded: true")
        elif not on_claim and variant.preloaded:
            problems.append(f"{path}.{prefix}preloaded: applies to pvc:// storage only, got {variant.storage!r}")
    return problems


def _token_problems(path: str, service: InferenceServiceConfig, *, has_token: bool) -> list[str]:
    """Secret ``hf-token`` is gpufleet's (made from ``gpufleet:hfToken``, key ``token``): naming it
    without the token, or with another key, leaves the loader and predictor pods (the canary's too)
    in CreateContainerConfigError until the loader's deadline, hours later."""
    secret = service.hf_token_secret
    if secret is None or secret.name != HF_TOKEN_SECRET:
        return []
    problems = []
    if not has_token:
        problems.append(
            f"{path}.hfTokenSecret.name: Secret {HF_TOKEN_SECRET!r} is created by gpufleet from gpufleet:hfToken, "
            f"which is not set: run `pulumi config set --secret hfToken <token>`, or name a Secret you create "
            f"in namespace {service.team!r}")
    if secret.key != HF_TOKEN_KEY:
        problems.append(
            f"{path}.hfTokenSecret.key: gpufleet's Secret {HF_TOKEN_SECRET!r} holds the token under key "
            f"{HF_TOKEN_KEY!r}, got {secret.key!r}")
    return problems


def _conflicting_loads(path: str, service: InferenceServiceConfig,
                       loaded: dict[tuple[str, str], tuple[str, str]]) -> list[str]:
    """Two loaders writing different models into the same directory of a team's cache would mix
    their files; the same source twice is harmless (the download skips what is there)."""
    problems = []
    variants = [("", service)] + ([("canary.", service.canary)] if service.canary is not None else [])
    for prefix, variant in variants:
        if variant.weights_source is None or not variant.storage.startswith("pvc://"):
            continue
        key = (service.team, variant.storage[len("pvc://"):].strip("/"))
        first = loaded.setdefault(key, (f"{path}.{prefix}weightsSource", variant.weights_source))
        if first[1] != variant.weights_source:
            problems.append(f"{path}.{prefix}weightsSource: {variant.weights_source!r} would be written into "
                            f"{variant.storage}, where {first[0]} writes {first[1]!r}")
    return problems


def compose(platform: Platform) -> None:
    """KServe (and KEDA when needed), then each InferenceService in its team's namespace, after the
    namespace, the platform, the priority classes and the team's model cache."""
    section = platform.config.serving
    if not section.kserve_enabled:
        return
    kserve_config = section.kserve
    kserve_args: dict[str, Any] = {
        "namespace": kserve_config.namespace,
        "install_cert_manager": kserve_config.install_cert_manager,
        "domain": kserve_config.domain,
    }
    if kserve_config.ingress_class_name:
        kserve_args["ingress_class_name"] = kserve_config.ingress_class_name
    if kserve_config.gateway_api is not None:
        gateway = kserve_config.gateway_api
        kserve_args["gateway_api"] = {
            "create_gateway": gateway.create_gateway,
            # only the team namespaces (where gpufleet's routes live) attach routes to it
            "route_namespaces": {"matchExpressions": [{"key": TEAM_LABEL, "operator": "Exists"}]},
            **({"gateway": gateway.gateway} if gateway.gateway else {}),
            **({"class_name": gateway.class_name} if gateway.class_name else {}),
        }
    kserve = KServe("kserve", kserve_args, opts=platform.opts)
    platform.components["kserve"] = kserve
    if section.keda_enabled:
        platform.components["keda"] = Keda("keda", {"replicas": section.keda.replicas}, opts=platform.opts)

    hf_token = _hf_token(platform)
    for service in section.inference_services:
        waits_for: list[pulumi.Resource] = [kserve]
        if hf_token is not None and service.reads_secret(HF_TOKEN_SECRET, HF_TOKEN_KEY):
            waits_for.append(hf_token)
        # predictor pods name the `inference` PriorityClass: admission rejects them until it exists
        if "priority-classes" in platform.components:
            waits_for.append(platform.components["priority-classes"])
        if service.scales and "keda" in platform.components:
            waits_for.append(platform.components["keda"])
        if service.team in platform.namespaces:
            waits_for.append(platform.namespaces[service.team])
        claim = platform.model_caches.get(service.team)
        if claim is not None and "model-cache" in platform.components:
            waits_for.append(platform.components["model-cache"])
        InferenceService(
            f"{service.team}-{service.name}",
            component_args(service, platform.placements[service.pool], section.prometheus_url, claim,
                           section.pod_monitor_labels, kserve_config),
            opts=pulumi.ResourceOptions.merge(platform.opts, pulumi.ResourceOptions(depends_on=waits_for)),
        )


def _hf_token(platform: Platform) -> Optional[HuggingFaceToken]:
    """The stack's ``hfToken`` as Secret ``hf-token`` in every namespace that serves models."""
    token = platform.config.hf_token
    teams = sorted({service.team for service in platform.config.serving.inference_services})
    if token is None or not teams:
        return None
    namespaces = [platform.namespaces[team] for team in teams if team in platform.namespaces]
    return HuggingFaceToken(
        "hf-token",
        {"token": pulumi.Output.secret(token.get_secret_value()), "namespaces": teams},
        opts=pulumi.ResourceOptions.merge(platform.opts, pulumi.ResourceOptions(depends_on=namespaces)),
    )
