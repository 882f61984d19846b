"""GPU requests on DRA pools: the ResourceClaimTemplate a workload's pods claim their GPUs with.

On a pool with ``allocation: dra`` (:attr:`GpuPlacement.dra`) the NVIDIA DRA driver publishes the
GPUs as devices and no device plugin advertises ``nvidia.com/gpu``, so a pod asks for GPUs with
Dynamic Resource Allocation (``resource.k8s.io/v1``, Kubernetes 1.34+) instead of a resource limit:

- a ``ResourceClaimTemplate`` in the workload's namespace with one device request, ``gpus``, for
  exactly ``count`` devices of the pool's DeviceClass (:attr:`GpuPlacement.device_class`):
  ``gpu.nvidia.com`` (whole GPUs) or ``mig.nvidia.com`` with a CEL selector on the driver's ``profile``
  attribute (MIG slices of the pool's profile, cut by the GPU Operator's mig-manager);
- the pod's ``spec.resourceClaims`` entry ``gpus`` naming that template (each pod gets its own
  ResourceClaim made from it, freed with the pod);
- the GPU container's ``resources.claims: [{name: gpus}]``. Containers that name the same claim share
  its devices (the DRA way of sharing GPUs among the containers of one pod).

Quota: the API server's ResourceQuota counts the claim as ``<class>.deviceclass.resource.k8s.io/devices``
(:attr:`GpuPlacement.quota_resource`); Kueue counts claims made from templates through its
``deviceClassMappings`` in the same resource name as device-plugin GPUs (:attr:`GpuPlacement.gpu_resource`).

Plain functions returning camelCase dicts; the workload components declare the objects.
"""

from __future__ import annotations

from typing import Any

from gpufleet.components.gpu_scheduling import DRA_DRIVER, GpuPlacement

API_VERSION = "resource.k8s.io/v1"
CLAIM_NAME = "gpus"
"""Name of the pod's GPU claim (``spec.resourceClaims[].name``, ``resources.claims[].name``)."""
REQUEST_NAME = "gpus"
"""Name of the claim's one device request."""


def mig_selector(profile: str) -> str:
    """CEL selector of MIG devices of ``profile`` (the driver's ``profile`` string attribute)."""
    return f"device.attributes['{DRA_DRIVER}'].profile == '{profile}'"


def claim_template_spec(placement: GpuPlacement, count: int) -> dict[str, Any]:
    """``ResourceClaimTemplate.spec``: one request of exactly ``count`` devices of the pool's class."""
    if not placement.dra:
        raise ValueError(f"pool {placement.pool!r} allocates GPUs with the device plugin, not DRA")
    exactly: dict[str, Any] = {"deviceClassName": placement.device_class, "allocationMode": "ExactCount", "count": count}
    if placement.sharing == "mig":
        exactly["selectors"] = [{"cel": {"expression": mig_selector(placement.mig_profile)}}]
    return {"spec": {"devices": {"requests": [{"name": REQUEST_NAME, "exactly": exactly}]}}}


def template_name(workload: str) -> str:
    """Name of the GPU ResourceClaimTemplate of ``workload`` (``<workload>-gpus``)."""
    return f"{workload}-{CLAIM_NAME}"


def pod_claims(placement: GpuPlacement, template: str) -> dict[str, Any]:
    """Pod-spec fragment ``{"resourceClaims": [...]}`` claiming GPUs from ``template``; ``{}`` off DRA."""
    if not placement.dra:
        return {}
    return {"resourceClaims": [{"name": CLAIM_NAME, "resourceClaimTemplateName": template}]}


def container_claims() -> list[dict[str, str]]:
    """``resources.claims`` of the container that uses the GPUs."""
    return [{"name": CLAIM_NAME}]

