"""``gpufleet simulate``: run a stack's program as ``gpufleet plan`` does, then simulate the cluster
it makes in steady state (see :mod:`gpufleet.infra.simulate`)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from gpufleet.infra.cli_output import EXIT_BAD_INPUT, EXIT_FAILED, fail as _fail, out_console


class ScaleChoice(str, Enum):
    min = "min"
    max = "max"
    both = "both"


class SimulateFormat(str, Enum):
    text = "text"
    json = "json"


def simulate(
    stack: str = typer.Argument(..., help="Stack name: reads stacks/Pulumi.STACK.yaml."),
    scale: ScaleChoice = typer.Option(ScaleChoice.both, "--scale", help="min, max or both: replicas at the autoscalers' bounds."),
    output_format: SimulateFormat = typer.Option(SimulateFormat.text, "--format", help="text (tables) or json."),
    picture: Optional[Path] = typer.Option(None, "--picture", metavar="FILE.svg", help="Draw the nodes and their pods as SVG."),
    project_dir: Optional[Path] = typer.Option(None, "--project-dir", help="Directory with Pulumi.yaml (default: here or above)."),
) -> None:
    """Show what STACK will launch, cost and leave Pending, before `pulumi up`.

    Runs the program as `gpufleet plan` does, then simulates the cluster from the rendered objects:
    Karpenter's provisioning per NodePool, kube-scheduler's placement, Kueue's admission, the system
    node group at its minSize. Prints nodes per pool and instance type with their hourly price,
    Pending pods with the reason, drains a PodDisruptionBudget blocks and GPU allocation. Exit 0 when
    nothing is Pending at min scale and no drain is blocked, 1 otherwise, 2 on bad input."""
    from gpufleet.infra.config import ConfigError, parse_stack_config
    from gpufleet.infra.offline.plan import PlanInputError, Project, plan_stack
    from gpufleet.infra.simulate import PriceError, simulate_plan
    from gpufleet.infra.simulate.picture import render_svg
    from gpufleet.infra.simulate.report import print_simulation

    if picture is not None and picture.suffix.lower() != ".svg":
        _fail([f"--picture {picture}: the picture is SVG; name a FILE.svg"], EXIT_BAD_INPUT)
    try:
        project = Project.find(project_dir)
        config_map = project.stack_config(stack)
        config = parse_stack_config(config_map, secret_keys=project.secret_keys(stack))
        plan = plan_stack(project, stack)
    except PlanInputError as error:
        _fail(error.problems, EXIT_BAD_INPUT)
    except ConfigError as error:
        _fail(error.problems, EXIT_BAD_INPUT)
    except Exception as error:  # noqa: BLE001 - one line, not a traceback
        _fail([f"the program failed: {error}"], EXIT_FAILED)
    scales = ("min", "max") if scale is ScaleChoice.both else (scale.value,)
    try:
        simulation = simulate_plan(plan, config, scales)  # type: ignore[arg-type]
    except PriceError as error:
        _fail([str(error)], EXIT_BAD_INPUT)
    if picture is not None:
        picture.write_text(render_svg(stack, simulation.results))
    if output_format is SimulateFormat.json:
        print(json.dumps(simulation.document(), indent=2))
    else:
        print_simulation(out_console, simulation)
        if picture is not None:
            out_console.print(f"Wrote {picture}.", highlight=False)
    if not simulation.ok:
        minimum = simulation.results.get("min") or next(iter(simulation.results.values()))
        problems = [f"Pending at {minimum.scale} scale: {what}{f' ×{count}' if count > 1 else ''}: {reason}"
                    for what, count, reason in minimum.pending_groups()]
        problems += [f"drain blocked on pool {b['pool']} by PDB {b['pdb']}: {b['reason']}" for b in minimum.blocked_drains]
        _fail(problems, EXIT_FAILED)
