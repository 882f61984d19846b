"""The values-key walk that catches Helm values a chart would silently ignore."""

from __future__ import annotations

import yaml

from gpufleet.infra.helm_values import unknown_keys

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
