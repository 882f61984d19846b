"""``KubeRayOperator``: the KubeRay operator (Helm chart ``kuberay-operator``), which turns
``RayCluster``/``RayJob``/``RayService`` objects (``ray.io/v1``) into Ray head and worker pods.

The operator is a cluster controller: it runs on the system nodes, highly available through leader
election, in its own namespace held to the ``restricted`` Pod Security Standard (the chart's
container security context already satisfies it). Helm installs the chart's CRDs on first install
only: upgrading KubeRay across CRD changes needs the CRDs applied first (``kubectl apply
--server-side -k "github.com/ray-project/kuberay/ray-operator/config/crd?ref=<tag>"``).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, TypedDict

import pulumi
from typing_extensions import NotRequired

from gpufleet.components._k8s import controller_chart, deep_merge, require_dns_label
from gpufleet.components._validate import check_arg_keys, require_int_range
from gpufleet.components.gpu_scheduling import SYSTEM_NODE_SELECTOR

TYPE = "gpufleet:kuberay:KubeRayOperator"

CHART = "kuberay-operator"
CHART_VERSION = "1.7.0"
"""KubeRay release whose CRDs gpufleet's RayCluster/RayService manifests are validated against."""
CHART_REPOSITORY = "https://ray-project.github.io/kuberay-helm/"
DEFAULT_NAMESPACE = "kuberay-system"


class KubeRayOperatorArgs(TypedDict):
    """Inputs of :class:`KubeRayOperator`."""

    namespace: NotRequired[str]
    """Namespace created for the operator. Default ``kuberay-system``."""
    replicas: NotRequired[int]
    """Operator replicas (one leader, the others stand by). Default 2."""
    service_monitor: NotRequired[bool]
    """Create a Prometheus ``ServiceMonitor`` for the operator's metrics (needs the
    prometheus-operator CRDs). Default false."""
    reconcile_concurrency: NotRequired[int]
    """Parallel reconciles; raise it for hundreds of Ray clusters. Default 1 (the chart's)."""
    extra_values: NotRequired[Mapping[str, Any]]
    """Extra chart values merged over gpufleet's (each key must exist in the chart's values.yaml).
    Default none."""


def operator_values(args: KubeRayOperatorArgs) -> dict[str, Any]:
    """The chart values gpufleet sets (plain data: tests compare it with the chart's values.yaml)."""
    replicas = require_int_range(args.get("replicas", 2), "replicas", 1, 5, name=TYPE)
    concurrency = require_int_range(args.get("reconcile_concurrency", 1), "reconcile_concurrency", 1, 64, name=TYPE)
    service_monitor = args.get("service_monitor", False)
    if not isinstance(service_monitor, bool):
        raise TypeError(f"{TYPE}: service_monitor must be bool, got {type(service_monitor).__name__}")
    values: dict[str, Any] = {
        "replicas": replicas,
        # Standby replicas take over through the leader lease.
        "leaderElectionEnabled": True,
        "reconcileConcurrency": concurrency,
        "nodeSelector": dict(SYSTEM_NODE_SELECTOR),
        # Limits only: requests default to them (Guaranteed QoS), and the chart's values.yaml
        # defines ``resources.limits`` alone.
        "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
        "podSecurityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "metrics": {"enabled": True, "serviceMonitor": {"enabled": service_monitor}},
    }
    extra = args.get("extra_values", {})
    if not isinstance(extra, Mapping):
        raise TypeError(f"{TYPE}: extra_values must be a mapping")
    return deep_merge(values, extra)


class KubeRayOperator(pulumi.ComponentResource):
    """The KubeRay operator chart, pinned to :data:`CHART_VERSION`, on the system nodes in a
    ``restricted`` namespace. Ray workloads depend on this component so their CRDs exist first."""

    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: Optional[KubeRayOperatorArgs] = None, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, KubeRayOperatorArgs, name=TYPE)
        args = args or {}
        namespace_name = args.get("namespace", DEFAULT_NAMESPACE)
        require_dns_label(namespace_name, "namespace", name=TYPE)
        values = operator_values(args)

        super().__init__(TYPE, name, {}, opts)
        release = controller_chart(
            name,
            namespace=namespace_name,
            release_name=CHART,
            chart=CHART,
            version=CHART_VERSION,
            repository=CHART_REPOSITORY,
            values=values,
            parent=self,
        )
        # Derived from the release, so whatever uses the namespace waits for the operator.
        self.namespace = release.status.apply(lambda _: namespace_name)
        self.register_outputs({"namespace": self.namespace})
