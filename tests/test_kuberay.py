"""``KubeRayOperator``: pinned chart, restricted namespace, values the chart knows, system nodes."""

from __future__ import annotations

import pytest
import yaml

from gpufleet.components.kuberay import CHART_VERSION, KubeRayOperator, operator_values
from gpufleet.infra.helm_values import unknown_keys
from tests.harness import child_types

COMPONENT = "gpufleet:kuberay:KubeRayOperator"
RELEASE = "kubernetes:helm.sh/v3:Release"


def operator(args=None):
    def program():
        KubeRayOperator("kuberay", args)
    return program


def test_children_are_exact(run):
    recording = run(operator())
    assert child_types(recording, COMPONENT, name_prefix="kuberay-") == {"kubernetes:core/v1:Namespace": 1, RELEASE: 1}


def test_release_is_pinned_and_installed_into_its_namespace(run):
    recording = run(operator())
    namespace = recording.one("kubernetes:core/v1:Namespace")
    release = recording.one(RELEASE)
    assert release.inputs["chart"] == "kuberay-operator"
    assert release.inputs["version"] == CHART_VERSION == "1.7.0"
    assert release.inputs["repositoryOpts"] == {"repo": "https://ray-project.github.io/kuberay-helm/"}
    assert release.inputs["namespace"] == "kuberay-system"
    assert release.inputs["atomic"] is True
    assert namespace.urn in release.dependencies


def test_namespace_enforces_the_restricted_pod_security_standard(run):
    labels = run(operator({"namespace": "ray-system"})).one("kubernetes:core/v1:Namespace").inputs["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert run(operator({"namespace": "ray-system"})).one(RELEASE).inputs["namespace"] == "ray-system"


def test_operator_runs_ha_on_system_nodes(run):
    values = run(operator()).one(RELEASE).inputs["values"]
    assert values["nodeSelector"] == {"gpufleet.io/node-role": "system"}
    assert values["replicas"] == 2
    assert values["leaderElectionEnabled"] is True
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert values["resources"] == {"limits": {"cpu": "500m", "memory": "1Gi"}}


def test_service_monitor_and_extra_values(run):
    values = run(operator({"service_monitor": True, "extra_values": {"kubeClient": {"qps": 200.0}}})).one(RELEASE).inputs["values"]
    assert values["metrics"]["serviceMonitor"]["enabled"] is True
    assert values["kubeClient"] == {"qps": 200}


@pytest.mark.parametrize("args", [{}, {"service_monitor": True, "replicas": 3, "reconcile_concurrency": 4}])
def test_every_value_key_exists_in_the_chart(upstream, args):
    chart = yaml.safe_load((upstream / "charts" / "kuberay-operator" / "values.yaml").read_text())
    assert unknown_keys(operator_values(args), chart) == []


def test_an_unknown_extra_value_is_caught_by_the_chart_check(upstream):
    chart = yaml.safe_load((upstream / "charts" / "kuberay-operator" / "values.yaml").read_text())
    assert unknown_keys(operator_values({"extra_values": {"replica": 3}}), chart) == ["replica"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"namespace": "Kube_Ray"}, "namespace is not a namespace name"),
        ({"replicas": 0}, "replicas must be an integer from 1 to 5"),
        ({"reconcile_concurrency": 100}, "reconcile_concurrency must be an integer from 1 to 64"),
        ({"service_monitor": "yes"}, "service_monitor must be bool"),
        ({"extra_values": ["replicas"]}, "extra_values must be a mapping"),
    ],
)
def test_argument_errors_name_the_field(args, message):
    with pytest.raises((ValueError, TypeError), match=f"^{COMPONENT}: {message}"):
        KubeRayOperator("kuberay", args)
