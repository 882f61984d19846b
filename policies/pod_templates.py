"""Every place a pod template lives, found once for all workload rules.

A GPU pod is rarely written as a Pod: it is the template of a Deployment, a Job, a KServe predictor,
a Ray worker group... :func:`pod_templates` turns any such subject into :class:`PodTemplate` s (the pod
spec, its containers, the labels its pods carry, how many replicas it runs), so a rule written against
a pod spec applies to every workload kind, and a new kind is added here, not in each rule.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

from gpufleet.components.gpu_scheduling import GPU_RESOURCE, MIG_RESOURCE_PREFIX, SHARED_GPU_RESOURCE
from gpufleet.policies.core import Malformed, Subject, as_list, as_mapping, as_number, as_str, parse_quantity

KSERVE_MODEL_FORMATS = (
    "model", "huggingface", "pytorch", "triton", "tensorflow", "onnx", "sklearn", "xgboost",
    "lightgbm", "paddle", "pmml",
)
"""Container-like fields of a KServe predictor: the model (or a framework shortcut) becomes the
``kserve-container`` of the predictor pod."""

RAY_GROUP_FIELDS = {"RayCluster": (), "RayService": ("rayClusterConfig",), "RayJob": ("rayClusterSpec",)}
"""Where a KubeRay kind keeps its RayCluster spec (``spec.<field>``)."""

_POD_SPEC_KINDS = {("", "ReplicationController"), ("apps", "Deployment"), ("apps", "StatefulSet"),
                   ("apps", "DaemonSet"), ("apps", "ReplicaSet"), ("batch", "Job")}
_SERVING_KINDS = {"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController", "InferenceService", "RayService"}
"""Long-running kinds that answer requests: the serving rules (probes, PDB, spread) apply to them."""
_RAY_DEFAULT_MAX_REPLICAS = 2147483647


def is_gpu_resource(name: str) -> bool:
    """``nvidia.com/gpu``, ``nvidia.com/gpu.shared`` or a MIG slice ``nvidia.com/mig-<profile>``."""
    return name in (GPU_RESOURCE, SHARED_GPU_RESOURCE) or name.startswith(MIG_RESOURCE_PREFIX)


@dataclass(frozen=True)
class PodTemplate:
    """One pod template of a workload."""

    owner: Subject
    """The resource the template belongs to."""
    path: str
    """Where the pod spec sits in the owner, e.g. ``spec.template.spec`` or ``spec.predictor``."""
    spec: Mapping[str, Any]
    """The pod spec (a KServe predictor: pod-spec fields plus KServe's own)."""
    containers: tuple[Mapping[str, Any], ...]
    """App containers, including a KServe predictor's model container."""
    init_containers: tuple[Mapping[str, Any], ...]
    labels: Mapping[str, str]
    """Labels the pods carry (what a PDB, Service or anti-affinity term selects)."""
    min_replicas: Optional[int]
    """Fewest pods running without an external autoscaler (None: unknown)."""
    max_replicas: Optional[int]
    """Most pods running without an external autoscaler (None: unknown)."""
    serving: bool
    """A long-running workload answering requests (Deployment, StatefulSet, InferenceService, ...)."""
    scale_targets: tuple[tuple[str, str], ...] = ()
    """(kind, name) an HPA or ScaledObject would name to scale these pods."""
    kuberay: bool = False
    """A Ray pod: KubeRay adds readiness/liveness probes and a memory-backed /dev/shm itself."""

    @property
    def kind(self) -> str:
        return self.owner.kind

    @property
    def namespace(self) -> str:
        return self.owner.namespace

    @property
    def where(self) -> str:
        """For messages: ``Deployment llm spec.template.spec``."""
        return self.path

    def all_containers(self) -> Iterator[Mapping[str, Any]]:
        yield from self.init_containers
        yield from self.containers

    def gpu_resources(self) -> dict[str, Decimal]:
        """GPU resource → units one pod asks for (largest of request and limit; an init container
        counts alone, as the scheduler does). Unknown or malformed quantities are left out."""
        total: dict[str, Decimal] = {}
        for container in self.containers:
            for name, amount in container_gpus(container).items():
                total[name] = total.get(name, Decimal(0)) + amount
        for container in self.init_containers:
            for name, amount in container_gpus(container).items():
                total[name] = max(total.get(name, Decimal(0)), amount)
        return total

    @property
    def uses_gpu(self) -> bool:
        """Some container names a GPU resource in its requests or limits."""
        return any(gpu_resource_names(c) for c in self.all_containers())

    @property
    def volumes(self) -> list[Mapping[str, Any]]:
        return [as_mapping(v) for v in as_list(self.spec.get("volumes"))]

    @property
    def tolerations(self) -> list[Mapping[str, Any]]:
        return [as_mapping(t) for t in as_list(self.spec.get("tolerations"))]


def gpu_resource_names(container: Mapping[str, Any]) -> set[str]:
    """GPU resources a container names in its requests or limits."""
    resources = as_mapping(container.get("resources"))
    names: set[str] = set()
    for section in ("requests", "limits"):
        names.update(k for k in as_mapping(resources.get(section)) if is_gpu_resource(k))
    return names


def container_gpus(container: Mapping[str, Any]) -> dict[str, Decimal]:
    """GPU resource → units of one container (largest of request and limit)."""
    resources = as_mapping(container.get("resources"))
    found: dict[str, Decimal] = {}
    for section in ("requests", "limits"):
        for name, raw in as_mapping(resources.get(section)).items():
            if not is_gpu_resource(name):
                continue
            try:
                amount = parse_quantity(raw)
            except Malformed:
                continue
            if amount is not None:
                found[name] = max(found.get(name, Decimal(0)), amount)
    return found


def pod_templates(subject: Subject) -> list[PodTemplate]:
    """Every pod template of ``subject`` (empty for kinds without pods)."""
    return subject.derived("pod_templates", _pod_templates)


def _pod_templates(subject: Subject) -> list[PodTemplate]:
    if not subject.is_kubernetes or not isinstance(subject.props.get("spec"), Mapping):
        return []
    kind, group = subject.kind, subject.group
    if (group, kind) == ("", "Pod"):
        return [_template(subject, "spec", subject.spec, subject.labels, 1, 1)]
    if (group, kind) in _POD_SPEC_KINDS:
        template = as_mapping(subject.spec.get("template"))
        return [_from_pod_template(subject, "spec.template", template, *_replicas(subject))]
    if (group, kind) == ("batch", "CronJob"):
        job = as_mapping(as_mapping(subject.spec.get("jobTemplate")).get("spec"))
        return [_from_pod_template(subject, "spec.jobTemplate.spec.template", as_mapping(job.get("template")), 1, 1)]
    if (group, kind) == ("serving.kserve.io", "InferenceService"):
        return _inference_service(subject)
    if group == "ray.io" and kind in RAY_GROUP_FIELDS:
        cluster, path = subject.spec, "spec"
        for part in RAY_GROUP_FIELDS[kind]:
            cluster, path = as_mapping(cluster.get(part)), f"{path}.{part}"
        return _ray_cluster(subject, cluster, path)
    if (group, kind) == ("ray.io", "RayCronJob"):
        job = as_mapping(subject.spec.get("jobTemplate"))
        return _ray_cluster(subject, as_mapping(job.get("rayClusterSpec")), "spec.jobTemplate.rayClusterSpec")
    return []


def gpu_pod_templates(subjects: Iterable[Subject]) -> Iterator[PodTemplate]:
    """Pod templates that use a GPU resource, over many subjects."""
    for subject in subjects:
        for template in pod_templates(subject):
            if template.uses_gpu:
                yield template


def _template(
    owner: Subject, path: str, spec: Mapping[str, Any], labels: Mapping[str, Any],
    min_replicas: Optional[int], max_replicas: Optional[int], *, extra_containers: Sequence[Mapping[str, Any]] = (),
    serving: Optional[bool] = None, scale_targets: tuple[tuple[str, str], ...] = (), kuberay: bool = False,
) -> PodTemplate:
    containers = tuple(as_mapping(c) for c in as_list(spec.get("containers"))) + tuple(extra_containers)
    return PodTemplate(
        owner=owner, path=path, spec=spec, containers=containers,
        init_containers=tuple(as_mapping(c) for c in as_list(spec.get("initContainers"))),
        labels={k: v for k, v in labels.items() if as_str(v) is not None},
        min_replicas=min_replicas, max_replicas=max_replicas,
        serving=owner.kind in _SERVING_KINDS if serving is None else serving,
        scale_targets=scale_targets or ((owner.kind, owner.object_name),), kuberay=kuberay,
    )


def _from_pod_template(
    owner: Subject, path: str, template: Mapping[str, Any], low: Optional[int], high: Optional[int], **kwargs: Any
) -> PodTemplate:
    labels = as_mapping(as_mapping(template.get("metadata")).get("labels"))
    return _template(owner, f"{path}.spec", as_mapping(template.get("spec")), labels, low, high, **kwargs)


def _int(value: Any, default: Optional[int]) -> Optional[int]:
    """An integer field: its default when absent, None when unknown."""
    if value is None:
        return default
    number = as_number(value) if not isinstance(value, str) else None
    return int(number) if number is not None else None


def _replicas(subject: Subject) -> tuple[Optional[int], Optional[int]]:
    kind = subject.kind
    if kind == "DaemonSet":
        return None, None  # one a node: not a replica count
    if kind == "Job":
        return 1, 1  # pods run to completion; availability rules do not apply
    count = _int(subject.spec.get("replicas"), 1)
    return count, count


def _inference_service(isvc: Subject) -> list[PodTemplate]:
    name = isvc.object_name
    metadata_labels = {k: v for k, v in isvc.labels.items() if as_str(v) is not None}
    templates: list[PodTemplate] = []

    def add(predictor: Mapping[str, Any], path: str, component: str) -> None:
        low = _int(predictor.get("minReplicas"), 1)
        high = _int(predictor.get("maxReplicas"), 0)
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
        templates.append(_template(isvc, path, predictor, labels, low, high, extra_containers=model,
                                   serving=True, scale_targets=targets))
        worker = predictor.get("workerSpec")
        if isinstance(worker, Mapping):
            worker_labels = {**labels, "app": f"isvc.{name}-{component}-worker"}
            templates.append(_template(isvc, f"{path}.workerSpec", worker, worker_labels, low, high, serving=True,
                                       scale_targets=targets))

    add(as_mapping(isvc.spec.get("predictor")), "spec.predictor", "predictor")
    for component in ("transformer", "explainer"):
        if isinstance(isvc.spec.get(component), Mapping):
            add(as_mapping(isvc.spec.get(component)), f"spec.{component}", component)
    for index, canary in enumerate(as_list(isvc.spec.get("canary"))):
        predictor = as_mapping(as_mapping(canary).get("predictor"))
        if predictor:
            add(predictor, f"spec.canary[{index}].predictor", "predictor")
    return templates


def _ray_cluster(owner: Subject, cluster: Mapping[str, Any], path: str) -> list[PodTemplate]:
    serving = owner.kind == "RayService"
    cluster_label = {"ray.io/cluster": owner.object_name} if owner.kind == "RayCluster" else {}
    autoscaling = cluster.get("enableInTreeAutoscaling") is True
    head = as_mapping(cluster.get("headGroupSpec"))
    templates = [_from_pod_template(
        owner, f"{path}.headGroupSpec.template", as_mapping(head.get("template")), 1, 1, serving=serving,
        kuberay=True,
    )]
    templates[0] = _with_labels(templates[0], {**cluster_label, "ray.io/node-type": "head", "ray.io/group": "headgroup"})
    for index, group in enumerate(as_list(cluster.get("workerGroupSpecs"))):
        group = as_mapping(group)
        hosts = _int(group.get("numOfHosts"), 1)
        replicas = _int(group.get("replicas"), 0)
        if autoscaling:
            low = _int(group.get("minReplicas"), 0)
            high = _int(group.get("maxReplicas"), _RAY_DEFAULT_MAX_REPLICAS)
        else:
            low = high = replicas
        if hosts is not None:
            low = None if low is None else low * hosts
            high = None if high is None else high * hosts
        template = _from_pod_template(
            owner, f"{path}.workerGroupSpecs[{index}].template", as_mapping(group.get("template")), low, high,
            serving=serving, kuberay=True,
        )
        group_name = as_str(group.get("groupName")) or ""
        templates.append(_with_labels(template, {**cluster_label, "ray.io/node-type": "worker", "ray.io/group": group_name}))
    return templates


def _with_labels(template: PodTemplate, labels: Mapping[str, str]) -> PodTemplate:
    return replace(template, labels={**template.labels, **labels})
