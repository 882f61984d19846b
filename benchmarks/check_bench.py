"""Throughput of ``gpufleet check``: manifests per second through loading and every rule.

Generates a mix of GPU Deployments, Jobs, Services, PodDisruptionBudgets and Namespaces ``--count``
objects strong (they break several rules: findings cost time too, so the mix is not kept clean),
writes it as one multi-document file, and times, separately, YAML loading, rule evaluation (resource
and stack rules) and the whole command.
Also the start-up rows of the README's Performance table, as child processes (CPU and wall, medians
of ``--rounds``, each paired with a bare ``python -c pass`` so a loaded machine shows in the ratio):
``gpufleet --help``, ``gpufleet check`` on one small file, and ``gpufleet check`` on 1,000 objects
with the default text output and with ``--format json``; each with bytecode cached (as an installed
package runs) and compiling gpufleet's source on every run (``PYTHONDONTWRITEBYTECODE=1`` in a checkout).
Run by hand: ``venv/bin/python benchmarks/check_bench.py [--count 5000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from gpufleet.infra.cli import app
from gpufleet.infra.manifests import load
from gpufleet.policies.core import Subject, evaluate
from timing import PYTHON, cpu_seconds, median_seconds, paired, run_child  # benchmarks/ is on sys.path: run as a script


def manifests(count: int) -> list[dict[str, Any]]:
    """``count`` objects: per team a Namespace, then workloads with their Services and PDBs."""
    objects: list[dict[str, Any]] = []
    index = 0
    while len(objects) < count:
        team = f"team-{index // 50}"
        if index % 50 == 0:
            objects.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": team, "labels": {"gpufleet.io/environment": "dev"}}})
        name = f"model-{index}"
        labels = {"app": name}
        gpus = 1 if index % 7 else 2
        container = {
            "name": "server",
            "image": f"registry.example.com/serve:{index % 5}.0",
            "resources": {"requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": gpus},
                          "limits": {"memory": "16Gi", "nvidia.com/gpu": gpus}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
            "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}},
        }
        if index % 11 == 0:
            del container["resources"]["limits"]  # a broken one now and then
        pod = {"containers": [container], "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}
        if index % 3:
            objects.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": team},
                            "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                                     "template": {"metadata": {"labels": labels}, "spec": pod}}})
            objects.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": team},
                            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}})
            objects.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": team},
                            "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}}})
        else:
            objects.append({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": team,
                            "labels": {"kueue.x-k8s.io/queue-name": "ml"}},
                            "spec": {"suspend": True, "template": {"spec": {**pod, "restartPolicy": "Never"}}}})
        index += 1
    return objects[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="manifests to check (at least 1000)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    count = max(args.count, 1000)

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "manifests.yaml"
        path.write_text(yaml.safe_dump_all(manifests(count), sort_keys=False))
        loaded = load([str(path)])
        subjects = [Subject.from_manifest(m.object) for m in loaded]
        violations = evaluate(subjects)  # warm: rule modules imported

        runner = CliRunner()
        measured = {
            "load YAML": lambda: load([str(path)]),
            "evaluate rules": lambda: evaluate([Subject.from_manifest(m.object) for m in loaded]),
            "whole command": lambda: runner.invoke(app, ["check", "--format", "json", str(path)]),
        }
        print(f"gpufleet check over {len(loaded)} manifests ({len(violations)} violations), median of {args.rounds}:")
        for label, action in measured.items():
            seconds = median_seconds(action, args.rounds)
            cpu = statistics.median(cpu_seconds(action) for _ in range(args.rounds))
            print(f"  {label:<15} {seconds * 1000:8.1f} ms wall {cpu * 1000:8.1f} ms CPU  "
                  f"{len(loaded) / seconds:10.0f} manifests/s")

        thousand = Path(directory) / "thousand.yaml"
        thousand.write_text(yaml.safe_dump_all(manifests(1000), sort_keys=False))
        small = Path(directory) / "small.yaml"
        small.write_text(yaml.safe_dump_all(manifests(4), sort_keys=False))
        gpufleet = [PYTHON, "-m", "gpufleet"]
        bare = [PYTHON, "-c", "pass"]
        rows = (
            ("gpufleet --help", [*gpufleet, "--help"]),
            ("check, 4 objects", [*gpufleet, "check", str(small)]),
            ("check, 1000 objects, text", [*gpufleet, "check", str(thousand)]),
            ("check, 1000 objects, json", [*gpufleet, "check", "--format", "json", str(thousand)]),
        )
        # An installed package runs from bytecode pip compiled; a source checkout with
        # PYTHONDONTWRITEBYTECODE=1 compiles every gpufleet module it imports, on every run.
        modes = (
            ("bytecode cached (an installed package)",
             {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(Path(directory) / "pycache")}),
            ("compiling gpufleet's source on every run (PYTHONDONTWRITEBYTECODE=1)", {"PYTHONDONTWRITEBYTECODE": "1"}),
        )
        print(f"start-up and check as child processes, median of {args.rounds} (bare python: the interpreter alone):")
        for mode, env in modes:
            print(f"  {mode}:")
            for _, argv in rows:
                run_child(argv, env=env)  # warm: bytecode written, files in the page cache
            for label, argv in rows:
                usages: list = []
                bares: list = []
                paired(lambda: _keep(usages, run_child(argv, env=env)), lambda: _keep(bares, run_child(bare, env=env)),
                       args.rounds)
                cpu = statistics.median(u.cpu for u in usages)
                wall = statistics.median(u.wall for u in usages)
                bare_wall = statistics.median(u.wall for u in bares)
                print(f"    {label:<27} {cpu:6.2f} s CPU  {wall:6.2f} s wall  (bare python {bare_wall:5.2f} s wall)")


def _keep(into: list, usage) -> float:
    into.append(usage)
    return usage.wall


if __name__ == "__main__":
    main()
