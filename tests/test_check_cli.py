"""``gpufleet check``: plain manifests (files, directories, multi-document YAML, stdin) through the
same rules as the pack; exit codes 0/1/2, the JSON shape, production marking and policy config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from typer.testing import CliRunner

from gpufleet.infra.cli import app
from gpufleet.policies import rules as rules_module
from gpufleet.policies.core import Rule, RuleContext, Subject, as_number

# A two-rule set for the command's mechanics (gpufleet's own rules are exercised at the end).


def _limits(subject: Subject, context: RuleContext) -> Iterator[str]:
    if subject.is_a("apps", "Deployment"):
        replicas = as_number(subject.spec.get("replicas"))
        if replicas is not None and replicas > context["maxReplicas"]:
            yield f"{replicas:g} replicas exceed {context['maxReplicas']}"


def _unique_names(subjects, context: RuleContext):
    seen: set[str] = set()
    for subject in subjects:
        if subject.object_name in seen:
            yield subject, f"name {subject.object_name} is used twice"
        seen.add(subject.object_name)


RULES = (
    Rule("max-replicas", "Deployments run few replicas.", "mandatory",
         settings_schema={"maxReplicas": {"type": "integer"}}, defaults={"maxReplicas": 3}, check_resource=_limits),
    Rule("unique-names", "Names are unique.", "advisory", production_enforcement="mandatory", check_stack=_unique_names),
)


@pytest.fixture
def small_rules(monkeypatch):
    monkeypatch.setattr(rules_module, "RULES", RULES)


@pytest.fixture
def cli():
    runner = CliRunner(env={"COLUMNS": "240"})  # a wide terminal: table rows stay on one line
    return lambda *args, input=None: runner.invoke(app, ["check", *args], input=input)


def deployment(name: str, replicas: int, namespace: str = "ml") -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}}


def configmap(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ml"}, "data": {}}


def write(path: Path, *documents: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def test_clean_manifests_exit_0(small_rules, cli, tmp_path):
    result = cli(str(write(tmp_path / "ok.yaml", deployment("web", 2))), "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"checked": 1, "assume": [], "violations": [], "suppressed": []}


def test_a_mandatory_violation_exits_1_with_the_json_shape(small_rules, cli, tmp_path):
    path = write(tmp_path / "big.yaml", configmap("a"), deployment("web", 5))
    result = cli(str(path), "--format", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "checked": 2,
        "assume": [],
        "violations": [{"policy": "max-replicas", "enforcement": "mandatory", "kind": "Deployment",
                        "namespace": "ml", "name": "web", "message": "5 replicas exceed 3",
                        "file": str(path), "line": 8}],
        "suppressed": [],
    }


def test_text_output_is_a_table_with_where_each_object_was_read(small_rules, cli, tmp_path):
    path = write(tmp_path / "two.yaml", configmap("a"), deployment("web", 9))
    result = cli(str(path))
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "max-replicas" in text and "Deployment ml/web" in text
    assert f"{path}:" in result.output.replace("\n", "")
    assert "2 objects checked: 1 mandatory, 0 other violation(s)." in text


def test_advisory_violations_alone_exit_0(small_rules, cli, tmp_path):
    path = write(tmp_path / "dup.yaml", configmap("same"), configmap("same"))
    result = cli(str(path), "--format", "json")
    assert result.exit_code == 0
    [violation] = json.loads(result.stdout)["violations"]
    assert (violation["policy"], violation["enforcement"], violation["name"]) == ("unique-names", "advisory", "same")


def test_stack_rules_see_every_file_and_directory_recursively(small_rules, cli, tmp_path):
    write(tmp_path / "manifests" / "a.yaml", configmap("same"))
    write(tmp_path / "manifests" / "nested" / "b.yml", configmap("same"), deployment("web", 1))
    (tmp_path / "manifests" / "notes.txt").write_text("not yaml: [")
    result = cli(str(tmp_path / "manifests"), "--format", "json")
    document = json.loads(result.stdout)
    assert document["checked"] == 3
    assert [v["policy"] for v in document["violations"]] == ["unique-names"]


def test_multi_document_yaml_and_list_kinds_are_expanded(small_rules, cli, tmp_path):
    items = {"apiVersion": "v1", "kind": "List", "items": [configmap("a"), deployment("big", 7)]}
    text = "---\n" + yaml.safe_dump(configmap("x")) + "---\n---\n" + yaml.safe_dump(items)
    path = tmp_path / "multi.yaml"
    path.write_text(text)
    result = cli(str(path), "--format", "json")
    document = json.loads(result.stdout)
    assert document["checked"] == 3
    assert [(v["policy"], v["name"]) for v in document["violations"]] == [("max-replicas", "big")]
    assert result.exit_code == 1


def test_dash_reads_stdin(small_rules, cli):
    result = cli("-", "--format", "json", input=yaml.safe_dump_all([deployment("web", 4), configmap("c")]))
    assert result.exit_code == 1
    assert json.loads(result.stdout)["checked"] == 2


def test_invalid_yaml_exits_2_naming_file_and_line(small_rules, cli, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [a, b\n")
    result = cli(str(path))
    assert result.exit_code == 2
    assert f"{path}:5:1: invalid YAML" in result.output.replace("\n", "")


def test_non_kubernetes_documents_and_missing_files(small_rules, cli, tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\n---\n- just\n- a list\n")
    result = cli(str(path))
    # The ConfigMap was checked: the bad document is listed with it as an input error, and fails the gate.
    assert result.exit_code == 1
    assert f"input error: {path}:4: not a Kubernetes object" in result.output.replace("\n", "")
    path.write_text("- just\n- a list\n")
    result = cli(str(path))
    assert result.exit_code == 2
    assert f"{path}:1: not a Kubernetes object" in result.output.replace("\n", "")
    result = cli(str(tmp_path / "missing.yaml"))
    assert result.exit_code == 2 and "no such file or directory" in result.output


def test_production_applies_production_levels(small_rules, cli, tmp_path):
    path = write(tmp_path / "dup.yaml", configmap("same"), configmap("same"))
    assert cli(str(path)).exit_code == 0
    result = cli(str(path), "--production", "--format", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["violations"][0]["enforcement"] == "mandatory"


def test_config_file_sets_levels_and_settings_like_the_pack_config(small_rules, cli, tmp_path):
    path = write(tmp_path / "d.yaml", deployment("web", 5), configmap("same"), configmap("same"))
    config = tmp_path / "policy.json"
    config.write_text(json.dumps({"max-replicas": {"maxReplicas": 10}, "unique-names": "mandatory"}))
    result = cli(str(path), "--config", str(config), "--format", "json")
    assert [v["policy"] for v in json.loads(result.stdout)["violations"]] == ["unique-names"]
    assert result.exit_code == 1
    config.write_text(json.dumps({"all": "advisory", "production": True}))
    result = cli(str(path), "--config", str(config), "--format", "json")
    assert result.exit_code == 0
    assert {v["enforcement"] for v in json.loads(result.stdout)["violations"]} == {"advisory"}


def test_config_exempt_patterns_drop_named_resources(small_rules, cli, tmp_path):
    path = write(tmp_path / "d.yaml", deployment("web", 5), deployment("api", 5, namespace="research"))
    config = tmp_path / "policy.json"
    config.write_text(json.dumps({"max-replicas": {"exempt": ["Deployment/research/*"]}}))
    result = cli(str(path), "--config", str(config), "--format", "json")
    assert [(v["namespace"], v["name"]) for v in json.loads(result.stdout)["violations"]] == [("ml", "web")]


def test_bad_config_exits_2(small_rules, cli, tmp_path):
    path = write(tmp_path / "ok.yaml", configmap("a"))
    config = tmp_path / "policy.json"
    config.write_text("{not json")
    result = cli(str(path), "--config", str(config))
    assert result.exit_code == 2 and f"{config}:1:2: invalid JSON" in result.output.replace("\n", "")
    config.write_text(json.dumps({"max-replicas": "sometimes"}))
    result = cli(str(path), "--config", str(config))
    assert result.exit_code == 2 and "max-replicas" in result.output
    config.write_text(json.dumps({"max-replicas": {"maxReplicas": "many"}}))
    result = cli(str(path), "--config", str(config))
    assert result.exit_code == 2 and "max-replicas: maxReplicas: 'many' is not of type 'integer'" in result.output


# -- gpufleet's own rules --------------------------------------------------------------------------

def gpu_deployment(tolerations: list) -> dict:
    manifest = deployment("llm", 1)
    pod = manifest["spec"]["template"]["spec"]
    pod["containers"][0]["resources"] = {"requests": {"nvidia.com/gpu": 1}, "limits": {"nvidia.com/gpu": 1}}
    pod["tolerations"] = tolerations
    return manifest


def test_gpufleet_rules_name_a_gpu_pod_without_the_gpu_toleration(cli, tmp_path):
    from gpufleet.components.gpu_scheduling import GPU_TAINT_KEY

    path = write(tmp_path / "gpu.yaml", gpu_deployment([]))
    result = cli(str(path), "--format", "json")
    violations = json.loads(result.stdout)["violations"]
    assert ("gpu-toleration-required", "Deployment", "llm") in {(v["policy"], v["kind"], v["name"]) for v in violations}
    tolerated = gpu_deployment([{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}])
    result = cli(str(write(tmp_path / "gpu2.yaml", tolerated)), "--format", "json")
    assert "gpu-toleration-required" not in {v["policy"] for v in json.loads(result.stdout)["violations"]}
