"""A model of Kueue 0.19's flavor assignment and admission: "can this pod set be admitted by this
rendered ClusterQueue, and on which flavor per resource", in an idle queue (:func:`assign_flavor`) or
against what is already admitted, with borrowing in the cohort (:class:`Admission`).

It follows Kueue's documented behaviour (site/content/en/docs/concepts):

- cluster_queue.md, "Resources": a pod set gets, per resource it requests, the first flavor in the
  ClusterQueue's ``.spec.resourceGroups[*].flavors`` list with enough quota;
- cluster_queue.md, "Resource Groups": resources listed in one group share the group's flavors: one
  flavor per group for the pod set's requests of that group, chosen independently of other groups;
- resource_flavor.md, "ResourceFlavor tolerations for automatic scheduling", step 1: a flavor whose
  node labels contradict the pod's ``nodeSelector`` or required node affinity cannot be assigned;
  "ResourceFlavor taints for user-selective scheduling": a flavor's ``nodeTaints`` (NoSchedule,
  NoExecute) must be tolerated by the pod.

:func:`assign_flavor` sees an idle queue and nominal quota only. :class:`Admission` adds usage and
borrowing (cluster_queue.md, "Cohort" / "BorrowingLimit" / "LendingLimit": a ClusterQueue may use
its nominal quota plus what others in its cohort leave unused and may lend, up to its
``borrowingLimit``). Preemption and flavor fungibility policies are out of the model. Quantities
are parsed with gpufleet's policy parser, as everywhere else.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Mapping, Optional

from gpufleet.policies.core import parse_quantity


def _amount(value: Any) -> Decimal:
    amount = parse_quantity(value)
    if amount is None:
        raise ValueError(f"not a quantity: {value!r}")
    return amount


def pod_set_requests(pod_spec: Mapping[str, Any], count: int = 1) -> dict[str, Decimal]:
    """What Kueue charges a pod set of ``count`` pods like ``pod_spec`` (workload.md, "Pod sets" /
    resource requests): per pod the containers' requests summed (a limit stands in for a missing
    request, as the API server defaults it), at least each init container's; resources requested as
    0 are left out."""
    def of(container: Mapping[str, Any]) -> dict[str, Decimal]:
        resources = container.get("resources") or {}
        merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        return {name: _amount(value) for name, value in merged.items()}

    total: dict[str, Decimal] = {}
    for container in pod_spec.get("containers") or []:
        for name, amount in of(container).items():
            total[name] = total.get(name, Decimal(0)) + amount
    for container in pod_spec.get("initContainers") or []:
        for name, amount in of(container).items():
            total[name] = max(total.get(name, Decimal(0)), amount)
    return {name: amount * Decimal(count) for name, amount in total.items() if amount}


def _matches(requirement: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator, values = requirement["key"], requirement["operator"], requirement.get("values") or []
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    raise ValueError(f"node affinity operator {operator!r} is not modelled")


def _selects(pod_spec: Mapping[str, Any], labels: Mapping[str, str], keys: set[str]) -> bool:
    """The pod's nodeSelector and required node affinity, restricted to the label keys the group's
    flavors use, matched against one flavor's node labels."""
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if key in keys and labels.get(key) != value:
            return False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = []
    for term in required.get("nodeSelectorTerms") or []:
        kept = [e for e in term.get("matchExpressions") or [] if e["key"] in keys]
        if not kept:
            return True  # a term without relevant keys matches every flavor (terms are ORed)
        terms.append(kept)
    return not terms or any(all(_matches(e, labels) for e in term) for term in terms)


def _tolerates(pod_spec: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    if taint.get("effect") not in ("NoSchedule", "NoExecute"):
        return True
    for toleration in pod_spec.get("tolerations") or []:
        if toleration.get("effect") not in (None, "", taint.get("effect")):
            continue
        if toleration.get("operator") == "Exists" and toleration.get("key") in (None, "", taint["key"]):
            return True
        if toleration.get("key") == taint["key"] and toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def assign_flavor(
    cluster_queue: Mapping[str, Any],
    flavors: Mapping[str, Mapping[str, Any]],
    pod_spec: Mapping[str, Any],
    count: int = 1,
    available: Optional[Callable[[str, str], Decimal]] = None,
) -> Optional[dict[str, str]]:
    """Requested resource → flavor Kueue would assign a pod set of ``count`` pods like ``pod_spec``
    in an idle ``cluster_queue`` (a rendered ClusterQueue ``spec``; ``flavors``: ResourceFlavor name
    → ``spec``), or None when no flavor can ever admit it (also when it requests a resource no
    group covers). ``available(flavor, resource)``: what the queue may still use (default: the nominal
    quota of an idle queue)."""
    return assign_requests(cluster_queue, flavors, pod_spec, pod_set_requests(pod_spec, count), available)


def assign_requests(
    cluster_queue: Mapping[str, Any],
    flavors: Mapping[str, Mapping[str, Any]],
    pod_spec: Mapping[str, Any],
    requests: Mapping[str, Decimal],
    available: Optional[Callable[[str, str], Decimal]] = None,
) -> Optional[dict[str, str]]:
    """As :func:`assign_flavor`, for ``requests`` already summed (a workload of several pod sets)."""
    assigned: dict[str, str] = {}
    for group in cluster_queue.get("resourceGroups") or []:
        wanted = {name: amount for name, amount in requests.items() if name in group["coveredResources"]}
        if not wanted:
            continue
        keys = {key for f in group["flavors"] for key in (flavors[f["name"]].get("nodeLabels") or {})}
        for flavor in group["flavors"]:
            spec = flavors[flavor["name"]]
            if not all(_tolerates(pod_spec, taint) for taint in spec.get("nodeTaints") or []):
                continue
            if not _selects(pod_spec, spec.get("nodeLabels") or {}, keys):
                continue
            quota = {r["name"]: _amount(r["nominalQuota"]) for r in flavor["resources"]}
            if available is not None:
                quota = {name: available(flavor["name"], name) for name in quota}
            if all(name in quota and amount <= quota[name] for name, amount in wanted.items()):
                assigned.update({name: flavor["name"] for name in wanted})
                break
        else:
            return None
    return assigned if set(assigned) == set(requests) else None


def injected(flavors: Mapping[str, Mapping[str, Any]], assignment: Mapping[str, str]) -> tuple[dict[str, str], list]:
    """(node selector, tolerations) Kueue adds to the admitted pods: the node labels and tolerations
    of every distinct flavor assigned (resource_flavor.md, step 2; Kueue's ``podset.FromAssignment``
    merges all assigned flavors)."""
    selector: dict[str, str] = {}
    tolerations: list = []
    for name in dict.fromkeys(assignment.values()):
        spec = flavors[name]
        for key, value in (spec.get("nodeLabels") or {}).items():
            selector.setdefault(key, value)
        tolerations += [t for t in spec.get("tolerations") or [] if t not in tolerations]
    return selector, tolerations


def _optional(value: Any) -> Optional[Decimal]:
    return None if value is None else _amount(value)


class Admission:
    """Admits workloads one after another against rendered ClusterQueues (``name → spec``), their
    cohorts and ResourceFlavors, keeping each queue's usage per flavor and resource."""

    def __init__(self, cluster_queues: Mapping[str, Mapping[str, Any]], flavors: Mapping[str, Mapping[str, Any]]):
        self.queues = cluster_queues
        self.flavors = flavors
        self.usage: dict[tuple[str, str, str], Decimal] = {}
        """(queue, flavor, resource) → admitted requests."""

    def _quota(self, queue: str, flavor: str, resource: str) -> tuple[Decimal, Optional[Decimal], Optional[Decimal]]:
        """(nominal, borrowingLimit, lendingLimit) of ``queue``; zeros when it does not list them."""
        for group in self.queues[queue].get("resourceGroups") or []:
            for entry in group.get("flavors") or []:
                if entry["name"] != flavor:
                    continue
                for quota in entry.get("resources") or []:
                    if quota["name"] == resource:
                        return (_amount(quota["nominalQuota"]), _optional(quota.get("borrowingLimit")),
                                _optional(quota.get("lendingLimit")))
        return Decimal(0), Decimal(0), Decimal(0)

    def available(self, queue: str, flavor: str, resource: str) -> Decimal:
        """What ``queue`` may still admit of ``resource`` on ``flavor``: its unused nominal quota plus
        what it may borrow from the unused lendable quota of the other queues of its cohort."""
        nominal, borrowing, _ = self._quota(queue, flavor, resource)
        used = self.usage.get((queue, flavor, resource), Decimal(0))
        cohort = self.queues[queue].get("cohortName") or self.queues[queue].get("cohort")
        lendable = Decimal(0)
        if cohort:
            for other, spec in self.queues.items():
                if other == queue or (spec.get("cohortName") or spec.get("cohort")) != cohort:
                    continue
                other_nominal, _, lending = self._quota(other, flavor, resource)
                other_used = self.usage.get((other, flavor, resource), Decimal(0))
                share = other_nominal if lending is None else min(lending, other_nominal)
                # What the other queue uses first comes out of the part it keeps for itself.
                kept = other_nominal - share
                lendable += max(Decimal(0), share - max(Decimal(0), other_used - kept))
        borrow = lendable if borrowing is None else min(borrowing, lendable)
        return max(Decimal(0), nominal - used) + max(Decimal(0), borrow - max(Decimal(0), used - nominal))

    def admit(self, queue: str, pod_spec: Mapping[str, Any], requests: Mapping[str, Decimal]) -> Optional[dict[str, str]]:
        """Admit a workload charging ``requests`` (its pod sets summed; ``pod_spec`` of its GPU pod set
        chooses the flavors it can use): the assigned flavor per resource, or None when it does not fit
        now (it waits in the queue). The usage is recorded."""
        spec = self.queues[queue]
        assignment = assign_requests(spec, self.flavors, pod_spec, requests,
                                     lambda flavor, resource: self.available(queue, flavor, resource))
        if assignment is None:
            return None
        for resource, flavor in assignment.items():
            key = (queue, flavor, resource)
            self.usage[key] = self.usage.get(key, Decimal(0)) + requests[resource]
        return assignment

    def admit_workload(self, queue: str, pod_sets: list[tuple[Mapping[str, Any], Mapping[str, Decimal]]]
                       ) -> Optional[list[dict[str, str]]]:
        """Admit a workload of several pod sets (``(pod spec, requests of all its pods)`` each) at
        once: each pod set gets its own flavors (workload.md, "Pod sets"), all or none. The
        assignment per pod set, or None (nothing is recorded)."""
        saved = dict(self.usage)
        assignments = []
        for pod_spec, requests in pod_sets:
            assignment = self.admit(queue, pod_spec, requests)
            if assignment is None:
                self.usage = saved
                return None
            assignments.append(assignment)
        return assignments
