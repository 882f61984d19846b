"""``karpenter_policy``: the Karpenter v1.14.1 controller policies, queue policy and interruption rules."""

from __future__ import annotations

import json

import pytest

from gpufleet.components import karpenter_policy as kp

PARTITION = "aws"
REGION = "eu-west-1"
ACCOUNT = "123456789012"
CLUSTER = "gpu-prod"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{CLUSTER}"
NODE_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/KarpenterNodeRole-{CLUSTER}"

EXPECTED_POLICIES = [
    "KarpenterControllerNodeLifecyclePolicy",
    "KarpenterControllerIAMIntegrationPolicy",
    "KarpenterControllerEKSIntegrationPolicy",
    "KarpenterControllerInterruptionPolicy",
    "KarpenterControllerZonalShiftPolicy",
    "KarpenterControllerResourceDiscoveryPolicy",
]

MUTATING_EC2 = {
    "ec2:RunInstances",
    "ec2:CreateFleet",
    "ec2:CreateLaunchTemplate",
    "ec2:TerminateInstances",
    "ec2:DeleteLaunchTemplate",
    "ec2:CreateTags",
}
# Resource types Karpenter creates, tags or deletes (as opposed to ones it only references at launch:
# images, snapshots, security groups, subnets, capacity reservations, placement groups).
OWNED_RESOURCE_TYPES = (
    ":fleet/",
    ":instance/",
    ":volume/",
    ":network-interface/",
    ":launch-template/",
    ":spot-instances-request/",
)


def _policies(**overrides):
    args = dict(
        partition=PARTITION,
        region=REGION,
        account_id=ACCOUNT,
        cluster_name=CLUSTER,
        interruption_queue_arn=QUEUE_ARN,
        node_role_arn=NODE_ROLE_ARN,
    )
    args.update(overrides)
    return kp.controller_policies(**args)


@pytest.fixture(scope="module")
def policies():
    return _policies()


def _statements(policies):
    return [(name, s) for name, doc in policies.items() for s in doc["Statement"]]


def _as_list(value):
    return [value] if isinstance(value, str) else list(value)


def _condition_mentions_cluster(statement) -> bool:
    condition = statement.get("Condition", {})
    return any(
        CLUSTER in key or CLUSTER in json.dumps(value)
        for block in condition.values()
        for key, value in block.items()
    )


def test_policy_names_and_shape(policies):
    assert list(policies) == EXPECTED_POLICIES
    for doc in policies.values():
        assert doc["Version"] == "2012-10-17"
        assert doc["Statement"]
        for statement in doc["Statement"]:
            assert statement["Sid"]
            assert statement["Effect"] == "Allow"
    sids = [s["Sid"] for _, s in _statements(policies)]
    assert len(sids) == len(set(sids))


def test_every_placeholder_is_substituted(policies):
    text = json.dumps(policies)
    assert "${" not in text
    assert "AWS::" not in text
    assert f"kubernetes.io/cluster/{CLUSTER}" in text
    assert f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{CLUSTER}" in text


def test_no_wildcard_actions(policies):
    for name, statement in _statements(policies):
        for action in _as_list(statement["Action"]):
            assert action != "*", (name, statement["Sid"])
            assert not action.endswith(":*"), (name, statement["Sid"], action)
            assert action not in ("iam:*", "ec2:*")


def test_mutating_ec2_actions_are_scoped_to_the_cluster(policies):
    seen = set()
    for name, statement in _statements(policies):
        actions = set(_as_list(statement["Action"])) & MUTATING_EC2
        if not actions:
            continue
        seen |= actions
        resources = _as_list(statement["Resource"])
        unscoped = "*" in resources
        owned = any(t in r for r in resources for t in OWNED_RESOURCE_TYPES)
        if unscoped or owned:
            assert _condition_mentions_cluster(statement), (name, statement["Sid"])
        # Never account-wide for mutations: every ARN is in this partition and region.
        for resource in resources:
            assert resource.startswith(f"arn:aws:ec2:{REGION}:"), (statement["Sid"], resource)
    assert seen == MUTATING_EC2


def test_deletion_and_retagging_need_owned_and_nodepool_tags(policies):
    by_sid = {s["Sid"]: s for _, s in _statements(policies)}
    for sid in ("AllowScopedDeletion", "AllowScopedResourceTagging", "AllowScopedEC2LaunchTemplateAccessActions"):
        condition = by_sid[sid]["Condition"]
        assert condition["StringEquals"][f"aws:ResourceTag/kubernetes.io/cluster/{CLUSTER}"] == "owned"
        assert condition["StringLike"]["aws:ResourceTag/karpenter.sh/nodepool"] == "*"
    creation = by_sid["AllowScopedEC2InstanceActionsWithTags"]["Condition"]
    assert creation["StringEquals"] == {
        f"aws:RequestTag/kubernetes.io/cluster/{CLUSTER}": "owned",
        "aws:RequestTag/eks:eks-cluster-name": CLUSTER,
    }
    assert by_sid["AllowScopedResourceTagging"]["Condition"]["ForAllValues:StringEquals"] == {
        "aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]
    }


def test_unscoped_resources_are_read_only_or_conditioned(policies):
    for _, statement in _statements(policies):
        if "*" not in _as_list(statement["Resource"]):
            continue
        actions = _as_list(statement["Action"])
        read_only = all(a.split(":")[1].startswith(("Describe", "Get", "List")) for a in actions)
        assert read_only, statement["Sid"]


def test_pass_role_only_for_the_node_role(policies):
    passing = [s for _, s in _statements(policies) if "iam:PassRole" in _as_list(s["Action"])]
    assert len(passing) == 1
    statement = passing[0]
    assert statement["Resource"] == NODE_ROLE_ARN
    assert _as_list(statement["Action"]) == ["iam:PassRole"]
    assert statement["Condition"] == {
        "StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]}
    }
    # No other statement can reach the node role.
    for _, other in _statements(policies):
        if other is not statement:
            assert NODE_ROLE_ARN not in json.dumps(other)


def test_instance_profile_actions_are_tag_scoped(policies):
    iam = policies["KarpenterControllerIAMIntegrationPolicy"]["Statement"]
    for statement in iam[1:]:
        assert statement["Resource"] == f"arn:aws:iam::{ACCOUNT}:instance-profile/*"
        assert _condition_mentions_cluster(statement)
        assert REGION in json.dumps(statement["Condition"])


def test_interruption_policy_only_touches_the_queue(policies):
    doc = policies["KarpenterControllerInterruptionPolicy"]
    assert doc["Statement"] == [
        {
            "Sid": "AllowInterruptionQueueActions",
            "Effect": "Allow",
            "Resource": QUEUE_ARN,
            "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
        }
    ]
    # And the queue is reachable from no other policy.
    for name, statement in _statements(policies):
        if any(a.startswith("sqs:") for a in _as_list(statement["Action"])):
            assert name == "KarpenterControllerInterruptionPolicy"
            assert _as_list(statement["Resource"]) == [QUEUE_ARN]


def test_eks_and_zonal_shift_scoped_to_the_cluster(policies):
    cluster_arn = f"arn:aws:eks:{REGION}:{ACCOUNT}:cluster/{CLUSTER}"
    (eks,) = policies["KarpenterControllerEKSIntegrationPolicy"]["Statement"]
    assert (eks["Action"], eks["Resource"]) == ("eks:DescribeCluster", cluster_arn)
    (zonal,) = policies["KarpenterControllerZonalShiftPolicy"]["Statement"]
    assert zonal["Condition"] == {"StringEquals": {"arc-zonal-shift:ResourceIdentifier": cluster_arn}}


def test_other_partitions():
    policies = _policies(
        partition="aws-cn",
        region="cn-north-1",
        interruption_queue_arn=f"arn:aws-cn:sqs:cn-north-1:{ACCOUNT}:{CLUSTER}",
        node_role_arn=f"arn:aws-cn:iam::{ACCOUNT}:role/KarpenterNodeRole-{CLUSTER}",
    )
    text = json.dumps(policies)
    assert "arn:aws:" not in text
    assert "arn:aws-cn:ec2:cn-north-1::image/*" in text


def test_rendering_does_not_mutate_the_template(policies):
    before = json.dumps(kp.CONTROLLER_POLICY_STATEMENTS)
    policies["KarpenterControllerNodeLifecyclePolicy"]["Statement"][0]["Resource"].append("x")
    _policies(cluster_name="other")
    assert json.dumps(kp.CONTROLLER_POLICY_STATEMENTS) == before
    assert "${ClusterName}" in before


@pytest.mark.parametrize(
    "override",
    [
        {"partition": "amazon"},
        {"region": "eu west 1"},
        {"account_id": "1234"},
        {"cluster_name": "${AWS::Region}"},
        {"cluster_name": ""},
        {"interruption_queue_arn": f"arn:aws:sns:{REGION}:{ACCOUNT}:x"},
        {"node_role_arn": f"arn:aws-cn:iam::{ACCOUNT}:role/x"},
        {"node_role_arn": "*"},
    ],
)
def test_bad_arguments(override):
    with pytest.raises(ValueError, match="karpenter_policy: "):
        _policies(**override)


def test_non_string_argument():
    with pytest.raises(TypeError, match="cluster_name must be str"):
        _policies(cluster_name=None)


def test_interruption_rules_cover_the_classic_events():
    rules = kp.INTERRUPTION_RULES
    detail_types = {(r["source"][0], r["detail-type"][0]) for r in rules.values()}
    assert {
        ("aws.health", "AWS Health Event"),
        ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
        ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
        ("aws.ec2", "EC2 Instance State-change Notification"),
    } <= detail_types
    assert ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning") in detail_types
    assert len(rules) == 5
    for pattern in rules.values():
        assert set(pattern) == {"source", "detail-type"}
        assert len(pattern["source"]) == len(pattern["detail-type"]) == 1
    assert set(kp.INTERRUPTION_RULE_UPSTREAM_IDS) == set(rules)


def test_queue_settings_and_policy():
    assert kp.QUEUE_MESSAGE_RETENTION_SECONDS == 300
    assert kp.QUEUE_SQS_MANAGED_SSE_ENABLED is True
    doc = kp.interruption_queue_policy(QUEUE_ARN, PARTITION)
    allow, deny = doc["Statement"]
    assert allow == {
        "Effect": "Allow",
        "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
        "Action": "sqs:SendMessage",
        "Resource": QUEUE_ARN,
    }
    assert deny["Sid"] == "DenyHTTP"
    assert deny["Effect"] == "Deny"
    assert deny["Resource"] == QUEUE_ARN
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": False}}
    # The only wildcard action anywhere is this Deny.
    for statement in doc["Statement"]:
        if statement["Effect"] == "Allow":
            assert "*" not in statement["Action"]
    json.dumps(doc)  # serialisable as-is for aws.sqs.QueuePolicy
    with pytest.raises(ValueError):
        kp.interruption_queue_policy(QUEUE_ARN, "aws-cn")


def test_source_names_the_release():
    assert kp.KARPENTER_VERSION == "1.14.1"
    assert "karpenter-provider-aws" in kp.SOURCE
    assert "cloudformation.yaml" in kp.SOURCE
    assert "bde00654cd316fddb3dccfba3f5ac07039865429" in kp.SOURCE
