"""``GpuMonitoring``: the seeds' alerts plus XID, gpufleet's dashboard, the standalone DCGM exporter
(values walked against its pinned chart) and its ServiceMonitor, and field-named errors."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import yaml

from gpufleet.components.gpu_monitoring import GpuMonitoring, alert_rules, dashboard, standalone_exporter_values
from gpufleet.infra.helm_values import unknown_keys
from tests.promql_eval import evaluate, labels

DEFAULTS = {"memory_usage_percent": 90, "kv_cache_usage_percent": 90, "low_utilization_percent": 20, "temperature_celsius": 85}

COMPONENT = "gpufleet:monitoring:GpuMonitoring"
RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
RELEASE = "kubernetes:helm.sh/v3:Release"


def monitoring(**args):
    def program():
        GpuMonitoring("gpu-mon", {"namespace": "gpu-operator", **args})
    return program


def rules_of(recording) -> dict[str, dict]:
    (group,) = recording.one(RULE).inputs["spec"]["groups"]
    return {rule["alert"]: rule for rule in group["rules"]}


def dashboard_of(recording) -> dict:
    config_map = recording.one(CONFIG_MAP).inputs
    return json.loads(config_map["data"]["gpufleet-gpus.json"])


def test_children_are_exact(run):
    recording = run(monitoring())
    children = recording.children(recording.one(COMPONENT).urn)
    assert Counter(c.type for c in children) == {RULE: 1, CONFIG_MAP: 1}
    assert all(c.name.startswith("gpu-mon-") for c in children)


def test_alerts_are_the_seeds_plus_xid_and_kv_cache(run):
    rules = rules_of(run(monitoring(rule_labels={"release": "kube-prometheus-stack"})))
    assert set(rules) == {"HighGPUMemoryUsage", "HighVLLMKVCacheUsage", "LowGPUUtilization", "HighGPUTemperature", "GPUXidError"}
    workload = 'pod!="", pod!~"(nvidia-)?dcgm-exporter-.+", container!="kserve-container"'
    assert rules["HighGPUMemoryUsage"]["expr"] == (
        f"((DCGM_FI_DEV_FB_USED{{{workload}}} / (DCGM_FI_DEV_FB_USED{{{workload}}} + DCGM_FI_DEV_FB_FREE{{{workload}}}))"
        " * 100 > 90) unless on (namespace, pod) vllm:kv_cache_usage_perc"
    )
    assert rules["HighGPUMemoryUsage"]["for"] == "5m"
    assert rules["HighVLLMKVCacheUsage"]["expr"] == "max by (namespace, pod, model_name) (vllm:kv_cache_usage_perc) * 100 > 90"
    assert rules["HighVLLMKVCacheUsage"]["for"] == "5m"
    assert rules["LowGPUUtilization"]["expr"] == (
        '(avg_over_time(DCGM_FI_DEV_GPU_UTIL{GPU_I_ID=""}[1h])'
        ' or avg_over_time(DCGM_FI_PROF_GR_ENGINE_ACTIVE{GPU_I_ID!=""}[1h]) * 100) < 20'
    )
    assert rules["LowGPUUtilization"]["for"] == "2h"
    assert rules["HighGPUTemperature"]["expr"] == "DCGM_FI_DEV_GPU_TEMP > 85"
    assert rules["HighGPUTemperature"]["for"] == "5m"
    assert rules["GPUXidError"]["expr"] == "(DCGM_FI_DEV_XID_ERRORS > 0) and (changes(DCGM_FI_DEV_XID_ERRORS[10m]) > 0)"
    assert "for" not in rules["GPUXidError"]
    assert rules["GPUXidError"]["labels"] == {"severity": "critical"}
    assert "reported XID {{ $value }} in the last 10m" in rules["GPUXidError"]["annotations"]["description"]
    assert all(rule["annotations"]["summary"] and rule["annotations"]["description"] for rule in rules.values())


def _xid(samples, **extra):
    return {labels("DCGM_FI_DEV_XID_ERRORS", Hostname="n1", gpu="0", **extra): samples}


def test_xid_alert_fires_on_a_new_xid_and_clears_while_the_gauge_keeps_it():
    """DCGM_FI_DEV_XID_ERRORS is a gauge holding the last XID: the alert fires when it changes, with
    the XID code as its value, and clears 10 minutes later although the gauge still reads 79."""
    (rule,) = [r for r in alert_rules(DEFAULTS) if r["alert"] == "GPUXidError"]
    # Scraped every 15 s for an hour: 0 until t=600, then XID 79.
    series = _xid([(t, 0.0 if t < 600 else 79.0) for t in range(0, 3600, 15)])
    firing = {t: evaluate(rule["expr"], series, t) for t in (300, 600, 900, 1150, 1300, 3000)}
    assert firing[300] == {} and firing[1300] == {} and firing[3000] == {}
    assert list(firing[600].values()) == [79.0] and list(firing[1150].values()) == [79.0]
    # Today's expression never clears.
    assert evaluate("DCGM_FI_DEV_XID_ERRORS > 0", series, 3000) != {}


def test_xid_alert_ignores_an_old_xid_on_a_new_series_and_a_reset():
    (rule,) = [r for r in alert_rules(DEFAULTS) if r["alert"] == "GPUXidError"]
    # A pod starts using the GPU: a new series (pod label) that carries the old XID from its first sample.
    series = _xid([(t, 79.0) for t in range(600, 1800, 15)], pod="trainer-0", namespace="ml")
    assert evaluate(rule["expr"], series, 900) == {}
    reset = _xid([(t, 79.0 if t < 600 else 0.0) for t in range(0, 1800, 15)])
    assert evaluate(rule["expr"], reset, 700) == {}
    # A different XID after the first one fires again, with the new code.
    repeat = _xid([(t, 79.0 if t < 1200 else 48.0) for t in range(0, 1800, 15)])
    assert list(evaluate(rule["expr"], repeat, 1300).values()) == [48.0]


def _gpu(gpu: str, used: float, free: float, **pod) -> dict:
    samples = range(0, 600, 15)
    return {
        labels("DCGM_FI_DEV_FB_USED", Hostname="n1", gpu=gpu, **pod): [(t, used) for t in samples],
        labels("DCGM_FI_DEV_FB_FREE", Hostname="n1", gpu=gpu, **pod): [(t, free) for t in samples],
    }


def test_memory_alert_leaves_out_vllm_and_the_exporters_own_series():
    """vLLM reserves --gpu-memory-utilization (0.9) plus the CUDA context at start: its framebuffer use is
    no signal. A training pod at 95 % is; an idle GPU scraped with the exporter's pod label is no pod."""
    (rule,) = [r for r in alert_rules(DEFAULTS) if r["alert"] == "HighGPUMemoryUsage"]
    series = {
        # A KServe vLLM predictor: 0.9 of 46068 MiB reserved plus the context.
        **_gpu("0", 42000, 4068, pod="chat-8b-predictor-abc", namespace="serving", container="kserve-container"),
        # vLLM in a plain pod that Prometheus scrapes (its KV-cache gauge exists).
        **_gpu("1", 42000, 4068, pod="vllm-0", namespace="research", container="vllm"),
        labels("vllm:kv_cache_usage_perc", pod="vllm-0", namespace="research", model_name="m"): [(t, 0.3) for t in range(0, 600, 15)],
        # A training pod really running out of memory.
        **_gpu("2", 44000, 2068, pod="trainer-0", namespace="research", container="pytorch"),
        # Series of another monitor that still carry the exporter's pod (honorLabels fill-in).
        **_gpu("3", 44000, 2068, pod="nvidia-dcgm-exporter-x7k2p", namespace="gpu-operator", container="nvidia-dcgm-exporter"),
    }
    fired = evaluate(rule["expr"], series, 590)
    assert [dict(key)["pod"] for key in fired] == ["trainer-0"]
    # Today's expression pages for every vLLM GPU (and the exporter's).
    old = "(DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)) * 100 > 90"
    assert len(evaluate(old, series, 590)) == 4


def test_kv_cache_alert_reads_vllms_gauge():
    (rule,) = [r for r in alert_rules(DEFAULTS) if r["alert"] == "HighVLLMKVCacheUsage"]
    gauge = "vllm:kv_cache_usage_perc"
    series = {
        labels(gauge, pod="a", namespace="serving", model_name="chat-8b", engine="0"): [(0, 0.97)],
        labels(gauge, pod="a", namespace="serving", model_name="chat-8b", engine="1"): [(0, 0.2)],
        labels(gauge, pod="b", namespace="serving", model_name="chat-8b", engine="0"): [(0, 0.5)],
    }
    assert evaluate(rule["expr"], series, 10) == {
        frozenset({("namespace", "serving"), ("pod", "a"), ("model_name", "chat-8b")}): pytest.approx(97.0)}


def test_per_pod_panels_leave_out_idle_gpus_and_the_exporter():
    board = dashboard()
    per_pod = [p for p in board["panels"] if p["title"].endswith("per pod") and "DCGM" in p["targets"][0]["expr"]]
    assert len(per_pod) == 4
    samples = [(t, 50.0) for t in range(0, 300, 15)]
    series = {
        labels("DCGM_FI_DEV_POWER_USAGE", Hostname="n1", gpu="0", pod="trainer-0", namespace="research", container="pytorch"): samples,
        labels("DCGM_FI_DEV_POWER_USAGE", Hostname="n1", gpu="1"): samples,  # idle, gpufleet's monitor
        labels("DCGM_FI_DEV_POWER_USAGE", Hostname="n1", gpu="2", pod="dcgm-exporter-4hx9d", namespace="gpu-operator"): samples,
    }
    (power,) = [p for p in per_pod if p["title"] == "Power per pod"]
    expr = power["targets"][0]["expr"].replace('"$hostname"', '".*"').replace('"$namespace"', '".*"')
    assert [dict(k)["pod"] for k in evaluate(expr, series, 290)] == ["trainer-0"]
    for panel in per_pod:
        assert 'pod!="", pod!~"(nvidia-)?dcgm-exporter-.+"' in panel["targets"][0]["expr"]


def test_every_rendered_expression_parses():
    """Every alert, panel and variable query is valid PromQL (promql-parser, Prometheus' grammar)."""
    import promql_parser

    board = dashboard()
    exprs = [rule["expr"] for rule in alert_rules(DEFAULTS)]
    exprs += [target["expr"].replace("$hostname", ".*").replace("$namespace", ".*")
              for panel in board["panels"] for target in panel["targets"]]
    for expr in exprs:
        promql_parser.parse(expr)
    assert len(exprs) == 5 + 9


def test_rule_carries_the_prometheus_selector_labels(run):
    metadata = run(monitoring(rule_labels={"release": "kube-prometheus-stack"})).one(RULE).inputs["metadata"]
    assert metadata == {"name": "gpufleet-gpu-alerts", "namespace": "gpu-operator", "labels": {"release": "kube-prometheus-stack"}}


def test_thresholds_are_configurable(run):
    rules = rules_of(run(monitoring(thresholds={"memory_usage_percent": 95, "kv_cache_usage_percent": 80,
                                                "low_utilization_percent": 10, "temperature_celsius": 80})))
    assert "* 100 > 95) unless" in rules["HighGPUMemoryUsage"]["expr"]
    assert rules["HighVLLMKVCacheUsage"]["expr"].endswith("* 100 > 80")
    assert rules["LowGPUUtilization"]["expr"].endswith("< 10")
    assert rules["HighGPUTemperature"]["expr"] == "DCGM_FI_DEV_GPU_TEMP > 80"


def test_dashboard_config_map_is_loaded_by_the_grafana_sidecar(run):
    metadata = run(monitoring()).one(CONFIG_MAP).inputs["metadata"]
    assert metadata == {"name": "gpufleet-gpu-dashboard", "namespace": "gpu-operator", "labels": {"grafana_dashboard": "1"}}
    custom = run(monitoring(dashboard_labels={"dashboards": "gpu"})).one(CONFIG_MAP).inputs["metadata"]["labels"]
    assert custom == {"dashboards": "gpu"}


def test_dashboard_shows_each_metric_per_gpu_and_per_pod(run):
    board = dashboard_of(run(monitoring()))
    assert board["uid"] == "gpufleet-gpus"
    panels = {panel["title"]: panel for panel in board["panels"]}
    for metric, title in [("DCGM_FI_DEV_GPU_UTIL", "Utilisation"), ("DCGM_FI_DEV_FB_USED", "Memory used"),
                          ("DCGM_FI_DEV_GPU_TEMP", "Temperature"), ("DCGM_FI_DEV_POWER_USAGE", "Power")]:
        per_gpu = panels[f"{title} per GPU"]["targets"][0]
        per_pod = panels[f"{title} per pod"]["targets"][0]
        assert metric in per_gpu["expr"] and "by (Hostname, gpu)" in per_gpu["expr"]
        assert metric in per_pod["expr"] and "by (namespace, pod)" in per_pod["expr"]
        assert per_pod["legendFormat"] == "{{namespace}}/{{pod}}"
    assert "DCGM_FI_DEV_FB_FREE" in panels["Memory used per GPU"]["targets"][0]["expr"]
    assert panels["vLLM KV-cache usage per pod"]["targets"][0]["expr"] == (
        'max by (namespace, pod) (vllm:kv_cache_usage_perc{namespace=~"$namespace"})')
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)) == 9
    # No two panels overlap on the grid.
    cells = [(p["gridPos"]["x"], p["gridPos"]["y"]) for p in board["panels"]]
    assert len(set(cells)) == len(cells)
    variables = {v["name"] for v in board["templating"]["list"]}
    assert variables == {"datasource", "hostname", "namespace"}
    assert all(t["datasource"] == {"type": "prometheus", "uid": "${datasource}"} for t in board["panels"])


def test_utilisation_is_mig_aware_without_counting_a_gpu_twice(run):
    """MIG instances report no DCGM_FI_DEV_GPU_UTIL: their graphics-engine activity (0..1) stands in,
    taken only from MIG instances (GPU_I_ID set) so a whole GPU reporting both metrics counts once."""
    recording = run(monitoring())
    whole = 'DCGM_FI_DEV_GPU_UTIL{Hostname=~"$hostname", GPU_I_ID=""}'
    mig = 'DCGM_FI_PROF_GR_ENGINE_ACTIVE{Hostname=~"$hostname", GPU_I_ID!=""} * 100'
    panels = {panel["title"]: panel for panel in dashboard_of(recording)["panels"]}
    assert panels["Utilisation per GPU"]["targets"][0]["expr"] == f"avg by (Hostname, gpu) ({whole} or {mig})"
    per_pod = panels["Utilisation per pod"]["targets"][0]["expr"]
    pod = 'pod!="", pod!~"(nvidia-)?dcgm-exporter-.+"'
    assert per_pod == (
        'avg by (namespace, pod) ('
        f'DCGM_FI_DEV_GPU_UTIL{{Hostname=~"$hostname", namespace=~"$namespace", {pod}, GPU_I_ID=""}} or '
        f'DCGM_FI_PROF_GR_ENGINE_ACTIVE{{Hostname=~"$hostname", namespace=~"$namespace", {pod}, GPU_I_ID!=""}} * 100)'
    )
    low = rules_of(recording)["LowGPUUtilization"]["expr"]
    assert 'DCGM_FI_PROF_GR_ENGINE_ACTIVE{GPU_I_ID!=""}[1h]' in low and 'DCGM_FI_DEV_GPU_UTIL{GPU_I_ID=""}[1h]' in low
    assert "{{ with $labels.GPU_I_PROFILE }} (MIG {{ . }} instance {{ $labels.GPU_I_ID }}){{ end }}" in (
        rules_of(recording)["LowGPUUtilization"]["annotations"]["description"])
    # The node and namespace pickers list MIG nodes too: they read a metric MIG instances report.
    variables = {v["name"]: v for v in dashboard_of(recording)["templating"]["list"]}
    assert variables["hostname"]["definition"] == "label_values(DCGM_FI_DEV_FB_USED, Hostname)"
    assert variables["namespace"]["definition"] == (
        'label_values(DCGM_FI_DEV_FB_USED{pod!="", pod!~"(nvidia-)?dcgm-exporter-.+"}, namespace)')


def test_standalone_exporter_installs_the_chart_and_its_service_monitor(run):
    recording = run(monitoring(standalone_exporter={"service_monitor_labels": {"release": "prom"}, "scrape_interval": "30s"}))
    release = recording.one(RELEASE)
    inputs = release.inputs
    assert (inputs["chart"], inputs["version"], inputs["name"], inputs["namespace"]) == ("dcgm-exporter", "4.8.2", "dcgm-exporter", "gpu-operator")
    assert inputs["repositoryOpts"] == {"repo": "https://nvidia.github.io/dcgm-exporter/helm-charts"}
    values = inputs["values"]
    assert values["nodeSelector"] == {"accelerator": "nvidia-gpu"}
    assert values["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert values["serviceMonitor"] == {"enabled": False}
    monitor = recording.one(SERVICE_MONITOR)
    assert release.urn in monitor.dependencies
    spec = monitor.inputs["spec"]
    assert spec["selector"] == {"matchLabels": {"app.kubernetes.io/name": "dcgm-exporter", "app.kubernetes.io/instance": "dcgm-exporter"}}
    (endpoint,) = spec["endpoints"]
    assert (endpoint["port"], endpoint["interval"]) == ("metrics", "30s")
    # Idle GPUs' series must not inherit the exporter pod's own target labels.
    assert endpoint["honorLabels"] is True
    assert {"action": "labeldrop", "regex": "pod|namespace|container"} in endpoint["relabelings"]
    assert monitor.inputs["metadata"]["labels"] == {"release": "prom"}


def test_standalone_exporter_tolerates_extra_pool_taints(run):
    team = {"key": "gpufleet.io/team", "operator": "Exists", "effect": "NoSchedule"}
    gpu = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    recording = run(monitoring(standalone_exporter={"tolerations": [gpu, team]}))
    assert recording.one(RELEASE).inputs["values"]["tolerations"] == [gpu, team]


def test_without_standalone_exporter_there_is_no_release(run):
    recording = run(monitoring())
    assert recording.of_type(RELEASE) == [] and recording.of_type(SERVICE_MONITOR) == []


def test_standalone_values_exist_in_the_pinned_chart(upstream):
    chart = yaml.safe_load((upstream / "charts" / "dcgm-exporter" / "values.yaml").read_text())
    assert unknown_keys(standalone_exporter_values(), chart) == []


@pytest.mark.parametrize(("args", "message"), [
    ({"namespace": None}, r"namespace is required"),
    ({"thresholds": {"memory_usage_percent": 120}}, r"thresholds\.memory_usage_percent must be an integer from 1 to 100"),
    ({"thresholds": {"temperature_celsius": 10}}, r"thresholds\.temperature_celsius must be an integer from 40"),
    ({"thresholds": {"memory": 90}}, r"thresholds has unknown keys: memory"),
    ({"standalone_exporter": {"versions": "1"}}, r"standalone_exporter has unknown keys: versions"),
])
def test_argument_errors_name_the_field(args, message):
    with pytest.raises((ValueError, TypeError), match=message) as caught:
        GpuMonitoring("x", {"namespace": "gpu-operator", **args})
    assert str(caught.value).startswith(f"{COMPONENT}: ")
