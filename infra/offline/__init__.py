"""Run Pulumi programs in-process against deterministic fakes: nothing is contacted.

The names are imported on first use (a module ``__getattr__``): the engine imports the Pulumi SDK,
which ``gpufleet --help`` or ``gpufleet check`` (importing :mod:`.graph` for its options) do not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpufleet.infra.offline.engine import Recording, RegisteredResource, run_program, run_project_main
    from gpufleet.infra.offline.fakes import FakeCloud

__all__ = ["FakeCloud", "Recording", "RegisteredResource", "run_program", "run_project_main"]

_LAZY = {
    "FakeCloud": "gpufleet.infra.offline.fakes",
    "Recording": "gpufleet.infra.offline.engine",
    "RegisteredResource": "gpufleet.infra.offline.engine",
    "run_program": "gpufleet.infra.offline.engine",
    "run_project_main": "gpufleet.infra.offline.engine",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
