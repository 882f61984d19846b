"""Kubernetes plumbing shared by the components: object names, namespaces held to a Pod Security
Standard, and the Helm releases of cluster add-ons."""

from __future__ import annotations

import re
from typing import Any, Literal, Mapping, Sequence

import pulumi
import pulumi_kubernetes as k8s

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
"""RFC 1123 label: namespace names and most object names."""

MANAGED_BY = {"app.kubernetes.io/managed-by": "gpufleet"}

PodSecurityLevel = Literal["privileged", "baseline", "restricted"]


def require_dns_label(value: Any, key: str, *, name: str, what: str = "namespace name") -> str:
    """``value``, which must be an RFC 1123 label; the error names ``key`` and what it should be."""
    if not isinstance(value, str) or not DNS_LABEL.match(value):
        raise ValueError(f"{name}: {key} is not a {what}: {value!r}")
    return value


def pod_security_labels(level: PodSecurityLevel) -> dict[str, str]:
    """Namespace labels that enforce ``level`` and also audit and warn at it, so a violation is
    rejected, logged and reported to the client alike."""
    return {f"pod-security.kubernetes.io/{mode}": level for mode in ("enforce", "audit", "warn")}


def managed_namespace(
    resource_name: str, namespace: str, *, parent: pulumi.Resource, pod_security: PodSecurityLevel = "restricted",
) -> k8s.core.v1.Namespace:
    """A Namespace labelled as gpufleet's and held to the ``pod_security`` standard."""
    return k8s.core.v1.Namespace(
        resource_name,
        metadata={"name": namespace, "labels": {**MANAGED_BY, **pod_security_labels(pod_security)}},
        opts=pulumi.ResourceOptions(parent=parent),
    )


def atomic_release(
    resource_name: str,
    *,
    name: str,
    chart: str,
    version: str,
    namespace: pulumi.Input[str],
    values: Mapping[str, Any],
    parent: pulumi.Resource,
    repository: str | None = None,
    depends_on: Sequence[pulumi.Resource] = (),
) -> k8s.helm.v3.Release:
    """A pinned Helm release that rolls back a failed install or upgrade (``atomic``) and removes
    what a failed upgrade created, so a broken chart never leaves a half-installed controller."""
    return k8s.helm.v3.Release(
        resource_name,
        name=name,
        chart=chart,
        version=version,
        repository_opts={"repo": repository} if repository is not None else None,
        namespace=namespace,
        values=dict(values),
        atomic=True,
        cleanup_on_fail=True,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on) or None),
    )


def controller_chart(
    name: str,
    *,
    namespace: str,
    release_name: str,
    chart: str,
    version: str,
    values: Mapping[str, Any],
    parent: pulumi.Resource,
    repository: str | None = None,
) -> k8s.helm.v3.Release:
    """A cluster controller installed by its chart into a namespace of its own held to the
    ``restricted`` Pod Security Standard: children ``{name}-namespace`` and ``{name}-release``."""
    own_namespace = managed_namespace(f"{name}-namespace", namespace, parent=parent)
    return atomic_release(
        f"{name}-release",
        name=release_name,
        chart=chart,
        version=version,
        repository=repository,
        namespace=own_namespace.metadata.name,
        values=values,
        parent=parent,
    )


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged over it: nested mappings merge key by key, anything else in
    ``override`` replaces ``base``'s value (the ``extra_values`` escape hatch of the charts)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
