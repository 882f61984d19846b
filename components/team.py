"""``Team``: one tenant of the GPU platform: a namespace with hard quotas, defaults, access and a queue.

Without per-team limits one team hoards the GPUs. A team gets:

- a **Namespace** named after the team, labelled with the environment
  (:data:`~gpufleet.components.gpu_scheduling.ENVIRONMENT_LABEL`), the team (:data:`TEAM_LABEL`, which
  also opts it into Kueue's pod-based integrations when those are enabled) and a Pod Security level;
- a **ResourceQuota**: the hard ceiling of CPU, memory, every GPU resource (whole GPUs, time-sliced
  replicas, MIG slices), PVC count and storage, whatever Kueue admits;
- a **LimitRange** giving containers default requests and limits (a quota on cpu/memory rejects pods
  that declare none);
- **EKS access entries** for the team's IAM principals, with an access policy scoped to the
  namespace, and the same principals in a Kubernetes group bound (in the namespace) to the matching
  built-in ClusterRole (``edit``/``view``/``admin``): unlike the fixed EKS policies, those roles
  aggregate the rights operators add for their custom resources (``aggregate-to-edit`` labels);
- a Kueue **LocalQueue** pointing at the team's ClusterQueue, when one is given.
"""

from __future__ import annotations

import re
from typing import Literal, Mapping, Optional, Sequence, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from gpufleet.components._validate import check_arg_keys, require, require_int_range, require_one_of
from gpufleet.components.gpu_scheduling import (
    DRA_GPU_DEVICE_CLASS, DRA_MIG_DEVICE_CLASS, ENVIRONMENT_LABEL, GPU_RESOURCE, MIG_RESOURCE_PREFIX, SHARED_GPU_RESOURCE,
)

TYPE = "gpufleet:tenancy:Team"

TEAM_LABEL = "gpufleet.io/team"
"""Namespace label naming the team that owns the namespace."""

ACCESS_POLICIES: Mapping[str, tuple[str, str]] = {
    "admin": ("AmazonEKSAdminPolicy", "admin"),
    "edit": ("AmazonEKSEditPolicy", "edit"),
    "view": ("AmazonEKSViewPolicy", "view"),
}
"""Access level → (EKS access policy, Kubernetes aggregated ClusterRole), both namespace-scoped."""

DEFAULT_REQUEST = {"cpu": "250m", "memory": "512Mi"}
DEFAULT_LIMIT = {"cpu": "1", "memory": "1Gi"}

LIMITS_FACTOR = 2
"""``limits.cpu``/``limits.memory`` of the quota are this multiple of the requests: containers may
burst above their requests, but not without bound."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_PRINCIPAL = re.compile(r"^arn:(aws[-a-z]*):iam::\d{12}:(role|user)/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)$")
_GPU_RESOURCE = re.compile(rf"^({re.escape(GPU_RESOURCE)}|{re.escape(SHARED_GPU_RESOURCE)}|{re.escape(MIG_RESOURCE_PREFIX)}\d+g\.\d+gb)$")
_DRA_QUOTA = re.compile(rf"^({re.escape(DRA_GPU_DEVICE_CLASS)}|{re.escape(DRA_MIG_DEVICE_CLASS)})\.deviceclass\.resource\.k8s\.io/devices$")
"""ResourceQuota name of the devices claimed from an NVIDIA DeviceClass (Kubernetes
``pkg/quota/v1/evaluator/core/resource_claims.go``: ``<class>.deviceclass.resource.k8s.io/devices``)."""
_RESERVED = ("default", "kube-system", "kube-public", "kube-node-lease")


class TeamAccess(TypedDict):
    """An IAM principal of the team."""

    principal_arn: str
    """ARN of the IAM role or user (one EKS access entry per principal per cluster). Required."""
    access_policy: NotRequired[Literal["admin", "edit", "view"]]
    """Rights in the team namespace. Default ``edit``."""


class TeamQuota(TypedDict):
    """The namespace's hard ceilings (ResourceQuota)."""

    cpu: int
    """CPU cores requested by all pods together (limits: twice that). Required."""
    memory_gib: int
    """Memory requested by all pods, GiB (limits: twice that). Required."""
    gpus: Mapping[str, int]
    """GPU resource name (``nvidia.com/gpu``, ``nvidia.com/gpu.shared``, ``nvidia.com/mig-<profile>``;
    quota ``requests.<name>``), or for DRA pools the DeviceClass quota name
    (``gpu.nvidia.com.deviceclass.resource.k8s.io/devices``, ``mig.nvidia.com...``; devices claimed)
    → most units requested at once. Required; a resource set to 0 is refused to the team."""
    pvcs: NotRequired[int]
    """PersistentVolumeClaims. Default 20."""
    storage_gib: NotRequired[int]
    """Storage requested by all PVCs, GiB. Default 2000."""


class TeamArgs(TypedDict):
    """Inputs of :class:`Team`."""

    team: str
    """Team name, also the namespace name (a DNS label, not a system namespace). Required."""
    environment: str
    """Value of the namespace's environment label (``dev``, ``staging``, ``prod``). Required."""
    quota: TeamQuota
    """Hard ceilings of the namespace. Required."""
    cluster_name: NotRequired[pulumi.Input[str]]
    """EKS cluster of the access entries. Required when ``access`` is not empty."""
    access: NotRequired[Sequence[TeamAccess]]
    """IAM principals given access to the namespace. Default none."""
    cluster_queue: NotRequired[pulumi.Input[str]]
    """Kueue ClusterQueue of the team's LocalQueue (pass the ClusterQueue's name output so the
    LocalQueue waits for it). Default none: no LocalQueue."""
    local_queue: NotRequired[str]
    """Name of the LocalQueue. Default the team name."""
    pod_security: NotRequired[Literal["privileged", "baseline", "restricted"]]
    """Pod Security Standard enforced in the namespace (``restricted`` is always warned and audited).
    Default ``baseline``."""
    labels: NotRequired[Mapping[str, str]]
    """Extra namespace labels. Default none."""


class Team(pulumi.ComponentResource):
    """A team's namespace with ResourceQuota, LimitRange, EKS access entries and Kueue LocalQueue.

    ``opts.depends_on`` holds for the Namespace too (children do not inherit it): pass the Kueue
    component so the namespace is created after Kueue and, on destroy, deleted while Kueue still
    runs. A namespace with pending Workloads keeps Kueue's finalizers; deleted after Kueue, it
    hangs in Terminating."""

    namespace: k8s.core.v1.Namespace
    """The team's Namespace (depend on it before creating anything inside)."""
    namespace_name: pulumi.Output[str]
    local_queue_name: Optional[str]
    """Name of the LocalQueue (jobs set ``kueue.x-k8s.io/queue-name`` to it), or None."""

    def __init__(self, name: str, args: TeamArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, TeamArgs, name=TYPE)
        team = require(args, "team", str, name=TYPE)
        if not _DNS_LABEL.match(team) or team in _RESERVED or team.startswith("kube-"):
            raise ValueError(f"{TYPE}: team must be a DNS label that is not a system namespace, got {team!r}")
        environment = require(args, "environment", str, name=TYPE)
        if not _DNS_LABEL.match(environment):
            raise ValueError(f"{TYPE}: environment must be a label value like 'prod', got {environment!r}")
        hard = _quota(require(args, "quota", dict, name=TYPE))
        access = _access(args.get("access", []))
        if access and args.get("cluster_name") is None:
            raise ValueError(f"{TYPE}: cluster_name is required when access is set")
        pod_security = require_one_of(
            args.get("pod_security", "baseline"), "pod_security", ("privileged", "baseline", "restricted"), name=TYPE)
        labels = dict(args.get("labels", {}))
        for key in (ENVIRONMENT_LABEL, TEAM_LABEL):
            if key in labels:
                raise ValueError(f"{TYPE}: labels must not set {key} (set by the component)")
        local_queue = args.get("local_queue", team)
        if args.get("cluster_queue") is not None and (not isinstance(local_queue, str) or not _DNS_LABEL.match(local_queue)):
            raise ValueError(f"{TYPE}: local_queue must be a DNS label, got {local_queue!r}")

        super().__init__(TYPE, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        after_callers_dependencies = pulumi.ResourceOptions(parent=self, depends_on=opts.depends_on if opts else None)
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": team,
                "labels": {
                    **labels,
                    "app.kubernetes.io/managed-by": "gpufleet",
                    ENVIRONMENT_LABEL: environment,
                    TEAM_LABEL: team,
                    "pod-security.kubernetes.io/enforce": pod_security,
                    "pod-security.kubernetes.io/audit": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
            },
            opts=after_callers_dependencies,
        )
        self.namespace_name = self.namespace.metadata.apply(lambda m: m["name"])
        in_namespace = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        k8s.core.v1.ResourceQuota(
            f"{name}-quota",
            metadata={"name": f"{team}-quota", "namespace": self.namespace_name},
            spec={"hard": hard},
            opts=in_namespace,
        )
        k8s.core.v1.LimitRange(
            f"{name}-limits",
            metadata={"name": f"{team}-defaults", "namespace": self.namespace_name},
            spec={"limits": [{"type": "Container", "defaultRequest": DEFAULT_REQUEST, "default": DEFAULT_LIMIT}]},
            opts=in_namespace,
        )

        group = f"gpufleet:team:{team}"
        if access:
            levels = sorted({level for _, _, level in access.values()})
            for level in levels:
                k8s.rbac.v1.RoleBinding(
                    f"{name}-{level}",
                    metadata={"name": f"gpufleet-team-{level}", "namespace": self.namespace_name},
                    role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ACCESS_POLICIES[level][1]},
                    subjects=[{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": f"{group}:{level}"}],
                    opts=in_namespace,
                )
        for key, (arn, partition, level) in access.items():
            entry = aws.eks.AccessEntry(
                f"{name}-{key}",
                cluster_name=args["cluster_name"],
                principal_arn=arn,
                type="STANDARD",
                kubernetes_groups=[f"{group}:{level}"],
                opts=child,
            )
            aws.eks.AccessPolicyAssociation(
                f"{name}-{key}-{level}",
                cluster_name=entry.cluster_name,
                principal_arn=entry.principal_arn,
                policy_arn=f"arn:{partition}:eks::aws:cluster-access-policy/{ACCESS_POLICIES[level][0]}",
                access_scope={"type": "namespace", "namespaces": [team]},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace]),
            )

        self.local_queue_name = None
        if args.get("cluster_queue") is not None:
            self.local_queue_name = local_queue
            k8s.apiextensions.CustomResource(
                f"{name}-queue",
                api_version="kueue.x-k8s.io/v1beta2",
                kind="LocalQueue",
                metadata={"name": local_queue, "namespace": self.namespace_name},
                spec={"clusterQueue": args["cluster_queue"]},
                opts=in_namespace,
            )
        self.register_outputs({"namespace_name": self.namespace_name})


def _quota(quota: Mapping[str, object]) -> dict[str, str]:
    cpu = require_int_range(quota.get("cpu"), "quota.cpu", 1, 100_000, name=TYPE)
    memory = require_int_range(quota.get("memory_gib"), "quota.memory_gib", 1, 10_000_000, name=TYPE)
    pvcs = require_int_range(quota.get("pvcs", 20), "quota.pvcs", 0, 10_000, name=TYPE)
    storage = require_int_range(quota.get("storage_gib", 2000), "quota.storage_gib", 0, 10_000_000, name=TYPE)
    gpus = quota.get("gpus")
    if not isinstance(gpus, Mapping) or not gpus:
        raise ValueError(f"{TYPE}: quota.gpus must map at least one GPU resource name to a count")
    hard = {
        "requests.cpu": str(cpu),
        "limits.cpu": str(cpu * LIMITS_FACTOR),
        "requests.memory": f"{memory}Gi",
        "limits.memory": f"{memory * LIMITS_FACTOR}Gi",
        "persistentvolumeclaims": str(pvcs),
        "requests.storage": f"{storage}Gi",
    }
    for resource, count in sorted(gpus.items()):
        dra = isinstance(resource, str) and bool(_DRA_QUOTA.match(resource))
        if not isinstance(resource, str) or not (dra or _GPU_RESOURCE.match(resource)):
            raise ValueError(f"{TYPE}: quota.gpus has {resource!r}, not an NVIDIA GPU resource name or "
                             "<NVIDIA DeviceClass>.deviceclass.resource.k8s.io/devices")
        # Extended resources cannot be overcommitted: a quota only takes their requests. DRA devices
        # are counted per DeviceClass as claimed.
        hard[resource if dra else f"requests.{resource}"] = str(
            require_int_range(count, f"quota.gpus[{resource!r}]", 0, 1_000_000, name=TYPE))
    return hard


def _access(entries: Sequence[TeamAccess]) -> dict[str, tuple[str, str, str]]:
    """``key → (principal ARN, partition, access level)``; the key names the child resources."""
    result: dict[str, tuple[str, str, str]] = {}
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        arn = entry.get("principal_arn")
        match = _PRINCIPAL.match(str(arn))
        if not match:
            raise ValueError(f"{TYPE}: access[{index}].principal_arn is not an IAM role or user ARN: {arn!r}")
        if arn in seen:
            raise ValueError(f"{TYPE}: access[{index}].principal_arn repeats {arn} (one access entry per principal)")
        seen.add(str(arn))
        level = require_one_of(entry.get("access_policy", "edit"), f"access[{index}].access_policy", tuple(ACCESS_POLICIES), name=TYPE)
        key = re.sub(r"[^A-Za-z0-9-]", "-", match.group(3)).lower()
        if key in result:
            key = f"{key}-{index}"
        result[key] = (str(arn), match.group(1), level)
    return result
