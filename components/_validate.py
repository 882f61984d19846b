"""Checks of plain component arguments, run before anything is registered.

Errors are ``ValueError``/``TypeError`` whose message starts with the component type and names the
argument, e.g. ``gpufleet:network:Network: az_count must be ...``.
"""

from __future__ import annotations

import difflib
import functools
from typing import Any, Mapping, Sequence, TypeVar

from typing_extensions import is_typeddict

T = TypeVar("T")


def require(args: Mapping[str, Any], key: str, kind: type[T], *, name: str) -> T:
    """``args[key]``, which must be present and of type ``kind``."""
    if key not in args or args[key] is None:
        raise ValueError(f"{name}: {key} is required")
    value = args[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{name}: {key} must be {kind.__name__}, got {type(value).__name__}")
    return value


def require_one_of(value: T, key: str, allowed: Sequence[T], *, name: str) -> T:
    if value not in allowed:
        raise ValueError(f"{name}: {key} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def require_int_range(value: Any, key: str, low: int, high: int, *, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name}: {key} must be an integer from {low} to {high}, got {value!r}")
    return value


def check_arg_keys(args: Any, args_type: type, *, name: str) -> None:
    """Refuse keys ``args_type`` (a component's ``<X>Args`` TypedDict) does not declare.

    The valid keys are read from the TypedDict itself (its own and inherited annotations, required
    or not), so a misspelt argument fails before anything is registered instead of being ignored:
    ``Network: unknown argument 'az_cout' (did you mean 'az_count'?)``. ``None`` (no arguments) passes.
    """
    if args is None:
        return
    if not isinstance(args, Mapping):
        raise TypeError(f"{name}: arguments must be a {args_type.__name__} dictionary, got {type(args).__name__}")
    valid = typed_dict_keys(args_type)
    for key in args:
        if key in valid:
            continue
        if not isinstance(key, str):
            raise TypeError(f"{name}: argument names must be strings, got {key!r}")
        close = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"{args_type.__name__} takes {', '.join(sorted(valid))}"
        raise ValueError(f"{name}: unknown argument {key!r} ({hint})")


@functools.lru_cache(maxsize=None)
def typed_dict_keys(args_type: type) -> frozenset[str]:
    """Every key a TypedDict declares, inherited ones included (``Required``/``NotRequired`` alike)."""
    if not is_typeddict(args_type):
        raise TypeError(f"{args_type!r} is not a TypedDict")
    # A TypedDict's __annotations__ already merges those of its TypedDict bases (which are not in
    # its __mro__); the required/optional key sets cover Required[...]/NotRequired[...] and total=False.
    keys = set(getattr(args_type, "__annotations__", {}))
    keys.update(getattr(args_type, "__required_keys__", ()), getattr(args_type, "__optional_keys__", ()))
    return frozenset(keys)
