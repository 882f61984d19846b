"""``Cluster``: the EKS control plane, its secrets key and the system node group for controllers."""

from __future__ import annotations

import re
from typing import Literal, Mapping, Optional, Sequence, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from gpufleet.components._file_cache import pinned_addon_version
from gpufleet.components._iam import eks_node_role
from gpufleet.components._validate import check_arg_keys, require, require_int_range, require_one_of
from gpufleet.components.eks_versions import unsupported_version_problem
from gpufleet.components.gpu_scheduling import SYSTEM_NODE_SELECTOR
from gpufleet.components.workload_identity import POD_IDENTITY_AGENT_ADDON, POD_IDENTITY_AGENT_ADDON_VERSIONS
from gpufleet.policies.cidr import MAX_OPEN_PREFIX, coverage

TYPE = "gpufleet:cluster:Cluster"

CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")

ACCESS_POLICIES = {
    "cluster-admin": "AmazonEKSClusterAdminPolicy",
    "admin": "AmazonEKSAdminPolicy",
    "edit": "AmazonEKSEditPolicy",
    "view": "AmazonEKSViewPolicy",
}

SYSTEM_NODE_LABEL, = SYSTEM_NODE_SELECTOR
"""Label on the system node group's nodes (value ``system``): controllers select it."""



class AccessEntry(TypedDict):
    """An IAM principal given cluster-wide Kubernetes access."""

    principal_arn: str
    """ARN of the IAM role or user. Required."""
    access_policy: NotRequired[Literal["cluster-admin", "admin", "edit", "view"]]
    """EKS access policy, cluster-wide. Default ``cluster-admin``."""


class SystemNodeGroup(TypedDict):
    """The EKS managed node group (Amazon Linux 2023) that runs cluster controllers."""

    instance_types: NotRequired[Sequence[str]]
    """Instance types, one CPU architecture. Default ``["m7i.xlarge"]``."""
    min_size: NotRequired[int]
    """Minimum nodes. Default 2."""
    max_size: NotRequired[int]
    """Maximum nodes. Default 4."""
    desired_size: NotRequired[int]
    """Nodes at creation (later changes by autoscaling are kept). Default 2."""
    disk_size_gib: NotRequired[int]
    """Encrypted gp3 root volume. Default 50."""


class ClusterArgs(TypedDict):
    """Inputs of :class:`Cluster`."""

    cluster_name: str
    """EKS cluster name (also the Karpenter discovery tag value). Required."""
    kubernetes_version: str
    """EKS Kubernetes minor version, one of ``EKS_SUPPORTED_VERSIONS`` (``"1.32"`` to ``"1.36"``). Required."""
    vpc_id: pulumi.Input[str]
    """VPC of the cluster. Required."""
    private_subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Subnets for the control plane ENIs and the system nodes. Required."""
    public_subnet_ids: NotRequired[pulumi.Input[Sequence[pulumi.Input[str]]]]
    """Subnets for internet-facing load balancers. Default none."""
    endpoint_private_access: NotRequired[bool]
    """Serve the Kubernetes API inside the VPC. Default true."""
    endpoint_public_access: NotRequired[bool]
    """Serve the API publicly too (requires ``public_access_cidrs``). Default false."""
    public_access_cidrs: NotRequired[Sequence[str]]
    """Networks allowed to reach a public endpoint; ``0.0.0.0/0`` is refused. Default none."""
    secrets_encryption: NotRequired[bool]
    """Envelope-encrypt Secrets with a dedicated KMS key (rotated, protected). Default true."""
    log_types: NotRequired[Sequence[str]]
    """Control-plane log types sent to CloudWatch. Default all five."""
    system_nodes: NotRequired[SystemNodeGroup]
    """The controllers' node group. Default: see :class:`SystemNodeGroup`."""
    access_entries: NotRequired[Sequence[AccessEntry]]
    """IAM principals given cluster access. Default none (only the creator, through EKS)."""
    deletion_protection: NotRequired[bool]
    """Refuse deletion of the EKS cluster at the AWS API. Default false."""
    pod_identity_agent: NotRequired[bool]
    """Install the ``eks-pod-identity-agent`` add-on (EKS Pod Identity: a credentials agent on every
    node), which components with ``workload_identity: "podIdentity"`` need; the Kubernetes
    ``provider`` waits for it. Default false."""
    pod_identity_agent_version: NotRequired[str]
    """Agent add-on version instead of the pinned one (``POD_IDENTITY_AGENT_ADDON_VERSIONS`` row of
    ``kubernetes_version``), e.g. ``v1.3.9-eksbuild.3``. Default the pinned one."""
    tags: NotRequired[Mapping[str, str]]
    """Extra tags for every AWS resource. Default none."""


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def cpu_architecture(instance_type: str) -> str:
    """``arm64`` for Graviton families (a ``g`` after the generation digit: m7g, c7gn, r8gd), else ``x86_64``."""
    match = re.match(r"^([a-z]+)(\d+)([a-z-]*)\.", instance_type)
    if not match:
        raise ValueError(f"{instance_type!r} is not an EC2 instance type")
    return "arm64" if "g" in match.group(3) else "x86_64"


class Cluster(pulumi.ComponentResource):
    """An EKS cluster (pulumi-eks, no default node group) with API authentication and access
    entries, an OIDC provider for IRSA (and optionally the EKS Pod Identity agent add-on), a dedicated KMS key for Secrets, control-plane logging, and an
    EKS managed AL2023 node group for controllers with IMDSv2 enforced.

    ``provider`` is a Kubernetes provider for this cluster: pass it to downstream components."""

    cluster_name: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_provider_url: pulumi.Output[str]
    cluster_security_group_id: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(self, name: str, args: ClusterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, ClusterArgs, name=TYPE)
        cluster_name = require(args, "cluster_name", str, name=TYPE)
        version = require(args, "kubernetes_version", str, name=TYPE)
        version_problem = unsupported_version_problem(version)
        if version_problem:
            raise ValueError(f"{TYPE}: kubernetes_version: {version_problem}")
        for key in ("vpc_id", "private_subnet_ids"):
            if args.get(key) is None:
                raise ValueError(f"{TYPE}: {key} is required")
        private_access = args.get("endpoint_private_access", True)
        public_access = args.get("endpoint_public_access", False)
        public_cidrs = list(args.get("public_access_cidrs", []))
        _check_endpoint(private_access, public_access, public_cidrs)
        log_types = list(args.get("log_types", CONTROL_PLANE_LOG_TYPES))
        for log_type in log_types:
            require_one_of(log_type, "log_types[]", CONTROL_PLANE_LOG_TYPES, name=TYPE)
        nodes = _system_nodes(args.get("system_nodes", {}))
        entries = _access_entries(args.get("access_entries", []))
        encrypt = args.get("secrets_encryption", True)
        pod_identity_agent = args.get("pod_identity_agent", False)
        if not isinstance(pod_identity_agent, bool):
            raise TypeError(f"{TYPE}: pod_identity_agent must be bool, got {type(pod_identity_agent).__name__}")
        agent_version = (pinned_addon_version(args.get("pod_identity_agent_version"), version, POD_IDENTITY_AGENT_ADDON_VERSIONS,
                                              addon_name=POD_IDENTITY_AGENT_ADDON, name=TYPE)
                         if pod_identity_agent else None)
        tags = dict(args.get("tags", {}))

        super().__init__(TYPE, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        partition = region.apply(partition_of)

        secrets_key = None
        if encrypt:
            secrets_key = aws.kms.Key(
                f"{name}-secrets-key",
                description=f"Envelope encryption of Kubernetes Secrets in EKS cluster {cluster_name}",
                enable_key_rotation=True,
                deletion_window_in_days=30,
                tags=tags,
                # Losing this key makes every Secret in etcd unreadable.
                opts=pulumi.ResourceOptions(parent=self, protect=True),
            )
            aws.kms.Alias(
                f"{name}-secrets-key-alias",
                name=f"alias/{cluster_name}-eks-secrets",
                target_key_id=secrets_key.key_id,
                opts=child,
            )

        self._eks = eks.Cluster(
            f"{name}-eks",
            name=cluster_name,
            version=version,
            vpc_id=args["vpc_id"],
            private_subnet_ids=args["private_subnet_ids"],
            public_subnet_ids=args.get("public_subnet_ids"),
            skip_default_node_group=True,
            create_instance_role=False,
            node_associate_public_ip_address=False,
            authentication_mode=eks.AuthenticationMode.API,
            access_entries=entries,
            create_oidc_provider=True,
            endpoint_private_access=private_access,
            endpoint_public_access=public_access,
            public_access_cidrs=public_cidrs or None,
            encryption_config_key_arn=secrets_key.arn if secrets_key else None,
            enabled_cluster_log_types=log_types,
            deletion_protection=args.get("deletion_protection", False),
            tags=tags,
            opts=child,
        )

        node_role, attachments = eks_node_role(
            f"{name}-system-node",
            description=f"System node group of EKS cluster {cluster_name}",
            partition=partition,
            tags=tags,
            parent=self,
        )
        launch_template = aws.ec2.LaunchTemplate(
            f"{name}-system-lt",
            description=f"System nodes of EKS cluster {cluster_name}: IMDSv2 only, encrypted gp3 root",
            update_default_version=True,
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                # 1 hop: pods cannot reach the node's instance credentials; controllers use IRSA.
                "http_put_response_hop_limit": 1,
            },
            block_device_mappings=[{
                "device_name": "/dev/xvda",
                "ebs": {
                    "volume_size": nodes["disk_size_gib"],
                    "volume_type": "gp3",
                    "encrypted": "true",
                    "delete_on_termination": "true",
                },
            }],
            tag_specifications=[
                {"resource_type": "instance", "tags": {**tags, "Name": f"{cluster_name}-system"}},
                {"resource_type": "volume", "tags": {**tags, "Name": f"{cluster_name}-system"}},
            ],
            tags=tags,
            opts=child,
        )
        system_nodes = aws.eks.NodeGroup(
            f"{name}-system",
            cluster_name=cluster_name,
            node_role_arn=node_role.arn,
            subnet_ids=args["private_subnet_ids"],
            ami_type=nodes["ami_type"],
            capacity_type="ON_DEMAND",
            instance_types=nodes["instance_types"],
            scaling_config={
                "min_size": nodes["min_size"],
                "max_size": nodes["max_size"],
                "desired_size": nodes["desired_size"],
            },
            update_config={"max_unavailable": 1},
            launch_template={"id": launch_template.id, "version": launch_template.latest_version.apply(str)},
            labels=dict(SYSTEM_NODE_SELECTOR),
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self._eks, *attachments],
                # Cluster autoscaling owns the size after creation.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )

        # EKS Pod Identity: the agent DaemonSet (it tolerates every taint, so it runs on GPU nodes too)
        # serves the credentials of the roles associated with a pod's service account.
        self.pod_identity_agent: Optional[aws.eks.Addon] = None
        if pod_identity_agent:
            self.pod_identity_agent = aws.eks.Addon(
                f"{name}-pod-identity-agent",
                cluster_name=cluster_name,
                addon_name=POD_IDENTITY_AGENT_ADDON,
                addon_version=agent_version,
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="PRESERVE",
                tags=tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[system_nodes]),
            )

        # Everything installed through this provider waits for the system nodes (controllers have
        # nowhere else to run: GPU nodes are tainted) and, with Pod Identity, for the agent that
        # hands controllers their credentials; on destroy it is removed while they still run:
        # Karpenter must outlive its NodePools to terminate their GPU instances.
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self._eks.kubeconfig_json,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[system_nodes, *([self.pod_identity_agent] if self.pod_identity_agent else [])]),
        )
        # Derived from a cluster output, so whatever uses the name waits for the cluster.
        self.cluster_name = self._eks.kubeconfig_json.apply(lambda _: cluster_name)
        self.kubeconfig = pulumi.Output.secret(self._eks.kubeconfig_json)
        self.oidc_provider_arn = self._eks.oidc_provider_arn
        self.oidc_provider_url = self._eks.oidc_provider_url
        # The security group EKS creates for every cluster (not pulumi-eks's own groups): the control
        # plane ENIs and the system nodes are in it and it admits all traffic among its members, so nodes
        # a provisioner such as Karpenter adds to it reach the API server and cluster DNS.
        self.cluster_security_group_id = aws.eks.get_cluster_output(
            name=self.cluster_name, opts=pulumi.InvokeOutputOptions(parent=self)
        ).vpc_config.cluster_security_group_id
        self.register_outputs({
            "cluster_name": self.cluster_name,
            "kubeconfig": self.kubeconfig,
            "oidc_provider_arn": self.oidc_provider_arn,
            "oidc_provider_url": self.oidc_provider_url,
            "cluster_security_group_id": self.cluster_security_group_id,
        })


def _check_endpoint(private_access: object, public_access: object, public_cidrs: list[str]) -> None:
    if not isinstance(private_access, bool) or not isinstance(public_access, bool):
        raise TypeError(f"{TYPE}: endpoint_private_access and endpoint_public_access must be bool")
    if not (private_access or public_access):
        raise ValueError(f"{TYPE}: endpoint_private_access and endpoint_public_access are both false: the API would be unreachable")
    if public_access and not public_cidrs:
        raise ValueError(f"{TYPE}: endpoint_public_access needs public_access_cidrs (the networks allowed to reach the API)")
    if public_cidrs and not public_access:
        raise ValueError(f"{TYPE}: public_access_cidrs is set but endpoint_public_access is false")
    if any(cidr.endswith("/0") for cidr in public_cidrs):
        raise ValueError(f"{TYPE}: public_access_cidrs must not contain a /0 network (the whole internet)")
    try:
        covered = coverage(public_cidrs)
    except ValueError as exc:
        raise ValueError(f"{TYPE}: public_access_cidrs: {exc}") from None
    if covered.wider_than(MAX_OPEN_PREFIX):
        raise ValueError(f"{TYPE}: public_access_cidrs together cover {covered.describe()}, more than a "
                         f"/{MAX_OPEN_PREFIX}: name the networks that need the API")


def _system_nodes(spec: SystemNodeGroup) -> dict:
    types = list(spec.get("instance_types", ["m7i.xlarge"]))
    if not types:
        raise ValueError(f"{TYPE}: system_nodes.instance_types must name at least one type")
    try:
        arches = {cpu_architecture(t) for t in types}
    except ValueError as exc:
        raise ValueError(f"{TYPE}: system_nodes.instance_types: {exc}") from None
    if len(arches) != 1:
        raise ValueError(f"{TYPE}: system_nodes.instance_types mixes CPU architectures ({', '.join(types)}): one AMI type serves one")
    sizes = {
        key: require_int_range(spec.get(key, default), f"system_nodes.{key}", 1, 100, name=TYPE)
        for key, default in (("min_size", 2), ("max_size", 4), ("desired_size", 2))
    }
    if not sizes["min_size"] <= sizes["desired_size"] <= sizes["max_size"]:
        raise ValueError(f"{TYPE}: system_nodes needs min_size <= desired_size <= max_size, got {sizes}")
    return {
        **sizes,
        "instance_types": types,
        "ami_type": "AL2023_ARM_64_STANDARD" if arches == {"arm64"} else "AL2023_x86_64_STANDARD",
        "disk_size_gib": require_int_range(spec.get("disk_size_gib", 50), "system_nodes.disk_size_gib", 20, 1000, name=TYPE),
    }


def _access_entries(entries: Sequence[AccessEntry]) -> dict[str, dict]:
    result: dict[str, dict] = {}
    for index, entry in enumerate(entries):
        arn = entry.get("principal_arn")
        match = re.fullmatch(r"arn:(aws[-a-z]*):iam::\d{12}:(role|user)/(?:[\w+=,.@-]+/)*([\w+=,.@-]+)", str(arn))
        if not match:
            raise ValueError(f"{TYPE}: access_entries[{index}].principal_arn is not an IAM role or user ARN: {arn!r}")
        policy = require_one_of(entry.get("access_policy", "cluster-admin"), f"access_entries[{index}].access_policy", tuple(ACCESS_POLICIES), name=TYPE)
        key = re.sub(r"[^A-Za-z0-9-]", "-", match.group(3)).lower()
        if key in result:
            key = f"{key}-{index}"
        result[key] = {
            "principal_arn": arn,
            "type": eks.AccessEntryType.STANDARD,
            "access_policies": {
                policy: {
                    "policy_arn": f"arn:{match.group(1)}:eks::aws:cluster-access-policy/{ACCESS_POLICIES[policy]}",
                    "access_scope": {"type": "cluster"},
                }
            },
        }
    return result
