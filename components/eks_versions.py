"""The Kubernetes versions Amazon EKS supports: one list for the ``Cluster`` component and the stack
configuration (``gpufleet:kubernetesVersion``)."""

from __future__ import annotations

# Amazon EKS Kubernetes versions in standard or extended support in November 2026
# (source: "Understand the Kubernetes version lifecycle on EKS", Amazon EKS User Guide).
EKS_SUPPORTED_VERSIONS: tuple[str, ...] = ("1.32", "1.33", "1.34", "1.35", "1.36")


def unsupported_version_problem(version: str) -> str | None:
    """Why ``version`` cannot be an EKS cluster's version, or ``None`` when EKS supports it."""
    if version in EKS_SUPPORTED_VERSIONS:
        return None
    return f"Kubernetes {version} is not supported by EKS; use one of {', '.join(EKS_SUPPORTED_VERSIONS)}"
