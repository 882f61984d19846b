"""What keeps a plan's cost per resource flat, asserted without timing anything: the offline engine
records each resource compactly (strings shared, outputs sharing the inputs they repeat) with the
same values ``MessageToDict`` and the mocks give; the program runs with the collector tuned for it
and the caller's settings come back; a plan validates its stack config once."""

from __future__ import annotations

import gc
import math

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest
from google.protobuf import json_format, struct_pb2

from gpufleet.infra import config as config_module
from gpufleet.infra.offline import FakeCloud, run_program
from gpufleet.infra.offline import engine
from tests.harness import REPO


def _strictly_equal(a, b) -> bool:
    """Equal with the same types and the same key order all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_strictly_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_strictly_equal(x, y) for x, y in zip(a, b))
    return a == b


# -- recording: MessageToDict's values, held once -------------------------------------------------


def test_struct_conversion_is_message_to_dict():
    struct = struct_pb2.Struct()
    struct.update({
        "kind": "Job", "replicas": 2, "ratio": 0.25, "negative": -3.5, "on": True, "off": False, "nothing": None,
        "empty": {}, "none": [], "nested": {"list": [1, "two", None, {"three": [3.0, False]}, []], "z": "last", "a": "first"},
        "unknown": "04da6b54-80e4-46f7-96ec-b56ff0331ba9",
        "secret": {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "s3cr3t"},
    })
    struct.fields["unset"].CopyFrom(struct_pb2.Value())  # a Value with no kind: None, as MessageToDict says
    converted = engine._struct_to_dict(struct)
    assert _strictly_equal(converted, json_format.MessageToDict(struct))
    assert list(converted) == list(json_format.MessageToDict(struct))


@pytest.mark.parametrize("number", [math.inf, -math.inf, math.nan])
def test_a_number_json_cannot_carry_fails_as_message_to_dict_fails(number):
    struct = struct_pb2.Struct()
    struct.update({"spec": {"weight": number}})
    with pytest.raises(ValueError) as expected:
        json_format.MessageToDict(struct)
    with pytest.raises(ValueError) as raised:
        engine._struct_to_dict(struct)
    assert str(raised.value) == str(expected.value)


def _two_services() -> None:
    for index in (0, 1):
        k8s.core.v1.ConfigMap(
            f"cm{index}",
            metadata={"name": f"cm{index}", "namespace": "serving", "labels": {"gpufleet.io/variant": "stable"}},
            data={"model": "llama", "index": str(index)},
        )
    aws.iam.Role("role", assume_role_policy='{"Version": "2012-10-17", "Statement": []}', tags={"team": "ml"})


@pytest.fixture(scope="module")
def recording():
    return run_program(_two_services, project="gpufleet", stack="test", config={}, cloud=FakeCloud())


def test_equal_strings_of_different_resources_are_one_object(recording):
    first, second = (next(r for r in recording.resources if r.name == f"cm{i}") for i in (0, 1))
    assert first.inputs["metadata"]["namespace"] is second.inputs["metadata"]["namespace"]
    assert first.inputs["metadata"]["labels"]["gpufleet.io/variant"] is second.inputs["metadata"]["labels"]["gpufleet.io/variant"]
    assert first.inputs["data"]["model"] is second.inputs["data"]["model"]
    assert first.provider is second.provider and first.type is second.type


def test_outputs_share_the_inputs_they_repeat_and_add_what_the_cloud_answers(recording):
    config_map = next(r for r in recording.resources if r.name == "cm0")
    assert config_map.outputs == config_map.inputs and config_map.outputs is not config_map.inputs
    assert config_map.outputs["metadata"] is config_map.inputs["metadata"]
    role = recording.one("aws:iam/role:Role")
    assert role.outputs["tags"] is role.inputs["tags"]
    assert role.outputs["arn"] == f"arn:aws:iam::123456789012:role/{role.outputs['name']}"
    assert "arn" not in role.inputs


def test_the_recording_holds_what_message_to_dict_and_the_mocks_give(monkeypatch):
    """Every resource of the prod stack: inputs as ``MessageToDict`` of the request, outputs as the
    mocks' state, strictly (types and key order)."""
    from pulumi.runtime import rpc

    from gpufleet.infra.offline.plan import Project, plan_stack

    mismatches: list[str] = []
    register = engine._RecordingMonitor.RegisterResource

    def checked(self, request):
        response = register(self, request)
        if request.type != "pulumi:pulumi:Stack":
            resource = self.recorded[-1]
            if not _strictly_equal(resource.inputs, json_format.MessageToDict(request.object)):
                mismatches.append(f"{resource.urn}: inputs")
            args = pulumi.runtime.mocks.MockResourceArgs(
                typ=request.type, name=request.name, inputs=rpc.deserialize_properties(request.object),
                provider=request.provider, resource_id=request.importId, custom=request.custom or False)
            _, state = self.mocks.new_resource(args)
            if not _strictly_equal(resource.outputs, dict(state or {})):
                mismatches.append(f"{resource.urn}: outputs")
        return response

    monkeypatch.setattr(engine._RecordingMonitor, "RegisterResource", checked)
    plan = plan_stack(Project.find(REPO), "prod")
    assert len(plan.recording.resources) > 150
    assert mismatches == []


def test_plain_requests_get_the_struct_the_sdk_would_answer(monkeypatch):
    """Where the engine answers a registration itself (plain JSON properties), the response is the
    one the SDK's mock monitor gives: same values, same key order, for every resource of prod."""
    from pulumi.runtime import rpc
    from pulumi.runtime.proto import resource_pb2
    from pulumi.runtime.sync_await import _sync_await

    from gpufleet.infra.offline.plan import Project, plan_stack

    answered: list[str] = []
    mismatches: list[str] = []
    plain_register = engine._RecordingMonitor._register_plain

    def checked(self, request, inputs):
        response = plain_register(self, request, inputs)
        answered.append(request.type)
        args = pulumi.runtime.mocks.MockResourceArgs(
            typ=request.type, name=request.name, inputs=rpc.deserialize_properties(request.object),
            provider=request.provider, resource_id=request.importId, custom=request.custom or False)
        sdk_id, state = self.mocks.new_resource(args)
        expected = resource_pb2.RegisterResourceResponse(  # as the SDK answers: the Struct copied in
            urn=response.urn, id=sdk_id, object=_sync_await(rpc.serialize_properties(state, {}))).object
        if response.id != sdk_id or not _strictly_equal(json_format.MessageToDict(response.object),
                                                         json_format.MessageToDict(expected)):
            mismatches.append(response.urn)
        return response

    monkeypatch.setattr(engine._RecordingMonitor, "_register_plain", checked)
    plan_stack(Project.find(REPO), "prod")
    assert {"kubernetes:batch/v1:Job", "aws:iam/role:Role", "pulumi:providers:kubernetes"} <= set(answered)
    assert mismatches == []


# -- the collector --------------------------------------------------------------------------------


def test_the_program_runs_with_the_collector_tuned_and_the_callers_settings_come_back():
    seen: list[tuple[int, int, int]] = []
    saved = gc.get_threshold()
    gc.set_threshold(700, 11, 12)
    try:
        run_program(lambda: seen.append(gc.get_threshold()), project="gpufleet", stack="test", config={})
        assert seen == [(10_000, 11, 100)] and engine.PROGRAM_GC_THRESHOLDS == (10_000, 10, 100)
        assert gc.get_threshold() == (700, 11, 12)
    finally:
        gc.set_threshold(*saved)


def test_the_settings_come_back_when_the_program_fails():
    saved = gc.get_threshold()

    def failing() -> None:
        raise RuntimeError("boom")

    with pytest.raises(Exception, match="boom"):
        run_program(failing, project="gpufleet", stack="test", config={})
    assert gc.get_threshold() == saved


# -- the stack config -----------------------------------------------------------------------------


def _counting_validations(monkeypatch) -> list[int]:
    calls: list[int] = []
    problems = config_module.namespace_problems  # the first step of every validation
    monkeypatch.setattr(config_module, "namespace_problems", lambda *a: calls.append(1) or problems(*a))
    return calls


def test_a_plan_validates_its_stack_config_once(monkeypatch):
    """``gpufleet plan`` reads the config in the CLI, in ``plan_stack`` and in the program: one
    validation (with a thousand services each walks them all)."""
    from gpufleet.infra.offline.plan import Project, plan_stack

    calls = _counting_validations(monkeypatch)
    project = Project.find(REPO)
    plan_stack(project, "dev")
    project.stack_config("dev")  # as the CLI does afterwards
    assert len(calls) == 1
    assert config_module._REMEMBERED == {}


def test_outside_a_plan_every_call_validates(monkeypatch):
    from gpufleet.infra.offline.plan import Project

    project = Project.find(REPO)
    config, _ = project.validated_config("prod")
    calls = _counting_validations(monkeypatch)
    config_module.parse_stack_config(config)
    config_module.parse_stack_config(config, secret_keys=project.secret_keys("prod"), project=project.name)
    Project.find(REPO).stack_config("prod")  # another project object: validated anew
    assert len(calls) == 3


def test_a_changed_stack_file_is_validated_again(tmp_path, monkeypatch):
    from gpufleet.infra.offline.plan import PlanInputError, Project

    (tmp_path / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text())
    (tmp_path / "stacks").mkdir()
    stack_file = tmp_path / "stacks" / "Pulumi.dev.yaml"
    stack_file.write_text((REPO / "stacks" / "Pulumi.dev.yaml").read_text())
    project = Project(tmp_path, "gpufleet", REPO / "infra", tmp_path / "stacks")
    calls = _counting_validations(monkeypatch)
    project.stack_config("dev")
    project.stack_config("dev")
    assert len(calls) == 1
    stack_file.write_text(stack_file.read_text().replace("gpufleet:environment: dev", "gpufleet:environment: nowhere"))
    with pytest.raises(PlanInputError):
        project.stack_config("dev")
    assert len(calls) == 2
