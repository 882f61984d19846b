"""Reading EKS cluster settings from each thing that creates a cluster.

``eks:index:Cluster`` (pulumi-eks) takes them as top-level inputs; ``aws:eks/cluster:Cluster`` nests
the endpoint settings in ``vpcConfig`` and encryption in ``encryptionConfig``; an eksctl
``ClusterConfig`` (``eksctl.io/v1alpha5``, a manifest ``gpufleet check`` reads) has them in
``vpc.clusterEndpoints`` (eksctl's defaults: public on, private off), ``vpc.publicAccessCIDRs``,
``secretsEncryption.keyARN`` and ``cloudWatch.clusterLogging.enableTypes`` (``*``/``all``: every type).
"""

from __future__ import annotations

from typing import Any

from gpufleet.policies.core import Subject, as_list, as_mapping, is_unknown

EKS_CLUSTER_TYPES = ("eks:index:Cluster", "aws:eks/cluster:Cluster")
ALL_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
_EKSCTL_ENDPOINT_DEFAULTS = {"endpointPrivateAccess": False, "endpointPublicAccess": True}


def is_eksctl_config(subject: Subject) -> bool:
    return subject.is_a("eksctl.io", "ClusterConfig")


def is_eks_cluster(subject: Subject) -> bool:
    return subject.type in EKS_CLUSTER_TYPES or is_eksctl_config(subject)


def endpoint_setting(subject: Subject, key: str) -> Any:
    """``endpointPrivateAccess``, ``endpointPublicAccess`` or ``publicAccessCidrs``."""
    if subject.type == "aws:eks/cluster:Cluster":
        return as_mapping(subject.props.get("vpcConfig")).get(key)
    if is_eksctl_config(subject):
        vpc = as_mapping(subject.props.get("vpc"))
        if key == "publicAccessCidrs":
            return vpc.get("publicAccessCIDRs")
        endpoints = as_mapping(vpc.get("clusterEndpoints"))
        value = endpoints.get({"endpointPrivateAccess": "privateAccess", "endpointPublicAccess": "publicAccess"}[key])
        return _EKSCTL_ENDPOINT_DEFAULTS[key] if value is None else value
    return subject.props.get(key)


def enabled_log_types(subject: Subject) -> Any:
    """The enabled control plane log types (a list), or the unknown value as it came."""
    if is_eksctl_config(subject):
        logging = as_mapping(as_mapping(subject.props.get("cloudWatch")).get("clusterLogging"))
        types = logging.get("enableTypes")
        if is_unknown(types):
            return types
        return list(ALL_LOG_TYPES) if any(t in ("*", "all") for t in as_list(types)) else as_list(types)
    return subject.props.get("enabledClusterLogTypes")


def eksctl_secrets_key(subject: Subject) -> Any:
    """``secretsEncryption.keyARN`` of an eksctl ClusterConfig (None when unset)."""
    return as_mapping(subject.props.get("secretsEncryption")).get("keyARN")
