"""A compiled form of CRD files kept in the user cache, so a plan does not parse megabytes of YAML.

The upstream CRDs are ~20 MB of YAML, most of it field descriptions. The first run that needs a CRD
file parses it and stores what validation uses: the index of its CRDs (group, version, kind, served)
and each version's ``openAPIV3Schema`` with the schema nodes' ``description`` dropped (nothing in
:mod:`.structural`, :mod:`.cel` or the JSON-schema conversion reads them). Later runs load that in a
few milliseconds.

An entry lives in ``<cache root>/crd-schemas/`` (:func:`gpufleet.infra.upstream_cache.cache_root`:
``$GPUFLEET_CACHE_DIR``, ...) under a name derived from the CRD file's resolved path, mtime, size, the
gpufleet version, the Python version and :data:`FORMAT`; the entry repeats that key and is used only
when it matches, so an edited CRD file or another gpufleet is never served a stale schema. Entries are
``marshal`` data (dicts, lists, strings, numbers) that only this module writes. A cache that cannot be
read or written is skipped: validation then parses the YAML as before.
"""

from __future__ import annotations

import gc
import hashlib
import marshal
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

FORMAT = 3
"""Bump when what an entry holds changes."""

DISABLE_ENV = "GPUFLEET_NO_CRD_CACHE"
"""Set (to anything non-empty) to neither read nor write the compiled CRD cache."""

Index = list[tuple[str, str, str, bool]]
Schemas = dict[tuple[str, str, str], Optional[dict[str, Any]]]


def _version() -> str:
    try:
        from gpufleet import __version__

        return str(__version__)
    except Exception:  # noqa: BLE001 - an uninstalled checkout still caches, under its own key
        return "unknown"


def _key(path: str, stamp: tuple[int, int]) -> list[Any]:
    return [FORMAT, _version(), list(sys.version_info[:2]), path, stamp[0], stamp[1]]


def _entry_path(key: list[Any]) -> Optional[Path]:
    if os.environ.get(DISABLE_ENV):
        return None
    from gpufleet.infra.upstream_cache import cache_root

    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:32]
    return cache_root() / "crd-schemas" / f"{digest}.marshal"


def load(path: str, stamp: tuple[int, int], *, schemas: bool = True) -> Optional[dict[str, Any]]:
    """The stored entry for the CRD file: ``{"index": [...], "schemas": {...} or None}`` (the schemas
    only when asked for: they are a separate, larger entry), or None when the index is not stored."""
    index = load_extra(path, stamp, ("index",))
    if not isinstance(index, list):
        return None
    stored = load_extra(path, stamp, ("schemas",)) if schemas else None
    return {
        "index": [tuple(e) for e in index],
        "schemas": {tuple(k.split("\0")): v for k, v in stored.items()} if isinstance(stored, dict) else None,
    }


def store(path: str, stamp: tuple[int, int], index: Index, schemas: Optional[Schemas] = None) -> None:
    """Write the entries for the CRD file (atomically; silently skipped when the cache is not writable)."""
    if schemas is not None:
        store_extra(path, stamp, ("schemas",), {"\0".join(k): v for k, v in schemas.items()})
    store_extra(path, stamp, ("index",), [list(e) for e in index])


def load_extra(path: str, stamp: tuple[int, int], name: tuple[str, ...]) -> Any:
    """Another compiled form of the CRD file (e.g. a version's JSON Schema), stored by :func:`store_extra`."""
    key = [*_key(path, stamp), *name]
    entry = _entry_path(key)
    if entry is None:
        return None
    was_enabled = gc.isenabled()
    gc.disable()  # building ~10^5 objects: no point in the cyclic collector scanning them meanwhile
    try:
        data = marshal.loads(entry.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    finally:
        if was_enabled:
            gc.enable()
    return data.get("value") if isinstance(data, dict) and data.get("key") == key else None


def store_extra(path: str, stamp: tuple[int, int], name: tuple[str, ...], value: Any) -> None:
    key = [*_key(path, stamp), *name]
    entry = _entry_path(key)
    if entry is None:
        return
    _write(entry, {"key": key, "value": value})


def _write(entry: Path, data: Any) -> None:
    try:
        payload = marshal.dumps(data)
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".tmp-", suffix=".marshal")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
            os.replace(tmp, entry)
        except BaseException:
            os.unlink(tmp)
            raise
    except (OSError, ValueError):
        return


_SCHEMA_MAPS = ("properties", "patternProperties", "definitions", "dependencies")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_ONE = ("items", "additionalProperties", "additionalItems", "not")


def without_descriptions(schema: Any) -> Any:
    """A structural schema without the ``description`` of its schema nodes.

    Walks the schema by keyword (a property *named* ``description`` under ``properties`` is kept, and
    values under ``default``, ``enum``, ``example`` and ``x-kubernetes-validations`` are data, copied
    as they are)."""
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "description":
            continue
        if key in _SCHEMA_MAPS and isinstance(value, Mapping):
            out[key] = {name: without_descriptions(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [without_descriptions(sub) for sub in value]
        elif key in _SCHEMA_ONE and isinstance(value, Mapping):
            out[key] = without_descriptions(value)
        else:
            out[key] = value
    return out


class CelOutcomes:
    """CEL rule outcomes by (rule, canonical JSON of the value it judged), kept across runs.

    cel-python interprets every rule in Python (milliseconds for the Gateway API's HTTPRoute rules),
    and a plan judges the same values run after run. An outcome depends only on the rule text, the
    value, the schema node that converts the value to CEL types, and the evaluator, so the store is
    keyed by the gpufleet, cel-python and Python versions and an entry maps a sha256 of rule, value
    and schema node to ``(verdict, reason)``. Loaded on first use, written by
    :meth:`save` when something was added (at most :data:`LIMIT` entries; past that it starts over).
    """

    LIMIT = 200_000

    def __init__(self) -> None:
        self._entries: Optional[dict[bytes, tuple[Optional[bool], Optional[str]]]] = None
        self._dirty = False

    def _path(self) -> Optional[Path]:
        try:
            from importlib.metadata import version

            cel_version = version("cel-python")
        except Exception:  # noqa: BLE001
            cel_version = "unknown"
        return _entry_path(["cel-outcomes", FORMAT, _version(), cel_version, list(sys.version_info[:2])])

    def _load(self) -> dict[bytes, tuple[Optional[bool], Optional[str]]]:
        if self._entries is None:
            self._entries = {}
            path = self._path()
            if path is not None:
                try:
                    data = marshal.loads(path.read_bytes())
                    if isinstance(data, dict):
                        self._entries = data
                except (OSError, EOFError, ValueError, TypeError):
                    pass
        return self._entries

    @staticmethod
    def key(rule: str, canonical: str, schema: str) -> bytes:
        """Rule text, the value's canonical JSON and the digest of the schema node that converts it."""
        return hashlib.sha256(f"{rule}\0{canonical}\0{schema}".encode()).digest()

    def get(self, key: bytes) -> Optional[tuple[Optional[bool], Optional[str]]]:
        entry = self._load().get(key)
        return tuple(entry) if entry is not None else None  # type: ignore[return-value]

    def put(self, key: bytes, outcome: tuple[Optional[bool], Optional[str]]) -> None:
        entries = self._load()
        if len(entries) >= self.LIMIT:
            entries.clear()
        entries[key] = outcome
        self._dirty = True

    def save(self) -> None:
        if not self._dirty or self._entries is None:
            return
        path = self._path()
        self._dirty = False
        if path is None:
            return
        _write(path, self._entries)


CEL_OUTCOMES = CelOutcomes()
"""The process's store of CEL outcomes (:class:`CelOutcomes`)."""
