"""What every ``gpufleet`` command shares: its exit codes, the two consoles, and how an error ends it."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
"""0: done, nothing mandatory to report; 1: the program failed or a finding blocks; 2: bad input."""

out_console = Console()
err_console = Console(stderr=True)


def fail(problems: list[str], code: int = EXIT_BAD_INPUT) -> NoReturn:
    """Print each problem as an error line (the text is never read as rich markup) and exit ``code``."""
    for problem in problems:
        err_console.print(f"[red]error:[/red] {escape(problem)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
