"""What the model caches (EFS :class:`~gpufleet.components.model_cache.ModelCache`, FSx for Lustre
:class:`~gpufleet.components.lustre_cache.LustreModelCache`) share: the checks of their client
networks and namespaces, the CSI driver add-on with its controller on the system nodes, and the
per-namespace ``ReadWriteMany`` claim every replica mounts."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from gpufleet.components._k8s import MANAGED_BY, require_dns_label
from gpufleet.components.gpu_scheduling import SYSTEM_NODE_SELECTOR

CLAIM_LABELS = {**MANAGED_BY, "app.kubernetes.io/component": "model-cache"}


def check_client_cidrs(value: object, field: str, *, name: str) -> list[str]:
    """The private IPv4 networks allowed to mount a shared file system (at least one)."""
    cidrs = list(value or []) if isinstance(value, (list, tuple)) else None
    if not cidrs:
        raise ValueError(f"{name}: {field} must name at least one network (e.g. the VPC CIDR)")
    for index, cidr in enumerate(cidrs):
        try:
            network = ipaddress.IPv4Network(cidr, strict=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: {field}[{index}] is not an IPv4 CIDR: {cidr!r} ({exc})") from None
        if not network.is_private:
            raise ValueError(f"{name}: {field}[{index}] ({cidr}) is not a private network: mounts stay inside the VPC")
    return cidrs


def check_namespaces(value: Sequence[str], *, name: str) -> list[str]:
    """The namespaces that get a claim: namespace names, each once."""
    namespaces = list(value)
    for index, namespace in enumerate(namespaces):
        require_dns_label(namespace, f"namespaces[{index}]", name=name)
    if len(set(namespaces)) != len(namespaces):
        raise ValueError(f"{name}: namespaces repeats a namespace: {namespaces}")
    return namespaces


def pinned_addon_version(
    addon_version: Any,
    kubernetes_version: Any,
    table: Mapping[str, str],
    *,
    addon_name: str,
    name: str,
) -> str:
    """The add-on version to install: ``addon_version`` when given (a user's pin), else the one
    ``table`` pins for ``kubernetes_version``. Never EKS's moving default: an add-on upgrade must be
    a reviewed change of this table or of the stack, not a side effect of a new EKS release."""
    if addon_version is not None:
        if not isinstance(addon_version, str) or not ADDON_VERSION.match(addon_version):
            raise ValueError(f"{name}: addon_version must be an EKS add-on version like 'v2.1.4-eksbuild.1', got {addon_version!r}")
        return addon_version
    if kubernetes_version is None:
        raise ValueError(f"{name}: kubernetes_version is required to pick the pinned {addon_name} add-on version "
                         "(or set addon_version)")
    if kubernetes_version not in table:
        raise ValueError(f"{name}: kubernetes_version {kubernetes_version!r} has no pinned {addon_name} add-on version "
                         f"(pinned for {', '.join(table)}); set addon_version")
    return table[kubernetes_version]


ADDON_VERSION = re.compile(r"^v\d+\.\d+\.\d+-eksbuild\.\d+$")
"""An EKS add-on version: the driver release and EKS's build number."""


def csi_driver_addon(
    resource_name: str,
    *,
    cluster_name: pulumi.Input[str],
    addon_name: str,
    addon_version: Optional[str],
    tags: Mapping[str, str],
    parent: pulumi.Resource,
    service_account_role_arn: Optional[pulumi.Input[str]] = None,
    depends_on: Sequence[pulumi.Resource] = (),
) -> aws.eks.Addon:
    """A CSI driver as an EKS add-on. Its controller is a cluster controller: system nodes. Its node
    DaemonSet tolerates every taint by default, so it also runs on the GPU nodes that mount the cache."""
    return aws.eks.Addon(
        resource_name,
        cluster_name=cluster_name,
        addon_name=addon_name,
        addon_version=addon_version,
        service_account_role_arn=service_account_role_arn,
        configuration_values=json.dumps({"controller": {"nodeSelector": dict(SYSTEM_NODE_SELECTOR)}}),
        resolve_conflicts_on_create="OVERWRITE",
        resolve_conflicts_on_update="PRESERVE",
        tags=dict(tags),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on) or None),
    )


def model_weights_claim(
    resource_name: str,
    *,
    claim_name: str,
    namespace: str,
    spec: Mapping[str, Any],
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource],
) -> k8s.core.v1.PersistentVolumeClaim:
    """The ``ReadWriteMany`` claim on the cache in one namespace; ``spec`` adds how it binds
    (storage class or pre-bound volume) and its size."""
    return k8s.core.v1.PersistentVolumeClaim(
        resource_name,
        metadata={"name": claim_name, "namespace": namespace, "labels": dict(CLAIM_LABELS)},
        spec={"accessModes": ["ReadWriteMany"], **spec},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
