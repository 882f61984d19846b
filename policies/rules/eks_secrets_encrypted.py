"""``eks-secrets-encrypted``: Kubernetes Secrets are envelope-encrypted with a customer KMS key."""

from __future__ import annotations

from typing import Iterator

from gpufleet.policies.core import Rule, RuleContext, Subject, as_list, as_mapping, is_unknown
from gpufleet.policies.rules._eks import eksctl_secrets_key, is_eksctl_config

_WHY = "Secrets (registry and Hugging Face tokens, API keys) must be envelope-encrypted with a KMS key you control"


def check(subject: Subject, context: RuleContext) -> Iterator[str]:
    if subject.type == "eks:index:Cluster":
        key = subject.props.get("encryptionConfigKeyArn")
        if key is None:
            yield f"encryptionConfigKeyArn is not set: {_WHY}"
    elif is_eksctl_config(subject):
        if eksctl_secrets_key(subject) is None:
            yield f"secretsEncryption.keyARN is not set: {_WHY}"
    elif subject.type == "aws:eks/cluster:Cluster":
        config = subject.props.get("encryptionConfig")
        if is_unknown(config):
            return
        config = as_mapping(config)
        resources, provider = config.get("resources"), config.get("provider")
        if is_unknown(resources) or is_unknown(provider):
            return
        if "secrets" not in as_list(resources) or as_mapping(provider).get("keyArn") is None:
            yield f"encryptionConfig does not cover 'secrets' with a provider.keyArn: {_WHY}"


RULE = Rule(
    name="eks-secrets-encrypted",
    description=(
        "EKS clusters encrypt Kubernetes Secrets with a customer-managed KMS key (pulumi-eks "
        "encryptionConfigKeyArn, or encryptionConfig resources ['secrets']): model registry credentials and API "
        "tokens live there. Advisory on development stacks, mandatory on production."
    ),
    enforcement="advisory",
    production_enforcement="mandatory",
    check_resource=check,
    summary="EKS encrypts Secrets with a customer-managed KMS key",
    why=(
        "Model registry credentials, Hugging Face tokens and API keys live in Secrets; envelope encryption with "
        "your KMS key keeps them unreadable in etcd and its backups, and lets you revoke access by disabling the "
        "key."
    ),
    fix=(
        "pulumi-eks: encryptionConfigKeyArn: <KMS key ARN>; aws.eks.Cluster: encryptionConfig {resources: "
        "[secrets], provider: {keyArn: <KMS key ARN>}}."
    ),
    example="""\
pulumiType: eks:index:Cluster
name: gpufleet
props:
  encryptionConfigKeyArn: arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-0000-4000-8000-000000000000
""",
)
