"""``RayJob``: the rendered object passes the KubeRay v1.7.0 RayJob CRD (the ``run`` fixture); Kueue's
RayJob rules hold (queue label, shutdown after the job, no suspend written by Pulumi, fixed size
unless elastic); the cluster has the RayCluster hygiene; the submitter is hardened; errors name the
field."""

from __future__ import annotations

from collections import Counter

import pytest
import yaml

from gpufleet.components.gpu_instances import instance_types_of
from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.components.ray_job import RayJob

JOB = "gpufleet:ray:RayJob"
RAY_JOB = "kubernetes:ray.io/v1:RayJob"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"

BATCH = GpuPlacement("batch", tuple(instance_types_of(families=["g6e", "p4d"])), ("spot",), gpu_limit=64)
GROUP = {"group_name": "gpu", "gpus": 8, "cpu": "88", "memory": "640Gi", "max_replicas": 2, "shm_size": "64Gi"}
BASE = {"namespace": "research", "placement": BATCH, "worker_groups": [GROUP], "queue_name": "research",
        "entrypoint": "python /app/embed.py --shards 64", "weights_claim": "model-weights"}


def ray_job(**overrides):
    def program():
        RayJob("embed", {**BASE, **overrides})
    return program


def test_children_are_exact_and_wait_for_the_job(run):
    recording = run(ray_job(worker_groups=[GROUP, {**GROUP, "group_name": "gpu-b", "max_replicas": 1}]))
    component = recording.one(JOB)
    children = recording.children(component.urn)
    assert Counter(c.type for c in children) == {RAY_JOB: 1, PDB: 2}
    job = recording.one(RAY_JOB)
    assert all(job.urn in pdb.dependencies for pdb in recording.of_type(PDB))


def test_queued_job_follows_kueue_rules(run):
    job = run(ray_job()).one(RAY_JOB)
    metadata, spec = job.inputs["metadata"], job.inputs["spec"]
    assert (metadata["name"], metadata["namespace"]) == ("embed", "research")
    assert metadata["labels"]["kueue.x-k8s.io/queue-name"] == "research"
    # Kueue orders and preempts it by this WorkloadPriorityClass (the batch role's).
    assert metadata["labels"]["kueue.x-k8s.io/priority-class"] == "gpufleet-batch"
    assert "annotations" not in metadata  # fixed size: not an elastic workload
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] == 60
    # Kueue's webhook suspends it at creation and unsuspends it on admission; Pulumi never owns the field.
    assert "suspend" not in spec
    cluster = spec["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is False and "autoscalerOptions" not in cluster
    (worker,) = cluster["workerGroupSpecs"]
    assert worker["replicas"] == worker["maxReplicas"] == 2  # Kueue reserves the whole cluster
    assert spec["entrypoint"] == "python /app/embed.py --shards 64"
    assert "runtimeEnvYAML" not in spec and "activeDeadlineSeconds" not in spec


def test_workers_get_the_ray_cluster_hygiene(run):
    spec = run(ray_job()).one(RAY_JOB).inputs["spec"]["rayClusterSpec"]
    pod = spec["workerGroupSpecs"][0]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert pod["nodeSelector"] == {"gpufleet.io/gpu-pool": "batch"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["priorityClassName"] == "gpufleet-batch"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}} in pod["volumes"]
    assert {"name": "model-weights", "persistentVolumeClaim": {"claimName": "model-weights"}} in pod["volumes"]
    assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(container)
    assert pod["automountServiceAccountToken"] is False
    head = spec["headGroupSpec"]["template"]["spec"]
    assert head["nodeSelector"] == {"gpufleet.io/node-role": "system"} and "tolerations" not in head


def test_submitter_is_hardened_and_stays_off_gpu_nodes(run):
    spec = run(ray_job(image="rayproject/ray:2.58.0-py312-gpu")).one(RAY_JOB).inputs["spec"]
    assert spec["submissionMode"] == "K8sJobMode"
    pod = spec["submitterPodTemplate"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "rayproject/ray:2.58.0-py312-gpu"
    assert "command" not in container  # KubeRay fills in `ray job submit` and the dashboard address
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "512Mi"},
                                      "limits": {"cpu": "500m", "memory": "512Mi"}}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["nodeSelector"] == {"gpufleet.io/node-role": "system"} and "tolerations" not in pod
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "gpufleet.io/gpu-pool", "operator": "DoesNotExist"}]}]
    assert pod["priorityClassName"] == "gpufleet-batch"


def test_options_runtime_env_deadline_training_and_elastic(run):
    recording = run(ray_job(runtime_env={"pip": ["torch==2.9.1"], "env_vars": {"SHARDS": "64"}},
                            active_deadline_seconds=7200, ttl_seconds_after_finished=0, role="training",
                            autoscaling=True))
    job = recording.one(RAY_JOB)
    spec = job.inputs["spec"]
    assert yaml.safe_load(spec["runtimeEnvYAML"]) == {"pip": ["torch==2.9.1"], "env_vars": {"SHARDS": "64"}}
    assert spec["activeDeadlineSeconds"] == 7200 and spec["ttlSecondsAfterFinished"] == 0
    assert spec["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["priorityClassName"] == "gpufleet-training"
    assert spec["rayClusterSpec"]["enableInTreeAutoscaling"] is True
    assert job.inputs["metadata"]["annotations"] == {"kueue.x-k8s.io/elastic-job": "true"}


def test_unqueued_job_has_no_queue_label(run):
    job = run(ray_job(queue_name=None)).one(RAY_JOB)
    assert "kueue.x-k8s.io/queue-name" not in job.inputs["metadata"]["labels"]
    assert "kueue.x-k8s.io/priority-class" not in job.inputs["metadata"]["labels"]


@pytest.mark.parametrize("overrides, message", [
    ({"entrypoint": " "}, "entrypoint is required"),
    ({"entrypoint": None}, "entrypoint is required"),
    ({"job_name": "a" * 42}, "job_name must be at most 41 characters"),
    ({"worker_groups": [{**GROUP, "group_name": f"g{i}"} for i in range(7)]},
     "worker_groups has 7 groups; a queued RayJob .* admits at most 6"),
    ({"worker_groups": [{**GROUP, "group_name": "head"}]}, r"worker_groups\[0\]\.group_name 'head' is reserved"),
    ({"ttl_seconds_after_finished": -1}, "ttl_seconds_after_finished"),
    ({"active_deadline_seconds": 10}, "active_deadline_seconds"),
    ({"role": "inference"}, "role"),
    ({"worker_groups": [{**GROUP, "gpus": 9}]}, r"worker_groups\[0\]\.gpus \(9\) exceeds"),
])
def test_invalid_arguments_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        RayJob("embed", {**BASE, **overrides})
