"""``gpufleet plan`` against the Pulumi SDK's floor, its cost per inference service, the policy pack's
cost per resource, CRD loading and peak memory: the plan rows of the README's Performance table.

Every figure comes from paired or repeated runs in this one call, reported as medians and ratios:

* ``plan prod`` vs floor: ``gpufleet plan prod --format json`` and ``benchmarks/floor.py`` (the same
  provider modules imported, the same number of pulumi_aws / pulumi_kubernetes / component resources
  registered under the same offline engine) as child processes, alternately; wall and CPU ratios.
* per-service cost: the prod stack with its inference services replaced by N copies of a small one
  (``--services 10,100,1000``), planned by ``gpufleet plan`` in a child process; CPU per added
  service between consecutive sizes and the spread of those figures (flat = small spread); the
  peak RSS of each size.
* policy pack: the analyzer servicer (``Analyze`` per resource, ``AnalyzeStack``) over the prod plan
  and the scaled plans, in ms per resource; and the servicer vs the offline fast path.
* CRD loading: building the validator and compiling every CRD the prod plan uses, from the compiled
  cache (``infra/validation/crd_cache.py``) and from the YAML (cache disabled).

Run: ``venv/bin/python benchmarks/plan_bench.py [--rounds 5] [--services 10,100,1000]``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from timing import PYTHON, REPO, paired, run_child, spread  # benchmarks/ is on sys.path: run as a script

GPUFLEET = [PYTHON, "-m", "gpufleet"]
PROVIDER_PACKAGES = ("pulumi_aws", "pulumi_kubernetes", "pulumi_eks")


def scaled_project(directory: Path, sizes: list[int]) -> Path:
    """A project dir running this repository's program, with a stack ``svc<N>`` per size: the prod
    stack whose inference services are N copies of its embedding service (each 10 resources with its
    weights loader)."""
    prod = yaml.safe_load((REPO / "stacks" / "Pulumi.prod.yaml").read_text())
    serving = prod["config"]["gpufleet:serving"]
    template = next(s for s in serving["inferenceServices"] if "canary" not in s)
    (directory / "stacks").mkdir(parents=True, exist_ok=True)
    (directory / "Pulumi.yaml").write_text(yaml.safe_dump(
        {"name": "gpufleet", "runtime": "python", "main": str(REPO / "infra"), "stackConfigDir": "stacks"}))
    for size in sizes:
        document = copy.deepcopy(prod)
        services = []
        for index in range(size):
            service = copy.deepcopy(template)
            service["name"] = f"svc-{index}"
            service["model"] = f"model-{index}"
            services.append(service)
        document["config"]["gpufleet:serving"]["inferenceServices"] = services
        config = document["config"]
        for pool in config["gpufleet:gpuPools"]:  # room for every replica on the pools ...
            if pool["name"] == template["pool"]:
                pool["limits"] = {"gpus": 16 + 2 * size, "cpu": 384 + 32 * size, "memoryGib": 4096 + 256 * size}
        for team in config["gpufleet:teams"]:  # ... in the team's quota ...
            if team["name"] == template["team"]:
                team["cpu"] = team["cpu"] + 40 * size
                team["memoryGib"] = team["memoryGib"] + 160 * size
        nodes = config["gpufleet:cluster"]["systemNodes"]  # ... and the weights loaders on the system nodes
        nodes["instanceTypes"] = ["m7i.8xlarge"] if size > 100 else nodes["instanceTypes"]
        nodes["minSize"] = nodes["desiredSize"] = min(50, 3 + size // (25 if size > 100 else 4))
        nodes["maxSize"] = max(nodes["maxSize"], nodes["minSize"])
        (directory / "stacks" / f"Pulumi.svc{size}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return directory


def plan_vs_floor(rounds: int) -> dict[str, Any]:
    from gpufleet.infra.offline.plan import Project, plan_stack

    plan = plan_stack(Project.find(REPO), "prod")  # counts, and the provider modules the program imports
    resources = plan.recording.resources
    aws = sum(1 for r in resources if r.custom and r.type.startswith("aws:"))
    kubernetes = sum(1 for r in resources if r.custom and r.type.startswith("kubernetes:"))
    components = sum(1 for r in resources if not r.custom)
    modules = sorted(m for m in sys.modules if m.split(".")[0] in PROVIDER_PACKAGES)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        listing.write("\n".join(modules))
    floor = [PYTHON, str(REPO / "benchmarks" / "floor.py"), "--aws", str(aws), "--kubernetes", str(kubernetes),
             "--components", str(components), "--modules", listing.name]
    command = [*GPUFLEET, "plan", "prod", "--format", "json"]
    run_child(command)  # the first run fills the compiled CRD cache
    usages: dict[str, list[Any]] = {"plan": [], "floor": []}

    def one(name: str, argv: list[str]) -> float:
        usage = run_child(argv)
        usages[name].append(usage)
        return usage.wall

    wall = paired(lambda: one("plan", command), lambda: one("floor", floor), rounds)
    cpu_ratio = statistics.median(p.cpu / f.cpu for p, f in zip(usages["plan"], usages["floor"]))
    Path(listing.name).unlink()
    return {
        "resources": len(resources), "aws": aws, "kubernetes": kubernetes, "components": components,
        "modules": len(modules), "plan_wall": wall.median_a, "floor_wall": wall.median_b, "wall_ratio": wall.ratio,
        "plan_cpu": statistics.median(u.cpu for u in usages["plan"]),
        "floor_cpu": statistics.median(u.cpu for u in usages["floor"]), "cpu_ratio": cpu_ratio,
    }


def per_service(sizes: list[int], rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        project = scaled_project(Path(directory), sizes)
        usage: dict[int, list[Any]] = {}
        for size in sizes:
            argv = [*GPUFLEET, "plan", f"svc{size}", "--project-dir", str(project), "--format", "json"]
            usage[size] = [run_child(argv) for _ in range(rounds if size < 1000 else max(1, rounds // 3))]
    cpu = {size: statistics.median(u.cpu for u in runs) for size, runs in usage.items()}
    peak = {size: max(u.peak_mib for u in runs) for size, runs in usage.items()}
    steps = [((a, b), (cpu[b] - cpu[a]) / (b - a)) for a, b in zip(sizes, sizes[1:])]
    return {"cpu": cpu, "peak_mib": peak, "steps": steps, "spread": spread([s for _, s in steps]) if len(steps) > 1 else 0.0}


def policy_pack(sizes: list[int], rounds: int) -> dict[str, Any]:
    from gpufleet.infra.offline.plan import Project, plan_stack
    from gpufleet.policies import analyzer

    recordings = {"prod": plan_stack(Project.find(REPO), "prod")}
    with tempfile.TemporaryDirectory() as directory:
        project = Project.find(scaled_project(Path(directory), sizes))
        for size in sizes:
            recordings[f"svc{size}"] = plan_stack(project, f"svc{size}")
    out: dict[str, Any] = {}
    for name, plan in recordings.items():
        recording = plan.recording
        config = {"gpufleet:environment": "prod"}

        def servicer() -> float:
            start = time.process_time()
            analyzer.analyze_recording(recording, production=True, stack_config=config, fast=False)
            return time.process_time() - start

        def fast() -> float:
            start = time.process_time()
            analyzer.analyze_recording(recording, production=True, stack_config=config)
            return time.process_time() - start

        runs = paired(servicer, fast, rounds if len(recording.resources) < 5000 else 1)
        count = len(recording.resources)
        out[name] = {"resources": count, "servicer_ms": runs.median_a * 1000 / count,
                     "fast_ms": runs.median_b * 1000 / count}
    return out


def crd_loading(rounds: int) -> dict[str, Any]:
    import os

    from gpufleet.infra.offline.plan import Project, plan_stack
    from gpufleet.infra.validation import schema

    plan = plan_stack(Project.find(REPO), "prod")
    manifests = [r.manifest() for r in plan.recording.kubernetes_objects()]
    upstream = schema.upstream_dir()
    if upstream is None:
        return {}

    def load() -> float:
        for cached in (schema._load_docs, schema._crd_file_index, schema._crd_schemas, schema._compiled_crd):
            cached.cache_clear()
        start = time.process_time()  # CPU: on a shared machine, wall time measures the neighbours
        validator = schema.ManifestValidator("1.35", [upstream / "crds"])
        for manifest in manifests:
            ref = validator._crds.get((manifest["apiVersion"], manifest["kind"]))
            if ref is not None:
                schema._compiled_crd(ref, validator.schema_version)
        return time.process_time() - start

    def from_yaml() -> float:
        os.environ["GPUFLEET_NO_CRD_CACHE"] = "1"
        try:
            return load()
        finally:
            del os.environ["GPUFLEET_NO_CRD_CACHE"]

    load()  # fills the cache
    runs = paired(load, from_yaml, rounds)
    return {"cached": runs.median_a, "yaml": runs.median_b, "ratio": runs.ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--services", default="10,100,1000", help="sizes of the scaling runs")
    parser.add_argument("--only", choices=["floor", "scaling", "policy", "crds"], action="append")
    args = parser.parse_args()
    sizes = [int(s) for s in args.services.split(",")]
    only = set(args.only or ["floor", "scaling", "policy", "crds"])

    if "floor" in only:
        f = plan_vs_floor(args.rounds)
        print(f"plan prod vs SDK floor ({f['resources']} resources: {f['aws']} aws, {f['kubernetes']} kubernetes, "
              f"{f['components']} components; {f['modules']} provider modules imported by both), median of {args.rounds}:")
        print(f"  wall  plan {f['plan_wall']:6.2f} s  floor {f['floor_wall']:6.2f} s  ratio {f['wall_ratio']:5.2f}x")
        print(f"  cpu   plan {f['plan_cpu']:6.2f} s  floor {f['floor_cpu']:6.2f} s  ratio {f['cpu_ratio']:5.2f}x")
    # Rows measured in child processes come before the rows that load plans into this process: a
    # child's peak RSS starts from this process's resident size when it is spawned.
    if "scaling" in only:
        s = per_service(sizes, args.rounds)
        for size in sizes:
            print(f"plan with {size:5d} services: {s['cpu'][size]:7.2f} s CPU, peak RSS {s['peak_mib'][size]:7.1f} MiB")
        for (a, b), cost in s["steps"]:
            print(f"  per added service {a:5d} -> {b:5d}: {cost * 1000:6.1f} ms CPU")
        print(f"  spread of the per-service cost: {s['spread'] * 100:.0f} % of its median")
    if "crds" in only:
        c = crd_loading(args.rounds)
        if c:
            print(f"CRD loading for the prod plan (CPU): {c['cached'] * 1000:7.1f} ms from the compiled cache, "
                  f"{c['yaml'] * 1000:7.1f} ms from YAML ({c['ratio']:.3f}x)")
    if "policy" in only:
        for name, p in policy_pack(sizes, args.rounds).items():
            print(f"policy pack {name:>8} ({p['resources']:5d} resources): servicer {p['servicer_ms']:6.3f} ms/resource, "
                  f"fast path {p['fast_ms']:6.3f} ms/resource (CPU)")


if __name__ == "__main__":
    main()
