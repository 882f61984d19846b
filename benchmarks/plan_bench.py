"""Wall time of ``gpufleet plan prod`` beside the Pulumi SDK's floor.

The floor is the same number of bare custom resources registered under the same in-process mock
engine: what any Python program of that size costs. The ratio says how much gpufleet's components,
config validation and schema checks add on top. Run by hand: ``venv/bin/python benchmarks/plan_bench.py``.
"""

from __future__ import annotations

import argparse
import resource
from pathlib import Path

import pulumi

from gpufleet.infra.offline import FakeCloud, run_program
from gpufleet.infra.offline.plan import Project, plan_stack
from timing import median_seconds  # benchmarks/ is on sys.path: run as a script

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="prod")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    project = Project.find(REPO)
    warm = plan_stack(project, args.stack)  # imports, schema loading
    count = len(warm.recording.resources)

    def bare_program() -> None:
        for index in range(count):
            pulumi.CustomResource("bench:index:Bare", f"r{index}", {"index": index})

    def floor() -> None:
        run_program(bare_program, project="gpufleet", stack=args.stack, config={}, cloud=FakeCloud())

    floor()
    plan_time = median_seconds(lambda: plan_stack(project, args.stack), args.rounds)
    floor_time = median_seconds(floor, args.rounds)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"stack:              {args.stack} ({count} resources registered)")
    print(f"plan (median of {args.rounds}): {plan_time * 1000:8.1f} ms")
    print(f"SDK floor:          {floor_time * 1000:8.1f} ms  ({count} bare resources, same mocks)")
    print(f"ratio plan/floor:   {plan_time / floor_time:8.2f}x")
    print(f"peak RSS:           {peak_mib:8.1f} MiB")


if __name__ == "__main__":
    main()
