"""``LustreModelCache``: exact children, protection, encryption, Lustre ports from the cluster network
only, S3 import, and a pre-bound ReadWriteMany volume per namespace."""

from __future__ import annotations

import pytest

from gpufleet.components.lustre_cache import LustreModelCache
from tests.harness import child_types

COMPONENT = "gpufleet:model_cache:LustreModelCache"
FS = "aws:fsx/lustreFileSystem:LustreFileSystem"
BASE = {
    "cluster_name": "gpu-test",
    "vpc_id": "vpc-0123",
    "subnet_id": "subnet-a",
    "client_cidrs": ["10.40.0.0/16"],
    "namespaces": ["serving", "research"],
    "kubernetes_version": "1.35",
}


def cache(**overrides):
    def program():
        LustreModelCache("lustre", {**BASE, **overrides})
    return program


def test_children_are_exact(run):
    recording = run(cache(s3_import_path="s3://weights-bucket/models"))
    assert child_types(recording, COMPONENT, name_prefix="lustre-") == {
        "aws:ec2/securityGroup:SecurityGroup": 1,
        FS: 1,
        "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation": 1,
        "aws:eks/addon:Addon": 1,
        "kubernetes:core/v1:PersistentVolume": 2,
        "kubernetes:core/v1:PersistentVolumeClaim": 2,
    }


def test_file_system_is_persistent_protected_and_in_the_security_group(run):
    recording = run(cache(storage_capacity_gib=4800, throughput_per_tib=500))
    fs = recording.one(FS)
    group = recording.one("aws:ec2/securityGroup:SecurityGroup")
    assert fs.protect is True
    assert (fs.inputs["deploymentType"], fs.inputs["storageCapacity"], fs.inputs["perUnitStorageThroughput"]) == ("PERSISTENT_2", 4800, 500)
    assert fs.inputs["subnetIds"] == "subnet-a"
    assert fs.inputs["securityGroupIds"] == [group.id]


def test_security_group_opens_only_lustre_ports(run):
    group = run(cache()).one("aws:ec2/securityGroup:SecurityGroup").inputs
    ports = {(r["fromPort"], r["toPort"]) for r in group["ingress"]}
    assert ports == {(988, 988), (1018, 1023)}
    assert all(r["protocol"] == "tcp" for r in group["ingress"] + group["egress"])
    assert [r["cidrBlocks"] for r in group["ingress"] if "cidrBlocks" in r] == [["10.40.0.0/16"]] * 2
    assert sum(1 for r in group["ingress"] if r.get("self")) == 2


def test_s3_import_is_automatic(run):
    recording = run(cache(s3_import_path="s3://weights-bucket/models"))
    association = recording.one("aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation").inputs
    assert association["dataRepositoryPath"] == "s3://weights-bucket/models"
    assert association["s3"]["autoImportPolicy"]["events"] == ["NEW", "CHANGED", "DELETED"]


def test_each_namespace_gets_a_volume_bound_to_its_claim(run):
    recording = run(cache())
    fs = recording.one(FS)
    volumes = {v.inputs["metadata"]["name"]: v for v in recording.of_type("kubernetes:core/v1:PersistentVolume")}
    assert set(volumes) == {"model-weights-serving", "model-weights-research"}
    spec = volumes["model-weights-serving"].inputs["spec"]
    assert spec["accessModes"] == ["ReadWriteMany"]
    assert spec["persistentVolumeReclaimPolicy"] == "Retain"
    assert spec["claimRef"] == {"namespace": "serving", "name": "model-weights"}
    assert spec["csi"] == {"driver": "fsx.csi.aws.com", "volumeHandle": fs.id,
                           "volumeAttributes": {"dnsname": fs.outputs["dnsName"], "mountname": fs.outputs["mountName"]}}
    claim = next(c for c in recording.of_type("kubernetes:core/v1:PersistentVolumeClaim") if c.inputs["metadata"]["namespace"] == "serving")
    assert claim.inputs["spec"]["volumeName"] == "model-weights-serving"
    assert claim.inputs["spec"]["storageClassName"] == ""
    assert volumes["model-weights-serving"].urn in claim.dependencies


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"subnet_id": None}, "subnet_id is required"),
        ({"client_cidrs": []}, "client_cidrs must name at least one network"),
        ({"storage_capacity_gib": 2000}, "storage_capacity_gib must be 1200 or a multiple of 2400"),
        ({"throughput_per_tib": 200}, "throughput_per_tib must be one of"),
        ({"s3_import_path": "bucket/models"}, "s3_import_path must look like"),
        ({"namespaces": ["a", "a"]}, "namespaces repeats"),
        ({"kubernetes_version": None}, "kubernetes_version is required to pick the pinned aws-fsx-csi-driver add-on version"),
        ({"kubernetes_version": "1.20"}, "kubernetes_version '1.20' has no pinned aws-fsx-csi-driver add-on version"),
        ({"addon_version": "latest"}, "addon_version must be an EKS add-on version"),
    ],
)
def test_argument_errors_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=f"^{COMPONENT}: {message}"):
        LustreModelCache("lustre", {**BASE, **overrides})


def test_csi_addon_version_is_pinned_per_kubernetes_version_and_overridable(run):
    """EKS would otherwise install its default for the cluster version, which changes under the stack."""
    from gpufleet.components.lustre_cache import FSX_CSI_ADDON_VERSIONS
    from gpufleet.infra.config import EKS_SUPPORTED_VERSIONS

    assert set(FSX_CSI_ADDON_VERSIONS) == set(EKS_SUPPORTED_VERSIONS)
    addon = run(cache()).one("aws:eks/addon:Addon").inputs
    assert (addon["addonName"], addon["addonVersion"]) == ("aws-fsx-csi-driver", FSX_CSI_ADDON_VERSIONS["1.35"])
    pinned = run(cache(addon_version="v1.3.0-eksbuild.2", kubernetes_version=None)).one("aws:eks/addon:Addon")
    assert pinned.inputs["addonVersion"] == "v1.3.0-eksbuild.2"
