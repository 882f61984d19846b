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

The structural-schema tree lives in :mod:`.structural`, CEL evaluation in :mod:`.cel`, message
formatting and ObjectMeta checks in :mod:`.messages`; what the controllers' admission webhooks reject
on top of the schema is :mod:`gpufleet.infra.validation.admission`.
"""

from __future__ import annotations

import functools
import gc
import json
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

from gpufleet.infra.validation import crd_cache
from gpufleet.infra.validation.cel import _OLDSELF, _REASONS, _cel_value, _run_rule
from gpufleet.infra.validation.messages import _describe, _join, _object_meta_problems, _plain, _short, _where
from gpufleet.infra.validation.structural import _NO_DEFAULT, _apply_defaults, _convert_root, _Node, annotate_walk

__all__ = ["MODELED_CRDS", "ManifestValidator", "upstream_dir"]

MODELED_CRDS = Path(__file__).resolve().parent / "modeled_crds"
"""CRDs gpufleet models itself, for kinds whose controller publishes none (EKS Auto Mode's
``eks.amazonaws.com/v1`` NodeClass): every validator reads them, before the upstream CRDs, so an
upstream CRD of the same kind replaces the model. Each file names the documentation it follows."""

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DEFS_URI = "https://kubernetes.io/api/_definitions.json"
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_CRD_API_VERSION = "apiextensions.k8s.io/v1"


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
    """(group, version, kind, served) for every CRD version in a file (from the compiled cache,
    :mod:`.crd_cache`, when it holds the file)."""
    cached = crd_cache.load(path, stamp, schemas=False)
    if cached is not None:
        return tuple(cached["index"])
    with open(path, encoding="utf-8") as f:
        text = f.read()
    entries = _shallow_crd_index(text)
    if entries is None:
        entries = _full_crd_index(path, stamp)
    crd_cache.store(path, stamp, entries)
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


@dataclass
class _CompiledCrd:
    ref: _CrdRef
    root: _Node
    validator: jsonschema.protocols.Validator


@functools.lru_cache(maxsize=4)
def _crd_schemas(path: str, stamp: _Stamp) -> crd_cache.Schemas:
    """(group, version, kind) → that version's ``openAPIV3Schema`` without descriptions (None when
    the version has none), for every CRD in the file; parsed once and then kept in the user cache."""
    cached = crd_cache.load(path, stamp)
    if cached is not None and cached["schemas"] is not None:
        return cached["schemas"]
    schemas: crd_cache.Schemas = {}
    for doc in _load_docs(path, stamp):
        if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc.get("spec") or {}
        group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
        if not isinstance(group, str) or not isinstance(kind, str):
            continue
        for v in spec.get("versions") or []:
            if isinstance(v, dict) and isinstance(v.get("name"), str):
                # the last document defining a version wins, as it did when each lookup scanned the file
                raw = (v.get("schema") or {}).get("openAPIV3Schema")
                stripped = crd_cache.without_descriptions(raw) if raw else None
                if isinstance(stripped, dict):
                    annotate_walk(stripped)
                schemas[(group, v["name"], kind)] = stripped
    try:
        index = _full_crd_index(path, stamp)
    except ValueError:
        return schemas  # malformed: the index reports it; nothing is cached
    crd_cache.store(path, stamp, index, schemas)
    return schemas


@functools.lru_cache(maxsize=None)
def _compiled_crd(ref: _CrdRef, schema_version: str) -> _CompiledCrd:
    schemas = _crd_schemas(ref.path, ref.stamp)
    key = (ref.group, ref.version, ref.kind)
    if key not in schemas:
        raise LookupError(f"{ref.path}: no CRD version {ref.group}/{ref.version} {ref.kind} (file changed?)")
    schema = schemas[key] or {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    b = _builtins(schema_version)
    objmeta_uri = f"{b.defs_uri}#/$defs/{_OBJECT_META}"
    converted_key = ("converted", ref.group, ref.version, ref.kind, objmeta_uri)
    js = crd_cache.load_extra(ref.path, ref.stamp, converted_key)
    if not isinstance(js, dict):
        js = _convert_root(schema, objmeta_uri)
        crd_cache.store_extra(ref.path, ref.stamp, converted_key, js)
    validator = _Validator(js, registry=b.registry, format_checker=_FORMATS)
    return _CompiledCrd(ref, _Node(schema), validator)


# --------------------------------------------------------------------------------------------------
# The validator
# --------------------------------------------------------------------------------------------------


class ManifestValidator:
    """Validates manifests against built-in kinds of one Kubernetes version and the CRDs in ``crd_paths``
    (and, unless ``modeled`` is false, gpufleet's :data:`MODELED_CRDS`).

    Attributes:
        kubernetes_version: the version asked for ("1.35").
        schema_version: the kubernetes-validate schema set used ("1.35.0"; the newest shipped if newer).
        cel_evaluated: CEL rules that were evaluated (true or false) at least once.
        cel_skipped: CEL rules that could not be evaluated at least once (never reported as failures).
        cel_skip_reasons: rule -> why it was not evaluated (last reason seen).
        crd_load_errors: path -> error, for YAML files under ``crd_paths`` that could not be read.
    """

    def __init__(self, kubernetes_version: str, crd_paths: Iterable[Path] = (), *, modeled: bool = True):
        self.kubernetes_version = str(kubernetes_version).strip().lstrip("v")
        self.schema_version = _resolve_schema_version(self.kubernetes_version)
        self._builtins = _builtins(self.schema_version)
        self.cel_evaluated: set[str] = set()
        self.cel_skipped: set[str] = set()
        self.cel_skip_reasons: dict[str, str] = {}
        self.crd_load_errors: dict[str, str] = {}
        by_group_kind: dict[tuple[str, str], tuple[str, _Stamp, dict[str, bool]]] = {}
        for f in _iter_yaml_files([*([MODELED_CRDS] if modeled else []), *crd_paths]):
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

    def save_cel_outcomes(self) -> None:
        """Keep the CEL outcomes judged so far for later runs (:class:`.crd_cache.CelOutcomes`)."""
        crd_cache.CEL_OUTCOMES.save()

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
                stored_key = crd_cache.CelOutcomes.key(rule, canonical, node.fingerprint)
                outcome = crd_cache.CEL_OUTCOMES.get(stored_key)  # judged by an earlier run
                if outcome is None:
                    if self_value is _NO_DEFAULT:
                        self_value = _cel_value(x, node)
                    outcome = _run_rule(rule, self_value)
                    crd_cache.CEL_OUTCOMES.put(stored_key, outcome)
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


