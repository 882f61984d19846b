"""Tables for the command line that never split a word: a rich table while every column can hold its
longest word, else (narrow terminals) a list with one block per row."""

from __future__ import annotations

from typing import Sequence

from rich.console import Console
from rich.markup import escape, render
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

# A column costs its content plus one space either side and a border.
_COLUMN_OVERHEAD = 3


def _longest_word(markup: str) -> int:
    return max((len(word) for line in render(markup).plain.splitlines() for word in line.split()), default=0)


def fits(console: Console, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> bool:
    """Whether a table with these cells (rich markup) fits ``console`` without breaking a word."""
    needed = 1  # the left border
    for index, header in enumerate(headers):
        widest = max([_longest_word(escape(header))] + [_longest_word(row[index]) for row in rows])
        needed += widest + _COLUMN_OVERHEAD
    return needed <= console.width


def print_table(
    console: Console,
    *,
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    ratios: Sequence[int | None] = (),
    no_wrap: Sequence[str] = (),
    show_lines: bool = False,
) -> None:
    """``rows`` of rich-markup cells under ``headers``, as a table when it fits, else as a list."""
    if fits(console, headers, rows):
        table = Table(title=title, title_justify="left", show_lines=show_lines, expand=bool(ratios))
        for index, header in enumerate(headers):
            ratio = ratios[index] if index < len(ratios) else None
            table.add_column(header, ratio=ratio, no_wrap=header in no_wrap, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    console.print(f"[italic]{escape(title)}[/italic]", highlight=False)
    for row in rows:
        first, *rest = row
        console.print(Padding(Text.from_markup(f"• {first}"), (0, 0, 0, 0)), highlight=False)
        for header, cell in zip(headers[1:], rest):
            # Wrapped lines keep the field's indent; only a word wider than the terminal is folded.
            field = Text.from_markup(f"[dim]{escape(header)}:[/dim] ")
            field.append_text(Text.from_markup(cell.replace("\n", " · ")))
            console.print(Padding(field, (0, 0, 0, 4)), highlight=False)
