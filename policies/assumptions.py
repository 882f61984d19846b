"""What the cluster provides beyond the resources under check.

Cross-resource rules judge only what they see: checked one chart or app directory at a time, the DCGM
exporter, the namespace's ResourceQuota, the PodDisruptionBudgets or the cluster's NodePools usually live
elsewhere. An *assumption* says so (``gpufleet check --assume dcgm-exporter,node-pools=external``, the
``assume`` key of a check config, the ``assume`` setting of a pack policy), and the rules that read it
(:attr:`Assumption.rules`) stop judging what they cannot see.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence


@dataclass(frozen=True)
class Assumption:
    """A fact about the cluster the checked resources do not show: cross-resource rules judge only
    what they see, so a chart or an app directory checked on its own needs to say what lives
    elsewhere (``gpufleet check --assume``, the ``assume`` config key)."""

    name: str
    meaning: str
    """What the user asserts about the cluster."""
    effect: str
    """What the affected rules do differently."""
    rules: tuple[str, ...]
    """Rules that read it."""
    values: tuple[str, ...] = ()
    """Allowed values of ``name=value`` (the first is the default); empty for a plain flag."""

    @property
    def tokens(self) -> tuple[str, ...]:
        """How it is written: ``name`` or ``name=value`` for each value."""
        return tuple(f"{self.name}={value}" for value in self.values) if self.values else (self.name,)


ASSUMPTIONS: tuple[Assumption, ...] = (
    Assumption(
        name="dcgm-exporter",
        meaning="the cluster runs NVIDIA's DCGM exporter (GPU Operator or a dcgm-exporter release) installed "
                "outside the checked resources",
        effect="gpu-dcgm-exporter-present judges nothing",
        rules=("gpu-dcgm-exporter-present",),
    ),
    Assumption(
        name="gpu-quota",
        meaning="every namespace the checked GPU workloads run in has a ResourceQuota capping its GPU requests, "
                "defined outside the checked resources",
        effect="gpu-namespace-quota judges nothing",
        rules=("gpu-namespace-quota",),
    ),
    Assumption(
        name="disruption-budgets",
        meaning="the PodDisruptionBudgets of the checked GPU serving workloads are defined outside the checked "
                "resources",
        effect="gpu-pdb-required judges nothing",
        rules=("gpu-pdb-required",),
    ),
    Assumption(
        name="node-pools",
        meaning="input (default): the checked resources hold every Karpenter NodePool (and NodeOverlay) of the "
                "cluster; external: the cluster has NodePools outside them",
        effect="external: gpu-workload-schedulable judges nothing (a workload that fits no checked pool may fit "
               "another one)",
        rules=("gpu-workload-schedulable",),
        values=("input", "external"),
    ),
)
"""Every assumption ``--assume`` and the ``assume`` config key take."""

ASSUMPTION_TOKENS: tuple[str, ...] = tuple(token for a in ASSUMPTIONS for token in a.tokens)
"""Every valid way to write an assumption."""


class UnknownNameError(ValueError):
    """A name (rule, assumption, config key) that is not one gpufleet knows; the message names it and
    the nearest valid one."""

    def __init__(self, what: str, name: str, valid: Sequence[str], where: str = ""):
        self.what, self.name, self.nearest = what, name, nearest_name(name, valid)
        hint = f" (did you mean {self.nearest!r}?)" if self.nearest else ""
        super().__init__(f"{where}{': ' if where else ''}unknown {what} {name!r}{hint}")


def nearest_name(name: str, valid: Sequence[str]) -> Optional[str]:
    """The valid name most like ``name`` (None when there is none to offer)."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.0)
    return close[0] if close else None


def parse_assumptions(tokens: Iterable[Any], where: str = "assume") -> frozenset[str]:
    """``["dcgm-exporter", "node-pools=external"]`` (items may hold comma-separated lists) → the set of
    tokens; ``node-pools=input`` (a default) is dropped. Raises :class:`UnknownNameError` naming an
    unknown assumption and the nearest valid one, ValueError for a malformed item."""
    found: set[str] = set()
    by_name = {a.name: a for a in ASSUMPTIONS}
    for raw in tokens:
        if not isinstance(raw, str):
            raise ValueError(f"{where}: expected assumption names (strings), not {raw!r}")
        for token in (t.strip() for t in raw.split(",")):
            if not token:
                continue
            name, _, value = token.partition("=")
            assumption = by_name.get(name.strip())
            if assumption is None:
                raise UnknownNameError("assumption", token, ASSUMPTION_TOKENS, where)
            value = value.strip()
            if assumption.values:
                if value not in assumption.values:
                    raise UnknownNameError(f"value for {assumption.name}", value or "(none)",
                                           assumption.values, where)
                if value != assumption.values[0]:
                    found.add(f"{assumption.name}={value}")
            elif "=" in token:
                raise ValueError(f"{where}: {assumption.name} takes no value (write it alone), not {token!r}")
            else:
                found.add(assumption.name)
    return frozenset(found)
