"""``RayJob`` (KubeRay ``ray.io/v1``): a batch or training run on its own Ray cluster, queued by Kueue.

KubeRay creates a RayCluster for the job, runs ``entrypoint`` against it from a submitter pod, and
deletes the cluster ``ttl_seconds_after_finished`` after the job ends. The cluster is built by the
same pod-template builder as :class:`~gpufleet.components.ray_cluster.RayCluster` (CPU head on the
system nodes, GPU workers with the production checklist of :mod:`gpufleet.components.gpu_pod`); the
submitter pod gets the same hygiene (pinned image, request = limit, restricted security context,
priority class, CPU nodes only).

With a Kueue LocalQueue (``queue_name``), the object carries ``kueue.x-k8s.io/queue-name`` and is
admitted as one workload: the head and the submitter (CPU-only pod sets, admitted on Kueue's CPU
flavor) and every worker group (on its pool's flavor). ``spec.suspend`` is deliberately not set:
Kueue's mutating webhook suspends a RayJob that carries a queue name at creation
(``pkg/controller/jobs/rayjob/rayjob_webhook.go``: ``ApplyDefaultForSuspend``, failure policy
``Fail``, so the job is refused rather than run unqueued while the webhook is down) and Kueue
unsuspends it on admission (``RunWithPodSetsInfo``). Kueue's own sample RayJob
(``site/static/examples/jobs/ray-job-sample.yaml``) omits it the same way. Writing ``suspend: true``
from Pulumi would make Pulumi an owner of a field Kueue flips: a later ``pulumi up`` would either
conflict with Kueue's write or suspend an admitted job again.

Kueue's RayJob rules (``raycluster.ValidateCreate`` and the RayJob webhook, Kueue 0.19) are checked
here before anything is created: ``shutdownAfterJobFinishes: true`` (always set), no autoscaling
unless the object is elastic (``kueue.x-k8s.io/elastic-job``, added with autoscaling), at most 8 pod
sets (head, submitter and 6 worker groups), no worker group named ``head``.
"""

from __future__ import annotations

import copy
from typing import Any, Literal, Mapping, Optional

import pulumi
import yaml
from typing_extensions import NotRequired

from gpufleet.components import gpu_pod
from gpufleet.components._validate import check_arg_keys, require_int_range
from gpufleet.components.ray_cluster import (
    GROUP_LABEL,
    WORKLOAD_LABEL,
    RayPodArgs,
    _Plan,
    plan_cluster,
    ray_object,
)

JOB_TYPE = "gpufleet:ray:RayJob"

KUEUE_MAX_WORKER_GROUPS = 6
"""Kueue admits at most 8 pod sets: the head, the submitter and 6 worker groups."""
MAX_JOB_NAME = 41
"""KubeRay names the job's cluster ``<job>-<5 random characters>``; pod and service names derived
from that must stay within the 47 characters :class:`RayCluster` allows."""
SUBMITTER_RESOURCES = {"cpu": "500m", "memory": "512Mi"}
"""Request = limit of the submitter pod, which only runs ``ray job submit`` and follows the logs."""


class RayJobArgs(RayPodArgs):
    """Inputs of :class:`RayJob` (besides those of
    :class:`~gpufleet.components.ray_cluster.RayPodArgs`)."""

    entrypoint: str
    """Command the job runs, e.g. ``python /app/train.py --epochs 3``. Its driver process runs in the
    head pod: size ``head`` for it. Required."""
    job_name: NotRequired[str]
    """Name of the RayJob object (at most 41 characters). Default the component's name."""
    runtime_env: NotRequired[Mapping[str, Any]]
    """Ray runtime environment (``pip``, ``env_vars``, ``working_dir`` URI, ...), rendered to
    ``runtimeEnvYAML``. Default none (the image has everything)."""
    ttl_seconds_after_finished: NotRequired[int]
    """Seconds KubeRay keeps the finished job's cluster before deleting it (Kueue has already
    released its quota: the GPUs idle outside any queue meanwhile). Default 60."""
    active_deadline_seconds: NotRequired[int]
    """Most seconds the job may run before KubeRay fails it and deletes the cluster. Default none."""
    role: NotRequired[Literal["training", "batch"]]
    """Workload role, picks the PriorityClass. Default ``batch``."""
    queue_name: NotRequired[str]
    """Kueue LocalQueue the job is submitted to (label ``kueue.x-k8s.io/queue-name``): without it the
    job starts at once, unqueued; with it a job created while Kueue's webhook is down is refused.
    Default none."""
    autoscaling: NotRequired[bool]
    """Ray autoscaler between each group's min and max replicas (queued jobs become elastic Kueue
    workloads). Default false: Kueue reserves the whole cluster up front, every group at
    ``max_replicas``."""
    idle_timeout_seconds: NotRequired[int]
    """Idle time before the autoscaler removes a worker (with ``autoscaling``). Default 300."""


def plan_job(args: Mapping[str, Any], default_name: str, *, name: str) -> tuple[_Plan, dict[str, Any]]:
    """Validate the arguments and build the ``ray.io/v1`` RayJob spec (camelCase, as the CRD
    defines it) around the cluster spec of :func:`~gpufleet.components.ray_cluster.plan_cluster`."""
    job_name = args.get("job_name") or default_name
    if isinstance(job_name, str) and len(job_name) > MAX_JOB_NAME:
        raise ValueError(f"{name}: job_name must be at most {MAX_JOB_NAME} characters (KubeRay appends a suffix), got {job_name!r}")
    groups = list(args.get("worker_groups") or [])
    if args.get("queue_name") and len(groups) > KUEUE_MAX_WORKER_GROUPS:
        raise ValueError(
            f"{name}: worker_groups has {len(groups)} groups; a queued RayJob (head and submitter included) "
            f"admits at most {KUEUE_MAX_WORKER_GROUPS}"
        )
    entrypoint = args.get("entrypoint")
    if not isinstance(entrypoint, str) or not entrypoint.strip():
        raise ValueError(f"{name}: entrypoint is required (the command the job runs)")
    autoscaling = args.get("autoscaling", False)
    cluster_args = {k: v for k, v in args.items() if k not in ("job_name", "service_name")}
    plan = plan_cluster({**cluster_args, "cluster_name": job_name, "autoscaling": autoscaling}, default_name,
                        name=name, role_default="batch", serve=False, idle_default=300)
    ttl = require_int_range(args.get("ttl_seconds_after_finished", 60), "ttl_seconds_after_finished", 0, 86400, name=name)

    spec: dict[str, Any] = {
        "entrypoint": entrypoint,
        # Kueue requires it: a finished job's cluster must not hold the queue's resources.
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": ttl,
        "submissionMode": "K8sJobMode",
        "submitterPodTemplate": _submitter(plan),
        "rayClusterSpec": plan.spec,
    }
    runtime_env = args.get("runtime_env")
    if runtime_env is not None:
        if not isinstance(runtime_env, Mapping):
            raise TypeError(f"{name}: runtime_env must be a mapping (Ray runtime environment)")
        if runtime_env:
            spec["runtimeEnvYAML"] = yaml.safe_dump(dict(runtime_env), sort_keys=False)
    if args.get("active_deadline_seconds") is not None:
        spec["activeDeadlineSeconds"] = require_int_range(
            args["active_deadline_seconds"], "active_deadline_seconds", 60, 30 * 86400, name=name)
    return plan, spec


def _submitter(plan: _Plan) -> dict[str, Any]:
    """The pod that runs ``ray job submit`` (KubeRay fills in the command and the dashboard address
    when the container has none): the head's image, CPU nodes and priority, restricted, no API token."""
    head = plan.spec["headGroupSpec"]["template"]["spec"]
    image = head["containers"][0]["image"]
    return {
        "metadata": {"labels": {WORKLOAD_LABEL: plan.object_name, GROUP_LABEL: "submitter"}},
        "spec": {
            "containers": [{
                "name": "ray-job-submitter",
                "image": image,
                "resources": {"requests": dict(SUBMITTER_RESOURCES), "limits": dict(SUBMITTER_RESOURCES)},
                "securityContext": gpu_pod.container_security_context(),
            }],
            "restartPolicy": "Never",
            "nodeSelector": dict(head["nodeSelector"]),
            "affinity": copy.deepcopy(head["affinity"]),
            "priorityClassName": head["priorityClassName"],
            "securityContext": gpu_pod.pod_security_context(),
            # It talks to the Ray dashboard over HTTP, never to the Kubernetes API.
            "automountServiceAccountToken": False,
        },
    }


class RayJob(pulumi.ComponentResource):
    """A ``ray.io/v1`` RayJob: ``entrypoint`` on a Ray cluster built like :class:`RayCluster`'s,
    submitted to a Kueue LocalQueue, cluster deleted after the job; one PDB per worker group."""

    job_name: str

    def __init__(self, name: str, args: RayJobArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, RayJobArgs, name=JOB_TYPE)
        plan, spec = plan_job(args, name, name=JOB_TYPE)

        super().__init__(JOB_TYPE, name, {}, opts)
        ray_object(self, name, "RayJob", plan, args, spec)
        self.job_name = plan.object_name
        self.register_outputs({"job_name": self.job_name})


__all__ = ["JOB_TYPE", "MAX_JOB_NAME", "RayJob", "RayJobArgs", "plan_job"]
