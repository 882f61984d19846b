"""``eks-control-plane-logging``: the EKS control plane logs what an incident review needs."""

from __future__ import annotations

from typing import Iterator

from gpufleet.policies.core import Rule, RuleContext, Subject, as_list, is_unknown
from gpufleet.policies.rules._eks import enabled_log_types, is_eks_cluster, is_eksctl_config

LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")


def check(subject: Subject, context: RuleContext) -> Iterator[str]:
    if not is_eks_cluster(subject):
        return
    enabled = enabled_log_types(subject)
    if is_unknown(enabled) or any(is_unknown(t) for t in as_list(enabled)):
        return
    missing = [t for t in context["requiredLogTypes"] if t not in as_list(enabled)]
    if missing:
        field = "cloudWatch.clusterLogging.enableTypes" if is_eksctl_config(subject) else "enabledClusterLogTypes"
        yield (f"{field} lacks {', '.join(missing)}: without control plane logs nobody can tell who "
               f"changed or reached the cluster")


RULE = Rule(
    name="eks-control-plane-logging",
    description=(
        "EKS clusters send the api, audit and authenticator control plane logs (configurable) to CloudWatch: the "
        "record of who did what to the cluster. Advisory on development stacks, mandatory on production."
    ),
    enforcement="advisory",
    production_enforcement="mandatory",
    settings_schema={
        "requiredLogTypes": {
            "type": "array", "items": {"type": "string", "enum": list(LOG_TYPES)},
            "description": "Control plane log types that must be enabled.",
        },
    },
    defaults={"requiredLogTypes": ["api", "audit", "authenticator"]},
    check_resource=check,
    summary="EKS sends api, audit and authenticator logs to CloudWatch",
    why=(
        "The control plane's audit log is the record of who did what to the cluster: without it, an incident on "
        "an expensive, shared GPU fleet has no trail to follow."
    ),
    fix=(
        "Set enabledClusterLogTypes to include api, audit and authenticator (and any type the requiredLogTypes "
        "setting adds)."
    ),
    example="""\
pulumiType: eks:index:Cluster
name: gpufleet
props:
  enabledClusterLogTypes: [api, audit, authenticator]
""",
)
