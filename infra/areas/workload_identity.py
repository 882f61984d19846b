"""How the areas hand ``gpufleet:cluster.workloadIdentity`` to the components that create IAM roles
for controllers (Karpenter, the CSI drivers, the bundled monitoring stack's EBS CSI driver)."""

from __future__ import annotations

from typing import Any

from gpufleet.infra.areas.base import Platform


def workload_identity_args(platform: Platform) -> dict[str, Any]:
    """``workload_identity`` and, with IRSA, the cluster's OIDC provider."""
    identity = platform.config.cluster.workload_identity
    if identity == "irsa":
        return {"workload_identity": "irsa", "oidc_provider_arn": platform.cluster.oidc_provider_arn,
                "oidc_provider_url": platform.cluster.oidc_provider_url}
    return {"workload_identity": identity}
