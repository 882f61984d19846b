"""``S3ModelCache``: model weights in an S3 bucket, mounted through the Mountpoint for Amazon S3 CSI driver.

S3 is the cheapest home for large weights and needs no file system to size, but Mountpoint is not a
POSIX file system: it reads fast and sequentially writes *new* files, but cannot rename files or
modify them in place. So every namespace gets two statically provisioned volumes over the same
prefix of one bucket (``<namespace>/``):

- ``<claim_name>`` (``ReadOnlyMany``, Mountpoint ``read-only``): what predictors and other readers
  mount;
- ``<claim_name>-writer`` (``ReadWriteMany``, ``allow-overwrite``/``allow-delete``): for a Job that
  uploads weights by writing each file once, sequentially (``cp``, ``aws s3 cp`` semantics), never a
  tool that writes to a temporary name and renames it (``hf download --local-dir`` does).

The bucket is encrypted (SSE-S3, or SSE-KMS with a bucket key), blocks every form of public access,
enforces bucket-owner object ownership, refuses requests that do not use TLS, and is protected from
deletion. The driver is the ``aws-mountpoint-s3-csi-driver`` EKS add-on at a version pinned per
Kubernetes version (:data:`S3_CSI_ADDON_VERSIONS`); its node service account gets a role, through
IRSA or EKS Pod Identity, allowed to list the bucket and read and write its objects: the credentials
are the driver's (``authenticationSource: driver``), so the ``read-only`` mount option, not IAM,
keeps readers from writing.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Optional, Sequence, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from gpufleet.components._file_cache import CLAIM_LABELS, check_namespaces, csi_driver_addon, model_weights_claim, pinned_addon_version
from gpufleet.components._k8s import require_dns_label
from gpufleet.components._validate import check_arg_keys
from gpufleet.components.gpu_pod import DEFAULT_USER_ID
from gpufleet.components.workload_identity import WorkloadIdentity, check_identity, workload_role

TYPE = "gpufleet:s3_model_cache:S3ModelCache"

S3_CSI_ADDON = "aws-mountpoint-s3-csi-driver"
S3_CSI_DRIVER = "s3.csi.aws.com"
S3_CSI_NAMESPACE = "kube-system"
S3_CSI_SERVICE_ACCOUNT = "s3-csi-driver-sa"
"""The service account of the driver's node DaemonSet, whose credentials the Mountpoint pods use
(driver-level credentials): the only identity the role is given to."""

S3_CSI_ADDON_VERSIONS: Mapping[str, str] = {
    "1.32": "v2.7.0-eksbuild.1",
    "1.33": "v2.7.0-eksbuild.1",
    "1.34": "v2.7.0-eksbuild.1",
    "1.35": "v2.7.0-eksbuild.1",
    "1.36": "v2.7.0-eksbuild.1",
}
"""The ``aws-mountpoint-s3-csi-driver`` add-on version gpufleet installs per EKS Kubernetes minor version.

Source: the driver's release notes (awslabs/mountpoint-s3-csi-driver ``CHANGELOG.md``: v2.7.0, the
newest release; v2.5.0 dropped Kubernetes 1.29, and the chart needs 1.29 or later, so every EKS
version gpufleet supports is covered) and its Helm chart at that release (``node`` DaemonSet
tolerating all taints, ``controller.nodeSelector``), as the first EKS build of that release. Check a
row, or pick a newer build, with ``aws eks describe-addon-versions --addon-name
aws-mountpoint-s3-csi-driver --kubernetes-version <minor> --query
'addons[].addonVersions[].addonVersion'``; a stack overrides it with ``gpufleet:modelCache.addonVersion``."""

MOUNTPOINT_OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject")
"""Mountpoint's object permissions for reading and writing (mountpoint-s3 ``doc/CONFIGURATION.md``,
"IAM permissions"); ``s3:ListBucket`` on the bucket comes with them."""

WRITER_SUFFIX = "-writer"
_QUANTITY = re.compile(r"^[1-9]\d*(Mi|Gi|Ti)$")


class S3ModelCacheArgs(TypedDict):
    """Inputs of :class:`S3ModelCache`."""

    cluster_name: pulumi.Input[str]
    """EKS cluster that gets the Mountpoint CSI add-on. Required."""
    kubernetes_version: NotRequired[str]
    """The cluster's Kubernetes minor version: picks the add-on version from
    :data:`S3_CSI_ADDON_VERSIONS`. Required unless ``addon_version`` is given."""
    addon_version: NotRequired[str]
    """Add-on version instead of the pinned one, e.g. ``v2.7.0-eksbuild.1``. Default the pinned one."""
    workload_identity: NotRequired[WorkloadIdentity]
    """How the driver gets its credentials: ``irsa`` or ``podIdentity``. Default ``irsa``."""
    oidc_provider_arn: NotRequired[pulumi.Input[str]]
    """The cluster's IAM OIDC provider. Required with ``irsa``."""
    oidc_provider_url: NotRequired[pulumi.Input[str]]
    """The cluster's OIDC issuer. Required with ``irsa``."""
    namespaces: NotRequired[Sequence[str]]
    """Namespaces that get the read-only claim and the writer claim. Default none."""
    wait_for: NotRequired[Sequence[pulumi.Resource]]
    """Resources the claims wait for, e.g. the Namespace objects. Default none."""
    claim_name: NotRequired[str]
    """Name of the read-only claim in each namespace (the writer claim is ``<claim_name>-writer``).
    Default ``model-weights``."""
    claim_size: NotRequired[str]
    """Size the volumes and claims state (S3 has no size: required by Kubernetes, counts against the
    namespace's storage quota). Default ``500Gi``."""
    kms_key_arn: NotRequired[pulumi.Input[str]]
    """Customer managed KMS key for SSE-KMS (with an S3 bucket key); the driver's role may use it.
    Default SSE-S3 (AES-256, keys managed by S3)."""
    tags: NotRequired[Mapping[str, str]]
    """Extra tags for every AWS resource. Default none."""


class S3ModelCache(pulumi.ComponentResource):
    """An encrypted, deletion-protected S3 bucket (public access blocked, TLS-only bucket policy,
    bucket-owner-enforced ownership) mounted through the Mountpoint for Amazon S3 CSI add-on (pinned
    version, role through IRSA or EKS Pod Identity, controller on the system nodes): per namespace a
    statically provisioned ``ReadOnlyMany`` volume and claim (``read-only`` mount) and a
    ``ReadWriteMany`` writer volume and claim over the same ``<namespace>/`` prefix."""

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    claim_name: str
    writer_claim_name: str

    def __init__(self, name: str, args: S3ModelCacheArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, S3ModelCacheArgs, name=TYPE)
        if args.get("cluster_name") is None:
            raise ValueError(f"{TYPE}: cluster_name is required")
        identity = check_identity(args.get("workload_identity", "irsa"), name=TYPE,
                                  oidc_provider_arn=args.get("oidc_provider_arn"),
                                  oidc_provider_url=args.get("oidc_provider_url"))
        namespaces = check_namespaces(args.get("namespaces", []), name=TYPE)
        claim_name = require_dns_label(args.get("claim_name", "model-weights"), "claim_name", name=TYPE, what="valid object name")
        if len(claim_name) + len(WRITER_SUFFIX) > 63:
            raise ValueError(f"{TYPE}: claim_name must leave room for the {WRITER_SUFFIX!r} suffix (at most "
                             f"{63 - len(WRITER_SUFFIX)} characters), got {claim_name!r}")
        claim_size = args.get("claim_size", "500Gi")
        if not isinstance(claim_size, str) or not _QUANTITY.match(claim_size):
            raise ValueError(f"{TYPE}: claim_size must be a quantity like '500Gi', got {claim_size!r}")
        addon_version = pinned_addon_version(args.get("addon_version"), args.get("kubernetes_version"),
                                             S3_CSI_ADDON_VERSIONS, addon_name=S3_CSI_ADDON, name=TYPE)
        kms_key_arn = args.get("kms_key_arn")
        tags = dict(args.get("tags", {}))
        wait_for = list(args.get("wait_for", []))

        super().__init__(TYPE, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region

        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket_prefix=f"{name}-"[:37],
            force_destroy=False,
            tags={**tags, "Name": f"{name}-model-cache"},
            # The weights of every served model live here: never deleted by an update.
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[{
                "apply_server_side_encryption_by_default": (
                    {"sse_algorithm": "aws:kms", "kms_master_key_id": kms_key_arn} if kms_key_arn
                    else {"sse_algorithm": "AES256"}
                ),
                "bucket_key_enabled": bool(kms_key_arn),
            }],
            opts=child,
        )
        public_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child,
        )
        policy = aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket.id,
            policy=bucket.arn.apply(tls_only_bucket_policy),
            # S3 refuses a policy while the public access block is being changed.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_block]),
        )

        role, association = workload_role(
            f"{name}-s3-csi-role",
            identity=identity,
            cluster_name=args["cluster_name"],
            oidc_provider_arn=args.get("oidc_provider_arn"),
            oidc_provider_url=args.get("oidc_provider_url"),
            namespace=S3_CSI_NAMESPACE,
            service_account=S3_CSI_SERVICE_ACCOUNT,
            description="Mountpoint for Amazon S3 CSI driver: reads and writes the model-weights bucket",
            tags=tags,
            parent=self,
        )
        role_policy = aws.iam.RolePolicy(
            f"{name}-s3-csi-access",
            role=role.id,
            policy=pulumi.Output.all(bucket.arn, kms_key_arn).apply(lambda a: mountpoint_policy(a[0], a[1])),
            opts=child,
        )
        addon = csi_driver_addon(
            f"{name}-s3-csi",
            cluster_name=args["cluster_name"],
            addon_name=S3_CSI_ADDON,
            addon_version=addon_version,
            service_account_role_arn=role.arn if identity == "irsa" else None,
            tags=tags,
            parent=self,
            depends_on=[role_policy, *([association] if association is not None else [])],
        )

        ready = [addon, encryption, policy, ownership, *wait_for]
        for namespace in namespaces:
            for writer in (False, True):
                claim = f"{claim_name}{WRITER_SUFFIX if writer else ''}"
                volume_name = f"{name}-{namespace}-{claim}"
                volume = k8s.core.v1.PersistentVolume(
                    f"{name}-{namespace}-{'writer' if writer else 'reader'}-pv",
                    metadata={"name": volume_name, "labels": dict(CLAIM_LABELS)},
                    spec={
                        "capacity": {"storage": claim_size},
                        "accessModes": ["ReadWriteMany" if writer else "ReadOnlyMany"],
                        "persistentVolumeReclaimPolicy": "Retain",
                        "storageClassName": "",
                        "claimRef": {"namespace": namespace, "name": claim},
                        "mountOptions": region.apply(lambda r, ns=namespace, w=writer: mount_options(r, ns, writer=w)),
                        "csi": {
                            "driver": S3_CSI_DRIVER,
                            # Unique per volume: the kubelet handles one volume per handle.
                            "volumeHandle": volume_name,
                            "volumeAttributes": {"bucketName": bucket.bucket},
                        },
                    },
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[addon]),
                )
                model_weights_claim(
                    f"{name}-{namespace}-{'writer' if writer else 'reader'}-claim",
                    claim_name=claim,
                    namespace=namespace,
                    spec={
                        "accessModes": ["ReadWriteMany" if writer else "ReadOnlyMany"],
                        "storageClassName": "",
                        "volumeName": volume.metadata.name,
                        "resources": {"requests": {"storage": claim_size}},
                    },
                    parent=self,
                    depends_on=[volume, *ready],
                )

        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.claim_name = claim_name
        self.writer_claim_name = f"{claim_name}{WRITER_SUFFIX}"
        self.register_outputs({"bucket_name": self.bucket_name, "bucket_arn": self.bucket_arn})


def mount_options(region: str, namespace: str, *, writer: bool) -> list[str]:
    """Mountpoint flags of a namespace's volume: its region and prefix; readable by the pods' non-root
    user (``allow-other``, owned by :data:`~gpufleet.components.gpu_pod.DEFAULT_USER_ID`); the reader
    ``read-only``, the writer allowed to replace and delete the files it uploads."""
    options = [f"region {region}", f"prefix {namespace}/", "allow-other",
               f"uid={DEFAULT_USER_ID}", f"gid={DEFAULT_USER_ID}"]
    return options + (["allow-overwrite", "allow-delete"] if writer else ["read-only"])


def mountpoint_policy(bucket_arn: str, kms_key_arn: Optional[str] = None) -> str:
    """The driver role's inline policy: list this bucket, read and write its objects (and use the
    bucket's KMS key when it has one); nothing else."""
    statements: list[dict[str, Any]] = [
        {"Sid": "ListBucket", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn},
        {"Sid": "ReadWriteObjects", "Effect": "Allow", "Action": list(MOUNTPOINT_OBJECT_ACTIONS),
         "Resource": f"{bucket_arn}/*"},
    ]
    if kms_key_arn:
        statements.append({"Sid": "BucketKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                           "Resource": kms_key_arn})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def tls_only_bucket_policy(bucket_arn: str) -> str:
    """Deny every request to the bucket and its objects that does not use TLS."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    })
