"""`gpufleet check`'s findings table on a console without styles is laid out directly
(``plain_ratio_table``) rather than through rich's Table: the two print the same characters, and the
direct layout steps aside (returns None) wherever it could not promise that."""

from __future__ import annotations

import io
import random
from typing import Optional, Sequence

import pytest
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gpufleet.infra import check_report
from gpufleet.infra.check_report import CheckResult, Finding, render_text
from gpufleet.infra.cli_tables import plain_ratio_table, print_plain
from gpufleet.policies.core import PolicyConfig, Violation


def _console(width: int, **kwargs: object) -> Console:
    return Console(file=io.StringIO(), width=width, legacy_windows=False, color_system=None, **kwargs)


def _rich(width: int, title: str, headers: Sequence[str], rows: Sequence[Sequence[str]],
          ratios: Sequence[Optional[int]], show_lines: bool) -> str:
    console = _console(width)
    table = Table(title=title, title_justify="left", show_lines=show_lines, expand=True)
    for header, ratio in zip(headers, ratios):
        if ratio is None:
            table.add_column(header, no_wrap=True)
        else:
            table.add_column(header, ratio=ratio, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    return console.file.getvalue()


def _plain(width: int, title: str, headers: Sequence[str], rows: Sequence[Sequence[str]],
           ratios: Sequence[Optional[int]], show_lines: bool) -> Optional[str]:
    console = _console(width)
    text = plain_ratio_table(console, title=title, headers=headers, rows=rows, ratios=ratios, show_lines=show_lines)
    if text is None:
        return None
    print_plain(console, text)
    return console.file.getvalue()


def _tables(seed: int, count: int):
    """Random tables: words of every length (longer than any column too), blank cells and lines,
    runs of spaces, brackets and colons, accented and other one-cell characters, a few characters
    rich measures or replaces itself (which the direct layout must leave to rich)."""
    rnd = random.Random(seed)
    alphabet = "abcdefghij KLMN/.:-_[]()é≤×—" + "xyz" * 3 + "  \n"

    def cell() -> str:
        if rnd.random() < 0.03:
            return rnd.choice(["a :smile: b", "日本語 text", "back\\slash", "tab\there", "cr\rx", "zero\u200bwidth"])
        words = ("".join(rnd.choice(alphabet) for _ in range(rnd.choice([1, 2, 3, 5, 8, 13, 40, 90])))
                 for _ in range(rnd.randint(0, 12)))
        return " ".join(words)

    for _ in range(count):
        ratios: list[Optional[int]] = [rnd.choice([None, 1, 2, 3]) for _ in range(rnd.choice([2, 3, 4]))]
        if not any(ratios):
            ratios[-1] = 1
        headers = [rnd.choice(["Level", "Policy / resource", "Message", "a very long header indeed", ""]) for _ in ratios]
        rows = [[rnd.choice(["mandatory", "advisory", "suppressed\n(mandatory)", ""])
                 if ratio is None and rnd.random() < 0.7 else cell() for ratio in ratios]
                for _ in range(rnd.randint(0, 5))]
        yield (rnd.choice([20, 30, 40, 60, 80, 100, 160, 200]), rnd.choice(["Policy violations", "", "T " * 50]),
               headers, rows, ratios, rnd.random() < 0.5)


def test_the_direct_layout_prints_what_rich_prints():
    laid_out = 0
    for table in _tables(seed=15, count=800):
        plain = _plain(*table)
        if plain is not None:
            laid_out += 1
            assert plain == _rich(*table), table
    assert laid_out > 350  # most tables are laid out directly; the rest is what rich must do itself


@pytest.mark.parametrize("cell", [
    "日本語 is two cells a character", "a zero\u200bwidth space", "combining e\u0301", "a tab\there",
    "a carriage\rreturn", "an emoji :smile: code", "an emoji :SMILE-emoji: code", "C:\\Users\\ml\\pod.yaml:3",
])
def test_characters_rich_measures_or_replaces_itself_are_left_to_rich(cell):
    assert plain_ratio_table(_console(80), title="T", headers=["Level", "Message"], rows=[["mandatory", cell]],
                             ratios=[None, 1]) is None


def test_a_colon_pair_that_names_no_emoji_is_laid_out_directly():
    rows = [["advisory", "image registry.example.com:5000/serve:1.0 runs as :root: in ns:team"]]
    table = (80, "T", ["Level", "Message"], rows, [None, 1], False)
    assert _plain(*table) == _rich(*table)


def test_styles_markup_and_cramped_columns_are_left_to_rich():
    def laid_out(console: Console, title: str, level: str) -> bool:
        return plain_ratio_table(console, title=title, headers=["Level", "Message"], rows=[[level, "a message"]],
                                 ratios=[None, 1]) is not None

    coloured = Console(file=io.StringIO(), width=80, color_system="truecolor", force_terminal=True)
    assert laid_out(_console(80), "T", "mandatory")
    assert not laid_out(coloured, "T", "mandatory")  # rich prints the styles
    assert not laid_out(_console(80), "[b]T[/b]", "mandatory")  # rich reads the title as markup
    assert not laid_out(_console(60), "T", "x" * 70)  # rich shrinks the columns


def _findings() -> CheckResult:
    findings = []
    for index in range(40):
        violation = Violation(
            policy=["gpu-shm-volume", "container-non-root", "gpu-pdb-required"][index % 3],
            enforcement=["mandatory", "advisory"][index % 2], kind="Deployment",
            namespace="" if index % 5 == 0 else f"team-{index}", name=f"model-{index}" + "-long" * (index % 7),
            message=("spec.template.spec container server: no /dev/shm mount; PyTorch/NCCL workers need more "
                     "shared memory than the runtime's 64 MiB [mount an emptyDir]") * (1 + index % 3),
        )
        findings.append(Finding(violation=violation, source="" if index % 11 == 0 else f"manifests/m{index}.yaml",
                                line=index + 1, object_index=index, suppressed=index % 4 == 0,
                                reason="" if index % 8 == 0 else f"accepted until the [next] migration #{index}"))
    return CheckResult(rules=(), config=PolicyConfig(), manifests=(), subjects=(), findings=tuple(findings))


@pytest.mark.parametrize("width", [80, 120, 160, 45])
def test_check_text_report_is_the_same_either_way(monkeypatch, width):
    result = _findings()
    laid_out: list[bool] = []

    def spy(*args, **kwargs):
        text = plain_ratio_table(*args, **kwargs)
        laid_out.append(text is not None)
        return text

    monkeypatch.setattr(check_report, "plain_ratio_table", spy)
    direct = _console(width)
    render_text(result, direct)
    assert laid_out == [True]  # brackets in messages and reasons are text, not markup, either way
    monkeypatch.setattr(check_report, "plain_ratio_table", lambda *args, **kwargs: None)
    through_rich = _console(width)
    render_text(result, through_rich)
    assert direct.file.getvalue() == through_rich.file.getvalue()
