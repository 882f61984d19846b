"""Karpenter controller IAM policies and interruption-queue wiring, as plain policy-document data.

Source: upstream's reference CloudFormation template for karpenter-provider-aws v1.14.1,
``website/content/en/v1.14/getting-started/getting-started-with-karpenter/cloudformation.yaml`` in
github.com/aws/karpenter-provider-aws (see ``SOURCE``). The v1.14 docs tell users to fetch
``website/content/en/preview/.../cloudformation.yaml`` at tag ``v1.14.1``; the ``v1.14`` path is the
versioned copy of that file. Every statement below is upstream's, byte for byte (Sid, Effect, Action,
Resource, Condition, and their order); only the CloudFormation substitutions are replaced by arguments:

=====================================  ==============================
CloudFormation                         ``controller_policies`` argument
=====================================  ==============================
``${AWS::Partition}``                  ``partition``
``${AWS::Region}``                     ``region``
``${AWS::AccountId}``                  ``account_id``
``${ClusterName}``                     ``cluster_name``
``${KarpenterInterruptionQueue.Arn}``  ``interruption_queue_arn``
``${KarpenterNodeRole.Arn}``           ``node_role_arn``
=====================================  ==============================

The template's six ``AWS::IAM::ManagedPolicy`` resources are named ``<name>-${ClusterName}``; the keys
of ``controller_policies()`` are ``<name>``:

``KarpenterControllerNodeLifecyclePolicy``
    EC2 launch/teardown: RunInstances/CreateFleet against images, snapshots, security groups, subnets,
    capacity reservations, placement groups and Karpenter-owned launch templates; creating fleets,
    instances, volumes, ENIs, launch templates and spot requests only with the cluster's ownership tags;
    tagging at creation and (a fixed set of keys) afterwards; terminating instances and deleting launch
    templates that carry the cluster and ``karpenter.sh/nodepool`` tags.
``KarpenterControllerIAMIntegrationPolicy``
    ``iam:PassRole`` on the node role (to EC2 only) and create/tag/add-role/remove-role/delete on
    instance profiles tagged for this cluster, region and an EC2NodeClass.
``KarpenterControllerEKSIntegrationPolicy``
    ``eks:DescribeCluster`` on this cluster (API endpoint discovery).
``KarpenterControllerInterruptionPolicy``
    Receive/delete messages on the interruption queue only.
``KarpenterControllerZonalShiftPolicy``
    ``arc-zonal-shift:GetManagedResource`` for this cluster's ARN (used with ``settings.enableZonalShift``).
``KarpenterControllerResourceDiscoveryPolicy``
    Region-scoped EC2 Describe* calls, SSM public parameters under ``/aws/service/``, pricing,
    instance-profile list/get.

No statement grants ``"Action": "*"`` or a service-wide ``iam:*``/``ec2:*``. The only ``Resource: "*"``
statements are upstream's read-only ones (Describe*, pricing, ListInstanceProfiles) and the zonal-shift
read, which is scoped by an ``arc-zonal-shift:ResourceIdentifier`` condition.

The same template creates the interruption queue (SQS, ``MessageRetentionPeriod: 300``,
``SqsManagedSseEnabled: true``, named after the cluster), its queue policy
(``interruption_queue_policy``) and five EventBridge rules targeting it (``INTERRUPTION_RULES``).

All arguments are plain strings: with Pulumi Outputs, call these inside ``Output.all(...).apply``.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Mapping

KARPENTER_VERSION = "1.14.1"

SOURCE = (
    "github.com/aws/karpenter-provider-aws "
    "website/content/en/v1.14/getting-started/getting-started-with-karpenter/cloudformation.yaml "
    "@ e0834c2bd02ed804561d5748ab92f5c2b8f86d60 (v1.14 versioned docs copy of "
    "website/content/en/preview/getting-started/getting-started-with-karpenter/cloudformation.yaml; "
    "release tag v1.14.1 = bde00654cd316fddb3dccfba3f5ac07039865429)"
)

POLICY_VERSION = "2012-10-17"

# --------------------------------------------------------------------------------------------------
# Controller policy statements, verbatim from the template. "${...}" tokens are filled in by
# controller_policies(); nothing else is rewritten.
# --------------------------------------------------------------------------------------------------

_EC2_ARN = "arn:${AWS::Partition}:ec2:${AWS::Region}"
_INSTANCE_PROFILE_ARN = "arn:${AWS::Partition}:iam::${AWS::AccountId}:instance-profile/*"
_CLUSTER_ARN = "arn:${AWS::Partition}:eks:${AWS::Region}:${AWS::AccountId}:cluster/${ClusterName}"

_CREATED_RESOURCES = [
    f"{_EC2_ARN}:*:fleet/*",
    f"{_EC2_ARN}:*:instance/*",
    f"{_EC2_ARN}:*:volume/*",
    f"{_EC2_ARN}:*:network-interface/*",
    f"{_EC2_ARN}:*:launch-template/*",
    f"{_EC2_ARN}:*:spot-instances-request/*",
]

_NODE_LIFECYCLE: list[dict[str, Any]] = [
    {
        "Sid": "AllowScopedEC2InstanceAccessActions",
        "Effect": "Allow",
        "Resource": [
            f"{_EC2_ARN}::image/*",
            f"{_EC2_ARN}::snapshot/*",
            f"{_EC2_ARN}:*:security-group/*",
            f"{_EC2_ARN}:*:subnet/*",
            f"{_EC2_ARN}:*:capacity-reservation/*",
            f"{_EC2_ARN}:*:placement-group/*",
        ],
        "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
    },
    {
        "Sid": "AllowScopedEC2LaunchTemplateAccessActions",
        "Effect": "Allow",
        "Resource": f"{_EC2_ARN}:*:launch-template/*",
        "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
        "Condition": {
            "StringEquals": {"aws:ResourceTag/kubernetes.io/cluster/${ClusterName}": "owned"},
            "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
        },
    },
    {
        "Sid": "AllowScopedEC2InstanceActionsWithTags",
        "Effect": "Allow",
        "Resource": _CREATED_RESOURCES,
        "Action": ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"],
        "Condition": {
            "StringEquals": {
                "aws:RequestTag/kubernetes.io/cluster/${ClusterName}": "owned",
                "aws:RequestTag/eks:eks-cluster-name": "${ClusterName}",
            },
            "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
        },
    },
    {
        "Sid": "AllowScopedResourceCreationTagging",
        "Effect": "Allow",
        "Resource": _CREATED_RESOURCES,
        "Action": "ec2:CreateTags",
        "Condition": {
            "StringEquals": {
                "aws:RequestTag/kubernetes.io/cluster/${ClusterName}": "owned",
                "aws:RequestTag/eks:eks-cluster-name": "${ClusterName}",
                "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"],
            },
            "StringLike": {"aws:RequestTag/karpenter.sh/nodepool": "*"},
        },
    },
    {
        "Sid": "AllowScopedResourceTagging",
        "Effect": "Allow",
        "Resource": f"{_EC2_ARN}:*:instance/*",
        "Action": "ec2:CreateTags",
        "Condition": {
            "StringEquals": {"aws:ResourceTag/kubernetes.io/cluster/${ClusterName}": "owned"},
            "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
            "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": "${ClusterName}"},
            "ForAllValues:StringEquals": {
                "aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"],
            },
        },
    },
    {
        "Sid": "AllowScopedDeletion",
        "Effect": "Allow",
        "Resource": [f"{_EC2_ARN}:*:instance/*", f"{_EC2_ARN}:*:launch-template/*"],
        "Action": ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
        "Condition": {
            "StringEquals": {"aws:ResourceTag/kubernetes.io/cluster/${ClusterName}": "owned"},
            "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"},
        },
    },
]

_IAM_INTEGRATION: list[dict[str, Any]] = [
    {
        "Sid": "AllowPassingInstanceRole",
        "Effect": "Allow",
        "Resource": "${KarpenterNodeRole.Arn}",
        "Action": "iam:PassRole",
        "Condition": {
            "StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]},
        },
    },
    {
        "Sid": "AllowScopedInstanceProfileCreationActions",
        "Effect": "Allow",
        "Resource": _INSTANCE_PROFILE_ARN,
        "Action": ["iam:CreateInstanceProfile"],
        "Condition": {
            "StringEquals": {
                "aws:RequestTag/kubernetes.io/cluster/${ClusterName}": "owned",
                "aws:RequestTag/eks:eks-cluster-name": "${ClusterName}",
                "aws:RequestTag/topology.kubernetes.io/region": "${AWS::Region}",
            },
            "StringLike": {"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"},
        },
    },
    {
        "Sid": "AllowScopedInstanceProfileTagActions",
        "Effect": "Allow",
        "Resource": _INSTANCE_PROFILE_ARN,
        "Action": ["iam:TagInstanceProfile"],
        "Condition": {
            "StringEquals": {
                "aws:ResourceTag/kubernetes.io/cluster/${ClusterName}": "owned",
                "aws:ResourceTag/topology.kubernetes.io/region": "${AWS::Region}",
                "aws:RequestTag/kubernetes.io/cluster/${ClusterName}": "owned",
                "aws:RequestTag/eks:eks-cluster-name": "${ClusterName}",
                "aws:RequestTag/topology.kubernetes.io/region": "${AWS::Region}",
            },
            "StringLike": {
                "aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*",
                "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*",
            },
        },
    },
    {
        "Sid": "AllowScopedInstanceProfileActions",
        "Effect": "Allow",
        "Resource": _INSTANCE_PROFILE_ARN,
        "Action": [
            "iam:AddRoleToInstanceProfile",
            "iam:RemoveRoleFromInstanceProfile",
            "iam:DeleteInstanceProfile",
        ],
        "Condition": {
            "StringEquals": {
                "aws:ResourceTag/kubernetes.io/cluster/${ClusterName}": "owned",
                "aws:ResourceTag/topology.kubernetes.io/region": "${AWS::Region}",
            },
            "StringLike": {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"},
        },
    },
]

_EKS_INTEGRATION: list[dict[str, Any]] = [
    {
        "Sid": "AllowAPIServerEndpointDiscovery",
        "Effect": "Allow",
        "Resource": _CLUSTER_ARN,
        "Action": "eks:DescribeCluster",
    },
]

_INTERRUPTION: list[dict[str, Any]] = [
    {
        "Sid": "AllowInterruptionQueueActions",
        "Effect": "Allow",
        "Resource": "${KarpenterInterruptionQueue.Arn}",
        "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
    },
]

_ZONAL_SHIFT: list[dict[str, Any]] = [
    {
        "Sid": "AllowZonalShiftStatusReadOnly",
        "Effect": "Allow",
        "Resource": "*",
        "Action": ["arc-zonal-shift:GetManagedResource"],
        "Condition": {"StringEquals": {"arc-zonal-shift:ResourceIdentifier": _CLUSTER_ARN}},
    },
]

_RESOURCE_DISCOVERY: list[dict[str, Any]] = [
    {
        "Sid": "AllowRegionalReadActions",
        "Effect": "Allow",
        "Resource": "*",
        "Action": [
            "ec2:DescribeCapacityReservations",
            "ec2:DescribeImages",
            "ec2:DescribeInstances",
            "ec2:DescribeInstanceStatus",
            "ec2:DescribeInstanceTypeOfferings",
            "ec2:DescribeInstanceTypes",
            "ec2:DescribeLaunchTemplates",
            "ec2:DescribePlacementGroups",
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeSpotPriceHistory",
            "ec2:DescribeSubnets",
        ],
        "Condition": {"StringEquals": {"aws:RequestedRegion": "${AWS::Region}"}},
    },
    {
        "Sid": "AllowSSMReadActions",
        "Effect": "Allow",
        "Resource": "arn:${AWS::Partition}:ssm:${AWS::Region}::parameter/aws/service/*",
        "Action": "ssm:GetParameter",
    },
    {
        "Sid": "AllowPricingReadActions",
        "Effect": "Allow",
        "Resource": "*",
        "Action": "pricing:GetProducts",
    },
    {
        "Sid": "AllowUnscopedInstanceProfileListAction",
        "Effect": "Allow",
        "Resource": "*",
        "Action": "iam:ListInstanceProfiles",
    },
    {
        "Sid": "AllowInstanceProfileReadActions",
        "Effect": "Allow",
        "Resource": _INSTANCE_PROFILE_ARN,
        "Action": "iam:GetInstanceProfile",
    },
]

CONTROLLER_POLICY_STATEMENTS: Mapping[str, list[dict[str, Any]]] = {
    "KarpenterControllerNodeLifecyclePolicy": _NODE_LIFECYCLE,
    "KarpenterControllerIAMIntegrationPolicy": _IAM_INTEGRATION,
    "KarpenterControllerEKSIntegrationPolicy": _EKS_INTEGRATION,
    "KarpenterControllerInterruptionPolicy": _INTERRUPTION,
    "KarpenterControllerZonalShiftPolicy": _ZONAL_SHIFT,
    "KarpenterControllerResourceDiscoveryPolicy": _RESOURCE_DISCOVERY,
}
"""Upstream policy name (without ``-${ClusterName}``) -> statements with CloudFormation ``${...}`` tokens."""

# --------------------------------------------------------------------------------------------------
# Interruption queue: SQS settings, queue policy, EventBridge rules.
# --------------------------------------------------------------------------------------------------

QUEUE_MESSAGE_RETENTION_SECONDS = 300
"""``KarpenterInterruptionQueue.MessageRetentionPeriod``."""
QUEUE_SQS_MANAGED_SSE_ENABLED = True
"""``KarpenterInterruptionQueue.SqsManagedSseEnabled``. Upstream names the queue after the cluster."""

INTERRUPTION_RULES: dict[str, dict[str, list[str]]] = {
    # ScheduledChangeRule
    "scheduled-change": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
    # SpotInterruptionRule
    "spot-interruption": {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]},
    # RebalanceRule
    "rebalance": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]},
    # InstanceStateChangeRule
    "instance-state-change": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]},
    # CapacityReservationInterruptionRule
    "capacity-reservation-interruption": {
        "source": ["aws.ec2"],
        "detail-type": ["EC2 Capacity Reservation Instance Interruption Warning"],
    },
}
"""Short rule name -> EventBridge event pattern. Each upstream rule has one target: the queue
(target Id ``KarpenterInterruptionQueueTarget``)."""

INTERRUPTION_RULE_UPSTREAM_IDS: dict[str, str] = {
    "scheduled-change": "ScheduledChangeRule",
    "spot-interruption": "SpotInterruptionRule",
    "rebalance": "RebalanceRule",
    "instance-state-change": "InstanceStateChangeRule",
    "capacity-reservation-interruption": "CapacityReservationInterruptionRule",
}
"""Short rule name -> the template's logical resource ID."""

INTERRUPTION_RULE_TARGET_ID = "KarpenterInterruptionQueueTarget"


def interruption_queue_policy(queue_arn: str, partition: str) -> dict:
    """The interruption queue's resource policy (upstream ``KarpenterInterruptionQueuePolicy``).

    Statements are upstream's: EventBridge and SQS may ``sqs:SendMessage`` to the queue, and
    ``DenyHTTP`` denies every SQS action over non-TLS connections. Upstream's document has no
    ``Version`` (IAM then assumes 2008-10-17); ``2012-10-17`` is set here, which changes nothing for
    these statements (no policy variables). ``partition`` is used to check ``queue_arn``.
    """
    _check_arn(queue_arn, partition, "sqs", "queue_arn")
    return {
        "Version": POLICY_VERSION,
        "Id": "EC2InterruptionPolicy",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
            },
            {
                "Sid": "DenyHTTP",
                "Effect": "Deny",
                "Action": "sqs:*",
                "Resource": queue_arn,
                "Condition": {"Bool": {"aws:SecureTransport": False}},
                "Principal": "*",
            },
        ],
    }


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------

_NAME = "karpenter_policy"
_TOKEN = re.compile(
    r"\$\{(AWS::Partition|AWS::Region|AWS::AccountId|ClusterName|"
    r"KarpenterInterruptionQueue\.Arn|KarpenterNodeRole\.Arn)\}"
)
_PARTITION = re.compile(r"^aws(-[a-z]+)*$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$")


def _check(value: Any, key: str, pattern: re.Pattern[str], what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{_NAME}: {key} must be str, got {type(value).__name__}")
    if not pattern.match(value):
        raise ValueError(f"{_NAME}: {key} must be {what}, got {value!r}")


def _check_arn(value: Any, partition: str, service: str, key: str) -> None:
    _check(partition, "partition", _PARTITION, "an AWS partition such as 'aws'")
    if not isinstance(value, str):
        raise TypeError(f"{_NAME}: {key} must be str, got {type(value).__name__}")
    prefix = f"arn:{partition}:{service}:"
    if not value.startswith(prefix) or "${" in value:
        raise ValueError(f"{_NAME}: {key} must be an ARN starting with {prefix!r}, got {value!r}")


def _substitute(node: Any, values: Mapping[str, str]) -> Any:
    """Replace ``${...}`` tokens in every string, dict keys included, in one pass (no re-expansion)."""
    if isinstance(node, str):
        return _TOKEN.sub(lambda m: values[m.group(1)], node)
    if isinstance(node, list):
        return [_substitute(item, values) for item in node]
    if isinstance(node, dict):
        return {_substitute(k, values): _substitute(v, values) for k, v in node.items()}
    return copy.deepcopy(node)


def controller_policies(
    *,
    partition: str,
    region: str,
    account_id: str,
    cluster_name: str,
    interruption_queue_arn: str,
    node_role_arn: str,
) -> dict[str, dict]:
    """Policy name (upstream's name without the cluster suffix) -> IAM policy document dict
    ``{"Version": "2012-10-17", "Statement": [...]}``.

    Attach all of them to the controller's role (IRSA or EKS Pod Identity). Upstream names each
    managed policy ``<name>-<cluster_name>``.
    """
    _check(partition, "partition", _PARTITION, "an AWS partition such as 'aws'")
    _check(region, "region", _REGION, "an AWS region such as 'us-east-1'")
    _check(account_id, "account_id", _ACCOUNT_ID, "a 12-digit AWS account ID")
    _check(cluster_name, "cluster_name", _CLUSTER_NAME, "an EKS cluster name")
    _check_arn(interruption_queue_arn, partition, "sqs", "interruption_queue_arn")
    _check_arn(node_role_arn, partition, "iam", "node_role_arn")
    values = {
        "AWS::Partition": partition,
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "ClusterName": cluster_name,
        "KarpenterInterruptionQueue.Arn": interruption_queue_arn,
        "KarpenterNodeRole.Arn": node_role_arn,
    }
    return {
        name: {"Version": POLICY_VERSION, "Statement": _substitute(statements, values)}
        for name, statements in CONTROLLER_POLICY_STATEMENTS.items()
    }


__all__ = [
    "CONTROLLER_POLICY_STATEMENTS",
    "INTERRUPTION_RULES",
    "INTERRUPTION_RULE_TARGET_ID",
    "INTERRUPTION_RULE_UPSTREAM_IDS",
    "KARPENTER_VERSION",
    "QUEUE_MESSAGE_RETENTION_SECONDS",
    "QUEUE_SQS_MANAGED_SSE_ENABLED",
    "SOURCE",
    "controller_policies",
    "interruption_queue_policy",
]
