"""The GPU instance facts table that components and policies check against."""

from __future__ import annotations

import pytest

from gpufleet.components.gpu_instances import FAMILIES, INSTANCE_TYPES, instance_types_of, is_gpu_instance


@pytest.mark.parametrize("family", ["g5", "g6", "g6e", "p4d", "p4de", "p5"])
def test_required_families_are_present(family):
    assert family in FAMILIES


@pytest.mark.parametrize(
    ("name", "gpus", "model", "mig"),
    [("g5.xlarge", 1, "NVIDIA A10G", False), ("g5.48xlarge", 8, "NVIDIA A10G", False), ("g6.12xlarge", 4, "NVIDIA L4", False),
     ("g6e.48xlarge", 8, "NVIDIA L40S", False), ("p4d.24xlarge", 8, "NVIDIA A100 40GB", True),
     ("p4de.24xlarge", 8, "NVIDIA A100 80GB", True), ("p5.48xlarge", 8, "NVIDIA H100 80GB", True)],
)
def test_instance_facts(name, gpus, model, mig):
    fact = INSTANCE_TYPES[name]
    assert (fact.gpus, fact.gpu_model, fact.mig_capable) == (gpus, model, mig)


def test_only_ampere_and_hopper_data_center_gpus_do_mig():
    assert {f.family for f in FAMILIES.values() if f.mig_capable} == {"p4d", "p4de", "p5", "p5e", "p5en"}


def test_non_gpu_types_are_not_in_the_table():
    assert not is_gpu_instance("m7i.xlarge")
    assert is_gpu_instance("g6.xlarge")


def test_instance_types_of_families_and_types():
    chosen = instance_types_of(families=["p4d"], types=["g5.2xlarge", "m7i.large"])
    assert sorted(t.name for t in chosen) == ["g5.2xlarge", "p4d.24xlarge"]
