"""``gpu-namespace-quota``: every namespace running GPU pods caps the GPUs it may request."""

from __future__ import annotations

from typing import Iterator, Sequence

from gpufleet.policies.core import Rule, RuleContext, Subject, as_mapping, is_unknown
from gpufleet.policies.pod_templates import gpu_pod_templates


def check(subjects: Sequence[Subject], context: RuleContext) -> Iterator[tuple[Subject, str]]:
    if context.assumes("gpu-quota"):
        return  # quotas defined outside the checked resources
    capped: dict[str, set[str]] = {}
    unknown: set[str] = set()
    namespaces: dict[str, Subject] = {}
    for subject in subjects:
        if subject.is_a("", "ResourceQuota"):
            hard = subject.spec.get("hard")
            if is_unknown(hard) or not subject.namespace:
                unknown.add(subject.namespace)
                continue
            capped.setdefault(subject.namespace, set()).update(as_mapping(hard))
        elif subject.is_a("", "Namespace"):
            namespaces[subject.object_name] = subject
    if "" in unknown:
        return  # a quota in an unknown namespace might cover any of them
    reported: set[tuple[str, str]] = set()
    for template in gpu_pod_templates(subjects):
        namespace = template.namespace
        if not namespace or namespace in unknown:
            continue
        for resource in sorted(template.gpu_resources() or {}):
            if f"requests.{resource}" in capped.get(namespace, set()) or (namespace, resource) in reported:
                continue
            reported.add((namespace, resource))
            yield namespaces.get(namespace, template.owner), (
                f"namespace {namespace} runs pods requesting {resource} (e.g. {template.kind} "
                f"{template.owner.object_name}) but no ResourceQuota sets hard requests.{resource}: one team can take "
                f"every GPU in the cluster")


RULE = Rule(
    name="gpu-namespace-quota",
    description=(
        "Every namespace with pods requesting GPUs has a ResourceQuota whose hard limits include "
        "requests.<resource> for each GPU resource they use (nvidia.com/gpu, nvidia.com/gpu.shared or the MIG "
        "slice): without it one team can hoard the fleet's most expensive resource."
    ),
    check_stack=check,
)
