"""gpufleet's Pulumi components: import them into any Pulumi Python program.

    from gpufleet.components import Cluster, GpuNodePool, InferenceService, Karpenter, Network

Shared names (GPU taint, pool label, priority classes) and :class:`GpuPlacement`, which workload
components take to land on a GPU pool, are in :mod:`gpufleet.components.gpu_scheduling`; the GPU
instance facts table is :mod:`gpufleet.components.gpu_instances`.

The names below are imported on first use (a module ``__getattr__``), so importing a light module
such as :mod:`gpufleet.components.gpu_scheduling` (the policy rules' constants) does not import
Pulumi and every provider SDK; ``from gpufleet.components import Cluster`` works as always.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpufleet.components.autoscaling import Keda, KedaArgs
    from gpufleet.components.cluster import AccessEntry, Cluster, ClusterArgs, SystemNodeGroup
    from gpufleet.components.dra_driver import NvidiaDraDriver, NvidiaDraDriverArgs
    from gpufleet.components.efa import EfaDevicePlugin, EfaDevicePluginArgs
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
    from gpufleet.components.kubeflow_trainer import KubeflowTrainer, KubeflowTrainerArgs
    from gpufleet.components.kuberay import KubeRayOperator, KubeRayOperatorArgs
    from gpufleet.components.kueue import ClusterQueueSpec, GpuQuota, Kueue, KueueArgs
    from gpufleet.components.leader_worker_set import LeaderWorkerSetController, LeaderWorkerSetControllerArgs
    from gpufleet.components.lustre_cache import LustreModelCache, LustreModelCacheArgs
    from gpufleet.components.model_cache import ModelCache, ModelCacheArgs
    from gpufleet.components.model_loader import ModelWeightsLoader, ModelWeightsLoaderArgs
    from gpufleet.components.multi_node_inference import MultiNodeInferenceService, MultiNodeInferenceServiceArgs
    from gpufleet.components.network import Network, NetworkArgs
    from gpufleet.components.observability import ObservabilityStack, ObservabilityStackArgs
    from gpufleet.components.priority_classes import PriorityClasses, PriorityClassesArgs
    from gpufleet.components.ray_cluster import HeadSpec, RayCluster, RayClusterArgs, RayPodArgs, RayService, RayServiceArgs, WorkerGroup
    from gpufleet.components.ray_job import RayJob, RayJobArgs
    from gpufleet.components.ray_serve_config import ServeApplication, ServeDeployment
    from gpufleet.components.s3_model_cache import S3ModelCache, S3ModelCacheArgs
    from gpufleet.components.team import Team, TeamAccess, TeamArgs, TeamQuota
    from gpufleet.components.triton_models import DynamicBatchingArgs, InstanceGroupArgs, TritonModelArgs
    from gpufleet.components.triton_service import TritonAutoscalingArgs, TritonService, TritonServiceArgs
    from gpufleet.components.training_job import TrainingJob, TrainingJobArgs

_LAZY = {
    "AccessEntry": "gpufleet.components.cluster",
    "AlertThresholds": "gpufleet.components.gpu_monitoring",
    "AutoscalingArgs": "gpufleet.components.inference_service",
    "CanaryArgs": "gpufleet.components.inference_service",
    "Cluster": "gpufleet.components.cluster",
    "ClusterArgs": "gpufleet.components.cluster",
    "ClusterQueueSpec": "gpufleet.components.kueue",
    "DisruptionBudgetArgs": "gpufleet.components.inference_service",
    "DynamicBatchingArgs": "gpufleet.components.triton_models",
    "EfaDevicePlugin": "gpufleet.components.efa",
    "EfaDevicePluginArgs": "gpufleet.components.efa",
    "NvidiaDraDriver": "gpufleet.components.dra_driver",
    "NvidiaDraDriverArgs": "gpufleet.components.dra_driver",
    "GpuMonitoring": "gpufleet.components.gpu_monitoring",
    "GpuMonitoringArgs": "gpufleet.components.gpu_monitoring",
    "GpuNodePool": "gpufleet.components.gpu_node_pool",
    "GpuNodePoolArgs": "gpufleet.components.gpu_node_pool",
    "GpuOperator": "gpufleet.components.gpu_operator",
    "GpuOperatorArgs": "gpufleet.components.gpu_operator",
    "GpuPlacement": "gpufleet.components.gpu_scheduling",
    "GpuQuota": "gpufleet.components.kueue",
    "HeadSpec": "gpufleet.components.ray_cluster",
    "HuggingFaceToken": "gpufleet.components.hf_token",
    "HuggingFaceTokenArgs": "gpufleet.components.hf_token",
    "InferenceService": "gpufleet.components.inference_service",
    "InferenceServiceArgs": "gpufleet.components.inference_service",
    "InstanceGroupArgs": "gpufleet.components.triton_models",
    "KServe": "gpufleet.components.kserve",
    "KServeArgs": "gpufleet.components.kserve",
    "Karpenter": "gpufleet.components.karpenter",
    "KarpenterArgs": "gpufleet.components.karpenter",
    "Keda": "gpufleet.components.autoscaling",
    "KedaArgs": "gpufleet.components.autoscaling",
    "KubeRayOperator": "gpufleet.components.kuberay",
    "KubeRayOperatorArgs": "gpufleet.components.kuberay",
    "KubeflowTrainer": "gpufleet.components.kubeflow_trainer",
    "KubeflowTrainerArgs": "gpufleet.components.kubeflow_trainer",
    "Kueue": "gpufleet.components.kueue",
    "KueueArgs": "gpufleet.components.kueue",
    "LeaderWorkerSetController": "gpufleet.components.leader_worker_set",
    "LeaderWorkerSetControllerArgs": "gpufleet.components.leader_worker_set",
    "LustreModelCache": "gpufleet.components.lustre_cache",
    "LustreModelCacheArgs": "gpufleet.components.lustre_cache",
    "ModelCache": "gpufleet.components.model_cache",
    "ModelCacheArgs": "gpufleet.components.model_cache",
    "ModelWeightsLoader": "gpufleet.components.model_loader",
    "ModelWeightsLoaderArgs": "gpufleet.components.model_loader",
    "MultiNodeInferenceService": "gpufleet.components.multi_node_inference",
    "MultiNodeInferenceServiceArgs": "gpufleet.components.multi_node_inference",
    "Network": "gpufleet.components.network",
    "NetworkArgs": "gpufleet.components.network",
    "ObservabilityStack": "gpufleet.components.observability",
    "ObservabilityStackArgs": "gpufleet.components.observability",
    "PriorityClasses": "gpufleet.components.priority_classes",
    "PriorityClassesArgs": "gpufleet.components.priority_classes",
    "RayCluster": "gpufleet.components.ray_cluster",
    "RayClusterArgs": "gpufleet.components.ray_cluster",
    "RayJob": "gpufleet.components.ray_job",
    "RayJobArgs": "gpufleet.components.ray_job",
    "RayPodArgs": "gpufleet.components.ray_cluster",
    "RayService": "gpufleet.components.ray_cluster",
    "RayServiceArgs": "gpufleet.components.ray_cluster",
    "RouteArgs": "gpufleet.components.inference_service",
    "S3ModelCache": "gpufleet.components.s3_model_cache",
    "S3ModelCacheArgs": "gpufleet.components.s3_model_cache",
    "ServeApplication": "gpufleet.components.ray_serve_config",
    "ServeDeployment": "gpufleet.components.ray_serve_config",
    "StandaloneDcgmExporter": "gpufleet.components.gpu_monitoring",
    "SystemNodeGroup": "gpufleet.components.cluster",
    "Team": "gpufleet.components.team",
    "TeamAccess": "gpufleet.components.team",
    "TeamArgs": "gpufleet.components.team",
    "TeamQuota": "gpufleet.components.team",
    "TrainingJob": "gpufleet.components.training_job",
    "TrainingJobArgs": "gpufleet.components.training_job",
    "TritonAutoscalingArgs": "gpufleet.components.triton_service",
    "TritonModelArgs": "gpufleet.components.triton_models",
    "TritonService": "gpufleet.components.triton_service",
    "TritonServiceArgs": "gpufleet.components.triton_service",
    "WorkerGroup": "gpufleet.components.ray_cluster",
}

__all__ = [
    "AccessEntry",
    "AlertThresholds",
    "AutoscalingArgs",
    "CanaryArgs",
    "DisruptionBudgetArgs",
    "Cluster",
    "ClusterArgs",
    "ClusterQueueSpec",
    "EfaDevicePlugin",
    "EfaDevicePluginArgs",
    "NvidiaDraDriver",
    "NvidiaDraDriverArgs",
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
    "KubeflowTrainer",
    "KubeflowTrainerArgs",
    "KubeRayOperator",
    "KubeRayOperatorArgs",
    "Kueue",
    "KueueArgs",
    "LeaderWorkerSetController",
    "LeaderWorkerSetControllerArgs",
    "LustreModelCache",
    "LustreModelCacheArgs",
    "ModelCache",
    "ModelCacheArgs",
    "ModelWeightsLoader",
    "ModelWeightsLoaderArgs",
    "MultiNodeInferenceService",
    "MultiNodeInferenceServiceArgs",
    "Network",
    "NetworkArgs",
    "ObservabilityStack",
    "ObservabilityStackArgs",
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
    "S3ModelCache",
    "S3ModelCacheArgs",
    "ServeApplication",
    "ServeDeployment",
    "StandaloneDcgmExporter",
    "SystemNodeGroup",
    "Team",
    "TeamAccess",
    "TeamArgs",
    "TeamQuota",
    "TrainingJob",
    "TrainingJobArgs",
    "WorkerGroup",
    "DynamicBatchingArgs",
    "InstanceGroupArgs",
    "TritonAutoscalingArgs",
    "TritonModelArgs",
    "TritonService",
    "TritonServiceArgs",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
