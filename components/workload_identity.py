"""How a controller's pods get AWS credentials: IRSA or EKS Pod Identity.

- **IRSA** (``irsa``): the pod's service account token, issued by the cluster's OIDC provider, is
  exchanged for a role's credentials (``sts:AssumeRoleWithWebIdentity``). The role's trust policy names
  the OIDC provider and the one service account; the service account carries the role ARN as the
  ``eks.amazonaws.com/role-arn`` annotation (or the EKS add-on's ``serviceAccountRoleArn`` sets it).
- **EKS Pod Identity** (``podIdentity``): the ``eks-pod-identity-agent`` add-on (a DaemonSet on
  every node) hands pods the credentials of the role an ``aws.eks.PodIdentityAssociation`` maps to
  their ``namespace/service account``. The role trusts the EKS service principal
  ``pods.eks.amazonaws.com`` with ``sts:AssumeRole`` and ``sts:TagSession`` (EKS tags the session
  with the cluster, namespace and service account), and needs no OIDC provider and no annotation:
  the association, not the trust policy, names the service account, and only the EKS Auth API,
  which checks the association, can assume it.

:func:`workload_role` builds the role either way under the *same* child name, so a stack that
switches keeps its role (the trust policy is updated in place) and gains or loses only the
association.
"""

from __future__ import annotations

import json
from typing import Literal, Mapping, Optional

import pulumi
import pulumi_aws as aws

from gpufleet.components._iam import irsa_role, trust_policy

WorkloadIdentity = Literal["irsa", "podIdentity"]
WORKLOAD_IDENTITIES: tuple[WorkloadIdentity, ...] = ("irsa", "podIdentity")

POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"
POD_IDENTITY_ACTIONS = ("sts:AssumeRole", "sts:TagSession")
POD_IDENTITY_AGENT_ADDON = "eks-pod-identity-agent"

POD_IDENTITY_AGENT_ADDON_VERSIONS: Mapping[str, str] = {
    "1.32": "v1.3.9-eksbuild.3",
    "1.33": "v1.3.9-eksbuild.3",
    "1.34": "v1.3.9-eksbuild.3",
    "1.35": "v1.3.9-eksbuild.3",
    "1.36": "v1.3.9-eksbuild.3",
}
"""The ``eks-pod-identity-agent`` add-on version gpufleet installs per EKS Kubernetes minor version.

Source: the agent's releases (aws/eks-pod-identity-agent, v1.3.9; the agent supports every EKS
version since 1.24) as EKS build 3 of that release. Check a row, or pick a newer build, with ``aws
eks describe-addon-versions --addon-name eks-pod-identity-agent --kubernetes-version <minor>
--query 'addons[].addonVersions[].addonVersion'``; ``Cluster``'s ``pod_identity_agent_version``
overrides it."""


def pod_identity_trust_policy() -> str:
    """JSON trust policy of a Pod Identity role: the EKS Pod Identity service principal may assume it
    and tag the session. Which pods get it is decided by the role's associations."""
    return json.dumps(trust_policy({"Service": POD_IDENTITY_PRINCIPAL}, list(POD_IDENTITY_ACTIONS)))


def check_identity(value: object, *, name: str, oidc_provider_arn: object, oidc_provider_url: object) -> WorkloadIdentity:
    """The component's ``workload_identity`` argument; IRSA needs both OIDC arguments."""
    if value not in WORKLOAD_IDENTITIES:
        raise ValueError(f"{name}: workload_identity must be one of 'irsa', 'podIdentity', got {value!r}")
    if value == "irsa":
        for key, given in (("oidc_provider_arn", oidc_provider_arn), ("oidc_provider_url", oidc_provider_url)):
            if given is None:
                raise ValueError(f"{name}: {key} is required with workload_identity 'irsa' "
                                 "(or use workload_identity 'podIdentity')")
    return value  # type: ignore[return-value]


def workload_role(
    resource_name: str,
    *,
    identity: WorkloadIdentity,
    cluster_name: pulumi.Input[str],
    namespace: str,
    service_account: str,
    description: pulumi.Input[str],
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    oidc_provider_arn: Optional[pulumi.Input[str]] = None,
    oidc_provider_url: Optional[pulumi.Input[str]] = None,
) -> tuple[aws.iam.Role, Optional[aws.eks.PodIdentityAssociation]]:
    """The IAM role ``resource_name`` that only ``namespace/service_account`` gets, and with Pod
    Identity its association ``<resource_name>-pod-identity`` (``None`` with IRSA)."""
    if identity == "irsa":
        role = irsa_role(
            resource_name,
            oidc_provider_arn=oidc_provider_arn,  # type: ignore[arg-type]
            oidc_provider_url=oidc_provider_url,  # type: ignore[arg-type]
            namespace=namespace,
            service_account=service_account,
            description=description,
            tags=tags,
            parent=parent,
        )
        return role, None
    role = aws.iam.Role(
        resource_name,
        assume_role_policy=pod_identity_trust_policy(),
        description=description,
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    association = aws.eks.PodIdentityAssociation(
        f"{resource_name}-pod-identity",
        cluster_name=cluster_name,
        namespace=namespace,
        service_account=service_account,
        role_arn=role.arn,
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return role, association
