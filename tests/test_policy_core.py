"""The policy engine: subjects, config, values as the engine sends them, pod template extraction."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gpufleet.policies.core import (
    Malformed, PolicyConfig, Rule, RuleContext, Subject, Violation, as_number, evaluate, is_unknown, kubernetes_type,
    parse_quantity,
)
from gpufleet.policies.pod_templates import pod_templates
from gpufleet.policies.rules import RULES_BY_NAME


class Unknown:
    """The engine's preview sentinel."""


@pytest.mark.parametrize("api_version,kind,token", [
    ("v1", "Pod", "kubernetes:core/v1:Pod"),
    ("apps/v1", "Deployment", "kubernetes:apps/v1:Deployment"),
    ("serving.kserve.io/v1beta1", "InferenceService", "kubernetes:serving.kserve.io/v1beta1:InferenceService"),
    ("karpenter.sh/v1", "NodePool", "kubernetes:karpenter.sh/v1:NodePool"),
])
def test_type_token_from_manifest(api_version, kind, token):
    assert kubernetes_type(api_version, kind) == token
    subject = Subject.from_manifest({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}})
    assert (subject.type, subject.name, subject.kind, subject.api_version) == (token, "x", kind, api_version)
    assert subject.is_kubernetes


def test_subject_helpers():
    pod = Subject.from_manifest({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}}})
    assert (pod.namespace, pod.group, pod.labels) == ("default", "", {"a": "b"})
    pool = Subject.from_manifest({"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": "gpu"}})
    assert pool.namespace == "" and pool.is_a("karpenter.sh", "NodePool")
    # A Pulumi resource: logical name; metadata.name from auto-naming is absent.
    deployment = Subject("kubernetes:apps/v1:Deployment", "llm", {"metadata": {"namespace": "serving"}})
    assert (deployment.kind, deployment.object_name, deployment.namespace, deployment.api_version) == (
        "Deployment", "llm", "serving", "apps/v1")
    release = Subject("kubernetes:helm.sh/v3:Release", "gpu-operator", {"chart": "gpu-operator", "namespace": "gpu"})
    assert (release.is_kubernetes, release.is_helm_release, release.kind, release.namespace) == (
        False, True, "Release", "gpu")
    cluster = Subject("aws:eks/cluster:Cluster", "c", {})
    assert (cluster.is_kubernetes, cluster.kind, cluster.namespace, cluster.api_version) == (False, "Cluster", "", "")
    unknown_ns = Subject.from_manifest({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p",
                                                                                       "namespace": Unknown()}})
    assert unknown_ns.namespace == ""


def test_values_from_the_engine():
    assert as_number(2.0) == 2 and as_number("3") == 3 and as_number(True) is None and as_number(Unknown()) is None
    assert is_unknown(Unknown()) and not is_unknown(None) and not is_unknown({"a": 1}) and not is_unknown(2.0)
    assert parse_quantity("500m") == Decimal("0.5")
    assert parse_quantity("4Gi") == 4 * 2 ** 30
    assert parse_quantity(2.0) == 2 and parse_quantity(1) == 1 and parse_quantity(Unknown()) is None
    with pytest.raises(Malformed):
        parse_quantity("one")


def test_config_from_pack_config_json():
    config = PolicyConfig.from_mapping({
        "all": "advisory",
        "production": True,
        "gpu-pdb-required": "mandatory",
        "gpu-probes-generous": {"enforcementLevel": "disabled", "minInitialDelaySeconds": 30},
        "gpu-hpa-stabilization": {"minScaleDownStabilizationSeconds": 900},
    })
    assert config.production
    assert config.enforcement_for(RULES_BY_NAME["gpu-pdb-required"]) == "mandatory"
    assert config.enforcement_for(RULES_BY_NAME["gpu-probes-generous"]) == "disabled"
    assert config.enforcement_for(RULES_BY_NAME["gpu-shm-volume"]) == "advisory"  # from "all"
    assert config.settings_for(RULES_BY_NAME["gpu-probes-generous"]) == {"minInitialDelaySeconds": 30}
    assert config.context_for(RULES_BY_NAME["gpu-hpa-stabilization"]) == RuleContext(
        {**RULES_BY_NAME["gpu-hpa-stabilization"].defaults, "minScaleDownStabilizationSeconds": 900}, production=True)
    assert PolicyConfig.from_mapping({"all": {"enforcementLevel": "mandatory"}}).all == "mandatory"
    assert PolicyConfig.from_mapping({"x": "remediate"}).enforcement == {"x": "mandatory"}


def test_config_defaults_follow_production():
    eks = RULES_BY_NAME["eks-endpoint-private"]
    assert PolicyConfig().enforcement_for(eks) == "advisory"
    assert PolicyConfig(production=True).enforcement_for(eks) == "mandatory"
    assert PolicyConfig(production=True).enforcement_for(RULES_BY_NAME["gpu-model-weights-pvc"]) == "advisory"


@pytest.mark.parametrize("data,error", [
    ({"gpu-pdb-required": "strict"}, "gpu-pdb-required.enforcementLevel must be one of mandatory, advisory, disabled"),
    ({"production": "yes"}, "production must be true or false"),
    ({"gpu-pdb-required": 3}, "gpu-pdb-required must be a level or an object"),
])
def test_config_errors_name_the_key(data, error):
    with pytest.raises(ValueError, match=error):
        PolicyConfig.from_mapping(data)


def test_evaluate_runs_resource_and_stack_checks_with_levels():
    seen = []
    rule_a = Rule("a", "resource rule", check_resource=lambda s, c: ["bad"] if s.name == "x" else [])
    rule_b = Rule("b", "stack rule", enforcement="advisory",
                  check_stack=lambda subjects, c: seen.append(c.production) or [(subjects[0], "all bad")])
    subjects = [Subject.from_manifest({"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": {"name": n, "namespace": "ns"}}) for n in ("x", "y")]
    found = evaluate(subjects, PolicyConfig(production=True), rules=[rule_a, rule_b])
    assert found == [
        Violation("a", "mandatory", "ConfigMap", "ns", "x", "bad"),
        Violation("b", "advisory", "ConfigMap", "ns", "x", "all bad"),
    ]
    assert seen == [True]
    assert str(found[0]) == "[mandatory] a: ConfigMap ns/x: bad"


# ---- every place a pod template lives ------------------------------------------------------------

GPU = {"name": "c", "image": "i", "resources": {"limits": {"nvidia.com/gpu": 1}}}
POD_SPEC = {"containers": [GPU]}
TEMPLATE = {"metadata": {"labels": {"app": "a"}}, "spec": POD_SPEC}


def manifest(api_version, kind, spec, name="w"):
    return Subject.from_manifest({"apiVersion": api_version, "kind": kind,
                                  "metadata": {"name": name, "namespace": "ns"}, "spec": spec})


@pytest.mark.parametrize("subject,paths,replicas", [
    (manifest("v1", "Pod", POD_SPEC), ["spec"], [(1, 1)]),
    (manifest("apps/v1", "Deployment", {"replicas": 3, "template": TEMPLATE}), ["spec.template.spec"], [(3, 3)]),
    (manifest("apps/v1", "StatefulSet", {"template": TEMPLATE}), ["spec.template.spec"], [(1, 1)]),
    (manifest("apps/v1", "DaemonSet", {"template": TEMPLATE}), ["spec.template.spec"], [(None, None)]),
    (manifest("apps/v1", "ReplicaSet", {"replicas": 2.0, "template": TEMPLATE}), ["spec.template.spec"], [(2, 2)]),
    (manifest("batch/v1", "Job", {"parallelism": 4, "template": TEMPLATE}), ["spec.template.spec"], [(4, 4)]),
    (manifest("batch/v1", "CronJob", {"jobTemplate": {"spec": {"template": TEMPLATE}}}),
     ["spec.jobTemplate.spec.template.spec"], [(1, 1)]),
])
def test_builtin_workload_templates(subject, paths, replicas):
    templates = pod_templates(subject)
    assert [t.path for t in templates] == paths
    assert [(t.min_replicas, t.max_replicas) for t in templates] == replicas
    assert all(t.uses_gpu and t.gpu_resources() == {"nvidia.com/gpu": 1} for t in templates)


def test_inference_service_templates():
    isvc = manifest("serving.kserve.io/v1beta1", "InferenceService", {
        "predictor": {"minReplicas": 2, "maxReplicas": 5, "model": {
            "modelFormat": {"name": "huggingface"}, "resources": {"limits": {"nvidia.com/mig-1g.10gb": 1}}},
            "workerSpec": {"containers": [GPU]}},
        "transformer": {"containers": [{"name": "t", "image": "i"}]},
        "canary": [{"trafficPercent": 10, "predictor": {"containers": [GPU]}}],
    }, name="llm")
    templates = pod_templates(isvc)
    assert [t.path for t in templates] == [
        "spec.predictor", "spec.predictor.workerSpec", "spec.transformer", "spec.canary[0].predictor"]
    predictor = templates[0]
    assert predictor.containers[0]["name"] == "kserve-container"
    assert predictor.gpu_resources() == {"nvidia.com/mig-1g.10gb": 1}
    assert (predictor.min_replicas, predictor.max_replicas, predictor.serving) == (2, 5, True)
    assert predictor.labels["serving.kserve.io/inferenceservice"] == "llm"
    assert ("Deployment", "llm-predictor") in predictor.scale_targets
    assert [t.uses_gpu for t in templates] == [True, True, False, True]


@pytest.mark.parametrize("kind,prefix", [
    ("RayCluster", "spec"), ("RayService", "spec.rayClusterConfig"), ("RayJob", "spec.rayClusterSpec"),
    ("RayCronJob", "spec.jobTemplate.rayClusterSpec"),
])
def test_ray_templates(kind, prefix):
    cluster = {"headGroupSpec": {"template": {"spec": {"containers": [{"name": "head", "image": "i"}]}}},
               "enableInTreeAutoscaling": True,
               "workerGroupSpecs": [{"groupName": "gpu", "replicas": 1, "minReplicas": 1, "maxReplicas": 4,
                                     "numOfHosts": 2, "template": TEMPLATE}]}
    spec = {"RayCluster": cluster, "RayService": {"rayClusterConfig": cluster},
            "RayJob": {"entrypoint": "python x.py", "rayClusterSpec": cluster},
            "RayCronJob": {"schedule": "0 * * * *", "jobTemplate": {"rayClusterSpec": cluster}}}[kind]
    head, worker = pod_templates(manifest("ray.io/v1", kind, spec))
    assert (head.path, worker.path) == (f"{prefix}.headGroupSpec.template.spec",
                                        f"{prefix}.workerGroupSpecs[0].template.spec")
    assert not head.uses_gpu and worker.uses_gpu and worker.kuberay
    assert (worker.min_replicas, worker.max_replicas) == (2, 8)  # numOfHosts × autoscaling bounds
    assert worker.labels["ray.io/group"] == "gpu" and worker.serving == (kind == "RayService")


def test_kinds_without_pods_have_no_templates():
    assert pod_templates(manifest("v1", "Service", {"selector": {"app": "a"}})) == []
    assert pod_templates(Subject("aws:eks/cluster:Cluster", "c", {})) == []
    assert pod_templates(manifest("apps/v1", "Deployment", Unknown())) == []


def test_init_containers_count_alone():
    subject = manifest("v1", "Pod", {"initContainers": [{"name": "i", "image": "i", "resources": {
        "limits": {"nvidia.com/gpu": 2}}}], "containers": [GPU, GPU]})
    assert pod_templates(subject)[0].gpu_resources() == {"nvidia.com/gpu": 2}
