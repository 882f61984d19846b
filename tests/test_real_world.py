"""Real-world goldens: gpufleet's rules over public repositories' GPU manifests.

The corpus (``/work/shared/corpus/real-world``: unmodified files from 20 repositories, one directory a
repository) is found through ``GPUFLEET_CORPUS_DIR``, else ``../shared/corpus/real-world`` next to the
repository root; the tests skip when it is absent. Each repository is evaluated as one set of
resources (its own cluster): cross-resource rules never pair objects of unrelated projects. Files are
loaded one by one with the manifest loader; a file that holds anything but Kubernetes objects (Helm
values, Chart.yaml, kustomization files) is skipped.

tests/fixtures/real_world_golden.yaml lists every GPU workload the rules must read (file, kind/name,
where its pod spec sits) and every finding judged right by reading the manifest (file, rule,
kind/name), on a development stack and the extra ones on a production stack. A finding or a workload
that appears or disappears fails the test: judge it, then update the golden.
"""

from __future__ import annotations

import os
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from gpufleet.infra.manifests import ManifestError, load_text
from gpufleet.policies.core import PolicyConfig, Subject
from gpufleet.policies.pod_templates import gpu_pod_templates
from gpufleet.policies.rules import RULES

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "fixtures" / "real_world_golden.yaml"


def corpus_dir() -> Path:
    return Path(os.environ.get("GPUFLEET_CORPUS_DIR") or ROOT.parent / "shared" / "corpus" / "real-world")


def repositories(root: Path) -> Iterator[tuple[list[Subject], dict[int, str]]]:
    """Per repository directory: its subjects and, by subject id, the file each came from."""
    for repo in sorted(p for p in root.iterdir() if p.is_dir()):
        subjects: list[Subject] = []
        sources: dict[int, str] = {}
        for path in sorted(p for p in repo.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()):
            try:
                manifests = load_text(path.read_text(encoding="utf-8"), path.relative_to(root).as_posix())
            except (ManifestError, UnicodeDecodeError):
                continue  # not Kubernetes objects
            for manifest in manifests:
                subject = Subject.from_manifest(manifest.object)
                subjects.append(subject)
                sources[id(subject)] = manifest.source
        yield subjects, sources


@lru_cache(maxsize=4)
def findings(root: Path, production: bool) -> Counter[str]:
    """``file | rule | Kind/name`` of every finding (counted: one per message)."""
    config = PolicyConfig(production=production)
    found: Counter[str] = Counter()
    for subjects, sources in repositories(root):
        for rule in RULES:
            context = config.context_for(rule)
            pairs = []
            if rule.check_resource is not None:
                pairs += [(s, m) for s in subjects for m in rule.check_resource(s, context)]
            if rule.check_stack is not None:
                pairs += list(rule.check_stack(subjects, context))
            for subject, _ in pairs:
                found[f"{sources[id(subject)]} | {rule.name} | {subject.kind}/{subject.object_name}"] += 1
    return found


@lru_cache(maxsize=2)
def workloads(root: Path) -> Counter[str]:
    """``file | Kind/name | pod spec path`` of every GPU pod template."""
    found: Counter[str] = Counter()
    for subjects, sources in repositories(root):
        for template in gpu_pod_templates(subjects):
            found[f"{sources[id(template.owner)]} | {template.kind}/{template.owner.object_name} | {template.path}"] += 1
    return found


def _golden() -> dict:
    return yaml.safe_load(GOLDEN.read_text(encoding="utf-8"))


def _expected(entries: list[str]) -> Counter[str]:
    return Counter(entries)


@pytest.fixture(scope="module")
def corpus() -> Path:
    root = corpus_dir()
    if not root.is_dir():
        pytest.skip(f"real-world corpus not found at {root} (set GPUFLEET_CORPUS_DIR)")
    return root


def _diff(actual: Counter[str], expected: Counter[str]) -> str:
    appeared = sorted((actual - expected).elements())
    gone = sorted((expected - actual).elements())
    return "\n".join(["appeared:", *appeared, "disappeared:", *gone])


def test_every_gpu_workload_is_read(corpus):
    actual, expected = Counter(workloads(corpus)), _expected(_golden()["workloads"])
    assert actual == expected, _diff(actual, expected)


def test_findings_match_the_golden(corpus):
    actual, expected = Counter(findings(corpus, production=False)), _expected(_golden()["findings"])
    assert actual == expected, _diff(actual, expected)


def test_production_adds_only_the_judged_findings(corpus):
    dev, prod = findings(corpus, production=False), findings(corpus, production=True)
    expected = _expected(_golden()["production_findings"])
    assert prod - dev == expected, _diff(prod - dev, expected)
    assert dev - prod == Counter()


def test_no_finding_on_tpu_neuron_or_cpu_only_workloads(corpus):
    """Workload kinds with pods that use no NVIDIA GPU (TPU JobSets, Neuron Deployments, CPU Spark) are
    never reported on; the golden lists no such object either."""
    gpu_owners = {line.rsplit(" | ", 1)[0] for line in workloads(corpus)}
    workload_kinds = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "Job", "JobSet", "LeaderWorkerSet",
                      "SparkApplication", "PyTorchJob", "MPIJob", "TrainJob", "RayCluster", "RayJob", "RayService"}
    for line in findings(corpus, production=True):
        source, rule, owner = line.split(" | ")
        kind = owner.split("/", 1)[0]
        if kind in workload_kinds and kind != "DaemonSet" and rule != "gpu-namespace-quota":
            assert f"{source} | {owner}" in gpu_owners, line
