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

import hashlib
import marshal
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

FORMAT = 1
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


def load(path: str, stamp: tuple[int, int]) -> Optional[dict[str, Any]]:
    """The stored entry for the CRD file (``{"index": [...], "schemas": {...} or None}``), or None."""
    key = _key(path, stamp)
    entry = _entry_path(key)
    if entry is None:
        return None
    try:
        data = marshal.loads(entry.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("index"), list):
        return None
    schemas = data.get("schemas")
    return {
        "index": [tuple(e) for e in data["index"]],
        "schemas": None if schemas is None else {tuple(k.split("\0")): v for k, v in schemas.items()},
    }


def store(path: str, stamp: tuple[int, int], index: Index, schemas: Optional[Schemas] = None) -> None:
    """Write the entry for the CRD file (atomically; silently skipped when the cache is not writable)."""
    key = _key(path, stamp)
    entry = _entry_path(key)
    if entry is None:
        return
    data = {
        "key": key,
        "index": [list(e) for e in index],
        "schemas": None if schemas is None else {"\0".join(k): v for k, v in schemas.items()},
    }
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
