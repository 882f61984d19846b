"""The values-key walk that catches Helm values a chart would silently ignore."""

from __future__ import annotations

import runpy

import pytest
import yaml

from gpufleet.infra.helm_values import chart_values, unknown_keys
from tests.harness import REPO, stack_config

CHART = yaml.safe_load("""
replicas: 2
nodeSelector: {}
tolerations: []
settings:
  clusterName: ""
  featureGates:
    nodeRepair: false
serviceAccount:
  annotations: {}
""")


def test_known_keys_pass_and_free_form_maps_accept_anything():
    values = {"replicas": 3, "nodeSelector": {"a/b": "c"}, "tolerations": [{"key": "x"}],
              "settings": {"clusterName": "c", "featureGates": {"nodeRepair": True}},
              "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn"}}}
    assert unknown_keys(values, CHART) == []


def test_unknown_keys_are_reported_with_their_path():
    values = {"replica": 1, "settings": {"clustername": "c", "featureGates": {"nodeRepairs": True}}}
    assert unknown_keys(values, CHART) == ["replica", "settings.clustername", "settings.featureGates.nodeRepairs"]


# Charts whose values.yaml is not among the upstream files; what gpufleet sets there is checked by
# the component's own test against the chart's documented keys.
NO_UPSTREAM_VALUES = {"cert-manager": "tests/test_kserve.py checks the cert-manager keys it sets"}


def _chart(release_inputs: dict) -> str:
    return release_inputs["chart"].rstrip("/").rsplit("/", 1)[-1]


@pytest.mark.parametrize("stack", ["dev", "prod", "options", "automode"])
def test_every_release_of_the_stacks_sets_only_keys_its_pinned_chart_defines(run, upstream, stack):
    """Helm ignores a values key the chart does not read, silently: each release of the reference
    stacks is walked against its chart's values.yaml at the pinned tag."""
    recording = run(lambda: runpy.run_path(str(REPO / "infra"), run_name="__main__"), config=stack_config(stack), stack=stack)
    releases = recording.of_type("kubernetes:helm.sh/v3:Release")
    assert len(releases) >= 6
    for release in releases:
        chart = _chart(release.inputs)
        values = release.inputs.get("values") or {}
        if chart in NO_UPSTREAM_VALUES:
            continue
        charts_dir = upstream / "charts" / chart
        if chart == "karpenter-crd":  # CRDs only: no values
            assert values == {}, release.name
            continue
        assert charts_dir.is_dir(), f"{release.name}: no upstream values for chart {chart!r}"
        assert unknown_keys(values, chart_values(charts_dir)) == [], release.name


def test_label_maps_are_free_form_even_with_a_default():
    chart = {"operator": {"nodeSelector": {"kubernetes.io/os": "linux"}, "replicas": 1}}
    assert unknown_keys({"operator": {"nodeSelector": {"gpufleet.io/node-role": "system"}}}, chart) == []
    assert unknown_keys({"operator": {"nodeSelectr": {}}}, chart) == ["operator.nodeSelectr"]


def test_chart_values_merge_vendored_subcharts(tmp_path):
    (tmp_path / "charts" / "nfd").mkdir(parents=True)
    (tmp_path / "values.yaml").write_text("nfd:\n  master:\n    replicas: 2\n")
    (tmp_path / "charts" / "nfd" / "values.yaml").write_text("master:\n  replicas: 1\n  tolerations: []\ngc:\n  enable: true\n")
    assert chart_values(tmp_path) == {"nfd": {"master": {"replicas": 2, "tolerations": []}, "gc": {"enable": True}}}
