"""``LustreModelCache``: the FSx for Lustre alternative to :class:`~gpufleet.components.model_cache.ModelCache`.

Lustre serves the same weights to many GPU nodes at hundreds of GB/s: worth its fixed cost when
models are large (70B+ parameters) and replicas start often. The file system is single-AZ (GPU
capacity is usually concentrated in one AZ; pods elsewhere still mount it, across AZs), optionally
linked to an S3 prefix so weights published to S3 appear in the file system. Kubernetes sees it
through the FSx CSI driver (EKS add-on) as one statically provisioned ``ReadWriteMany`` volume per
namespace, all backed by the same file system.
"""

from __future__ import annotations

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
from gpufleet.components._k8s import MANAGED_BY, require_dns_label
from gpufleet.components._validate import check_arg_keys, require_one_of

TYPE = "gpufleet:model_cache:LustreModelCache"

FSX_CSI_ADDON = "aws-fsx-csi-driver"
FSX_CSI_DRIVER = "fsx.csi.aws.com"
LUSTRE_PORTS = ((988, 988), (1018, 1023))
"""Lustre traffic between clients and file servers (and among the servers)."""
THROUGHPUTS_PER_TIB = (125, 250, 500, 1000)
"""``PERSISTENT_2`` throughput tiers, MB/s per TiB of storage."""

FSX_CSI_ADDON_VERSIONS: Mapping[str, str] = {
    "1.32": "v1.4.0-eksbuild.1",
    "1.33": "v1.4.0-eksbuild.1",
    "1.34": "v1.4.0-eksbuild.1",
    "1.35": "v1.4.0-eksbuild.1",
    "1.36": "v1.4.0-eksbuild.1",
}
"""The ``aws-fsx-csi-driver`` add-on version gpufleet installs per EKS Kubernetes minor version.

Source: the driver's release notes (kubernetes-sigs/aws-fsx-csi-driver ``CHANGELOG-0.x.md``, which
lists the 1.x releases too: v1.4.0, the newest) and its chart (Kubernetes 1.17 and later since chart
1.0), as the first EKS build of that release. Check a row with ``aws eks describe-addon-versions
--addon-name aws-fsx-csi-driver --kubernetes-version <minor>``; a stack overrides it with
``gpufleet:modelCache.addonVersion``."""


class LustreModelCacheArgs(TypedDict):
    """Inputs of :class:`LustreModelCache`."""

    cluster_name: pulumi.Input[str]
    """EKS cluster that gets the FSx CSI add-on. Required."""
    vpc_id: pulumi.Input[str]
    """VPC of the cluster. Required."""
    subnet_id: pulumi.Input[str]
    """Private subnet (its AZ) of the file servers. Required."""
    client_cidrs: Sequence[str]
    """Networks allowed to mount (Lustre TCP 988, 1018-1023), usually the VPC CIDR. Required."""
    namespaces: NotRequired[Sequence[str]]
    """Namespaces that get a ``ReadWriteMany`` claim named ``claim_name``. Default none."""
    wait_for: NotRequired[Sequence[pulumi.Resource]]
    """Resources the claims wait for, e.g. the Namespace objects. Default none."""
    claim_name: NotRequired[str]
    """Name of the claim in each namespace. Default ``model-weights``."""
    storage_capacity_gib: NotRequired[int]
    """Storage: 1200 or a multiple of 2400 GiB. Default 1200."""
    throughput_per_tib: NotRequired[Literal[125, 250, 500, 1000]]
    """MB/s per TiB of storage. Default 250."""
    s3_import_path: NotRequired[str]
    """``s3://bucket/prefix`` linked at ``/s3`` in the file system: objects added or changed there are
    imported automatically. Default none."""
    kms_key_arn: NotRequired[pulumi.Input[str]]
    """Customer managed KMS key for encryption at rest. Default the AWS managed FSx key."""
    kubernetes_version: NotRequired[str]
    """The cluster's Kubernetes minor version (e.g. ``"1.35"``): picks the add-on version from
    :data:`FSX_CSI_ADDON_VERSIONS`. Required unless ``addon_version`` is given."""
    addon_version: NotRequired[str]
    """FSx CSI add-on version, e.g. ``v1.4.0-eksbuild.1``, instead of the pinned one. Default: the
    :data:`FSX_CSI_ADDON_VERSIONS` row of ``kubernetes_version``."""
    tags: NotRequired[Mapping[str, str]]
    """Extra tags for every AWS resource. Default none."""


class LustreModelCache(pulumi.ComponentResource):
    """A deletion-protected, encrypted FSx for Lustre ``PERSISTENT_2`` file system (LZ4 compression)
    behind a security group open to Lustre from the cluster network only, optionally importing from
    S3; the FSx CSI driver add-on (controller on the system nodes; its node plugin tolerates every
    taint, GPU nodes included); and per namespace a PersistentVolume pre-bound to a
    ``ReadWriteMany`` claim (``Retain``: deleting a claim never deletes weights)."""

    file_system_id: pulumi.Output[str]
    claim_name: str

    def __init__(self, name: str, args: LustreModelCacheArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, LustreModelCacheArgs, name=TYPE)
        for key in ("cluster_name", "vpc_id", "subnet_id"):
            if args.get(key) is None:
                raise ValueError(f"{TYPE}: {key} is required")
        cidrs = check_client_cidrs(args.get("client_cidrs"), "client_cidrs", name=TYPE)
        namespaces = check_namespaces(args.get("namespaces", []), name=TYPE)
        claim_name = require_dns_label(args.get("claim_name", "model-weights"), "claim_name", name=TYPE, what="valid object name")
        capacity = args.get("storage_capacity_gib", 1200)
        if not isinstance(capacity, int) or isinstance(capacity, bool) or not (capacity == 1200 or (capacity > 0 and capacity % 2400 == 0)):
            raise ValueError(f"{TYPE}: storage_capacity_gib must be 1200 or a multiple of 2400 (PERSISTENT_2), got {capacity!r}")
        throughput = require_one_of(args.get("throughput_per_tib", 250), "throughput_per_tib", THROUGHPUTS_PER_TIB, name=TYPE)
        s3_path = args.get("s3_import_path")
        if s3_path is not None and (not isinstance(s3_path, str) or not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?", s3_path)):
            raise ValueError(f"{TYPE}: s3_import_path must look like 's3://bucket/prefix', got {s3_path!r}")
        addon_version = pinned_addon_version(args.get("addon_version"), args.get("kubernetes_version"),
                                             FSX_CSI_ADDON_VERSIONS, addon_name=FSX_CSI_ADDON, name=TYPE)
        tags = dict(args.get("tags", {}))
        wait_for = list(args.get("wait_for", []))

        super().__init__(TYPE, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)

        def lustre_rules(peer: dict) -> list[dict]:
            return [{"protocol": "tcp", "from_port": low, "to_port": high, **peer} for low, high in LUSTRE_PORTS]

        security_group = aws.ec2.SecurityGroup(
            f"{name}-lustre-sg",
            description="FSx for Lustre model cache: Lustre from the cluster network and among its servers",
            vpc_id=args["vpc_id"],
            ingress=lustre_rules({"cidr_blocks": cidrs}) + lustre_rules({"self": True}),
            egress=lustre_rules({"cidr_blocks": cidrs}) + lustre_rules({"self": True}),
            tags={**tags, "Name": f"{name}-model-cache-lustre"},
            opts=child,
        )
        file_system = aws.fsx.LustreFileSystem(
            f"{name}-fs",
            deployment_type="PERSISTENT_2",
            storage_type="SSD",
            storage_capacity=capacity,
            per_unit_storage_throughput=throughput,
            data_compression_type="LZ4",
            file_system_type_version="2.15",
            subnet_ids=args["subnet_id"],
            security_group_ids=[security_group.id],
            kms_key_id=args.get("kms_key_arn"),
            tags={**tags, "Name": f"{name}-model-cache"},
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        if s3_path is not None:
            aws.fsx.DataRepositoryAssociation(
                f"{name}-s3",
                file_system_id=file_system.id,
                file_system_path="/s3",
                data_repository_path=s3_path,
                batch_import_meta_data_on_create=True,
                s3={"auto_import_policy": {"events": ["NEW", "CHANGED", "DELETED"]}},
                tags=tags,
                opts=child,
            )
        addon = csi_driver_addon(
            f"{name}-fsx-csi",
            cluster_name=args["cluster_name"],
            addon_name=FSX_CSI_ADDON,
            addon_version=addon_version,
            # Static volumes only: the controller calls no AWS API, so it needs no IAM role.
            tags=tags,
            parent=self,
        )
        for namespace in namespaces:
            volume_name = f"{claim_name}-{namespace}"
            volume = k8s.core.v1.PersistentVolume(
                f"{name}-{namespace}-volume",
                metadata={"name": volume_name, "labels": dict(MANAGED_BY)},
                spec={
                    "capacity": {"storage": f"{capacity}Gi"},
                    "volumeMode": "Filesystem",
                    "accessModes": ["ReadWriteMany"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    "mountOptions": ["flock"],
                    # Reserved for this namespace's claim: no other claim can take the volume.
                    "claimRef": {"namespace": namespace, "name": claim_name},
                    "csi": {
                        "driver": FSX_CSI_DRIVER,
                        "volumeHandle": file_system.id,
                        "volumeAttributes": {"dnsname": file_system.dns_name, "mountname": file_system.mount_name},
                    },
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[addon]),
            )
            model_weights_claim(
                f"{name}-{namespace}-claim",
                claim_name=claim_name,
                namespace=namespace,
                spec={"storageClassName": "", "volumeName": volume_name, "resources": {"requests": {"storage": f"{capacity}Gi"}}},
                parent=self,
                depends_on=[volume, *wait_for],
            )

        self.file_system_id = file_system.id
        self.claim_name = claim_name
        self.register_outputs({"file_system_id": self.file_system_id})
