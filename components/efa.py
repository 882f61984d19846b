"""``EfaDevicePlugin``: the AWS EFA Kubernetes device plugin (eks-charts ``aws-efa-k8s-device-plugin``),
which advertises each node's Elastic Fabric Adapter interfaces as ``vpc.amazonaws.com/efa``.

Pods of a multi-node training job request every EFA interface of their node (request = limit,
:meth:`GpuPlacement.efa_resources`); Karpenter launches the node with those interfaces attached
(it sees the request on the NodeClaim) and the device plugin, a DaemonSet on the EFA-capable instance
types (the chart's ``supportedInstanceLabels`` node affinity), makes them allocatable. The GPU pools are
tainted, so the DaemonSet tolerates the GPU taint and each EFA pool's extra taints.

The plugin mounts ``/dev/infiniband`` and runs privileged as root (the chart's ``securityContext``):
it is installed into ``kube-system``, like the AWS guide does, not into a namespace held to the
``restricted`` Pod Security Standard.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, TypedDict

import pulumi
from typing_extensions import NotRequired

from gpufleet.components._k8s import atomic_release
from gpufleet.components._validate import check_arg_keys
from gpufleet.components.gpu_scheduling import GpuPlacement, agent_placements, pools_tolerations

TYPE = "gpufleet:efa:EfaDevicePlugin"

CHART = "aws-efa-k8s-device-plugin"
CHART_VERSION = "v0.5.30"
"""eks-charts ``stable/aws-efa-k8s-device-plugin/Chart.yaml`` at tag v0.5.30 (eks-charts v0.0.242); image
``v0.5.20`` (its appVersion, the chart's default ``image.tag``)."""
CHART_REPOSITORY = "https://aws.github.io/eks-charts"
NAMESPACE = "kube-system"


class EfaDevicePluginArgs(TypedDict):
    """Inputs of :class:`EfaDevicePlugin`."""

    placements: Sequence[GpuPlacement]
    """The EFA pools (``placement.efa``) the plugin must run on: their taints are tolerated. Required,
    at least one."""
    wait_for: NotRequired[Sequence[pulumi.Resource]]
    """Resources the release waits for (the GPU pools). Default none."""


def device_plugin_values(placements: Sequence[GpuPlacement], *, name: str = TYPE) -> dict[str, Any]:
    """The chart values gpufleet sets (plain data: tests walk them against the chart's values.yaml)."""
    placements = agent_placements(placements, name=name, what="EFA", serves=lambda p: p.efa,
                                  lacking="has no EFA (GpuNodePool efa: true)")
    tolerations = pools_tolerations(placements)
    return {
        "tolerations": tolerations,
        # The chart's own requests (10m, 20Mi) stay: its values.yaml defines no limits key.
        "updateStrategy": {"type": "RollingUpdate"},
    }


class EfaDevicePlugin(pulumi.ComponentResource):
    """The EFA device plugin chart, pinned to :data:`CHART_VERSION`, in ``kube-system``: child
    ``{name}-release``."""

    def __init__(self, name: str, args: EfaDevicePluginArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, EfaDevicePluginArgs, name=TYPE)
        values = device_plugin_values(args.get("placements") or [])
        super().__init__(TYPE, name, {}, opts)
        self.release = atomic_release(
            f"{name}-release",
            name=CHART,
            chart=CHART,
            version=CHART_VERSION,
            repository=CHART_REPOSITORY,
            namespace=NAMESPACE,
            values=values,
            parent=self,
            depends_on=list(args.get("wait_for", [])),
        )
        self.register_outputs({})
