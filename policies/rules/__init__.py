"""gpufleet policy rules: one rule a module.

``RULES`` lists every rule, workload rules first, then cluster and cloud rules. Each module defines
one ``RULE``; shared helpers live in the underscore modules.
"""

from __future__ import annotations

from gpufleet.policies.core import Rule
from gpufleet.policies.rules import (
    aws_imdsv2_required,
    container_non_root,
    eks_control_plane_logging,
    eks_endpoint_private,
    eks_secrets_encrypted,
    gpu_dcgm_exporter_present,
    gpu_hpa_stabilization,
    gpu_model_weights_pvc,
    gpu_namespace_quota,
    gpu_no_mps_in_production,
    gpu_no_time_slicing_in_production,
    gpu_nodepool_taint_and_limits,
    gpu_pdb_required,
    gpu_probes_distinct,
    gpu_probes_generous,
    gpu_replicas_anti_affinity,
    gpu_requests_equal_limits,
    gpu_shm_volume,
    gpu_toleration_required,
    gpu_workload_schedulable,
    gpufleet_ignore_reason,
    image_pinned,
)

RULES: tuple[Rule, ...] = (
    gpu_requests_equal_limits.RULE,
    gpu_toleration_required.RULE,
    gpu_replicas_anti_affinity.RULE,
    gpu_shm_volume.RULE,
    gpu_model_weights_pvc.RULE,
    gpu_probes_generous.RULE,
    gpu_probes_distinct.RULE,
    gpu_hpa_stabilization.RULE,
    gpu_pdb_required.RULE,
    aws_imdsv2_required.RULE,
    container_non_root.RULE,
    image_pinned.RULE,
    gpu_namespace_quota.RULE,
    gpu_dcgm_exporter_present.RULE,
    gpu_nodepool_taint_and_limits.RULE,
    gpu_no_time_slicing_in_production.RULE,
    gpu_no_mps_in_production.RULE,
    gpu_workload_schedulable.RULE,
    eks_endpoint_private.RULE,
    eks_secrets_encrypted.RULE,
    eks_control_plane_logging.RULE,
    gpufleet_ignore_reason.RULE,
)

RULES_BY_NAME: dict[str, Rule] = {rule.name: rule for rule in RULES}
