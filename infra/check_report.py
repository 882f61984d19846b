"""The reports of ``gpufleet check``: text, JSON, SARIF 2.1.0 and JUnit XML.

Every format carries the same findings: each rule violation with the file and line of the object it
is about (the manifest loader records where each document starts), its level, and whether an
annotation on the object suppressed it (and why). Suppressed findings are reported, never dropped,
and never fail the check.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from rich.console import Console
from rich.markup import escape

from gpufleet.infra.cli_tables import plain_ratio_table, print_plain

if TYPE_CHECKING:
    from gpufleet.infra.manifests import Manifest
    from gpufleet.policies.core import PolicyConfig, Rule, Subject, Violation

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
TOOL_NAME = "gpufleet"

_SARIF_LEVELS = {"mandatory": "error", "advisory": "warning", "disabled": "none"}


@dataclass(frozen=True)
class Finding:
    """One violation, where its object was read, and its suppression."""

    violation: "Violation"
    source: str
    """File the object was read from (``<stdin>`` for standard input); empty if unknown."""
    line: int
    """1-based line where the object's YAML document starts (0 if unknown)."""
    object_index: Optional[int]
    suppressed: bool = False
    reason: str = ""
    """The object's ``gpufleet.io/ignore-reason`` (suppressed findings only; may be empty)."""

    column: int = 1
    """The loader records where a document starts, which is column 1."""

    @property
    def counts(self) -> bool:
        """Fails the check: mandatory and not suppressed."""
        return self.violation.enforcement == "mandatory" and not self.suppressed

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}" if self.source else ""

    @property
    def resource(self) -> str:
        v = self.violation
        return f"{v.kind}/{v.namespace}/{v.name}" if v.namespace else f"{v.kind}/{v.name}"


@dataclass(frozen=True)
class CheckResult:
    """What one ``gpufleet check`` run found."""

    rules: tuple["Rule", ...]
    config: "PolicyConfig"
    manifests: tuple["Manifest", ...]
    subjects: tuple["Subject", ...]
    findings: tuple[Finding, ...]
    input_errors: tuple[str, ...] = ()
    """Objects or files that could not be checked (``file:line: ...``): they fail the gate."""
    skipped: tuple[str, ...] = ()
    """``<file>: skipped: <why>``: files found in a directory that hold no Kubernetes object."""

    @property
    def active(self) -> list[Finding]:
        return [f for f in self.findings if not f.suppressed]

    @property
    def suppressed(self) -> list[Finding]:
        return [f for f in self.findings if f.suppressed]

    @property
    def mandatory(self) -> list[Finding]:
        return [f for f in self.findings if f.counts]

    def enabled_rules(self) -> list["Rule"]:
        return [rule for rule in self.rules if self.config.enforcement_for(rule) != "disabled"]


def _order(finding: Finding) -> tuple[Any, ...]:
    levels = {"mandatory": 0, "advisory": 1}
    v = finding.violation
    return (finding.suppressed, levels.get(v.enforcement, 2), v.policy, v.namespace, v.name)


# -- text -----------------------------------------------------------------------------------------

def render_text(result: CheckResult, console: Console) -> None:
    """A table, mandatory first, suppressed last: level, policy over the resource and where it was
    read, message (and the suppression's reason)."""
    findings = sorted(result.findings, key=_order)
    if not findings:
        console.print("Policies: no violations.", highlight=False)
    else:
        title, headers = "Policy violations", ["Level", "Policy / resource", "Message"]
        text = plain_ratio_table(console, title=title, headers=headers, rows=[_plain_row(f) for f in findings],
                                 ratios=[None, 1, 1], show_lines=True)
        if text is not None:
            print_plain(console, text)  # the characters rich's table prints on a console without styles
        else:
            from rich.table import Table

            table = Table(title=title, title_justify="left", show_lines=True, expand=True)
            table.add_column(headers[0], no_wrap=True)
            table.add_column(headers[1], ratio=1, overflow="fold")
            table.add_column(headers[2], ratio=1, overflow="fold")
            for finding in findings:
                table.add_row(*_markup_row(finding))
            console.print(table)
    mandatory = len(result.mandatory)
    others = len(result.active) - mandatory
    summary = f"{len(result.manifests)} objects checked: {mandatory} mandatory, {others} other violation(s)."
    if result.input_errors:
        summary += f" {len(result.input_errors)} input error(s)."
    if result.skipped:
        summary += f" {len(result.skipped)} file(s) skipped."
    if result.suppressed:
        summary += f" {len(result.suppressed)} suppressed."
    if result.config.assume:
        summary += f" Assumed: {', '.join(sorted(result.config.assume))}."
    console.print(summary, highlight=False, markup=False)


def _markup_row(finding: Finding) -> list[str]:
    """Level, policy over the resource and where it was read, message (and the suppression's
    reason), as rich markup."""
    v = finding.violation
    if finding.suppressed:
        level = f"[dim]suppressed[/dim]\n[dim]({v.enforcement})[/dim]"
    elif v.enforcement == "mandatory":
        level = "[red]mandatory[/red]"
    else:
        level = f"[yellow]{v.enforcement}[/yellow]"
    resource = f"{v.kind} {v.namespace + '/' if v.namespace else ''}{v.name}"
    cell = f"[bold]{escape(v.policy)}[/bold]\n{escape(resource)}"
    if finding.location:
        cell += f"\n[dim]{escape(finding.location)}[/dim]"
    message = escape(v.message)
    if finding.suppressed:
        message += f"\n[dim]suppressed: {escape(finding.reason or '(no reason given)')}[/dim]"
    return [level, cell, message]


def _plain_row(finding: Finding) -> list[str]:
    """:func:`_markup_row` without its styles."""
    v = finding.violation
    level = f"suppressed\n({v.enforcement})" if finding.suppressed else v.enforcement
    cell = f"{v.policy}\n{v.kind} {v.namespace + '/' if v.namespace else ''}{v.name}"
    if finding.location:
        cell += f"\n{finding.location}"
    message = v.message
    if finding.suppressed:
        message += f"\nsuppressed: {finding.reason or '(no reason given)'}"
    return [level, cell, message]


# -- JSON -----------------------------------------------------------------------------------------

def finding_document(finding: Finding) -> dict[str, Any]:
    v = finding.violation
    document: dict[str, Any] = {
        "policy": v.policy, "enforcement": v.enforcement, "kind": v.kind, "namespace": v.namespace,
        "name": v.name, "message": v.message, "file": finding.source, "line": finding.line,
    }
    if finding.suppressed:
        document["reason"] = finding.reason
    return document


def render_json(result: CheckResult) -> str:
    """``{"checked": N, "violations": [...], "suppressed": [...]}``: each finding with its policy,
    enforcement, kind, namespace, name, message, file and line; suppressed ones also with ``reason``."""
    document: dict[str, Any] = {
        "checked": len(result.manifests),
        "assume": sorted(result.config.assume),
        "violations": [finding_document(f) for f in result.active],
        "suppressed": [finding_document(f) for f in result.suppressed],
    }
    if result.input_errors:
        document["inputErrors"] = list(result.input_errors)
    if result.skipped:
        document["skipped"] = list(result.skipped)
    return json.dumps(document, indent=2) + "\n"


# -- SARIF 2.1.0 ----------------------------------------------------------------------------------

def artifact_uri(source: str) -> str:
    """A file's URI as code scanning wants it: relative to the working directory (the repository root
    in CI), with forward slashes; absolute ``file://`` URIs for files outside it."""
    from urllib.parse import quote

    if source in ("", "<stdin>"):
        return quote("stdin")
    path = Path(source)
    try:
        relative = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path.resolve().as_uri()
    return quote(relative.as_posix())


def _first_sentence(text: str) -> str:
    match = re.match(r"(.+?[.!?])(?:\s+(?=[A-Z(])|$)", text.strip(), flags=re.S)
    return (match.group(1) if match else text).strip()


def rule_descriptor(rule: "Rule", config: "PolicyConfig") -> dict[str, Any]:
    """A SARIF ``reportingDescriptor``: id, short and full description, help (text and Markdown with
    why, fix and a passing example), the level on this run by default, and tags."""
    level = config.enforcement_for(rule)
    help_text = f"{rule.description}\n\nWhy: {rule.why}\n\nFix: {rule.fix}\n\nPassing example:\n{rule.example}"
    help_markdown = (f"{rule.description}\n\n**Why:** {rule.why}\n\n**Fix:** {rule.fix}\n\n"
                     f"**Passing example:**\n\n```yaml\n{rule.example.rstrip()}\n```\n\n"
                     f"`gpufleet rules explain {rule.name}` prints this.")
    tags = ["kubernetes", "gpufleet"]
    if rule.name.startswith(("aws-", "eks-", "container-")):
        tags.append("security")
    if rule.name.startswith("gpu-"):
        tags.append("gpu")
    return {
        "id": rule.name,
        "name": rule.name,
        "shortDescription": {"text": rule.summary or _first_sentence(rule.description)},
        "fullDescription": {"text": rule.description},
        "help": {"text": help_text, "markdown": help_markdown},
        "defaultConfiguration": {"level": _SARIF_LEVELS[level], "enabled": level != "disabled"},
        "properties": {
            "tags": tags,
            "gpufleet/enforcement": {"dev": rule.default_enforcement(False), "prod": rule.default_enforcement(True)},
            "gpufleet/scope": "resource" if rule.check_resource is not None else "cross-resource",
        },
    }


def _fingerprint(finding: Finding) -> str:
    """Stable across line moves: the rule, the object and the message."""
    import hashlib

    v = finding.violation
    return hashlib.sha256(f"{v.policy}\0{finding.resource}\0{v.message}".encode()).hexdigest()[:32]


def sarif_document(result: CheckResult) -> dict[str, Any]:
    rules = list(result.rules)
    index = {rule.name: i for i, rule in enumerate(rules)}
    results = []
    for finding in sorted(result.findings, key=_order):
        v = finding.violation
        location: dict[str, Any] = {
            "physicalLocation": {
                "artifactLocation": {"uri": artifact_uri(finding.source)},
                "region": {"startLine": max(finding.line, 1), "startColumn": finding.column},
            },
            "logicalLocations": [{"name": v.name, "fullyQualifiedName": finding.resource, "kind": "resource"}],
        }
        entry: dict[str, Any] = {
            "ruleId": v.policy,
            "level": _SARIF_LEVELS.get(v.enforcement, "warning"),
            "kind": "fail",
            "message": {"text": f"{v.kind} {v.namespace + '/' if v.namespace else ''}{v.name}: {v.message}"},
            "locations": [location],
            "partialFingerprints": {"gpufleetFinding/v1": _fingerprint(finding)},
            "properties": {"enforcement": v.enforcement},
        }
        if v.policy in index:
            entry["ruleIndex"] = index[v.policy]
        if finding.suppressed:
            suppression: dict[str, Any] = {"kind": "inSource", "status": "accepted"}
            if finding.reason:
                suppression["justification"] = finding.reason
            entry["suppressions"] = [suppression]
        results.append(entry)
    driver: dict[str, Any] = {
        "name": TOOL_NAME,
        "rules": [rule_descriptor(rule, result.config) for rule in rules],
    }
    version = _package_version()
    if version:
        driver["semanticVersion"] = version
        driver["version"] = version
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": SARIF_VERSION,
        "runs": [{
            "tool": {"driver": driver},
            "invocations": [{"executionSuccessful": True}],
            "columnKind": "unicodeCodePoints",
            "results": results,
            "properties": {"checked": len(result.manifests), "assume": sorted(result.config.assume),
                           "production": result.config.production},
        }],
    }


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gpufleet")
    except PackageNotFoundError:
        return ""


def render_sarif(result: CheckResult) -> str:
    """One SARIF 2.1.0 run: every rule's metadata, a result per finding (file, line, column; level
    error for mandatory, warning for advisory), suppressed findings with ``suppressions``."""
    return json.dumps(sarif_document(result), indent=2) + "\n"


# -- JUnit XML ------------------------------------------------------------------------------------

def render_junit(result: CheckResult) -> str:
    """JUnit XML: a test suite per file, a test case per object and enabled rule. A mandatory
    finding is a ``failure``; a suppressed one ``skipped`` (with the reason); an advisory one passes
    with its message in ``system-out`` (advisory findings do not fail the check either)."""
    import xml.etree.ElementTree as ET

    by_case: dict[tuple[int, str], list[Finding]] = {}
    for finding in result.findings:
        if finding.object_index is not None:
            by_case.setdefault((finding.object_index, finding.violation.policy), []).append(finding)
    rules = result.enabled_rules()
    root = ET.Element("testsuites", name="gpufleet check")
    suites: dict[str, ET.Element] = {}
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    counts: dict[str, dict[str, int]] = {}
    for index, (manifest, subject) in enumerate(zip(result.manifests, result.subjects)):
        suite = suites.get(manifest.source)
        if suite is None:
            suite = suites[manifest.source] = ET.SubElement(root, "testsuite", name=manifest.source)
            counts[manifest.source] = {"tests": 0, "failures": 0, "skipped": 0}
        ns = subject.namespace
        resource = f"{subject.kind}/{ns}/{subject.object_name}" if ns else f"{subject.kind}/{subject.object_name}"
        for rule in rules:
            case = ET.SubElement(suite, "testcase", name=rule.name, classname=f"{manifest.location} {resource}",
                                 file=manifest.source, line=str(manifest.line))
            counts[manifest.source]["tests"] += 1
            findings = by_case.get((index, rule.name), [])
            messages = "\n".join(f.violation.message for f in findings)
            if findings and all(f.suppressed for f in findings):
                reason = findings[0].reason or "(no reason given)"
                skipped = ET.SubElement(case, "skipped", message=f"suppressed: {reason}")
                skipped.text = messages
                counts[manifest.source]["skipped"] += 1
            elif any(f.counts for f in findings):
                failure = ET.SubElement(case, "failure", type="mandatory",
                                        message=next(f.violation.message for f in findings if f.counts))
                failure.text = f"{manifest.location} {resource}\n{messages}"
                counts[manifest.source]["failures"] += 1
            elif findings:
                out = ET.SubElement(case, "system-out")
                out.text = "\n".join(f"{f.violation.enforcement}: {f.violation.message}" for f in findings)
    for source, suite in suites.items():
        for key, value in counts[source].items():
            suite.set(key, str(value))
            totals[key] += value
        suite.set("errors", "0")
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
