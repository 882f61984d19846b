"""``Cluster``: exact children, security-relevant inputs (KMS, endpoint, logging, IMDS), errors."""

from __future__ import annotations

import json
from collections import Counter

import pulumi
import pytest

from gpufleet.components import Cluster
from gpufleet.components.cluster import cpu_architecture

COMPONENT = "gpufleet:cluster:Cluster"
BASE = {
    "cluster_name": "gpu-test",
    "kubernetes_version": "1.35",
    "vpc_id": "vpc-0123",
    "private_subnet_ids": ["subnet-a", "subnet-b"],
}


def cluster(**overrides):
    def program():
        c = Cluster("k", {**BASE, **overrides})
        pulumi.export("kubeconfig", c.kubeconfig)
        pulumi.export("clusterName", c.cluster_name)
    return program


def test_children_are_exact(run):
    recording = run(cluster())
    component = recording.one(COMPONENT)
    children = recording.children(component.urn)
    assert Counter(c.type for c in children) == {
        "aws:kms/key:Key": 1,
        "aws:kms/alias:Alias": 1,
        "eks:index:Cluster": 1,
        "aws:iam/role:Role": 1,
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment": 4,
        "aws:ec2/launchTemplate:LaunchTemplate": 1,
        "aws:eks/nodeGroup:NodeGroup": 1,
        "pulumi:providers:kubernetes": 1,
    }
    assert all(c.name.startswith("k-") for c in children)


def test_secrets_key_is_rotated_protected_and_used(run):
    recording = run(cluster())
    key = recording.one("aws:kms/key:Key")
    assert key.protect is True
    assert key.inputs["enableKeyRotation"] is True
    assert key.inputs["deletionWindowInDays"] == 30
    eks = recording.one("eks:index:Cluster")
    assert eks.inputs["encryptionConfigKeyArn"] == key.outputs["arn"]
    assert key.urn in eks.dependencies


def test_without_secrets_encryption_there_is_no_key(run):
    recording = run(cluster(secrets_encryption=False))
    assert recording.of_type("aws:kms/key:Key") == []
    assert "encryptionConfigKeyArn" not in recording.one("eks:index:Cluster").inputs


def test_eks_cluster_inputs(run):
    recording = run(cluster())
    inputs = recording.one("eks:index:Cluster").inputs
    assert inputs["name"] == "gpu-test"
    assert inputs["version"] == "1.35"
    assert inputs["skipDefaultNodeGroup"] is True
    assert inputs["createInstanceRole"] is False
    assert inputs["authenticationMode"] == "API"
    assert inputs["createOidcProvider"] is True
    assert inputs["endpointPrivateAccess"] is True
    assert inputs["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in inputs
    assert inputs["nodeAssociatePublicIpAddress"] is False
    assert inputs["enabledClusterLogTypes"] == ["api", "audit", "authenticator", "controllerManager", "scheduler"]


def test_public_endpoint_is_limited_to_the_given_cidrs(run):
    inputs = run(cluster(endpoint_public_access=True, public_access_cidrs=["198.51.100.0/24"])).one("eks:index:Cluster").inputs
    assert inputs["endpointPublicAccess"] is True
    assert inputs["publicAccessCidrs"] == ["198.51.100.0/24"]


def test_access_entries_map_to_eks_access_policies(run):
    entries = [
        {"principal_arn": "arn:aws:iam::111122223333:role/platform-admins"},
        {"principal_arn": "arn:aws:iam::111122223333:role/team/auditors", "access_policy": "view"},
    ]
    access = run(cluster(access_entries=entries)).one("eks:index:Cluster").inputs["accessEntries"]
    assert access == {
        "platform-admins": {
            "principalArn": "arn:aws:iam::111122223333:role/platform-admins",
            "type": "STANDARD",
            "accessPolicies": {"cluster-admin": {
                "policyArn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
                "accessScope": {"type": "cluster"},
            }},
        },
        "auditors": {
            "principalArn": "arn:aws:iam::111122223333:role/team/auditors",
            "type": "STANDARD",
            "accessPolicies": {"view": {
                "policyArn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy",
                "accessScope": {"type": "cluster"},
            }},
        },
    }


def test_system_nodes_enforce_imdsv2_and_encrypted_disks(run):
    recording = run(cluster(system_nodes={"disk_size_gib": 80}))
    template = recording.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    assert template["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1}
    (device,) = template["blockDeviceMappings"]
    assert device["ebs"] == {"volumeSize": 80, "volumeType": "gp3", "encrypted": "true", "deleteOnTermination": "true"}


def test_system_node_group_is_al2023_on_demand_in_private_subnets(run):
    recording = run(cluster(system_nodes={"instance_types": ["m7i.large"], "min_size": 2, "max_size": 5, "desired_size": 3}))
    group = recording.one("aws:eks/nodeGroup:NodeGroup")
    assert group.inputs["amiType"] == "AL2023_x86_64_STANDARD"
    assert group.inputs["capacityType"] == "ON_DEMAND"
    assert group.inputs["subnetIds"] == ["subnet-a", "subnet-b"]
    assert group.inputs["scalingConfig"] == {"minSize": 2, "maxSize": 5, "desiredSize": 3}
    assert group.inputs["labels"] == {"gpufleet.io/node-role": "system"}
    assert group.ignore_changes == ["scalingConfig.desiredSize"]
    template = recording.one("aws:ec2/launchTemplate:LaunchTemplate")
    assert group.inputs["launchTemplate"]["id"] == template.id
    # The node group waits for the control plane and for its role's policies.
    eks = recording.one("eks:index:Cluster")
    assert eks.urn in group.dependencies
    attachments = recording.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert {a.urn for a in attachments} <= set(group.dependencies)


def test_graviton_system_nodes_get_the_arm_ami(run):
    group = run(cluster(system_nodes={"instance_types": ["m7g.large", "c7gn.xlarge"]})).one("aws:eks/nodeGroup:NodeGroup")
    assert group.inputs["amiType"] == "AL2023_ARM_64_STANDARD"


def test_node_role_gets_exactly_the_worker_policies(run):
    recording = run(cluster())
    arns = sorted(a.inputs["policyArn"] for a in recording.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"))
    assert arns == [
        "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
        "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
        "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
    ]
    trust = json.loads(recording.one("aws:iam/role:Role").inputs["assumeRolePolicy"])
    assert trust["Statement"] == [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]


def test_policy_arns_follow_the_partition(run):
    recording = run(cluster(), region="us-gov-west-1")
    assert all(a.inputs["policyArn"].startswith("arn:aws-us-gov:iam::aws:policy/")
               for a in recording.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"))


def test_kubernetes_provider_uses_the_cluster_kubeconfig(run):
    recording = run(cluster())
    provider = recording.one("pulumi:providers:kubernetes")
    eks = recording.one("eks:index:Cluster")
    assert provider.inputs["kubeconfig"] == eks.outputs["kubeconfigJson"]
    assert eks.urn in provider.dependencies


def test_kubernetes_provider_waits_for_the_system_nodes(run):
    # Whatever is installed through the provider starts once controllers can run, and on destroy is
    # removed before the system nodes (Karpenter must outlive its NodePools).
    recording = run(cluster())
    provider = recording.one("pulumi:providers:kubernetes")
    node_group = recording.one("aws:eks/nodeGroup:NodeGroup")
    assert node_group.urn in provider.dependencies


def test_kubeconfig_output_is_secret(run):
    outputs = run(cluster()).stack_outputs
    assert outputs["kubeconfig"]["4dabf18193072939515e22adb298388d"] == "1b47061264138c4ac30d75fd1eb44270"
    assert outputs["clusterName"] == "gpu-test"


def test_deletion_protection_is_passed_through(run):
    assert run(cluster(deletion_protection=True)).one("eks:index:Cluster").inputs["deletionProtection"] is True


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cluster_name": None}, "cluster_name is required"),
        ({"kubernetes_version": "1.35.2"}, "kubernetes_version: Kubernetes 1.35.2 is not supported by EKS; use one of 1.32, "),
        ({"kubernetes_version": "1.29"}, "kubernetes_version: Kubernetes 1.29 is not supported by EKS"),
        ({"kubernetes_versoin": "1.35"}, "unknown argument 'kubernetes_versoin' \\(did you mean 'kubernetes_version'\\?\\)"),
        ({"vpc_id": None}, "vpc_id is required"),
        ({"endpoint_private_access": False}, "both false"),
        ({"endpoint_public_access": True}, "needs public_access_cidrs"),
        ({"public_access_cidrs": ["10.0.0.0/8"]}, "endpoint_public_access is false"),
        ({"endpoint_public_access": True, "public_access_cidrs": ["0.0.0.0/0"]}, "must not contain a /0"),
        ({"log_types": ["api", "kubelet"]}, "log_types\\[\\] must be one of"),
        ({"system_nodes": {"instance_types": ["m7i.large", "m7g.large"]}}, "mixes CPU architectures"),
        ({"system_nodes": {"instance_types": []}}, "at least one type"),
        ({"system_nodes": {"min_size": 3, "desired_size": 2}}, "min_size <= desired_size <= max_size"),
        ({"system_nodes": {"disk_size_gib": 5}}, "system_nodes.disk_size_gib must be an integer from 20"),
        ({"access_entries": [{"principal_arn": "me"}]}, "access_entries\\[0\\].principal_arn is not an IAM"),
        ({"access_entries": [{"principal_arn": "arn:aws:iam::111122223333:user/a", "access_policy": "god"}]}, "access_entries\\[0\\].access_policy must be one of"),
    ],
)
def test_argument_errors_name_the_field(overrides, message):
    with pytest.raises((ValueError, TypeError), match=message) as caught:
        Cluster("k", {**BASE, **overrides})
    assert str(caught.value).startswith(f"{COMPONENT}: ")


@pytest.mark.parametrize(("instance_type", "arch"), [("m7i.large", "x86_64"), ("g5.xlarge", "x86_64"), ("m7g.large", "arm64"),
                                                      ("c7gn.2xlarge", "arm64"), ("r8gd.large", "arm64"), ("m7i-flex.large", "x86_64")])
def test_cpu_architecture(instance_type, arch):
    assert cpu_architecture(instance_type) == arch
