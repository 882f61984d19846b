"""Triton model configurations: the checked arguments of one model of a Triton model repository, its
``config.pbtxt`` text, and the hardened Job that writes each model (weights and configuration) into
the model-cache claim.

A Triton model repository is a directory with one sub-directory per model::

    <repository>/<model>/config.pbtxt
    <repository>/<model>/<version>/<model file>

gpufleet renders ``config.pbtxt`` from configuration (``name``, ``backend``, ``max_batch_size``,
``dynamic_batching``, ``instance_group`` and, when the file is not the backend's default name,
``default_model_filename``). Inputs and outputs are left to Triton's auto-complete, which reads them
from the model file for the ONNX Runtime, TensorRT and OpenVINO backends (the Python backend's
``auto_complete_config``; PyTorch and TensorFlow SavedModel need them in the model itself).

Refused here, as Triton would refuse or silently change them (Triton core ``model_config_utils.cc``,
``ValidateModelConfig`` and ``NormalizeModelConfig``):

- a backend Triton's image does not ship (the model never loads: "unable to find backend library");
- ``dynamic_batching`` on a model with ``max_batch_size: 0``: such a model takes no batch dimension,
  and ``ValidateModelConfig`` refuses every preferred batch size above ``max_batch_size``
  ("dynamic batching preferred size must be <= max batch size");
- preferred batch sizes outside ``1..max_batch_size`` (same rule);
- an instance group ``count`` below 1 (``NormalizeModelConfig`` silently turns it into 1: a
  configuration that says 0 instances is a mistake, never what Triton runs).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal, Mapping, Optional, Sequence, TypedDict

from typing_extensions import NotRequired

from gpufleet.components._validate import require_int_range
from gpufleet.components.model_loader import (
    DEFAULT_IMAGE as LOADER_IMAGE,
    INSTALL_SCRIPT,
    MOUNT,
    TOOLS,
    check_path,
    hardened_job_spec,
    install_env,
    parse_source,
)

BACKEND_FILES: dict[str, str] = {
    "onnxruntime": "model.onnx",
    "tensorrt": "model.plan",
    "pytorch": "model.pt",
    "tensorflow": "model.savedmodel",
    "openvino": "model.xml",
    "python": "model.py",
}
"""Backends of the ``tritonserver:<yy.mm>-py3`` image and the file name each loads by default
(Triton's "Model Repository" documentation, "Model Files")."""
INSTANCE_KINDS = ("KIND_GPU", "KIND_CPU")
COMPONENT_LABEL = {"app.kubernetes.io/component": "triton-model-repository"}

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")


class DynamicBatchingArgs(TypedDict, total=False):
    """Triton's dynamic batcher of one model (``dynamic_batching { ... }``)."""

    max_queue_delay_microseconds: int
    """Longest a request waits for others to join its batch. Default 0 (Triton's: no waiting)."""
    preferred_batch_sizes: Sequence[int]
    """Batch sizes the batcher aims for, each 1..``max_batch_size``. Default none (the largest it can)."""
    preserve_ordering: bool
    """Responses leave in the order requests came. Default false."""


class InstanceGroupArgs(TypedDict, total=False):
    """One ``instance_group`` entry: copies of the model, on each of the pod's GPUs (``KIND_GPU``) or on CPU."""

    count: int
    """Instances (per GPU with ``KIND_GPU``), at least 1. Default 1."""
    kind: Literal["KIND_GPU", "KIND_CPU"]
    """Where the instances run. Default ``KIND_GPU``."""


class TritonModelArgs(TypedDict):
    """One model of the repository."""

    name: str
    """Model name (its directory, and the name clients use in ``/v2/models/<name>``). Required."""
    backend: Literal["onnxruntime", "tensorrt", "pytorch", "tensorflow", "openvino", "python"]
    """Triton backend. Required."""
    max_batch_size: NotRequired[int]
    """Largest batch Triton forms (0: the model takes no batch dimension). Default 0."""
    dynamic_batching: NotRequired[DynamicBatchingArgs]
    """Enable the dynamic batcher (needs ``max_batch_size`` ≥ 1). Default none."""
    instance_groups: NotRequired[Sequence[InstanceGroupArgs]]
    """Model instances. Default one instance per GPU (``[{"count": 1, "kind": "KIND_GPU"}]``)."""
    source: NotRequired[str]
    """``hf://<org>/<model>[@<revision>]``: download ``files`` from that Hugging Face repository into
    the version directory. Default none (the version directory already holds the model)."""
    files: NotRequired[Sequence[str]]
    """Files of ``source`` to download, relative paths; the first is the file Triton loads. Default
    the backend's default file name (e.g. ``model.onnx``)."""
    version: NotRequired[int]
    """Version directory. Default 1."""


def check_model(model: Any, field: str, *, name: str) -> dict[str, Any]:
    """A checked, defaulted copy of one :class:`TritonModelArgs` (errors name ``field``, e.g.
    ``models[0]``)."""
    if not isinstance(model, Mapping):
        raise TypeError(f"{name}: {field} must be a mapping")
    unknown = set(model) - set(TritonModelArgs.__annotations__)
    if unknown:
        raise ValueError(f"{name}: {field} has unknown keys {sorted(unknown)}")
    model_name = model.get("name")
    if not isinstance(model_name, str) or not _MODEL_NAME.match(model_name):
        raise ValueError(f"{name}: {field}.name must be a model directory name (letters, digits, '_', '.', '-'), "
                         f"got {model_name!r}")
    backend = model.get("backend")
    if backend not in BACKEND_FILES:
        raise ValueError(f"{name}: {field}.backend must be one of {', '.join(BACKEND_FILES)} (the backends of "
                         f"the tritonserver image), got {backend!r}")
    batch = require_int_range(model.get("max_batch_size", 0), f"{field}.max_batch_size", 0, 1 << 20, name=name)
    batching = model.get("dynamic_batching")
    checked_batching: Optional[dict[str, Any]] = None
    if batching is not None:
        if not isinstance(batching, Mapping):
            raise TypeError(f"{name}: {field}.dynamic_batching must be a mapping")
        if batch == 0:
            raise ValueError(f"{name}: {field}.dynamic_batching needs {field}.max_batch_size of at least 1: a model "
                             f"with max_batch_size 0 takes no batch dimension, and Triton refuses every preferred "
                             f"batch size above max_batch_size")
        extra = set(batching) - set(DynamicBatchingArgs.__annotations__)
        if extra:
            raise ValueError(f"{name}: {field}.dynamic_batching has unknown keys {sorted(extra)}")
        delay = require_int_range(batching.get("max_queue_delay_microseconds", 0),
                                  f"{field}.dynamic_batching.max_queue_delay_microseconds", 0, 10_000_000, name=name)
        sizes = list(batching.get("preferred_batch_sizes", []))
        for size in sizes:
            if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= batch:
                raise ValueError(f"{name}: {field}.dynamic_batching.preferred_batch_sizes must be integers from 1 to "
                                 f"max_batch_size ({batch}), got {size!r}")
        ordering = batching.get("preserve_ordering", False)
        if not isinstance(ordering, bool):
            raise TypeError(f"{name}: {field}.dynamic_batching.preserve_ordering must be bool")
        checked_batching = {"max_queue_delay_microseconds": delay, "preferred_batch_sizes": sorted(set(sizes)),
                            "preserve_ordering": ordering}
    groups = model.get("instance_groups", [{"count": 1, "kind": "KIND_GPU"}])
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence) or not groups:
        raise ValueError(f"{name}: {field}.instance_groups must be a non-empty list")
    checked_groups = []
    for j, group in enumerate(groups):
        where = f"{field}.instance_groups[{j}]"
        if not isinstance(group, Mapping) or set(group) - {"count", "kind"}:
            raise ValueError(f"{name}: {where} must be a mapping of count and kind, got {group!r}")
        count = group.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"{name}: {where}.count must be at least 1 (Triton would silently run 1 instead), "
                             f"got {count!r}")
        require_int_range(count, f"{where}.count", 1, 64, name=name)
        kind = group.get("kind", "KIND_GPU")
        if kind not in INSTANCE_KINDS:
            raise ValueError(f"{name}: {where}.kind must be one of {', '.join(INSTANCE_KINDS)}, got {kind!r}")
        checked_groups.append({"count": count, "kind": kind})
    version = require_int_range(model.get("version", 1), f"{field}.version", 1, 1 << 30, name=name)
    source = model.get("source")
    if source is not None:
        parse_source(source, f"{field}.source", name=name)
    files = list(model.get("files", [BACKEND_FILES[backend]]))
    if not files:
        raise ValueError(f"{name}: {field}.files must name at least the file Triton loads")
    for file in files:
        if not isinstance(file, str) or not _FILE.match(file) or any(p in (".", "..") for p in file.split("/")):
            raise ValueError(f"{name}: {field}.files must be relative paths inside the model repository like "
                             f"'onnx/model.onnx', got {file!r}")
    return {"name": model_name, "backend": backend, "max_batch_size": batch, "dynamic_batching": checked_batching,
            "instance_groups": checked_groups, "source": source, "files": files, "version": version}


def config_pbtxt(model: Mapping[str, Any]) -> str:
    """The ``config.pbtxt`` (protobuf text format of Triton's ``ModelConfig``) of a checked model."""
    lines = [f'name: "{model["name"]}"', f'backend: "{model["backend"]}"',
             f'max_batch_size: {model["max_batch_size"]}']
    if model["files"][0] != BACKEND_FILES[model["backend"]]:
        lines.append(f'default_model_filename: "{model["files"][0]}"')
    batching = model.get("dynamic_batching")
    if batching is not None:
        lines.append("dynamic_batching {")
        if batching["preferred_batch_sizes"]:
            lines.append(f"  preferred_batch_size: [ {', '.join(map(str, batching['preferred_batch_sizes']))} ]")
        lines.append(f"  max_queue_delay_microseconds: {batching['max_queue_delay_microseconds']}")
        if batching["preserve_ordering"]:
            lines.append("  preserve_ordering: true")
        lines.append("}")
    groups = ",\n".join(f"  {{\n    count: {g['count']}\n    kind: {g['kind']}\n  }}" for g in model["instance_groups"])
    lines += ["instance_group [", groups, "]"]
    return "\n".join(lines) + "\n"


def repository_digest(models: Sequence[Mapping[str, Any]], path: str) -> str:
    """A short digest of what the loader writes (paths, sources, files, configurations): the
    predictor pods carry it, so a changed repository rolls them (Triton loads models at start)."""
    text = "\n".join([path, *(f"{m['name']}|{m['version']}|{m['source']}|{','.join(m['files'])}|{config_pbtxt(m)}"
                              for m in models)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def repository_job_spec(claim_name: str, path: str, models: Sequence[Mapping[str, Any]], *,
                        hf_token_secret: Optional[Mapping[str, str]] = None, image: str = LOADER_IMAGE,
                        cpu: str = "1", memory: str = "2Gi", deadline: int = 7200, backoff: int = 3,
                        name: str) -> dict[str, Any]:
    """The Job ``spec`` writing ``models`` (checked, :func:`check_model`) into ``<claim>/<path>``: for each,
    download its ``files`` from its ``source`` into ``<model>/<version>/`` (hash-checked ``hf`` CLI, as
    :class:`~gpufleet.components.model_loader.ModelWeightsLoader`), then write ``config.pbtxt`` next to
    them through a temporary file and a rename, so Triton never reads half a file. Every value reaches
    the script through the environment. Same pod hardening as the weights loader
    (:func:`~gpufleet.components.model_loader.hardened_job_spec`)."""
    repository = check_path(path, "storage_uri", name=name)
    env: list[dict[str, Any]] = [{"name": "REPOSITORY", "value": f"{MOUNT}/{repository}"}]
    downloads = any(m["source"] is not None for m in models)
    script = "set -euf\n"  # -f: no globbing of the file lists split below
    if downloads:
        env += [{"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
                {"name": "HF_HUB_DISABLE_PROGRESS_BARS", "value": "1"},
                {"name": "HF_CLI_DIR", "value": TOOLS}, *install_env()]
        script += INSTALL_SCRIPT
        if hf_token_secret is not None:
            env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
                "name": hf_token_secret["name"], "key": hf_token_secret.get("key", "token")}}})
    for i, model in enumerate(models):
        env += [{"name": f"MODEL_{i}_NAME", "value": model["name"]},
                {"name": f"MODEL_{i}_VERSION", "value": str(model["version"])},
                {"name": f"MODEL_{i}_CONFIG", "value": config_pbtxt(model)}]
        script += f'dir="$REPOSITORY/$MODEL_{i}_NAME"\nmkdir -p "$dir/$MODEL_{i}_VERSION"\n'
        if model["source"] is not None:
            source = parse_source(model["source"], name=name)
            env += [{"name": f"MODEL_{i}_REPO", "value": source.repo},
                    {"name": f"MODEL_{i}_REVISION", "value": source.revision},
                    {"name": f"MODEL_{i}_FILES", "value": " ".join(model["files"])}]
            # the file list is split on spaces: its entries are checked to hold none (check_model)
            script += (f'hf download "$MODEL_{i}_REPO" $MODEL_{i}_FILES --revision "$MODEL_{i}_REVISION" '
                       f'--local-dir "$dir/$MODEL_{i}_VERSION"\n')
        script += (f'printf \'%s\' "$MODEL_{i}_CONFIG" > "$dir/.config.pbtxt.tmp"\n'
                   f'mv "$dir/.config.pbtxt.tmp" "$dir/config.pbtxt"\n')
    return hardened_job_spec(claim_name, image, script, env, cpu=cpu, memory=memory, deadline=deadline,
                             backoff=backoff, container_name="write-models", labels=COMPONENT_LABEL)
