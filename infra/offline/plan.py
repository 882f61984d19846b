"""``gpufleet plan``: run a stack's program offline and describe what ``pulumi up`` would create."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from gpufleet.infra.config import ConfigError, StackConfig, parse_stack_config, remembered_config
from gpufleet.infra.offline.engine import Recording, plain, run_project_main
from gpufleet.infra.offline.fakes import FakeCloud
from gpufleet.infra.stack_file import config_map_from_stack_file, secure_keys_of_stack_file
from gpufleet.infra.yaml_input import YamlInputError, load_single, read_file


PLAN_KEYS = ("gpufleet:environment", "gpufleet:region", "gpufleet:kubernetesVersion")
"""The stack keys ``gpufleet plan`` needs for any program, gpufleet's own or a user's."""


class PlanInputError(Exception):
    """The stack cannot be planned as given (unknown stack, unreadable file, invalid config).
    ``problems`` holds one message per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Project:
    """A Pulumi project on disk: where its program and stack files are."""

    root: Path
    name: str
    main_dir: Path
    stacks_dir: Path
    _validated: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    """stack → (stack file version, config map, its StackConfig): the CLI and ``plan_stack`` ask."""

    @classmethod
    def find(cls, start: Optional[Path] = None) -> "Project":
        """The project whose ``Pulumi.yaml`` is in ``start`` (default: the working directory) or above."""
        here = (start or Path.cwd()).resolve()
        for directory in (here, *here.parents):
            candidate = directory / "Pulumi.yaml"
            if candidate.is_file():
                document = _read_yaml(candidate)
                return cls(
                    root=directory,
                    name=str(document.get("name", directory.name)),
                    main_dir=directory / str(document.get("main", ".")),
                    stacks_dir=directory / str(document.get("stackConfigDir", ".")),
                )
        raise PlanInputError([f"no Pulumi.yaml in {here} or any parent directory: run gpufleet from the project directory"])

    def stacks(self) -> list[str]:
        return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in self.stacks_dir.glob("Pulumi.*.yaml"))

    def stack_config(self, stack: str) -> dict[str, str]:
        """The engine config map of ``stack``, validated (raises :class:`PlanInputError`)."""
        return self.validated_config(stack)[0]

    def validated_config(self, stack: str) -> tuple[dict[str, str], StackConfig]:
        """(the engine config map of ``stack``, its :class:`StackConfig`), validated once per version
        of the stack file (raises :class:`PlanInputError`)."""
        path = self.stacks_dir / f"Pulumi.{stack}.yaml"
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", stack) or not path.is_file():
            known = ", ".join(self.stacks()) or "none"
            raise PlanInputError([f"unknown stack {stack!r}: no {path.relative_to(self.root)} (stacks here: {known})"])
        stat = path.stat()
        version = (stat.st_mtime_ns, stat.st_size)
        known_config = self._validated.get(stack)
        if known_config is not None and known_config[0] == version:
            return dict(known_config[1]), known_config[2]
        shown = str(path.relative_to(self.root))
        document = self._qualified(_read_yaml(path, shown, stack_file=True), shown)
        try:
            config = config_map_from_stack_file(document)
            parsed = parse_stack_config(config, secret_keys=secure_keys_of_stack_file(document), project=self.name)
        except ConfigError as error:
            problems = [f"{shown}: {p}" for p in error.problems]
            missing = [key for key in PLAN_KEYS if any(p.startswith(f"{key}: required") for p in error.problems)]
            if missing:
                problems.append(
                    f"gpufleet plan needs {', '.join(PLAN_KEYS)} in every stack it plans, also for a program "
                    "that does not read them: the environment chooses the policy level (prod: production rules "
                    "are mandatory), the region is the one the offline AWS answers come from, and the "
                    f"Kubernetes version picks the schemas objects are checked against. Add them to "
                    f"{shown} under config:"
                )
            raise PlanInputError(problems) from None
        self._validated[stack] = (version, dict(config), parsed)
        return config, parsed

    def secret_keys(self, stack: str) -> list[str]:
        """The keys of ``stack`` whose values are encrypted: the engine marks them secret."""
        path = self.stacks_dir / f"Pulumi.{stack}.yaml"
        shown = str(path.relative_to(self.root))
        return secure_keys_of_stack_file(self._qualified(_read_yaml(path, shown, stack_file=True), shown))

    def _qualified(self, document: dict[str, Any], shown: str) -> dict[str, Any]:
        """Bare config keys qualified with the project name, as the Pulumi CLI qualifies them (a user's
        program ``myml`` reads ``replicas:`` as ``myml:replicas``); a key set both bare and qualified
        is refused, as the Pulumi CLI refuses it."""
        config = document.get("config")
        if not isinstance(config, dict):
            return document
        qualified: dict[Any, Any] = {}
        for key, value in config.items():
            name = key if not isinstance(key, str) or ":" in key else f"{self.name}:{key}"
            if name in qualified:
                raise PlanInputError([f"{shown}: {name}: set twice (once as {key}, once as {name}): the Pulumi CLI "
                                      "refuses this"])
            qualified[name] = value
        return {**document, "config": qualified}


def _read_yaml(path: Path, shown: Optional[str] = None, *, stack_file: bool = False) -> dict[str, Any]:
    """One YAML mapping from ``path``, read by :mod:`gpufleet.infra.yaml_input` (size limit, UTF-8,
    no duplicate keys, aliases within budget, plain tags only, no unquoted dates); problems name
    ``shown`` (default ``path``) with the line and, in a stack file, the config key path."""
    where = shown or str(path)
    try:
        document = load_single(read_file(path, shown=where), where, dates=False, strip_root=stack_file)
    except YamlInputError as error:
        raise PlanInputError(error.problems) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise PlanInputError([f"{where}: expected a YAML mapping at the top level, found {type(document).__name__}"])
    return document


@dataclass
class Plan:
    """The result of planning one stack."""

    stack: str
    kubernetes_version: str
    recording: Recording
    schema_errors: list[str]
    schema_note: str
    admission_errors: list[str] = field(default_factory=list)
    """``the API server would reject <Kind>/<name>: <reason>``, one per object a pinned controller's
    validating webhook would refuse (see :mod:`gpufleet.infra.validation.admission`)."""

    def document(self) -> dict[str, Any]:
        """The ``plan.json`` document."""
        return {
            "stack": self.stack,
            "resources": [
                {
                    "urn": r.urn,
                    "type": r.type,
                    "name": r.name,
                    "parent": r.parent,
                    "protect": r.protect,
                    "dependencies": sorted(r.dependencies),
                    "inputs": plain(r.inputs),
                }
                # Registration order depends on thread scheduling; URN order does not.
                for r in sorted(self.recording.resources, key=lambda r: r.urn)
            ],
            "outputs": plain(self.recording.stack_outputs),
        }

    def manifests(self) -> dict[str, dict[str, Any]]:
        """Relative path (``<namespace or _cluster>/<Kind>-<name>.yaml``) → Kubernetes object."""
        files: dict[str, dict[str, Any]] = {}
        for resource in sorted(self.recording.kubernetes_objects(), key=lambda r: r.urn):
            manifest = resource.manifest()
            metadata = manifest.get("metadata") or {}
            namespace = metadata.get("namespace") or "_cluster"
            name = metadata.get("name") or resource.name
            files[f"{namespace}/{manifest['kind']}-{name}.yaml"] = manifest
        return files

    def write(self, out: Path) -> None:
        (out / "manifests").mkdir(parents=True, exist_ok=True)
        (out / "plan.json").write_text(json.dumps(self.document(), indent=2, sort_keys=False) + "\n")
        for relative, manifest in self.manifests().items():
            target = out / "manifests" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(yaml.safe_dump(manifest, sort_keys=False))


def plan_stack(project: Project, stack: str) -> Plan:
    """Run ``project``'s program for ``stack`` under the offline engine, then check its objects against their
    schemas and the pinned controllers' admission webhooks."""
    config, stack_config = project.validated_config(stack)
    secret_keys = project.secret_keys(stack)
    with remembered_config(config, secret_keys, project.name, stack_config):  # the program reads it too
        recording = run_project_main(
            project.main_dir,
            project=project.name,
            stack=stack,
            config=config,
            secret_keys=secret_keys,
            cloud=FakeCloud(region=stack_config.region),
        )
    errors, note, rejections = _check_schemas(recording, stack_config.kubernetes_version)
    return Plan(stack, stack_config.kubernetes_version, recording, errors, note, rejections)


def _check_schemas(recording: Recording, kubernetes_version: str) -> tuple[list[str], str, list[str]]:
    """(schema errors, a note on what was checked, admission rejections). Like the API server, an
    object's admission webhooks only see it when it passes its schema."""
    from gpufleet.infra.upstream_cache import missing_schemas_hint
    from gpufleet.infra.validation.admission import admission_problems, rejection_message
    from gpufleet.infra.validation.schema import ManifestValidator, upstream_dir

    objects = recording.kubernetes_objects()
    upstream = upstream_dir()
    crd_paths = [upstream / "crds"] if upstream else []
    validator = ManifestValidator(kubernetes_version, crd_paths)
    errors: list[str] = []
    rejections: list[str] = []
    unchecked: list[str] = []
    for resource in objects:
        manifest = resource.manifest()
        schema_errors: list[str] = []
        if validator.knows(manifest["apiVersion"], manifest["kind"]) or upstream:
            schema_errors = validator.validate(manifest)
        else:
            unchecked.append(manifest["kind"])
        errors += [f"{manifest['kind']}/{(manifest.get('metadata') or {}).get('name')}: {e}" for e in schema_errors]
        if not schema_errors:
            rejections += [rejection_message(manifest, reason) for reason in admission_problems(manifest)]
    note = f"{len(objects) - len(unchecked)} of {len(objects)} Kubernetes objects schema-checked (Kubernetes {kubernetes_version}"
    note += ", upstream CRDs)" if upstream else f"; {missing_schemas_hint(unchecked)})" if unchecked else ")"
    note += "; admission webhooks of KServe, KubeRay, Kueue and LeaderWorkerSet checked; DRA claims validated"
    validator.save_cel_outcomes()
    return errors, note, rejections


def _read_once(read: Any) -> Any:
    """``read(path)`` parsed once per file version in this process, a fresh copy per call: a plan reads
    its stack file for the config, for the secret keys and for the CLI's policy settings."""
    import copy

    parsed: dict[tuple[Any, ...], Any] = {}

    def reader(path: Path, *args: Any, **kwargs: Any) -> Any:
        try:
            stat = path.stat()
        except OSError:
            return read(path, *args, **kwargs)  # the reader names the problem
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, args, tuple(sorted(kwargs.items())))
        if key not in parsed:
            if len(parsed) >= 8:
                parsed.clear()
            parsed[key] = read(path, *args, **kwargs)
        return copy.deepcopy(parsed[key])

    return reader


_read_yaml = _read_once(_read_yaml)
