"""``RayCluster`` and ``RayService``: every rendered object passes the KubeRay v1.7.0 CRDs (the ``run``
fixture), and each production-checklist item is generated for the head and every worker group."""

from __future__ import annotations

from collections import Counter

import pytest
import yaml

from gpufleet.components.gpu_instances import instance_types_of
from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.components.ray_cluster import RayCluster, RayService

CLUSTER = "gpufleet:ray:RayCluster"
SERVICE = "gpufleet:ray:RayService"
RAY_CLUSTER = "kubernetes:ray.io/v1:RayCluster"
RAY_SERVICE = "kubernetes:ray.io/v1:RayService"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"

BATCH = GpuPlacement("batch", tuple(instance_types_of(families=["g6e", "p4d"])), ("spot",), gpu_limit=64)
SLICED = GpuPlacement("gpu-dev", tuple(instance_types_of(families=["g5", "g6"])), sharing="time-slicing",
                      time_slicing_replicas=4)
MIG = GpuPlacement("serving-mig", tuple(instance_types_of(families=["p4de", "p5"])), sharing="mig",
                   mig_profile="1g.10gb")
GROUP = {"group_name": "gpu", "gpus": 4, "cpu": "40", "memory": "300Gi", "min_replicas": 1, "max_replicas": 4}
BASE = {"namespace": "research", "placement": BATCH, "worker_groups": [GROUP], "weights_claim": "model-weights"}
APP = {"name": "llm", "import_path": "serve_app:app", "route_prefix": "/generate",
       "deployments": [{"name": "LLM", "gpus": 1, "min_replicas": 1, "max_replicas": 4}]}
SERVICE_GROUP = {"group_name": "gpu", "gpus": 1, "cpu": "8", "memory": "64Gi", "min_replicas": 1, "max_replicas": 4}
SERVICE_BASE = {"namespace": "serving", "placement": BATCH, "worker_groups": [SERVICE_GROUP], "applications": [APP]}


def ray_cluster(**overrides):
    def program():
        RayCluster("batch-ray", {**BASE, **overrides})
    return program


def ray_service(**overrides):
    def program():
        RayService("llm", {**SERVICE_BASE, **overrides})
    return program


def spec_of(recording):
    return recording.one(RAY_CLUSTER).inputs["spec"]


def worker_pod(spec, index=0):
    return spec["workerGroupSpecs"][index]["template"]["spec"]


# -- RayCluster ------------------------------------------------------------------------------------

def test_children_are_exact(run):
    recording = run(ray_cluster(worker_groups=[GROUP, {**GROUP, "group_name": "gpu-large", "gpus": 8, "cpu": "90", "memory": "600Gi", "max_replicas": 2}]))
    component = recording.one(CLUSTER)
    children = recording.children(component.urn)
    assert Counter(c.type for c in children) == {RAY_CLUSTER: 1, PDB: 2}
    assert all(c.name.startswith("batch-ray-") for c in children)
    cluster = recording.one(RAY_CLUSTER)
    assert cluster.inputs["apiVersion"] == "ray.io/v1"
    assert cluster.inputs["metadata"]["name"] == "batch-ray"
    assert cluster.inputs["metadata"]["namespace"] == "research"


def test_head_runs_on_cpu_nodes_and_schedules_no_work(run):
    head = spec_of(run(ray_cluster()))["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    pod = head["template"]["spec"]
    assert pod["nodeSelector"] == {"gpufleet.io/node-role": "system"}
    assert "tolerations" not in pod
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term == {"matchExpressions": [{"key": "gpufleet.io/gpu-pool", "operator": "DoesNotExist"}]}
    (container,) = pod["containers"]
    assert container["resources"]["requests"] == container["resources"]["limits"] == {"cpu": "1", "memory": "4Gi"}
    assert {p["name"] for p in container["ports"]} == {"gcs-server", "dashboard", "client"}
    assert container["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["priorityClassName"] == "gpufleet-batch"


def test_head_may_use_a_cpu_node_pool(run):
    head = spec_of(run(ray_cluster(head={"node_selector": {"karpenter.sh/nodepool": "cpu"}, "cpu": "4", "memory": "16Gi"})))["headGroupSpec"]
    assert head["template"]["spec"]["nodeSelector"] == {"karpenter.sh/nodepool": "cpu"}


@pytest.mark.parametrize(("placement", "resource", "gpus"), [
    (BATCH, "nvidia.com/gpu", 4), (SLICED, "nvidia.com/gpu.shared", 2), (MIG, "nvidia.com/mig-1g.10gb", 3)])
def test_worker_gpu_request_equals_limit_in_the_pools_resource(run, placement, resource, gpus):
    group = {**GROUP, "gpus": gpus, "cpu": "8", "memory": "60Gi"}
    spec = spec_of(run(ray_cluster(placement=placement, worker_groups=[group])))
    (container,) = worker_pod(spec)["containers"]
    assert container["resources"]["requests"] == container["resources"]["limits"] == {"cpu": "8", "memory": "60Gi", resource: gpus}
    # Ray is told the GPU count also when KubeRay cannot detect it (shared or MIG resources).
    assert spec["workerGroupSpecs"][0]["rayStartParams"] == {"num-gpus": str(gpus)}


def test_mig_slices_under_the_single_strategy_are_not_counted_as_whole_gpus(run):
    """Under the single MIG strategy slices are advertised as nvidia.com/gpu, but the pool's
    gpu_limit counts physical GPUs: 3 workers × 7 slices (21) fit a 16-GPU pool (112 slices)."""
    single = GpuPlacement("serving-mig", MIG.instance_types, sharing="mig", mig_profile="1g.10gb",
                          mig_strategy="single", gpu_limit=16)
    group = {**GROUP, "gpus": 7, "cpu": "8", "memory": "60Gi", "max_replicas": 3}
    (container,) = worker_pod(spec_of(run(ray_cluster(placement=single, worker_groups=[group]))))["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 7


def test_workers_tolerate_and_select_their_pool(run):
    pod = worker_pod(spec_of(run(ray_cluster())))
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["nodeSelector"] == {"gpufleet.io/gpu-pool": "batch"}


def test_a_group_may_run_on_another_pool(run):
    spec = spec_of(run(ray_cluster(worker_groups=[GROUP, {**GROUP, "group_name": "mig", "gpus": 2, "cpu": "8", "memory": "60Gi", "placement": MIG}])))
    assert worker_pod(spec, 1)["nodeSelector"] == {"gpufleet.io/gpu-pool": "serving-mig"}
    assert "nvidia.com/mig-1g.10gb" in worker_pod(spec, 1)["containers"][0]["resources"]["limits"]


def test_workers_get_shm_and_the_weights_claim(run):
    pod = worker_pod(spec_of(run(ray_cluster(weights_mount_path="/mnt/models", worker_groups=[{**GROUP, "shm_size": "32Gi"}]))))
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"] == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "32Gi"}}
    assert volumes["model-weights"] == {"name": "model-weights", "persistentVolumeClaim": {"claimName": "model-weights"}}
    (container,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"dshm": "/dev/shm", "model-weights": "/mnt/models"}
    assert container["env"] == [{"name": "HF_HOME", "value": "/mnt/models/huggingface"}]


def test_without_a_weights_claim_there_is_no_weights_volume(run):
    pod = worker_pod(spec_of(run(ray_cluster(weights_claim=None))))
    assert [v["name"] for v in pod["volumes"]] == ["dshm"]


def test_workers_are_non_root_prioritised_and_spread(run):
    pod = worker_pod(spec_of(run(ray_cluster(role="training"))))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = pod["containers"][0]["securityContext"]
    assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}
    assert pod["priorityClassName"] == "gpufleet-training"
    assert pod["automountServiceAccountToken"] is False
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == {"gpufleet.io/ray-workload": "batch-ray", "gpufleet.io/ray-group": "gpu"}


def test_spread_can_be_turned_off_per_group(run):
    assert "affinity" not in worker_pod(spec_of(run(ray_cluster(worker_groups=[{**GROUP, "spread": False}]))))


def test_worker_probes_are_separate_and_generous(run):
    container = worker_pod(spec_of(run(ray_cluster(startup_seconds=600))))["containers"][0]
    startup, ready, live = container["startupProbe"], container["readinessProbe"], container["livenessProbe"]
    assert startup["httpGet"] == {"path": "/api/local_raylet_healthz", "port": 52365, "scheme": "HTTP"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 2 * 600
    assert live["periodSeconds"] > ready["periodSeconds"] and live["failureThreshold"] > ready["failureThreshold"]


def test_autoscaling_between_min_and_max(run):
    spec = spec_of(run(ray_cluster(idle_timeout_seconds=900)))
    assert spec["enableInTreeAutoscaling"] is True
    group = spec["workerGroupSpecs"][0]
    assert (group["minReplicas"], group["replicas"], group["maxReplicas"]) == (1, 1, 4)
    options = spec["autoscalerOptions"]
    assert options["idleTimeoutSeconds"] == 900
    assert options["securityContext"]["runAsNonRoot"] is True
    assert options["resources"]["requests"] == options["resources"]["limits"]


def test_without_autoscaling_every_worker_starts(run):
    spec = spec_of(run(ray_cluster(autoscaling=False)))
    assert spec["enableInTreeAutoscaling"] is False
    assert "autoscalerOptions" not in spec
    assert spec["workerGroupSpecs"][0]["replicas"] == 4


def test_ray_version_and_image_are_pinned(run):
    spec = spec_of(run(ray_cluster()))
    assert spec["rayVersion"] == "2.58.0"
    images = {spec["headGroupSpec"]["template"]["spec"]["containers"][0]["image"], worker_pod(spec)["containers"][0]["image"]}
    assert images == {"rayproject/ray:2.58.0-py312-gpu"}


def test_queue_label_and_elastic_annotation(run):
    metadata = run(ray_cluster(queue_name="research")).one(RAY_CLUSTER).inputs["metadata"]
    assert metadata["labels"]["kueue.x-k8s.io/queue-name"] == "research"
    assert metadata["annotations"] == {"kueue.x-k8s.io/elastic-job": "true"}
    fixed = run(ray_cluster(queue_name="research", autoscaling=False)).one(RAY_CLUSTER).inputs["metadata"]
    assert "annotations" not in fixed
    unqueued = run(ray_cluster()).one(RAY_CLUSTER).inputs["metadata"]
    assert "kueue.x-k8s.io/queue-name" not in unqueued["labels"]


def test_queued_cluster_names_the_workload_priority_class_of_its_role(run):
    """Kueue 0.19 takes a queued object's priority from its kueue.x-k8s.io/priority-class label (a
    WorkloadPriorityClass) before the pods' PriorityClass: gpufleet's classes share names and values."""
    batch = run(ray_cluster(queue_name="research")).one(RAY_CLUSTER).inputs["metadata"]["labels"]
    assert batch["kueue.x-k8s.io/priority-class"] == "gpufleet-batch"
    training = run(ray_cluster(queue_name="research", role="training")).one(RAY_CLUSTER).inputs
    assert training["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "gpufleet-training"
    assert training["spec"]["headGroupSpec"]["template"]["spec"]["priorityClassName"] == "gpufleet-training"
    # Unqueued: Kueue never sees it, and the class may not exist.
    assert "kueue.x-k8s.io/priority-class" not in run(ray_cluster()).one(RAY_CLUSTER).inputs["metadata"]["labels"]


def test_a_pdb_per_worker_group_selects_its_workers(run):
    recording = run(ray_cluster())
    cluster = recording.one(RAY_CLUSTER)
    pdb = recording.one(PDB)
    assert pdb.inputs["metadata"] == {"name": "batch-ray-gpu", "namespace": "research", "labels": {"app.kubernetes.io/managed-by": "gpufleet"}}
    assert pdb.inputs["spec"] == {"maxUnavailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow", "selector": {"matchLabels": {
        "gpufleet.io/ray-workload": "batch-ray", "gpufleet.io/ray-group": "gpu"}}}
    assert spec_of(recording)["workerGroupSpecs"][0]["template"]["metadata"]["labels"] == pdb.inputs["spec"]["selector"]["matchLabels"]
    assert cluster.urn in pdb.dependencies


M = "gpufleet:ray:RayCluster: "


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"worker_groups": [{**GROUP, "gpus": 9}]},
         r"worker_groups\[0\]\.gpus \(9\) exceeds .*\(8 × nvidia.com/gpu, placement.max_resources_per_node\)"),
        ({"placement": MIG, "worker_groups": [{**GROUP, "gpus": 57, "cpu": "8", "memory": "60Gi"}]},
         r"worker_groups\[0\]\.gpus \(57\) exceeds .*\(56 × nvidia.com/mig-1g.10gb, placement.max_resources_per_node\)"),
        ({"worker_groups": [{**GROUP, "memory": "2000Gi"}]}, r"worker_groups\[0\]\.memory \(2000Gi\) exceeds the largest instance type"),
        ({"worker_groups": [{**GROUP, "cpu": "500"}]}, r"worker_groups\[0\]\.cpu \(500\) exceeds the largest instance type"),
        ({"worker_groups": [{**GROUP, "min_replicas": 5}]}, r"worker_groups\[0\]\.min_replicas \(5\) is above"),
        ({"worker_groups": [{**GROUP, "max_replicas": 17}]}, r"worker_groups\[0\]\.max_replicas × gpus \(17 × 4\) exceeds .*placement.gpu_limit"),
        ({"worker_groups": [{**GROUP, "shm_size": "300Gi"}]}, r"worker_groups\[0\]\.shm_size \(300Gi\) must be below"),
        ({"worker_groups": [{**GROUP, "group_name": "GPU"}]}, r"worker_groups\[0\]\.group_name must be a DNS label"),
        ({"worker_groups": [{k: v for k, v in GROUP.items() if k != "memory"}]}, r"worker_groups\[0\]\.memory is required"),
        ({"worker_groups": [GROUP, GROUP]}, "worker_groups repeats a group_name"),
        ({"worker_groups": []}, "worker_groups must define at least one group"),
        ({"queue_name": "q", "worker_groups": [{**GROUP, "group_name": f"g{i}"} for i in range(8)]}, "worker_groups has 8 groups; Kueue admits at most 7"),
        ({"queue_name": "q", "worker_groups": [{**GROUP, "group_name": "head"}]}, r"worker_groups\[0\]\.group_name 'head' is reserved by Kueue"),
        ({"head": {"node_selector": {"gpufleet.io/gpu-pool": "batch"}}}, "head.node_selector selects GPU nodes"),
        ({"head": {"memory": "lots"}}, "head.memory must be a Kubernetes quantity"),
        ({"image": "rayproject/ray:latest"}, r"image \(rayproject/ray:latest\) must be pinned to a release"),
        ({"image": "rayproject/ray"}, r"image \(rayproject/ray\) must be pinned by tag or digest"),
        ({"image": "rayproject/ray:2.41.0-gpu"}, r"image \(rayproject/ray:2.41.0-gpu\) does not match ray_version '2.58.0'"),
        ({"ray_version": "2.58"}, "ray_version must be a release"),
        ({"role": "inference"}, "role must be one of 'training', 'batch'"),
        ({"placement": "batch"}, "placement must be a GpuPlacement"),
        ({"weights_claim": "Model Weights"}, "weights_claim is not a PVC name"),
        ({"weights_mount_path": "/dev/shm"}, "weights_mount_path must be an absolute path"),
        ({"namespace": None}, "namespace is required"),
    ],
)
def test_argument_errors_name_the_field(overrides, message):
    with pytest.raises((ValueError, TypeError), match=f"^{M}{message}"):
        RayCluster("batch-ray", {**BASE, **overrides})


def test_objects_wait_for_what_they_need(run):
    def program():
        import pulumi_kubernetes as k8s

        operator = k8s.core.v1.Namespace("operator-stand-in", metadata={"name": "kuberay-system"})
        RayCluster("batch-ray", {**BASE, "wait_for": [operator]})
        RayService("llm", {**SERVICE_BASE, "wait_for": [operator]})

    recording = run(program)
    operator = recording.one("kubernetes:core/v1:Namespace")
    assert operator.urn in recording.one(RAY_CLUSTER).dependencies
    assert operator.urn in recording.one(RAY_SERVICE).dependencies


def test_custom_images_are_accepted_when_pinned(run):
    image = "123456789012.dkr.ecr.us-west-2.amazonaws.com/ml/ray-vllm:2025.11.1"
    spec = spec_of(run(ray_cluster(image=image)))
    assert worker_pod(spec)["containers"][0]["image"] == image


# -- RayService ------------------------------------------------------------------------------------

def service_spec(recording):
    return recording.one(RAY_SERVICE).inputs["spec"]


def test_service_children_are_exact(run):
    recording = run(ray_service())
    children = recording.children(recording.one(SERVICE).urn)
    assert Counter(c.type for c in children) == {RAY_SERVICE: 1, PDB: 1}


def test_service_workers_get_the_same_hygiene_with_inference_priority(run):
    spec = service_spec(run(ray_service(weights_claim="model-weights")))
    cluster = spec["rayClusterConfig"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    pod = worker_pod(cluster)
    (container,) = pod["containers"]
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["priorityClassName"] == "gpufleet-inference"
    assert pod["nodeSelector"] == {"gpufleet.io/gpu-pool": "batch"}
    assert {v["name"] for v in pod["volumes"]} == {"dshm", "model-weights"}
    assert {"name": "serve", "containerPort": 8000, "protocol": "TCP"} in container["ports"]
    assert spec["excludeHeadPodFromServeSvc"] is True
    assert cluster["autoscalerOptions"]["idleTimeoutSeconds"] == 600


def test_serve_config_requests_gpus_and_scales_down_slowly(run):
    config = yaml.safe_load(service_spec(run(ray_service()))["serveConfigV2"])
    (app,) = config["applications"]
    assert (app["name"], app["import_path"], app["route_prefix"]) == ("llm", "serve_app:app", "/generate")
    (deployment,) = app["deployments"]
    assert deployment["ray_actor_options"] == {"num_gpus": 1}
    scaling = deployment["autoscaling_config"]
    assert (scaling["min_replicas"], scaling["max_replicas"]) == (1, 4)
    assert scaling["downscale_delay_s"] >= 300


S = "gpufleet:ray:RayService: "


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"applications": [{**APP, "deployments": [{"name": "LLM", "gpus": 2}]}]},
         r"applications\[0\]\.deployments\[0\]\.gpus \(2\) exceeds the largest worker \(1 GPUs\)"),
        ({"applications": [{**APP, "deployments": [{"name": "LLM", "gpus": 1, "max_replicas": 5}]}]},
         r"applications need up to 5 GPUs at max_replicas but worker_groups offer 4"),
        ({"applications": [{**APP, "import_path": "serve_app"}]}, r"applications\[0\]\.import_path must look like"),
        ({"applications": [APP, {**APP, "name": "other"}]}, r"applications\[1\]\.route_prefix must be a unique path"),
        ({"applications": []}, "applications must define at least one Serve application"),
        # A RayService always serves (inference priority): role is not one of its arguments.
        ({"role": "batch"}, r"unknown argument 'role' \(RayServiceArgs takes applications, "),
        ({"worker_groups": [{**SERVICE_GROUP, "gpus": 16}]}, r"worker_groups\[0\]\.gpus \(16\) exceeds .*placement.max_resources_per_node"),
    ],
)
def test_service_argument_errors_name_the_field(overrides, message):
    with pytest.raises((ValueError, TypeError), match=f"^{S}{message}"):
        RayService("llm", {**SERVICE_BASE, **overrides})
