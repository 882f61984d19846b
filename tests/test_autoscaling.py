"""``Keda`` and the ScaledObject builders: pinned chart on system nodes with HA, the seeds' HPA
behaviour, trigger shapes, and a built ScaledObject valid against the upstream KEDA CRD."""

from __future__ import annotations

import pytest
import yaml

from gpufleet.components.autoscaling import (
    CHART_VERSION,
    Keda,
    hpa_behavior,
    kafka_trigger,
    keda_values,
    prometheus_trigger,
    scaled_object_spec,
)
from gpufleet.infra.helm_values import unknown_keys
from gpufleet.infra.validation.schema import ManifestValidator
from tests.harness import KUBERNETES_VERSION, child_types

COMPONENT = "gpufleet:autoscaling:Keda"
RELEASE = "kubernetes:helm.sh/v3:Release"


def test_keda_release_is_pinned_on_system_nodes(run):
    recording = run(lambda: Keda("keda"))
    assert child_types(recording, COMPONENT, name_prefix="keda-") == {"kubernetes:core/v1:Namespace": 1, RELEASE: 1}
    release = recording.one(RELEASE).inputs
    assert (release["chart"], release["version"]) == ("keda", CHART_VERSION) == ("keda", "2.20.2")
    assert release["repositoryOpts"] == {"repo": "https://kedacore.github.io/charts"}
    assert release["namespace"] == "keda"
    values = release["values"]
    assert values["nodeSelector"] == {"gpufleet.io/node-role": "system"}
    assert values["operator"]["replicaCount"] == values["metricsServer"]["replicaCount"] == 2
    assert values["podDisruptionBudget"]["metricServer"] == {"minAvailable": 1}


@pytest.mark.parametrize("replicas", [1, 2])
def test_every_keda_value_key_exists_in_the_chart(upstream, replicas):
    chart = yaml.safe_load((upstream / "charts" / "keda" / "values.yaml").read_text())
    assert unknown_keys(keda_values({"replicas": replicas}), chart) == []


def test_single_replica_has_no_disruption_budget():
    assert keda_values({"replicas": 1})["podDisruptionBudget"]["operator"] == {}
    with pytest.raises(ValueError, match=rf"^{COMPONENT}: replicas must be an integer from 1 to 5"):
        keda_values({"replicas": 0})


def test_behaviour_is_the_seeds():
    behavior = hpa_behavior()
    assert behavior["scaleUp"] == {"stabilizationWindowSeconds": 120, "selectPolicy": "Max",
                                   "policies": [{"type": "Pods", "value": 2, "periodSeconds": 300}]}
    assert behavior["scaleDown"] == {"stabilizationWindowSeconds": 600, "selectPolicy": "Min",
                                     "policies": [{"type": "Pods", "value": 1, "periodSeconds": 600}]}


def test_kafka_trigger_needs_its_fields():
    with pytest.raises(ValueError, match=r"^X: queue.topic is required"):
        kafka_trigger({"bootstrap_servers": "k:9092", "consumer_group": "g"}, name="X", field="queue")


def test_a_batch_scaled_object_validates_against_the_keda_crd(upstream):
    spec = scaled_object_spec(
        "batch-embedder", min_replicas=0, max_replicas=8,
        triggers=[kafka_trigger({"bootstrap_servers": "k:9092", "consumer_group": "g", "topic": "t"}, name="X"),
                  prometheus_trigger("queue", "http://prom:9090", "sum(queue_depth)", 100, activation_threshold=1)],
    )
    assert spec["minReplicaCount"] == 0 and spec["cooldownPeriod"] == 600
    manifest = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                "metadata": {"name": "batch", "namespace": "ml"}, "spec": spec}
    assert ManifestValidator(KUBERNETES_VERSION, [upstream / "crds"]).validate(manifest) == []
    assert spec["triggers"][1]["metadata"] == {"serverAddress": "http://prom:9090", "query": "sum(queue_depth)",
                                               "threshold": "100", "activationThreshold": "1"}
