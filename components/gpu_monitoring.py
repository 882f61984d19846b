"""``GpuMonitoring``: GPU alerts and a Grafana dashboard on DCGM exporter metrics, and optionally a
standalone DCGM exporter for clusters that do not run the NVIDIA GPU Operator.

Without these metrics nobody sees idle (wasted) or overheating GPUs. The alerts are the seeds'
(average utilisation < 20 % over 1 h for 2 h, temperature > 85 °C for 5 min, memory > 90 % for
5 min), XID errors, which signal driver or hardware faults, and vLLM's KV-cache pressure.
Utilisation is MIG-aware: MIG instances are measured by their graphics-engine activity (see
:func:`utilisation`). The Prometheus Operator (``monitoring.coreos.com`` CRDs, e.g. from
kube-prometheus-stack) must already run in the cluster.

What the series mean, and how the expressions account for it:

- **Which pod a series belongs to.** dcgm-exporter's pod mapper (``internal/pkg/transformation/
  kubernetes.go``, ``PodMapper.Process``) adds ``pod``/``namespace``/``container`` only to the series
  of a GPU the kubelet's pod-resources API assigns to a container; an unassigned GPU's series carry
  none. Prometheus then fills missing labels from the scrape target, which are the *exporter's own*
  ``pod``/``namespace``/``container`` (``honorLabels`` only wins on conflicts). gpufleet's
  ServiceMonitor drops those target labels (:data:`EXPORTER_TARGET_LABELS`), so ``pod`` means "the
  workload using this GPU" or nothing; per-pod panels and pod-naming alerts also match
  :data:`WORKLOAD_MATCHERS`, which leaves out series without a pod and those scraped by another
  monitor that still carry the exporter's pod name.
- **vLLM reserves its memory.** vLLM allocates ``--gpu-memory-utilization`` (0.9 by default) of the
  GPU at start, plus the CUDA context: its framebuffer usage says nothing about pressure. Its own
  gauge ``vllm:kv_cache_usage_perc`` (0..1) does: ``HighVLLMKVCacheUsage`` alerts on it, and
  ``HighGPUMemoryUsage`` covers the other GPU pods only (see :func:`alert_rules`).
- **XID is a gauge.** ``DCGM_FI_DEV_XID_ERRORS`` holds the *last* XID a GPU reported
  (dcgm-exporter ``etc/default-counters.csv``: "gauge, Value of the last XID error encountered"), so
  ``> 0`` would stay true forever after the first fault. ``GPUXidError`` fires when the value changed
  in the last :data:`XID_WINDOW` and reports the new XID code.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Sequence, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from gpufleet.components._validate import check_arg_keys, require_int_range
from gpufleet.components.gpu_scheduling import ACCELERATOR_LABEL, ACCELERATOR_VALUE, GPU_TAINT_KEY
from gpufleet.components.inference_service import CONTAINER_NAME as KSERVE_CONTAINER

TYPE = "gpufleet:monitoring:GpuMonitoring"

DCGM_EXPORTER_CHART = "dcgm-exporter"
DCGM_EXPORTER_CHART_VERSION = "4.8.2"
"""The standalone dcgm-exporter chart at tag 4.5.3-4.8.2 (chart version 4.8.2)."""
DCGM_EXPORTER_REPOSITORY = "https://nvidia.github.io/dcgm-exporter/helm-charts"
DCGM_EXPORTER_RELEASE = "dcgm-exporter"
"""Fixed release name, so the chart's Service labels (``app.kubernetes.io/instance``) are known."""

DEFAULT_DASHBOARD_LABELS: Mapping[str, str] = {"grafana_dashboard": "1"}
"""The label Grafana's dashboard sidecar (kube-prometheus-stack default) loads ConfigMaps by."""
DASHBOARD_KEY = "gpufleet-gpus.json"
DASHBOARD_UID = "gpufleet-gpus"

GPU_TOLERATION = {"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
"""The toleration every GPU DaemonSet needs to land on gpufleet's tainted GPU nodes."""

EXPORTER_TARGET_LABELS = ("pod", "namespace", "container")
"""Target labels the Prometheus Operator gives every ServiceMonitor target (the exporter pod's own
name, namespace and container). gpufleet's DCGM ServiceMonitor drops them: on a GPU no pod uses they
would name the exporter as its workload."""
EXPORTER_POD_PATTERN = "(nvidia-)?dcgm-exporter-.+"
"""Pods of the GPU Operator's exporter DaemonSet (``nvidia-dcgm-exporter``) and of the standalone
chart's (``dcgm-exporter``, gpufleet's fixed release name)."""
WORKLOAD_MATCHERS = f'pod!="", pod!~"{EXPORTER_POD_PATTERN}"'
"""Label matchers of series that belong to a workload pod: a pod label that is not the exporter's
(which series scraped with the target labels still carry)."""
VLLM_KV_CACHE_METRIC = "vllm:kv_cache_usage_perc"
"""vLLM's KV-cache usage gauge (0..1; ``vllm/v1/metrics/loggers.py``, ``PrometheusStatLogger``), the
name of the v1 engine that the pinned ``vllm/vllm-openai`` image (v0.28) runs; the older
``vllm:gpu_cache_usage_perc`` was deprecated for it and is gone."""
VLLM_CONTAINER_MATCHER = f'container!="{KSERVE_CONTAINER}"'
"""Leaves out KServe predictor containers (KServe names the predictor's main container
``kserve-container``): gpufleet's InferenceServices run vLLM, which reserves its memory up front."""
XID_WINDOW = "10m"
"""How long ``GPUXidError`` keeps firing after the XID value changed."""


class AlertThresholds(TypedDict):
    """When the GPU alerts fire (the seeds' values by default)."""

    memory_usage_percent: NotRequired[int]
    """``HighGPUMemoryUsage``: framebuffer used above this share for 5 minutes, on GPU pods that do
    not serve with vLLM. Default 90."""
    kv_cache_usage_percent: NotRequired[int]
    """``HighVLLMKVCacheUsage``: a vLLM server's KV cache fuller than this for 5 minutes. Default 90."""
    low_utilization_percent: NotRequired[int]
    """``LowGPUUtilization``: 1-hour average utilisation below this for 2 hours. Default 20."""
    temperature_celsius: NotRequired[int]
    """``HighGPUTemperature``: GPU temperature above this for 5 minutes. Default 85."""


class StandaloneDcgmExporter(TypedDict):
    """NVIDIA's ``dcgm-exporter`` chart, for clusters whose GPUs are not managed by the GPU Operator."""

    version: NotRequired[str]
    """Chart version. Default ``4.8.2``."""
    service_monitor_labels: NotRequired[Mapping[str, str]]
    """Labels on its ServiceMonitor (match your Prometheus' ``serviceMonitorSelector``). Default none."""
    scrape_interval: NotRequired[str]
    """Prometheus scrape interval. Default ``15s``."""
    tolerations: NotRequired[Sequence[Mapping[str, str]]]
    """Tolerations besides the GPU taint's, e.g. every pool's ``GpuPlacement.tolerations()`` when some
    pools carry extra taints. Default none."""


class GpuMonitoringArgs(TypedDict):
    """Inputs of :class:`GpuMonitoring`."""

    namespace: pulumi.Input[str]
    """Namespace of the PrometheusRule, the dashboard ConfigMap and a standalone exporter. Must exist
    (e.g. the GPU Operator's). Required."""
    rule_labels: NotRequired[Mapping[str, str]]
    """Labels on the PrometheusRule (match your Prometheus' ``ruleSelector``). Default none."""
    dashboard_labels: NotRequired[Mapping[str, str]]
    """Labels on the dashboard ConfigMap. Default ``{"grafana_dashboard": "1"}``."""
    thresholds: NotRequired[AlertThresholds]
    """Alert thresholds. Default: see :class:`AlertThresholds`."""
    standalone_exporter: NotRequired[StandaloneDcgmExporter]
    """Install the standalone DCGM exporter (with its ServiceMonitor). Default: not installed (the
    GPU Operator runs the exporter)."""


def dcgm_service_monitor(
    name: str,
    *,
    namespace: pulumi.Input[str],
    selector: Mapping[str, str],
    port: str,
    labels: Mapping[str, str],
    interval: str,
    opts: pulumi.ResourceOptions,
) -> k8s.apiextensions.CustomResource:
    """A ServiceMonitor scraping a DCGM exporter Service, keeping the workload's ``pod``/``namespace``
    labels, dropping the target's own (see :data:`EXPORTER_TARGET_LABELS`) and adding the node name
    as ``node``.

    gpufleet renders its own instead of the charts' (whose ServiceMonitor is created by the operator
    at runtime or by Helm, both out of sight of the plan): this one is schema-checked, shows in the
    plan, and carries the labels a Prometheus selects on.
    """
    return k8s.apiextensions.CustomResource(
        name,
        api_version="monitoring.coreos.com/v1",
        kind="ServiceMonitor",
        metadata={"name": "gpufleet-dcgm-exporter", "namespace": namespace, "labels": dict(labels)},
        spec={
            "selector": {"matchLabels": dict(selector)},
            "namespaceSelector": {"matchNames": [namespace]},
            "endpoints": [{
                "port": port,
                "path": "/metrics",
                "interval": interval,
                # The exporter labels each GPU's series with the pod and namespace using it; without
                # honorLabels Prometheus would rename them exported_pod/exported_namespace and put
                # the exporter's own pod there instead.
                "honorLabels": True,
                "relabelings": [
                    {
                        "action": "replace",
                        "sourceLabels": ["__meta_kubernetes_pod_node_name"],
                        "targetLabel": "node",
                    },
                    # A GPU no pod uses has no pod label of its own: Prometheus would fill in the
                    # exporter's (the operator generates these target labels before the
                    # endpoint's relabelings run), attributing idle GPUs to the exporter.
                    {"action": "labeldrop", "regex": "|".join(EXPORTER_TARGET_LABELS)},
                ],
            }],
        },
        opts=opts,
    )


MIG_INSTANCE_LABEL = "GPU_I_ID"
"""Label the DCGM exporter puts on the series of a MIG instance (GPU instance id); empty on whole GPUs."""


def utilisation(matchers: str = "", *, over: str = "") -> str:
    """PromQL of GPU utilisation in percent, one series per whole GPU and per MIG instance.

    MIG instances report no ``DCGM_FI_DEV_GPU_UTIL`` (or a constant 0, depending on the exporter
    version); their graphics-engine activity ``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` (a 0..1 ratio) stands
    in. Each metric is taken only where it is the right one (by the ``GPU_I_ID`` label), so a whole GPU
    that reports both is counted once. ``matchers`` are extra label matchers (``Hostname=~"..."``);
    ``over`` a range (``1h``) to average each series over first.
    """
    def series(metric: str, mig: str) -> str:
        selector = f"{metric}{{{', '.join(m for m in (matchers, mig) if m)}}}"
        return f"avg_over_time({selector}[{over}])" if over else selector
    whole = series("DCGM_FI_DEV_GPU_UTIL", f'{MIG_INSTANCE_LABEL}=""')
    mig = series("DCGM_FI_PROF_GR_ENGINE_ACTIVE", f'{MIG_INSTANCE_LABEL}!=""')
    return f"({whole} or {mig} * 100)"


def _selector(metric: str, *matchers: str) -> str:
    present = [m for m in matchers if m]
    return f"{metric}{{{', '.join(present)}}}" if present else metric


def memory_usage_expr(threshold: int) -> str:
    """Framebuffer used, in percent, of GPUs whose pod does not serve with vLLM, above ``threshold``.

    vLLM pods are left out twice over: KServe predictor containers by name
    (:data:`VLLM_CONTAINER_MATCHER`, from the DCGM series alone, also when vLLM's metrics are not
    scraped), and any other pod exporting vLLM's KV-cache gauge (a RayService or a plain Deployment
    running vLLM, when a monitor scrapes it) by ``unless on (namespace, pod)``.
    """
    used = _selector("DCGM_FI_DEV_FB_USED", WORKLOAD_MATCHERS, VLLM_CONTAINER_MATCHER)
    free = _selector("DCGM_FI_DEV_FB_FREE", WORKLOAD_MATCHERS, VLLM_CONTAINER_MATCHER)
    return (f"(({used} / ({used} + {free})) * 100 > {threshold})"
            f" unless on (namespace, pod) {VLLM_KV_CACHE_METRIC}")


def kv_cache_usage_expr(threshold: int) -> str:
    """A vLLM server's KV-cache usage in percent (the fullest engine of the pod) above ``threshold``."""
    return f"max by (namespace, pod, model_name) ({VLLM_KV_CACHE_METRIC}) * 100 > {threshold}"


def xid_expr() -> str:
    """Fires while the last-XID gauge changed within :data:`XID_WINDOW`; its value is the XID code.

    ``changes`` sees a new XID (also a repeat after a different one), never a value that merely
    stays; a new series (a pod starts using the GPU: new labels) has no change yet, so an old XID is
    not reported again. ``> 0`` keeps a reset to 0 out.
    """
    return f"(DCGM_FI_DEV_XID_ERRORS > 0) and (changes(DCGM_FI_DEV_XID_ERRORS[{XID_WINDOW}]) > 0)"


def alert_rules(thresholds: Mapping[str, int]) -> list[dict[str, Any]]:
    """The GPU alerting rules (PrometheusRule ``spec.groups[].rules``)."""
    memory = thresholds["memory_usage_percent"]
    kv_cache = thresholds["kv_cache_usage_percent"]
    low = thresholds["low_utilization_percent"]
    temperature = thresholds["temperature_celsius"]
    # A MIG instance's series carry its profile: name it, or the alerts of a GPU's slices read alike.
    where = ("GPU {{ $labels.gpu }}{{ with $labels.GPU_I_PROFILE }} (MIG {{ . }} instance {{ $labels.GPU_I_ID }}){{ end }}"
             " on {{ $labels.Hostname }}")
    return [
        {
            "alert": "HighGPUMemoryUsage",
            "expr": memory_usage_expr(memory),
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": f"GPU memory above {memory}%",
                "description": f"{where} has used {{{{ $value | humanize }}}}% of its memory for 5 minutes "
                               "(pod {{ $labels.namespace }}/{{ $labels.pod }}, container {{ $labels.container }}): "
                               "out-of-memory errors are next.",
            },
        },
        {
            "alert": "HighVLLMKVCacheUsage",
            "expr": kv_cache_usage_expr(kv_cache),
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": f"vLLM KV cache above {kv_cache}%",
                "description": "vLLM pod {{ $labels.namespace }}/{{ $labels.pod }} (model {{ $labels.model_name }}) "
                               "has used {{ $value | humanize }}% of its KV cache for 5 minutes: requests queue "
                               "and get preempted; add replicas, lower max-model-len or give vLLM more memory.",
            },
        },
        {
            "alert": "LowGPUUtilization",
            "expr": f"{utilisation(over='1h')} < {low}",
            "for": "2h",
            "labels": {"severity": "info"},
            "annotations": {
                "summary": f"GPU idle: average utilisation below {low}% for hours",
                "description": f"{where} averaged {{{{ $value | humanize }}}}% utilisation over the last hour, "
                               "for 2 hours: a smaller GPU, sharing, or scaling down would save its cost.",
            },
        },
        {
            "alert": "HighGPUTemperature",
            "expr": f"DCGM_FI_DEV_GPU_TEMP > {temperature}",
            "for": "5m",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": f"GPU temperature above {temperature} °C",
                "description": f"{where} has been at {{{{ $value }}}} °C for 5 minutes: it will throttle.",
            },
        },
        {
            "alert": "GPUXidError",
            "expr": xid_expr(),
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "GPU reported an XID error",
                "description": f"{where} reported XID {{{{ $value }}}} in the last {XID_WINDOW} (driver or hardware "
                               "fault; see NVIDIA's XID catalogue): cordon and drain the node if it repeats.",
            },
        },
    ]


def _panel(panel_id: int, title: str, unit: str, targets: Sequence[tuple[str, str]], x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "right", "calcs": ["mean", "max"]}},
        "targets": [
            {"refId": chr(ord("A") + index), "expr": expr, "legendFormat": legend}
            for index, (expr, legend) in enumerate(targets)
        ],
    }


_GPU_MATCH = 'Hostname=~"$hostname"'
_POD_MATCH = f'Hostname=~"$hostname", namespace=~"$namespace", {WORKLOAD_MATCHERS}'
_GPU = f"{{{_GPU_MATCH}}}"
_POD = f"{{{_POD_MATCH}}}"
_BY_GPU = "{{Hostname}} GPU {{gpu}}"
_BY_POD = "{{namespace}}/{{pod}}"


def dashboard() -> dict[str, Any]:
    """gpufleet's Grafana dashboard: utilisation, memory, temperature and power per GPU and per pod."""
    rows = [
        # A MIG GPU's utilisation is the average activity of its instances.
        ("Utilisation per GPU", "percent", [(f"avg by (Hostname, gpu) {utilisation(_GPU_MATCH)}", _BY_GPU)]),
        ("Utilisation per pod", "percent", [(f"avg by (namespace, pod) {utilisation(_POD_MATCH)}", _BY_POD)]),
        ("Memory used per GPU", "percent", [(
            f"sum by (Hostname, gpu) (DCGM_FI_DEV_FB_USED{_GPU}) / "
            f"(sum by (Hostname, gpu) (DCGM_FI_DEV_FB_USED{_GPU}) + sum by (Hostname, gpu) (DCGM_FI_DEV_FB_FREE{_GPU})) * 100",
            _BY_GPU,
        )]),
        ("Memory used per pod", "decmbytes", [(f"sum by (namespace, pod) (DCGM_FI_DEV_FB_USED{_POD})", _BY_POD)]),
        ("Temperature per GPU", "celsius", [(f"max by (Hostname, gpu) (DCGM_FI_DEV_GPU_TEMP{_GPU})", _BY_GPU)]),
        ("Temperature per pod", "celsius", [(f"max by (namespace, pod) (DCGM_FI_DEV_GPU_TEMP{_POD})", _BY_POD)]),
        ("Power per GPU", "watt", [(f"sum by (Hostname, gpu) (DCGM_FI_DEV_POWER_USAGE{_GPU})", _BY_GPU)]),
        ("Power per pod", "watt", [(f"sum by (namespace, pod) (DCGM_FI_DEV_POWER_USAGE{_POD})", _BY_POD)]),
        # vLLM's own memory pressure: its framebuffer use is the reservation, not the load.
        ("vLLM KV-cache usage per pod", "percentunit", [(
            f'max by (namespace, pod) ({VLLM_KV_CACHE_METRIC}{{namespace=~"$namespace"}})', _BY_POD,
        )]),
    ]
    panels = [
        _panel(index + 1, title, unit, targets, x=12 * (index % 2), y=8 * (index // 2))
        for index, (title, unit, targets) in enumerate(rows)
    ]

    def variable(name: str, label: str, query: str) -> dict[str, Any]:
        return {
            "name": name, "label": label, "type": "query",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": {"query": query, "refId": name},
            "definition": query, "includeAll": True, "multi": True, "allValue": ".*",
            "current": {"text": "All", "value": "$__all"}, "refresh": 2, "sort": 1,
        }

    return {
        "uid": DASHBOARD_UID,
        "title": "gpufleet / GPUs",
        "tags": ["gpufleet", "gpu", "dcgm"],
        "timezone": "browser",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus"},
            # Framebuffer usage is reported by whole GPUs and MIG instances alike.
            variable("hostname", "Node", "label_values(DCGM_FI_DEV_FB_USED, Hostname)"),
            # Namespaces of workloads using GPUs (not the exporter's).
            variable("namespace", "Namespace", f"label_values(DCGM_FI_DEV_FB_USED{{{WORKLOAD_MATCHERS}}}, namespace)"),
        ]},
        "panels": panels,
    }


class GpuMonitoring(pulumi.ComponentResource):
    """GPU alerts (a PrometheusRule) and gpufleet's Grafana dashboard (a ConfigMap the Grafana sidecar
    loads), on the metrics of the DCGM exporter; optionally the standalone exporter chart and its
    ServiceMonitor, for clusters without the GPU Operator."""

    prometheus_rule: k8s.apiextensions.CustomResource
    dashboard: k8s.core.v1.ConfigMap

    def __init__(self, name: str, args: GpuMonitoringArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, GpuMonitoringArgs, name=TYPE)
        if args.get("namespace") is None:
            raise ValueError(f"{TYPE}: namespace is required")
        given = dict(args.get("thresholds", {}))
        unknown = set(given) - {"memory_usage_percent", "kv_cache_usage_percent", "low_utilization_percent", "temperature_celsius"}
        if unknown:
            raise ValueError(f"{TYPE}: thresholds has unknown keys: {', '.join(sorted(unknown))}")
        thresholds = {
            "memory_usage_percent": require_int_range(given.get("memory_usage_percent", 90), "thresholds.memory_usage_percent", 1, 100, name=TYPE),
            "kv_cache_usage_percent": require_int_range(given.get("kv_cache_usage_percent", 90), "thresholds.kv_cache_usage_percent", 1, 100, name=TYPE),
            "low_utilization_percent": require_int_range(given.get("low_utilization_percent", 20), "thresholds.low_utilization_percent", 1, 100, name=TYPE),
            "temperature_celsius": require_int_range(given.get("temperature_celsius", 85), "thresholds.temperature_celsius", 40, 120, name=TYPE),
        }
        standalone = args.get("standalone_exporter")
        exporter_values = _standalone_values(standalone) if standalone is not None else None
        namespace = args["namespace"]

        super().__init__(TYPE, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.prometheus_rule = k8s.apiextensions.CustomResource(
            f"{name}-alerts",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata={"name": "gpufleet-gpu-alerts", "namespace": namespace, "labels": dict(args.get("rule_labels", {}))},
            spec={"groups": [{"name": "gpufleet.gpu", "rules": alert_rules(thresholds)}]},
            opts=child,
        )
        self.dashboard = k8s.core.v1.ConfigMap(
            f"{name}-dashboard",
            metadata={
                "name": "gpufleet-gpu-dashboard",
                "namespace": namespace,
                "labels": dict(args.get("dashboard_labels", DEFAULT_DASHBOARD_LABELS)),
            },
            data={DASHBOARD_KEY: json.dumps(dashboard(), indent=1, sort_keys=True)},
            opts=child,
        )

        if standalone is not None:
            release = k8s.helm.v3.Release(
                f"{name}-dcgm-exporter",
                name=DCGM_EXPORTER_RELEASE,
                chart=DCGM_EXPORTER_CHART,
                version=standalone.get("version", DCGM_EXPORTER_CHART_VERSION),
                namespace=namespace,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=DCGM_EXPORTER_REPOSITORY),
                values=exporter_values,
                opts=child,
            )
            dcgm_service_monitor(
                f"{name}-dcgm-exporter-monitor",
                namespace=namespace,
                selector={"app.kubernetes.io/name": DCGM_EXPORTER_CHART, "app.kubernetes.io/instance": DCGM_EXPORTER_RELEASE},
                port="metrics",
                labels=standalone.get("service_monitor_labels", {}),
                interval=standalone.get("scrape_interval", "15s"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[release]),
            )

        self.register_outputs({})


def _standalone_values(spec: StandaloneDcgmExporter) -> dict[str, Any]:
    """Helm values of the standalone dcgm-exporter chart: on GPU nodes only, tolerating their taint;
    gpufleet's ServiceMonitor replaces the chart's."""
    unknown = set(spec) - {"version", "service_monitor_labels", "scrape_interval", "tolerations"}
    if unknown:
        raise ValueError(f"{TYPE}: standalone_exporter has unknown keys: {', '.join(sorted(unknown))}")
    return standalone_exporter_values(spec.get("tolerations", ()))


def standalone_exporter_values(extra_tolerations: Sequence[Mapping[str, str]] = ()) -> dict[str, Any]:
    """The values gpufleet sets on the standalone dcgm-exporter chart."""
    tolerations = [dict(GPU_TOLERATION)]
    for toleration in extra_tolerations:
        if dict(toleration) not in tolerations:
            tolerations.append(dict(toleration))
    return {
        "nodeSelector": {ACCELERATOR_LABEL: ACCELERATOR_VALUE},
        "tolerations": tolerations,
        "priorityClassName": "system-node-critical",
        "serviceMonitor": {"enabled": False},
        "service": {"enable": True},
    }
