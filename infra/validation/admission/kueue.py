"""What Kueue v0.19.2's validating webhooks reject on create.

Ported from ``pkg/webhooks/clusterqueue_webhook.go`` (``ValidateClusterQueue``), ``pkg/webhooks/common.go``,
``pkg/webhooks/resourceflavor_webhook.go`` (``ValidateResourceFlavor``) and
``pkg/controller/jobframework/validation.go`` (``ValidateJobOnCreate``, run by the webhook of every job
integration); the code index holds them at commits near v0.19.2. Both ``kueue.x-k8s.io`` versions are
served (v1beta1 ``spec.cohort``, v1beta2 ``spec.cohortName``). Kueue v0.19 has no validating webhook
for LocalQueue: its ``spec.clusterQueue`` is checked by the CRD schema (name pattern, immutability).

Like upstream's ``field.ErrorList``, all problems of an object are reported, aggregated into one reason.
"""

from __future__ import annotations

from typing import Any, Mapping

from gpufleet.infra.validation.admission._k8s import (
    aggregate,
    annotations_of,
    dig,
    duplicate,
    invalid,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
    labels_of,
    mapping,
    not_supported,
    quantity,
    required,
    seq,
)

SOURCE = "Kueue admission webhook"

# pkg/controller/constants
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
QUEUE_ANNOTATION = "kueue.x-k8s.io/queue-name"
PRIORITY_CLASS_LABEL = "kueue.x-k8s.io/priority-class"
PREBUILT_WORKLOAD_LABEL = "kueue.x-k8s.io/prebuilt-workload-name"
MAX_EXEC_TIME_LABEL = "kueue.x-k8s.io/max-exec-time-seconds"
_PREBUILT_SUPPORTED = {  # jobframework/validation.go supportedPrebuiltWlJobGVKs
    ("batch", "Job"), ("jobset.x-k8s.io", "JobSet"), ("kubeflow.org", "TFJob"), ("kubeflow.org", "PaddleJob"),
    ("kubeflow.org", "PyTorchJob"), ("kubeflow.org", "XGBoostJob"), ("kubeflow.org", "MPIJob"), ("ray.io", "RayJob"),
}
# Job kinds whose Kueue integration webhook runs ValidateJobOnCreate (pod/deployment/statefulset are
# opt-in integrations and not judged here).
JOB_KINDS = {
    ("batch", "Job"), ("jobset.x-k8s.io", "JobSet"), ("kubeflow.org", "TFJob"), ("kubeflow.org", "PaddleJob"),
    ("kubeflow.org", "PyTorchJob"), ("kubeflow.org", "XGBoostJob"), ("kubeflow.org", "MPIJob"),
    ("kubeflow.org", "JAXJob"), ("trainer.kubeflow.org", "TrainJob"), ("ray.io", "RayJob"),
    ("ray.io", "RayCluster"), ("ray.io", "RayService"), ("leaderworkerset.x-k8s.io", "LeaderWorkerSet"),
}
_TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
_PREEMPTION_CHECK = "kueue-preemption"  # constants.PreemptionAdmissionCheckName (reserved)


def _reason(errors: list[str]) -> list[str]:
    return [f"{SOURCE}: {aggregate(errors)}"] if errors else []


# -- ClusterQueue ----------------------------------------------------------------------------------------


def validate_cluster_queue(cq: Mapping[str, Any]) -> list[str]:
    """clusterqueue_webhook.go ValidateClusterQueue."""
    spec = mapping(cq.get("spec"))
    cohort = spec.get("cohortName", spec.get("cohort")) or ""
    errors: list[str] = []
    if cohort:
        errors += [invalid("spec.cohortName" if "cohortName" in spec else "spec.cohort", cohort, e)
                   for e in is_dns1123_subdomain(str(cohort))]
    errors += _resource_groups(seq(spec.get("resourceGroups")), has_parent=bool(cohort))
    errors += _label_selector(spec.get("namespaceSelector"), "spec.namespaceSelector")
    # validateCQAdmissionChecks
    if spec.get("admissionChecksStrategy") is not None and seq(spec.get("admissionChecks")):
        errors.append(invalid("spec", "...", "Either AdmissionChecks or AdmissionCheckStrategy can be set, but not both"))
    checks = [str(c) for c in seq(spec.get("admissionChecks"))]
    if _PREEMPTION_CHECK in checks:
        i = checks.index(_PREEMPTION_CHECK)
        errors.append(invalid(f"spec.admissionChecks[{i}]", _PREEMPTION_CHECK, "admission name is reserved for internal kueue use"))
    # validatePreemption
    preemption = mapping(spec.get("preemption"))
    borrow = preemption.get("borrowWithinCohort")
    if preemption.get("reclaimWithinCohort") == "Never" and isinstance(borrow, Mapping) and borrow.get("policy") not in (None, "Never"):
        errors.append(invalid("spec.preemption", "...", "reclaimWithinCohort=Never and borrowWithinCohort.Policy!=Never"))
    return _reason(errors)


def _resource_groups(groups: list[Any], *, has_parent: bool) -> list[str]:
    # clusterqueue_webhook.go validateResourceGroups / validateFlavorQuotas / validateLimit / validateLendingLimit
    errors: list[str] = []
    seen_resources: set[str] = set()
    seen_flavors: set[str] = set()
    for i, group in enumerate(groups):
        group = mapping(group)
        path = f"spec.resourceGroups[{i}]"
        covered = [str(r) for r in seq(group.get("coveredResources"))]
        for j, name in enumerate(covered):
            rpath = f"{path}.coveredResources[{j}]"
            errors += [invalid(rpath, name, e) for e in is_qualified_name(name)]  # common.go validateResourceName
            if name in seen_resources:
                errors.append(duplicate(rpath, name))
            seen_resources.add(name)
        for j, flavor in enumerate(seq(group.get("flavors"))):
            flavor = mapping(flavor)
            fpath = f"{path}.flavors[{j}]"
            fname = str(flavor.get("name", ""))
            if fname in seen_flavors:
                errors.append(duplicate(f"{fpath}.name", fname))
            seen_flavors.add(fname)
            for k, quota in enumerate(seq(flavor.get("resources"))[: len(covered)]):
                quota = mapping(quota)
                qpath = f"{fpath}.resources[{k}]"
                if quota.get("name") != covered[k]:
                    errors.append(invalid(f"{qpath}.name", quota.get("name"), "must match the name in coveredResources"))
                nominal = quantity(quota.get("nominalQuota"))
                errors += _non_negative(quota.get("nominalQuota"), f"{qpath}.nominalQuota")
                for field in ("borrowingLimit", "lendingLimit"):
                    if quota.get(field) is None:
                        continue
                    lpath = f"{qpath}.{field}"
                    if field == "lendingLimit":
                        errors += _non_negative(quota[field], lpath)
                    if not has_parent:
                        errors.append(invalid(lpath, str(quota[field]), "must be nil when cohort is empty"))
                    if field == "borrowingLimit":
                        errors += _non_negative(quota[field], lpath)
                    limit = quantity(quota[field])
                    if field == "lendingLimit" and limit is not None and nominal is not None and limit > nominal:
                        errors.append(invalid(lpath, str(quota[field]), "must be less than or equal to the nominalQuota"))
    return errors


def _non_negative(value: Any, path: str) -> list[str]:
    # clusterqueue_webhook.go validateResourceQuantity (apimachinery IsNegativeErrorMsg)
    parsed = quantity(value)
    if parsed is not None and parsed < 0:
        return [invalid(path, str(value), "must be greater than or equal to 0")]
    return []


def _label_selector(selector: Any, path: str) -> list[str]:
    # apimachinery meta/v1/validation ValidateLabelSelector (the parts a plain manifest can get wrong)
    if not isinstance(selector, Mapping):
        return []
    errors: list[str] = []
    for i, req in enumerate(seq(selector.get("matchExpressions"))):
        req = mapping(req)
        rpath = f"{path}.matchExpressions[{i}]"
        op, values = req.get("operator"), seq(req.get("values"))
        if op in ("In", "NotIn") and not values:
            errors.append(required(f"{rpath}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist") and values:
            errors.append(f"{rpath}.values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
        elif op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            errors.append(invalid(f"{rpath}.operator", op, "not a valid selector operator"))
        errors += [invalid(f"{rpath}.key", req.get("key"), e) for e in is_qualified_name(str(req.get("key", "")))]
    for key, value in mapping(selector.get("matchLabels")).items():
        errors += [invalid(f"{path}.matchLabels", key, e) for e in is_qualified_name(str(key))]
        errors += [invalid(f"{path}.matchLabels", value, e) for e in is_valid_label_value(str(value))]
    return errors


# -- ResourceFlavor --------------------------------------------------------------------------------------


def validate_resource_flavor(rf: Mapping[str, Any]) -> list[str]:
    """resourceflavor_webhook.go ValidateResourceFlavor."""
    spec = mapping(rf.get("spec"))
    errors: list[str] = []
    for key, value in mapping(spec.get("nodeLabels")).items():  # metavalidation.ValidateLabels
        errors += [invalid("spec.nodeLabels", key, e) for e in is_qualified_name(str(key))]
        errors += [invalid("spec.nodeLabels", value, e) for e in is_valid_label_value(str(value))]
    seen: dict[str, set[str]] = {}
    for i, taint in enumerate(seq(spec.get("nodeTaints"))):  # validateNodeTaints
        taint = mapping(taint)
        path = f"spec.nodeTaints[{i}]"
        key, value, effect = str(taint.get("key", "")), str(taint.get("value", "")), str(taint.get("effect", ""))
        errors += [invalid(f"{path}.key", key, e) for e in is_qualified_name(key)]
        if is_valid_label_value(value):
            errors.append(invalid(f"{path}.value", value, ";".join(is_valid_label_value(value))))
        if key in seen.get(effect, set()):
            errors.append(f"{path}: Duplicate value: {dict(taint)}: taints must be unique by key and effect pair")
            continue
        seen.setdefault(effect, set()).add(key)
    errors += _tolerations(seq(spec.get("tolerations")), "spec.tolerations")
    return _reason(errors)


def _tolerations(tolerations: list[Any], path: str) -> list[str]:
    # validateTolerations (extracted from k8s.io/kubernetes pkg/apis/core/validation ValidateTolerations)
    errors: list[str] = []
    for i, toleration in enumerate(tolerations):
        toleration = mapping(toleration)
        tpath = f"{path}[{i}]"
        key = str(toleration.get("key") or "")
        operator = toleration.get("operator") or "Equal"
        value = str(toleration.get("value") or "")
        if key:
            errors += [invalid(f"{tpath}.key", key, e) for e in is_qualified_name(key)]
        elif operator != "Exists":
            errors.append(invalid(f"{tpath}.operator", operator, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
        if toleration.get("tolerationSeconds") is not None and toleration.get("effect") != "NoExecute":
            errors.append(invalid(f"{tpath}.effect", toleration.get("effect", ""), "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if operator == "Equal":
            if is_valid_label_value(value):
                errors.append(invalid(f"{tpath}.operator", value, ";".join(is_valid_label_value(value))))
        elif operator == "Exists":
            if value:
                errors.append(invalid(f"{tpath}.operator", toleration, "value must be empty when `operator` is 'Exists'"))
        else:
            errors.append(not_supported(f"{tpath}.operator", operator, ["Equal", "Exists"]))
        effect = toleration.get("effect")
        if effect and effect not in _TAINT_EFFECTS:
            errors.append(not_supported(f"{tpath}.effect", effect, _TAINT_EFFECTS))
    return errors


# -- the labels Kueue reads on jobs ----------------------------------------------------------------------


def validate_job(obj: Mapping[str, Any]) -> list[str]:
    """jobframework/validation.go ValidateJobOnCreate: validateCreateForQueueName, validateCreateForMaxExecTime."""
    labels, annotations = labels_of(obj), annotations_of(obj)
    errors: list[str] = []
    # ValidateQueueName: label and annotation must name a LocalQueue (ValidateLabelAsCRDName)
    for where, values, key in (("metadata.labels", labels, QUEUE_LABEL),
                               ("metadata.annotations", annotations, QUEUE_ANNOTATION),
                               ("metadata.labels", labels, PREBUILT_WORKLOAD_LABEL)):
        if key in values:
            errs = is_dns1123_subdomain(str(values[key]))
            if errs:
                errors.append(invalid(f"{where}[{key}]", str(values[key]), ",".join(errs)))
    if PREBUILT_WORKLOAD_LABEL in labels:
        api = str(obj.get("apiVersion", ""))
        group = api.rsplit("/", 1)[0] if "/" in api else ""
        if (group, obj.get("kind")) not in _PREBUILT_SUPPORTED:
            gvk = f"{api}, Kind={obj.get('kind')}"
            errors.append(f"metadata.labels[{PREBUILT_WORKLOAD_LABEL}]: Forbidden: Is not supported for \"{gvk}\"")
    # The priority-class label names a WorkloadPriorityClass: a value that is not an object name can never
    # resolve (Kueue then refuses to create the Workload); judged like the queue name.
    if PRIORITY_CLASS_LABEL in labels:
        errs = is_dns1123_subdomain(str(labels[PRIORITY_CLASS_LABEL]))
        if errs:
            errors.append(invalid(f"metadata.labels[{PRIORITY_CLASS_LABEL}]", str(labels[PRIORITY_CLASS_LABEL]), ",".join(errs)))
    # validateCreateForMaxExecTime
    if MAX_EXEC_TIME_LABEL in labels:
        text = str(labels[MAX_EXEC_TIME_LABEL])
        path = f"metadata.labels[{MAX_EXEC_TIME_LABEL}]"
        try:
            seconds = int(text, 10)
        except ValueError:
            errors.append(invalid(path, text, f'strconv.Atoi: parsing "{text}": invalid syntax'))
        else:
            if seconds <= 0:
                errors.append(invalid(path, seconds, "should be greater than 0"))
    return _reason(errors)


def is_job(obj: Mapping[str, Any]) -> bool:
    api = str(obj.get("apiVersion", ""))
    group = api.rsplit("/", 1)[0] if "/" in api else ""
    return (group, obj.get("kind")) in JOB_KINDS and bool(dig(obj, "metadata"))
