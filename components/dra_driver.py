"""``NvidiaDraDriver``: NVIDIA's DRA driver for GPUs (``k8s-dra-driver-gpu`` chart, ``nvidia-dra-driver-gpu``
v25.12.0) on the pools that allocate GPUs with Dynamic Resource Allocation (``allocation: dra``).

Its kubelet plugin (a DaemonSet) publishes each node's GPUs, and the MIG devices mig-manager cut, as
devices of the ``gpu.nvidia.com`` driver in ResourceSlices, and prepares the devices of allocated
claims (CDI). The chart installs the DeviceClasses claims name: ``gpu.nvidia.com`` (``type == 'gpu'``),
``mig.nvidia.com`` (``type == 'mig'``) and, with the passthrough feature, ``vfio.gpu.nvidia.com``.

The GPU Operator keeps running everything else on those nodes (GPU Feature Discovery, DCGM and its
exporter, mig-manager): its device plugin is kept off by the pool's node label
``nvidia.com/gpu.deploy.device-plugin: "false"`` (:data:`~gpufleet.components.gpu_scheduling.DEVICE_PLUGIN_DEPLOY_LABEL`),
so no GPU is advertised twice. (The operator's own DRA stack, the ``GPUCluster`` CR, replaces its
``ClusterPolicy`` cluster-wide: v26.7.0 ``values.yaml`` ``gpuCluster.deployCR``, "It is an invalid
configuration for both CRs to exist"; the standalone chart lets device-plugin and DRA pools share a
cluster.)

Values (every key exists in the chart's ``values.yaml`` at v25.12.0):

- ``resources.gpus.enabled`` with ``gpuResourcesEnabledOverride``: GPU allocation is the chart's
  default but its ``templates/validation.yaml`` refuses it without the override (a guard kept until
  DRA extended resources, KEP-5004, are GA);
- ``resources.computeDomains.enabled: false``: ComputeDomains are IMEX channels of multi-node NVLink
  systems (GB200/GB300 NVL72), which no instance family gpufleet knows has; that also leaves out the
  compute-domain controller;
- ``resourceApiVersion: resource.k8s.io/v1`` instead of guessing from the API server's discovery;
- ``nvidiaDriverRoot: /``: the EKS AL2023 NVIDIA AMI installs the driver on the host;
- ``kubeletPlugin.affinity``: the DRA pools' nodes (``gpufleet.io/gpu-pool In [...]``) instead of the
  chart's NFD labels (which would also match device-plugin pools), with their taints tolerated.

The plugin runs privileged with host paths, so its namespace is held to the ``privileged`` Pod
Security Standard.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, TypedDict

import pulumi
from typing_extensions import NotRequired

from gpufleet.components._k8s import atomic_release, managed_namespace
from gpufleet.components._k8s import require_dns_label
from gpufleet.components._validate import check_arg_keys
from gpufleet.components.gpu_scheduling import POOL_LABEL, GpuPlacement, agent_placements, pools_tolerations

TYPE = "gpufleet:nvidia:NvidiaDraDriver"

CHART = "nvidia-dra-driver-gpu"
CHART_VERSION = "25.12.0"
"""NVIDIA/k8s-dra-driver-gpu ``deployments/helm/nvidia-dra-driver-gpu/Chart.yaml`` at tag v25.12.0
(strict semver, no ``v``; ``kubeVersion: >=1.32.0-0``)."""
REPOSITORY = "https://helm.ngc.nvidia.com/nvidia"
RELEASE_NAME = "nvidia-dra-driver-gpu"
NAMESPACE = "nvidia-dra-driver-gpu"


class NvidiaDraDriverArgs(TypedDict):
    """Inputs of :class:`NvidiaDraDriver`."""

    placements: Sequence[GpuPlacement]
    """The DRA pools (``placement.dra``) the kubelet plugin runs on: their nodes are selected and
    their taints tolerated. Required, at least one."""
    namespace: NotRequired[str]
    """Namespace created for the driver (never ``default``: the chart refuses it). Default
    ``nvidia-dra-driver-gpu``."""
    wait_for: NotRequired[Sequence[pulumi.Resource]]
    """Resources the release waits for (the GPU pools, the GPU Operator). Default none."""


def driver_values(placements: Sequence[GpuPlacement], *, name: str = TYPE) -> dict[str, Any]:
    """The chart values gpufleet sets (plain data: tests walk them against the chart's values.yaml)."""
    placements = agent_placements(placements, name=name, what="DRA", serves=lambda p: p.dra,
                                  lacking="allocates GPUs with the device plugin (GpuNodePool allocation: dra)")
    tolerations = pools_tolerations(placements)
    pools = sorted({p.pool for p in placements})
    return {
        "nvidiaDriverRoot": "/",
        "resourceApiVersion": "resource.k8s.io/v1",
        "gpuResourcesEnabledOverride": True,
        "resources": {"gpus": {"enabled": True}, "computeDomains": {"enabled": False}},
        "kubeletPlugin": {
            "tolerations": tolerations,
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": POOL_LABEL, "operator": "In", "values": pools}]},
            ]}}},
        },
    }


class NvidiaDraDriver(pulumi.ComponentResource):
    """The NVIDIA DRA driver chart, pinned to :data:`CHART_VERSION`, in its own privileged namespace:
    children ``{name}-namespace`` and ``{name}-release``."""

    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: NvidiaDraDriverArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, NvidiaDraDriverArgs, name=TYPE)
        values = driver_values(args.get("placements") or [])
        namespace = args.get("namespace", NAMESPACE)
        require_dns_label(namespace, "namespace", name=TYPE, what="namespace name")
        if namespace == "default":
            raise ValueError(f"{TYPE}: namespace must not be 'default' (the chart's templates/validation.yaml refuses it)")
        super().__init__(TYPE, name, {}, opts)
        ns = managed_namespace(f"{name}-namespace", namespace, parent=self, pod_security="privileged")
        self.release = atomic_release(
            f"{name}-release",
            name=RELEASE_NAME,
            chart=CHART,
            version=CHART_VERSION,
            repository=REPOSITORY,
            namespace=ns.metadata.name,
            values=values,
            parent=self,
            depends_on=[ns, *args.get("wait_for", [])],
        )
        self.namespace = ns.metadata.name
        self.register_outputs({"namespace": self.namespace})
