"""``gpufleet:serving.tritonServices``: the config edge (YAML field paths for what Triton would
refuse), the cross-checks against teams, pools, the model cache and the vLLM services, and what the
prod stack composes."""

from __future__ import annotations

import runpy

import pytest

from gpufleet.components.triton_models import check_model, config_pbtxt
from gpufleet.infra.areas import triton as area
from gpufleet.infra.config import ConfigError, StackConfig, parse_stack_config
from gpufleet.infra.offline.plan import Project
from tests.harness import BASE_CONFIG, REPO, stack_config, with_config

POOLS = [
    {"name": "serving", "instanceFamilies": ["g6e"], "limits": {"gpus": 32, "cpu": 768, "memoryGib": 6144}},
    {"name": "serving-mig", "instanceTypes": ["p4de.24xlarge", "p5.48xlarge"],
     "limits": {"gpus": 16, "cpu": 384, "memoryGib": 4096}, "sharing": {"mode": "mig", "migProfile": "1g.10gb"}},
]
MODEL = {"name": "reranker", "backend": "onnxruntime", "source": "hf://cross-encoder/ms-marco-MiniLM-L6-v2",
         "files": ["onnx/model.onnx"], "maxBatchSize": 32,
         "dynamicBatching": {"maxQueueDelayMicroseconds": 1000, "preferredBatchSizes": [8, 32]},
         "instanceGroups": [{"count": 2}]}
TRITON = {"name": "rerank", "team": "serving", "pool": "serving", "repository": "pvc://triton/rerank",
          "models": [MODEL], "minReplicas": 1, "maxReplicas": 3}
LLAMA = {"name": "llama", "team": "serving", "pool": "serving", "model": "llama",
         "storage": "hf://meta-llama/Llama-3.1-8B-Instruct"}


def config(tritons=(TRITON,), teams=("serving",), serving=None, model_cache=None, vllm=()):
    return StackConfig.model_validate({
        "environment": "dev", "region": "us-east-1", "kubernetesVersion": "1.35",
        "gpuPools": POOLS, "teams": [{"name": t} for t in teams],
        "modelCache": model_cache if model_cache is not None else {"enabled": True},
        "serving": {**(serving or {}), "inferenceServices": list(vllm), "tritonServices": list(tritons)},
    })


def problems_at_the_edge(tritons) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse_stack_config(with_config(with_config(BASE_CONFIG, "gpuPools", POOLS), "serving",
                                       {"tritonServices": list(tritons)}))
    return raised.value.problems


def test_consistent_services_have_no_problems():
    assert area.cross_check(config()) == []


@pytest.mark.parametrize("model, problem", [
    ({**MODEL, "backend": "onnx"}, "models[0].backend: Input should be 'onnxruntime', 'tensorrt', 'pytorch', "
                                   "'tensorflow', 'openvino' or 'python'"),
    ({**MODEL, "maxBatchSize": 0}, "models[0].dynamicBatching: needs maxBatchSize of at least 1"),
    ({**MODEL, "dynamicBatching": {"preferredBatchSizes": [64]}},
     "models[0].dynamicBatching: preferredBatchSizes must be from 1 to maxBatchSize (32), got [64]"),
    ({**MODEL, "instanceGroups": [{"count": 0}]},
     "models[0].instanceGroups[0].count: Input should be greater than or equal to 1"),
    ({**MODEL, "instanceGroups": []}, "models[0].instanceGroups: must list at least one instance group"),
    ({**MODEL, "bakend": "onnxruntime"}, "models[0].bakend: unknown key"),
])
def test_models_triton_would_refuse_are_refused_at_the_config_edge(model, problem):
    problems = problems_at_the_edge([{**TRITON, "models": [model]}])
    assert any(p.startswith(f"gpufleet:serving.tritonServices[0].{problem}") for p in problems), problems


def test_repository_must_be_on_the_model_cache_and_models_unique():
    problems = problems_at_the_edge([{**TRITON, "repository": "s3://bucket/repo", "models": [MODEL, MODEL]}])
    assert "gpufleet:serving.tritonServices[0].repository: must be pvc://<path>: a directory on the team's " \
           "model cache" in problems
    assert "gpufleet:serving.tritonServices[0].models: model names must be unique in a repository, got " \
           "['reranker'] more than once" in problems


def test_component_refusals_are_reported_with_the_yaml_path():
    (problem,) = area.cross_check(config([{**TRITON, "autoscaling": {"queueTimeMs": 1}}]))
    assert problem == (
        "gpufleet:serving.tritonServices[0].autoscaling.queueTimeMs: (1) must exceed the longest "
        "dynamicBatching.maxQueueDelayMicroseconds (1000 µs, model 'reranker'): the batcher holds requests that "
        "long on purpose, so the service would scale up when idle")
    (problem,) = area.cross_check(config([{**TRITON, "gpus": 9}]))
    assert problem.startswith("gpufleet:serving.tritonServices[0].gpus: (9) exceeds what one node of pool 'serving'")
    (problem,) = area.cross_check(config([{**TRITON, "pool": "serving-mig", "antiAffinity": "preferred"}]))
    assert problem.startswith("gpufleet:serving.tritonServices[0].antiAffinity: ('preferred') is refused on mig pool")


def test_teams_pools_and_the_model_cache_are_checked():
    assert area.cross_check(config([{**TRITON, "team": "nobody", "pool": "nowhere"}])) == [
        "gpufleet:serving.tritonServices[0].team: 'nobody' is not a team (gpufleet:teams[].name: serving)",
        "gpufleet:serving.tritonServices[0].pool: 'nowhere' is not a GPU pool "
        "(gpufleet:gpuPools[].name: serving, serving-mig)",
    ]
    assert area.cross_check(config(model_cache={"enabled": False})) == [
        "gpufleet:serving.tritonServices[0].repository: the model repository lives on the team's model cache, but "
        "team 'serving' has none (enable gpufleet:modelCache for it)"]


def test_names_and_repositories_are_not_shared():
    problems = area.cross_check(config([TRITON, {**TRITON, "name": "llama"}, {**TRITON, "name": "other"}],
                                       vllm=[LLAMA]))
    assert problems == [
        "gpufleet:serving.tritonServices[1].name: InferenceService 'llama' in namespace 'serving' is already "
        "gpufleet:serving.inferenceServices[0]'s",
        "gpufleet:serving.tritonServices[1].repository: pvc://triton/rerank is already "
        "gpufleet:serving.tritonServices[0]'s repository (its Job would overwrite the other's models)",
        "gpufleet:serving.tritonServices[2].repository: pvc://triton/rerank is already "
        "gpufleet:serving.tritonServices[0]'s repository (its Job would overwrite the other's models)",
    ]


def test_gpufleets_hf_token_secret_and_disabled_keda_are_reported():
    problems = area.cross_check(config([{**TRITON, "hfTokenSecret": {"name": "hf-token"}}],
                                       serving={"keda": {"enabled": False}}))
    assert problems == [
        "gpufleet:serving.tritonServices[0].hfTokenSecret.name: Secret 'hf-token' is made for inferenceServices "
        "only; create a Secret of your own in namespace 'serving'",
        "gpufleet:serving.keda.enabled: Triton services autoscale (maxReplicas > minReplicas) but KEDA is disabled",
    ]


def test_triton_services_alone_install_kserve_and_keda():
    section = config().serving
    assert section.kserve_enabled and section.keda_enabled
    assert not config([{**TRITON, "maxReplicas": None}]).serving.keda_enabled


def test_prod_serves_the_onnx_reranker_from_the_model_cache(run):
    """The prod stack's Triton service: the repository Job writes the model and its config.pbtxt into
    the serving team's claim, the InferenceService waits for it, KEDA scales it on Triton's queue,
    the PodMonitor carries kube-prometheus-stack's release label, and its route is on gpufleet's Gateway."""
    prod = parse_stack_config(stack_config("prod"))
    (reranker,) = prod.serving.triton_services
    recording = run(lambda: runpy.run_path(str(Project.find(REPO).main_dir), run_name="__main__"),
                    config=stack_config("prod"), stack="prod")
    component = recording.one("gpufleet:kserve:TritonService")
    children = {c.type.rsplit(":", 1)[-1]: c for c in recording.children(component.urn)}
    assert set(children) == {"Job", "InferenceService", "PodDisruptionBudget", "PodMonitor", "ScaledObject",
                             "HTTPRoute"}
    job = children["Job"].inputs["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in job["containers"][0]["env"]}
    assert env["REPOSITORY"] == "/mnt/models/triton/reranker"
    (model,) = reranker.models
    assert env["MODEL_0_CONFIG"] == config_pbtxt(check_model(area.component_args(
        reranker, None, "", "model-weights")["models"][0], "models[0]", name="t"))  # type: ignore[arg-type]
    assert 'backend: "onnxruntime"' in env["MODEL_0_CONFIG"] and "max_batch_size: 64" in env["MODEL_0_CONFIG"]
    assert job["volumes"][0]["persistentVolumeClaim"]["claimName"] == "model-weights"
    isvc = children["InferenceService"]
    assert children["Job"].urn in isvc.dependencies
    predictor = isvc.inputs["spec"]["predictor"]
    assert predictor["nodeSelector"] == {"gpufleet.io/gpu-pool": "serving-mig"}
    assert predictor["containers"][0]["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == 1
    assert children["PodMonitor"].inputs["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    triggers = [t["name"] for t in children["ScaledObject"].inputs["spec"]["triggers"]]
    assert triggers == ["gpu-utilization", "triton-pending-requests", "triton-queue-time"]
    assert children["HTTPRoute"].inputs["spec"]["hostnames"] == ["reranker-serving.ml.example.com"]
    by_name = {r.name: r for r in recording.resources}
    namespace = next(r for r in recording.of_type("kubernetes:core/v1:Namespace")
                     if r.inputs["metadata"]["name"] == "serving")
    assert namespace.urn in component.dependencies
    # a dependency on a component is one on its children: the claim, the priority class, KServe's
    # Gateway and KEDA's chart
    for needed in ("model-cache-serving-claim", "priority-classes-inference", "kserve-gateway", "keda-release"):
        assert by_name[needed].urn in component.dependencies, needed
