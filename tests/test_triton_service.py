"""``TritonService``: Triton on KServe Standard mode with the same GPU hygiene as the vLLM services,
the model repository Job and its ``config.pbtxt``, KEDA on Triton's queue metrics, and the model
configurations Triton would refuse. Every object is validated strictly by ``run`` (schemas, CRDs and
KServe's admission webhook)."""

from __future__ import annotations

from collections import Counter

import pytest

from gpufleet.components.gpu_instances import instance_types_of
from gpufleet.components.gpu_scheduling import POOL_LABEL, SYSTEM_NODE_SELECTOR, GpuPlacement
from gpufleet.components.model_loader import HF_CLI_LOCK
from gpufleet.components.triton_models import check_model, config_pbtxt
from gpufleet.components.triton_service import TritonService, plan_triton_service
from gpufleet.policies.core import Subject
from gpufleet.policies.pod_templates import model_server
from gpufleet.policies.workloads import extract

COMPONENT = "gpufleet:kserve:TritonService"
ISVC = "kubernetes:serving.kserve.io/v1beta1:InferenceService"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
JOB = "kubernetes:batch/v1:Job"
ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"

WHOLE = GpuPlacement("serving", tuple(instance_types_of(families=["g6e"])))
MIG = GpuPlacement("serving-mig", tuple(instance_types_of(families=["p4de", "p5"])),
                   sharing="mig", mig_profile="1g.10gb")
PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"
RERANKER = {"name": "reranker", "backend": "onnxruntime", "max_batch_size": 64,
            "dynamic_batching": {"max_queue_delay_microseconds": 2000, "preferred_batch_sizes": [64, 16, 32]},
            "instance_groups": [{"count": 2, "kind": "KIND_GPU"}],
            "source": "hf://cross-encoder/ms-marco-MiniLM-L6-v2@abc123", "files": ["onnx/model.onnx"]}
BASE = {"namespace": "serving", "placement": WHOLE, "storage_uri": "pvc://model-weights/triton/rerank",
        "models": [RERANKER]}
SCALING = {"min_replicas": 2, "max_replicas": 6, "autoscaling": {"prometheus_url": PROMETHEUS}}
ROUTED = {"route": {"gateway": "kserve-system/inference-gateway", "hostname": "rerank-serving.ml.example.com"}}
POD_NAMES = 'pod=~"rerank-predictor-[a-z0-9]+-[a-z0-9]+"'


def service(**overrides):
    def program():
        TritonService("rerank", {**BASE, **overrides})
    return program


def predictor(recording):
    return recording.one(ISVC).inputs["spec"]["predictor"]


def test_children_are_exact(run):
    for extra, expected in [
        ({}, {ISVC: 1, PDB: 1, JOB: 1, POD_MONITOR: 1}),
        (SCALING, {ISVC: 1, PDB: 1, JOB: 1, POD_MONITOR: 1, SCALED_OBJECT: 1}),
        (ROUTED, {ISVC: 1, PDB: 1, JOB: 1, POD_MONITOR: 1, ROUTE: 1}),
    ]:
        recording = run(service(**extra))
        children = recording.children(recording.one(COMPONENT).urn)
        assert Counter(c.type for c in children) == expected
        assert all(c.name.startswith("rerank-") for c in children)
        assert all(c.inputs["metadata"]["namespace"] == "serving" for c in children)


def test_standard_mode_custom_triton_container(run):
    recording = run(service())
    isvc = recording.one(ISVC).inputs
    assert isvc["metadata"]["annotations"] == {"serving.kserve.io/deploymentMode": "Standard",
                                               "serving.kserve.io/autoscalerClass": "none"}
    # in-cluster only: KServe makes no route of its own
    assert isvc["metadata"]["labels"]["networking.kserve.io/visibility"] == "cluster-local"
    (container,) = predictor(recording)["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"] == "nvcr.io/nvidia/tritonserver:25.01-py3"
    assert container["args"] == [
        "tritonserver", "--model-repository=/mnt/models/triton/rerank", "--http-port=8080", "--grpc-port=9000",
        "--metrics-port=8002", "--allow-metrics=true", "--allow-gpu-metrics=true", "--model-control-mode=none",
        "--strict-readiness=true", "--exit-on-error=true", "--exit-timeout-secs=100"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                                  {"name": "grpc", "containerPort": 9000, "protocol": "TCP"},
                                  {"name": "metrics", "containerPort": 8002, "protocol": "TCP"}]


def test_probes_use_triton_health_endpoints_with_a_generous_startup(run):
    (container,) = predictor(run(service(load_seconds=600)))["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080, "scheme": "HTTP"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080, "scheme": "HTTP"}
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 2 * 600


def test_gpu_hygiene_like_the_vllm_services(run):
    spec = predictor(run(service(**SCALING)))
    (container,) = spec["containers"]
    amounts = {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": 1}
    assert container["resources"] == {"requests": amounts, "limits": amounts}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["nodeSelector"] == {POOL_LABEL: "serving"}
    assert spec["priorityClassName"] == "gpufleet-inference"
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 1000
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert spec["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["dshm"] == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}
    assert volumes["model-repository"]["persistentVolumeClaim"] == {"claimName": "model-weights", "readOnly": True}
    assert {"name": "model-repository", "mountPath": "/mnt/models", "readOnly": True} in container["volumeMounts"]
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 15}}}
    assert spec["terminationGracePeriodSeconds"] == 120
    # whole GPUs: replicas prefer different nodes
    assert spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0][
        "podAffinityTerm"]["labelSelector"] == {"matchLabels": {"gpufleet.io/inference-service": "rerank"}}


def test_mig_pool_takes_a_slice_and_no_spreading(run):
    spec = predictor(run(service(placement=MIG, **SCALING)))
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == 1
    assert "affinity" not in spec
    with pytest.raises(ValueError, match="gpus must be 1 on mig pool 'serving-mig'"):
        plan_triton_service("rerank", {**BASE, "placement": MIG, "gpus": 2})


def test_pdb_keeps_nodes_drainable(run):
    recording = run(service())
    budget = recording.one(PDB).inputs["spec"]
    assert budget == {"maxUnavailable": 1, "selector": {"matchLabels": {"gpufleet.io/inference-service": "rerank"}},
                      "unhealthyPodEvictionPolicy": "AlwaysAllow"}
    with pytest.raises(ValueError, match="disruption_budget.min_available \\(1\\) allows no voluntary disruption"):
        plan_triton_service("rerank", {**BASE, "disruption_budget": {"min_available": 1}})


def test_pod_monitor_scrapes_the_metrics_port(run):
    recording = run(service(monitor_labels={"release": "kube-prometheus-stack"}))
    monitor = recording.one(POD_MONITOR).inputs
    assert monitor["metadata"]["labels"] == {"release": "kube-prometheus-stack",
                                             "app.kubernetes.io/managed-by": "gpufleet"}
    assert monitor["spec"] == {"selector": {"matchLabels": {"gpufleet.io/inference-service": "rerank"}},
                               "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": "15s"}]}


def test_config_pbtxt_renders_batching_and_instance_groups():
    assert config_pbtxt(check_model(RERANKER, "models[0]", name="t")) == (
        'name: "reranker"\n'
        'backend: "onnxruntime"\n'
        "max_batch_size: 64\n"
        'default_model_filename: "onnx/model.onnx"\n'
        "dynamic_batching {\n"
        "  preferred_batch_size: [ 16, 32, 64 ]\n"
        "  max_queue_delay_microseconds: 2000\n"
        "}\n"
        "instance_group [\n"
        "  {\n"
        "    count: 2\n"
        "    kind: KIND_GPU\n"
        "  }\n"
        "]\n")
    # defaults: no batching, one instance on each GPU, the backend's default file (no default_model_filename)
    assert config_pbtxt(check_model({"name": "det", "backend": "tensorrt"}, "models[0]", name="t")) == (
        'name: "det"\nbackend: "tensorrt"\nmax_batch_size: 0\n'
        "instance_group [\n  {\n    count: 1\n    kind: KIND_GPU\n  }\n]\n")


def test_repository_job_downloads_and_writes_config_next_to_the_model(run):
    recording = run(service())
    job = recording.one(JOB)
    assert job.inputs["metadata"]["name"] == "rerank-model-repository"
    assert job.inputs["metadata"]["annotations"] == {"pulumi.com/replaceUnready": "true"}
    pod = job.inputs["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["REPOSITORY"] == "/mnt/models/triton/rerank"
    assert (env["MODEL_0_NAME"], env["MODEL_0_VERSION"]) == ("reranker", "1")
    assert (env["MODEL_0_REPO"], env["MODEL_0_REVISION"], env["MODEL_0_FILES"]) == (
        "cross-encoder/ms-marco-MiniLM-L6-v2", "abc123", "onnx/model.onnx")
    assert env["MODEL_0_CONFIG"] == config_pbtxt(check_model(RERANKER, "models[0]", name="t"))
    assert env["HF_CLI_REQUIREMENTS"] == "\n".join(HF_CLI_LOCK)
    script = container["command"][2]
    # values only through the environment; the config is written next to the model, atomically
    assert "cross-encoder" not in script and "reranker" not in script
    assert script.startswith("set -euf\n")
    assert script.endswith(
        'dir="$REPOSITORY/$MODEL_0_NAME"\nmkdir -p "$dir/$MODEL_0_VERSION"\n'
        'hf download "$MODEL_0_REPO" $MODEL_0_FILES --revision "$MODEL_0_REVISION" --local-dir "$dir/$MODEL_0_VERSION"\n'
        'printf \'%s\' "$MODEL_0_CONFIG" > "$dir/.config.pbtxt.tmp"\n'
        'mv "$dir/.config.pbtxt.tmp" "$dir/config.pbtxt"\n')
    # the weights loader's hardening
    assert pod["nodeSelector"] == dict(SYSTEM_NODE_SELECTOR) and "tolerations" not in pod
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["volumes"][0] == {"name": "model-weights", "persistentVolumeClaim": {"claimName": "model-weights"}}
    # the InferenceService waits for the repository
    assert job.urn in recording.one(ISVC).dependencies


def test_preloaded_models_need_no_download_and_no_pip():
    plan = plan_triton_service("rerank", {**BASE, "models": [{"name": "det", "backend": "tensorrt"}]})
    (container,) = plan.job["template"]["spec"]["containers"]
    assert "hf download" not in container["command"][2] and "pip install" not in container["command"][2]
    assert "HF_CLI_REQUIREMENTS" not in {e["name"] for e in container["env"]}


def test_a_changed_model_config_rolls_the_pods():
    digest = plan_triton_service("rerank", BASE).predictor["annotations"]["gpufleet.io/model-repository-digest"]
    changed = plan_triton_service("rerank", {**BASE, "models": [{**RERANKER, "instance_groups": [{"count": 3}]}]})
    assert changed.predictor["annotations"]["gpufleet.io/model-repository-digest"] != digest
    assert plan_triton_service("rerank", BASE).predictor["annotations"]["gpufleet.io/model-repository-digest"] == digest


def test_keda_scales_on_gpu_utilization_pending_requests_and_queue_time(run):
    recording = run(service(**SCALING))
    isvc = recording.one(ISVC).inputs
    assert isvc["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "external"
    assert isvc["spec"]["predictor"]["maxReplicas"] == 6
    scaler = recording.one(SCALED_OBJECT).inputs["spec"]
    assert scaler["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "rerank-predictor"}
    assert (scaler["minReplicaCount"], scaler["maxReplicaCount"]) == (2, 6)
    triton = f'namespace="serving",{POD_NAMES}'
    assert [(t["name"], t["metricType"], t["metadata"]["query"], t["metadata"]["threshold"])
            for t in scaler["triggers"]] == [
        ("gpu-utilization", "AverageValue", f"sum(DCGM_FI_DEV_GPU_UTIL{{{triton}}}) / 1", "70"),
        ("triton-pending-requests", "AverageValue", f"sum(nv_inference_pending_request_count{{{triton}}})", "16"),
        ("triton-queue-time", "Value",
         f"sum(rate(nv_inference_queue_duration_us{{{triton}}}[2m])) / 1000 / "
         f"(sum(rate(nv_inference_request_success{{{triton}}}[2m])) > 0) or vector(0)", "50"),
    ]
    assert all(t["metadata"]["serverAddress"] == PROMETHEUS for t in scaler["triggers"])


def test_routed_service_gets_its_own_httproute(run):
    recording = run(service(**ROUTED))
    route = recording.one(ROUTE).inputs
    assert route["metadata"]["name"] == "rerank-route"
    assert route["spec"]["hostnames"] == ["rerank-serving.ml.example.com"]
    assert [(b["name"], b["port"], b["weight"]) for b in route["spec"]["rules"][0]["backendRefs"]] == [
        ("rerank-predictor", 80, 100)]


@pytest.mark.parametrize("overrides, message", [
    ({"models": [{**RERANKER, "backend": "onnx"}]},
     "models[0].backend must be one of onnxruntime, tensorrt, pytorch, tensorflow, openvino, python"),
    ({"models": [{**RERANKER, "max_batch_size": 0}]},
     "models[0].dynamic_batching needs models[0].max_batch_size of at least 1"),
    ({"models": [{**RERANKER, "dynamic_batching": {"preferred_batch_sizes": [128]}}]},
     "models[0].dynamic_batching.preferred_batch_sizes must be integers from 1 to max_batch_size (64), got 128"),
    ({"models": [{**RERANKER, "instance_groups": [{"count": 0}]}]},
     "models[0].instance_groups[0].count must be at least 1"),
    ({"models": [{**RERANKER, "instance_groups": [{"count": 1, "kind": "KIND_MODEL"}]}]},
     "models[0].instance_groups[0].kind must be one of KIND_GPU, KIND_CPU"),
    ({"models": [{**RERANKER, "files": ["onnx/model one.onnx"]}]}, "models[0].files must be relative paths"),
    ({"models": [{**RERANKER, "files": ["../model.onnx"]}]}, "models[0].files must be relative paths"),
    ({"models": [{**RERANKER, "source": "s3://b/m"}]}, "models[0].source must be hf://"),
    ({"models": [RERANKER, RERANKER]}, "models[1].name 'reranker' is already models[0]'s"),
    ({"models": []}, "models must list at least one model"),
    ({"storage_uri": "s3://bucket/repo"}, "storage_uri must be pvc://<claim>/<path>"),
    ({"storage_uri": "pvc://model-weights/../etc"}, "storage_uri must be a relative directory"),
    ({**SCALING, "autoscaling": {"prometheus_url": PROMETHEUS, "queue_time_ms": 2}},
     "autoscaling.queue_time_ms (2) must exceed the longest dynamic_batching.max_queue_delay_microseconds "
     "(2000 µs, model 'reranker')"),
    ({"min_replicas": 1, "max_replicas": 3}, "autoscaling is required when max_replicas (3) > min_replicas (1)"),
    ({"termination_grace_seconds": 20}, "termination_grace_seconds"),
])
def test_refusals_name_the_field(overrides, message):
    with pytest.raises((ValueError, TypeError)) as raised:
        plan_triton_service("rerank", {**BASE, **overrides})
    assert str(raised.value).startswith("gpufleet:kserve:TritonService: "), raised.value
    assert message in str(raised.value)


def test_unknown_argument_keys_are_refused(run):
    with pytest.raises(Exception, match="model_nam"):
        run(service(model_nam="x"))


def test_policies_see_the_triton_predictor_as_a_model_server():
    plan = plan_triton_service("rerank", BASE)
    assert model_server(plan.predictor["containers"])  # the tritonserver image is a serving image
    subject = Subject.from_manifest({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
                                     "metadata": {"name": "rerank", "namespace": "serving", **plan.isvc["metadata"]},
                                     "spec": plan.isvc["spec"]})
    (template,) = extract(subject)
    assert template.serving
    assert template.path == "spec.predictor"
    assert [c["image"] for c in template.containers] == ["nvcr.io/nvidia/tritonserver:25.01-py3"]


def test_downloads_read_the_token_from_a_secret_reference_only():
    plan = plan_triton_service("rerank", {**BASE, "hf_token_secret": {"name": "hub"},
                                          "loader_image": "registry.example.com/hf-cli:1.0"})
    (container,) = plan.job["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/hf-cli:1.0"
    (token,) = [e for e in container["env"] if e["name"] == "HF_TOKEN"]
    assert token == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hub", "key": "token"}}}
    # the predictor never sees the token
    assert all(e["name"] != "HF_TOKEN" for e in plan.predictor["containers"][0]["env"])


def test_trigger_queries_are_valid_promql():
    promql_parser = pytest.importorskip("promql_parser")
    plan = plan_triton_service("rerank", {**BASE, **SCALING, "placement": MIG})
    for trigger in plan.scaled_object["triggers"]:
        promql_parser.parse(trigger["metadata"]["query"])  # raises on a syntax error
    # MIG slices report no DCGM_FI_DEV_GPU_UTIL: their graphics-engine activity stands in
    assert plan.scaled_object["triggers"][0]["metadata"]["query"].startswith("sum(DCGM_FI_PROF_GR_ENGINE_ACTIVE{")
