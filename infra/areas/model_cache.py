"""Stack area ``model_cache``: one shared volume for model weights (EFS, FSx for Lustre for large
models, or an S3 bucket through Mountpoint), with a claim in each team namespace that serves or
trains models: ReadWriteMany on EFS and Lustre; on S3 a ReadOnlyMany claim for readers plus a
``<claim>-writer`` ReadWriteMany claim for uploads (Mountpoint cannot rename or modify files).

Composition puts the claim name of each covered team in ``platform.model_caches[team]`` (the team
name is its namespace), so the serving and Ray areas mount the weights without repeating names.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Optional

from pydantic import Field, field_validator

from gpufleet.components.lustre_cache import FSX_CSI_ADDON, FSX_CSI_ADDON_VERSIONS, LustreModelCache
from gpufleet.components.model_cache import EFS_CSI_ADDON, EFS_CSI_ADDON_VERSIONS, ModelCache
from gpufleet.components.s3_model_cache import S3_CSI_ADDON, S3_CSI_ADDON_VERSIONS, WRITER_SUFFIX, S3ModelCache
from gpufleet.infra.areas.base import ConfigModel, DnsLabel, Platform
from gpufleet.infra.areas.workload_identity import workload_identity_args


class LustreConfig(ConfigModel):
    """FSx for Lustre settings (``backend: fsxLustre``)."""

    storage_capacity_gib: int = Field(1200, ge=1200, le=2_400_000)
    """1200 or a multiple of 2400 GiB. Default 1200."""
    throughput_per_tib: Literal[125, 250, 500, 1000] = 250
    """MB/s per TiB. Default 250."""
    s3_import_path: Optional[str] = Field(None, pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?$")
    """``s3://bucket/prefix`` imported automatically at ``/s3``. Default none."""

    @field_validator("storage_capacity_gib")
    @classmethod
    def _capacity(cls, value: int) -> int:
        if value != 1200 and value % 2400:
            raise ValueError("must be 1200 or a multiple of 2400 (FSx for Lustre PERSISTENT_2)")
        return value


class ModelCacheSection(ConfigModel):
    """``gpufleet:modelCache``: encrypted EFS (elastic throughput) through the EFS CSI add-on, FSx
    for Lustre through the FSx CSI add-on, or an S3 bucket through the Mountpoint for Amazon S3 CSI
    add-on."""

    enabled: bool = False
    """Create the file system, the CSI add-on and the claims. Default false."""
    backend: Literal["efs", "fsxLustre", "s3"] = "efs"
    """``efs`` (elastic, multi-AZ, pay per use), ``fsxLustre`` (single-AZ, provisioned, much faster
    loads of very large models) or ``s3`` (an encrypted bucket mounted read-only through Mountpoint,
    plus a ``<claimName>-writer`` claim for uploads; no renames or in-place changes, so no weights
    loader Jobs and no read-write Ray mounts). Default ``efs``."""
    lustre: LustreConfig = LustreConfig()
    """Settings of the ``fsxLustre`` backend."""
    teams: Optional[tuple[DnsLabel, ...]] = None
    """Teams whose namespace gets a claim. Default every team in ``gpufleet:teams``."""
    claim_name: DnsLabel = "model-weights"
    """Name of the claim in each namespace. Default ``model-weights``."""
    claim_size_gib: int = Field(500, ge=1, le=1_000_000)
    """``efs`` and ``s3``: size each claim requests (elastic storage: counts against the team's
    storage quota; ``s3`` has two claims per team). Default 500. (``fsxLustre`` claims request the
    file system's capacity.)"""
    throughput_mode: Literal["elastic", "bursting"] = "elastic"
    """``efs`` throughput mode. Default ``elastic`` (many replicas loading weights at once)."""
    kms_key_arn: Optional[str] = None
    """Customer managed KMS key for encryption at rest. Default the AWS managed EFS key (``s3``:
    SSE-S3)."""
    addon_version: Optional[str] = Field(None, pattern=r"^v[0-9]+\.[0-9]+\.[0-9]+-eksbuild\.[0-9]+$")
    """CSI add-on version, e.g. ``v3.5.0-eksbuild.1``. Default: the version gpufleet pins for
    ``gpufleet:kubernetesVersion`` (``EFS_CSI_ADDON_VERSIONS`` / ``FSX_CSI_ADDON_VERSIONS`` /
    ``S3_CSI_ADDON_VERSIONS``)."""

    @field_validator("kms_key_arn")
    @classmethod
    def _kms(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not re.fullmatch(r"arn:aws[-a-z]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[A-Za-z0-9_/-]{1,256}", value):
            raise ValueError("must be a KMS key or alias ARN")
        return value

    def covered_teams(self, config: Any) -> list[str]:
        """Names of the teams that get a claim."""
        if not self.enabled:
            return []
        if self.teams is None:
            return [team.name for team in config.teams]
        return list(self.teams)


def addon_versions(backend: str) -> tuple[str, Any]:
    """The CSI add-on of a backend and gpufleet's pinned versions of it per Kubernetes version."""
    if backend == "s3":
        return S3_CSI_ADDON, S3_CSI_ADDON_VERSIONS
    return (FSX_CSI_ADDON, FSX_CSI_ADDON_VERSIONS) if backend == "fsxLustre" else (EFS_CSI_ADDON, EFS_CSI_ADDON_VERSIONS)


def cross_check(config) -> list[str]:
    """Every team named in ``modelCache.teams`` exists; the CSI add-on version is pinned for the
    cluster's Kubernetes version (or set)."""
    section = config.model_cache
    problems = []
    addon, pinned = addon_versions(section.backend)
    if section.enabled and section.addon_version is None and config.kubernetes_version not in pinned:
        problems.append(f"gpufleet:modelCache.addonVersion: gpufleet pins no {addon} add-on version for Kubernetes "
                        f"{config.kubernetes_version} (pinned for {', '.join(pinned)}); set one")
    problems += _s3_problems(config)
    if section.teams is None:
        return problems
    known = [team.name for team in config.teams]
    for index, team in enumerate(section.teams):
        if team not in known:
            problems.append(
                f"gpufleet:modelCache.teams[{index}]: {team!r} is not a team "
                f"(gpufleet:teams names: {', '.join(known) or 'none'})"
            )
    if len(set(section.teams)) != len(section.teams):
        problems.append("gpufleet:modelCache.teams: a team is listed twice")
    return problems


def _s3_problems(config: Any) -> list[str]:
    """What cannot work on the ``s3`` backend: Mountpoint reads, and writes new files sequentially,
    but cannot rename or change files in place, and the predictors' claim is read-only."""
    section = config.model_cache
    if not section.enabled or section.backend != "s3":
        return []
    problems = []
    if len(section.claim_name) + len(WRITER_SUFFIX) > 63:
        problems.append(f"gpufleet:modelCache.claimName: at most {63 - len(WRITER_SUFFIX)} characters with backend s3 "
                        f"(the writer claim is <claimName>{WRITER_SUFFIX})")
    if "lustre" in section.model_fields_set or "throughput_mode" in section.model_fields_set:
        problems.append("gpufleet:modelCache: lustre and throughputMode do not apply to backend s3")
    covered = set(section.covered_teams(config))
    for team in config.teams:
        if team.name in covered and 2 * section.claim_size_gib > team.storage_gib:
            problems.append(
                f"gpufleet:modelCache.claimSizeGib: backend s3 puts two claims of {section.claim_size_gib} GiB (reader "
                f"and writer) in namespace {team.name!r}, more than its storage quota (gpufleet:teams storageGib "
                f"{team.storage_gib}); the namespace's ResourceQuota would refuse the writer claim")
    for index, service in enumerate(config.serving.inference_services):
        if service.team not in covered:
            continue
        variants = [("", service)] + ([("canary.", service.canary)] if service.canary is not None else [])
        for prefix, variant in variants:
            if variant.weights_source is not None and variant.storage.startswith("pvc://"):
                problems.append(
                    f"gpufleet:serving.inferenceServices[{index}].{prefix}weightsSource: the weights loader Job "
                    "downloads with `hf download`, which writes temporary files and renames them, and Mountpoint for "
                    "S3 (gpufleet:modelCache.backend s3) cannot rename; upload the weights to the bucket (aws s3 sync, "
                    f"or a Job writing files once into the {section.claim_name}{WRITER_SUFFIX} claim) and set "
                    f"{prefix}preloaded: true")
    for kind in ("clusters", "services", "jobs"):
        for index, workload in enumerate(getattr(config.ray, kind, ()) if config.ray.enabled else ()):
            if workload.team in covered and workload.weights is not False:
                problems.append(
                    f"gpufleet:ray.{kind}[{index}].weights: Ray workers mount the model cache read-write, and the s3 "
                    f"backend's claim is ReadOnlyMany (Mountpoint cannot modify files); set weights: false, or use "
                    f"backend efs or fsxLustre")
    return problems


def compose(platform: Platform) -> None:
    """The ModelCache, with a claim in each covered team's namespace (after the namespace exists)."""
    config = platform.config
    section = config.model_cache
    if not section.enabled:
        return
    teams = section.covered_teams(config)
    subnets = platform.network.private_subnet_ids
    common = {
        "cluster_name": platform.cluster.cluster_name,
        "vpc_id": platform.network.vpc_id,
        "namespaces": teams,
        "wait_for": [platform.namespaces[team] for team in teams if team in platform.namespaces],
        "claim_name": section.claim_name,
        **({"kms_key_arn": section.kms_key_arn} if section.kms_key_arn else {}),
        "kubernetes_version": platform.config.kubernetes_version,
        **({"addon_version": section.addon_version} if section.addon_version else {}),
    }
    cache: ModelCache | LustreModelCache | S3ModelCache
    if section.backend == "s3":
        cache = S3ModelCache(
            "model-cache",
            {
                **{k: v for k, v in common.items() if k != "vpc_id"},
                **workload_identity_args(platform),
                "claim_size": f"{section.claim_size_gib}Gi",
            },
            opts=platform.opts,
        )
    elif section.backend == "fsxLustre":
        lustre = section.lustre
        cache = LustreModelCache(
            "model-cache",
            {
                **common,
                # Single-AZ file servers in the first private subnet.
                "subnet_id": subnets.apply(lambda ids: ids[0]),
                "client_cidrs": [config.network.cidr],
                "storage_capacity_gib": lustre.storage_capacity_gib,
                "throughput_per_tib": lustre.throughput_per_tib,
                **({"s3_import_path": lustre.s3_import_path} if lustre.s3_import_path else {}),
            },
            opts=platform.opts,
        )
    else:
        cache = ModelCache(
            "model-cache",
            {
                **common,
                **workload_identity_args(platform),
                # One mount target per AZ: the Network has one private subnet in each.
                "subnet_ids": [subnets.apply(lambda ids, i=i: ids[i]) for i in range(config.network.az_count)],
                "nfs_client_cidrs": [config.network.cidr],
                "claim_size": f"{section.claim_size_gib}Gi",
                "throughput_mode": section.throughput_mode,
            },
            opts=platform.opts,
        )
    platform.components["model-cache"] = cache
    for team in teams:
        platform.model_caches[team] = cache.claim_name
