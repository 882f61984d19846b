"""Structural schemas of CustomResourceDefinitions: the walk tree (:class:`_Node`) used for pruning,
defaulting, list types and CEL, and the conversion to JSON Schema with API-server pruning semantics
(objects that do not preserve unknown fields are closed)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

# --------------------------------------------------------------------------------------------------
# Structural schema -> JSON Schema + walk tree
# --------------------------------------------------------------------------------------------------

_NO_DEFAULT = object()


WALK_KEY = "x-gpufleet-walk"
"""Set by :func:`annotate_walk` on every node of a schema kept in the compiled CRD cache: the node's
``walk`` flag, so :class:`_Node` can build its children only when a manifest reaches them."""


def _child_schemas(raw: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    props = raw.get("properties")
    children = [v for v in props.values() if isinstance(v, Mapping)] if isinstance(props, Mapping) else []
    for key in ("additionalProperties", "items"):
        if isinstance(raw.get(key), Mapping):
            children.append(raw[key])
    return children


def _own_walk(raw: Mapping[str, Any]) -> bool:
    rules = raw.get("x-kubernetes-validations") or []
    has_rules = any(isinstance(r, Mapping) and isinstance(r.get("rule"), str) for r in rules)
    return has_rules or raw.get("x-kubernetes-list-type") in ("set", "map")


def annotate_walk(raw: Any) -> bool:
    """Store each node's ``walk`` flag under :data:`WALK_KEY` (in place); the root's flag."""
    if not isinstance(raw, dict):
        return False
    walk = _own_walk(raw)
    for child in _child_schemas(raw):
        walk = annotate_walk(child) or walk
    raw[WALK_KEY] = walk
    return walk


class _Node:
    """The parts of a structural-schema node needed for pruning/defaulting, list-types and CEL.

    Children are built on first access (a CRD schema has tens of thousands of nodes; a manifest
    visits few). ``walk`` comes from :data:`WALK_KEY` when the schema was annotated, else from the
    subtree."""

    __slots__ = (
        "type", "nullable", "_raw", "_properties", "_additional", "_items", "default", "rules", "list_type",
        "map_keys", "int_or_string", "fmt", "walk", "cel_memo", "_fingerprint",
    )

    def __init__(self, raw: Mapping[str, Any]):
        self._raw = raw
        self.type = raw.get("type")
        self.nullable = raw.get("nullable") is True
        self.int_or_string = raw.get("x-kubernetes-int-or-string") is True
        self.fmt = raw.get("format")
        self._properties: Any = _NO_DEFAULT
        self._additional: Any = _NO_DEFAULT
        self._items: Any = _NO_DEFAULT
        self._fingerprint: str | None = None
        self.default = copy.deepcopy(raw["default"]) if "default" in raw else _NO_DEFAULT
        rules = raw.get("x-kubernetes-validations") or []
        self.rules: tuple[Mapping[str, Any], ...] = tuple(
            r for r in rules if isinstance(r, Mapping) and isinstance(r.get("rule"), str)
        )
        self.list_type = raw.get("x-kubernetes-list-type")
        self.map_keys = tuple(raw.get("x-kubernetes-list-map-keys") or ())
        # does the CEL/list-type walk need to visit this subtree?
        annotated = raw.get(WALK_KEY)
        if isinstance(annotated, bool):
            self.walk = annotated
        else:
            children: list[_Node] = list((self.properties or {}).values())
            if isinstance(self.additional, _Node):
                children.append(self.additional)
            if self.items is not None:
                children.append(self.items)
            self.walk = bool(self.rules) or self.list_type in ("set", "map") or any(c.walk for c in children)
        # (rule, canonical JSON of the value) -> (result, None) | (None, reason not evaluated)
        self.cel_memo: dict[tuple[str, str], tuple[bool | None, str | None]] = {}

    @property
    def fingerprint(self) -> str:
        """A digest of this node's schema: a CEL rule's value is converted by it (integer or double,
        timestamps), so a stored outcome is keyed by it too."""
        if getattr(self, "_fingerprint", None) is None:
            import hashlib
            import json

            text = json.dumps(self._raw, sort_keys=True, default=str)
            self._fingerprint = hashlib.sha256(text.encode()).hexdigest()
        return self._fingerprint

    @property
    def properties(self) -> dict[str, _Node] | None:
        if self._properties is _NO_DEFAULT:
            props = self._raw.get("properties")
            self._properties = (
                {k: _Node(v) for k, v in props.items() if isinstance(v, Mapping)} if isinstance(props, Mapping) else None
            )
        return self._properties  # type: ignore[no-any-return]

    @property
    def additional(self) -> _Node | bool | None:
        if self._additional is _NO_DEFAULT:
            ap = self._raw.get("additionalProperties")
            self._additional = _Node(ap) if isinstance(ap, Mapping) else ap if isinstance(ap, bool) else None
        return self._additional  # type: ignore[no-any-return]

    @property
    def items(self) -> _Node | None:
        if self._items is _NO_DEFAULT:
            items = self._raw.get("items")
            self._items = _Node(items) if isinstance(items, Mapping) else None
        return self._items  # type: ignore[no-any-return]

    @property
    def has_default(self) -> bool:
        return self.default is not _NO_DEFAULT

    def accepts_python_type(self, x: Any) -> bool:
        if self.int_or_string:
            return isinstance(x, (int, str)) and not isinstance(x, bool)
        t = self.type
        if t is None:
            return True
        if t == "object":
            return isinstance(x, dict)
        if t == "array":
            return isinstance(x, list)
        if t == "string":
            return isinstance(x, str)
        if t == "boolean":
            return isinstance(x, bool)
        if t == "integer":
            return (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer())
        if t == "number":
            return isinstance(x, (int, float)) and not isinstance(x, bool)
        return True


_VALUE_KEYWORDS = (
    "enum", "pattern", "maxLength", "minLength", "maxItems", "minItems", "uniqueItems", "maximum", "minimum",
    "multipleOf", "maxProperties", "minProperties", "required",
)


def _object_meta_schema(crd_meta: Any, objmeta_uri: str) -> dict:
    ref = {"$ref": objmeta_uri}
    if isinstance(crd_meta, Mapping):
        extra = _convert(crd_meta, junctor=True, objmeta_uri=objmeta_uri)
        extra.pop("type", None)
        if extra:
            return {"allOf": [ref, extra]}
    return ref


def _convert(raw: Mapping[str, Any], *, junctor: bool = False, objmeta_uri: str) -> dict:
    """One structural-schema node as JSON Schema (2020-12) with API-server pruning semantics.

    ``junctor``: inside allOf/anyOf/oneOf/not, where structural schemas carry value validations only,
    so objects are not closed there.
    """
    out: dict[str, Any] = {}
    typ = raw.get("type")
    preserve = raw.get("x-kubernetes-preserve-unknown-fields") is True
    if raw.get("x-kubernetes-int-or-string") is True:
        out["type"] = ["integer", "string"]
    elif isinstance(typ, str):
        out["type"] = typ
    for k in _VALUE_KEYWORDS:
        if k in raw:
            out[k] = raw[k]
    for excl, bound in (("exclusiveMaximum", "maximum"), ("exclusiveMinimum", "minimum")):
        if raw.get(excl) is True and bound in raw:  # OpenAPI v3.0 boolean form
            out[excl] = raw[bound]
            out.pop(bound, None)
    if raw.get("format") == "date-time":
        out["format"] = "date-time"  # the only format in use that the API server checks; int32/int64 ignored
    props = raw.get("properties")
    if isinstance(props, Mapping):
        out["properties"] = {k: _convert(v, junctor=junctor, objmeta_uri=objmeta_uri) for k, v in props.items()}
    items = raw.get("items")
    if isinstance(items, Mapping):
        out["items"] = _convert(items, junctor=junctor, objmeta_uri=objmeta_uri)
    ap = raw.get("additionalProperties")
    if isinstance(ap, Mapping):
        out["additionalProperties"] = _convert(ap, junctor=junctor, objmeta_uri=objmeta_uri)
    elif isinstance(ap, bool):
        out["additionalProperties"] = ap
    is_object = typ == "object" or (typ is None and isinstance(props, Mapping))
    if raw.get("x-kubernetes-embedded-resource") is True and not junctor:
        p = out.setdefault("properties", {})
        p.setdefault("apiVersion", {"type": "string"})
        p.setdefault("kind", {"type": "string"})
        p["metadata"] = _object_meta_schema(raw.get("properties", {}).get("metadata"), objmeta_uri)
        out["required"] = sorted({*out.get("required", ()), "apiVersion", "kind"})
    if is_object and not junctor and not preserve and ap is None:
        out["additionalProperties"] = False  # pruning + strict field validation: unknown fields are errors
    for j in ("allOf", "anyOf", "oneOf"):
        if isinstance(raw.get(j), list):
            out[j] = [_convert(s, junctor=True, objmeta_uri=objmeta_uri) for s in raw[j] if isinstance(s, Mapping)]
    if isinstance(raw.get("not"), Mapping):
        out["not"] = _convert(raw["not"], junctor=True, objmeta_uri=objmeta_uri)
    if raw.get("nullable") is True:
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return {"if": {"type": "null"}, "else": out}
    return out


def _convert_root(raw: Mapping[str, Any], objmeta_uri: str) -> dict:
    out = _convert(raw, objmeta_uri=objmeta_uri)
    props = out.setdefault("properties", {})
    props.setdefault("apiVersion", {"type": "string"})
    props.setdefault("kind", {"type": "string"})
    crd_props = raw.get("properties") if isinstance(raw.get("properties"), Mapping) else {}
    props["metadata"] = _object_meta_schema(crd_props.get("metadata"), objmeta_uri)
    out["type"] = "object"
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return out




# --------------------------------------------------------------------------------------------------
# Pruning of nulls and defaulting (apiextensions structuraldefaulting semantics)
# --------------------------------------------------------------------------------------------------


def _apply_defaults(x: Any, node: _Node, root: bool = False) -> None:
    if isinstance(x, dict):
        if node.properties is not None:
            for k, pn in node.properties.items():
                if root and k in ("apiVersion", "kind", "metadata"):
                    continue
                if k in x:
                    if x[k] is None and not pn.nullable:
                        if pn.has_default:
                            x[k] = copy.deepcopy(pn.default)
                        else:
                            del x[k]
                            continue
                elif pn.has_default:
                    x[k] = copy.deepcopy(pn.default)
                else:
                    continue
                _apply_defaults(x[k], pn)
        elif isinstance(node.additional, _Node):
            an = node.additional
            for k in list(x):
                if x[k] is None and not an.nullable:
                    if an.has_default:
                        x[k] = copy.deepcopy(an.default)
                    else:
                        del x[k]
                        continue
                _apply_defaults(x[k], an)
    elif isinstance(x, list) and node.items is not None:
        it = node.items
        for i, v in enumerate(x):
            if v is None and it.has_default and not it.nullable:
                x[i] = copy.deepcopy(it.default)
            _apply_defaults(x[i], it)

