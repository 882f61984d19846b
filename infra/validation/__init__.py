"""Offline validation of Kubernetes objects, the way the API server judges them on create."""

from gpufleet.infra.validation.schema import ManifestValidator, upstream_dir

__all__ = ["ManifestValidator", "upstream_dir"]
