"""``gpufleet check`` and ``gpufleet rules``: plain manifests through gpufleet's rules, as a CI gate.

``check`` loads manifests (:mod:`gpufleet.infra.manifests`, which records file and line per object),
runs every rule (:func:`gpufleet.policies.core.evaluate`), applies the ``exempt`` patterns and the
objects' suppression annotations (:mod:`gpufleet.policies.suppressions`), and reports in one of four
formats (:mod:`gpufleet.infra.check_report`). ``rules`` lists the rules and explains one.

Exit codes: 0 no unsuppressed mandatory finding and no input error, 1 some, 2 bad input (nothing could
be checked, unreadable config, an unknown rule or assumption name: the message names the nearest
valid one). Input errors beside checked objects (a malformed object, a file refused by the YAML
reader) are printed on stderr, listed in the report and fail the gate (exit 1).
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Optional, Sequence

import typer
from rich.console import Console
from rich.markup import escape

from gpufleet.infra.check_report import CheckResult, Finding, render_json, render_junit, render_sarif, render_text

from gpufleet.infra.cli_output import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, err_console, fail, out_console  # noqa: F401


class CheckFormat(str, Enum):
    text = "text"
    json = "json"
    sarif = "sarif"
    junit = "junit"


class ListFormat(str, Enum):
    text = "text"
    json = "json"


def check(
    paths: list[str] = typer.Argument(..., help="Manifest files or directories (*.yaml, *.yml, recursively); - reads stdin."),
    output_format: CheckFormat = typer.Option(
        CheckFormat.text, "--format",
        help="text (a table), json, sarif (SARIF 2.1.0, for GitHub code scanning) or junit (JUnit XML).",
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Write the report to this file instead of stdout (the exit code is the same)."
    ),
    production: bool = typer.Option(
        False, "--production", help="Judge as a production stack (production defaults: stricter levels and rules)."
    ),
    config: Optional[Path] = typer.Option(
        None, "--config",
        help="Policy config JSON, the shape of `pulumi preview --policy-pack-config` (plus \"production\" and \"assume\").",
    ),
    assume: list[str] = typer.Option(
        [], "--assume",
        help="What the cluster provides outside the checked files, comma-separated or repeated: dcgm-exporter, "
             "gpu-quota, disruption-budgets, node-pools=external (see `gpufleet rules assumptions`).",
    ),
) -> None:
    """Check plain Kubernetes manifests against gpufleet's policies (resource and cross-resource
    rules), e.g. in CI. Exit 0: no mandatory violation (suppressed ones do not count); 1: some;
    2: unreadable input or config, or an unknown rule or assumption name."""
    result = run_check(paths, production=production, config=config, assume=assume)
    if output_format is CheckFormat.text:
        if output is not None:
            with output.open("w", encoding="utf-8") as handle:
                render_text(result, Console(file=handle, width=160))
        else:
            render_text(result, out_console)
    else:
        renderers = {CheckFormat.json: render_json, CheckFormat.sarif: render_sarif, CheckFormat.junit: render_junit}
        text = renderers[output_format](result)
        if output is not None:
            output.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
    if result.mandatory or result.input_errors:
        raise typer.Exit(EXIT_FAILED)


def run_check(
    paths: Sequence[str], *, production: bool = False, config: Optional[Path] = None, assume: Sequence[str] = ()
) -> CheckResult:
    """Load, judge and locate; exits 2 (with the problem on stderr) on bad input."""
    from gpufleet.infra.manifests import ManifestError, load
    from gpufleet.policies import rules as rule_registry
    from gpufleet.policies.core import (
        PolicyConfig, Subject, UnknownNameError, evaluate, parse_assumptions, unknown_config_keys,
    )
    from gpufleet.policies.pack import settings_problems, without_exempt
    from gpufleet.policies.suppressions import suppression_of

    rules = rule_registry.RULES
    names = [rule.name for rule in rules]
    data = read_policy_config(config) if config is not None else {}
    unknown = unknown_config_keys(data, names)
    if unknown:
        fail([f"{config}: {error}" for error in unknown])
    try:
        policy_config = PolicyConfig.from_mapping({**data, "production": True} if production else data)
    except ValueError as error:
        fail([f"{config}: {error}"])
    try:
        extra = parse_assumptions(assume, "--assume")
    except ValueError as error:
        fail([str(error)])
    policy_config = _with_assumptions(policy_config, extra)
    problems = settings_problems(data, rules)
    if problems:
        fail([f"{config}: {p}" for p in problems])
    try:
        manifests = load(paths)
    except ManifestError as error:
        fail(error.problems)
    for line in manifests.skipped:
        err_console.print(line, highlight=False, soft_wrap=True, markup=False)
    for problem in manifests.problems:
        err_console.print(f"[red]input error:[/red] {escape(problem)}", highlight=False, soft_wrap=True)

    subjects = [Subject.from_manifest(m.object, urn=f"{_URN_PREFIX}{i}") for i, m in enumerate(manifests)]
    suppressions = {}
    try:
        for subject, manifest in zip(subjects, manifests):
            suppression = suppression_of(subject, names, manifest.location)
            if suppression is not None:
                suppressions[subject.urn] = suppression
    except UnknownNameError as error:
        fail([str(error)])
    violations = without_exempt(evaluate(subjects, policy_config, rules), rules, policy_config)
    by_identity: dict[tuple[str, str, str], int] = {}
    for index, subject in enumerate(subjects):
        by_identity.setdefault((subject.kind, subject.namespace, subject.object_name), index)
    findings = []
    for violation in violations:
        index = _index(violation.urn)
        if index is None:
            index = by_identity.get((violation.kind, violation.namespace, violation.name))
        manifest = manifests[index] if index is not None else None
        suppression = suppressions.get(subjects[index].urn) if index is not None else None
        suppressed = suppression is not None and suppression.covers(violation.policy)
        findings.append(Finding(
            violation=violation,
            source=manifest.source if manifest else "",
            line=manifest.line if manifest else 0,
            object_index=index,
            suppressed=suppressed,
            reason=suppression.reason if suppressed and suppression else "",
        ))
    return CheckResult(rules=tuple(rules), config=policy_config, manifests=tuple(manifests),
                       subjects=tuple(subjects), findings=tuple(findings),
                       input_errors=tuple(manifests.problems), skipped=tuple(manifests.skipped))


_URN_PREFIX = "gpufleet-check:object/"
"""``Subject.urn`` of the N-th checked object: maps a finding back to the manifest it came from."""


def _index(urn: str) -> Optional[int]:
    if urn.startswith(_URN_PREFIX) and urn[len(_URN_PREFIX):].isdigit():
        return int(urn[len(_URN_PREFIX):])
    return None


def _with_assumptions(config: Any, extra: frozenset[str]) -> Any:
    from dataclasses import replace

    return replace(config, assume=config.assume | extra) if extra else config


def read_policy_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8"))
    except OSError as error:
        fail([f"{path}: cannot read ({error.strerror})"])
    except json.JSONDecodeError as error:
        fail([f"{path}:{error.lineno}:{error.colno}: invalid JSON: {error.msg}"])
    if not isinstance(data, dict):
        fail([f"{path}: expected a JSON object (policy name → level or settings)"])
    return data


# --------------------------------------------------------------------------------------------------
# gpufleet rules
# --------------------------------------------------------------------------------------------------

rules_app = typer.Typer(
    help="The rules gpufleet checks: `gpufleet rules` lists them, `gpufleet rules explain NAME` explains one.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@rules_app.callback()
def list_rules(
    ctx: typer.Context,
    output_format: ListFormat = typer.Option(ListFormat.text, "--format", help="text (a table) or json."),
) -> None:
    """List every rule: name, default enforcement on development and production stacks, what it guards."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from gpufleet.policies.rules import RULES

    if output_format is ListFormat.json:
        print(json.dumps([{
            "name": rule.name,
            "enforcement": {"dev": rule.default_enforcement(False), "prod": rule.default_enforcement(True)},
            "kind": "resource" if rule.check_resource is not None else "cross-resource",
            "summary": rule.summary,
        } for rule in RULES], indent=2))
        return
    table = Table(title=f"{len(RULES)} rules", title_justify="left", expand=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("dev", no_wrap=True)
    table.add_column("prod", no_wrap=True)
    table.add_column("guards", ratio=1, overflow="fold")
    for rule in RULES:
        table.add_row(rule.name, rule.default_enforcement(False), rule.default_enforcement(True), escape(rule.summary))
    out_console.print(table)
    out_console.print("`gpufleet rules explain NAME` explains one; `gpufleet rules assumptions` lists what "
                      "`--assume` takes.", highlight=False, markup=False)


@rules_app.command("explain")
def explain(name: str = typer.Argument(..., help="Rule name, e.g. gpu-shm-volume.")) -> None:
    """What a rule checks, why, how to fix a violation, and a passing example."""
    from gpufleet.policies.assumptions import ASSUMPTIONS
    from gpufleet.policies.core import UnknownNameError
    from gpufleet.policies.pack import config_schema
    from gpufleet.policies.rules import RULES_BY_NAME

    rule = RULES_BY_NAME.get(name)
    if rule is None:
        fail([str(UnknownNameError("rule", name, list(RULES_BY_NAME)))])
    levels = f"{rule.default_enforcement(False)} on development stacks, {rule.default_enforcement(True)} on production"
    kind = "one object at a time" if rule.check_resource is not None else "across every checked object"
    print_section = out_console.print
    print_section(f"[bold]{rule.name}[/bold] — {escape(rule.summary)}", highlight=False)
    print_section(f"Default: {levels}; judges {kind}.", highlight=False)
    for title, text in (("Checks", rule.description), ("Why", rule.why), ("Fix", rule.fix)):
        print_section(f"\n[bold]{title}[/bold]", highlight=False)
        print_section(escape(text), highlight=False)
    assumptions = [a for a in ASSUMPTIONS if rule.name in a.rules]
    if assumptions:
        print_section("\n[bold]Assumptions[/bold] (--assume)", highlight=False)
        for assumption in assumptions:
            token = " | ".join(assumption.tokens)
            print_section(f"  {token}: {escape(assumption.meaning)}; {escape(assumption.effect)}", highlight=False)
    properties = config_schema(rule).properties
    print_section("\n[bold]Settings[/bold] (policy config)", highlight=False)
    for key, schema in properties.items():
        default = json.dumps(schema.get("default")) if "default" in schema else "none"
        print_section(f"  {key} (default {escape(default)}): {escape(str(schema.get('description', '')))}", highlight=False)
    print_section("\n[bold]Passing example[/bold]", highlight=False)
    out_console.print(rule.example.rstrip(), markup=False, highlight=False)


@rules_app.command("assumptions")
def assumptions() -> None:
    """What `gpufleet check --assume` (and the `assume` config key) takes."""
    from rich.table import Table

    from gpufleet.policies.assumptions import ASSUMPTIONS

    table = Table(title="Assumptions", title_justify="left", expand=True, show_lines=True)
    table.add_column("assume", no_wrap=True)
    table.add_column("means", ratio=2, overflow="fold")
    table.add_column("effect", ratio=1, overflow="fold")
    for assumption in ASSUMPTIONS:
        table.add_row("\n".join(assumption.tokens), escape(assumption.meaning), escape(assumption.effect))
    out_console.print(table)
