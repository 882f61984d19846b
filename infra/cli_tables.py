"""Tables for the command line that never split a word: a rich table while every column can hold its
longest word, else (narrow terminals) a list with one block per row. And rich's expanding table laid
out directly, for ``gpufleet check``'s findings on a console without styles (:func:`plain_ratio_table`)."""

from __future__ import annotations

from typing import Sequence

from rich.console import Console
from rich.markup import escape, render

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
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

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


# -- rich's expanding table, laid out directly ----------------------------------------------------
# rich's Table measures every cell and renders it through its segment machinery: for a thousand
# findings that is most of `gpufleet check`'s time. On a console that prints no styles (piped or
# redirected output, CI logs, --output files) only the characters matter, and for this one layout
# (an expanding table whose flexible columns have ratios) they follow from a few rules, applied
# here with rich's own line breaking and width sharing. tests/test_cli_tables.py holds the two to
# the same characters.


def plain_ratio_table(
    console: Console,
    *,
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    ratios: Sequence[int | None],
    show_lines: bool = False,
) -> str | None:
    """What ``console.print`` writes for ``Table(title=title, title_justify="left", expand=True,
    show_lines=show_lines)`` with a column per header (``ratios[i]`` None: sized to its content,
    without wrapping; else a flexible column folding long words) and these plain-text cells.

    None when this layout cannot promise rich's characters: a console that prints styles, a cell
    with a character rich measures or replaces itself (wide, zero-width or control characters, tabs,
    emoji codes, backslashes), or columns sized to their content leaving the flexible ones less than
    their minimum (rich then shrinks columns)."""
    if console.color_system is not None or len(ratios) != len(headers) or not any(ratios):
        return None
    if any("[" in text for text in (title, *headers)):
        return None  # rich reads the title and headers as markup
    texts = [title, *headers, *(cell for row in rows for cell in row)]
    if not all(_plain_text(text) for text in texts):
        return None
    from rich import box as boxes
    from rich._ratio import ratio_distribute
    from rich._wrap import divide_line

    padding = 2  # one space either side of each cell
    max_width = console.width - (len(headers) + 1)  # the edges and a divider between columns
    widths: list[int] = []
    for index, ratio in enumerate(ratios):
        if ratio is None:
            column = [headers[index], *(row[index] for row in rows)]
            widths.append(max(len(line) for cell in column for line in cell.split("\n")) + padding)
        else:
            widths.append(0)
    flexible = [ratio for ratio in ratios if ratio is not None]
    shares = iter(ratio_distribute(max_width - sum(widths), flexible, [1 + padding] * len(flexible)))
    widths = [width if ratio is None else next(shares) for width, ratio in zip(widths, ratios)]
    if sum(widths) > max_width or any(width > max_width for width in widths):
        return None
    if sum(widths) < max_width:
        widths = [width + pad for width, pad in zip(widths, ratio_distribute(max_width - sum(widths), widths))]

    def lines_of(text: str, width: int, wrap: bool) -> list[str]:
        lines = []
        for line in text.split("\n"):
            offsets = [0, *divide_line(line, width, fold=True), len(line)] if wrap else [0, len(line)]
            lines += [line[start:end][:width].ljust(width) for start, end in zip(offsets, offsets[1:])]
        return lines

    box = boxes.HEAVY_HEAD.substitute(console.options, safe=console.safe_box)
    table_width = sum(widths) + len(headers) + 1
    out = [line + "\n" for line in lines_of(title, table_width, True)] if title else []
    out.append(box.get_top(widths) + "\n")
    all_rows = [headers, *rows]
    for index, row in enumerate(all_rows):
        cells = [[f" {line} " for line in lines_of(cell, width - padding, ratio is not None)]
                 for cell, width, ratio in zip(row, widths, ratios)]
        height = max(len(cell) for cell in cells)
        for cell, width in zip(cells, widths):
            blank = [" " * width] * (height - len(cell))
            cell[:] = blank + cell if index == 0 else cell + blank  # the header sits on the bottom line
        if index == 0:
            left, right, divider = box.head_left, box.head_right, box.head_vertical
        elif index == len(all_rows) - 1:
            left, right, divider = box.foot_left, box.foot_right, box.foot_vertical
        else:
            left, right, divider = box.mid_left, box.mid_right, box.mid_vertical
        out += [left + divider.join(line) + right + "\n" for line in zip(*cells)]
        if index == 0:
            out.append(box.get_row(widths, "head", edge=True) + "\n")
        elif show_lines and index < len(all_rows) - 1:
            out.append(box.get_row(widths, "row", edge=True) + "\n")
    out.append(box.get_bottom(widths) + "\n")
    return "".join(out)


def _plain_text(text: str) -> bool:
    """Every character one cell wide and printable, no emoji code (``:name:``) rich would replace, and
    no backslash: rich's markup escaping shows some backslashes doubled or dropped."""
    if "\\" in text:
        return False
    if not (text.isascii() and text.replace("\n", "").isprintable()):
        from rich.cells import get_character_cell_size

        if not all(char == "\n" or (char.isprintable() and get_character_cell_size(char) == 1) for char in text):
            return False
    if ":" in text:
        from rich._emoji_codes import EMOJI

        # rich replaces :name: (or :name-emoji:, :name-text:) between two colons with no space between
        for name in text.split(":")[1:-1]:
            if name and not any(char.isspace() for char in name):
                base = name.lower()
                if base in EMOJI or base.rsplit("-", 1)[0] in EMOJI:
                    return False
    return True


def print_plain(console: Console, text: str) -> None:
    """Write ``text`` (whole lines) through ``console`` as it is: no markup, wrapping or cropping."""
    from rich.segment import Segment, Segments

    console.print(Segments([Segment(text)]), crop=False)
