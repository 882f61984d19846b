"""``LeaderWorkerSetController``: the LeaderWorkerSet controller (Helm chart ``lws``), which turns
``LeaderWorkerSet`` objects (``leaderworkerset.x-k8s.io/v1``) into groups of one leader pod and
``size - 1`` worker pods, created, restarted and scaled together.

Chart reference: the LWS project publishes its chart as an OCI artifact,
``oci://registry.k8s.io/lws/charts/lws``, versioned like the release without the ``v``
(``0.10.0`` for LWS ``v0.10.0``). In git, the chart at tag ``v0.10.0`` still says
``version: 0.1.0`` (``appVersion: "v0.10.0"``) and its ``values.yaml`` pulls the moving
``image.manager.tag: main`` with ``pullPolicy: Always``: the release pipeline versions the packaged
chart. gpufleet pins the published chart version and the released image tag both.

The controller runs on the system nodes (two replicas, leader election: its mutating webhooks gate
the creation of LeaderWorkerSets and of their pods, ``failurePolicy: Fail``, selected by the
``leaderworkerset.sigs.k8s.io/name`` label only, so no other pod depends on it). Its namespace is
held to the ``baseline`` Pod Security Standard, not ``restricted``: the chart's pod and container
security contexts (``podSecurityContext``, ``securityContext`` in its values.yaml at v0.10.0) run it
non-root, without privilege escalation and with every capability dropped, but set no seccomp
profile, and the chart offers no values key for one.

Upgrading: Helm installs the chart's CRD on first install only; upgrading from an LWS installed by
Helm at 0.7.0 or earlier may delete the CRD, and every LeaderWorkerSet with it
(kubernetes-sigs/lws#880): apply the new release's CRD first (server-side), then upgrade the chart.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, TypedDict

import pulumi
from typing_extensions import NotRequired

from gpufleet.components._k8s import atomic_release, deep_merge, managed_namespace, require_dns_label
from gpufleet.components._validate import check_arg_keys, require_int_range
from gpufleet.components.gpu_scheduling import SYSTEM_NODE_SELECTOR

TYPE = "gpufleet:lws:LeaderWorkerSetController"

API_VERSION = "leaderworkerset.x-k8s.io/v1"
CHART = "oci://registry.k8s.io/lws/charts/lws"
CHART_VERSION = "0.10.0"
"""Published chart version of LWS v0.10.0, whose CRD gpufleet's LeaderWorkerSets are validated against."""
IMAGE_REPOSITORY = "registry.k8s.io/lws/lws"
IMAGE_TAG = "v0.10.0"
RELEASE_NAME = "lws"
DEFAULT_NAMESPACE = "lws-system"

CONTROLLER_REQUESTS: Mapping[str, str] = {"cpu": "500m", "memory": "512Mi"}
"""Requests of each controller replica (the chart's default is 1 CPU and 1 GiB, sized for clusters
with thousands of groups)."""


class LeaderWorkerSetControllerArgs(TypedDict):
    """Inputs of :class:`LeaderWorkerSetController`."""

    namespace: NotRequired[str]
    """Namespace created for the controller. Default ``lws-system``."""
    replicas: NotRequired[int]
    """Controller replicas (one leader, the others stand by and serve the webhooks). Default 2."""
    extra_values: NotRequired[Mapping[str, Any]]
    """Extra chart values merged over gpufleet's (each key must exist in the chart's values.yaml).
    Default none."""


def controller_values(args: Optional[LeaderWorkerSetControllerArgs] = None) -> dict[str, Any]:
    """The chart values gpufleet sets (plain data: tests compare it with the chart's values.yaml)."""
    args = args or {}
    replicas = require_int_range(args.get("replicas", 2), "replicas", 1, 5, name=TYPE)
    values: dict[str, Any] = {
        "replicaCount": replicas,
        # The chart in git pulls the moving `main` tag on every start; pin the released image.
        "image": {"manager": {"repository": IMAGE_REPOSITORY, "tag": IMAGE_TAG, "pullPolicy": "IfNotPresent"}},
        "nodeSelector": dict(SYSTEM_NODE_SELECTOR),
        # Its webhooks gate the creation of LeaderWorkerSets and of their pods.
        "priorityClassName": "system-cluster-critical",
        "resources": {"requests": dict(CONTROLLER_REQUESTS)},
        "podSecurityContext": {"runAsNonRoot": True},
    }
    extra = args.get("extra_values", {})
    if not isinstance(extra, Mapping):
        raise TypeError(f"{TYPE}: extra_values must be a mapping")
    return deep_merge(values, extra)


class LeaderWorkerSetController(pulumi.ComponentResource):
    """The LWS chart pinned to :data:`CHART_VERSION` on the system nodes, in a ``baseline``
    namespace (see the module docstring). LeaderWorkerSets depend on it so the CRD and webhooks exist
    first. Children: ``<name>-namespace``, ``<name>-release``."""

    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: Optional[LeaderWorkerSetControllerArgs] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, LeaderWorkerSetControllerArgs, name=TYPE)
        args = args or {}
        namespace_name = args.get("namespace", DEFAULT_NAMESPACE)
        require_dns_label(namespace_name, "namespace", name=TYPE)
        values = controller_values(args)

        super().__init__(TYPE, name, {}, opts)
        namespace = managed_namespace(f"{name}-namespace", namespace_name, parent=self, pod_security="baseline")
        release = atomic_release(
            f"{name}-release",
            name=RELEASE_NAME,
            chart=CHART,
            version=CHART_VERSION,
            namespace=namespace.metadata.name,
            values=values,
            parent=self,
        )
        # Derived from the release, so whatever uses the namespace waits for the controller.
        self.namespace = release.status.apply(lambda _: namespace_name)
        self.register_outputs({"namespace": self.namespace})
