"""The ``serving`` area: its config section, cross-checks against teams, pools and the model cache
(each naming its field), and what ``compose`` declares (order, namespaces, claims, placements)."""

from __future__ import annotations

import json
import runpy
from collections import Counter
from types import SimpleNamespace

import pulumi
import pulumi_kubernetes as k8s
import pytest

from gpufleet.components.gpu_instances import instance_types_of
from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.infra.areas import serving as area
from gpufleet.infra.areas.base import Platform
from gpufleet.infra.config import ConfigError, StackConfig, parse_stack_config
from tests.harness import BASE_CONFIG, REPO, stack_config, with_config

POOLS = [
    {"name": "serving", "instanceFamilies": ["g6e"], "limits": {"gpus": 32, "cpu": 768, "memoryGib": 6144}},
    {"name": "serving-mig", "instanceTypes": ["p4de.24xlarge", "p5.48xlarge"],
     "limits": {"gpus": 16, "cpu": 384, "memoryGib": 4096}, "sharing": {"mode": "mig", "migProfile": "1g.10gb"}},
    {"name": "gpu-dev", "instanceFamilies": ["g5"], "limits": {"gpus": 8, "cpu": 192, "memoryGib": 768},
     "sharing": {"mode": "time-slicing", "replicas": 4}},
]
LLAMA = {"name": "llama", "team": "serving", "pool": "serving", "model": "llama-3-8b",
         "storage": "pvc://meta-llama/Meta-Llama-3-8B-Instruct", "weightsSource": "hf://meta-llama/Meta-Llama-3-8B-Instruct",
         "minReplicas": 2, "maxReplicas": 4}
EMBED = {"name": "embed", "team": "serving", "pool": "serving-mig", "model": "bge",
         "storage": "hf://BAAI/bge-large-en-v1.5", "memory": "16Gi", "shmSize": "2Gi"}


def config(services=(LLAMA, EMBED), teams=("serving",), serving=None, model_cache=None, hf_token=None):
    return StackConfig.model_validate({
        "environment": "dev", "region": "us-east-1", "kubernetesVersion": "1.35",
        **({"hfToken": hf_token} if hf_token is not None else {}),
        "gpuPools": POOLS, "teams": [{"name": t} for t in teams],
        "modelCache": model_cache if model_cache is not None else {"enabled": True},
        "serving": {**(serving or {}), "inferenceServices": list(services)},
    })


def test_consistent_services_have_no_problems():
    assert area.cross_check(config()) == []


def test_unknown_team_and_pool_name_the_fields():
    problems = area.cross_check(config([{**LLAMA, "team": "nobody", "pool": "nowhere"}]))
    assert problems == [
        "gpufleet:serving.inferenceServices[0].team: 'nobody' is not a team (gpufleet:teams[].name: serving)",
        "gpufleet:serving.inferenceServices[0].pool: 'nowhere' is not a GPU pool "
        "(gpufleet:gpuPools[].name: serving, serving-mig, gpu-dev)",
    ]


@pytest.mark.parametrize("service, field, reason", [
    ({**LLAMA, "gpus": 9}, "gpus", "(9) exceeds what one node of pool 'serving' offers (8 × nvidia.com/gpu, "
                                    "placement.max_resources_per_node)"),
    ({**EMBED, "gpus": 2}, "gpus", "must be 1 on mig pool 'serving-mig'"),
    ({**EMBED, "pool": "gpu-dev", "gpuMemoryUtilization": 0.9}, "gpuMemoryUtilization", "(0.9) exceeds 1/4"),
    ({**LLAMA, "canary": {"storage": "pvc://v2", "preloaded": True, "trafficPercent": 0}}, "canary.trafficPercent",
     "must be an integer from 1 to 100"),
    ({**LLAMA, "disruptionBudget": {"minAvailable": 2}}, "disruptionBudget.minAvailable",
     "(2) allows no voluntary disruption at minReplicas (2): the PodDisruptionBudget would block every node drain, "
     "and Karpenter could not consolidate, expire or replace drifted nodes"),
    ({**LLAMA, "canary": {"storage": "pvc://v2", "preloaded": True, "trafficPercent": 10},
      "disruptionBudget": {"minAvailable": 1}}, "disruptionBudget.minAvailable",
     "(1) allows no voluntary disruption at canary.minReplicas (1)"),
    ({**EMBED, "antiAffinity": "preferred"}, "antiAffinity",
     "('preferred') is refused on mig pool 'serving-mig': one node offers up to 56 nvidia.com/mig-1g.10gb units"),
    ({**LLAMA, "storage": "/models/llama", "weightsSource": None}, "storage", "must start with one of pvc://"),
    ({**LLAMA, "shmSize": "64Gi"}, "shmSize", "(64Gi) must be below memory (32Gi)"),
    ({**LLAMA, "name": "Llama"}, "name", "must be a lowercase DNS label"),
    ({**LLAMA, "minReplicas": 0, "maxReplicas": None}, "minReplicas", "0 needs autoscaling.kafka"),
])
def test_services_impossible_on_their_pool_name_the_field(service, field, reason):
    serving = {"kserve": {"gatewayApi": {"className": "eg"}}}
    (problem,) = area.cross_check(config([service], serving=serving))
    assert problem.startswith(f"gpufleet:serving.inferenceServices[0].{field}: {reason}")


def test_duplicate_service_in_a_team_is_reported():
    problems = area.cross_check(config([LLAMA, LLAMA]))
    assert problems == ["gpufleet:serving.inferenceServices[1].name: 'llama' is already served by team 'serving' "
                        "(inferenceServices[0])"]


def test_pvc_storage_needs_the_teams_model_cache():
    (problem,) = area.cross_check(config([LLAMA], model_cache={"enabled": False}))
    assert problem.startswith("gpufleet:serving.inferenceServices[0].storage: pvc:// reads the team's model cache")
    assert area.cross_check(config([EMBED], model_cache={"enabled": False})) == []


def test_canary_needs_gateway_api_routing():
    canary = {**LLAMA, "canary": {"storage": "pvc://meta-llama/Llama-3.1-8B-Instruct", "preloaded": True,
                                  "trafficPercent": 10}}
    (problem,) = area.cross_check(config([canary]))
    assert problem == ("gpufleet:serving.inferenceServices[0].canary: the canary's traffic share is split by "
                       "gpufleet's Gateway API HTTPRoute (KServe v0.20.0's own routes reach the stable predictor "
                       "only); set gpufleet:serving.kserve.gatewayApi")
    assert area.cross_check(config([canary], serving={"kserve": {"gatewayApi": {"className": "eg"}}})) == []


def test_disabling_keda_while_services_autoscale_is_reported():
    (problem,) = area.cross_check(config(serving={"keda": {"enabled": False}}))
    assert problem.startswith("gpufleet:serving.keda.enabled: services autoscale")


@pytest.mark.parametrize("serving, path", [
    ({"prometheusUrl": "prometheus:9090"}, "gpufleet:serving.prometheusUrl"),
    ({"inferenceServices": [{**LLAMA, "replicas": 2}]}, "gpufleet:serving.inferenceServices[0].replicas"),
    ({"inferenceServices": [{**LLAMA, "hfTokenSecret": {"key": "token"}}]},
     "gpufleet:serving.inferenceServices[0].hfTokenSecret.name"),
    ({"inferenceServices": [{**LLAMA, "antiAffinity": "always"}]},
     "gpufleet:serving.inferenceServices[0].antiAffinity"),
])
def test_section_errors_name_the_field(serving, path):
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(with_config(BASE_CONFIG, "serving", serving))
    assert any(problem.startswith(path) for problem in raised.value.problems), raised.value.problems


def test_queue_driven_batch_service_from_zero():
    batch = {**EMBED, "name": "batch-embed", "minReplicas": 0, "maxReplicas": 4,
             "autoscaling": {"queue": {"query": "sum(sqs_messages_visible)", "target": 50}}}
    cfg = config([batch])
    assert area.cross_check(cfg) == []
    service = cfg.serving.inference_services[0]
    args = area.component_args(service, PLACEMENTS["serving-mig"], cfg.serving.prometheus_url, "model-weights")
    assert args["autoscaling"]["queue"] == {"query": "sum(sqs_messages_visible)", "target": 50}
    assert cfg.serving.keda_enabled


def test_defaults_install_nothing_without_services():
    section = config(services=()).serving
    assert not section.kserve_enabled and not section.keda_enabled
    section = config(services=[EMBED]).serving
    assert section.kserve_enabled and not section.keda_enabled
    assert config().serving.keda_enabled


PLACEMENTS = {
    "serving": GpuPlacement("serving", tuple(instance_types_of(["g6e"]))),
    "serving-mig": GpuPlacement("serving-mig", tuple(instance_types_of(types=["p4de.24xlarge", "p5.48xlarge"])),
                                sharing="mig", mig_profile="1g.10gb"),
}


def compose_program(cfg, out=None):
    def program():
        namespace = k8s.core.v1.Namespace("serving", metadata={"name": "serving"})
        priority = pulumi.ComponentResource("test:index:PriorityClasses", "priority-classes")
        k8s.scheduling.v1.PriorityClass("inference", metadata={"name": "gpufleet-inference"}, value=100000,
                                        opts=pulumi.ResourceOptions(parent=priority))
        cache = pulumi.ComponentResource("test:index:ModelCache", "model-cache")
        k8s.core.v1.PersistentVolumeClaim(
            "model-cache-claim", metadata={"name": "model-weights", "namespace": "serving"},
            spec={"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Ti"}}},
            opts=pulumi.ResourceOptions(parent=cache))
        platform = Platform(
            stack="test", config=cfg, cluster_name="gpu-test", opts=pulumi.ResourceOptions(),
            network=None, cluster=SimpleNamespace(), placements=dict(PLACEMENTS),
            components={"model-cache": cache, "priority-classes": priority}, namespaces={"serving": namespace},
            model_caches={"serving": "model-weights"},
        )
        area.compose(platform)
        if out is not None:
            out.append(platform)
    return program


def test_compose_declares_kserve_keda_and_each_service_in_its_team_namespace(run):
    platforms = []
    recording = run(compose_program(config(), out=platforms))
    counts = Counter(r.type for r in recording.resources)
    assert counts["gpufleet:kserve:KServe"] == 1
    assert counts["gpufleet:autoscaling:Keda"] == 1
    assert counts["gpufleet:kserve:InferenceService"] == 2
    assert set(platforms[0].components) >= {"kserve", "keda"}
    isvcs = {r.inputs["metadata"]["name"]: r for r in recording.of_type("kubernetes:serving.kserve.io/v1beta1:InferenceService")}
    assert set(isvcs) == {"llama", "embed"}
    assert all(r.inputs["metadata"]["namespace"] == "serving" for r in isvcs.values())
    llama = isvcs["llama"].inputs["spec"]["predictor"]
    assert {"name": "model-weights", "persistentVolumeClaim": {"claimName": "model-weights", "readOnly": True}} \
        in llama["volumes"]
    assert llama["containers"][0]["args"][0] == "/mnt/models/meta-llama/Meta-Llama-3-8B-Instruct"
    embed = isvcs["embed"].inputs["spec"]["predictor"]
    assert embed["containers"][0]["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == 1
    assert embed["nodeSelector"] == {"gpufleet.io/gpu-pool": "serving-mig"}


def test_services_wait_for_platform_namespace_and_cache(run):
    recording = run(compose_program(config()))
    by_name = {r.name: r for r in recording.resources}
    llama = by_name["serving-llama"]
    embed = by_name["serving-embed"]
    # a dependency on a component is a dependency on everything in it
    for needed in ("kserve-resources", "kserve-crd", "serving", "model-cache-claim", "inference"):
        assert by_name[needed].urn in llama.dependencies
        assert by_name[needed].urn in embed.dependencies
    assert by_name["keda-release"].urn in llama.dependencies  # it autoscales
    assert by_name["keda-release"].urn not in embed.dependencies


def test_compose_without_services_declares_nothing(run):
    recording = run(compose_program(config(services=())))
    assert recording.of_type("gpufleet:kserve:KServe") == []


def test_repository_stacks_serve_their_models():
    prod = parse_stack_config(stack_config("prod")).serving
    services = {s.name: s for s in prod.inference_services}
    chat = services["chat-8b"]
    assert (chat.pool, chat.team, chat.canary.traffic_percent) == ("serving", "serving", 10)
    assert (chat.model, chat.canary.name) == ("chat-8b", "qwen3")
    assert chat.scales and prod.kserve.gateway_api is not None
    assert services["bge-embeddings"].pool == "serving-mig"
    dev = parse_stack_config(stack_config("dev")).serving
    (small,) = dev.inference_services
    assert (small.pool, small.team, small.scales) == ("gpu-dev", "ml", False)


@pytest.mark.parametrize("service, problem", [
    ({**LLAMA, "weightsSource": None},
     "weightsSource: is required with pvc:// storage (a new model cache is empty): hf://<org>/<model>[@<revision>] "
     "to download, or preloaded: true"),
    ({**LLAMA, "preloaded": True}, "weightsSource: set weightsSource or preloaded: true, not both"),
    ({**EMBED, "preloaded": True}, "preloaded: applies to pvc:// storage only, got 'hf://BAAI/bge-large-en-v1.5'"),
    ({**LLAMA, "canary": {"storage": "pvc://meta-llama/v2", "trafficPercent": 10}},
     "canary.weightsSource: is required with pvc:// storage"),
    ({**LLAMA, "weightsSource": "hf://llama"}, "weightsSource: must name a Hugging Face repository"),
    ({**EMBED, "weightsSource": "hf://BAAI/bge-large-en-v1.5"},
     "weightsSource: fills a model-cache claim: it needs pvc:// storage"),
    ({**LLAMA, "canary": {"storage": "pvc://meta-llama/v2", "trafficPercent": 10, "weightsSource": "s3://b/v2"}},
     "canary.weightsSource: must be hf://<org>/<model>"),
])
def test_pvc_weights_need_a_source_or_preloaded(service, problem):
    serving = {"kserve": {"gatewayApi": {"className": "eg"}}}
    (found,) = area.cross_check(config([service], serving=serving))
    assert found.startswith(f"gpufleet:serving.inferenceServices[0].{problem}"), found


def test_preloaded_pvc_weights_need_no_loader(run):
    recording = run(compose_program(config([{**LLAMA, "weightsSource": None, "preloaded": True}])))
    assert recording.of_type("kubernetes:batch/v1:Job") == []


def test_services_wait_for_their_weights_loader_jobs(run):
    recording = run(compose_program(config()))
    (job,) = recording.of_type("kubernetes:batch/v1:Job")
    assert job.inputs["metadata"] == {"name": "llama-weights", "namespace": "serving",
                                      "labels": job.inputs["metadata"]["labels"],
                                      "annotations": {"pulumi.com/replaceUnready": "true"}}
    spec = job.inputs["spec"]["template"]["spec"]
    assert spec["volumes"][0] == {"name": "model-weights", "persistentVolumeClaim": {"claimName": "model-weights"}}
    isvc = next(r for r in recording.of_type("kubernetes:serving.kserve.io/v1beta1:InferenceService")
                if r.inputs["metadata"]["name"] == "llama")
    assert job.urn in isvc.dependencies
    # the loader is inside the service's component, which registers (and so lets its children
    # register) only once the claim, the namespace and the priority classes exist
    by_name = {r.name: r for r in recording.resources}
    loader = by_name["serving-llama-weights"]
    assert job.parent == loader.urn and loader.parent == by_name["serving-llama"].urn
    for needed in ("model-cache-claim", "serving", "inference"):
        assert by_name[needed].urn in by_name["serving-llama"].dependencies


def test_pod_monitor_labels_reach_every_pod_monitor(run):
    cfg = config(serving={"podMonitorLabels": {"release": "kube-prometheus-stack"}})
    recording = run(compose_program(cfg))
    (monitor,) = recording.of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")  # llama autoscales
    assert monitor.inputs["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_invalid_pod_monitor_labels_name_the_field():
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(with_config(BASE_CONFIG, "serving", {"podMonitorLabels": {"release": "kube prometheus"}}))
    assert any(p.startswith("gpufleet:serving.podMonitorLabels") for p in raised.value.problems), raised.value.problems


def test_repository_stacks_load_their_weights_and_are_scraped():
    for stack in ("dev", "prod"):
        section = parse_stack_config(stack_config(stack)).serving
        assert section.pod_monitor_labels == {"release": "kube-prometheus-stack"}
        for service in section.inference_services:
            assert service.storage.startswith("pvc://") and service.weights_source.startswith("hf://")
            if service.canary is not None:
                assert service.canary.weights_source.startswith("hf://")
    prod = parse_stack_config(stack_config("prod"))
    # The shipped stacks carry no token (an encrypted value cannot be shipped): ungated models only.
    assert prod.hf_token is None
    assert all(service.hf_token_secret is None for service in prod.serving.inference_services)
    chat = next(s for s in prod.serving.inference_services if s.name == "chat-8b")
    assert (chat.storage, chat.weights_source) == ("pvc://Qwen/Qwen2.5-7B-Instruct", "hf://Qwen/Qwen2.5-7B-Instruct")
    assert (chat.canary.storage, chat.canary.weights_source) == ("pvc://Qwen/Qwen3-8B", "hf://Qwen/Qwen3-8B")


GATED = {**LLAMA, "hfTokenSecret": {"name": "hf-token"}}


def test_naming_the_hf_token_secret_without_the_token_is_reported():
    (problem,) = area.cross_check(config([GATED]))
    assert problem == ("gpufleet:serving.inferenceServices[0].hfTokenSecret.name: Secret 'hf-token' is created by "
                       "gpufleet from gpufleet:hfToken, which is not set: run `pulumi config set --secret hfToken "
                       "<token>`, or name a Secret you create in namespace 'serving'")
    # with the token set, gpufleet makes that Secret: nothing to report
    assert area.cross_check(config([GATED], hf_token="hf_exampletoken")) == []
    # a Secret of the team's own needs no gpufleet:hfToken
    assert area.cross_check(config([{**LLAMA, "hfTokenSecret": {"name": "hub-credentials", "key": "hf"}}])) == []


def test_the_hf_token_secret_holds_the_token_under_key_token_only():
    wrong_key = {**LLAMA, "hfTokenSecret": {"name": "hf-token", "key": "hf"}}
    (problem,) = area.cross_check(config([wrong_key], hf_token="hf_exampletoken"))
    assert problem == ("gpufleet:serving.inferenceServices[0].hfTokenSecret.key: gpufleet's Secret 'hf-token' holds "
                       "the token under key 'token', got 'hf'")
    service = config([wrong_key], hf_token="t").serving.inference_services[0]
    assert not service.reads_secret("hf-token", "token") and service.reads_secret("hf-token", "hf")


def prod_with_gated_chat() -> dict[str, str]:
    """The prod stack with its chat service (and so its canary) reading Secret ``hf-token``."""
    raw = stack_config("prod")
    serving = json.loads(raw["gpufleet:serving"])
    serving["inferenceServices"][0]["hfTokenSecret"] = {"name": "hf-token"}
    return with_config(raw, "serving", serving)


def test_stack_config_refuses_hf_token_secret_without_the_token_and_accepts_it_with():
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(prod_with_gated_chat())
    assert raised.value.problems == [
        "gpufleet:serving.inferenceServices[0].hfTokenSecret.name: Secret 'hf-token' is created by gpufleet from "
        "gpufleet:hfToken, which is not set: run `pulumi config set --secret hfToken <token>`, or name a Secret you "
        "create in namespace 'serving'"]
    raw = {**prod_with_gated_chat(), "gpufleet:hfToken": "hf_exampletoken"}
    parsed = parse_stack_config(raw, secret_keys=["gpufleet:hfToken"])
    assert parsed.hf_token is not None and parsed.serving.inference_services[0].reads_secret("hf-token", "token")


def test_two_models_loaded_into_one_directory_are_reported():
    other = {**LLAMA, "name": "llama-b", "weightsSource": "hf://meta-llama/Llama-3.1-8B-Instruct"}
    (problem,) = area.cross_check(config([LLAMA, other]))
    assert problem == ("gpufleet:serving.inferenceServices[1].weightsSource: 'hf://meta-llama/Llama-3.1-8B-Instruct' "
                       "would be written into pvc://meta-llama/Meta-Llama-3-8B-Instruct, where "
                       "gpufleet:serving.inferenceServices[0].weightsSource writes "
                       "'hf://meta-llama/Meta-Llama-3-8B-Instruct'")
    assert area.cross_check(config([LLAMA, {**LLAMA, "name": "llama-b"}])) == []  # same model: harmless


def whole_program():
    runpy.run_path(str(REPO / "infra"), run_name="__main__")


def test_hf_token_becomes_a_secret_in_each_serving_namespace_that_services_wait_for(run):
    config = {**prod_with_gated_chat(), "gpufleet:hfToken": "hf_exampletoken"}
    recording = run(whole_program, config=config, stack="prod", secret_keys=["gpufleet:hfToken"])
    component = recording.one("gpufleet:serving:HuggingFaceToken")
    secrets = recording.of_type("kubernetes:core/v1:Secret")
    assert [r.parent for r in secrets] == [component.urn]
    assert [(r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]) for r in secrets] == [("serving", "hf-token")]
    # The value reaches the engine as a secret, never in plain text.
    assert secrets[0].manifest()["stringData"] == {"token": "[secret]"}
    assert "hf_exampletoken" not in json.dumps([r.inputs for r in recording.resources if r.type != "kubernetes:core/v1:Secret"])
    namespace = next(r for r in recording.of_type("kubernetes:core/v1:Namespace") if r.inputs["metadata"]["name"] == "serving")
    assert namespace.urn in component.dependencies
    chat = next(r for r in recording.of_type("gpufleet:kserve:InferenceService") if r.name == "serving-chat-8b")
    bge = next(r for r in recording.of_type("gpufleet:kserve:InferenceService") if r.name == "serving-bge-embeddings")
    # Depending on a component is depending on its children: the Secret.
    assert secrets[0].urn in chat.dependencies  # it reads hfTokenSecret hf-token
    assert secrets[0].urn not in bge.dependencies
    # the stable and the canary loader read the token from that Secret
    readers = [j.inputs["metadata"]["name"] for j in recording.of_type("kubernetes:batch/v1:Job")
               if {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}}
               in j.inputs["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert sorted(readers) == ["chat-8b-qwen3-weights", "chat-8b-weights"]


def test_a_program_naming_hf_token_without_the_token_fails_before_any_pod_waits(run):
    with pytest.raises(pulumi.RunError, match="invalid stack configuration") as raised:
        run(whole_program, config=prod_with_gated_chat(), stack="prod")
    assert "inferenceServices[0].hfTokenSecret.name: Secret 'hf-token' is created by gpufleet" in str(raised.value)


def test_without_hf_token_no_secret_is_made(run):
    recording = run(whole_program, config=stack_config("prod"), stack="prod")
    assert recording.of_type("gpufleet:serving:HuggingFaceToken") == []
    assert recording.of_type("kubernetes:core/v1:Secret") == []


ISVC = "kubernetes:serving.kserve.io/v1beta1:InferenceService"
HTTP_ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"


def by_name(recording, type_):
    return {r.inputs["metadata"]["name"]: r for r in recording.of_type(type_)}


def test_prod_canary_is_admitted_and_routed_through_gpufleets_gateway(run):
    """Issue 11 on the prod stack: the chat-8b canary is an InferenceService of its own (KServe
    v0.20.0's webhook refuses spec.canary on a custom predictor without STORAGE_URI; its HTTPRoute
    would send the canary nothing), gpufleet's HTTPRoute splits 90/10 between the predictor Services on
    gpufleet's Gateway of class eg (the chart's is hard-coded envoy), and the chart is told so."""
    recording = run(whole_program, config=stack_config("prod"), stack="prod")
    isvcs = by_name(recording, ISVC)
    # the reranker is the Triton service (serving.tritonServices)
    assert set(isvcs) == {"chat-8b", "chat-8b-qwen3", "bge-embeddings", "reranker"}
    for isvc in isvcs.values():
        assert "canary" not in isvc.inputs["spec"]
        assert isvc.inputs["metadata"]["labels"]["networking.kserve.io/visibility"] == "cluster-local"
    served = {name: isvc.inputs["spec"]["predictor"]["containers"][0]["args"] for name, isvc in isvcs.items()}
    assert served["chat-8b"][served["chat-8b"].index("--served-model-name") + 1] == "chat-8b"
    assert served["chat-8b-qwen3"][served["chat-8b-qwen3"].index("--served-model-name") + 1] == "chat-8b"
    assert served["chat-8b-qwen3"][0] == "/mnt/models/Qwen/Qwen3-8B"

    routes = by_name(recording, HTTP_ROUTE)
    assert set(routes) == {"chat-8b-route", "bge-embeddings-route", "reranker-route"}
    chat = routes["chat-8b-route"].inputs["spec"]
    assert chat["hostnames"] == ["chat-8b-serving.ml.example.com"]
    assert chat["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                   "namespace": "kserve-system", "name": "inference-gateway"}]
    assert [(b["name"], b["port"], b["weight"]) for b in chat["rules"][0]["backendRefs"]] == [
        ("chat-8b-predictor", 80, 90), ("chat-8b-qwen3-predictor", 80, 10)]
    assert [(b["name"], b["weight"]) for b in routes["bge-embeddings-route"].inputs["spec"]["rules"][0]["backendRefs"]] \
        == [("bge-embeddings-predictor", 100)]

    (gateway,) = recording.of_type(GATEWAY)
    assert (gateway.inputs["metadata"]["namespace"], gateway.inputs["metadata"]["name"]) == (
        "kserve-system", "inference-gateway")
    assert gateway.inputs["spec"]["gatewayClassName"] == "eg"
    (listener,) = gateway.inputs["spec"]["listeners"]
    assert listener["hostname"] == "*.ml.example.com"
    assert listener["allowedRoutes"]["namespaces"]["selector"] == {
        "matchExpressions": [{"key": "gpufleet.io/team", "operator": "Exists"}]}
    (chart,) = [r for r in recording.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "kserve"]
    ingress = chart.inputs["values"]["kserve"]["controller"]["gateway"]["ingressGateway"]
    assert ingress == {"enableGatewayApi": True, "createGateway": False,
                       "kserveGateway": "kserve-system/inference-gateway"}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_pdbs_keep_every_node_drainable(run, stack):
    """A PDB that allows no disruption at the fewest replicas (minAvailable: 1 on one replica: the dev
    service, the prod canary) blocks every drain and Karpenter's consolidation, expiry and drift."""
    recording = run(whole_program, config=stack_config(stack), stack=stack)
    budgets = recording.of_type(PDB)
    assert budgets
    for budget in budgets:
        spec = budget.inputs["spec"]
        assert "minAvailable" not in spec and spec["maxUnavailable"] >= 1, budget.inputs["metadata"]["name"]


def test_prod_mig_replicas_share_nodes_and_whole_gpu_replicas_spread(run):
    """Preferred hostname anti-affinity on the MIG pool made Karpenter launch an 8-GPU p4de/p5 per
    1g.10gb replica of bge-embeddings; the whole-GPU chat service keeps spreading over nodes."""
    recording = run(whole_program, config=stack_config("prod"), stack="prod")
    isvcs = {name: r.inputs["spec"]["predictor"] for name, r in by_name(recording, ISVC).items()}
    assert "affinity" not in isvcs["bge-embeddings"] and "topologySpreadConstraints" not in isvcs["bge-embeddings"]
    (term,) = isvcs["chat-8b"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"


def test_a_canary_taking_another_services_name_is_reported():
    llama_v2 = {**LLAMA, "name": "llama-v2", "weightsSource": None, "preloaded": True}
    canary = {**LLAMA, "canary": {"storage": "pvc://meta-llama/v2", "preloaded": True, "trafficPercent": 10,
                                  "name": "v2"}}
    problems = area.cross_check(config([llama_v2, canary], serving={"kserve": {"gatewayApi": {"className": "eg"}}}))
    assert problems == ["gpufleet:serving.inferenceServices[1].canary.name: InferenceService 'llama-v2' in namespace "
                        "'serving' is already gpufleet:serving.inferenceServices[0]'s"]
