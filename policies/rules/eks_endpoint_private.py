"""``eks-endpoint-private``: the EKS API endpoint is private, or public only to named networks."""

from __future__ import annotations

from typing import Iterator

from gpufleet.policies.cidr import MAX_OPEN_PREFIX, coverage
from gpufleet.policies.core import Rule, RuleContext, Subject, as_list, contains_unknown
from gpufleet.policies.rules._eks import endpoint_setting, is_eks_cluster


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
    if not context["allowRestrictedPublicAccess"]:
        yield "endpointPublicAccess is not false: the Kubernetes API is reachable from the internet"
        return
    listed = as_list(cidrs)
    if not listed:
        # AWS's default for an empty publicAccessCidrs is 0.0.0.0/0.
        yield ("endpointPublicAccess is on for every address (publicAccessCidrs empty: AWS defaults it to "
               "0.0.0.0/0): turn it off or restrict publicAccessCidrs to your networks")
        return
    bad = [c for c in listed if not isinstance(c, str)]
    try:
        covered = coverage([c for c in listed if isinstance(c, str)])
    except ValueError as error:
        yield f"publicAccessCidrs holds something that is not a CIDR ({error}): the endpoint's reach is unknown"
        return
    if bad:
        yield f"publicAccessCidrs holds non-string entries ({bad[:3]!r}): the endpoint's reach is unknown"
    prefix = context["maxPublicPrefix"]
    if covered.wider_than(prefix):
        yield (f"endpointPublicAccess is open to {covered.describe()} through publicAccessCidrs {listed[:4]!r}"
               f"{'...' if len(listed) > 4 else ''}, more than a /{prefix}: turn it off or restrict "
               "publicAccessCidrs to your networks")


RULE = Rule(
    name="eks-endpoint-private",
    description=(
        "EKS clusters enable the private API endpoint and either disable the public one or restrict it to named "
        "networks: publicAccessCidrs together may cover at most a /8's share of the address space, judged by the "
        "addresses they cover (0.0.0.0/1 plus 128.0.0.0/1 is 0.0.0.0/0). An API open to the internet is one "
        "leaked credential away from the GPU fleet. Advisory on development stacks, mandatory on production."
    ),
    enforcement="advisory",
    production_enforcement="mandatory",
    settings_schema={
        "allowRestrictedPublicAccess": {
            "type": "boolean",
            "description": "Accept a public endpoint limited by publicAccessCidrs (false: require it off).",
        },
        "maxPublicPrefix": {
            "type": "integer", "minimum": 0, "maximum": 32,
            "description": "Widest share of the address space publicAccessCidrs may cover together, as a prefix "
                           "length (8: at most a /8's worth of addresses).",
        },
    },
    defaults={"allowRestrictedPublicAccess": True, "maxPublicPrefix": MAX_OPEN_PREFIX},
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
