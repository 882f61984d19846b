"""``Kueue``: chart values against upstream, flavors from placements, ClusterQueues (quotas in the
pools' GPU resource units, one consistent resource group), priorities, dependencies, errors."""

from __future__ import annotations

from collections import Counter

import pytest
import yaml

from gpufleet.components.gpu_instances import instance_types_of
from gpufleet.components.gpu_scheduling import PRIORITY_CLASSES, GpuPlacement
from gpufleet.components.kueue import CPU_FLAVOR, Kueue, resources_per_gpu
from gpufleet.components.kueue_controller import CHART, CHART_VERSION, DEFAULT_FRAMEWORKS, helm_values
from gpufleet.components.priority_classes import PRIORITY_VALUES
from gpufleet.components.team import TEAM_LABEL
from gpufleet.infra.helm_values import unknown_keys
from gpufleet.infra.simulate.kueue import assign_flavor, injected, pod_set_requests

COMPONENT = "gpufleet:kueue:Kueue"
CR = "kubernetes:kueue.x-k8s.io/v1beta2:"

WHOLE = GpuPlacement(pool="serving", instance_types=tuple(instance_types_of(["g6e"])), gpu_limit=16)
MIG = GpuPlacement(
    pool="serving-mig", instance_types=tuple(instance_types_of(types=["p4de.24xlarge", "p5.48xlarge"])),
    gpu_limit=16, sharing="mig", mig_profile="1g.10gb",
)
SLICED = GpuPlacement(
    pool="gpu-dev", instance_types=tuple(instance_types_of(["g5", "g6"])), gpu_limit=8,
    sharing="time-slicing", time_slicing_replicas=4,
)
QUEUES = [
    {"name": "serving", "namespaces": ["serving"], "cpu": 96, "memory_gib": 512, "fair_sharing_weight": 3,
     "gpu_quotas": [{"pool": "serving", "gpus": 8, "borrowing_limit": 4}, {"pool": "serving-mig", "gpus": 8}]},
    {"name": "research", "namespaces": ["research"],
     "gpu_quotas": [{"pool": "serving", "gpus": 4, "lending_limit": 2}]},
]


def kueue(**overrides):
    def program():
        Kueue("kq", {"placements": [WHOLE, MIG], "cluster_queues": QUEUES, **overrides})
    return program


def by_kind(recording, kind):
    return {r.inputs["metadata"]["name"]: r for r in recording.of_type(CR + kind)}


def test_children_are_exact(run):
    recording = run(kueue())
    component = recording.one(COMPONENT)
    children = recording.children(component.urn)
    assert Counter(c.type for c in children) == {
        "kubernetes:core/v1:Namespace": 1,
        "kubernetes:helm.sh/v3:Release": 1,
        CR + "WorkloadPriorityClass": 3,
        CR + "ResourceFlavor": 3,
        CR + "ClusterQueue": 2,
    }
    assert all(c.name.startswith("kq-") for c in children)


def test_every_custom_resource_depends_on_the_release(run):
    recording = run(kueue())
    release = recording.one("kubernetes:helm.sh/v3:Release")
    crs = [r for r in recording.resources if r.type.startswith(CR)]
    assert len(crs) == 8
    assert all(release.urn in r.dependencies for r in crs)


def test_cluster_queue_waits_for_its_flavors(run):
    recording = run(kueue())
    flavors = by_kind(recording, "ResourceFlavor")
    queues = by_kind(recording, "ClusterQueue")
    assert {flavors["serving"].urn, flavors["serving-mig"].urn, flavors["cpu"].urn} <= set(queues["serving"].dependencies)
    assert flavors["cpu"].urn in queues["research"].dependencies
    assert flavors["serving-mig"].urn not in queues["research"].dependencies


def test_release_is_pinned_oci_chart_in_restricted_namespace(run):
    recording = run(kueue())
    release = recording.one("kubernetes:helm.sh/v3:Release")
    assert release.inputs["chart"] == CHART == "oci://registry.k8s.io/kueue/charts/kueue"
    assert release.inputs["version"] == CHART_VERSION == "0.19.2"
    assert release.inputs["namespace"] == "kueue-system"
    namespace = recording.one("kubernetes:core/v1:Namespace")
    assert namespace.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    values = release.inputs["values"]
    assert values["controllerManager"]["nodeSelector"] == {"gpufleet.io/node-role": "system"}
    assert values["controllerManager"]["replicas"] == 2
    assert values["controllerManager"]["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}
    assert values["controllerManager"]["manager"]["image"] == {
        "repository": "registry.k8s.io/kueue/kueue", "tag": "v0.19.2", "pullPolicy": "IfNotPresent"}


def test_flavor_per_pool_steers_pods_to_the_pool(run):
    recording = run(kueue())
    flavors = by_kind(recording, "ResourceFlavor")
    assert set(flavors) == {"serving", "serving-mig", CPU_FLAVOR}
    # CPU-only pod sets keep their own node selection: nothing is injected, no GPU toleration.
    assert flavors[CPU_FLAVOR].inputs.get("spec", {}) == {}
    assert flavors["serving-mig"].inputs["spec"] == {
        "nodeLabels": {"gpufleet.io/gpu-pool": "serving-mig"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }
    assert flavors["serving"].inputs["spec"]["nodeLabels"] == WHOLE.node_selector()
    assert flavors["serving"].inputs["spec"]["tolerations"] == WHOLE.tolerations()


def test_cluster_queue_quotas_in_gpu_resource_units(run):
    recording = run(kueue())
    spec = by_kind(recording, "ClusterQueue")["serving"].inputs["spec"]
    assert spec["cohortName"] == "gpufleet"
    assert spec["fairSharing"] == {"weight": "3"}
    assert spec["namespaceSelector"] == {
        "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["serving"]}]}
    cpu_group, gpu_group = spec["resourceGroups"]
    # cpu/memory once, on the CPU flavor alone, never borrowed: the namespace quota's amounts.
    assert cpu_group == {"coveredResources": ["cpu", "memory"], "flavors": [{"name": "cpu", "resources": [
        {"name": "cpu", "nominalQuota": "96", "borrowingLimit": "0"},
        {"name": "memory", "nominalQuota": "512Gi", "borrowingLimit": "0"},
    ]}]}
    assert gpu_group["coveredResources"] == ["nvidia.com/gpu", "nvidia.com/mig-1g.10gb"]
    whole, mig = gpu_group["flavors"]
    assert whole == {"name": "serving", "resources": [
        {"name": "nvidia.com/gpu", "nominalQuota": "8", "borrowingLimit": "4"},
        {"name": "nvidia.com/mig-1g.10gb", "nominalQuota": "0"},
    ]}
    # 8 GPUs of 80 GB cut into 1g.10gb: 7 slices each.
    assert mig == {"name": "serving-mig", "resources": [
        {"name": "nvidia.com/gpu", "nominalQuota": "0"},
        {"name": "nvidia.com/mig-1g.10gb", "nominalQuota": "56"},
    ]}
    # Kueue's rules: every flavor lists every covered resource of its group in order; a flavor and
    # a resource belong to one group only.
    for group in spec["resourceGroups"]:
        for flavor in group["flavors"]:
            assert [r["name"] for r in flavor["resources"]] == group["coveredResources"]
    flavor_names = [f["name"] for g in spec["resourceGroups"] for f in g["flavors"]]
    resources = [r for g in spec["resourceGroups"] for r in g["coveredResources"]]
    assert len(set(flavor_names)) == len(flavor_names) and len(set(resources)) == len(resources)


def test_cpu_and_memory_nominal_quota_is_not_multiplied_by_flavors(run):
    recording = run(kueue())
    for name, queue in by_kind(recording, "ClusterQueue").items():
        totals = Counter()
        for group in queue.inputs["spec"]["resourceGroups"]:
            for flavor in group["flavors"]:
                for resource in flavor["resources"]:
                    if resource["name"] in ("cpu", "memory"):
                        totals[resource["name"]] += 1
        assert totals == {"cpu": 1, "memory": 1}, name


def test_lending_limit_and_defaults(run):
    recording = run(kueue())
    spec = by_kind(recording, "ClusterQueue")["research"].inputs["spec"]
    cpu_group, gpu_group = spec["resourceGroups"]
    assert cpu_group["flavors"][0]["resources"] == [
        {"name": "cpu", "nominalQuota": "64", "borrowingLimit": "0"},
        {"name": "memory", "nominalQuota": "256Gi", "borrowingLimit": "0"},
    ]
    assert gpu_group == {"coveredResources": ["nvidia.com/gpu"], "flavors": [{"name": "serving", "resources": [
        {"name": "nvidia.com/gpu", "nominalQuota": "4", "lendingLimit": "2"},
    ]}]}
    assert spec["preemption"] == {"reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority"}


def test_time_slicing_quota_counts_replicas(run):
    def program():
        Kueue("kq", {"placements": [SLICED], "cluster_queues": [
            {"name": "ml", "namespaces": ["ml"], "gpu_quotas": [{"pool": "gpu-dev", "gpus": 2, "borrowing_limit": 1}]}]})
    recording = run(program)
    spec = by_kind(recording, "ClusterQueue")["ml"].inputs["spec"]
    assert spec["resourceGroups"][1]["flavors"][0]["resources"] == [
        {"name": "nvidia.com/gpu.shared", "nominalQuota": "8", "borrowingLimit": "4"}]
    assert resources_per_gpu(SLICED) == 4 and resources_per_gpu(MIG) == 7 and resources_per_gpu(WHOLE) == 1


def test_without_fair_sharing_borrowers_only_preempt_batch(run):
    recording = run(kueue(fair_sharing=False))
    spec = by_kind(recording, "ClusterQueue")["serving"].inputs["spec"]
    assert "fairSharing" not in spec
    assert spec["preemption"]["borrowWithinCohort"] == {
        "policy": "LowerPriority", "maxPriorityThreshold": PRIORITY_VALUES["batch"]}
    config = yaml.safe_load(recording.one("kubernetes:helm.sh/v3:Release").inputs["values"]["managerConfig"]["controllerManagerConfigYaml"])
    assert "fairSharing" not in config


def test_workload_priority_classes_match_priority_classes(run):
    recording = run(kueue())
    classes = by_kind(recording, "WorkloadPriorityClass")
    assert {name: r.inputs["value"] for name, r in classes.items()} == {
        PRIORITY_CLASSES[role]: PRIORITY_VALUES[role] for role in PRIORITY_CLASSES}
    assert classes["gpufleet-inference"].inputs["value"] > classes["gpufleet-training"].inputs["value"] > classes["gpufleet-batch"].inputs["value"]


def test_manager_config_enables_gang_admission_integrations_fair_sharing(run):
    recording = run(kueue(pods_ready_timeout_minutes=20, block_admission=True))
    values = recording.one("kubernetes:helm.sh/v3:Release").inputs["values"]
    config = yaml.safe_load(values["managerConfig"]["controllerManagerConfigYaml"])
    assert config["apiVersion"] == "config.kueue.x-k8s.io/v1beta2"
    assert config["kind"] == "Configuration"
    assert config["waitForPodsReady"]["timeout"] == "20m"
    assert config["waitForPodsReady"]["blockAdmission"] is True
    assert config["integrations"]["frameworks"] == ["batch/job", "ray.io/rayjob", "ray.io/raycluster", "ray.io/rayservice",
                                                    "trainer.kubeflow.org/trainjob"]
    assert config["fairSharing"]["preemptionStrategies"] == ["LessThanOrEqualToFinalShare", "LessThanInitialShare"]
    assert config["manageJobsWithoutQueueName"] is False
    assert config["managedJobsNamespaceSelector"] == {"matchExpressions": [{"key": TEAM_LABEL, "operator": "Exists"}]}
    assert config["leaderElection"]["leaderElect"] is True
    # EFA interfaces, requested with a node's GPUs, are not quota: no ClusterQueue covers them.
    assert config["resources"] == {"excludeResourcePrefixes": ["vpc.amazonaws.com/efa"]}


def test_pod_based_integrations_are_opt_in(run):
    """Kueue's pod webhook (``mpod.kb.io``, failurePolicy Fail) is registered for nearly every
    namespace once ``pod`` is enabled: a Kueue outage would block all pod creation. Off by default."""
    assert not {"pod", "deployment", "statefulset"} & set(DEFAULT_FRAMEWORKS)
    recording = run(kueue(frameworks=["batch/job", "pod", "deployment"]))
    config = yaml.safe_load(recording.one("kubernetes:helm.sh/v3:Release").inputs["values"]["managerConfig"]["controllerManagerConfigYaml"])
    assert config["integrations"]["frameworks"] == ["batch/job", "pod", "deployment"]


def test_helm_values_exist_upstream(upstream):
    chart_values = yaml.safe_load((upstream / "charts" / "kueue" / "values.yaml").read_text())
    values = helm_values(frameworks=["batch/job"], replicas=2, fair_sharing=True, pods_ready_timeout_minutes=15,
                         block_admission=False, enable_prometheus=False)
    assert unknown_keys(values, chart_values) == []


def test_manager_config_keeps_the_chart_defaults(upstream):
    chart_values = yaml.safe_load((upstream / "charts" / "kueue" / "values.yaml").read_text())
    defaults = yaml.safe_load(chart_values["managerConfig"]["controllerManagerConfigYaml"])
    values = helm_values(frameworks=["batch/job"], replicas=1, fair_sharing=True, pods_ready_timeout_minutes=15,
                         block_admission=False, enable_prometheus=False)
    ours = yaml.safe_load(values["managerConfig"]["controllerManagerConfigYaml"])
    for key in ("apiVersion", "kind", "health", "webhook", "leaderElection", "controller", "clientConnection"):
        assert ours[key] == defaults[key], key
    assert ours["metrics"]["bindAddress"] == defaults["metrics"]["bindAddress"]
    assert values["controllerManager"]["podDisruptionBudget"]["enabled"] is False


@pytest.mark.parametrize("overrides, message", [
    ({"placements": []}, "placements is required"),
    ({"cluster_queues": [{"name": "a", "namespaces": ["a"], "gpu_quotas": [{"pool": "nope", "gpus": 1}]}]},
     r"cluster_queues\[0\]\.gpu_quotas\[0\]\.pool 'nope' is not a GPU pool"),
    ({"cluster_queues": [{"name": "a", "namespaces": ["a"], "gpu_quotas": [{"pool": "serving", "gpus": 2, "lending_limit": 3}]}]},
     r"cluster_queues\[0\]\.gpu_quotas\[0\]\.lending_limit \(3\) exceeds gpus \(2\)"),
    ({"cluster_queues": [{"name": "a", "namespaces": ["a"], "gpu_quotas": [{"pool": "serving", "gpus": -1}]}]},
     r"cluster_queues\[0\]\.gpu_quotas\[0\]\.gpus must be an integer"),
    ({"cluster_queues": [{"name": "a", "namespaces": [], "gpu_quotas": [{"pool": "serving", "gpus": 1}]}]},
     r"cluster_queues\[0\]\.namespaces must name"),
    ({"cluster_queues": [QUEUES[1], QUEUES[1]]}, "names must be unique"),
    ({"frameworks": ["deployment"]}, "need 'pod' too"),
    ({"frameworks": ["ray.io/rayjobs"]}, "not a Kueue 0.19 integration"),
    ({"placements": [GpuPlacement(pool="bad", instance_types=tuple(instance_types_of(["g6e"])), sharing="mig", mig_profile="1g.10gb")]},
     r"placements\[0\] \(pool 'bad'\) advertises no nvidia.com/mig-1g.10gb"),
    ({"placements": [GpuPlacement(pool="tainted", instance_types=tuple(instance_types_of(["g6e"])),
                                  extra_taints=tuple({"key": f"t{i}", "value": "x", "effect": "NoSchedule"} for i in range(8)))]},
     r"placements\[0\] \(pool 'tainted'\) has more than 8 taints"),
    ({"placements": [GpuPlacement(pool="cpu", instance_types=tuple(instance_types_of(["g6e"])))]},
     r"placements\[0\]\.pool 'cpu' is the name of Kueue's CPU flavor"),
])
def test_invalid_arguments_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        Kueue("kq", {"placements": [WHOLE, MIG], "cluster_queues": QUEUES, **overrides})


# -- flavor assignment (a model of Kueue's first fit over the rendered ClusterQueue) ------------------

def rendered(recording, queue):
    flavors = {name: r.inputs.get("spec", {}) for name, r in by_kind(recording, "ResourceFlavor").items()}
    return by_kind(recording, "ClusterQueue")[queue].inputs["spec"], flavors


def ray_pods(placement):
    from gpufleet.components.ray_cluster import plan_cluster

    plan = plan_cluster({"namespace": "serving", "placement": placement, "worker_groups": [
        {"group_name": "gpu", "gpus": 1, "cpu": "8", "memory": "64Gi", "max_replicas": 4}]},
        "rc", name="test", role_default="batch", serve=False, idle_default=300)
    return plan.spec["headGroupSpec"]["template"]["spec"], plan.groups[0]["template"]["spec"]


CPU_JOB = {"containers": [{"name": "etl", "resources": {"requests": {"cpu": "4", "memory": "8Gi"}}}]}


def test_cpu_only_pod_sets_get_the_cpu_flavor_gpu_pod_sets_their_pool(run):
    queue, flavors = rendered(run(kueue()), "serving")
    head, worker = ray_pods(WHOLE)
    assert assign_flavor(queue, flavors, head) == {"cpu": CPU_FLAVOR, "memory": CPU_FLAVOR}
    assert injected(flavors, assign_flavor(queue, flavors, head)) == ({}, [])
    assert assign_flavor(queue, flavors, CPU_JOB, count=10) == {"cpu": CPU_FLAVOR, "memory": CPU_FLAVOR}
    assignment = assign_flavor(queue, flavors, worker, count=4)
    assert assignment == {"cpu": CPU_FLAVOR, "memory": CPU_FLAVOR, "nvidia.com/gpu": "serving"}
    # The GPU flavor steers the pods to the pool; the CPU flavor adds nothing.
    assert injected(flavors, assignment) == (WHOLE.node_selector(), WHOLE.tolerations())
    _, mig_worker = ray_pods(MIG)
    assert assign_flavor(queue, flavors, mig_worker, count=4) == {
        "cpu": CPU_FLAVOR, "memory": CPU_FLAVOR, "nvidia.com/mig-1g.10gb": "serving-mig"}


def test_gpu_pod_sets_share_the_teams_cpu_quota(run):
    """The team's 96 cores hold CPU-only and GPU pod sets together: 12 workers of 8 cores fit,
    13 do not, whichever pool their GPUs are on (before: 96 cores per flavor)."""
    queue, flavors = rendered(run(kueue()), "serving")
    mig_worker = {
        "nodeSelector": MIG.node_selector(), "tolerations": MIG.tolerations(),
        "containers": [{"name": "w", "resources": {"requests": {"cpu": "8", "memory": "16Gi", MIG.gpu_resource: 1}}}]}
    assert assign_flavor(queue, flavors, mig_worker, count=12) == {
        "cpu": CPU_FLAVOR, "memory": CPU_FLAVOR, MIG.gpu_resource: "serving-mig"}
    assert assign_flavor(queue, flavors, mig_worker, count=13) is None
    assert assign_flavor(queue, flavors, CPU_JOB, count=24) is not None  # 96 cores
    assert assign_flavor(queue, flavors, CPU_JOB, count=25) is None


def test_gpu_pod_sets_beyond_nominal_quota_fit_no_flavor(run):
    recording = run(kueue())
    queue, flavors = rendered(recording, "research")
    _, worker = ray_pods(WHOLE)
    assert assign_flavor(queue, flavors, worker, count=4)["nvidia.com/gpu"] == "serving"
    assert assign_flavor(queue, flavors, worker, count=5) is None  # 4 whole GPUs
    _, mig_worker = ray_pods(MIG)
    assert assign_flavor(queue, flavors, mig_worker) is None  # nvidia.com/mig-1g.10gb is not covered


def test_pod_set_requests_follow_kueue_accounting():
    pod = {
        "initContainers": [{"name": "fetch", "resources": {"requests": {"cpu": "6"}}}],
        "containers": [
            {"name": "main", "resources": {"limits": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": 1}}},
            {"name": "side", "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}}},
        ],
    }
    assert pod_set_requests(pod, count=2) == {"cpu": 12, "memory": 9 * 2**30, "nvidia.com/gpu": 2}


# -- the model against Kueue's documented examples (not against gpufleet's rendering) ---------------

# Kueue docs, concepts/cluster_queue.md "Resource Groups": cpu/memory tied to flavors spot and
# on-demand, gpu to vendor1 and vendor2, each group's flavor chosen on its own.
DOC_QUEUE = {"resourceGroups": [
    {"coveredResources": ["cpu", "memory"], "flavors": [
        {"name": "spot", "resources": [{"name": "cpu", "nominalQuota": 9}, {"name": "memory", "nominalQuota": "36Gi"}]},
        {"name": "on-demand", "resources": [{"name": "cpu", "nominalQuota": 18}, {"name": "memory", "nominalQuota": "72Gi"}]},
    ]},
    {"coveredResources": ["gpu"], "flavors": [
        {"name": "vendor1", "resources": [{"name": "gpu", "nominalQuota": 10}]},
        {"name": "vendor2", "resources": [{"name": "gpu", "nominalQuota": 10}]},
    ]},
]}
DOC_FLAVORS = {
    # concepts/resource_flavor.md samples: labels + tolerations ("automatic scheduling") on spot;
    # a taint ("user-selective scheduling") on vendor1.
    "spot": {"nodeLabels": {"instance-type": "spot"},
             "tolerations": [{"key": "spot-taint", "operator": "Exists", "effect": "NoSchedule"}]},
    "on-demand": {"nodeLabels": {"instance-type": "on-demand"}},
    "vendor1": {"nodeLabels": {"gpu": "vendor1"}, "nodeTaints": [{"key": "vendor1", "value": "true", "effect": "NoSchedule"}]},
    "vendor2": {"nodeLabels": {"gpu": "vendor2"}},
}


def pod(cpu, memory, gpu=0, **spec):
    requests = {"cpu": cpu, "memory": memory, **({"gpu": gpu} if gpu else {})}
    return {"containers": [{"name": "c", "resources": {"requests": requests}}], **spec}


def test_doc_first_flavor_with_enough_quota_per_group():
    # cluster_queue.md "Resources": the first flavor of the list with enough nominal quota.
    assert assign_flavor(DOC_QUEUE, DOC_FLAVORS, pod("1", "1Gi"), count=9) == {"cpu": "spot", "memory": "spot"}
    assert assign_flavor(DOC_QUEUE, DOC_FLAVORS, pod("1", "1Gi"), count=10) == {"cpu": "on-demand", "memory": "on-demand"}
    assert assign_flavor(DOC_QUEUE, DOC_FLAVORS, pod("1", "1Gi"), count=19) is None
    # "Resource Groups": gpu gets its own group's flavor; vendor1's taint is not tolerated.
    assert assign_flavor(DOC_QUEUE, DOC_FLAVORS, pod("1", "4Gi", gpu=1), count=2) == {
        "cpu": "spot", "memory": "spot", "gpu": "vendor2"}


def test_doc_taints_and_node_selection_exclude_flavors():
    # resource_flavor.md "taints for user-selective scheduling": tolerating the taint admits vendor1.
    tolerant = pod("1", "1Gi", gpu=1, tolerations=[{"key": "vendor1", "operator": "Equal", "value": "true", "effect": "NoSchedule"}])
    assert assign_flavor(DOC_QUEUE, DOC_FLAVORS, tolerant)["gpu"] == "vendor1"
    # "tolerations for automatic scheduling", step 1: a flavor whose labels contradict the pod's
    # nodeSelector cannot be assigned.
    on_demand = pod("1", "1Gi", nodeSelector={"instance-type": "on-demand"})
    assert assign_flavor(DOC_QUEUE, DOC_FLAVORS, on_demand) == {"cpu": "on-demand", "memory": "on-demand"}
    # Step 2: the labels and tolerations of every assigned flavor are added to the pods.
    assignment = assign_flavor(DOC_QUEUE, DOC_FLAVORS, pod("1", "1Gi", gpu=1))
    assert injected(DOC_FLAVORS, assignment) == (
        {"instance-type": "spot", "gpu": "vendor2"},
        [{"key": "spot-taint", "operator": "Exists", "effect": "NoSchedule"}])


def test_doc_uncovered_resource_is_never_admitted():
    # cluster_queue.md "Resources": a flavor is assigned for each resource the pod set requests;
    # a resource no group covers has no flavor.
    assert assign_flavor(DOC_QUEUE, DOC_FLAVORS, {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "example.com/fpga": 1}}}]}) is None
