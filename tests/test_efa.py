"""Elastic Fabric Adapter: interface counts in the GPU instance table, the placement helper workloads
use (``efa_interfaces``, ``efa_resources``, ``efa_env``), the EFA pool (a security group open to
itself only, attached on the EC2NodeClass), refusals naming ``efa``, and the EFA device plugin
release (pinned chart, tolerations of the EFA pools, values its chart defines)."""

from __future__ import annotations

from collections import Counter

import pulumi
import pytest
import yaml

from gpufleet.components.efa import CHART_VERSION, EfaDevicePlugin, device_plugin_values
from gpufleet.components.gpu_instances import EFA_INTERFACES, INSTANCE_TYPES, instance_types_of
from gpufleet.components.gpu_node_pool import GpuNodePool, PoolArgumentError, pool_spec
from gpufleet.components.gpu_scheduling import EFA_ENV, EFA_RESOURCE, GpuPlacement
from gpufleet.components.karpenter import Karpenter
from gpufleet.infra.helm_values import chart_values, unknown_keys
from tests.test_gpu_node_pool import KARPENTER

NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
EFA_POOL = {"instance_types": ["p4d.24xlarge", "p4de.24xlarge"], "limits": {"gpus": 32, "cpu": 384, "memory_gib": 4608},
            "efa": True}


def test_instance_table_counts_match_the_aws_documentation():
    assert dict(EFA_INTERFACES) == {"p4d.24xlarge": 4, "p4de.24xlarge": 4, "p5.48xlarge": 32,
                                    "p5e.48xlarge": 32, "p5en.48xlarge": 16}
    assert INSTANCE_TYPES["p5en.48xlarge"].efa_interfaces == 16
    assert INSTANCE_TYPES["g6e.48xlarge"].efa_interfaces == 0
    assert all(name in INSTANCE_TYPES for name in EFA_INTERFACES)


def test_placement_helper():
    efa = GpuPlacement("train", tuple(instance_types_of(types=["p5.48xlarge", "p5e.48xlarge"])), efa=True)
    assert efa.efa_interfaces == 32
    assert efa.efa_resources() == {EFA_RESOURCE: "32"}
    assert {e["name"]: e["value"] for e in efa.efa_env()} == dict(EFA_ENV)
    plain = GpuPlacement("train", tuple(instance_types_of(types=["p5.48xlarge"])))
    assert (plain.efa_interfaces, plain.efa_resources(), plain.efa_env()) == (0, {}, [])


def pool_program(**args):
    def program():
        karpenter = Karpenter("karpenter", KARPENTER)
        pool = GpuNodePool("train", {"karpenter": karpenter, "vpc_id": "vpc-0123", **EFA_POOL, **args})
        pulumi.export("efa", pool.placement.efa_interfaces)
    return program


def test_efa_pool_attaches_a_self_referencing_security_group(run):
    recording = run(pool_program())
    component = recording.one("gpufleet:karpenter:GpuNodePool")
    assert Counter(c.type for c in recording.children(component.urn)) == {
        SECURITY_GROUP: 1, NODE_CLASS: 1, "kubernetes:karpenter.sh/v1:NodePool": 1}
    group = recording.one(SECURITY_GROUP)
    assert group.inputs["vpcId"] == "vpc-0123"
    # All traffic, to and from the group's own members only: no CIDR opens it wider.
    for direction in ("ingress", "egress"):
        (rule,) = group.inputs[direction]
        assert (rule["protocol"], rule["fromPort"], rule["toPort"], rule["self"]) == ("-1", 0, 0, True)
        assert "cidrBlocks" not in rule and "securityGroups" not in rule
    terms = recording.one(NODE_CLASS).inputs["spec"]["securityGroupSelectorTerms"]
    assert terms[0] == {"tags": {"karpenter.sh/discovery": "gpu-test"}}
    assert terms[1] == {"id": group.id} and len(terms) == 2
    assert group.urn in recording.one(NODE_CLASS).dependencies
    assert recording.stack_outputs["efa"] == 4


def test_pool_without_efa_has_no_security_group(run):
    recording = run(pool_program(efa=False))
    assert recording.of_type(SECURITY_GROUP) == []
    assert len(recording.one(NODE_CLASS).inputs["spec"]["securityGroupSelectorTerms"]) == 1


@pytest.mark.parametrize(("args", "message"), [
    ({"instance_families": ["g6e"], "limits": {"gpus": 16, "cpu": 192, "memory_gib": 1536}},
     r"efa is true but g6e\.12xlarge, .* have no EFA interfaces gpufleet knows of"),
    ({"instance_types": ["p4d.24xlarge", "p5.48xlarge"], "limits": {"gpus": 16, "cpu": 192, "memory_gib": 2048}},
     r"efa needs instance types with the same number of EFA interfaces .* p4d\.24xlarge 4, p5\.48xlarge 32"),
    ({**EFA_POOL, "instance_types": ["p4d.24xlarge"], "limits": {"gpus": 8, "cpu": 96, "memory_gib": 1152}, "sharing": {"mode": "mig", "mig_profile": "1g.5gb"}}, r"efa is true but sharing.mode is 'mig'"),
    ({**EFA_POOL, "efa": "yes"}, r"efa must be true or false"),
])
def test_efa_refusals_name_the_field(args, message):
    with pytest.raises(PoolArgumentError, match=message) as error:
        pool_spec("train", {**args, "efa": args.get("efa", True)})
    assert error.value.field == "efa"


def test_efa_pool_without_vpc_is_refused_by_the_component(run):
    def program():
        karpenter = Karpenter("karpenter", KARPENTER)
        GpuNodePool("train", {"karpenter": karpenter, **EFA_POOL})
    with pytest.raises(Exception, match="vpc_id is required with efa"):
        run(program)


def test_device_plugin_release(run, upstream):
    efa = pool_spec("train", {**EFA_POOL, "taints": [{"key": "gpufleet.io/dedicated", "value": "research",
                                                       "effect": "NoSchedule"}]}).placement
    recording = run(lambda: EfaDevicePlugin("efa-device-plugin", {"placements": [efa]}))
    release = recording.one("kubernetes:helm.sh/v3:Release")
    assert release.inputs["chart"] == "aws-efa-k8s-device-plugin"
    assert release.inputs["namespace"] == "kube-system"
    chart = yaml.safe_load((upstream / "charts" / "aws-efa-k8s-device-plugin" / "Chart.yaml").read_text())
    assert release.inputs["version"] == CHART_VERSION == chart["version"]
    values = release.inputs["values"]
    assert values["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "gpufleet.io/dedicated", "operator": "Exists", "effect": "NoSchedule"},
    ]
    assert unknown_keys(values, chart_values(upstream / "charts" / "aws-efa-k8s-device-plugin")) == []
    # The chart's node affinity covers every type gpufleet enables EFA on.
    supported = chart_values(upstream / "charts" / "aws-efa-k8s-device-plugin")["supportedInstanceLabels"]["values"]
    assert set(EFA_INTERFACES) <= set(supported)


def test_device_plugin_refuses_pools_without_efa():
    plain = GpuPlacement("serving", tuple(instance_types_of(families=["g6e"])))
    with pytest.raises(ValueError, match=r"placements\[0\] \(pool 'serving'\) has no EFA"):
        device_plugin_values([plain])
    with pytest.raises(ValueError, match="at least one EFA pool"):
        device_plugin_values([])
