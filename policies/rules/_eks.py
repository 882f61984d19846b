"""Reading EKS cluster settings from either resource that creates a cluster.

``eks:index:Cluster`` (pulumi-eks) takes them as top-level inputs; ``aws:eks/cluster:Cluster`` nests
the endpoint settings in ``vpcConfig`` and encryption in ``encryptionConfig``.
"""

from __future__ import annotations

from typing import Any

from gpufleet.policies.core import Subject, as_mapping

EKS_CLUSTER_TYPES = ("eks:index:Cluster", "aws:eks/cluster:Cluster")


def is_eks_cluster(subject: Subject) -> bool:
    return subject.type in EKS_CLUSTER_TYPES


def endpoint_setting(subject: Subject, key: str) -> Any:
    """``endpointPrivateAccess``, ``endpointPublicAccess`` or ``publicAccessCidrs``."""
    if subject.type == "aws:eks/cluster:Cluster":
        return as_mapping(subject.props.get("vpcConfig")).get(key)
    return subject.props.get(key)
