"""Command-line values are converted without pydantic (infra/cli_params.py) and exactly as typer's own
pydantic conversion converts them: same values and types, same refusals with the same words."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from gpufleet.infra import cli_params
from gpufleet.infra.cli import app

if not cli_params._HOOKS:  # pragma: no cover - a typer without pydantic adapters converts through click
    pytest.skip("this typer converts values without pydantic", allow_module_level=True)

from typer._click import Context  # noqa: E402
from typer._coercion import build_runtime_param  # noqa: E402


def _parameters() -> list[tuple[str, Any, Any]]:
    """(command path, command, parameter) for every parameter of the gpufleet command tree."""
    found = []

    def walk(command: Any, path: str) -> None:
        for param in command.params:
            found.append((f"{path} {param.name}".strip(), command, param))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "")
    return found


def _samples(param: Any) -> list[Any]:
    """Values a shell hands typer for this parameter, good and bad."""
    annotation = param.type_descriptor.annotation
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        values = [member.value for member in annotation]
        return [*values, values[0].upper(), "no-such-choice", ""]
    if annotation is bool:
        return [True, False, "yes", "0", "maybe"]
    texts = ["x", "", "-", "a b/c.yaml", "dir/", "ünïcode", "/tmp/no/such/file"]
    if getattr(annotation, "__origin__", None) is list:
        return [texts, ("a", "b"), "one", []]
    return texts


def _outcome(convert: Any, value: Any, param: Any, ctx: Any) -> tuple[str, Any]:
    try:
        result = convert(value, param=param, ctx=ctx)
    except Exception as error:  # noqa: BLE001 - the refusal itself is compared
        return ("refused", (type(error).__name__, str(error)))
    items = [type(item).__name__ for item in result] if isinstance(result, list) else None
    return ("value", (type(result).__name__, result, items))


def test_every_string_path_choice_and_flag_parameter_gets_a_plain_converter():
    parameters = _parameters()
    plain = {path for path, _, param in parameters if isinstance(param._runtime_param, cli_params._PlainRuntimeParam)}
    assert {"check paths", "check output_format", "check output", "check production", "check config", "check assume",
            "plan stack", "plan out", "plan graph_detail", "version"} <= plain
    # anything else (here the float --timeout of `schemas pull`) is left to typer
    assert {path for path, _, _ in parameters} - plain == {"schemas pull timeout"}
    # --help options are made when first asked for, and get one too
    for _, command, _ in parameters:
        option = command.get_help_option(Context(command))
        assert isinstance(option._runtime_param, cli_params._PlainRuntimeParam)


@pytest.mark.parametrize(("path", "command", "param"), _parameters(), ids=[p for p, _, _ in _parameters()])
def test_plain_conversion_gives_what_typers_own_gives(path, command, param):
    ctx = Context(command)
    typers = build_runtime_param(param.type_descriptor)
    ours = param.get_runtime_param()
    for value in _samples(param):
        assert _outcome(ours.coerce, value, param, ctx) == _outcome(typers.coerce, value, param, ctx), (path, value)


def test_a_refused_value_reads_as_typer_words_it():
    result = CliRunner().invoke(app, ["check", "--format", "yaml", "x.yaml"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "Invalid value for '--format': Value error, 'yaml' is not one of 'text', 'json', 'sarif', 'junit'." in \
        " ".join(result.output.replace("│", " ").split())


def test_paths_and_lists_arrive_as_typer_makes_them(tmp_path, monkeypatch):
    seen: dict[str, Any] = {}
    from gpufleet.infra import cli_check

    def fake_run_check(paths: Any, *, production: bool, config: Any, assume: Any) -> Any:
        seen.update(paths=paths, production=production, config=config, assume=assume)
        raise SystemExit(0)

    monkeypatch.setattr(cli_check, "run_check", fake_run_check)
    CliRunner().invoke(app, ["check", "a.yaml", "b.yaml", "--config", str(tmp_path / "c.json"),
                             "--assume", "gpu-quota", "--assume", "dcgm-exporter", "--production"])
    assert seen == {"paths": ["a.yaml", "b.yaml"], "production": True, "config": tmp_path / "c.json",
                    "assume": ["gpu-quota", "dcgm-exporter"]}
    assert isinstance(seen["config"], Path)
