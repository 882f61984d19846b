"""Read Kubernetes manifests from YAML files, directories and stdin, for ``gpufleet check``.

Each object keeps where it came from (file and line) so a rule's finding, or an input error, points
at the document. ``List`` kinds (``kubectl get -o yaml`` output) are expanded into their items; empty
documents are skipped. Files are read by :mod:`gpufleet.infra.yaml_input`, with the stack files' rules:
regular files only (a FIFO or device is refused without blocking), UTF-8, no duplicate keys, aliases within a
budget, plain tags only; a manifest file may be larger than a stack file (``helm template`` output), at
most :data:`~gpufleet.infra.yaml_input.MAX_MANIFEST_BYTES`.

Named files and stdin must hold Kubernetes objects. Files found by walking a directory may be any
YAML of a repository (Helm values, ``Chart.yaml``, kustomizations, CI files, Helm templates that are
not YAML until rendered): a file with no Kubernetes object in it, or that does not parse as YAML, is
skipped with one line saying so. A document that claims to be a Kubernetes object (``apiVersion`` and
``kind``) but is malformed (``metadata`` not a mapping, ``spec`` a string, ...) is an input error
wherever it is found.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, TextIO

from gpufleet.infra.yaml_input import MAX_MANIFEST_BYTES, YamlInputError, load_documents, read_file, read_stream

STDIN = "-"
YAML_SUFFIXES = (".yaml", ".yml")
MAX_FILES = 20_000
"""Most files one directory walk reads."""


class ManifestError(Exception):
    """Nothing could be checked: every problem found (``problems``), each naming the file and, where
    known, the line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object and where it was read."""

    object: Mapping[str, Any]
    source: str
    line: int
    """1-based line of the document's first line."""

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}"


class Manifests(list):
    """The objects read (a list of :class:`Manifest`), plus what was skipped and what was refused."""

    def __init__(self, items: Iterable[Manifest] = (), skipped: Optional[list[str]] = None,
                 problems: Optional[list[str]] = None):
        super().__init__(items)
        self.skipped: list[str] = skipped or []
        """``<file>: skipped: <why>``, one line per file found in a directory and not checked."""
        self.problems: list[str] = problems or []
        """Input errors (``file:line: ...``): objects or files that could not be checked."""


@dataclass
class _Source:
    path: str
    found_in_directory: bool


def _sources(paths: Iterable[str], problems: list[str]) -> Iterator[_Source]:
    for raw in paths:
        if raw == STDIN:
            yield _Source(STDIN, False)
            continue
        path = Path(raw)
        if path.is_dir():
            found = []
            for candidate in path.rglob("*"):
                if candidate.suffix.lower() in YAML_SUFFIXES and candidate.is_file():
                    found.append(candidate)
                    if len(found) > MAX_FILES:
                        problems.append(f"{raw}: more than {MAX_FILES} YAML files: name a smaller directory")
                        found = []
                        break
            yield from (_Source(str(p), True) for p in sorted(found))
        elif path.exists() or path.is_symlink():
            yield _Source(str(path), False)
        else:
            problems.append(f"{raw}: no such file or directory")


def load_text(text: str, source: str, found_in_directory: bool = False) -> Manifests:
    """Every Kubernetes object in the (multi-document) YAML ``text``, with its input errors; a
    ``found_in_directory`` file without Kubernetes objects is recorded as skipped."""
    result = Manifests()
    try:
        documents = load_documents(text, source, dates=True)
    except YamlInputError as error:
        if found_in_directory and error.syntax:
            first = error.problems[0].split(": invalid YAML: ", 1)[-1]
            result.skipped.append(f"{source}: skipped: not valid YAML ({first}); a template?")
        else:
            result.problems.extend(error.problems)
        return result
    claimed = [d for d in documents if _claims_kubernetes(d.value)]
    if found_in_directory and not claimed:
        if any(d.value is not None for d in documents):
            result.skipped.append(f"{source}: skipped: not a Kubernetes object")
        return result
    for document in documents:
        if document.value is None:
            continue
        where = f"{source}:{document.line}"
        if not _claims_kubernetes(document.value):
            result.problems.append(f"{where}: not a Kubernetes object (a mapping with apiVersion and kind), "
                                   f"found {_describe(document.value)}")
            continue
        _add_object(document.value, source, document.line, result, where)
    return result


def _claims_kubernetes(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("apiVersion"), str) and isinstance(value.get("kind"), str)


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        missing = [k for k in ("apiVersion", "kind") if not isinstance(value.get(k), str)]
        return f"a mapping without {' and '.join(missing)} as text"
    return {list: "a list", str: "text", int: "a number", float: "a number", bool: "a boolean"}.get(type(value), type(value).__name__)


def _shape_problem(document: Mapping[str, Any]) -> Optional[str]:
    """Why an object with apiVersion and kind is still not one the API server would accept."""
    if not document["apiVersion"].strip() or not document["kind"].strip():
        return "apiVersion and kind must not be empty"
    metadata = document.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            return f"metadata must be a mapping, found {_describe(metadata)}"
        for key in ("name", "namespace", "generateName"):
            if key in metadata and metadata[key] is not None and not isinstance(metadata[key], str):
                return f"metadata.{key} must be text, found {_describe(metadata[key])}"
        for key in ("labels", "annotations"):
            if metadata.get(key) is not None and not isinstance(metadata[key], Mapping):
                return f"metadata.{key} must be a mapping, found {_describe(metadata[key])}"
    spec = document.get("spec")
    if spec is not None and not isinstance(spec, Mapping):
        return f"spec must be a mapping, found {_describe(spec)}"
    return None


def _add_object(document: Mapping[str, Any], source: str, line: int, result: Manifests, where: str) -> None:
    problem = _shape_problem(document)
    if problem:
        result.problems.append(f"{where}: malformed {document['kind']}: {problem}")
        return
    kind = document["kind"]
    if kind == "List" or (kind.endswith("List") and "items" in document):
        items = document.get("items")
        if items is None:
            return
        if not isinstance(items, list):
            result.problems.append(f"{where}: malformed {kind}: items must be a list, found {_describe(items)}")
            return
        for index, item in enumerate(items):
            if not _claims_kubernetes(item):
                result.problems.append(f"{where}: items[{index}] is not a Kubernetes object (apiVersion and kind)")
                continue
            _add_object(item, source, line, result, f"{where}: items[{index}]")
        return
    result.append(Manifest(document, source, line))


def read(paths: Iterable[str], stdin: Optional[TextIO] = None) -> Manifests:
    """Every Kubernetes object under ``paths`` (files, directories, ``-`` for stdin), in order, with
    what was skipped and the input errors; never raises for one bad file."""
    result = Manifests()
    for source in _sources(paths, result.problems):
        try:
            if source.path == STDIN:
                text = read_stream(stdin or sys.stdin, "<stdin>", MAX_MANIFEST_BYTES)
                shown = "<stdin>"
            else:
                text = read_file(source.path, MAX_MANIFEST_BYTES)
                shown = source.path
        except YamlInputError as error:
            result.problems.extend(error.problems)
            continue
        found = load_text(text, shown, source.found_in_directory)
        result.extend(found)
        result.skipped.extend(found.skipped)
        result.problems.extend(found.problems)
    return result


def load(paths: Iterable[str], stdin: Optional[TextIO] = None) -> Manifests:
    """:func:`read`, raising :class:`ManifestError` when nothing could be checked (no object at all:
    empty input, only ``---``, a directory without Kubernetes YAML, or only input errors)."""
    result = read(paths, stdin)
    if not result:
        problems = list(result.problems)
        problems.append("nothing to check: no Kubernetes object found"
                        + (f" ({len(result.skipped)} file(s) skipped)" if result.skipped else ""))
        raise ManifestError(problems)
    return result
