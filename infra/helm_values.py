"""Compare Helm values gpufleet sets with a chart's own ``values.yaml``.

Helm silently ignores a values key the chart does not read, so a typo or a key renamed upstream
turns a setting off without any error. :func:`unknown_keys` walks the values a component sets and
returns every key path that the chart's ``values.yaml`` (at the pinned tag) does not define. Under a
free-form map in the chart (``{}``, e.g. ``nodeSelector`` or ``annotations``), a list, or a key whose
default is ``null``, any content is accepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

FREE_FORM_MAPS = frozenset({"nodeSelector", "annotations", "labels", "podAnnotations", "podLabels"})
"""Keys whose maps hold label or annotation names, free-form even where the chart's default is not
empty (e.g. the GPU Operator's ``operator.nodeSelector: {kubernetes.io/os: linux}``)."""


def chart_values(chart_dir: Path) -> dict[str, Any]:
    """A chart's effective defaults: its ``values.yaml`` with each vendored subchart's own values
    (``charts/<sub>/values.yaml``) under ``<sub>``, the parent's overrides merged over them as Helm does."""
    values = yaml.safe_load((Path(chart_dir) / "values.yaml").read_text()) or {}
    for sub in sorted((Path(chart_dir) / "charts").glob("*/values.yaml")):
        name = sub.parent.name
        values[name] = _merged(yaml.safe_load(sub.read_text()) or {}, values.get(name) or {})
    return values


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in override.items():
        result[key] = _merged(result[key], value) if isinstance(value, Mapping) and isinstance(result.get(key), Mapping) else value
    return result


def unknown_keys(values: Mapping[str, Any], upstream: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Key paths of ``values`` that ``upstream`` (a chart's parsed values.yaml) does not define."""
    unknown: list[str] = []
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in upstream:
            unknown.append(path)
            continue
        default = upstream[key]
        if key in FREE_FORM_MAPS:
            continue
        if isinstance(value, Mapping) and isinstance(default, Mapping) and default:
            unknown += unknown_keys(value, default, path)
    return unknown
