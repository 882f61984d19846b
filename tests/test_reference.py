"""docs/configuration.md and docs/stack.schema.json are generated from the configuration models,
current, complete, and accept the reference stacks."""

from __future__ import annotations

import copy
import json
import typing

import jsonschema
import pytest
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from gpufleet.infra.cli import app
from gpufleet.infra.config import EKS_SUPPORTED_VERSIONS, StackConfig
from gpufleet.infra.reference import REFERENCE_FILE, REGENERATE, SCHEMA_FILE, configuration_reference, schema_text, stack_schema
from tests.harness import REPO

STALE = f"is stale: the configuration models changed. Regenerate it with `{REGENERATE}` and commit the result"


def test_configuration_reference_is_current():
    assert (REPO / REFERENCE_FILE).read_text() == configuration_reference(), f"{REFERENCE_FILE} {STALE}"


def test_stack_schema_is_current():
    assert (REPO / SCHEMA_FILE).read_text() == schema_text(), f"{SCHEMA_FILE} {STALE}"


def _leaf_paths(model: type[BaseModel], prefix: str) -> typing.Iterator[str]:
    """Every key path of ``model`` the way YAML spells it, independent of the generator."""
    for name, info in model.model_fields.items():
        path = f"{prefix}{info.alias or name}"
        yield path
        for nested, is_list in _nested_models(info.annotation):
            yield from _leaf_paths(nested, f"{path}[]." if is_list else f"{path}.")


def _nested_models(annotation: typing.Any, in_list: bool = False) -> typing.Iterator[tuple[type[BaseModel], bool]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, in_list
        return
    origin = typing.get_origin(annotation)
    for argument in typing.get_args(annotation):
        yield from _nested_models(argument, in_list or origin in (tuple, list))


def test_every_key_is_documented_with_a_description():
    reference = configuration_reference()
    rows = {line.split(" | ")[0].strip("| `"): line for line in reference.splitlines() if line.startswith("| `gpufleet:")}
    paths = [f"gpufleet:{path}" for path in _leaf_paths(StackConfig, "")]
    assert len(paths) > 200
    missing = [path for path in paths if path not in rows]
    assert missing == []
    undescribed = [path for path in paths if rows[path].rstrip(" |").endswith("|")]
    assert undescribed == []


def test_reference_rows_show_type_default_and_meaning():
    rows = {line.split(" | ")[0].strip("| `"): line for line in configuration_reference().splitlines() if line.startswith("| `")}
    assert rows["gpufleet:network.azCount"] == (
        "| `gpufleet:network.azCount` | integer, 2–6 | `3` | Availability zones to spread subnets over "
        "(EKS needs at least 2). Default 3. |"
    )
    assert "| one of `perAz`, `single` | `\"perAz\"` |" in rows["gpufleet:network.natGateways"]
    assert "| **required** |" in rows["gpufleet:gpuPools[].limits.gpus"]
    assert "one of " + ", ".join(f"`{v}`" for v in EKS_SUPPORTED_VERSIONS) in rows["gpufleet:kubernetesVersion"]
    assert "| secret string | none |" in rows["gpufleet:hfToken"]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((REPO / SCHEMA_FILE).read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("stack", ["dev", "prod", "options", "automode"])
def test_reference_stacks_validate_and_point_at_the_schema(stack, validator):
    path = REPO / "stacks" / f"Pulumi.{stack}.yaml"
    first_line = path.read_text().splitlines()[0]
    assert first_line == f"# yaml-language-server: $schema=../{SCHEMA_FILE}"
    assert (path.parent / first_line.split("=", 1)[1]).resolve() == (REPO / SCHEMA_FILE).resolve()
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


@pytest.mark.parametrize(("mutate", "where", "expected"), [
    (lambda c: c["gpufleet:network"].update(azCout=3), ["config", "gpufleet:network"], "'azCout' was unexpected"),
    (lambda c: c.update({"gpufleet:colour": "blue"}), ["config"], "'gpufleet:colour' does not match any of the regexes"),
    (lambda c: c["gpufleet:network"].update(azCount=9), ["config", "gpufleet:network", "azCount"], "9 is greater than the maximum of 6"),
    (lambda c: c.update({"gpufleet:kubernetesVersion": "1.27"}), ["config", "gpufleet:kubernetesVersion"], "'1.27' is not one of"),
    (lambda c: c.pop("gpufleet:region"), ["config"], "'gpufleet:region' is a required property"),
    (lambda c: c.update({"gpufleet:hfToken": "hf_plain"}), ["config", "gpufleet:hfToken"], "'hf_plain' is not of type 'object'"),
])
def test_schema_refuses_what_gpufleet_refuses(validator, mutate, where, expected):
    document = yaml.safe_load((REPO / "stacks" / "Pulumi.prod.yaml").read_text())
    broken = copy.deepcopy(document)
    mutate(broken["config"])
    errors = list(validator.iter_errors(broken))
    assert [(list(e.absolute_path), expected in e.message) for e in errors] == [(where, True)], [e.message for e in errors]


def test_schema_leaves_other_namespaces_alone(validator):
    document = yaml.safe_load((REPO / "stacks" / "Pulumi.dev.yaml").read_text())
    document["config"].update({"aws:region": "eu-west-1", "myprogram:replicas": 3, "gpufleet:hfToken": {"secure": "v1:abc"}})
    assert list(validator.iter_errors(document)) == []


def test_cli_prints_the_schema_and_the_reference():
    runner = CliRunner()
    schema = runner.invoke(app, ["schema", "stack"])
    assert schema.exit_code == 0
    assert json.loads(schema.output) == stack_schema()
    docs = runner.invoke(app, ["docs", "config"])
    assert docs.exit_code == 0
    assert docs.output == configuration_reference()
