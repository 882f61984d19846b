"""Upstream CRDs and Helm chart values at the pinned release tags, for installs outside a checkout.

Custom resources (Karpenter, KServe, KEDA, Kueue, Ray, ...) are schema-checked against their
projects' CRDs, and Helm values against the charts' ``values.yaml``. gpufleet does not ship those
files: it ships a lock (``upstream.lock.json``, package data) naming, for each file, the project,
release tag and upstream path, the raw-file URL at that tag and the file's sha256.
``gpufleet schemas pull`` fetches them (from GitHub, or from a local or HTTP mirror laid out like the
cache), checks every hash, and stores them in the user cache directory::

    $GPUFLEET_CACHE_DIR, else $XDG_CACHE_HOME/gpufleet, else ~/.cache/gpufleet
      upstream/<lock id>/crds/<project>/*.yaml
      upstream/<lock id>/charts/<chart>/values.yaml ...

``<lock id>`` is derived from the lock's content, so a gpufleet release that pins other versions
pulls into a new folder. A pull either stores every file of the lock, each with its locked hash, or
nothing: files are fetched into a temporary folder that is renamed into place only when complete.

:func:`write_lock` builds the lock from a directory laid out like the cache whose ``SOURCES.md``
lists each file's repository, tag and upstream path (``gpufleet schemas lock --from DIR``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Optional

__all__ = [
    "LOCK_FILE",
    "Lock",
    "LockedFile",
    "UpstreamError",
    "cache_root",
    "load_lock",
    "make_lock",
    "missing_schemas_hint",
    "pull",
    "pulled_dir",
]

LOCK_FILE = Path(__file__).with_name("upstream.lock.json")
"""The lock shipped with this gpufleet version."""

CACHE_ENV = "GPUFLEET_CACHE_DIR"
PULL_COMMAND = "gpufleet schemas pull"
RAW_URL = "https://raw.githubusercontent.com/{repo}/{tag}/{path}"
LOCK_VERSION = 1
TIMEOUT_SECONDS = 30.0
MAX_FILE_BYTES = 32 * 1024 * 1024
"""No upstream file may be larger (the largest pinned CRD is ~2.2 MB)."""

_MARKER = "upstream.lock.json"  # written into a pulled folder last: its presence means complete
_ROOTS = ("crds", "charts")


class UpstreamError(Exception):
    """A lock that cannot be built or read, or a pull that failed (nothing was stored)."""


@dataclass(frozen=True)
class LockedFile:
    """One upstream file: where it goes in the cache, where it comes from, what it must hash to."""

    path: str
    """Relative path in the cache (``crds/<project>/<file>`` or ``charts/<chart>/...``)."""
    repo: str
    """``owner/name`` on GitHub."""
    tag: str
    upstream_path: str
    url: str
    sha256: str
    size: int
    commit: str = ""

    def document(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "path": self.path,
            "repo": self.repo,
            "tag": self.tag,
            "upstreamPath": self.upstream_path,
            "url": self.url,
            "sha256": self.sha256,
            "size": self.size,
        }
        if self.commit:
            doc["commit"] = self.commit
        return doc


@dataclass(frozen=True)
class Lock:
    files: tuple[LockedFile, ...]

    @property
    def id(self) -> str:
        """Content id of the pinned file set: names the cache folder."""
        canonical = json.dumps([[f.path, f.sha256] for f in sorted(self.files, key=lambda f: f.path)])
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def document(self) -> dict[str, object]:
        return {
            "lockVersion": LOCK_VERSION,
            "description": "Upstream CRDs and Helm chart files gpufleet checks against, at the pinned "
            "release tags. `gpufleet schemas pull` fetches them and verifies every sha256.",
            "files": [f.document() for f in sorted(self.files, key=lambda f: f.path)],
        }

    def dumps(self) -> str:
        return json.dumps(self.document(), indent=2) + "\n"


# --------------------------------------------------------------------------------------------------
# Reading the lock
# --------------------------------------------------------------------------------------------------


def _safe_relative(path: str) -> str:
    """``path`` if it is a plain relative path under crds/ or charts/ (no ``..``, not absolute)."""
    pure = PurePosixPath(path)
    if (
        not path
        or "\\" in path
        or pure.is_absolute()
        or any(part in ("", ".", "..") for part in path.split("/"))
        or pure.parts[0] not in _ROOTS
        or len(pure.parts) < 3
    ):
        raise UpstreamError(f"lock entry {path!r}: expected a relative path crds/<project>/<file> or charts/<chart>/<file>")
    return path


def load_lock(path: Path = LOCK_FILE) -> Lock:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UpstreamError(f"{path}: cannot read the upstream lock: {error}") from error
    if not isinstance(data, dict) or data.get("lockVersion") != LOCK_VERSION or not isinstance(data.get("files"), list):
        raise UpstreamError(f"{path}: not an upstream lock of version {LOCK_VERSION}")
    files = []
    seen: set[str] = set()
    for i, entry in enumerate(data["files"]):
        where = f"{path}: files[{i}]"
        try:
            locked = LockedFile(
                path=_safe_relative(str(entry["path"])),
                repo=str(entry["repo"]),
                tag=str(entry["tag"]),
                upstream_path=str(entry["upstreamPath"]),
                url=str(entry["url"]),
                sha256=str(entry["sha256"]).lower(),
                size=int(entry["size"]),
                commit=str(entry.get("commit", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise UpstreamError(f"{where}: {error}") from error
        if not re.fullmatch(r"[0-9a-f]{64}", locked.sha256):
            raise UpstreamError(f"{where}.sha256: expected 64 hex digits")
        if urllib.parse.urlsplit(locked.url).scheme not in ("https", "http"):
            raise UpstreamError(f"{where}.url: expected an https URL, got {locked.url!r}")
        if not 0 <= locked.size <= MAX_FILE_BYTES:
            raise UpstreamError(f"{where}.size: {locked.size} bytes is over the {MAX_FILE_BYTES}-byte cap")
        if locked.path in seen:
            raise UpstreamError(f"{where}.path: {locked.path} is listed twice")
        seen.add(locked.path)
        files.append(locked)
    return Lock(tuple(files))


# --------------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------------


def cache_root() -> Path:
    """``$GPUFLEET_CACHE_DIR``, else ``$XDG_CACHE_HOME/gpufleet``, else ``~/.cache/gpufleet``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "gpufleet"
    return Path.home() / ".cache" / "gpufleet"


def _folder(lock: Lock) -> Path:
    return cache_root() / "upstream" / lock.id


def pulled_dir(lock: Optional[Lock] = None) -> Optional[Path]:
    """The cache folder holding every file of ``lock`` (the shipped one by default), or None when
    ``gpufleet schemas pull`` has not stored it yet."""
    try:
        lock = lock or load_lock()
    except UpstreamError:
        return None
    folder = _folder(lock)
    return folder if (folder / _MARKER).is_file() else None


def missing_schemas_hint(kinds: Iterable[str]) -> str:
    """One sentence naming the kinds that went unchecked and the command that fixes it."""
    names = sorted(set(kinds))
    return f"not checked, no upstream CRDs: {', '.join(names)}; run `{PULL_COMMAND}` to check them"


# --------------------------------------------------------------------------------------------------
# Pulling
# --------------------------------------------------------------------------------------------------


def _read_url(url: str, *, timeout: float, limit: int) -> bytes:
    import urllib.error  # http.client and ssl: only when something is fetched
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": "gpufleet-schemas-pull"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only, checked
            status = getattr(response, "status", 200)
            if status != 200:
                raise UpstreamError(f"HTTP {status}")
            data = response.read(limit + 1)
    except urllib.error.HTTPError as error:
        raise UpstreamError(f"HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError) as error:
        raise UpstreamError(str(getattr(error, "reason", error))) from error
    if len(data) > limit:
        raise UpstreamError(f"larger than {limit} bytes")
    return data


def _read_file(path: Path, *, limit: int) -> bytes:
    try:
        if path.stat().st_size > limit:
            raise UpstreamError(f"larger than {limit} bytes")
        return path.read_bytes()
    except OSError as error:
        raise UpstreamError(f"cannot read {path}: {error.strerror or error}") from error


def _fetcher(source: Optional[str], *, timeout: float, limit: int) -> Callable[[LockedFile], bytes]:
    """How to get one locked file: its URL (no source), ``<source>/<path>`` of an HTTP mirror, or the
    file ``<source>/<path>`` of a local mirror."""
    if source is None:
        return lambda f: _read_url(f.url, timeout=timeout, limit=limit)
    scheme = urllib.parse.urlsplit(source).scheme
    if scheme in ("http", "https"):
        base = source.rstrip("/") + "/"
        return lambda f: _read_url(base + urllib.parse.quote(f.path), timeout=timeout, limit=limit)
    root = Path(source).expanduser()
    if not root.is_dir():
        raise UpstreamError(f"--from {source}: not a directory or an http(s) URL")
    return lambda f: _read_file(root / f.path, limit=limit)


def pull(
    source: Optional[str] = None,
    *,
    lock: Optional[Lock] = None,
    timeout: float = TIMEOUT_SECONDS,
    max_bytes: int = MAX_FILE_BYTES,
    force: bool = False,
    progress: Optional[Callable[[LockedFile], None]] = None,
) -> Path:
    """Fetch every file of ``lock`` (the shipped one by default), verify its size and sha256, and store
    the set in the cache; answer the folder. ``source``: None (the lock's URLs), a local directory or
    an http(s) base URL laid out like the cache. Any failure raises :class:`UpstreamError` naming the
    file, and leaves nothing behind."""
    lock = lock or load_lock()
    final = _folder(lock)
    if not force and (final / _MARKER).is_file():
        return final
    fetch = _fetcher(source, timeout=timeout, limit=max_bytes)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{lock.id}-", dir=final.parent))
    try:
        for locked in lock.files:
            if progress is not None:
                progress(locked)
            where = locked.path if source is None else f"{locked.path} (from {source})"
            try:
                data = fetch(locked)
            except UpstreamError as error:
                raise UpstreamError(f"{where}: {error}") from None
            digest = hashlib.sha256(data).hexdigest()
            if digest != locked.sha256:
                raise UpstreamError(
                    f"{where}: sha256 mismatch: expected {locked.sha256}, got {digest} ({len(data)} bytes); "
                    "nothing was stored"
                )
            target = staging / locked.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (staging / _MARKER).write_text(lock.dumps())
        if final.exists():  # an older or partial copy (force), or another process finished first
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.replace(staging, final)
        except OSError:
            if not (final / _MARKER).is_file():
                raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return final


# --------------------------------------------------------------------------------------------------
# Building the lock (maintainers: after re-pinning, `gpufleet schemas lock --from DIR --out ...`)
# --------------------------------------------------------------------------------------------------

_CELL = re.compile(r"^`?(.*?)`?$")


def _cells(line: str) -> list[str]:
    return [_CELL.match(c.strip())[1] for c in line.strip().strip("|").split("|")]  # type: ignore[index]


def _table(markdown: str, heading: str) -> list[list[str]]:
    section = markdown.split(f"\n## {heading}\n", 1)
    if len(section) < 2:
        return []
    rows = []
    for line in section[1].split("\n## ", 1)[0].splitlines():
        if line.startswith("|") and not re.match(r"^\|[\s|:-]+\|$", line):
            rows.append(_cells(line))
    return rows[1:]  # without the header row


def make_lock(source_dir: Path) -> Lock:
    """The lock for the files of ``source_dir`` (laid out like the cache), from its ``SOURCES.md``
    ("Files" table: file, repo, tag, upstream path, ...; "Releases" table for the commits). Every file
    under crds/ and charts/ must be listed there, and every listed file must exist."""
    source_dir = Path(source_dir)
    sources = source_dir / "SOURCES.md"
    try:
        markdown = sources.read_text()
    except OSError as error:
        raise UpstreamError(f"{sources}: {error.strerror or error}") from error
    commits = {}
    for row in _table(markdown, "Releases"):
        if len(row) >= 4:
            repo = row[1].split()[0].removeprefix("github.com/")
            commits[(repo, row[2])] = row[3]
    files = []
    problems = []
    for row in _table(markdown, "Files"):
        if len(row) < 4:
            continue
        rel, repo, tag, upstream_path = row[:4]
        try:
            _safe_relative(rel)
        except UpstreamError as error:
            problems.append(str(error))
            continue
        path = source_dir / rel
        if not path.is_file():
            problems.append(f"{rel}: listed in SOURCES.md but missing from {source_dir}")
            continue
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if len(row) >= 6 and re.fullmatch(r"[0-9a-f]{8,64}", row[5]) and not digest.startswith(row[5]):
            problems.append(f"{rel}: sha256 {digest} differs from SOURCES.md ({row[5]}...): not the upstream file")
            continue
        url = RAW_URL.format(repo=repo, tag=urllib.parse.quote(tag), path=urllib.parse.quote(upstream_path))
        files.append(LockedFile(rel, repo, tag, upstream_path, url, digest, len(data),
                                commits.get((repo, tag), "")))
    listed = {f.path for f in files}
    for root in _ROOTS:
        for path in sorted((source_dir / root).rglob("*")):
            rel = path.relative_to(source_dir).as_posix()
            if path.is_file() and rel not in listed and not any(rel in p for p in problems):
                problems.append(f"{rel}: not listed in SOURCES.md (repository, tag and upstream path unknown)")
    if problems:
        raise UpstreamError("; ".join(problems))
    if not files:
        raise UpstreamError(f"{sources}: no files listed in its \"## Files\" table")
    return Lock(tuple(files))
