"""The stack configuration model: valid stacks parse, every invalid one names its fields."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpufleet.infra.config import (
    EKS_SUPPORTED_VERSIONS,
    SECRET_STAND_IN,
    ConfigError,
    StackConfig,
    parse_stack_config,
)
from gpufleet.infra.stack_file import config_map_from_stack_file, secure_keys_of_stack_file
from tests.harness import BASE_CONFIG, stack_config, with_config


def problems(raw) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw)
    return caught.value.problems


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_repository_stacks_are_valid(stack):
    config = parse_stack_config(stack_config(stack))
    assert isinstance(config, StackConfig)
    assert config.environment == stack
    assert config.kubernetes_version in EKS_SUPPORTED_VERSIONS


def test_prod_stack_is_private_and_fully_logged():
    config = parse_stack_config(stack_config("prod"))
    assert config.cluster.endpoint_public_access is False
    assert config.cluster.secrets_encryption is True
    assert set(config.cluster.log_types) == {"api", "audit", "authenticator", "controllerManager", "scheduler"}
    assert config.network.nat_gateways == "perAz" and config.network.az_count == 3


def test_defaults_are_the_secure_ones():
    config = parse_stack_config(BASE_CONFIG)
    assert config.cluster.endpoint_private_access is True
    assert config.cluster.endpoint_public_access is False
    assert config.cluster.secrets_encryption is True
    assert len(config.cluster.log_types) == 5
    assert config.cluster_name("dev") == "gpufleet-dev"


def test_config_is_frozen():
    config = parse_stack_config(BASE_CONFIG)
    with pytest.raises(ValidationError, match="frozen"):
        config.region = "eu-west-1"  # type: ignore[misc]


def test_other_namespaces_are_ignored():
    assert parse_stack_config({**BASE_CONFIG, "aws:region": "eu-west-1", "kubernetes:context": "x"}).region == "us-west-2"


@pytest.mark.parametrize(
    ("key", "value", "path", "reason"),
    [
        ("netwrok", {"cidr": "10.0.0.0/16"}, "gpufleet:netwrok", "unknown key"),
        ("network", {"cidr": "10.0.0.0/16", "azs": 3}, "gpufleet:network.azs", "unknown key"),
        ("network", {"azCount": "three"}, "gpufleet:network.azCount", "must be a number"),
        ("network", {"azCount": 9}, "gpufleet:network.azCount", "less than or equal to 6"),
        ("network", {"azCount": 1}, "gpufleet:network.azCount", "greater than or equal to 2"),
        ("network", {"cidr": "8.8.0.0/16"}, "gpufleet:network.cidr", "private"),
        ("network", {"cidr": "10.0.0.0/8"}, "gpufleet:network.cidr", "/16 and /20"),
        ("network", {"natGateways": "none"}, "gpufleet:network.natGateways", "'perAz' or 'single'"),
        ("kubernetesVersion", "1.29", "gpufleet:kubernetesVersion", "not supported by EKS"),
        ("region", "mars-north-1x", "gpufleet:region", "not an AWS region"),
        ("environment", "production", "gpufleet:environment", "'dev', 'staging' or 'prod'"),
        ("cluster", {"endpointPublicAccess": True}, "gpufleet:cluster", "publicAccessCidrs"),
        ("cluster", {"endpointPublicAccess": True, "publicAccessCidrs": ["0.0.0.0/0"]}, "gpufleet:cluster.publicAccessCidrs", "whole internet"),
        ("cluster", {"endpointPrivateAccess": False}, "gpufleet:cluster", "must be reachable"),
        ("cluster", {"logTypes": ["api", "kubelet"]}, "gpufleet:cluster.logTypes[1]", "'api'"),
        ("cluster", {"systemNodes": {"minSize": 3, "maxSize": 2, "desiredSize": 2}}, "gpufleet:cluster.systemNodes", "minSize <= desiredSize <= maxSize"),
        ("cluster", {"systemNodes": {"instanceTypes": ["huge"]}}, "gpufleet:cluster.systemNodes.instanceTypes", "not an EC2 instance type"),
        ("cluster", {"adminAccess": [{"principalArn": "arn:aws:iam::1:role/x"}]}, "gpufleet:cluster.adminAccess[0].principalArn", "IAM role or user ARN"),
        ("cluster", {"adminAccess": [{"principalArn": "arn:aws:iam::111122223333:role/a", "accessPolicy": "root"}]}, "gpufleet:cluster.adminAccess[0].accessPolicy", "'cluster-admin'"),
        ("tags", {"team": 3}, "gpufleet:tags.team", "valid string"),
    ],
)
def test_each_problem_names_its_field(key, value, path, reason):
    found = problems(with_config(BASE_CONFIG, key, value))
    assert len(found) == 1, found
    assert found[0].startswith(f"{path}: "), found
    assert reason in found[0]


def test_missing_required_keys_are_each_reported():
    found = problems({"gpufleet:environment": "dev"})
    assert found == ["gpufleet:region: required but not set", "gpufleet:kubernetesVersion: required but not set"]


def test_all_problems_are_reported_at_once():
    raw = with_config(with_config(BASE_CONFIG, "kubernetesVersion", "1.20"), "network", {"azCount": 0, "cidr": "1.2.3.4/16"})
    found = problems(raw)
    assert [p.split(":", 2)[1] for p in found] == ["kubernetesVersion", "network.cidr", "network.azCount"]


def test_stack_file_values_become_engine_strings():
    flat = config_map_from_stack_file({"config": {
        "gpufleet:network": {"azCount": 2},
        "gpufleet:cluster": {"endpointPublicAccess": False},
        "kubernetesVersion": "1.35",
        "aws:skipMetadataApiCheck": False,
    }})
    assert flat == {
        "gpufleet:network": '{"azCount": 2}',
        "gpufleet:cluster": '{"endpointPublicAccess": false}',
        "gpufleet:kubernetesVersion": "1.35",
        "aws:skipMetadataApiCheck": "false",
    }


def test_secure_values_become_secret_stand_ins_offline():
    document = {"config": {"gpufleet:hfToken": {"secure": "v1:abc"}, "gpufleet:region": "us-west-2"}}
    assert config_map_from_stack_file(document)["gpufleet:hfToken"] == SECRET_STAND_IN
    assert secure_keys_of_stack_file(document) == ["gpufleet:hfToken"]


def test_a_plain_hf_token_is_refused_and_never_echoed():
    raw = {**BASE_CONFIG, "gpufleet:hfToken": "hf_plaintexttoken"}
    with pytest.raises(ConfigError) as error:
        parse_stack_config(raw, secret_keys=[])
    assert "gpufleet:hfToken: must be a secret" in str(error.value)
    assert "hf_plaintexttoken" not in str(error.value)
    config = parse_stack_config(raw, secret_keys=["gpufleet:hfToken"])
    assert config.hf_token.get_secret_value() == "hf_plaintexttoken"
    assert "hf_plaintexttoken" not in repr(config)


# -- property tests: malformed configuration never escapes as anything but field-named problems ------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10_000) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
sections = st.sampled_from(["network", "cluster", "tags", "region", "kubernetesVersion", "environment", "bogus"])
cluster_keys = st.sampled_from([
    "endpointPublicAccess", "publicAccessCidrs", "logTypes", "systemNodes", "adminAccess", "secretsEncryption", "name", "extra",
])


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(section=sections, value=json_values)
def test_malformed_sections_give_field_named_problems(section, value):
    raw = with_config(BASE_CONFIG, section, value if not isinstance(value, str) else value)
    _assert_valid_or_field_named(raw)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(key=cluster_keys, value=json_values)
def test_malformed_cluster_fields_give_field_named_problems(key, value):
    raw = with_config(BASE_CONFIG, "cluster", {key: value})
    _assert_valid_or_field_named(raw)


def _assert_valid_or_field_named(raw):
    try:
        parse_stack_config(raw)
    except ConfigError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.startswith("gpufleet:"), problem
            path, _, reason = problem.partition(": ")
            assert path and reason, problem
            assert "Traceback" not in problem
    json.dumps(raw)  # the raw map stays engine-shaped
