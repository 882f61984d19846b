"""Checks of plain component arguments, run before anything is registered.

Errors are ``ValueError``/``TypeError`` whose message starts with the component type and names the
argument, e.g. ``gpufleet:network:Network: az_count must be ...``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence, TypeVar

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
