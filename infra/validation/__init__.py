"""Offline validation of Kubernetes objects, the way the API server judges them on create: the schema
(built-in kinds and CRDs, incl. CEL rules) in :mod:`.schema`, and what the pinned controllers'
validating admission webhooks reject in :mod:`.admission`."""

from gpufleet.infra.validation.schema import ManifestValidator, upstream_dir

__all__ = ["ManifestValidator", "upstream_dir"]
