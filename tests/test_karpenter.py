"""``Karpenter``: exact children, IRSA trust, upstream policies, node access, interruption queue wiring,
the Helm releases (values against the pinned chart) and what the controller release waits for."""

from __future__ import annotations

import json

import pytest
import yaml

from gpufleet.components.gpu_scheduling import SYSTEM_NODE_SELECTOR
from gpufleet.components.karpenter import CHART, CRD_CHART, Karpenter
from gpufleet.components.karpenter_policy import (
    INTERRUPTION_RULE_TARGET_ID,
    INTERRUPTION_RULES,
    KARPENTER_VERSION,
    controller_policies,
)
from gpufleet.infra.helm_values import unknown_keys
from gpufleet.infra.offline.fakes import FAKE_ACCOUNT_ID
from tests.harness import child_types

COMPONENT = "gpufleet:karpenter:Karpenter"
ROLE = "aws:iam/role:Role"
POLICY = "aws:iam/policy:Policy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
RELEASE = "kubernetes:helm.sh/v3:Release"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
QUEUE = "aws:sqs/queue:Queue"

CLUSTER = "gpu-test"
ISSUER = "oidc.eks.us-west-2.amazonaws.com/id/0123456789ABCDEF"
OIDC_ARN = f"arn:aws:iam::{FAKE_ACCOUNT_ID}:oidc-provider/{ISSUER}"
BASE = {
    "cluster_name": CLUSTER,
    "oidc_provider_arn": OIDC_ARN,
    "oidc_provider_url": f"https://{ISSUER}",
    "cluster_security_group_id": "sg-0123456789abcdef0",
}


def karpenter(**overrides):
    def program():
        Karpenter("karpenter", {**BASE, **overrides})
    return program


@pytest.fixture
def recording(run):
    return run(karpenter())


def by_name(recording, name):
    (found,) = [r for r in recording.resources if r.name == name]
    return found


def test_children_are_exact(recording):
    assert child_types(recording, COMPONENT, name_prefix="karpenter-") == {
        ROLE: 2,
        ATTACHMENT: 4 + 6,
        POLICY: 6,
        "aws:eks/accessEntry:AccessEntry": 1,
        "aws:ec2/tag:Tag": 1,
        QUEUE: 1,
        "aws:sqs/queuePolicy:QueuePolicy": 1,
        RULE: 5,
        TARGET: 5,
        RELEASE: 2,
    }


def test_node_role_has_the_worker_policies_and_an_ec2_linux_access_entry(recording):
    role = by_name(recording, "karpenter-node-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"] == [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    attached = sorted(a.inputs["policyArn"] for a in recording.of_type(ATTACHMENT) if a.inputs["role"] == role.outputs["name"])
    assert attached == [
        "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
        "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
        "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
    ]
    entry = recording.one("aws:eks/accessEntry:AccessEntry").inputs
    assert entry["type"] == "EC2_LINUX"
    assert entry["principalArn"] == role.outputs["arn"]
    assert entry["clusterName"] == CLUSTER


def test_controller_role_trusts_only_the_service_account_through_irsa(recording):
    trust = json.loads(by_name(recording, "karpenter-controller-role").inputs["assumeRolePolicy"])
    assert trust["Statement"] == [{
        "Effect": "Allow",
        "Principal": {"Federated": OIDC_ARN},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            f"{ISSUER}:sub": "system:serviceaccount:kube-system:karpenter",
            f"{ISSUER}:aud": "sts.amazonaws.com",
        }},
    }]


def test_controller_gets_exactly_upstreams_policies(recording):
    queue = recording.one(QUEUE)
    node_role = by_name(recording, "karpenter-node-role")
    expected = controller_policies(
        partition="aws", region="us-west-2", account_id=FAKE_ACCOUNT_ID, cluster_name=CLUSTER,
        interruption_queue_arn=queue.outputs["arn"], node_role_arn=node_role.outputs["arn"],
    )
    documents = {p.name: json.loads(p.inputs["policy"]) for p in recording.of_type(POLICY)}
    assert sorted(documents.values(), key=json.dumps) == sorted(expected.values(), key=json.dumps)
    for document in documents.values():
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert "*" not in actions and not any(a.endswith(":*") for a in actions)
    controller = by_name(recording, "karpenter-controller-role")
    attached = {a.inputs["policyArn"] for a in recording.of_type(ATTACHMENT) if a.inputs["role"] == controller.outputs["name"]}
    assert attached == {p.outputs["arn"] for p in recording.of_type(POLICY)}


def test_interruption_queue_and_rules_are_wired(recording):
    queue = recording.one(QUEUE)
    assert queue.inputs["name"] == CLUSTER
    assert queue.inputs["messageRetentionSeconds"] == 300
    assert queue.inputs["sqsManagedSseEnabled"] is True
    policy = recording.one("aws:sqs/queuePolicy:QueuePolicy").inputs
    assert policy["queueUrl"] == queue.outputs["url"]
    statements = json.loads(policy["policy"])["Statement"]
    assert statements[0]["Principal"] == {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]}
    assert statements[0]["Resource"] == queue.outputs["arn"]
    assert statements[1]["Sid"] == "DenyHTTP" and statements[1]["Effect"] == "Deny"

    rules = {r.name.removeprefix("karpenter-"): r for r in recording.of_type(RULE)}
    assert {name: json.loads(rule.inputs["eventPattern"]) for name, rule in rules.items()} == INTERRUPTION_RULES
    assert {"spot-interruption", "rebalance", "instance-state-change", "scheduled-change"} <= set(rules)
    targets = recording.of_type(TARGET)
    assert sorted(t.inputs["rule"] for t in targets) == sorted(r.outputs["name"] for r in rules.values())
    for target in targets:
        assert target.inputs["arn"] == queue.outputs["arn"]
        assert target.inputs["targetId"] == INTERRUPTION_RULE_TARGET_ID


def test_cluster_security_group_gets_the_discovery_tag(recording):
    tag = recording.one("aws:ec2/tag:Tag").inputs
    assert tag == {"resourceId": "sg-0123456789abcdef0", "key": "karpenter.sh/discovery", "value": CLUSTER}


def test_releases_are_pinned_and_crds_come_from_the_crd_chart(recording):
    crds, controller = by_name(recording, "karpenter-crds"), by_name(recording, "karpenter-controller")
    assert crds.inputs["chart"] == CRD_CHART == "oci://public.ecr.aws/karpenter/karpenter-crd"
    assert controller.inputs["chart"] == CHART == "oci://public.ecr.aws/karpenter/karpenter"
    assert crds.inputs["version"] == controller.inputs["version"] == KARPENTER_VERSION == "1.14.1"
    assert controller.inputs["skipCrds"] is True
    assert controller.inputs["namespace"] == crds.inputs["namespace"] == "kube-system"


def test_controller_values_wire_cluster_queue_irsa_region_and_system_nodes(recording):
    values = by_name(recording, "karpenter-controller").inputs["values"]
    queue = recording.one(QUEUE)
    assert values["settings"] == {"clusterName": CLUSTER, "interruptionQueue": queue.outputs["name"]}
    assert values["serviceAccount"] == {
        "name": "karpenter",
        "annotations": {"eks.amazonaws.com/role-arn": by_name(recording, "karpenter-controller-role").outputs["arn"]},
    }
    assert values["controller"]["env"] == [{"name": "AWS_REGION", "value": "us-west-2"}]
    assert values["controller"]["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    assert values["nodeSelector"] == SYSTEM_NODE_SELECTOR
    assert values["replicas"] == 2


def test_values_keys_exist_in_the_pinned_chart(recording, upstream):
    chart = yaml.safe_load((upstream / "charts/karpenter/values.yaml").read_text())
    values = dict(by_name(recording, "karpenter-controller").inputs["values"])
    # nodeSelector is a label map (Helm merges it with the chart's kubernetes.io/os default).
    assert isinstance(chart["nodeSelector"], dict)
    values.pop("nodeSelector")
    assert unknown_keys(values, chart) == []


def test_controller_release_waits_for_iam_queue_access_and_crds(recording):
    controller = by_name(recording, "karpenter-controller")
    needed = [
        *recording.of_type(ATTACHMENT),
        recording.one("aws:eks/accessEntry:AccessEntry"),
        recording.one("aws:ec2/tag:Tag"),
        recording.one("aws:sqs/queuePolicy:QueuePolicy"),
        *recording.of_type(TARGET),
        by_name(recording, "karpenter-crds"),
    ]
    assert {r.urn for r in needed} <= set(controller.dependencies)


def test_extra_values_merge_over_gpufleets(run):
    recording = run(karpenter(extra_values={"settings": {"featureGates": {"nodeRepair": True}}, "logLevel": "debug"}))
    values = by_name(recording, "karpenter-controller").inputs["values"]
    assert values["settings"]["featureGates"] == {"nodeRepair": True}
    assert values["settings"]["clusterName"] == CLUSTER
    assert values["logLevel"] == "debug"


def test_namespace_moves_the_service_account_subject(run):
    recording = run(karpenter(namespace="karpenter", version="1.14.0", replicas=3, controller_resources={"cpu": "500m"}))
    trust = json.loads(by_name(recording, "karpenter-controller-role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Condition"]["StringEquals"][f"{ISSUER}:sub"] == "system:serviceaccount:karpenter:karpenter"
    controller = by_name(recording, "karpenter-controller")
    assert controller.inputs["namespace"] == "karpenter" and controller.inputs["version"] == "1.14.0"
    assert controller.inputs["values"]["replicas"] == 3
    assert controller.inputs["values"]["controller"]["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"version": "1.13.0"}, r"version must be a Karpenter 1\.14 patch release"),
    ({"cluster_security_group_id": None}, "cluster_security_group_id is required"),
    ({"oidc_provider_arn": None}, "oidc_provider_arn is required"),
    ({"replicas": 0}, "replicas must be an integer from 1 to 10"),
    ({"log_level": "trace"}, "log_level must be one of"),
    ({"namespace": "Kube_System"}, "namespace must be a Kubernetes namespace name"),
    ({"controller_resources": {"gpu": "1"}}, r"controller_resources has unknown keys \['gpu'\]"),
])
def test_invalid_arguments_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=f"gpufleet:karpenter:Karpenter: {message}"):
        Karpenter("karpenter", {**BASE, **overrides})


def test_node_overlays_turn_on_the_alpha_feature_gate(run, upstream):
    captured = {}

    def program():
        captured["on"] = Karpenter("karpenter", {**BASE, "node_overlays": True})

    values = by_name(run(program), "karpenter-controller").inputs["values"]
    assert values["settings"]["featureGates"] == {"nodeOverlay": True}
    assert captured["on"].node_overlays is True
    chart = yaml.safe_load((upstream / "charts/karpenter/values.yaml").read_text())
    assert chart["settings"]["featureGates"]["nodeOverlay"] is False  # alpha: off unless asked for
    assert unknown_keys({"settings": values["settings"]}, chart) == []


def test_the_feature_gate_stays_at_the_chart_default_without_node_overlays(run):
    captured = {}

    def program():
        captured["default"] = Karpenter("karpenter", dict(BASE))
        captured["extra"] = Karpenter("karpenter-extra", {
            **BASE, "extra_values": {"settings": {"featureGates": {"nodeOverlay": True}}},
        })

    recording = run(program)
    assert "featureGates" not in by_name(recording, "karpenter-controller").inputs["values"]["settings"]
    assert captured["default"].node_overlays is False
    # Turning the gate on through the escape hatch counts too.
    assert captured["extra"].node_overlays is True


def test_node_overlays_must_be_a_bool():
    with pytest.raises(ValueError, match="gpufleet:karpenter:Karpenter: node_overlays must be a bool, got 'yes'"):
        Karpenter("karpenter", {**BASE, "node_overlays": "yes"})
