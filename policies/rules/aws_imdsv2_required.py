"""``aws-imdsv2-required``: nodes accept only IMDSv2 (session tokens)."""

from __future__ import annotations

from typing import Any, Iterator

from gpufleet.policies.core import Rule, RuleContext, Subject, as_mapping, as_str, is_unknown

_WHY = "IMDSv1 lets any SSRF in a pod read the node role's credentials"
_IMDSV2_AMI_PREFIXES = ("AL2023_", "BOTTLEROCKET_", "WINDOWS_")
"""EKS AMI types whose AMIs are registered with ImdsSupport v2.0 (instances require IMDSv2)."""


def check(subject: Subject, context: RuleContext) -> Iterator[str]:
    props = subject.props
    if subject.is_a("karpenter.k8s.aws", "EC2NodeClass"):
        tokens = as_str(as_mapping(subject.spec.get("metadataOptions")).get("httpTokens"))
        if tokens is not None and tokens != "required":
            yield f"spec.metadataOptions.httpTokens is {tokens!r}: set 'required' ({_WHY})"
    elif subject.type in ("aws:ec2/launchTemplate:LaunchTemplate", "aws:ec2/instance:Instance"):
        yield from _metadata_options(props.get("metadataOptions"))
    elif subject.type == "aws:eks/nodeGroup:NodeGroup":
        if props.get("launchTemplate") is None and not _imdsv2_ami(props.get("amiType")):
            yield (f"no launchTemplate: EKS's default template does not enforce IMDSv2 for amiType "
                   f"{as_str(props.get('amiType')) or 'AL2_x86_64'} (use a launch template with "
                   f"metadataOptions.httpTokens 'required'); {_WHY}")
    elif subject.type in ("eks:index:ManagedNodeGroup", "eks:index:NodeGroup", "eks:index:NodeGroupV2"):
        if props.get("launchTemplate") is None and props.get("enableIMDSv2") is not True \
                and not is_unknown(props.get("enableIMDSv2")) and not _imdsv2_ami(props.get("amiType")):
            yield f"enableIMDSv2 is not true ({_WHY})"
    elif subject.type == "eks:index:Cluster":
        options = props.get("nodeGroupOptions")
        enabled = as_mapping(options).get("enableIMDSv2")
        skip = props.get("skipDefaultNodeGroup")
        if skip is not True and not is_unknown(skip) and props.get("autoMode") is None \
                and enabled is not True and not (is_unknown(options) or is_unknown(enabled)):
            yield (f"the default node group does not enforce IMDSv2 (set nodeGroupOptions.enableIMDSv2: true, or "
                   f"skipDefaultNodeGroup: true); {_WHY}")


def _metadata_options(options: Any) -> Iterator[str]:
    if is_unknown(options):
        return
    tokens = as_mapping(options).get("httpTokens")
    if is_unknown(tokens):
        return
    if tokens != "required":
        shown = "unset" if tokens is None else repr(tokens)
        yield f"metadataOptions.httpTokens is {shown}: set 'required' ({_WHY})"


def _imdsv2_ami(ami_type: Any) -> bool:
    return isinstance(ami_type, str) and ami_type.startswith(_IMDSV2_AMI_PREFIXES) or is_unknown(ami_type)


RULE = Rule(
    name="aws-imdsv2-required",
    description=(
        "Karpenter EC2NodeClasses keep metadataOptions.httpTokens 'required' (Karpenter's default), and launch "
        "templates, instances and EKS node groups enforce IMDSv2: with IMDSv1 a server-side request forgery in "
        "any pod reads the node role's AWS credentials."
    ),
    check_resource=check,
    summary="GPU and system nodes require IMDSv2",
    why=(
        "Production checklist (Security): IMDSv2 on AWS nodes, to prevent SSRF credential theft. With IMDSv1 any "
        "pod that can make the node fetch a URL reads the node role's AWS credentials."
    ),
    fix=(
        "Keep EC2NodeClass metadataOptions.httpTokens: required (Karpenter's default; do not override it), with "
        "httpPutResponseHopLimit: 1; set metadataOptions.httpTokens: required on launch templates and node "
        "groups."
    ),
    example="""\
apiVersion: karpenter.k8s.aws/v1
kind: EC2NodeClass
metadata:
  name: gpu
spec:
  amiSelectorTerms:
    - alias: al2023@latest
  role: gpufleet-gpu-node
  subnetSelectorTerms:
    - tags: {karpenter.sh/discovery: gpufleet}
  securityGroupSelectorTerms:
    - tags: {karpenter.sh/discovery: gpufleet}
  metadataOptions:
    httpTokens: required
    httpPutResponseHopLimit: 1
---
pulumiType: aws:ec2/launchTemplate:LaunchTemplate
name: system-nodes
props:
  metadataOptions: {httpEndpoint: enabled, httpTokens: required, httpPutResponseHopLimit: 2}
""",
)
