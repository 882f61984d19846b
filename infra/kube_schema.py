"""Strict offline validation of Kubernetes manifests (plain dicts).

The aim is to judge a manifest the way the API server does on create with strict field validation
(``kubectl apply --validate=strict``), without a cluster:

* Built-in kinds are validated against the *strict* JSON schemas shipped by the ``kubernetes-validate``
  package (unknown fields are errors).  The set of built-in kinds at a version is taken from the
  ``x-kubernetes-group-version-kind`` entries of that version's ``_definitions.json``, so
  :meth:`ManifestValidator.knows` is exact (full group name, not just its first label).
* Custom resources are validated against the ``openAPIV3Schema`` of a *served* version of a
  ``CustomResourceDefinition`` found in ``crd_paths``.  The structural schema is processed like the
  API server does: nulls of non-nullable fields are pruned, ``default`` values are applied, then the
  object is validated with JSON-schema semantics where every object that does not preserve unknown
  fields is closed (``additionalProperties: false``), plus ``x-kubernetes-list-type`` uniqueness and
  ``x-kubernetes-validations`` CEL rules (evaluated with ``cel-python`` when it is installed).

CEL rules that cannot be evaluated faithfully here (transition rules referencing ``oldSelf`` are
ignored as they never apply on create; functions cel-python lacks, evaluation errors such as a field
accessed without ``has()``) are never reported as failures; their text is added to
:attr:`ManifestValidator.cel_skipped` (reason in :attr:`ManifestValidator.cel_skip_reasons`).

Everything expensive is cached at module level, keyed by resolved path plus file mtime/size: a CRD
file is read once per process, each (CRD, version) is compiled once, each CEL rule compiled once.
"""

from __future__ import annotations

import copy
import functools
import gc
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from kubernetes_validate import utils as _kv
from referencing import Registry, Resource

__all__ = ["ManifestValidator", "upstream_dir"]

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DEFS_URI = "https://kubernetes.io/api/_definitions.json"
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_CRD_API_VERSION = "apiextensions.k8s.io/v1"
_MAX_MSG = 400


# --------------------------------------------------------------------------------------------------
# Locating upstream CRDs
# --------------------------------------------------------------------------------------------------


def _repo_root_from(start: Path) -> Path | None:
    for d in (start, *start.parents):
        if (d / "Pulumi.yaml").is_file():
            return d
    return None


def upstream_dir() -> Path | None:
    """The directory with upstream CRDs/charts, or None.

    ``$GPUFLEET_UPSTREAM_DIR`` if set (and an existing directory); else ``../shared/upstream`` relative to
    the repository root (the directory containing ``Pulumi.yaml``, found by walking up from this file's
    location and, failing that, from the current working directory) if it exists; else the files
    ``gpufleet schemas pull`` stored in the user cache (:mod:`gpufleet.infra.upstream_cache`).
    """
    env = os.environ.get("GPUFLEET_UPSTREAM_DIR")
    if env and Path(env).expanduser().is_dir():
        return Path(env).expanduser().resolve()
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        root = _repo_root_from(start)
        if root is not None:
            cand = root.parent / "shared" / "upstream"
            if cand.is_dir():
                return cand
    from gpufleet.infra.upstream_cache import pulled_dir  # what `gpufleet schemas pull` stored

    return pulled_dir()


# --------------------------------------------------------------------------------------------------
# Built-in kinds (kubernetes-validate strict schemas)
# --------------------------------------------------------------------------------------------------


def _minor(v: str) -> tuple[int, int]:
    m = re.match(r"^\s*v?(\d+)\.(\d+)", str(v))
    if not m:
        raise ValueError(f"invalid Kubernetes version {v!r}: expected MAJOR.MINOR such as '1.35'")
    return int(m[1]), int(m[2])


@functools.lru_cache(maxsize=None)
def _shipped_schema_versions() -> tuple[str, ...]:
    """Versions ("1.35.0", ...) for which kubernetes-validate ships strict schemas, oldest first."""
    base = Path(_kv.__file__).parent / "kubernetes-json-schema"
    out = {v for v in _kv.all_versions() if (base / f"v{v}-local-strict" / "_definitions.json").is_file()}
    return tuple(sorted(out, key=_minor))


def _resolve_schema_version(requested: str) -> str:
    want = _minor(requested)
    shipped = _shipped_schema_versions()
    if not shipped:
        raise RuntimeError("kubernetes-validate ships no strict schemas")
    if want < _minor(shipped[0]):
        raise ValueError(
            f"Kubernetes {requested} is older than the oldest schema set shipped by kubernetes-validate "
            f"{getattr(_kv, '__version__', '')} ({_kv.major_minor(shipped[0])})"
        )
    # newest shipped version not newer than the requested one (the newest if the request is newer)
    return [v for v in shipped if _minor(v) <= want][-1]


@dataclass(frozen=True)
class _Builtins:
    schema_version: str
    registry: Registry
    defs_uri: str
    index: Mapping[tuple[str, str], str]  # (apiVersion, kind) -> definition name


@functools.lru_cache(maxsize=None)
def _builtins(schema_version: str) -> _Builtins:
    defs = _kv.schema_contents(
        f"kubernetes-json-schema/v{schema_version}-local-strict/_definitions.json", schema_version
    )
    uri = defs.get("$id") or _DEFS_URI
    registry = Registry().with_resource(uri, Resource.from_contents(defs))
    index: dict[tuple[str, str], str] = {}
    for name, d in defs["$defs"].items():
        gvks = d.get("x-kubernetes-group-version-kind") or []
        for g in gvks:
            # meta/v1 DeleteOptions and WatchEvent are registered in every group; only core v1 is real.
            if len(gvks) > 1 and g.get("group") and name.startswith("io.k8s.apimachinery.pkg.apis.meta."):
                continue
            api = f"{g['group']}/{g['version']}" if g.get("group") else g["version"]
            index.setdefault((api, g["kind"]), name)
    return _Builtins(schema_version, registry, uri, index)


def _date_time_ok(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return bool(_DATE_TIME.match(value))


# Lenient RFC 3339 / ISO 8601 (Go strfmt accepts several layouts, e.g. without seconds or zone).
_DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$"
)
_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("date-time")(_date_time_ok)


@functools.lru_cache(maxsize=8192)
def _go_regex(pattern: str) -> Any:
    """Compile a Go (RE2) pattern: with google-re2 when installed (it comes with cel-python), else Python
    ``re``; None when neither understands it (the pattern is then not enforced rather than misjudged).
    Python's ``re`` alone rejects RE2 syntax seen in CRDs such as ``^(?i)[a-z]...``."""
    try:
        import re2  # type: ignore[import-not-found]

        try:
            return re2.compile(pattern)
        except Exception:
            pass
    except ImportError:
        pass
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _pattern_keyword(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterable[jsonschema.ValidationError]:
    if not isinstance(instance, str) or not isinstance(pattern, str):
        return
    rx = _go_regex(pattern)
    if rx is not None and not rx.search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern_keyword})


@functools.lru_cache(maxsize=None)
def _builtin_validator(schema_version: str, def_name: str) -> jsonschema.protocols.Validator:
    b = _builtins(schema_version)
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": f"{b.defs_uri}#/$defs/{def_name}"}
    return _Validator(schema, registry=b.registry, format_checker=_FORMATS)


# --------------------------------------------------------------------------------------------------
# CRD files: index and loading
# --------------------------------------------------------------------------------------------------

_Stamp = tuple[int, int]


def _stamp(p: Path) -> _Stamp:
    st = p.stat()
    return (st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=2)
def _load_docs(path: str, stamp: _Stamp) -> tuple[Any, ...]:
    """Full parse of a YAML file (the big CRDs are 1-2 MB; the C loader is ~10x faster than the pure
    Python one, and pausing the cyclic GC while building ~10^6 objects halves the time again)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with open(path, encoding="utf-8") as f:
            return tuple(d for d in yaml.load_all(f, Loader=_YAML_LOADER) if d is not None)
    finally:
        if was_enabled:
            gc.enable()


def _crd_entries(doc: Any) -> list[tuple[str, str, str, bool]] | None:
    """[(group, version, kind, served)] for a CRD document; [] for other documents; None if malformed."""
    if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
        return []
    if doc.get("apiVersion") != _CRD_API_VERSION:
        return []  # apiextensions.k8s.io/v1beta1 CRDs are not served by any supported Kubernetes
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return None
    group = spec.get("group")
    names = spec.get("names")
    kind = names.get("kind") if isinstance(names, dict) else None
    versions = spec.get("versions")
    if not isinstance(group, str) or not isinstance(kind, str) or not isinstance(versions, list):
        return None
    out = []
    for v in versions:
        if not isinstance(v, dict) or not isinstance(v.get("name"), str) or not isinstance(v.get("served"), bool):
            return None
        out.append((group, v["name"], kind, v["served"]))
    return out


_SHALLOW_INDENT = 6


def _shallow_crd_index(text: str) -> list[tuple[str, str, str, bool]] | None:
    """Index CRDs without parsing their (huge) schemas.

    Keeps only the lines indented at most 6 spaces (group, names, versions[].name/served live there in
    block-style YAML; schemas sit deeper) and parses what is left.  Returns None whenever the result is
    not trustworthy (flow style, directives, multi-line quoted scalars, ...), so the caller falls back to
    a full parse.
    """
    docs: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.startswith(("---", "...")):
            rest = line[3:].strip()
            if rest and not rest.startswith("#"):
                return None
            docs.append([])
            continue
        if line.startswith("%"):
            return None
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        if len(line) - len(stripped) <= _SHALLOW_INDENT:
            docs[-1].append(line)
    out: list[tuple[str, str, str, bool]] = []
    for lines in docs:
        if not lines:
            continue
        try:
            doc = yaml.load("\n".join(lines), Loader=_YAML_LOADER)
        except yaml.YAMLError:
            return None
        entries = _crd_entries(doc)
        if entries is None:
            return None
        if not entries and isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
            continue  # v1beta1 CRD document
        out.extend(entries)
    return out


@functools.lru_cache(maxsize=None)
def _crd_file_index(path: str, stamp: _Stamp) -> tuple[tuple[str, str, str, bool], ...]:
    """(group, version, kind, served) for every CRD version in a file."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    entries = _shallow_crd_index(text)
    if entries is None:
        entries = _full_crd_index(path, stamp)
    return tuple(entries)


def _full_crd_index(path: str, stamp: _Stamp) -> list[tuple[str, str, str, bool]]:
    out: list[tuple[str, str, str, bool]] = []
    for doc in _load_docs(path, stamp):
        entries = _crd_entries(doc)
        if entries is None:
            raise ValueError(f"{path}: malformed CustomResourceDefinition")
        out.extend(entries)
    return out


def _iter_yaml_files(paths: Iterable[Path | str]) -> list[Path]:
    files: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            found = sorted({*p.rglob("*.yaml"), *p.rglob("*.yml")})
        elif p.is_file():
            found = [p]
        else:
            raise FileNotFoundError(f"CRD path does not exist: {p}")
        for f in found:
            r = f.resolve()
            if r not in seen:
                seen.add(r)
                files.append(r)
    return files


@dataclass(frozen=True)
class _CrdRef:
    path: str
    stamp: _Stamp
    group: str
    version: str
    kind: str


# --------------------------------------------------------------------------------------------------
# Structural schema -> JSON Schema + walk tree
# --------------------------------------------------------------------------------------------------

_NO_DEFAULT = object()


class _Node:
    """The parts of a structural-schema node needed for pruning/defaulting, list-types and CEL."""

    __slots__ = (
        "type", "nullable", "properties", "additional", "items", "default", "rules", "list_type",
        "map_keys", "int_or_string", "fmt", "walk", "cel_memo",
    )

    def __init__(self, raw: Mapping[str, Any]):
        self.type = raw.get("type")
        self.nullable = raw.get("nullable") is True
        self.int_or_string = raw.get("x-kubernetes-int-or-string") is True
        self.fmt = raw.get("format")
        props = raw.get("properties")
        self.properties: dict[str, _Node] | None = (
            {k: _Node(v) for k, v in props.items() if isinstance(v, Mapping)} if isinstance(props, Mapping) else None
        )
        ap = raw.get("additionalProperties")
        self.additional: _Node | bool | None = _Node(ap) if isinstance(ap, Mapping) else ap if isinstance(ap, bool) else None
        items = raw.get("items")
        self.items: _Node | None = _Node(items) if isinstance(items, Mapping) else None
        self.default = copy.deepcopy(raw["default"]) if "default" in raw else _NO_DEFAULT
        rules = raw.get("x-kubernetes-validations") or []
        self.rules: tuple[Mapping[str, Any], ...] = tuple(
            r for r in rules if isinstance(r, Mapping) and isinstance(r.get("rule"), str)
        )
        self.list_type = raw.get("x-kubernetes-list-type")
        self.map_keys = tuple(raw.get("x-kubernetes-list-map-keys") or ())
        children: list[_Node] = list((self.properties or {}).values())
        if isinstance(self.additional, _Node):
            children.append(self.additional)
        if self.items is not None:
            children.append(self.items)
        # does the CEL/list-type walk need to visit this subtree?
        self.walk = bool(self.rules) or self.list_type in ("set", "map") or any(c.walk for c in children)
        # (rule, canonical JSON of the value) -> (result, None) | (None, reason not evaluated)
        self.cel_memo: dict[tuple[str, str], tuple[bool | None, str | None]] = {}

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


@dataclass
class _CompiledCrd:
    ref: _CrdRef
    root: _Node
    validator: jsonschema.protocols.Validator


@functools.lru_cache(maxsize=None)
def _compiled_crd(ref: _CrdRef, schema_version: str) -> _CompiledCrd:
    schema = None
    for doc in _load_docs(ref.path, ref.stamp):
        if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc.get("spec") or {}
        if spec.get("group") != ref.group or (spec.get("names") or {}).get("kind") != ref.kind:
            continue
        for v in spec.get("versions") or []:
            if v.get("name") == ref.version:
                schema = ((v.get("schema") or {}).get("openAPIV3Schema")) or {
                    "type": "object", "x-kubernetes-preserve-unknown-fields": True
                }
    if schema is None:
        raise LookupError(f"{ref.path}: no CRD version {ref.group}/{ref.version} {ref.kind} (file changed?)")
    b = _builtins(schema_version)
    js = _convert_root(schema, f"{b.defs_uri}#/$defs/{_OBJECT_META}")
    validator = _Validator(js, registry=b.registry, format_checker=_FORMATS)
    return _CompiledCrd(ref, _Node(schema), validator)


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


# --------------------------------------------------------------------------------------------------
# CEL (x-kubernetes-validations)
# --------------------------------------------------------------------------------------------------

_OLDSELF = re.compile(r"\boldSelf\b")
_CEL_RESERVED = frozenset(
    "true false null in as break const continue else for function if import let loop package namespace "
    "return var void while".split()
)
_CEL_ESCAPABLE = re.compile(r"^[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*$")


def _cel_escape(name: str) -> str:
    """Kubernetes' escaping of property names for CEL field selection."""
    if name in _CEL_RESERVED:
        return f"__{name}__"
    if not _CEL_ESCAPABLE.match(name):
        return name
    return (
        name.replace("__", "__underscores__").replace(".", "__dot__").replace("-", "__dash__").replace("/", "__slash__")
    )


class _CelUnavailable(Exception):
    pass


@functools.lru_cache(maxsize=1)
def _cel_env():
    """(celpy module, celtypes module, Environment, extension functions) or raises _CelUnavailable."""
    try:
        import celpy  # type: ignore[import-not-found]
        from celpy import celtypes  # type: ignore[import-not-found]
    except Exception as exc:  # pragma: no cover - depends on the environment
        raise _CelUnavailable(f"cel-python not importable: {exc}") from exc
    try:
        import re2 as _re  # type: ignore[import-not-found]  # RE2, like Kubernetes
    except Exception:  # pragma: no cover
        _re = re
    try:
        env = celpy.Environment(runner_class=_folding_runner_class(celpy))
    except Exception:  # pragma: no cover - cel-python internals changed: plain interpreter
        env = celpy.Environment()
    return celpy, celtypes, env, _k8s_cel_functions(celtypes, _re)


# Parse-tree nodes that only pass a single literal value through (no operator, identifier or call).
_CONST_NODES = frozenset(
    "expr conditionalor conditionaland relation addition multiplication unary member primary literal "
    "list_lit exprlist".split()
)


def _folding_runner_class(celpy: Any) -> type:
    """cel-python's interpreter, with constant list literals evaluated once per compiled rule.

    Kubernetes rules such as ``self in ["karpenter.k8s.aws/instance-tenancy", ... 28 more]`` otherwise
    re-build the list (hundreds of parse-tree visits) for every value checked.  (cel-python's own
    ``CompiledRunner`` mis-evaluates ``has()`` in 0.5.0, so it is not an option.)
    """
    import lark
    from celpy.evaluation import CELEvalError, Evaluator

    missing = object()

    def is_constant(tree: Any) -> bool:
        return all(t.data in _CONST_NODES for t in tree.iter_subtrees())

    class FoldingEvaluator(Evaluator):
        def __init__(self, ast: Any, activation: Any, consts: dict[int, Any]):
            super().__init__(ast, activation=activation)
            self._consts = consts

        def sub_evaluator(self, ast: Any) -> Any:
            return FoldingEvaluator(ast, self.activation, self._consts)

        def _visit_tree(self, tree: Any) -> Any:
            value = self._consts.get(id(tree), missing)
            if value is not missing:
                return value
            return super()._visit_tree(tree)

    class FoldingRunner(celpy.InterpretedRunner):
        def __init__(self, environment: Any, ast: Any, functions: Any = None):
            super().__init__(environment, ast, functions)
            self._consts: dict[int, Any] = {}  # id(subtree) -> value; self.ast keeps the subtrees alive
            base = Evaluator(ast, activation=self.new_activation())
            for t in ast.iter_subtrees():
                if (
                    t.data == "primary"
                    and len(t.children) == 1
                    and isinstance(t.children[0], lark.Tree)
                    and t.children[0].data == "list_lit"
                    and is_constant(t)
                ):
                    try:
                        value = base.visit(t)
                    except Exception:
                        continue
                    if not isinstance(value, CELEvalError):
                        self._consts[id(t)] = value

        def evaluate(self, context: Any) -> Any:
            return FoldingEvaluator(self.ast, self.new_activation(), self._consts).evaluate(context)

    return FoldingRunner


def _k8s_cel_functions(ct: Any, rx: Any) -> dict[str, Any]:
    """The parts of Kubernetes' CEL libraries (regex, strings, lists) with unambiguous semantics.

    Not provided (rules using them are reported as skipped): quantity, url, ip/cidr, semver, format,
    authz, optional types.
    """
    S, L, I = ct.StringType, ct.ListType, ct.IntType

    def _str(x: Any) -> str:
        if not isinstance(x, str):
            raise TypeError("no such overload")
        return str(x)

    def find(s, pattern):
        m = rx.search(_str(pattern), _str(s))
        return S(m.group(0) if m else "")

    def find_all(s, pattern, limit=-1):
        found = [m.group(0) for m in rx.finditer(_str(pattern), _str(s))]
        return L([S(f) for f in (found if int(limit) < 0 else found[: int(limit)])])

    def split(s, sep, limit=-1):
        s, sep, n = _str(s), _str(sep), int(limit)
        if n == 0:
            return L([])
        if sep == "":
            parts = list(s)
            if n > 0 and len(parts) > n:
                parts = parts[: n - 1] + ["".join(parts[n - 1 :])]
        else:
            parts = s.split(sep) if n < 0 else s.split(sep, n - 1)
        return L([S(p) for p in parts])

    def lower_ascii(s):
        return S("".join(c.lower() if c.isascii() else c for c in _str(s)))

    def upper_ascii(s):
        return S("".join(c.upper() if c.isascii() else c for c in _str(s)))

    def trim(s):
        return S(_str(s).strip())

    def replace(s, old, new, limit=-1):
        return S(_str(s).replace(_str(old), _str(new), int(limit)))

    def substring(s, start, end=None):
        s = _str(s)
        b, e = int(start), len(s) if end is None else int(end)
        if not (0 <= b <= e <= len(s)):
            raise ValueError("index out of range")
        return S(s[b:e])

    def char_at(s, i):
        s, i = _str(s), int(i)
        if not 0 <= i <= len(s):
            raise ValueError("index out of range")
        return S(s[i : i + 1])

    def index_of(x, sub, offset=0):
        if isinstance(x, list):
            for i, v in enumerate(x):
                if v == sub:
                    return I(i)
            return I(-1)
        s, o = _str(x), int(offset)
        if not 0 <= o <= len(s):
            raise ValueError("index out of range")
        return I(s.find(_str(sub), o))

    def last_index_of(x, sub, offset=None):
        if isinstance(x, list):
            for i in range(len(x) - 1, -1, -1):
                if x[i] == sub:
                    return I(i)
            return I(-1)
        s = _str(x)
        return I(s.rfind(_str(sub)) if offset is None else s.rfind(_str(sub), 0, int(offset) + len(_str(sub))))

    def join(lst, sep=""):
        if not isinstance(lst, list):
            raise TypeError("no such overload")
        return S(_str(sep).join(_str(v) for v in lst))

    def is_sorted(lst):
        if not isinstance(lst, list):
            raise TypeError("no such overload")
        return ct.BoolType(all(lst[i] <= lst[i + 1] for i in range(len(lst) - 1)))

    def lst_sum(lst):
        if not isinstance(lst, list):
            raise TypeError("no such overload")
        if not lst:
            return I(0)
        total = lst[0]
        for v in lst[1:]:
            total = total + v
        return total

    def lst_max(lst):
        if not isinstance(lst, list) or not lst:
            raise ValueError("max of empty list")
        return max(lst)

    return {
        "find": find, "findAll": find_all, "split": split, "lowerAscii": lower_ascii, "upperAscii": upper_ascii,
        "trim": trim, "replace": replace, "substring": substring, "charAt": char_at, "indexOf": index_of,
        "lastIndexOf": last_index_of, "join": join, "isSorted": is_sorted, "sum": lst_sum, "max": lst_max,
    }


@functools.lru_cache(maxsize=None)
def _cel_program(rule: str) -> tuple[Any, str | None]:
    """(runner, None) or (None, reason it cannot run)."""
    try:
        celpy, _ct, env, funcs = _cel_env()
    except _CelUnavailable as exc:
        return None, str(exc)
    try:
        return env.program(env.compile(rule), functions=funcs), None
    except Exception as exc:
        return None, f"cel-python cannot compile it: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _to_cel(x: Any, node: _Node | None, ct: Any) -> Any:
    if x is None:
        return None
    if isinstance(x, bool):
        return ct.BoolType(x)
    t = node.type if node is not None else None
    if isinstance(x, int):
        return ct.DoubleType(x) if t == "number" else ct.IntType(x)
    if isinstance(x, float):
        return ct.IntType(int(x)) if t == "integer" and x.is_integer() else ct.DoubleType(x)
    if isinstance(x, str):
        if node is not None and node.fmt == "date-time":
            try:
                return ct.TimestampType(x)
            except Exception:
                pass
        return ct.StringType(x)
    if isinstance(x, list):
        it = node.items if node is not None else None
        return ct.ListType([_to_cel(v, it, ct) for v in x])
    if isinstance(x, dict):
        if node is not None and node.properties is not None:
            props = node.properties
            return ct.MapType({ct.StringType(_cel_escape(k)): _to_cel(v, props.get(k), ct) for k, v in x.items()})
        an = node.additional if node is not None and isinstance(node.additional, _Node) else None
        return ct.MapType({ct.StringType(k): _to_cel(v, an, ct) for k, v in x.items()})
    return x


_REASONS = {
    "FieldValueForbidden": "Forbidden",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
}


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


# --------------------------------------------------------------------------------------------------
# The validator
# --------------------------------------------------------------------------------------------------


class ManifestValidator:
    """Validates manifests against built-in kinds of one Kubernetes version and the CRDs in ``crd_paths``.

    Attributes:
        kubernetes_version: the version asked for ("1.35").
        schema_version: the kubernetes-validate schema set used ("1.35.0"; the newest shipped if newer).
        cel_evaluated: CEL rules that were evaluated (true or false) at least once.
        cel_skipped: CEL rules that could not be evaluated at least once (never reported as failures).
        cel_skip_reasons: rule -> why it was not evaluated (last reason seen).
        crd_load_errors: path -> error, for YAML files under ``crd_paths`` that could not be read.
    """

    def __init__(self, kubernetes_version: str, crd_paths: Iterable[Path] = ()):
        self.kubernetes_version = str(kubernetes_version).strip().lstrip("v")
        self.schema_version = _resolve_schema_version(self.kubernetes_version)
        self._builtins = _builtins(self.schema_version)
        self.cel_evaluated: set[str] = set()
        self.cel_skipped: set[str] = set()
        self.cel_skip_reasons: dict[str, str] = {}
        self.crd_load_errors: dict[str, str] = {}
        by_group_kind: dict[tuple[str, str], tuple[str, _Stamp, dict[str, bool]]] = {}
        for f in _iter_yaml_files(crd_paths):
            try:
                st = _stamp(f)
                entries = _crd_file_index(str(f), st)
            except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError) as exc:
                self.crd_load_errors[str(f)] = f"{type(exc).__name__}: {exc}"
                continue
            per_file: dict[tuple[str, str], dict[str, bool]] = {}
            for group, version, kind, served in entries:
                per_file.setdefault((group, kind), {})[version] = served
            for gk, versions in per_file.items():
                by_group_kind[gk] = (str(f), st, versions)  # a later file redefining a CRD replaces it
        self._crds: dict[tuple[str, str], _CrdRef] = {}
        for (group, kind), (path, st, versions) in by_group_kind.items():
            for version, served in versions.items():
                if served:
                    self._crds[(f"{group}/{version}", kind)] = _CrdRef(path, st, group, version, kind)

    # -- queries -------------------------------------------------------------------------------------

    def knows(self, api_version: str, kind: str) -> bool:
        """True if ``api_version``/``kind`` is a built-in kind at this version or a served CRD version."""
        key = (api_version, kind)
        return key in self._builtins.index or key in self._crds

    def crd_kinds(self) -> list[tuple[str, str]]:
        """The (apiVersion, kind) pairs served by the loaded CRDs."""
        return sorted(self._crds)

    # -- validation ----------------------------------------------------------------------------------

    def validate(self, manifest: Mapping) -> list[str]:
        """[] when valid; otherwise one human-readable message per problem, each naming the JSON path."""
        if not isinstance(manifest, Mapping):
            return [f"(root): Invalid value: a manifest must be a mapping, got {type(manifest).__name__}"]
        api, kind = manifest.get("apiVersion"), manifest.get("kind")
        missing = [
            f'{field}: Required value: missing required field "{field}"'
            for field, val in (("apiVersion", api), ("kind", kind))
            if not isinstance(val, str) or not val
        ]
        if missing:
            return missing
        key = (api, kind)
        if key in self._builtins.index:
            return self._validate_builtin(manifest, self._builtins.index[key])
        ref = self._crds.get(key)
        if ref is not None:
            return self._validate_custom(manifest, ref)
        return [
            f"no schema for {api} {kind}: neither a built-in kind at Kubernetes {self.kubernetes_version} "
            "nor a known CRD"
        ]

    def _validate_builtin(self, manifest: Mapping, def_name: str) -> list[str]:
        problems: list[str] = []
        # Built-in types decode null as "unset"; the schemas' IntOrString/Quantity oneOf would reject it.
        obj = _plain(manifest, problems, drop_none=True)
        validator = _builtin_validator(self.schema_version, def_name)
        errors = problems + [m for e in validator.iter_errors(obj) for m in _describe(e)]
        errors += _object_meta_problems(obj.get("metadata"))
        return list(dict.fromkeys(errors))

    def _validate_custom(self, manifest: Mapping, ref: _CrdRef) -> list[str]:
        compiled = _compiled_crd(ref, self.schema_version)
        problems: list[str] = []
        obj = _plain(manifest, problems)
        _apply_defaults(obj, compiled.root, root=True)
        errors = problems + [m for e in compiled.validator.iter_errors(obj) for m in _describe(e)]
        errors += _object_meta_problems(obj.get("metadata"))
        self._walk(obj, compiled.root, "", errors, root=True)
        return list(dict.fromkeys(errors))

    # -- list-type uniqueness and CEL ----------------------------------------------------------------

    def _walk(self, x: Any, node: _Node, path: str, errors: list[str], root: bool = False) -> None:
        if x is None or not node.walk or not node.accepts_python_type(x):
            return
        if node.list_type in ("set", "map") and isinstance(x, list):
            self._check_list_type(x, node, path, errors)
        if node.rules:
            self._eval_rules(x, node, path, errors)
        if isinstance(x, dict):
            if node.properties is not None:
                for k, v in x.items():
                    pn = node.properties.get(k)
                    if pn is not None and pn.walk and not (root and k == "metadata"):
                        self._walk(v, pn, _join(path, k), errors)
            elif isinstance(node.additional, _Node) and node.additional.walk:
                for k, v in x.items():
                    self._walk(v, node.additional, _join(path, k), errors)
        elif isinstance(x, list) and node.items is not None and node.items.walk:
            for i, v in enumerate(x):
                self._walk(v, node.items, _join(path, i), errors)

    @staticmethod
    def _check_list_type(x: list, node: _Node, path: str, errors: list[str]) -> None:
        seen: set[str] = set()
        for i, item in enumerate(x):
            if node.list_type == "map":
                if not isinstance(item, dict) or not node.map_keys:
                    continue
                keyval = {k: item.get(k) for k in node.map_keys}
            else:
                keyval = item
            sig = json.dumps(keyval, sort_keys=True, default=str)
            if sig in seen:
                errors.append(f"{_join(path, i)}: Duplicate value: {_short(keyval)}")
            seen.add(sig)

    def _skip(self, rule: str, reason: str) -> None:
        self.cel_skipped.add(rule)
        self.cel_skip_reasons[rule] = reason

    def _eval_rules(self, x: Any, node: _Node, path: str, errors: list[str]) -> None:
        canonical: str | None = None
        self_value: Any = _NO_DEFAULT
        for r in node.rules:
            rule: str = r["rule"]
            if _OLDSELF.search(rule):
                continue  # transition rule: only evaluated on update
            if canonical is None:
                canonical = json.dumps(x, sort_keys=True, default=str)
            memo_key = (rule, canonical)
            outcome = node.cel_memo.get(memo_key)
            if outcome is None:
                if self_value is _NO_DEFAULT:
                    self_value = _cel_value(x, node)
                outcome = _run_rule(rule, self_value)
                if len(node.cel_memo) >= 4096:
                    node.cel_memo.clear()
                node.cel_memo[memo_key] = outcome
            ok, why = outcome
            if ok is None:
                self._skip(rule, why or "not evaluated")
                continue
            self.cel_evaluated.add(rule)
            if ok:
                continue
            where = path
            fp = r.get("fieldPath")
            if isinstance(fp, str) and fp:
                where = f"{path}{fp}" if fp.startswith((".", "[")) else _join(path, fp)
            message = r.get("message") if isinstance(r.get("message"), str) and r.get("message") else None
            shown_rule = rule if len(rule) <= 160 else rule[:157] + "..."
            reason = _REASONS.get(r.get("reason"), "Invalid value")
            if message is None:
                errors.append(f"{_where(where)}: {reason}: failed rule: {shown_rule}")
            else:
                errors.append(f"{_where(where)}: {reason}: {message} (rule: {shown_rule})")


def _cel_value(x: Any, node: _Node) -> Any:
    try:
        return _to_cel(x, node, _cel_env()[1])
    except _CelUnavailable:
        return None


def _run_rule(rule: str, self_value: Any) -> tuple[bool | None, str | None]:
    """(True|False, None) when evaluated, (None, reason) when it could not be."""
    program, why = _cel_program(rule)
    if program is None:
        return None, why or "not compiled"
    ct = _cel_env()[1]
    try:
        result = program.evaluate({"self": self_value})
    except Exception as exc:  # CELEvalError (no such key, no such overload, unknown function ...) and the like
        msg = exc.args[0] if getattr(exc, "args", None) else exc
        return None, f"evaluation error: {str(msg)[:200]}"
    if not isinstance(result, ct.BoolType):
        return None, f"evaluation did not yield a bool: {str(result)[:200]}"
    return bool(result), None
