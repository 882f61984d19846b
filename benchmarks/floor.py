"""The Pulumi SDK's floor for a plan: what any Python program of the same size costs.

Imports the same provider modules the gpufleet program imports (``--modules``: a file with one module
name a line, written by ``plan_bench.py`` from a real plan), then registers under the same offline
engine as ``gpufleet plan`` the same number of ``pulumi_aws`` resources (``aws.iam.Role``),
``pulumi_kubernetes`` resources (``ConfigMap``) and component resources as the plan did. Run as a
script by ``plan_bench.py``: ``python benchmarks/floor.py --aws N --kubernetes M --components C
--modules FILE``.
"""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aws", type=int, required=True)
    parser.add_argument("--kubernetes", type=int, required=True)
    parser.add_argument("--components", type=int, default=0)
    parser.add_argument("--modules", type=Path, help="file: the provider modules to import, one a line")
    args = parser.parse_args()

    for name in (args.modules.read_text().split() if args.modules else ()):
        importlib.import_module(name)

    import pulumi
    import pulumi_aws as aws
    import pulumi_kubernetes as k8s

    from gpufleet.infra.offline import FakeCloud, run_program

    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})

    def program() -> None:
        parents = [pulumi.ComponentResource("bench:index:Component", f"c{i}", None, None)
                   for i in range(max(args.components, 1))]
        for i in range(args.aws):
            aws.iam.Role(f"role{i}", assume_role_policy=policy, tags={"index": str(i)},
                         opts=pulumi.ResourceOptions(parent=parents[i % len(parents)]))
        for i in range(args.kubernetes):
            k8s.core.v1.ConfigMap(
                f"cm{i}",
                metadata={"name": f"cm{i}", "namespace": "default", "labels": {"app": f"a{i}"}},
                data={"index": str(i)},
                opts=pulumi.ResourceOptions(parent=parents[i % len(parents)]),
            )

    run_program(program, project="gpufleet", stack="floor", config={}, cloud=FakeCloud())


if __name__ == "__main__":
    main()
