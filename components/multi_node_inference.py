"""``MultiNodeInferenceService``: a model too large for one GPU node, served by vLLM across nodes
with a LeaderWorkerSet (``leaderworkerset.x-k8s.io/v1``, LWS v0.10.0): tensor parallelism over the
GPUs inside a node, pipeline parallelism across the nodes of a group, Ray joining the nodes.

What it creates, in the team's namespace:

- a ``LeaderWorkerSet`` ``<service>`` of ``groups`` groups (``replicas``), each ``nodes`` pods
  (``size``): one leader and ``nodes - 1`` workers. A group is the unit of everything: LWS creates,
  restarts (``RecreateGroupOnPodRestart``: any pod failing recreates its whole group, since vLLM
  cannot lose a pipeline stage), rolls and scales it as one; with ``exclusive_topology`` (default
  ``topology.kubernetes.io/zone``) the LWS webhook gives each group's pods a required pod affinity
  to one domain and a required anti-affinity keeping other groups of the namespace out of it; and a
  required hostname anti-affinity puts every pod of the service on a node of its own. Workers start
  with the leader (``startupPolicy: LeaderCreated``: the leader only turns ready once the workers
  have joined, so ``LeaderReady`` would deadlock).

  The leader runs ``ray start --head``, waits until ``$LWS_GROUP_SIZE`` Ray nodes are alive, then
  ``vllm serve <model> --tensor-parallel-size <gpus per node> --pipeline-parallel-size <nodes>
  --distributed-executor-backend ray`` (vLLM's multi-node serving; kubernetes-sigs/lws
  ``docs/examples/vllm``); each worker retries ``ray start --address=$LWS_LEADER_ADDRESS:6379
  --block`` until the head answers (a failing start would otherwise recreate the group). Every pod
  gets the :mod:`~gpufleet.components.gpu_pod` checklist: GPU/CPU/memory requests = limits in whole
  nodes' GPUs, the pool's tolerations and node selector, a memory-backed ``/dev/shm`` (NCCL, Ray's
  object store), a restricted non-root security context with a writable ``$HOME``, the
  ``inference`` priority class, the weights PVC read-only, and startup probes allowing twice the
  expected load time (:func:`~gpufleet.components.multi_node_inference_args.expected_load_seconds`
  sizes it from the weights). The leader's probes are vLLM's ``/health``; a worker serves no HTTP,
  so its probes check that its raylet accepts connections. ``VLLM_HOST_IP`` is the pod IP, so Ray
  and NCCL address each node by it. With EFA on the pool, every pod requests its nodes' EFA
  interfaces (:func:`~gpufleet.components.multi_node_inference_args.efa_pod_fragment`);
- a ``Service`` ``<service>`` (ClusterIP, port 8000) on the leaders only: workers serve nothing;
- a ``PodDisruptionBudget`` ``<service>`` over every pod of the service, ``maxUnavailable: 1`` by
  default. Evicting any pod takes its whole group down while LWS recreates it; the group's
  recreated pods count as unavailable until ready, so the budget lets a drain take one group at a
  time, and never none (a budget allowing no disruption at ``groups`` is refused: it would block
  every drain, consolidation, expiry and drift of these nodes). Unready pods may always be evicted;
- with ``weights_source``, a :class:`~gpufleet.components.model_loader.ModelWeightsLoader` Job
  filling the ``pvc://`` storage first.

With ``queue_name``, the LeaderWorkerSet carries ``kueue.x-k8s.io/queue-name`` and the
WorkloadPriorityClass label: Kueue (v0.19.2, integration ``leaderworkerset.x-k8s.io/leaderworkerset``,
built on its ``pod`` integration) admits each group as one workload, all its pods or none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar

import pulumi
import pulumi_kubernetes as k8s

from gpufleet.components import gpu_claims, gpu_pod
from gpufleet.components._validate import check_arg_keys, require, require_int_range
from gpufleet.components.gpu_scheduling import QUEUE_NAME_LABEL, WORKLOAD_PRIORITY_CLASS_LABEL, GpuPlacement
from gpufleet.components.inference_service import DEFAULT_IMAGE, HF_HOME, HOME, weights
from gpufleet.components.inference_service_args import TYPE as ISVC_TYPE
from gpufleet.components.inference_service_args import check_image, check_labels, check_name, check_storage
from gpufleet.components.leader_worker_set import API_VERSION
from gpufleet.components.model_loader import ModelWeightsLoader, check_path, job_name_for, loader_job_spec, parse_source
from gpufleet.components.multi_node_inference_args import (  # noqa: F401  (the component's public argument types)
    TYPE,
    MultiNodeInferenceServiceArgs,
    check_hf_token,
    default_gpus_per_node,
    efa_interfaces,
    efa_pod_fragment,
    expected_load_seconds,
)

PORT = 8000
"""vLLM's OpenAI server port on the leader (and the Service's)."""
RAY_GCS_PORT = 6379
"""Ray head (GCS) port on the leader, which the workers join."""
RAYLET_PORT = 8076
"""Fixed raylet (node manager) port of every pod: the workers' probes check it."""
LEADER_CONTAINER = "vllm-leader"
WORKER_CONTAINER = "vllm-worker"

SET_NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
"""Label LWS puts on every pod of a LeaderWorkerSet (its name)."""
WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"
"""Label LWS puts on every pod: ``0`` on the leader."""
EXCLUSIVE_TOPOLOGY_ANNOTATION = "leaderworkerset.sigs.k8s.io/exclusive-topology"
"""LWS annotation: the node label whose domains the groups take exclusively (LWS v0.10.0
``pkg/webhooks/pod_webhook.go`` ``SetExclusiveAffinities``: a required pod affinity to the group's
own pods and a required anti-affinity to other groups' pods, both on that topology key, in the pod's
namespace)."""
DEFAULT_EXCLUSIVE_TOPOLOGY = "topology.kubernetes.io/zone"
ROLE_LABEL = "gpufleet.io/lws-role"
"""Pod label telling the leader (``leader``) from the workers (``worker``)."""
SERVICE_LABEL = "gpufleet.io/multi-node-service"
"""Pod label naming the service."""

# Waits for the whole group to have joined Ray, then serves; "$@" is the container's args.
LEADER_SCRIPT = (
    f'ray start --head --port={RAY_GCS_PORT} --node-manager-port={RAYLET_PORT} --disable-usage-stats\n'
    'until python3 -c \'import sys, ray; ray.init(address="auto", logging_level="ERROR"); '
    'sys.exit(sum(1 for n in ray.nodes() if n["Alive"]) < int(sys.argv[1]))\' "$LWS_GROUP_SIZE"; do\n'
    '  echo "waiting for $LWS_GROUP_SIZE Ray nodes"; sleep 5\n'
    'done\n'
    'exec vllm serve "$@"\n'
)
WORKER_SCRIPT = (
    f'until ray start --address="$LWS_LEADER_ADDRESS:{RAY_GCS_PORT}" --node-manager-port={RAYLET_PORT} '
    '--disable-usage-stats --block; do\n'
    '  echo "waiting for the Ray head at $LWS_LEADER_ADDRESS"; sleep 5\n'
    'done\n'
)

T = TypeVar("T")


def _own(check: Callable[..., T], *args: Any) -> T:
    """Run a shared InferenceService check with this component's name in its message."""
    try:
        return check(*args)
    except (ValueError, TypeError) as error:
        raise type(error)(str(error).replace(ISVC_TYPE, TYPE)) from None


@dataclass(frozen=True)
class MultiNodePlan:
    """Everything a :class:`MultiNodeInferenceService` creates, as plain Kubernetes data."""

    service: str
    namespace: str
    groups: int
    nodes: int
    gpus_per_node: int
    load_seconds: int
    labels: dict[str, str]
    """Labels of the LeaderWorkerSet."""
    annotations: dict[str, str]
    spec: dict[str, Any]
    """The LeaderWorkerSet ``spec``."""
    service_spec: dict[str, Any]
    """The leader Service's ``spec``."""
    disruption_budget: dict[str, Any]
    """The PodDisruptionBudget ``spec``."""
    loader: Optional[dict[str, Any]]
    """:class:`~gpufleet.components.model_loader.ModelWeightsLoaderArgs` of the weights download."""
    claim_template: Optional[dict[str, Any]] = None
    """On a DRA pool: the ``spec`` of the ResourceClaimTemplate ``<service>-gpus`` every leader and
    worker pod claims its node's GPUs from; none on a device-plugin pool."""

    @property
    def leader(self) -> dict[str, Any]:
        """The leader's pod template."""
        return self.spec["leaderWorkerTemplate"]["leaderTemplate"]

    @property
    def worker(self) -> dict[str, Any]:
        """The workers' pod template."""
        return self.spec["leaderWorkerTemplate"]["workerTemplate"]

    @property
    def gpus(self) -> int:
        """GPUs of every group together."""
        return self.groups * self.nodes * self.gpus_per_node


def plan_multi_node_service(name: str, args: MultiNodeInferenceServiceArgs) -> MultiNodePlan:
    """Check ``args`` and build every object's spec; raises ``ValueError``/``TypeError`` naming the
    argument. Used by the component and by the stack-config checks before anything runs."""
    namespace = _own(check_name, require(args, "namespace", str, name=TYPE), "namespace")
    placement = require(args, "placement", GpuPlacement, name=TYPE)
    service = _own(check_name, args.get("service_name", name), "service_name")
    model_name = require(args, "model_name", str, name=TYPE)
    storage_uri = _own(check_storage, require(args, "storage_uri", str, name=TYPE), "storage_uri")
    if not storage_uri.startswith(("pvc://", "hf://")):
        raise ValueError(f"{TYPE}: storage_uri must be pvc://<claim>/<path> or hf://<org>/<model> (every pod of a "
                         f"group reads the weights itself; there is no storage initializer), got {storage_uri!r}")
    image = _own(check_image, args.get("image", DEFAULT_IMAGE), "image")
    if placement.sharing != "none":
        raise ValueError(f"{TYPE}: placement must be a whole-GPU pool: pool {placement.pool!r} shares its GPUs "
                         f"({placement.sharing}), and tensor parallelism needs whole GPUs of one node")
    nodes = require_int_range(require(args, "nodes", int, name=TYPE), "nodes", 2, 64, name=TYPE)
    gpus = args.get("gpus_per_node", default_gpus_per_node(placement))
    cpu, memory, shm_size = args.get("cpu", "32"), args.get("memory", "256Gi"), args.get("shm_size", "32Gi")
    resources = gpu_pod.gpu_resources(placement, gpus, cpu, memory, name=TYPE, field="")
    shm_volume, shm_mount = gpu_pod.shm_volume(shm_size, name=TYPE)
    gpu_pod.check_shm_fits(shm_size, memory, name=TYPE)
    groups = require_int_range(args.get("groups", 1), "groups", 1, 100, name=TYPE)
    if placement.gpu_limit and groups * nodes * gpus > placement.gpu_limit:
        raise ValueError(f"{TYPE}: groups × nodes × gpus_per_node ({groups} × {nodes} × {gpus} = "
                         f"{groups * nodes * gpus}) exceeds the GPU limit of pool {placement.pool!r} "
                         f"({placement.gpu_limit}): Karpenter would never launch the last group's nodes")
    weights_gib = args.get("weights_gib")
    if weights_gib is not None:
        require_int_range(weights_gib, "weights_gib", 1, 100_000, name=TYPE)
    load_seconds = args.get("load_seconds", expected_load_seconds(weights_gib, nodes))
    leader_probes = gpu_pod.probes(load_seconds, PORT, ready_path="/health", name=TYPE)
    worker_probes = gpu_pod.probes(load_seconds, RAYLET_PORT, name=TYPE, tcp=True)
    drain = require_int_range(args.get("drain_seconds", 15), "drain_seconds", 1, 300, name=TYPE)
    grace = require_int_range(args.get("termination_grace_seconds", 120), "termination_grace_seconds",
                              drain + 1, 3600, name=TYPE)
    utilization = args.get("gpu_memory_utilization", 0.9)
    if isinstance(utilization, bool) or not isinstance(utilization, (int, float)) or not 0 < utilization <= 1:
        raise ValueError(f"{TYPE}: gpu_memory_utilization must be a number in (0, 1], got {utilization!r}")
    max_model_len = args.get("max_model_len")
    if max_model_len is not None:
        require_int_range(max_model_len, "max_model_len", 128, 10_000_000, name=TYPE)
    extra_args = list(args.get("extra_args", []))
    if not all(isinstance(a, str) for a in extra_args):
        raise TypeError(f"{TYPE}: extra_args must be strings")
    token = check_hf_token(args.get("hf_token_secret"))
    topology = args.get("exclusive_topology", DEFAULT_EXCLUSIVE_TOPOLOGY)
    if topology is not None:
        _own(check_labels, {topology: ""}, "exclusive_topology")
    queue = args.get("queue_name")
    if queue is not None:
        _own(check_name, queue, "queue_name")
    efa = args.get("efa_interfaces", efa_interfaces(placement))
    require_int_range(efa, "efa_interfaces", 0, 64, name=TYPE)
    loader = _loader_args(namespace, service, storage_uri, args.get("weights_source"), token)

    model, volumes, mounts, _ = weights(storage_uri)
    efa_resources, efa_env = efa_pod_fragment(efa)
    if efa_resources:
        resources = {kind: {**amounts, **efa_resources} if kind in ("requests", "limits") else amounts
                     for kind, amounts in resources.items()}
    env: list[dict[str, Any]] = [
        {"name": "HOME", "value": HOME},
        {"name": "HF_HOME", "value": HF_HOME},
        # Ray and vLLM address this node by its pod IP.
        {"name": "VLLM_HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        *efa_env,
    ]
    if token is not None:
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": token["name"], "key": token.get("key", "token")}}})
    vllm_args = [
        model,
        "--served-model-name", model_name,
        "--port", str(PORT),
        "--tensor-parallel-size", str(gpus),
        "--pipeline-parallel-size", str(nodes),
        "--distributed-executor-backend", "ray",
        "--gpu-memory-utilization", f"{utilization:g}",
    ]
    if max_model_len is not None:
        vllm_args += ["--max-model-len", str(max_model_len)]
    vllm_args += extra_args

    set_selector = {SET_NAME_LABEL: service}

    def pod(role: str, container: dict[str, Any]) -> dict[str, Any]:
        return {
            "metadata": {"labels": {SERVICE_LABEL: service, ROLE_LABEL: role}},
            "spec": {
                **gpu_pod.gpu_scheduling(placement),
                **gpu_claims.pod_claims(placement, gpu_claims.template_name(service)),
                # One node per pod: a second pod of the service never shares a node.
                "affinity": gpu_pod.hostname_anti_affinity(set_selector, required=True),
                "securityContext": gpu_pod.pod_security_context(),
                "priorityClassName": gpu_pod.priority_class_name("inference"),
                "terminationGracePeriodSeconds": grace,
                "automountServiceAccountToken": False,
                "containers": [{
                    "image": image,
                    "resources": resources,
                    "securityContext": gpu_pod.container_security_context(),
                    "volumeMounts": [shm_mount, {"name": "home", "mountPath": HOME}, *mounts],
                    "env": env,
                    **container,
                }],
                "volumes": [shm_volume, {"name": "home", "emptyDir": {}}, *volumes],
            },
        }

    leader = pod("leader", {
        "name": LEADER_CONTAINER,
        "command": ["/bin/sh", "-c", LEADER_SCRIPT, "vllm-leader"],
        "args": vllm_args,
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"},
                  {"name": "ray-gcs", "containerPort": RAY_GCS_PORT, "protocol": "TCP"}],
        "lifecycle": {"preStop": {"sleep": {"seconds": drain}}},
        **leader_probes,
    })
    worker = pod("worker", {
        "name": WORKER_CONTAINER,
        "command": ["/bin/sh", "-c", WORKER_SCRIPT],
        "ports": [{"name": "raylet", "containerPort": RAYLET_PORT, "protocol": "TCP"}],
        **worker_probes,
    })
    annotations: dict[str, str] = {}
    if topology is not None:
        annotations[EXCLUSIVE_TOPOLOGY_ANNOTATION] = topology
    labels = {"app.kubernetes.io/managed-by": "gpufleet"}
    if queue is not None:
        labels[QUEUE_NAME_LABEL] = queue
        labels[WORKLOAD_PRIORITY_CLASS_LABEL] = gpu_pod.priority_class_name("inference")
    spec = {
        "replicas": groups,
        "startupPolicy": "LeaderCreated",
        "rolloutStrategy": {"type": "RollingUpdate",
                            # no surge: a surge group would need `nodes` more GPU nodes
                            "rollingUpdateConfiguration": {"maxUnavailable": 1, "maxSurge": 0}},
        "leaderWorkerTemplate": {
            "size": nodes,
            "restartPolicy": "RecreateGroupOnPodRestart",
            "leaderTemplate": leader,
            "workerTemplate": worker,
        },
    }
    budget = gpu_pod.disruption_budget(groups * nodes, set_selector, args.get("disruption_budget"), name=TYPE,
                                       replicas_field="groups × nodes")
    return MultiNodePlan(
        service=service,
        namespace=namespace,
        groups=groups,
        nodes=nodes,
        gpus_per_node=gpus,
        load_seconds=load_seconds,
        labels=labels,
        annotations=annotations,
        spec=spec,
        service_spec={
            "type": "ClusterIP",
            "selector": {**set_selector, ROLE_LABEL: "leader"},
            "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
        },
        disruption_budget=budget,
        loader=loader,
        claim_template=gpu_claims.claim_template_spec(placement, gpus) if placement.dra else None,
    )


def _loader_args(namespace: str, service: str, storage_uri: str, source: Any, token: Any) -> Optional[dict[str, Any]]:
    """The weights loader, or None without ``weights_source``."""
    if source is None:
        return None
    if not storage_uri.startswith("pvc://"):
        raise ValueError(f"{TYPE}: weights_source fills a model-cache claim: it needs pvc:// storage_uri, "
                         f"got {storage_uri!r}")
    parse_source(source, "weights_source", name=TYPE)
    claim, _, path = storage_uri[len("pvc://"):].partition("/")
    check_path(path, "storage_uri", name=TYPE)
    loader = {"namespace": namespace, "claim_name": claim, "path": path, "source": source,
              "job_name": job_name_for(service)}
    if token is not None:
        loader["hf_token_secret"] = {"name": token["name"], "key": token.get("key", "token")}
    loader_job_spec(loader, name=TYPE)
    return loader


class MultiNodeInferenceService(pulumi.ComponentResource):
    """vLLM across the nodes of LeaderWorkerSet groups (see the module docstring). Children:
    ``<name>-lws`` (LeaderWorkerSet), ``<name>-service``, ``<name>-pdb`` and, with
    ``weights_source``, ``<name>-weights``. ``url`` is the leaders' in-cluster URL."""

    service_name: str
    url: str

    def __init__(self, name: str, args: MultiNodeInferenceServiceArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, MultiNodeInferenceServiceArgs, name=TYPE)
        plan = plan_multi_node_service(name, args)
        super().__init__(TYPE, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        meta = {"namespace": plan.namespace, "name": plan.service, "labels": {"app.kubernetes.io/managed-by": "gpufleet"}}
        loaders: list[pulumi.Resource] = (
            [ModelWeightsLoader(f"{name}-weights", plan.loader, opts=child)] if plan.loader is not None else [])
        if plan.claim_template is not None:
            loaders.append(k8s.resource.v1.ResourceClaimTemplate(
                f"{name}-gpu-claim",
                metadata={**meta, "name": gpu_claims.template_name(plan.service)},
                spec=plan.claim_template,
                opts=child,
            ))
        k8s.apiextensions.CustomResource(
            f"{name}-lws",
            api_version=API_VERSION,
            kind="LeaderWorkerSet",
            metadata={**meta, "labels": plan.labels, "annotations": plan.annotations},
            spec=plan.spec,
            # every pod mounts the weights (download them first) and claims its GPUs
            opts=pulumi.ResourceOptions(parent=self, depends_on=loaders or None),
        )
        k8s.core.v1.Service(f"{name}-service", metadata=meta, spec=plan.service_spec, opts=child)
        k8s.policy.v1.PodDisruptionBudget(f"{name}-pdb", metadata=meta, spec=plan.disruption_budget, opts=child)
        self.service_name = plan.service
        self.url = f"http://{plan.service}.{plan.namespace}.svc.cluster.local:{PORT}"
        self.register_outputs({"url": self.url})
