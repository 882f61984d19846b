"""Property tests (hypothesis): generated bad stack files, mutated from the reference stacks in types,
ranges, names, references, duplicates, encodings and structure, are each refused with
``PlanInputError`` (what ``gpufleet plan`` turns into exit 2), every message naming the stack file
and a field path or line, never another exception, in bounded time. More than 500 examples a run,
in-process (the stack-file read and config cross-checks ``gpufleet plan`` runs before the program),
derandomized so CI runs are repeatable."""

from __future__ import annotations

import atexit
import copy
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Union

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpufleet.infra.config_keys import PULUMI_NAMESPACES
from gpufleet.infra.offline.plan import PlanInputError, Project
from tests.harness import REPO

BASES = {name: yaml.safe_load((REPO / "stacks" / f"Pulumi.{name}.yaml").read_text()) for name in ("dev", "prod")}
SHOWN = "stacks/Pulumi.x.yaml"
PROBLEM = re.compile(r"^stacks/Pulumi\.x\.yaml(?P<line>:\d+(:\d+)?)?: (?P<rest>\S.*)$", re.S)
FREE_FORM = ("tags", "labels", "Labels", "nodeSelector", "runtimeEnv", "env_vars")
"""Maps whose keys are the user's (labels, tags, Ray runtime env): an unknown key there is data."""

SETTINGS = settings(
    max_examples=200, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def free(path: tuple) -> bool:
    """``path`` lies inside a free-form map (its parents name one)."""
    return any(isinstance(k, str) and (k.split(":")[-1] in FREE_FORM or k.endswith("Labels")) for k in path[:-1])


def leaves(node: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """(path into ``config``, value) of every value of the stack, containers included."""
    found = [(path, node)] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += leaves(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += leaves(value, path + (index,))
    return found


LEAVES = {name: leaves(base["config"]) for name, base in BASES.items()}


class Reader:
    """Writes each generated stack file where a Project reads it, and reads it as ``gpufleet plan`` does."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="gpufleet-prop-"))
        atexit.register(shutil.rmtree, self.root, True)
        (self.root / "stacks").mkdir()
        self.project = Project(root=self.root, name="gpufleet", main_dir=REPO / "infra", stacks_dir=self.root / "stacks")

    def outcome(self, content: Union[str, bytes]) -> Optional[list[str]]:
        """None when accepted, else the problems; any other exception fails the test."""
        data = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
        (self.root / "stacks" / "Pulumi.x.yaml").write_bytes(data)
        started = time.perf_counter()
        try:
            self.project.stack_config("x")
            problems = None
        except PlanInputError as error:
            problems = error.problems
        assert time.perf_counter() - started < 5, "reading one stack file took more than 5 s"
        if problems is not None:
            assert problems, "refused without a message"
            for problem in problems:
                match = PROBLEM.match(problem)
                assert match, problem
                # A line number, or a field path (gpufleet:<key>..., a namespaced key, or config).
                assert match.group("line") or re.match(r"^[^\s:]*:[^\s]*[:\s]|^config|^larger than", match.group("rest")), problem
                assert "Traceback" not in problem
        return problems


READER = Reader()


def dump(document: dict) -> str:
    return yaml.safe_dump(document, sort_keys=False, width=10**6, allow_unicode=True)


def refused(content: Union[str, bytes], *needles: str) -> list[str]:
    problems = READER.outcome(content)
    assert problems is not None, f"accepted: {content[:300]!r}"
    text = " | ".join(problems)
    for needle in needles:
        assert needle in text, problems
    return problems


def field_of(path: tuple) -> str:
    """The config path as problems name it: ``gpufleet:network.azCount``, ``...[0].name``."""
    head, *rest = path
    text = head if ":" in head else f"gpufleet:{head}"
    for part in rest:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def set_at(document: dict, path: tuple, value: Any) -> dict:
    changed = copy.deepcopy(document)
    node = changed["config"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return changed


# ---- values: types, ranges, names, references -------------------------------------------------------

_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


def wrong_type(original: Any) -> st.SearchStrategy:
    """A value pydantic must not coerce into ``original``'s type."""
    containers = st.one_of(st.lists(st.integers(0, 9), min_size=1, max_size=2),
                           st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 9), min_size=1))
    if isinstance(original, bool):
        return st.one_of(st.integers(0, 1), st.sampled_from(["true", "yes", "on", "1"]), containers)
    if isinstance(original, int):
        return st.one_of(st.booleans(), st.sampled_from(["3", "10", "1e3"]), containers,
                         st.floats(0.1, 1e6).filter(lambda f: not f.is_integer()))
    if isinstance(original, float):
        return st.one_of(st.booleans(), st.sampled_from(["0.5", "x"]), containers)
    if isinstance(original, str):
        return st.one_of(st.booleans(), st.integers(-5, 10**6), containers)
    if isinstance(original, list):
        return st.one_of(st.booleans(), st.integers(0, 5), st.sampled_from(["a,b", "[x]"]))
    return st.one_of(st.booleans(), st.integers(0, 5), st.sampled_from(["{a: b}", "x"]), st.lists(st.integers(0, 3), max_size=2))


@SETTINGS
@given(data=st.data(), base=st.sampled_from(sorted(BASES)))
def test_wrong_types_are_refused_naming_the_field(data, base):
    path, original = data.draw(st.sampled_from(LEAVES[base]), label="leaf")
    value = data.draw(wrong_type(original), label="value")
    problems = READER.outcome(dump(set_at(BASES[base], path, value)))
    if free(path) and path[0] != "gpufleet:tags" and not isinstance(original, (dict, list)):
        return  # a label or runtime-env value of another type: refused or data, but never a crash
    if len(path) == 1 and isinstance(value, (int, float)) and str(value) == str(original):
        return
    assert problems is not None, (path, original, value)
    # the field itself, or (for a top-level key written as text) the key
    assert any(field_of(path[:1]) in p for p in problems), (path, problems)


_HUGE = st.one_of(st.integers(10**15 + 1, 2**63 - 1), st.integers(-(2**63), -(10**15) - 1),
                  st.integers(2**63, 10**40), st.sampled_from([float("inf"), float("-inf")]))


@SETTINGS
@given(data=st.data(), base=st.sampled_from(sorted(BASES)), bad=st.sampled_from(["huge", "control", "long", "name", "ref"]))
def test_out_of_range_numbers_bad_text_names_and_references_are_refused(data, base, bad):
    candidates = [(p, v) for p, v in LEAVES[base] if not isinstance(v, bool)]
    structured = [(p, v) for p, v in candidates if not free(p)]
    if bad == "huge":
        candidates = [(p, v) for p, v in candidates if isinstance(v, int)]
        value: Any = data.draw(_HUGE, label="value")
    elif bad == "control":
        candidates = [(p, v) for p, v in candidates if isinstance(v, str)]
        prefix = data.draw(_TEXT, label="prefix")
        control = data.draw(st.sampled_from(["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9c"]), label="control")
        value = prefix + control
    elif bad == "long":
        candidates = [(p, v) for p, v in candidates if isinstance(v, str)]
        value = "a" * data.draw(st.integers(65_537, 200_000), label="length")
    elif bad == "name":
        # (Triton model names are directory names in a model repository, not Kubernetes names)
        candidates = [(p, v) for p, v in structured if p[-1] in ("name", "team", "pool", "namespace", "groupName", "cohort")
                      and isinstance(v, str) and "models" not in p]
        value = data.draw(st.sampled_from(["Bad Name", "UPPER", "-lead", "trail-", "a_b", "", "x" * 64, "dots.in.it"]),
                          label="value")
    else:
        candidates = [(p, v) for p, v in structured if p[-1] in ("team", "pool") and isinstance(v, str)]
        value = data.draw(st.from_regex(r"\Anosuch-[a-z]{1,8}\Z"), label="value")
    path, _ = data.draw(st.sampled_from(candidates), label="leaf")
    if bad == "huge" and free(path):
        value = 10**40  # free-form maps hold anything, but not numbers YAML cannot carry
    problems = refused(dump(set_at(BASES[base], path, value)))
    if not (bad == "huge" and value >= 2**63 or bad == "huge" and isinstance(value, float)):
        assert any(field_of(path[:1]) in p for p in problems), (path, problems)


# ---- text: duplicates, encodings, structure ---------------------------------------------------------

_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z][\w:.-]*): \S")


def key_lines(text: str) -> list[int]:
    return [i for i, line in enumerate(text.splitlines()) if _KEY_LINE.match(line)]


TEXTS = {name: dump(base) for name, base in BASES.items()}
KEY_LINES = {name: key_lines(text) for name, text in TEXTS.items()}


def _mappings(base: str) -> list[tuple]:
    return [p for p, v in LEAVES[base] if isinstance(v, dict) and not free(p + ("",))]


@SETTINGS
@given(data=st.data(), base=st.sampled_from(sorted(BASES)),
       kind=st.sampled_from(["duplicate", "encoding", "tag", "bomb", "nesting", "unknown-key", "namespace", "top-level"]))
def test_structural_and_encoding_mutations_are_refused(data, base, kind):
    text = TEXTS[base]
    lines = text.splitlines(keepends=True)
    if kind == "duplicate":
        index = data.draw(st.sampled_from(KEY_LINES[base]), label="line")
        match = _KEY_LINE.match(lines[index])
        repeat = f"{match['indent']}{match['key']}: {data.draw(st.sampled_from(['1', 'x', 'true', '[a]']), label='v')}\n"
        at = data.draw(st.booleans(), label="before")
        lines.insert(index if at else index + 1, repeat)
        first = index + 1 if at else index + 1
        problems = refused("".join(lines), f"duplicate key {match['key']!r}")
        assert any(f"{SHOWN}:" in p and "first at line" in p for p in problems)
        del first
    elif kind == "encoding":
        how = data.draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "latin-1", "nul", "byte"]), label="how")
        if how in ("utf-16", "utf-32"):
            refused(text.encode(how), how.upper())
        elif how == "utf-16-le":
            refused(text.encode(how), "NUL")
        else:
            raw = text.encode()
            position = data.draw(st.integers(0, len(raw) - 1), label="at")
            while position < len(raw) and raw[position] & 0xC0 == 0x80:
                position += 1  # not inside a UTF-8 sequence
            insert = {"latin-1": b"\xe9", "nul": b"\x00", "byte": data.draw(st.sampled_from([b"\xff", b"\xc3", b"\x80"]))}[how]
            line = raw[:position].count(b"\n") + 1
            refused(raw[:position] + insert + raw[position:], f"{SHOWN}:{line}: ")
    elif kind == "tag":
        candidates = [p for p, v in LEAVES[base] if isinstance(v, str) and p[-1] != "principalArn"]
        path = data.draw(st.sampled_from(candidates), label="leaf")
        tag = data.draw(st.sampled_from(["!!binary aGk=", "!!set {a: null}", "!!omap [{a: 1}]", "!custom x",
                                         "!!timestamp 2024-01-01", "2024-01-01", "2024-01-01T10:00:00Z",
                                         "!!python/object:os.system x"]), label="tag")
        marker = "MARKER-VALUE-FOR-TAG"
        mutated = dump(set_at(BASES[base], path, marker)).replace(marker, tag, 1)
        refused(mutated, SHOWN + ":")
    elif kind == "bomb":
        width = data.draw(st.integers(4, 12), label="width")
        levels = data.draw(st.integers(6, 12), label="levels")
        if width ** levels <= 20_000:
            levels = 12
        bomb = "  gpufleet:tags:\n    a0: &a0 [" + ", ".join(["x"] * width) + "]\n" + "".join(
            f"    a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]\n" for i in range(1, levels))
        refused(text + bomb, "alias")
    elif kind == "nesting":
        depth = data.draw(st.integers(65, 20_000), label="depth")
        flow = data.draw(st.booleans(), label="flow")
        if flow:
            refused(text + "  gpufleet:tags: " + "[" * depth + "]" * depth + "\n", SHOWN)
        else:
            depth = min(depth, 400)
            refused(text + "".join("  " * (i + 1) + f"n{i}:\n" for i in range(depth)) + "  " * (depth + 1) + "x: 1\n", SHOWN)
    elif kind == "unknown-key":
        path = data.draw(st.sampled_from(_mappings(base)), label="mapping")
        key = data.draw(st.from_regex(r"\A[a-z][a-zA-Z]{2,10}Zz\Z"), label="key")
        document = copy.deepcopy(BASES[base])
        node = document["config"]
        for part in path:
            node = node[part]
        node[key] = 1
        refused(dump(document), key)
    elif kind == "namespace":
        keys = [k for k in BASES[base]["config"]]
        old = data.draw(st.sampled_from(keys), label="key")
        namespace = data.draw(st.from_regex(r"\A[a-z][a-z0-9-]{0,12}\Z").filter(
            lambda n: n != "gpufleet" and n not in PULUMI_NAMESPACES), label="namespace")
        document = copy.deepcopy(BASES[base])
        document["config"] = {(f"{namespace}:{k.partition(':')[2]}" if k == old else k): v
                              for k, v in document["config"].items()}
        refused(dump(document), f"{namespace}:{old.partition(':')[2]}")
    else:
        new = data.draw(st.sampled_from(["confg", "Config", "configs", "settings", "conf"]), label="top")
        document = {new if k == "config" else k: v for k, v in BASES[base].items()}
        refused(dump(document), new)


def test_the_reference_stacks_pass_the_reader():
    for name in BASES:
        assert READER.outcome(TEXTS[name]) is None, name
