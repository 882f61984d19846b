"""gpufleet: Pulumi components and CrossGuard policy packs for a production GPU/ML platform on AWS EKS.

``gpufleet.components`` (the components; ``pip install gpufleet``), ``gpufleet.policies`` and
``gpufleet.infra`` (the policy rules, the offline plan and the ``gpufleet`` command; ``gpufleet[cli]``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["__version__"]


def __getattr__(name: str) -> Any:
    """``__version__``: the installed distribution's version (``version`` in pyproject.toml is the one
    source), read on first use: importlib.metadata is not free and most imports never ask."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import metadata

    try:
        version = metadata.version("gpufleet")
    except metadata.PackageNotFoundError:  # imported from a source tree that was never installed
        version = "0+unknown"
    globals()["__version__"] = version
    return version
