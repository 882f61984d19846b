"""Finding NVIDIA device plugin configs (time-slicing, MPS) and GPU Operator / DCGM exporter Helm releases."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

import yaml

from gpufleet.components.gpu_scheduling import DEVICE_PLUGIN_CONFIG_LABEL, POOL_LABEL
from gpufleet.policies.core import Subject, as_list, as_mapping, as_number, as_str


MPS_ACKNOWLEDGED_ANNOTATION = "gpufleet.io/mps-no-isolation-acknowledged"
"""Annotation of a device plugin ConfigMap (or a GPU Operator release's ConfigMap as rendered by
gpufleet): comma-separated config entries whose MPS sharing was acknowledged as fault-unisolated."""


@dataclass(frozen=True)
class TimeSlicing:
    """One device plugin config entry that shares GPUs by time-slicing (or, with ``mode`` ``mps``,
    by CUDA MPS: the same ``resources``/``replicas``/``renameByDefault`` under ``sharing.mps``)."""

    subject: Subject
    """The ConfigMap or Helm release that carries it."""
    config: str
    """Config name (key of the ConfigMap's data): what ``nvidia.com/device-plugin.config`` selects."""
    replicas: Optional[int]
    """Pods per physical GPU (largest over its resources); None when unknown."""
    rename_by_default: bool
    """Shared GPUs are advertised as ``<resource>.shared`` (else under the resource's own name)."""
    mode: str = "time-slicing"
    """``time-slicing`` or ``mps``."""
    acknowledged: bool = False
    """MPS only: the carrying object names this entry in :data:`MPS_ACKNOWLEDGED_ANNOTATION`."""


def chart_name(release: Subject) -> str:
    """The chart a Helm release installs, without repository or OCI prefix."""
    chart = as_str(release.props.get("chart")) or ""
    return chart.rstrip("/").rsplit("/", 1)[-1]


def helm_releases(subjects: Iterable[Subject], chart: str) -> Iterator[Subject]:
    for subject in subjects:
        if subject.is_helm_release and chart_name(subject) == chart:
            yield subject


def time_slicing_configs(subjects: Iterable[Subject]) -> list[TimeSlicing]:
    """Time-slicing entries in device plugin ConfigMaps and in GPU Operator releases' ``devicePlugin.config.data``."""
    return [entry for entry in sharing_configs(subjects) if entry.mode == "time-slicing"]


def mps_configs(subjects: Iterable[Subject]) -> list[TimeSlicing]:
    """MPS entries (``sharing.mps``) in device plugin ConfigMaps and GPU Operator releases' values."""
    return [entry for entry in sharing_configs(subjects) if entry.mode == "mps"]


def sharing_configs(subjects: Iterable[Subject]) -> list[TimeSlicing]:
    """Every entry that shares GPUs (time-slicing or MPS, at least two replicas a GPU) in device plugin
    ConfigMaps and in GPU Operator releases' ``devicePlugin.config.data``."""
    found: list[TimeSlicing] = []
    for subject in subjects:
        if subject.is_a("", "ConfigMap"):
            data = as_mapping(subject.props.get("data"))
        elif subject.is_helm_release and chart_name(subject) == "gpu-operator":
            data = as_mapping(as_mapping(as_mapping(as_mapping(subject.props.get("values")).get("devicePlugin"))
                                         .get("config")).get("data"))
        else:
            continue
        acknowledged = {name.strip() for name in (as_str(subject.annotations.get(MPS_ACKNOWLEDGED_ANNOTATION)) or "").split(",")}
        for config, text in data.items():
            found.extend(_sharing(subject, config, text, config in acknowledged))
    return found


def _sharing(subject: Subject, config: str, text: Any, acknowledged: bool) -> list[TimeSlicing]:
    if not isinstance(text, str) or ("timeSlicing" not in text and "mps" not in text):
        return []
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    sharing = as_mapping(as_mapping(parsed).get("sharing"))
    found = []
    for key, mode in (("mps", "mps"), ("timeSlicing", "time-slicing")):
        section = sharing.get(key)
        if not isinstance(section, Mapping):
            continue
        replicas = [as_number(as_mapping(r).get("replicas")) for r in as_list(section.get("resources"))]
        known = [int(r) for r in replicas if r is not None]
        if not known or max(known) < 2:
            continue  # one replica a GPU is no sharing
        found.append(TimeSlicing(subject, config, max(known), section.get("renameByDefault") is True, mode,
                                 acknowledged and mode == "mps"))
        if mode == "mps":
            break  # the device plugin ignores timeSlicing when mps is set (api/config/v1 Sharing.SharingStrategy)
    return found


BOTTLEROCKET_SHARING = "device-sharing-strategy"
"""Bottlerocket's ``settings.kubelet-device-plugins.nvidia.device-sharing-strategy``: ``time-slicing``
makes the built-in NVIDIA device plugin share each GPU (``time-slicing.replicas`` pods a GPU)."""


def bottlerocket_time_slicing(subjects: Iterable[Subject]) -> list[TimeSlicing]:
    """Time-slicing set through Bottlerocket settings: the TOML ``userData`` of a Karpenter
    EC2NodeClass, or the ``bottlerocket.settings`` of an eksctl ClusterConfig's node groups."""
    found: list[TimeSlicing] = []
    for subject in subjects:
        if subject.is_a("karpenter.k8s.aws", "EC2NodeClass"):
            text = as_str(subject.spec.get("userData"))
            settings = as_mapping(_toml(text).get("settings")) if text else {}
            entry = _bottlerocket(subject, settings, "spec.userData")
            if entry is not None:
                found.append(entry)
        elif subject.is_a("eksctl.io", "ClusterConfig"):
            for field in ("managedNodeGroups", "nodeGroups"):
                for index, group in enumerate(as_list(subject.props.get(field))):
                    settings = as_mapping(as_mapping(as_mapping(group).get("bottlerocket")).get("settings"))
                    name = as_str(as_mapping(group).get("name")) or str(index)
                    entry = _bottlerocket(subject, settings, f"{field}[{name}].bottlerocket.settings")
                    if entry is not None:
                        found.append(entry)
    return found


def _bottlerocket(subject: Subject, settings: Mapping[str, Any], where: str) -> Optional[TimeSlicing]:
    nvidia = as_mapping(as_mapping(settings.get("kubelet-device-plugins")).get("nvidia"))
    if nvidia.get(BOTTLEROCKET_SHARING) != "time-slicing":
        return None
    replicas = as_number(as_mapping(nvidia.get("time-slicing")).get("replicas"))
    return TimeSlicing(subject, where, int(replicas) if replicas is not None else None,
                       as_mapping(nvidia.get("time-slicing")).get("rename-by-default") is True)


def _toml(text: str) -> Mapping[str, Any]:
    """The Bottlerocket NVIDIA device-plugin settings of a TOML userData, as nested mappings (only the
    keys this module reads: TOML's section and dotted-key forms alike)."""
    strategy = re.search(r'device-sharing-strategy"?\s*=\s*"([^"]+)"', text)
    if strategy is None:
        return {}
    replicas = re.search(r'(?:time-slicing\]\s*(?:[^\[]*?\n)?\s*|time-slicing\.)replicas\s*=\s*(\d+)', text)
    nvidia: dict[str, Any] = {BOTTLEROCKET_SHARING: strategy.group(1)}
    if replicas is not None:
        nvidia["time-slicing"] = {"replicas": int(replicas.group(1))}
    return {"settings": {"kubelet-device-plugins": {"nvidia": nvidia}}}


class SharedGpuSources:
    """Which device plugin entry gives a pod its ``nvidia.com/gpu.shared``: time-slicing and MPS both
    advertise shared replicas under that name (``renameByDefault``), so the pod's pool decides."""

    def __init__(self, subjects: Sequence[Subject]):
        from gpufleet.policies.rules._karpenter import node_pools  # _karpenter does not import this module

        self.entries = sharing_configs(subjects)
        renamed = [entry for entry in self.entries if entry.rename_by_default]
        self.modes = {entry.mode for entry in renamed}
        by_config = {entry.config: entry for entry in renamed}
        self.by_pool: dict[str, TimeSlicing] = {}
        for pool in node_pools(subjects)[0]:
            entry = by_config.get(pool.labels.get(DEVICE_PLUGIN_CONFIG_LABEL, ""))
            if entry is not None:
                self.by_pool[pool.name] = entry
                if POOL_LABEL in pool.labels:
                    self.by_pool.setdefault(f"{POOL_LABEL}={pool.labels[POOL_LABEL]}", entry)

    def entry_of(self, spec: Mapping[str, Any]) -> Optional[TimeSlicing]:
        """The entry behind a pod spec's shared GPUs: through the NodePool its ``nodeSelector`` names
        (``karpenter.sh/nodepool`` or ``gpufleet.io/gpu-pool``); None when the selector names none."""
        selector = as_mapping(spec.get("nodeSelector"))
        nodepool = as_str(selector.get("karpenter.sh/nodepool"))
        if nodepool and nodepool in self.by_pool:
            return self.by_pool[nodepool]
        pool = as_str(selector.get(POOL_LABEL))
        return self.by_pool.get(f"{POOL_LABEL}={pool}") if pool else None

    def mode_of(self, spec: Mapping[str, Any]) -> str:
        """``mps`` or ``time-slicing``: the pool's entry, else the only renamed mode the configs use;
        time-slicing when nothing tells (the device plugin's long-standing way to share)."""
        entry = self.entry_of(spec)
        if entry is not None:
            return entry.mode
        return "mps" if self.modes == {"mps"} else "time-slicing"
