"""Rules decide from evidence: known-good objects (tests/fixtures/policies/evidence.yaml) that the rules
once reported falsely pass, and one-field mutations that add the evidence (or take away the bound) are
caught by exactly the rules they name. Also: the GPU Operator's operands may run as root, and the
eks-* rules read an eksctl ClusterConfig."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpufleet.policies.core import PolicyConfig, Subject, evaluate
from gpufleet.policies.rules import RULES, RULES_BY_NAME

FIXTURE = Path(__file__).parent / "fixtures" / "policies" / "evidence.yaml"
GOOD = [doc for doc in yaml.safe_load_all(FIXTURE.read_text()) if doc]
NOT_JUDGED = {"container-non-root", "gpu-dcgm-exporter-present", "gpu-workload-schedulable"}
"""Rules the fixture does not aim to satisfy (its smoke tests run as root; no DCGM exporter)."""
JUDGED = [rule for rule in RULES if rule.name not in NOT_JUDGED]


def run(docs: list[dict[str, Any]], production: bool = True) -> list:
    return evaluate([Subject.from_manifest(d) for d in docs], PolicyConfig(production=production), rules=JUDGED)


def mutate(target: tuple[str, str], path: list[Any], value: Any = None, delete: bool = False) -> list[dict[str, Any]]:
    docs = copy.deepcopy(GOOD)
    [doc] = [d for d in docs if (d["kind"], d["metadata"].get("name") or d["metadata"].get("generateName")) == target]
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return docs


def test_good_objects_pass():
    assert run(GOOD) == []
    assert run(GOOD, production=False) == []


SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "smoke", "namespace": "ml"},
           "spec": {"selector": {"app": "smoke"}, "ports": [{"port": 80}]}}
SMOKE_CONTAINER = ["spec", "template", "spec", "containers", 0]

MUTATIONS = [
    # EKS Auto Mode keys are Karpenter's: a pool of GPU categories must be tainted and bounded.
    ("auto-mode-gpu-category", ("NodePool", "auto-cpu"), ["spec", "template", "spec", "requirements", 0, "values"],
     ["g"], {"gpu-nodepool-taint-and-limits"}),
    ("accelerator-pool-any-instance", ("NodePool", "neuron-accelerators"), ["spec", "template", "spec", "requirements"],
     [], {"gpu-nodepool-taint-and-limits"}),
    # limits.nodes bounds a pool; without it (and without a GPU limit) the pool is unbounded.
    ("pool-without-node-limit", ("NodePool", "gpu-nodes"), ["spec", "limits"], {}, {"gpu-nodepool-taint-and-limits"}),
    # A model-server image makes a smoke Deployment a service: probes, weights, PDB and spread apply.
    ("smoke-runs-vllm", ("Deployment", "smoke"), SMOKE_CONTAINER + ["image"], "vllm/vllm-openai:v0.11.0",
     {"gpu-probes-distinct", "gpu-probes-generous", "gpu-model-weights-pvc", "gpu-pdb-required",
      "gpu-replicas-anti-affinity"}),
    # PyTorch distributed evidence asks for a memory-backed /dev/shm.
    ("smoke-runs-torchrun", ("Deployment", "smoke"), SMOKE_CONTAINER + ["command"], ["torchrun", "train.py"],
     {"gpu-shm-volume"}),
    # Half a node per replica: two replicas may share a node, so they must spread.
    ("big-llm-half-node", ("Deployment", "big-llm"),
     ["spec", "template", "spec", "containers", 0, "resources", "limits", "nvidia.com/gpu"], 4,
     {"gpu-replicas-anti-affinity"}),
    # The ClusterQueue's GPU quota is what caps team-a: without it the namespace is uncapped.
    ("cluster-queue-without-gpu-quota", ("ClusterQueue", "cluster-queue"),
     ["spec", "resourceGroups", 0, "flavors", 0, "resources"], [{"name": "cpu", "nominalQuota": 10}],
     {"gpu-namespace-quota"}),
    ("local-queue-elsewhere", ("LocalQueue", "lq-team-a"), ["spec", "clusterQueue"], "other-queue",
     {"gpu-namespace-quota"}),
    # Knative (KPA) without maxReplicas has no upper bound: more than one replica, so a PDB is needed.
    ("knative-unbounded", ("InferenceService", "knative-llm"), ["spec", "predictor", "maxReplicas"], None,
     {"gpu-pdb-required", "gpu-replicas-anti-affinity"}),
    # Time-slicing through Bottlerocket settings or a NodeOverlay, on a production stack.
    ("bottlerocket-time-slicing", ("EC2NodeClass", "gpu"), ["spec", "userData"],
     '[settings.kubelet-device-plugins.nvidia]\ndevice-sharing-strategy = "time-slicing"\n'
     '[settings.kubelet-device-plugins.nvidia.time-slicing]\nreplicas = 4\n',
     {"gpu-no-time-slicing-in-production"}),
    ("overlay-time-slicing", ("NodeOverlay", "g6e-gpus"), ["spec", "capacity", "nvidia.com/gpu"], "4",
     {"gpu-no-time-slicing-in-production"}),
    ("overlay-shared-gpus", ("NodeOverlay", "g6e-gpus"), ["spec", "capacity"], {"nvidia.com/gpu.shared": "4"},
     {"gpu-no-time-slicing-in-production"}),
    # eksctl ClusterConfig: the eks-* rules read it.
    ("eksctl-public-endpoint", ("ClusterConfig", "gpu-cluster"), ["vpc", "clusterEndpoints", "publicAccess"], True,
     {"eks-endpoint-private"}),
    ("eksctl-default-endpoints", ("ClusterConfig", "gpu-cluster"), ["vpc"], {}, {"eks-endpoint-private"}),
    ("eksctl-no-kms", ("ClusterConfig", "gpu-cluster"), ["secretsEncryption"], {}, {"eks-secrets-encrypted"}),
    ("eksctl-api-logs-only", ("ClusterConfig", "gpu-cluster"), ["cloudWatch", "clusterLogging", "enableTypes"],
     ["api"], {"eks-control-plane-logging"}),
]


@pytest.mark.parametrize("name,target,path,value,rules", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_mutation_is_caught(name, target, path, value, rules):
    docs = mutate(target, path, delete=value is None) if value is None else mutate(target, path, value)
    found = run(docs)
    assert {v.policy for v in found} == rules, [str(v) for v in found]
    assert run(docs, production=False) == [] if rules == {"gpu-no-time-slicing-in-production"} else True


def test_a_service_makes_a_deployment_serving():
    found = run(copy.deepcopy(GOOD) + [SERVICE])
    assert {(v.policy, v.name) for v in found} == {
        ("gpu-pdb-required", "smoke"), ("gpu-replicas-anti-affinity", "smoke"),
    }


def test_toleration_with_another_value_is_reported_as_a_mismatch():
    docs = mutate(("Pod", "tolerant"), ["spec", "tolerations", 0],
                  {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"})
    [violation] = run(docs)
    assert violation.policy == "gpu-toleration-required"
    assert "tolerates nvidia.com/gpu=present" in violation.message and "values differ" in violation.message
    assert "does not tolerate" not in violation.message


def test_knative_unbounded_is_named_so():
    docs = mutate(("InferenceService", "knative-llm"), ["spec", "predictor", "maxReplicas"], delete=True)
    messages = [v.message for v in run(docs) if v.policy == "gpu-pdb-required"]
    assert messages and "an unbounded number of GPU replicas" in messages[0]


def test_generate_name_is_printed():
    docs = [d for d in copy.deepcopy(GOOD) if d["kind"] != "LocalQueue"]
    [violation] = run(docs)
    assert (violation.policy, violation.kind, violation.name) == ("gpu-namespace-quota", "Job", "sample-job-")
    assert "e.g. Job sample-job-)" in violation.message


def _daemonset(name: str) -> Subject:
    return Subject.from_manifest({
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": "gpu-operator"},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "ctr", "image": "nvcr.io/nvidia/x:1", "securityContext": {"privileged": True}}]},
        }},
    })


@pytest.mark.parametrize("name", [
    "nvidia-gpu-driver-ubuntu22.04-7c6d8b9f5", "nvidia-gpu-driver-rhcos4.16-5f9d7c", "nvidia-dcgm", "nvidia-dcgm-dra",
    "nvidia-dra-driver-kubelet-plugin", "nvidia-dra-driver-gpu-kubelet-plugin", "nvidia-dra-validator",
    "nvidia-operator-validator", "nvidia-dcgm-exporter", "nvidia-kata-sandbox-device-plugin-daemonset",
    "nvidia-vfio-manager", "nvidia-sandbox-validator", "nvidia-vgpu-device-manager",
])
def test_gpu_operator_operands_may_run_as_root(name):
    assert evaluate([_daemonset(name)], rules=[RULES_BY_NAME["container-non-root"]]) == []


def test_other_daemonsets_may_not_run_as_root():
    [violation] = evaluate([_daemonset("log-shipper")], rules=[RULES_BY_NAME["container-non-root"]])
    assert "is privileged" in violation.message


def test_cpu_tpu_and_neuron_workloads_are_not_judged():
    def deployment(resources: dict[str, Any]) -> Subject:
        return Subject.from_manifest({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "namespace": "ns"},
            "spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [
                {"name": "vllm", "image": "vllm/vllm-openai:v0.11.0", "resources": {"limits": resources}}]}}},
        })
    for resources in ({"cpu": "4"}, {"google.com/tpu": 4}, {"aws.amazon.com/neuron": 1}):
        assert evaluate([deployment(resources)], PolicyConfig(production=True)) == []
    assert evaluate([deployment({"nvidia.com/gpu": 1})], PolicyConfig(production=True)) != []
