"""``gpu_pod``: each pod-hygiene piece, on whole-GPU, time-sliced and MIG pools, and a Pod built from
all of them validates against the Kubernetes OpenAPI."""

from __future__ import annotations

import pytest

from gpufleet.components import gpu_pod
from gpufleet.components.gpu_instances import instance_types_of
from gpufleet.components.gpu_scheduling import POOL_LABEL, GpuPlacement
from gpufleet.infra.validation.schema import ManifestValidator
from tests.harness import KUBERNETES_VERSION

NAME = "gpufleet:test:Thing"
WHOLE = GpuPlacement("serving", tuple(instance_types_of(families=["g6e"])))
SLICED = GpuPlacement("gpu-dev", tuple(instance_types_of(families=["g5", "g6"])),
                      sharing="time-slicing", time_slicing_replicas=4)
MIG = GpuPlacement("serving-mig", tuple(instance_types_of(families=["p4de", "p5"])),
                   sharing="mig", mig_profile="1g.10gb")


@pytest.mark.parametrize("placement, resource", [
    (WHOLE, "nvidia.com/gpu"), (SLICED, "nvidia.com/gpu.shared"), (MIG, "nvidia.com/mig-1g.10gb")])
def test_gpu_request_equals_limit_in_the_pools_resource(placement, resource):
    resources = gpu_pod.gpu_resources(placement, 1, "4", "16Gi", name=NAME)
    assert resources["requests"] == resources["limits"] == {"cpu": "4", "memory": "16Gi", resource: 1}
    assert isinstance(resources["limits"][resource], int)


@pytest.mark.parametrize("placement, ceiling", [(WHOLE, 8), (SLICED, 32), (MIG, 56)])
def test_gpus_above_one_node_name_the_field_and_the_ceiling(placement, ceiling):
    assert placement.max_resources_per_node == ceiling
    gpu_pod.gpu_resources(placement, ceiling, "4", "16Gi", name=NAME)
    with pytest.raises(ValueError, match=rf"^{NAME}: canary.gpus \({ceiling + 1}\) exceeds .*"
                                         rf"\({ceiling} × .*placement.max_resources_per_node"):
        gpu_pod.gpu_resources(placement, ceiling + 1, "4", "16Gi", name=NAME, field="canary.")


@pytest.mark.parametrize("gpus", [0, -1, 1.5, True, "1"])
def test_gpus_must_be_a_positive_integer(gpus):
    with pytest.raises(ValueError, match=rf"^{NAME}: gpus must be a positive integer"):
        gpu_pod.gpu_resources(WHOLE, gpus, "4", "16Gi", name=NAME)


@pytest.mark.parametrize("field, cpu, memory", [("cpu", "four", "16Gi"), ("memory", "4", "16 GB"),
                                                ("memory", "4", 16)])
def test_quantities_are_checked(field, cpu, memory):
    with pytest.raises(ValueError, match=rf"^{NAME}: {field} must be a Kubernetes quantity"):
        gpu_pod.gpu_resources(WHOLE, 1, cpu, memory, name=NAME)


def test_scheduling_tolerates_the_gpu_taint_and_selects_the_pool():
    assert gpu_pod.gpu_scheduling(MIG) == {
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "nodeSelector": {POOL_LABEL: "serving-mig"},
    }


def test_shm_is_memory_backed_and_sized():
    volume, mount = gpu_pod.shm_volume("16Gi", name=NAME)
    assert volume == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}}
    assert mount == {"name": "dshm", "mountPath": "/dev/shm"}
    with pytest.raises(ValueError, match=rf"^{NAME}: shm_size must be a Kubernetes quantity"):
        gpu_pod.shm_volume("lots", name=NAME)


def test_shm_must_leave_memory_for_the_server():
    gpu_pod.check_shm_fits("8Gi", "32Gi", name=NAME)
    with pytest.raises(ValueError, match=rf"^{NAME}: canary.shm_size \(32Gi\) must be below canary.memory"):
        gpu_pod.check_shm_fits("32Gi", "32Gi", name=NAME, field="canary.")


def test_security_contexts_are_restricted():
    pod = gpu_pod.pod_security_context()
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 1000 and pod["fsGroup"] == 1000
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    container = gpu_pod.container_security_context(2000)
    assert container["runAsNonRoot"] is True and container["runAsUser"] == 2000
    assert container["allowPrivilegeEscalation"] is False and container["privileged"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["seccompProfile"] == {"type": "RuntimeDefault"}


def test_anti_affinity_is_preferred_by_default_and_required_on_request():
    labels = {"app": "llm"}
    preferred = gpu_pod.hostname_anti_affinity(labels)["podAntiAffinity"]
    assert list(preferred) == ["preferredDuringSchedulingIgnoredDuringExecution"]
    (weighted,) = preferred["preferredDuringSchedulingIgnoredDuringExecution"]
    assert weighted["weight"] == 100
    assert weighted["podAffinityTerm"] == {"labelSelector": {"matchLabels": labels},
                                           "topologyKey": "kubernetes.io/hostname"}
    required = gpu_pod.hostname_anti_affinity(labels, required=True)["podAntiAffinity"]
    assert required == {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}]}


@pytest.mark.parametrize("load_seconds", [1, 60, 95, 300, 1200])
def test_startup_budget_is_at_least_twice_the_load_time(load_seconds):
    p = gpu_pod.probes(load_seconds, 8080, name=NAME)
    startup = p["startupProbe"]
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 2 * load_seconds
    assert startup["failureThreshold"] * startup["periodSeconds"] < 2 * load_seconds + startup["periodSeconds"]


def test_liveness_is_distinct_and_more_lenient_than_readiness():
    p = gpu_pod.probes(120, 8080, ready_path="/v1/models", live_path="/health", name=NAME)
    ready, live = p["readinessProbe"], p["livenessProbe"]
    assert ready["httpGet"] == {"path": "/v1/models", "port": 8080, "scheme": "HTTP"}
    assert live["httpGet"]["path"] == "/health"
    assert live != ready
    assert live["periodSeconds"] * live["failureThreshold"] > ready["periodSeconds"] * ready["failureThreshold"]
    assert live["timeoutSeconds"] > ready["timeoutSeconds"]
    assert "initialDelaySeconds" not in live  # the startup probe gates it instead


@pytest.mark.parametrize("load_seconds, port, field", [(0, 80, "load_seconds"), (30.5, 80, "load_seconds"),
                                                       (60, 0, "port"), (60, 70000, "port")])
def test_probe_arguments_are_checked(load_seconds, port, field):
    with pytest.raises(ValueError, match=rf"^{NAME}: {field} must be"):
        gpu_pod.probes(load_seconds, port, name=NAME)


def test_priority_class_names_come_from_the_contract():
    assert gpu_pod.priority_class_name() == "gpufleet-inference"
    assert gpu_pod.priority_class_name("batch") == "gpufleet-batch"
    with pytest.raises(ValueError, match="role must be one of"):
        gpu_pod.priority_class_name("urgent")


@pytest.mark.parametrize("placement", [WHOLE, SLICED, MIG])
def test_a_pod_of_all_pieces_is_valid_kubernetes(placement):
    volume, mount = gpu_pod.shm_volume("8Gi", name=NAME)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "llm", "labels": {"app": "llm"}},
        "spec": {
            **gpu_pod.gpu_scheduling(placement),
            "affinity": gpu_pod.hostname_anti_affinity({"app": "llm"}),
            "securityContext": gpu_pod.pod_security_context(),
            "priorityClassName": gpu_pod.priority_class_name(),
            "volumes": [volume],
            "containers": [{
                "name": "server",
                "image": "vllm/vllm-openai:v0.28.0",
                "resources": gpu_pod.gpu_resources(placement, 1, "4", "32Gi", name=NAME),
                "securityContext": gpu_pod.container_security_context(),
                "volumeMounts": [mount],
                **gpu_pod.probes(180, 8080, name=NAME),
            }],
        },
    }
    assert ManifestValidator(KUBERNETES_VERSION).validate(pod) == []


@pytest.mark.parametrize("placement, expected", [
    (WHOLE, {"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "x"}},
                                            "topologyKey": "kubernetes.io/hostname"}}]}}}),
    (SLICED, {}), (MIG, {}),
])
def test_replicas_spread_over_nodes_only_on_whole_gpu_pools(placement, expected):
    mode = "preferred" if placement.sharing == "none" else None
    assert gpu_pod.replica_spread(placement, {"app": "x"}, mode, name=NAME) == expected


def test_spreading_replicas_of_a_shared_pool_is_refused_with_the_reason():
    with pytest.raises(ValueError, match=rf"^{NAME}: anti_affinity \('required'\) is refused on mig pool "
                                         r"'serving-mig': one node offers up to 56 nvidia.com/mig-1g.10gb units"):
        gpu_pod.replica_spread(MIG, {"app": "x"}, "required", name=NAME)


@pytest.mark.parametrize("replicas, budget, expected", [
    (1, None, {"maxUnavailable": 1}), (3, None, {"maxUnavailable": 1}),
    (3, {"min_available": 2}, {"minAvailable": 2}), (4, {"max_unavailable": 2}, {"maxUnavailable": 2}),
])
def test_disruption_budgets_always_allow_a_disruption(replicas, budget, expected):
    spec = gpu_pod.disruption_budget(replicas, {"app": "x"}, budget, name=NAME)
    assert spec == {**expected, "selector": {"matchLabels": {"app": "x"}}, "unhealthyPodEvictionPolicy": "AlwaysAllow"}


@pytest.mark.parametrize("budget, message", [
    ({"min_available": 1}, r"disruption_budget.min_available \(1\) allows no voluntary disruption at min_replicas \(1\)"),
    ({"max_unavailable": 0}, r"disruption_budget.max_unavailable \(0\) allows no voluntary disruption"),
    ({"min_available": 0, "max_unavailable": 1}, r"disruption_budget must set exactly one of"),
    ({"max_unavailable": "50%"}, r"disruption_budget.max_unavailable must be a whole number of pods"),
])
def test_a_disruption_budget_that_blocks_drains_is_refused(budget, message):
    with pytest.raises(ValueError, match=rf"^{NAME}: {message}"):
        gpu_pod.disruption_budget(1, {"app": "x"}, budget, name=NAME)
