"""Pod hygiene for GPU workloads: the pieces of a pod spec every serving or training pod needs.

Plain functions that return camelCase Kubernetes dicts (no Pulumi resources), built from a pool's
:class:`~gpufleet.components.gpu_scheduling.GpuPlacement`, so InferenceService, RayCluster and any
other workload component generate the production checklist instead of asking users to write it:

- GPU requests equal limits, whole units of the pool's resource name (:func:`gpu_resources`);
- tolerations and node selection of the pool (:func:`gpu_scheduling`);
- a memory-backed ``/dev/shm`` (:func:`shm_volume`): NCCL and PyTorch dataloaders outgrow the 64 MiB
  container default;
- restricted security contexts (:func:`pod_security_context`, :func:`container_security_context`);
- spreading replicas over nodes where that costs no extra node (:func:`replica_spread`:
  hostname anti-affinity on whole-GPU pools, none on pools that share GPUs);
- a PodDisruptionBudget that keeps nodes drainable (:func:`disruption_budget`);
- a startup/readiness/liveness probe budget from the expected model load time (:func:`probes`);
- the priority class of the workload's role (:func:`priority_class_name`).

Errors are ``ValueError`` naming the argument, prefixed by the caller's component type (``name``).
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, Optional

from gpufleet.components import gpu_claims
from gpufleet.components.gpu_scheduling import PRIORITY_CLASSES, GpuPlacement

HOSTNAME_TOPOLOGY_KEY = "kubernetes.io/hostname"
SHM_VOLUME_NAME = "dshm"
SHM_MOUNT_PATH = "/dev/shm"
DEFAULT_USER_ID = 1000
"""UID/GID of the non-root user pods run as (vLLM and Ray images work as any UID with a writable HOME)."""

PROBE_PERIOD_SECONDS = 10
"""Period of the startup and readiness probes."""
LOAD_TIME_FACTOR = 2
"""The startup probe waits at least this multiple of the expected load time (seeds: "at least 2x")."""

_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_BINARY_SUFFIX = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20,
                  "Gi": 2**30, "Ti": 2**40, "P": 10**15, "Pi": 2**50, "E": 10**18, "Ei": 2**60}


def check_quantity(value: Any, field: str, *, name: str) -> str:
    """``value`` if it is a Kubernetes quantity string like ``"8"``, ``"500m"`` or ``"32Gi"``."""
    if not isinstance(value, str) or not _QUANTITY.match(value):
        raise ValueError(f"{name}: {field} must be a Kubernetes quantity like '8', '500m' or '32Gi', got {value!r}")
    return value


def quantity_bytes(value: str) -> float:
    """Bytes of a memory quantity (``"16Gi"`` → 17179869184)."""
    match = re.match(r"^([0-9.]+)([A-Za-z]*)$", value)
    if not match or match.group(2) not in _BINARY_SUFFIX:
        raise ValueError(f"{value!r} is not a memory quantity")
    return float(match.group(1)) * _BINARY_SUFFIX[match.group(2)]


def check_gpus(placement: GpuPlacement, gpus: Any, field: str = "gpus", *, name: str) -> int:
    """``gpus`` if it is a positive integer that one node of the pool can hold."""
    if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 1:
        raise ValueError(f"{name}: {field} must be a positive integer, got {gpus!r}")
    ceiling = placement.max_resources_per_node
    if gpus > ceiling:
        raise ValueError(
            f"{name}: {field} ({gpus}) exceeds what one node of pool {placement.pool!r} offers "
            f"({ceiling} × {placement.gpu_resource}, placement.max_resources_per_node)"
        )
    return gpus


def gpu_resources(placement: GpuPlacement, gpus: int, cpu: str, memory: str, *, name: str,
                  field: str = "") -> dict[str, dict[str, Any]]:
    """Container ``resources``: requests equal limits for GPU, CPU and memory (Guaranteed QoS, so
    the kubelet evicts the pod last under node pressure). GPUs are whole units of
    ``placement.gpu_resource`` (extended resources cannot be overcommitted or fractional); on a DRA
    pool the container names the pod's GPU claim instead (``claims: [{name: gpus}]``, see
    :mod:`~gpufleet.components.gpu_claims`), whose template asks for ``gpus`` devices.
    ``field`` prefixes the argument names in errors (e.g. ``"canary."``)."""
    check_gpus(placement, gpus, f"{field}gpus", name=name)
    check_quantity(cpu, f"{field}cpu", name=name)
    check_quantity(memory, f"{field}memory", name=name)
    if placement.dra:
        # DRA pool: the GPUs come from the pod's claim (gpu_claims), not from an extended resource.
        amounts: dict[str, Any] = {"cpu": cpu, "memory": memory}
        return {"requests": dict(amounts), "limits": dict(amounts), "claims": gpu_claims.container_claims()}
    amounts = {"cpu": cpu, "memory": memory, placement.gpu_resource: gpus}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def tolerations(placement: GpuPlacement) -> list[dict[str, str]]:
    """Tolerations of the pool's taints."""
    return placement.tolerations()


def node_selector(placement: GpuPlacement) -> dict[str, str]:
    """Node selector pinning the pod to the pool."""
    return placement.node_selector()


def gpu_scheduling(placement: GpuPlacement) -> dict[str, Any]:
    """Pod-spec fragment ``{"tolerations": ..., "nodeSelector": ...}`` for the pool."""
    return {"tolerations": tolerations(placement), "nodeSelector": node_selector(placement)}


def shm_volume(size: str, *, name: str, field: str = "shm_size") -> tuple[dict[str, Any], dict[str, Any]]:
    """``(volume, volumeMount)`` of a memory-backed ``/dev/shm`` capped at ``size``. Its pages count
    against the container's memory limit, so callers check ``size`` against ``memory``
    (:func:`check_shm_fits`)."""
    check_quantity(size, field, name=name)
    volume = {"name": SHM_VOLUME_NAME, "emptyDir": {"medium": "Memory", "sizeLimit": size}}
    mount = {"name": SHM_VOLUME_NAME, "mountPath": SHM_MOUNT_PATH}
    return volume, mount


def check_shm_fits(shm_size: str, memory: str, *, name: str, field: str = "") -> None:
    """Refuse a ``/dev/shm`` as large as the memory limit: the model server would have no memory left."""
    if quantity_bytes(shm_size) >= quantity_bytes(memory):
        raise ValueError(f"{name}: {field}shm_size ({shm_size}) must be below {field}memory ({memory}): "
                         f"/dev/shm pages count against the memory limit")


def pod_security_context(user_id: int = DEFAULT_USER_ID) -> dict[str, Any]:
    """Pod ``securityContext`` meeting the ``restricted`` Pod Security Standard: non-root UID/GID,
    ``fsGroup`` so mounted volumes (weights PVC) are group-readable, RuntimeDefault seccomp."""
    return {
        "runAsNonRoot": True,
        "runAsUser": user_id,
        "runAsGroup": user_id,
        "fsGroup": user_id,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(user_id: int = DEFAULT_USER_ID) -> dict[str, Any]:
    """Container ``securityContext`` meeting the ``restricted`` standard: non-root, no privilege
    escalation, every Linux capability dropped, RuntimeDefault seccomp. (The root filesystem stays
    writable: model servers write caches under ``$HOME``.)"""
    return {
        "runAsNonRoot": True,
        "runAsUser": user_id,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def hostname_anti_affinity(match_labels: Mapping[str, str], *, required: bool = False) -> dict[str, Any]:
    """``affinity`` spreading pods with ``match_labels`` over nodes (``kubernetes.io/hostname``).

    Preferred by default: the scheduler (and Karpenter, which provisions for preferred terms first
    and relaxes them only when they cannot be met) spreads replicas over nodes, yet a replacement
    replica still starts when the pool has no free node, e.g. on time-sliced or MIG pools where one
    node holds several replicas, or when the pool's ``limits`` are reached. ``required=True`` makes a
    second replica on the same node impossible (strict HA at the price of a Pending pod)."""
    term = {"labelSelector": {"matchLabels": dict(match_labels)}, "topologyKey": HOSTNAME_TOPOLOGY_KEY}
    if required:
        return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": term}]}}


def replica_spread(placement: GpuPlacement, match_labels: Mapping[str, str], mode: Optional[str], *,
                   name: str, field: str = "anti_affinity") -> dict[str, Any]:
    """Pod-spec fragment spreading the replicas selected by ``match_labels`` over the nodes of
    ``placement`` (``{}`` when nothing is added).

    - Whole-GPU pools: hostname anti-affinity (:func:`hostname_anti_affinity`), ``preferred`` unless
      ``mode`` is ``required``; a replica takes whole GPUs, so a second one usually needs a second
      node anyway.
    - Pools that share GPUs (MIG slices, time-slicing): nothing. One node there offers many units
      (a p4de/p5 cut into ``1g.10gb`` slices: 56), and Karpenter treats every preference (preferred
      anti-affinity, and ``ScheduleAnyway`` topology spread constraints too: its default
      ``preferencePolicy: Respect``, karpenter-provider-aws v1.14.1 ``charts/karpenter/values.yaml``
      ``settings.preferencePolicy``) as required while it can still add a node: two small replicas
      would each get their own 8-GPU node. ``mode`` set explicitly on such a pool is refused with
      that explanation; replicas there share nodes, and their PodDisruptionBudget keeps one serving
      while a node drains.
    """
    shared = placement.sharing != "none"
    if mode is not None and mode not in ("preferred", "required"):
        raise ValueError(f"{name}: {field} must be one of 'preferred', 'required', got {mode!r}")
    if shared:
        if mode is not None:
            per_node = placement.max_resources_per_node
            raise ValueError(
                f"{name}: {field} ({mode!r}) is refused on {placement.sharing} pool {placement.pool!r}: one node "
                f"offers up to {per_node} {placement.gpu_resource} units, and Karpenter treats preferred "
                f"anti-affinity (and ScheduleAnyway topology spread) as required while it can launch nodes, so "
                f"every replica would get its own {placement.max_gpus_per_node}-GPU node; leave {field} unset "
                f"(replicas share the pool's nodes, their PodDisruptionBudget keeps one serving during drains) or "
                f"use a whole-GPU pool to spread replicas over nodes")
        return {}
    return {"affinity": hostname_anti_affinity(match_labels, required=mode == "required")}


def disruption_budget(replicas: int, selector: Mapping[str, str], budget: Optional[Mapping[str, Any]] = None, *,
                      name: str, field: str = "disruption_budget",
                      replicas_field: str = "min_replicas") -> dict[str, Any]:
    """PodDisruptionBudget ``spec`` for pods selected by ``selector`` that run at least ``replicas``.

    Default ``maxUnavailable: 1``: a drain, consolidation, expiry or drift evicts one pod at a time
    and waits for its replacement, also with a single replica (which then restarts elsewhere). A
    ``budget`` (``min_available`` or ``max_unavailable``, whole pods) that allows no disruption at
    ``replicas`` is refused: such a PDB blocks every node drain, and Karpenter can neither
    consolidate, expire nor replace drifted nodes running these pods (until the NodePool's
    ``terminationGracePeriod`` forces them out). Unready pods may always be evicted
    (``unhealthyPodEvictionPolicy: AlwaysAllow``), so a crash-looping pod never blocks a drain."""
    chosen: dict[str, Any] = {"maxUnavailable": 1}
    if budget is not None:
        if not isinstance(budget, Mapping):
            raise TypeError(f"{name}: {field} must be a mapping")
        unknown = set(budget) - {"min_available", "max_unavailable"}
        given = {key: value for key, value in budget.items() if value is not None}
        if unknown or len(given) != 1:
            raise ValueError(f"{name}: {field} must set exactly one of min_available, max_unavailable, "
                             f"got {dict(budget)!r}")
        (key, value), = given.items()
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}: {field}.{key} must be a whole number of pods, got {value!r}")
        allowed = replicas - value if key == "min_available" else value
        if allowed < 1:
            raise ValueError(
                f"{name}: {field}.{key} ({value}) allows no voluntary disruption at {replicas_field} ({replicas}): "
                f"the PodDisruptionBudget would block every node drain, and Karpenter could not consolidate, "
                f"expire or replace drifted nodes running these pods; use max_unavailable: 1 or more replicas")
        chosen = {"minAvailable": value} if key == "min_available" else {"maxUnavailable": value}
    return {**chosen, "selector": {"matchLabels": dict(selector)}, "unhealthyPodEvictionPolicy": "AlwaysAllow"}


def probes(load_seconds: int, port: int, *, ready_path: str = "/health", live_path: Optional[str] = None,
           name: str, field: str = "load_seconds", tcp: bool = False) -> dict[str, dict[str, Any]]:
    """``startupProbe``, ``readinessProbe`` and ``livenessProbe`` for a server that needs about
    ``load_seconds`` to load its model.

    The startup probe holds the other two off until the model is loaded and allows
    ``failureThreshold × periodSeconds ≥ 2 × load_seconds`` (the seeds' rule; killing a pod mid-load
    crash-loops it and burns GPU hours). Readiness then takes the pod in and out of the Service
    quickly; liveness is distinct and lenient (longer period and timeout, more failures) so a server
    busy with a long batch is not restarted, only a hung one. ``tcp=True`` probes that ``port``
    accepts connections instead (processes without an HTTP health endpoint, e.g. a Ray worker's
    raylet); the paths are then unused."""
    if not isinstance(load_seconds, int) or isinstance(load_seconds, bool) or load_seconds < 1:
        raise ValueError(f"{name}: {field} must be a positive integer (seconds), got {load_seconds!r}")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ValueError(f"{name}: port must be an integer from 1 to 65535, got {port!r}")

    def http(path: str) -> dict[str, Any]:
        return {"path": path, "port": port, "scheme": "HTTP"}

    def handler(path: str) -> dict[str, Any]:
        return {"tcpSocket": {"port": port}} if tcp else {"httpGet": http(path)}

    startup_failures = math.ceil(LOAD_TIME_FACTOR * load_seconds / PROBE_PERIOD_SECONDS)
    return {
        "startupProbe": {
            **handler(ready_path),
            "periodSeconds": PROBE_PERIOD_SECONDS,
            "timeoutSeconds": 5,
            "failureThreshold": max(startup_failures, 1),
            "successThreshold": 1,
        },
        "readinessProbe": {
            **handler(ready_path),
            "periodSeconds": PROBE_PERIOD_SECONDS,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
            "successThreshold": 1,
        },
        "livenessProbe": {
            **handler(live_path or ready_path),
            "periodSeconds": 30,
            "timeoutSeconds": 10,
            "failureThreshold": 5,
            "successThreshold": 1,
        },
    }


def priority_class_name(role: str = "inference") -> str:
    """The PriorityClass of a workload role (``inference``, ``training``, ``batch``)."""
    if role not in PRIORITY_CLASSES:
        raise ValueError(f"role must be one of {', '.join(map(repr, PRIORITY_CLASSES))}, got {role!r}")
    return PRIORITY_CLASSES[role]
