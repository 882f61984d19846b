"""Finding NVIDIA device plugin configs (time-slicing) and GPU Operator / DCGM exporter Helm releases."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Optional

import yaml

from gpufleet.policies.core import Subject, as_list, as_mapping, as_number, as_str


@dataclass(frozen=True)
class TimeSlicing:
    """One device plugin config entry that shares GPUs by time-slicing."""

    subject: Subject
    """The ConfigMap or Helm release that carries it."""
    config: str
    """Config name (key of the ConfigMap's data): what ``nvidia.com/device-plugin.config`` selects."""
    replicas: Optional[int]
    """Pods per physical GPU (largest over its resources); None when unknown."""
    rename_by_default: bool
    """Shared GPUs are advertised as ``<resource>.shared`` (else under the resource's own name)."""


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
    found: list[TimeSlicing] = []
    for subject in subjects:
        if subject.is_a("", "ConfigMap"):
            data = as_mapping(subject.props.get("data"))
        elif subject.is_helm_release and chart_name(subject) == "gpu-operator":
            data = as_mapping(as_mapping(as_mapping(as_mapping(subject.props.get("values")).get("devicePlugin"))
                                         .get("config")).get("data"))
        else:
            continue
        for config, text in data.items():
            entry = _time_slicing(subject, config, text)
            if entry is not None:
                found.append(entry)
    return found


def _time_slicing(subject: Subject, config: str, text: Any) -> Optional[TimeSlicing]:
    if not isinstance(text, str) or "timeSlicing" not in text:
        return None
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    sharing = as_mapping(as_mapping(parsed).get("sharing"))
    slicing = sharing.get("timeSlicing")
    if not isinstance(slicing, Mapping):
        return None
    replicas = [as_number(as_mapping(r).get("replicas")) for r in as_list(slicing.get("resources"))]
    known = [int(r) for r in replicas if r is not None]
    if not known or max(known) < 2:
        return None  # one replica a GPU is no sharing
    return TimeSlicing(subject, config, max(known), slicing.get("renameByDefault") is True)


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
