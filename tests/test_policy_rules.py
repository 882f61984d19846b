"""The policy rules, compliance-policy style: a known-good platform passes every rule, and each one-field
mutation of it (tests/fixtures/policies/mutations.yaml) is caught by exactly the rule it names."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpufleet.components.gpu_instances import INSTANCE_TYPES
from gpufleet.components.gpu_operator import device_plugin_config
from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.policies.core import PolicyConfig, Subject, evaluate
from gpufleet.policies.rules import RULES, RULES_BY_NAME

FIXTURES = Path(__file__).parent / "fixtures" / "policies"
ISSUE_7_RULES = (
    "gpu-requests-equal-limits", "gpu-toleration-required", "gpu-replicas-anti-affinity", "gpu-shm-volume",
    "gpu-model-weights-pvc", "gpu-probes-generous", "gpu-probes-distinct", "gpu-hpa-stabilization",
    "gpu-pdb-required", "aws-imdsv2-required", "container-non-root", "gpu-namespace-quota",
    "gpu-dcgm-exporter-present", "gpu-nodepool-taint-and-limits", "gpu-no-time-slicing-in-production",
    "gpu-no-mps-in-production", "gpu-workload-schedulable", "eks-endpoint-private", "eks-secrets-encrypted", "eks-control-plane-logging",
)
ALL_RULES = (*ISSUE_7_RULES, "gpufleet-ignore-reason")
ISSUE_13_RULES = ("image-pinned",)


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def subject(doc: dict[str, Any]) -> Subject:
    """A fixture document as a Subject: a manifest, or ``pulumiType``/``name``/``props``."""
    if "pulumiType" in doc:
        return Subject(doc["pulumiType"], doc["name"], doc["props"], urn=f"urn:test::{doc['name']}")
    return Subject.from_manifest(doc)


def subjects(docs: list[dict[str, Any]]) -> list[Subject]:
    return [subject(doc) for doc in docs]


GOOD = load_docs(FIXTURES / "good.yaml")
MUTATIONS = load_docs(FIXTURES / "mutations.yaml")[0]


def find(docs: list[dict[str, Any]], target: list[str]) -> int:
    kind, name, *namespace = target
    found = [
        i for i, doc in enumerate(docs)
        if (subject(doc).kind, subject(doc).object_name) == (kind, name)
        and (not namespace or subject(doc).namespace == namespace[0])
    ]
    assert len(found) == 1, f"fixture target {target} matches {len(found)} documents"
    return found[0]


def mutate(mutation: dict[str, Any]) -> list[dict[str, Any]]:
    docs = copy.deepcopy(GOOD)
    index = find(docs, mutation["target"])
    if mutation.get("remove_resource"):
        del docs[index]
        return docs
    node: Any = docs[index]["props"] if "pulumiType" in docs[index] else docs[index]
    *parents, last = mutation["path"]
    for key in parents:
        if isinstance(node, dict) and key not in node and "set" in mutation:
            node[key] = {}
        node = node[key]
    if "set" in mutation:
        node[last] = mutation["set"]
    elif mutation.get("delete"):
        assert last in node, f"{mutation['path']} is not in the good fixture"
        del node[last]
    elif "rename" in mutation:
        node[mutation["rename"]] = node.pop(last)
    return docs


def mutation_id(mutation: dict[str, Any]) -> str:
    change = "remove" if mutation.get("remove_resource") else ".".join(str(p) for p in mutation["path"])
    return f"{mutation['rule']}:{mutation['target'][1]}:{change}"


def test_rule_names_are_issue_7s_and_13s():
    assert sorted(rule.name for rule in RULES) == sorted(ALL_RULES + ISSUE_13_RULES)
    assert len(RULES_BY_NAME) == len(RULES)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_rule_is_self_describing(rule):
    assert len(rule.description) > 80, "say what it guards and why"
    assert (rule.check_resource is None) != (rule.check_stack is None)
    assert set(rule.settings_schema) == set(rule.defaults)
    for name, schema in rule.settings_schema.items():
        assert "type" in schema, name


def test_good_platform_passes_every_rule():
    assert evaluate(subjects(GOOD), PolicyConfig(production=True)) == []
    assert evaluate(subjects(GOOD), PolicyConfig(production=False)) == []


def test_every_rule_has_a_caught_mutation():
    caught = {m["rule"] for m in MUTATIONS if not m.get("expect_pass")}
    assert caught == set(ALL_RULES + ISSUE_13_RULES)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=mutation_id)
def test_mutation_is_caught_by_its_rule(mutation):
    found = evaluate(subjects(mutate(mutation)), PolicyConfig(production=True))
    if mutation.get("expect_pass"):
        assert found == []
        return
    assert {v.policy for v in found} == {mutation["rule"], *mutation.get("also", ())}, [str(v) for v in found]
    kind, name = (mutation.get("reported_on") or mutation["target"])[:2]
    assert any((v.kind, v.name) == (kind, name) for v in found if v.policy == mutation["rule"]), \
        [str(v) for v in found]


# ---- settings, enforcement, values as the engine sends them -------------------------------------


def test_eks_rules_are_advisory_in_dev_and_mandatory_in_prod():
    docs = mutate({"rule": "", "target": ["Cluster", "gpufleet"], "path": ["endpointPublicAccess"], "set": True})
    dev = evaluate(subjects(docs), PolicyConfig(production=False))
    prod = evaluate(subjects(docs), PolicyConfig(production=True))
    assert [(v.policy, v.enforcement) for v in dev] == [("eks-endpoint-private", "advisory")]
    assert [(v.policy, v.enforcement) for v in prod] == [("eks-endpoint-private", "mandatory")]


def test_settings_change_thresholds():
    docs = copy.deepcopy(GOOD)
    strict = PolicyConfig.from_mapping({
        "gpu-probes-generous": {"minInitialDelaySeconds": 120},
        "gpu-hpa-stabilization": {"minScaleDownStabilizationSeconds": 900},
        "eks-control-plane-logging": {"enforcementLevel": "mandatory", "requiredLogTypes": ["scheduler"]},
    })
    found = {(v.policy, v.kind, v.name) for v in evaluate(subjects(docs), strict)}
    assert found == {
        ("gpu-probes-generous", "InferenceService", "embed"),  # readiness 90 s, no startupProbe
        ("gpu-hpa-stabilization", "HorizontalPodAutoscaler", "llm"),
        ("eks-control-plane-logging", "Cluster", "gpufleet-raw"),
    }  # the Deployment's startupProbe allows 300 s: still enough


def test_container_non_root_exemptions_are_configurable():
    plugin = {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "nvidia-device-plugin-daemonset", "namespace": "kube-system"},
        "spec": {"selector": {"matchLabels": {"app": "p"}}, "template": {
            "metadata": {"labels": {"app": "p"}},
            "spec": {"containers": [{"name": "plugin", "image": "nvcr.io/nvidia/k8s-device-plugin:v0.17.0"}]}}},
    }
    rule = [RULES_BY_NAME["container-non-root"]]
    assert evaluate([Subject.from_manifest(plugin)], rules=rule) == []
    config = PolicyConfig.from_mapping({"container-non-root": {"exemptDaemonSets": []}})
    assert [v.name for v in evaluate([Subject.from_manifest(plugin)], config, rules=rule)] == [
        "nvidia-device-plugin-daemonset"
    ]


def test_disabled_rules_do_not_run():
    docs = mutate({"rule": "", "target": ["Deployment", "llm"], "path": ["spec", "template", "spec", "affinity"],
                   "delete": True})
    assert evaluate(subjects(docs), PolicyConfig.from_mapping({"gpu-replicas-anti-affinity": "disabled"})) == []
    assert evaluate(subjects(docs), PolicyConfig.from_mapping({"all": "disabled"})) == []
    found = evaluate(subjects(docs), PolicyConfig.from_mapping({"all": "disabled",
                                                                "gpu-replicas-anti-affinity": "mandatory"}))
    assert [(v.policy, v.enforcement) for v in found] == [("gpu-replicas-anti-affinity", "mandatory")]


@pytest.mark.parametrize("resource, caught", [
    ("nvidia.com/gpu", True), ("nvidia.com/mig-1g.10gb", False), ("nvidia.com/gpu.shared", False)])
def test_replicas_on_shared_gpus_need_no_node_spreading(resource, caught):
    """MIG slices and time-sliced GPUs are packed by design: spreading their replicas would make
    Karpenter launch a large GPU node per small replica."""
    docs = mutate({"rule": "", "target": ["Deployment", "llm"], "path": ["spec", "template", "spec", "affinity"],
                   "delete": True})
    (container,) = docs[find(docs, ["Deployment", "llm"])]["spec"]["template"]["spec"]["containers"]
    for amounts in container["resources"].values():
        amounts[resource] = amounts.pop("nvidia.com/gpu")
    rule = [RULES_BY_NAME["gpu-replicas-anti-affinity"]]
    assert bool(evaluate(subjects(docs), rules=rule)) is caught


@pytest.mark.parametrize("path, value, caught", [
    (None, None, False),
    (["labelSelector", "matchLabels", "serving.kserve.io/inferenceservice"], "other", True),
    (["topologyKey"], "topology.kubernetes.io/zone", True),
])
def test_a_topology_spread_constraint_must_select_the_replicas_on_hostname(path, value, caught):
    """embed on whole GPUs (MIG slices are exempt): its hostname spread constraint counts only when it
    selects its own pods on kubernetes.io/hostname."""
    docs = copy.deepcopy(GOOD)
    predictor = docs[find(docs, ["InferenceService", "embed"])]["spec"]["predictor"]
    for amounts in predictor["model"]["resources"].values():
        amounts["nvidia.com/gpu"] = amounts.pop("nvidia.com/mig-1g.10gb")
    if path:
        target = predictor["topologySpreadConstraints"][0]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    rule = [RULES_BY_NAME["gpu-replicas-anti-affinity"]]
    assert [v.name for v in evaluate(subjects(docs), rules=rule)] == (["embed"] if caught else [])


class Unknown:
    """Stands for the engine's preview sentinel of a value not known yet."""


UNKNOWN_FIELDS = [
    ("Deployment", "llm", ["spec", "template", "spec", "tolerations"]),
    ("Deployment", "llm", ["spec", "template", "spec", "volumes"]),
    ("Deployment", "llm", ["spec", "template", "spec", "affinity"]),
    ("Deployment", "llm", ["spec", "template", "spec", "containers", 0, "securityContext"]),
    ("Deployment", "llm", ["spec", "template", "spec", "containers", 0, "readinessProbe"]),
    ("Deployment", "llm", ["spec", "template", "spec", "containers", 0, "resources", "limits", "nvidia.com/gpu"]),
    ("Deployment", "llm", ["spec", "template", "spec", "nodeSelector"]),
    ("PodDisruptionBudget", "llm", ["spec", "maxUnavailable"]),
    ("HorizontalPodAutoscaler", "llm", ["spec", "behavior"]),
    ("NodePool", "serving", ["spec", "template", "spec", "taints"]),
    ("NodePool", "serving", ["spec", "limits"]),
    ("Release", "gpu-operator", ["values"]),
    ("Cluster", "gpufleet", ["enabledClusterLogTypes"]),
    ("Cluster", "gpufleet", ["endpointPublicAccess"]),
    ("Cluster", "gpufleet-raw", ["encryptionConfig"]),
    ("LaunchTemplate", "system-nodes", ["metadataOptions"]),
    ("NodeOverlay", "serving-mig", ["spec", "capacity"]),
    ("NodeOverlay", "serving-mig", ["spec", "requirements"]),
    ("NodeOverlay", "serving-mig", ["spec"]),
    ("Release", "karpenter", ["values"]),
    ("Release", "karpenter", ["values", "settings", "featureGates", "nodeOverlay"]),
    ("NodePool", "general", ["spec", "template", "spec", "requirements"]),
    ("HorizontalPodAutoscaler", "llm", ["spec", "behavior", "scaleUp", "policies", 0, "value"]),
    ("HorizontalPodAutoscaler", "llm", ["spec", "behavior", "scaleUp", "selectPolicy"]),
]


UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""The engine's sentinel for a value unknown during preview (sent for values of any type)."""
UNKNOWN_NESTED = [
    ("Deployment", "llm", ["spec", "template", "spec", "tolerations", 0, "key"]),
    ("Deployment", "llm", ["spec", "template", "spec", "volumes", 1, "emptyDir", "medium"]),
    ("Deployment", "llm", ["spec", "template", "spec", "containers", 0, "volumeMounts", 1, "mountPath"]),
    ("Deployment", "llm", ["spec", "template", "spec", "containers", 0, "securityContext", "capabilities", "drop", 0]),
    ("Deployment", "llm", ["spec", "template", "spec", "nodeSelector", "gpufleet.io/gpu-pool"]),
    ("Deployment", "llm", ["spec", "template", "spec", "affinity", "podAntiAffinity",
                           "preferredDuringSchedulingIgnoredDuringExecution", 0, "podAffinityTerm", "topologyKey"]),
    ("Deployment", "llm", ["spec", "template", "spec", "containers", 0, "readinessProbe", "initialDelaySeconds"]),
    ("Deployment", "llm", ["spec", "replicas"]),
    ("Deployment", "llm", ["metadata", "namespace"]),
    ("InferenceService", "embed", ["spec", "predictor", "model", "storageUri"]),
    ("NodePool", "serving", ["spec", "template", "spec", "taints", 0, "key"]),
    ("NodePool", "batch", ["spec", "template", "spec", "requirements", 0, "values"]),
    ("EC2NodeClass", "gpu", ["spec", "metadataOptions", "httpTokens"]),
    ("Cluster", "gpufleet", ["encryptionConfigKeyArn"]),
    ("Cluster", "gpufleet-raw", ["vpcConfig", "publicAccessCidrs", 0]),
    ("NodeOverlay", "serving-mig", ["spec", "capacity", "nvidia.com/mig-1g.10gb"]),
    ("NodeOverlay", "serving-mig", ["spec", "requirements", 0, "values"]),
    ("NodePool", "general", ["spec", "template", "spec", "requirements", 0, "values"]),
    ("HorizontalPodAutoscaler", "llm", ["spec", "behavior", "scaleUp", "policies", 0, "periodSeconds"]),
]


@pytest.mark.parametrize("kind,name,path", UNKNOWN_FIELDS, ids=lambda x: str(x))
@pytest.mark.parametrize("sentinel", [Unknown(), UNKNOWN_STRING], ids=["object", "string"])
def test_unknown_values_are_not_flagged(kind, name, path, sentinel):
    docs = mutate({"rule": "", "target": [kind, name], "path": path, "set": sentinel})
    assert evaluate(subjects(docs), PolicyConfig(production=True)) == []


@pytest.mark.parametrize("kind,name,path", UNKNOWN_NESTED, ids=lambda x: str(x))
def test_unknown_nested_values_are_not_flagged(kind, name, path):
    docs = mutate({"rule": "", "target": [kind, name], "path": path, "set": UNKNOWN_STRING})
    assert evaluate(subjects(docs), PolicyConfig(production=True)) == []


def test_numbers_may_arrive_as_floats():
    docs = copy.deepcopy(GOOD)
    deployment = docs[find(docs, ["Deployment", "llm"])]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["limits"]["nvidia.com/gpu"] = 1.0
    container["resources"]["requests"]["nvidia.com/gpu"] = 1.0
    container["readinessProbe"]["initialDelaySeconds"] = 60.0
    deployment["spec"]["replicas"] = 2.0
    docs[find(docs, ["HorizontalPodAutoscaler", "llm"])]["spec"]["behavior"]["scaleDown"][
        "stabilizationWindowSeconds"] = 600.0
    docs[find(docs, ["PodDisruptionBudget", "llm"])]["spec"]["maxUnavailable"] = 1.0
    docs[find(docs, ["NodePool", "batch"])]["spec"]["limits"]["nvidia.com/gpu"] = 32.0
    assert evaluate(subjects(docs), PolicyConfig(production=True)) == []


def test_violation_names_the_resource_and_the_field():
    docs = mutate(MUTATIONS[0])
    [found] = evaluate(subjects(docs))
    assert (found.policy, found.enforcement, found.kind, found.namespace, found.name) == (
        "gpu-requests-equal-limits", "mandatory", "Deployment", "serving", "llm")
    assert "spec.template.spec container vllm: nvidia.com/gpu request 1 differs from limit 2" in found.message


def test_schedulable_is_skipped_without_node_pools():
    docs = [d for d in mutate({"rule": "", "target": ["Deployment", "llm"],
                               "path": ["spec", "template", "spec", "nodeSelector", "gpufleet.io/gpu-pool"],
                               "set": "nonexistent"}) if d.get("kind") != "NodePool"]
    assert evaluate(subjects(docs), rules=[RULES_BY_NAME["gpu-workload-schedulable"]]) == []


def test_schedulable_reasons_name_each_pool():
    docs = mutate({"rule": "", "target": ["Job", "finetune"],
                   "path": ["spec", "template", "spec", "containers", 0, "resources", "limits", "nvidia.com/gpu"],
                   "set": 16})
    [found] = evaluate(subjects(docs), rules=[RULES_BY_NAME["gpu-workload-schedulable"]])
    assert "serving: its nodes cannot carry gpufleet.io/gpu-pool=batch" in found.message
    assert "serving-mig: its nodes advertise nvidia.com/mig-1g.10gb / nvidia.com/gpu" not in found.message
    assert "batch: one pod asks for 16 nvidia.com/gpu" in found.message


def _time_sliced_batch(docs: list[dict[str, Any]], overlays: bool) -> dict[str, Any]:
    """Make the batch pool time-sliced (4 replicas) and the finetune Job ask for shared GPUs; with
    ``overlays``, one NodeOverlay per instance type of the pool (capacity GPUs × 4). Returns the Job's
    limits."""
    pool = docs[find(docs, ["NodePool", "batch"])]
    pool["spec"]["template"]["metadata"]["labels"]["nvidia.com/device-plugin.config"] = "batch-time-slicing"
    docs.append({"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "device-plugin-config", "namespace": "gpu-operator"},
                 "data": {"batch-time-slicing": "version: v1\nsharing:\n  timeSlicing:\n    renameByDefault: true\n"
                                                "    resources:\n    - name: nvidia.com/gpu\n      replicas: 4\n"}})
    if overlays:
        for instance in INSTANCE_TYPES.values():
            if instance.family.family in ("g6e", "p4d", "p5"):
                docs.append(_overlay(f"batch-{instance.name}", "batch", instance.gpus * 4,
                                     "nvidia.com/gpu.shared", [instance.name]))
    job = docs[find(docs, ["Job", "finetune"])]
    limits = job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    del limits["nvidia.com/gpu"]
    return limits


def _overlay(name: str, pool: str, units: Any, resource: str, instance_types: list[str] = ()) -> dict[str, Any]:
    requirements = [{"key": "gpufleet.io/gpu-pool", "operator": "In", "values": [pool]}]
    if instance_types:
        requirements.append({"key": "node.kubernetes.io/instance-type", "operator": "In", "values": instance_types})
    return {"apiVersion": "karpenter.sh/v1alpha1", "kind": "NodeOverlay", "metadata": {"name": name},
            "spec": {"requirements": requirements, "capacity": {resource: str(units)}}}


SCHEDULABLE = [RULES_BY_NAME["gpu-workload-schedulable"]]


def test_time_sliced_pool_serves_shared_gpus_up_to_its_replicas():
    """A time-sliced pool (device-plugin.config label) advertises nvidia.com/gpu.shared, GPUs × replicas
    a node, the replicas read from the device plugin ConfigMap; Karpenter knows those units through one
    NodeOverlay per instance type."""
    docs = copy.deepcopy(GOOD)
    limits = _time_sliced_batch(docs, overlays=True)
    limits["nvidia.com/gpu.shared"] = 32  # p5.48xlarge: 8 GPUs × 4
    assert evaluate(subjects(docs), rules=SCHEDULABLE) == []
    limits["nvidia.com/gpu.shared"] = 33
    [found] = evaluate(subjects(docs), rules=SCHEDULABLE)
    assert found.name == "finetune" and "batch: one pod asks for 33 nvidia.com/gpu.shared" in found.message
    found = evaluate(subjects(docs), PolicyConfig(production=True),
                     rules=[RULES_BY_NAME["gpu-no-time-slicing-in-production"]])
    assert {(v.kind, v.name) for v in found} == {("ConfigMap", "device-plugin-config"), ("Job", "finetune")}


def test_shared_gpus_without_a_node_overlay_are_unknown_to_karpenter():
    docs = copy.deepcopy(GOOD)
    limits = _time_sliced_batch(docs, overlays=False)
    limits["nvidia.com/gpu.shared"] = 4
    [found] = evaluate(subjects(docs), rules=SCHEDULABLE)
    assert (found.kind, found.name) == ("Job", "finetune")
    assert ("batch: Karpenter knows only nvidia.com/gpu of an instance type, not nvidia.com/gpu.shared: no "
            "NodeOverlay in the checked resources adds nvidia.com/gpu.shared; add a karpenter.sh/v1alpha1 "
            "NodeOverlay with requirements gpufleet.io/gpu-pool In [batch]") in found.message
    docs.append(_overlay("batch", "batch", 4, "nvidia.com/gpu.shared"))  # one overlay for the whole pool
    assert evaluate(subjects(docs), rules=SCHEDULABLE) == []
    limits["nvidia.com/gpu.shared"] = 8  # the device plugin would have 32 on a p5, the overlay says 4
    [found] = evaluate(subjects(docs), rules=SCHEDULABLE)
    assert "its NodeOverlays give nvidia.com/gpu.shared 4 on g6e.24xlarge, g6e.48xlarge, p4d.24xlarge, " \
           "p5.48xlarge: less than the 8 one pod asks for" in found.message


def test_node_overlay_of_one_instance_type_is_enough_when_the_pod_fits_it():
    """Per-instance-type overlays: the pod fits a pool when one instance type it fits has an overlay."""
    docs = copy.deepcopy(GOOD)
    docs[find(docs, ["NodeOverlay", "serving-mig"])] = _overlay(
        "serving-mig-p5.48xlarge", "serving-mig", 56, "nvidia.com/mig-1g.10gb", ["p5.48xlarge"])
    assert evaluate(subjects(docs), rules=SCHEDULABLE) == []
    heavier = _overlay("serving-mig-p5.48xlarge-override", "serving-mig", 0, "nvidia.com/mig-1g.10gb")
    heavier["spec"]["weight"] = 10  # the highest weight wins
    docs.append(heavier)
    [found] = evaluate(subjects(docs), rules=SCHEDULABLE)
    assert "its NodeOverlays give nvidia.com/mig-1g.10gb 0 on p4de.24xlarge, p5.48xlarge" in found.message


def test_node_overlays_need_karpenters_feature_gate():
    docs = mutate({"rule": "", "target": ["Release", "karpenter"], "path": ["values", "settings", "featureGates"],
                   "delete": True})
    [found] = evaluate(subjects(docs), rules=SCHEDULABLE)
    assert (found.kind, found.name) == ("InferenceService", "embed")
    assert ("Karpenter's Helm release karpenter leaves the NodeOverlay feature gate off (set "
            "settings.featureGates.nodeOverlay: true)") in found.message
    without_release = [d for d in GOOD if d.get("name") != "karpenter"]  # a cluster gpufleet did not install
    assert evaluate(subjects(without_release), rules=SCHEDULABLE) == []


def test_whole_gpus_need_no_node_overlay():
    docs = [d for d in copy.deepcopy(GOOD) if d.get("kind") != "NodeOverlay"]
    found = evaluate(subjects(docs), rules=SCHEDULABLE)
    assert [v.name for v in found] == ["embed"]  # only the MIG slice; llm, finetune, the Ray workers pass


def test_time_slicing_is_allowed_outside_production():
    docs = mutate(next(m for m in MUTATIONS if m["rule"] == "gpu-no-time-slicing-in-production"))
    assert evaluate(subjects(docs), PolicyConfig(production=False)) == []


def test_production_namespace_label_forbids_time_slicing():
    docs = mutate(next(m for m in MUTATIONS if m["rule"] == "gpu-no-time-slicing-in-production"))
    docs[find(docs, ["Release", "gpu-operator"])]["props"]["namespace"] = "serving"  # labelled prod
    found = evaluate(subjects(docs), PolicyConfig(production=False))
    assert [(v.policy, v.kind) for v in found] == [("gpu-no-time-slicing-in-production", "Release")]


def _mps_batch(docs: list[dict[str, Any]], acknowledged: bool = False) -> dict[str, Any]:
    """Make the batch pool share its GPUs by MPS (4 clients a GPU, the device plugin config the
    GpuOperator renders), with NodeOverlays, and the finetune Job ask for one shared GPU. Returns the
    ConfigMap."""
    pool = docs[find(docs, ["NodePool", "batch"])]
    pool["spec"]["template"]["metadata"]["labels"]["nvidia.com/device-plugin.config"] = "batch-mps"
    config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "gpufleet-device-plugin-config", "namespace": "gpu-operator"},
                  "data": device_plugin_config([GpuPlacement("batch", (INSTANCE_TYPES["p5.48xlarge"],), sharing="mps",
                                                             mps_replicas=4)], "mixed")}
    if acknowledged:
        config_map["metadata"]["annotations"] = {"gpufleet.io/mps-no-isolation-acknowledged": "batch-mps"}
    docs.append(config_map)
    for instance in INSTANCE_TYPES.values():
        if instance.family.family in ("g6e", "p4d", "p5"):
            docs.append(_overlay(f"batch-{instance.name}", "batch", instance.gpus * 4,
                                 "nvidia.com/gpu.shared", [instance.name]))
    job = docs[find(docs, ["Job", "finetune"])]
    limits = job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    del limits["nvidia.com/gpu"]
    limits["nvidia.com/gpu.shared"] = 1
    return config_map


def test_sharing_configs_read_mps_and_the_acknowledgement():
    """``sharing.mps`` wins over ``timeSlicing`` in one entry (the device plugin's SharingStrategy);
    one replica a GPU is no sharing; the annotation acknowledges the entries it names only."""
    from gpufleet.policies.rules._device_plugin import mps_configs, sharing_configs, time_slicing_configs

    both = "version: v1\nsharing:\n  mps:\n    resources:\n    - {name: nvidia.com/gpu, replicas: 3}\n" \
           "  timeSlicing:\n    resources:\n    - {name: nvidia.com/gpu, replicas: 8}\n"
    single = "version: v1\nsharing:\n  mps:\n    resources:\n    - {name: nvidia.com/gpu, replicas: 1}\n"
    config_map = subject({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "dp", "namespace": "gpu-operator",
                                       "annotations": {"gpufleet.io/mps-no-isolation-acknowledged": "a, other"}},
                          "data": {"a": both, "b": both, "c": single}})
    entries = sharing_configs([config_map])
    assert [(e.config, e.mode, e.replicas, e.rename_by_default, e.acknowledged) for e in entries] == [
        ("a", "mps", 3, False, True), ("b", "mps", 3, False, False)]
    assert time_slicing_configs([config_map]) == [] and len(mps_configs([config_map])) == 2


MPS_RULES = [RULES_BY_NAME["gpu-no-mps-in-production"], RULES_BY_NAME["gpu-no-time-slicing-in-production"]]


def test_mps_pool_serves_shared_gpus_and_is_judged_as_mps_not_time_slicing():
    """The MPS entry gives the pool nvidia.com/gpu.shared (schedulable with its overlays); in production
    the MPS rule reports the entry and the pod, the time-slicing rule nothing."""
    docs = copy.deepcopy(GOOD)
    _mps_batch(docs)
    assert evaluate(subjects(docs), rules=SCHEDULABLE) == []
    found = evaluate(subjects(docs), PolicyConfig(production=True), rules=MPS_RULES)
    assert sorted((v.policy, v.kind, v.name) for v in found) == [
        ("gpu-no-mps-in-production", "ConfigMap", "gpufleet-device-plugin-config"),
        ("gpu-no-mps-in-production", "Job", "finetune"),
    ]
    [entry] = [v.message for v in found if v.kind == "ConfigMap"]
    assert entry.startswith("device plugin config 'batch-mps' shares each GPU between 4 pods by MPS in production: "
                            "MPS clients have no fault isolation")
    assert evaluate(subjects(docs), PolicyConfig(production=False), rules=MPS_RULES) == []


def test_mps_pool_is_schedulable_only_with_its_overlays_and_up_to_its_clients():
    docs = copy.deepcopy(GOOD)
    _mps_batch(docs)
    job = docs[find(docs, ["Job", "finetune"])]
    limits = job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    limits["nvidia.com/gpu.shared"] = 33  # p5.48xlarge: 8 GPUs x 4 MPS clients
    [found] = evaluate(subjects(docs), rules=SCHEDULABLE)
    assert "batch: one pod asks for 33 nvidia.com/gpu.shared" in found.message
    limits["nvidia.com/gpu.shared"] = 1
    without_overlays = [d for d in docs if not (d.get("kind") == "NodeOverlay" and d["metadata"]["name"].startswith("batch-"))]
    [found] = evaluate(subjects(without_overlays), rules=SCHEDULABLE)
    assert "batch: Karpenter knows only nvidia.com/gpu of an instance type, not nvidia.com/gpu.shared" in found.message
    limits["nvidia.com/mig-1g.10gb"] = limits.pop("nvidia.com/gpu.shared")  # not what an MPS pool advertises
    [found] = evaluate(subjects(docs), rules=SCHEDULABLE)
    assert "batch: its nodes advertise nvidia.com/gpu.shared / nvidia.com/gpu, not nvidia.com/mig-1g.10gb (MPS)" in found.message


def test_acknowledged_mps_entry_passes_in_production():
    docs = copy.deepcopy(GOOD)
    _mps_batch(docs, acknowledged=True)
    assert evaluate(subjects(docs), PolicyConfig(production=True), rules=MPS_RULES) == []


def test_mps_and_time_slicing_side_by_side_each_rule_judges_its_pool():
    """With both kinds of entry, a pod's nvidia.com/gpu.shared is judged by its pool's entry."""
    docs = copy.deepcopy(GOOD)
    config_map = _mps_batch(docs, acknowledged=True)
    config_map["data"]["llm-time-slicing"] = ("version: v1\nsharing:\n  timeSlicing:\n    renameByDefault: true\n"
                                              "    resources:\n    - name: nvidia.com/gpu\n      replicas: 2\n")
    found = evaluate(subjects(docs), PolicyConfig(production=True), rules=MPS_RULES)
    # The time-slicing entry is reported; the finetune Job is on the (acknowledged) MPS pool.
    assert [(v.policy, v.kind) for v in found] == [("gpu-no-time-slicing-in-production", "ConfigMap")]


def test_mps_overlays_alone_are_not_taken_for_time_slicing():
    docs = copy.deepcopy(GOOD)
    _mps_batch(docs, acknowledged=True)
    found = evaluate(subjects(docs), PolicyConfig(production=True), rules=MPS_RULES)
    assert not [v for v in found if v.kind == "NodeOverlay"]


def test_keda_scaled_object_behaviour_is_checked():
    docs = copy.deepcopy(GOOD)
    docs[find(docs, ["HorizontalPodAutoscaler", "llm"])] = {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": "llm", "namespace": "serving"},
        "spec": {"scaleTargetRef": {"name": "llm"}, "minReplicaCount": 2, "maxReplicaCount": 6,
                 "triggers": [{"type": "prometheus", "metadata": {"serverAddress": "http://prometheus:9090",
                                                                  "query": "sum(x)", "threshold": "5"}}]},
    }
    found = evaluate(subjects(docs), PolicyConfig(production=True))
    assert {(v.policy, v.kind) for v in found} == {("gpu-hpa-stabilization", "ScaledObject")}
    scaled = docs[find(docs, ["ScaledObject", "llm"])]
    scaled["spec"]["advanced"] = {"horizontalPodAutoscalerConfig": {"behavior": {
        "scaleDown": {"stabilizationWindowSeconds": 900},
        "scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}]},
    }}}
    assert evaluate(subjects(docs), PolicyConfig(production=True)) == []


def test_scale_to_zero_workload_needs_a_budget_that_keeps_its_one_replica():
    docs = copy.deepcopy(GOOD)
    hpa = docs[find(docs, ["HorizontalPodAutoscaler", "llm"])]
    hpa["spec"]["minReplicas"] = 1
    found = evaluate(subjects(docs), rules=[RULES_BY_NAME["gpu-pdb-required"]])
    assert [v.name for v in found] == ["llm"]  # maxUnavailable 1 evicts the only replica
    assert "allows evicting all 1 replicas" in found[0].message


def test_evaluate_is_fast_on_a_thousand_manifests():
    import time

    docs = []
    for i in range(100):
        for doc in GOOD:
            doc = copy.deepcopy(doc)
            if "metadata" in doc:
                doc["metadata"]["name"] = f"{doc['metadata']['name']}-{i}"
            docs.append(doc)
    many = subjects(docs)
    assert len(many) >= 1000
    start = time.process_time()  # CPU, not wall: other processes on a busy machine do not count
    evaluate(many, PolicyConfig(production=True))
    assert time.process_time() - start < 2.0


def _paths(node: Any, prefix: tuple = ()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


def test_rules_survive_malformed_values():
    """Whatever a field holds (wrong type, empty, unknown), the rules report or skip: they never raise."""
    every = [(i, path) for i, doc in enumerate(GOOD) for path in _paths(doc.get("props", doc))
             if path]
    for n, (index, path) in enumerate(every[::3]):
        value = [None, "x", [], {"a": 1}, Unknown(), 1.5][n % 6]
        docs = copy.deepcopy(GOOD)
        node = docs[index].get("props", docs[index])
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        evaluate(subjects(docs), PolicyConfig(production=True))


@pytest.mark.parametrize("resource,flagged", [
    (Subject("eks:index:ManagedNodeGroup", "gpu", {"amiType": "AL2_x86_64_GPU"}), True),
    (Subject("eks:index:ManagedNodeGroup", "gpu", {"amiType": "AL2_x86_64_GPU", "enableIMDSv2": True}), False),
    (Subject("eks:index:ManagedNodeGroup", "gpu", {"amiType": "AL2023_x86_64_NVIDIA"}), False),
    (Subject("aws:eks/nodeGroup:NodeGroup", "gpu", {"amiType": "BOTTLEROCKET_x86_64_NVIDIA"}), False),
    (Subject("aws:ec2/instance:Instance", "bastion", {"metadataOptions": {"httpTokens": "optional"}}), True),
    (Subject("aws:ec2/launchTemplate:LaunchTemplate", "lt", {}), True),
    (Subject("eks:index:Cluster", "c", {"nodeGroupOptions": {"enableIMDSv2": True}}), False),
])
def test_imdsv2_on_every_kind_of_node(resource, flagged):
    found = evaluate([resource], rules=[RULES_BY_NAME["aws-imdsv2-required"]])
    assert bool(found) == flagged, [str(v) for v in found]


# ---- gpu-nodepool-taint-and-limits: "can launch a GPU instance", not "names GPUs" ---------------

TAINT_AND_LIMITS = [RULES_BY_NAME["gpu-nodepool-taint-and-limits"]]


def _cpu_pool(requirements: list[dict[str, Any]]) -> list[Subject]:
    docs = copy.deepcopy(GOOD)
    docs[find(docs, ["NodePool", "general"])]["spec"]["template"]["spec"]["requirements"] = requirements
    return subjects(docs)


@pytest.mark.parametrize("requirements,flagged", [
    ([{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}], True),
    ([{"key": "karpenter.k8s.aws/instance-category", "operator": "NotIn", "values": ["t"]}], True),
    ([], True),
    ([{"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["c", "g"]}], True),
    ([{"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["0"]}], True),
    ([{"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "DoesNotExist"}], False),
    ([{"key": "karpenter.k8s.aws/instance-category", "operator": "In", "values": ["c", "m", "r"]}], False),
    ([{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m7i.xlarge", "c7i.2xlarge"]}], False),
    ([{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
      {"key": "karpenter.k8s.aws/instance-family", "operator": "NotIn",
       "values": ["g5", "g6", "g6e", "p4d", "p4de", "p5", "p5e", "p5en"]}], False),
], ids=lambda x: str(x) if isinstance(x, bool) else ";".join(f"{r['key']} {r['operator']} {r.get('values', '')}"
                                                             for r in x) or "none")
def test_pool_that_can_launch_gpus_is_tainted_and_bounded(requirements, flagged):
    found = evaluate(_cpu_pool(requirements), rules=TAINT_AND_LIMITS)
    assert [v.name for v in found] == (["general", "general"] if flagged else []), [str(v) for v in found]


def test_cpu_pool_message_names_what_to_add():
    found = evaluate(_cpu_pool([{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]),
                     rules=TAINT_AND_LIMITS)
    taint, limit = (v.message for v in found)
    assert taint.startswith("its requirements do not exclude GPU instance types (g5.xlarge, g5.2xlarge, g5.4xlarge "
                            "and 27 more) but spec.template.spec.taints has no nvidia.com/gpu NoSchedule taint")
    assert taint.endswith("add the taint, or a requirement that excludes GPU instances "
                          "(karpenter.k8s.aws/instance-gpu-count DoesNotExist, or karpenter.k8s.aws/instance-category "
                          "In [c, m, r])")
    assert 'add limits["nvidia.com/gpu"], or a requirement that excludes GPU instances' in limit


# ---- gpu-hpa-stabilization: scale-up steps within configurable bounds --------------------------

HPA_RULE = [RULES_BY_NAME["gpu-hpa-stabilization"]]
SEEDS_HPA = Path(__file__).parent / "fixtures" / "seeds" / "kubernetes-for-ml-workloads" / "gpu-hpa.yaml"


def _with_scale_up(scale_up: dict[str, Any]) -> list[Subject]:
    docs = copy.deepcopy(GOOD)
    docs[find(docs, ["HorizontalPodAutoscaler", "llm"])]["spec"]["behavior"]["scaleUp"] = scale_up
    return subjects(docs)


def test_seeds_hpa_behaviour_is_bounded():
    """The seeds' behaviour (2 pods / 300 s, scale-up stabilization 120 s, scale-down 600 s) passes."""
    docs = copy.deepcopy(GOOD)
    seed = yaml.safe_load(SEEDS_HPA.read_text())
    docs[find(docs, ["HorizontalPodAutoscaler", "llm"])]["spec"]["behavior"] = seed["spec"]["behavior"]
    assert evaluate(subjects(docs), PolicyConfig(production=True)) == []


UNBOUNDED = {"type": "Percent", "value": 1000, "periodSeconds": 15}
BOUNDED = {"type": "Pods", "value": 1, "periodSeconds": 300}


@pytest.mark.parametrize("scale_up,flagged", [
    ({"policies": [UNBOUNDED]}, True),
    ({"policies": [BOUNDED, UNBOUNDED]}, True),  # selectPolicy Max (the default) takes the larger step
    ({"selectPolicy": "Max", "policies": [BOUNDED, UNBOUNDED]}, True),
    ({"selectPolicy": "Min", "policies": [BOUNDED, UNBOUNDED]}, False),  # the smaller step: bounded
    ({"selectPolicy": "Min", "policies": [UNBOUNDED]}, True),
    ({"selectPolicy": "Disabled"}, False),
    ({"policies": [{"type": "Percent", "value": 100, "periodSeconds": 60}]}, False),
    ({"policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}, True),  # the HPA default
    ({"policies": [{"type": "Pods", "value": 4, "periodSeconds": 60}]}, False),
    ({"policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]}, True),
    ({"stabilizationWindowSeconds": -1, "policies": [BOUNDED]}, True),
    ({"stabilizationWindowSeconds": 0, "policies": [BOUNDED]}, False),
], ids=lambda x: str(x))
def test_scale_up_steps_are_bounded(scale_up, flagged):
    found = evaluate(_with_scale_up(scale_up), rules=HPA_RULE)
    assert [v.name for v in found] == (["llm"] if flagged else []), [str(v) for v in found]


def test_unbounded_scale_up_message_names_the_policy_and_the_bounds():
    [found] = evaluate(_with_scale_up({"policies": [BOUNDED, UNBOUNDED]}), rules=HPA_RULE)
    assert found.message.startswith(
        "spec.behavior.scaleUp (selectPolicy Max (default)) lets GPU workload Deployment llm grow by more than 4 "
        "pods or 100% per 60s: policies[1] adds 1000% (at most 100%)")


def test_scale_up_bounds_are_settings():
    config = PolicyConfig.from_mapping({"gpu-hpa-stabilization": {"minScaleUpPeriodSeconds": 600}})
    found = evaluate(subjects(GOOD), config, rules=HPA_RULE)
    assert {(v.kind, v.name) for v in found} == {("HorizontalPodAutoscaler", "llm"), ("InferenceService", "embed")}
    assert "policies[0] adds 1 pods every 300s (period at least 600s)" in found[0].message
    loose = PolicyConfig.from_mapping({"gpu-hpa-stabilization": {"maxScaleUpPercent": 1000, "minScaleUpPeriodSeconds": 15}})
    assert evaluate(_with_scale_up({"policies": [UNBOUNDED]}), loose, rules=HPA_RULE) == []
    strict = PolicyConfig.from_mapping({"gpu-hpa-stabilization": {"minScaleUpStabilizationSeconds": 180}})
    seed = yaml.safe_load(SEEDS_HPA.read_text())["spec"]["behavior"]["scaleUp"]
    [found] = evaluate(_with_scale_up(seed), strict, rules=HPA_RULE)
    assert "scaleUp.stabilizationWindowSeconds is 120s" in found.message and "at least 180s" in found.message


def test_keda_scale_up_policies_are_bounded_too():
    docs = copy.deepcopy(GOOD)
    docs[find(docs, ["HorizontalPodAutoscaler", "llm"])] = {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "llm", "namespace": "serving"},
        "spec": {"scaleTargetRef": {"name": "llm"}, "minReplicaCount": 2, "maxReplicaCount": 6,
                 "triggers": [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "80"}}],
                 "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                     "scaleDown": {"stabilizationWindowSeconds": 900},
                     "scaleUp": {"policies": [UNBOUNDED]}}}}},
    }
    [found] = evaluate(subjects(docs), rules=HPA_RULE)
    assert (found.kind, found.name) == ("ScaledObject", "llm")
    assert found.message.startswith("spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp")


def test_whole_gpus_on_a_mig_pool_are_capped_at_physical_gpus():
    """With MIG's single strategy slices are advertised as nvidia.com/gpu, but Karpenter picks an
    instance type by its physical GPUs: a pod asking for 9 never gets a node, whatever the slices."""
    docs = copy.deepcopy(GOOD)
    embed = docs[find(docs, ["InferenceService", "embed"])]
    resources = embed["spec"]["predictor"]["model"]["resources"]
    for part in ("requests", "limits"):
        resources[part].pop("nvidia.com/mig-1g.10gb")
    resources["requests"]["nvidia.com/gpu"] = resources["limits"]["nvidia.com/gpu"] = 8
    assert evaluate(subjects(docs), rules=SCHEDULABLE) == []
    resources["requests"]["nvidia.com/gpu"] = resources["limits"]["nvidia.com/gpu"] = 9
    assert [v.name for v in evaluate(subjects(docs), rules=SCHEDULABLE)] == ["embed"]
