"""``Pulumi.<stack>.yaml`` → the flat string map the Pulumi engine hands a program.

The Pulumi CLI reads a stack file's ``config`` section, qualifies bare keys with the project name,
JSON-encodes objects and lists, and decrypts ``secure:`` values; a program then reads the map through
``pulumi.Config``. ``gpufleet plan`` builds the same map from the file (a ``secure:`` value becomes
:data:`~gpufleet.infra.config.SECRET_STAND_IN`, marked secret) and hands it to the same program;
:mod:`gpufleet.infra.config` validates it.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from gpufleet.infra.config import SECRET_STAND_IN, ConfigError
from gpufleet.infra.config_keys import NAMESPACE, STACK_FILE_KEYS, suggestion


def config_map_from_stack_file(document: Mapping[str, Any]) -> dict[str, str]:
    """``Pulumi.<stack>.yaml`` content → the flat string map the engine hands a program (raises
    :class:`ConfigError` for an unknown top-level key, a config that is not a mapping, or a key set
    both bare and qualified)."""
    document = document or {}
    problems = []
    for key in document:
        if key not in STACK_FILE_KEYS:
            close = suggestion(str(key), STACK_FILE_KEYS)
            hint = f"; did you mean {close}?" if close else f" (a stack file holds {', '.join(STACK_FILE_KEYS)})"
            problems.append(f"{json.dumps(str(key))[1:-1]}: unknown top-level key of a stack file{hint}")
    if problems:
        raise ConfigError(problems)
    config = document.get("config") or {}
    if not isinstance(config, Mapping):
        raise ConfigError(["config: must be a mapping of namespace:key to value"])
    flat: dict[str, str] = {}
    for key, value in config.items():
        if not isinstance(key, str):
            raise ConfigError([f"config: key {key!r} is a {type(key).__name__}: config keys are text (namespace:name)"])
        if ":" not in key:
            # The CLI qualifies bare keys with the project name.
            key = f"{NAMESPACE}:{key}"
        if key in flat:
            raise ConfigError([f"{key}: set twice (once as {key.partition(':')[2]}, once as {key}): the Pulumi CLI "
                               "refuses this"])
        if _is_secure(value):
            # Only the Pulumi CLI can decrypt it; the offline plan carries a stand-in, as a secret.
            flat[key] = SECRET_STAND_IN
        elif isinstance(value, bool):
            flat[key] = "true" if value else "false"
        elif isinstance(value, (Mapping, list)):
            flat[key] = json.dumps(value)
        elif value is None:
            raise ConfigError([f"{key}: no value (null): give it one or remove the key"])
        else:
            flat[key] = str(value)
    return flat


def secure_keys_of_stack_file(document: Mapping[str, Any]) -> list[str]:
    """The keys of ``Pulumi.<stack>.yaml`` whose values are encrypted (``secure:``), qualified."""
    config = (document or {}).get("config") or {}
    if not isinstance(config, Mapping):
        return []
    return [str(key) if ":" in str(key) else f"{NAMESPACE}:{key}" for key, value in config.items() if _is_secure(value)]


def _is_secure(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"secure"}
