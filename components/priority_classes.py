"""``PriorityClasses``: the three workload priorities every GPU pod on the platform runs under.

Without priorities, a burst of training pods can evict a production model server. The platform
defines one PriorityClass per workload role (names from
:data:`~gpufleet.components.gpu_scheduling.PRIORITY_CLASSES`):

- ``inference``: highest, preempts lower pods when the cluster is full;
- ``training``: middle, preempts batch pods;
- ``batch`` (experiments, Ray batch): lowest, ``preemptionPolicy: Never``: it waits for capacity
  instead of evicting anything.

The same values back Kueue's WorkloadPriorityClasses (see :mod:`gpufleet.components.kueue`), so
queue ordering and kube-scheduler preemption agree.
"""

from __future__ import annotations

from typing import Mapping, Optional, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from gpufleet.components._validate import check_arg_keys
from gpufleet.components.gpu_scheduling import PRIORITY_CLASSES

TYPE = "gpufleet:scheduling:PriorityClasses"

PRIORITY_VALUES: Mapping[str, int] = {
    "inference": 1_000_000,
    "training": 100_000,
    "batch": 1_000,
}
"""Role → priority value. Well below ``system-cluster-critical`` (2,000,000,000), so platform
controllers always outrank workloads; the gaps leave room for stack-specific classes in between."""

PREEMPTION_POLICIES: Mapping[str, str] = {
    "inference": "PreemptLowerPriority",
    "training": "PreemptLowerPriority",
    "batch": "Never",
}
"""Role → ``preemptionPolicy``. Batch and experiments never preempt: they only use idle GPUs."""

DESCRIPTIONS: Mapping[str, str] = {
    "inference": "Production inference: highest workload priority, preempts training and batch pods.",
    "training": "Model training: preempts batch pods, yields to production inference.",
    "batch": "Batch jobs and experiments: lowest priority, never preempts (waits for free capacity).",
}


class PriorityClassesArgs(TypedDict):
    """Inputs of :class:`PriorityClasses`."""

    labels: NotRequired[Mapping[str, str]]
    """Extra labels on every PriorityClass. Default none."""


class PriorityClasses(pulumi.ComponentResource):
    """The ``inference``, ``training`` and ``batch`` PriorityClasses (none is the global default:
    pods without a class keep priority 0, below every GPU workload)."""

    names: Mapping[str, str]
    """Role → PriorityClass name (plain: known before deployment)."""
    classes: Mapping[str, k8s.scheduling.v1.PriorityClass]
    """Role → the PriorityClass resource (to depend on)."""

    def __init__(self, name: str, args: Optional[PriorityClassesArgs] = None, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, PriorityClassesArgs, name=TYPE)
        args = args or {}
        labels = dict(args.get("labels", {}))
        for key, value in labels.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"{TYPE}: labels must map strings to strings, got {key!r}: {value!r}")

        super().__init__(TYPE, name, {}, opts)
        self.names = dict(PRIORITY_CLASSES)
        self.classes = {
            role: k8s.scheduling.v1.PriorityClass(
                f"{name}-{role}",
                metadata={"name": class_name, "labels": {"app.kubernetes.io/part-of": "gpufleet", **labels}},
                value=PRIORITY_VALUES[role],
                preemption_policy=PREEMPTION_POLICIES[role],
                global_default=False,
                description=DESCRIPTIONS[role],
                opts=pulumi.ResourceOptions(parent=self),
            )
            for role, class_name in PRIORITY_CLASSES.items()
        }
        self.register_outputs({"names": self.names})
