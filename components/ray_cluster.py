"""``RayCluster`` and ``RayService`` (KubeRay ``ray.io/v1``): Ray on GPU pools with the production
checklist generated, not left to each user.

Both share one pod-template builder (:func:`plan_cluster`, also used by
:class:`~gpufleet.components.ray_job.RayJob`):

- the head runs on CPU nodes (the system node group by default, never a GPU node: it has no GPU
  toleration and ``rayStartParams: {num-cpus: "0"}``, so no task or actor is scheduled on it), with
  the in-tree autoscaler as a sidecar;
- every worker group runs on a GPU pool: GPU requests equal limits in the pool's resource name
  (checked against ``placement.max_resources_per_node``), the pool's tolerations and node selector,
  a memory-backed ``/dev/shm``, the model-weights claim, restricted (non-root) security contexts,
  hostname anti-affinity, startup/readiness/liveness probes on the raylet, a PriorityClass, and a
  PodDisruptionBudget so a node drain never takes all workers at once;
- ``min_replicas``/``max_replicas`` per group drive the Ray autoscaler; with a Kueue queue the object
  carries the queue label (and, when autoscaling, Kueue's elastic-job annotation so the cluster can
  grow inside its quota).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional, Sequence, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from gpufleet.components import gpu_claims, gpu_pod
from gpufleet.components._k8s import DNS_LABEL, MANAGED_BY
from gpufleet.components._validate import check_arg_keys, require_int_range, require_one_of
from gpufleet.components.ray_serve_config import ServeApplication, serve_config
from gpufleet.components.gpu_scheduling import (
    ACCELERATOR_LABEL,
    POOL_LABEL,
    QUEUE_NAME_LABEL,
    SYSTEM_NODE_SELECTOR,
    WORKLOAD_PRIORITY_CLASS_LABEL,
    GpuPlacement,
)

CLUSTER_TYPE = "gpufleet:ray:RayCluster"
SERVICE_TYPE = "gpufleet:ray:RayService"

API_VERSION = "ray.io/v1"
RAY_VERSION = "2.58.0"
"""Ray release of the default image (``rayVersion`` must match the image's Ray)."""
DEFAULT_IMAGE = f"rayproject/ray:{RAY_VERSION}-py312-gpu"
"""Ray with CUDA; the head uses the same image so driver and workers share one Python environment."""

WORKLOAD_LABEL = "gpufleet.io/ray-workload"
"""Pod label naming the RayCluster/RayService a pod belongs to (anti-affinity and PDB selectors)."""
GROUP_LABEL = "gpufleet.io/ray-group"
"""Pod label naming the worker group (``head`` on the head pod)."""
ELASTIC_JOB_ANNOTATION = "kueue.x-k8s.io/elastic-job"
"""Marks a Kueue-managed RayCluster as elastic: Kueue admits autoscaler growth as workload slices
(Kueue feature gate ``ElasticJobsViaWorkloadSlices``, beta and on by default since Kueue 0.18).
Without it Kueue refuses a queued cluster that autoscales."""
KUEUE_MAX_WORKER_GROUPS = 7
"""Kueue maps the head and each worker group to a pod set, at most 8 in all."""

RAYLET_HEALTH_PATH = "/api/local_raylet_healthz"
DASHBOARD_AGENT_PORT = 52365
GCS_HEALTH_PATH = "/api/gcs_healthz"
DASHBOARD_PORT = 8265
SERVE_PORT = 8000
HEAD_PORTS = (("gcs-server", 6379), ("dashboard", DASHBOARD_PORT), ("client", 10001))
WEIGHTS_VOLUME = "model-weights"

_IMAGE = re.compile(r"^(?P<repo>[a-z0-9][a-z0-9._/-]*(:\d+/[a-z0-9._/-]+)?)(:(?P<tag>[\w][\w.-]{0,127}))?(@sha256:[0-9a-f]{64})?$")


class HeadSpec(TypedDict):
    """The Ray head pod: GCS, dashboard, job submission and the autoscaler; no tasks or actors."""

    cpu: NotRequired[str]
    """CPU request = limit. Default ``"1"``."""
    memory: NotRequired[str]
    """Memory request = limit (GCS state grows with the cluster). Default ``"4Gi"``."""
    shm_size: NotRequired[str]
    """Memory-backed ``/dev/shm`` (object store of the head). Default ``"1Gi"``."""
    node_selector: NotRequired[Mapping[str, str]]
    """Nodes for the head: CPU nodes only (selecting a GPU pool is refused). Default the system
    node group (``gpufleet.io/node-role: system``)."""


class WorkerGroup(TypedDict):
    """One group of identical GPU workers."""

    group_name: str
    """Name of the group, a DNS label. Required."""
    gpus: int
    """GPUs (units of the pool's ``gpu_resource``) per worker pod, request = limit. Required; at
    most ``placement.max_resources_per_node``."""
    cpu: str
    """CPU request = limit per worker. Required."""
    memory: str
    """Memory request = limit per worker (includes ``/dev/shm``). Required."""
    min_replicas: NotRequired[int]
    """Workers kept when idle. Default 0 (GPU nodes are released)."""
    max_replicas: NotRequired[int]
    """Most workers the autoscaler starts. Default 1."""
    shm_size: NotRequired[str]
    """Memory-backed ``/dev/shm`` (Ray object store, NCCL, PyTorch data loaders). Default ``"8Gi"``."""
    placement: NotRequired[GpuPlacement]
    """The group's GPU pool. Default the cluster's ``placement``."""
    spread: NotRequired[bool]
    """Prefer one worker of the group per node (hostname anti-affinity). Default true."""


class RayPodArgs(TypedDict):
    """The arguments :class:`RayCluster`, :class:`RayService` and
    :class:`~gpufleet.components.ray_job.RayJob` share: where the Ray pods run and what they carry."""

    namespace: pulumi.Input[str]
    """Namespace of the object (a team namespace). Required."""
    placement: GpuPlacement
    """GPU pool of the worker groups (a group may name another). Required."""
    worker_groups: Sequence[WorkerGroup]
    """GPU worker groups, at least one; with a Kueue queue at most 7 (6 for a RayJob, whose submitter
    is a pod set too). Required."""
    ray_version: NotRequired[str]
    """Ray version of the image. Default :data:`RAY_VERSION`."""
    image: NotRequired[str]
    """Ray image (head, workers and a RayJob's submitter), pinned by tag or digest (no
    ``latest``/``nightly``). Default :data:`DEFAULT_IMAGE`."""
    head: NotRequired[HeadSpec]
    """The head pod. Default: see :class:`HeadSpec`."""
    weights_claim: NotRequired[str]
    """ReadWriteMany PVC with model weights (``ModelCache``) mounted on every worker. Default none."""
    weights_mount_path: NotRequired[str]
    """Where workers see the weights (``HF_HOME`` points below it). Default ``/models``."""
    startup_seconds: NotRequired[int]
    """Expected worst-case time for a worker's raylet to come up (the startup probe allows twice
    this). Default 300."""
    labels: NotRequired[Mapping[str, str]]
    """Extra labels on the object. Default none."""
    wait_for: NotRequired[Sequence[pulumi.Resource]]
    """Resources the object waits for: the KubeRay operator (its CRDs), Kueue (its webhook must see a
    queued object, or it runs unmanaged), the PriorityClasses, the model cache. Default none."""


class RayClusterArgs(RayPodArgs):
    """Inputs of :class:`RayCluster` (besides those of :class:`RayPodArgs`)."""

    cluster_name: NotRequired[str]
    """Name of the RayCluster object. Default the component's name."""
    role: NotRequired[Literal["training", "batch"]]
    """Workload role, picks the PriorityClass (``gpufleet-training`` or ``gpufleet-batch``). Default ``batch``."""
    queue_name: NotRequired[str]
    """Kueue LocalQueue the cluster is submitted to (label ``kueue.x-k8s.io/queue-name``). Default none."""
    autoscaling: NotRequired[bool]
    """Run the Ray autoscaler between each group's min and max replicas. Default true."""
    idle_timeout_seconds: NotRequired[int]
    """Idle time before the autoscaler removes a worker. Default 300."""


class RayServiceArgs(RayPodArgs):
    """Inputs of :class:`RayService` (besides those of :class:`RayPodArgs`)."""

    applications: Sequence[ServeApplication]
    """Serve applications (rendered to ``serveConfigV2``). Required, at least one."""
    service_name: NotRequired[str]
    """Name of the RayService object. Default the component's name."""
    queue_name: NotRequired[str]
    """Kueue LocalQueue (label ``kueue.x-k8s.io/queue-name``). Default none (serving is not queued)."""
    idle_timeout_seconds: NotRequired[int]
    """Idle time before the autoscaler removes a worker. Default 600 (GPU pods are too expensive to
    thrash)."""


def check_image(image: Any, ray_version: str, *, name: str, field: str = "image") -> str:
    """``image`` if it is pinned (tag or digest, not ``latest``/``nightly``) and, for the
    ``rayproject`` images, tagged with ``ray_version``."""
    match = _IMAGE.match(image) if isinstance(image, str) else None
    if not match:
        raise ValueError(f"{name}: {field} is not an image reference: {image!r}")
    tag = match.group("tag")
    if not tag and "@sha256:" not in image:
        raise ValueError(f"{name}: {field} ({image}) must be pinned by tag or digest")
    if tag and (tag == "latest" or tag.startswith("nightly")):
        raise ValueError(f"{name}: {field} ({image}) must be pinned to a release, not {tag!r}")
    repo = match.group("repo").split("/")
    if tag and repo[-2:-1] == ["rayproject"] and not (tag == ray_version or tag.startswith(f"{ray_version}-")):
        raise ValueError(f"{name}: {field} ({image}) does not match ray_version {ray_version!r}")
    return image


@dataclass(frozen=True)
class _Plan:
    """A validated RayCluster spec plus the pieces the component resources need."""

    spec: dict[str, Any]
    groups: list[dict[str, Any]]
    object_name: str
    claim_templates: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    """Worker group → (ResourceClaimTemplate name ``<object>-<group>-gpus``, its ``spec``), for each
    group on a DRA pool: its workers claim their GPUs from it (:mod:`~gpufleet.components.gpu_claims`)."""


def _name(value: Any, field: str, *, name: str) -> str:
    if not isinstance(value, str) or not DNS_LABEL.match(value) or len(value) > 47:
        # KubeRay derives pod and service names from it (``<name>-head-svc``, ``<name>-<group>-worker-xxxxx``).
        raise ValueError(f"{name}: {field} must be a DNS label of at most 47 characters, got {value!r}")
    return value


def _head(spec: HeadSpec, image: str, role: str, workload: str, serve: bool, *, name: str) -> dict[str, Any]:
    cpu = gpu_pod.check_quantity(spec.get("cpu", "1"), "head.cpu", name=name)
    memory = gpu_pod.check_quantity(spec.get("memory", "4Gi"), "head.memory", name=name)
    shm_size = spec.get("shm_size", "1Gi")
    shm_volume, shm_mount = gpu_pod.shm_volume(shm_size, name=name, field="head.shm_size")
    gpu_pod.check_shm_fits(shm_size, memory, name=name, field="head.")
    selector = dict(spec.get("node_selector", SYSTEM_NODE_SELECTOR))
    if not selector:
        raise ValueError(f"{name}: head.node_selector must select CPU nodes (empty would allow any node)")
    if POOL_LABEL in selector or ACCELERATOR_LABEL in selector:
        raise ValueError(f"{name}: head.node_selector selects GPU nodes ({selector}): the head runs on CPU nodes")
    ports = [{"name": port_name, "containerPort": port, "protocol": "TCP"} for port_name, port in HEAD_PORTS]
    if serve:
        ports.append({"name": "serve", "containerPort": SERVE_PORT, "protocol": "TCP"})
    amounts = {"cpu": cpu, "memory": memory}
    container = {
        "name": "ray-head",
        "image": image,
        "ports": ports,
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},
        "volumeMounts": [shm_mount],
        "securityContext": gpu_pod.container_security_context(),
        **gpu_pod.probes(120, DASHBOARD_PORT, ready_path=GCS_HEALTH_PATH, name=name, field="head probes"),
    }
    return {
        # The head schedules no tasks or actors: GPU work lands on workers only.
        "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
        "template": {
            "metadata": {"labels": {WORKLOAD_LABEL: workload, GROUP_LABEL: "head"}},
            "spec": {
                "containers": [container],
                "volumes": [shm_volume],
                "nodeSelector": selector,
                # Also when an admission controller adds tolerations or selectors (a Kueue
                # ResourceFlavor of a GPU pool): never a GPU pool's node.
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": POOL_LABEL, "operator": "DoesNotExist"}]}],
                }}},
                "priorityClassName": gpu_pod.priority_class_name(role),
                "securityContext": gpu_pod.pod_security_context(),
            },
        },
    }


def _worker(index: int, group: WorkerGroup, default: GpuPlacement, image: str, role: str, workload: str,
            weights: Optional[tuple[str, str]], startup_seconds: int, serve: bool, *, name: str) -> dict[str, Any]:
    field = f"worker_groups[{index}]."
    if not isinstance(group, Mapping):
        raise TypeError(f"{name}: worker_groups[{index}] must be a mapping")
    group_name = group.get("group_name")
    if not isinstance(group_name, str) or not DNS_LABEL.match(group_name) or len(group_name) > 30:
        raise ValueError(f"{name}: {field}group_name must be a DNS label of at most 30 characters, got {group_name!r}")
    placement = group.get("placement", default)
    if not isinstance(placement, GpuPlacement):
        raise TypeError(f"{name}: {field}placement must be a GpuPlacement")
    if group.get("gpus") is None or group.get("cpu") is None or group.get("memory") is None:
        missing = [key for key in ("gpus", "cpu", "memory") if group.get(key) is None]
        raise ValueError(f"{name}: {field}{missing[0]} is required")
    gpus = group["gpus"]
    resources = gpu_pod.gpu_resources(placement, gpus, group["cpu"], group["memory"], name=name, field=field)
    _check_fits_node(placement, group["cpu"], group["memory"], field, name=name)
    min_replicas = require_int_range(group.get("min_replicas", 0), f"{field}min_replicas", 0, 1000, name=name)
    max_replicas = require_int_range(group.get("max_replicas", max(min_replicas, 1)), f"{field}max_replicas", 1, 1000, name=name)
    if min_replicas > max_replicas:
        raise ValueError(f"{name}: {field}min_replicas ({min_replicas}) is above {field}max_replicas ({max_replicas})")
    # Units of whole GPUs only: MIG slices (also under the single strategy, where they are
    # nvidia.com/gpu too) and time-sliced replicas are several per GPU of the limit.
    if placement.sharing == "none" and placement.gpu_limit and max_replicas * gpus > placement.gpu_limit:
        raise ValueError(
            f"{name}: {field}max_replicas × gpus ({max_replicas} × {gpus}) exceeds pool {placement.pool!r}'s "
            f"GPU limit ({placement.gpu_limit}, placement.gpu_limit)"
        )
    shm_size = group.get("shm_size", "8Gi")
    shm_volume, shm_mount = gpu_pod.shm_volume(shm_size, name=name, field=f"{field}shm_size")
    gpu_pod.check_shm_fits(shm_size, group["memory"], name=name, field=field)
    spread = group.get("spread", True)
    if not isinstance(spread, bool):
        raise TypeError(f"{name}: {field}spread must be bool")

    labels = {WORKLOAD_LABEL: workload, GROUP_LABEL: group_name}
    volumes, mounts, env = [shm_volume], [shm_mount], []
    if weights:
        claim, path = weights
        volumes.append({"name": WEIGHTS_VOLUME, "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": WEIGHTS_VOLUME, "mountPath": path})
        # Hugging Face downloads land in the shared cache, once for every worker.
        env.append({"name": "HF_HOME", "value": f"{path.rstrip('/')}/huggingface"})
    container: dict[str, Any] = {
        "name": "ray-worker",
        "image": image,
        "resources": resources,
        "volumeMounts": mounts,
        "securityContext": gpu_pod.container_security_context(),
        **gpu_pod.probes(startup_seconds, DASHBOARD_AGENT_PORT, ready_path=RAYLET_HEALTH_PATH, name=name,
                         field="startup_seconds"),
    }
    if env:
        container["env"] = env
    if serve:
        container["ports"] = [{"name": "serve", "containerPort": SERVE_PORT, "protocol": "TCP"}]
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "volumes": volumes,
        **gpu_pod.gpu_scheduling(placement),
        **gpu_claims.pod_claims(placement, gpu_claims.template_name(f"{workload}-{group_name}")),
        "priorityClassName": gpu_pod.priority_class_name(role),
        "securityContext": gpu_pod.pod_security_context(),
        # Workers never call the Kubernetes API (the autoscaler runs in the head pod).
        "automountServiceAccountToken": False,
    }
    if spread:
        pod_spec["affinity"] = gpu_pod.hostname_anti_affinity(labels)
    return {
        "groupName": group_name,
        "replicas": min_replicas,
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        # Ray sees the GPUs it is given, also when the resource is a MIG slice or a shared GPU,
        # which KubeRay's detection (nvidia.com/gpu only) would miss.
        "rayStartParams": {"num-gpus": str(gpus)},
        "template": {"metadata": {"labels": labels}, "spec": pod_spec},
    }


def _check_fits_node(placement: GpuPlacement, cpu: str, memory: str, field: str, *, name: str) -> None:
    """A worker larger than the pool's largest instance type would stay Pending forever."""
    if not placement.instance_types:
        return
    largest_cpu = max(t.vcpus for t in placement.instance_types)
    largest_memory = max(t.memory_gib for t in placement.instance_types)
    cpus = float(cpu[:-1]) / 1000 if cpu.endswith("m") else gpu_pod.quantity_bytes(cpu)
    if cpus > largest_cpu:
        raise ValueError(f"{name}: {field}cpu ({cpu}) exceeds the largest instance type of pool {placement.pool!r} ({largest_cpu} vCPUs)")
    if gpu_pod.quantity_bytes(memory) > largest_memory * 2**30:
        raise ValueError(f"{name}: {field}memory ({memory}) exceeds the largest instance type of pool {placement.pool!r} ({largest_memory} GiB)")


def plan_cluster(args: Mapping[str, Any], default_name: str, *, name: str, role_default: str,
                 serve: bool, idle_default: int) -> _Plan:
    """Validate the arguments shared by RayCluster and RayService and build the ``ray.io/v1``
    RayCluster spec (camelCase, exactly as the CRD defines it)."""
    object_name = _name(args.get("cluster_name") or args.get("service_name") or default_name, "name", name=name)
    if args.get("namespace") is None:
        raise ValueError(f"{name}: namespace is required")
    placement = args.get("placement")
    if not isinstance(placement, GpuPlacement):
        raise TypeError(f"{name}: placement must be a GpuPlacement (the pool's facts), got {type(placement).__name__}")
    ray_version = args.get("ray_version", RAY_VERSION)
    if not isinstance(ray_version, str) or not re.fullmatch(r"\d+\.\d+\.\d+", ray_version):
        raise ValueError(f"{name}: ray_version must be a release like '2.58.0', got {ray_version!r}")
    default_image = DEFAULT_IMAGE.replace(RAY_VERSION, ray_version)
    image = check_image(args.get("image", default_image), ray_version, name=name)
    role = args.get("role", role_default)
    allowed_roles = ("inference",) if serve else ("training", "batch")
    require_one_of(role, "role", allowed_roles, name=name)
    groups_arg = list(args.get("worker_groups") or [])
    if not groups_arg:
        raise ValueError(f"{name}: worker_groups must define at least one group")
    names = [g.get("group_name") for g in groups_arg if isinstance(g, Mapping)]
    if len(set(names)) != len(names):
        raise ValueError(f"{name}: worker_groups repeats a group_name: {names}")
    queue = args.get("queue_name")
    if queue is not None and (not isinstance(queue, str) or not DNS_LABEL.match(queue)):
        raise ValueError(f"{name}: queue_name is not a LocalQueue name: {queue!r}")
    if queue and len(groups_arg) > KUEUE_MAX_WORKER_GROUPS:
        raise ValueError(f"{name}: worker_groups has {len(groups_arg)} groups; Kueue admits at most {KUEUE_MAX_WORKER_GROUPS}")
    if queue and "head" in names:
        # Kueue names the head's pod set "head" and refuses a queued object with a group of that name.
        raise ValueError(f"{name}: worker_groups[{names.index('head')}].group_name 'head' is reserved by Kueue for the head pod set")
    weights = None
    if args.get("weights_claim") is not None:
        claim = args["weights_claim"]
        if not isinstance(claim, str) or not DNS_LABEL.match(claim):
            raise ValueError(f"{name}: weights_claim is not a PVC name: {claim!r}")
        path = args.get("weights_mount_path", "/models")
        if not isinstance(path, str) or not path.startswith("/") or path.rstrip("/") in ("", "/dev", "/dev/shm", "/tmp"):
            raise ValueError(f"{name}: weights_mount_path must be an absolute path outside /dev and /tmp, got {path!r}")
        weights = (claim, path)
    startup = require_int_range(args.get("startup_seconds", 300), "startup_seconds", 10, 3600, name=name)
    autoscaling = args.get("autoscaling", True)
    if not isinstance(autoscaling, bool):
        raise TypeError(f"{name}: autoscaling must be bool")
    idle = require_int_range(args.get("idle_timeout_seconds", idle_default), "idle_timeout_seconds", 30, 86400, name=name)

    head = _head(args.get("head", {}), image, role, object_name, serve, name=name)
    groups = [
        _worker(i, g, placement, image, role, object_name, weights, startup, serve, name=name)
        for i, g in enumerate(groups_arg)
    ]
    spec: dict[str, Any] = {
        "rayVersion": ray_version,
        "enableInTreeAutoscaling": autoscaling,
        "headGroupSpec": head,
        "workerGroupSpecs": groups,
    }
    if autoscaling:
        spec["autoscalerOptions"] = {
            "upscalingMode": "Default",
            "idleTimeoutSeconds": idle,
            "resources": {
                "requests": {"cpu": "500m", "memory": "512Mi"},
                "limits": {"cpu": "500m", "memory": "512Mi"},
            },
            "securityContext": gpu_pod.container_security_context(),
        }
    else:
        for group in groups:
            group["replicas"] = group["maxReplicas"]
    templates = {}
    for group_arg, group in zip(groups_arg, groups):
        group_placement = group_arg.get("placement", placement)
        if group_placement.dra:
            templates[group["groupName"]] = (gpu_claims.template_name(f"{object_name}-{group['groupName']}"),
                                             gpu_claims.claim_template_spec(group_placement, group_arg["gpus"]))
    return _Plan(spec, groups, object_name, templates)


def object_metadata(plan: _Plan, args: Mapping[str, Any]) -> dict[str, Any]:
    """Name, namespace, labels; the Kueue queue label, the WorkloadPriorityClass of the role (and the
    elastic-job annotation when autoscaling)."""
    labels = dict(args.get("labels", {}))
    labels.update(MANAGED_BY)
    metadata: dict[str, Any] = {"name": plan.object_name, "namespace": args["namespace"], "labels": labels}
    if args.get("queue_name"):
        labels[QUEUE_NAME_LABEL] = args["queue_name"]
        # Kueue orders and preempts queued workloads by this class (same name and value as the
        # pods' PriorityClass, which the kube-scheduler uses); changing the label re-prioritises a
        # pending workload without touching its pods.
        labels[WORKLOAD_PRIORITY_CLASS_LABEL] = plan.spec["headGroupSpec"]["template"]["spec"]["priorityClassName"]
        if plan.spec["enableInTreeAutoscaling"]:
            metadata["annotations"] = {ELASTIC_JOB_ANNOTATION: "true"}
    return metadata


def worker_capacity(plan: _Plan) -> list[tuple[int, int]]:
    """``(GPUs per worker, max replicas)`` of each worker group."""
    return [(int(g["rayStartParams"]["num-gpus"]), g["maxReplicas"]) for g in plan.groups]


def ray_object(owner: pulumi.Resource, name: str, kind: str, plan: _Plan, args: Mapping[str, Any],
               spec: Mapping[str, Any]) -> k8s.apiextensions.CustomResource:
    """The ``ray.io/v1`` ``kind`` object (child ``{name}-<kind in lower case>`` of ``owner``), after
    ``args["wait_for"]`` and the GPU ResourceClaimTemplates of its DRA worker groups (children
    ``{name}-<group>-gpu-claim``), and one PodDisruptionBudget per worker group after it."""
    claims = [
        k8s.resource.v1.ResourceClaimTemplate(
            f"{name}-{group}-gpu-claim",
            metadata={"name": template_name, "namespace": args["namespace"], "labels": dict(MANAGED_BY)},
            spec=template_spec,
            opts=pulumi.ResourceOptions(parent=owner),
        )
        for group, (template_name, template_spec) in plan.claim_templates.items()
    ]
    ray = k8s.apiextensions.CustomResource(
        f"{name}-{kind.lower()}",
        api_version=API_VERSION,
        kind=kind,
        metadata=object_metadata(plan, args),
        spec=dict(spec),
        opts=pulumi.ResourceOptions(parent=owner, depends_on=[*(args.get("wait_for") or []), *claims]),
    )
    _disruption_budgets(owner, name, plan, args["namespace"], [ray])
    return ray


def _disruption_budgets(owner: pulumi.Resource, name: str, plan: _Plan, namespace: pulumi.Input[str],
                        depends_on: list[pulumi.Resource]) -> None:
    """One PDB per worker group, ``maxUnavailable: 1`` (:func:`gpu_pod.disruption_budget`): voluntary
    disruptions (node drains, consolidation, expiry, drift) take at most one worker of a group at a
    time, and always one, also from a group of a single worker, so no group can block a node drain.
    The Ray autoscaler deletes idle workers directly, unaffected."""
    for group in plan.groups:
        labels = group["template"]["metadata"]["labels"]
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-{group['groupName']}-pdb",
            metadata={"name": f"{plan.object_name}-{group['groupName']}", "namespace": namespace,
                      "labels": dict(MANAGED_BY)},
            spec=gpu_pod.disruption_budget(max(group["minReplicas"], 1), labels, name=CLUSTER_TYPE),
            opts=pulumi.ResourceOptions(parent=owner, depends_on=depends_on),
        )


class RayCluster(pulumi.ComponentResource):
    """A ``ray.io/v1`` RayCluster: CPU head with the in-tree autoscaler, GPU worker groups with the
    production checklist generated (see the module docstring), one PDB per worker group."""

    cluster_name: str
    head_service: str
    """Service of the head (``<name>-head-svc``): dashboard 8265, client 10001, GCS 6379."""

    def __init__(self, name: str, args: RayClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, RayClusterArgs, name=CLUSTER_TYPE)
        plan = plan_cluster(args, name, name=CLUSTER_TYPE, role_default="batch", serve=False, idle_default=300)

        super().__init__(CLUSTER_TYPE, name, {}, opts)
        ray_object(self, name, "RayCluster", plan, args, plan.spec)
        self.cluster_name = plan.object_name
        self.head_service = f"{plan.object_name}-head-svc"
        self.register_outputs({"cluster_name": self.cluster_name, "head_service": self.head_service})


class RayService(pulumi.ComponentResource):
    """A ``ray.io/v1`` RayService: Ray Serve applications on a RayCluster built like
    :class:`RayCluster` (inference priority), zero-downtime cluster upgrades by KubeRay, the Serve
    Service on worker proxies only, one PDB per worker group."""

    service_name: str
    serve_service: str
    """Service of the Serve HTTP proxies (``<name>-serve-svc``, port 8000)."""

    def __init__(self, name: str, args: RayServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, RayServiceArgs, name=SERVICE_TYPE)
        plan = plan_cluster(args, name, name=SERVICE_TYPE, role_default="inference", serve=True, idle_default=600)
        config = serve_config(args.get("applications", []), worker_capacity(plan), name=SERVICE_TYPE)

        super().__init__(SERVICE_TYPE, name, {}, opts)
        ray_object(self, name, "RayService", plan, args, {
            "serveConfigV2": config,
            "rayClusterConfig": plan.spec,
            # The head has no GPUs and sits on system nodes: traffic goes to worker proxies.
            "excludeHeadPodFromServeSvc": True,
        })
        self.service_name = plan.object_name
        self.serve_service = f"{plan.object_name}-serve-svc"
        self.register_outputs({"service_name": self.service_name, "serve_service": self.serve_service})
