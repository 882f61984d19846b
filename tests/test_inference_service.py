"""``InferenceService``: every production-checklist item on whole-GPU, time-sliced and MIG pools, the
canary, PDBs, KEDA autoscaling, and field-named errors. Every object is validated strictly by ``run``
(InferenceService, ScaledObject and PodMonitor against the upstream CRDs)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from gpufleet.components.gpu_instances import instance_types_of
from gpufleet.components.gpu_scheduling import POOL_LABEL, GpuPlacement
from gpufleet.components.inference_service import InferenceService

COMPONENT = "gpufleet:kserve:InferenceService"
ISVC = "kubernetes:serving.kserve.io/v1beta1:InferenceService"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
LOADER = "gpufleet:model_loader:ModelWeightsLoader"
JOB = "kubernetes:batch/v1:Job"
ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"

WHOLE = GpuPlacement("serving", tuple(instance_types_of(families=["g6e"])))
SLICED = GpuPlacement("gpu-dev", tuple(instance_types_of(families=["g5", "g6"])),
                      sharing="time-slicing", time_slicing_replicas=4)
MIG = GpuPlacement("serving-mig", tuple(instance_types_of(families=["p4de", "p5"])),
                   sharing="mig", mig_profile="1g.10gb")
PROMETHEUS = "http://prometheus-operated.monitoring.svc:9090"
BASE = {"namespace": "serving", "placement": WHOLE, "model_name": "llama-3-8b",
        "storage_uri": "pvc://model-weights/meta-llama/Llama-3.1-8B-Instruct"}
SCALING = {"min_replicas": 2, "max_replicas": 6, "autoscaling": {"prometheus_url": PROMETHEUS}}
ROUTED = {"route": {"gateway": "kserve-system/inference-gateway", "hostname": "llm-serving.ml.example.com"}}
CANARY = {**ROUTED, "canary": {"storage_uri": "pvc://model-weights/v2", "traffic_percent": 10}}


def service(**overrides):
    def program():
        InferenceService("llm", {**BASE, **overrides})
    return program


def predictor(recording, isvc="llm"):
    return isvcs(recording)[isvc]["spec"]["predictor"]


def isvcs(recording):
    """InferenceService name → its inputs."""
    return {i.inputs["metadata"]["name"]: i.inputs for i in recording.of_type(ISVC)}


def container(recording):
    (found,) = predictor(recording)["containers"]
    return found


@pytest.mark.parametrize("extra, expected", [
    ({}, {ISVC: 1, PDB: 1}),
    (SCALING, {ISVC: 1, PDB: 1, SCALED_OBJECT: 1, POD_MONITOR: 1}),
    (ROUTED, {ISVC: 1, PDB: 1, ROUTE: 1}),
    # a canary is an InferenceService of its own, routed by gpufleet's HTTPRoute
    (CANARY, {ISVC: 2, PDB: 2, ROUTE: 1}),
    ({"weights_source": "hf://meta-llama/Llama-3.1-8B-Instruct"}, {ISVC: 1, PDB: 1, LOADER: 1}),
    ({**ROUTED, "weights_source": "hf://meta-llama/Llama-3.1-8B-Instruct",
      "canary": {"storage_uri": "pvc://model-weights/v2", "traffic_percent": 10, "weights_source": "hf://org/v2"}},
     {ISVC: 2, PDB: 2, LOADER: 2, ROUTE: 1}),
])
def test_children_are_exact(run, extra, expected):
    recording = run(service(**extra))
    component = recording.one(COMPONENT)
    children = recording.children(component.urn)
    assert Counter(c.type for c in children) == expected
    assert all(c.name.startswith("llm-") for c in children)
    assert all(c.inputs["metadata"]["namespace"] == "serving" for c in children if c.custom)


def test_standard_mode_custom_vllm_container(run):
    recording = run(service(max_model_len=8192))
    isvc = recording.one(ISVC).inputs
    assert isvc["metadata"]["name"] == "llm"
    assert isvc["metadata"]["annotations"] == {"serving.kserve.io/deploymentMode": "Standard",
                                               "serving.kserve.io/autoscalerClass": "none"}
    c = container(recording)
    assert c["name"] == "kserve-container"
    assert c["image"].startswith("vllm/vllm-openai:")
    args = c["args"]
    assert args[0] == "/mnt/models/meta-llama/Llama-3.1-8B-Instruct"  # positional: the entrypoint is `vllm serve`
    pairs = dict(zip(args[1::2], args[2::2]))
    assert pairs == {"--served-model-name": "llama-3-8b",
                     "--port": "8080", "--gpu-memory-utilization": "0.9", "--tensor-parallel-size": "1",
                     "--max-model-len": "8192"}
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


@pytest.mark.parametrize("placement, resource", [
    (WHOLE, "nvidia.com/gpu"), (SLICED, "nvidia.com/gpu.shared"), (MIG, "nvidia.com/mig-1g.10gb")])
def test_checklist_on_every_pool_kind(run, placement, resource):
    recording = run(service(placement=placement, gpu_memory_utilization=0.2, shm_size="4Gi", load_seconds=240))
    p, c = predictor(recording), container(recording)
    # GPU request = limit, integer, in the pool's resource
    assert c["resources"]["requests"] == c["resources"]["limits"] == {"cpu": "8", "memory": "32Gi", resource: 1}
    # tolerations + node selection of the pool
    assert p["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert p["nodeSelector"] == {POOL_LABEL: placement.pool}
    # /dev/shm, memory-backed and sized
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "4Gi"}} in p["volumes"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]
    # weights PVC, read-only
    assert {"name": "model-weights", "persistentVolumeClaim": {"claimName": "model-weights", "readOnly": True}} \
        in p["volumes"]
    assert {"name": "model-weights", "mountPath": "/mnt/models", "readOnly": True} in c["volumeMounts"]
    # probe budget ≥ 2× load time, distinct liveness
    startup = c["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 480
    assert c["livenessProbe"] != c["readinessProbe"]
    assert c["livenessProbe"]["httpGet"]["port"] == c["readinessProbe"]["httpGet"]["port"] == 8080
    # non-root, no escalation, ALL dropped
    assert p["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert p["automountServiceAccountToken"] is False
    # a writable home for the non-root server's caches
    assert {"name": "home", "emptyDir": {}} in p["volumes"]
    assert {"name": "home", "mountPath": "/home/vllm"} in c["volumeMounts"]
    assert {"name": "HOME", "value": "/home/vllm"} in c["env"]
    # priority and graceful shutdown
    assert p["priorityClassName"] == "gpufleet-inference"
    assert c["lifecycle"] == {"preStop": {"sleep": {"seconds": 15}}}
    assert p["terminationGracePeriodSeconds"] == 120
    assert p["deploymentStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    # single replica: no anti-affinity needed
    assert "affinity" not in p


def test_shared_gpus_get_no_tensor_parallelism_and_a_memory_share(run):
    recording = run(service(placement=SLICED))
    args = container(recording)["args"]
    assert "--tensor-parallel-size" not in args
    assert args[args.index("--gpu-memory-utilization") + 1] == "0.22"


def test_tensor_parallelism_follows_gpus(run):
    recording = run(service(gpus=4, cpu="32", memory="128Gi"))
    args = container(recording)["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "4"
    assert container(recording)["resources"]["limits"]["nvidia.com/gpu"] == 4


@pytest.mark.parametrize("anti, key", [(None, "preferredDuringSchedulingIgnoredDuringExecution"),
                                       ("preferred", "preferredDuringSchedulingIgnoredDuringExecution"),
                                       ("required", "requiredDuringSchedulingIgnoredDuringExecution")])
def test_whole_gpu_replicas_keep_hostname_anti_affinity(run, anti, key):
    recording = run(service(**SCALING, **({"anti_affinity": anti} if anti else {})))
    p = predictor(recording)
    affinity = p["affinity"]["podAntiAffinity"]
    assert list(affinity) == [key]
    text = json.dumps(affinity)
    assert '"topologyKey": "kubernetes.io/hostname"' in text
    assert '"gpufleet.io/inference-service": "llm"' in text
    assert "topologySpreadConstraints" not in p


@pytest.mark.parametrize("placement", [MIG, SLICED])
def test_replicas_on_shared_gpus_share_nodes(run, placement):
    """Karpenter treats preferred anti-affinity as required while it can add nodes: two 1g.10gb
    replicas would get two 8-GPU p4de/p5 nodes. On MIG and time-sliced pools they share nodes."""
    recording = run(service(placement=placement, **SCALING))
    p = predictor(recording)
    assert "affinity" not in p and "topologySpreadConstraints" not in p
    assert recording.one(PDB).inputs["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("placement, units", [(MIG, 56), (SLICED, 32)])
@pytest.mark.parametrize("anti", ["preferred", "required"])
def test_hostname_anti_affinity_on_shared_gpus_is_refused_with_the_reason(placement, units, anti):
    with pytest.raises(ValueError, match=(
            rf"^{COMPONENT}: anti_affinity \('{anti}'\) is refused on {placement.sharing} pool "
            rf"'{placement.pool}': one node offers up to {units} .* Karpenter treats preferred anti-affinity .* "
            rf"as required while it can launch nodes, so every replica would get its own \d-GPU node")):
        InferenceService("llm", {**BASE, **SCALING, "placement": placement, "anti_affinity": anti})


@pytest.mark.parametrize("replicas", [1, 3])
def test_pdb_keeps_nodes_drainable_at_any_replica_count(run, replicas):
    """``minAvailable: 1`` on a single replica allows zero disruptions: every drain, consolidation,
    expiry and drift of its node would wait for the NodePool's terminationGracePeriod."""
    recording = run(service(min_replicas=replicas))
    pdb = recording.one(PDB).inputs
    assert pdb["metadata"]["name"] == "llm-stable"
    assert pdb["spec"] == {"maxUnavailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow", "selector": {
        "matchLabels": {"gpufleet.io/inference-service": "llm", "gpufleet.io/variant": "stable"}}}
    assert predictor(recording)["labels"] == {"gpufleet.io/inference-service": "llm", "gpufleet.io/variant": "stable"}


@pytest.mark.parametrize("budget, expected", [({"min_available": 2}, {"minAvailable": 2}),
                                              ({"max_unavailable": 2}, {"maxUnavailable": 2})])
def test_a_drainable_disruption_budget_can_be_chosen(run, budget, expected):
    recording = run(service(min_replicas=3, disruption_budget=budget))
    spec = recording.one(PDB).inputs["spec"]
    assert {k: v for k, v in spec.items() if k in ("minAvailable", "maxUnavailable")} == expected


@pytest.mark.parametrize("overrides, message", [
    ({"disruption_budget": {"min_available": 1}},
     r"disruption_budget.min_available \(1\) allows no voluntary disruption at min_replicas \(1\)"),
    ({"min_replicas": 3, "disruption_budget": {"min_available": 3}},
     r"disruption_budget.min_available \(3\) allows no voluntary disruption at min_replicas \(3\)"),
    ({"min_replicas": 3, "disruption_budget": {"max_unavailable": 0}},
     r"disruption_budget.max_unavailable \(0\) allows no voluntary disruption at min_replicas \(3\)"),
    ({**CANARY, "min_replicas": 3, "disruption_budget": {"min_available": 1}},
     r"disruption_budget.min_available \(1\) allows no voluntary disruption at canary.min_replicas \(1\)"),
])
def test_a_budget_that_blocks_node_drains_is_refused(overrides, message):
    with pytest.raises(ValueError, match=rf"^{COMPONENT}: {message}: the PodDisruptionBudget would block every node "
                                         rf"drain, and Karpenter could not consolidate, expire or replace drifted nodes"):
        InferenceService("llm", {**BASE, **overrides})


def test_hf_token_comes_from_a_secret_reference(run):
    recording = run(service(storage_uri="hf://meta-llama/Llama-3.1-8B-Instruct",
                            hf_token_secret={"name": "hf-credentials", "key": "HF_TOKEN"}))
    c = container(recording)
    assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-credentials", "key": "HF_TOKEN"}}} in c["env"]
    assert all("value" not in e for e in c["env"] if e["name"] == "HF_TOKEN")
    assert c["args"][0] == "meta-llama/Llama-3.1-8B-Instruct"
    assert {"name": "HF_HOME", "value": "/home/vllm/.cache/huggingface"} in c["env"]


def test_object_store_weights_use_kserves_storage_initializer(run):
    recording = run(service(storage_uri="s3://models/llama-3-8b/"))
    p = predictor(recording)
    assert p["storageUris"] == [{"uri": "s3://models/llama-3-8b/", "mountPath": "/mnt/models"}]
    assert container(recording)["args"][0] == "/mnt/models"
    assert [v["name"] for v in p["volumes"]] == ["dshm", "home"]


def test_canary_is_its_own_inference_service_without_spec_canary(run):
    """KServe v0.20.0's webhook refuses ``spec.canary`` on a custom predictor without STORAGE_URI, and
    its Standard-mode route never sends the canary traffic: each variant is an InferenceService."""
    recording = run(service(**SCALING, **ROUTED, canary={"storage_uri": "pvc://model-weights/v2",
                                                          "traffic_percent": 10, "name": "v2", "min_replicas": 2}))
    found = isvcs(recording)
    assert set(found) == {"llm", "llm-v2"}
    for isvc in found.values():
        assert set(isvc["spec"]) == {"predictor"}  # no spec.canary, no canaryTrafficPercent
        assert "canaryTrafficPercent" not in json.dumps(isvc)
        assert isvc["metadata"]["labels"]["networking.kserve.io/visibility"] == "cluster-local"
        assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    cp = found["llm-v2"]["spec"]["predictor"]
    assert cp["minReplicas"] == 2 and "maxReplicas" not in cp
    assert found["llm-v2"]["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "none"
    assert cp["labels"] == {"gpufleet.io/inference-service": "llm", "gpufleet.io/variant": "v2"}
    assert cp["containers"][0]["args"][0] == "/mnt/models/v2"
    # one served model name across variants
    served = {name: isvc["spec"]["predictor"]["containers"][0]["args"] for name, isvc in found.items()}
    assert {a[a.index("--served-model-name") + 1] for a in served.values()} == {"llama-3-8b"}
    pdbs = {p.inputs["metadata"]["name"]: p.inputs["spec"] for p in recording.of_type(PDB)}
    assert pdbs["llm-v2"]["maxUnavailable"] == 1
    assert pdbs["llm-v2"]["selector"]["matchLabels"]["gpufleet.io/variant"] == "v2"
    # the canary keeps the stable predictor's hostname spreading
    terms = cp["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert terms[0]["podAffinityTerm"]["labelSelector"]["matchLabels"] == {
        "gpufleet.io/inference-service": "llm", "gpufleet.io/variant": "v2"}
    # KEDA scales the stable Deployment only
    assert recording.one(SCALED_OBJECT).inputs["spec"]["scaleTargetRef"]["name"] == "llm-predictor"


@pytest.mark.parametrize("percent, weights", [(10, [90, 10]), (100, [0, 100])])
def test_the_route_splits_traffic_between_the_predictor_services(run, percent, weights):
    recording = run(service(**SCALING, **ROUTED, canary={"storage_uri": "pvc://model-weights/v2",
                                                          "traffic_percent": percent, "name": "v2"}))
    route = recording.one(ROUTE)
    assert route.inputs["metadata"]["name"] == "llm-route"
    assert route.inputs["metadata"]["namespace"] == "serving"
    spec = route.inputs["spec"]
    assert spec["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                   "namespace": "kserve-system", "name": "inference-gateway"}]
    assert spec["hostnames"] == ["llm-serving.ml.example.com"]
    (rule,) = spec["rules"]
    # KServe v0.20.0 Standard mode: Service <isvc>-predictor, port 80 → the container's 8080
    assert rule["backendRefs"] == [
        {"group": "", "kind": "Service", "name": "llm-predictor", "port": 80, "weight": weights[0]},
        {"group": "", "kind": "Service", "name": "llm-v2-predictor", "port": 80, "weight": weights[1]}]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert rule["timeouts"] == {"request": "300s"}
    # created once both InferenceServices exist
    assert {i.urn for i in recording.of_type(ISVC)} <= set(route.dependencies)


def test_a_routed_service_without_canary_has_one_backend(run):
    built = {}

    def program():
        built["service"] = InferenceService("llm", {**BASE, **ROUTED})

    recording = run(program)
    (rule,) = recording.one(ROUTE).inputs["spec"]["rules"]
    assert rule["backendRefs"] == [{"group": "", "kind": "Service", "name": "llm-predictor", "port": 80, "weight": 100}]
    assert built["service"].url == "http://llm-serving.ml.example.com"
    assert built["service"].predictor_url == "http://llm-predictor.serving.svc.cluster.local"


def test_without_a_route_kserve_keeps_its_own_ingress(run):
    recording = run(service())
    assert recording.of_type(ROUTE) == []
    assert "networking.kserve.io/visibility" not in isvcs(recording)["llm"]["metadata"]["labels"]


def test_the_stable_variant_keeps_its_child_name(run):
    """Renaming ``<name>-isvc`` would replace the live InferenceService: the canary gets a new child."""
    recording = run(service(**CANARY))
    names = {i.inputs["metadata"]["name"]: i.name for i in recording.of_type(ISVC)}
    assert names == {"llm": "llm-isvc", "llm-canary": "llm-isvc-canary"}


def test_gpu_autoscaling_is_one_keda_scaled_object_with_the_seeds_behaviour(run):
    recording = run(service(**SCALING))
    isvc = recording.one(ISVC)
    assert isvc.inputs["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "external"
    assert predictor(recording)["minReplicas"] == 2 and predictor(recording)["maxReplicas"] == 6
    scaled = recording.one(SCALED_OBJECT)
    spec = scaled.inputs["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llm-predictor"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 6)
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 120
    assert behavior["scaleUp"]["policies"] == [{"type": "Pods", "value": 2, "periodSeconds": 300}]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 600
    assert behavior["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 600}]
    triggers = {t["name"]: t for t in spec["triggers"]}
    assert set(triggers) == {"gpu-utilization", "vllm-requests-waiting"}
    gpu = triggers["gpu-utilization"]["metadata"]
    assert gpu["serverAddress"] == PROMETHEUS and gpu["threshold"] == "70"
    assert gpu["query"].startswith("sum(DCGM_FI_DEV_GPU_UTIL{")
    assert 'namespace="serving",pod=~"llm-predictor-' in gpu["query"]
    waiting = triggers["vllm-requests-waiting"]["metadata"]
    assert waiting["query"].startswith('sum(vllm:num_requests_waiting{namespace="serving"')
    assert waiting["threshold"] == "5"
    assert isvc.urn in scaled.dependencies
    monitor = recording.one(POD_MONITOR).inputs["spec"]
    assert monitor["selector"] == {"matchLabels": {"gpufleet.io/inference-service": "llm"}}
    assert monitor["podMetricsEndpoints"][0]["port"] == "http"


def test_mig_utilisation_uses_the_graphics_engine_activity(run):
    recording = run(service(placement=MIG, **SCALING))
    (gpu,) = [t for t in recording.one(SCALED_OBJECT).inputs["spec"]["triggers"] if t["name"] == "gpu-utilization"]
    assert gpu["metadata"]["query"].startswith("sum(DCGM_FI_PROF_GR_ENGINE_ACTIVE{")


def test_queue_driven_batch_scales_from_zero_on_kafka_lag(run):
    kafka = {"bootstrap_servers": "kafka:9092", "consumer_group": "embedder", "topic": "documents",
             "lag_threshold": 50, "authentication_ref": "kafka-sasl"}
    recording = run(service(min_replicas=0, max_replicas=4, autoscaling={"prometheus_url": PROMETHEUS, "kafka": kafka}))
    spec = recording.one(SCALED_OBJECT).inputs["spec"]
    assert spec["minReplicaCount"] == 0
    (lag,) = [t for t in spec["triggers"] if t["type"] == "kafka"]
    assert lag["metadata"] == {"bootstrapServers": "kafka:9092", "consumerGroup": "embedder", "topic": "documents",
                               "lagThreshold": "50", "activationLagThreshold": "0", "offsetResetPolicy": "earliest"}
    assert lag["authenticationRef"] == {"name": "kafka-sasl"}
    assert recording.of_type(PDB) == []


def test_queue_driven_batch_scales_from_zero_on_a_prometheus_queue_depth(run):
    queue = {"query": 'sum(aws_sqs_approximate_number_of_messages_visible_average{queue_name="docs"})', "target": 20}
    recording = run(service(min_replicas=0, max_replicas=3, autoscaling={"prometheus_url": PROMETHEUS, "queue": queue}))
    (depth,) = [t for t in recording.one(SCALED_OBJECT).inputs["spec"]["triggers"] if t["name"] == "queue-depth"]
    assert depth["metadata"] == {"serverAddress": PROMETHEUS, "query": queue["query"], "threshold": "20",
                                 "activationThreshold": "0"}


def test_do_not_disrupt_is_opt_in(run):
    assert "annotations" not in predictor(run(service()))
    assert predictor(run(service(do_not_disrupt=True)))["annotations"] == {"karpenter.sh/do-not-disrupt": "true"}


@pytest.mark.parametrize("overrides, message", [
    ({"gpus": 9}, r"gpus \(9\) exceeds .*\(8 × nvidia.com/gpu, placement.max_resources_per_node\)"),
    ({"placement": SLICED, "gpus": 33}, r"gpus \(33\) exceeds .*32 × nvidia.com/gpu.shared"),
    ({"placement": MIG, "gpus": 2}, r"gpus must be 1 on mig pool 'serving-mig'"),
    ({"placement": SLICED, "gpu_memory_utilization": 0.5}, r"gpu_memory_utilization \(0.5\) exceeds 1/4"),
    ({"gpu_memory_utilization": 1.5}, r"gpu_memory_utilization must be a number in \(0, 1\]"),
    ({"max_replicas": 3}, r"autoscaling is required when max_replicas \(3\) > min_replicas \(1\)"),
    ({"min_replicas": 0, **{k: v for k, v in SCALING.items() if k != "min_replicas"}},
     r"min_replicas 0 needs autoscaling.kafka or autoscaling.queue"),
    ({"min_replicas": 0, "max_replicas": 2, "autoscaling": {"prometheus_url": PROMETHEUS, "queue": {"query": " "}}},
     r"autoscaling.queue.query is required"),
    ({"min_replicas": 3, "max_replicas": 2}, r"max_replicas must be an integer from 3 to 100"),
    ({"storage_uri": "/models/llama"}, r"storage_uri must start with one of pvc://"),
    ({**ROUTED, "canary": {"storage_uri": "pvc://w/v2", "traffic_percent": 0}},
     r"canary.traffic_percent must be .* 1 to 100"),
    ({**ROUTED, "canary": {"storage_uri": "ftp://x", "traffic_percent": 10}}, r"canary.storage_uri must start with"),
    ({"canary": {"storage_uri": "pvc://w/v2", "traffic_percent": 10}}, r"canary needs route: KServe v0.20.0 routes"),
    ({**ROUTED, "canary": {"storage_uri": "pvc://w/v2", "traffic_percent": 10, "name": "stable"}},
     r"canary.name must be a short DNS label other than 'stable'"),
    ({**ROUTED, "service_name": "a" * 40, "canary": {"storage_uri": "pvc://w/v2", "traffic_percent": 10}},
     r"canary.name makes the canary InferenceService a{40}-canary longer than 45 characters"),
    ({"route": {"gateway": "inference-gateway", "hostname": "llm.example.com"}}, r"route.gateway must be '<namespace>/<name>'"),
    ({"route": {"gateway": "kserve-system/gw", "hostname": "llm"}}, r"route.hostname must be a DNS name"),
    ({"hf_token_secret": {"key": "token"}}, r"hf_token_secret.name is required"),
    ({"shm_size": "32Gi"}, r"shm_size \(32Gi\) must be below memory \(32Gi\)"),
    ({"load_seconds": 0}, r"load_seconds must be a positive integer"),
    ({"termination_grace_seconds": 10}, r"termination_grace_seconds must be an integer from 16"),
    ({"namespace": "Serving"}, r"namespace must be a lowercase DNS label"),
    ({"image": "vllm openai"}, r"image must be an image reference"),
    ({**ROUTED, "canary": {"storage_uri": "pvc://w/v2", "traffic_percent": 10, "image": ""}}, r"canary.image must be"),
    ({"autoscaling": {"prometheus_url": "prometheus:9090"}, "max_replicas": 2},
     r"autoscaling.prometheus_url must be an http\(s\) URL"),
    ({"storage_uri": "hf://meta-llama/Llama-3.1-8B-Instruct", "weights_source": "hf://meta-llama/Llama-3.1-8B-Instruct"},
     r"weights_source fills a model-cache claim: it needs pvc:// storage_uri"),
    ({"weights_source": "s3://bucket/llama"}, r"weights_source must be hf://<org>/<model>"),
    ({"storage_uri": "pvc://model-weights/", "weights_source": "hf://org/model"},
     r"storage_uri must be a relative directory inside the claim"),
    ({**ROUTED, "canary": {"storage_uri": "pvc://w/v2", "traffic_percent": 10, "weights_source": "hf://v2"}},
     r"canary.weights_source must name a Hugging Face repository"),
    ({"monitor_labels": {"release": "kube prometheus"}}, r"monitor_labels has an invalid Kubernetes label"),
    ({"monitor_labels": ["release"]}, r"monitor_labels must be a mapping"),
])
def test_impossible_arguments_are_field_named_errors(overrides, message):
    with pytest.raises((ValueError, TypeError), match=rf"^{COMPONENT}: {message}"):
        InferenceService("llm", {**BASE, **overrides})


def test_weights_are_downloaded_before_the_inference_service_exists(run):
    recording = run(service(weights_source="hf://meta-llama/Llama-3.1-8B-Instruct@main",
                            hf_token_secret={"name": "hf-token"}, **ROUTED,
                            canary={"storage_uri": "pvc://model-weights/meta-llama/Llama-3.2-3B",
                                    "traffic_percent": 10, "name": "v2",
                                    "weights_source": "hf://meta-llama/Llama-3.2-3B-Instruct"}))
    jobs = {j.inputs["metadata"]["name"]: j for j in recording.of_type(JOB)}
    assert set(jobs) == {"llm-weights", "llm-v2-weights"}
    # each variant's InferenceService waits for its own weights
    by_name = {i.inputs["metadata"]["name"]: i for i in recording.of_type(ISVC)}
    assert jobs["llm-weights"].urn in by_name["llm"].dependencies
    assert jobs["llm-v2-weights"].urn in by_name["llm-v2"].dependencies
    component = recording.one(COMPONENT)
    assert {l.name for l in recording.of_type(LOADER)} == {"llm-weights", "llm-weights-v2"}
    assert all(l.parent == component.urn for l in recording.of_type(LOADER))

    def env(job):
        (c,) = job.inputs["spec"]["template"]["spec"]["containers"]
        return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}

    stable, canary = env(jobs["llm-weights"]), env(jobs["llm-v2-weights"])
    # the path the predictor reads is the path the loader writes
    assert predictor(recording)["containers"][0]["args"][0] == "/mnt/models/meta-llama/Llama-3.1-8B-Instruct"
    assert stable["TARGET_DIR"] == "/mnt/models/meta-llama/Llama-3.1-8B-Instruct"
    assert (stable["HF_REPO"], stable["HF_REVISION"]) == ("meta-llama/Llama-3.1-8B-Instruct", "main")
    assert (canary["HF_REPO"], canary["TARGET_DIR"]) == ("meta-llama/Llama-3.2-3B-Instruct",
                                                         "/mnt/models/meta-llama/Llama-3.2-3B")
    # the same Secret reference as the predictor, for gated models
    assert stable["HF_TOKEN"] == canary["HF_TOKEN"] == {"secretKeyRef": {"name": "hf-token", "key": "token"}}
    volumes = jobs["llm-weights"].inputs["spec"]["template"]["spec"]["volumes"]
    assert {"name": "model-weights", "persistentVolumeClaim": {"claimName": "model-weights"}} in volumes


def test_without_weights_source_nothing_is_downloaded(run):
    recording = run(service())
    assert recording.of_type(JOB) == [] and recording.of_type(LOADER) == []


def test_pod_monitor_carries_the_prometheus_selector_labels(run):
    recording = run(service(**SCALING, monitor_labels={"release": "kube-prometheus-stack"}))
    labels = recording.one(POD_MONITOR).inputs["metadata"]["labels"]
    assert labels == {"release": "kube-prometheus-stack", "app.kubernetes.io/managed-by": "gpufleet"}
    # other objects keep their own labels
    assert "release" not in recording.one(ISVC).inputs["metadata"]["labels"]
    assert recording.one(POD_MONITOR).inputs["metadata"]["labels"] != run(service(**SCALING)).one(
        POD_MONITOR).inputs["metadata"]["labels"]
