"""The ``gpufleet`` command line."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from dataclasses import replace
from collections import Counter
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager, Optional, Sequence

import typer
from rich.console import Console
from rich.markup import escape

from gpufleet.infra.cli_check import check, rules_app
from gpufleet.infra.cli_params import PlainValuesGroup
from gpufleet.infra.cli_simulate import simulate
from gpufleet.infra.cli_tables import print_table
from gpufleet.infra.offline.graph import GraphDetail

if TYPE_CHECKING:  # the plan machinery imports the Pulumi SDK: `gpufleet --help` and `check` do without
    from rich.tree import Tree

    from gpufleet.infra.offline.engine import Recording
    from gpufleet.infra.offline.plan import Plan, Project
    from gpufleet.policies.analyzer import PolicyReport

app = typer.Typer(
    help="gpufleet: a production GPU/ML platform on AWS EKS, as Pulumi components and policy packs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Markdown: help paragraphs are re-wrapped to the terminal (single newlines in docstrings are not
    # line breaks) and `code` renders as code.
    rich_markup_mode="markdown",
    cls=PlainValuesGroup,  # parameter values converted without importing pydantic
)
from gpufleet.infra.cli_docs import docs_app, schema_app  # noqa: E402 - registered right below the app

app.add_typer(schema_app, name="schema")
app.add_typer(docs_app, name="docs")
from gpufleet.infra.cli_output import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, err_console, fail as _fail, out_console  # noqa: E402,F401


class OutputFormat(str, Enum):
    text = "text"
    json = "json"


def _print_version(value: bool) -> None:
    if value:
        from gpufleet import __version__

        print(f"gpufleet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """gpufleet command line."""


def _register_command_groups() -> None:
    from gpufleet.infra import policy_pack_cli, schemas_cli

    app.add_typer(schemas_cli.app, name="schemas")
    app.add_typer(policy_pack_cli.app, name="policy-pack")


@app.command()
def plan(
    stack: str = typer.Argument(..., help="Stack name: reads stacks/Pulumi.STACK.yaml."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write plan.json and manifests/ into this directory."),
    output_format: OutputFormat = typer.Option(OutputFormat.text, "--format", help="text (a tree) or json (plan.json on stdout)."),
    project_dir: Optional[Path] = typer.Option(None, "--project-dir", help="Directory with Pulumi.yaml (default: here or above)."),
    policy_config: Optional[Path] = typer.Option(
        None, "--policy-config", help="Policy pack config JSON (as for `pulumi preview --policy-pack-config`)."
    ),
    graph: Optional[Path] = typer.Option(
        None, "--graph", metavar="FILE",
        help="Write the component and dependency graph: Mermaid for FILE.mmd, Graphviz DOT for FILE.dot.",
    ),
    graph_detail: GraphDetail = typer.Option(
        GraphDetail.components, "--graph-detail",
        help="components: one node per component (a readable picture); resources: every resource, in its component.",
    ),
) -> None:
    """Show what `pulumi up` would create for STACK, offline.

    The same program runs against an in-process engine with fake AWS answers; no cloud, cluster or
    Pulumi service is contacted. The gpu-production policy pack then judges the plan as `pulumi
    preview --policy-pack` would; any mandatory violation fails the command (exit 1). Bad input
    (unknown stack, invalid stack file or configuration) exits 2, naming the field."""
    from gpufleet.infra.offline.graph import GraphFormatError, graph_format, plan_graph
    from gpufleet.infra.offline.plan import PlanInputError, Project, plan_stack

    pack_config = _read_policy_config(policy_config) if policy_config is not None else None
    try:
        graph_fmt = graph_format(graph) if graph is not None else None
    except GraphFormatError as error:
        _fail([str(error)], EXIT_BAD_INPUT)
    try:
        project = Project.find(project_dir)
        with _status(f"Planning {stack} offline…"):
            result = plan_stack(project, stack)
        stack_config = project.stack_config(stack)
    except PlanInputError as error:
        _fail(error.problems, EXIT_BAD_INPUT)
    except Exception as error:  # noqa: BLE001 - the user sees one line, not a traceback
        _fail([f"the program failed: {error}"], EXIT_FAILED)

    with _status("Running the policy pack…"):
        report = _judge_plan(result, stack_config, pack_config)
    if graph is not None and graph_fmt is not None:
        graph.write_text(plan_graph(result.recording, graph_detail).render(graph_fmt))
    if out is not None:
        result.write(out)
        (out / "policy.json").write_text(json.dumps(report.document(), indent=2) + "\n")
    if output_format is OutputFormat.json:
        # stdout stays exactly plan.json; the policy findings go to stderr (and to policy.json with --out).
        json.dump(result.document(), sys.stdout, indent=2)  # streamed: a large plan is not held twice as text
        print()
        if report.violations:
            _print_violations(report.violations, err_console, title=f"Policy violations in {stack}")
    else:
        _print_tree(result, out)
        _print_simulation_summary(project, result)
        _print_violations(report.violations, out_console, title=f"Policy violations in {stack}")
    problems: list[str] = []
    if result.schema_errors:
        problems += ["rendered Kubernetes objects fail their schemas:", *result.schema_errors]
    problems += result.admission_errors
    if report.mandatory:
        problems.append(f"{len(report.mandatory)} mandatory policy violation(s): `pulumi preview --policy-pack` would refuse this stack")
    if problems:
        _fail(problems, EXIT_FAILED)


def _status(message: str) -> ContextManager[Any]:
    """A transient spinner while the plan runs, on a terminal only: piped or redirected output
    (CI logs, `--format json > plan.json`) never sees it."""
    if out_console.is_terminal:
        return out_console.status(message, spinner="dots")
    return nullcontext()


def _judge_plan(result: Plan, stack_config: dict[str, str], pack_config: Optional[dict[str, Any]]) -> "PolicyReport":
    from gpufleet.policies.analyzer import PolicyConfigError, analyze_recording

    production = stack_config.get("gpufleet:environment") == "prod"
    try:
        return analyze_recording(
            result.recording, production=production, pack_config=pack_config, stack_config=stack_config
        )
    except PolicyConfigError as error:
        _fail([f"policy config: {p}" for p in error.problems], EXIT_BAD_INPUT)
    except Exception as error:  # noqa: BLE001 - under `pulumi preview` a crashing policy fails it too
        _fail([f"the policy pack failed: {error}"], EXIT_FAILED)
    raise AssertionError("unreachable: _fail exits")


def _read_policy_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8"))
    except OSError as error:
        _fail([f"{path}: cannot read ({error.strerror})"], EXIT_BAD_INPUT)
    except json.JSONDecodeError as error:
        _fail([f"{path}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}"], EXIT_BAD_INPUT)
    if not isinstance(data, dict):
        _fail([f"{path}: expected a JSON object (policy name → level or settings)"], EXIT_BAD_INPUT)
    return data


def _print_violations(
    violations: Sequence[Any],
    console: Console,
    *,
    title: str,
    where: Optional[dict[tuple[str, str, str], str]] = None,
) -> None:
    """A table, mandatory first: level, policy over the resource (and where it was read), message."""
    if not violations:
        console.print("Policies: no violations.", highlight=False)
        return
    rows: list[list[str]] = []
    order = {"mandatory": 0, "advisory": 1}
    for violation in sorted(violations, key=lambda v: (order.get(v.enforcement, 2), v.policy, v.namespace, v.name)):
        level = "[red]mandatory[/red]" if violation.enforcement == "mandatory" else f"[yellow]{violation.enforcement}[/yellow]"
        resource = f"{violation.kind} {violation.namespace + '/' if violation.namespace else ''}{violation.name}"
        cell = f"[bold]{escape(violation.policy)}[/bold]\n{escape(resource)}"
        location = (where or {}).get((violation.kind, violation.namespace, violation.name))
        if location:
            cell += f"\n[dim]{escape(location)}[/dim]"
        rows.append([level, cell, escape(violation.message)])
    print_table(console, title=title, headers=["Level", "Policy / resource", "Message"], rows=rows,
                ratios=[None, 1, 1], no_wrap=["Level"], show_lines=True)


def _print_tree(result: Plan, out: Optional[Path]) -> None:
    from rich.tree import Tree

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
    _print_gpu_pools(recording)
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


def _print_simulation_summary(project: Project, result: Plan) -> None:
    """One line from `gpufleet simulate`: nodes, $/h at min and max scale, Pending pods at min."""
    from gpufleet.infra.config import ConfigError, parse_stack_config
    from gpufleet.infra.offline.plan import PlanInputError
    from gpufleet.infra.simulate import PriceError, simulate_plan
    from gpufleet.infra.simulate.report import summary_line

    try:
        config = parse_stack_config(project.stack_config(result.stack), secret_keys=project.secret_keys(result.stack))
        line = summary_line(simulate_plan(result, config))
    except (PlanInputError, ConfigError, PriceError) as error:
        line = f"Simulation skipped: {error}"
    except Exception as error:  # noqa: BLE001 - the summary never fails the plan
        line = f"Simulation skipped: the simulator failed ({error}); run gpufleet simulate {result.stack} for details"
    out_console.print(line, highlight=False, soft_wrap=True)


def _print_gpu_pools(recording: Recording) -> None:
    """What each GPU NodePool offers, read back from the rendered NodePools and device plugin config
    the way the policies read them: instance types, capacity, GPU limit, sharing and the resource
    name pods request."""
    from gpufleet.infra.offline.engine import plain
    from gpufleet.policies.core import Subject, as_mapping, as_str
    from gpufleet.policies.rules._device_plugin import helm_releases, mps_configs, time_slicing_configs
    from gpufleet.policies.rules._karpenter import node_pools

    subjects = [Subject(type=r.type, name=r.name, props=plain(r.inputs), urn=r.urn) for r in recording.resources]
    pools, _ = node_pools(subjects)
    # CPU pools (EKS Auto Mode's system NodePool) offer no GPUs.
    pools = [pool for pool in pools if pool.can_launch_gpus]
    if not pools:
        return
    replicas = {entry.config: entry.replicas or 0 for entry in time_slicing_configs(subjects)}
    mps = {entry.config: entry.replicas or 0 for entry in mps_configs(subjects)}
    strategy = next((as_str(as_mapping(as_mapping(r.props.get("values")).get("mig")).get("strategy"))
                     for r in helm_releases(subjects, "gpu-operator")), None) or "mixed"
    rows: list[list[str]] = []
    for pool in sorted(pools, key=lambda p: p.name):
        placement = replace(pool.placement(replicas, mps), mig_strategy=strategy)
        capacity = next((r.values for r in pool.requirements if r.key == "karpenter.sh/capacity-type"), ("on-demand",))
        sharing = {
            "none": "whole GPUs",
            "time-slicing": f"time-slicing ×{placement.time_slicing_replicas}",
            "mps": f"MPS ×{placement.mps_replicas}",
            "mig": f"MIG {placement.mig_profile}",
        }[placement.sharing]
        limit = pool.limits.get("nvidia.com/gpu")
        rows.append([escape(cell) for cell in (
            pool.name,
            _families(placement.instance_types),
            ", ".join(capacity),
            "none" if limit is None else str(limit),
            sharing,
            (f"{placement.device_class} claim (≤ {placement.max_resources_per_node})" if placement.dra
             else f"{placement.gpu_resource} (≤ {placement.max_resources_per_node})"),
        )])
    headers = ["pool", "instances (GPUs each)", "capacity", "GPU limit", "sharing", "pods request (per node)"]
    print_table(out_console, title="GPU pools", headers=headers, rows=rows)


def _families(instance_types: Sequence[Any]) -> str:
    """``g6e (1-8), p5 (1-8)``: families and the GPU counts of their sizes."""
    gpus: dict[str, set[int]] = {}
    for instance in instance_types:
        gpus.setdefault(instance.family.family, set()).add(instance.gpus)
    return ", ".join(
        f"{family} ({min(n)}–{max(n)})" if len(n) > 1 else f"{family} ({min(n)})" for family, n in sorted(gpus.items())
    )


def _stack_urn(recording: Recording) -> str:
    parents = {r.parent for r in recording.resources}
    for parent in parents:
        if parent.split("::")[-2].endswith("pulumi:pulumi:Stack"):
            return parent
    return ""


def _add_children(node: Tree, recording: Recording, parent_urn: str) -> None:
    # Registration order follows the engine's thread scheduling: sort, so the tree reads the same every run.
    children = sorted(recording.children(parent_urn), key=lambda r: (r.name, r.urn))
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



app.command("check")(check)
app.command("simulate")(simulate)
app.add_typer(rules_app, name="rules")
_register_command_groups()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
