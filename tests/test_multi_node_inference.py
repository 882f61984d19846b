"""``MultiNodeInferenceService`` and ``LeaderWorkerSetController``: exact children, leader and worker
templates, group placement, PDB, leader Service, Kueue labels, EFA, refusals; the LWS chart's values.
Every object is validated strictly by ``run`` (the LeaderWorkerSet against the LWS v0.10.0 CRD)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from gpufleet.components.gpu_instances import instance_types_of
from gpufleet.components.gpu_scheduling import POOL_LABEL, GpuPlacement
from gpufleet.components.leader_worker_set import CHART, CHART_VERSION, LeaderWorkerSetController, controller_values
from gpufleet.components.multi_node_inference import (
    LEADER_SCRIPT,
    WORKER_SCRIPT,
    MultiNodeInferenceService,
    plan_multi_node_service,
)
from gpufleet.components.multi_node_inference_args import efa_interfaces, efa_pod_fragment, expected_load_seconds
from gpufleet.infra.helm_values import unknown_keys
from tests.harness import child_types

COMPONENT = "gpufleet:lws:MultiNodeInferenceService"
LWS = "kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
SERVICE = "kubernetes:core/v1:Service"
LOADER = "gpufleet:model_loader:ModelWeightsLoader"
RELEASE = "kubernetes:helm.sh/v3:Release"

P5 = GpuPlacement("multi-node", tuple(instance_types_of(families=["p5"])), gpu_limit=32)
MIG = GpuPlacement("serving-mig", tuple(instance_types_of(families=["p5"])), sharing="mig", mig_profile="1g.10gb")
BASE = {"namespace": "serving", "placement": P5, "model_name": "deepseek-v3",
        "storage_uri": "pvc://model-weights/deepseek-ai/DeepSeek-V3", "nodes": 2}


def service(**overrides):
    def program():
        MultiNodeInferenceService("ds", {**BASE, **overrides})
    return program


def lws(recording):
    return recording.one(LWS).inputs


def container(template):
    (only,) = template["spec"]["containers"]
    return only


@pytest.mark.parametrize("extra, expected", [
    ({}, {LWS: 1, SERVICE: 1, PDB: 1}),
    ({"weights_source": "hf://deepseek-ai/DeepSeek-V3"}, {LWS: 1, SERVICE: 1, PDB: 1, LOADER: 1}),
])
def test_children_are_exact(run, extra, expected):
    recording = run(service(**extra))
    assert child_types(recording, COMPONENT, name_prefix="ds-") == expected


def test_group_is_the_unit_of_placement(run):
    obj = lws(run(service(groups=2)))
    spec = obj["spec"]
    assert obj["metadata"]["name"] == "ds" and obj["metadata"]["namespace"] == "serving"
    assert obj["metadata"]["annotations"] == {"leaderworkerset.sigs.k8s.io/exclusive-topology": "topology.kubernetes.io/zone"}
    assert spec["replicas"] == 2
    assert spec["startupPolicy"] == "LeaderCreated"
    assert spec["rolloutStrategy"] == {"type": "RollingUpdate",
                                       "rollingUpdateConfiguration": {"maxUnavailable": 1, "maxSurge": 0}}
    group = spec["leaderWorkerTemplate"]
    assert group["size"] == 2 and group["restartPolicy"] == "RecreateGroupOnPodRestart"
    for template in (group["leaderTemplate"], group["workerTemplate"]):
        assert template["spec"]["affinity"] == {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"leaderworkerset.sigs.k8s.io/name": "ds"}},
             "topologyKey": "kubernetes.io/hostname"}]}}


def test_exclusive_topology_can_be_another_key_or_off(run):
    assert lws(run(service(exclusive_topology="topology.k8s.aws/zone-id")))["metadata"]["annotations"] == {
        "leaderworkerset.sigs.k8s.io/exclusive-topology": "topology.k8s.aws/zone-id"}
    assert lws(run(service(exclusive_topology=None)))["metadata"].get("annotations") in (None, {})


def test_gpu_hygiene_on_leader_and_workers(run):
    group = lws(run(service()))["spec"]["leaderWorkerTemplate"]
    for template in (group["leaderTemplate"], group["workerTemplate"]):
        spec = template["spec"]
        c = container(template)
        assert c["resources"]["requests"] == c["resources"]["limits"] == {"cpu": "32", "memory": "256Gi", "nvidia.com/gpu": 8}
        assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert spec["nodeSelector"] == {POOL_LABEL: "multi-node"}
        assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "32Gi"}} in spec["volumes"]
        assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]
        assert {"name": "model-weights", "mountPath": "/mnt/models", "readOnly": True} in c["volumeMounts"]
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 1000
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert spec["priorityClassName"] == "gpufleet-inference"
        assert spec["automountServiceAccountToken"] is False
        assert {"name": "VLLM_HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in c["env"]


def test_leader_runs_the_ray_head_and_vllm_with_tp_inside_and_pp_across_nodes(run):
    group = lws(run(service(max_model_len=32768)))["spec"]["leaderWorkerTemplate"]
    leader = container(group["leaderTemplate"])
    assert leader["command"] == ["/bin/sh", "-c", LEADER_SCRIPT, "vllm-leader"]
    assert "ray start --head --port=6379" in LEADER_SCRIPT and 'exec vllm serve "$@"' in LEADER_SCRIPT
    assert "$LWS_GROUP_SIZE" in LEADER_SCRIPT
    args = leader["args"]
    assert args[0] == "/mnt/models/deepseek-ai/DeepSeek-V3"
    flags = dict(zip(args[1::2], args[2::2]))
    assert flags == {"--served-model-name": "deepseek-v3", "--port": "8000", "--tensor-parallel-size": "8",
                     "--pipeline-parallel-size": "2", "--distributed-executor-backend": "ray",
                     "--gpu-memory-utilization": "0.9", "--max-model-len": "32768"}
    worker = container(group["workerTemplate"])
    assert worker["command"] == ["/bin/sh", "-c", WORKER_SCRIPT]
    assert 'ray start --address="$LWS_LEADER_ADDRESS:6379"' in WORKER_SCRIPT and "--block" in WORKER_SCRIPT
    assert "args" not in worker


def test_probes_leader_http_worker_raylet_with_a_budget_sized_to_the_weights(run):
    group = lws(run(service(weights_gib=642)))["spec"]["leaderWorkerTemplate"]
    load = expected_load_seconds(642, 2)
    assert load == 600 + 1284
    leader, worker = container(group["leaderTemplate"]), container(group["workerTemplate"])
    assert leader["startupProbe"]["httpGet"] == {"path": "/health", "port": 8000, "scheme": "HTTP"}
    assert leader["startupProbe"]["periodSeconds"] * leader["startupProbe"]["failureThreshold"] >= 2 * load
    assert leader["readinessProbe"] != leader["livenessProbe"]
    assert leader["lifecycle"] == {"preStop": {"sleep": {"seconds": 15}}}
    assert worker["startupProbe"]["tcpSocket"] == {"port": 8076}
    assert worker["startupProbe"]["periodSeconds"] * worker["startupProbe"]["failureThreshold"] >= 2 * load
    assert worker["readinessProbe"]["tcpSocket"] == worker["livenessProbe"]["tcpSocket"] == {"port": 8076}
    assert worker["readinessProbe"] != worker["livenessProbe"]
    assert "--node-manager-port=8076" in WORKER_SCRIPT


def test_explicit_load_seconds_wins_and_the_default_without_size():
    assert plan_multi_node_service("ds", {**BASE, "load_seconds": 900}).load_seconds == 900
    assert plan_multi_node_service("ds", BASE).load_seconds == 1200


def test_leader_service_selects_leaders_only(run):
    recording = run(service())
    svc = recording.one(SERVICE).inputs
    assert svc["metadata"]["name"] == "ds"
    assert svc["spec"]["selector"] == {"leaderworkerset.sigs.k8s.io/name": "ds", "gpufleet.io/lws-role": "leader"}
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    group = lws(recording)["spec"]["leaderWorkerTemplate"]
    assert group["leaderTemplate"]["metadata"]["labels"]["gpufleet.io/lws-role"] == "leader"
    assert group["workerTemplate"]["metadata"]["labels"]["gpufleet.io/lws-role"] == "worker"


@pytest.mark.parametrize("groups", [1, 2])
def test_pdb_lets_one_pod_and_so_one_group_go_at_a_time(run, groups):
    pdb = run(service(groups=groups)).one(PDB).inputs["spec"]
    assert pdb == {"maxUnavailable": 1, "selector": {"matchLabels": {"leaderworkerset.sigs.k8s.io/name": "ds"}},
                   "unhealthyPodEvictionPolicy": "AlwaysAllow"}


@pytest.mark.parametrize("budget", [{"min_available": 2}, {"max_unavailable": 0}])
def test_a_budget_allowing_no_disruption_is_refused(budget):
    with pytest.raises(ValueError, match=r"disruption_budget\.\w+ .* allows no voluntary disruption at groups × nodes \(2\)"):
        plan_multi_node_service("ds", {**BASE, "disruption_budget": budget})


def test_queued_groups_carry_the_kueue_labels(run):
    labels = lws(run(service(queue_name="serving")))["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "serving"
    assert labels["kueue.x-k8s.io/priority-class"] == "gpufleet-inference"
    assert "kueue.x-k8s.io/queue-name" not in lws(run(service()))["metadata"]["labels"]


def test_efa_is_requested_when_the_pool_has_it(run):
    # the pool's EFA switch decides: every interface of the node, or none
    p5_48 = tuple(t for t in P5.instance_types if t.name == "p5.48xlarge")
    assert efa_interfaces(dataclasses.replace(P5, instance_types=p5_48, efa=True)) == 32
    assert efa_interfaces(dataclasses.replace(P5, instance_types=p5_48, efa=False)) == 0
    resources, env = efa_pod_fragment(32)
    assert resources == {"vpc.amazonaws.com/efa": 32}
    assert {"name": "FI_PROVIDER", "value": "efa"} in env
    c = container(lws(run(service(efa_interfaces=32)))["spec"]["leaderWorkerTemplate"]["workerTemplate"])
    assert c["resources"]["requests"]["vpc.amazonaws.com/efa"] == c["resources"]["limits"]["vpc.amazonaws.com/efa"] == 32
    assert {"name": "FI_EFA_USE_DEVICE_RDMA", "value": "1"} in c["env"]
    assert efa_pod_fragment(0) == ({}, [])


def test_hf_token_from_a_secret(run):
    c = container(lws(run(service(storage_uri="hf://deepseek-ai/DeepSeek-V3", hf_token_secret={"name": "hf-token"})))
                  ["spec"]["leaderWorkerTemplate"]["leaderTemplate"])
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}} in c["env"]
    assert c["args"][0] == "deepseek-ai/DeepSeek-V3"


@pytest.mark.parametrize("overrides, message", [
    ({"nodes": 1}, r"nodes must be"),
    ({"placement": MIG}, r"placement must be a whole-GPU pool: pool 'serving-mig' shares its GPUs \(mig\)"),
    ({"gpus_per_node": 16}, r"gpus \(16\) exceeds what one node of pool 'multi-node' offers"),
    ({"groups": 3}, r"groups × nodes × gpus_per_node \(3 × 2 × 8 = 48\) exceeds the GPU limit of pool 'multi-node' \(32\)"),
    ({"storage_uri": "s3://bucket/model"}, r"storage_uri must be pvc://<claim>/<path> or hf://"),
    ({"shm_size": "256Gi"}, r"shm_size \(256Gi\) must be below memory"),
    ({"weights_source": "hf://org/m", "storage_uri": "hf://org/m"}, r"weights_source fills a model-cache claim"),
    ({"service_name": "Bad_Name"}, r"gpufleet:lws:MultiNodeInferenceService: service_name must be a lowercase DNS label"),
    ({"hf_token_secret": {"key": "token"}}, r"hf_token_secret.name is required"),
    ({"exclusive_topology": "not a key"}, r"exclusive_topology has an invalid Kubernetes label"),
    ({"gpu_memory_utilization": 1.5}, r"gpu_memory_utilization must be a number in \(0, 1\]"),
])
def test_refusals_name_the_argument(overrides, message):
    with pytest.raises((ValueError, TypeError), match=message):
        plan_multi_node_service("ds", {**BASE, **overrides})


def test_unknown_argument_is_refused():
    with pytest.raises((ValueError, TypeError), match="replicas"):
        MultiNodeInferenceService("ds", {**BASE, "replicas": 2})


# -- the controller ------------------------------------------------------------------------------

def test_controller_children_chart_and_namespace(run):
    recording = run(lambda: LeaderWorkerSetController("lws"))
    assert child_types(recording, "gpufleet:lws:LeaderWorkerSetController", name_prefix="lws-") == {
        "kubernetes:core/v1:Namespace": 1, RELEASE: 1}
    release = recording.one(RELEASE).inputs
    assert release["chart"] == CHART == "oci://registry.k8s.io/lws/charts/lws"
    assert release["version"] == CHART_VERSION == "0.10.0"
    assert release["namespace"] == "lws-system" and release["atomic"] is True
    labels = recording.one("kubernetes:core/v1:Namespace").inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    values = release["values"]
    assert values["image"]["manager"] == {"repository": "registry.k8s.io/lws/lws", "tag": "v0.10.0",
                                          "pullPolicy": "IfNotPresent"}
    assert values["nodeSelector"] == {"gpufleet.io/node-role": "system"}
    assert values["replicaCount"] == 2
    assert values["resources"] == {"requests": {"cpu": "500m", "memory": "512Mi"}}


def test_controller_values_exist_in_the_chart_and_the_chart_sets_no_seccomp_key(upstream):
    chart = yaml.safe_load((upstream / "charts" / "lws" / "values.yaml").read_text())
    assert unknown_keys(controller_values({"replicas": 3}), chart) == []
    # why the namespace is baseline: restricted needs a seccomp profile the chart cannot set
    assert "seccompProfile" not in chart["podSecurityContext"] and "seccompProfile" not in chart["securityContext"]
    assert (upstream / "charts" / "lws" / "Chart.yaml").read_text().count('appVersion: "v0.10.0"') == 1


# -- the LWS webhook -------------------------------------------------------------------------------

def _lws_manifest(**spec_overrides):
    plan = plan_multi_node_service("ds", BASE)
    return {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
            "metadata": {"name": "ds", "namespace": "serving", "annotations": plan.annotations},
            "spec": {**plan.spec, **spec_overrides}}


def test_the_components_leader_worker_set_is_admitted():
    from gpufleet.infra.validation.admission import admission_problems

    assert admission_problems(_lws_manifest()) == []


@pytest.mark.parametrize("overrides, message", [
    ({"rolloutStrategy": {"type": "RollingUpdate", "rollingUpdateConfiguration": {"maxUnavailable": 0, "maxSurge": 0}}},
     "spec.rolloutStrategy.rollingUpdateConfiguration.maxUnavailable: Invalid value: 0: must not be 0 when `maxSurge` is 0"),
    ({"rolloutStrategy": {"type": "RollingUpdate", "rollingUpdateConfiguration": {"maxSurge": "150%"}}},
     'spec.rolloutStrategy.rollingUpdateConfiguration.maxSurge: Invalid value: "150%": must not be greater than 100%'),
    ({"replicas": -1}, "spec.replicas: Invalid value: -1: replicas must be equal or greater than 0"),
])
def test_the_lws_webhook_rejects(overrides, message):
    from gpufleet.infra.validation.admission import admission_problems

    assert admission_problems(_lws_manifest(**overrides)) == [f"LeaderWorkerSet admission webhook: {message}"]


def test_the_lws_webhook_rejects_a_subgroup_topology_without_subgroups_and_bad_names():
    from gpufleet.infra.validation.admission import admission_problems

    manifest = _lws_manifest()
    manifest["metadata"] = {"name": "9ds", "annotations": {
        "leaderworkerset.sigs.k8s.io/subgroup-exclusive-topology": "kubernetes.io/hostname"}}
    (problem,) = admission_problems(manifest)
    assert 'metadata.name: Invalid value: "9ds": a DNS-1035 label' in problem
    assert "cannot have subgroup-exclusive-topology without subGroupSize set" in problem
    manifest = _lws_manifest()
    manifest["spec"]["leaderWorkerTemplate"] = {**manifest["spec"]["leaderWorkerTemplate"], "size": 4,
                                                "subGroupPolicy": {"subGroupSize": 3, "subGroupPolicyType": "LeaderExcluded"}}
    assert admission_problems(manifest) == []
    manifest["spec"]["leaderWorkerTemplate"]["subGroupPolicy"]["subGroupSize"] = 2
    (problem,) = admission_problems(manifest)
    assert "size-1 must be divisible by subGroupSize when using LeaderExcluded" in problem
