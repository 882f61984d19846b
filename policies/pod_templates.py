"""Every place a pod template lives, found once for all workload rules.

A GPU pod is rarely written as a Pod: it is the template of a Deployment, a Job, a KServe predictor,
a Ray worker group, a LeaderWorkerSet, a PyTorchJob... :func:`pod_templates` turns any such subject
into :class:`PodTemplate` s (the pod spec, its containers, the labels its pods carry, how many replicas
it runs) through the extraction table of :mod:`gpufleet.policies.workloads`, so a rule written against
a pod spec applies to every workload kind, and a new kind is added there, not in each rule.

What one subject cannot tell (whether a DRA claim is a GPU, whether a Service selects the pods) is
resolved over all subjects by :func:`gpu_pod_templates`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import cached_property
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

from gpufleet.components.gpu_scheduling import GPU_RESOURCE, MIG_RESOURCE_PREFIX, SHARED_GPU_RESOURCE
from gpufleet.policies.core import Malformed, Subject, as_list, as_mapping, as_str, parse_quantity

KSERVE_MODEL_FORMATS = (
    "model", "huggingface", "pytorch", "triton", "tensorflow", "onnx", "sklearn", "xgboost",
    "lightgbm", "paddle", "pmml",
)
"""Container-like fields of a KServe predictor: the model (or a framework shortcut) becomes the
``kserve-container`` of the predictor pod."""

MODEL_SERVER_IMAGES = re.compile(
    r"vllm|text-generation-inference|tritonserver|sglang|tensorrt-llm|trtllm|kserve|nvcr\.io/nim/|"
    r"torchserve|jetstream|llama\.cpp|llama-cpp|ollama|lmdeploy|dynamo", re.IGNORECASE)
"""Images of known model servers (vLLM, TGI, Triton, SGLang, TensorRT-LLM, KServe, NIM, ...)."""
MODEL_SERVER_COMMANDS = re.compile(
    r"\bvllm\s+serve\b|vllm\.entrypoints|text-generation-launcher|\btritonserver\b|sglang\.launch_server|"
    r"llama-server|\btorchserve\b|trtllm-serve|lmdeploy\s+serve|ray\s+serve|serve\.run", re.IGNORECASE)
"""Commands and arguments that start a known model server."""
DISTRIBUTED_HINTS = re.compile(
    r"torchrun|torch\.distributed|deepspeed|accelerate\s+launch|mpirun|horovodrun|\bnccl|megatron|"
    r"--tensor[-_]parallel[-_]size[=\s]+([2-9]|\d\d)|--num[-_]shard[=\s]+([2-9]|\d\d)|--tp[=\s]+([2-9]|\d\d)",
    re.IGNORECASE)
"""PyTorch distributed / NCCL / multi-process evidence in a command or argument."""
SMOKE_TEST = re.compile(
    r"^\s*(?:(?:/bin/)?(?:ba)?sh\s+-c\s+)?(?:nvidia-smi|sleep|echo|true|cat|python3?\s+-c|/cuda-samples/|vectorAdd|"
    r"nbody|while\s+true)", re.IGNORECASE)
"""Commands of a smoke test or placeholder: ``nvidia-smi``, ``sleep infinity``, ``python -c '...'``, CUDA
samples. Not evidence of a multi-process workload, whatever the image."""
SMOKE_TEST_IMAGES = re.compile(r"/pause:|cuda-sample|/busybox|^busybox|/cuda:.*-base", re.IGNORECASE)
PASSTHROUGH_GPU_RESOURCE = "nvidia.com/pgpu"
"""A whole GPU passed through to a Kata sandbox (GPU Operator sandbox device plugin)."""
_DISTRIBUTED_IMAGES = re.compile(r"pytorch|torch|nemo|megatron|deepspeed|nccl|vllm|sglang|text-generation-inference",
                                 re.IGNORECASE)
"""Images of PyTorch itself or of servers built on it that share tensors between processes (vLLM, SGLang,
TGI: their docs ask for a larger /dev/shm)."""
_PYTORCH_MODEL_FORMATS = ("huggingface", "pytorch")
"""KServe model formats served by PyTorch-based runtimes (the Hugging Face server runs vLLM)."""


def is_gpu_resource(name: str) -> bool:
    """``nvidia.com/gpu``, ``nvidia.com/gpu.shared``, a MIG slice ``nvidia.com/mig-<profile>`` or a
    passed-through GPU of a Kata sandbox (``nvidia.com/pgpu``)."""
    return name in (GPU_RESOURCE, SHARED_GPU_RESOURCE, PASSTHROUGH_GPU_RESOURCE) or name.startswith(MIG_RESOURCE_PREFIX)


@dataclass(frozen=True)
class PodTemplate:
    """One pod template of a workload (immutable, as its owner: what it tells is read once)."""

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
    """Most pods running without an external autoscaler (None: unknown or unbounded)."""
    serving: bool
    """Evidence says the pods answer requests: a model-server kind (KServe, LWS, NIM, RayService), a
    model-server image or command, or (resolved by :func:`gpu_pod_templates`) a Service selecting them."""
    scale_targets: tuple[tuple[str, str], ...] = ()
    """(kind, name) an HPA or ScaledObject would name to scale these pods."""
    kuberay: bool = False
    """A Ray pod: KubeRay adds readiness/liveness probes and a memory-backed /dev/shm itself."""
    long_running: bool = False
    """Pods run until deleted (Deployment, StatefulSet, ...): a Service selecting them makes them serving."""
    distributed: bool = False
    """Pods of a workload whose pods work together (PyTorchJob, MPIJob, JobSet, LWS, ...)."""
    operator_adds: frozenset[str] = frozenset()
    """What the kind's operator adds to each pod: ``probes``, ``shm``."""
    unbounded: bool = False
    """The workload's own autoscaler has no upper bound (Knative without maxReplicas)."""
    dra_gpus: Mapping[str, Decimal] = field(default_factory=dict)
    """DRA device class → GPUs one pod claims (resolved by :func:`gpu_pod_templates`)."""

    @property
    def kind(self) -> str:
        return self.owner.kind

    @property
    def namespace(self) -> str:
        return self.owner.namespace

    @property
    def where(self) -> str:
        """For messages: where the pod spec sits in the owner."""
        return self.path

    def all_containers(self) -> Iterator[Mapping[str, Any]]:
        yield from self.init_containers
        yield from self.containers

    def gpu_resources(self) -> dict[str, Decimal]:
        """GPU resource → units one pod asks for (largest of request and limit; an init container
        counts alone, as the scheduler does). Unknown or malformed quantities are left out."""
        return dict(self._gpu_resources)

    @cached_property
    def _gpu_resources(self) -> dict[str, Decimal]:
        total: dict[str, Decimal] = {}
        for container in self.containers:
            for name, amount in container_gpus(container).items():
                total[name] = total.get(name, Decimal(0)) + amount
        for container in self.init_containers:
            for name, amount in container_gpus(container).items():
                total[name] = max(total.get(name, Decimal(0)), amount)
        return total

    def gpu_count(self) -> Decimal:
        """GPUs (device-plugin units and DRA devices) one pod takes."""
        return sum(self.gpu_resources().values(), Decimal(0)) + sum(self.dra_gpus.values(), Decimal(0))

    @cached_property
    def uses_gpu(self) -> bool:
        """Some container names a GPU resource in its requests or limits, or the pod claims a GPU
        through DRA (known once resolved)."""
        return bool(self.dra_gpus) or any(gpu_resource_names(c) for c in self.all_containers())

    @property
    def manages_probes(self) -> bool:
        return self.kuberay or "probes" in self.operator_adds

    @property
    def manages_shm(self) -> bool:
        return self.kuberay or "shm" in self.operator_adds

    @property
    def volumes(self) -> list[Mapping[str, Any]]:
        return [as_mapping(v) for v in as_list(self.spec.get("volumes"))]

    @property
    def tolerations(self) -> list[Mapping[str, Any]]:
        return [as_mapping(t) for t in as_list(self.spec.get("tolerations"))]

    def multi_process(self) -> bool:
        """Evidence that the pod needs more shared memory than 64 MiB: more than one GPU, pods of a
        distributed workload, or PyTorch distributed / NCCL / multi-process commands, images or env."""
        if self.gpu_count() > 1 or self.distributed:
            return True
        for container in self.all_containers():
            text = " ".join(str(part) for key in ("command", "args") for part in as_list(container.get(key)))
            if DISTRIBUTED_HINTS.search(text):
                return True
            if SMOKE_TEST.search(text) or SMOKE_TEST_IMAGES.search(as_str(container.get("image")) or ""):
                continue  # a one-liner check, whatever the image
            if _DISTRIBUTED_IMAGES.search(as_str(container.get("image")) or ""):
                return True
            if as_str(as_mapping(container.get("modelFormat")).get("name")) in _PYTORCH_MODEL_FORMATS:
                return True
            names = [as_str(as_mapping(e).get("name")) or "" for e in as_list(container.get("env"))]
            if any(n.startswith(("NCCL_", "TORCH_", "PYTORCH_")) for n in names):
                return True
        return False


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




def model_server(containers: Iterable[Mapping[str, Any]]) -> bool:
    """Some container runs a known model server (by image, command or arguments)."""
    for container in containers:
        if MODEL_SERVER_IMAGES.search(as_str(container.get("image")) or ""):
            return True
        text = " ".join(str(part) for key in ("command", "args") for part in as_list(container.get(key)))
        if MODEL_SERVER_COMMANDS.search(text):
            return True
    return False


def make_template(
    owner: Subject, path: str, spec: Mapping[str, Any], labels: Mapping[str, Any],
    min_replicas: Optional[int], max_replicas: Optional[int], *, extra_containers: Sequence[Mapping[str, Any]] = (),
    serving: Optional[bool] = None, scale_targets: tuple[tuple[str, str], ...] = (), kuberay: bool = False,
    long_running: bool = False, distributed: bool = False, operator_adds: frozenset[str] = frozenset(),
    unbounded: bool = False,
) -> PodTemplate:
    """A :class:`PodTemplate` of ``owner``; ``serving`` None: decided by the containers' images and
    commands (a known model server)."""
    containers = tuple(as_mapping(c) for c in as_list(spec.get("containers"))) + tuple(extra_containers)
    if serving is None:
        serving = model_server(containers)
    return PodTemplate(
        owner=owner, path=path, spec=spec, containers=containers,
        init_containers=tuple(as_mapping(c) for c in as_list(spec.get("initContainers"))),
        labels={k: v for k, v in labels.items() if as_str(v) is not None},
        min_replicas=min_replicas, max_replicas=max_replicas, serving=serving,
        scale_targets=scale_targets or ((owner.kind, owner.object_name),), kuberay=kuberay,
        long_running=long_running, distributed=distributed,
        operator_adds=operator_adds, unbounded=unbounded,
    )


def template_from_pod_template(
    owner: Subject, path: str, template: Mapping[str, Any], low: Optional[int], high: Optional[int], *,
    extra_labels: Optional[Mapping[str, str]] = None, **kwargs: Any,
) -> PodTemplate:
    """A :class:`PodTemplate` from a PodTemplateSpec (``metadata.labels`` + ``spec``) at ``path``."""
    labels = {**as_mapping(as_mapping(template.get("metadata")).get("labels")), **(extra_labels or {})}
    return make_template(owner, f"{path}.spec", as_mapping(template.get("spec")), labels, low, high, **kwargs)


def pod_templates(subject: Subject) -> list[PodTemplate]:
    """Every pod template of ``subject`` (empty for kinds without pods), as one subject tells it:
    DRA claims unresolved, serving by kind, image or command only."""
    return subject.derived("pod_templates", _pod_templates)


def _pod_templates(subject: Subject) -> list[PodTemplate]:
    from gpufleet.policies.workloads import extract

    return extract(subject)


def resolved_pod_templates(subjects: Sequence[Subject]) -> list[PodTemplate]:
    """Every pod template of ``subjects``, with what other subjects tell: the GPUs its DRA claims
    take (ResourceClaimTemplates, ResourceClaims, DeviceClasses) and whether a Service selects its
    pods (a long-running workload a Service selects is serving). The last resolution is kept: every
    cross-resource rule of one evaluation asks for the same subjects."""
    key = tuple(subjects)
    if _LAST[0] is not None and len(_LAST[0]) == len(key) and all(a is b for a, b in zip(_LAST[0], key)):
        return _LAST[1]
    resolved = _resolve(key)
    _LAST[:] = [key, resolved]
    return resolved


_LAST: list[Any] = [None, []]
"""(subjects, their resolved templates) of the last call; holding the subjects keeps them alive, so
the identity comparison cannot mistake a new list for an old one."""


def _resolve(subjects: Sequence[Subject]) -> list[PodTemplate]:
    from gpufleet.policies.dra import DraIndex

    dra = DraIndex(subjects)
    services = _service_selectors(subjects)
    resolved: list[PodTemplate] = []
    for subject in subjects:
        for template in pod_templates(subject):
            changes: dict[str, Any] = {}
            claims = dra.gpus(template)
            if claims:
                changes["dra_gpus"] = claims
            if not template.serving and template.long_running and _selected(template, services):
                changes["serving"] = True
            resolved.append(replace(template, **changes) if changes else template)
    return resolved


def gpu_pod_templates(subjects: Iterable[Subject]) -> Iterator[PodTemplate]:
    """Pod templates that use a GPU (a device-plugin resource or a DRA claim of a GPU device class),
    over many subjects, resolved as :func:`resolved_pod_templates` does."""
    for template in resolved_pod_templates(list(subjects)):
        if template.uses_gpu:
            yield template


def _service_selectors(subjects: Sequence[Subject]) -> dict[str, list[Mapping[str, Any]]]:
    found: dict[str, list[Mapping[str, Any]]] = {}
    for subject in subjects:
        if subject.is_a("", "Service"):
            selector = subject.spec.get("selector")
            if isinstance(selector, Mapping) and selector and all(as_str(v) is not None for v in selector.values()):
                found.setdefault(subject.namespace, []).append(selector)
    return found


def _selected(template: PodTemplate, services: Mapping[str, list[Mapping[str, Any]]]) -> bool:
    return any(all(template.labels.get(k) == v for k, v in selector.items())
               for selector in services.get(template.namespace, ()))
