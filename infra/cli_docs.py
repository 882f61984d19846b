"""``gpufleet schema stack`` and ``gpufleet docs config``: the stack file JSON Schema and the
configuration reference, printed from the configuration models (see :mod:`gpufleet.infra.reference`)."""

from __future__ import annotations

import sys

import typer

schema_app = typer.Typer(help="JSON Schemas derived from gpufleet's models.", no_args_is_help=True, rich_markup_mode="markdown")
docs_app = typer.Typer(help="Reference documentation derived from gpufleet's models.", no_args_is_help=True, rich_markup_mode="markdown")


@schema_app.command("stack")
def schema_stack() -> None:
    """Print the JSON Schema (draft 2020-12) of a stack file, Pulumi.STACK.yaml, whose config:
    holds gpufleet:KEY entries. Point editors at it with a first line
    `# yaml-language-server: $schema=<path or URL>`."""
    from gpufleet.infra.reference import schema_text

    sys.stdout.write(schema_text())


@docs_app.command("config")
def docs_config() -> None:
    """Print the stack configuration reference (Markdown): every gpufleet:KEY with its type,
    default and description."""
    from gpufleet.infra.reference import configuration_reference

    sys.stdout.write(configuration_reference())
