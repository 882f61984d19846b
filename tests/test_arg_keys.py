"""Every component refuses argument keys its ``<X>Args`` TypedDict does not declare, naming the
component, the key and the nearest valid key, before anything is registered."""

from __future__ import annotations

import typing

import pulumi
import pytest

import gpufleet.components as components
from gpufleet.components._validate import check_arg_keys, typed_dict_keys
from gpufleet.components.network import NetworkArgs
from gpufleet.components.ray_cluster import RayPodArgs
from gpufleet.components.ray_job import RayJobArgs


def _component_classes() -> list[type]:
    return sorted(
        (obj for obj in (getattr(components, name) for name in components.__all__)  # imported on first use
         if isinstance(obj, type) and issubclass(obj, pulumi.ComponentResource)),
        key=lambda cls: cls.__name__,
    )


def _args_type(cls: type) -> type:
    """The TypedDict a component's constructor takes (``Optional[...]`` unwrapped)."""
    hint = typing.get_type_hints(cls.__init__)["args"]
    candidates = [a for a in (typing.get_args(hint) or (hint,)) if a is not type(None)]
    (args_type,) = candidates
    return args_type


COMPONENTS = _component_classes()


def test_every_exported_component_is_covered():
    names = {cls.__name__ for cls in COMPONENTS}
    assert len(COMPONENTS) == 29
    assert {"Network", "Cluster", "Karpenter", "GpuNodePool", "InferenceService", "RayJob", "Team"} <= names


@pytest.mark.parametrize("cls", COMPONENTS, ids=lambda cls: cls.__name__)
def test_misspelt_key_is_refused_with_the_nearest_valid_key(cls):
    args_type = _args_type(cls)
    key = sorted(typed_dict_keys(args_type), key=len)[-1]  # the longest key: its typo stays closest to it
    typo = key[:-1]  # its last letter dropped
    with pytest.raises(ValueError) as caught:
        cls("x", {typo: "anything"})
    message = str(caught.value)
    assert message.endswith(f"{cls.__name__}: unknown argument {typo!r} (did you mean {key!r}?)"), message
    assert message.startswith("gpufleet:")


def test_network_az_cout_example():
    with pytest.raises(ValueError, match=r"Network: unknown argument 'az_cout' \(did you mean 'az_count'\?\)$"):
        components.Network("net", {"cluster_name": "ml", "az_cout": 3})  # type: ignore[typeddict-unknown-key]


def test_a_key_like_nothing_lists_the_valid_keys():
    with pytest.raises(ValueError) as caught:
        check_arg_keys({"cluster_name": "ml", "zzz": 1}, NetworkArgs, name="Network")
    assert str(caught.value) == (
        "Network: unknown argument 'zzz' (NetworkArgs takes availability_zones, az_count, cidr_block, "
        "cluster_name, nat_gateways, tags)"
    )


def test_inherited_and_optional_keys_are_valid():
    keys = typed_dict_keys(RayJobArgs)
    assert typed_dict_keys(RayPodArgs) < keys
    assert {"entrypoint", "worker_groups", "placement"} <= keys
    check_arg_keys({key: None for key in keys}, RayJobArgs, name="RayJob")


def test_arguments_must_be_a_mapping_and_none_means_defaults():
    with pytest.raises(TypeError, match=r"^Network: arguments must be a NetworkArgs dictionary, got list$"):
        check_arg_keys([("cluster_name", "ml")], NetworkArgs, name="Network")
    check_arg_keys(None, NetworkArgs, name="Network")
    with pytest.raises(TypeError, match="not a TypedDict"):
        typed_dict_keys(dict)
