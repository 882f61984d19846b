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


# -- what the reader builds is what PyYAML's constructor builds -----------------------------------

SHAPES = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: shapes, labels: {a: "1", b: '2'}, annotations: {}}
data: {empty: "", multi: "line one\\nline two"}
folded: >-
  folded
  text
numbers: [0, -1, 0x1F, 0o17, 1_000, 1.5, -.5e3, 9223372036854775807, -9223372036854775808]
truths: [true, False, yes, no, on, null, ~, ""]
dates: [2024-01-01, 2024-01-01T10:00:00Z]
keys: {1: int, 2.5: float, true: bool, null: none, "1": text, 2024-01-02: date}  # 1 and true: one dict key
nested: [[], {}, [[1, [2, [3]]]], {x: {y: {z: [a, {b: c}]}}}]
tagged: [!!str 123, !!int "7", !!float "1", !!bool "true", !!null "", ! 12]
block: |
  keep
    indentation
---
---
plain scalar document
---
- a
- - b
  - {c: d}
"""

ALIASES = """\
labels: &labels {team: ml, tier: &tier gpu}
selector: {matchLabels: *labels}
tiers: [*tier, *tier]
&key shared-key: 1
list: &list [1, {a: b}]
again: *list
---
anchors: &labels [reset per document]
same: *labels
"""

MERGES = """\
defaults: &defaults {cpu: "1", memory: 1Gi, labels: &labels {team: ml}}
first:
  <<: *defaults
  memory: 2Gi
second:
  <<: [*defaults, {gpu: 1}]
  labels: *labels
"""


def _constructed(text: str) -> list:
    from gpufleet.infra.yaml_input import _Loader

    loader = _Loader(text)
    try:
        documents = []
        while loader.check_node():
            documents.append(loader.construct_document(loader.get_node()))
        return documents
    finally:
        loader.dispose()


def _same(left: object, right: object) -> bool:
    """Equal, with the same types throughout (1 == True == 1.0 in Python; not here)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(_same(k1, k2) and _same(left[k1], right[k2])
                                                 for k1, k2 in zip(left, right))
    if isinstance(left, list):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right))
    if isinstance(left, float) and left != left:
        return right != right
    return left == right


def _full_reader(text: str, monkeypatch: pytest.MonkeyPatch, **options: object) -> list:
    """The documents as the node-by-node reader (prescan, node checks, constructor) reads them."""
    from gpufleet.infra import yaml_input

    with monkeypatch.context() as patched:
        patched.setattr(yaml_input, "_plain_documents", lambda text, dates: None)
        return yaml_input.load_documents(text, "full.yaml", **options)


@pytest.mark.parametrize(("text", "one_pass"), [(SHAPES, True), (ALIASES, True), (MERGES, False)],
                         ids=["shapes", "aliases", "merge-keys"])
def test_documents_are_what_pyyaml_constructs(text, one_pass, monkeypatch):
    from gpufleet.infra.yaml_input import _plain_documents, load_documents

    loaded = load_documents(text, "shapes.yaml")
    assert _same([document.value for document in loaded], _constructed(text))
    assert loaded == _full_reader(text, monkeypatch)  # values and lines
    assert (_plain_documents(text, True) is not None) == one_pass  # merge keys: the full reader merges


def test_aliased_values_stay_shared_as_pyyaml_shares_them():
    from gpufleet.infra.yaml_input import load_documents

    first, second = load_documents(ALIASES, "aliases.yaml")
    assert first.value["selector"]["matchLabels"] is first.value["labels"]
    assert first.value["list"] is first.value["again"]
    assert second.value["same"] is second.value["anchors"]
    (merged,) = load_documents(MERGES, "merges.yaml")
    assert merged.value["second"]["labels"] is merged.value["defaults"]["labels"]


REFUSED = {
    "duplicate key": "a: 1\nb: 2\na: 3\n",
    "duplicate key after an alias": "x: &k a\n*k : 1\na: 2\n",
    "a list as a key": "? [a]\n: 1\n",
    "an alias of a mapping as a key": "m: &m {a: 1}\n*m : 2\n",
    "a binary tag": "a: !!binary aGk=\n",
    "a custom tag": "a: !Ref x\n",
    "a set": "a: !!set {x: null}\n",
    "an integer past 64 bits": "a: 9223372036854775808\n",
    "an infinite float": "a: .inf\n",
    "a lone surrogate": 'a: "\\ud800"\n',
    "nesting deeper than 64": "a: " + "[" * 65 + "]" * 65 + "\n",
    "an alias naming its own container": "a: &a [1, *a]\n",
    "an undefined alias": "a: *nothing\n",
    "an anchor defined twice": "a: &x 1\nb: &x 2\n",
    "an alias to another document's anchor": "a: &x 1\n---\nb: *x\n",
    "a syntax error": "a: [1, 2\nb: 3\n",
    "an alias bomb": "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                     "e: [*d, *d]\n",
}


@pytest.mark.parametrize("text", list(REFUSED.values()), ids=list(REFUSED))
def test_the_one_pass_reader_leaves_what_it_cannot_vouch_for_to_the_full_reader(text, monkeypatch):
    from gpufleet.infra.yaml_input import YamlInputError, _plain_documents, load_documents

    assert _plain_documents(text, True) is None
    try:
        expected = _full_reader(text, monkeypatch, dates=True)
    except YamlInputError as error:
        with pytest.raises(YamlInputError) as raised:
            load_documents(text, "full.yaml")
        assert raised.value.problems == error.problems
    else:  # PyYAML reads it (a mapping key made from an alias, say): the same documents either way
        assert load_documents(text, "full.yaml") == expected


def test_an_unquoted_date_is_left_to_the_full_reader_where_dates_are_refused():
    from gpufleet.infra.yaml_input import _plain_documents

    assert _plain_documents("a: 2024-01-01\n", True) is not None
    assert _plain_documents("a: 2024-01-01\n", False) is None


@pytest.mark.skipif(not CORPUS.is_dir(), reason="real-world corpus not available")
def test_the_real_world_corpus_reads_as_pyyaml_constructs_it(monkeypatch):
    from gpufleet.infra.yaml_input import YamlInputError, _plain_documents, load_documents

    read = one_pass = 0
    for path in sorted(CORPUS.rglob("*.y*ml")):
        text = path.read_text(encoding="utf-8")
        try:
            loaded = load_documents(text, str(path))
        except YamlInputError:
            continue
        assert _same([document.value for document in loaded], _constructed(text)), path
        assert loaded == _full_reader(text, monkeypatch), path
        read += 1
        one_pass += _plain_documents(text, True) is not None
    assert read > 100 and one_pass == read
