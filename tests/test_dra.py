"""DRA pools (``allocation: dra``): the pool's nodes keep the device plugin off, the NVIDIA DRA driver
runs there, workloads claim GPUs with ResourceClaimTemplates instead of ``nvidia.com/gpu`` limits, Kueue
maps the DeviceClasses to the quota's resource names, team quotas count DeviceClass devices; and every
combination that cannot work is refused naming its field."""

from __future__ import annotations

import json
import runpy
from collections import Counter

import pytest
import yaml

from gpufleet.components.dra_driver import NvidiaDraDriver, driver_values
from gpufleet.components.gpu_claims import claim_template_spec
from gpufleet.components.gpu_instances import instance_types_of
from gpufleet.components.gpu_node_pool import PoolArgumentError, pool_spec
from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.components.inference_service import InferenceService
from gpufleet.components.kueue_controller import device_class_mappings, helm_values
from gpufleet.components.multi_node_inference import MultiNodeInferenceService
from gpufleet.components.ray_cluster import RayCluster
from gpufleet.components.team import Team
from gpufleet.components.training_job import train_job_spec
from gpufleet.components.triton_service import TritonService
from gpufleet.infra.config import ConfigError, parse_stack_config
from tests.harness import BASE_CONFIG, REPO, child_types, stack_config

RCT = "kubernetes:resource.k8s.io/v1:ResourceClaimTemplate"
ISVC = "kubernetes:serving.kserve.io/v1beta1:InferenceService"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"

DRA = GpuPlacement("serving-dra", tuple(instance_types_of(types=["g6e.2xlarge", "g6e.4xlarge"])), gpu_limit=4,
                   allocation="dra")
DRA_4 = GpuPlacement("train-dra", tuple(instance_types_of(types=["g6e.12xlarge"])), gpu_limit=16, allocation="dra")
DRA_MIG = GpuPlacement("mig-dra", tuple(instance_types_of(types=["p5.48xlarge"])), gpu_limit=16, sharing="mig",
                       mig_profile="1g.10gb", allocation="dra")
WHOLE = GpuPlacement("serving", tuple(instance_types_of(families=["g6e"])), gpu_limit=8)
ONE_GPU = {"spec": {"devices": {"requests": [
    {"name": "gpus", "exactly": {"deviceClassName": "gpu.nvidia.com", "allocationMode": "ExactCount", "count": 1}}]}}}
DRA_POOL = {"instance_types": ["g6e.2xlarge"], "allocation": "dra", "limits": {"gpus": 2, "cpu": 16, "memory_gib": 128}}


def program():
    runpy.run_path(str(REPO / "infra"), run_name="__main__")


def gpu_limits(containers):
    return [name for c in containers for kind in ("requests", "limits")
            for name in c.get("resources", {}).get(kind, {}) if name.startswith("nvidia.com/")]


# -- the pool -------------------------------------------------------------------------------------


def test_a_dra_pool_keeps_the_device_plugin_off_and_consolidates_only_empty_nodes():
    spec = pool_spec("serving-dra", DRA_POOL)
    assert spec.placement.dra and spec.placement.device_class == "gpu.nvidia.com"
    assert spec.node_pool["template"]["metadata"]["labels"] == {
        "accelerator": "nvidia-gpu", "gpufleet.io/gpu-pool": "serving-dra", "nvidia.com/gpu.deploy.device-plugin": "false"}
    assert spec.node_pool["disruption"]["consolidationPolicy"] == "WhenEmpty"
    assert spec.placement.quota_resource == "gpu.nvidia.com.deviceclass.resource.k8s.io/devices"
    # Karpenter still bounds the pool by its instance types' GPUs.
    assert spec.node_pool["limits"]["nvidia.com/gpu"] == 2


def test_a_dra_mig_pool_claims_mig_devices_and_needs_no_node_overlay():
    spec = pool_spec("mig-dra", {"instance_types": ["p5.48xlarge"], "allocation": "dra",
                                 "limits": {"gpus": 16, "cpu": 384, "memory_gib": 4096},
                                 "sharing": {"mode": "mig", "mig_profile": "1g.10gb"}})
    assert spec.placement.device_class == "mig.nvidia.com"
    assert spec.node_overlays == {}
    assert spec.node_pool["template"]["metadata"]["labels"]["nvidia.com/mig.config"] == "all-1g.10gb"
    assert claim_template_spec(spec.placement, 2) == {"spec": {"devices": {"requests": [{"name": "gpus", "exactly": {
        "deviceClassName": "mig.nvidia.com", "allocationMode": "ExactCount", "count": 2,
        "selectors": [{"cel": {"expression": "device.attributes['gpu.nvidia.com'].profile == '1g.10gb'"}}]}}]}}}


@pytest.mark.parametrize("overrides, field, words", [
    ({"instance_types": ["g6.xlarge"], "sharing": {"mode": "time-slicing", "replicas": 4},
      "limits": {"gpus": 2, "cpu": 16, "memory_gib": 64}}, "allocation", "time-slicing is the NVIDIA device plugin's sharing"),
    ({"instance_types": ["g6.xlarge"], "sharing": {"mode": "mps", "replicas": 4},
      "limits": {"gpus": 2, "cpu": 16, "memory_gib": 64}}, "allocation", "mps is the NVIDIA device plugin's sharing"),
    ({"ami_family": "bottlerocket"}, "allocation", "runs its own device plugin"),
    ({"instance_types": ["g6e.2xlarge", "g6e.12xlarge"], "limits": {"gpus": 8, "cpu": 64, "memory_gib": 512}},
     "allocation", "different GPU counts (g6e.2xlarge 1, g6e.12xlarge 4)"),
    ({"disruption": {"consolidation_policy": "WhenEmptyOrUnderutilized"}}, "disruption.consolidation_policy",
     "Karpenter ignores DRA claims when it consolidates"),
    ({"allocation": "claims"}, "allocation", "must be one of 'devicePlugin', 'dra'"),
])
def test_combinations_that_cannot_work_are_refused_naming_the_field(overrides, field, words):
    with pytest.raises(PoolArgumentError) as error:
        pool_spec("serving-dra", {**DRA_POOL, **overrides})
    assert error.value.field == field and words in error.value.problem


def test_the_dra_label_is_gpufleets_own():
    with pytest.raises(PoolArgumentError, match="nvidia.com/gpu.deploy.device-plugin"):
        pool_spec("serving", {**DRA_POOL, "allocation": "devicePlugin",
                              "labels": {"nvidia.com/gpu.deploy.device-plugin": "false"}})


# -- workloads ------------------------------------------------------------------------------------


def test_inference_service_claims_its_gpus_from_a_template(run):
    recording = run(lambda: InferenceService("chat", {
        "namespace": "serving", "placement": DRA, "model_name": "qwen", "storage_uri": "pvc://model-weights/qwen",
        "cpu": "4", "memory": "24Gi", "shm_size": "4Gi"}))
    assert child_types(recording, "gpufleet:kserve:InferenceService", name_prefix="chat-") == Counter(
        {ISVC: 1, PDB: 1, RCT: 1})
    template = recording.one(RCT).inputs
    assert template["metadata"]["name"] == "chat-gpus" and template["metadata"]["namespace"] == "serving"
    assert template["spec"] == ONE_GPU
    predictor = recording.one(ISVC).inputs["spec"]["predictor"]
    assert predictor["resourceClaims"] == [{"name": "gpus", "resourceClaimTemplateName": "chat-gpus"}]
    (container,) = predictor["containers"]
    assert container["resources"] == {"requests": {"cpu": "4", "memory": "24Gi"},
                                      "limits": {"cpu": "4", "memory": "24Gi"}, "claims": [{"name": "gpus"}]}
    assert gpu_limits(predictor["containers"]) == []
    assert predictor["nodeSelector"] == {"gpufleet.io/gpu-pool": "serving-dra"}
    # the InferenceService waits for its template
    assert recording.one(RCT).urn in recording.one(ISVC).dependencies


def test_device_plugin_pools_keep_their_limits_and_no_template(run):
    recording = run(lambda: InferenceService("chat", {
        "namespace": "serving", "placement": WHOLE, "model_name": "qwen", "storage_uri": "pvc://model-weights/qwen"}))
    assert recording.of_type(RCT) == []
    predictor = recording.one(ISVC).inputs["spec"]["predictor"]
    assert "resourceClaims" not in predictor and gpu_limits(predictor["containers"]) == ["nvidia.com/gpu"] * 2


def test_triton_on_a_mig_dra_pool_claims_one_slice_of_the_profile(run):
    recording = run(lambda: TritonService("rerank", {
        "namespace": "serving", "placement": DRA_MIG, "storage_uri": "pvc://model-weights/triton/rerank",
        "models": [{"name": "reranker", "backend": "onnxruntime", "max_batch_size": 8,
                    "source": "hf://cross-encoder/ms-marco-MiniLM-L6-v2@abc123", "files": ["onnx/model.onnx"]}]}))
    exactly = recording.one(RCT).inputs["spec"]["spec"]["devices"]["requests"][0]["exactly"]
    assert exactly["deviceClassName"] == "mig.nvidia.com" and exactly["count"] == 1
    assert exactly["selectors"] == [{"cel": {"expression": "device.attributes['gpu.nvidia.com'].profile == '1g.10gb'"}}]
    predictor = recording.one(ISVC).inputs["spec"]["predictor"]
    assert predictor["resourceClaims"] == [{"name": "gpus", "resourceClaimTemplateName": "rerank-gpus"}]
    assert gpu_limits(predictor["containers"]) == []


def test_ray_workers_on_a_dra_pool_claim_per_group(run):
    group = {"group_name": "gpu", "gpus": 4, "cpu": "40", "memory": "300Gi", "min_replicas": 1, "max_replicas": 2}
    cpu_group = {**group, "group_name": "plain", "placement": WHOLE, "gpus": 1, "cpu": "8", "memory": "60Gi"}
    recording = run(lambda: RayCluster("batch-ray", {"namespace": "research", "placement": DRA_4,
                                                      "worker_groups": [group, cpu_group]}))
    (template,) = recording.of_type(RCT)
    assert template.name == "batch-ray-gpu-gpu-claim"
    assert template.inputs["metadata"]["name"] == "batch-ray-gpu-gpus"
    assert template.inputs["spec"]["spec"]["devices"]["requests"][0]["exactly"]["count"] == 4
    dra_worker, plugin_worker = recording.one("kubernetes:ray.io/v1:RayCluster").inputs["spec"]["workerGroupSpecs"]
    assert dra_worker["template"]["spec"]["resourceClaims"] == [
        {"name": "gpus", "resourceClaimTemplateName": "batch-ray-gpu-gpus"}]
    assert gpu_limits(dra_worker["template"]["spec"]["containers"]) == []
    assert dra_worker["rayStartParams"]["num-gpus"] == "4"
    assert "resourceClaims" not in plugin_worker["template"]["spec"]
    assert gpu_limits(plugin_worker["template"]["spec"]["containers"]) == ["nvidia.com/gpu"] * 2


def test_multi_node_leaders_and_workers_claim_their_nodes_gpus(run):
    recording = run(lambda: MultiNodeInferenceService("ds", {
        "namespace": "serving", "placement": DRA_4, "model_name": "big", "storage_uri": "hf://org/big",
        "nodes": 2, "gpus_per_node": 4, "cpu": "40", "memory": "300Gi"}))
    assert recording.one(RCT).inputs["spec"]["spec"]["devices"]["requests"][0]["exactly"]["count"] == 4
    template = recording.one("kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet").inputs["spec"]["leaderWorkerTemplate"]
    for pod in (template["leaderTemplate"], template["workerTemplate"]):
        assert pod["spec"]["resourceClaims"] == [{"name": "gpus", "resourceClaimTemplateName": "ds-gpus"}]
        assert gpu_limits(pod["spec"]["containers"]) == []
        assert pod["spec"]["containers"][0]["resources"]["claims"] == [{"name": "gpus"}]


def test_a_trainjob_cannot_claim_devices():
    with pytest.raises(ValueError, match="runtimePatches pod spec has no resourceClaims"):
        train_job_spec({"namespace": "research", "placement": DRA_4, "image": "example/train:1.0",
                        "command": ["torchrun"], "checkpoint_claim": "ckpt", "cpu": "40", "memory": "300Gi"}, "pretrain")


# -- the driver -----------------------------------------------------------------------------------


def test_the_dra_driver_runs_its_kubelet_plugin_on_the_dra_pools_only(run):
    recording = run(lambda: NvidiaDraDriver("dra-driver", {"placements": [DRA, DRA_MIG]}))
    assert child_types(recording, "gpufleet:nvidia:NvidiaDraDriver", name_prefix="dra-driver-") == Counter(
        {NAMESPACE: 1, RELEASE: 1})
    namespace = recording.one(NAMESPACE).inputs["metadata"]
    assert namespace["name"] == "nvidia-dra-driver-gpu"
    assert namespace["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    release = recording.one(RELEASE).inputs
    assert (release["chart"], release["version"]) == ("nvidia-dra-driver-gpu", "25.12.0")
    values = release["values"]
    assert values["resources"] == {"gpus": {"enabled": True}, "computeDomains": {"enabled": False}}
    assert values["gpuResourcesEnabledOverride"] is True and values["resourceApiVersion"] == "resource.k8s.io/v1"
    assert values["kubeletPlugin"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "gpufleet.io/gpu-pool", "operator": "In", "values": ["mig-dra", "serving-dra"]}]}]}
    assert values["kubeletPlugin"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_the_driver_values_exist_in_the_pinned_chart(upstream):
    from gpufleet.infra.helm_values import chart_values, unknown_keys

    assert unknown_keys(driver_values([DRA]), chart_values(upstream / "charts" / "nvidia-dra-driver-gpu")) == []


def test_the_driver_refuses_device_plugin_pools_and_the_default_namespace():
    with pytest.raises(ValueError, match=r"placements\[0\] \(pool 'serving'\) allocates GPUs with the device plugin"):
        driver_values([WHOLE])
    with pytest.raises(ValueError, match="at least one DRA pool"):
        driver_values([])
    with pytest.raises(ValueError, match="namespace must not be 'default'"):
        NvidiaDraDriver("dra", {"placements": [DRA], "namespace": "default"})


# -- Kueue and quotas ----------------------------------------------------------------------------


def test_kueue_counts_claims_in_the_resource_the_cluster_queues_use():
    assert device_class_mappings([WHOLE, DRA, DRA_4]) == [{"name": "nvidia.com/gpu", "deviceClassNames": ["gpu.nvidia.com"]}]
    assert device_class_mappings([DRA, DRA_MIG]) == [
        {"name": "nvidia.com/gpu", "deviceClassNames": ["gpu.nvidia.com"]},
        {"name": "nvidia.com/mig-1g.10gb", "deviceClassNames": ["mig.nvidia.com"]}]
    assert device_class_mappings([WHOLE]) == []
    other_profile = GpuPlacement("mig-dra-2", DRA_MIG.instance_types, sharing="mig", mig_profile="2g.20gb",
                                 allocation="dra")
    with pytest.raises(ValueError, match="mig.nvidia.com would be counted as both nvidia.com/mig-1g.10gb and "
                                         "nvidia.com/mig-2g.20gb"):
        device_class_mappings([DRA_MIG, other_profile])


def test_kueue_turns_on_its_dra_gate_only_with_mappings():
    common = {"frameworks": ["batch/job"], "replicas": 2, "fair_sharing": True, "pods_ready_timeout_minutes": 15,
              "block_admission": False, "enable_prometheus": False}
    with_dra = helm_values(**common, device_class_mappings=device_class_mappings([DRA]))
    assert with_dra["controllerManager"]["featureGates"] == [{"name": "DynamicResourceAllocation", "enabled": True}]
    config = yaml.safe_load(with_dra["managerConfig"]["controllerManagerConfigYaml"])
    assert config["resources"]["deviceClassMappings"] == [{"name": "nvidia.com/gpu", "deviceClassNames": ["gpu.nvidia.com"]}]
    without = helm_values(**common)
    assert "featureGates" not in without["controllerManager"]
    assert "deviceClassMappings" not in yaml.safe_load(without["managerConfig"]["controllerManagerConfigYaml"])["resources"]


def test_team_quota_counts_deviceclass_devices(run):
    recording = run(lambda: Team("team-a", {"team": "team-a", "environment": "dev", "quota": {
        "cpu": 16, "memory_gib": 64, "gpus": {"nvidia.com/gpu": 0, "gpu.nvidia.com.deviceclass.resource.k8s.io/devices": 2}}}))
    hard = recording.one("kubernetes:core/v1:ResourceQuota").inputs["spec"]["hard"]
    assert hard["gpu.nvidia.com.deviceclass.resource.k8s.io/devices"] == "2"
    assert hard["requests.nvidia.com/gpu"] == "0"
    with pytest.raises(ValueError, match="not an NVIDIA GPU resource name or <NVIDIA DeviceClass>"):
        run(lambda: Team("team-b", {"team": "team-b", "environment": "dev", "quota": {
            "cpu": 16, "memory_gib": 64, "gpus": {"example.com.deviceclass.resource.k8s.io/devices": 2}}}))


# -- the stack config and the reference stack ----------------------------------------------------


def _config(kubernetes_version="1.35", pools=None, **extra):
    raw = {**BASE_CONFIG, "gpufleet:kubernetesVersion": kubernetes_version,
           "gpufleet:gpuPools": json.dumps(pools if pools is not None else [
               {"name": "serving-dra", "instanceTypes": ["g6e.2xlarge"], "allocation": "dra",
                "limits": {"gpus": 2, "cpu": 16, "memoryGib": 128}}])}
    raw.update({f"gpufleet:{k}": json.dumps(v) for k, v in extra.items()})
    return raw


def test_dra_needs_kubernetes_1_34():
    with pytest.raises(ConfigError) as error:
        parse_stack_config(_config("1.33"))
    assert any(p.startswith("gpufleet:gpuPools[0].allocation: dra needs Kubernetes 1.34 or later") and
               "gpufleet:kubernetesVersion is '1.33'" in p for p in error.value.problems)
    assert parse_stack_config(_config("1.34")).gpu_pools[0].allocation == "dra"


def test_config_refusals_name_the_pool_field():
    with pytest.raises(ConfigError) as error:
        parse_stack_config(_config(pools=[{"name": "dra", "instanceTypes": ["g6e.2xlarge", "g6e.12xlarge"],
                                           "allocation": "dra", "limits": {"gpus": 8, "cpu": 64, "memoryGib": 512}}]))
    assert any(p.startswith("gpufleet:gpuPools[0].allocation:") and "different GPU counts" in p
               for p in error.value.problems)
    mig = {"instanceTypes": ["p5.48xlarge"], "allocation": "dra", "limits": {"gpus": 16, "cpu": 384, "memoryGib": 4096}}
    with pytest.raises(ConfigError) as error:
        parse_stack_config(_config(pools=[{**mig, "name": "a", "sharing": {"mode": "mig", "migProfile": "1g.10gb"}},
                                          {**mig, "name": "b", "sharing": {"mode": "mig", "migProfile": "2g.20gb"}}]))
    assert any(p.startswith("gpufleet:gpuPools[1].sharing.migProfile: DRA MIG pools all claim mig.nvidia.com")
               for p in error.value.problems)


def test_the_options_stack_serves_a_model_on_its_dra_pool(run):
    recording = run(program, config=stack_config("options"), stack="options")
    (template,) = recording.of_type(RCT)
    assert template.inputs["metadata"] == {"name": "chat-small-gpus", "namespace": "inference",
                                           "labels": {"app.kubernetes.io/managed-by": "gpufleet"}}
    assert template.inputs["spec"] == ONE_GPU
    predictors = {i.inputs["metadata"]["name"]: i.inputs["spec"]["predictor"] for i in recording.of_type(ISVC)}
    assert gpu_limits(predictors["chat-small"]["containers"]) == []
    assert gpu_limits(predictors["chat"]["containers"]) == ["nvidia.com/gpu"] * 2
    drivers = [r for r in recording.of_type(RELEASE) if r.inputs["chart"] == "nvidia-dra-driver-gpu"]
    assert len(drivers) == 1
    hard = recording.one("kubernetes:core/v1:ResourceQuota").inputs["spec"]["hard"]
    # Kueue's nominal share (1 GPU, borrowing up to the pool's 2) plus the predictor's one claim
    assert hard["gpu.nvidia.com.deviceclass.resource.k8s.io/devices"] == "3"
    kueue = next(r for r in recording.of_type(RELEASE) if r.inputs["chart"].endswith("kueue"))
    config = yaml.safe_load(kueue.inputs["values"]["managerConfig"]["controllerManagerConfigYaml"])
    assert config["resources"]["deviceClassMappings"] == [{"name": "nvidia.com/gpu", "deviceClassNames": ["gpu.nvidia.com"]}]
    queue = recording.one("kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue").inputs["spec"]
    flavors = {f["name"]: f["resources"] for g in queue["resourceGroups"] for f in g["flavors"]}
    assert flavors["serving-dra"] == [{"name": "nvidia.com/gpu", "nominalQuota": "1"}]
