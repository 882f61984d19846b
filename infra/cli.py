"""The ``gpufleet`` command line."""

from __future__ import annotations

import json
from collections import Counter
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.tree import Tree

from gpufleet.infra.offline.engine import Recording
from gpufleet.infra.offline.plan import Plan, PlanInputError, Project, plan_stack

app = typer.Typer(
    help="gpufleet: a production GPU/ML platform on AWS EKS, as Pulumi components and policy packs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out_console = Console()
err_console = Console(stderr=True)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


@app.callback()
def _root() -> None:
    """gpufleet command line."""


@app.command()
def plan(
    stack: str = typer.Argument(..., help="Stack name: reads stacks/Pulumi.STACK.yaml."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write plan.json and manifests/ into this directory."),
    output_format: OutputFormat = typer.Option(OutputFormat.text, "--format", help="text (a tree) or json (plan.json on stdout)."),
    project_dir: Optional[Path] = typer.Option(None, "--project-dir", help="Directory with Pulumi.yaml (default: here or above)."),
) -> None:
    """Show what `pulumi up` would create for STACK, offline: the same program runs against an
    in-process engine with fake AWS answers; no cloud, cluster or Pulumi service is contacted."""
    try:
        project = Project.find(project_dir)
        result = plan_stack(project, stack)
    except PlanInputError as error:
        _fail(error.problems, EXIT_BAD_INPUT)
    except Exception as error:  # noqa: BLE001 - the user sees one line, not a traceback
        _fail([f"the program failed: {error}"], EXIT_FAILED)

    if out is not None:
        result.write(out)
    if output_format is OutputFormat.json:
        print(json.dumps(result.document(), indent=2))
    else:
        _print_tree(result, out)
    if result.schema_errors:
        _fail(["rendered Kubernetes objects fail their schemas:", *result.schema_errors], EXIT_FAILED)


def _fail(problems: list[str], code: int) -> None:
    for problem in problems:
        err_console.print(f"[red]error:[/red] {problem}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _print_tree(result: Plan, out: Optional[Path]) -> None:
    recording = result.recording
    stack_urn = _stack_urn(recording)
    root = Tree(f"[bold]{recording.project}-{result.stack}[/bold] (pulumi:pulumi:Stack)")
    _add_children(root, recording, stack_urn)
    resources = recording.resources
    custom = sum(1 for r in resources if (r.custom or r.remote) and not r.type.startswith("pulumi:providers:"))
    components = sum(1 for r in resources if not r.custom and not r.remote)
    protected = sum(1 for r in resources if r.protect)
    out_console.print(
        f"gpufleet plan [bold]{result.stack}[/bold]: what `pulumi up --stack {result.stack}` would create.",
        highlight=False,
    )
    out_console.print(root)
    out_console.print(
        f"{custom} resources in {components} components, {protected} protected from deletion, "
        f"{len(recording.kubernetes_objects())} Kubernetes objects. {result.schema_note}.",
        highlight=False,
    )
    if out is not None:
        out_console.print(f"Wrote {out / 'plan.json'} and {len(result.manifests())} manifests under {out / 'manifests'}.", highlight=False)
    out_console.print(
        "Offline: no AWS account, Kubernetes cluster or Pulumi service was contacted; ids, ARNs and "
        "endpoints above are stand-ins.",
        style="dim",
        highlight=False,
    )


def _stack_urn(recording: Recording) -> str:
    parents = {r.parent for r in recording.resources}
    for parent in parents:
        if parent.split("::")[-2].endswith("pulumi:pulumi:Stack"):
            return parent
    return ""


def _add_children(node: Tree, recording: Recording, parent_urn: str) -> None:
    children = recording.children(parent_urn)
    leaves: Counter[str] = Counter()
    protected: Counter[str] = Counter()
    for child in children:
        if child.custom:
            leaves[child.type] += 1
            protected[child.type] += child.protect
    for child in children:
        if child.remote:
            node.add(
                f"[bold cyan]{child.name}[/bold cyan] ({child.type}) — a multi-language component: "
                "its own children are made by its provider plugin at deploy time"
            )
        elif not child.custom:
            total = sum(1 for r in recording.descendants(child.urn) if r.custom or r.remote)
            branch = node.add(f"[bold cyan]{child.name}[/bold cyan] ({child.type}) — {total} resources")
            _add_children(branch, recording, child.urn)
    for type_token, count in sorted(leaves.items()):
        lock = f" [yellow]({protected[type_token]} protected)[/yellow]" if protected[type_token] else ""
        node.add(f"{type_token} ×{count}{lock}")



def main() -> None:
    app()


if __name__ == "__main__":
    main()
