"""The policies read gpufleet's LeaderWorkerSet through the extraction table (``policies/workloads.py``)
and judge it as it is: every rule passes on the component's objects, and each one-field mutation that
breaks a checklist item (PDB coverage, tolerations, ``/dev/shm``, probes on the leader and workers,
requests = limits) is caught by the rule guarding it."""

from __future__ import annotations

import copy

import pytest

from gpufleet.components.gpu_instances import instance_types_of
from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.components.multi_node_inference import plan_multi_node_service
from gpufleet.policies.core import Subject, evaluate
from gpufleet.policies.pod_templates import gpu_pod_templates

P5 = GpuPlacement("multi-node", tuple(instance_types_of(families=["p5"])), gpu_limit=32)
PLAN = plan_multi_node_service("ds", {"namespace": "serving", "placement": P5, "model_name": "deepseek-v3",
                                      "storage_uri": "pvc://model-weights/deepseek-ai/DeepSeek-V3", "nodes": 2,
                                      "groups": 2, "weights_gib": 642})


def manifests(lws_spec=None, pdb=True):
    meta = {"name": "ds", "namespace": "serving"}
    docs = [{"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
             "metadata": {**meta, "labels": PLAN.labels, "annotations": PLAN.annotations},
             "spec": lws_spec or PLAN.spec},
            {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": PLAN.service_spec}]
    # the team namespace's GPU quota (gpu-namespace-quota): what the Team component gives it
    docs.append({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "gpu", "namespace": "serving"},
                 "spec": {"hard": {"requests.nvidia.com/gpu": "32"}}})
    if pdb:
        docs.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta,
                     "spec": PLAN.disruption_budget})
    return [Subject.from_manifest(doc) for doc in docs]


CLUSTER_WIDE = {"gpu-dcgm-exporter-present"}
"""Judged on the whole cluster (the GPU Operator's DCGM exporter), not on one workload."""


def policies(subjects):
    return sorted({v.policy for v in evaluate(subjects)} - CLUSTER_WIDE)


def test_both_templates_are_read_as_serving_distributed_gpu_pods():
    templates = {t.where: t for t in gpu_pod_templates(manifests())}
    leader = next(t for w, t in templates.items() if w.endswith("leaderTemplate.spec"))
    worker = next(t for w, t in templates.items() if w.endswith("workerTemplate.spec"))
    assert leader.serving and worker.serving and leader.distributed and worker.distributed
    assert leader.labels["leaderworkerset.sigs.k8s.io/name"] == "ds"
    assert len(templates) == 2


def test_the_component_passes_every_rule():
    assert [str(v) for v in evaluate(manifests()) if v.policy not in CLUSTER_WIDE] == []


def _mutated(mutate):
    spec = copy.deepcopy(PLAN.spec)
    mutate(spec["leaderWorkerTemplate"])
    return manifests(spec)


def _leader(group):
    return group["leaderTemplate"]["spec"]


def _worker(group):
    return group["workerTemplate"]["spec"]


@pytest.mark.parametrize("mutate, rule", [
    (lambda g: _leader(g).pop("tolerations"), "gpu-toleration-required"),
    (lambda g: _worker(g).update(volumes=[v for v in _worker(g)["volumes"] if v["name"] != "dshm"]) or
     _worker(g)["containers"][0].update(volumeMounts=[m for m in _worker(g)["containers"][0]["volumeMounts"]
                                                      if m["name"] != "dshm"]), "gpu-shm-volume"),
    (lambda g: _leader(g)["containers"][0].pop("livenessProbe"), "gpu-probes-distinct"),
    (lambda g: _worker(g)["containers"][0].update(readinessProbe=_worker(g)["containers"][0]["livenessProbe"]),
     "gpu-probes-distinct"),
    (lambda g: _leader(g)["containers"][0].pop("startupProbe"), "gpu-probes-generous"),
    (lambda g: _leader(g)["containers"][0]["resources"]["requests"].update({"nvidia.com/gpu": 4}),
     "gpu-requests-equal-limits"),
])
def test_one_field_mutations_are_caught(mutate, rule):
    assert rule in policies(_mutated(mutate))


def test_without_its_pdb_the_groups_are_reported():
    assert "gpu-pdb-required" in policies(manifests(pdb=False))
