"""Stack area ``auto_mode``: what ``gpufleet:cluster.autoMode`` cannot do, refused with the field path
and the reason (the facts are :mod:`gpufleet.components.auto_mode`'s).

EKS Auto Mode replaces what other areas configure for self-managed Karpenter and the managed node
group: there is no Karpenter to configure (``gpufleet:karpenter``), no minimum or desired system
node count, no AMI to pick, no device plugin of the GPU Operator to share GPUs with, no node living
past 21 days, and block storage that needs no EBS CSI add-on. Every pool is checked with the checks
:class:`~gpufleet.components.gpu_node_pool.GpuNodePool` runs on Auto Mode, so the stack file names
the field.

This area declares nothing: the Cluster and the ``gpu_pools`` area build what Auto Mode needs.
"""

from __future__ import annotations

from typing import Any

from gpufleet.components import auto_mode as auto
from gpufleet.components.gpu_node_pool import PoolArgumentError, pool_spec
from gpufleet.infra.areas.base import Platform, camel_path

WHERE = "gpufleet:cluster.autoMode"


def cross_check(config: Any) -> list[str]:
    """Auto Mode against the Karpenter section, the system nodes, every GPU pool and the bundled
    monitoring stack's EBS CSI add-on; nothing without Auto Mode."""
    if not config.cluster.auto_mode:
        return []
    from gpufleet.infra.areas.gpu_pools import pool_args

    problems: list[str] = []
    if "karpenter" in config.model_fields_set:
        problems.append("gpufleet:karpenter: with gpufleet:cluster.autoMode EKS runs the node provisioner (its own "
                        "Karpenter) and gpufleet installs none, so these settings would configure nothing; remove the "
                        "section (or turn autoMode off for self-managed Karpenter)")
    nodes = config.cluster.system_nodes
    for field, key in (("min_size", "minSize"), ("desired_size", "desiredSize")):
        if field in nodes.model_fields_set:
            problems.append(f"gpufleet:cluster.systemNodes.{key}: EKS Auto Mode keeps no minimum or desired node count "
                            "(it adds system nodes as the pods on them need, up to maxSize); remove it")
    for index, instance_type in enumerate(nodes.instance_types):
        problem = auto.instance_type_problem(instance_type)
        if problem:
            problems.append(f"gpufleet:cluster.systemNodes.instanceTypes[{index}]: {problem}")
    for index, pool in enumerate(config.gpu_pools):
        try:
            pool_spec(pool.name, pool_args(config, pool), auto_mode=True)
        except PoolArgumentError as error:
            problems.append(f"gpufleet:gpuPools[{index}].{camel_path(error.field)}: {error.problem}")
    monitoring = config.monitoring
    if monitoring.install and "ebs_csi_driver" in monitoring.stack.model_fields_set and monitoring.stack.ebs_csi_driver:
        problems.append(f"gpufleet:monitoring.stack.ebsCsiDriver: EKS Auto Mode's block storage provisions Prometheus' "
                        f"volume (StorageClass provisioner {auto.STORAGE_PROVISIONER}); the aws-ebs-csi-driver add-on "
                        "would be a second EBS driver: remove the setting")
    return problems


def compose(platform: Platform) -> None:
    """Nothing to declare: the Cluster and the GPU pools are Auto Mode's when the stack says so."""
