"""Small clusters for the simulator's tests: manifests built by hand, read as the simulator reads a plan."""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from gpufleet.infra.config import parse_stack_config
from gpufleet.infra.stack_file import config_map_from_stack_file
from gpufleet.infra.simulate.inputs import ClusterInputs, read_inputs
from gpufleet.policies.core import Subject

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
SYSTEM = {"gpufleet.io/node-role": "system"}


def config(system_types: Sequence[str] = ("m7i.2xlarge",), min_size: int = 2, **extra: Any) -> Any:
    """A parsed stack config with a system node group and nothing else enabled beyond the defaults."""
    document = {"config": {
        "gpufleet:environment": "dev", "gpufleet:region": "us-east-1", "gpufleet:kubernetesVersion": "1.35",
        "gpufleet:cluster": {"systemNodes": {"instanceTypes": list(system_types), "minSize": min_size,
                                             "desiredSize": min_size, "maxSize": max(min_size, 4)}},
        "gpufleet:karpenter": {"replicas": min(2, min_size)},
        **extra,
    }}
    return parse_stack_config(config_map_from_stack_file(document))


def node_pool(name: str, *, families: Sequence[str] = (), types: Sequence[str] = (), capacity: Sequence[str] = ("on-demand",),
              gpus: Optional[int] = None, labels: Optional[dict[str, str]] = None) -> dict[str, Any]:
    requirements: list[dict[str, Any]] = [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": list(capacity)}]
    if families:
        requirements.append({"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": list(families)})
    if types:
        requirements.append({"key": "node.kubernetes.io/instance-type", "operator": "In", "values": list(types)})
    return {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": {"name": name}, "spec": {
        "template": {"metadata": {"labels": {"gpufleet.io/gpu-pool": name, **(labels or {})}},
                     "spec": {"requirements": requirements, "taints": [GPU_TAINT],
                              "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": name}}},
        "limits": {"nvidia.com/gpu": gpus} if gpus is not None else {},
    }}


def overlay(name: str, pool: str, capacity: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "karpenter.sh/v1alpha1", "kind": "NodeOverlay", "metadata": {"name": name}, "spec": {
        "requirements": [{"key": "karpenter.sh/nodepool", "operator": "In", "values": [pool]}], "capacity": capacity}}


def deployment(name: str, pool: Optional[str], replicas: int, *, resource: str = "nvidia.com/gpu", gpus: int = 1,
               cpu: str = "1", memory: str = "4Gi", namespace: str = "apps", anti_affinity: Optional[str] = None,
               tolerate: bool = True, extra_spec: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    labels = {"app": name}
    requests: dict[str, Any] = {"cpu": cpu, "memory": memory}
    if gpus:
        requests[resource] = gpus
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "example/app:1",
                                            "resources": {"requests": requests, "limits": requests}}]}
    if pool:
        spec["nodeSelector"] = {"gpufleet.io/gpu-pool": pool}
    if tolerate:
        spec["tolerations"] = [GPU_TOLERATION]
    if anti_affinity:
        term = {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}
        spec["affinity"] = {"podAntiAffinity": (
            {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]}
            if anti_affinity == "preferred" else {"requiredDuringSchedulingIgnoredDuringExecution": [term]})}
    spec.update(extra_spec or {})
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": spec}}}


def job(name: str, namespace: str, queue: str, gpus: int, *, cpu: str = "4", memory: str = "16Gi") -> dict[str, Any]:
    requests = {"cpu": cpu, "memory": memory, "nvidia.com/gpu": gpus}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": namespace, "labels": {"kueue.x-k8s.io/queue-name": queue}},
            "spec": {"parallelism": 1, "suspend": True, "template": {"metadata": {"labels": {"job": name}}, "spec": {
                "restartPolicy": "Never", "tolerations": [GPU_TOLERATION],
                "containers": [{"name": "main", "image": "example/train:1", "resources": {"requests": requests, "limits": requests}}],
            }}}}


def inputs(manifests: Sequence[dict[str, Any]], cfg: Any = None, stack: str = "test") -> ClusterInputs:
    subjects = [Subject.from_manifest(m, urn=f"urn:test::{m['kind']}::{m['metadata']['name']}") for m in manifests]
    return read_inputs(stack, "us-east-1", subjects, cfg if cfg is not None else config())


def dumps(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True)
