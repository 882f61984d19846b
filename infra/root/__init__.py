"""gpufleet: Pulumi components and CrossGuard policy packs for a production GPU/ML platform on AWS EKS.

``gpufleet.components`` (the components; ``pip install gpufleet``), ``gpufleet.policies`` and
``gpufleet.infra`` (the policy rules, the offline plan and the ``gpufleet`` command; ``gpufleet[cli]``).
"""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__: str = _metadata.version("gpufleet")
    """The installed distribution's version: ``version`` in pyproject.toml is the one source."""
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
