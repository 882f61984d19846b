"""The CrossGuard pack: policies built from the rules, driven through ``pulumi_policy``'s real analyzer
servicer with the protobuf requests the engine sends (GetAnalyzerInfo, Configure, Analyze,
AnalyzeStack), floats for numbers and unknowns during preview; and the plan integration."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path
from typing import Iterator

import pytest
import yaml

import gpufleet
from google.protobuf import json_format
from pulumi.runtime import rpc
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy
from typer.testing import CliRunner

from gpufleet.policies import rules as rules_module
from gpufleet.policies.analyzer import (
    AnalyzerResource,
    PolicyAnalyzer,
    PolicyConfigError,
    analyze_recording,
    diagnostic_violation,
)
from gpufleet.policies.core import Rule, RuleContext, Subject, as_number, is_unknown
from gpufleet.policies.pack import (
    PACK_NAME,
    UNKNOWN,
    build_policies,
    plain_props,
    production_from_environ,
    stack_policy_name,
)
from gpufleet.policies.rules import RULES
from tests.harness import REPO

PACK_DIR = REPO / "policies" / "packs" / "gpu-production"

# -- a small rule set: the harness mechanics, independent of gpufleet's own rules ------------------

SEEN: list[Subject] = []


def _replicas(subject: Subject, context: RuleContext) -> Iterator[str]:
    SEEN.append(subject)
    if not subject.is_a("apps", "Deployment"):
        return
    replicas = subject.spec.get("replicas")
    if is_unknown(replicas):
        return
    number = as_number(replicas)
    if number is not None and number > as_number(context["maxReplicas"]):
        yield f"runs {number:g} replicas, more than {as_number(context['maxReplicas']):g}"


def _one_namespace(subjects, context: RuleContext):
    namespaces = [s for s in subjects if s.is_a("", "Namespace")]
    for extra in namespaces[1:]:
        yield extra, f"a second namespace ({len(namespaces)} in all)"


SMALL = "small-deployments"
SINGLE = "single-namespace"
SMALL_RULES = (
    Rule(SMALL, "Deployments run a few replicas.", "advisory", production_enforcement="mandatory",
         settings_schema={"maxReplicas": {"type": "integer", "minimum": 1, "description": "Most replicas."}},
         defaults={"maxReplicas": 3}, check_resource=_replicas),
    Rule(SINGLE, "One namespace per stack.", "mandatory", check_stack=_one_namespace),
)


def deployment(replicas, name="web", namespace="apps") -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}},
    }


def k8s_resource(manifest: dict, name: str = "") -> AnalyzerResource:
    type_token = Subject.from_manifest(manifest).type
    name = name or manifest["metadata"]["name"]
    return AnalyzerResource(f"urn:pulumi:test::gpufleet::{type_token}::{name}", type_token, name, manifest)


@pytest.fixture
def small() -> PolicyAnalyzer:
    SEEN.clear()
    analyzer = PolicyAnalyzer(rules=SMALL_RULES)
    analyzer.configure(None)
    return analyzer


# -- policies built from rules ---------------------------------------------------------------------

def test_every_rule_becomes_a_policy_with_its_description_and_config_schema():
    assert RULES, "gpufleet.policies.rules.RULES is empty"
    policies = build_policies()
    by_name = {p.name: p for p in policies}
    assert len(by_name) == len(policies), "policy names are unique within a pack"
    for rule in RULES:
        if rule.check_resource is not None:
            policy = by_name[rule.name]
            assert isinstance(policy, ResourceValidationPolicy)
        if rule.check_stack is not None:
            policy = by_name[stack_policy_name(rule)]
            assert isinstance(policy, StackValidationPolicy)
        assert policy.description == rule.description
        assert policy.enforcement_level == EnforcementLevel(rule.default_enforcement(False))
        assert set(policy.config_schema.properties) == {*rule.settings_schema, "exempt", "assume"}
        for key, default in rule.defaults.items():
            assert policy.config_schema.properties[key]["default"] == json.loads(json.dumps(default, default=list))
        assert policy.config_schema.properties["exempt"]["default"] == []


def test_production_changes_default_levels_only_where_a_rule_says_so():
    dev = {p.name: p.enforcement_level for p in build_policies(SMALL_RULES, production=False)}
    prod = {p.name: p.enforcement_level for p in build_policies(SMALL_RULES, production=True)}
    assert dev == {SMALL: EnforcementLevel.ADVISORY, SINGLE: EnforcementLevel.MANDATORY}
    assert prod == {SMALL: EnforcementLevel.MANDATORY, SINGLE: EnforcementLevel.MANDATORY}


def test_get_analyzer_info_reports_policies_levels_types_and_schemas(small):
    info = small.get_analyzer_info()
    assert info.name == PACK_NAME and info.supportsConfig
    policies = {p.name: p for p in info.policies}
    assert set(policies) == {SMALL, SINGLE}
    assert policies[SMALL].policy_type == analyzer_pb2.POLICY_TYPE_RESOURCE
    assert policies[SINGLE].policy_type == analyzer_pb2.POLICY_TYPE_STACK
    assert policies[SMALL].enforcementLevel == analyzer_pb2.ADVISORY
    assert policies[SINGLE].enforcementLevel == analyzer_pb2.MANDATORY
    schema = json_format.MessageToDict(policies[SMALL].configSchema.properties)
    assert schema["maxReplicas"] == {"type": "integer", "minimum": 1, "description": "Most replicas.", "default": 3}


def test_pack_main_only_serves_the_built_policies():
    """``PolicyPack(...)`` blocks forever, so the pack's __main__.py cannot be imported by a test:
    read it instead. It builds the policies with build_policies and constructs the one PolicyPack."""
    source = (PACK_DIR / "__main__.py").read_text()
    tree = ast.parse(source)
    calls = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert calls == {"PolicyPack", "build_policies", "production_from_environ", "assume_from_environ",
                     "default_enforcement"}
    pack_call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "PolicyPack")
    assert ast.unparse(pack_call.args[0]) == "PACK_NAME"
    assert {k.arg for k in pack_call.keywords} == {"policies", "enforcement_level"}
    # No other module constructs a PolicyPack (importing it would hang).
    for path in [*(REPO / "policies").rglob("*.py"), *(REPO / "infra").rglob("*.py")]:
        if path != PACK_DIR / "__main__.py" and "venv" not in path.parts:
            calls = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)]
            assert not any(ast.unparse(c.func).endswith("PolicyPack") for c in calls), path


def test_the_pack_serves_its_policies_over_grpc_as_under_pulumi_preview():
    """Start the pack the way the Pulumi CLI's python analyzer plugin does (``python .`` in the pack
    directory, the stack config in PULUMI_CONFIG), read the port it prints, and talk gRPC to it."""
    import os
    import subprocess
    import sys

    import grpc
    from google.protobuf import empty_pb2
    from pulumi.runtime.proto import analyzer_pb2_grpc

    env = {**os.environ, "PULUMI_CONFIG": json.dumps({"gpufleet:environment": "prod"})}
    env.pop("GPUFLEET_POLICY_PRODUCTION", None)
    pack = subprocess.Popen([sys.executable, "."], cwd=PACK_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = int(pack.stdout.readline().decode().strip() or 0)
        assert port, pack.stderr.read().decode()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=10)
            assert info.name == PACK_NAME
            assert [p.name for p in info.policies] == [p.name for p in build_policies(production=True)]
            levels = {p.name: p.enforcementLevel for p in info.policies}
            assert levels["eks-endpoint-private"] == analyzer_pb2.MANDATORY  # production defaults
            manifest = deployment(1, name="llm")
            manifest["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": 1}}
            resource = k8s_resource(manifest)
            response = stub.Analyze(analyzer_pb2.AnalyzeRequest(
                type=resource.type, properties=resource.struct(), urn=resource.urn, name=resource.name), timeout=10)
            assert "gpu-toleration-required" in {d.policyName for d in response.diagnostics}
    finally:
        pack.kill()
        pack.wait(timeout=10)
        pack.stdout.close()
        pack.stderr.close()


def test_pack_project_files():
    project = yaml.safe_load((PACK_DIR / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    assert project["version"]
    # The pack runs in the repository's venv, where gpufleet is installed from this checkout; pip
    # resolves relative paths in a requirements file from its working directory, so none is named.
    assert (PACK_DIR / project["runtime"]["options"]["virtualenv"]).resolve() == REPO / "venv"
    requirements = [line for line in (PACK_DIR / "requirements.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert requirements == []
    assert (REPO / "requirements.txt").read_text().splitlines()[-1] == "-e .[cli]"
    assert project["version"] == gpufleet.__version__


def test_production_comes_from_the_stack_config_the_cli_hands_the_pack():
    assert production_from_environ({"PULUMI_CONFIG": json.dumps({"gpufleet:environment": "prod"})})
    assert not production_from_environ({"PULUMI_CONFIG": json.dumps({"gpufleet:environment": "dev"})})
    assert not production_from_environ({})
    assert production_from_environ({"GPUFLEET_POLICY_PRODUCTION": "true"})
    assert not production_from_environ({"GPUFLEET_POLICY_PRODUCTION": "false",
                                        "PULUMI_CONFIG": json.dumps({"gpufleet:environment": "prod"})})


# -- Analyze / AnalyzeStack / Configure through the servicer ---------------------------------------

def test_analyze_passes_a_good_resource_and_names_the_violation_of_a_bad_one(small):
    assert list(small.analyze(k8s_resource(deployment(2))).diagnostics) == []
    resource = k8s_resource(deployment(5))
    response = small.analyze(resource)
    [diagnostic] = response.diagnostics
    assert diagnostic.policyName == SMALL
    assert diagnostic.policyPackName == PACK_NAME
    assert diagnostic.enforcementLevel == analyzer_pb2.ADVISORY
    violation = diagnostic_violation(diagnostic, resource)
    assert (violation.policy, violation.kind, violation.namespace, violation.name) == (SMALL, "Deployment", "apps", "web")
    assert violation.message == "runs 5 replicas, more than 3"


def test_numbers_reach_rules_as_floats_like_the_engine_sends_them(small):
    small.analyze(k8s_resource(deployment(2)))
    assert SEEN[-1].spec["replicas"] == 2.0 and isinstance(SEEN[-1].spec["replicas"], float)


def test_unknown_values_during_preview_reach_rules_as_unknown_and_crash_nothing(small):
    manifest = deployment(rpc.UNKNOWN)
    manifest["metadata"]["labels"] = rpc.UNKNOWN
    response = small.analyze(k8s_resource(manifest))
    assert list(response.diagnostics) == []
    assert SEEN[-1].spec["replicas"] is UNKNOWN
    assert is_unknown(SEEN[-1].labels.get("x", UNKNOWN)) and SEEN[-1].labels == {}


def _unknown_leaves(value, keep=("apiVersion", "kind")):
    if isinstance(value, dict):
        return {k: (v if k in keep else _unknown_leaves(v, keep)) for k, v in value.items()}
    if isinstance(value, list):
        return [_unknown_leaves(v, keep) for v in value]
    return rpc.UNKNOWN


def _gpu_workload() -> list[dict]:
    manifest = deployment(3, name="llm", namespace="serving")
    pod = manifest["spec"]["template"]["spec"]
    pod["containers"][0]["resources"] = {"requests": {"nvidia.com/gpu": 1, "cpu": "4", "memory": "16Gi"},
                                         "limits": {"nvidia.com/gpu": 1, "memory": "16Gi"}}
    pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "llm", "namespace": "serving"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llm"},
                    "minReplicas": 2, "maxReplicas": 4}}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "serving", "labels": {"gpufleet.io/environment": "prod"}}}
    return [namespace, manifest, hpa]


@pytest.mark.parametrize("production", [False, True])
def test_unknown_values_never_add_a_violation_of_any_gpufleet_rule(production):
    """Preview sends unknowns where values are not resolved yet. For every gpufleet rule, a workload
    whose leaf values (or whole pod spec) are unknown breaks no rule the known workload does not:
    no crash (it would raise out of the servicer), no violation invented from an unknown."""
    analyzer = PolicyAnalyzer(production=production)
    analyzer.configure(None)

    def policies_broken(manifests):
        resources = [k8s_resource(m, name=f"{m['kind']}-{m['metadata']['name']}") for m in manifests]
        diagnostics = [d for r in resources for d in analyzer.analyze(r).diagnostics]
        diagnostics += analyzer.analyze_stack(resources).diagnostics
        assert not [d.message for d in diagnostics if d.message.startswith("can't run policy")]
        return {d.policyName for d in diagnostics}

    known = policies_broken(_gpu_workload())
    assert policies_broken([_unknown_leaves(m, keep=("apiVersion", "kind", "metadata")) for m in _gpu_workload()]) <= known
    whole = _gpu_workload()
    whole[1]["spec"]["template"]["spec"] = rpc.UNKNOWN
    whole[2]["spec"] = rpc.UNKNOWN
    assert policies_broken(whole) <= known


def test_configure_sets_rule_settings_and_levels(small):
    small.configure({SMALL: {"maxReplicas": 10}})
    assert list(small.analyze(k8s_resource(deployment(5))).diagnostics) == []
    small.configure({"all": "mandatory"})
    [diagnostic] = small.analyze(k8s_resource(deployment(5))).diagnostics
    assert diagnostic.enforcementLevel == analyzer_pb2.MANDATORY
    small.configure({"all": "mandatory", SMALL: "disabled"})
    assert list(small.analyze(k8s_resource(deployment(50))).diagnostics) == []


def test_exempt_patterns_leave_named_resources_alone(small):
    small.configure({SMALL: {"exempt": ["Deployment/apps/web*"]}, SINGLE: {"exempt": ["Namespace/b"]}})
    assert list(small.analyze(k8s_resource(deployment(9, name="web-2"))).diagnostics) == []
    [diagnostic] = small.analyze(k8s_resource(deployment(9, name="api"))).diagnostics
    assert diagnostic.policyName == SMALL
    namespaces = [k8s_resource({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}) for n in "abc"]
    [diagnostic] = small.analyze_stack(namespaces).diagnostics
    assert diagnostic.urn == namespaces[2].urn


def test_the_example_config_is_one_the_cli_accepts():
    analyzer = PolicyAnalyzer()
    configured = analyzer.configure(json.loads((PACK_DIR / "config.example.json").read_text()))
    probes = json_format.MessageToDict(configured["gpu-probes-generous"].properties)
    assert probes["minInitialDelaySeconds"] == 120.0
    assert configured["gpu-replicas-anti-affinity"].enforcementLevel == analyzer_pb2.ADVISORY
    assert configured["gpu-pdb-required"].enforcementLevel == analyzer_pb2.MANDATORY


def test_configure_refuses_what_the_pulumi_cli_refuses(small):
    with pytest.raises(PolicyConfigError, match="maxReplicas: 0 is less than the minimum of 1"):
        small.configure({SMALL: {"maxReplicas": 0}})
    with pytest.raises(PolicyConfigError, match="'sometimes' is not a valid enforcement level"):
        small.configure({SMALL: "sometimes"})
    with pytest.raises(PolicyConfigError, match="'production': true is not a valid value"):
        small.configure({"production": True})


def test_analyze_stack_attributes_violations_to_the_resource_it_names(small):
    def namespace(name):
        return k8s_resource({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    response = small.analyze_stack([namespace("a"), k8s_resource(deployment(1)), namespace("b")])
    [diagnostic] = response.diagnostics
    assert diagnostic.policyName == SINGLE and diagnostic.enforcementLevel == analyzer_pb2.MANDATORY
    assert diagnostic.urn == namespace("b").urn
    violation = diagnostic_violation(diagnostic, namespace("b"))
    assert (violation.kind, violation.namespace, violation.name) == ("Namespace", "", "b")


def test_plain_props_unwraps_pulumi_policy_proxies():
    from pulumi_policy.deserialize import deserialize_properties
    from pulumi_policy.proxy import unknown_checking_proxy

    wire = {"a": [{"b": rpc.UNKNOWN}, 2.0], "s": {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "x"}}
    proxied = unknown_checking_proxy(deserialize_properties(wire))
    assert plain_props(proxied) == {"a": [{"b": UNKNOWN}, 2.0], "s": "x"}


# -- over a whole recording, and `gpufleet plan` -------------------------------------------------

def _seeded_program():
    import pulumi_kubernetes as k8s

    for name in ("team-a", "team-b"):
        k8s.core.v1.Namespace(name, metadata={"name": name})
    k8s.apps.v1.Deployment("web", metadata={"name": "web", "namespace": "team-a"},
                           spec=deployment(5, namespace="team-a")["spec"])


def test_analyze_recording_runs_resource_and_stack_policies(run):
    recording = run(_seeded_program)
    report = analyze_recording(recording, production=False, rules=SMALL_RULES)
    found = {(v.policy, v.enforcement, v.kind, v.name) for v in report.violations}
    assert found == {(SMALL, "advisory", "Deployment", "web"), (SINGLE, "mandatory", "Namespace", "team-b")}
    prod = analyze_recording(recording, production=True, rules=SMALL_RULES)
    assert {v.policy for v in prod.mandatory} == {SMALL, SINGLE}


@pytest.fixture
def seeded_project(tmp_path, monkeypatch) -> Path:
    """A project whose program breaks the small rules, planned with the dev stack's config."""
    (tmp_path / "Pulumi.yaml").write_text("name: gpufleet\nruntime: python\nmain: program/\nstackConfigDir: stacks\n")
    (tmp_path / "program").mkdir()
    (tmp_path / "program" / "__main__.py").write_text(
        "from tests.test_policy_pack import _seeded_program\n_seeded_program()\n"
    )
    shutil.copytree(REPO / "stacks", tmp_path / "stacks")
    monkeypatch.setattr(rules_module, "RULES", SMALL_RULES)
    return tmp_path


def test_plan_prints_violations_and_exits_1_on_a_mandatory_one(seeded_project, tmp_path):
    runner = CliRunner()
    from gpufleet.infra.cli import app

    result = runner.invoke(app, ["plan", "dev", "--project-dir", str(seeded_project), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert SINGLE in result.output and SMALL in result.output
    assert "1 mandatory policy violation(s)" in " ".join(result.output.split())
    policy = json.loads((tmp_path / "out" / "policy.json").read_text())
    assert {(v["policy"], v["enforcement"]) for v in policy["violations"]} == {(SMALL, "advisory"), (SINGLE, "mandatory")}

    # An advisory-only plan passes; the config reaches the pack as --policy-pack-config would.
    config = tmp_path / "policy.json"
    config.write_text(json.dumps({SINGLE: "advisory"}))
    result = runner.invoke(app, ["plan", "dev", "--project-dir", str(seeded_project), "--policy-config", str(config)])
    assert result.exit_code == 0, result.output


def test_plan_json_stays_plan_json_with_violations_on_stderr(seeded_project):
    runner = CliRunner()  # result.stdout and result.stderr apart
    from gpufleet.infra.cli import app

    result = runner.invoke(app, ["plan", "dev", "--project-dir", str(seeded_project), "--format", "json"])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert set(document) == {"stack", "resources", "outputs"}
    assert SINGLE in result.stderr


def test_plan_refuses_an_invalid_policy_config(seeded_project, tmp_path):
    from gpufleet.infra.cli import app

    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"production": True}))
    result = CliRunner().invoke(app, ["plan", "dev", "--project-dir", str(seeded_project), "--policy-config", str(config)])
    assert result.exit_code == 2
    assert "not a valid value; must be a string or object" in result.output


@pytest.fixture(scope="module")
def planned():
    """Plans of this repository's stacks (each planned once): (recording, config)."""
    from gpufleet.infra.offline.plan import Project, plan_stack

    project, cache = Project.find(REPO), {}

    def get(stack: str):
        if stack not in cache:
            cache[stack] = (plan_stack(project, stack).recording, project.stack_config(stack))
        return cache[stack]

    return get


@pytest.mark.parametrize("stack", ["dev", "prod", "options", "automode"])
def test_reference_stacks_have_no_mandatory_violations(planned, stack):
    recording, config = planned(stack)
    report = analyze_recording(recording, production=config["gpufleet:environment"] == "prod", stack_config=config)
    assert report.mandatory == [], "\n".join(str(v) for v in report.mandatory)
    assert report.not_run == []


def _without(value, key):
    if isinstance(value, dict):
        return {k: _without(v, key) for k, v in value.items() if k != key}
    if isinstance(value, list):
        return [_without(v, key) for v in value]
    return value


def test_a_rendered_gpu_workload_passes_until_it_loses_its_toleration(planned):
    """Real objects of the prod plan, through the real rules: the GPU workloads pass
    gpu-toleration-required as rendered; with their tolerations removed, each is named."""
    from gpufleet.policies.pod_templates import pod_templates

    recording, config = planned("prod")
    gpu = [r for r in recording.kubernetes_objects()
           if any(t.uses_gpu for t in pod_templates(Subject.from_manifest(r.manifest())))]
    assert gpu, "the prod stack renders no GPU workload"
    analyzer = PolicyAnalyzer(production=True)
    analyzer.configure(None)
    for registered in gpu:
        resource = AnalyzerResource.from_registered(registered)
        assert "gpu-toleration-required" not in {d.policyName for d in analyzer.analyze(resource).diagnostics}
        mutated = AnalyzerResource(resource.urn, resource.type, resource.name, _without(resource.properties, "tolerations"))
        named = [diagnostic_violation(d, mutated) for d in analyzer.analyze(mutated).diagnostics
                 if d.policyName == "gpu-toleration-required"]
        assert named and named[0].enforcement == "mandatory"
        assert (named[0].kind, named[0].name) == (registered.inputs["kind"], registered.inputs["metadata"]["name"])
