"""``GpuOperator``: NVIDIA's GPU Operator, configured from the GPU pools it serves.

Without the device plugin Kubernetes cannot schedule GPUs; without GPU Feature Discovery workloads
cannot select a GPU model; without the DCGM exporter nobody sees idle or overheating GPUs. The
operator's Helm values are derived from the pools' :class:`GpuPlacement` facts, never written by hand:

- which operands the nodes' AMI already ships (driver, container toolkit, device plugin): one table,
  :data:`AMI_SHIPS`;
- GPU sharing per pool: time-slicing or MPS through a device-plugin config entry the pool's nodes
  select with the ``nvidia.com/device-plugin.config`` label, MIG through mig-manager and the
  ``nvidia.com/mig.config`` label (``all-<profile>``, a layout of mig-manager's default config).

MPS (CUDA Multi-Process Service) sits between time-slicing and MIG: an MPS pool's entry has
``sharing.mps`` (k8s-device-plugin config ``v1``), so the device plugin advertises ``replicas`` ×
GPUs as ``nvidia.com/gpu.shared`` (``renameByDefault``, like time-slicing) and the operator starts the
device plugin's MPS control daemon on the pool's nodes, which runs the clients' kernels concurrently
and limits each client to 1/replicas of the GPU's memory and compute. Unlike MIG there is no fault
isolation: a fatal GPU fault in one client ends every client on that GPU. The daemon's pipe and shm
directory on the host is ``devicePlugin.mps.root`` (set explicitly when a pool uses MPS). In
production an MPS pool must say ``acknowledge_no_isolation``; the ConfigMap names the acknowledged
entries in :data:`MPS_ACKNOWLEDGED_ANNOTATION`, which the ``gpu-no-mps-in-production`` policy reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, TypedDict

import pulumi
import pulumi_kubernetes as k8s
import yaml
from typing_extensions import NotRequired

from gpufleet.components._k8s import deep_merge
from gpufleet.components._validate import check_arg_keys, require_one_of
from gpufleet.components.gpu_monitoring import GPU_TOLERATION, dcgm_service_monitor
from gpufleet.components.gpu_scheduling import (
    GPU_RESOURCE,
    MIG_PROFILES,
    MPS_MAX_REPLICAS,
    SYSTEM_NODE_SELECTOR,
    AmiFamily,
    GpuPlacement,
    MigStrategy,
    pools_tolerations,
)

TYPE = "gpufleet:nvidia:GpuOperator"

CHART = "gpu-operator"
CHART_VERSION = "v26.7.0"
REPOSITORY = "https://helm.ngc.nvidia.com/nvidia"
RELEASE_NAME = "gpu-operator"
DEVICE_PLUGIN_CONFIG_MAP = "gpufleet-device-plugin-config"
MPS_ROOT = "/run/nvidia/mps"
"""Host directory of the MPS control daemon's pipes and shared memory (chart value ``devicePlugin.mps.root``)."""
MPS_ACKNOWLEDGED_ANNOTATION = "gpufleet.io/mps-no-isolation-acknowledged"
"""Annotation of the device plugin ConfigMap: comma-separated MPS entries whose pools acknowledged
that MPS clients share faults (``sharing.acknowledge_no_isolation``)."""
DEFAULT_DEVICE_PLUGIN_CONFIG = "default"
"""Entry of the device-plugin config for nodes without a ``nvidia.com/device-plugin.config`` label."""

MIG_MANAGER_DEFAULT_CONFIGS = frozenset({
    "all-disabled", "all-enabled", "all-balanced",
    # A100 40GB
    "all-1g.5gb", "all-2g.10gb", "all-3g.20gb", "all-4g.20gb", "all-7g.40gb",
    # A100 80GB, H100 80GB (``all-1g.10gb`` also cuts an A100 40GB into four 1g.10gb)
    "all-1g.10gb", "all-1g.20gb", "all-2g.20gb", "all-3g.40gb", "all-4g.40gb", "all-7g.80gb",
    # H200 141GB
    "all-1g.18gb", "all-1g.35gb", "all-2g.35gb", "all-3g.71gb", "all-4g.71gb", "all-7g.141gb",
})
"""Layouts of mig-manager's default config (the operator's ``default-mig-parted-config``) for the GPUs
of :data:`gpu_instances.FAMILIES`: a pool's ``nvidia.com/mig.config: all-<profile>`` label must name one."""

DCGM_EXPORTER_SELECTOR = {"app": "nvidia-dcgm-exporter"}
"""Labels of the operator's DCGM exporter Service (port ``gpu-metrics``)."""
DCGM_EXPORTER_PORT = "gpu-metrics"


@dataclass(frozen=True)
class AmiShips:
    """What an EKS GPU AMI family already installs on its nodes."""

    driver: bool
    toolkit: bool
    device_plugin: bool


AMI_SHIPS: Mapping[AmiFamily, AmiShips] = {
    # EKS-optimized AL2023 NVIDIA AMI: driver and NVIDIA container toolkit, no device plugin.
    "al2023": AmiShips(driver=True, toolkit=True, device_plugin=False),
    # Bottlerocket NVIDIA variants: driver, toolkit and the NVIDIA device plugin (kubelet-device-plugins).
    "bottlerocket": AmiShips(driver=True, toolkit=True, device_plugin=True),
    # EKS Auto Mode's AMIs: the NVIDIA driver and the NVIDIA device plugin (not a DaemonSet), so the
    # operator runs GPU Feature Discovery and the DCGM exporter only.
    "eks-auto-mode": AmiShips(driver=True, toolkit=True, device_plugin=True),
}
"""The one table deciding which GPU Operator operands run: those the AMI does not ship.
Source: Amazon EKS User Guide, "Amazon EKS optimized accelerated AMIs"; Bottlerocket
"NVIDIA GPU support" (``aws-k8s-*-nvidia`` variants); EKS Auto Mode, "Deploy an accelerated workload"
(``auto-accelerated.adoc``: Auto Mode includes the NVIDIA drivers and the NVIDIA device plugin)."""


def operand_switches(ami_families: Sequence[AmiFamily]) -> dict[str, bool]:
    """``driver``/``toolkit``/``devicePlugin`` ``enabled`` values for pools booting ``ami_families``.

    The chart's switches are cluster-wide, so every family must agree: a mixed fleet would either run
    a second device plugin next to the AMI's or leave some nodes without one.
    """
    if not ami_families:
        raise ValueError("no AMI family given")
    wanted = {family: _switches(family) for family in ami_families}
    first, *rest = ami_families
    for family in rest:
        if wanted[family] != wanted[first]:
            raise ValueError(
                f"AMI families {first} and {family} need different GPU Operator operands "
                f"({wanted[first]} vs {wanted[family]}); the chart's switches are cluster-wide"
            )
    return wanted[first]


def _switches(family: AmiFamily) -> dict[str, bool]:
    ships = AMI_SHIPS[family]
    return {"driver": not ships.driver, "toolkit": not ships.toolkit, "devicePlugin": not ships.device_plugin}


class GpuOperatorArgs(TypedDict):
    """Inputs of :class:`GpuOperator`."""

    placements: Sequence[GpuPlacement]
    """The GPU pools the operator serves (AMI family, sharing, MIG profile each). Required, at least one."""
    namespace: NotRequired[str]
    """Namespace created for the operator and its operands. Default ``gpu-operator``."""
    chart_version: NotRequired[str]
    """``gpu-operator`` chart version. Default ``v26.7.0``."""
    mig_strategy: NotRequired[MigStrategy]
    """How MIG slices are advertised, cluster-wide: ``mixed`` (``nvidia.com/mig-<profile>``) or
    ``single`` (``nvidia.com/gpu``). Every MIG placement's ``mig_strategy`` must match. Default ``mixed``."""
    dcgm_exporter: NotRequired[bool]
    """Run the DCGM exporter on every GPU node. Default true."""
    service_monitor: NotRequired[bool]
    """Render a ServiceMonitor for the DCGM exporter (needs the Prometheus Operator CRDs). Default true."""
    service_monitor_labels: NotRequired[Mapping[str, str]]
    """Labels on that ServiceMonitor (match your Prometheus' ``serviceMonitorSelector``). Default none."""
    scrape_interval: NotRequired[str]
    """Prometheus scrape interval of the DCGM exporter. Default ``15s``."""
    production: NotRequired[bool]
    """The cluster serves production: an MPS placement must then have ``no_isolation_acknowledged``
    (MPS clients share GPU faults). Default false."""
    extra_values: NotRequired[Mapping[str, Any]]
    """Escape hatch: Helm values deep-merged over gpufleet's (they win). Default none."""


class GpuOperator(pulumi.ComponentResource):
    """The NVIDIA GPU Operator (Helm) in its own namespace: device plugin where the AMI lacks one,
    GPU Feature Discovery, time-slicing, MPS or MIG per pool, and the DCGM exporter with a ServiceMonitor.
    The operator runs on the system nodes; its operands tolerate the GPU taint."""

    namespace: pulumi.Output[str]
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: GpuOperatorArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, GpuOperatorArgs, name=TYPE)
        placements = _check_placements(args.get("placements"))
        production = args.get("production", False)
        if not isinstance(production, bool):
            raise ValueError(f"{TYPE}: production must be true or false, got {production!r}")
        for index, placement in enumerate(placements):
            if production and placement.sharing == "mps" and not placement.no_isolation_acknowledged:
                raise ValueError(
                    f"{TYPE}: placements[{index}] ({placement.pool}): MPS in production needs "
                    "no_isolation_acknowledged (sharing.acknowledge_no_isolation): MPS clients have no fault "
                    "isolation, so one pod's fatal GPU fault fails every pod sharing that GPU; use MIG to isolate"
                )
        mig_strategy = require_one_of(args.get("mig_strategy", "mixed"), "mig_strategy", ("single", "mixed"), name=TYPE)
        for index, placement in enumerate(placements):
            if placement.sharing == "mig" and placement.mig_strategy != mig_strategy:
                raise ValueError(
                    f"{TYPE}: placements[{index}].mig_strategy ({placement.mig_strategy}) differs from "
                    f"mig_strategy ({mig_strategy}); the strategy is cluster-wide"
                )
        namespace = args.get("namespace", "gpu-operator")
        chart_version = args.get("chart_version", CHART_VERSION)
        dcgm_exporter = args.get("dcgm_exporter", True)
        service_monitor = args.get("service_monitor", True)
        if service_monitor and not dcgm_exporter:
            raise ValueError(f"{TYPE}: service_monitor needs dcgm_exporter (there is nothing to scrape)")
        device_plugin_data = device_plugin_config(placements, mig_strategy)
        values = operator_values(
            placements,
            mig_strategy=mig_strategy,
            dcgm_exporter=dcgm_exporter,
            device_plugin_config_map=DEVICE_PLUGIN_CONFIG_MAP if device_plugin_data else None,
        )
        values = deep_merge(values, args.get("extra_values", {}))

        super().__init__(TYPE, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)

        ns = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": namespace,
                # The driver, toolkit and device plugin DaemonSets need host access.
                "labels": {"pod-security.kubernetes.io/enforce": "privileged"},
            },
            opts=child,
        )
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[ns])
        before_release: list[pulumi.Resource] = [ns]
        if device_plugin_data:
            metadata: dict[str, Any] = {"name": DEVICE_PLUGIN_CONFIG_MAP, "namespace": ns.metadata.name}
            acknowledged = sorted(p.device_plugin_config for p in placements
                                  if p.sharing == "mps" and p.no_isolation_acknowledged)
            if acknowledged:
                metadata["annotations"] = {MPS_ACKNOWLEDGED_ANNOTATION: ",".join(acknowledged)}
            before_release.append(k8s.core.v1.ConfigMap(
                f"{name}-device-plugin-config",
                metadata=metadata,
                data=device_plugin_data,
                opts=in_namespace,
            ))
        self.release = k8s.helm.v3.Release(
            f"{name}-chart",
            name=RELEASE_NAME,
            chart=CHART,
            version=chart_version,
            namespace=ns.metadata.name,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=REPOSITORY),
            values=values,
            opts=pulumi.ResourceOptions(parent=self, depends_on=before_release),
        )
        if service_monitor:
            dcgm_service_monitor(
                f"{name}-dcgm-exporter-monitor",
                namespace=ns.metadata.name,
                selector=DCGM_EXPORTER_SELECTOR,
                port=DCGM_EXPORTER_PORT,
                labels=args.get("service_monitor_labels", {}),
                interval=args.get("scrape_interval", "15s"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.release]),
            )

        self.namespace = ns.metadata.name
        self.register_outputs({"namespace": self.namespace})


def _check_placements(placements: Any) -> list[GpuPlacement]:
    if not placements:
        raise ValueError(f"{TYPE}: placements is required (at least one GPU pool)")
    checked = list(placements)
    seen: set[str] = set()
    for index, placement in enumerate(checked):
        if not isinstance(placement, GpuPlacement):
            raise TypeError(f"{TYPE}: placements[{index}] must be a GpuPlacement, got {type(placement).__name__}")
        if placement.pool in seen:
            raise ValueError(f"{TYPE}: placements[{index}].pool {placement.pool!r} appears twice")
        seen.add(placement.pool)
        if placement.ami_family not in AMI_SHIPS:
            raise ValueError(f"{TYPE}: placements[{index}].ami_family must be one of {', '.join(AMI_SHIPS)}, got {placement.ami_family!r}")
        problem = sharing_problem(placement)
        if problem:
            raise ValueError(f"{TYPE}: placements[{index}] ({placement.pool}): {problem}")
    try:
        operand_switches([p.ami_family for p in checked])
    except ValueError as exc:
        raise ValueError(f"{TYPE}: placements[].ami_family: {exc}") from None
    return checked


def sharing_problem(placement: GpuPlacement) -> Optional[str]:
    """Why the GPU Operator cannot share ``placement``'s GPUs as asked, or ``None``."""
    if placement.sharing == "none":
        return None
    if placement.ami_family == "eks-auto-mode":
        return (f"sharing {placement.sharing} needs the GPU Operator's device plugin or MIG manager, but EKS Auto Mode "
                "nodes run AWS's own NVIDIA device plugin; use whole GPUs on Auto Mode")
    if placement.ami_family == "bottlerocket":
        return (f"sharing {placement.sharing} needs the GPU Operator's device plugin, but Bottlerocket ships its own "
                "(configure sharing in its kubelet-device-plugins settings, or use al2023)")
    if placement.sharing == "time-slicing":
        if placement.time_slicing_replicas < 2:
            return f"time_slicing_replicas must be at least 2 for time-slicing, got {placement.time_slicing_replicas}"
        return None
    if placement.sharing == "mps":
        if placement.mig_profile:
            return (f"mps cannot share MIG devices (mig_profile {placement.mig_profile!r}): the device plugin supports "
                    "MPS on whole GPUs only")
        if not 2 <= placement.mps_replicas <= MPS_MAX_REPLICAS:
            return f"mps_replicas must be from 2 to {MPS_MAX_REPLICAS} (MPS clients per GPU), got {placement.mps_replicas}"
        return None
    if placement.sharing == "mig":
        not_capable = sorted({t.family.family for t in placement.instance_types if not t.mig_capable})
        if not placement.instance_types or not_capable:
            return f"mig needs MIG-capable instance types (A100, H100, H200); not capable: {', '.join(not_capable) or 'none given'}"
        for instance_type in placement.instance_types:
            profiles = MIG_PROFILES.get(instance_type.family.gpu_memory_gib, {})
            if placement.mig_profile not in profiles:
                return (f"mig_profile {placement.mig_profile!r} does not exist on {instance_type.name} "
                        f"({instance_type.gpu_model}); choose one of {', '.join(profiles)}")
        if f"all-{placement.mig_profile}" not in MIG_MANAGER_DEFAULT_CONFIGS:
            return f"mig_profile {placement.mig_profile!r} has no all-{placement.mig_profile} layout in mig-manager's default config"
        return None
    return f"sharing must be one of 'none', 'time-slicing', 'mps', 'mig', got {placement.sharing!r}"


def device_plugin_config(placements: Sequence[GpuPlacement], mig_strategy: MigStrategy) -> dict[str, str]:
    """The device plugin's config ConfigMap data: a ``default`` entry and one entry per time-sliced or
    MPS pool (named :attr:`GpuPlacement.device_plugin_config`); empty without either."""
    sliced = [p for p in placements if p.sharing in ("time-slicing", "mps")]
    if not sliced:
        return {}
    default_strategy = mig_strategy if any(p.sharing == "mig" for p in placements) else "none"
    data = {DEFAULT_DEVICE_PLUGIN_CONFIG: _yaml({"version": "v1", "flags": {"migStrategy": default_strategy}})}
    for placement in sliced:
        if placement.sharing == "mps":
            data[placement.device_plugin_config] = _yaml({
                "version": "v1",
                # MPS is not supported on MIG-enabled devices (k8s-device-plugin README, "With CUDA MPS").
                "flags": {"migStrategy": "none"},
                "sharing": {"mps": {
                    # Advertised as nvidia.com/gpu.shared like time-slicing; a pod asking for two gets
                    # refused rather than two slices of one GPU (the plugin's default for MPS too).
                    "renameByDefault": True,
                    "failRequestsGreaterThanOne": True,
                    "resources": [{"name": GPU_RESOURCE, "replicas": placement.mps_replicas}],
                }},
            })
            continue
        data[placement.device_plugin_config] = _yaml({
            "version": "v1",
            "flags": {"migStrategy": "none"},
            "sharing": {"timeSlicing": {
                # Shared replicas are advertised as nvidia.com/gpu.shared, so nobody mistakes them for
                # whole GPUs, and a pod cannot ask for two replicas hoping for two GPUs.
                "renameByDefault": True,
                "failRequestsGreaterThanOne": True,
                "resources": [{"name": GPU_RESOURCE, "replicas": placement.time_slicing_replicas}],
            }},
        })
    return data


def operator_values(
    placements: Sequence[GpuPlacement],
    *,
    mig_strategy: MigStrategy,
    dcgm_exporter: bool,
    device_plugin_config_map: Optional[str],
) -> dict[str, Any]:
    """The ``gpu-operator`` chart values gpufleet sets (every key exists in the chart's values.yaml)."""
    switches = operand_switches([p.ami_family for p in placements])
    tolerations = pools_tolerations(placements, first=[GPU_TOLERATION])
    device_plugin: dict[str, Any] = {"enabled": switches["devicePlugin"]}
    if device_plugin_config_map and switches["devicePlugin"]:
        device_plugin["config"] = {"create": False, "name": device_plugin_config_map, "default": DEFAULT_DEVICE_PLUGIN_CONFIG}
    if switches["devicePlugin"] and any(p.sharing == "mps" for p in placements):
        # The device plugin's MPS control daemon keeps its pipes and shm here on each MPS node.
        device_plugin["mps"] = {"root": MPS_ROOT}
    uses_mig = any(p.sharing == "mig" for p in placements)
    system_tolerations = [{"key": "CriticalAddonsOnly", "operator": "Exists"}]
    return {
        "operator": {"nodeSelector": dict(SYSTEM_NODE_SELECTOR), "tolerations": system_tolerations},
        "daemonsets": {"tolerations": tolerations},
        "driver": {"enabled": switches["driver"]},
        "toolkit": {"enabled": switches["toolkit"]},
        "devicePlugin": device_plugin,
        "gfd": {"enabled": True},
        "nfd": {"enabled": True},
        "node-feature-discovery": {
            "master": {"nodeSelector": dict(SYSTEM_NODE_SELECTOR), "tolerations": system_tolerations},
            "gc": {"nodeSelector": dict(SYSTEM_NODE_SELECTOR), "tolerations": system_tolerations},
        },
        "mig": {"strategy": mig_strategy},
        "migManager": {"enabled": uses_mig},
        "dcgmExporter": {
            "enabled": dcgm_exporter,
            # gpufleet renders its own, schema-checked ServiceMonitor (see GpuMonitoring).
            "serviceMonitor": {"enabled": False},
        },
    }


def _yaml(document: Mapping[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False)
