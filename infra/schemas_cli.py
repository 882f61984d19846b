"""``gpufleet schemas``: the upstream CRDs and chart values custom resources are checked against."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

TIMEOUT_SECONDS = 30.0
"""``--timeout``'s default: :data:`gpufleet.infra.upstream_cache.TIMEOUT_SECONDS` (a test holds them
equal), written out so that building the command line does not import the cache module."""

app = typer.Typer(help="Upstream CRDs and Helm chart values that custom resources are schema-checked against.",
                  no_args_is_help=True)
_err = Console(stderr=True)


@app.command()
def pull(
    source: Optional[str] = typer.Option(
        None, "--from", metavar="DIR|URL",
        help="A local directory or http(s) mirror laid out like the cache (crds/, charts/); default: GitHub, at the pinned tags.",
    ),
    force: bool = typer.Option(False, "--force", help="Fetch again even when the cache already has them."),
    timeout: float = typer.Option(TIMEOUT_SECONDS, "--timeout", min=1, help="Seconds per request."),
) -> None:
    """Fetch the pinned upstream files, verify every sha256 against gpufleet's lock and store them in
    the user cache, where `gpufleet plan` finds them. Nothing is stored unless every file matches."""
    from gpufleet.infra import upstream_cache

    lock = upstream_cache.load_lock()
    try:
        folder = upstream_cache.pull(source, lock=lock, force=force, timeout=timeout)
    except upstream_cache.UpstreamError as error:
        _err.print(f"error: {error}", highlight=False, markup=False)
        raise typer.Exit(1)
    print(f"{len(lock.files)} upstream files verified (sha256) in {folder}")


@app.command()
def where() -> None:
    """Print the directory custom resources are checked against (exit 1 when there is none)."""
    from gpufleet.infra import upstream_cache
    from gpufleet.infra.validation.schema import upstream_dir

    found = upstream_dir()
    if found is None:
        _err.print(f"no upstream CRDs: run `{upstream_cache.PULL_COMMAND}`", highlight=False, markup=False)
        raise typer.Exit(1)
    print(found)


@app.command()
def lock(
    source: Path = typer.Option(..., "--from", help="Directory laid out like the cache, with a SOURCES.md listing each file's repository, tag and upstream path."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the lock here (default: stdout)."),
) -> None:
    """Build the lock (raw-file URL at its tag and sha256 of every file) from a verified mirror. For
    maintainers re-pinning upstream versions: `--out infra/upstream.lock.json`."""
    from gpufleet.infra import upstream_cache

    try:
        text = upstream_cache.make_lock(source).dumps()
    except upstream_cache.UpstreamError as error:
        _err.print(f"error: {error}", highlight=False, markup=False)
        raise typer.Exit(2)
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)
