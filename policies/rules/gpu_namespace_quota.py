"""``gpu-namespace-quota``: every namespace running GPU pods caps the GPUs it may request."""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

from gpufleet.policies.core import Rule, RuleContext, Subject, as_list, as_mapping, as_str, is_unknown
from gpufleet.policies.pod_templates import gpu_pod_templates
from gpufleet.policies.rules._common import selector_matches


def kueue_gpu_caps(subjects: Sequence[Subject], namespaces: Mapping[str, Subject]) -> dict[str, set[str]]:
    """Namespace → resources a Kueue ClusterQueue caps for it: the namespace has a LocalQueue whose
    ``spec.clusterQueue`` is a ClusterQueue that selects the namespace (``namespaceSelector``; ``{}``
    selects all, none selects none) and sets a ``nominalQuota`` for the resource in some flavor
    (``spec.resourceGroups[*].flavors[*].resources[*]``). Kueue admits no more than the quota (plus
    what ``borrowingLimit`` lets it borrow in a cohort)."""
    quotas: dict[str, tuple[Any, set[str]]] = {}
    for subject in subjects:
        if subject.is_a("kueue.x-k8s.io", "ClusterQueue"):
            resources = {
                as_str(as_mapping(r).get("name")) or ""
                for group in as_list(subject.spec.get("resourceGroups"))
                for flavor in as_list(as_mapping(group).get("flavors"))
                for r in as_list(as_mapping(flavor).get("resources"))
                if as_mapping(r).get("nominalQuota") is not None
            }
            quotas[subject.object_name] = (subject.spec.get("namespaceSelector"), resources)
    caps: dict[str, set[str]] = {}
    for subject in subjects:
        if not subject.is_a("kueue.x-k8s.io", "LocalQueue"):
            continue
        queue = quotas.get(as_str(subject.spec.get("clusterQueue")) or "")
        if queue is None or queue[0] is None:
            continue
        namespace = subject.namespace
        labels = {**as_mapping(namespaces[namespace].labels if namespace in namespaces else {}),
                  "kubernetes.io/metadata.name": namespace}
        if selector_matches(queue[0], labels, empty_matches=True):
            caps.setdefault(namespace, set()).update(queue[1])
    return caps


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
    for namespace, resources in kueue_gpu_caps(subjects, namespaces).items():
        capped.setdefault(namespace, set()).update(f"requests.{r}" for r in resources)
    reported: set[tuple[str, str]] = set()
    for template in gpu_pod_templates(subjects):
        namespace = template.namespace
        if not namespace or namespace in unknown:
            continue
        wanted = {r: f"requests.{r}" for r in template.gpu_resources()}
        wanted.update({f"{c} (DRA)": f"{c}.deviceclass.resource.k8s.io/devices" for c in template.dra_gpus})
        for resource, key in sorted(wanted.items()):
            if key in capped.get(namespace, set()) or (namespace, resource) in reported:
                continue
            reported.add((namespace, resource))
            yield namespaces.get(namespace, template.owner), (
                f"namespace {namespace} runs pods requesting {resource} (e.g. {template.kind} "
                f"{template.owner.object_name}) but no ResourceQuota sets hard {key} and no Kueue ClusterQueue its "
                f"LocalQueue points to has a quota for it: one team can take every GPU in the cluster")


RULE = Rule(
    name="gpu-namespace-quota",
    description=(
        "Every namespace with pods requesting GPUs has a ResourceQuota whose hard limits include "
        "requests.<resource> for each GPU resource they use (nvidia.com/gpu, nvidia.com/gpu.shared or the MIG "
        "slice): without it one team can hoard the fleet's most expensive resource."
    ),
    check_stack=check,
    summary="namespaces with GPU workloads cap their GPU requests",
    why=(
        "Production checklist (Cost): resource quotas per namespace, to prevent GPU hoarding. Without a cap one "
        "team's job can take every GPU in the cluster, the fleet's most expensive resource."
    ),
    fix=(
        "Add a ResourceQuota in the namespace whose spec.hard has requests.nvidia.com/gpu (and "
        "requests.<resource> for any MIG slice or shared GPU its pods use). If quotas are managed outside the "
        "checked files, run gpufleet check with --assume gpu-quota."
    ),
    example="""\
apiVersion: v1
kind: ResourceQuota
metadata:
  name: gpu-quota
  namespace: serving
spec:
  hard:
    requests.nvidia.com/gpu: "8"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: llm
  namespace: serving
spec:
  replicas: 1
  selector:
    matchLabels: {app: llm}
  template:
    metadata:
      labels: {app: llm}
    spec:
      containers:
        - name: server
          image: vllm/vllm-openai:v0.11.0
          resources:
            requests: {nvidia.com/gpu: 1, cpu: "8", memory: 48Gi}
            limits: {nvidia.com/gpu: 1, memory: 48Gi}
""",
)
