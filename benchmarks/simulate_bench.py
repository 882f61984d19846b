"""What ``gpufleet simulate`` costs: the simulation of a reference stack beside planning it (the
simulation should add at most a second to ``gpufleet plan``), and a synthetic cluster of 1,000
services (should simulate in at most 10 s). Prints times and ratios; run by hand:
``venv/bin/python benchmarks/simulate_bench.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from timing import median_seconds  # benchmarks/ is on sys.path: run as a script

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gpufleet.infra.config import parse_stack_config  # noqa: E402
from gpufleet.infra.offline.plan import Project, plan_stack  # noqa: E402
from gpufleet.infra.simulate import simulate, simulate_plan  # noqa: E402
from tests.simulate_fixtures import deployment, inputs, node_pool, overlay  # noqa: E402

PLAN_BUDGET_S = 1.0
SERVICES_BUDGET_S = 10.0


def synthetic(services: int) -> list[dict]:
    """``services`` Deployments of 2 replicas over four pools: whole L40S GPUs (anti-affinity per host),
    MIG slices, multi-GPU spot training and CPU-only helpers on the system nodes."""
    objects = [node_pool("serving", families=["g6e"]), node_pool("batch", families=["g6e", "p5"], capacity=["spot"]),
               node_pool("mig", types=["p4de.24xlarge"], labels={"nvidia.com/mig.config": "all-1g.10gb"}),
               overlay("mig-slices", "mig", {"nvidia.com/mig-1g.10gb": "56"})]
    for index in range(services):
        kind = index % 4
        if kind == 0:
            objects.append(deployment(f"chat-{index}", "serving", 2, cpu="6", memory="48Gi", anti_affinity="preferred"))
        elif kind == 1:
            objects.append(deployment(f"embed-{index}", "mig", 2, resource="nvidia.com/mig-1g.10gb", cpu="2", memory="8Gi"))
        elif kind == 2:
            objects.append(deployment(f"train-{index}", "batch", 2, gpus=4, cpu="40", memory="300Gi"))
        else:
            objects.append(deployment(f"helper-{index}", None, 2, gpus=0, cpu="100m", memory="128Mi", tolerate=False))
    return objects


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="prod")
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    project = Project.find(REPO)
    plan = plan_stack(project, args.stack)
    config = parse_stack_config(project.stack_config(args.stack), secret_keys=project.secret_keys(args.stack))
    planning = median_seconds(lambda: plan_stack(project, args.stack), max(1, args.rounds // 2))
    simulating = median_seconds(lambda: simulate_plan(plan, config), args.rounds)
    print(f"plan {args.stack}: {planning:.2f} s; simulate (min and max): {simulating:.3f} s "
          f"= {simulating / planning:.1%} of plan; budget {PLAN_BUDGET_S:.1f} s → {simulating / PLAN_BUDGET_S:.2f} of it")

    cluster = inputs(synthetic(args.services), config)
    result = simulate(cluster)
    big = median_seconds(lambda: simulate(cluster), max(1, args.rounds // 2))
    minimum = result.results["min"]
    print(f"{args.services} services ({sum(1 for _ in cluster.templates)} pod templates): {len(minimum.placement.nodes)} nodes "
          f"at min scale, {big:.2f} s for min and max; budget {SERVICES_BUDGET_S:.0f} s → {big / SERVICES_BUDGET_S:.2f} of it")


if __name__ == "__main__":
    main()
