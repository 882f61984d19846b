"""Helpers several rules share: label selectors, tolerations, autoscalers and namespaces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

from gpufleet.components.gpu_scheduling import ENVIRONMENT_LABEL
from gpufleet.policies.core import Subject, as_list, as_mapping, as_number, as_str, contains_unknown, is_unknown
from gpufleet.policies.pod_templates import PodTemplate, gpu_resource_names, pod_templates


def selector_matches(selector: Any, labels: Mapping[str, str], *, empty_matches: bool = True) -> Optional[bool]:
    """Does a Kubernetes LabelSelector select ``labels``? None when the selector is unknown."""
    if selector is None:
        return empty_matches
    if not isinstance(selector, Mapping):
        return None
    match_labels = selector.get("matchLabels")
    expressions = selector.get("matchExpressions")
    if is_unknown(match_labels) or is_unknown(expressions):
        return None
    match_labels, expressions = as_mapping(match_labels), as_list(expressions)
    if not match_labels and not expressions:
        return empty_matches
    for key, value in match_labels.items():
        if as_str(value) is None:
            return None
        if labels.get(key) != value:
            return False
    for expression in expressions:
        expression = as_mapping(expression)
        key, operator = as_str(expression.get("key")), as_str(expression.get("operator"))
        values = expression.get("values")
        if key is None or operator is None or contains_unknown(values):
            return None
        values = [v for v in as_list(values) if isinstance(v, str)]
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def gpu_serving_containers(subject: Subject) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(where, container)`` for each GPU container of ``subject``'s serving pod templates (pods whose
    operator adds probes, e.g. KubeRay's, excluded), ``where`` naming the template and the container for
    a message. Serving as one subject tells it: a model-server kind, image or command."""
    for template in pod_templates(subject):
        if not (template.serving and template.uses_gpu) or template.manages_probes:
            continue
        for container in template.containers:
            if gpu_resource_names(container):
                yield f"{template.where} container {as_str(container.get('name')) or '?'}", container


def tolerates(tolerations: Sequence[Mapping[str, Any]], key: str, value: str, effect: str) -> bool:
    """Kubernetes' toleration matching for one taint."""
    for toleration in tolerations:
        tol_key = toleration.get("key") or ""
        operator = toleration.get("operator") or "Equal"
        tol_effect = toleration.get("effect") or ""
        if tol_effect and tol_effect != effect:
            continue
        if operator == "Exists":
            if tol_key in ("", key):
                return True
        elif tol_key == key and (toleration.get("value") or "") == value:
            return True
    return False


def value_mismatch(tolerations: Sequence[Mapping[str, Any]], key: str, value: str, effect: str) -> Optional[str]:
    """The value of an ``Equal`` toleration for taint ``key`` (matching effect) whose value differs from
    ``value``; None when there is none."""
    for toleration in tolerations:
        operator = toleration.get("operator") or "Equal"
        tol_effect = toleration.get("effect") or ""
        if operator == "Equal" and toleration.get("key") == key and (not tol_effect or tol_effect == effect):
            other = as_str(toleration.get("value")) or ""
            if other != value:
                return other
    return None


@dataclass(frozen=True)
class Scaler:
    """An HPA or KEDA ScaledObject and the workload it scales."""

    subject: Subject
    namespace: str
    target_kind: str
    target_name: str
    min_replicas: Optional[int]
    max_replicas: Optional[int]
    behavior: Any
    """The ``behavior`` object the HPA uses (KEDA: ``advanced.horizontalPodAutoscalerConfig.behavior``);
    None when absent; the unknown sentinel when unknown."""


def scalers(subjects: Iterable[Subject]) -> list[Scaler]:
    """Every HorizontalPodAutoscaler and KEDA ScaledObject among ``subjects``."""
    found: list[Scaler] = []
    for subject in subjects:
        if subject.is_a("autoscaling", "HorizontalPodAutoscaler"):
            spec = subject.spec
            ref = as_mapping(spec.get("scaleTargetRef"))
            found.append(Scaler(
                subject, subject.namespace, as_str(ref.get("kind")) or "", as_str(ref.get("name")) or "",
                _count(spec.get("minReplicas"), 1), _count(spec.get("maxReplicas"), None), spec.get("behavior"),
            ))
        elif subject.is_a("keda.sh", "ScaledObject"):
            spec = subject.spec
            ref = as_mapping(spec.get("scaleTargetRef"))
            hpa = spec.get("advanced")
            behavior = hpa
            if isinstance(hpa, Mapping):
                config = hpa.get("horizontalPodAutoscalerConfig")
                behavior = config.get("behavior") if isinstance(config, Mapping) else config
            found.append(Scaler(
                subject, subject.namespace, as_str(ref.get("kind")) or "Deployment", as_str(ref.get("name")) or "",
                _count(spec.get("minReplicaCount"), 0), _count(spec.get("maxReplicaCount"), 100), behavior,
            ))
    return found


def _count(value: Any, default: Optional[int]) -> Optional[int]:
    if value is None:
        return default
    number = as_number(value) if not isinstance(value, str) else None
    return None if number is None else int(number)


ScalerIndex = Mapping[tuple[str, str, str], Scaler]
"""(namespace, target kind, target name) → the autoscaler of that workload."""


def scaler_index(subjects: Iterable[Subject]) -> ScalerIndex:
    index: dict[tuple[str, str, str], Scaler] = {}
    for scaler in scalers(subjects):
        index.setdefault((scaler.namespace, scaler.target_kind, scaler.target_name), scaler)
    return index


def scaler_for(template: PodTemplate, index: ScalerIndex) -> Optional[Scaler]:
    """The autoscaler that scales ``template``'s pods, if any."""
    for kind, name in template.scale_targets:
        scaler = index.get((template.namespace, kind, name))
        if scaler is not None:
            return scaler
    return None


def replica_range(template: PodTemplate, index: ScalerIndex) -> tuple[Optional[int], Optional[int]]:
    """(fewest, most) pods of ``template``, its autoscaler's bounds when one scales it."""
    scaler = scaler_for(template, index)
    if scaler is not None:
        return scaler.min_replicas, scaler.max_replicas
    return template.min_replicas, template.max_replicas


def can_run_several(template: PodTemplate, most: Optional[int]) -> bool:
    """More than one pod may run: ``most`` above one, or no upper bound at all (Knative without
    maxReplicas)."""
    return (most is not None and most > 1) or (most is None and template.unbounded)


def up_to(template: PodTemplate, most: Optional[int]) -> str:
    return f"up to {most}" if most is not None else "an unbounded number of"


WHOLE_NODE_GPUS = 8
"""GPUs of the largest GPU node (p4d/p5/p6: 8): a pod asking for as many takes a node by itself."""


SELECTOR_COMPARISONS = [0]
"""How many (selector, labels) candidates :class:`SelectorIndex` handed out since the process started:
a test reads it to keep the selector rules linear (a count, not a time, so it fails deterministically)."""


class SelectorIndex:
    """Objects with a label selector (PDBs, ...) in one namespace, found by the labels they select
    without testing every selector against every pod template.

    A selector made of known ``matchLabels`` only is filed under its rarest pair (fewest selectors in
    its namespace share it): gpufleet's PDBs all start with the same ``gpufleet.io/variant`` pair, so
    filing them under their first pair made one bucket of every budget, and the lookup quadratic.
    Candidates come out in the order the first-pair index gave them: broad selectors in insertion
    order, then by the position of the selector's first pair among the labels, then insertion order.
    """

    def __init__(self) -> None:
        self._exact: list[tuple[Subject, Any, tuple[tuple[str, str], ...]]] = []
        self._broad: dict[str, list[tuple[Subject, Any]]] = {}
        self._by_pair: Optional[dict[tuple[str, str, str], list[int]]] = None

    def add(self, subject: Subject, selector: Any) -> None:
        match_labels = as_mapping(selector).get("matchLabels") if isinstance(selector, Mapping) else None
        pairs = [(k, v) for k, v in as_mapping(match_labels).items() if as_str(v) is not None]
        if pairs and len(pairs) == len(as_mapping(match_labels)):
            self._exact.append((subject, selector, tuple(pairs)))
            self._by_pair = None
        else:
            self._broad.setdefault(subject.namespace, []).append((subject, selector))

    def _index(self) -> dict[tuple[str, str, str], list[int]]:
        if self._by_pair is None:
            frequency: dict[tuple[str, str, str], int] = {}
            for subject, _, pairs in self._exact:
                for key, value in pairs:
                    slot = (subject.namespace, key, value)
                    frequency[slot] = frequency.get(slot, 0) + 1
            index: dict[tuple[str, str, str], list[int]] = {}
            for position, (subject, _, pairs) in enumerate(self._exact):
                rarest = min(((subject.namespace, k, v) for k, v in pairs), key=frequency.__getitem__)
                index.setdefault(rarest, []).append(position)
            self._by_pair = index
        return self._by_pair

    def candidates(self, namespace: str, labels: Mapping[str, str]) -> list[tuple[Subject, Any]]:
        found = list(self._broad.get(namespace, ()))
        index = self._index()
        order = {key: rank for rank, key in enumerate(labels)}
        hits: list[tuple[int, int]] = []
        for key, value in labels.items():
            for position in index.get((namespace, key, value), ()):
                SELECTOR_COMPARISONS[0] += 1
                pairs = self._exact[position][2]
                if all(labels.get(k) == v for k, v in pairs):  # the others could only fail to match
                    hits.append((order[pairs[0][0]], position))
        SELECTOR_COMPARISONS[0] += len(found)
        found += [self._exact[position][:2] for _, position in sorted(hits)]
        return found


def production_namespaces(subjects: Iterable[Subject]) -> set[str]:
    """Namespaces (declared among ``subjects``) labelled ``gpufleet.io/environment: prod``."""
    return {
        s.object_name for s in subjects
        if s.is_a("", "Namespace") and s.labels.get(ENVIRONMENT_LABEL) in ("prod", "production")
    }
