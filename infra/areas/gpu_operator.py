"""Stack area ``gpu_operator``: the NVIDIA GPU Operator (``gpufleet:gpuOperator``) and GPU monitoring
(``gpufleet:monitoring``).

Sharing itself is configured per pool (``gpufleet:gpuPools[i].sharing``); this area checks it against
the environment and the pool's instance facts, and declares the operator and the alerts/dashboard. The
cluster-wide MIG strategy (``migStrategy``) is read by the ``gpu_pools`` area too, which builds every
placement with it; :class:`~gpufleet.components.gpu_operator.GpuOperator` refuses a MIG placement whose
strategy differs.

Pools with ``allocation: dra`` get the NVIDIA DRA driver (:class:`~gpufleet.components.dra_driver.NvidiaDraDriver`,
component ``dra-driver``), its kubelet plugin on their nodes only; the operator keeps its device
plugin off them by their node label (``nvidia.com/gpu.deploy.device-plugin: "false"``) and runs the
rest (GFD, DCGM, mig-manager) as on any GPU node.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, field_validator

from gpufleet.components.dra_driver import NvidiaDraDriver
from gpufleet.components.gpu_instances import instance_types_of
from gpufleet.components.gpu_monitoring import GpuMonitoring
from gpufleet.components.gpu_operator import AMI_SHIPS, CHART_VERSION, GpuOperator
from gpufleet.components.gpu_scheduling import MIG_PROFILES, MPS_MAX_REPLICAS
from gpufleet.infra.areas.base import ConfigModel, DnsLabel, Labels, Platform
from gpufleet.infra.areas.observability import ObservabilitySection

_LABEL_VALUE_MAX = 63


class GpuOperatorSection(ConfigModel):
    """The NVIDIA GPU Operator: device plugin, GPU Feature Discovery, MIG manager, DCGM exporter."""

    enabled: bool = True
    """Install the operator (when the stack has GPU pools). Default true."""
    namespace: DnsLabel = "gpu-operator"
    """Namespace created for the operator and its operands. Default ``gpu-operator``."""
    chart_version: str = Field(CHART_VERSION, pattern=r"^v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$")
    """``gpu-operator`` chart version. Default ``v26.7.0``."""
    mig_strategy: Literal["single", "mixed"] = "mixed"
    """How MIG slices are advertised, cluster-wide: ``mixed`` (``nvidia.com/mig-<profile>``) or
    ``single`` (``nvidia.com/gpu``). Default ``mixed``."""
    dcgm_exporter: bool = True
    """Run the DCGM exporter on every GPU node. Default true."""
    service_monitor: bool = True
    """ServiceMonitor for the DCGM exporter (needs the Prometheus Operator). Default true."""
    service_monitor_labels: Labels = {}
    """Labels on that ServiceMonitor, e.g. ``{release: kube-prometheus-stack}``. Default none."""
    scrape_interval: str = Field("15s", pattern=r"^[0-9]+(ms|s|m)$")
    """DCGM exporter scrape interval. Default ``15s``."""


class AlertThresholdsSection(ConfigModel):
    """When the GPU alerts fire (the seeds' values by default)."""

    memory_usage_percent: int = Field(90, ge=1, le=100)
    """``HighGPUMemoryUsage``: memory used above this for 5 minutes, on GPU pods that do not serve
    with vLLM (vLLM reserves its memory up front). Default 90."""
    kv_cache_usage_percent: int = Field(90, ge=1, le=100)
    """``HighVLLMKVCacheUsage``: a vLLM server's KV cache fuller than this for 5 minutes. Default 90."""
    low_utilization_percent: int = Field(20, ge=1, le=100)
    """``LowGPUUtilization``: 1-hour average utilisation below this for 2 hours. Default 20."""
    temperature_celsius: int = Field(85, ge=40, le=120)
    """``HighGPUTemperature``: temperature above this for 5 minutes. Default 85."""


class MonitoringSection(ConfigModel):
    """GPU alerts (PrometheusRule) and gpufleet's Grafana dashboard; needs the Prometheus Operator,
    which ``install`` brings."""

    enabled: bool = True
    """Declare the alerts and the dashboard. Default true."""
    install: bool = False
    """Install kube-prometheus-stack (Prometheus Operator, Prometheus on a gp3 volume, Alertmanager,
    Grafana): the release label goes on gpufleet's rules, ServiceMonitors and PodMonitors and
    ``serving.prometheusUrl`` points at it, unless the stack sets them. Default false (the dev stack
    turns it on)."""
    stack: ObservabilitySection = ObservabilitySection()
    """The bundled stack's settings (with ``install: true``)."""
    namespace: Optional[DnsLabel] = None
    """Their namespace (must exist). Default: the GPU Operator's namespace."""
    rule_labels: Labels = {}
    """Labels on the PrometheusRule (your Prometheus' ``ruleSelector``). Default none."""
    dashboard_labels: Labels = {"grafana_dashboard": "1"}
    """Labels on the dashboard ConfigMap (Grafana sidecar). Default ``{grafana_dashboard: "1"}``."""
    thresholds: AlertThresholdsSection = AlertThresholdsSection()
    """Alert thresholds."""
    standalone_exporter: bool = False
    """Install NVIDIA's standalone dcgm-exporter chart, for clusters without the GPU Operator's
    exporter. Default false."""

    @field_validator("rule_labels", "dashboard_labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not key or len(item) > _LABEL_VALUE_MAX:
                raise ValueError(f"label {key!r}: keys must be non-empty and values at most 63 characters")
        return value


def cross_check(config: Any) -> list[str]:
    """Sharing against the environment and the pools' instance facts; operator and monitoring choices."""
    problems: list[str] = []
    operator = config.gpu_operator
    pools = tuple(config.gpu_pools)
    for index, pool in enumerate(pools):
        problems += _pool_sharing_problems(index, pool, config.environment)
        if _sharing(pool).mode != "none" and not operator.enabled:
            problems.append(f"gpufleet:gpuPools[{index}].sharing.mode: {_sharing(pool).mode} needs the GPU Operator "
                            "(gpufleet:gpuOperator.enabled is false)")
    families = [_ami_family(pool) for pool in pools]
    if operator.enabled and families:
        first = families[0]
        for index, family in enumerate(families[1:], start=1):
            if family in AMI_SHIPS and first in AMI_SHIPS and AMI_SHIPS[family] != AMI_SHIPS[first]:
                problems.append(
                    f"gpufleet:gpuPools[{index}].amiFamily: {family} ships different GPU components than "
                    f"{first} (gpuPools[0]); the GPU Operator's driver/toolkit/device-plugin switches are "
                    "cluster-wide, so all pools must use AMI families that agree"
                )
    monitoring = config.monitoring
    if monitoring.standalone_exporter and operator.enabled and operator.dcgm_exporter and pools:
        problems.append("gpufleet:monitoring.standaloneExporter: the GPU Operator already runs the DCGM exporter "
                        "(set gpufleet:gpuOperator.dcgmExporter to false, or leave this false)")
    if operator.service_monitor and not operator.dcgm_exporter:
        problems.append("gpufleet:gpuOperator.serviceMonitor: needs gpufleet:gpuOperator.dcgmExporter (nothing to scrape)")
    if monitoring.standalone_exporter and monitoring.namespace is None and not (operator.enabled and pools):
        problems.append("gpufleet:monitoring.namespace: required for the standalone exporter when the GPU Operator "
                        "is not installed (its namespace is the default)")
    return problems


def _pool_sharing_problems(index: int, pool: Any, environment: str) -> list[str]:
    sharing = _sharing(pool)
    where = f"gpufleet:gpuPools[{index}].sharing"
    mode, replicas, profile = sharing.mode, getattr(sharing, "replicas", None), getattr(sharing, "mig_profile", None)
    problems: list[str] = []
    if mode != "none" and _ami_family(pool) == "bottlerocket":
        problems.append(f"{where}.mode: {mode} is done by the GPU Operator's device plugin, which is off on "
                        "bottlerocket (its AMI ships its own); use amiFamily al2023 for a shared pool")
    if mode == "mps":
        if environment == "prod" and not getattr(sharing, "acknowledge_no_isolation", None):
            problems.append(f"{where}.acknowledgeNoIsolation: mps gives no fault isolation (a fatal GPU fault in one "
                            "pod fails every pod sharing that GPU); in prod set it to true to accept that, or use "
                            "mig on a MIG-capable pool (p4d, p4de, p5, p5e, p5en)")
        if replicas is None or not 2 <= replicas <= MPS_MAX_REPLICAS:
            problems.append(f"{where}.replicas: mps needs replicas from 2 to {MPS_MAX_REPLICAS} (MPS clients per GPU), "
                            f"got {replicas}")
    elif mode == "time-slicing":
        if environment == "prod":
            problems.append(f"{where}.mode: time-slicing gives no memory or fault isolation between pods and is "
                            "not allowed in prod; use mig on a MIG-capable pool (p4d, p4de, p5, p5e, p5en) or none")
        if replicas is None or replicas < 2:
            problems.append(f"{where}.replicas: time-slicing needs replicas of at least 2 (pods per GPU), got {replicas}")
    elif replicas is not None:
        problems.append(f"{where}.replicas: only used with mode time-slicing or mps (mode is {mode})")
    if mode == "mig":
        types = instance_types_of(_list(pool, "instance_families"), _list(pool, "instance_types"))
        not_capable = sorted({t.family.family for t in types if not t.mig_capable})
        if not types or not_capable:
            problems.append(f"{where}.mode: mig needs MIG-capable instance types (p4d, p4de, p5, p5e, p5en); "
                            f"not capable: {', '.join(not_capable) or 'no known GPU instance types'}")
        elif not profile:
            problems.append(f"{where}.migProfile: required with mode mig (e.g. 1g.10gb)")
        else:
            for memory in sorted({t.family.gpu_memory_gib for t in types}):
                if profile not in MIG_PROFILES.get(memory, {}):
                    models = sorted({t.gpu_model for t in types if t.family.gpu_memory_gib == memory})
                    problems.append(f"{where}.migProfile: {profile!r} does not exist on {', '.join(models)}; "
                                    f"choose one of {', '.join(MIG_PROFILES.get(memory, {}))}")
    elif profile:
        problems.append(f"{where}.migProfile: only used with mode mig (mode is {mode})")
    return problems


class _NoSharing:
    mode = "none"
    replicas = None
    mig_profile = None


def _sharing(pool: Any) -> Any:
    return getattr(pool, "sharing", None) or _NoSharing()


def _ami_family(pool: Any) -> str:
    return getattr(pool, "ami_family", None) or "al2023"


def _list(pool: Any, name: str) -> tuple[str, ...]:
    return tuple(getattr(pool, name, None) or ())


def compose(platform: Platform) -> None:
    """Declare the operator for the pools' placements (built with its MIG strategy), and monitoring."""
    operator_config = platform.config.gpu_operator
    monitoring = platform.config.monitoring
    namespace: Any = monitoring.namespace
    if operator_config.enabled and platform.placements:
        operator = GpuOperator(
            "gpu-operator",
            {
                "placements": list(platform.placements.values()),
                "namespace": operator_config.namespace,
                "chart_version": operator_config.chart_version,
                "mig_strategy": operator_config.mig_strategy,
                "production": platform.config.environment == "prod",
                "dcgm_exporter": operator_config.dcgm_exporter,
                "service_monitor": operator_config.service_monitor,
                "service_monitor_labels": dict(operator_config.service_monitor_labels),
                "scrape_interval": operator_config.scrape_interval,
            },
            opts=platform.opts,
        )
        platform.components["gpu-operator"] = operator
        namespace = namespace or operator.namespace
    dra_pools = [p for p in platform.placements.values() if p.dra]
    if dra_pools:
        # After the operator: the plugin needs its container toolkit and GFD labels on the nodes.
        platform.components["dra-driver"] = NvidiaDraDriver(
            "dra-driver", {"placements": dra_pools}, opts=platform.depends_on("gpu-operator"))
    if monitoring.enabled and namespace is not None:
        thresholds = monitoring.thresholds
        args: dict[str, Any] = {
            "namespace": namespace,
            "rule_labels": dict(monitoring.rule_labels),
            "dashboard_labels": dict(monitoring.dashboard_labels),
            "thresholds": {
                "memory_usage_percent": thresholds.memory_usage_percent,
                "kv_cache_usage_percent": thresholds.kv_cache_usage_percent,
                "low_utilization_percent": thresholds.low_utilization_percent,
                "temperature_celsius": thresholds.temperature_celsius,
            },
        }
        if monitoring.standalone_exporter:
            args["standalone_exporter"] = {
                "service_monitor_labels": dict(operator_config.service_monitor_labels),
                "scrape_interval": operator_config.scrape_interval,
                "tolerations": [t for p in platform.placements.values() for t in p.tolerations()],
            }
        platform.components["gpu-monitoring"] = GpuMonitoring(
            "gpu-monitoring", args, opts=platform.depends_on("gpu-operator")
        )
