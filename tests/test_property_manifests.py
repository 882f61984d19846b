"""Property tests (hypothesis) of ``gpufleet check`` input: manifests mutated from the policy fixture
(wrong types anywhere, malformed metadata/spec, junk documents, duplicate keys) are read without an
exception; every refusal names the file and line; whatever is read can be judged by every rule."""

from __future__ import annotations

import atexit
import copy
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpufleet.infra.manifests import ManifestError, load, read
from gpufleet.policies.core import PolicyConfig, Subject, evaluate

FIXTURE = Path(__file__).parent / "fixtures" / "policies" / "good.yaml"
DOCS = [d for d in yaml.safe_load_all(FIXTURE.read_text()) if d and "pulumiType" not in d]
ROOT = Path(tempfile.mkdtemp(prefix="gpufleet-prop-check-"))
atexit.register(shutil.rmtree, ROOT, True)
TARGET = ROOT / "manifests.yaml"

VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False),
                   st.text(max_size=8), st.lists(st.integers(0, 3), max_size=2),
                   st.dictionaries(st.sampled_from(["a", "name", "spec"]), st.integers(0, 3), max_size=2))


def leaves(node: Any, path: tuple = ()) -> list[tuple]:
    found = [path] if path else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += leaves(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += leaves(value, path + (index,))
    return found


PATHS = [(index, path) for index, doc in enumerate(DOCS) for path in leaves(doc)]


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), changes=st.integers(1, 4), junk=st.booleans(), duplicate=st.booleans())
def test_mutated_manifests_are_read_or_refused_by_file_and_line(data, changes, junk, duplicate):
    docs = copy.deepcopy(DOCS)
    for _ in range(changes):
        index, path = data.draw(st.sampled_from(PATHS), label="leaf")
        node = docs[index]
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = data.draw(VALUES, label="value")
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change replaced a parent
    text = yaml.safe_dump_all(docs, sort_keys=False)
    if junk:
        text += "---\n" + data.draw(st.sampled_from(["- a\n- b\n", "just text\n", "42\n", "{a: b}\n"]), label="junk")
    if duplicate:
        text = text.replace("kind: ", "kind: Dup\nkind: ", 1)
    TARGET.write_text(text)
    found = read([str(TARGET)])
    for problem in found.problems:
        assert re.match(rf"^{re.escape(str(TARGET))}:\d+(:\d+)?: \S", problem), problem
    if duplicate:
        assert any("duplicate key 'kind'" in p for p in found.problems) and not found
    try:
        load([str(TARGET)])
    except ManifestError as error:
        assert not found and error.problems[-1].startswith("nothing to check")
    evaluate([Subject.from_manifest(m.object) for m in found], PolicyConfig(production=True))
