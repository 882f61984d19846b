"""The offline harness's wire conversions are exact: ``to_struct`` builds the message
``json_format.ParseDict`` builds (byte for byte), ``struct_to_dict`` gives what ``MessageToDict``
gives (key order included), ``identical`` only pairs data that marshal alike, and a policy reading
through the fast path's lazily built proxy sees what the servicer's own proxy shows."""

from __future__ import annotations

import copy
import gc
import json
import math
from types import MappingProxyType
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2
from hypothesis import given, settings
from hypothesis import strategies as st
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

from gpufleet.policies import wire
from gpufleet.policies.analyzer import AnalyzerResource, PolicyAnalyzer, analyze_recording
from gpufleet.policies.core import UNKNOWN_SENTINELS
from gpufleet.policies.pack import SUBJECTS, UNKNOWN, plain_props

SECRET = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "s3cr3t"}
UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
REFERENCE = {"4dabf18193072939515e22adb298388d": "5cf8f73096256a8f31e491e813e4eb8e",
             "urn": "urn:pulumi:s::p::aws:iam/role:Role::r", "id": "r-1234", "packageVersion": ""}

_keys = st.one_of(st.sampled_from(["a", "b", "spec", "__internal", "__defaults", "kind", ""]), st.text(max_size=6))
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=False, allow_infinity=False), st.just(-0.0),
    st.text(max_size=8), st.sampled_from(sorted(UNKNOWN_SENTINELS)),
)
_json = st.recursive(
    _scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.lists(children, max_size=3).map(tuple),
                               st.dictionaries(_keys, children, max_size=5)),
    max_leaves=25,
)
_objects = st.dictionaries(_keys, _json, max_size=6)


def _parse_dict(properties: Any) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    json_format.ParseDict(wire._without_internal_keys(properties), struct)
    return struct


def _ordered(value: Any) -> Any:
    """``value`` with every dict's key order made visible (dict equality ignores it)."""
    if isinstance(value, dict):
        return [(k, _ordered(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_ordered(v) for v in value]
    return (type(value).__name__, repr(value))


# -- properties → Struct ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(_objects)
def test_to_struct_builds_the_message_parse_dict_builds(properties):
    assert wire.to_struct(properties).SerializeToString() == _parse_dict(properties).SerializeToString()


@pytest.mark.parametrize("properties", [
    {}, {"a": {}}, {"a": []}, {"a": [{}]}, {"a": [[]]}, {"a": None}, {"a": ()},
    {"__defaults": [], "a": {"__inner": 1, "b": 2}}, {"a": [1, True, 1.5, -0.0, "x", None]},
    {"secret": SECRET, "unknown": UNKNOWN_STRING},
    {"role": REFERENCE, "roles": [REFERENCE, {**REFERENCE, "id": ""}, {**REFERENCE, "id": "", "urn": ""}]},
])
def test_to_struct_marks_empty_values_drops_internal_keys_and_downgrades_references_as_before(properties):
    assert wire.to_struct(properties).SerializeToString() == _parse_dict(properties).SerializeToString()


def test_to_struct_leaves_anything_but_plain_data_to_parse_dict():
    nested = {"a": MappingProxyType({"b": 1, "__c": 2}), "d": [MappingProxyType({"e": "f"})]}
    assert wire.to_struct(MappingProxyType(nested)).SerializeToString() == _parse_dict(nested).SerializeToString()
    with pytest.raises(json_format.ParseError, match="unexpected type"):
        wire.to_struct({"a": object()})
    with pytest.raises(json_format.ParseError):
        wire.to_struct(REFERENCE)


# -- Struct → dict ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(_objects)
def test_struct_to_dict_gives_what_message_to_dict_gives_key_order_included(properties):
    struct = _parse_dict(properties)
    assert _ordered(wire.struct_to_dict(struct)) == _ordered(json_format.MessageToDict(struct))


def test_struct_to_dict_refuses_what_message_to_dict_refuses():
    for number in (math.inf, -math.inf, math.nan):
        struct = struct_pb2.Struct()
        struct.fields["a"].list_value.values.add().number_value = number
        with pytest.raises(ValueError) as theirs:
            json_format.MessageToDict(struct)
        with pytest.raises(ValueError) as ours:
            wire.struct_to_dict(struct)
        assert str(ours.value) == str(theirs.value)


def test_an_unset_value_reads_as_none_as_message_to_dict_reads_it():
    struct = struct_pb2.Struct()
    struct.fields["a"].Clear()
    assert wire.struct_to_dict(struct) == json_format.MessageToDict(struct) == {"a": None}


# -- identical -------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(_objects, _objects)
def test_identical_data_marshal_to_the_same_bytes(a, b):
    assert wire.identical(a, copy.deepcopy(a))
    if wire.identical(a, b):
        assert wire.to_struct(a).SerializeToString() == wire.to_struct(b).SerializeToString()


@pytest.mark.parametrize("a, b", [
    ({"a": 1, "b": 2}, {"b": 2, "a": 1}),  # key order: another message
    ({"a": 1}, {"a": 1.0}), ({"a": True}, {"a": 1.0}), ({"a": 0.0}, {"a": -0.0}),
    ({"a": [1]}, {"a": (1,)}), ({"a": "x"}, {"a": "y"}), ({"a": {"b": None}}, {"a": {"b": ""}}),
])
def test_identical_tells_apart_what_equality_does_not(a, b):
    assert not wire.identical(a, b)


# -- the fast path's proxy and conversions ---------------------------------------------------------


def test_gpufleet_reads_the_same_unknown_sentinels_as_pulumi_policy():
    from pulumi_policy import proxy

    assert UNKNOWN_SENTINELS == {value for name, value in vars(proxy).items() if name.startswith("UNKNOWN_") and name.endswith("_VALUE")}


def _reader(name: str, path: tuple[str, ...]) -> ResourceValidationPolicy:
    """A plain ``pulumi_policy`` policy (not one of gpufleet's) that reads ``path`` through the
    proxy it is handed, with the Mapping methods a policy uses, and reports what it saw."""

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        node: Any = args.props
        seen = [sorted(node.keys()), len(node), "spec" in node, repr(node.get("missing"))]
        for key in path:
            node = node[key]
        report_violation(json.dumps([seen, node if isinstance(node, (str, int, float, bool)) else list(node)]), None)

    return ResourceValidationPolicy(name=name, description=f"reads {'.'.join(path)}", validate=validate,
                                    enforcement_level=EnforcementLevel.ADVISORY)


def test_a_policy_reading_through_the_fast_path_proxy_sees_what_the_servicer_proxy_shows():
    properties = {"spec": {"replicas": 2, "image": "vllm", "token": SECRET, "host": UNKNOWN_STRING,
                           "ports": [80, 443]}, "kind": "Deployment"}
    resource = AnalyzerResource("urn:pulumi:test::p::kubernetes:apps/v1:Deployment::d",
                                "kubernetes:apps/v1:Deployment", "d", properties)
    analyzer = PolicyAnalyzer([
        _reader("reads-replicas", ("spec", "replicas")), _reader("reads-secret", ("spec", "token")),
        _reader("reads-ports", ("spec", "ports")), _reader("reads-unknown", ("spec", "host")),
    ])
    analyzer.configure()
    fast, plain = analyzer.analyze(resource, fast=True), analyzer.analyze(resource, fast=False)
    assert list(fast.diagnostics) == list(plain.diagnostics)
    messages = {d.policyName: d.message for d in plain.diagnostics}
    assert '2.0' in messages["reads-replicas"] and '"s3cr3t"' in messages["reads-secret"]
    assert "[80.0, 443.0]" in messages["reads-ports"]
    assert "can't run policy 'reads-unknown'" in messages["reads-unknown"]
    assert "string value at .spec.host can't be known during preview" in messages["reads-unknown"]


def test_the_fast_path_hands_gpufleet_plain_data_with_secrets_revealed_and_unknowns_marked():
    seen: list[Any] = []
    requests = []
    for properties in ({"a": {"b": ["x", 1.0]}}, {"a": SECRET, "b": [UNKNOWN_STRING]}):
        request = analyzer_pb2.AnalyzeRequest(type="t", urn="urn:pulumi:s::p::t::n", name="n")
        request.properties.MergeFromString(wire.to_struct(properties).SerializeToString())
        requests.append(request)

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        seen.append(SUBJECTS.get(args.resource_type, args.name, args.urn, args.props).props)

    analyzer = PolicyAnalyzer([ResourceValidationPolicy(name="p", description="d", validate=validate)])
    analyzer.configure()
    with wire.shared_conversion(analyzer.servicer) as shared:
        for request in requests:
            analyzer.servicer.Analyze(request, None)
            shared.end_call()
    assert seen[0] == {"a": {"b": ["x", 1.0]}}
    assert seen[1] == {"a": "s3cr3t", "b": [UNKNOWN]}
    assert plain_props(seen[1]) == seen[1]


def test_each_distinct_content_is_converted_once_for_every_policy_and_call(monkeypatch):
    conversions = []
    original = wire._struct_dict

    def counting(struct: Any, root: Any, flags: list[int]) -> Any:
        if struct is root:
            conversions.append(struct.SerializeToString())
        return original(struct, root, flags)

    monkeypatch.setattr(wire, "_struct_dict", counting)
    same = {"spec": {"replicas": 2}}
    resources = [AnalyzerResource(f"urn:pulumi:s::p::kubernetes:apps/v1:Deployment::d{i}", "kubernetes:apps/v1:Deployment",
                                  f"d{i}", same if i % 2 else {"spec": {"replicas": 10 + i}}) for i in range(6)]
    analyzer = PolicyAnalyzer(production=True)
    analyzer.configure()
    with wire.shared_conversion(analyzer.servicer):
        for resource in resources:
            analyzer.analyze(resource, fast=True)
        analyzer.analyze_stack(resources, fast=True)
    assert len(conversions) == len(set(conversions)) == 4  # {replicas: 2}, and 10, 12, 14: once each


def test_the_analysis_leaves_the_garbage_collector_as_it_found_it(run):
    import pulumi_kubernetes as k8s

    recording = run(lambda: k8s.core.v1.Namespace("ns", metadata={"name": "serving"}))
    assert gc.isenabled()
    analyze_recording(recording, production=False)
    assert gc.isenabled()
    gc.disable()
    try:
        analyze_recording(recording, production=False)
        assert not gc.isenabled()
    finally:
        gc.enable()
