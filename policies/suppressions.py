"""Inline suppression of findings on one object, for ``gpufleet check``.

An object names the rules it is exempt from and why in two annotations::

    metadata:
      annotations:
        gpufleet.io/ignore: "gpu-shm-volume,gpu-probes-generous"
        gpufleet.io/ignore-reason: "batch scorer: no DataLoader workers, no probes (exits when done)"

Findings of those rules on that object are *suppressed*: still reported (text, JSON, SARIF
``suppressions``, JUnit ``skipped``) with the reason, but they no longer fail the check. A suppression
without a reason still suppresses, and the object gets the advisory finding of
``gpufleet-ignore-reason`` (:mod:`gpufleet.policies.rules.gpufleet_ignore_reason`), so an unexplained
exemption is visible in every report without breaking the build. An annotation naming a rule that
does not exist is an input error (``gpufleet check`` exits 2, naming the nearest rule), not a silent no-op.

The CrossGuard pack does not read these annotations: its resources are Pulumi's, exempted with the
pack config's ``exempt`` patterns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from gpufleet.policies.core import Subject, UnknownNameError, as_str

IGNORE_ANNOTATION = "gpufleet.io/ignore"
"""Comma-separated rule names whose findings on this object are suppressed."""
IGNORE_REASON_ANNOTATION = "gpufleet.io/ignore-reason"
"""Why: shown with every suppressed finding."""
REASON_RULE = "gpufleet-ignore-reason"
"""The rule that reports a suppression without a reason: it cannot be suppressed itself."""


@dataclass(frozen=True)
class Suppression:
    """What an object's annotations suppress."""

    rules: frozenset[str]
    reason: str
    """Empty when the object gives none."""

    def covers(self, rule: str) -> bool:
        return rule in self.rules and rule != REASON_RULE


def ignored_rules(subject: Subject) -> list[str]:
    """The rule names of the object's ``gpufleet.io/ignore`` annotation, in order (empty if none)."""
    raw = as_str(subject.annotations.get(IGNORE_ANNOTATION)) or ""
    return [name.strip() for name in raw.split(",") if name.strip()]


def ignore_reason(subject: Subject) -> str:
    return (as_str(subject.annotations.get(IGNORE_REASON_ANNOTATION)) or "").strip()


def suppression_of(subject: Subject, rule_names: Iterable[str], where: str = "") -> Optional[Suppression]:
    """The object's suppression, None without one. Raises :class:`UnknownNameError` (naming the
    annotation, ``where`` the object was read, and the nearest rule) for a rule that does not exist."""
    names = ignored_rules(subject)
    if not names:
        return None
    valid = list(rule_names)
    for name in names:
        if name not in valid:
            place = f"{where}: " if where else ""
            raise UnknownNameError("rule", name, valid, f"{place}annotation {IGNORE_ANNOTATION}")
    return Suppression(frozenset(names), ignore_reason(subject))
