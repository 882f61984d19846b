"""The admission layer: what the pinned controllers' validating webhooks reject on create, one rule at a
time (one object each rule rejects, one it admits, the message asserted), today's prod canary shape, the
Gateway API rules that live in its CRDs, and the wiring into the test harness."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from gpufleet.components.gpu_instances import instance_types_of
from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.components.inference_service import InferenceService
from gpufleet.infra.offline import FakeCloud, run_program
from gpufleet.infra.validation.admission import admission_problems, rejection_message
from gpufleet.infra.validation.schema import ManifestValidator
from tests.harness import BASE_CONFIG, KUBERNETES_VERSION

KSERVE = "KServe admission webhook: "
KUBERAY = "KubeRay: "
KUEUE = "Kueue admission webhook: "


def with_(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``obj`` with ``path`` (dotted; ``[i]`` for list items) set to ``value`` (None deletes)."""
    out = copy.deepcopy(obj)
    parts: list[Any] = [
        (int(key) if key.isdigit() else key) if key else field
        for field, key in re.findall(r"([^.\[\]]+)|\[([^\]]+)\]", path)
    ]
    node: Any = out
    for key in parts[:-1]:
        if isinstance(key, str) and key not in node:
            node[key] = {}
        node = node[key]
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value
    return out


def only(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


# --------------------------------------------------------------------------------------------------
# KServe v0.20.0 InferenceService
# --------------------------------------------------------------------------------------------------

def isvc(**spec: Any) -> dict[str, Any]:
    container = {"name": "kserve-container", "image": "vllm/vllm-openai:v0.28.0",
                 "env": [{"name": "HOME", "value": "/home/vllm"}]}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "chat", "namespace": "serving", "annotations": {
            "serving.kserve.io/deploymentMode": "Standard", "serving.kserve.io/autoscalerClass": "external"}},
        "spec": {"predictor": {"minReplicas": 1, "maxReplicas": 2, "containers": [container]}, **spec},
    }


GOOD_ISVC = isvc()
STORAGE_ENV = [{"name": "STORAGE_URI", "value": "pvc://model-weights/qwen"}]


def test_a_plain_custom_container_service_is_admitted():
    assert admission_problems(GOOD_ISVC) == []


@pytest.mark.parametrize(("path", "value", "message"), [
    # validateInferenceServiceName
    ("metadata.name", "Chat_8b",
     'the InferenceService "Chat_8b" is invalid: a InferenceService name must consist of lower case alphanumeric '
     "characters or '-', and must start with alphabetical character. (e.g. \"my-name\" or \"abc-123\", regex used "
     "for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"),
    ("metadata.name", "8b-chat", 'the InferenceService "8b-chat" is invalid'),
    # validateInferenceServiceAutoscaler
    ("metadata.annotations[serving.kserve.io/autoscalerClass]", "kpa", "[kpa] is not a supported autoscaler class type"),
    # validateBlockedEnvVars
    ("spec.predictor.containers[0].env", [{"name": "PYTHONPATH", "value": "/x"}],
     'the InferenceService "chat" is invalid: setting PYTHONPATH in container "kserve-container" is not allowed for '
     "security reasons"),
    # validateCollocationStorageURI
    ("spec.predictor.containers", [GOOD_ISVC["spec"]["predictor"]["containers"][0],
                                   {"name": "transformer-container", "image": "t", "env": STORAGE_ENV}],
     "storage uri should not be specified in transformer container"),
    # validatePredictor
    ("spec.predictor", {"sklearn": {"name": "m", "storageUri": "s3://b/m"}},
     "the 'name' field is not allowed in standard predictor"),
    # validateMultipleStorageURIs
    ("spec.predictor.storageUris", [{"uri": "s3://b/m", "mountPath": "/mnt/models"}],
     None),  # placeholder replaced below (needs a storageUri too)
    # validateExactlyOneImplementation
    ("spec.predictor", {"minReplicas": 1},
     "exactly one of [SKLearn, XGBoost, Tensorflow, PyTorch, Triton, ONNX, HuggingFace, PMML, LightGBM, Paddle, Model, "
     "StorageUris, WorkerSpec, PodSpec] must be specified in PredictorSpec"),
    ("spec.predictor.model", {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://b/m"},
     "exactly one of [SKLearn, XGBoost"),
    # CustomPredictor.validateCustomProtocol (the message as upstream formats it)
    ("spec.predictor.containers[0].env", [{"name": "PROTOCOL", "value": "grpc-v2"}],
     "invalid protocol v1, v2. Must be one of [grpc-v2]"),
    # ComponentExtensionSpec.Validate
    ("spec.predictor.minReplicas", 3, "'MinReplicas' cannot be greater than MaxReplicas"),
    ("spec.predictor.containerConcurrency", -1, "parallelism cannot be less than 0"),
    ("spec.predictor.logger", {"mode": "everything"}, "invalid logger type"),
    # the storage initializer's schemes
    ("spec.predictor.containers[0].env", [{"name": "STORAGE_URI", "value": "ftp://models/qwen"}],
     "StorageUri [ftp://models/qwen] is not supported"),
])
def test_kserve_rejects(path, value, message):
    if message is None:
        obj = with_(with_(GOOD_ISVC, path, value), "spec.predictor.containers[0].env", STORAGE_ENV)
        message = "Setting both StorageURI and StorageURIs is not supported."
    else:
        obj = with_(GOOD_ISVC, path, value)
    assert only(admission_problems(obj)).startswith(KSERVE)
    assert message in only(admission_problems(obj))


def test_kserve_storage_uris_need_a_common_parent():
    obj = with_(GOOD_ISVC, "spec.predictor.storageUris", [{"uri": "s3://b/a", "mountPath": "/mnt/a"},
                                                         {"uri": "s3://b/b", "mountPath": "/opt/b"}])
    assert only(admission_problems(obj)) == (
        KSERVE + "storage paths must have a common parent directory. Current paths: [/mnt/a /opt/b] have no common "
        "parent beyond root")
    ok = with_(obj, "spec.predictor.storageUris[1].mountPath", "/mnt/b")
    assert admission_problems(ok) == []


def test_kserve_accepts_a_framework_predictor_and_supported_schemes():
    for uri in ("pvc://model-weights/qwen", "hf://Qwen/Qwen2.5-7B-Instruct", "s3://bucket/model", "/mnt/models"):
        obj = with_(GOOD_ISVC, "spec.predictor", {"model": {"modelFormat": {"name": "huggingface"}, "storageUri": uri}})
        assert admission_problems(obj) == [], uri


@pytest.mark.parametrize(("annotations", "extension", "message"), [
    # Standard + hpa: validateScalingHPACompExtension
    ({"serving.kserve.io/autoscalerClass": "hpa"}, {"scaleMetric": "rps"}, "[rps] is not a supported metric"),
    ({"serving.kserve.io/autoscalerClass": "hpa"}, {"scaleMetric": "cpu", "scaleTarget": 150},
     "the target utilization percentage should be a [1-100] integer"),
    # Standard + keda: validateScalingKedaCompExtension
    ({"serving.kserve.io/autoscalerClass": "keda"}, {"scaleMetric": "cpu"}, "ScaleMetric is not supported for KEDA"),
    ({"serving.kserve.io/autoscalerClass": "keda"},
     {"autoScaling": {"metrics": [{"type": "External", "external": {"metric": {"query": ""}, "target": {"type": "Value", "value": "1"}}}]}},
     "the query should not be empty"),
    # Serverless (Knative): validateScalingKPACompExtension
    ({"serving.kserve.io/deploymentMode": "Serverless"}, {"deploymentStrategy": {"type": "Recreate"}},
     "customizing deploymentStrategy is only supported for raw deployment mode"),
    ({"serving.kserve.io/deploymentMode": "Serverless"}, {"scaleMetric": "cpu"}, "[cpu] is not a supported metric"),
])
def test_kserve_autoscaler_fields_are_judged_by_deployment_mode(annotations, extension, message):
    obj = copy.deepcopy(GOOD_ISVC)
    obj["metadata"]["annotations"].update(annotations)
    obj["spec"]["predictor"].update(extension)
    assert only(admission_problems(obj)) == KSERVE + message
    # the same fields under the other mode's rules pass
    other = copy.deepcopy(obj)
    if annotations.get("serving.kserve.io/deploymentMode") == "Serverless":
        other["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = "Standard"
        other["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] = "external"
    else:
        other["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] = "external"
    assert admission_problems(other) == []


CANARY_REJECTION = (
    KSERVE + "spec.canary requires the stable predictor to specify a storageUri or model (for a custom container "
    'predictor: the STORAGE_URI env of container "kserve-container"); spec.predictor has neither'
)


def canary(predictor: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"trafficPercent": 10, "predictor": predictor}]


def test_kserve_canary_needs_the_stable_model_as_storage_uri():
    variant = copy.deepcopy(GOOD_ISVC["spec"]["predictor"])
    variant["containers"][0]["env"] = [{"name": "STORAGE_URI", "value": "pvc://model-weights/v2"}]
    rejected = with_(GOOD_ISVC, "spec.canary", canary(variant))
    assert admission_problems(rejected) == [CANARY_REJECTION]
    admitted = with_(rejected, "spec.predictor.containers[0].env", STORAGE_ENV)
    assert admission_problems(admitted) == []
    # a canary predictor needs exactly one implementation, too
    empty = with_(admitted, "spec.canary[0].predictor", {"minReplicas": 1})
    assert "must be specified in spec.canary[0].predictor" in only(admission_problems(empty))


def test_the_old_canary_shape_is_rejected_and_the_components_canary_is_admitted():
    """A canary rendered as ``spec.canary`` beside a custom-container stable predictor whose weights come
    from a volume, without STORAGE_URI, is what KServe v0.20.0 refuses. The component renders each variant
    as an InferenceService of its own instead (behind gpufleet's HTTPRoute): both are admitted."""
    placement = GpuPlacement("serving", tuple(instance_types_of(families=["g6e"])))

    def program():
        InferenceService("chat-8b", {
            "namespace": "serving", "placement": placement, "model_name": "chat-8b",
            "storage_uri": "pvc://model-weights/Qwen/Qwen2.5-7B-Instruct",
            "canary": {"storage_uri": "pvc://model-weights/Qwen/Qwen3-8B", "traffic_percent": 10},
            "route": {"gateway": "kserve-system/inference-gateway", "hostname": "chat-8b.example.com"},
        })

    recording = run_program(program, project="gpufleet", stack="test", config=dict(BASE_CONFIG),
                            cloud=FakeCloud(region="us-west-2"))
    isvcs = [r.manifest() for r in recording.of_type("kubernetes:serving.kserve.io/v1beta1:InferenceService")]
    assert sorted(m["metadata"]["name"] for m in isvcs) == ["chat-8b", "chat-8b-canary"]
    for manifest in isvcs:
        assert "canary" not in manifest["spec"]
        assert admission_problems(manifest) == []
    old = copy.deepcopy(next(m for m in isvcs if m["metadata"]["name"] == "chat-8b"))
    old["spec"]["canary"] = [{"trafficPercent": 10, "predictor": copy.deepcopy(old["spec"]["predictor"])}]
    assert [rejection_message(old, p) for p in admission_problems(old)] == [
        "the API server would reject InferenceService/chat-8b: " + CANARY_REJECTION
    ]


# --------------------------------------------------------------------------------------------------
# KubeRay v1.7.0
# --------------------------------------------------------------------------------------------------

HEAD = {"rayStartParams": {"num-cpus": "0"},
        "template": {"spec": {"containers": [{"name": "ray-head", "image": "rayproject/ray:2.54.0"}]}}}
WORKER = {"groupName": "gpu", "replicas": 1, "minReplicas": 0, "maxReplicas": 2, "rayStartParams": {"num-gpus": "1"},
          "template": {"spec": {"containers": [{"name": "ray-worker", "image": "rayproject/ray:2.54.0"}]}}}
CLUSTER_SPEC = {"rayVersion": "2.54.0", "headGroupSpec": HEAD, "workerGroupSpecs": [WORKER]}
RAY_CLUSTER = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "batch", "namespace": "research"},
               "spec": CLUSTER_SPEC}
RAY_JOB = {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": "smoke", "namespace": "research"},
           "spec": {"entrypoint": "python -c 'print(1)'", "shutdownAfterJobFinishes": True,
                    "ttlSecondsAfterFinished": 60, "rayClusterSpec": CLUSTER_SPEC}}
RAY_SERVICE = {"apiVersion": "ray.io/v1", "kind": "RayService", "metadata": {"name": "serve", "namespace": "serving"},
               "spec": {"serveConfigV2": "applications: []\n", "rayClusterConfig": CLUSTER_SPEC}}


def test_well_formed_ray_objects_are_admitted():
    for obj in (RAY_CLUSTER, RAY_JOB, RAY_SERVICE):
        assert admission_problems(obj) == [], obj["kind"]
    assert admission_problems(with_(RAY_CLUSTER, "metadata.name", "c" * 53)) == []
    assert admission_problems(with_(RAY_JOB, "metadata.name", "j" * 47)) == []


@pytest.mark.parametrize(("obj", "path", "value", "message"), [
    # ValidateRayClusterMetadata / ValidateRayJobMetadata / ValidateRayServiceMetadata
    (RAY_CLUSTER, "metadata.name", "c" * 54, "RayCluster name should be no more than 53 characters"),
    (RAY_CLUSTER, "metadata.name", "1batch", "RayCluster name should be a valid DNS1035 label: [a DNS-1035 label must "
     "consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an "
     "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')]"),
    (RAY_JOB, "metadata.name", "j" * 48, "The RayJob metadata is invalid: RayJob name should be no more than 47 characters"),
    (RAY_SERVICE, "metadata.name", "s" * 48, "RayService name should be no more than 47 characters"),
    (RAY_SERVICE, "metadata.annotations", {"ray.io/initializing-timeout": "soon"},
     "RayService annotations is invalid: annotation ray.io/initializing-timeout has invalid format: soon. Expected Go "
     "duration format (e.g., '5m', '1h') or positive integer seconds"),
    # ValidateRayClusterSpec
    (RAY_CLUSTER, "spec.headGroupSpec.template.spec.containers", [], "headGroupSpec should have at least one container"),
    (RAY_CLUSTER, "spec.workerGroupSpecs[0].template.spec.containers", [], "workerGroupSpec should have at least one container"),
    (RAY_CLUSTER, "spec.workerGroupSpecs[0].resources", {"GPU": "1"},
     "resource fields should not be set in both rayStartParams and Resources for gpu group; please use only one"),
    (RAY_CLUSTER, "spec.headGroupSpec.rayStartParams", {"labels": "a=b"},
     "rayStartParams['labels'] is not supported for Head group; please use the top-level Labels field instead"),
    (RAY_CLUSTER, "spec.headGroupSpec.template.spec.containers[0].env", [{"name": "RAY_REDIS_ADDRESS", "value": "r:6379"}],
     "RAY_REDIS_ADDRESS is set which implicitly enables GCS fault tolerance, but GcsFaultToleranceOptions is not set. "
     "Please set GcsFaultToleranceOptions to enable GCS fault tolerance"),
    (RAY_CLUSTER, "spec.headGroupSpec.template.spec.containers[0].env", [{"name": "RAY_enable_autoscaler_v2", "value": "1"}],
     "environment variable RAY_enable_autoscaler_v2 cannot be set to '1' when enableInTreeAutoscaling is false. "
     "Please set enableInTreeAutoscaling: true to use autoscaler v2"),
    (RAY_CLUSTER, "spec.authOptions", {"mode": "token"}, None),  # with Ray 2.46.0, see below
    # ValidateRayJobSpec
    (RAY_JOB, "spec.shutdownAfterJobFinishes", False,
     "The RayJob spec is invalid: a RayJob with shutdownAfterJobFinishes set to false cannot have TTLSecondsAfterFinished"),
    (RAY_JOB, "spec.rayClusterSpec", None, "The RayJob spec is invalid: one of RayClusterSpec or ClusterSelector must be set"),
    (RAY_JOB, "spec.activeDeadlineSeconds", 0, "The RayJob spec is invalid: activeDeadlineSeconds must be a positive integer"),
    (RAY_JOB, "spec.rayClusterSpec.headGroupSpec.template.spec.containers", [],
     "The RayJob spec is invalid: headGroupSpec should have at least one container"),
    # ValidateRayServiceSpec
    (RAY_SERVICE, "spec.upgradeStrategy", {"type": "BlueGreen"},
     "Spec.UpgradeStrategy.Type value BlueGreen is invalid, valid options are NewClusterWithIncrementalUpgrade, "
     "NewCluster, or None"),
    (RAY_SERVICE, "spec.rayClusterConfig.headGroupSpec.headService", {"metadata": {"name": "my-head"}},
     "spec.rayClusterConfig.headGroupSpec.headService.metadata.name should not be set"),
])
def test_kuberay_rejects(obj, path, value, message):
    bad = with_(obj, path, value)
    if message is None:  # token auth with a Ray older than 2.52.0
        bad = with_(bad, "spec.rayVersion", "2.46.0")
        message = "authOptions.mode is 'token' but minimum Ray version is 2.52.0, got 2.46.0"
    assert only(admission_problems(bad)) == KUBERAY + message


def test_kuberay_interactive_jobs_take_no_retries_and_autoscaler_v2_needs_never_restart():
    interactive = with_(with_(RAY_JOB, "spec.submissionMode", "InteractiveMode"), "spec.backoffLimit", 2)
    assert only(admission_problems(interactive)) == KUBERAY + "The RayJob spec is invalid: BackoffLimit is incompatible with InteractiveMode"
    assert admission_problems(with_(interactive, "spec.backoffLimit", 0)) == []
    v2 = with_(with_(RAY_CLUSTER, "spec.enableInTreeAutoscaling", True), "spec.autoscalerOptions", {"version": "v2"})
    assert admission_problems(v2) == []
    assert only(admission_problems(with_(v2, "spec.headGroupSpec.template.spec.restartPolicy", "Always"))) == (
        KUBERAY + "restartPolicy for head Pod should be Never or unset when using autoscaler V2")


# --------------------------------------------------------------------------------------------------
# Kueue v0.19.2
# --------------------------------------------------------------------------------------------------

CLUSTER_QUEUE = {
    "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": {"name": "serving"},
    "spec": {
        "cohortName": "gpufleet",
        "namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["serving"]}]},
        "resourceGroups": [
            {"coveredResources": ["cpu", "memory"],
             "flavors": [{"name": "cpu", "resources": [{"name": "cpu", "nominalQuota": "64", "borrowingLimit": "0"},
                                                       {"name": "memory", "nominalQuota": "256Gi", "borrowingLimit": "0"}]}]},
            {"coveredResources": ["nvidia.com/gpu"],
             "flavors": [{"name": "serving", "resources": [{"name": "nvidia.com/gpu", "nominalQuota": "8",
                                                             "borrowingLimit": "4", "lendingLimit": "2"}]}]},
        ],
    },
}
RESOURCE_FLAVOR = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": "serving"},
                   "spec": {"nodeLabels": {"gpufleet.io/gpu-pool": "serving"},
                            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}}
JOB = {"apiVersion": "batch/v1", "kind": "Job",
       "metadata": {"name": "train", "namespace": "research", "labels": {"kueue.x-k8s.io/queue-name": "research"}},
       "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}


def test_well_formed_kueue_objects_are_admitted():
    for obj in (CLUSTER_QUEUE, RESOURCE_FLAVOR, JOB, with_(RAY_JOB, "metadata.labels", {"kueue.x-k8s.io/queue-name": "research"})):
        assert admission_problems(obj) == [], obj["kind"]
    v1beta1 = with_(with_(CLUSTER_QUEUE, "apiVersion", "kueue.x-k8s.io/v1beta1"), "spec.cohortName", None)
    assert admission_problems(with_(v1beta1, "spec.cohort", "gpufleet")) == []


GPU_QUOTA = "spec.resourceGroups[1].flavors[0].resources[0]"


@pytest.mark.parametrize(("path", "value", "message"), [
    # validateLimit: borrowing/lending limits need a cohort
    ("spec.cohortName", None, f'{GPU_QUOTA}.borrowingLimit: Invalid value: "4": must be nil when cohort is empty'),
    # validateLendingLimit
    (f"{GPU_QUOTA}.lendingLimit", "9",
     f'{GPU_QUOTA}.lendingLimit: Invalid value: "9": must be less than or equal to the nominalQuota'),
    # validateResourceQuantity
    (f"{GPU_QUOTA}.nominalQuota", "-1", f'{GPU_QUOTA}.nominalQuota: Invalid value: "-1": must be greater than or equal to 0'),
    # validateFlavorQuotas: resources follow coveredResources
    (f"{GPU_QUOTA}.name", "nvidia.com/mig-1g.10gb",
     f'{GPU_QUOTA}.name: Invalid value: "nvidia.com/mig-1g.10gb": must match the name in coveredResources'),
    # validateResourceGroups: a resource and a flavor appear once across groups
    ("spec.resourceGroups[1].coveredResources", ["cpu"],
     'spec.resourceGroups[1].coveredResources[0]: Duplicate value: "cpu"'),
    ("spec.resourceGroups[1].flavors[0].name", "cpu", 'spec.resourceGroups[1].flavors[0].name: Duplicate value: "cpu"'),
    # ValidateLabelSelector
    ("spec.namespaceSelector.matchExpressions[0].values", [],
     "spec.namespaceSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"),
])
def test_kueue_rejects_cluster_queues(path, value, message):
    bad = with_(CLUSTER_QUEUE, path, value)
    if path == "spec.resourceGroups[1].coveredResources":
        bad = with_(with_(bad, f"{GPU_QUOTA}.name", "cpu"), "spec.resourceGroups[1].flavors[0].name", "serving")
    problem = only(admission_problems(bad))
    assert problem.startswith(KUEUE) and message in problem
    if path == "spec.cohortName":  # every limit is reported, aggregated like field.ErrorList
        assert problem.count("must be nil when cohort is empty") == 4 and problem.endswith("]")


@pytest.mark.parametrize(("path", "value", "message"), [
    ("spec.nodeLabels", {"gpufleet.io/gpu-pool": "serving pool"},
     'spec.nodeLabels: Invalid value: "serving pool": a valid label must be an empty string or consist of alphanumeric '
     "characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
    ("spec.nodeTaints", [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}, {"key": "nvidia.com/gpu", "value": "x", "effect": "NoSchedule"}],
     "taints must be unique by key and effect pair"),
    ("spec.tolerations", [{"key": "nvidia.com/gpu", "operator": "Exists", "value": "true", "effect": "NoSchedule"}],
     "value must be empty when `operator` is 'Exists'"),
    ("spec.tolerations", [{"operator": "Equal", "value": "x"}],
     'spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when `key` is empty'),
])
def test_kueue_rejects_resource_flavors(path, value, message):
    problem = only(admission_problems(with_(RESOURCE_FLAVOR, path, value)))
    assert problem.startswith(KUEUE) and message in problem


@pytest.mark.parametrize(("labels", "message"), [
    ({"kueue.x-k8s.io/queue-name": "Research_Team"},
     'metadata.labels[kueue.x-k8s.io/queue-name]: Invalid value: "Research_Team": a lowercase RFC 1123 subdomain must '
     "consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
    ({"kueue.x-k8s.io/priority-class": "Batch_High"},
     'metadata.labels[kueue.x-k8s.io/priority-class]: Invalid value: "Batch_High": a lowercase RFC 1123 subdomain'),
    ({"kueue.x-k8s.io/max-exec-time-seconds": "0"},
     "metadata.labels[kueue.x-k8s.io/max-exec-time-seconds]: Invalid value: 0: should be greater than 0"),
    ({"kueue.x-k8s.io/max-exec-time-seconds": "1h"},
     'metadata.labels[kueue.x-k8s.io/max-exec-time-seconds]: Invalid value: "1h": strconv.Atoi: parsing "1h": invalid syntax'),
])
def test_kueue_rejects_bad_labels_on_jobs(labels, message):
    for obj in (JOB, RAY_JOB, RAY_CLUSTER):
        bad = with_(obj, "metadata.labels", labels)
        problem = only(admission_problems(bad))
        assert problem.startswith(KUEUE) and message in problem, obj["kind"]
    # the same label on a kind Kueue does not manage is nobody's business
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": labels}, "spec": {}}
    assert admission_problems(service) == []


def test_kueue_prebuilt_workloads_only_for_supported_kinds():
    label = {"kueue.x-k8s.io/prebuilt-workload-name": "wl-1"}
    assert admission_problems(with_(RAY_JOB, "metadata.labels", label)) == []
    assert only(admission_problems(with_(RAY_CLUSTER, "metadata.labels", label))) == (
        KUEUE + 'metadata.labels[kueue.x-k8s.io/prebuilt-workload-name]: Forbidden: Is not supported for '
        '"ray.io/v1, Kind=RayCluster"')


def test_local_queue_names_are_checked_by_the_crd(upstream):
    validator = ManifestValidator(KUBERNETES_VERSION, [upstream / "crds"])
    lq = {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
          "metadata": {"name": "research", "namespace": "research"}, "spec": {"clusterQueue": "research"}}
    assert validator.validate(lq) == [] and admission_problems(lq) == []
    (error,) = validator.validate(with_(lq, "spec.clusterQueue", "Research_Queue"))
    assert error.startswith("spec.clusterQueue: Invalid value: 'Research_Queue' does not match")


# --------------------------------------------------------------------------------------------------
# Gateway API v1.6.1: the rules are CEL in the CRDs (no webhook)
# --------------------------------------------------------------------------------------------------

HTTP_ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
    "metadata": {"name": "chat-8b", "namespace": "serving"},
    "spec": {
        "parentRefs": [{"name": "eg", "namespace": "envoy-gateway-system"}],
        "hostnames": ["chat-8b.serving.example.com"],
        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                   "backendRefs": [{"name": "chat-8b-predictor", "port": 80, "weight": 90},
                                   {"name": "chat-8b-canary-predictor", "port": 80, "weight": 10}]}],
    },
}


@pytest.fixture(scope="module")
def gateway_validator(upstream):
    """The validator `gpufleet plan` and the harness use: every upstream CRD."""
    return ManifestValidator(KUBERNETES_VERSION, [upstream / "crds"])


def test_gateway_api_kinds_are_validated_by_the_crd_path(gateway_validator):
    for kind in ("Gateway", "HTTPRoute", "GRPCRoute", "ReferenceGrant", "GatewayClass"):
        assert (("gateway.networking.k8s.io/v1beta1" if kind == "ReferenceGrant" else "gateway.networking.k8s.io/v1"), kind) in (
            gateway_validator.crd_kinds())
    assert gateway_validator.validate(HTTP_ROUTE) == []
    assert admission_problems(HTTP_ROUTE) == []


@pytest.mark.parametrize(("path", "value", "message"), [
    ("spec.rules[0].backendRefs[1].port", None,
     "spec.rules[0].backendRefs[1]: Invalid value: Must have port for Service reference"),
    ("spec.parentRefs", [{"name": "eg", "namespace": "envoy-gateway-system"}, {"name": "eg", "namespace": "envoy-gateway-system"}],
     "spec.parentRefs: Invalid value: sectionName must be unique when parentRefs includes 2 or more references to the same parent"),
    ("spec.rules[0].backendRefs[0].weight", 1000001,
     "spec.rules[0].backendRefs[0].weight: Invalid value: 1000001 is greater than the maximum of 1000000"),
    ("spec.rules[0].filters", [{"type": "RequestRedirect", "requestRedirect": {"statusCode": 302}}],
     "spec.rules[0]: Invalid value: RequestRedirect filter must not be used together with backendRefs"),
])
def test_gateway_api_http_route_rules_reject(gateway_validator, path, value, message):
    errors = gateway_validator.validate(with_(HTTP_ROUTE, path, value))
    assert any(e.startswith(message) for e in errors), errors


GATEWAY = {
    "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
    "metadata": {"name": "eg", "namespace": "envoy-gateway-system"},
    "spec": {"gatewayClassName": "eg", "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
}


def test_gateway_api_gateway_rules(gateway_validator):
    assert gateway_validator.validate(GATEWAY) == []
    tls = {"mode": "Terminate", "certificateRefs": [{"name": "serving-tls"}]}
    errors = gateway_validator.validate(with_(GATEWAY, "spec.listeners[0].tls", tls))
    assert any(e.startswith("spec.listeners: Invalid value: tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']")
               for e in errors), errors
    https = with_(with_(with_(GATEWAY, "spec.listeners[0].tls", tls), "spec.listeners[0].protocol", "HTTPS"),
                  "spec.listeners[0].port", 443)
    assert gateway_validator.validate(https) == []


# --------------------------------------------------------------------------------------------------
# The test harness applies the admission layer to every rendered object
# --------------------------------------------------------------------------------------------------

def test_the_harness_fails_a_test_whose_object_a_webhook_rejects(run):
    import pulumi_kubernetes as k8s

    def program():
        k8s.apiextensions.CustomResource("cq", api_version="kueue.x-k8s.io/v1beta2", kind="ClusterQueue",
                                         metadata={"name": "generous"},
                                         spec={"cohortName": "gpufleet", "resourceGroups": [
                                             {"coveredResources": ["nvidia.com/gpu"], "flavors": [
                                                 {"name": "gpu", "resources": [{"name": "nvidia.com/gpu", "nominalQuota": "4",
                                                                                "lendingLimit": "6"}]}]}]})

    with pytest.raises(AssertionError) as failure:
        run(program)
    assert (
        "the API server would reject ClusterQueue/generous: Kueue admission webhook: "
        'spec.resourceGroups[0].flavors[0].resources[0].lendingLimit: Invalid value: "6": must be less than or equal to '
        "the nominalQuota"
    ) in str(failure.value)
