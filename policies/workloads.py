"""The pod-template extraction table: for every workload kind the rules read, where its pod spec,
replica count, scale bounds and GPU requests live.

Each :class:`WorkloadKind` entry names the paths (checked against the upstream CRDs at the pinned
tags, /work/shared/upstream/crds) and :func:`extract` turns a subject into
:class:`~gpufleet.policies.pod_templates.PodTemplate` s by them. Most kinds are read generically: a
*role* (``roles``: one or more paths, ``[*]`` over a list, ``{*}`` over a map's values) holds a pod
template (``template``, with ``metadata.labels``) or a bare pod spec (``pod_spec``); its pod count is
the product of ``replicas`` factors (paths relative to the role when they start with ``.``); ``scale``
names the autoscaling bounds. Kinds whose pods are built by their operator from non-pod fields (KServe
predictors, KubeRay groups, TrainJob's ``trainer``, NIMService, SparkApplication) have a ``build``
function; their entry still records where each part lives, for the README and for readers.

GPU requests live in container ``resources`` unless ``gpus`` says otherwise; DRA claims
(``spec.resourceClaims``) are resolved across subjects by :mod:`gpufleet.policies.dra`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

from gpufleet.policies.core import Subject, as_list, as_mapping, as_number, as_str
from gpufleet.policies.pod_templates import (
    KSERVE_MODEL_FORMATS, PodTemplate, make_template, template_from_pod_template,
)

Build = Callable[[Subject, "WorkloadKind"], list[PodTemplate]]


@dataclass(frozen=True)
class WorkloadKind:
    """Where one workload kind keeps its pods."""

    group: str
    kind: str
    roles: tuple[str, ...] = ("",)
    """Paths to the objects that each describe one kind of pod ("" = the object itself)."""
    template: str = ""
    """Path (from a role) to a PodTemplateSpec (``metadata`` + ``spec``)."""
    pod_spec: tuple[str, ...] = ()
    """Paths (from a role) to bare PodSpecs (used when ``template`` is empty)."""
    replicas: Optional[tuple[tuple[str, int], ...]] = ((".replicas", 1),)
    """Factors of a role's pod count: (path, default); None = not a count (one pod a node)."""
    scale: tuple[str, str] = ("", "")
    """Paths of the fewest / most replicas an operator's autoscaler may set (empty: none)."""
    gpus: str = "containers[*].resources"
    """Where GPU requests live (documentation; DRA claims come from ``spec.resourceClaims``)."""
    serving: bool = False
    """The kind is a model server (its pods answer requests)."""
    long_running: bool = False
    """Pods run until deleted (a Service selecting them makes them a service)."""
    distributed: bool = False
    """Pods of one workload work together (NCCL/MPI/PyTorch distributed) when more than one runs."""
    operator_adds: frozenset[str] = frozenset()
    """What the kind's operator adds to every pod: ``probes``, ``shm`` (a memory-backed /dev/shm)."""
    build: Optional[Build] = None
    """Builder for kinds whose pods are assembled by their operator."""


# --------------------------------------------------------------------------------------------------
# Path walking
# --------------------------------------------------------------------------------------------------

def _walk(node: Any, path: str, where: str) -> Iterator[tuple[str, Any]]:
    """``(concrete path, value)`` for every match of ``path`` under ``node`` (``[*]``: each list item,
    ``{*}``: each map value); nothing for a missing part."""
    if not path:
        yield where, node
        return
    head, _, rest = path.partition(".")
    star = ""
    if head.endswith("[*]") or head.endswith("{*}"):
        head, star = head[:-3], head[-3:]
    value = as_mapping(node).get(head) if head else node
    here = f"{where}.{head}" if where and head else (where or head)
    if value is None:
        return
    if star == "[*]":
        for index, item in enumerate(as_list(value)):
            yield from _walk(item, rest, f"{here}[{index}]")
    elif star == "{*}":
        for key, item in as_mapping(value).items():
            yield from _walk(item, rest, f"{here}.{key}")
    else:
        yield from _walk(value, rest, here)


def _get(root: Mapping[str, Any], role: Any, path: str) -> Any:
    """The value at ``path``: relative to ``role`` when it starts with ``.``, else from the object."""
    node: Any = role if path.startswith(".") else root
    for part in path.lstrip(".").split("."):
        node = as_mapping(node).get(part)
    return node


def _int(value: Any, default: Optional[int]) -> Optional[int]:
    """An integer field: its default when absent, None when unknown."""
    if value is None:
        return default
    number = as_number(value) if not isinstance(value, str) else None
    return int(number) if number is not None else None


def _count(root: Mapping[str, Any], role: Any, factors: Optional[Sequence[tuple[str, int]]]) -> Optional[int]:
    if factors is None:
        return None
    total: Optional[int] = 1
    for path, default in factors:
        value = _int(_get(root, role, path), default)
        total = None if total is None or value is None else total * value
    return total


# --------------------------------------------------------------------------------------------------
# Generic extraction
# --------------------------------------------------------------------------------------------------

def _generic(subject: Subject, entry: WorkloadKind) -> list[PodTemplate]:
    root = subject.props
    templates: list[PodTemplate] = []
    roles = [(path, role) for pattern in entry.roles for path, role in _walk(root, pattern, "")
             if isinstance(role, Mapping)]
    counts = [_count(root, role, entry.replicas) for _, role in roles]
    total = None if any(c is None for c in counts) else sum(c for c in counts if c is not None)
    flags = {**_flags(entry), "distributed": entry.distributed and (total is None or total > 1)}
    for (role_path, role), count in zip(roles, counts):
        low = high = count
        if entry.scale[0] or entry.scale[1]:
            low = _int(_get(root, role, entry.scale[0]), count) if entry.scale[0] else count
            high = _int(_get(root, role, entry.scale[1]), count) if entry.scale[1] else count
        prefix = f"{role_path}." if role_path else ""
        if entry.template:
            template = _get(root, role, "." + entry.template)
            if isinstance(template, Mapping):
                templates.append(template_from_pod_template(
                    subject, prefix + entry.template, template, low, high, **flags))
        for spec_path in entry.pod_spec:
            spec = _get(root, role, "." + spec_path)
            if isinstance(spec, Mapping):
                labels = {**subject.labels, **as_mapping(as_mapping(role).get("labels"))}
                templates.append(make_template(subject, prefix + spec_path, spec, labels, low, high, **flags))
    return templates


def _flags(entry: WorkloadKind) -> dict[str, Any]:
    return {"serving": entry.serving or None, "long_running": entry.long_running,
            "distributed": entry.distributed, "operator_adds": entry.operator_adds}


# --------------------------------------------------------------------------------------------------
# Kinds assembled by their operator
# --------------------------------------------------------------------------------------------------

def _inference_service(isvc: Subject, entry: WorkloadKind) -> list[PodTemplate]:
    """KServe v1beta1: each component (predictor, transformer, explainer) is a pod spec plus a model
    container; ``minReplicas`` (default 1) / ``maxReplicas``; ``workerSpec`` for multi-node."""
    name = isvc.object_name
    metadata_labels = {k: v for k, v in isvc.labels.items() if as_str(v) is not None}
    templates: list[PodTemplate] = []
    # No annotation: the controller's default, kserve.controller.deploymentMode: Knative in kserve v0.20.0's
    # charts/kserve-resources/values.yaml. KServe passes maxReplicas to Knative as the
    # autoscaling.knative.dev/max-scale annotation only when it is set; without it (or 0) the KPA scales
    # without an upper bound.
    knative = as_str(isvc.annotations.get("serving.kserve.io/deploymentMode")) in (None, "Serverless", "Knative")

    def add(predictor: Mapping[str, Any], path: str, component: str) -> None:
        low = _int(predictor.get("minReplicas"), 1)
        # Knative mode without maxReplicas: KPA scales without an upper bound (None: unbounded).
        unbounded = knative and predictor.get("maxReplicas") in (None, 0)
        high = None if unbounded else _int(predictor.get("maxReplicas"), 0)
        if low is not None and high is not None:
            high = max(low, high)
        labels = {
            **metadata_labels, **{k: v for k, v in as_mapping(predictor.get("labels")).items()},
            "serving.kserve.io/inferenceservice": name, "component": component, "app": f"isvc.{name}-{component}",
        }
        model = [
            {"name": "kserve-container", **as_mapping(predictor.get(field))}
            for field in KSERVE_MODEL_FORMATS if isinstance(predictor.get(field), Mapping)
        ]
        targets = (("InferenceService", name), ("Deployment", f"{name}-{component}"))
        templates.append(make_template(isvc, path, predictor, labels, low, high, extra_containers=model,
                                       serving=True, scale_targets=targets, unbounded=unbounded))
        worker = predictor.get("workerSpec")
        if isinstance(worker, Mapping):
            worker_labels = {**labels, "app": f"isvc.{name}-{component}-worker"}
            templates.append(make_template(isvc, f"{path}.workerSpec", worker, worker_labels, low, high,
                                           serving=True, scale_targets=targets, distributed=True,
                                           unbounded=unbounded))

    add(as_mapping(isvc.spec.get("predictor")), "spec.predictor", "predictor")
    for component in ("transformer", "explainer"):
        if isinstance(isvc.spec.get(component), Mapping):
            add(as_mapping(isvc.spec.get(component)), f"spec.{component}", component)
    for index, canary in enumerate(as_list(isvc.spec.get("canary"))):
        predictor = as_mapping(as_mapping(canary).get("predictor"))
        if predictor:
            add(predictor, f"spec.canary[{index}].predictor", "predictor")
    return templates


RAY_CLUSTER_PATHS = {"RayCluster": "spec", "RayService": "spec.rayClusterConfig", "RayJob": "spec.rayClusterSpec",
                     "RayCronJob": "spec.jobTemplate.rayClusterSpec"}
"""Where a KubeRay kind keeps its RayCluster spec."""
_RAY_DEFAULT_MAX_REPLICAS = 2147483647


def _ray(owner: Subject, entry: WorkloadKind) -> list[PodTemplate]:
    """KubeRay: ``headGroupSpec.template`` (one pod) and ``workerGroupSpecs[*].template`` (``replicas``,
    or ``minReplicas``/``maxReplicas`` with in-tree autoscaling, times ``numOfHosts``)."""
    path = RAY_CLUSTER_PATHS[owner.kind]
    cluster = as_mapping(_get(owner.props, None, path))
    serving = owner.kind == "RayService"
    cluster_label = {"ray.io/cluster": owner.object_name} if owner.kind == "RayCluster" else {}
    autoscaling = cluster.get("enableInTreeAutoscaling") is True
    head = as_mapping(cluster.get("headGroupSpec"))
    flags = {"serving": serving or None, "kuberay": True, "operator_adds": entry.operator_adds}
    templates = [template_from_pod_template(
        owner, f"{path}.headGroupSpec.template", as_mapping(head.get("template")), 1, 1,
        extra_labels={**cluster_label, "ray.io/node-type": "head", "ray.io/group": "headgroup"}, **flags,
    )]
    for index, group in enumerate(as_list(cluster.get("workerGroupSpecs"))):
        group = as_mapping(group)
        hosts = _int(group.get("numOfHosts"), 1)
        if autoscaling:
            low = _int(group.get("minReplicas"), 0)
            high = _int(group.get("maxReplicas"), _RAY_DEFAULT_MAX_REPLICAS)
        else:
            low = high = _int(group.get("replicas"), 0)
        if hosts is not None:
            low = None if low is None else low * hosts
            high = None if high is None else high * hosts
        labels = {**cluster_label, "ray.io/node-type": "worker", "ray.io/group": as_str(group.get("groupName")) or ""}
        templates.append(template_from_pod_template(
            owner, f"{path}.workerGroupSpecs[{index}].template", as_mapping(group.get("template")), low, high,
            extra_labels=labels, **flags,
        ))
    return templates


def _leader_worker_set(lws: Subject, entry: WorkloadKind) -> list[PodTemplate]:
    """LWS: ``spec.replicas`` groups of ``leaderWorkerTemplate.size`` pods; the leader uses
    ``leaderTemplate`` (or ``workerTemplate`` when absent), the other ``size - 1`` pods
    ``workerTemplate``."""
    group = as_mapping(lws.spec.get("leaderWorkerTemplate"))
    groups = _int(lws.spec.get("replicas"), 1)
    size = _int(group.get("size"), 1)
    flags = {"serving": True, "long_running": True, "distributed": size is None or size > 1,
             "scale_targets": (("LeaderWorkerSet", lws.object_name),)}
    name = lws.object_name
    base = "spec.leaderWorkerTemplate"
    templates = []
    leader = group.get("leaderTemplate")
    worker = as_mapping(group.get("workerTemplate"))
    set_label = {"leaderworkerset.sigs.k8s.io/name": name}
    if isinstance(leader, Mapping):
        templates.append(template_from_pod_template(lws, f"{base}.leaderTemplate", leader, groups, groups,
                                                    extra_labels={**set_label, "leaderworkerset.sigs.k8s.io/worker-index": "0"},
                                                    **flags))
        workers = None if groups is None or size is None else groups * max(size - 1, 0)
    else:
        workers = None if groups is None or size is None else groups * size
    if worker:
        templates.append(template_from_pod_template(lws, f"{base}.workerTemplate", worker, workers, workers,
                                                    extra_labels=set_label, **flags))
    return templates


def _train_job(job: Subject, entry: WorkloadKind) -> list[PodTemplate]:
    """Kubeflow Trainer v2 TrainJob: the pod spec lives in the referenced (Cluster)TrainingRuntime;
    the TrainJob sets the ``node`` container through ``spec.trainer`` (``image``, ``command``,
    ``args``, ``env``, ``resourcesPerNode``) on ``numNodes`` pods, and pod-spec fields (tolerations,
    nodeSelector, volumes...) through ``spec.runtimePatches[*].trainingRuntimeSpec.template.spec
    .replicatedJobs[name=node].template.spec.template.spec``."""
    trainer = job.spec.get("trainer")
    if not isinstance(trainer, Mapping):
        return []
    container = {"name": "node", **{k: trainer[k] for k in ("image", "command", "args", "env") if k in trainer}}
    if isinstance(trainer.get("resourcesPerNode"), Mapping):
        container["resources"] = trainer["resourcesPerNode"]
    spec: dict[str, Any] = {}
    for patch in as_list(job.spec.get("runtimePatches")):
        runtime = as_mapping(as_mapping(as_mapping(as_mapping(patch).get("trainingRuntimeSpec")).get("template")).get("spec"))
        for replicated in as_list(runtime.get("replicatedJobs")):
            replicated = as_mapping(replicated)
            if replicated.get("name") in ("node", None):
                pod = as_mapping(as_mapping(as_mapping(as_mapping(replicated.get("template")).get("spec"))
                                            .get("template")).get("spec"))
                spec.update({k: v for k, v in pod.items() if k not in ("containers", "initContainers")})
    spec["containers"] = [container]
    nodes = _int(trainer.get("numNodes"), 1)
    labels = {"jobset.sigs.k8s.io/jobset-name": job.object_name}
    return [make_template(job, "spec.trainer", spec, labels, nodes, nodes, distributed=nodes is None or nodes > 1)]


def _nim_service(nim: Subject, entry: WorkloadKind) -> list[PodTemplate]:
    """NVIDIA NIM Operator NIMService: one container from ``image``/``command``/``args``/``env``/
    ``resources`` (the operator adds its health probes and a memory-backed /dev/shm); pod fields
    ``tolerations``, ``nodeSelector``, ``affinity``; ``replicas``, or ``scale.hpa.minReplicas``/
    ``maxReplicas`` when ``scale.enabled``; weights in ``storage`` (a NIMCache or PVC); DRA in
    ``draResources``."""
    spec = nim.spec
    image = as_mapping(spec.get("image"))
    repository, tag = as_str(image.get("repository")), as_str(image.get("tag"))
    container: dict[str, Any] = {"name": "nim", "image": f"{repository}:{tag}" if repository and tag else repository}
    for key in ("command", "args", "env", "resources"):
        if key in spec:
            container[key] = spec[key]
    storage = as_mapping(spec.get("storage"))
    volumes: list[Mapping[str, Any]] = []
    if storage.get("nimCache") or storage.get("pvc"):
        volumes.append({"name": "model-store", "persistentVolumeClaim": {"claimName": "nim-model-store"}})
        container["volumeMounts"] = [{"name": "model-store", "mountPath": "/model-store"}]
    pod: dict[str, Any] = {k: spec[k] for k in ("tolerations", "nodeSelector", "affinity", "runtimeClassName",
                                                "schedulerName") if k in spec}
    pod["containers"] = [container]
    pod["volumes"] = volumes
    claims = []
    for index, resource in enumerate(as_list(spec.get("draResources"))):
        resource = as_mapping(resource)
        claim = {"name": f"dra-{index}"}
        if resource.get("resourceClaimTemplateName"):
            claim["resourceClaimTemplateName"] = resource["resourceClaimTemplateName"]
        elif resource.get("resourceClaimName"):
            claim["resourceClaimName"] = resource["resourceClaimName"]
        else:
            claim["inline"] = resource.get("claimCreationSpec")
        claims.append(claim)
    if claims:
        pod["resourceClaims"] = claims
    replicas = _int(spec.get("replicas"), 1)
    low = high = replicas
    scale = as_mapping(spec.get("scale"))
    if scale.get("enabled") is True:
        hpa = as_mapping(scale.get("hpa"))
        low, high = _int(hpa.get("minReplicas"), 1), _int(hpa.get("maxReplicas"), None)
    labels = {**{k: v for k, v in as_mapping(spec.get("labels")).items()}, "app": nim.object_name}
    return [make_template(nim, "spec", pod, labels, low, high, serving=True, long_running=True,
                          distributed=isinstance(spec.get("multiNode"), Mapping),
                          operator_adds=entry.operator_adds,
                          scale_targets=(("NIMService", nim.object_name), ("Deployment", nim.object_name)))]


def _spark(app: Subject, entry: WorkloadKind) -> list[PodTemplate]:
    """Spark Operator SparkApplication: ``spec.driver`` and ``spec.executor`` (``instances``) each
    become a pod; GPUs come from their ``gpu: {name, quantity}``."""
    templates = []
    for role, count in (("driver", 1), ("executor", _int(as_mapping(app.spec.get("executor")).get("instances"), 1))):
        part = as_mapping(app.spec.get(role))
        if not part:
            continue
        container: dict[str, Any] = {"name": f"spark-kubernetes-{role}",
                                     "image": part.get("image") or app.spec.get("image")}
        gpu = as_mapping(part.get("gpu"))
        name, quantity = as_str(gpu.get("name")), gpu.get("quantity")
        if name and quantity is not None:
            container["resources"] = {"limits": {name: quantity}}
        for key in ("volumeMounts", "env", "securityContext"):
            if key in part:
                container[key] = part[key]
        pod = {k: part[k] for k in ("tolerations", "nodeSelector", "affinity") if k in part}
        pod["containers"] = [container]
        if "volumes" in app.spec:
            pod["volumes"] = app.spec["volumes"]
        if "podSecurityContext" in part:
            pod["securityContext"] = part["podSecurityContext"]
        templates.append(make_template(app, f"spec.{role}", pod, as_mapping(part.get("labels")), count, count))
    return templates


# --------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------

_JOB_TEMPLATE_FACTORS = ((".replicas", 1), (".template.spec.parallelism", 1))

WORKLOAD_KINDS: tuple[WorkloadKind, ...] = (
    WorkloadKind("", "Pod", pod_spec=("spec",), replicas=()),
    WorkloadKind("apps", "Deployment", template="spec.template", replicas=(("spec.replicas", 1),), long_running=True),
    WorkloadKind("apps", "StatefulSet", template="spec.template", replicas=(("spec.replicas", 1),), long_running=True),
    WorkloadKind("apps", "ReplicaSet", template="spec.template", replicas=(("spec.replicas", 1),), long_running=True),
    WorkloadKind("", "ReplicationController", template="spec.template", replicas=(("spec.replicas", 1),),
                 long_running=True),
    WorkloadKind("apps", "DaemonSet", template="spec.template", replicas=None),
    WorkloadKind("batch", "Job", template="spec.template", replicas=(("spec.parallelism", 1),)),
    WorkloadKind("batch", "CronJob", template="spec.jobTemplate.spec.template",
                 replicas=(("spec.jobTemplate.spec.parallelism", 1),)),
    WorkloadKind("serving.kserve.io", "InferenceService", roles=("spec.predictor", "spec.transformer", "spec.explainer"),
                 scale=(".minReplicas", ".maxReplicas"), gpus="containers[*].resources, <modelFormat>.resources",
                 serving=True, long_running=True, build=_inference_service),
    # KServe LLMInferenceService (v1alpha1, v1alpha2): bare pod specs in template/worker, for decode
    # (spec) and prefill (spec.prefill); replicas, scaling.minReplicas/maxReplicas.
    WorkloadKind("serving.kserve.io", "LLMInferenceService", roles=("spec", "spec.prefill"),
                 pod_spec=("template", "worker"), scale=(".scaling.minReplicas", ".scaling.maxReplicas"),
                 serving=True, long_running=True, distributed=True),
    WorkloadKind("leaderworkerset.x-k8s.io", "LeaderWorkerSet",
                 roles=("spec.leaderWorkerTemplate",), template="leaderTemplate | workerTemplate",
                 replicas=(("spec.replicas", 1), (".size", 1)), serving=True, long_running=True,
                 distributed=True, build=_leader_worker_set),
    WorkloadKind("kubeflow.org", "PyTorchJob", roles=("spec.pytorchReplicaSpecs{*}",), template="template",
                 scale=("spec.elasticPolicy.minReplicas", "spec.elasticPolicy.maxReplicas"), distributed=True),
    WorkloadKind("kubeflow.org", "MPIJob", roles=("spec.mpiReplicaSpecs{*}",), template="template", distributed=True),
    WorkloadKind("trainer.kubeflow.org", "TrainJob", roles=("spec.trainer",), replicas=((".numNodes", 1),),
                 gpus="spec.trainer.resourcesPerNode", distributed=True, build=_train_job),
    WorkloadKind("trainer.kubeflow.org", "TrainingRuntime", roles=("spec.template.spec.replicatedJobs[*]",),
                 template="template.spec.template", replicas=_JOB_TEMPLATE_FACTORS, distributed=True),
    WorkloadKind("trainer.kubeflow.org", "ClusterTrainingRuntime", roles=("spec.template.spec.replicatedJobs[*]",),
                 template="template.spec.template", replicas=_JOB_TEMPLATE_FACTORS, distributed=True),
    WorkloadKind("jobset.x-k8s.io", "JobSet", roles=("spec.replicatedJobs[*]",), template="template.spec.template",
                 replicas=_JOB_TEMPLATE_FACTORS, distributed=True),
    WorkloadKind("apps.nvidia.com", "NIMService", roles=("spec",), replicas=((".replicas", 1),),
                 scale=("spec.scale.hpa.minReplicas", "spec.scale.hpa.maxReplicas"), gpus="spec.resources, spec.draResources",
                 serving=True, long_running=True, operator_adds=frozenset({"probes", "shm"}), build=_nim_service),
    WorkloadKind("sparkoperator.k8s.io", "SparkApplication", roles=("spec.driver", "spec.executor"),
                 replicas=((".instances", 1),), gpus="spec.driver.gpu, spec.executor.gpu", distributed=True,
                 build=_spark),
    WorkloadKind("batch.volcano.sh", "Job", roles=("spec.tasks[*]",), template="template", distributed=True),
    *(WorkloadKind("ray.io", kind, roles=(path,), template="headGroupSpec.template, workerGroupSpecs[*].template",
                   replicas=((".workerGroupSpecs[*].replicas", 0), (".workerGroupSpecs[*].numOfHosts", 1)),
                   scale=(".workerGroupSpecs[*].minReplicas", ".workerGroupSpecs[*].maxReplicas"),
                   serving=kind == "RayService", long_running=kind in ("RayCluster", "RayService"),
                   operator_adds=frozenset({"probes", "shm"}), build=_ray)
      for kind, path in RAY_CLUSTER_PATHS.items()),
)
"""Every workload kind whose pods the rules read."""

_BY_KIND: dict[tuple[str, str], WorkloadKind] = {(entry.group, entry.kind): entry for entry in WORKLOAD_KINDS}


def workload_kind(subject: Subject) -> Optional[WorkloadKind]:
    """The table entry of ``subject``'s kind, if it has pods."""
    if not subject.is_kubernetes:
        return None
    return _BY_KIND.get((subject.group, subject.kind))


def extract(subject: Subject) -> list[PodTemplate]:
    """Every pod template of ``subject`` by its table entry (empty for kinds without pods)."""
    entry = workload_kind(subject)
    if entry is None or not isinstance(subject.props.get("spec"), Mapping):
        return []
    if entry.build is not None:
        return entry.build(subject, entry)
    return _generic(subject, entry)
