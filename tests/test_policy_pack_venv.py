"""`gpufleet policy-pack init`: a pack directory that works outside this repository.

The pack's virtualenv is built the way the Pulumi CLI builds it (``python -m venv venv`` and
``venv/bin/pip install -r requirements.txt`` in the pack directory), from a requirement pointing at
this repository; the pack's own ``__main__.py`` then runs in that venv, outside the checkout: its
policies are driven through the analyzer servicer by a script, and the pack is started as the CLI
starts it (``python .``) and asked over gRPC. One venv per session: the first run installs gpufleet's
dependencies (pip's cache makes later runs quicker; no bytecode compilation).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pulumi.runtime.proto import analyzer_pb2
from typer.testing import CliRunner

import gpufleet
from gpufleet.infra.cli import app
from gpufleet.policies.pack import PACK_NAME, build_policies
from gpufleet.policies.pack_files import main_source, requirement_line
from tests.harness import REPO

GPU_DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "llm", "namespace": "serving"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "llm"}},
             "template": {"metadata": {"labels": {"app": "llm"}},
                          "spec": {"containers": [{"name": "c", "image": "vllm/vllm-openai:v0.11.0",
                                                   "resources": {"limits": {"nvidia.com/gpu": 1}}}]}}},
}

# Runs with the pack venv's python, outside the repository: executes the pack's __main__.py with
# PolicyPack (which would serve gRPC and block) replaced by a recorder, then sends the recorded
# policies a resource through pulumi_policy's analyzer servicer.
DRIVE = r"""
import json, runpy, sys
import pulumi_policy

served = {}
class Recorder:
    def __init__(self, name, policies, enforcement_level=None, **_):
        served.update(name=name, policies=policies, level=enforcement_level)
pulumi_policy.PolicyPack = Recorder
runpy.run_path(sys.argv[1], run_name="__main__")

import gpufleet, gpufleet.policies.pack
from gpufleet.policies.analyzer import AnalyzerResource, PolicyAnalyzer
from gpufleet.policies.core import Subject

analyzer = PolicyAnalyzer(served["policies"], name=served["name"])
analyzer.configure(None)
manifest = json.loads(sys.argv[2])
type_token = Subject.from_manifest(manifest).type
response = analyzer.analyze(AnalyzerResource(f"urn:pulumi:prod::app::{type_token}::llm", type_token, "llm", manifest))
levels = {p.name: p.enforcementLevel for p in analyzer.get_analyzer_info().policies}
print(json.dumps({
    "version": gpufleet.__version__,
    "module": gpufleet.policies.pack.__file__,
    "name": served["name"],
    "policies": [p.name for p in served["policies"]],
    "eks-endpoint-private": levels["eks-endpoint-private"],
    "diagnostics": sorted({d.policyName for d in response.diagnostics}),
}))
"""


@pytest.fixture(scope="session")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("packs") / "gpu-pack"
    result = CliRunner().invoke(app, ["policy-pack", "init", str(directory), "--requirement", str(REPO)])
    assert result.exit_code == 0, result.output
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([sys.executable, "-m", "venv", "venv"], cwd=directory, check=True, env=env)
    install = subprocess.run(
        ["venv/bin/pip", "install", "-q", "--no-compile", "-r", "requirements.txt"], cwd=directory, env=env,
        capture_output=True, text=True, timeout=1500,
    )
    assert install.returncode == 0, install.stderr[-4000:]
    return directory


def drive(pack: Path, main: Path, environ: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GPUFLEET_POLICY_PRODUCTION", "PULUMI_CONFIG")}
    out = subprocess.run(
        [str(pack / "venv" / "bin" / "python"), "-c", DRIVE, str(main), json.dumps(GPU_DEPLOYMENT)],
        cwd=pack.parent, env={**env, **environ}, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return json.loads(out.stdout)


def test_init_writes_a_complete_pack(tmp_path: Path):
    directory = tmp_path / "my-pack"
    result = CliRunner().invoke(app, ["policy-pack", "init", str(directory)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in directory.iterdir()) == ["PulumiPolicy.yaml", "README.md", "__main__.py", "requirements.txt"]
    project = yaml.safe_load((directory / "PulumiPolicy.yaml").read_text())
    assert project == {"description": project["description"], "version": gpufleet.__version__,
                       "runtime": {"name": "python", "options": {"virtualenv": "venv"}}}
    requirements = [line for line in (directory / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert requirements == [f"gpufleet[cli]=={gpufleet.__version__}"]
    readme = (directory / "README.md").read_text()
    for command in ("pulumi install", f"pulumi preview --policy-pack {directory}", f"pulumi policy publish <org> --dir {directory}"):
        assert command in readme
    # The in-repository pack serves the very same __main__.py.
    assert (directory / "__main__.py").read_text() == main_source() == (REPO / "policies/packs/gpu-production/__main__.py").read_text()
    again = CliRunner().invoke(app, ["policy-pack", "init", str(directory)])
    assert again.exit_code == 2 and "already has PulumiPolicy.yaml, __main__.py, requirements.txt, README.md" in " ".join(again.stderr.split())
    assert CliRunner().invoke(app, ["policy-pack", "init", str(directory), "--force", "--production"]).exit_code == 0
    assert "production = True" in (directory / "__main__.py").read_text()


def test_requirement_paths_become_absolute_file_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    wheel = tmp_path / "gpufleet-9.9.9-py3-none-any.whl"
    wheel.write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert requirement_line(wheel.name) == f"gpufleet[cli] @ {wheel.as_uri()}"
    assert requirement_line(str(REPO)) == f"gpufleet[cli] @ {REPO.as_uri()}"
    assert requirement_line("gpufleet[cli]==1.2.3") == "gpufleet[cli]==1.2.3"
    assert requirement_line() == f"gpufleet[cli]=={gpufleet.__version__}"


def test_the_pack_runs_its_policies_from_its_own_venv(pack: Path):
    report = drive(pack, pack / "__main__.py", {"PULUMI_CONFIG": json.dumps({"gpufleet:environment": "prod"})})
    assert report["module"].startswith(str(pack / "venv")), "gpufleet came from the pack's venv, not the checkout"
    assert report["version"] == gpufleet.__version__
    assert report["name"] == PACK_NAME
    assert report["policies"] == [p.name for p in build_policies()]
    assert report["eks-endpoint-private"] == analyzer_pb2.MANDATORY  # a prod stack gets the production defaults
    assert {"gpu-toleration-required", "gpu-shm-volume", "gpu-probes-distinct"} <= set(report["diagnostics"])
    dev = drive(pack, pack / "__main__.py", {"PULUMI_CONFIG": json.dumps({"gpufleet:environment": "dev"})})
    assert dev["eks-endpoint-private"] == analyzer_pb2.ADVISORY


def test_a_production_pack_applies_production_defaults_to_every_stack(pack: Path, tmp_path: Path):
    production = tmp_path / "prod-pack"
    assert CliRunner().invoke(app, ["policy-pack", "init", str(production), "--production"]).exit_code == 0
    (production / "venv").symlink_to(pack / "venv")
    report = drive(production, production / "__main__.py", {"PULUMI_CONFIG": json.dumps({"gpufleet:environment": "dev"})})
    assert report["eks-endpoint-private"] == analyzer_pb2.MANDATORY


def test_the_pack_serves_over_grpc_from_its_venv_as_under_pulumi_preview(pack: Path):
    import grpc
    from google.protobuf import empty_pb2
    from pulumi.runtime.proto import analyzer_pb2_grpc

    from gpufleet.policies.analyzer import AnalyzerResource
    from gpufleet.policies.core import Subject

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GPUFLEET_POLICY_PRODUCTION")}
    env["PULUMI_CONFIG"] = json.dumps({"gpufleet:environment": "prod"})
    server = subprocess.Popen([str(pack / "venv" / "bin" / "python"), "."], cwd=pack, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = int(server.stdout.readline().decode().strip() or 0)
        assert port, server.stderr.read().decode()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
            assert info.name == PACK_NAME
            assert [p.name for p in info.policies] == [p.name for p in build_policies(production=True)]
            type_token = Subject.from_manifest(GPU_DEPLOYMENT).type
            resource = AnalyzerResource(f"urn:pulumi:prod::app::{type_token}::llm", type_token, "llm", GPU_DEPLOYMENT)
            response = stub.Analyze(analyzer_pb2.AnalyzeRequest(
                type=resource.type, properties=resource.struct(), urn=resource.urn, name=resource.name), timeout=30)
            assert "gpu-toleration-required" in {d.policyName for d in response.diagnostics}
    finally:
        server.kill()
        server.wait(timeout=10)
        server.stdout.close()
        server.stderr.close()
