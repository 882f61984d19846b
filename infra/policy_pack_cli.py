"""``gpufleet policy-pack``: a CrossGuard pack directory that works outside this repository."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(help="CrossGuard policy packs with gpufleet's rules.", no_args_is_help=True)
_err = Console(stderr=True)


@app.command()
def init(
    directory: Path = typer.Argument(..., help="Pack directory to create (pass it to `pulumi preview --policy-pack`)."),
    production: bool = typer.Option(False, "--production", help="Always apply the production defaults."),
    requirement: Optional[str] = typer.Option(
        None, "--requirement", metavar="SPEC",
        help="gpufleet for the pack's requirements.txt: a wheel, a source directory or a pip requirement "
        "(default: this version, pinned).",
    ),
    force: bool = typer.Option(False, "--force", help="Replace the pack files of an existing directory."),
) -> None:
    """Write a complete policy pack: PulumiPolicy.yaml, __main__.py, requirements.txt (gpufleet
    pinned) and a README with the commands to run and publish it."""
    from gpufleet.policies.pack_files import write_pack

    try:
        written = write_pack(directory, production=production, requirement=requirement, force=force)
    except (FileExistsError, OSError) as error:
        _err.print(f"error: {error}", highlight=False, markup=False)
        raise typer.Exit(2)
    for path in written:
        print(f"wrote {path}")
    print(f"next: cd {directory} && pulumi install, then: pulumi preview --policy-pack {directory}")
