"""The pod-template extraction table: every GPU workload kind is read, with its pod spec path, pod
count and GPU requests (field paths as the pinned upstream CRDs define them); DRA claims count as GPUs
when their DeviceClass is an NVIDIA GPU class."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from gpufleet.policies.core import Subject
from gpufleet.policies.pod_templates import gpu_pod_templates, pod_templates
from gpufleet.policies.workloads import WORKLOAD_KINDS

GPU = {"name": "c", "image": "i", "resources": {"limits": {"nvidia.com/gpu": 2}}}
POD = {"containers": [GPU]}
TEMPLATE = {"metadata": {"labels": {"app": "a"}}, "spec": POD}


def manifest(api_version: str, kind: str, spec: dict[str, Any], name: str = "w", **top: Any) -> Subject:
    return Subject.from_manifest({"apiVersion": api_version, "kind": kind,
                                  "metadata": {"name": name, "namespace": "ns"}, "spec": spec, **top})


CASES = [
    ("LLMInferenceService", manifest("serving.kserve.io/v1alpha2", "LLMInferenceService", {
        "replicas": 2, "template": POD, "worker": POD, "prefill": {"replicas": 3, "template": POD}}),
     [("spec.template", 2, 2), ("spec.worker", 2, 2), ("spec.prefill.template", 3, 3)]),
    ("LLMInferenceService", manifest("serving.kserve.io/v1alpha1", "LLMInferenceService", {
        "template": POD, "scaling": {"minReplicas": 1, "maxReplicas": 4}}), [("spec.template", 1, 4)]),
    ("LeaderWorkerSet", manifest("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", {
        "replicas": 2, "leaderWorkerTemplate": {"size": 4, "leaderTemplate": TEMPLATE, "workerTemplate": TEMPLATE}}),
     [("spec.leaderWorkerTemplate.leaderTemplate.spec", 2, 2), ("spec.leaderWorkerTemplate.workerTemplate.spec", 6, 6)]),
    ("LeaderWorkerSet", manifest("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet", {
        "replicas": 2, "leaderWorkerTemplate": {"size": 4, "workerTemplate": TEMPLATE}}),
     [("spec.leaderWorkerTemplate.workerTemplate.spec", 8, 8)]),
    ("PyTorchJob", manifest("kubeflow.org/v1", "PyTorchJob", {"pytorchReplicaSpecs": {
        "Master": {"replicas": 1, "template": TEMPLATE}, "Worker": {"replicas": 3, "template": TEMPLATE}}}),
     [("spec.pytorchReplicaSpecs.Master.template.spec", 1, 1), ("spec.pytorchReplicaSpecs.Worker.template.spec", 3, 3)]),
    ("MPIJob", manifest("kubeflow.org/v2beta1", "MPIJob", {"mpiReplicaSpecs": {
        "Launcher": {"replicas": 1, "template": {"spec": {"containers": [{"name": "l", "image": "i"}]}}},
        "Worker": {"replicas": 2, "template": TEMPLATE}}}),
     [("spec.mpiReplicaSpecs.Worker.template.spec", 2, 2)]),
    ("TrainJob", manifest("trainer.kubeflow.org/v1alpha1", "TrainJob", {
        "runtimeRef": {"name": "torch-distributed"},
        "trainer": {"numNodes": 3, "image": "pytorch", "resourcesPerNode": {"limits": {"nvidia.com/gpu": 2}}},
        "runtimePatches": [{"manager": "me", "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [
            {"name": "node", "template": {"spec": {"template": {"spec": {"tolerations": [{"operator": "Exists"}]}}}}}]}}}}]}),
     [("spec.trainer", 3, 3)]),
    ("JobSet", manifest("jobset.x-k8s.io/v1alpha2", "JobSet", {"replicatedJobs": [
        {"name": "workers", "replicas": 2, "template": {"spec": {"parallelism": 4, "template": TEMPLATE}}}]}),
     [("spec.replicatedJobs[0].template.spec.template.spec", 8, 8)]),
    ("NIMService", manifest("apps.nvidia.com/v1alpha1", "NIMService", {
        "image": {"repository": "nvcr.io/nim/meta/llama", "tag": "1.0"}, "resources": {"limits": {"nvidia.com/gpu": 2}},
        "scale": {"enabled": True, "hpa": {"minReplicas": 1, "maxReplicas": 3}}}), [("spec", 1, 3)]),
    ("SparkApplication", manifest("sparkoperator.k8s.io/v1beta2", "SparkApplication", {
        "image": "spark", "driver": {"cores": 1}, "executor": {"instances": 4, "gpu": {"name": "nvidia.com/gpu", "quantity": 2}}}),
     [("spec.executor", 4, 4)]),
    ("Job", manifest("batch.volcano.sh/v1alpha1", "Job", {"minAvailable": 3, "tasks": [
        {"name": "ps", "replicas": 1, "template": {"spec": {"containers": [{"name": "ps", "image": "i"}]}}},
        {"name": "worker", "replicas": 2, "template": TEMPLATE}]}),
     [("spec.tasks[1].template.spec", 2, 2)]),
    ("RayCronJob", manifest("ray.io/v1", "RayCronJob", {"schedule": "0 * * * *", "jobTemplate": {"rayClusterSpec": {
        "headGroupSpec": {"template": {"spec": {"containers": [{"name": "h", "image": "ray"}]}}},
        "workerGroupSpecs": [{"groupName": "g", "replicas": 2, "template": TEMPLATE}]}}}),
     [("spec.jobTemplate.rayClusterSpec.workerGroupSpecs[0].template.spec", 2, 2)]),
    ("ClusterTrainingRuntime", Subject.from_manifest({
        "apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime", "metadata": {"name": "rt"},
        "spec": {"template": {"spec": {"replicatedJobs": [{"name": "node", "template": {"spec": {"template": TEMPLATE}}}]}}}}),
     [("spec.template.spec.replicatedJobs[0].template.spec.template.spec", 1, 1)]),
]


@pytest.mark.parametrize("kind,subject,expected", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_gpu_templates_of_every_kind(kind, subject, expected):
    templates = [t for t in pod_templates(subject) if t.uses_gpu]
    assert [(t.path, t.min_replicas, t.max_replicas) for t in templates] == expected
    assert all(t.gpu_resources() == {"nvidia.com/gpu": Decimal(2)} for t in templates)


def test_train_job_takes_pod_fields_from_runtime_patches():
    [template] = pod_templates(CASES[6][1])
    assert template.tolerations == [{"operator": "Exists"}] and template.containers[0]["image"] == "pytorch"
    assert template.distributed


def test_table_covers_every_kind_the_rules_read():
    kinds = {(e.group, e.kind) for e in WORKLOAD_KINDS}
    tested = {(c[1].group, c[1].kind) for c in CASES}
    new = {("serving.kserve.io", "LLMInferenceService"), ("leaderworkerset.x-k8s.io", "LeaderWorkerSet"),
           ("kubeflow.org", "PyTorchJob"), ("kubeflow.org", "MPIJob"), ("trainer.kubeflow.org", "TrainJob"),
           ("jobset.x-k8s.io", "JobSet"), ("apps.nvidia.com", "NIMService"), ("sparkoperator.k8s.io", "SparkApplication"),
           ("batch.volcano.sh", "Job"), ("ray.io", "RayCronJob")}
    assert new <= kinds and new <= tested
    for entry in WORKLOAD_KINDS:
        assert entry.gpus and (entry.template or entry.pod_spec or entry.build), entry.kind


def _dra(device_class: str, *, defined_class: dict[str, Any] | None = None, used: bool = True) -> list[Subject]:
    rct = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
           "metadata": {"name": "gpu", "namespace": "ns"},
           "spec": {"spec": {"devices": {"requests": [{"name": "g", "exactly": {"deviceClassName": device_class, "count": 2}}]}}}}
    container = {"name": "c", "image": "i", "resources": {"claims": [{"name": "gpu"}] if used else []}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
           "spec": {"containers": [container], "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "gpu"}]}}
    docs = [rct, pod] + ([defined_class] if defined_class else [])
    return [Subject.from_manifest(d) for d in docs]


def test_dra_claims_of_nvidia_gpu_classes_are_gpu_requests():
    [template] = gpu_pod_templates(_dra("gpu.nvidia.com"))
    assert template.dra_gpus == {"gpu.nvidia.com": Decimal(2)} and template.gpu_count() == 2
    assert [t.dra_gpus for t in gpu_pod_templates(_dra("mig.nvidia.com"))] == [{"mig.nvidia.com": Decimal(2)}]


def test_dra_claims_of_other_classes_are_not():
    assert list(gpu_pod_templates(_dra("neuron.aws.com"))) == []
    assert list(gpu_pod_templates(_dra("compute-domain-default-channel.nvidia.com"))) == []
    assert list(gpu_pod_templates(_dra("gpu.nvidia.com", used=False))) == []


def test_a_device_class_selecting_nvidia_gpus_counts():
    custom = {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": "a100"},
              "spec": {"selectors": [{"cel": {"expression":
                                              "device.driver == 'gpu.nvidia.com' && device.attributes['gpu.nvidia.com'].productName == 'A100'"}}]}}
    assert [t.dra_gpus for t in gpu_pod_templates(_dra("a100", defined_class=custom))] == [{"a100": Decimal(2)}]
    assert list(gpu_pod_templates(_dra("a100"))) == []
