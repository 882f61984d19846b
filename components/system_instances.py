"""The instance types gpufleet's system nodes may use, with what sizing them needs: vCPUs, memory and
the pods the node may run.

vCPUs and memory: the EC2 instance type pages (general purpose M, compute optimised C, memory
optimised R). Max pods: amazon-vpc-cni-k8s ``misc/eni-max-pods.txt`` (ENIs × (IPs per ENI - 1) + 2),
which EKS's AL2023 AMI uses for the kubelet's maxPods without prefix delegation. The ``system_nodes``
stack area checks the controllers fit these nodes; ``Cluster`` sizes EKS Auto Mode's system NodePool
limits from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping


@dataclass(frozen=True)
class InstanceFacts:
    """What the kubelet of a system node has to share out."""

    vcpus: int
    memory_gib: int
    max_pods: int
    """Pods the VPC CNI allows (``eni-max-pods.txt``), which the kube-reserved memory scales with."""


def _family(prefix: str, sizes: Iterable[tuple[str, int, int, int]]) -> dict[str, InstanceFacts]:
    return {f"{prefix}.{size}": InstanceFacts(vcpus, memory, pods) for size, vcpus, memory, pods in sizes}


_GENERAL = (("large", 2, 8, 29), ("xlarge", 4, 16, 58), ("2xlarge", 8, 32, 58), ("4xlarge", 16, 64, 234),
            ("8xlarge", 32, 128, 234))
_COMPUTE = (("large", 2, 4, 29), ("xlarge", 4, 8, 58), ("2xlarge", 8, 16, 58), ("4xlarge", 16, 32, 234))
_MEMORY = (("large", 2, 16, 29), ("xlarge", 4, 32, 58), ("2xlarge", 8, 64, 58), ("4xlarge", 16, 128, 234))
SYSTEM_INSTANCE_TYPES: Mapping[str, InstanceFacts] = {
    **{k: v for family in ("m5", "m6i", "m6a", "m7i", "m7a", "m6g", "m7g", "m8g") for k, v in _family(family, _GENERAL).items()},
    **{k: v for family in ("c6i", "c7i", "c7g") for k, v in _family(family, _COMPUTE).items()},
    **{k: v for family in ("r6i", "r7i", "r7g") for k, v in _family(family, _MEMORY).items()},
}
"""Instance types the system node group may use, with what the check needs to know of them."""
