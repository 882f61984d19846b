"""``Team`` (namespace, quota, defaults, namespace-scoped access, LocalQueue) and ``PriorityClasses``."""

from __future__ import annotations

from collections import Counter

import pulumi
import pytest

from gpufleet.components.gpu_scheduling import ENVIRONMENT_LABEL, PRIORITY_CLASSES
from gpufleet.components.priority_classes import PriorityClasses
from gpufleet.components.team import TEAM_LABEL, Team

COMPONENT = "gpufleet:tenancy:Team"
ENTRY = "aws:eks/accessEntry:AccessEntry"
ASSOCIATION = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
LOCAL_QUEUE = "kubernetes:kueue.x-k8s.io/v1beta2:LocalQueue"
BASE = {
    "team": "research",
    "environment": "prod",
    "cluster_name": "gpu-prod",
    "quota": {"cpu": 128, "memory_gib": 1024, "gpus": {"nvidia.com/gpu": 12, "nvidia.com/mig-1g.10gb": 0}},
    "access": [
        {"principal_arn": "arn:aws:iam::111122223333:role/research-engineers"},
        {"principal_arn": "arn:aws:iam::111122223333:role/research-auditors", "access_policy": "view"},
    ],
    "cluster_queue": "research",
}


def team(**overrides):
    def program():
        t = Team("t", {**BASE, **overrides})
        pulumi.export("namespace", t.namespace_name)
    return program


def test_children_are_exact(run):
    recording = run(team())
    component = recording.one(COMPONENT)
    children = recording.children(component.urn)
    assert Counter(c.type for c in children) == {
        "kubernetes:core/v1:Namespace": 1,
        "kubernetes:core/v1:ResourceQuota": 1,
        "kubernetes:core/v1:LimitRange": 1,
        "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding": 2,
        ENTRY: 2,
        ASSOCIATION: 2,
        LOCAL_QUEUE: 1,
    }
    assert all(c.name.startswith("t-") for c in children)
    assert recording.stack_outputs["namespace"] == "research"


def test_namespace_labels(run):
    labels = run(team()).one("kubernetes:core/v1:Namespace").inputs["metadata"]["labels"]
    assert labels[ENVIRONMENT_LABEL] == "prod"
    assert labels[TEAM_LABEL] == "research"
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"


def test_quota_caps_gpus_cpu_memory_and_storage(run):
    recording = run(team())
    quota = recording.one("kubernetes:core/v1:ResourceQuota")
    assert quota.inputs["metadata"]["namespace"] == "research"
    assert quota.inputs["spec"]["hard"] == {
        "requests.cpu": "128",
        "limits.cpu": "256",
        "requests.memory": "1024Gi",
        "limits.memory": "2048Gi",
        "persistentvolumeclaims": "20",
        "requests.storage": "2000Gi",
        "requests.nvidia.com/gpu": "12",
        "requests.nvidia.com/mig-1g.10gb": "0",
    }
    namespace = recording.one("kubernetes:core/v1:Namespace")
    assert namespace.urn in quota.dependencies


def test_limit_range_gives_container_defaults(run):
    spec = run(team()).one("kubernetes:core/v1:LimitRange").inputs["spec"]
    [limits] = spec["limits"]
    assert limits["type"] == "Container"
    assert limits["defaultRequest"] == {"cpu": "250m", "memory": "512Mi"}
    assert limits["default"] == {"cpu": "1", "memory": "1Gi"}
    assert "nvidia.com/gpu" not in limits["default"]


def test_access_is_scoped_to_the_namespace(run):
    recording = run(team())
    entries = {e.inputs["principalArn"]: e for e in recording.of_type(ENTRY)}
    engineers = entries["arn:aws:iam::111122223333:role/research-engineers"]
    assert engineers.inputs["clusterName"] == "gpu-prod"
    assert engineers.inputs["type"] == "STANDARD"
    assert engineers.inputs["kubernetesGroups"] == ["gpufleet:team:research:edit"]
    policies = {a.inputs["principalArn"]: a for a in recording.of_type(ASSOCIATION)}
    edit = policies["arn:aws:iam::111122223333:role/research-engineers"]
    assert edit.inputs["policyArn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"
    assert edit.inputs["accessScope"] == {"type": "namespace", "namespaces": ["research"]}
    assert engineers.urn in edit.dependencies
    view = policies["arn:aws:iam::111122223333:role/research-auditors"]
    assert view.inputs["policyArn"].endswith("/AmazonEKSViewPolicy")
    bindings = {b.inputs["roleRef"]["name"]: b for b in recording.of_type("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")}
    assert set(bindings) == {"edit", "view"}
    assert bindings["edit"].inputs["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "gpufleet:team:research:edit"}]
    assert bindings["edit"].inputs["metadata"]["namespace"] == "research"


def test_local_queue_points_at_the_cluster_queue(run):
    recording = run(team(local_queue="jobs"))
    queue = recording.one(LOCAL_QUEUE)
    assert queue.inputs["metadata"] == {"name": "jobs", "namespace": "research"}
    assert queue.inputs["spec"] == {"clusterQueue": "research"}
    assert recording.one("kubernetes:core/v1:Namespace").urn in queue.dependencies


def test_without_access_or_queue_only_the_namespace_objects(run):
    recording = run(team(access=[], cluster_queue=None, cluster_name=None))
    assert recording.of_type(ENTRY) == []
    assert recording.of_type(LOCAL_QUEUE) == []
    assert len(recording.of_type("kubernetes:core/v1:ResourceQuota")) == 1


@pytest.mark.parametrize("overrides, message", [
    ({"team": "kube-system"}, "team must be a DNS label that is not a system namespace"),
    ({"team": "Research"}, "team must be a DNS label"),
    ({"quota": {"cpu": 0, "memory_gib": 1, "gpus": {"nvidia.com/gpu": 1}}}, "quota.cpu must be an integer"),
    ({"quota": {"cpu": 1, "memory_gib": 1, "gpus": {}}}, "quota.gpus must map"),
    ({"quota": {"cpu": 1, "memory_gib": 1, "gpus": {"amd.com/gpu": 1}}}, "not an NVIDIA GPU resource name"),
    ({"access": [{"principal_arn": "arn:aws:iam::111122223333:group/ml"}]}, r"access\[0\].principal_arn is not an IAM role or user ARN"),
    ({"access": [BASE["access"][0], BASE["access"][0]]}, r"access\[1\].principal_arn repeats"),
    ({"access": [{"principal_arn": BASE["access"][0]["principal_arn"], "access_policy": "cluster-admin"}]},
     r"access\[0\].access_policy must be one of"),
    ({"cluster_name": None}, "cluster_name is required when access is set"),
    ({"labels": {TEAM_LABEL: "other"}}, "labels must not set"),
])
def test_invalid_arguments_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        Team("t", {**BASE, **overrides})


def test_priority_classes(run):
    recording = run(lambda: PriorityClasses("prio"))
    component = recording.one("gpufleet:scheduling:PriorityClasses")
    classes = {c.inputs["metadata"]["name"]: c.inputs for c in recording.children(component.urn)}
    assert set(classes) == set(PRIORITY_CLASSES.values())
    inference, training, batch = (classes[PRIORITY_CLASSES[r]] for r in ("inference", "training", "batch"))
    assert inference["value"] > training["value"] > batch["value"] > 0
    assert inference["preemptionPolicy"] == training["preemptionPolicy"] == "PreemptLowerPriority"
    assert batch["preemptionPolicy"] == "Never"
    assert not any(c["globalDefault"] for c in classes.values())
    assert inference["value"] < 1_000_000_000  # user classes must stay below the system range


def test_callers_depends_on_holds_for_the_namespace_and_what_is_in_it(run):
    """Children do not inherit ``depends_on``: the Team applies it to its Namespace, so a namespace
    whose Workloads carry Kueue's finalizers is deleted while Kueue (the dependency) still runs."""
    def program():
        controller = pulumi.ComponentResource("test:index:Controller", "controller")
        release = pulumi.CustomResource("test:index:Release", "release", {}, pulumi.ResourceOptions(parent=controller))
        Team("t", BASE, pulumi.ResourceOptions(depends_on=[release]))
        Team("u", {**BASE, "team": "other", "access": []})
    recording = run(program)
    release = recording.one("test:index:Release")
    namespaces = {r.inputs["metadata"]["name"]: r for r in recording.of_type("kubernetes:core/v1:Namespace")}
    assert release.urn in namespaces["research"].dependencies
    assert namespaces["other"].dependencies == []
    quota = next(r for r in recording.of_type("kubernetes:core/v1:ResourceQuota") if r.name == "t-quota")
    assert namespaces["research"].urn in quota.dependencies  # and everything inside waits for it
