"""gpufleet's Pulumi components: import them into any Pulumi Python program.

    from gpufleet.components import Cluster, GpuNodePool, InferenceService, Karpenter, Network

Shared names (GPU taint, pool label, priority classes) and :class:`GpuPlacement`, which workload
components take to land on a GPU pool, are in :mod:`gpufleet.components.gpu_scheduling`; the GPU
instance facts table is :mod:`gpufleet.components.gpu_instances`.
"""

from gpufleet.components.autoscaling import Keda, KedaArgs
from gpufleet.components.cluster import AccessEntry, Cluster, ClusterArgs, SystemNodeGroup
from gpufleet.components.gpu_monitoring import AlertThresholds, GpuMonitoring, GpuMonitoringArgs, StandaloneDcgmExporter
from gpufleet.components.gpu_node_pool import GpuNodePool, GpuNodePoolArgs
from gpufleet.components.gpu_operator import GpuOperator, GpuOperatorArgs
from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.components.hf_token import HuggingFaceToken, HuggingFaceTokenArgs
from gpufleet.components.inference_service import (
    AutoscalingArgs,
    CanaryArgs,
    DisruptionBudgetArgs,
    InferenceService,
    InferenceServiceArgs,
    RouteArgs,
)
from gpufleet.components.karpenter import Karpenter, KarpenterArgs
from gpufleet.components.kserve import KServe, KServeArgs
from gpufleet.components.kuberay import KubeRayOperator, KubeRayOperatorArgs
from gpufleet.components.kueue import ClusterQueueSpec, GpuQuota, Kueue, KueueArgs
from gpufleet.components.lustre_cache import LustreModelCache, LustreModelCacheArgs
from gpufleet.components.model_cache import ModelCache, ModelCacheArgs
from gpufleet.components.model_loader import ModelWeightsLoader, ModelWeightsLoaderArgs
from gpufleet.components.network import Network, NetworkArgs
from gpufleet.components.priority_classes import PriorityClasses, PriorityClassesArgs
from gpufleet.components.ray_cluster import HeadSpec, RayCluster, RayClusterArgs, RayPodArgs, RayService, RayServiceArgs, WorkerGroup
from gpufleet.components.ray_job import RayJob, RayJobArgs
from gpufleet.components.ray_serve_config import ServeApplication, ServeDeployment
from gpufleet.components.team import Team, TeamAccess, TeamArgs, TeamQuota
from gpufleet.components.triton_models import DynamicBatchingArgs, InstanceGroupArgs, TritonModelArgs
from gpufleet.components.triton_service import TritonAutoscalingArgs, TritonService, TritonServiceArgs

__all__ = [
    "AccessEntry",
    "AlertThresholds",
    "AutoscalingArgs",
    "CanaryArgs",
    "DisruptionBudgetArgs",
    "Cluster",
    "ClusterArgs",
    "ClusterQueueSpec",
    "GpuMonitoring",
    "GpuMonitoringArgs",
    "GpuNodePool",
    "GpuNodePoolArgs",
    "GpuOperator",
    "GpuOperatorArgs",
    "GpuPlacement",
    "GpuQuota",
    "HeadSpec",
    "HuggingFaceToken",
    "HuggingFaceTokenArgs",
    "InferenceService",
    "InferenceServiceArgs",
    "KServe",
    "KServeArgs",
    "Karpenter",
    "KarpenterArgs",
    "Keda",
    "KedaArgs",
    "KubeRayOperator",
    "KubeRayOperatorArgs",
    "Kueue",
    "KueueArgs",
    "LustreModelCache",
    "LustreModelCacheArgs",
    "ModelCache",
    "ModelCacheArgs",
    "ModelWeightsLoader",
    "ModelWeightsLoaderArgs",
    "Network",
    "NetworkArgs",
    "PriorityClasses",
    "PriorityClassesArgs",
    "RayCluster",
    "RayClusterArgs",
    "RayJob",
    "RayJobArgs",
    "RayPodArgs",
    "RayService",
    "RayServiceArgs",
    "RouteArgs",
    "ServeApplication",
    "ServeDeployment",
    "StandaloneDcgmExporter",
    "SystemNodeGroup",
    "Team",
    "TeamAccess",
    "TeamArgs",
    "TeamQuota",
    "WorkerGroup",
    # Triton Inference Server
    "DynamicBatchingArgs",
    "InstanceGroupArgs",
    "TritonAutoscalingArgs",
    "TritonModelArgs",
    "TritonService",
    "TritonServiceArgs",
]
