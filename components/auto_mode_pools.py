"""Checks of :class:`~gpufleet.components.gpu_node_pool.GpuNodePoolArgs` for a pool on EKS Auto Mode
(``auto_mode``), run by :func:`~gpufleet.components.gpu_node_pool.pool_spec` next to the checks every
pool gets (:mod:`gpufleet.components._pool_args`). Each raises
:class:`~gpufleet.components._pool_args.PoolArgumentError` naming the field and why Auto Mode cannot
do it; the facts are :mod:`gpufleet.components.auto_mode`'s.
"""

from __future__ import annotations

from typing import Any, Mapping

from gpufleet.components import auto_mode as auto
from gpufleet.components._pool_args import CheckedSharing, PoolArgumentError, expire_after as _expire_after

SELF_MANAGED_ONLY = {
    "ami_family": "EKS Auto Mode picks and patches the AMI of its nodes itself (a NodeClass has no AMI selector)",
    "ami_version": "EKS Auto Mode picks and patches the AMI of its nodes itself (a NodeClass has no AMI selector)",
}
"""Pool arguments that configure a Karpenter ``EC2NodeClass`` and have no Auto Mode equivalent."""


def check_args(name: str, args: Mapping[str, Any]) -> None:
    """The pool's name and the arguments only self-managed Karpenter has."""
    if name in auto.RESERVED_POOL_NAMES:
        why = ("gpufleet's system NodePool and NodeClass on Auto Mode" if name == auto.SYSTEM_POOL
               else "the name of Auto Mode's built-in NodeClass, which a custom NodeClass must not take")
        raise PoolArgumentError("name", f"{name!r} is {why}: choose another pool name")
    for key, why in SELF_MANAGED_ONLY.items():
        if args.get(key) is not None:
            raise PoolArgumentError(key, f"is set, but {why}; remove it on an Auto Mode cluster")
    if args.get("allocation") == "dra":
        # EKS User Guide, auto-change.adoc: "DRA is not currently supported by EKS Auto Mode".
        raise PoolArgumentError("allocation", (
            "is 'dra', but EKS Auto Mode does not support Dynamic Resource Allocation: its nodes run AWS's own "
            "NVIDIA device plugin, which gpufleet cannot turn off for the DRA driver, so the pool's GPUs would be "
            "advertised twice; use allocation 'devicePlugin' on Auto Mode, or a self-managed Karpenter cluster "
            "(autoMode false) for DRA pools"))
    labels = args.get("labels") or {}
    if isinstance(labels, Mapping):
        for key in labels:
            prefix = str(key).rpartition("/")[0].lower()
            if prefix == auto.NODE_CLASS_GROUP or prefix.endswith("." + auto.NODE_CLASS_GROUP):
                raise PoolArgumentError(f"labels[{key!r}]", f"is in the {auto.NODE_CLASS_GROUP} domain, whose labels "
                                                            "EKS Auto Mode sets on its nodes itself")


def check_sharing(sharing: CheckedSharing) -> None:
    """Whole GPUs only: Auto Mode's AMIs run AWS's NVIDIA device plugin (not visible as a DaemonSet, not
    configurable), so neither the GPU Operator's device plugin (time-slicing, MPS) nor its MIG manager
    can run there."""
    if sharing.mode != "none":
        raise PoolArgumentError("sharing.mode", (
            f"is {sharing.mode!r}, but EKS Auto Mode nodes run AWS's own NVIDIA device plugin, which gpufleet "
            "cannot configure: time-slicing and MPS (the GPU Operator's device plugin) and MIG (its MIG manager) "
            "would not take effect, and the pods asking for nvidia.com/gpu.shared or MIG slices would stay "
            "Pending; use whole GPUs (mode none) on Auto Mode, or a self-managed Karpenter cluster for sharing"))


def expire_after(value: object) -> str:
    """``expire_after``: a checked duration within Auto Mode's 21-day node lifetime."""
    checked = _expire_after(value)
    problem = auto.expire_after_problem(checked)
    if problem:
        raise PoolArgumentError("expire_after", problem)
    return checked


def check_tags(tags: Mapping[str, str]) -> None:
    for key in tags:
        problem = auto.tag_problem(key)
        if problem:
            raise PoolArgumentError(f"tags[{key!r}]", problem)


def ephemeral_storage(volume: Mapping[str, Any]) -> dict[str, Any]:
    """The NodeClass ``ephemeralStorage`` of a ``root_volume`` already checked by
    :func:`~gpufleet.components._pool_args.block_devices` (whose gp3 ranges, IOPS 3000-16000 and
    throughput 125-1000 MiB/s, are Auto Mode's)."""
    return auto.ephemeral_storage(int(volume.get("size_gib", 200)), int(volume.get("iops", 6000)),
                                  int(volume.get("throughput_mibps", 500)))
