"""``eks-endpoint-private``: the EKS API endpoint is private, or public only to named networks."""

from __future__ import annotations

from typing import Iterator

from gpufleet.policies.core import Rule, RuleContext, Subject, as_list, contains_unknown
from gpufleet.policies.rules._eks import endpoint_setting, is_eks_cluster

OPEN_CIDRS = ("0.0.0.0/0", "::/0")


def check(subject: Subject, context: RuleContext) -> Iterator[str]:
    if not is_eks_cluster(subject):
        return
    private = endpoint_setting(subject, "endpointPrivateAccess")
    public = endpoint_setting(subject, "endpointPublicAccess")
    cidrs = endpoint_setting(subject, "publicAccessCidrs")
    if any(contains_unknown(v) for v in (private, public, cidrs)):
        return
    if private is not True:
        yield "endpointPrivateAccess is not true: nodes and in-VPC tooling reach the API over the internet"
    if public is False:
        return
    allowed = [c for c in as_list(cidrs) if isinstance(c, str)]
    if not context["allowRestrictedPublicAccess"]:
        yield "endpointPublicAccess is not false: the Kubernetes API is reachable from the internet"
    elif not allowed or any(c in OPEN_CIDRS for c in allowed):
        yield ("endpointPublicAccess is on for every address (publicAccessCidrs empty or 0.0.0.0/0): turn it off "
               "or restrict publicAccessCidrs to your networks")


RULE = Rule(
    name="eks-endpoint-private",
    description=(
        "EKS clusters enable the private API endpoint and either disable the public one or restrict it to named "
        "networks (publicAccessCidrs without 0.0.0.0/0): an API open to the internet is one leaked credential "
        "away from the GPU fleet. Advisory on development stacks, mandatory on production."
    ),
    enforcement="advisory",
    production_enforcement="mandatory",
    settings_schema={
        "allowRestrictedPublicAccess": {
            "type": "boolean",
            "description": "Accept a public endpoint limited by publicAccessCidrs (false: require it off).",
        },
    },
    defaults={"allowRestrictedPublicAccess": True},
    check_resource=check,
    summary="the EKS API endpoint is private, or public only to named networks",
    why=(
        "An API server open to the whole internet is one leaked kubeconfig or token away from the GPU fleet; a "
        "private endpoint (or a CIDR allow-list) removes the internet from the attack surface."
    ),
    fix=(
        "Set endpointPrivateAccess: true and endpointPublicAccess: false (aws.eks.Cluster: under vpcConfig), or "
        "keep the public endpoint with publicAccessCidrs naming your networks, never 0.0.0.0/0."
    ),
    example="""\
pulumiType: eks:index:Cluster
name: gpufleet
props:
  endpointPrivateAccess: true
  endpointPublicAccess: false
""",
)
