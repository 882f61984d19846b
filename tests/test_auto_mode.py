"""EKS Auto Mode (``cluster.autoMode``): the Cluster's roles, access entry and system NodePool, GPU pools
on ``eks.amazonaws.com/v1`` NodeClasses, the modeled NodeClass schema, the GPU Operator without its
device plugin, what is refused (naming the field), the reference stack planned end to end, the policies'
reading of Auto Mode labels and the system nodes' sizing."""

from __future__ import annotations

import copy
import json
import runpy
from collections import Counter
from typing import Any

import pulumi
import pytest

from gpufleet.components import Cluster, GpuNodePool, Karpenter
from gpufleet.components import auto_mode as auto
from gpufleet.components.gpu_instances import FAMILIES
from gpufleet.components.gpu_operator import operator_values
from gpufleet.components.gpu_node_pool import PoolArgumentError, pool_spec
from gpufleet.components.system_instances import SYSTEM_INSTANCE_TYPES
from gpufleet.infra.areas import system_nodes as sn
from gpufleet.infra.config import ConfigError, parse_stack_config
from gpufleet.infra.validation.schema import ManifestValidator
from gpufleet.policies.core import Subject, evaluate
from gpufleet.policies.rules import RULES_BY_NAME
from gpufleet.policies.rules._karpenter import node_pool
from tests.harness import KUBERNETES_VERSION, REPO, child_types, stack_config, with_config

CLUSTER = "gpufleet:cluster:Cluster"
POOL = "gpufleet:karpenter:GpuNodePool"
BASE = {
    "cluster_name": "gpu-test",
    "kubernetes_version": "1.35",
    "vpc_id": "vpc-0123",
    "private_subnet_ids": ["subnet-a", "subnet-b"],
    "auto_mode": True,
    "system_nodes": {"instance_types": ["m7i.2xlarge"], "max_size": 3, "disk_size_gib": 80},
}
LIMITS = {"gpus": 8, "cpu": 384, "memory_gib": 3072}


def cluster(**overrides: Any):
    def program():
        Cluster("k", {**BASE, **overrides})
    return program


def with_pool(**pool: Any):
    def program():
        c = Cluster("k", BASE)
        GpuNodePool("serving", {"auto_mode": c.auto_mode, "instance_families": ["g6e"], "limits": LIMITS, **pool},
                    opts=pulumi.ResourceOptions(provider=c.provider))
    return program


def named(recording, name: str):
    [found] = [r for r in recording.resources if r.name == name]
    return found


def manifest(recording, kind: str, name: str) -> dict:
    [found] = [o.manifest() for o in recording.kubernetes_objects()
               if o.manifest()["kind"] == kind and o.manifest()["metadata"]["name"] == name]
    return found


# -- the Cluster -----------------------------------------------------------------------------------


def test_auto_mode_cluster_children_are_exact(run):
    recording = run(cluster())
    assert child_types(recording, CLUSTER, name_prefix="k-") == {
        "aws:kms/key:Key": 1,
        "aws:kms/alias:Alias": 1,
        "eks:index:Cluster": 1,
        "aws:iam/role:Role": 2,  # the cluster role, the node role
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment": 7,  # 5 cluster policies, 2 node policies
        "aws:iam/rolePolicy:RolePolicy": 1,  # tags on what Auto Mode launches
        "aws:eks/accessEntry:AccessEntry": 1,
        "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": 1,
        "pulumi:providers:kubernetes": 2,
        "kubernetes:eks.amazonaws.com/v1:NodeClass": 1,
        "kubernetes:karpenter.sh/v1:NodePool": 1,
    }
    # No managed node group, launch template or add-on: Auto Mode runs nodes, networking, DNS and the
    # Pod Identity agent itself.
    for absent in ("aws:eks/nodeGroup:NodeGroup", "aws:ec2/launchTemplate:LaunchTemplate", "aws:eks/addon:Addon"):
        assert recording.of_type(absent) == []


def test_eks_cluster_enables_auto_mode_without_built_in_pools(run):
    recording = run(cluster())
    eks = recording.one("eks:index:Cluster")
    role = named(recording, "k-cluster-role")
    # pulumi-eks sets computeConfig (enabled, these nodePools, no nodeRoleArn), storageConfig.blockStorage
    # and kubernetesNetworkConfig.elasticLoadBalancing on the aws.eks.Cluster from autoMode.enabled.
    assert eks.inputs["autoMode"] == {"enabled": True, "createNodeRole": False, "computeConfig": {"nodePools": []}}
    assert eks.inputs["corednsAddonOptions"]["enabled"] is False
    assert eks.inputs["serviceRole"]["id"] == role.id
    assert eks.inputs["skipDefaultNodeGroup"] is True and eks.inputs["authenticationMode"] == "API"
    attachments = [a for a in recording.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                   if a.name.startswith("k-cluster-")]
    tagging = recording.one("aws:iam/rolePolicy:RolePolicy")
    assert {a.urn for a in attachments} | {tagging.urn} <= set(eks.dependencies)


def test_cluster_role_has_auto_modes_policies_and_tag_session(run):
    recording = run(cluster())
    role = named(recording, "k-cluster-role")
    assert json.loads(role.inputs["assumeRolePolicy"]) == {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]}
    arns = sorted(a.inputs["policyArn"] for a in recording.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                  if a.name.startswith("k-cluster-"))
    assert arns == [f"arn:aws:iam::aws:policy/{p}" for p in sorted((
        "AmazonEKSClusterPolicy", "AmazonEKSComputePolicy", "AmazonEKSBlockStoragePolicy",
        "AmazonEKSLoadBalancingPolicy", "AmazonEKSNetworkingPolicy"))]
    tagging = json.loads(recording.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    assert [s["Sid"] for s in tagging["Statement"]] == ["Compute", "Storage", "Networking"]
    for statement in tagging["Statement"]:  # only requests tagged with this cluster's name
        assert statement["Condition"]["StringEquals"] == {
            "aws:RequestTag/eks:eks-cluster-name": "${aws:PrincipalTag/eks:eks-cluster-name}"}


def test_node_role_joins_through_an_ec2_access_entry(run):
    recording = run(cluster())
    role = named(recording, "k-auto-node-role")
    assert json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    arns = sorted(a.inputs["policyArn"] for a in recording.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                  if a.name.startswith("k-auto-node-"))
    assert arns == ["arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
                    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodeMinimalPolicy"]
    entry = recording.one("aws:eks/accessEntry:AccessEntry")
    assert (entry.inputs["type"], entry.inputs["principalArn"], entry.inputs["clusterName"]) == (
        "EC2", role.outputs["arn"], "gpu-test")
    policy = recording.one("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert policy.inputs["policyArn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSAutoNodePolicy"
    assert policy.inputs["accessScope"] == {"type": "cluster"}
    assert policy.inputs["principalArn"] == role.outputs["arn"]


def test_system_node_pool_replaces_the_node_group(run):
    recording = run(cluster(node_tags={"team": "ml"}))
    pool = manifest(recording, "NodePool", "system")
    template = pool["spec"]["template"]
    assert template["metadata"]["labels"] == {"gpufleet.io/node-role": "system"}  # the controllers' selector
    assert template["spec"]["nodeClassRef"] == {"group": "eks.amazonaws.com", "kind": "NodeClass", "name": "system"}
    assert template["spec"]["requirements"] == [
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m7i.2xlarge"]},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
    ]
    assert "taints" not in template["spec"]
    assert pool["spec"]["limits"] == {"cpu": 24, "memory": "96Gi"}  # 3 × m7i.2xlarge
    assert pool["spec"]["disruption"]["budgets"] == [{"nodes": "1"}]
    node_class = manifest(recording, "NodeClass", "system")["spec"]
    role = named(recording, "k-auto-node-role")
    assert node_class["role"] == role.outputs["name"]
    assert node_class["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "gpu-test"}}]
    assert node_class["ephemeralStorage"] == {"size": "80Gi", "iops": 3000, "throughput": 125}
    assert node_class["advancedNetworking"] == {"associatePublicIPAddress": False}
    assert node_class["tags"] == {"team": "ml", "Name": "gpu-test-system"}


def test_controllers_provider_waits_for_the_system_node_pool(run):
    recording = run(cluster())
    providers = {p.name: p for p in recording.of_type("pulumi:providers:kubernetes")}
    system_pool = recording.one("kubernetes:karpenter.sh/v1:NodePool")
    assert system_pool.urn in providers["k-k8s"].dependencies
    assert system_pool.provider.startswith(providers["k-k8s-system"].urn)  # made through its own provider
    entry = recording.one("aws:eks/accessEntry:AccessEntry")
    assert entry.urn in providers["k-k8s-system"].dependencies


@pytest.mark.parametrize(("overrides", "message"), [
    ({"pod_identity_agent": True}, "pod_identity_agent: EKS Auto Mode nodes run the Pod Identity agent themselves"),
    ({"system_nodes": {"min_size": 2}}, "system_nodes.min_size: EKS Auto Mode keeps no minimum or desired node count"),
    ({"system_nodes": {"instance_types": ["h1.2xlarge"]}},
     "system_nodes.instance_types: h1.2xlarge is not an instance type EKS Auto Mode launches"),
    ({"system_nodes": {"instance_types": ["m7i.large", "m7i.12xlarge"]}},
     "system_nodes.instance_types: m7i.12xlarge is not in gpufleet's system instance table"),
    ({"node_tags": {"eks.amazonaws.com/nodeclass": "x"}}, "node_tags['eks.amazonaws.com/nodeclass'] is a tag EKS Auto Mode sets"),
    ({"auto_mode": "yes"}, "auto_mode must be bool"),
])
def test_auto_mode_cluster_refusals_name_the_argument(run, overrides, message):
    with pytest.raises((ValueError, TypeError), match="gpufleet:cluster:Cluster: " + message.replace("[", r"\[").replace("(", r"\(")):
        run(cluster(**overrides))


def test_node_tags_need_auto_mode(run):
    with pytest.raises(ValueError, match="node_tags only applies with auto_mode"):
        run(cluster(auto_mode=False, node_tags={"team": "ml"}, system_nodes={}))


# -- GPU pools -------------------------------------------------------------------------------------


def test_auto_mode_pool_children_are_a_node_class_and_a_node_pool(run):
    recording = run(with_pool())
    assert child_types(recording, POOL, name_prefix="serving-") == {
        "kubernetes:eks.amazonaws.com/v1:NodeClass": 1, "kubernetes:karpenter.sh/v1:NodePool": 1}
    assert recording.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass") == []
    entry = recording.one("aws:eks/accessEntry:AccessEntry")
    for child in recording.children(recording.one(POOL).urn):
        assert entry.urn in child.dependencies  # deleted before the nodes lose their access


def test_auto_mode_pool_requires_auto_mode_labels(run):
    recording = run(with_pool(capacity_types=["spot", "on-demand"]))
    spec = manifest(recording, "NodePool", "serving")["spec"]["template"]["spec"]
    assert spec["nodeClassRef"] == {"group": "eks.amazonaws.com", "kind": "NodeClass", "name": "serving"}
    assert spec["requirements"] == [
        {"key": "eks.amazonaws.com/instance-family", "operator": "In", "values": ["g6e"]},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"]},
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
    ]  # no kubernetes.io/os: Auto Mode refuses it in requirements
    assert spec["expireAfter"] == "336h"
    assert spec["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]


def test_auto_mode_node_class_spec(run):
    recording = run(with_pool(root_volume={"size_gib": 300, "iops": 8000, "throughput_mibps": 600},
                              capacity_types=["reserved"], capacity_reservation_ids=["cr-0123abcd"],
                              tags={"team": "ml"}))
    spec = manifest(recording, "NodeClass", "serving")["spec"]
    role = named(recording, "k-auto-node-role")
    assert spec["role"] == role.outputs["name"]
    assert spec["securityGroupSelectorTerms"] == [{"id": "sg-f11eb7d8fdc4b0a19"}]  # the EKS cluster security group
    assert spec["ephemeralStorage"] == {"size": "300Gi", "iops": 8000, "throughput": 600}
    assert spec["capacityReservationSelectorTerms"] == [{"id": "cr-0123abcd"}]
    assert spec["tags"] == {"team": "ml"}
    assert (spec["networkPolicy"], spec["networkPolicyEventLogs"], spec["snatPolicy"]) == (
        "DefaultAllow", "Disabled", "Random")


def test_auto_mode_efa_pool_adds_its_security_group(run):
    def program():
        c = Cluster("k", BASE)
        GpuNodePool("train", {"auto_mode": c.auto_mode, "instance_types": ["p5.48xlarge"], "efa": True,
                              "vpc_id": "vpc-0123", "limits": {"gpus": 16, "cpu": 384, "memory_gib": 4096}},
                    opts=pulumi.ResourceOptions(provider=c.provider))
    recording = run(program)
    group = recording.one("aws:ec2/securityGroup:SecurityGroup")
    terms = manifest(recording, "NodeClass", "train")["spec"]["securityGroupSelectorTerms"]
    assert terms == [{"id": "sg-f11eb7d8fdc4b0a19"}, {"id": group.id}]


@pytest.mark.parametrize(("args", "field", "text"), [
    ({"sharing": {"mode": "time-slicing", "replicas": 4}}, "sharing.mode", "EKS Auto Mode nodes run AWS's own NVIDIA device plugin"),
    ({"sharing": {"mode": "mps", "replicas": 4}}, "sharing.mode", "time-slicing and MPS (the GPU Operator's device plugin)"),
    ({"instance_types": ["p5.48xlarge"], "instance_families": None, "sharing": {"mode": "mig", "mig_profile": "1g.10gb"},
      "limits": {"gpus": 8, "cpu": 192, "memory_gib": 2048}}, "sharing.mode", "MIG (its MIG manager)"),
    ({"ami_family": "al2023"}, "ami_family", "EKS Auto Mode picks and patches the AMI"),
    ({"ami_version": "v20260101"}, "ami_version", "EKS Auto Mode picks and patches the AMI"),
    ({"expire_after": "720h"}, "expire_after", "longer than the 21 days (504h)"),
    ({"expire_after": "Never"}, "expire_after", "EKS Auto Mode replaces every node after at most 21 days"),
    ({"tags": {"karpenter.sh/managed-by": "x"}}, "tags['karpenter.sh/managed-by']", "a tag EKS Auto Mode sets"),
    ({"labels": {"eks.amazonaws.com/team": "ml"}}, "labels['eks.amazonaws.com/team']", "EKS Auto Mode sets on its nodes"),
    ({"instance_families": None, "instance_types": ["g6e.2xlarge"], "allocation": "dra",
      "disruption": {"consolidation_policy": "WhenEmpty"}}, "allocation",
     "EKS Auto Mode does not support Dynamic Resource Allocation"),
])
def test_pool_settings_auto_mode_cannot_do_are_refused(args, field, text):
    pool = {"instance_families": ["g6e"], "limits": LIMITS, **args}
    pool = {k: v for k, v in pool.items() if v is not None}
    with pytest.raises(PoolArgumentError) as caught:
        pool_spec("serving", pool, auto_mode=True)
    assert caught.value.field == field
    assert text in caught.value.problem
    pool_spec("serving", {k: v for k, v in pool.items() if k not in args or k in ("instance_types", "limits")})


@pytest.mark.parametrize("name", ["system", "default"])
def test_reserved_pool_names_are_refused_on_auto_mode(name):
    with pytest.raises(PoolArgumentError) as caught:
        pool_spec(name, {"instance_families": ["g6e"], "limits": LIMITS}, auto_mode=True)
    assert caught.value.field == "name"
    pool_spec(name, {"instance_families": ["g6e"], "limits": LIMITS})  # fine for self-managed Karpenter


def test_pool_needs_exactly_one_provisioner(run):
    def both():
        c = Cluster("k", BASE)
        karpenter = Karpenter("karpenter", {"cluster_name": "gpu-test", "cluster_security_group_id": "sg-0123",
                                            "workload_identity": "podIdentity"})
        GpuNodePool("serving", {"auto_mode": c.auto_mode, "karpenter": karpenter, "instance_families": ["g6e"],
                                "limits": LIMITS})
    with pytest.raises(ValueError, match="give karpenter or auto_mode, not both"):
        run(both)
    with pytest.raises(ValueError, match="karpenter is required .* or auto_mode"):
        run(lambda: GpuNodePool("serving", {"instance_families": ["g6e"], "limits": LIMITS}))


def test_every_gpu_family_gpufleet_knows_is_one_auto_mode_launches():
    """A new family in the GPU instance table must be checked against Auto Mode's supported list."""
    assert set(FAMILIES) <= set(auto.SUPPORTED_FAMILIES["accelerated"])
    assert all(auto.instance_type_problem(t) is None for t in SYSTEM_INSTANCE_TYPES)


# -- the modeled NodeClass schema -------------------------------------------------------------------


GOOD_NODE_CLASS = {
    "apiVersion": "eks.amazonaws.com/v1",
    "kind": "NodeClass",
    "metadata": {"name": "gpu"},
    "spec": {
        "role": "AmazonEKSAutoNodeRole",
        "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": "ml"}}, {"id": "subnet-0123abcd"}],
        "securityGroupSelectorTerms": [{"id": "sg-0123abcd"}, {"name": "eks-cluster-sg-ml"}],
        "snatPolicy": "Random",
        "networkPolicy": "DefaultDeny",
        "networkPolicyEventLogs": "Enabled",
        "ephemeralStorage": {"size": "160Gi", "iops": 3000, "throughput": 125, "kmsKeyID": "alias/ml"},
        "advancedNetworking": {"associatePublicIPAddress": False, "httpsProxy": "http://192.0.2.4:3128",
                               "noProxy": ["localhost", ".internal"], "ipv4PrefixSize": "32"},
        "capacityReservationSelectorTerms": [{"id": "cr-0123abcd"}, {"tags": {"team": "ml"}, "ownerID": "111122223333"}],
        "certificateBundles": [{"name": "corp", "data": "LS0tLS1CRUdJTg=="}],
        "advancedSecurity": {"fips": True},
        "tags": {"team": "ml"},
    },
}


@pytest.fixture(scope="module")
def validator() -> ManifestValidator:
    return ManifestValidator(KUBERNETES_VERSION)  # the modeled CRD needs no upstream directory


def _mutated(path: list[Any], value: Any = None, delete: bool = False) -> dict:
    doc = copy.deepcopy(GOOD_NODE_CLASS)
    node = doc
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


def test_the_documented_node_class_passes_its_schema(validator):
    assert validator.knows("eks.amazonaws.com/v1", "NodeClass")
    assert validator.validate(GOOD_NODE_CLASS) == []


@pytest.mark.parametrize(("path", "value", "delete", "expected"), [
    (["spec", "instanceProfile"], "ml-nodes", False, "exactly one of role and instanceProfile"),
    (["spec", "role"], None, True, "exactly one of role and instanceProfile"),
    (["spec", "subnetSelectorTerms"], None, True, "subnetSelectorTerms"),
    (["spec", "subnetSelectorTerms", 0, "id"], "subnet-1", False, "subnetSelectorTerms[0]"),
    (["spec", "securityGroupSelectorTerms", 0, "id"], "vpc-1", False, "securityGroupSelectorTerms[0].id"),
    (["spec", "networkPolicy"], "Deny", False, "networkPolicy"),
    (["spec", "snatPolicy"], "random", False, "snatPolicy"),
    (["spec", "ephemeralStorage", "iops"], 2000, False, "ephemeralStorage.iops"),
    (["spec", "ephemeralStorage", "throughput"], 2000, False, "ephemeralStorage.throughput"),
    (["spec", "ephemeralStorage", "size"], "60000Gi", False, "ephemeralStorage.size"),
    (["spec", "advancedNetworking", "noProxy"], [f"h{i}" for i in range(51)], False, "noProxy"),
    (["spec", "advancedNetworking", "ipv4PrefixSize"], "28", False, "ipv4PrefixSize"),
    (["spec", "podSubnetSelectorTerms"], [{"id": "subnet-0abc"}], False, "set together"),
    (["spec", "tags", "kubernetes.io/cluster/ml"], "owned", False, "restricted keys"),
    (["spec", "tags", "eks.amazonaws.com/nodeclass"], "gpu", False, "restricted keys"),
    (["spec", "capacityReservationSelectorTerms", 0, "tags"], {"a": "b"}, False, "by id, or by tags"),
    (["spec", "amiSelectorTerms"], [{"alias": "al2023@latest"}], False, "amiSelectorTerms"),  # an EC2NodeClass field
    (["spec", "metadataOptions"], {"httpTokens": "required"}, False, "metadataOptions"),
])
def test_node_class_schema_refuses_what_auto_mode_refuses(validator, path, value, delete, expected):
    errors = validator.validate(_mutated(path, value, delete))
    assert errors and any(expected in e for e in errors), errors


# -- the GPU Operator ------------------------------------------------------------------------------


def test_gpu_operator_on_auto_mode_runs_gfd_and_dcgm_only():
    placement = pool_spec("serving", {"instance_families": ["g6e"], "limits": LIMITS}, auto_mode=True).placement
    assert placement.ami_family == "eks-auto-mode"
    values = operator_values([placement], mig_strategy="mixed", dcgm_exporter=True, device_plugin_config_map=None)
    assert (values["driver"], values["toolkit"], values["devicePlugin"], values["migManager"]) == (
        {"enabled": False}, {"enabled": False}, {"enabled": False}, {"enabled": False})
    assert values["gfd"] == {"enabled": True} and values["dcgmExporter"]["enabled"] is True


# -- the stack configuration -----------------------------------------------------------------------


def automode(key: str, value: Any) -> dict[str, str]:
    return with_config(stack_config("automode"), key, value)


def problems(raw: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw)
    return caught.value.problems


def _pools(**first: Any) -> list[dict[str, Any]]:
    pools = json.loads(stack_config("automode")["gpufleet:gpuPools"])
    pools[0].update(first)
    return pools


def test_karpenter_settings_are_refused_on_auto_mode():
    [problem] = problems(automode("karpenter", {"replicas": 2}))
    assert problem.startswith("gpufleet:karpenter: with gpufleet:cluster.autoMode EKS runs the node provisioner")


@pytest.mark.parametrize(("pool", "prefix", "text"), [
    ({"sharing": {"mode": "time-slicing", "replicas": 4}}, "gpufleet:gpuPools[0].sharing.mode: ",
     "EKS Auto Mode nodes run AWS's own NVIDIA device plugin"),
    ({"amiFamily": "bottlerocket"}, "gpufleet:gpuPools[0].amiFamily: ", "EKS Auto Mode picks and patches the AMI"),
    ({"amiVersion": "v20260101"}, "gpufleet:gpuPools[0].amiVersion: ", "EKS Auto Mode picks and patches the AMI"),
    ({"expireAfter": "720h"}, "gpufleet:gpuPools[0].expireAfter: ", "longer than the 21 days"),
    ({"name": "system"}, "gpufleet:gpuPools[0].name: ", "gpufleet's system NodePool and NodeClass on Auto Mode"),
    ({"allocation": "dra", "instanceFamilies": [], "instanceTypes": ["g6e.2xlarge"],
      "disruption": {"consolidationPolicy": "WhenEmpty"}}, "gpufleet:gpuPools[0].allocation: ",
     "EKS Auto Mode does not support Dynamic Resource Allocation"),
])
def test_pool_refusals_name_the_pool_field(pool, prefix, text):
    found = [p for p in problems(automode("gpuPools", _pools(**pool))) if p.startswith(prefix)]
    assert found and text in found[0], found


def test_mig_is_refused_on_auto_mode_with_the_field():
    pools = _pools(instanceFamilies=[], instanceTypes=["p5.48xlarge"], sharing={"mode": "mig", "migProfile": "1g.10gb"},
                   limits={"gpus": 16, "cpu": 384, "memoryGib": 4096})
    found = [p for p in problems(automode("gpuPools", pools)) if p.startswith("gpufleet:gpuPools[0].sharing.mode: ")]
    assert found and "MIG (its MIG manager)" in found[0]


def test_system_node_counts_auto_mode_does_not_keep_are_refused():
    cluster = json.loads(stack_config("automode")["gpufleet:cluster"])
    cluster["systemNodes"].update(minSize=2, desiredSize=2)
    found = problems(automode("cluster", cluster))
    assert [p.split(":", 2)[1] for p in found] == ["cluster.systemNodes.minSize", "cluster.systemNodes.desiredSize"]
    assert all("EKS Auto Mode keeps no minimum or desired node count" in p for p in found)


def test_auto_mode_must_be_a_boolean():
    cluster = json.loads(stack_config("automode")["gpufleet:cluster"])
    cluster["autoMode"] = "yes"
    [problem] = problems(automode("cluster", cluster))
    assert problem.startswith("gpufleet:cluster.autoMode: must be true or false")


def test_the_bundled_ebs_csi_driver_is_refused_on_auto_mode():
    monitoring = json.loads(stack_config("automode")["gpufleet:monitoring"])
    monitoring["stack"]["ebsCsiDriver"] = True
    [problem] = problems(automode("monitoring", monitoring))
    assert problem.startswith("gpufleet:monitoring.stack.ebsCsiDriver: EKS Auto Mode's block storage provisions")


def test_the_same_pools_are_fine_without_auto_mode():
    cluster = json.loads(stack_config("automode")["gpufleet:cluster"])
    cluster["autoMode"] = False
    raw = with_config(automode("gpuPools", _pools(expireAfter="720h", amiFamily="al2023")), "cluster", cluster)
    config = parse_stack_config(raw)
    assert not config.cluster.auto_mode


# -- system nodes: Auto Mode's system NodePool grows up to maxSize -----------------------------------


def test_system_pods_on_auto_mode_are_the_controllers_only():
    config = parse_stack_config(stack_config("automode"))
    names = {p.what for p in sn.system_node_pods(config)}
    assert not names & {"CoreDNS", "kube-proxy", "aws-node (VPC CNI)", "Karpenter controller"}
    assert {"GPU Operator", "Kueue controller", "KServe controller", "Prometheus (+ config reloader)"} <= names
    assert "EBS CSI controller" not in names  # Auto Mode's block storage


def test_auto_mode_allocatable_caps_pods_at_110():
    facts = SYSTEM_INSTANCE_TYPES["m7i.4xlarge"]  # 234 pods with the VPC CNI's table
    assert sn.allocatable(facts, auto_mode=True)[1] - sn.allocatable(facts)[1] == 11 * (234 - 110)


def test_system_pool_too_small_for_the_controllers_names_max_size():
    cluster = json.loads(stack_config("automode")["gpufleet:cluster"])
    cluster["systemNodes"].update(instanceTypes=["m7i.large"], maxSize=2)
    [problem] = problems(automode("cluster", cluster))
    assert problem.startswith("gpufleet:cluster.systemNodes: the pods pinned to the system nodes request")
    assert "the system NodePool's limits hold maxSize 2 × m7i.large" in problem
    assert "raise maxSize or use a larger instance type" in problem


# -- the reference stack ---------------------------------------------------------------------------


def program():
    runpy.run_path(str(REPO / "infra"), run_name="__main__")


@pytest.fixture(scope="module")
def planned():
    from gpufleet.infra.offline.plan import Project, plan_stack

    return plan_stack(Project.find(REPO), "automode")


def test_automode_stack_plans_without_karpenter(planned):
    assert planned.schema_errors == [] and planned.admission_errors == []
    assert planned.schema_note.startswith("45 of 45 Kubernetes objects schema-checked")
    types = Counter(r.type for r in planned.recording.resources)
    assert types["gpufleet:karpenter:Karpenter"] == 0
    assert types["kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"] == 0
    assert types["aws:sqs/queue:Queue"] == 0 and types["aws:cloudwatch/eventRule:EventRule"] == 0
    assert types["aws:eks/nodeGroup:NodeGroup"] == 0
    assert types["kubernetes:eks.amazonaws.com/v1:NodeClass"] == 3  # system, serving, batch
    assert types["kubernetes:karpenter.sh/v1:NodePool"] == 3
    releases = {r.inputs["name"] for r in planned.recording.of_type("kubernetes:helm.sh/v3:Release")}
    assert "karpenter" not in releases and "karpenter-crd" not in releases
    addons = {r.inputs["addonName"] for r in planned.recording.of_type("aws:eks/addon:Addon")}
    assert addons == {"aws-efs-csi-driver"}  # no Pod Identity agent, no EBS CSI driver


def test_automode_stack_gpu_operator_and_storage(planned):
    [operator] = [r for r in planned.recording.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "gpu-operator"]
    values = operator.inputs["values"]
    assert (values["driver"]["enabled"], values["toolkit"]["enabled"], values["devicePlugin"]["enabled"],
            values["migManager"]["enabled"]) == (False, False, False, False)
    [storage] = [r for r in planned.recording.of_type("kubernetes:storage.k8s.io/v1:StorageClass") if r.name == "observability-gp3"]
    assert storage.inputs["provisioner"] == "ebs.csi.eks.amazonaws.com"


def test_automode_kueue_flavors_select_labels_auto_mode_nodes_carry(planned):
    pools = {o.manifest()["metadata"]["name"]: o.manifest() for o in planned.recording.kubernetes_objects()
             if o.manifest()["kind"] == "NodePool"}
    flavors = [o.manifest() for o in planned.recording.kubernetes_objects() if o.manifest()["kind"] == "ResourceFlavor"]
    gpu_flavors = [f for f in flavors if f["spec"].get("nodeLabels")]
    assert {f["metadata"]["name"] for f in gpu_flavors} == {"serving", "batch"}
    for flavor in gpu_flavors:
        labels = pools[flavor["metadata"]["name"]]["spec"]["template"]["metadata"]["labels"]
        assert flavor["spec"]["nodeLabels"].items() <= labels.items()


def test_automode_stack_passes_the_policies_and_simulates(planned):
    from gpufleet.infra.simulate.run import simulate_plan
    from gpufleet.policies.analyzer import analyze_recording

    config = stack_config("automode")
    report = analyze_recording(planned.recording, production=True, stack_config=config)
    assert report.violations == [] and report.not_run == []
    simulation = simulate_plan(planned, parse_stack_config(config))
    assert simulation.ok
    minimum = simulation.results["min"]
    rows = {(r["pool"], r["instanceType"]): r["count"] for r in minimum.node_rows()}
    assert rows[("system", "m7i.2xlarge")] >= 1  # Auto Mode's system NodePool, grown for the controllers
    assert sorted(p["pool"] for p in minimum.gpus()["pools"]) == ["batch", "serving"]  # no GPU row for the system pool


# -- the policies read Auto Mode's labels ----------------------------------------------------------


def _auto_pool(group: str = "eks.amazonaws.com", family_key: str = "eks.amazonaws.com/instance-family") -> dict:
    return {
        "apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "gpu"},
        "spec": {
            "template": {
                "metadata": {"labels": {"gpufleet.io/gpu-pool": "gpu"}},
                "spec": {
                    "nodeClassRef": {"group": group, "kind": "NodeClass" if group == "eks.amazonaws.com" else "EC2NodeClass",
                                     "name": "gpu"},
                    "requirements": [{"key": family_key, "operator": "In", "values": ["g6e"]}],
                    "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
                },
            },
            "limits": {"nvidia.com/gpu": 8},
        },
    }


def _gpu_job(selector: dict[str, str]) -> dict:
    return {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "score", "namespace": "ml"},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never", "nodeSelector": selector,
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "score", "image": "score:1.0",
                            "resources": {"limits": {"nvidia.com/gpu": 1}, "requests": {"nvidia.com/gpu": 1}}}],
        }}},
    }


def _schedulable(*docs: dict) -> list:
    return evaluate([Subject.from_manifest(d) for d in docs], rules=[RULES_BY_NAME["gpu-workload-schedulable"]])


def test_auto_mode_pool_launches_its_families_on_its_own_labels():
    pool = node_pool(Subject.from_manifest(_auto_pool()))
    assert pool.auto_mode and {t.family.family for t in pool.instance_types} == {"g6e"}
    assert node_pool(Subject.from_manifest(_auto_pool(family_key="karpenter.k8s.aws/instance-family"))).instance_types == ()
    karpenter = node_pool(Subject.from_manifest(_auto_pool(group="karpenter.k8s.aws")))
    assert not karpenter.auto_mode and karpenter.instance_types == ()  # Karpenter's nodes carry no eks.amazonaws.com labels


def test_workloads_must_select_the_labels_auto_mode_nodes_carry():
    assert _schedulable(_auto_pool(), _gpu_job({"eks.amazonaws.com/instance-gpu-name": "l40s"})) == []
    assert _schedulable(_auto_pool(), _gpu_job({"eks.amazonaws.com/compute-type": "auto"})) == []
    [found] = _schedulable(_auto_pool(), _gpu_job({"karpenter.k8s.aws/instance-gpu-name": "l40s"}))
    assert "gpu: its nodes cannot carry karpenter.k8s.aws/instance-gpu-name" in found.message
    [found] = _schedulable(_auto_pool(), _gpu_job({"eks.amazonaws.com/instance-gpu-name": "a100"}))
    assert "none of its instance types matches eks.amazonaws.com/instance-gpu-name" in found.message


def test_auto_mode_system_pool_is_not_a_gpu_pool():
    """The system NodePool names its instance types: no GPU instance, so no GPU taint or limit needed."""
    system = auto.system_node_pool_spec(["m7i.2xlarge"], "amd64", 4, 8, 32, {"gpufleet.io/node-role": "system"})
    doc = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "system"}, "spec": system}
    assert not node_pool(Subject.from_manifest(doc)).can_launch_gpus
    assert evaluate([Subject.from_manifest(doc)], rules=[RULES_BY_NAME["gpu-nodepool-taint-and-limits"]]) == []


def test_max_size_alone_bounds_the_system_pool_on_auto_mode():
    """The managed node group's size order (minSize <= desiredSize <= maxSize) is not asked of Auto Mode,
    which keeps only maxSize: one node is a valid bound there, and still refused for the node group."""
    cluster = json.loads(stack_config("automode")["gpufleet:cluster"])
    cluster["systemNodes"].update(instanceTypes=["m7i.4xlarge"], maxSize=1)
    assert parse_stack_config(automode("cluster", cluster)).cluster.system_nodes.max_size == 1
    cluster["autoMode"] = False
    found = problems(automode("cluster", cluster))
    assert "gpufleet:cluster.systemNodes: need minSize <= desiredSize <= maxSize, got 2 <= 2 <= 1" in found
