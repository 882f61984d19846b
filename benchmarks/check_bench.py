"""Throughput of ``gpufleet check``: manifests per second through loading and every rule.

Generates a mix of GPU Deployments, Jobs, Services, PodDisruptionBudgets and Namespaces ``--count``
objects strong (they break several rules: findings cost time too, so the mix is not kept clean),
writes it as one multi-document file, and times, separately, YAML loading, rule evaluation (resource
and stack rules) and the whole command.
Run by hand: ``venv/bin/python benchmarks/check_bench.py [--count 5000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from gpufleet.infra.cli import app
from gpufleet.infra.manifests import load
from gpufleet.policies.core import Subject, evaluate
from timing import median_seconds  # benchmarks/ is on sys.path: run as a script


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

        load_s = median_seconds(lambda: load([str(path)]), args.rounds)
        rules_s = median_seconds(lambda: evaluate([Subject.from_manifest(m.object) for m in loaded]), args.rounds)
        runner = CliRunner()
        command_s = median_seconds(lambda: runner.invoke(app, ["check", "--format", "json", str(path)]), args.rounds)

    print(f"gpufleet check over {len(loaded)} manifests ({len(violations)} violations), median of {args.rounds}:")
    for label, seconds in (("load YAML", load_s), ("evaluate rules", rules_s), ("whole command", command_s)):
        print(f"  {label:<15} {seconds * 1000:8.1f} ms  {len(loaded) / seconds:10.0f} manifests/s")


if __name__ == "__main__":
    main()
