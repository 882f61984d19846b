"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional

if TYPE_CHECKING:
    from gpufleet.infra.offline import Recording

REPO = Path(__file__).resolve().parent.parent
KUBERNETES_VERSION = "1.35"

BASE_CONFIG = {
    "gpufleet:environment": "dev",
    "gpufleet:region": "us-west-2",
    "gpufleet:kubernetesVersion": KUBERNETES_VERSION,
}


def stack_config(stack: str) -> dict[str, str]:
    """The engine config map of one of this repository's stacks."""
    from gpufleet.infra.offline.plan import Project

    return Project.find(REPO).stack_config(stack)


def with_config(base: Mapping[str, str], key: str, value: Any) -> dict[str, str]:
    """``base`` with ``gpufleet:<key>`` set to ``value`` (objects JSON-encoded like the engine does)."""
    result = dict(base)
    result[f"gpufleet:{key}"] = value if isinstance(value, str) else json.dumps(value)
    return result


def child_types(recording: "Recording", component_type: str, *, name_prefix: Optional[str] = None) -> Counter[str]:
    """Type → count of the direct children of the one ``component_type`` resource in ``recording``
    (what a component's "children are exact" test compares). With ``name_prefix``, first asserts that
    every child's name starts with it (children are named ``f"{name}-<suffix>"``)."""
    children = recording.children(recording.one(component_type).urn)
    if name_prefix is not None:
        misnamed = [c.name for c in children if not c.name.startswith(name_prefix)]
        assert not misnamed, f"children not named {name_prefix}*: {misnamed}"
    return Counter(c.type for c in children)
