"""Which keys a stack may set, and how a wrong one is named: the config namespaces besides
``gpufleet``, the top-level keys of a stack file, and "did you mean" suggestions for misspelt keys
(used by :mod:`gpufleet.infra.config`)."""

from __future__ import annotations

import difflib
import json
import typing
from typing import Any, Collection, Optional

from gpufleet.infra.areas.base import ConfigModel

NAMESPACE = "gpufleet"

PULUMI_NAMESPACES: tuple[str, ...] = (
    "aws", "aws-native", "awsx", "eks", "kubernetes", "pulumi", "random", "tls", "command", "std", "cloudinit",
)
"""Config namespaces other than ``gpufleet`` a stack may set: Pulumi's own (``pulumi:``, e.g.
``pulumi:template``) and those of the provider packages this program uses or that Pulumi projects on
AWS commonly add (``aws:region``, ``kubernetes:context``, ...). gpufleet does not read them; any other
namespace is refused, since a misspelt ``gpufleet`` would silently drop its keys."""

STACK_FILE_KEYS: tuple[str, ...] = ("config", "secretsprovider", "encryptedkey", "encryptionsalt", "environment")
"""Top-level keys of ``Pulumi.<stack>.yaml`` the Pulumi CLI knows."""


def model_keys(model: Any) -> list[str]:
    """The YAML keys (aliases) of a config model."""
    return [field.alias or name for name, field in model.model_fields.items()]


def suggestion(word: str, options: Collection[str]) -> Optional[str]:
    """The option ``word`` is most likely a misspelling of, if any is close."""
    found = difflib.get_close_matches(word.lower(), {o.lower(): o for o in options}, n=1, cutoff=0.75)
    if not found:
        return None
    return next(o for o in options if o.lower() == found[0])


def keys_at(root: Any, loc: tuple[Any, ...]) -> list[str]:
    """The YAML keys of the config model at ``loc`` below the model ``root`` (aliases and list
    indexes, as pydantic reports them), for "did you mean"; empty when ``loc`` leads to no model."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        fields = {field.alias or name: field for name, field in model.model_fields.items()}
        if part not in fields:
            return []
        model = _model_in(fields[part].annotation)
        if model is None:
            return []
    return model_keys(model)


def _model_in(annotation: Any) -> Any:
    """The config model class an annotation holds (``X``, ``Optional[X]``, ``tuple[X, ...]``)."""
    if isinstance(annotation, type) and issubclass(annotation, ConfigModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def namespace_problems(keys: Collection[str], gpufleet_keys: Collection[str], project: Optional[str] = None) -> list[str]:
    """Keys of the config map that gpufleet would silently drop: an empty namespace or key name, a
    namespace close to ``gpufleet`` or a key of another namespace that is a gpufleet key (refused
    with "did you mean"), or a namespace neither gpufleet's, the ``project``'s (a user's program
    reads its own keys) nor in :data:`PULUMI_NAMESPACES`."""
    problems: list[str] = []
    for key in keys:
        namespace, colon, name = key.partition(":")
        shown = json.dumps(key)[1:-1]
        if not colon or not namespace or not name:
            problems.append(f"{shown}: a config key is <namespace>:<name>, with neither part empty")
            continue
        if namespace in (NAMESPACE, project) or namespace in PULUMI_NAMESPACES:
            continue
        close_namespace = suggestion(namespace.replace("-", "").replace("_", ""), [NAMESPACE])
        close_key = suggestion(name, gpufleet_keys)
        if close_namespace or close_key:
            target = f"{NAMESPACE}:{close_key or name}"
            problems.append(f"{shown}: unknown config namespace {namespace!r}; did you mean {target}? (keys outside "
                            f"{NAMESPACE}: are not read by gpufleet)")
        else:
            problems.append(f"{shown}: unknown config namespace {namespace!r}: gpufleet reads {NAMESPACE}:*, and only "
                            f"Pulumi's and its providers' namespaces may appear besides ({', '.join(PULUMI_NAMESPACES)})")
    return problems
