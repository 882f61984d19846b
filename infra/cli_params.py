"""Command-line values converted without pydantic, so start-up stays light.

typer 0.2x converts every parameter value through a pydantic ``TypeAdapter`` (``typer._adapters``):
importing pydantic and building the adapters is a third of ``gpufleet check``'s start-up, for values
that are strings, flags, paths, choices and lists of strings. :class:`PlainValuesGroup`, the root command's
class, gives each parameter of the command tree a converter for those shapes that calls typer's own
helpers (``coerce_cli_choice``, ``coerce_cli_path``) and returns what typer's adapter returns. Anything
else (numbers, dates, custom parsers, bytes) and any value the plain converter refuses goes through
typer's own conversion, which decides and words the error: answers and messages are typer's either way.

Older typer (before the pydantic adapters) has none of the hooks used here, nor may a later one: the
group then installs nothing and typer (or click) converts as it always did.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import typer.core

try:  # typer ≥ 0.2x: the hooks this module fills (private to typer, hence the guard)
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer._param_types import coerce_cli_choice, coerce_cli_path, lenient_issubclass, routes_to_path
    from typer._typing import get_args, get_origin
    from typer.core import _TyperParameter

    @dataclass(frozen=True)
    class _PlainRuntimeParam(RuntimeParam):  # type: ignore[misc]
        """typer's ``RuntimeParam`` (its ``coerce`` handles missing and multiple values) with a plain
        ``_coerce_value``, falling back to typer's own conversion on anything it refuses."""

        descriptor: Any = None
        convert: Any = None

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                return self.convert(value, param, ctx)
            except Exception:  # noqa: BLE001 - typer's own conversion answers (and words the error)
                return build_runtime_param(self.descriptor)._coerce_value(value, param=param, ctx=ctx)

    _HOOKS = True
except Exception:  # pragma: no cover - a typer without these hooks converts as it always did
    _HOOKS = False

Convert = Callable[[Any, Any, Any], Any]
"""``(value, param, ctx) -> converted``; raises when it cannot (typer's conversion then decides)."""


class PlainValuesGroup(typer.core.TyperGroup):
    """The root ``gpufleet`` group: installs plain converters on every parameter below it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        install_plain_values(self)


def install_plain_values(command: Any) -> int:
    """Give every parameter of ``command`` and its subcommands (their ``--help`` options too, which
    are made when first asked for) a plain converter where its type has one; returns how many were
    installed now (0 on a typer without pydantic adapters)."""
    if not _HOOKS:
        return 0
    installed = 0
    for each in _commands(command):
        installed += sum(_install(param) for param in getattr(each, "params", ()))
        make_help_option = getattr(each, "get_help_option", None)
        if make_help_option is not None:
            each.get_help_option = _installing_help_option(make_help_option)
    return installed


def _installing_help_option(make_help_option: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def get_help_option(ctx: Any) -> Any:
        option = make_help_option(ctx)
        if option is not None:
            _install(option)
        return option

    return get_help_option


def _install(param: Any) -> bool:
    if not isinstance(param, _TyperParameter) or getattr(param, "_runtime_param", False) is not None:
        return False
    descriptor = getattr(param, "type_descriptor", None)
    convert = plain_converter(descriptor) if descriptor is not None else None
    if convert is None:
        return False
    try:
        plain = _PlainRuntimeParam(parameter_info=descriptor.parameter_info, annotation=descriptor.annotation,
                                   descriptor=descriptor, convert=convert)
    except TypeError:  # pragma: no cover - typer's RuntimeParam took other fields: typer converts
        return False
    param._runtime_param = plain
    return True


def _commands(command: Any) -> Iterator[Any]:
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from _commands(sub)


def plain_converter(descriptor: Any) -> Optional[Convert]:
    """A converter for ``descriptor``'s annotation (str, bool, a Path, an Enum, or a list of those) giving
    what typer's pydantic adapter gives for string input; None for any other annotation."""
    if descriptor.file_annotation is not None:
        return None  # typer opens files itself, without pydantic
    annotation, info = descriptor.annotation, descriptor.parameter_info
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        convert_item = _leaf_converter(item, info)
        if convert_item is None:
            return None

        def convert_list(value: Any, param: Any, ctx: Any) -> list[Any]:
            items = value if isinstance(value, (list, tuple)) else [value]
            return [convert_item(one, param, ctx) for one in items]

        return convert_list
    return _leaf_converter(annotation, info)


def _leaf_converter(annotation: Any, info: Any) -> Optional[Convert]:
    if info.parser is not None or get_origin(annotation) is not None:
        return None
    if lenient_issubclass(annotation, Enum):
        choices = list(annotation)

        def convert_choice(value: Any, param: Any, ctx: Any) -> Any:
            return coerce_cli_choice(value, choices=choices, case_sensitive=info.case_sensitive, ctx=ctx)

        return convert_choice
    if annotation is str and not routes_to_path(annotation, info):
        return _convert_str
    if annotation is bool:
        return _convert_bool  # a flag's value (or its default): typer parses strings ("yes", "0", ...)
    if lenient_issubclass(annotation, Path) and routes_to_path(annotation, info):
        path_type = info.path_type or annotation
        if not lenient_issubclass(path_type, Path):
            return None

        def convert_path(value: Any, param: Any, ctx: Any) -> Any:
            if not isinstance(value, path_type):
                value = path_type(_exactly_str(value))  # what pydantic's Path validator does with a str
            return coerce_cli_path(value, info, path_type=path_type, param=param, ctx=ctx)

        return convert_path
    return None


def _exactly_str(value: Any) -> str:
    if type(value) is not str:
        raise TypeError("not a str: typer's conversion decides")
    return value


def _convert_str(value: Any, param: Any, ctx: Any) -> str:
    return _exactly_str(value)


def _convert_bool(value: Any, param: Any, ctx: Any) -> bool:
    if type(value) is not bool:
        raise TypeError("not a bool: typer's conversion decides")
    return value
