"""Error messages in the API server's style (``<path>: <reason>: <detail>``), ObjectMeta checks the
JSON schema cannot express (label keys/values, annotation keys and size), and the JSON-like copy of a
manifest that validation works on."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema

_MAX_MSG = 400

# --------------------------------------------------------------------------------------------------
# Error formatting
# --------------------------------------------------------------------------------------------------

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _join(path: str, part: Any) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    if _IDENT.match(str(part)):
        return f"{path}.{part}" if path else str(part)
    return f"{path}[{part}]"


def _fmt_path(parts: Iterable[Any]) -> str:
    path = ""
    for p in parts:
        path = _join(path, p)
    return path


def _where(path: str) -> str:
    return path or "(root)"


def _short(x: Any, limit: int = 80) -> str:
    try:
        s = json.dumps(x, default=str, sort_keys=True)
    except Exception:
        s = repr(x)
    return s if len(s) <= limit else s[: limit - 3] + "..."


# bool before int: True is an int in Python, a boolean in JSON.
_JSON_TYPES = ((type(None), "null"), (bool, "boolean"), (int, "integer"), (float, "number"),
               (str, "string"), (list, "array"), (dict, "object"))


def _json_type(x: Any) -> str:
    return next((name for kind, name in _JSON_TYPES if isinstance(x, kind)), type(x).__name__)


def _type_names(t: Any) -> list[str]:
    ts = [t] if isinstance(t, str) else list(t or [])
    return [x for x in ts if x != "null"] or ts


def _only_type_branches(branches: Any) -> list[str] | None:
    names: list[str] = []
    for b in branches if isinstance(branches, list) else []:
        if not isinstance(b, Mapping) or set(b) - {"type", "description"} or "type" not in b:
            return None
        names.extend(_type_names(b["type"]))
    return names or None


def _clip(s: str) -> str:
    return s if len(s) <= _MAX_MSG else s[: _MAX_MSG - 3] + "..."


def _describe(e: jsonschema.ValidationError) -> list[str]:
    path = _fmt_path(e.absolute_path)
    v, inst = e.validator, e.instance
    if v == "additionalProperties" and e.validator_value is False and isinstance(inst, dict):
        known = set((e.schema.get("properties") or {}) if isinstance(e.schema, Mapping) else ())
        pats = [re.compile(p) for p in (e.schema.get("patternProperties") or {})] if isinstance(e.schema, Mapping) else []
        extra = [k for k in inst if k not in known and not any(p.search(k) for p in pats)]
        if extra:
            return [f'{_join(path, k)}: unknown field "{k}"' for k in extra]
    if v == "required":
        m = re.match(r"^(['\"])(.*)\1 is a required property$", e.message)
        name = m.group(2) if m else None
        if name is not None:
            return [f"{_join(path, name)}: Required value: missing required field \"{name}\""]
    if v == "type":
        want = " or ".join(_type_names(e.validator_value))
        return [f"{_where(path)}: Invalid value: {_json_type(inst)} {_short(inst)}: must be of type {want}"]
    if v in ("oneOf", "anyOf"):
        names = _only_type_branches(e.validator_value)
        if names is not None:
            if _json_type(inst) not in names and not (_json_type(inst) == "integer" and "number" in names):
                want = " or ".join(dict.fromkeys(names))
                return [f"{_where(path)}: Invalid value: {_json_type(inst)} {_short(inst)}: must be of type {want}"]
    if v == "enum":
        opts = [json.dumps(o, default=str) for o in e.validator_value]
        shown = ", ".join(opts[:25]) + (", ..." if len(opts) > 25 else "")
        return [_clip(f"{_where(path)}: Unsupported value: {_short(inst)}: supported values: {shown}")]
    return [_clip(f"{_where(path)}: Invalid value: {e.message}")]


# ObjectMeta checks that the JSON schema cannot express (apimachinery ValidateObjectMeta: labels/annotations)
_QNAME_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _qualified_name_problem(key: str) -> str | None:
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return "prefix part must be non-empty"
        if len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix):
            return "prefix part must be a lowercase RFC 1123 subdomain of at most 253 characters"
    else:
        return "a qualified name must consist of an optional DNS subdomain prefix and '/' and a name"
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _QNAME_NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character"
        )
    return None


def _object_meta_problems(meta: Any) -> list[str]:
    out: list[str] = []
    if not isinstance(meta, Mapping):
        return out
    labels = meta.get("labels")
    if isinstance(labels, Mapping):
        for k, val in labels.items():
            if not isinstance(k, str):
                continue
            p = _join("metadata.labels", k)
            prob = _qualified_name_problem(k)
            if prob:
                out.append(f"{p}: Invalid value: {_short(k)}: {prob}")
            if isinstance(val, str) and (len(val) > 63 or not _LABEL_VALUE.match(val)):
                out.append(
                    f"{p}: Invalid value: {_short(val)}: a label value must be empty or at most 63 alphanumeric "
                    "characters, '-', '_' or '.', starting and ending with an alphanumeric character"
                )
    annotations = meta.get("annotations")
    if isinstance(annotations, Mapping):
        total = 0
        for k, val in annotations.items():
            if not isinstance(k, str):
                continue
            prob = _qualified_name_problem(k.lower())
            if prob:
                out.append(f"{_join('metadata.annotations', k)}: Invalid value: {_short(k)}: {prob}")
            total += len(k) + (len(val) if isinstance(val, str) else 0)
        if total > 256 * 1024:
            out.append(f"metadata.annotations: Too long: must have at most 262144 bytes (has {total})")
    return out


def _plain(x: Any, problems: list[str], path: str = "", drop_none: bool = False) -> Any:
    """A JSON-like deep copy: Mappings -> dict, tuples/lists -> list; report non-string keys."""
    if isinstance(x, Mapping):
        out = {}
        for k, v in x.items():
            if not isinstance(k, str):
                problems.append(f"{_where(path)}: Invalid value: object keys must be strings, got {type(k).__name__} {k!r}")
                continue
            if drop_none and v is None:
                continue
            out[k] = _plain(v, problems, _join(path, k), drop_none)
        return out
    if isinstance(x, (list, tuple)):
        return [_plain(v, problems, _join(path, i), drop_none) for i, v in enumerate(x)]
    if isinstance(x, float) and not math.isfinite(x):
        problems.append(f"{_where(path)}: Invalid value: {x!r} is not a JSON number")
    return x

