"""Dynamic Resource Allocation: which pod resource claims are GPUs.

A pod asks for devices through ``spec.resourceClaims`` (``resourceClaimTemplateName`` or
``resourceClaimName``) and its containers name the claims in ``resources.claims``. A claim is a GPU
request when a device request of the ResourceClaimTemplate / ResourceClaim (``resource.k8s.io`` v1:
``spec[.spec].devices.requests[*].exactly.deviceClassName``, or ``firstAvailable[*]``; v1beta1:
``requests[*].deviceClassName``) names a DeviceClass of NVIDIA GPUs: one of the classes the NVIDIA DRA
driver installs (``gpu.nvidia.com``, ``mig.nvidia.com``, ``vfio.gpu.nvidia.com``), or a DeviceClass
among the checked resources whose CEL selectors pick the ``gpu.nvidia.com`` driver's GPU or MIG
devices. ``compute-domain-*.nvidia.com`` classes are IMEX channels, not GPUs; ``neuron.aws.com`` and
other drivers are not NVIDIA GPUs.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping, Optional, Sequence

from gpufleet.policies.core import Subject, as_list, as_mapping, as_number, as_str
from gpufleet.policies.pod_templates import PodTemplate

NVIDIA_GPU_DEVICE_CLASSES = frozenset({"gpu.nvidia.com", "mig.nvidia.com", "vfio.gpu.nvidia.com"})
"""DeviceClasses of GPUs the NVIDIA DRA driver (k8s-dra-driver-gpu, GPU Operator state-dra-driver) installs."""
NVIDIA_GPU_DRIVER = "gpu.nvidia.com"
_NOT_GPU_TYPES = ("channel", "daemon", "imex")


def _device_class_is_gpu(device_class: Subject) -> bool:
    """A DeviceClass whose selectors pick devices of NVIDIA's GPU driver (and not its IMEX channels)."""
    expressions = " ".join(
        as_str(as_mapping(as_mapping(s).get("cel")).get("expression")) or "" for s in as_list(device_class.spec.get("selectors"))
    )
    if NVIDIA_GPU_DRIVER not in expressions:
        return False
    return not any(word in expressions for word in _NOT_GPU_TYPES)


class DraIndex:
    """The claim templates, claims and device classes among the checked subjects."""

    def __init__(self, subjects: Sequence[Subject]):
        self.gpu_classes = set(NVIDIA_GPU_DEVICE_CLASSES)
        self.templates: dict[tuple[str, str], Mapping[str, Any]] = {}
        self.claims: dict[tuple[str, str], Mapping[str, Any]] = {}
        for subject in subjects:
            if subject.group != "resource.k8s.io":
                continue
            if subject.kind == "DeviceClass" and _device_class_is_gpu(subject):
                self.gpu_classes.add(subject.object_name)
            elif subject.kind == "ResourceClaimTemplate":
                self.templates[(subject.namespace, subject.object_name)] = as_mapping(subject.spec.get("spec"))
            elif subject.kind == "ResourceClaim":
                self.claims[(subject.namespace, subject.object_name)] = subject.spec

    def gpus(self, template: PodTemplate) -> dict[str, Decimal]:
        """DeviceClass → GPUs one pod of ``template`` claims (claims its containers use)."""
        used = {as_str(as_mapping(c).get("name")) for container in template.all_containers()
                for c in as_list(as_mapping(container.get("resources")).get("claims"))}
        found: dict[str, Decimal] = {}
        for claim in as_list(template.spec.get("resourceClaims")):
            claim = as_mapping(claim)
            if as_str(claim.get("name")) not in used and template.kind != "NIMService":
                continue
            spec = self._claim_spec(template.namespace, claim)
            for device_class, count in _requests(spec):
                if device_class in self.gpu_classes:
                    found[device_class] = found.get(device_class, Decimal(0)) + count
        return found

    def _claim_spec(self, namespace: str, claim: Mapping[str, Any]) -> Mapping[str, Any]:
        template_name, claim_name = as_str(claim.get("resourceClaimTemplateName")), as_str(claim.get("resourceClaimName"))
        if template_name:
            return self.templates.get((namespace, template_name), {})
        if claim_name:
            return self.claims.get((namespace, claim_name), {})
        return as_mapping(claim.get("inline"))


def _requests(spec: Mapping[str, Any]) -> list[tuple[str, Decimal]]:
    """(device class, count) of each device request of a claim spec (v1 ``exactly`` /
    ``firstAvailable``, v1beta1 flat); ``allocationMode: All`` counts as one (at least one device)."""
    found: list[tuple[str, Decimal]] = []
    devices = spec.get("devices")
    if isinstance(devices, list):  # NIMService draResources[*].claimCreationSpec.devices
        return [(as_str(as_mapping(d).get("deviceClassName")) or "", _count(as_mapping(d))) for d in devices]
    for request in as_list(as_mapping(devices).get("requests")):
        request = as_mapping(request)
        exact = as_mapping(request.get("exactly")) or request
        options = [exact] if exact.get("deviceClassName") else [as_mapping(o) for o in as_list(request.get("firstAvailable"))]
        for option in options[:1]:
            name = as_str(option.get("deviceClassName"))
            if name:
                found.append((name, _count(option)))
    return found


def _count(request: Mapping[str, Any]) -> Decimal:
    number: Optional[float] = as_number(request.get("count"))
    return Decimal(int(number)) if number is not None and number >= 1 else Decimal(1)
