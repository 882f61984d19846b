"""Read Kubernetes manifests from YAML files, directories and stdin, for ``gpufleet check``.

Each object keeps where it came from (file and line) so a rule's finding, or a YAML error, points at
the document. ``List`` kinds (``kubectl get -o yaml`` output) are expanded into their items; empty
documents are skipped.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, TextIO

import yaml

STDIN = "-"
YAML_SUFFIXES = (".yaml", ".yml")


class ManifestError(Exception):
    """A manifest source that cannot be read or is not valid Kubernetes YAML; the message names the
    file and, where known, the line."""


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


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML has it (an order of magnitude faster), else the pure-Python one;
both give each document's node with its start line."""


def iter_sources(paths: Iterable[str]) -> Iterator[str]:
    """The files ``paths`` name, directories expanded (recursively, ``*.yaml``/``*.yml``, sorted);
    ``-`` stays ``-`` (stdin)."""
    for raw in paths:
        if raw == STDIN:
            yield STDIN
            continue
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in YAML_SUFFIXES)
            yield from (str(p) for p in found)
        elif path.exists():
            yield str(path)
        else:
            raise ManifestError(f"{raw}: no such file or directory")


def load_text(text: str, source: str) -> list[Manifest]:
    """Every Kubernetes object in the (multi-document) YAML ``text``."""
    manifests: list[Manifest] = []
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            line = node.start_mark.line + 1
            document = loader.construct_document(node)
            manifests.extend(_objects(document, source, line))
    except yaml.YAMLError as error:
        raise ManifestError(_yaml_error(error, source)) from None
    finally:
        loader.dispose()
    return manifests


def _objects(document: Any, source: str, line: int) -> Iterator[Manifest]:
    if document is None:
        return
    if not isinstance(document, Mapping):
        raise ManifestError(f"{source}:{line}: expected a Kubernetes object (a mapping), found {type(document).__name__}")
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api_version, str):
        raise ManifestError(f"{source}:{line}: not a Kubernetes object: apiVersion and kind must be strings")
    if kind == "List" or (kind.endswith("List") and isinstance(document.get("items"), list)):
        for index, item in enumerate(document.get("items") or []):
            yield from _objects_in_list(item, source, line, index)
        return
    yield Manifest(document, source, line)


def _objects_in_list(item: Any, source: str, line: int, index: int) -> Iterator[Manifest]:
    if not isinstance(item, Mapping) or not isinstance(item.get("kind"), str) or not isinstance(item.get("apiVersion"), str):
        raise ManifestError(f"{source}:{line}: items[{index}] is not a Kubernetes object (apiVersion and kind)")
    yield from _objects(item, source, line)


def _yaml_error(error: yaml.YAMLError, source: str) -> str:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    detail = f"{context} ... {problem}" if context else problem
    return f"{source}{where}: invalid YAML: {detail}"


def load(paths: Iterable[str], stdin: Optional[TextIO] = None) -> list[Manifest]:
    """Every Kubernetes object under ``paths`` (files, directories, ``-`` for stdin), in order."""
    manifests: list[Manifest] = []
    for source in iter_sources(paths):
        if source == STDIN:
            text = (stdin or sys.stdin).read()
            manifests.extend(load_text(text, "<stdin>"))
            continue
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as error:
            raise ManifestError(f"{source}: cannot read ({error.strerror})") from None
        except UnicodeDecodeError:
            raise ManifestError(f"{source}: cannot read (not UTF-8 text)") from None
        manifests.extend(load_text(text, source))
    return manifests
