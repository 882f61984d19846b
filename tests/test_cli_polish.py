"""The command line reads well in an 80-column terminal: help text re-wrapped by the CLI library (no
breaks where the docstring had them), tables that never split a word, and a status line only on a
terminal."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from typer.testing import CliRunner

from gpufleet.infra import cli
from gpufleet.infra.cli import app
from gpufleet.infra.cli_tables import fits, print_table

HELP_PAGES = [["--help"], ["plan", "--help"], ["check", "--help"], ["schema", "stack", "--help"], ["docs", "config", "--help"]]
BORDER = "│"


def _lines(output: str, width: int) -> list[tuple[bool, int, str, int]]:
    """(in a panel, indent, text, usable width) of each line of a help page."""
    lines = []
    in_panel = False
    for raw in output.splitlines():
        stripped = raw.strip()
        if stripped.startswith("╭"):
            in_panel = True
            lines.append((in_panel, 0, "", 0))
            continue
        if stripped.startswith("╰"):
            in_panel = False
            lines.append((in_panel, 0, "", 0))
            continue
        if in_panel and raw.startswith(BORDER):
            inner = raw[1:].rstrip().removesuffix(BORDER)
            usable = len(inner) - 1  # one space of padding before the right border
        else:
            inner, usable = raw, width - 1
        text = inner.rstrip()
        lines.append((in_panel, len(text) - len(text.lstrip()), text, usable))
    return lines


def premature_breaks(output: str, width: int = 80) -> list[str]:
    """Lines that end although the next line's first word would have fitted: breaks that came from
    the source text rather than from wrapping to the terminal."""
    found = []
    lines = _lines(output, width)
    for (in_panel, indent, text, usable), (next_in_panel, next_indent, next_text, _) in zip(lines, lines[1:]):
        if not text.strip() or not next_text.strip() or in_panel != next_in_panel:
            continue
        continuation = next_indent > 1 if in_panel else next_indent == indent
        first_word = next_text.split()[0]
        if not continuation or first_word.startswith("["):  # typer puts [default: ...] on its own line
            continue
        if len(text) + 1 + len(first_word) <= usable:
            found.append(f"{text.strip()!r} / {next_text.strip()!r}")
    return found


@pytest.mark.parametrize("args", HELP_PAGES, ids=lambda a: " ".join(a))
def test_help_is_wrapped_to_80_columns(args):
    result = CliRunner().invoke(app, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert premature_breaks(result.output) == [], result.output


def test_the_check_finds_breaks_from_the_source_text():
    console = Console(file=io.StringIO(), width=80, legacy_windows=False)
    console.print("Show what pulumi up would create, the same program runs against an\nin-process engine.")
    assert premature_breaks(console.file.getvalue())


LONG = ("a cell whose value is long enough to need several lines in any terminal narrower than a "
        "desktop window, with nvidia.com/mig-1g.10gb and arn:aws:iam::111122223333:role/platform-admins")


def _printed(width: int, headers: list[str], rows: list[list[str]]) -> str:
    console = Console(file=io.StringIO(), width=width, legacy_windows=False, color_system=None)
    print_table(console, title="T", headers=headers, rows=rows)
    return console.file.getvalue()


def _words(text: str) -> set[str]:
    return set(re.split(r"[\s│┃┏┓┗┛━─┡┩└┘┌┐├┤╇╈┼]+", text))


@pytest.mark.parametrize("width", [80, 60, 200])
def test_tables_never_split_a_word(width):
    headers = ["pool", "instances (GPUs each)", "capacity", "GPU limit", "sharing", "pods request (per node)"]
    rows = [["serving-mig", "p4d (8), p5 (8)", "on-demand", "16", "MIG 1g.10gb", LONG]]
    output = _printed(width, headers, rows)
    assert max(len(line) for line in output.splitlines()) <= width
    words = _words(output)
    for cell in rows[0] + headers[1:]:
        for word in cell.split():
            assert word in words or f"{word}:" in words, (word, output)


def test_narrow_terminals_get_a_list_and_wide_ones_a_table():
    headers = ["pool", "pods request (per node)"]
    rows = [["serving-mig", "arn:aws:iam::111122223333:role/ml and nvidia.com/mig-1g.10gb"]]
    narrow = _printed(40, headers, rows)
    assert "━" not in narrow and "─" not in narrow
    assert "• serving-mig" in narrow and "    pods request (per node):" in narrow
    assert "\n    arn:aws:iam::111122223333:role/ml" in narrow  # wrapped lines keep the indent
    wide = _printed(80, headers, rows)
    assert "┃ pool" in wide or "pool " in wide.splitlines()[1]
    assert fits(Console(width=80), headers, rows) and not fits(Console(width=40), headers, rows)


def test_violation_table_keeps_long_messages_whole_in_80_columns():
    from gpufleet.policies.core import Violation

    violation = Violation(policy="gpu-replicas-anti-affinity", enforcement="mandatory", kind="Deployment",
                          namespace="team-research", name="a-deployment-with-a-rather-long-name", message=LONG)
    console = Console(file=io.StringIO(), width=80, legacy_windows=False, color_system=None)
    cli._print_violations([violation], console, title="Policy violations")
    output = console.file.getvalue()
    words = _words(output)
    for word in LONG.split() + ["gpu-replicas-anti-affinity", "team-research/a-deployment-with-a-rather-long-name"]:
        assert word in words, (word, output)


def test_status_line_only_on_a_terminal(monkeypatch):
    terminal = Console(file=io.StringIO(), force_terminal=True, width=80)
    monkeypatch.setattr(cli, "out_console", terminal)
    with cli._status("Planning dev offline…"):
        pass
    assert "Planning dev offline" in terminal.file.getvalue()
    piped = Console(file=io.StringIO(), force_terminal=False, width=80)
    monkeypatch.setattr(cli, "out_console", piped)
    with cli._status("Planning dev offline…"):
        pass
    assert piped.file.getvalue() == ""
