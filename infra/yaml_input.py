"""Reading untrusted YAML in bounded time and memory: stack files and ``gpufleet check`` manifests.

Everything gpufleet reads from a user's files goes through here, so both readers refuse the same
things, each with ``file:line`` and, where known, the key path:

* a file that is not a regular file (a FIFO would block, ``/dev/zero`` never ends) or is larger than
  :data:`MAX_FILE_BYTES`;
* bytes that are not UTF-8 text (UTF-16/UTF-32 byte order marks, NUL bytes, invalid sequences);
* nesting deeper than :data:`MAX_DEPTH`, and aliases that would add more than :data:`ALIAS_BUDGET`
  nodes when expanded (the "billion laughs" bomb) or that refer to themselves — found in a streaming
  pass over the parser's events, before any node tree is built;
* duplicate keys in a mapping (the Pulumi CLI and ``kubectl`` refuse them; PyYAML silently keeps the
  last), naming both lines;
* tags other than the plain scalar and collection types (``!!binary``, ``!!set``, ``!!omap``, custom
  ``!Tags``); unquoted dates (``2024-01-01``) are refused in stack files (quote them) and kept as the
  text they are in manifests (what Kubernetes' own YAML reader does);
* integers outside 64 bits, infinite or NaN floats, and strings with lone surrogates (not encodable).

Most files hold nothing of the kind: one pass over the parser's events reads them (checking all of
the above as it goes, building each value as PyYAML's constructor would). At the first thing it
cannot vouch for, the file is read again node by node, and that reader words the refusal.
"""

from __future__ import annotations

import codecs
import math
import os
import re
import stat
from dataclasses import dataclass
from typing import Any, BinaryIO, Optional, Sequence, Union

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_FILE_BYTES = 1_000_000
"""Largest stack file read (1 MB: a stack file is a few kB)."""
MAX_MANIFEST_BYTES = 16_000_000
"""Largest manifest file ``gpufleet check`` reads (16 MB: ``helm template`` of a chart with large CRDs,
or ``kubectl get -o yaml`` of a namespace, stays within a few MB)."""
MAX_DEPTH = 64
"""Deepest nesting of collections (a Kubernetes object nests about 15 deep)."""
ALIAS_BUDGET = 10_000
"""Most nodes aliases may add to a file when expanded (merge keys of shared defaults need a few
hundred at most)."""
INT_LIMIT = 2**63
"""Integers must lie in [-2**63, 2**63): Pulumi (Go) and Kubernetes read them as int64."""

_TAG = "tag:yaml.org,2002:"
_PLAIN_SCALARS = {_TAG + t for t in ("str", "int", "float", "bool", "null")}
_TIMESTAMP = _TAG + "timestamp"
_MERGE = _TAG + "merge"
_MAP, _SEQ, _STR = _TAG + "map", _TAG + "seq", _TAG + "str"
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML has it (an order of magnitude faster), else the pure-Python one."""


class YamlInputError(Exception):
    """Input refused; ``problems`` holds one message per problem, each starting with ``file[:line]``."""

    def __init__(self, problems: Sequence[str], *, syntax: bool = False):
        self.problems = list(problems)
        self.syntax = syntax
        """The text is not YAML at all (a template, another format), rather than YAML refused."""
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Document:
    """One YAML document: its value (plain dicts, lists and scalars) and the line it starts on."""

    value: Any
    line: int


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """The safe loader, with timestamps constructed as the text they are written as."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._scalar_tags: dict[tuple[str, Any], str] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        """PyYAML's tag resolution (a function of its arguments: the safe loader has no path
        resolvers), remembered per scalar text: manifests repeat their keys and values, and each
        resolution runs the implicit resolvers' regular expressions."""
        if kind is not ScalarNode:
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        tag = self._scalar_tags.get(key)
        if tag is None:
            tag = self._scalar_tags[key] = super().resolve(kind, value, implicit)
        return tag


_Loader.add_constructor(_TIMESTAMP, lambda loader, node: str(node.value))


# ---- reading bytes --------------------------------------------------------------------------------


def read_file(path: Union[str, os.PathLike], limit: int = MAX_FILE_BYTES, *, shown: Optional[str] = None) -> str:
    """The text of the regular file ``path`` (raises :class:`YamlInputError`, naming it ``shown``,
    default the path): FIFOs, devices and sockets are refused without reading (a FIFO is opened
    non-blocking), as is anything over ``limit`` bytes or not UTF-8."""
    source = shown or os.fspath(path)
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        raise YamlInputError([f"{source}: cannot read ({error.strerror})"]) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise YamlInputError([f"{source}: not a regular file ({_file_kind(mode)}): only files are read"])
        with os.fdopen(fd, "rb", closefd=False) as stream:
            data = _read_bounded(stream, source, limit)
    except OSError as error:
        raise YamlInputError([f"{source}: cannot read ({error.strerror})"]) from None
    finally:
        os.close(fd)
    return decode(data, source)


def read_stream(stream: Any, source: str, limit: int = MAX_FILE_BYTES) -> str:
    """The text of a stream (stdin), read up to ``limit`` bytes."""
    binary = getattr(stream, "buffer", None)
    if binary is not None:
        return decode(_read_bounded(binary, source, limit), source)
    text = stream.read(limit + 1)
    if isinstance(text, bytes):
        return decode(_check_size(text, source, limit), source)
    if len(text) > limit:
        raise YamlInputError([f"{source}: larger than {limit} bytes: refused"])
    return decode(text.encode("utf-8", "surrogatepass"), source)


def _read_bounded(stream: BinaryIO, source: str, limit: int) -> bytes:
    return _check_size(stream.read(limit + 1), source, limit)


def _check_size(data: bytes, source: str, limit: int) -> bytes:
    if len(data) > limit:
        raise YamlInputError([f"{source}: larger than {limit} bytes: refused (is it the right file?)"])
    return data


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def decode(data: bytes, source: str) -> str:
    """UTF-8 text of ``data`` (a UTF-8 byte order mark is dropped); anything else is refused with the
    line of the first bad byte."""
    for bom, name in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                      (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if data.startswith(bom):
            return _refuse_encoding(f"{source}:1", f"{name} text (byte order mark): save it as UTF-8")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        return _refuse_encoding(f"{source}:{line}", "contains NUL bytes (UTF-16 or binary data?): save it as UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        return _refuse_encoding(f"{source}:{line}", f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})")


def _refuse_encoding(where: str, problem: str) -> str:
    raise YamlInputError([f"{where}: {problem}"])


# ---- parsing --------------------------------------------------------------------------------------


def load_documents(text: str, source: str, *, dates: bool = True, strip_root: bool = False) -> list[Document]:
    """Every document of ``text`` as plain data, after the checks in the module docstring
    (raises :class:`YamlInputError`). ``dates``: keep unquoted dates as text (manifests) instead of
    refusing them (stack files). ``strip_root``: name paths without their first key (a stack
    file's ``config``, so paths read ``gpufleet:network.azCount``)."""
    documents = _plain_documents(text, dates)
    if documents is not None:
        return documents
    try:
        _prescan(text, source)
        loader = _Loader(text)
        try:
            documents = []
            while loader.check_node():
                node = loader.get_node()
                _check_nodes(loader, node, source, dates, 1 if strip_root else 0)
                documents.append(Document(loader.construct_document(node), node.start_mark.line + 1))
            return documents
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        raise YamlInputError([yaml_error_message(error, source)], syntax=True) from None
    except RecursionError:
        raise YamlInputError([f"{source}: nested too deeply"]) from None


def load_single(text: str, source: str, *, dates: bool = False, strip_root: bool = False) -> Any:
    """The one document of ``text`` (None when empty); more than one is refused."""
    documents = load_documents(text, source, dates=dates, strip_root=strip_root)
    if len(documents) > 1:
        raise YamlInputError([f"{source}:{documents[1].line}: a second YAML document ('---'): this file holds one"])
    return documents[0].value if documents else None


def yaml_error_message(error: yaml.YAMLError, source: str) -> str:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    detail = f"{context} ... {problem}" if context else problem
    return f"{source}{where}: invalid YAML: {detail}"


def _plain_documents(text: str, dates: bool) -> Optional[list[Document]]:
    """The documents of ``text`` from one pass over the parser's events, for files like most: no
    merge keys, nothing the checks below refuse. None at the first sign of anything else (and on a
    syntax error): the full reader then reads the file, and words any refusal. The values are what
    the full reader builds (a test compares them): scalars resolved and constructed by the same
    loader, an alias the very object its anchor made (as PyYAML's constructor shares them), and the
    prescan's limits on depth and alias expansion applied event by event."""
    loader = _Loader(text)
    resolve, constructors = loader.resolve, loader.yaml_constructors
    documents: list[Document] = []
    # Open collections: [the list or dict, whether a mapping waits for a key, the key it holds, the
    # identities of its keys so far, its anchor, the expanded count when it opened].
    stack: list[list[Any]] = []
    anchors: dict[str, Any] = {}  # this document's anchors and what they name
    sizes: dict[str, int] = {}  # as in the prescan: nodes an alias adds when expanded
    expanded = written = 0
    root: Any = None
    line = 0
    try:
        while True:
            event = loader.get_event()
            kind = type(event)
            if kind is yaml.ScalarEvent:
                tag, value = event.tag, event.value
                if tag is None or tag == "!":
                    tag = resolve(ScalarNode, value, event.implicit)
                if tag == _STR:
                    if _LONE_SURROGATE.search(value):
                        return None
                    data = value
                elif tag in _PLAIN_SCALARS or (tag == _TIMESTAMP and dates):
                    node = ScalarNode(tag, value, event.start_mark, event.end_mark, event.style)
                    if _scalar_problem(loader, node, dates):
                        return None
                    data = constructors[tag](loader, node)
                else:
                    return None  # other tags, merge keys: the full reader refuses or merges
                expanded += 1
                written += 1
                anchor = event.anchor
                if anchor is not None:
                    if anchor in anchors:
                        return None
                    anchors[anchor], sizes[anchor] = data, 1
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                mapping = kind is yaml.MappingStartEvent
                tag, anchor = event.tag, event.anchor
                if tag is None or tag == "!":
                    tag = resolve(MappingNode if mapping else SequenceNode, None, event.implicit)
                if tag != (_MAP if mapping else _SEQ) or len(stack) >= MAX_DEPTH or anchor in anchors:
                    return None
                data = {} if mapping else []
                if anchor is not None:
                    anchors[anchor] = data
                expanded += 1
                written += 1
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                frame = stack.pop()
                if frame[4] is not None:
                    sizes[frame[4]] = expanded - frame[5]
                continue
            elif kind is yaml.AliasEvent:
                anchor = event.anchor
                if anchor not in anchors or any(frame[4] == anchor for frame in stack):
                    return None  # undefined, or naming a node that contains it
                expanded += sizes.get(anchor, 1)
                if expanded - written > ALIAS_BUDGET:
                    return None
                data = anchors[anchor]
            elif kind is yaml.DocumentStartEvent:
                root, line = None, 0
                anchors = {}
                continue
            elif kind is yaml.DocumentEndEvent:
                documents.append(Document(root, line))
                continue
            elif kind is yaml.StreamEndEvent:
                return documents
            elif kind is yaml.StreamStartEvent:
                continue
            else:
                return None  # an event this reader does not know
            if not stack:
                root, line = data, event.start_mark.line + 1
            else:
                frame = stack[-1]
                into = frame[0]
                if type(into) is list:
                    into.append(data)
                elif frame[1]:  # a key: a plain value, held once per mapping
                    if type(data) is dict or type(data) is list:
                        return None
                    identity = (type(data).__name__, data)
                    if identity in frame[3]:
                        return None
                    frame[3].add(identity)
                    frame[1], frame[2] = False, data
                else:
                    into[frame[2]] = data
                    frame[1] = True
            if kind is yaml.MappingStartEvent:
                stack.append([data, True, None, set(), event.anchor, expanded - 1])
            elif kind is yaml.SequenceStartEvent:
                stack.append([data, False, None, None, event.anchor, expanded - 1])
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()


def _prescan(text: str, source: str) -> None:
    """Depth and alias expansion from the event stream, in constant memory per open collection:
    refused before a node tree exists."""
    open_nodes: list[tuple[Optional[str], int]] = []  # (anchor, expanded count when it opened)
    sizes: dict[str, int] = {}
    expanded = written = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            expanded += 1
            written += 1
            open_nodes.append((event.anchor, expanded - 1))
            if len(open_nodes) > MAX_DEPTH:
                raise YamlInputError([f"{source}:{event.start_mark.line + 1}: nested deeper than {MAX_DEPTH} levels"])
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, start = open_nodes.pop()
            if anchor is not None:
                sizes[anchor] = expanded - start
        elif isinstance(event, yaml.ScalarEvent):
            expanded += 1
            written += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            line = event.start_mark.line + 1
            if any(anchor == event.anchor for anchor, _ in open_nodes):
                raise YamlInputError([f"{source}:{line}: alias *{event.anchor} refers to a node that contains it"])
            expanded += sizes.get(event.anchor, 1)
            if expanded - written > ALIAS_BUDGET:
                raise YamlInputError([f"{source}:{line}: aliases expand to more than {ALIAS_BUDGET} extra nodes "
                                      "(a YAML alias bomb?): refused"])


def _check_nodes(loader: Any, root: Node, source: str, dates: bool, strip: int) -> None:
    """Tags, duplicate keys, key types and scalar values of one document's nodes, with their paths."""
    seen: set[int] = set()
    stack: list[tuple[Node, tuple[Any, ...]]] = [(root, ())]
    problems: list[str] = []
    while stack and len(problems) < 20:
        node, path = stack.pop()
        if id(node) in seen:
            continue  # an alias: checked where its anchor is
        seen.add(id(node))
        where = f"{source}:{node.start_mark.line + 1}"
        at = f" {format_path(path[strip:])}:" if path[strip:] else ""
        if isinstance(node, ScalarNode):
            problem = _scalar_problem(loader, node, dates)
            if problem:
                problems.append(f"{where}:{at} {problem}")
        elif isinstance(node, SequenceNode):
            if node.tag != _SEQ:
                problems.append(f"{where}:{at} YAML tag {_short(node.tag)} is not allowed (plain lists only)")
                continue
            stack.extend((child, path + (index,)) for index, child in reversed(list(enumerate(node.value))))
        elif isinstance(node, MappingNode):
            if node.tag != _MAP:
                problems.append(f"{where}:{at} YAML tag {_short(node.tag)} is not allowed (plain mappings only)")
                continue
            keys: dict[Any, int] = {}
            children = []
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE:
                    children.append((value_node, path + ("<<",)))
                    continue
                line = key_node.start_mark.line + 1
                if not isinstance(key_node, ScalarNode):
                    problems.append(f"{source}:{line}:{at} a mapping key must be a plain value, not a "
                                    f"{'list' if isinstance(key_node, SequenceNode) else 'mapping'}")
                    continue
                problem = _scalar_problem(loader, key_node, dates)
                if problem:
                    problems.append(f"{source}:{line}:{at} key {_clip(key_node.value)!r}: {problem}")
                    continue
                key = loader.construct_object(key_node)
                identity = (type(key).__name__, key)
                if identity in keys:
                    problems.append(f"{source}:{line}:{at} duplicate key {key!r} (first at line {keys[identity]}): "
                                    "a YAML mapping holds each key once; the Pulumi CLI and kubectl refuse this")
                    continue
                keys[identity] = line
                children.append((value_node, path + (key,)))
            stack.extend(reversed(children))
    if problems:
        raise YamlInputError(problems)


def _scalar_problem(loader: Any, node: ScalarNode, dates: bool) -> Optional[str]:
    tag = node.tag
    if tag == _TIMESTAMP:
        return None if dates else f"unquoted date or time {node.value!r} (a timestamp): quote it to make it text"
    if tag not in _PLAIN_SCALARS:
        return f"YAML tag {_short(tag)} is not allowed (plain strings, numbers, booleans and null only)"
    if tag == _TAG + "int":
        value = loader.construct_yaml_int(node)
        if not -INT_LIMIT <= value < INT_LIMIT:
            return f"integer {_clip(node.value)} is outside the 64-bit range"
    elif tag == _TAG + "float":
        if not math.isfinite(loader.construct_yaml_float(node)):
            return f"{node.value!r} is not a finite number"
    elif tag == _TAG + "str" and any("\ud800" <= ch <= "\udfff" for ch in node.value):
        return "a lone surrogate escape (\\ud800-\\udfff) is not a character"
    return None


def _short(tag: str) -> str:
    return "!!" + tag[len(_TAG):] if tag.startswith(_TAG) else tag


def _clip(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def format_path(path: Sequence[Any]) -> str:
    """``("spec", "containers", 0, "image")`` → ``spec.containers[0].image``."""
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text
