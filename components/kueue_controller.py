"""The Kueue controller gpufleet installs: the chart, its integrations and its ``Configuration``.

:class:`~gpufleet.components.kueue.Kueue` installs the chart with :func:`helm_values` and declares
the queues, flavors and priority classes; this module decides how the controller itself runs (gang
admission, fair sharing, which job kinds it manages, what it leaves out of quota, how DRA claims are
counted).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import yaml

from gpufleet.components.gpu_scheduling import EFA_RESOURCE, SYSTEM_NODE_SELECTOR, GpuPlacement
from gpufleet.components.team import TEAM_LABEL

TYPE = "gpufleet:kueue:Kueue"
"""The Kueue component's type token, which its error messages start with."""

CHART = "oci://registry.k8s.io/kueue/charts/kueue"
CHART_VERSION = "0.19.2"
IMAGE_REPOSITORY = "registry.k8s.io/kueue/kueue"

DEFAULT_FRAMEWORKS: tuple[str, ...] = (
    "batch/job",
    "ray.io/rayjob",
    "ray.io/raycluster",
    "ray.io/rayservice",
    "trainer.kubeflow.org/trainjob",
)
"""Integrations enabled by default: batch Jobs, KubeRay objects and Kubeflow Trainer TrainJobs
(Kueue 0.19 ``pkg/controller/jobs/trainjob``: ``FrameworkName``) submit through
``kueue.x-k8s.io/queue-name``. Kueue sets an integration up once its CRD exists, so the TrainJob
integration is harmless on a cluster without Kubeflow Trainer. Kueue checks these kinds with webhooks on those kinds only, so a
Kueue outage blocks creating Jobs and Ray objects, never plain pods.

The pod-based integrations (``pod``, ``deployment``, ``statefulset``, LeaderWorkerSet) are opt-in
(:attr:`KueueArgs.frameworks`): with ``pod`` enabled, the chart registers the pod webhook
``mpod.kb.io`` with ``failurePolicy: Fail`` for every namespace except ``kube-system`` and Kueue's own
(``managedJobsNamespaceSelector`` is applied inside the webhook, not in its registration), so while
Kueue is down or upgrading no pod can be created anywhere else: no device plugin on a new GPU node,
no KServe predictor, no KEDA scale-up. Nothing gpufleet renders needs them."""

KNOWN_FRAMEWORKS: tuple[str, ...] = (
    "batch/job", "kubeflow.org/mpijob", "ray.io/rayjob", "ray.io/rayservice", "ray.io/raycluster",
    "jobset.x-k8s.io/jobset", "kubeflow.org/paddlejob", "kubeflow.org/pytorchjob", "kubeflow.org/tfjob",
    "kubeflow.org/xgboostjob", "kubeflow.org/jaxjob", "trainer.kubeflow.org/trainjob",
    "workload.codeflare.dev/appwrapper", "sparkoperator.k8s.io/sparkapplication", "pod", "deployment",
    "statefulset", "leaderworkerset.x-k8s.io/leaderworkerset",
)
"""Framework names Kueue 0.19 accepts in ``integrations.frameworks``."""

_POD_BASED = ("deployment", "statefulset", "leaderworkerset.x-k8s.io/leaderworkerset")


DRA_FEATURE_GATE = "DynamicResourceAllocation"
"""Kueue's feature gate for counting ResourceClaimTemplates of queued pods (alpha since 0.14, off by
default at 0.19: ``pkg/features/kube_features.go``)."""


def device_class_mappings(placements: Iterable[GpuPlacement]) -> list[dict[str, Any]]:
    """Kueue ``resources.deviceClassMappings`` for the DRA pools: each pool's DeviceClass counted in its
    :attr:`GpuPlacement.gpu_resource`, the name its flavor's quota is in, so a DRA pool's GPUs take
    the same ClusterQueue quota as a device-plugin pool's. Kueue 0.19.2 counts the ``exactly`` requests
    of the ResourceClaimTemplates a pod set names, ``count`` devices each, in the mapped name
    (``pkg/dra/claims.go``, ``GetResourceRequestsForResourceClaimTemplates``); a claim on an unmapped
    class leaves the workload inadmissible. Empty without DRA pools."""
    names: dict[str, str] = {}
    for placement in placements:
        if not placement.dra:
            continue
        known = names.setdefault(placement.device_class, placement.gpu_resource)
        if known != placement.gpu_resource:
            raise ValueError(f"{TYPE}: placements: DeviceClass {placement.device_class} would be counted as both "
                             f"{known} and {placement.gpu_resource} (pool {placement.pool!r}); Kueue maps a "
                             "DeviceClass to one resource name")
    grouped: dict[str, list[str]] = {}
    for device_class, resource in sorted(names.items()):
        grouped.setdefault(resource, []).append(device_class)
    return [{"name": resource, "deviceClassNames": classes} for resource, classes in sorted(grouped.items())]


def manager_config(
    *,
    frameworks: Sequence[str],
    fair_sharing: bool,
    pods_ready_timeout_minutes: int,
    block_admission: bool,
    device_class_mappings: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Kueue's ``Configuration`` (``config.kueue.x-k8s.io/v1beta2``): the chart's defaults plus
    waitForPodsReady (gang admission), the integrations, fair sharing, pod-based integrations
    limited to team namespaces, and the DRA pools' ``deviceClassMappings`` (``Resources`` of
    ``apis/config/v1beta2/configuration_types.go``: ``name`` and ``deviceClassNames``)."""
    config: dict[str, Any] = {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "health": {"healthProbeBindAddress": ":8081"},
        "metrics": {"bindAddress": ":8443", "enableClusterQueueResources": True},
        "webhook": {"port": 9443},
        "leaderElection": {"leaderElect": True, "resourceName": "c1f6bfd2.kueue.x-k8s.io"},
        "controller": {
            "groupKindConcurrency": {
                "Job.batch": 5,
                "Pod": 5,
                "Workload.kueue.x-k8s.io": 10,
                "LocalQueue.kueue.x-k8s.io": 5,
                "ClusterQueue.kueue.x-k8s.io": 5,
                "ResourceFlavor.kueue.x-k8s.io": 1,
            },
        },
        "clientConnection": {"qps": 300, "burst": 500},
        # Jobs without a queue name run unmanaged: system jobs are never held back by Kueue.
        "manageJobsWithoutQueueName": False,
        # Pod-based integrations (pod, deployment, ...) only ever act in team namespaces.
        "managedJobsNamespaceSelector": {"matchExpressions": [{"key": TEAM_LABEL, "operator": "Exists"}]},
        # All-or-nothing: an admitted workload whose pods are not all ready in time is evicted and
        # requeued with backoff, releasing its quota instead of holding GPUs for missing peers.
        "waitForPodsReady": {
            "timeout": f"{pods_ready_timeout_minutes}m",
            "blockAdmission": block_admission,
            "requeuingStrategy": {"timestamp": "Eviction", "backoffBaseSeconds": 60, "backoffMaxSeconds": 3600},
        },
        "integrations": {"frameworks": list(frameworks)},
        # EFA interfaces are per-node devices a queued pod requests with its GPUs (all of its node's):
        # no ClusterQueue covers them, and Kueue would never admit a workload requesting a resource
        # outside its ClusterQueue (config.kueue.x-k8s.io ``Resources.ExcludeResourcePrefixes``).
        "resources": {"excludeResourcePrefixes": [EFA_RESOURCE]},
    }
    if device_class_mappings:
        config["resources"]["deviceClassMappings"] = [dict(m) for m in device_class_mappings]
    if fair_sharing:
        config["fairSharing"] = {"preemptionStrategies": ["LessThanOrEqualToFinalShare", "LessThanInitialShare"]}
    return config


def helm_values(
    *,
    frameworks: Sequence[str],
    replicas: int,
    fair_sharing: bool,
    pods_ready_timeout_minutes: int,
    block_admission: bool,
    enable_prometheus: bool,
    device_class_mappings: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Values of the Kueue chart (every key exists in the chart's ``values.yaml`` at 0.19.2); with DRA
    pools, the ``DynamicResourceAllocation`` feature gate (``controllerManager.featureGates``)."""
    config = manager_config(
        frameworks=frameworks,
        fair_sharing=fair_sharing,
        pods_ready_timeout_minutes=pods_ready_timeout_minutes,
        block_admission=block_admission,
        device_class_mappings=device_class_mappings,
    )
    gates = [{"name": DRA_FEATURE_GATE, "enabled": True}] if device_class_mappings else []
    return {
        "enablePrometheus": enable_prometheus,
        "controllerManager": {
            **({"featureGates": gates} if gates else {}),
            "replicas": replicas,
            "nodeSelector": dict(SYSTEM_NODE_SELECTOR),
            "podDisruptionBudget": {"enabled": replicas > 1, "minAvailable": 1},
            "manager": {
                # The chart in git points at staging images; pin the released image.
                "image": {"repository": IMAGE_REPOSITORY, "tag": f"v{CHART_VERSION}", "pullPolicy": "IfNotPresent"},
                # Its admission webhooks gate job (and, with the pod integration, pod) creation.
                "priorityClassName": "system-cluster-critical",
            },
        },
        "managerConfig": {"controllerManagerConfigYaml": yaml.safe_dump(config, sort_keys=False)},
    }


def check_frameworks(value: Any) -> list[str]:
    """``frameworks``: known Kueue 0.19 integrations, each once, pod-based ones with ``pod``."""
    frameworks = list(value)
    for framework in frameworks:
        if framework not in KNOWN_FRAMEWORKS:
            raise ValueError(f"{TYPE}: frameworks has {framework!r}, not a Kueue 0.19 integration")
    if any(f in _POD_BASED for f in frameworks) and "pod" not in frameworks:
        raise ValueError(f"{TYPE}: frameworks: {', '.join(f for f in frameworks if f in _POD_BASED)} need 'pod' too")
    if len(set(frameworks)) != len(frameworks):
        raise ValueError(f"{TYPE}: frameworks repeats an entry")
    return frameworks
