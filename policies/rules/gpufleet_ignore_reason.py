"""``gpufleet-ignore-reason``: an object that suppresses findings says why."""

from __future__ import annotations

from typing import Iterator

from gpufleet.policies.core import Rule, RuleContext, Subject
from gpufleet.policies.suppressions import IGNORE_ANNOTATION, IGNORE_REASON_ANNOTATION, ignore_reason, ignored_rules


def check(subject: Subject, context: RuleContext) -> Iterator[str]:
    if not subject.is_kubernetes:
        return
    names = ignored_rules(subject)
    if names and not ignore_reason(subject):
        yield (f"annotation {IGNORE_ANNOTATION} suppresses {', '.join(names)} without a "
               f"{IGNORE_REASON_ANNOTATION} annotation: say why, so the exemption can be reviewed and lifted")


RULE = Rule(
    name="gpufleet-ignore-reason",
    description=(
        f"An object whose {IGNORE_ANNOTATION} annotation suppresses gpufleet check findings also carries a "
        f"non-empty {IGNORE_REASON_ANNOTATION} annotation. The suppression applies either way; an unexplained "
        "one is reported so it is reviewed rather than forgotten."
    ),
    enforcement="advisory",
    check_resource=check,
    summary="suppression annotations carry a reason",
    why="An exemption nobody can explain outlives the reason it was granted; the reason is what a reviewer "
        "weighs and what tells the next maintainer when the exemption can go.",
    fix=f"Add {IGNORE_REASON_ANNOTATION} with one sentence of why next to {IGNORE_ANNOTATION}, or remove the "
        "suppression and fix the finding.",
    example="""\
apiVersion: batch/v1
kind: Job
metadata:
  name: embed-corpus
  namespace: ml
  annotations:
    gpufleet.io/ignore: gpu-shm-volume
    gpufleet.io/ignore-reason: single-process encoder, no DataLoader workers or NCCL
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: embed
          image: ghcr.io/example/embed:1.4.2
""",
)
