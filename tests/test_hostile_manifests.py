"""Issue 13 (and 12's directory runs): ``gpufleet check`` input. Nothing checked is exit 2; a malformed
object is an input error naming file:line (exit 2 alone, listed with the findings and exit 1 beside
checked objects); duplicate keys and alias bombs are refused as in stack files; non-Kubernetes YAML
found in a directory is skipped with one line; only regular files of bounded size are read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gpufleet.infra.cli import app
from gpufleet.infra.manifests import read
from gpufleet.infra.yaml_input import MAX_MANIFEST_BYTES
from tests.test_hostile_stack_files import LAUGHS, _bounded

CORPUS = Path("/work/shared/corpus/real-world")

CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: ml\ndata:\n  k: v\n"


@pytest.fixture
def check():
    runner = CliRunner(env={"COLUMNS": "240"})
    return lambda *args, input=None: runner.invoke(app, ["check", *args], input=input)


def flat(output: str) -> str:
    return " ".join(output.split())


@pytest.mark.parametrize("content", ["", "---\n", "---\n---\n", "# only a comment\n"])
def test_nothing_to_check_is_exit_2(check, tmp_path, content):
    path = tmp_path / "empty.yaml"
    path.write_text(content)
    result = check(str(path))
    assert result.exit_code == 2, result.output
    assert "nothing to check" in flat(result.output)


def test_a_directory_without_yaml_is_exit_2(check, tmp_path):
    (tmp_path / "README.md").write_text("# nothing\n")
    result = check(str(tmp_path))
    assert result.exit_code == 2
    assert "nothing to check" in flat(result.output)


@pytest.mark.parametrize(("body", "problem"), [
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: [a, b]\n", "metadata must be a mapping"),
    ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: run three replicas\n", "spec must be a mapping"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 3}\n", "metadata.name must be text"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: [x]}\n", "metadata.labels must be a mapping"),
    ("apiVersion: v1\nkind: List\nitems: {a: b}\n", "items must be a list"),
])
def test_malformed_objects_are_input_errors_with_file_and_line(check, tmp_path, body, problem):
    path = tmp_path / "bad.yaml"
    path.write_text("# a comment\n---\n" + body)
    alone = check(str(path))
    assert alone.exit_code == 2, alone.output
    assert f"{path}:3: malformed" in flat(alone.output) and problem in flat(alone.output)
    path.write_text(CONFIGMAP + "---\n" + body)
    beside = check(str(path), "--format", "json")
    assert beside.exit_code == 1, beside.output
    document = json.loads(beside.stdout)
    assert document["checked"] == 1
    assert [e.split(": malformed")[0] for e in document["inputErrors"]] == [f"{path}:9"]


@pytest.mark.parametrize(("body", "needle"), [
    (CONFIGMAP + "  k: w\n", "duplicate key 'k' (first at line 7)"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, name: b}\n", "duplicate key 'name'"),
    (LAUGHS.replace("config:\n  gpufleet:tags:", "apiVersion: v1\nkind: ConfigMap\ndata:"), "alias bomb"),
    ("apiVersion: v1\nkind: Secret\nmetadata: {name: a}\ndata: !!binary aGk=\n", "!!binary"),
])
def test_duplicate_keys_aliases_and_tags_are_refused_like_stack_files(check, tmp_path, body, needle):
    path = tmp_path / "m.yaml"
    path.write_text(body)
    result = check(str(path))
    assert result.exit_code == 2, result.output
    assert needle in flat(result.output)
    assert str(path) in flat(result.output)


def test_oversized_and_non_utf8_files_are_refused(check, tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text(CONFIGMAP + "  blob: " + "x" * MAX_MANIFEST_BYTES + "\n")
    result = check(str(big))
    assert result.exit_code == 2 and f"larger than {MAX_MANIFEST_BYTES} bytes" in flat(result.output)
    utf16 = tmp_path / "u.yaml"
    utf16.write_bytes(CONFIGMAP.encode("utf-16"))
    result = check(str(utf16))
    assert result.exit_code == 2 and "UTF-16" in result.output


def test_unquoted_dates_in_manifests_stay_text(tmp_path):
    path = tmp_path / "d.yaml"
    path.write_text(CONFIGMAP + "  since: 2024-01-01\n")
    found = read([str(path)])
    assert found[0].object["data"]["since"] == "2024-01-01" and not found.problems


def test_directory_runs_skip_non_kubernetes_yaml_one_line_each(check, tmp_path):
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("replicaCount: 2\nimage: {repository: nginx}\n")
    (chart / "templates" / "deployment.yaml").write_text("apiVersion: apps/v1\nkind: Deployment\n"
                                                          "metadata:\n  name: {{ .Release.Name }}\n  {{- if x }}\n")
    (tmp_path / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    (tmp_path / ".gitlab-ci.yml").write_text("stages: [test]\n")
    (tmp_path / "cm.yaml").write_text(CONFIGMAP)
    result = check(str(tmp_path))
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "skipped:" in line]
    assert len(lines) == 5, result.output
    assert f"{chart / 'Chart.yaml'}: skipped: not a Kubernetes object" in lines
    assert any(line.startswith(f"{chart / 'templates' / 'deployment.yaml'}: skipped: not valid YAML") for line in lines)
    assert "1 objects checked" in flat(result.output)


def test_a_named_non_kubernetes_file_is_still_an_error(check, tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text("replicaCount: 2\n")
    result = check(str(path))
    assert result.exit_code == 2
    assert f"{path}:1: not a Kubernetes object" in flat(result.output)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="real-world corpus not available")
def test_the_real_world_corpus_is_checked_never_exit_2(check):
    result = check(str(CORPUS), "--format", "json")
    assert result.exit_code in (0, 1), result.output[-2000:]
    document = json.loads(result.stdout)
    assert document["checked"] > 100
    assert all(": skipped: " in line for line in document.get("skipped", []))


def test_a_manifest_alias_bomb_is_refused_in_bounded_time_and_memory(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(LAUGHS.replace("config:\n  gpufleet:tags:", "apiVersion: v1\nkind: ConfigMap\ndata:"))
    script = f"""
from gpufleet.infra.manifests import read
found = read([{str(path)!r}])
result = "refused: " + found.problems[0] if found.problems and not found else "accepted"
"""
    elapsed, peak, result = _bounded(script)
    assert result.startswith("refused: ") and "alias" in result
    assert elapsed < 5 and peak < 200


def test_stdin_is_read_with_the_same_rules(check):
    result = check("-", input=CONFIGMAP + "  k: w\n")
    assert result.exit_code == 2
    assert "<stdin>:8: data: duplicate key 'k'" in flat(result.output)
    assert check("-", input=yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}})).exit_code == 0
