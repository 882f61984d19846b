"""``ModelCache``: one shared, read-many volume for model weights, mounted by every replica.

Downloading tens of GiB of weights on every pod start makes scale-up slow and costly. An encrypted
EFS file system, reachable from the private subnets, is exposed through the EFS CSI driver (EKS
add-on, IAM role for its service account) as a StorageClass with one access point per claim, and a
``ReadWriteMany`` PersistentVolumeClaim in each namespace that serves models: all replicas in the
namespace mount the same weights, written once.
"""

from __future__ import annotations

import json
import re
from typing import Literal, Mapping, Optional, Sequence, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from gpufleet.components._file_cache import (
    check_client_cidrs,
    check_namespaces,
    csi_driver_addon,
    model_weights_claim,
    pinned_addon_version,
)
from gpufleet.components._iam import irsa_role
from gpufleet.components._k8s import MANAGED_BY, require_dns_label
from gpufleet.components._validate import check_arg_keys, require_one_of

TYPE = "gpufleet:model_cache:ModelCache"

EFS_CSI_ADDON = "aws-efs-csi-driver"
EFS_CSI_PROVISIONER = "efs.csi.aws.com"
EFS_CSI_POLICY = "service-role/AmazonEFSCSIDriverPolicy"
"""AWS managed policy of the EFS CSI controller (create/delete access points, describe)."""
EFS_CSI_NAMESPACE = "kube-system"
EFS_CSI_SERVICE_ACCOUNT = "efs-csi-controller-sa"
EFS_CSI_CONTROLLER_SA = f"system:serviceaccount:{EFS_CSI_NAMESPACE}:{EFS_CSI_SERVICE_ACCOUNT}"
"""The service account the add-on's controller runs as: the only identity the role trusts."""
NFS_PORT = 2049

EFS_CSI_ADDON_VERSIONS: Mapping[str, str] = {
    "1.32": "v3.5.0-eksbuild.1",
    "1.33": "v3.5.0-eksbuild.1",
    "1.34": "v3.5.0-eksbuild.1",
    "1.35": "v3.5.0-eksbuild.1",
    "1.36": "v3.5.0-eksbuild.1",
}
"""The ``aws-efs-csi-driver`` add-on version gpufleet installs per EKS Kubernetes minor version.

Source: the driver's release notes (kubernetes-sigs/aws-efs-csi-driver ``CHANGELOG-3.x.md``: v3.5.0,
the newest release) and its compatibility matrix (``docs/compatibility.md``: every release since
v1.2 supports Kubernetes 1.17 and later), as the first EKS build of that release. Check a row, or
pick a newer build, with ``aws eks describe-addon-versions --addon-name aws-efs-csi-driver
--kubernetes-version <minor> --query 'addons[].addonVersions[].addonVersion'``; a stack overrides
it with ``gpufleet:modelCache.addonVersion``."""

_QUANTITY = re.compile(r"^[1-9]\d*(Mi|Gi|Ti)$")


class ModelCacheArgs(TypedDict):
    """Inputs of :class:`ModelCache`."""

    cluster_name: pulumi.Input[str]
    """EKS cluster that gets the EFS CSI add-on. Required."""
    oidc_provider_arn: pulumi.Input[str]
    """The cluster's IAM OIDC provider (``Cluster.oidc_provider_arn``), for the driver's role. Required."""
    oidc_provider_url: pulumi.Input[str]
    """The cluster's OIDC issuer (``Cluster.oidc_provider_url``), with or without ``https://``. Required."""
    vpc_id: pulumi.Input[str]
    """VPC of the cluster: the security group of the mount targets lives there. Required."""
    subnet_ids: Sequence[pulumi.Input[str]]
    """Private subnets, one per availability zone: one mount target each, so pods in every AZ mount
    locally. Required, 1 to 6."""
    nfs_client_cidrs: Sequence[str]
    """Networks allowed to reach the mount targets on NFS (TCP 2049), usually the VPC CIDR. Required."""
    namespaces: NotRequired[Sequence[str]]
    """Namespaces that get a ``ReadWriteMany`` claim named ``claim_name``. Default none."""
    wait_for: NotRequired[Sequence[pulumi.Resource]]
    """Resources the claims wait for, e.g. the Namespace objects. Default none."""
    claim_name: NotRequired[str]
    """Name of the claim in each namespace. Default ``model-weights``."""
    claim_size: NotRequired[str]
    """Requested size of each claim (EFS is elastic: informational, but required by Kubernetes).
    Default ``500Gi``."""
    storage_class_name: NotRequired[str]
    """Name of the StorageClass. Default ``gpufleet-model-cache``."""
    throughput_mode: NotRequired[Literal["elastic", "bursting"]]
    """EFS throughput mode. ``elastic`` serves the read bursts of many replicas loading weights at
    once without a provisioned baseline. Default ``elastic``."""
    kms_key_arn: NotRequired[pulumi.Input[str]]
    """Customer managed KMS key for encryption at rest. Default: the AWS managed EFS key."""
    kubernetes_version: NotRequired[str]
    """The cluster's Kubernetes minor version (e.g. ``"1.35"``): picks the add-on version from
    :data:`EFS_CSI_ADDON_VERSIONS`. Required unless ``addon_version`` is given."""
    addon_version: NotRequired[str]
    """EFS CSI add-on version, e.g. ``v3.5.0-eksbuild.1``, instead of the pinned one. Default: the
    :data:`EFS_CSI_ADDON_VERSIONS` row of ``kubernetes_version``."""
    tags: NotRequired[Mapping[str, str]]
    """Extra tags for every AWS resource. Default none."""


class ModelCache(pulumi.ComponentResource):
    """An encrypted, deletion-protected EFS file system with a mount target per private subnet and a
    security group open to NFS from the cluster's network only; a file system policy allowing mount and
    write through the mount targets over TLS only (no root access); the
    EFS CSI driver add-on with an IRSA role (AWS managed ``AmazonEFSCSIDriverPolicy``), its controller
    on the system nodes; a StorageClass (``efs-ap``: one access point per claim, so non-root pods can
    write) and a ``ReadWriteMany`` claim per namespace."""

    file_system_id: pulumi.Output[str]
    storage_class_name: pulumi.Output[str]
    claim_name: str

    def __init__(self, name: str, args: ModelCacheArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, ModelCacheArgs, name=TYPE)
        for key in ("cluster_name", "oidc_provider_arn", "oidc_provider_url", "vpc_id"):
            if args.get(key) is None:
                raise ValueError(f"{TYPE}: {key} is required")
        subnet_ids = list(args.get("subnet_ids") or [])
        if not 1 <= len(subnet_ids) <= 6:
            raise ValueError(f"{TYPE}: subnet_ids must name 1 to 6 subnets (one per availability zone), got {len(subnet_ids)}")
        cidrs = check_client_cidrs(args.get("nfs_client_cidrs"), "nfs_client_cidrs", name=TYPE)
        namespaces = check_namespaces(args.get("namespaces", []), name=TYPE)
        claim_name = require_dns_label(args.get("claim_name", "model-weights"), "claim_name", name=TYPE, what="valid object name")
        claim_size = args.get("claim_size", "500Gi")
        if not isinstance(claim_size, str) or not _QUANTITY.match(claim_size):
            raise ValueError(f"{TYPE}: claim_size must be a quantity like '500Gi', got {claim_size!r}")
        class_name = require_dns_label(
            args.get("storage_class_name", "gpufleet-model-cache"), "storage_class_name", name=TYPE, what="valid object name")
        throughput = require_one_of(args.get("throughput_mode", "elastic"), "throughput_mode", ("elastic", "bursting"), name=TYPE)
        addon_version = pinned_addon_version(args.get("addon_version"), args.get("kubernetes_version"),
                                             EFS_CSI_ADDON_VERSIONS, addon_name=EFS_CSI_ADDON, name=TYPE)
        tags = dict(args.get("tags", {}))
        wait_for = list(args.get("wait_for", []))

        super().__init__(TYPE, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)

        file_system = aws.efs.FileSystem(
            f"{name}-fs",
            encrypted=True,
            kms_key_id=args.get("kms_key_arn"),
            performance_mode="generalPurpose",
            throughput_mode=throughput,
            tags={**tags, "Name": f"{name}-model-cache"},
            # The weights of every served model live here: never deleted by an update.
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        aws.efs.FileSystemPolicy(
            f"{name}-tls-only",
            file_system_id=file_system.id,
            policy=file_system.arn.apply(_tls_only_policy),
            opts=child,
        )
        security_group = aws.ec2.SecurityGroup(
            f"{name}-nfs-sg",
            description="EFS mount targets of the model cache: NFS from the cluster network only",
            vpc_id=args["vpc_id"],
            ingress=[{
                "description": "NFS from the cluster network",
                "protocol": "tcp",
                "from_port": NFS_PORT,
                "to_port": NFS_PORT,
                "cidr_blocks": cidrs,
            }],
            # Mount targets answer on established connections only; they open none.
            egress=[],
            tags={**tags, "Name": f"{name}-model-cache-nfs"},
            opts=child,
        )
        mount_targets = [
            aws.efs.MountTarget(
                f"{name}-mount-{chr(ord('a') + index)}",
                file_system_id=file_system.id,
                subnet_id=subnet_id,
                security_groups=[security_group.id],
                opts=child,
            )
            for index, subnet_id in enumerate(subnet_ids)
        ]

        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition
        role = irsa_role(
            f"{name}-efs-csi-role",
            oidc_provider_arn=args["oidc_provider_arn"],
            oidc_provider_url=args["oidc_provider_url"],
            namespace=EFS_CSI_NAMESPACE,
            service_account=EFS_CSI_SERVICE_ACCOUNT,
            description="EFS CSI driver controller (IRSA): creates and deletes access points",
            tags=tags,
            parent=self,
        )
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-efs-csi-policy",
            role=role.name,
            policy_arn=partition.apply(lambda p: f"arn:{p}:iam::aws:policy/{EFS_CSI_POLICY}"),
            opts=child,
        )
        addon = csi_driver_addon(
            f"{name}-efs-csi",
            cluster_name=args["cluster_name"],
            addon_name=EFS_CSI_ADDON,
            addon_version=addon_version,
            service_account_role_arn=role.arn,
            tags=tags,
            parent=self,
            depends_on=[attachment],
        )

        storage_class = k8s.storage.v1.StorageClass(
            f"{name}-storage-class",
            metadata={"name": class_name, "labels": dict(MANAGED_BY)},
            provisioner=EFS_CSI_PROVISIONER,
            parameters={
                "provisioningMode": "efs-ap",
                "fileSystemId": file_system.id,
                "directoryPerms": "750",
                "basePath": "/model-cache",
                # Access points own their directory as a dedicated POSIX user/group from this range,
                # so containers running as non-root can write weights.
                "gidRangeStart": "50000",
                "gidRangeEnd": "59999",
            },
            # Deleting a claim must not delete the weights behind it.
            reclaim_policy="Retain",
            volume_binding_mode="Immediate",
            mount_options=["tls"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[addon]),
        )
        for namespace in namespaces:
            model_weights_claim(
                f"{name}-{namespace}-claim",
                claim_name=claim_name,
                namespace=namespace,
                spec={"storageClassName": storage_class.metadata.name, "resources": {"requests": {"storage": claim_size}}},
                parent=self,
                # Pods using the claim can mount it only once every AZ has a mount target.
                depends_on=[*mount_targets, addon, *wait_for],
            )

        self.file_system_id = file_system.id
        self.storage_class_name = storage_class.metadata.name
        self.claim_name = claim_name
        self.register_outputs({
            "file_system_id": self.file_system_id,
            "storage_class_name": self.storage_class_name,
        })


EFS_CLIENT_ACTIONS = ("elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite")
"""What NFS clients of the cache may do: mount and write. Not ``ClientRootAccess``: every claim's
access point enforces a POSIX identity from the StorageClass's gid range, never root."""


def _tls_only_policy(file_system_arn: str) -> str:
    """The file system policy: clients that reach a mount target may mount and write, but only over TLS.

    Without a file system policy EFS grants full access to any client that can reach a mount target;
    once one exists, a client that mounts without IAM authorisation (the EFS CSI driver without the
    ``iam`` mount option) gets only what the policy allows to ``*``. A Deny alone would therefore
    refuse every mount, so the Allow restores mount and write through the mount targets (which also
    keeps the policy non-public) and the Deny takes them back from clients not using TLS.
    """
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowMountAndWriteViaMountTargets",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": list(EFS_CLIENT_ACTIONS),
                "Resource": file_system_arn,
                "Condition": {"Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"}},
            },
            {
                "Sid": "DenyUnencryptedTransport",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "*",
                "Resource": file_system_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    })
