"""Facts about the EC2 GPU instance types gpufleet supports.

Source: Amazon EC2 "Accelerated computing instance specifications"
(docs.aws.amazon.com/ec2/latest/instancetypes/ac.html), checked November 2026; MIG capability from
NVIDIA's MIG user guide ("Supported GPUs": A100, A30, H100, H200, B200 and later; not A10G, L4, L40S).
GPU memory is per GPU. ``gpu_name`` is Karpenter's ``karpenter.k8s.aws/instance-gpu-name`` label value,
known before a node exists, so workloads can select on it and Karpenter can still plan capacity.

Components check their arguments against this table, and the policies use the same table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping


@dataclass(frozen=True)
class GpuFamily:
    """One EC2 GPU instance family."""

    family: str
    gpu_model: str
    """Marketing name, e.g. ``NVIDIA A100 40GB``."""
    gpu_name: str
    """Karpenter's ``karpenter.k8s.aws/instance-gpu-name`` value, e.g. ``a100``."""
    gpu_memory_gib: int
    """Memory of one GPU."""
    mig_capable: bool
    """The GPU can be partitioned with Multi-Instance GPU."""
    sizes: Mapping[str, tuple[int, int, int]]
    """Size → (GPUs, vCPUs, memory GiB)."""


@dataclass(frozen=True)
class GpuInstanceType:
    """One EC2 GPU instance type."""

    name: str
    family: GpuFamily
    gpus: int
    vcpus: int
    memory_gib: int

    @property
    def gpu_model(self) -> str:
        return self.family.gpu_model

    @property
    def mig_capable(self) -> bool:
        return self.family.mig_capable

    @property
    def efa_interfaces(self) -> int:
        """Elastic Fabric Adapter interfaces the type supports (:data:`EFA_INTERFACES`); 0 without EFA."""
        return EFA_INTERFACES.get(self.name, 0)


_SINGLE_AND_MULTI_GPU_SIZES = {
    "xlarge": (1, 4, 16), "2xlarge": (1, 8, 32), "4xlarge": (1, 16, 64), "8xlarge": (1, 32, 128),
    "16xlarge": (1, 64, 256), "12xlarge": (4, 48, 192), "24xlarge": (4, 96, 384), "48xlarge": (8, 192, 768),
}

FAMILIES: dict[str, GpuFamily] = {
    f.family: f
    for f in (
        GpuFamily("g5", "NVIDIA A10G", "a10g", 24, False, _SINGLE_AND_MULTI_GPU_SIZES),
        GpuFamily("g6", "NVIDIA L4", "l4", 24, False, _SINGLE_AND_MULTI_GPU_SIZES),
        GpuFamily("g6e", "NVIDIA L40S", "l40s", 48, False, {
            "xlarge": (1, 4, 32), "2xlarge": (1, 8, 64), "4xlarge": (1, 16, 128), "8xlarge": (1, 32, 256),
            "16xlarge": (1, 64, 512), "12xlarge": (4, 48, 384), "24xlarge": (4, 96, 768), "48xlarge": (8, 192, 1536),
        }),
        GpuFamily("p4d", "NVIDIA A100 40GB", "a100", 40, True, {"24xlarge": (8, 96, 1152)}),
        GpuFamily("p4de", "NVIDIA A100 80GB", "a100", 80, True, {"24xlarge": (8, 96, 1152)}),
        GpuFamily("p5", "NVIDIA H100 80GB", "h100", 80, True, {"4xlarge": (1, 16, 256), "48xlarge": (8, 192, 2048)}),
        GpuFamily("p5e", "NVIDIA H200 141GB", "h200", 141, True, {"48xlarge": (8, 192, 2048)}),
        GpuFamily("p5en", "NVIDIA H200 141GB", "h200", 141, True, {"48xlarge": (8, 192, 2048)}),
    )
}

INSTANCE_TYPES: dict[str, GpuInstanceType] = {
    f"{family.family}.{size}": GpuInstanceType(f"{family.family}.{size}", family, gpus, vcpus, memory)
    for family in FAMILIES.values()
    for size, (gpus, vcpus, memory) in family.sizes.items()
}


EFA_INTERFACES: Mapping[str, int] = {
    "p4d.24xlarge": 4,
    "p4de.24xlarge": 4,
    "p5.48xlarge": 32,
    "p5e.48xlarge": 32,
    "p5en.48xlarge": 16,
}
"""Instance type → maximum EFA interfaces (EC2 ``DescribeInstanceTypes``
``NetworkInfo.EfaInfo.MaximumEfaInterfaces``). Source: Amazon EC2 User Guide, "Elastic Fabric Adapter",
"Supported instance types" and "Maximize network bandwidth on accelerated computing instances with EFA"
(docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa.html, efa-acc-inst-types.html: P5 and P5e support up
to 32 network cards, one EFA interface each), checked December 2026. Karpenter advertises the same
number as the ``vpc.amazonaws.com/efa`` capacity of the type and attaches that many EFA interfaces when
a NodeClaim requests the resource (karpenter-provider-aws ``pkg/providers/launchtemplate``:
``efaCount``). The g5/g6/g6e sizes with EFA and p5.4xlarge are left out: gpufleet enables EFA only
on the multi-node training families (p4d, p4de, p5, p5e, p5en)."""


def instance_types_of(families: Iterable[str] = (), types: Iterable[str] = ()) -> list[GpuInstanceType]:
    """The known instance types a pool may launch: all sizes of ``families`` plus ``types``."""
    chosen = [t for t in INSTANCE_TYPES.values() if t.family.family in set(families)]
    chosen += [INSTANCE_TYPES[t] for t in types if t in INSTANCE_TYPES]
    return chosen


def is_gpu_instance(instance_type: str) -> bool:
    return instance_type in INSTANCE_TYPES
