"""``ModelWeightsLoader``: a Kubernetes Job that downloads a model's weights into a model-cache claim
once, so the predictors that mount the claim read-only find them on their first start.

A shared weights claim (:class:`~gpufleet.components.model_cache.ModelCache`) starts empty; a
predictor serving ``pvc://<claim>/<path>`` would crash-loop until something puts the weights there.
The loader is that something: a ``batch/v1`` Job in the claim's namespace that runs
``hf download <repo> --revision <revision> --local-dir /mnt/models/<path>`` with the claim mounted
read-write. Consumers depend on the loader, and pulumi-kubernetes awaits a Job until it is
``Complete`` (and fails the update when it is ``Failed``), so nothing that reads the weights is
created before they are there.

Design choices:

- **Idempotent.** ``hf download --local-dir`` keeps per-file metadata under
  ``<local-dir>/.cache/huggingface`` and skips files whose content already matches the revision, so a
  re-run (a replaced Job, a retried pod) only fetches what is missing.
- **Kept after it finishes.** ``ttlSecondsAfterFinished`` is left unset: a finished Job holds no
  resources, and Kubernetes deleting it would show up in Pulumi as drift (``pulumi refresh`` drops
  it and the next ``up`` downloads again). The Job's pod template is immutable, so a new revision or
  path replaces the Job (delete before replace: its name is fixed) and downloads the new weights.
- **Bounded.** ``activeDeadlineSeconds`` caps the whole download (retries included) and
  ``backoffLimit`` the retries; Pulumi's create/update timeout is set a little above the deadline
  (its default of 10 minutes is too short for tens of GiB).
- **Retried after a failure.** pulumi-kubernetes awaits an unready resource again on the next
  update, and a ``Failed`` Job never becomes ready: without help every later ``pulumi up`` would
  fail on it until ``--replace``. The Job carries ``pulumi.com/replaceUnready: "true"``, so an
  update replaces a Job that is not ``Complete`` (a fresh download, which resumes what is there;
  a Job still running when an update starts is restarted the same way). A ``Complete`` Job is left
  alone: the provider reads its live status.
- **Image.** A Python slim image (~50 MB) into which the pod installs the ``hf`` CLI with pip into an
  emptyDir (the root filesystem stays read-only). The install is hash-checked and exact: every
  package of :data:`HF_CLI_LOCK` (``huggingface_hub`` and all it needs) pinned to a version and to
  the SHA-256 of its wheels for CPython 3.12 on linux x86_64 and aarch64, installed with
  ``--require-hashes --no-deps --only-binary :all:`` (no resolution, no builds, no other file).
  vLLM's image ships ``huggingface_hub`` too but is ~10 GB, a long pull for a system node.
  Installing at start needs egress to PyPI, as the download needs egress to the Hub; pass ``image``
  with the CLI preinstalled (and ``install_hf_cli: False``) where PyPI is not reachable, or to pin
  the whole environment by digest.
- **Placement and hygiene.** No GPU: the pod runs on the system nodes (``SYSTEM_NODE_SELECTOR``,
  no GPU tolerations, so it can never land on a tainted GPU node), as UID 1000 under the
  ``restricted`` Pod Security Standard (EFS access points map every write to their own POSIX owner),
  with requests equal to limits and no service-account token. The Hugging Face token comes from a
  Secret reference (env ``HF_TOKEN``), never a plain value.
- The Job carries no Kueue queue label: Kueue manages only labelled Jobs in team namespaces, and a
  CPU-only download needs no GPU quota.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from gpufleet.components import gpu_pod
from gpufleet.components._k8s import MANAGED_BY, require_dns_label
from gpufleet.components._validate import check_arg_keys, require, require_int_range
from gpufleet.components.gpu_scheduling import SYSTEM_NODE_SELECTOR

TYPE = "gpufleet:model_loader:ModelWeightsLoader"

DEFAULT_IMAGE = "python:3.12.8-slim-bookworm"
"""Python slim image the download runs in (pin a digest in production through ``image``)."""
HF_HUB_VERSION = "2.4.0"
"""``huggingface_hub`` release (the ``hf`` CLI) installed into the pod."""
HF_CLI_LOCK: tuple[str, ...] = (
    # huggingface_hub 2.4.0 and its dependencies as resolved from PyPI for CPython 3.12 on
    # manylinux x86_64 and aarch64 (glibc ≥ 2.28; the default image has 2.36). The two hashes of
    # hf-xet and PyYAML are their x86_64 and aarch64 wheels; all others are pure-Python wheels.
    f"huggingface-hub=={HF_HUB_VERSION} --hash=sha256:42ecfd93ede47bdd333daebbf66a32d7bfe2e18752754fe4d2d4f98a0179d801",
    "anyio==4.16.0 --hash=sha256:c66ae634e0b8228396b801741beb3294326d4b6102f7bba4041c0dfb58c29026",
    "click==8.5.1 --hash=sha256:8bb5376d2006950386f8c6427613334a2acadc5f559cb80e638d00b4df957e37",
    "filelock==4.2.11 --hash=sha256:020e229e4bb9d410fc799c07ddf45fa217cba970278f40b30751d94f309b69e2",
    "fsspec==2026.9.0 --hash=sha256:8dd6e646e99ea382bd85f97a45e6b526a442d79423a7dc673f1e2756d05fcb5f",
    "h11==0.16.0 --hash=sha256:63cf8bbe7522de3bf65932fda1d9c2772064ffb3dae62d55932da54b31cb6c86",
    "hf-xet==1.8.0 --hash=sha256:29dab7c904cd1914a0439c6e1306c12c7497c8bd32290fbe563ebf51ca4b6d6d"
    " --hash=sha256:8800e3444770f2c630b361bc6d5c6ebb770b7830646cf632fbb79d0e5bbc9e7f",
    "httpcore2==2.16.2 --hash=sha256:16051ae2a42f776007543f32de9349a317b23d2cbb4e1456b4bac0e88b87419a",
    "httpx2==2.16.2 --hash=sha256:f05c13aade4c45dbf1c9060647a1058f0acad62398fad96e741269edb33d46f5",
    "idna==3.20 --hash=sha256:ab7ae7122974553370f0bdb919e1a960b2cd1bc1ef0276416d896db81c14582c",
    "packaging==26.3 --hash=sha256:d7193f7c8e4e93f444fde0262bf90af30e16fa0ad0ad44cb553c87339b23cd1c",
    "pyyaml==6.0.3 --hash=sha256:ba1cc08a7ccde2d2ec775841541641e4548226580ab850948cbfda66a1befcdc"
    " --hash=sha256:9149cad251584d5fb4981be1ecde53a1ca46c891a79788c0df828d2f166bda28",
    "tqdm==4.70.1 --hash=sha256:c293e525e6fef9c20e8728fd4612df02a0aa31bb5fe91ecd93e123b1b7bffa73",
    "truststore==0.10.5 --hash=sha256:9aaaedaefaf06d8b206278cf8b5012bc897f485a874503501e12d776df78951c",
    "typing-extensions==4.16.0 --hash=sha256:481caa481374e813c1b176ada14e97f1f67a4539ce9cfeb3f350d78d6370c2e8",
)
"""pip requirement lines of the ``hf`` CLI: every package it imports, each with an exact version and
the SHA-256 of its wheels, installed with ``--require-hashes --no-deps`` so the pod gets exactly these
files or fails (a new release or a swapped file on the index changes nothing). Only valid for
CPython 3.12 on linux x86_64/aarch64, like :data:`DEFAULT_IMAGE`."""
MOUNT = "/mnt/models"
TOOLS = "/tmp/hf-cli"
"""Where pip installs the CLI (an emptyDir: the root filesystem is read-only)."""
REQUIREMENTS_FILE = "/tmp/hf-cli-requirements.txt"
"""Where the pod writes :data:`HF_CLI_LOCK` for pip (hashes are only accepted in a requirements file)."""
HOME = "/home/loader"
COMPONENT_LABEL = {"app.kubernetes.io/component": "model-weights-loader"}
REPLACE_UNREADY = {"pulumi.com/replaceUnready": "true"}
"""pulumi-kubernetes annotation: an update replaces the Job when it is not ``Complete`` (a failed
download is retried by the next ``pulumi up`` instead of failing it again)."""
DEADLINE_MARGIN_SECONDS = 600
"""Pulumi waits this much longer than ``activeDeadlineSeconds`` before it gives up on the Job."""

SCHEMES = ("hf://",)
_HF_REPO = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
_REVISION = re.compile(r"^[\w][\w./-]{0,127}$")
_PATH_PART = re.compile(r"^[\w][\w.-]*$")


class HfTokenSecret(TypedDict):
    """A key of a Kubernetes Secret holding a Hugging Face token (never the token itself)."""

    name: str
    """Secret name, in the loader's namespace. Required."""
    key: NotRequired[str]
    """Key in the Secret. Default ``token``."""


class ModelWeightsLoaderArgs(TypedDict):
    """Inputs of :class:`ModelWeightsLoader`."""

    namespace: str
    """Namespace of the claim (and the Job). Required."""
    claim_name: str
    """The ``ReadWriteMany`` weights claim to fill. Required."""
    path: str
    """Directory inside the claim, e.g. ``meta-llama/Meta-Llama-3-8B-Instruct``. Required."""
    source: str
    """``hf://<org>/<model>[@<revision>]``: a Hugging Face Hub repository and optional branch, tag or
    commit (pin a commit for reproducible weights). Required."""
    job_name: NotRequired[str]
    """Kubernetes name of the Job (≤ 63 characters). Default: the resource name."""
    hf_token_secret: NotRequired[HfTokenSecret]
    """Hugging Face token (gated models) as env ``HF_TOKEN`` from a Secret. Default none."""
    image: NotRequired[str]
    """Image the download runs in. Default :data:`DEFAULT_IMAGE`."""
    install_hf_cli: NotRequired[bool]
    """pip-install the ``hf`` CLI (:data:`HF_CLI_LOCK`, hash-checked) before downloading; false when
    ``image`` already ships the ``hf`` CLI (the lock fits CPython 3.12 images only). Default true."""
    cpu: NotRequired[str]
    """CPU (request = limit). Default ``"1"``."""
    memory: NotRequired[str]
    """Memory (request = limit). Default ``"2Gi"``."""
    active_deadline_seconds: NotRequired[int]
    """Longest the download may take, retries included. Default 7200."""
    backoff_limit: NotRequired[int]
    """Failed pods retried before the Job fails. Default 3."""


@dataclass(frozen=True)
class HfSource:
    """A parsed ``hf://`` source."""

    repo: str
    revision: str


def parse_source(source: Any, field: str = "source", *, name: str = TYPE) -> HfSource:
    """``hf://<org>/<model>[@<revision>]`` → :class:`HfSource` (revision ``main`` when omitted);
    ``ValueError`` naming ``field`` otherwise."""
    if not isinstance(source, str) or not source.startswith(SCHEMES):
        raise ValueError(f"{name}: {field} must be hf://<org>/<model>[@<revision>], got {source!r}")
    repo, _, revision = source[len("hf://"):].partition("@")
    if not _HF_REPO.match(repo):
        raise ValueError(f"{name}: {field} must name a Hugging Face repository as hf://<org>/<model>, got {source!r}")
    if "@" in source and not (_REVISION.match(revision) and ".." not in revision):
        raise ValueError(f"{name}: {field} has an invalid revision after '@': {source!r}")
    return HfSource(repo, revision or "main")


def check_path(path: Any, field: str = "path", *, name: str = TYPE) -> str:
    """A relative directory inside the claim: no ``..``, no absolute path, not the claim's root."""
    parts = path.strip("/").split("/") if isinstance(path, str) else []
    if not parts or parts == [""] or not all(_PATH_PART.match(p) and p not in (".", "..") for p in parts):
        raise ValueError(f"{name}: {field} must be a relative directory inside the claim like "
                         f"'org/model', got {path!r}")
    return "/".join(parts)


def job_name_for(*parts: str) -> str:
    """``<parts>-weights`` as a Job name of at most 63 characters (long names end in a short hash)."""
    full = "-".join([*parts, "weights"])
    if len(full) <= 63:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:6]
    return f"{full[:56].rstrip('-')}-{digest}"


INSTALL_COMMAND = (
    'pip install --quiet --no-cache-dir --disable-pip-version-check --require-hashes --no-deps '
    '--only-binary :all: --target "$HF_CLI_DIR" --requirement "$HF_CLI_REQUIREMENTS_FILE"'
)
"""The pip command of the pod: exactly the lines of :data:`HF_CLI_LOCK`, hash-checked, no
dependency resolution, wheels only."""
INSTALL_SCRIPT = (
    'printf \'%s\\n\' "$HF_CLI_REQUIREMENTS" > "$HF_CLI_REQUIREMENTS_FILE"\n'
    + INSTALL_COMMAND + "\n"
    'export PYTHONPATH="$HF_CLI_DIR" PATH="$HF_CLI_DIR/bin:$PATH"\n'
)
_SCRIPT_DOWNLOAD = 'exec hf download "$HF_REPO" --revision "$HF_REVISION" --local-dir "$TARGET_DIR"\n'


def loader_job_spec(args: ModelWeightsLoaderArgs, *, name: str = TYPE) -> dict[str, Any]:
    """Check ``args`` and build the Job ``spec`` (plain data). Values reach the script as environment
    variables, never spliced into the shell text."""
    require_dns_label(require(args, "claim_name", str, name=name), "claim_name", name=name, what="claim name")
    path = check_path(require(args, "path", str, name=name), name=name)
    source = parse_source(require(args, "source", str, name=name), name=name)
    image = args.get("image", DEFAULT_IMAGE)
    if not isinstance(image, str) or not re.fullmatch(r"[a-z0-9][\w./-]*(:[\w.-]+)?(@sha256:[0-9a-f]{64})?", image):
        raise ValueError(f"{name}: image must be an image reference like {DEFAULT_IMAGE!r}, got {image!r}")
    install = args.get("install_hf_cli", True)
    if not isinstance(install, bool):
        raise TypeError(f"{name}: install_hf_cli must be bool")
    cpu = gpu_pod.check_quantity(args.get("cpu", "1"), "cpu", name=name)
    memory = gpu_pod.check_quantity(args.get("memory", "2Gi"), "memory", name=name)
    deadline = require_int_range(args.get("active_deadline_seconds", 7200), "active_deadline_seconds",
                                 60, 7 * 24 * 3600, name=name)
    backoff = require_int_range(args.get("backoff_limit", 3), "backoff_limit", 0, 20, name=name)
    token = args.get("hf_token_secret")
    if token is not None and (not isinstance(token, Mapping) or not isinstance(token.get("name"), str)
                              or not token["name"]):
        raise ValueError(f"{name}: hf_token_secret.name is required (a Secret reference, never a token)")

    env: list[dict[str, Any]] = [
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
        {"name": "HF_HUB_DISABLE_PROGRESS_BARS", "value": "1"},
        {"name": "HF_CLI_DIR", "value": TOOLS},
        {"name": "HF_REPO", "value": source.repo},
        {"name": "HF_REVISION", "value": source.revision},
        {"name": "TARGET_DIR", "value": f"{MOUNT}/{path}"},
    ]
    if install:
        env += install_env()
    if token is not None:
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": token["name"], "key": token.get("key", "token")}}})
    script = "set -eu\n" + (INSTALL_SCRIPT if install else "") + _SCRIPT_DOWNLOAD
    return hardened_job_spec(args["claim_name"], image, script, env, cpu=cpu, memory=memory, deadline=deadline,
                             backoff=backoff)


def install_env() -> list[dict[str, Any]]:
    """Environment of :data:`INSTALL_SCRIPT`: the lock lines and where pip reads them from."""
    return [{"name": "HF_CLI_REQUIREMENTS", "value": "\n".join(HF_CLI_LOCK)},
            {"name": "HF_CLI_REQUIREMENTS_FILE", "value": REQUIREMENTS_FILE}]


def hardened_job_spec(claim_name: str, image: str, script: str, env: list[dict[str, Any]], *, cpu: str,
                      memory: str, deadline: int, backoff: int, container_name: str = "download",
                      labels: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """The Job ``spec`` of a pod that writes into the claim ``claim_name`` (mounted read-write at
    :data:`MOUNT`) with ``/bin/sh -c script``: on the system nodes, no GPU toleration, restricted
    security contexts with a read-only root filesystem, requests = limits, no service-account token,
    a writable ``$HOME`` and ``/tmp``, bounded by ``deadline`` and ``backoff``. Values reach
    ``script`` only through ``env`` (never spliced into the shell text)."""
    amounts = {"cpu": cpu, "memory": memory}
    container = {
        "name": container_name,
        "image": image,
        "command": ["/bin/sh", "-c", script],
        "env": [{"name": "HOME", "value": HOME}, {"name": "HF_HOME", "value": f"{HOME}/.cache/huggingface"},
                *env],
        "resources": {"requests": dict(amounts), "limits": dict(amounts)},
        "securityContext": {**gpu_pod.container_security_context(), "readOnlyRootFilesystem": True},
        "volumeMounts": [
            {"name": "model-weights", "mountPath": MOUNT},
            {"name": "home", "mountPath": HOME},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "backoffLimit": backoff,
        "activeDeadlineSeconds": deadline,
        "template": {
            "metadata": {"labels": {**MANAGED_BY, **(labels if labels is not None else COMPONENT_LABEL)}},
            "spec": {
                "restartPolicy": "Never",
                "nodeSelector": dict(SYSTEM_NODE_SELECTOR),
                "securityContext": gpu_pod.pod_security_context(),
                "automountServiceAccountToken": False,
                "containers": [container],
                "volumes": [
                    {"name": "model-weights", "persistentVolumeClaim": {"claimName": claim_name}},
                    {"name": "home", "emptyDir": {}},
                    {"name": "tmp", "emptyDir": {}},
                ],
            },
        },
    }


class ModelWeightsLoader(pulumi.ComponentResource):
    """A Job that downloads ``source`` into ``<claim>/<path>`` (see the module docstring). Make
    consumers depend on this component: they are then created after the download completed."""

    job_name: str

    def __init__(self, name: str, args: ModelWeightsLoaderArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, ModelWeightsLoaderArgs, name=TYPE)
        namespace = require_dns_label(require(args, "namespace", str, name=TYPE), "namespace", name=TYPE)
        job_name = require_dns_label(args.get("job_name", name), "job_name", name=TYPE, what="Job name")
        spec = loader_job_spec(args)
        super().__init__(TYPE, name, {}, opts)
        timeout = f"{(spec['activeDeadlineSeconds'] + DEADLINE_MARGIN_SECONDS) // 60}m"
        k8s.batch.v1.Job(
            f"{name}-job",
            metadata={"name": job_name, "namespace": namespace, "labels": {**MANAGED_BY, **COMPONENT_LABEL},
                      "annotations": dict(REPLACE_UNREADY)},
            spec=spec,
            opts=pulumi.ResourceOptions(
                parent=self,
                delete_before_replace=True,
                custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout),
            ),
        )
        self.job_name = job_name
        self.register_outputs({"jobName": job_name})
