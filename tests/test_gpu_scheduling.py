"""``GpuPlacement``: labels, taints, resource names and per-node capacity for each sharing mode, as
every workload component and the policies read them."""

from __future__ import annotations

import pytest

from gpufleet.components.gpu_instances import INSTANCE_TYPES, instance_types_of
from gpufleet.components.gpu_scheduling import GpuPlacement, mig_slices

P4DE, P5_4X, G5_12X = INSTANCE_TYPES["p4de.24xlarge"], INSTANCE_TYPES["p5.4xlarge"], INSTANCE_TYPES["g5.12xlarge"]


def placement(families, **kwargs) -> GpuPlacement:
    return GpuPlacement("pool", tuple(instance_types_of(families)), **kwargs)


def test_whole_gpu_pool_labels_taint_and_tolerations_agree():
    pool = placement(["g6e"])
    assert pool.node_labels() == {"accelerator": "nvidia-gpu", "gpufleet.io/gpu-pool": "pool"}
    assert pool.node_selector() == {"gpufleet.io/gpu-pool": "pool"}
    assert pool.taints() == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    assert pool.tolerations() == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert (pool.gpu_resource, pool.max_resources_per_node) == ("nvidia.com/gpu", 8)


def test_time_slicing_renames_the_resource_and_multiplies_capacity():
    pool = placement(["g5"], sharing="time-slicing", time_slicing_replicas=4)
    assert pool.node_labels()["nvidia.com/device-plugin.config"] == "pool-time-slicing"
    assert pool.gpu_resource == "nvidia.com/gpu.shared"
    assert pool.gpu_resources_per_node(G5_12X) == 16
    assert pool.max_resources_per_node == 32  # g5.48xlarge: 8 GPUs x 4


@pytest.mark.parametrize(("strategy", "resource", "ceiling"), [
    ("mixed", "nvidia.com/mig-1g.10gb", 56),
    # Slices are advertised as nvidia.com/gpu, but Karpenter sizes a new node by physical GPUs.
    ("single", "nvidia.com/gpu", 8),
])
def test_mig_resource_and_pod_ceiling_follow_the_strategy(strategy, resource, ceiling):
    pool = placement(["p4de"], sharing="mig", mig_profile="1g.10gb", mig_strategy=strategy)
    assert pool.node_labels()["nvidia.com/mig.config"] == "all-1g.10gb"
    assert pool.gpu_resource == resource
    assert pool.gpu_resources_per_node(P4DE) == 56
    assert pool.max_resources_per_node == ceiling


def test_mig_slices_depend_on_gpu_memory_and_capability():
    assert mig_slices(P4DE, "1g.10gb") == 56       # A100 80GB: 7 per GPU
    assert mig_slices(INSTANCE_TYPES["p4d.24xlarge"], "1g.10gb") == 32  # A100 40GB: 4 per GPU
    assert mig_slices(P5_4X, "3g.40gb") == 2
    assert mig_slices(G5_12X, "1g.10gb") == 0       # A10G cannot run MIG
    assert placement(["p4de", "p5"]).mig_capable and not placement(["p5", "g6e"]).mig_capable
