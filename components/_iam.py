"""IAM trust policies and IRSA roles shared by the components.

IRSA (IAM roles for service accounts): a pod's service account token, issued by the cluster's OIDC
provider, is exchanged for the credentials of an IAM role. The role's trust policy must name exactly
one service account (``sub``) and the STS audience (``aud``): without both conditions any pod of
the cluster, or any token of that issuer, could assume the role.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi_aws as aws

STS_AUDIENCE = "sts.amazonaws.com"


def trust_policy(principal: Mapping[str, Any], action: "str | list[str]", condition: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """An assume-role policy document with one ``Allow`` statement for ``principal`` (one action or a list)."""
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": dict(principal), "Action": action}
    if condition:
        statement["Condition"] = dict(condition)
    return {"Version": "2012-10-17", "Statement": [statement]}


def irsa_trust_policy(oidc_provider_arn: str, oidc_provider_url: str, namespace: str, service_account: str) -> str:
    """JSON trust policy letting only ``namespace/service_account``, with the STS audience, assume a
    role through the cluster's OIDC provider. ``oidc_provider_url`` may start with ``https://``."""
    issuer = oidc_provider_url.removeprefix("https://")
    return json.dumps(trust_policy(
        {"Federated": oidc_provider_arn},
        "sts:AssumeRoleWithWebIdentity",
        {"StringEquals": {
            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
            f"{issuer}:aud": STS_AUDIENCE,
        }},
    ))


def irsa_role(
    resource_name: str,
    *,
    oidc_provider_arn: pulumi.Input[str],
    oidc_provider_url: pulumi.Input[str],
    namespace: str,
    service_account: str,
    description: pulumi.Input[str],
    tags: Mapping[str, str],
    parent: pulumi.Resource,
) -> aws.iam.Role:
    """An IAM role (child of ``parent``) that only ``namespace/service_account`` can assume (IRSA)."""
    return aws.iam.Role(
        resource_name,
        assume_role_policy=pulumi.Output.all(oidc_provider_arn, oidc_provider_url).apply(
            lambda values: irsa_trust_policy(values[0], values[1], namespace, service_account)
        ),
        description=description,
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )


NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonSSMManagedInstanceCore",
)
"""AWS managed policies of an EKS worker node role (upstream's ``KarpenterNodeRole`` has the same four)."""


def service_role(
    prefix: str,
    *,
    service: str,
    policies: Sequence[str],
    description: pulumi.Input[str],
    partition: pulumi.Output[str],
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    actions: "str | list[str]" = "sts:AssumeRole",
) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
    """An IAM role an AWS service (``service``, e.g. ``ec2.amazonaws.com``) may assume with ``actions``
    (``<prefix>-role``), with the AWS managed ``policies`` attached (``<prefix>-<policy>``), policy ARNs
    in the cluster's ``partition``."""
    role = aws.iam.Role(
        f"{prefix}-role",
        assume_role_policy=json.dumps(trust_policy({"Service": service}, actions)),
        description=description,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    attachments = [
        aws.iam.RolePolicyAttachment(
            f"{prefix}-{policy}",
            role=role.name,
            policy_arn=partition.apply(lambda p, policy=policy: f"arn:{p}:iam::aws:policy/{policy}"),
            opts=pulumi.ResourceOptions(parent=parent),
        )
        for policy in policies
    ]
    return role, attachments


def eks_node_role(
    prefix: str,
    *,
    description: pulumi.Input[str],
    partition: pulumi.Output[str],
    tags: Mapping[str, str],
    parent: pulumi.Resource,
) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
    """An EC2 instance role for EKS nodes (``<prefix>-role``) with :data:`NODE_POLICIES` attached
    (``<prefix>-<policy>``), policy ARNs in the cluster's ``partition``."""
    return service_role(prefix, service="ec2.amazonaws.com", policies=NODE_POLICIES, description=description,
                        partition=partition, tags=tags, parent=parent)
