"""What LeaderWorkerSet v0.10.0's validating webhook (``vleaderworkerset.kb.io``) rejects on create.

Ported from ``pkg/webhooks/leaderworkerset_webhook.go`` (``Default``, ``generalValidate``,
``validatePositiveIntOrPercent``, ``isNotMoreThan100Percent``, ``validateUpdateSubGroupPolicy``); the
code index holds it at commit ``6263137f`` (rolling-update defaults ``maxUnavailable: 1``,
``maxSurge: 0``, ``partition: 0``, as at v0.10.0). The mutating webhook's defaults are applied first,
as the API server runs it before the validating one.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

from gpufleet.infra.validation.admission._k8s import aggregate, annotations_of, invalid, is_dns1035_label, mapping

SOURCE = "LeaderWorkerSet admission webhook"
SUBGROUP_EXCLUSIVE_ANNOTATION = "leaderworkerset.sigs.k8s.io/subgroup-exclusive-topology"
_MAX_INT32 = 2**31 - 1
_PERCENT = re.compile(r"^[0-9]+%$")  # utilvalidation.IsValidPercent


def _int_or_percent(value: Any, path: str) -> list[str]:
    """validatePositiveIntOrPercent + isNotMoreThan100Percent."""
    if isinstance(value, str):
        if not _PERCENT.match(value):
            return [invalid(path, value, "a valid percent string must be a numeric string followed by an ending '%' "
                                         "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")]
        if int(value[:-1]) > 100:
            return [invalid(path, value, "must not be greater than 100%")]
        return []
    if isinstance(value, int) and not isinstance(value, bool):
        return [invalid(path, value, "must be greater than or equal to 0")] if value < 0 else []
    return [invalid(path, value, "must be an integer or percentage (e.g '5%')")]


def _scaled(value: Any, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(value, str) and _PERCENT.match(value):
        share = int(value[:-1]) * total / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(value) if isinstance(value, int) else 0


def validate(lws: Mapping[str, Any]) -> list[str]:
    """leaderworkerset_webhook.go generalValidate (after Default)."""
    spec = mapping(lws.get("spec"))
    template = mapping(spec.get("leaderWorkerTemplate"))
    errors: list[str] = []
    name = str(mapping(lws.get("metadata")).get("name") or "")
    # the name is that of the headless Service: a DNS-1035 label
    errors += [invalid("metadata.name", name, e) for e in is_dns1035_label(name)]
    replicas = spec.get("replicas", 1)
    size = template.get("size", 1)
    if isinstance(replicas, int) and replicas < 0:
        errors.append(invalid("spec.replicas", replicas, "replicas must be equal or greater than 0"))
    if isinstance(size, int) and size < 1:
        errors.append(invalid("spec.leaderWorkerTemplate.size", size, "size must be equal or greater than 1"))
    if isinstance(replicas, int) and isinstance(size, int) and replicas * size > _MAX_INT32:
        errors.append(invalid("spec.replicas", replicas,
                              f"the product of replicas and worker replicas must not exceed {_MAX_INT32}"))
    strategy = mapping(spec.get("rolloutStrategy"))
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        rolling = {"maxUnavailable": 1, "maxSurge": 0, "partition": 0, **mapping(strategy.get("rollingUpdateConfiguration"))}
        base = "spec.rolloutStrategy.rollingUpdateConfiguration"
        errors += _int_or_percent(rolling["maxUnavailable"], f"{base}.maxUnavailable")
        errors += _int_or_percent(rolling["maxSurge"], f"{base}.maxSurge")
        if isinstance(rolling["partition"], int) and rolling["partition"] < 0:
            errors.append(invalid(f"{base}.partition", rolling["partition"], "must be greater than or equal to 0"))
        total = replicas if isinstance(replicas, int) else 1
        if _scaled(rolling["maxUnavailable"], total, False) == 0 and _scaled(rolling["maxSurge"], total, True) == 0 \
                and total != 0:
            errors.append(invalid(f"{base}.maxUnavailable", rolling["maxUnavailable"], "must not be 0 when `maxSurge` is 0"))
    policy = template.get("subGroupPolicy")
    if isinstance(policy, Mapping) and isinstance(size, int):
        sub = policy.get("subGroupSize")
        path = "spec.leaderWorkerTemplate.SubGroupPolicy.subGroupSize"
        if isinstance(sub, int):
            if sub < 1:
                errors.append(invalid(path, sub, "subGroupSize must be equal or greater than 1"))
            elif size % sub != 0 and (size - 1) % sub != 0:
                errors.append(invalid(path, sub, "size or size - 1 must be divisible by subGroupSize"))
            if sub > size:
                errors.append(invalid(path, sub, "subGroupSize cannot be larger than size"))
            if policy.get("subGroupPolicyType") == "LeaderExcluded" and sub >= 1 and (size - 1) % sub != 0:
                errors.append(invalid(path, sub, "size-1 must be divisible by subGroupSize when using LeaderExcluded"))
    elif SUBGROUP_EXCLUSIVE_ANNOTATION in annotations_of(lws):
        errors.append(invalid(f"metadata.annotations.{SUBGROUP_EXCLUSIVE_ANNOTATION}",
                              annotations_of(lws)[SUBGROUP_EXCLUSIVE_ANNOTATION],
                              "cannot have subgroup-exclusive-topology without subGroupSize set"))
    return [f"{SOURCE}: {aggregate(errors)}"] if errors else []
