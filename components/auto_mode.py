"""EKS Auto Mode: the facts gpufleet renders an Auto Mode cluster and its node pools from, and the
settings it refuses there.

With ``Cluster`` ``auto_mode=True`` EKS runs the node provisioner (a managed Karpenter), pod
networking, kube-proxy, cluster DNS, the EBS CSI driver, the Pod Identity agent and, on GPU instances,
the NVIDIA driver and device plugin itself, on AMIs it chooses and patches. gpufleet then creates no
Karpenter release, IAM or interruption queue and no managed node group; it turns off Auto Mode's
built-in ``system`` and ``general-purpose`` NodePools and declares its own:

- ``system``: a ``karpenter.sh/v1`` NodePool of the ``cluster.systemNodes`` instance types, labelled
  ``gpufleet.io/node-role: system`` like the managed node group it replaces (every controller keeps its
  node selector), on the ``system`` ``eks.amazonaws.com/v1`` NodeClass. Its limits are ``maxSize``
  nodes of the largest listed type: Auto Mode adds system nodes as the controllers need them, up to that.
- one NodePool and NodeClass per GPU pool (:class:`~gpufleet.components.gpu_node_pool.GpuNodePool` with
  ``auto_mode``), its requirements on Auto Mode's well-known labels (``eks.amazonaws.com/instance-*``).

Sources (Amazon EKS User Guide, ``awsdocs/amazon-eks-user-guide`` ``latest/ug/automode/``):

- ``create-node-pool.adoc``, "EKS Auto Mode Supported Labels" and "EKS Auto Mode Not Supported Labels"
  (:data:`SUPPORTED_LABELS`, :data:`UNSUPPORTED_REQUIREMENT_LABELS`), "Cluster without built-in node
  pools" (``nodePools`` and ``nodeRoleArn`` both empty; a custom NodeClass and an access entry instead);
- ``create-node-class.adoc``, "Node Class Specification" (the NodeClass fields and ranges), "Create node
  class access entry" (type ``EC2`` with ``AmazonEKSAutoNodePolicy``), "Considerations" (at most 110
  pods a node; do not name a custom node class ``default``);
- ``auto-learn-iam.adoc`` (cluster role policies :data:`CLUSTER_POLICIES`, node role policies
  :data:`NODE_POLICIES`; "Custom AWS tags for EKS Auto resources": :func:`tagging_policy`);
- ``automode.adoc`` (nodes live at most 21 days; no Pod Identity agent to install),
  ``automode-learn-instances.adoc`` (supported instance families, sizes; IMDSv2 with hop limit 1
  enforced), ``auto-accelerated.adoc`` (NVIDIA driver and device plugin included), ``auto-change.adoc``
  (``associatePublicIPAddress``, ``capacityReservationSelectorTerms``, node-local DNS; "DRA is not
  currently supported by EKS Auto Mode"), ``create-storage-class.adoc`` (:data:`STORAGE_PROVISIONER`);
- ``device-management-efa`` (EFA device plugin supported on Auto Mode; placement groups are not).

The cluster role trust (``sts:AssumeRole`` and ``sts:TagSession``) and the cluster settings Auto
Mode needs (``computeConfig.enabled``, ``storageConfig.blockStorage.enabled``,
``kubernetesNetworkConfig.elasticLoadBalancing.enabled``, ``bootstrapSelfManagedAddons: false``, no
kube-proxy and VPC CNI add-ons) are what pulumi-eks (``nodejs/eks/cluster/cluster.ts``, ``createCore``)
sets on the ``aws.eks.Cluster`` it creates when its ``autoMode.enabled`` is true.

This module imports no Pulumi SDK: the policies and the stack configuration read its constants.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

if TYPE_CHECKING:
    import pulumi

NODE_CLASS_GROUP = "eks.amazonaws.com"
NODE_CLASS_API_VERSION = f"{NODE_CLASS_GROUP}/v1"
NODE_CLASS_KIND = "NodeClass"
COMPUTE_TYPE_LABEL = "eks.amazonaws.com/compute-type"
"""Auto Mode sets it to ``auto`` on every node it manages."""
INSTANCE_LABEL_PREFIX = "eks.amazonaws.com/instance-"
"""Auto Mode's instance labels: ``eks.amazonaws.com/instance-family`` where self-managed Karpenter says
``karpenter.k8s.aws/instance-family`` (nodes carry one set or the other, never both)."""
FAMILY_LABEL = INSTANCE_LABEL_PREFIX + "family"

AUTO_MODE_AMI = "eks-auto-mode"
""":attr:`GpuPlacement.ami_family` of a pool on Auto Mode: AWS picks the AMI, which ships the NVIDIA
driver, container toolkit and device plugin."""

SYSTEM_POOL = "system"
"""Name of gpufleet's system NodePool and NodeClass on Auto Mode."""
RESERVED_POOL_NAMES = (SYSTEM_POOL, "default")
"""Pool names a GPU pool may not take on Auto Mode: gpufleet's system pool, and ``default`` (the
built-in NodeClass's name; AWS: "Do not name your custom node class ``default``")."""

CLUSTER_POLICIES = (
    "AmazonEKSClusterPolicy",
    "AmazonEKSComputePolicy",
    "AmazonEKSBlockStoragePolicy",
    "AmazonEKSLoadBalancingPolicy",
    "AmazonEKSNetworkingPolicy",
)
"""AWS managed policies of the cluster IAM role of an Auto Mode cluster."""
CLUSTER_ROLE_ACTIONS = ("sts:AssumeRole", "sts:TagSession")
"""What the EKS service principal may do with the cluster role (Auto Mode tags its sessions)."""
NODE_POLICIES = ("AmazonEKSWorkerNodeMinimalPolicy", "AmazonEC2ContainerRegistryPullOnly")
"""AWS managed policies of the node IAM role."""
NODE_ACCESS_ENTRY_TYPE = "EC2"
NODE_ACCESS_POLICY = "AmazonEKSAutoNodePolicy"
"""EKS access policy of the node role's ``EC2`` access entry (cluster scope)."""

MAX_NODE_LIFETIME_HOURS = 504
"""Auto Mode replaces every node after at most 21 days; ``expireAfter`` can only shorten that."""
DEFAULT_EXPIRE_AFTER = "336h"
"""Auto Mode's own default node lifetime (14 days), gpufleet's default for pools on Auto Mode."""
MAX_PODS = 110
"""Auto Mode caps pods a node at 110, after the usual max-pods calculation."""
EPHEMERAL_IOPS = (3000, 16000)
EPHEMERAL_THROUGHPUT = (125, 1000)
EPHEMERAL_MAX_GIB = 59000
"""``ephemeralStorage`` ranges of a NodeClass (size 1-59000Gi, IOPS 3000-16000, throughput 125-1000 MiB/s)."""

STORAGE_PROVISIONER = "ebs.csi.eks.amazonaws.com"
"""The CSI provisioner of Auto Mode's block storage capability: StorageClasses name it instead of the
EBS CSI driver's ``ebs.csi.aws.com`` (Auto Mode creates no StorageClass itself)."""

SUPPORTED_LABELS: Mapping[str, str] = {
    "topology.kubernetes.io/zone": "AWS availability zone",
    "node.kubernetes.io/instance-type": "AWS instance type",
    "kubernetes.io/arch": "architecture (GOARCH)",
    "karpenter.sh/capacity-type": "spot, on-demand (reserved with capacity reservations)",
    "eks.amazonaws.com/instance-hypervisor": "hypervisor",
    "eks.amazonaws.com/compute-type": "auto on Auto Mode nodes",
    "eks.amazonaws.com/instance-encryption-in-transit-supported": "in-transit encryption support",
    "eks.amazonaws.com/instance-category": "instance category, e.g. g",
    "eks.amazonaws.com/instance-generation": "generation number within the category",
    "eks.amazonaws.com/instance-family": "instance family, e.g. g6e",
    "eks.amazonaws.com/instance-size": "instance size, e.g. 8xlarge",
    "eks.amazonaws.com/instance-cpu": "vCPUs",
    "eks.amazonaws.com/instance-cpu-manufacturer": "CPU manufacturer",
    "eks.amazonaws.com/instance-memory": "memory in MiB",
    "eks.amazonaws.com/instance-ebs-bandwidth": "maximum EBS megabits",
    "eks.amazonaws.com/instance-network-bandwidth": "baseline network megabits",
    "eks.amazonaws.com/instance-gpu-name": "GPU name, e.g. l40s",
    "eks.amazonaws.com/instance-gpu-manufacturer": "GPU manufacturer, e.g. nvidia",
    "eks.amazonaws.com/instance-gpu-count": "GPUs",
    "eks.amazonaws.com/instance-gpu-memory": "memory of one GPU in MiB",
    "eks.amazonaws.com/instance-local-nvme": "local NVMe storage in GiB",
}
"""EKS Auto Mode's well-known labels: what NodePool requirements on Auto Mode may name (besides the
pool's own template labels)."""
UNSUPPORTED_REQUIREMENT_LABELS = ("kubernetes.io/os", "node.kubernetes.io/windows-build")
"""Well-known labels Auto Mode NodePool requirements may not name (Auto Mode runs Linux only)."""

SUPPORTED_FAMILIES: Mapping[str, tuple[str, ...]] = {
    "c": ("c8id", "c8i", "c8i-flex", "c8gd", "c8gn", "c8g", "c8a", "c8gb", "c7a", "c7g", "c7gn", "c7gd", "c7i",
          "c7i-flex", "c6a", "c6g", "c6i", "c6gn", "c6id", "c6in", "c6gd", "c5", "c5a", "c5d", "c5ad", "c5n", "c4"),
    "m": ("m8id", "m8i", "m8i-flex", "m8a", "m8azn", "m8gn", "m8gb", "m8gd", "m8g", "m7i", "m7a", "m7g", "m7gd",
          "m7i-flex", "m6a", "m6i", "m6in", "m6g", "m6idn", "m6id", "m6gd", "m5", "m5a", "m5ad", "m5n", "m5dn", "m5d",
          "m5zn", "m4"),
    "r": ("r8id", "r8i", "r8i-flex", "r8gn", "r8gb", "r8gd", "r8g", "r8a", "r7a", "r7iz", "r7gd", "r7i", "r7g", "r6a",
          "r6i", "r6id", "r6in", "r6idn", "r6g", "r6gd", "r5", "r5n", "r5a", "r5dn", "r5b", "r5ad", "r5d", "r4"),
    "t": ("t4g", "t3", "t3a", "t2"),
    "accelerated": ("p6-b200", "p6-b300", "p5", "p5e", "p5en", "p4d", "p4de", "p3dn", "g7e", "g6", "gr6", "g6e", "g5g",
                    "g5", "g4dn", "g4ad", "inf2", "inf1", "trn1", "trn1n", "trn2"),
}
"""Instance families Auto Mode launches (the general purpose, compute, memory, burstable and accelerated
rows of the supported instance reference; it also needs more than one vCPU and no nano, micro or
small size)."""
_SUPPORTED = frozenset(family for families in SUPPORTED_FAMILIES.values() for family in families)
_TOO_SMALL = ("nano", "micro", "small")

RESTRICTED_NODE_CLASS_TAGS = (
    "karpenter.sh/provisioner-name", "karpenter.sh/nodepool", "karpenter.sh/nodeclaim", "karpenter.sh/managed-by",
    "eks.amazonaws.com/nodeclass",
)
"""NodeClass ``tags`` Auto Mode sets itself (and every ``kubernetes.io/cluster/*`` tag)."""


def instance_type_problem(instance_type: str) -> Optional[str]:
    """Why Auto Mode would never launch ``instance_type``, or None."""
    family, _, size = instance_type.partition(".")
    if family not in _SUPPORTED:
        return f"{instance_type} is not an instance type EKS Auto Mode launches (family {family} is not supported)"
    if size in _TOO_SMALL:
        return f"{instance_type}: EKS Auto Mode launches no nano, micro or small instances"
    return None


def expire_hours(duration: str) -> float:
    """Hours of a checked ``720h``/``30m``/``1h30m`` duration."""
    return sum(int(amount) * {"h": 1, "m": 1 / 60, "s": 1 / 3600}[unit]
               for amount, unit in re.findall(r"([0-9]+)([hms])", duration))


def expire_after_problem(value: str) -> Optional[str]:
    """Why ``expireAfter`` cannot hold on Auto Mode (nodes live at most 21 days), or None."""
    if value == "Never":
        return (f"is 'Never', but EKS Auto Mode replaces every node after at most 21 days "
                f"({MAX_NODE_LIFETIME_HOURS}h): give a duration up to {MAX_NODE_LIFETIME_HOURS}h "
                f"(Auto Mode's default is {DEFAULT_EXPIRE_AFTER})")
    if expire_hours(value) > MAX_NODE_LIFETIME_HOURS:
        return (f"({value}) is longer than the 21 days ({MAX_NODE_LIFETIME_HOURS}h) EKS Auto Mode lets a node live: "
                f"give at most {MAX_NODE_LIFETIME_HOURS}h (Auto Mode's default is {DEFAULT_EXPIRE_AFTER})")
    return None


def tag_problem(key: str) -> Optional[str]:
    """Why a NodeClass may not carry the tag ``key``, or None."""
    if key in RESTRICTED_NODE_CLASS_TAGS or key.startswith("kubernetes.io/cluster/"):
        return "is a tag EKS Auto Mode sets on its instances itself"
    return None


def ephemeral_storage(size_gib: int, iops: int, throughput_mibps: int) -> dict[str, Any]:
    """A NodeClass ``ephemeralStorage`` (the node's data volume, encrypted by Auto Mode)."""
    return {"size": f"{size_gib}Gi", "iops": iops, "throughput": throughput_mibps}


def node_class_spec(*, role: Any, cluster_name: Any, security_group_ids: Sequence[Any],
                    storage: Mapping[str, Any], tags: Optional[Mapping[str, str]] = None,
                    capacity_reservation_ids: Sequence[str] = ()) -> dict[str, Any]:
    """An ``eks.amazonaws.com/v1`` NodeClass ``spec``: the node role by name, the cluster's private
    subnets (the ``karpenter.sh/discovery`` tag :class:`~gpufleet.components.network.Network` puts on
    them), the given security groups by id, no public IP addresses, network policies enforced with
    Auto Mode's defaults written out, the data volume, and the tags on instances, volumes and
    network interfaces. ``role`` and ``cluster_name`` may be Outputs."""
    spec: dict[str, Any] = {
        "role": role,
        "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": cluster_name}}],
        # Terms are ORed: the EKS cluster security group (eks-cluster-sg-*, which Auto Mode's load
        # balancing may open to ALB/NLB traffic) and any extra group, e.g. an EFA pool's.
        "securityGroupSelectorTerms": [{"id": group} for group in security_group_ids],
        "snatPolicy": "Random",
        "networkPolicy": "DefaultAllow",
        "networkPolicyEventLogs": "Disabled",
        "ephemeralStorage": dict(storage),
        "advancedNetworking": {"associatePublicIPAddress": False},
    }
    if tags:
        spec["tags"] = dict(tags)
    if capacity_reservation_ids:
        spec["capacityReservationSelectorTerms"] = [{"id": r} for r in capacity_reservation_ids]
    return spec


def node_class_ref(name: str) -> dict[str, str]:
    """A NodePool template's ``nodeClassRef`` to the NodeClass ``name``."""
    return {"group": NODE_CLASS_GROUP, "kind": NODE_CLASS_KIND, "name": name}


def tagging_policy(partition: str) -> dict[str, Any]:
    """The cluster role's inline policy that lets Auto Mode put a NodeClass's ``tags`` on the
    instances, launch templates, volumes and network interfaces it creates for the cluster (the
    managed policies allow only Auto Mode's own tags): the "Compute", "Storage" and "Networking"
    statements of AWS's example, each limited to requests tagged with this cluster's name."""
    cluster = {"aws:RequestTag/eks:eks-cluster-name": "${aws:PrincipalTag/eks:eks-cluster-name}"}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Compute", "Effect": "Allow",
             "Action": ["ec2:CreateFleet", "ec2:RunInstances", "ec2:CreateLaunchTemplate"], "Resource": "*",
             "Condition": {"StringEquals": cluster,
                           "StringLike": {"aws:RequestTag/eks:kubernetes-node-class-name": "*",
                                          "aws:RequestTag/eks:kubernetes-node-pool-name": "*"}}},
            {"Sid": "Storage", "Effect": "Allow", "Action": ["ec2:CreateVolume", "ec2:CreateSnapshot"],
             "Resource": [f"arn:{partition}:ec2:*:*:volume/*", f"arn:{partition}:ec2:*:*:snapshot/*"],
             "Condition": {"StringEquals": cluster}},
            {"Sid": "Networking", "Effect": "Allow", "Action": "ec2:CreateNetworkInterface", "Resource": "*",
             "Condition": {"StringEquals": cluster,
                           "StringLike": {"aws:RequestTag/eks:kubernetes-cni-node-name": "*"}}},
        ],
    }


def system_node_pool_spec(instance_types: Sequence[str], arch: str, max_nodes: int, vcpus: int, memory_gib: int,
                          labels: Mapping[str, str]) -> dict[str, Any]:
    """The system NodePool ``spec``: on-demand nodes of ``instance_types`` (one CPU architecture),
    labelled ``labels``, untainted like the managed node group it replaces, at most ``max_nodes`` of
    the largest (``vcpus``, ``memory_gib``) at once, replaced one at a time."""
    return {
        "template": {
            "metadata": {"labels": dict(labels)},
            "spec": {
                "nodeClassRef": node_class_ref(SYSTEM_POOL),
                "requirements": [
                    {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": list(instance_types)},
                    {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                    {"key": "kubernetes.io/arch", "operator": "In", "values": [arch]},
                ],
                "expireAfter": DEFAULT_EXPIRE_AFTER,
                # Controllers have PDBs; a drain they block ends after this (the GPU pools' default).
                "terminationGracePeriod": "24h",
            },
        },
        "limits": {"cpu": max_nodes * vcpus, "memory": f"{max_nodes * memory_gib}Gi"},
        "disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "30m",
                       "budgets": [{"nodes": "1"}]},
    }


@dataclass(frozen=True)
class AutoModeNodes:
    """What a :class:`~gpufleet.components.gpu_node_pool.GpuNodePool` on an Auto Mode cluster needs
    (``Cluster.auto_mode``): the node role its NodeClass names, the discovery tag value of the
    cluster's subnets, the cluster security group, and what must exist before its nodes can join."""

    node_role_name: "pulumi.Output[str]"
    cluster_name: "pulumi.Output[str]"
    cluster_security_group_id: "pulumi.Output[str]"
    ready: tuple["pulumi.Resource", ...] = field(default_factory=tuple)
    """The node role's access entry and access policy: pools depend on them (and are deleted first)."""
