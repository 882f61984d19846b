"""``TrainingJob`` and ``KubeflowTrainer``: the TrainJob and the torch-distributed ClusterTrainingRuntime
pass the Kubeflow Trainer v2.3.0 CRDs (the ``run`` fixture); nodes × GPUs, requests = limits, EFA
resources and environment, the pool's tolerations and selector, ``/dev/shm``, the checkpoint volume
and its env, Kueue's queue and WorkloadPriorityClass labels, restarts that resume together; the chart
values; errors name the field."""

from __future__ import annotations

from collections import Counter

import pytest

from gpufleet.components.gpu_instances import instance_types_of
from gpufleet.components.gpu_scheduling import EFA_ENV, GpuPlacement
from gpufleet.components.kubeflow_trainer import RUNTIME_NAME, KubeflowTrainer, torch_runtime_spec, trainer_values
from gpufleet.components.training_job import TrainingJob, train_job_spec

TRAIN_JOB = "kubernetes:trainer.kubeflow.org/v1alpha1:TrainJob"
RUNTIME = "kubernetes:trainer.kubeflow.org/v1alpha1:ClusterTrainingRuntime"
RELEASE = "kubernetes:helm.sh/v3:Release"

EFA_POOL = GpuPlacement("batch", tuple(instance_types_of(types=["p4d.24xlarge", "p4de.24xlarge"])), ("spot",),
                        gpu_limit=32, efa=True)
PLAIN_POOL = GpuPlacement("g6e", tuple(instance_types_of(families=["g6e"])), gpu_limit=16)
BASE = {
    "namespace": "research",
    "placement": EFA_POOL,
    "image": "111122223333.dkr.ecr.us-east-1.amazonaws.com/research/llm-pretrain:2026.11.1",
    "command": ["torchrun", "/app/train.py"],
    "num_nodes": 2,
    "gpus_per_node": 8,
    "cpu": "88",
    "memory": "1000Gi",
    "shm_size": "64Gi",
    "checkpoint_claim": "model-weights",
    "queue_name": "research",
}


def training_job(**overrides):
    def program():
        TrainingJob("pretrain", {**BASE, **overrides})
    return program


def _pod_patch(spec):
    (patch,) = spec["runtimePatches"]
    assert patch["manager"] == "gpufleet.io/training"
    (node,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert node["name"] == "node"
    return node["template"]["spec"]["template"]["spec"]


def test_children_are_exact(run):
    recording = run(training_job())
    component = recording.one("gpufleet:training:TrainingJob")
    assert Counter(c.type for c in recording.children(component.urn)) == {TRAIN_JOB: 1}


def test_train_job_spec_on_an_efa_pool(run):
    job = run(training_job()).one(TRAIN_JOB)
    metadata, spec = job.inputs["metadata"], job.inputs["spec"]
    assert (metadata["name"], metadata["namespace"]) == ("pretrain", "research")
    # Queued: one gang admission of both nodes, ordered by the training WorkloadPriorityClass.
    assert metadata["labels"]["kueue.x-k8s.io/queue-name"] == "research"
    assert metadata["labels"]["kueue.x-k8s.io/priority-class"] == "gpufleet-training"
    assert "suspend" not in spec  # Kueue's webhook suspends it; Pulumi never owns the field
    assert spec["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime", "name": RUNTIME_NAME}
    trainer = spec["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 8)
    amounts = {"cpu": "88", "memory": "1000Gi", "nvidia.com/gpu": 8, "vpc.amazonaws.com/efa": "4"}
    assert trainer["resourcesPerNode"] == {"requests": amounts, "limits": amounts}
    env = {e["name"]: e["value"] for e in trainer["env"]}
    assert env == {"CHECKPOINT_DIR": "/checkpoints", **EFA_ENV}
    assert env["FI_PROVIDER"] == "efa" and env["FI_EFA_USE_DEVICE_RDMA"] == "1" and env["NCCL_SOCKET_IFNAME"] == "^lo"
    pod = _pod_patch(spec)
    assert pod["nodeSelector"] == {"gpufleet.io/gpu-pool": "batch"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["securityContext"]["runAsNonRoot"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Gi"}
    assert volumes["checkpoints"]["persistentVolumeClaim"] == {"claimName": "model-weights"}
    (container,) = pod["containers"]
    assert container["name"] == "node"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["volumeMounts"] == [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "checkpoints", "mountPath": "/checkpoints", "subPath": "checkpoints/pretrain"},
    ]


def test_immutable_trainer_replaces_the_job_first(run):
    # spec.trainer and spec.runtimeRef are immutable (CEL self == oldSelf): a change replaces the job,
    # deleting the old one first (same name); the new run resumes from the checkpoint.
    job = run(training_job()).one(TRAIN_JOB)
    assert set(job.replace_on_changes) == {"spec.trainer", "spec.runtimeRef"}
    assert job.delete_before_replace is True


def test_plain_pool_gets_no_efa(run):
    job = run(training_job(placement=PLAIN_POOL, gpus_per_node=4, cpu="40", memory="300Gi", shm_size="32Gi",
                           checkpoint_path="runs/a", env={"NCCL_DEBUG": "WARN"})).one(TRAIN_JOB)
    trainer = job.inputs["spec"]["trainer"]
    assert "vpc.amazonaws.com/efa" not in trainer["resourcesPerNode"]["limits"]
    assert [e["name"] for e in trainer["env"]] == ["CHECKPOINT_DIR", "NCCL_DEBUG"]
    (container,) = _pod_patch(job.inputs["spec"])["containers"]
    assert container["volumeMounts"][1]["subPath"] == "runs/a"


def test_unqueued_job_has_no_kueue_labels(run):
    job = run(training_job(queue_name=None)).one(TRAIN_JOB)
    labels = job.inputs["metadata"]["labels"]
    assert "kueue.x-k8s.io/queue-name" not in labels and "kueue.x-k8s.io/priority-class" not in labels


@pytest.mark.parametrize(("override", "message"), [
    ({"gpus_per_node": 16}, r"gpus_per_node \(16\) exceeds what one node of pool 'batch' offers"),
    ({"shm_size": "1000Gi"}, r"shm_size \(1000Gi\) must be below memory"),
    ({"image": "pytorch/pytorch"}, r"image must be pinned"),
    ({"image": "pytorch/pytorch:latest"}, r"image must be pinned"),
    ({"command": "torchrun"}, r"command must be a non-empty list"),
    ({"num_nodes": 0}, r"num_nodes"),
    ({"checkpoint_claim": "Bad_Claim"}, r"checkpoint_claim"),
    ({"checkpoint_path": "../escape"}, r"checkpoint_path must be a relative path"),
    ({"env": {"FI_PROVIDER": "tcp"}}, r"env\['FI_PROVIDER'\] is set by gpufleet \(EFA\)"),
    ({"env": {"CHECKPOINT_DIR": "/x"}}, r"env\['CHECKPOINT_DIR'\] is set by gpufleet"),
    ({"job_name": "x" * 41}, r"job_name must be at most 40"),
    ({"placement": GpuPlacement("ts", tuple(instance_types_of(families=["g6"])), sharing="time-slicing",
                                time_slicing_replicas=4)}, r"shares its GPUs"),
])
def test_refusals_name_the_field(override, message):
    with pytest.raises(ValueError, match=message):
        train_job_spec({**BASE, **override}, "pretrain")


def test_trainer_release_and_runtime(run):
    recording = run(lambda: KubeflowTrainer("kubeflow-trainer", {"max_restarts": 5}))
    component = recording.one("gpufleet:training:KubeflowTrainer")
    assert Counter(c.type for c in recording.children(component.urn)) == {
        "kubernetes:core/v1:Namespace": 1, RELEASE: 1, RUNTIME: 1}
    release = recording.one(RELEASE)
    assert release.inputs["chart"] == "oci://ghcr.io/kubeflow/charts/kubeflow-trainer"
    assert release.inputs["version"] == "2.3.0"
    values = release.inputs["values"]
    assert values["manager"]["nodeSelector"] == {"gpufleet.io/node-role": "system"}
    assert values["manager"]["resources"]["requests"] == values["manager"]["resources"]["limits"]
    assert values["jobset"] == {"install": True} and values["runtimes"] == {"defaultEnabled": False}
    runtime = recording.one(RUNTIME)
    assert release.urn in runtime.dependencies
    assert runtime.inputs["metadata"]["name"] == RUNTIME_NAME
    spec = runtime.inputs["spec"]
    # All nodes restart together (Recreate) up to max_restarts; any pod failure fails the attempt.
    assert spec["template"]["spec"]["failurePolicy"] == {"maxRestarts": 5, "restartStrategy": "Recreate"}
    (node,) = spec["template"]["spec"]["replicatedJobs"]
    assert node["template"]["metadata"]["labels"] == {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}
    assert node["template"]["spec"]["backoffLimit"] == 0
    pod = node["template"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["priorityClassName"] == "gpufleet-training"
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_trainer_values_and_runtime_refusals():
    assert trainer_values({"replicas": 3})["manager"]["replicas"] == 3
    with pytest.raises(ValueError, match="replicas"):
        trainer_values({"replicas": 0})
    with pytest.raises(ValueError, match="runtime_image must be pinned"):
        torch_runtime_spec("pytorch/pytorch")
    with pytest.raises(ValueError, match="max_restarts"):
        torch_runtime_spec(max_restarts=-1)


# ---- the policy rules judge the rendered objects --------------------------------------------------

POD_RULES = ("gpu-requests-equal-limits", "gpu-toleration-required", "gpu-shm-volume", "container-non-root")


def _train_job_manifest(**overrides) -> dict:
    job_name, labels, spec = train_job_spec({**BASE, **overrides}, "pretrain")
    return {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
            "metadata": {"name": job_name, "namespace": "research", "labels": labels}, "spec": spec}


def _violations(manifest: dict) -> set[tuple[str, str]]:
    from gpufleet.policies.core import PolicyConfig, Subject, evaluate
    from gpufleet.policies.rules import RULES_BY_NAME

    found = evaluate([Subject.from_manifest(manifest)], PolicyConfig(production=True),
                     rules=[RULES_BY_NAME[name] for name in POD_RULES])
    return {(v.policy, v.kind) for v in found}


def test_rules_pass_the_rendered_train_job_and_runtime():
    assert _violations(_train_job_manifest()) == set()
    runtime = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
               "metadata": {"name": RUNTIME_NAME}, "spec": torch_runtime_spec()}
    assert _violations(runtime) == set()


def test_rules_catch_a_train_job_missing_each_piece():
    def patched(edit) -> dict:
        manifest = _train_job_manifest()
        edit(_pod_patch(manifest["spec"]), manifest["spec"]["trainer"])
        return manifest

    no_shm = patched(lambda pod, trainer: pod["containers"][0].update(volumeMounts=pod["containers"][0]["volumeMounts"][1:]))
    assert _violations(no_shm) == {("gpu-shm-volume", "TrainJob")}
    no_tolerations = patched(lambda pod, trainer: pod.pop("tolerations"))
    assert ("gpu-toleration-required", "TrainJob") in _violations(no_tolerations)
    unequal = patched(lambda pod, trainer: trainer["resourcesPerNode"]["requests"].update({"nvidia.com/gpu": 4}))
    assert _violations(unequal) == {("gpu-requests-equal-limits", "TrainJob")}
    root = patched(lambda pod, trainer: pod["containers"][0].pop("securityContext"))
    assert ("container-non-root", "TrainJob") in _violations(root)
