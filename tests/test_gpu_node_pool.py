"""``GpuNodePool``: the NodePool/EC2NodeClass it renders (taints, labels = placement, limits, capacity
types, IMDS, volumes, selectors, grace period and delete timeouts), the NodeOverlays of shared-GPU
pools, its dependency on the Karpenter release, and field-named errors from the checks against the GPU
instance table."""

from __future__ import annotations

from collections import Counter

import pulumi
import pulumi_kubernetes as k8s
import pytest

from gpufleet.components.gpu_node_pool import GpuNodePool, PoolArgumentError, pool_spec
from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.components.karpenter import Karpenter

COMPONENT = "gpufleet:karpenter:GpuNodePool"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
NODE_OVERLAY = "kubernetes:karpenter.sh/v1alpha1:NodeOverlay"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
CLUSTER = "gpu-test"
KARPENTER = {
    "cluster_name": CLUSTER,
    "oidc_provider_arn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/ABC",
    "oidc_provider_url": "oidc.eks.us-west-2.amazonaws.com/id/ABC",
    "cluster_security_group_id": "sg-0123456789abcdef0",
}
SHARING_KARPENTER = {**KARPENTER, "node_overlays": True}
SERVING = {"instance_families": ["g6e"], "limits": {"gpus": 16, "cpu": 512, "memory_gib": 4096}}
MIG = {
    "instance_types": ["p4de.24xlarge", "p5.48xlarge"],
    "limits": {"gpus": 16, "cpu": 384, "memory_gib": 4096},
    "sharing": {"mode": "mig", "mig_profile": "1g.10gb"},
}


def pools(karpenter_args=SHARING_KARPENTER, **named_args):
    """A program with one Karpenter and a GpuNodePool per keyword (name → args); exports placements."""
    def program():
        karpenter = Karpenter("karpenter", karpenter_args)
        for name, args in named_args.items():
            pool = GpuNodePool(name.replace("_", "-"), {"karpenter": karpenter, **args})
            pulumi.export(f"{name}-gpu-resource", pool.placement.gpu_resource)
    return program


def spec_of(recording, token, name):
    (found,) = [r for r in recording.of_type(token) if r.inputs["metadata"]["name"] == name]
    return found


@pytest.fixture
def serving(run):
    return run(pools(serving=SERVING))


def test_children_are_one_node_pool_and_one_node_class(serving):
    component = serving.one(COMPONENT)
    children = serving.children(component.urn)
    assert Counter(c.type for c in children) == {NODE_POOL: 1, NODE_CLASS: 1}
    assert sorted(c.name for c in children) == ["serving-nodeclass", "serving-nodepool"]


def test_node_pool_is_tainted_labelled_limited_and_bound_to_its_node_class(serving):
    spec = serving.one(NODE_POOL).inputs["spec"]
    template = spec["template"]
    assert template["spec"]["taints"] == [GPU_TAINT]
    assert template["metadata"]["labels"] == {"accelerator": "nvidia-gpu", "gpufleet.io/gpu-pool": "serving"}
    assert spec["limits"] == {"nvidia.com/gpu": 16, "cpu": 512, "memory": "4096Gi"}
    assert template["spec"]["nodeClassRef"] == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "serving"}
    assert template["spec"]["requirements"] == [
        {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g6e"]},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
    ]
    assert template["spec"]["expireAfter"] == "720h"
    # A bound on drains: PDBs of single-replica services cannot hold a node for ever.
    assert template["spec"]["terminationGracePeriod"] == "24h"
    assert spec["disruption"] == {
        "consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "30m", "budgets": [{"nodes": "10%"}],
    }
    assert "weight" not in spec


def test_node_class_enforces_imdsv2_encrypted_gp3_and_discovery(serving):
    karpenter_role = next(r for r in serving.of_type("aws:iam/role:Role") if r.name == "karpenter-node-role")
    spec = serving.one(NODE_CLASS).inputs["spec"]
    assert spec["metadataOptions"] == {
        "httpEndpoint": "enabled", "httpProtocolIPv6": "disabled", "httpPutResponseHopLimit": 1, "httpTokens": "required",
    }
    assert spec["blockDeviceMappings"] == [{"deviceName": "/dev/xvda", "ebs": {
        "volumeSize": "200Gi", "volumeType": "gp3", "iops": 6000, "throughput": 500,
        "encrypted": True, "deleteOnTermination": True,
    }}]
    assert spec["amiSelectorTerms"] == [{"alias": "al2023@latest"}]
    assert spec["role"] == karpenter_role.outputs["name"]
    assert "instanceProfile" not in spec
    discovery = [{"tags": {"karpenter.sh/discovery": CLUSTER}}]
    assert spec["subnetSelectorTerms"] == discovery
    assert spec["securityGroupSelectorTerms"] == discovery
    assert spec["associatePublicIPAddress"] is False


def test_pool_objects_depend_on_the_karpenter_release_so_they_are_destroyed_first(serving):
    by_name = {r.name: r for r in serving.resources}
    release = by_name["karpenter-controller"]
    node_class, node_pool = serving.one(NODE_CLASS), serving.one(NODE_POOL)
    controller_iam = [r.urn for r in serving.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")]
    for obj in (node_class, node_pool):
        assert release.urn in obj.dependencies
        assert by_name["karpenter-crds"].urn in obj.dependencies
        assert set(controller_iam) <= set(obj.dependencies)
        assert by_name["karpenter-interruption"].urn in obj.dependencies
    # The pool goes before its node class (whose finalizer waits for the pool's nodes).
    assert node_class.urn in node_pool.dependencies


def test_placement_matches_the_rendered_template(run):
    captured: dict[str, GpuPlacement] = {}

    def program():
        karpenter = Karpenter("karpenter", SHARING_KARPENTER)
        for name, args in (("serving-mig", MIG), ("dev", {
            "instance_families": ["g5", "g6"], "capacity_types": ["spot", "on-demand"],
            "limits": {"gpus": 8, "cpu": 192, "memory_gib": 768}, "labels": {"team": "ml"},
            "taints": [{"key": "gpufleet.io/dedicated", "value": "ml", "effect": "NoSchedule"}],
            "sharing": {"mode": "time-slicing", "replicas": 4},
        })):
            captured[name] = GpuNodePool(name, {"karpenter": karpenter, **args}).placement

    recording = run(program)
    for name, placement in captured.items():
        template = spec_of(recording, NODE_POOL, name).inputs["spec"]["template"]
        assert template["metadata"]["labels"] == placement.node_labels()
        assert template["spec"]["taints"] == placement.taints()
        capacity = next(r for r in template["spec"]["requirements"] if r["key"] == "karpenter.sh/capacity-type")
        assert tuple(capacity["values"]) == placement.capacity_types

    mig = captured["serving-mig"]
    assert (mig.sharing, mig.mig_profile, mig.gpu_limit) == ("mig", "1g.10gb", 16)
    assert mig.node_labels()["nvidia.com/mig.config"] == "all-1g.10gb"
    assert sorted(t.name for t in mig.instance_types) == ["p4de.24xlarge", "p5.48xlarge"]
    assert mig.max_resources_per_node == 56
    dev = captured["dev"]
    assert (dev.sharing, dev.time_slicing_replicas, dev.capacity_types) == ("time-slicing", 4, ("spot", "on-demand"))
    assert dev.node_labels()["nvidia.com/device-plugin.config"] == "dev-time-slicing"
    assert dev.node_labels()["team"] == "ml"
    assert dev.taints() == [GPU_TAINT, {"key": "gpufleet.io/dedicated", "value": "ml", "effect": "NoSchedule"}]
    assert {"key": "gpufleet.io/dedicated", "operator": "Exists", "effect": "NoSchedule"} in dev.tolerations()
    assert dev.gpu_resource == "nvidia.com/gpu.shared"
    assert {t.family.family for t in dev.instance_types} == {"g5", "g6"}


def test_bottlerocket_gets_an_os_volume_and_a_data_volume(run):
    recording = run(pools(br={**SERVING, "ami_family": "bottlerocket", "ami_version": "1.40.0",
                              "root_volume": {"size_gib": 400, "iops": 8000, "throughput_mibps": 1000}}))
    spec = recording.one(NODE_CLASS).inputs["spec"]
    assert spec["amiSelectorTerms"] == [{"alias": "bottlerocket@1.40.0"}]
    os_volume, data_volume = spec["blockDeviceMappings"]
    assert os_volume == {"deviceName": "/dev/xvda", "ebs": {"volumeSize": "4Gi", "volumeType": "gp3", "encrypted": True, "deleteOnTermination": True}}
    assert data_volume["deviceName"] == "/dev/xvdb"
    assert data_volume["ebs"] == {"volumeSize": "400Gi", "volumeType": "gp3", "iops": 8000, "throughput": 1000,
                                  "encrypted": True, "deleteOnTermination": True}


def test_optional_fields_render(run):
    recording = run(pools(batch={
        "instance_types": ["p5.48xlarge"], "capacity_types": ["spot"], "weight": 50,
        "limits": {"gpus": 8, "cpu": 192, "memory_gib": 2048},
        "expire_after": "Never", "termination_grace_period": "2h", "tags": {"cost-center": "ml"},
        "disruption": {"consolidation_policy": "WhenEmpty", "consolidate_after": "5m", "budgets": [
            {"nodes": "0", "reasons": ["Underutilized", "Drifted"], "schedule": "0 9 * * 1-5", "duration": "8h"},
            {"nodes": "1"},
        ]},
    }))
    spec = recording.one(NODE_POOL).inputs["spec"]
    assert spec["weight"] == 50
    assert spec["template"]["spec"]["expireAfter"] == "Never"
    assert spec["template"]["spec"]["terminationGracePeriod"] == "2h"
    assert spec["template"]["spec"]["requirements"][:2] == [
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["p5.48xlarge"]},
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
    ]
    assert spec["disruption"] == {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "5m", "budgets": [
        {"nodes": "0", "reasons": ["Underutilized", "Drifted"], "schedule": "0 9 * * 1-5", "duration": "8h"},
        {"nodes": "1"},
    ]}
    assert recording.one(NODE_CLASS).inputs["spec"]["tags"] == {"cost-center": "ml"}


def test_reserved_capacity_selects_the_named_reservations(run):
    recording = run(pools(blocks={
        "instance_types": ["p5.48xlarge"], "capacity_types": ["reserved", "on-demand"],
        "capacity_reservation_ids": ["cr-0123456789abcdef0"], "limits": {"gpus": 8, "cpu": 192, "memory_gib": 2048},
    }))
    assert recording.one(NODE_CLASS).inputs["spec"]["capacityReservationSelectorTerms"] == [{"id": "cr-0123456789abcdef0"}]
    requirements = recording.one(NODE_POOL).inputs["spec"]["template"]["spec"]["requirements"]
    assert {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["reserved", "on-demand"]} in requirements


def test_the_component_checks_before_registering_anything(run):
    def program():
        karpenter = Karpenter("karpenter", KARPENTER)
        GpuNodePool("bad", {"karpenter": karpenter, "instance_types": ["m5.large"], "limits": SERVING["limits"]})

    with pytest.raises(ValueError, match=r"gpufleet:karpenter:GpuNodePool: instance_types\[0\] 'm5.large' is not a GPU instance type"):
        run(program)


def test_karpenter_is_required():
    with pytest.raises(ValueError, match="GpuNodePool: karpenter is required"):
        GpuNodePool("serving", dict(SERVING))


@pytest.mark.parametrize(("args", "field", "message"), [
    ({"instance_types": ["g5.xlarge", "m7i.4xlarge"]}, "instance_types[1]", "'m7i.4xlarge' is not a GPU instance type"),
    ({"instance_families": ["c7i"]}, "instance_families[0]", "'c7i' is not a GPU instance family"),
    ({"instance_families": ["g6e"], "instance_types": ["g6e.xlarge"]}, "instance_families", "give exactly one"),
    ({"instance_families": []}, "instance_families", "give exactly one"),
    ({"instance_types": ["p4d.24xlarge"], "limits": {"gpus": 4, "cpu": 96, "memory_gib": 1152}},
     "limits.gpus", r"\(4\) is below one node's GPUs \(8 on p4d.24xlarge\)"),
    ({"instance_families": ["g6e"], "limits": {"gpus": 16, "cpu": 64, "memory_gib": 4096}},
     "limits.cpu", r"\(64\) is below one node's vCPUs \(192 on g6e.48xlarge\)"),
    ({"instance_families": ["g6e"], "limits": {"gpus": 16, "cpu": 512, "memory_gib": 512}},
     "limits.memory_gib", r"\(512\) is below one node's GiB of memory \(1536 on g6e.48xlarge\)"),
    ({"instance_families": ["g6e"], "limits": None}, "limits", "is required"),
    ({"instance_families": ["g6e"], "limits": {"gpus": 16, "cpu": 512}}, "limits.memory_gib", "is required"),
    ({"instance_families": ["g6e"], "sharing": {"mode": "mig", "mig_profile": "1g.10gb"}},
     "sharing.mode", r"is 'mig' but g6e \(NVIDIA L40S\) cannot run Multi-Instance GPU"),
    ({"instance_types": ["p4d.24xlarge", "p5.48xlarge"], "sharing": {"mode": "mig", "mig_profile": "1g.20gb"}},
     "sharing.mig_profile", r"'1g.20gb' does not exist on p4d.24xlarge"),
    ({"instance_types": ["p5.48xlarge"], "sharing": {"mode": "mig"}}, "sharing.mig_profile", "is required"),
    ({"instance_families": ["g6"], "sharing": {"mode": "time-slicing", "replicas": 1}}, "sharing.replicas", "from 2 to 64"),
    ({"instance_families": ["g6"], "sharing": {"mode": "shared"}}, "sharing.mode", "must be one of"),
    ({"instance_families": ["g6"], "sharing": {"mode": "mps", "replicas": 49}}, "sharing.replicas",
     r"must be an integer from 2 to 48 with mps \(MPS serves at most 48 clients per GPU\), got 49"),
    ({"instance_families": ["g6"], "sharing": {"mode": "mps", "replicas": 1}}, "sharing.replicas", "from 2 to 48"),
    ({"instance_families": ["g6"], "sharing": {"mode": "mps"}}, "sharing.replicas", "from 2 to 48 with mps .*got None"),
    ({"instance_types": ["p5.48xlarge"], "limits": {"gpus": 8, "cpu": 192, "memory_gib": 2048},
      "sharing": {"mode": "mps", "replicas": 4, "mig_profile": "1g.10gb"}},
     "sharing.mig_profile", r"is set but mode is 'mps': the NVIDIA device plugin cannot share MIG devices with MPS"),
    ({"instance_families": ["g6"], "ami_family": "bottlerocket", "sharing": {"mode": "mps", "replicas": 4}},
     "sharing.mode", r"is 'mps' but ami_family is 'bottlerocket': Bottlerocket's own NVIDIA device plugin has no MPS"),
    ({"instance_families": ["g6"], "sharing": {"mode": "time-slicing", "replicas": 4, "acknowledge_no_isolation": True}},
     "sharing.acknowledge_no_isolation", r"only applies to mode 'mps' \(mode is 'time-slicing'\)"),
    ({"instance_families": ["g6"], "sharing": {"mode": "mps", "replicas": 4, "acknowledge_no_isolation": "yes"}},
     "sharing.acknowledge_no_isolation", "must be true or false"),
    ({"instance_families": ["g6"], "sharing": {"mode": "mps", "replicas": 4, "acknowledge": True}},
     "sharing", "has unknown keys"),
    ({"instance_families": ["g6e"], "capacity_types": ["spot", "preemptible"]}, "capacity_types[1]", "must be one of"),
    ({"instance_families": ["g6e"], "capacity_types": []}, "capacity_types", "non-empty list"),
    ({"instance_families": ["p5"], "limits": {"gpus": 8, "cpu": 192, "memory_gib": 2048}, "capacity_types": ["reserved"]},
     "capacity_types", "capacity_reservation_ids is empty"),
    ({"instance_families": ["g6e"], "capacity_reservation_ids": ["cr-0abc"]}, "capacity_reservation_ids", "does not include 'reserved'"),
    ({"instance_families": ["g6e"], "capacity_types": ["reserved"], "capacity_reservation_ids": ["r-1"]},
     "capacity_reservation_ids[0]", "capacity reservation id"),
    ({"instance_families": ["g6e"], "labels": {"karpenter.sh/capacity-type": "spot"}}, "labels['karpenter.sh/capacity-type']", "reserves"),
    ({"instance_families": ["g6e"], "labels": {"node-role.kubernetes.io/gpu": ""}}, "labels['node-role.kubernetes.io/gpu']", "reserves"),
    ({"instance_families": ["g6e"], "labels": {"gpufleet.io/gpu-pool": "other"}}, "labels", "gpufleet's own node labels"),
    ({"instance_families": ["g6e"], "labels": {"team": "a b"}}, "labels['team']", "not a valid label value"),
    ({"instance_families": ["g6e"], "weight": 0}, "weight", "from 1 to 100"),
    ({"instance_families": ["g6e"], "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]}, "taints[0].key", "already has"),
    ({"instance_families": ["g6e"], "taints": [{"key": "dedicated", "effect": "NoRun"}]}, "taints[0].effect", "must be one of"),
    ({"instance_families": ["g6e"], "taints": [{"key": "a", "effect": "NoSchedule", "operator": "Equal"}]}, "taints[0]", "unknown keys"),
    ({"instance_families": ["g6e"], "expire_after": "30d"}, "expire_after", "must be a duration"),
    ({"instance_families": ["g6e"], "termination_grace_period": "Never"}, "termination_grace_period", "must be a duration"),
    ({"instance_families": ["p5"], "limits": {"gpus": 8, "cpu": 192, "memory_gib": 2048},
      "sharing": {"mode": "mig", "mig_profile": "1g.10gb"}, "mig_strategy": "none"}, "mig_strategy", "must be one of"),
    ({"instance_families": ["g6e"], "disruption": {"consolidation_policy": "WhenUnderutilized"}},
     "disruption.consolidation_policy", "must be one of"),
    ({"instance_families": ["g6e"], "disruption": {"budgets": [{"nodes": "10%", "schedule": "@daily"}]}},
     "disruption.budgets[0].schedule", "and duration must be set together"),
    ({"instance_families": ["g6e"], "root_volume": {"size_gib": 200, "iops": 3000, "throughput_mibps": 1000}},
     "root_volume.throughput_mibps", "exceeds gp3's 0.25 MiB/s per IOPS"),
    ({"instance_families": ["g6e"], "ami_family": "ubuntu"}, "ami_family", "must be one of"),
    ({"instance_families": ["g6e"], "tags": {"karpenter.sh/nodepool": "x"}}, "tags['karpenter.sh/nodepool']", "Karpenter sets itself"),
])
def test_invalid_arguments_name_the_field(args, field, message):
    merged = {"limits": SERVING["limits"], **args}
    if merged["limits"] is None:
        del merged["limits"]
    with pytest.raises(PoolArgumentError, match=message) as caught:
        pool_spec("pool", merged)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"gpufleet:karpenter:GpuNodePool: {field} ")


def test_pool_name_must_be_a_dns_label():
    with pytest.raises(PoolArgumentError, match="name must be a DNS label"):
        pool_spec("GPU_pool", dict(SERVING))


DEV = {
    "instance_types": ["g5.xlarge", "g5.12xlarge", "g6.xlarge", "g6.12xlarge"],
    "capacity_types": ["spot", "on-demand"],
    "limits": {"gpus": 8, "cpu": 192, "memory_gib": 768},
    "sharing": {"mode": "time-slicing", "replicas": 4},
}


def overlays_by_name(recording):
    return {r.inputs["metadata"]["name"]: r for r in recording.of_type(NODE_OVERLAY)}


def test_time_sliced_pool_tells_karpenter_its_shared_gpus_per_instance_type(run):
    # A whole-GPU pool launching the same types must not get the shared resource.
    recording = run(pools(dev=DEV, whole={**DEV, "sharing": {"mode": "none"}}))
    overlays = overlays_by_name(recording)
    assert sorted(overlays) == ["dev-g5-12xlarge", "dev-g5-xlarge", "dev-g6-12xlarge", "dev-g6-xlarge"]
    # gpus x replicas: 1 x 4 on the xlarge sizes, 4 x 4 on the 12xlarge sizes.
    assert {name: o.inputs["spec"]["capacity"] for name, o in overlays.items()} == {
        "dev-g5-xlarge": {"nvidia.com/gpu.shared": "4"},
        "dev-g5-12xlarge": {"nvidia.com/gpu.shared": "16"},
        "dev-g6-xlarge": {"nvidia.com/gpu.shared": "4"},
        "dev-g6-12xlarge": {"nvidia.com/gpu.shared": "16"},
    }
    assert overlays["dev-g6-12xlarge"].inputs["spec"]["requirements"] == [
        {"key": "gpufleet.io/gpu-pool", "operator": "In", "values": ["dev"]},
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["g6.12xlarge"]},
    ]
    # Overlays select by the pool label, which only the dev pool's template carries with that value.
    whole_labels = spec_of(recording, NODE_POOL, "whole").inputs["spec"]["template"]["metadata"]["labels"]
    dev_labels = spec_of(recording, NODE_POOL, "dev").inputs["spec"]["template"]["metadata"]["labels"]
    for overlay in overlays.values():
        pool_requirement = overlay.inputs["spec"]["requirements"][0]
        assert dev_labels[pool_requirement["key"]] in pool_requirement["values"]
        assert whole_labels[pool_requirement["key"]] not in pool_requirement["values"]
    assert "weight" not in overlays["dev-g5-xlarge"].inputs["spec"]


def test_mps_pool_advertises_shared_gpus_and_tells_karpenter_per_instance_type(run):
    """MPS replicas are advertised like time-sliced ones (nvidia.com/gpu.shared, GPUs × replicas a node),
    through the pool's own device plugin config entry."""
    mps = {**DEV, "sharing": {"mode": "mps", "replicas": 3, "acknowledge_no_isolation": True}}
    recording = run(pools(mps=mps))
    overlays = overlays_by_name(recording)
    assert {name: o.inputs["spec"]["capacity"] for name, o in overlays.items()} == {
        "mps-g5-xlarge": {"nvidia.com/gpu.shared": "3"},
        "mps-g5-12xlarge": {"nvidia.com/gpu.shared": "12"},
        "mps-g6-xlarge": {"nvidia.com/gpu.shared": "3"},
        "mps-g6-12xlarge": {"nvidia.com/gpu.shared": "12"},
    }
    labels = spec_of(recording, NODE_POOL, "mps").inputs["spec"]["template"]["metadata"]["labels"]
    assert labels["nvidia.com/device-plugin.config"] == "mps-mps"
    placement = pool_spec("mps", mps).placement
    assert (placement.sharing, placement.mps_replicas, placement.time_slicing_replicas) == ("mps", 3, 0)
    assert (placement.gpu_resource, placement.shared_replicas, placement.max_resources_per_node) == (
        "nvidia.com/gpu.shared", 3, 12)
    assert placement.no_isolation_acknowledged is True
    assert pool_spec("mps", {**DEV, "sharing": {"mode": "mps", "replicas": 3}}).placement.no_isolation_acknowledged is False


def test_mixed_mig_pool_overlays_count_the_slices_of_each_instance_type(run):
    recording = run(pools(mig={
        "instance_types": ["p4d.24xlarge", "p5.48xlarge"],
        "limits": {"gpus": 16, "cpu": 384, "memory_gib": 4096},
        "sharing": {"mode": "mig", "mig_profile": "1g.10gb"},
    }))
    overlays = overlays_by_name(recording)
    # A100 40GB: 4 1g.10gb slices per GPU; H100 80GB: 7; eight GPUs each.
    assert {name: o.inputs["spec"]["capacity"] for name, o in overlays.items()} == {
        "mig-p4d-24xlarge": {"nvidia.com/mig-1g.10gb": "32"},
        "mig-p5-48xlarge": {"nvidia.com/mig-1g.10gb": "56"},
    }
    assert recording.stack_outputs["mig-gpu-resource"] == "nvidia.com/mig-1g.10gb"


def test_overlays_are_children_that_depend_on_the_karpenter_release(run):
    recording = run(pools(dev=DEV))
    component = recording.one(COMPONENT)
    children = recording.children(component.urn)
    assert Counter(c.type for c in children) == {NODE_POOL: 1, NODE_CLASS: 1, NODE_OVERLAY: 4}
    assert sorted(c.name for c in children if c.type == NODE_OVERLAY) == [
        "dev-overlay-g5-12xlarge", "dev-overlay-g5-xlarge", "dev-overlay-g6-12xlarge", "dev-overlay-g6-xlarge",
    ]
    by_name = {r.name: r for r in recording.resources}
    for overlay in recording.of_type(NODE_OVERLAY):
        # The CRD comes with the karpenter-crd release; the controller must outlive the overlays.
        assert by_name["karpenter-crds"].urn in overlay.dependencies
        assert by_name["karpenter-controller"].urn in overlay.dependencies
    release_values = by_name["karpenter-controller"].inputs["values"]
    assert release_values["settings"]["featureGates"] == {"nodeOverlay": True}


def test_whole_gpu_and_single_strategy_mig_pools_need_no_overlay(run):
    captured = {}

    def program():
        karpenter = Karpenter("karpenter", KARPENTER)  # feature gate off: not needed by either pool
        captured["serving"] = GpuNodePool("serving", {"karpenter": karpenter, **SERVING})
        captured["mig"] = GpuNodePool("mig", {"karpenter": karpenter, **MIG, "mig_strategy": "single"})

    recording = run(program)
    assert recording.of_type(NODE_OVERLAY) == []
    mig = captured["mig"].placement
    # single: slices are advertised as nvidia.com/gpu, which Karpenter knows (counting physical GPUs).
    assert (mig.mig_strategy, mig.gpu_resource) == ("single", "nvidia.com/gpu")
    components = recording.of_type(COMPONENT)
    assert len(components) == 2
    for component in components:
        assert Counter(c.type for c in recording.children(component.urn)) == {NODE_POOL: 1, NODE_CLASS: 1}


def test_mig_strategy_defaults_to_mixed_in_the_placement():
    placement = pool_spec("mig", MIG).placement
    assert (placement.mig_strategy, placement.gpu_resource) == ("mixed", "nvidia.com/mig-1g.10gb")
    assert sorted(pool_spec("mig", MIG).node_overlays) == ["mig-p4de-24xlarge", "mig-p5-48xlarge"]


@pytest.mark.parametrize("sharing", [
    {"mode": "time-slicing", "replicas": 4},
    {"mode": "mps", "replicas": 4},
    {"mode": "mig", "mig_profile": "1g.10gb"},
])
def test_a_shared_pool_refuses_karpenter_without_the_feature_gate(run, sharing):
    def program():
        karpenter = Karpenter("karpenter", KARPENTER)
        GpuNodePool("shared", {"karpenter": karpenter, "instance_types": ["p5.48xlarge"],
                               "limits": {"gpus": 8, "cpu": 192, "memory_gib": 2048}, "sharing": sharing})

    with pytest.raises(PoolArgumentError, match="karpenter must run with node_overlays=True") as caught:
        run(program)
    assert caught.value.field == "karpenter"


@pytest.mark.parametrize(("grace", "timeout"), [
    (None, "1460m"),  # the 24h default + 20 minutes
    ("1h", "80m"),
    ("1h30m", "110m"),
    ("90s", "22m"),
])
def test_delete_timeouts_outlast_the_drain(run, monkeypatch, grace, timeout):
    args = dict(SERVING) if grace is None else {**SERVING, "termination_grace_period": grace}
    assert pool_spec("serving", args).delete_timeout == timeout
    timeouts = {}
    original = k8s.apiextensions.CustomResource.__init__

    def spy(self, resource_name, *a, opts=None, **kw):
        timeouts[resource_name] = opts.custom_timeouts.delete if opts and opts.custom_timeouts else None
        original(self, resource_name, *a, opts=opts, **kw)

    monkeypatch.setattr(k8s.apiextensions.CustomResource, "__init__", spy)
    recording = run(pools(serving=args))
    assert timeouts == {"serving-nodeclass": timeout, "serving-nodepool": timeout}
    assert recording.one(NODE_POOL).inputs["spec"]["template"]["spec"]["terminationGracePeriod"] == (grace or "24h")
