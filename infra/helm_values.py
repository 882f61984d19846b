"""Compare Helm values gpufleet sets with a chart's own ``values.yaml``.

Helm silently ignores a values key the chart does not read, so a typo or a key renamed upstream
turns a setting off without any error. :func:`unknown_keys` walks the values a component sets and
returns every key path that the chart's ``values.yaml`` (at the pinned tag) does not define. Under a
free-form map in the chart (``{}``, e.g. ``nodeSelector`` or ``annotations``), a list, or a key whose
default is ``null``, any content is accepted.
"""

from __future__ import annotations

from typing import Any, Mapping


def unknown_keys(values: Mapping[str, Any], upstream: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Key paths of ``values`` that ``upstream`` (a chart's parsed values.yaml) does not define."""
    unknown: list[str] = []
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in upstream:
            unknown.append(path)
            continue
        default = upstream[key]
        if isinstance(value, Mapping) and isinstance(default, Mapping) and default:
            unknown += unknown_keys(value, default, path)
    return unknown
