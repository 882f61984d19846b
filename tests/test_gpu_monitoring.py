"""``GpuMonitoring``: the seeds' alerts plus XID, gpufleet's dashboard, the standalone DCGM exporter
(values walked against its pinned chart) and its ServiceMonitor, and field-named errors."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import yaml

from gpufleet.components.gpu_monitoring import GpuMonitoring, standalone_exporter_values
from gpufleet.infra.helm_values import unknown_keys

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


def test_alerts_are_the_seeds_plus_xid(run):
    rules = rules_of(run(monitoring(rule_labels={"release": "kube-prometheus-stack"})))
    assert set(rules) == {"HighGPUMemoryUsage", "LowGPUUtilization", "HighGPUTemperature", "GPUXidError"}
    assert rules["HighGPUMemoryUsage"]["expr"] == "(DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE)) * 100 > 90"
    assert rules["HighGPUMemoryUsage"]["for"] == "5m"
    assert rules["LowGPUUtilization"]["expr"] == (
        '(avg_over_time(DCGM_FI_DEV_GPU_UTIL{GPU_I_ID=""}[1h])'
        ' or avg_over_time(DCGM_FI_PROF_GR_ENGINE_ACTIVE{GPU_I_ID!=""}[1h]) * 100) < 20'
    )
    assert rules["LowGPUUtilization"]["for"] == "2h"
    assert rules["HighGPUTemperature"]["expr"] == "DCGM_FI_DEV_GPU_TEMP > 85"
    assert rules["HighGPUTemperature"]["for"] == "5m"
    assert rules["GPUXidError"]["expr"] == "DCGM_FI_DEV_XID_ERRORS > 0"
    assert rules["GPUXidError"]["labels"] == {"severity": "critical"}
    assert all(rule["annotations"]["summary"] and rule["annotations"]["description"] for rule in rules.values())


def test_rule_carries_the_prometheus_selector_labels(run):
    metadata = run(monitoring(rule_labels={"release": "kube-prometheus-stack"})).one(RULE).inputs["metadata"]
    assert metadata == {"name": "gpufleet-gpu-alerts", "namespace": "gpu-operator", "labels": {"release": "kube-prometheus-stack"}}


def test_thresholds_are_configurable(run):
    rules = rules_of(run(monitoring(thresholds={"memory_usage_percent": 95, "low_utilization_percent": 10, "temperature_celsius": 80})))
    assert rules["HighGPUMemoryUsage"]["expr"].endswith("* 100 > 95")
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
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)) == 8
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
    assert per_pod == (
        'avg by (namespace, pod) ('
        'DCGM_FI_DEV_GPU_UTIL{Hostname=~"$hostname", namespace=~"$namespace", pod!="", GPU_I_ID=""} or '
        'DCGM_FI_PROF_GR_ENGINE_ACTIVE{Hostname=~"$hostname", namespace=~"$namespace", pod!="", GPU_I_ID!=""} * 100)'
    )
    low = rules_of(recording)["LowGPUUtilization"]["expr"]
    assert 'DCGM_FI_PROF_GR_ENGINE_ACTIVE{GPU_I_ID!=""}[1h]' in low and 'DCGM_FI_DEV_GPU_UTIL{GPU_I_ID=""}[1h]' in low
    assert "{{ with $labels.GPU_I_PROFILE }} (MIG {{ . }} instance {{ $labels.GPU_I_ID }}){{ end }}" in (
        rules_of(recording)["LowGPUUtilization"]["annotations"]["description"])
    # The node and namespace pickers list MIG nodes too: they read a metric MIG instances report.
    variables = {v["name"]: v for v in dashboard_of(recording)["templating"]["list"]}
    assert variables["hostname"]["definition"] == "label_values(DCGM_FI_DEV_FB_USED, Hostname)"
    assert variables["namespace"]["definition"] == "label_values(DCGM_FI_DEV_FB_USED, namespace)"


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
