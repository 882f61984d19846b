"""``TrainingJob``: a multi-node PyTorch training run as a Kubeflow Trainer ``TrainJob``
(``trainer.kubeflow.org/v1alpha1``) on a GPU pool, admitted as one gang by Kueue.

The TrainJob references gpufleet's torch-distributed ClusterTrainingRuntime
(:data:`~gpufleet.components.kubeflow_trainer.RUNTIME_NAME`) and sets, for its ``node`` pods:

- ``numNodes`` pods of ``gpus_per_node`` GPUs each (``numProcPerNode`` = GPUs: one rank per GPU);
  ``resourcesPerNode`` requests = limits for GPUs (the pool's resource), CPU, memory and, on an EFA pool,
  every EFA interface of the node (``vpc.amazonaws.com/efa``, :meth:`GpuPlacement.efa_resources`) with
  the NCCL/libfabric environment (:data:`~gpufleet.components.gpu_scheduling.EFA_ENV`);
- through ``runtimePatches`` (manager ``gpufleet.io/training``): the pool's tolerations and node
  selector, a memory-backed ``/dev/shm`` (NCCL's intra-node transport and the data loaders outgrow the
  64 MiB default), and the checkpoint volume: a claim (the team's model-cache claim or an FSx claim)
  mounted at ``/checkpoints`` with ``subPath`` ``checkpoint_path``, passed as ``CHECKPOINT_DIR``;
- restarts: the runtime's JobSet recreates all nodes after a failure (``max_restarts`` of the
  runtime), and the script resumes from the newest checkpoint in ``$CHECKPOINT_DIR``.

With ``queue_name`` the TrainJob carries ``kueue.x-k8s.io/queue-name`` and the training role's
WorkloadPriorityClass (``kueue.x-k8s.io/priority-class``). Kueue's TrainJob webhook suspends it on
creation and admits all ``numNodes`` pods at once (one pod set: gang admission); with
``waitForPodsReady`` (gpufleet's Kueue) an admitted job whose pods are not all ready in time is
evicted and requeued, so a half-placed job never holds GPUs. ``spec.suspend`` is not written (as with
RayJob: Kueue owns it). ``spec.trainer`` and ``spec.runtimeRef`` are immutable: a change replaces the
TrainJob (deleted first, same name) and the new run resumes from the checkpoint.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Mapping, Optional, Sequence, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from gpufleet.components import gpu_pod
from gpufleet.components._k8s import MANAGED_BY, require_dns_label
from gpufleet.components._validate import check_arg_keys, require_int_range
from gpufleet.components.gpu_scheduling import (
    GPU_RESOURCE,
    PRIORITY_CLASSES,
    QUEUE_NAME_LABEL,
    WORKLOAD_PRIORITY_CLASS_LABEL,
    GpuPlacement,
)
from gpufleet.components.kubeflow_trainer import API_VERSION, NODE_STEP, RUNTIME_NAME

TYPE = "gpufleet:training:TrainingJob"

PATCH_MANAGER = "gpufleet.io/training"
"""``runtimePatches[].manager`` of gpufleet's patch (Kueue adds its own, ``kueue.x-k8s.io/manager``)."""
CHECKPOINT_VOLUME = "checkpoints"
CHECKPOINT_MOUNT_PATH = "/checkpoints"
CHECKPOINT_ENV = "CHECKPOINT_DIR"
MAX_NODES = 64
_SUBPATH = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TrainingJobArgs(TypedDict):
    """Inputs of :class:`TrainingJob`."""

    placement: GpuPlacement
    """The GPU pool's placement (``GpuNodePool.placement``): tolerations, selector, GPU resource, EFA.
    Required; its pool must use whole GPUs."""
    namespace: pulumi.Input[str]
    """Team namespace of the TrainJob. Required."""
    image: str
    """Training image with PyTorch and, on EFA pools, libfabric and aws-ofi-nccl, pinned by tag or
    digest. Required."""
    command: Sequence[str]
    """Command of the ``node`` container, e.g. ``["torchrun", "/app/train.py"]`` (Trainer injects the
    ``PET_*`` rendezvous environment torchrun reads). Required."""
    args: NotRequired[Sequence[str]]
    """Arguments of the command. Default none."""
    job_name: NotRequired[str]
    """Name of the TrainJob (DNS label, at most 40 characters: JobSet derives pod names from it).
    Default the component's name."""
    num_nodes: NotRequired[int]
    """Training nodes (pods, one per node), 1-64. Default 2."""
    gpus_per_node: NotRequired[int]
    """GPUs per pod, request = limit; at most one node's (whole GPUs). Default the largest node's."""
    cpu: str
    """CPU per pod, request = limit, e.g. ``"90"``. Required."""
    memory: str
    """Memory per pod, request = limit, e.g. ``"1000Gi"`` (includes ``/dev/shm``). Required."""
    shm_size: NotRequired[str]
    """``/dev/shm`` per pod (memory-backed, counts against ``memory``). Default ``"64Gi"``."""
    checkpoint_claim: str
    """PersistentVolumeClaim holding checkpoints, writable (the team's model cache claim or an FSx
    claim). Required: a multi-node run without checkpoints restarts from zero."""
    checkpoint_path: NotRequired[str]
    """Directory inside the claim (``subPath``), passed to the trainer as ``CHECKPOINT_DIR``
    (``/checkpoints``). Default ``checkpoints/<job_name>``."""
    env: NotRequired[Mapping[str, str]]
    """Extra environment of the ``node`` container. Default none."""
    queue_name: NotRequired[str]
    """Kueue LocalQueue (label ``kueue.x-k8s.io/queue-name``); the job is then admitted as one gang.
    Default none (starts at once, unqueued)."""
    role: NotRequired[Literal["training", "batch"]]
    """WorkloadPriorityClass role (``kueue.x-k8s.io/priority-class``) when queued. Default ``training``."""
    active_deadline_seconds: NotRequired[int]
    """Most seconds the job may run (from each resume). Default none."""
    runtime_name: NotRequired[str]
    """ClusterTrainingRuntime referenced. Default ``gpufleet-torch-distributed``."""
    wait_for: NotRequired[Sequence[pulumi.Resource]]
    """Resources the TrainJob waits for (the trainer, Kueue, the PriorityClasses). Default none."""


def train_job_spec(args: Mapping[str, Any], default_name: str, *, name: str = TYPE) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Check the arguments; return ``(job name, labels, TrainJob spec)``."""
    placement = args.get("placement")
    if not isinstance(placement, GpuPlacement):
        raise ValueError(f"{name}: placement must be a GpuPlacement (GpuNodePool.placement), got {type(placement).__name__}")
    if placement.gpu_resource != GPU_RESOURCE:
        raise ValueError(f"{name}: placement (pool {placement.pool!r}) shares its GPUs ({placement.sharing}); "
                         "multi-node training needs whole GPUs")
    if placement.dra:
        # Kubeflow Trainer v2.3.0 trainer.kubeflow.org_trainjobs.yaml: the pod spec of
        # runtimePatches[].trainingRuntimeSpec...template.spec has no resourceClaims field.
        raise ValueError(f"{name}: placement (pool {placement.pool!r}) allocates GPUs with DRA, but a TrainJob cannot "
                         "claim devices: Kubeflow Trainer v2.3.0's runtimePatches pod spec has no resourceClaims "
                         "(and nvidia.com/gpu is not advertised there); train on a pool with allocation devicePlugin")
    job_name = args.get("job_name") or default_name
    require_dns_label(job_name, "job_name", name=name, what="DNS label")
    if len(job_name) > 40:
        raise ValueError(f"{name}: job_name must be at most 40 characters (JobSet derives pod names from it), got {job_name!r}")
    image = args.get("image")
    if not isinstance(image, str) or not image or ("@" not in image and ":" not in image.rsplit("/", 1)[-1]) or image.endswith(":latest"):
        raise ValueError(f"{name}: image must be pinned by tag or digest (not latest), got {image!r}")
    command = args.get("command")
    if isinstance(command, str) or not command or not all(isinstance(c, str) and c for c in command):
        raise ValueError(f"{name}: command must be a non-empty list of strings, e.g. ['torchrun', '/app/train.py']")
    extra_args = args.get("args", [])
    if isinstance(extra_args, str) or not all(isinstance(a, str) for a in extra_args):
        raise ValueError(f"{name}: args must be a list of strings")
    nodes = require_int_range(args.get("num_nodes", 2), "num_nodes", 1, MAX_NODES, name=name)
    gpus = args.get("gpus_per_node", placement.max_gpus_per_node)
    cpu, memory = args.get("cpu"), args.get("memory")
    gpu_pod.check_gpus(placement, gpus, "gpus_per_node", name=name)
    resources = gpu_pod.gpu_resources(placement, gpus, cpu, memory, name=name)
    for kind in ("requests", "limits"):
        resources[kind].update(placement.efa_resources())
    shm_size = args.get("shm_size", "64Gi")
    shm, shm_mount = gpu_pod.shm_volume(shm_size, name=name)
    gpu_pod.check_shm_fits(shm_size, memory, name=name)
    claim = args.get("checkpoint_claim")
    require_dns_label(claim, "checkpoint_claim", name=name, what="PersistentVolumeClaim name")
    path = args.get("checkpoint_path", f"checkpoints/{job_name}")
    if not isinstance(path, str) or not _SUBPATH.match(path) or ".." in path.split("/"):
        raise ValueError(f"{name}: checkpoint_path must be a relative path inside the claim like 'checkpoints/run-1', got {path!r}")
    env_args = args.get("env", {})
    if not isinstance(env_args, Mapping):
        raise ValueError(f"{name}: env must be a mapping of names to values")
    reserved = {CHECKPOINT_ENV, *(e["name"] for e in placement.efa_env())}
    for key, value in env_args.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key) or not isinstance(value, str):
            raise ValueError(f"{name}: env[{key!r}] must be an environment variable name with a string value")
        if key in reserved:
            raise ValueError(f"{name}: env[{key!r}] is set by gpufleet ({'checkpoint directory' if key == CHECKPOINT_ENV else 'EFA'})")
    env = [{"name": CHECKPOINT_ENV, "value": CHECKPOINT_MOUNT_PATH}, *placement.efa_env(),
           *({"name": k, "value": v} for k, v in env_args.items())]
    role = args.get("role", "training")
    if role not in ("training", "batch"):
        raise ValueError(f"{name}: role must be 'training' or 'batch', got {role!r}")

    trainer: dict[str, Any] = {
        "image": image,
        "command": list(command),
        "numNodes": nodes,
        "numProcPerNode": gpus,
        "resourcesPerNode": resources,
        "env": env,
    }
    if extra_args:
        trainer["args"] = list(extra_args)
    pod_patch = {
        **gpu_pod.gpu_scheduling(placement),
        # Restricted pods whatever the runtime says (team namespaces enforce the restricted standard).
        "securityContext": gpu_pod.pod_security_context(),
        "volumes": [shm, {"name": CHECKPOINT_VOLUME, "persistentVolumeClaim": {"claimName": claim}}],
        "containers": [{
            "name": NODE_STEP,
            "securityContext": gpu_pod.container_security_context(),
            "volumeMounts": [shm_mount, {"name": CHECKPOINT_VOLUME, "mountPath": CHECKPOINT_MOUNT_PATH, "subPath": path}],
        }],
    }
    spec: dict[str, Any] = {
        "runtimeRef": {"apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime",
                       "name": args.get("runtime_name", RUNTIME_NAME)},
        "trainer": trainer,
        "runtimePatches": [{
            "manager": PATCH_MANAGER,
            "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [{
                "name": NODE_STEP,
                "template": {"spec": {"template": {"spec": pod_patch}}},
            }]}}},
        }],
    }
    deadline = args.get("active_deadline_seconds")
    if deadline is not None:
        spec["activeDeadlineSeconds"] = require_int_range(deadline, "active_deadline_seconds", 60, 30 * 86400, name=name)
    labels = dict(MANAGED_BY)
    queue = args.get("queue_name")
    if queue is not None:
        require_dns_label(queue, "queue_name", name=name, what="LocalQueue name")
        labels[QUEUE_NAME_LABEL] = queue
        labels[WORKLOAD_PRIORITY_CLASS_LABEL] = PRIORITY_CLASSES[role]
    return job_name, labels, spec


class TrainingJob(pulumi.ComponentResource):
    """A ``trainer.kubeflow.org/v1alpha1`` TrainJob (child ``{name}-trainjob``) on a GPU pool (see
    the module docstring)."""

    job_name: pulumi.Output[str]

    def __init__(self, name: str, args: TrainingJobArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, TrainingJobArgs, name=TYPE)
        job_name, labels, spec = train_job_spec(args, name)
        super().__init__(TYPE, name, {}, opts)
        job = k8s.apiextensions.CustomResource(
            f"{name}-trainjob",
            api_version=API_VERSION,
            kind="TrainJob",
            metadata={"name": job_name, "namespace": args["namespace"], "labels": labels},
            spec=spec,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=list(args.get("wait_for") or []),
                # Immutable fields: a change replaces the job (same name, so the old one goes first).
                replace_on_changes=["spec.trainer", "spec.runtimeRef"],
                delete_before_replace=True,
            ),
        )
        self.job_name = job.metadata.apply(lambda _: job_name)
        self.register_outputs({"job_name": self.job_name})
