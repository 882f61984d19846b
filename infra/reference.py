"""The stack configuration reference and the stack file JSON Schema, both derived from the pydantic
models of :mod:`gpufleet.infra.config` and ``infra/areas/*.py`` (field docstrings are descriptions).

Checked in as ``docs/configuration.md`` and ``docs/stack.schema.json``; regenerate both with::

    python -m gpufleet.infra.reference

(``gpufleet docs config`` and ``gpufleet schema stack`` print them.)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

from gpufleet.infra.config import NAMESPACE, SECRET_KEYS, StackConfig

REGENERATE = "python -m gpufleet.infra.reference"
"""The one command that rewrites ``docs/configuration.md`` and ``docs/stack.schema.json``."""

SCHEMA_FILE = "docs/stack.schema.json"
REFERENCE_FILE = "docs/configuration.md"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def model_schema() -> dict[str, Any]:
    """:class:`StackConfig` as JSON Schema (YAML spellings, validation mode), descriptions in Markdown."""
    schema = StackConfig.model_json_schema(by_alias=True, mode="validation")
    return _tidy(schema)


def _tidy(node: Any) -> Any:
    """Drop pydantic's generated per-property titles (``Azcount``) and turn reST literals into Markdown."""
    if isinstance(node, dict):
        tidy = {}
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                tidy[key] = {name: _tidy({k: v for k, v in prop.items() if k != "title"}) for name, prop in value.items()}
            elif key == "description" and isinstance(value, str):
                tidy[key] = markdown_text(value)
            else:
                tidy[key] = _tidy(value)
        return tidy
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    return node


def markdown_text(text: str) -> str:
    """A docstring as one Markdown line: reST ``literals`` → `literals`, roles dropped, lines joined."""
    text = re.sub(r":(?:data|class|func|attr|mod):`~?([^`]+)`", r"`\1`", text)
    text = text.replace("``", "`")
    return " ".join(line.strip() for line in text.strip().splitlines())


def stack_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a ``Pulumi.<stack>.yaml`` file whose ``config:`` holds the
    ``gpufleet:<key>`` entries; keys of other namespaces (``aws:region``, ...) are left alone."""
    model = model_schema()
    config_properties: dict[str, Any] = {}
    for key, prop in model["properties"].items():
        if key in SECRET_KEYS:
            prop = {
                "description": prop.get("description", ""),
                "type": "object",
                "properties": {"secure": {"type": "string", "description": "Ciphertext written by `pulumi config set --secret`."}},
                "required": ["secure"],
                "additionalProperties": False,
            }
        config_properties[f"{NAMESPACE}:{key}"] = prop
    return {
        "$schema": DIALECT,
        "$id": "https://github.com/gpufleet/gpufleet/docs/stack.schema.json",
        "title": "gpufleet stack file (Pulumi.<stack>.yaml)",
        "description": (
            f"A Pulumi stack file of a gpufleet program. Generated from the configuration models by "
            f"`{REGENERATE}`; the reference is docs/configuration.md."
        ),
        "type": "object",
        "properties": {
            "config": {
                "description": "Stack configuration: `gpufleet:<key>` entries (validated by gpufleet) and keys of other namespaces.",
                "type": "object",
                "properties": config_properties,
                "required": [f"{NAMESPACE}:{key}" for key in model.get("required", [])],
                # Other namespaces (aws:region, pulumi:tags, a program's own) are not gpufleet's to check;
                # an unknown gpufleet:<key> is refused, as `gpufleet plan` refuses it.
                "patternProperties": {f"^(?!{NAMESPACE}:)[^:]+:.+$": {}},
                "additionalProperties": False,
            },
        },
        "required": ["config"],
        "$defs": model.get("$defs", {}),
    }


# ---------------------------------------------------------------------------------------------
# The Markdown reference


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = {**defs[schema["$ref"].rsplit("/", 1)[-1]], **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _without_null(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """``anyOf: [X, null]`` → (X, True)."""
    options = schema.get("anyOf")
    if options and any(o.get("type") == "null" for o in options):
        rest = [o for o in options if o.get("type") != "null"]
        if len(rest) == 1:
            return {**rest[0], **{k: v for k, v in schema.items() if k not in ("anyOf", "default")}}, True
        return {**schema, "anyOf": rest}, True
    return schema, False


def _type_text(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    schema, _ = _without_null(schema)
    if "$ref" in schema:
        return "object"
    if "anyOf" in schema:
        return " or ".join(_type_text(option, defs) for option in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items", {})
        if "$ref" in items:
            return "list of objects"
        return f"list of {_type_text(items, defs)}" if items else "list"
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return f"map of string to {_type_text(extra, defs)}"
        return "object"
    if kind in ("integer", "number"):
        return kind + _bounds(schema)
    if kind == "string":
        if schema.get("format") == "password":
            return "secret string"
        text = "string"
        if "pattern" in schema:
            text += f" matching `{schema['pattern']}`"
        if "minLength" in schema and schema["minLength"] > 0:
            text += f", at least {schema['minLength']} characters"
        if "maxLength" in schema:
            text += f", at most {schema['maxLength']} characters"
        return text
    if kind == "boolean":
        return "boolean"
    return kind or "any"


def _bounds(schema: dict[str, Any]) -> str:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    low_op = ">" if "exclusiveMinimum" in schema else "≥"
    high_op = "<" if "exclusiveMaximum" in schema else "≤"
    if low is not None and high is not None and low_op == "≥" and high_op == "≤":
        return f", {low}–{high}"
    parts = ([f"{low_op} {low}"] if low is not None else []) + ([f"{high_op} {high}"] if high is not None else [])
    return ", " + ", ".join(parts) if parts else ""


def _default_text(schema: dict[str, Any], required: bool, defs: dict[str, Any]) -> str:
    if required:
        return "**required**"
    plain, nullable = _without_null(schema)
    if "default" not in schema:
        return "none" if nullable else "—"
    default = schema["default"]
    if default is None:
        return "none"
    resolved = _resolve(plain, defs)
    if isinstance(default, dict) and resolved.get("properties"):
        return "see its keys"
    return f"`{json.dumps(default, ensure_ascii=False)}`"


def _rows(schema: dict[str, Any], defs: dict[str, Any], path: str) -> Iterator[tuple[str, str, str, str]]:
    """(key path, type, default, description) of every key below ``schema``, depth first."""
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        key = f"{path}.{name}" if path and not path.endswith(":") else f"{path}{name}"
        yield key, _type_text(prop, defs), _default_text(prop, name in required, defs), prop.get("description", "")
        plain, _ = _without_null(prop)
        resolved = _resolve(plain, defs)
        if resolved.get("type") == "array" and "$ref" in resolved.get("items", {}):
            yield from _rows(_resolve(resolved["items"], defs), defs, key + "[]")
        elif resolved.get("properties"):
            yield from _rows(resolved, defs, key)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def configuration_reference() -> str:
    """``docs/configuration.md``: every ``gpufleet:`` key with its type, default and description."""
    model = model_schema()
    defs = model.get("$defs", {})
    lines = [
        "# Stack configuration reference",
        "",
        f"<!-- Generated from the configuration models (infra/config.py, infra/areas/*.py) by `{REGENERATE}`. Do not edit. -->",
        "",
        "Every key a stack file (`stacks/Pulumi.<stack>.yaml`) can set under the `gpufleet` namespace. A key",
        "`gpufleet:network.azCount` is written as the `azCount` field of the `gpufleet:network` object (the",
        "paths are the ones configuration errors name):",
        "",
        "```yaml",
        "config:",
        "  gpufleet:network:",
        "    azCount: 3",
        "```",
        "",
        "`[]` marks the entries of a list (`gpufleet:gpuPools[].limits.gpus` is the `limits.gpus` of each pool).",
        "Unknown keys are refused, and every problem is reported with its path. Editors that read",
        "`# yaml-language-server: $schema=` comments check stack files against",
        "[`stack.schema.json`](stack.schema.json), generated from the same models.",
        "",
    ]
    top = [(name, prop) for name, prop in model["properties"].items()]
    required = set(model.get("required", []))
    scalars = [(n, p) for n, p in top if not _resolve(_without_null(p)[0], defs).get("properties")
               and "$ref" not in _resolve(_without_null(p)[0], defs).get("items", {})]
    lines += ["## Top-level keys", "", "| key | type | default | description |", "|---|---|---|---|"]
    for name, prop in scalars:
        lines.append(_row(f"{NAMESPACE}:{name}", _type_text(prop, defs), _default_text(prop, name in required, defs),
                          prop.get("description", "")))
    for name, prop in top:
        if (name, prop) in scalars:
            continue
        lines += ["", f"## `{NAMESPACE}:{name}`", "", markdown_text(prop.get("description", "")), ""]
        lines += ["| key | type | default | description |", "|---|---|---|---|"]
        section = {"properties": {name: prop}, "required": list(required & {name})}
        for key, kind, default, description in _rows(section, defs, f"{NAMESPACE}:"):
            lines.append(_row(key, kind, default, description))
    return "\n".join(lines) + "\n"


def _row(key: str, kind: str, default: str, description: str) -> str:
    return f"| `{key}` | {_cell(kind)} | {_cell(default)} | {_cell(description)} |"


def schema_text() -> str:
    return json.dumps(stack_schema(), indent=2, ensure_ascii=False) + "\n"


def repository_root() -> Optional[Path]:
    """The checkout this module runs from (``infra/`` sits in it), or ``None`` for an installed wheel."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "infra" / "config.py").is_file() else None


def main(argv: Optional[list[str]] = None) -> int:
    """Rewrite docs/configuration.md and docs/stack.schema.json in the checkout."""
    root = repository_root()
    if root is None:
        print("not running from a gpufleet checkout: use `gpufleet docs config` / `gpufleet schema stack`", file=sys.stderr)
        return 2
    (root / "docs").mkdir(exist_ok=True)
    (root / REFERENCE_FILE).write_text(configuration_reference())
    (root / SCHEMA_FILE).write_text(schema_text())
    print(f"wrote {root / REFERENCE_FILE} and {root / SCHEMA_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
