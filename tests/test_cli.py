"""``gpufleet plan``: exit codes, the text tree, ``--format json`` and ``--out`` files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gpufleet.infra.cli import app
from tests.harness import REPO


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.chdir(REPO)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


@pytest.fixture
def project_copy(tmp_path):
    """A copy of this project's Pulumi.yaml, program and stacks, to break stack files in."""
    for name in ("Pulumi.yaml",):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "stacks", tmp_path / "stacks")
    shutil.copytree(REPO / "infra", tmp_path / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_plan_prints_a_tree_and_says_nothing_was_contacted(cli):
    result = cli("plan", "dev")
    assert result.exit_code == 0, result.output
    assert "gpufleet-dev (pulumi:pulumi:Stack)" in result.output
    assert "network (gpufleet:network:Network)" in result.output
    assert "cluster (gpufleet:cluster:Cluster)" in result.output
    assert "aws:ec2/subnet:Subnet ×4" in result.output
    assert "aws:kms/key:Key ×1 (1 protected)" in result.output
    assert "no AWS account, Kubernetes cluster or Pulumi service was contacted" in " ".join(result.output.split())


@pytest.mark.parametrize(("stack", "expected"), [
    ("dev", ["gpu-dev", "time-slicing ×4", "nvidia.com/gpu.shared (≤ 16)", "spot, on-demand"]),
    ("prod", ["serving-mig", "MIG 1g.10gb", "nvidia.com/mig-1g.10gb (≤ 56)", "whole GPUs"]),
])
def test_plan_summarises_what_each_gpu_pool_offers(stack, expected):
    # Wide enough that rich does not fold the table's cells.
    result = CliRunner().invoke(app, ["plan", stack, "--project-dir", str(REPO)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    table = result.output.split("GPU pools", 1)[1]
    for text in expected:
        assert text in table


def test_gpu_pool_summary_follows_the_operators_mig_strategy(project_copy):
    stack = project_copy / "stacks" / "Pulumi.prod.yaml"
    stack.write_text(stack.read_text().replace("migStrategy: mixed", "migStrategy: single", 1))
    result = CliRunner().invoke(app, ["plan", "prod", "--project-dir", str(project_copy)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.split("GPU pools", 1)[1].splitlines() if "serving-mig" in line)
    assert "MIG 1g.10gb" in row and "nvidia.com/gpu (≤ 8)" in row


def test_plan_json_lists_every_registered_resource(cli):
    result = cli("plan", "prod", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["stack"] == "prod"
    resources = document["resources"]
    assert {"urn", "type", "name", "parent", "protect", "inputs"} <= set(resources[0])
    urns = [r["urn"] for r in resources]
    assert len(urns) == len(set(urns))
    key = next(r for r in resources if r["type"] == "aws:kms/key:Key")
    assert key["protect"] is True and key["inputs"]["enableKeyRotation"] is True
    assert document["outputs"]["kubeconfig"] == "[secret]"


def test_plan_out_writes_plan_json(cli, tmp_path):
    result = cli("plan", "prod", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert document["stack"] == "prod"
    assert any(r["type"] == "eks:index:Cluster" for r in document["resources"])
    assert (tmp_path / "out" / "manifests").is_dir()


def test_plan_is_deterministic(cli, tmp_path):
    assert cli("plan", "dev", "--out", str(tmp_path / "a")).exit_code == 0
    assert cli("plan", "dev", "--out", str(tmp_path / "b")).exit_code == 0
    assert (tmp_path / "a" / "plan.json").read_text() == (tmp_path / "b" / "plan.json").read_text()


def test_manifests_are_written_per_namespace(tmp_path):
    """Every Kubernetes object lands in manifests/<namespace or _cluster>/<Kind>-<name>.yaml."""
    from gpufleet.infra.offline.plan import Plan
    from gpufleet.infra.offline.engine import Recording, RegisteredResource

    def obj(kind, name, namespace=None):
        metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
        return RegisteredResource(
            urn=f"urn:{kind}:{name}", type=f"kubernetes:core/v1:{kind}", name=name, parent="", custom=True, remote=False,
            protect=False, provider="", dependencies=[], id=name, outputs={},
            inputs={"apiVersion": "v1", "kind": kind, "metadata": metadata, "spec": {"replicas": 2.0}},
        )

    plan = Plan("dev", "1.35", Recording("gpufleet", "dev", [obj("Namespace", "ml"), obj("Service", "api", "ml")], {}), [], "")
    plan.write(tmp_path)
    assert sorted(p.relative_to(tmp_path / "manifests").as_posix() for p in (tmp_path / "manifests").rglob("*.yaml")) == [
        "_cluster/Namespace-ml.yaml", "ml/Service-api.yaml",
    ]
    service = yaml.safe_load((tmp_path / "manifests" / "ml" / "Service-api.yaml").read_text())
    assert service["spec"]["replicas"] == 2 and isinstance(service["spec"]["replicas"], int)


def test_unknown_stack_exits_2_and_lists_stacks(cli):
    result = cli("plan", "staging")
    assert result.exit_code == 2
    assert "unknown stack 'staging'" in result.output and "dev, options, prod" in result.output


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda c: c.update({"gpufleet:colour": "blue"}), "gpufleet:colour: unknown key"),
        (lambda c: c["gpufleet:network"].update({"azCount": "two"}), "gpufleet:network.azCount: must be a number"),
        (lambda c: c["gpufleet:network"].update({"azCount": 40}), "gpufleet:network.azCount: Input should be less than or equal to 6"),
        (lambda c: c.update({"gpufleet:kubernetesVersion": "1.27"}), "gpufleet:kubernetesVersion: Kubernetes 1.27 is not supported by EKS"),
    ],
)
def test_invalid_config_exits_2_naming_the_field(project_copy, mutate, expected):
    path = project_copy / "stacks" / "Pulumi.dev.yaml"
    document = yaml.safe_load(path.read_text())
    mutate(document["config"])
    path.write_text(yaml.safe_dump(document))
    result = CliRunner().invoke(app, ["plan", "dev", "--project-dir", str(project_copy)])
    assert result.exit_code == 2
    assert f"stacks/Pulumi.dev.yaml: {expected}" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_broken_yaml_exits_2_with_file_and_line(project_copy):
    (project_copy / "stacks" / "Pulumi.dev.yaml").write_text("config:\n  gpufleet:region: [unclosed\n")
    result = CliRunner().invoke(app, ["plan", "dev", "--project-dir", str(project_copy)])
    assert result.exit_code == 2
    assert "Pulumi.dev.yaml:3:1: invalid YAML" in result.output


def test_console_script_runs_without_traceback_on_bad_input():
    """The installed ``gpufleet`` entry point, as a user runs it."""
    executable = Path(sys.executable).parent / "gpufleet"
    command = [str(executable)] if executable.exists() else [sys.executable, "-m", "gpufleet.infra.cli"]
    result = subprocess.run([*command, "plan", "nope"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "unknown stack 'nope'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


REJECTED_PROGRAM = '''
import pulumi_kubernetes as k8s

k8s.apiextensions.CustomResource(
    "cq", api_version="kueue.x-k8s.io/v1beta2", kind="ClusterQueue", metadata={"name": "generous"},
    spec={"cohortName": "gpufleet", "resourceGroups": [{"coveredResources": ["nvidia.com/gpu"], "flavors": [
        {"name": "gpu", "resources": [{"name": "nvidia.com/gpu", "nominalQuota": "4", "lendingLimit": "6"}]}]}]},
)
'''


def test_plan_exits_1_when_a_webhook_would_reject_an_object(tmp_path):
    """An object that passes its schema but that a controller's admission webhook refuses fails the plan."""
    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copytree(REPO / "stacks", tmp_path / "stacks")
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "__main__.py").write_text(REJECTED_PROGRAM)
    result = CliRunner().invoke(app, ["plan", "dev", "--project-dir", str(tmp_path)], env={"COLUMNS": "400"})
    assert result.exit_code == 1, result.output
    assert (
        'error: the API server would reject ClusterQueue/generous: Kueue admission webhook: '
        'spec.resourceGroups[0].flavors[0].resources[0].lendingLimit: Invalid value: "6": must be less than or equal '
        "to the nominalQuota"
    ) in " ".join(result.output.split())
    assert "fail their schemas" not in result.output
    assert "Traceback" not in result.output


def test_the_plan_tree_reads_the_same_every_run(monkeypatch):
    """The engine registers resources from several threads: the tree is sorted, not in arrival order."""
    monkeypatch.chdir(REPO)
    outputs = {CliRunner().invoke(app, ["plan", "dev"], env={"COLUMNS": "200"}).output for _ in range(3)}
    assert len(outputs) == 1
    tree = next(iter(outputs)).splitlines()
    components = [line[4:].split(" ")[0] for line in tree if line[:4] in ("├── ", "└── ") and " — " in line]
    assert len(components) > 5 and components == sorted(components)
