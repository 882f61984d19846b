"""Area ``gpu_pools``: the ``gpufleet:karpenter`` and ``gpufleet:gpuPools`` sections (errors with their
field paths), the repository stacks' pools, and ``compose`` (Karpenter first, one pool each, placements,
NodeOverlays of shared pools with the feature gate, the operator's MIG strategy)."""

from __future__ import annotations

import json

import pulumi
import pytest
import yaml

from gpufleet.components import Cluster, Network
from gpufleet.infra.areas import gpu_pools
from gpufleet.infra.areas.base import Platform
from gpufleet.infra.config import StackConfig, parse_stack_config
from gpufleet.infra.stack_file import config_map_from_stack_file
from tests.harness import BASE_CONFIG, REPO, stack_config

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
NODE_OVERLAY = "kubernetes:karpenter.sh/v1alpha1:NodeOverlay"
POOL = {"name": "serving", "instanceFamilies": ["g6e"], "limits": {"gpus": 16, "cpu": 512, "memoryGib": 4096}}


def section(**overrides) -> gpu_pools.GpuPoolSection:
    return gpu_pools.GpuPoolSection.model_validate({**POOL, **overrides})


def stack_file_config(stack: str) -> StackConfig:
    """The stack's configuration, validated by this area's models alone (other areas' cross-checks aside)."""
    document = yaml.safe_load((REPO / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    raw = config_map_from_stack_file(document)
    values = {key.split(":", 1)[1]: json.loads(v) if v.startswith(("{", "[")) else v for key, v in raw.items()}
    return StackConfig.model_validate(values)


def problem_of(error: Exception) -> str:
    (detail,) = error.errors()
    return detail["msg"].removeprefix("Value error, ")


def test_defaults_of_a_pool():
    pool = section()
    assert pool.capacity_types == ("on-demand",)
    assert pool.ami_family == "al2023"
    assert pool.sharing.mode == "none"
    args = pool.component_args()
    assert args["instance_families"] == ["g6e"] and "instance_types" not in args
    assert args["limits"] == {"gpus": 16, "cpu": 512, "memory_gib": 4096}
    assert args["disruption"] == {"consolidation_policy": "WhenEmptyOrUnderutilized", "consolidate_after": "30m",
                                  "budgets": [{"nodes": "10%"}]}
    assert args["root_volume"] == {"size_gib": 200, "iops": 6000, "throughput_mibps": 500}
    assert args["sharing"] == {"mode": "none"}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"limits": {"gpus": 4, "cpu": 512, "memoryGib": 4096}}, "limits.gpus (4) is below one node's GPUs (8 on g6e.48xlarge)"),
    ({"limits": {"gpus": 16, "cpu": 512, "memoryGib": 100}}, "limits.memoryGib (100) is below one node's GiB of memory"),
    ({"instanceFamilies": [], "instanceTypes": ["m5.large"]}, "instanceTypes[0] 'm5.large' is not a GPU instance type"),
    ({"sharing": {"mode": "mig", "migProfile": "1g.10gb"}}, "sharing.mode is 'mig' but g6e (NVIDIA L40S) cannot run"),
    ({"instanceFamilies": ["p5"], "limits": {"gpus": 8, "cpu": 192, "memoryGib": 2048},
      "sharing": {"mode": "mig", "migProfile": "1g.5gb"}}, "sharing.migProfile '1g.5gb' does not exist on p5.48xlarge, p5.4xlarge"),
    ({"rootVolume": {"sizeGib": 200, "iops": 3000, "throughputMibps": 1000}}, "rootVolume.throughputMibps (1000) exceeds"),
])
def test_pool_errors_use_the_yaml_field_names(overrides, message):
    with pytest.raises(Exception) as caught:
        section(**overrides)
    assert problem_of(caught.value).startswith(message)


def test_limits_are_required():
    with pytest.raises(Exception) as caught:
        gpu_pools.GpuPoolSection.model_validate({"name": "x", "instanceFamilies": ["g6e"]})
    (detail,) = caught.value.errors()
    assert detail["loc"] == ("limits",) and detail["type"] == "missing"


def test_pool_name_is_a_dns_label():
    with pytest.raises(Exception, match="must be a DNS label"):
        section(name="Serving_Pool")


def test_errors_reach_the_stack_config_with_their_path():
    from gpufleet.infra.config import ConfigError, parse_stack_config

    raw = {**BASE_CONFIG, "gpufleet:gpuPools": json.dumps([POOL, {**POOL, "name": "batch", "limits": {"gpus": 2, "cpu": 512, "memoryGib": 4096}}])}
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw)
    assert caught.value.problems == [
        "gpufleet:gpuPools[1].limits.gpus: (2) is below one node's GPUs (8 on g6e.48xlarge): raise it or drop the larger instance types",
    ]


def test_cross_check_refuses_duplicate_pool_names():
    config = StackConfig.model_validate({
        "environment": "dev", "region": "us-west-2", "kubernetesVersion": "1.35",
        "gpuPools": [POOL, {**POOL, "instanceFamilies": ["g6"], "limits": {"gpus": 8, "cpu": 192, "memoryGib": 768}}],
    })
    assert gpu_pools.cross_check(config) == ["gpufleet:gpuPools[1].name: 'serving' is already the name of gpuPools[0]"]


def test_karpenter_section_pins_a_1_14_release():
    assert gpu_pools.KarpenterSection().version == "1.14.1"
    with pytest.raises(Exception, match="should match pattern"):
        gpu_pools.KarpenterSection.model_validate({"version": "0.37.0"})


def test_dev_stack_has_the_gpu_dev_pool():
    config = stack_file_config("dev")
    pool, mps = config.gpu_pools
    assert (mps.name, mps.sharing.mode, mps.sharing.replicas) == ("gpu-dev-mps", "mps", 4)
    assert pool.name == "gpu-dev"
    assert set(pool.capacity_types) == {"spot", "on-demand"}
    assert {t.split(".")[0] for t in pool.instance_types} == {"g5", "g6"}
    assert (pool.sharing.mode, pool.sharing.replicas) == ("time-slicing", 4)
    assert pool.termination_grace_period == "1h"


def test_prod_stack_has_serving_mig_and_batch_pools_all_limited():
    config = stack_file_config("prod")
    pools = {p.name: p for p in config.gpu_pools}
    assert list(pools) == ["serving", "serving-mig", "multi-node", "batch"]
    assert pools["multi-node"].instance_types == ("p5.48xlarge",) and pools["multi-node"].limits.gpus == 16
    assert pools["serving"].instance_families == ("g6e",) and pools["serving"].capacity_types == ("on-demand",)
    mig = pools["serving-mig"]
    assert mig.instance_types == ("p4de.24xlarge", "p5.48xlarge") and mig.capacity_types == ("on-demand",)
    assert (mig.sharing.mode, mig.sharing.mig_profile) == ("mig", "1g.10gb")
    assert pools["batch"].capacity_types == ("spot",)
    # Batch and multi-node training: A100 nodes with 4 EFA interfaces each.
    assert pools["batch"].instance_types == ("p4d.24xlarge", "p4de.24xlarge") and pools["batch"].efa
    assert all(p.limits.gpus > 0 for p in pools.values())


def compose_program(config: StackConfig, captured: dict):
    """Network + Cluster + this area's compose only (other areas are tested on their own)."""
    def program():
        network = Network("network", {"cluster_name": "gpufleet-test", "az_count": 2})
        cluster = Cluster("cluster", {
            "cluster_name": "gpufleet-test", "kubernetes_version": "1.35", "vpc_id": network.vpc_id,
            "private_subnet_ids": network.private_subnet_ids,
        })
        platform = Platform(stack="test", config=config, cluster_name="gpufleet-test",
                            opts=pulumi.ResourceOptions(providers=[cluster.provider]), network=network, cluster=cluster)
        gpu_pools.compose(platform)
        captured["platform"] = platform
    return program


@pytest.fixture(scope="module")
def prod_config():
    return stack_file_config("prod")


def test_compose_creates_karpenter_then_a_pool_each_with_placements(run, prod_config):
    captured: dict = {}
    recording = run(compose_program(prod_config, captured), stack="test")
    platform = captured["platform"]
    assert type(platform.components["karpenter"]).__name__ == "Karpenter"
    assert list(platform.placements) == ["serving", "serving-mig", "multi-node", "batch"]
    assert sorted(r.inputs["metadata"]["name"] for r in recording.of_type(NODE_POOL)) == [
        "batch", "multi-node", "serving", "serving-mig"]
    assert len(recording.of_type(NODE_CLASS)) == 4

    release = next(r for r in recording.resources if r.name == "karpenter-controller")
    values = release.inputs["values"]
    assert values["settings"]["clusterName"] == "gpufleet-test"
    assert values["controller"]["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    # The security group EKS created for the cluster (shared by control plane and system nodes) is
    # tagged for discovery, not one of pulumi-eks's own groups.
    tag = recording.one("aws:ec2/tag:Tag").inputs
    assert tag["resourceId"] == recording.one("eks:index:Cluster").outputs["clusterSecurityGroupId"]
    assert (tag["key"], tag["value"]) == ("karpenter.sh/discovery", "gpufleet-test")

    for node_pool in recording.of_type(NODE_POOL):
        name = node_pool.inputs["metadata"]["name"]
        placement = platform.placements[name]
        assert release.urn in node_pool.dependencies
        template = node_pool.inputs["spec"]["template"]
        assert template["metadata"]["labels"] == placement.node_labels()
        assert template["spec"]["taints"] == placement.taints()
        assert node_pool.inputs["spec"]["limits"]["nvidia.com/gpu"] == placement.gpu_limit
    assert platform.placements["serving-mig"].node_labels()["nvidia.com/mig.config"] == "all-1g.10gb"
    assert platform.placements["batch"].capacity_types == ("spot",)


def test_instances_carry_the_stack_tags(run, prod_config):
    recording = run(compose_program(prod_config, {}), stack="test")
    for node_class in recording.of_type(NODE_CLASS):
        assert node_class.inputs["spec"]["tags"] == {
            "gpufleet:stack": "test", "gpufleet:environment": "prod", "team": "ml-platform", "cost-center": "ml-prod",
        }


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_repository_stacks_pass_every_check(stack):
    assert json.loads(stack_config(stack)["gpufleet:gpuPools"])


def release_values(recording):
    return next(r for r in recording.resources if r.name == "karpenter-controller").inputs["values"]


def test_prod_mig_pool_gets_overlays_and_karpenter_the_feature_gate(run, prod_config):
    recording = run(compose_program(prod_config, {}), stack="test")
    overlays = {o.inputs["metadata"]["name"]: o.inputs["spec"] for o in recording.of_type(NODE_OVERLAY)}
    # Only serving-mig shares GPUs (mixed strategy): one overlay per instance type, 8 GPUs x 7 slices.
    assert overlays == {
        f"serving-mig-{dashed}": {
            "requirements": [
                {"key": "gpufleet.io/gpu-pool", "operator": "In", "values": ["serving-mig"]},
                {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [instance_type]},
            ],
            "capacity": {"nvidia.com/mig-1g.10gb": "56"},
        }
        for instance_type, dashed in (("p4de.24xlarge", "p4de-24xlarge"), ("p5.48xlarge", "p5-48xlarge"))
    }
    assert release_values(recording)["settings"]["featureGates"] == {"nodeOverlay": True}
    grace = {p.inputs["metadata"]["name"]: p.inputs["spec"]["template"]["spec"]["terminationGracePeriod"]
             for p in recording.of_type(NODE_POOL)}
    assert grace == {"serving": "1h", "serving-mig": "1h", "multi-node": "1h", "batch": "24h"}


def test_dev_time_sliced_pool_gets_an_overlay_per_instance_type(run):
    captured: dict = {}
    recording = run(compose_program(stack_file_config("dev"), captured), stack="test")
    placement = captured["platform"].placements["gpu-dev"]
    overlays = {o.inputs["metadata"]["name"]: o.inputs["spec"]["capacity"] for o in recording.of_type(NODE_OVERLAY)}
    mps = captured["platform"].placements["gpu-dev-mps"]
    assert len(overlays) == len(placement.instance_types) + len(mps.instance_types) == 8 + 3
    for instance in placement.instance_types:
        assert overlays[f"gpu-dev-{instance.name.replace('.', '-')}"] == {"nvidia.com/gpu.shared": str(instance.gpus * 4)}
    # The MPS pool's overlays: 4 MPS clients on the one L4 of each g6 size.
    assert {name: capacity for name, capacity in overlays.items() if name.startswith("gpu-dev-mps-")} == {
        "gpu-dev-mps-g6-xlarge": {"nvidia.com/gpu.shared": "4"},
        "gpu-dev-mps-g6-2xlarge": {"nvidia.com/gpu.shared": "4"},
        "gpu-dev-mps-g6-4xlarge": {"nvidia.com/gpu.shared": "4"},
    }
    assert release_values(recording)["settings"]["featureGates"] == {"nodeOverlay": True}
    grace = {p.inputs["metadata"]["name"]: p.inputs["spec"]["template"]["spec"]["terminationGracePeriod"]
             for p in recording.of_type(NODE_POOL)}
    assert grace == {"gpu-dev": "1h", "gpu-dev-mps": "1h"}


def test_single_mig_strategy_and_whole_gpus_leave_the_feature_gate_off(run, prod_config):
    config = prod_config.model_copy(update={
        "gpu_operator": prod_config.gpu_operator.model_copy(update={"mig_strategy": "single"}),
    })
    captured: dict = {}
    recording = run(compose_program(config, captured), stack="test")
    assert recording.of_type(NODE_OVERLAY) == []
    assert "featureGates" not in release_values(recording)["settings"]
    mig = captured["platform"].placements["serving-mig"]
    # The pool is built with the operator's strategy, so its placement names the advertised resource.
    assert (mig.mig_strategy, mig.gpu_resource) == ("single", "nvidia.com/gpu")
    assert gpu_pools.configured_placements(config)["serving-mig"].gpu_resource == "nvidia.com/gpu"
    assert gpu_pools.configured_placements(prod_config)["serving-mig"].gpu_resource == "nvidia.com/mig-1g.10gb"
    assert gpu_pools.needs_node_overlays(prod_config) and not gpu_pools.needs_node_overlays(config)


def test_placements_are_built_once_per_config_for_every_cross_check(monkeypatch):
    """serving, tenancy and ray all check workloads against the pools' placements: one parse builds
    them once (the section validators' own checks aside), a changed copy of the config anew."""
    raw = stack_config("prod")  # (reading it parses it too)
    built: list[str] = []
    original = gpu_pools.pool_spec

    def counting(name, args, **kwargs):
        if "mig_strategy" in args:  # pool_args, as configured_placements and compose call it
            built.append(name)
        return original(name, args, **kwargs)

    monkeypatch.setattr(gpu_pools, "pool_spec", counting)
    config = parse_stack_config(raw)
    assert sorted(built) == ["batch", "multi-node", "serving", "serving-mig"]
    first = gpu_pools.configured_placements(config)
    first.pop("serving")  # a caller's copy: the next caller still sees every pool
    assert list(gpu_pools.configured_placements(config)) == ["serving", "serving-mig", "multi-node", "batch"]
    assert gpu_pools.needs_node_overlays(config)
    assert len(built) == 4

    single = config.model_copy(update={"gpu_operator": config.gpu_operator.model_copy(update={"mig_strategy": "single"})})
    assert gpu_pools.configured_placements(single)["serving-mig"].mig_strategy == "single"
    assert len(built) == 8
