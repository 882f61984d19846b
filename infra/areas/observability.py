"""Stack area ``observability``: the bundled monitoring stack (``gpufleet:monitoring.install``).

With ``monitoring.install: true`` gpufleet installs kube-prometheus-stack
(:class:`~gpufleet.components.observability.ObservabilityStack`) and wires the rest of the stack to
it, so a fresh cluster has GPU metrics, alerts and KEDA triggers without a separate install:

- the DCGM ServiceMonitor (``gpuOperator.serviceMonitorLabels``), the GPU PrometheusRule
  (``monitoring.ruleLabels``) and the vLLM PodMonitors (``serving.podMonitorLabels``) get the
  release label the bundled Prometheus selects (``release: <releaseName>``) unless the stack sets
  that label itself (:func:`bundled_defaults`, applied before validation);
- ``serving.prometheusUrl`` defaults to the bundled Prometheus;
- every area composed after this one depends on the release, whose chart installs the Prometheus
  Operator CRDs their ServiceMonitors, PodMonitors and PrometheusRules need.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pydantic import Field

from gpufleet.components.observability import (
    CHART_VERSION,
    DEFAULT_NAMESPACE,
    DEFAULT_RETENTION,
    RELEASE_NAME,
    ObservabilityStack,
)
from gpufleet.infra.areas.base import ConfigModel, DnsLabel, Platform
from gpufleet.infra.areas.workload_identity import workload_identity_args


class PrometheusSection(ConfigModel):
    """The bundled Prometheus."""

    retention: str = Field(DEFAULT_RETENTION, pattern=r"^[1-9][0-9]*(h|d|w|y)$")
    """How long metrics are kept, e.g. ``15d`` or ``4w``. Default ``15d``."""
    storage_gib: int = Field(50, ge=10, le=16384)
    """Size of its encrypted gp3 volume; it drops the oldest data beyond 85 % of it. Default 50."""
    cpu: str = Field("500m", pattern=r"^([1-9][0-9]*m|[0-9]+(\.[0-9]+)?)$")
    """CPU request. Default ``500m``."""
    memory: str = Field("2Gi", pattern=r"^[1-9][0-9]*(Mi|Gi)$")
    """Memory request and limit. Default ``2Gi``."""


class ObservabilitySection(ConfigModel):
    """kube-prometheus-stack as gpufleet installs it (``monitoring.install: true``)."""

    namespace: DnsLabel = DEFAULT_NAMESPACE
    """Namespace created for it. Default ``monitoring``."""
    release_name: DnsLabel = RELEASE_NAME
    """Helm release name, the ``release`` label its Prometheus selects monitors and rules by. Default
    ``kube-prometheus-stack``."""
    prometheus: PrometheusSection = PrometheusSection()
    """Retention, volume and requests of Prometheus."""
    grafana: bool = True
    """Install Grafana (dashboards from ConfigMaps labelled ``grafana_dashboard: "1"`` in any
    namespace). Default true."""
    storage_class_name: DnsLabel = "gp3"
    """StorageClass of Prometheus' volume. Default ``gp3``."""
    create_storage_class: bool = True
    """Create that StorageClass (EBS gp3, encrypted, WaitForFirstConsumer). Default true."""
    ebs_csi_driver: bool = True
    """Install the ``aws-ebs-csi-driver`` add-on (pinned for ``kubernetesVersion``) with its role;
    false when the cluster already has it. Default true; with ``gpufleet:cluster.autoMode`` false (Auto
    Mode's block storage provisions the volume) and refused."""


def bundled_prometheus_url(namespace: str) -> str:
    return f"http://prometheus-operated.{namespace}.svc:9090"


def _get(mapping: Any, *names: str) -> Any:
    """A key of a raw config mapping by its YAML (camelCase) or Python name."""
    if not isinstance(mapping, dict):
        return None
    for name in names:
        if name in mapping:
            return mapping[name]
    return None


def bundled_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """The raw ``gpufleet:*`` values with what ``monitoring.install`` implies filled in: the release
    label on the DCGM ServiceMonitor, the GPU rules and the vLLM PodMonitors (a label the stack sets
    is kept), and ``serving.prometheusUrl`` pointing at the bundled Prometheus (unless set). Values
    of the wrong shape are left for validation to report."""
    monitoring = values.get("monitoring")
    if not isinstance(monitoring, dict) or _get(monitoring, "install") not in (True, "true"):
        return values
    stack = _get(monitoring, "stack") or {}
    if not isinstance(stack, dict):
        return values
    release = _get(stack, "releaseName", "release_name") or RELEASE_NAME
    namespace = _get(stack, "namespace") or DEFAULT_NAMESPACE
    if not isinstance(release, str) or not isinstance(namespace, str):
        return values
    label = {"release": release}
    values = dict(values)

    def with_label(section_key: str, field: tuple[str, str]) -> None:
        section = values.get(section_key, {})
        if not isinstance(section, dict):
            return
        current = _get(section, *field)
        if current is None:
            current = {}
        if not isinstance(current, dict):
            return
        key = next((name for name in field if name in section), field[0])
        values[section_key] = {**section, key: {**label, **current}}

    with_label("monitoring", ("ruleLabels", "rule_labels"))
    with_label("gpuOperator", ("serviceMonitorLabels", "service_monitor_labels"))
    with_label("serving", ("podMonitorLabels", "pod_monitor_labels"))
    serving = values.get("serving", {})
    if isinstance(serving, dict) and _get(serving, "prometheusUrl", "prometheus_url") is None:
        values["serving"] = {**serving, "prometheusUrl": bundled_prometheus_url(namespace)}
    return values


def cross_check(config: Any) -> list[str]:
    """Settings of the bundled stack that only make sense with it, and a URL that cannot reach it."""
    monitoring = config.monitoring
    problems: list[str] = []
    if not monitoring.install:
        if "stack" in monitoring.model_fields_set:
            problems.append("gpufleet:monitoring.stack: only used with gpufleet:monitoring.install: true")
        return problems
    stack = monitoring.stack
    if stack.grafana is False and "dashboard_labels" in monitoring.model_fields_set:
        problems.append("gpufleet:monitoring.dashboardLabels: the bundled stack has no Grafana "
                        "(gpufleet:monitoring.stack.grafana is false) to load the dashboard")
    return problems


def ebs_csi_driver(config: Any) -> bool:
    """Whether the bundled stack installs the EBS CSI add-on: as set, except on EKS Auto Mode (its own
    block storage; an explicit true is refused by the ``auto_mode`` area)."""
    return config.monitoring.stack.ebs_csi_driver and not config.cluster.auto_mode


def compose(platform: Platform) -> None:
    """The monitoring stack, and a dependency of every later area on it (CRDs first)."""
    config = platform.config
    if not config.monitoring.install:
        return
    stack = config.monitoring.stack
    args: dict[str, Any] = {
        "cluster_name": platform.cluster.cluster_name,
        "namespace": stack.namespace,
        "release_name": stack.release_name,
        "retention": stack.prometheus.retention,
        "storage_gib": stack.prometheus.storage_gib,
        "prometheus_resources": {"cpu": stack.prometheus.cpu, "memory": stack.prometheus.memory},
        "grafana": stack.grafana,
        "storage_class_name": stack.storage_class_name,
        "create_storage_class": stack.create_storage_class,
        "ebs_csi_driver": ebs_csi_driver(config),
        "auto_mode": config.cluster.auto_mode,
        "kubernetes_version": config.kubernetes_version,
        **workload_identity_args(platform),
    }
    observability = ObservabilityStack("observability", args, opts=platform.opts)
    platform.components["observability"] = observability
    platform.opts = pulumi.ResourceOptions.merge(
        platform.opts, pulumi.ResourceOptions(depends_on=[observability.release]))


__all__ = ["CHART_VERSION", "ObservabilitySection", "PrometheusSection", "bundled_defaults", "cross_check", "compose",
           "ebs_csi_driver"]
