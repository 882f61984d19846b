"""``GpuOperator``: operands per AMI family, sharing per pool, placement of operator and operands,
the DCGM ServiceMonitor, the values-key walk against the pinned chart, and field-named errors."""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml

from gpufleet.components.gpu_instances import instance_types_of
from gpufleet.components.gpu_operator import (
    AMI_SHIPS,
    MIG_MANAGER_DEFAULT_CONFIGS,
    GpuOperator,
    operand_switches,
)
from gpufleet.components.gpu_scheduling import MIG_PROFILES, SHARED_GPU_RESOURCE, GpuPlacement
from gpufleet.infra.helm_values import chart_values, unknown_keys
from tests.harness import child_types

COMPONENT = "gpufleet:nvidia:GpuOperator"
RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
NAMESPACE = "kubernetes:core/v1:Namespace"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def pool(name="gpu", families=("g6e",), **facts) -> GpuPlacement:
    return GpuPlacement(pool=name, instance_types=tuple(instance_types_of(families)), **facts)


WHOLE = pool("serving")
SLICED = pool("gpu-dev", ("g5", "g6"), sharing="time-slicing", time_slicing_replicas=4)
MIG = pool("serving-mig", ("p4de", "p5"), sharing="mig", mig_profile="1g.10gb")
MPS = pool("embed", ("g6",), sharing="mps", mps_replicas=4)


def operator(*placements, **args):
    def program():
        GpuOperator("gpu-op", {"placements": list(placements), **args})
    return program


def values_of(recording) -> dict:
    return recording.one(RELEASE).inputs["values"]


def chart_defaults(upstream) -> dict:
    """The chart's effective defaults, the vendored NFD subchart's values included."""
    return chart_values(upstream / "charts" / "gpu-operator")


def test_children_are_exact_and_ordered(run):
    recording = run(operator(WHOLE, SLICED))
    assert child_types(recording, COMPONENT, name_prefix="gpu-op-") == {NAMESPACE: 1, CONFIG_MAP: 1, RELEASE: 1, SERVICE_MONITOR: 1}
    namespace, config_map, release = recording.one(NAMESPACE), recording.one(CONFIG_MAP), recording.one(RELEASE)
    # The chart reads the device-plugin config at install: it must exist first.
    assert {namespace.urn, config_map.urn} <= set(release.dependencies)
    assert release.urn in recording.one(SERVICE_MONITOR).dependencies


def test_release_is_the_pinned_chart_in_a_privileged_namespace(run):
    recording = run(operator(WHOLE))
    release = recording.one(RELEASE).inputs
    assert (release["chart"], release["version"], release["name"]) == ("gpu-operator", "v26.7.0", "gpu-operator")
    assert release["repositoryOpts"] == {"repo": "https://helm.ngc.nvidia.com/nvidia"}
    assert release["namespace"] == "gpu-operator"
    namespace = recording.one(NAMESPACE).inputs["metadata"]
    assert namespace == {"name": "gpu-operator", "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}


@pytest.mark.parametrize(("family", "expected"), [
    ("al2023", {"driver": False, "toolkit": False, "devicePlugin": True}),
    ("bottlerocket", {"driver": False, "toolkit": False, "devicePlugin": False}),
    ("eks-auto-mode", {"driver": False, "toolkit": False, "devicePlugin": False}),
])
def test_operands_follow_what_the_ami_ships(run, family, expected):
    assert operand_switches([family]) == expected
    values = values_of(run(operator(replace(WHOLE, ami_family=family))))
    assert {key: values[key]["enabled"] for key in expected} == expected


def test_every_ami_family_is_in_the_table():
    assert set(AMI_SHIPS) == {"al2023", "bottlerocket", "eks-auto-mode"}


def test_ami_families_that_disagree_are_refused():
    with pytest.raises(ValueError, match=r"placements\[\]\.ami_family: AMI families al2023 and bottlerocket"):
        GpuOperator("x", {"placements": [WHOLE, replace(pool("br"), ami_family="bottlerocket")]})


def test_operator_runs_on_system_nodes_and_operands_tolerate_the_gpu_taint(run):
    values = values_of(run(operator(WHOLE)))
    assert values["operator"]["nodeSelector"] == {"gpufleet.io/node-role": "system"}
    assert values["node-feature-discovery"]["master"]["nodeSelector"] == {"gpufleet.io/node-role": "system"}
    assert values["node-feature-discovery"]["gc"]["nodeSelector"] == {"gpufleet.io/node-role": "system"}
    assert GPU_TOLERATION in values["daemonsets"]["tolerations"]
    assert GPU_TOLERATION not in values["operator"]["tolerations"]
    assert values["gfd"] == {"enabled": True}
    assert values["nfd"] == {"enabled": True}


def test_operands_also_tolerate_extra_pool_taints(run):
    dedicated = {"key": "gpufleet.io/team", "value": "research", "effect": "NoSchedule"}
    values = values_of(run(operator(WHOLE, replace(pool("research"), extra_taints=(dedicated,)))))
    assert values["daemonsets"]["tolerations"] == [
        GPU_TOLERATION, {"key": "gpufleet.io/team", "operator": "Exists", "effect": "NoSchedule"},
    ]


def test_time_slicing_builds_one_config_entry_per_pool(run):
    other = pool("notebooks", ("g6",), sharing="time-slicing", time_slicing_replicas=2)
    recording = run(operator(WHOLE, SLICED, other))
    config_map = recording.one(CONFIG_MAP).inputs
    assert config_map["metadata"] == {"name": "gpufleet-device-plugin-config", "namespace": "gpu-operator"}
    data = {key: yaml.safe_load(text) for key, text in config_map["data"].items()}
    assert set(data) == {"default", "gpu-dev-time-slicing", "notebooks-time-slicing"}
    assert data["default"] == {"version": "v1", "flags": {"migStrategy": "none"}}
    assert data["gpu-dev-time-slicing"]["sharing"] == {"timeSlicing": {
        "renameByDefault": True,
        "failRequestsGreaterThanOne": True,
        "resources": [{"name": "nvidia.com/gpu", "replicas": 4}],
    }}
    assert data["notebooks-time-slicing"]["sharing"]["timeSlicing"]["resources"][0]["replicas"] == 2
    # Each pool's nodes pick their entry by label; renamed replicas are the shared resource.
    assert SLICED.node_labels()["nvidia.com/device-plugin.config"] == "gpu-dev-time-slicing"
    assert SLICED.gpu_resource == SHARED_GPU_RESOURCE
    values = values_of(recording)
    assert values["devicePlugin"] == {
        "enabled": True,
        "config": {"create": False, "name": "gpufleet-device-plugin-config", "default": "default"},
    }
    assert values["migManager"] == {"enabled": False}


def test_mps_builds_a_sharing_mps_entry_next_to_time_slicing(run):
    recording = run(operator(WHOLE, SLICED, MPS))
    config_map = recording.one(CONFIG_MAP).inputs
    assert config_map["metadata"] == {"name": "gpufleet-device-plugin-config", "namespace": "gpu-operator"}
    assert config_map["data"]["embed-mps"] == (
        "version: v1\n"
        "flags:\n"
        "  migStrategy: none\n"
        "sharing:\n"
        "  mps:\n"
        "    renameByDefault: true\n"
        "    failRequestsGreaterThanOne: true\n"
        "    resources:\n"
        "    - name: nvidia.com/gpu\n"
        "      replicas: 4\n"
    )
    assert set(config_map["data"]) == {"default", "gpu-dev-time-slicing", "embed-mps"}
    assert MPS.node_labels()["nvidia.com/device-plugin.config"] == "embed-mps"
    assert MPS.gpu_resource == SHARED_GPU_RESOURCE
    # The device plugin starts its MPS control daemon for the entry; its host directory is explicit.
    assert values_of(recording)["devicePlugin"] == {
        "enabled": True,
        "config": {"create": False, "name": "gpufleet-device-plugin-config", "default": "default"},
        "mps": {"root": "/run/nvidia/mps"},
    }
    assert "mps" not in values_of(run(operator(WHOLE, SLICED)))["devicePlugin"]


def test_acknowledged_mps_pools_are_named_on_the_config_map(run):
    acknowledged = replace(MPS, no_isolation_acknowledged=True)
    other = pool("rerank", ("g6",), sharing="mps", mps_replicas=2)
    config_map = run(operator(acknowledged, other, production=False)).one(CONFIG_MAP).inputs
    assert config_map["metadata"]["annotations"] == {"gpufleet.io/mps-no-isolation-acknowledged": "embed-mps"}
    config_map = run(operator(acknowledged, production=True)).one(CONFIG_MAP).inputs
    assert config_map["metadata"]["annotations"] == {"gpufleet.io/mps-no-isolation-acknowledged": "embed-mps"}


def test_mig_enables_mig_manager_with_the_strategy(run):
    recording = run(operator(WHOLE, MIG, mig_strategy="mixed"))
    assert recording.of_type(CONFIG_MAP) == []
    values = values_of(recording)
    assert values["mig"] == {"strategy": "mixed"}
    assert values["migManager"] == {"enabled": True}
    assert values["devicePlugin"] == {"enabled": True}
    assert MIG.node_labels()["nvidia.com/mig.config"] == "all-1g.10gb"


def test_mig_single_strategy(run):
    values = values_of(run(operator(replace(MIG, mig_strategy="single"), mig_strategy="single")))
    assert values["mig"] == {"strategy": "single"}


def test_default_entry_carries_the_mig_strategy_when_mig_and_time_slicing_mix(run):
    recording = run(operator(SLICED, MIG))
    default = yaml.safe_load(recording.one(CONFIG_MAP).inputs["data"]["default"])
    assert default == {"version": "v1", "flags": {"migStrategy": "mixed"}}


def test_no_sharing_leaves_device_plugin_config_and_mig_manager_off(run):
    recording = run(operator(WHOLE))
    assert recording.of_type(CONFIG_MAP) == []
    values = values_of(recording)
    assert "config" not in values["devicePlugin"]
    assert values["migManager"] == {"enabled": False}


def test_every_mig_profile_has_a_default_mig_manager_layout():
    for profiles in MIG_PROFILES.values():
        for profile in profiles:
            assert f"all-{profile}" in MIG_MANAGER_DEFAULT_CONFIGS


def test_dcgm_exporter_is_on_and_scraped_by_gpufleets_service_monitor(run):
    recording = run(operator(WHOLE, service_monitor_labels={"release": "kube-prometheus-stack"}, scrape_interval="30s"))
    values = values_of(recording)
    assert values["dcgmExporter"] == {"enabled": True, "serviceMonitor": {"enabled": False}}
    monitor = recording.one(SERVICE_MONITOR).inputs
    assert monitor["metadata"] == {"name": "gpufleet-dcgm-exporter", "namespace": "gpu-operator",
                                   "labels": {"release": "kube-prometheus-stack"}}
    assert monitor["spec"]["selector"] == {"matchLabels": {"app": "nvidia-dcgm-exporter"}}
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["gpu-operator"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("gpu-metrics", "/metrics", "30s")
    # The workload's pod/namespace labels (set by the exporter) must survive the scrape.
    assert endpoint["honorLabels"] is True
    assert endpoint["relabelings"] == [
        {"action": "replace", "sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"},
        # Idle GPUs carry no pod of their own: the exporter pod's target labels must not fill it in.
        {"action": "labeldrop", "regex": "pod|namespace|container"},
    ]


def test_without_service_monitor_nothing_is_rendered(run):
    recording = run(operator(WHOLE, service_monitor=False))
    assert recording.of_type(SERVICE_MONITOR) == []


def test_extra_values_are_merged_over_gpufleets(run):
    values = values_of(run(operator(WHOLE, extra_values={"driver": {"enabled": True}, "psa": {"enabled": True}})))
    assert values["driver"] == {"enabled": True}
    assert values["psa"] == {"enabled": True}
    assert values["toolkit"] == {"enabled": False}


@pytest.mark.parametrize("placements", [
    [WHOLE], [SLICED], [MIG], [MPS], [WHOLE, SLICED, MPS, MIG], [replace(WHOLE, ami_family="bottlerocket")],
], ids=["none", "time-slicing", "mig", "mps", "all-modes", "bottlerocket"])
def test_every_values_key_exists_in_the_pinned_chart(run, upstream, placements):
    values = values_of(run(operator(*placements)))
    assert unknown_keys(values, chart_defaults(upstream)) == []


def test_the_values_walk_would_catch_a_misspelt_key(upstream):
    misspelt = {"devicePlugin": {"configs": {"name": "x"}}, "migmanager": {"enabled": True},
                "node-feature-discovery": {"master": {"nodeselector": {}}}}
    assert unknown_keys(misspelt, chart_defaults(upstream)) == [
        "devicePlugin.configs", "migmanager", "node-feature-discovery.master.nodeselector",
    ]


@pytest.mark.parametrize(("placements", "args", "message"), [
    ([], {}, r"placements is required"),
    (["serving"], {}, r"placements\[0\] must be a GpuPlacement"),
    ([WHOLE, WHOLE], {}, r"placements\[1\]\.pool 'serving' appears twice"),
    ([replace(SLICED, time_slicing_replicas=1)], {}, r"placements\[0\] \(gpu-dev\): time_slicing_replicas must be at least 2"),
    ([pool("g", ("g6e",), sharing="mig", mig_profile="1g.10gb")], {}, r"placements\[0\] \(g\): mig needs MIG-capable .*not capable: g6e"),
    ([pool("a", ("p5",), sharing="mig", mig_profile="1g.5gb")], {}, r"mig_profile '1g.5gb' does not exist on p5\.4xlarge"),
    ([pool("a", ("p5e",), sharing="mig", mig_profile="1g.10gb")], {}, r"does not exist on p5e\.48xlarge \(NVIDIA H200 141GB\)"),
    ([replace(SLICED, ami_family="bottlerocket")], {}, r"Bottlerocket ships its own"),
    ([replace(MPS, ami_family="bottlerocket")], {}, r"placements\[0\] \(embed\): sharing mps needs the GPU Operator's device plugin, but Bottlerocket ships its own"),
    ([replace(MPS, mps_replicas=64)], {}, r"placements\[0\] \(embed\): mps_replicas must be from 2 to 48 \(MPS clients per GPU\), got 64"),
    ([replace(MPS, mig_profile="1g.10gb")], {}, r"placements\[0\] \(embed\): mps cannot share MIG devices"),
    ([WHOLE, MPS], {"production": True}, r"placements\[1\] \(embed\): MPS in production needs no_isolation_acknowledged "
     r"\(sharing.acknowledge_no_isolation\): MPS clients have no fault isolation"),
    ([WHOLE], {"production": "yes"}, r"production must be true or false"),
    ([MIG], {"mig_strategy": "single"}, r"placements\[0\]\.mig_strategy \(mixed\) differs from mig_strategy \(single\)"),
    ([WHOLE], {"mig_strategy": "none"}, r"mig_strategy must be one of"),
    ([WHOLE], {"dcgm_exporter": False}, r"service_monitor needs dcgm_exporter"),
])
def test_argument_errors_name_the_field(placements, args, message):
    with pytest.raises((ValueError, TypeError), match=message) as caught:
        GpuOperator("x", {"placements": placements, **args})
    assert str(caught.value).startswith(f"{COMPONENT}: ")
