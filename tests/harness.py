"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

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
