"""``ModelCache``: exact children, encryption and protection, NFS reachable from the cluster network
only, the driver's IRSA role, the StorageClass and one ReadWriteMany claim per namespace."""

from __future__ import annotations

import json

import pytest

from gpufleet.components.model_cache import ModelCache
from tests.harness import child_types

COMPONENT = "gpufleet:model_cache:ModelCache"
OIDC_URL = "oidc.eks.us-west-2.amazonaws.com/id/ABC123"
BASE = {
    "cluster_name": "gpu-test",
    "oidc_provider_arn": f"arn:aws:iam::123456789012:oidc-provider/{OIDC_URL}",
    "oidc_provider_url": f"https://{OIDC_URL}",
    "vpc_id": "vpc-0123",
    "subnet_ids": ["subnet-a", "subnet-b", "subnet-c"],
    "nfs_client_cidrs": ["10.40.0.0/16"],
    "namespaces": ["serving", "research"],
    "kubernetes_version": "1.35",
}


def cache(**overrides):
    def program():
        ModelCache("cache", {**BASE, **overrides})
    return program


def test_children_are_exact(run):
    recording = run(cache())
    assert child_types(recording, COMPONENT, name_prefix="cache-") == {
        "aws:efs/fileSystem:FileSystem": 1,
        "aws:efs/fileSystemPolicy:FileSystemPolicy": 1,
        "aws:ec2/securityGroup:SecurityGroup": 1,
        "aws:efs/mountTarget:MountTarget": 3,
        "aws:iam/role:Role": 1,
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment": 1,
        "aws:eks/addon:Addon": 1,
        "kubernetes:storage.k8s.io/v1:StorageClass": 1,
        "kubernetes:core/v1:PersistentVolumeClaim": 2,
    }


def test_file_system_is_encrypted_elastic_and_protected(run):
    fs = run(cache()).one("aws:efs/fileSystem:FileSystem")
    assert fs.protect is True
    assert fs.inputs["encrypted"] is True
    assert fs.inputs["throughputMode"] == "elastic"
    assert "kmsKeyId" not in fs.inputs


def test_customer_kms_key_is_used_when_given(run):
    key = "arn:aws:kms:us-west-2:123456789012:key/abc"
    assert run(cache(kms_key_arn=key)).one("aws:efs/fileSystem:FileSystem").inputs["kmsKeyId"] == key


def test_file_system_policy_allows_mount_and_write_via_mount_targets_over_tls_only(run):
    recording = run(cache())
    arn = recording.one("aws:efs/fileSystem:FileSystem").outputs["arn"]
    policy = json.loads(recording.one("aws:efs/fileSystemPolicy:FileSystemPolicy").inputs["policy"])
    # A Deny alone would refuse every mount of the CSI driver (no IAM mount option): once a policy
    # exists, anonymous clients may do only what it allows. No ClientRootAccess: access points are non-root.
    assert policy["Statement"] == [
        {
            "Sid": "AllowMountAndWriteViaMountTargets",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
            "Resource": arn,
            "Condition": {"Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"}},
        },
        {
            "Sid": "DenyUnencryptedTransport",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "*",
            "Resource": arn,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    ]


def test_one_mount_target_per_subnet_behind_the_nfs_security_group(run):
    recording = run(cache())
    fs = recording.one("aws:efs/fileSystem:FileSystem")
    group = recording.one("aws:ec2/securityGroup:SecurityGroup")
    targets = recording.of_type("aws:efs/mountTarget:MountTarget")
    assert sorted(t.inputs["subnetId"] for t in targets) == ["subnet-a", "subnet-b", "subnet-c"]
    assert all(t.inputs["fileSystemId"] == fs.id and t.inputs["securityGroups"] == [group.id] for t in targets)


def test_security_group_allows_only_nfs_from_the_cluster_network(run):
    group = run(cache()).one("aws:ec2/securityGroup:SecurityGroup").inputs
    assert group["vpcId"] == "vpc-0123"
    (rule,) = group["ingress"]
    assert (rule["protocol"], rule["fromPort"], rule["toPort"], rule["cidrBlocks"]) == ("tcp", 2049, 2049, ["10.40.0.0/16"])
    assert group["egress"] == []


def test_driver_role_trusts_only_the_controller_service_account(run):
    recording = run(cache())
    trust = json.loads(recording.one("aws:iam/role:Role").inputs["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Federated": BASE["oidc_provider_arn"]}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {"StringEquals": {
        f"{OIDC_URL}:sub": "system:serviceaccount:kube-system:efs-csi-controller-sa",
        f"{OIDC_URL}:aud": "sts.amazonaws.com",
    }}
    attachment = recording.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment").inputs
    assert attachment["policyArn"] == "arn:aws:iam::aws:policy/service-role/AmazonEFSCSIDriverPolicy"


def test_addon_uses_the_role_and_keeps_its_controller_on_system_nodes(run):
    recording = run(cache(addon_version="v2.1.4-eksbuild.1"))
    addon = recording.one("aws:eks/addon:Addon")
    role = recording.one("aws:iam/role:Role")
    attachment = recording.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert addon.inputs["addonName"] == "aws-efs-csi-driver"
    assert addon.inputs["addonVersion"] == "v2.1.4-eksbuild.1"
    assert addon.inputs["clusterName"] == "gpu-test"
    assert addon.inputs["serviceAccountRoleArn"] == role.outputs["arn"]
    assert json.loads(addon.inputs["configurationValues"]) == {"controller": {"nodeSelector": {"gpufleet.io/node-role": "system"}}}
    assert attachment.urn in addon.dependencies


def test_storage_class_provisions_access_points_on_the_file_system(run):
    recording = run(cache())
    fs = recording.one("aws:efs/fileSystem:FileSystem")
    sc = recording.one("kubernetes:storage.k8s.io/v1:StorageClass").inputs
    assert sc["metadata"]["name"] == "gpufleet-model-cache"
    assert sc["provisioner"] == "efs.csi.aws.com"
    assert sc["parameters"]["provisioningMode"] == "efs-ap"
    assert sc["parameters"]["fileSystemId"] == fs.id
    assert sc["reclaimPolicy"] == "Retain"
    assert sc["mountOptions"] == ["tls"]


def test_each_namespace_gets_a_read_write_many_claim(run):
    recording = run(cache(claim_name="weights", claim_size="2Ti"))
    addon = recording.one("aws:eks/addon:Addon")
    targets = {t.urn for t in recording.of_type("aws:efs/mountTarget:MountTarget")}
    claims = recording.of_type("kubernetes:core/v1:PersistentVolumeClaim")
    assert sorted(c.inputs["metadata"]["namespace"] for c in claims) == ["research", "serving"]
    for claim in claims:
        assert claim.inputs["metadata"]["name"] == "weights"
        assert claim.inputs["spec"] == {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "gpufleet-model-cache",
            "resources": {"requests": {"storage": "2Ti"}},
        }
        assert targets | {addon.urn} <= set(claim.dependencies)


def test_claims_wait_for_the_given_resources(run):
    def program():
        import pulumi_kubernetes as k8s

        namespace = k8s.core.v1.Namespace("serving", metadata={"name": "serving"})
        ModelCache("cache", {**BASE, "namespaces": ["serving"], "wait_for": [namespace]})

    recording = run(program)
    namespace = recording.one("kubernetes:core/v1:Namespace")
    assert namespace.urn in recording.one("kubernetes:core/v1:PersistentVolumeClaim").dependencies


def test_without_namespaces_there_is_no_claim(run):
    assert run(cache(namespaces=[])).of_type("kubernetes:core/v1:PersistentVolumeClaim") == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cluster_name": None}, "cluster_name is required"),
        ({"oidc_provider_url": None}, "oidc_provider_url is required"),
        ({"subnet_ids": []}, "subnet_ids must name 1 to 6 subnets"),
        ({"nfs_client_cidrs": []}, "nfs_client_cidrs must name at least one network"),
        ({"nfs_client_cidrs": ["10.0.0.1/16"]}, r"nfs_client_cidrs\[0\] is not an IPv4 CIDR"),
        ({"nfs_client_cidrs": ["0.0.0.0/0"]}, r"nfs_client_cidrs\[0\] \(0.0.0.0/0\) is not a private network"),
        ({"namespaces": ["Team_A"]}, r"namespaces\[0\] is not a namespace name"),
        ({"namespaces": ["ml", "ml"]}, "namespaces repeats"),
        ({"claim_name": "Weights"}, "claim_name is not a valid object name"),
        ({"claim_size": "lots"}, "claim_size must be a quantity"),
        ({"throughput_mode": "provisioned"}, "throughput_mode must be one of"),
        ({"kubernetes_version": None}, "kubernetes_version is required to pick the pinned aws-efs-csi-driver add-on version"),
        ({"kubernetes_version": "1.28"}, "kubernetes_version '1.28' has no pinned aws-efs-csi-driver add-on version"),
        ({"addon_version": "2.1"}, "addon_version must be an EKS add-on version"),
    ],
)
def test_argument_errors_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=f"^{COMPONENT}: {message}"):
        ModelCache("cache", {**BASE, **overrides})


def test_csi_addon_version_is_pinned_per_kubernetes_version_and_overridable(run):
    """EKS would otherwise install its default for the cluster version, which changes under the stack."""
    from gpufleet.components.model_cache import EFS_CSI_ADDON_VERSIONS
    from gpufleet.infra.config import EKS_SUPPORTED_VERSIONS

    assert set(EFS_CSI_ADDON_VERSIONS) == set(EKS_SUPPORTED_VERSIONS)
    for version in EKS_SUPPORTED_VERSIONS:
        addon = run(cache(kubernetes_version=version)).one("aws:eks/addon:Addon").inputs
        assert addon["addonVersion"] == EFS_CSI_ADDON_VERSIONS[version]
        assert addon["addonVersion"].startswith("v") and "-eksbuild." in addon["addonVersion"]
    override = run(cache(addon_version="v2.1.4-eksbuild.1", kubernetes_version=None)).one("aws:eks/addon:Addon")
    assert override.inputs["addonVersion"] == "v2.1.4-eksbuild.1"


def test_stack_config_pins_the_addon_for_its_kubernetes_version_and_checks_an_override():
    from gpufleet.components.model_cache import EFS_CSI_ADDON_VERSIONS
    from gpufleet.infra.config import ConfigError, parse_stack_config
    from tests.harness import stack_config, with_config

    prod = stack_config("prod")
    parsed = parse_stack_config(prod)
    assert parsed.model_cache.addon_version is None and parsed.kubernetes_version in EFS_CSI_ADDON_VERSIONS
    section = json.loads(prod["gpufleet:modelCache"])
    override = parse_stack_config(with_config(prod, "modelCache", {**section, "addonVersion": "v3.4.2-eksbuild.1"}))
    assert override.model_cache.addon_version == "v3.4.2-eksbuild.1"
    with pytest.raises(ConfigError, match=r"gpufleet:modelCache\.addonVersion: String should match pattern"):
        parse_stack_config(with_config(prod, "modelCache", {**section, "addonVersion": "latest"}))


def test_prod_plan_installs_the_pinned_efs_addon(run):
    from gpufleet.components.model_cache import EFS_CSI_ADDON_VERSIONS
    from gpufleet.infra.program import build
    from gpufleet.infra.config import parse_stack_config
    from tests.harness import stack_config

    config = parse_stack_config(stack_config("prod"))
    recording = run(lambda: build(config, "prod"))
    (addon,) = recording.of_type("aws:eks/addon:Addon")
    assert (addon.inputs["addonName"], addon.inputs["addonVersion"]) == ("aws-efs-csi-driver", EFS_CSI_ADDON_VERSIONS["1.35"])
