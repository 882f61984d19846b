"""Composition of gpufleet's components from a validated stack configuration."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from gpufleet.components import Cluster, Network
from gpufleet.infra.areas import AREAS
from gpufleet.infra.areas.base import Platform
from gpufleet.infra.config import ConfigError, StackConfig, load_from_pulumi


def build(config: StackConfig, stack: str) -> None:
    """Declare the whole platform for ``stack``."""
    cluster_name = config.cluster_name(stack)
    aws_provider = aws.Provider(
        "aws",
        region=config.region,
        default_tags={"tags": {"gpufleet:stack": stack, "gpufleet:environment": config.environment, **config.tags}},
    )
    on_aws = pulumi.ResourceOptions(providers=[aws_provider])

    network = Network(
        "network",
        {
            "cluster_name": cluster_name,
            "cidr_block": config.network.cidr,
            "az_count": config.network.az_count,
            "nat_gateways": config.network.nat_gateways,
        },
        opts=on_aws,
    )
    nodes = config.cluster.system_nodes
    auto_mode = config.cluster.auto_mode
    system_nodes: dict = {
        "instance_types": list(nodes.instance_types),
        "max_size": nodes.max_size,
        "disk_size_gib": nodes.disk_size_gib,
    }
    if not auto_mode:
        # EKS Auto Mode keeps no minimum or desired count: it adds system nodes as pods need them.
        system_nodes.update(min_size=nodes.min_size, desired_size=nodes.desired_size)
    cluster = Cluster(
        "cluster",
        {
            "cluster_name": cluster_name,
            "kubernetes_version": config.kubernetes_version,
            "vpc_id": network.vpc_id,
            "private_subnet_ids": network.private_subnet_ids,
            "public_subnet_ids": network.public_subnet_ids,
            "endpoint_private_access": config.cluster.endpoint_private_access,
            "endpoint_public_access": config.cluster.endpoint_public_access,
            "public_access_cidrs": list(config.cluster.public_access_cidrs),
            "secrets_encryption": config.cluster.secrets_encryption,
            "log_types": list(config.cluster.log_types),
            "system_nodes": system_nodes,
            "access_entries": [
                {"principal_arn": entry.principal_arn, "access_policy": entry.access_policy}
                for entry in config.cluster.admin_access
            ],
            "deletion_protection": config.environment == "prod",
            # Auto Mode nodes run the Pod Identity agent themselves.
            "pod_identity_agent": config.cluster.workload_identity == "podIdentity" and not auto_mode,
            **({"auto_mode": True, "node_tags": instance_tags(stack, config)} if auto_mode else {}),
        },
        opts=on_aws,
    )

    platform = Platform(
        stack=stack,
        config=config,
        cluster_name=cluster_name,
        opts=pulumi.ResourceOptions(providers=[aws_provider, cluster.provider]),
        network=network,
        cluster=cluster,
    )
    for area in AREAS:
        area.compose(platform)

    pulumi.export("clusterName", cluster.cluster_name)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("oidcProviderArn", cluster.oidc_provider_arn)
    pulumi.export("vpcId", network.vpc_id)


def instance_tags(stack: str, config: StackConfig) -> dict[str, str]:
    """Tags of the instances a node provisioner launches (Karpenter or EKS Auto Mode): the AWS
    provider's default tags do not reach them."""
    return {"gpufleet:stack": stack, "gpufleet:environment": config.environment, **config.tags}


def main() -> None:
    """Entry point of ``infra/__main__.py``: validate the stack config, then build."""
    try:
        config = load_from_pulumi()
    except ConfigError as error:
        # RunError: the engine prints the message alone, without a Python traceback.
        raise pulumi.RunError(str(error)) from None
    build(config, pulumi.get_stack())
