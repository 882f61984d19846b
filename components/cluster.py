"""``Cluster``: the EKS control plane, its secrets key and the system nodes for controllers: an EKS
managed node group, or on EKS Auto Mode (``auto_mode``) a ``system`` NodePool (see
:mod:`gpufleet.components.auto_mode`)."""

from __future__ import annotations

import json
import re
from typing import Literal, Mapping, Optional, Sequence, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from gpufleet.components import auto_mode as auto
from gpufleet.components._file_cache import pinned_addon_version
from gpufleet.components._iam import eks_node_role, service_role
from gpufleet.components.auto_mode import AutoModeNodes
from gpufleet.components._validate import check_arg_keys, require, require_int_range, require_one_of
from gpufleet.components.eks_versions import unsupported_version_problem
from gpufleet.components.gpu_scheduling import SYSTEM_NODE_SELECTOR
from gpufleet.components.system_instances import SYSTEM_INSTANCE_TYPES
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
    """The EKS managed node group (Amazon Linux 2023) that runs cluster controllers; on EKS Auto Mode
    the ``system`` NodePool that replaces it."""

    instance_types: NotRequired[Sequence[str]]
    """Instance types, one CPU architecture. Default ``["m7i.xlarge"]``."""
    min_size: NotRequired[int]
    """Minimum nodes. Default 2 (not with ``auto_mode``: Auto Mode adds nodes as pods need them)."""
    max_size: NotRequired[int]
    """Maximum nodes (on Auto Mode: the NodePool's limits hold this many of the largest type). Default 4."""
    desired_size: NotRequired[int]
    """Nodes at creation (later changes by autoscaling are kept). Default 2 (not with ``auto_mode``)."""
    disk_size_gib: NotRequired[int]
    """Encrypted gp3 root volume (on Auto Mode: the NodeClass's ephemeral storage). Default 50."""


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
    ``provider`` waits for it. Not with ``auto_mode`` (Auto Mode nodes run the agent). Default false."""
    pod_identity_agent_version: NotRequired[str]
    """Agent add-on version instead of the pinned one (``POD_IDENTITY_AGENT_ADDON_VERSIONS`` row of
    ``kubernetes_version``), e.g. ``v1.3.9-eksbuild.3``. Default the pinned one."""
    tags: NotRequired[Mapping[str, str]]
    """Extra tags for every AWS resource. Default none."""
    auto_mode: NotRequired[bool]
    """Run EKS Auto Mode: EKS provisions the nodes (a managed Karpenter), pod networking, kube-proxy,
    DNS, block storage, load balancers and the Pod Identity agent. The cluster role gets Auto Mode's
    five managed policies and ``sts:TagSession``; the built-in node pools are off and a ``system``
    NodePool and NodeClass (``system_nodes``) replace the managed node group; a node role
    (``AmazonEKSWorkerNodeMinimalPolicy``, ``AmazonEC2ContainerRegistryPullOnly``) with an ``EC2``
    access entry is what GPU pools' NodeClasses name (``auto_mode`` output). Default false."""
    node_tags: NotRequired[Mapping[str, str]]
    """With ``auto_mode``: tags on the system nodes' instances, volumes and network interfaces (the
    AWS provider's default tags do not reach what Auto Mode launches). Default none."""


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
    EKS managed AL2023 node group for controllers with IMDSv2 enforced; with ``auto_mode``, EKS Auto Mode
    with its cluster and node roles, the node role's ``EC2`` access entry and a ``system`` NodePool and
    NodeClass for controllers instead of the node group (:mod:`gpufleet.components.auto_mode`).

    ``provider`` is a Kubernetes provider for this cluster: pass it to downstream components (on Auto
    Mode it waits for the system NodePool). ``auto_mode`` is what GPU pools on Auto Mode need."""

    cluster_name: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_provider_url: pulumi.Output[str]
    cluster_security_group_id: pulumi.Output[str]
    provider: k8s.Provider
    auto_mode: Optional[AutoModeNodes]
    """With ``auto_mode``: what GPU pools on the cluster need (``GpuNodePool``'s ``auto_mode``); else None."""

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
        auto_mode = args.get("auto_mode", False)
        if not isinstance(auto_mode, bool):
            raise TypeError(f"{TYPE}: auto_mode must be bool, got {type(auto_mode).__name__}")
        nodes = _system_nodes(args.get("system_nodes", {}), auto_mode=auto_mode)
        entries = _access_entries(args.get("access_entries", []))
        encrypt = args.get("secrets_encryption", True)
        pod_identity_agent = args.get("pod_identity_agent", False)
        if not isinstance(pod_identity_agent, bool):
            raise TypeError(f"{TYPE}: pod_identity_agent must be bool, got {type(pod_identity_agent).__name__}")
        if auto_mode and pod_identity_agent:
            raise ValueError(f"{TYPE}: pod_identity_agent: EKS Auto Mode nodes run the Pod Identity agent themselves; "
                             "the eks-pod-identity-agent add-on would be a second one (leave it false)")
        node_tags = dict(args.get("node_tags", {}))
        if node_tags and not auto_mode:
            raise ValueError(f"{TYPE}: node_tags only applies with auto_mode (the managed node group takes tags)")
        for key in node_tags:
            problem = auto.tag_problem(key)
            if problem:
                raise ValueError(f"{TYPE}: node_tags[{key!r}] {problem}")
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

        auto_roles: Optional[tuple[aws.iam.Role, list[pulumi.Resource]]] = None
        if auto_mode:
            auto_roles = _auto_mode_cluster_role(name, cluster_name, partition, tags, parent=self)
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
            **(_auto_mode_cluster_args(auto_roles[0]) if auto_roles else {}),
            opts=pulumi.ResourceOptions(parent=self, depends_on=auto_roles[1] if auto_roles else None),
        )
        # The security group EKS creates for every cluster (not pulumi-eks's own groups): the control
        # plane ENIs and the system nodes are in it and it admits all traffic among its members, so nodes
        # a provisioner such as Karpenter adds to it reach the API server and cluster DNS.
        self.cluster_security_group_id = aws.eks.get_cluster_output(
            name=self._eks.kubeconfig_json.apply(lambda _: cluster_name), opts=pulumi.InvokeOutputOptions(parent=self)
        ).vpc_config.cluster_security_group_id

        self.auto_mode = None
        if auto_mode:
            self.auto_mode, self.provider = self._auto_mode_nodes(name, cluster_name, nodes, node_tags, partition, tags)
        else:
            self.provider = self._node_group(name, cluster_name, nodes, args, partition, tags, agent_version)
        # Derived from a cluster output, so whatever uses the name waits for the cluster.
        self.cluster_name = self._eks.kubeconfig_json.apply(lambda _: cluster_name)
        self.kubeconfig = pulumi.Output.secret(self._eks.kubeconfig_json)
        self.oidc_provider_arn = self._eks.oidc_provider_arn
        self.oidc_provider_url = self._eks.oidc_provider_url
        self.register_outputs({
            "cluster_name": self.cluster_name,
            "kubeconfig": self.kubeconfig,
            "oidc_provider_arn": self.oidc_provider_arn,
            "oidc_provider_url": self.oidc_provider_url,
            "cluster_security_group_id": self.cluster_security_group_id,
        })

    def _node_group(self, name: str, cluster_name: str, nodes: dict, args: ClusterArgs, partition: pulumi.Output[str],
                    tags: dict[str, str], agent_version: Optional[str]) -> k8s.Provider:
        """The managed system node group (and the Pod Identity agent add-on); the Kubernetes provider
        that waits for them."""
        child = pulumi.ResourceOptions(parent=self)
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
        if agent_version is not None:
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
        return k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self._eks.kubeconfig_json,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[system_nodes, *([self.pod_identity_agent] if self.pod_identity_agent else [])]),
        )

    def _auto_mode_nodes(self, name: str, cluster_name: str, nodes: dict, node_tags: dict[str, str],
                         partition: pulumi.Output[str], tags: dict[str, str]) -> tuple[AutoModeNodes, k8s.Provider]:
        """Auto Mode's node role with its ``EC2`` access entry, the ``system`` NodeClass and NodePool,
        and the Kubernetes provider that waits for them."""
        child = pulumi.ResourceOptions(parent=self)
        self.pod_identity_agent = None
        # Derived from a cluster output: the entries wait for the cluster.
        known_name = self._eks.kubeconfig_json.apply(lambda _: cluster_name)
        node_role, attachments = service_role(
            f"{name}-auto-node", service="ec2.amazonaws.com", policies=auto.NODE_POLICIES,
            description=f"Nodes EKS Auto Mode launches in cluster {cluster_name}", partition=partition, tags=tags,
            parent=self,
        )
        # With the built-in node pools off EKS creates no access entry for the nodes: an EC2 entry
        # with the Auto Node policy lets instances with this role join (create-node-class.adoc).
        access = aws.eks.AccessEntry(
            f"{name}-auto-node-access",
            cluster_name=known_name,
            principal_arn=node_role.arn,
            type=auto.NODE_ACCESS_ENTRY_TYPE,
            tags=tags,
            opts=child,
        )
        policy = aws.eks.AccessPolicyAssociation(
            f"{name}-auto-node-policy",
            cluster_name=known_name,
            principal_arn=node_role.arn,
            policy_arn=partition.apply(lambda p: f"arn:{p}:eks::aws:cluster-access-policy/{auto.NODE_ACCESS_POLICY}"),
            access_scope={"type": "cluster"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[access]),
        )
        ready: tuple[pulumi.Resource, ...] = (access, policy, *attachments)
        self_nodes = AutoModeNodes(
            node_role_name=node_role.name,
            cluster_name=known_name,
            cluster_security_group_id=self.cluster_security_group_id,
            ready=ready,
        )
        # The system NodeClass and NodePool go in through a provider of their own: the provider
        # every other component uses waits for them (controllers get nodes as soon as they are
        # created) and, on destroy, is removed while the system nodes still run.
        bootstrap = k8s.Provider(
            f"{name}-k8s-system",
            kubeconfig=self._eks.kubeconfig_json,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(ready)),
        )
        on_bootstrap = pulumi.ResourceOptions(parent=self, provider=bootstrap, depends_on=list(ready))
        node_class = k8s.apiextensions.CustomResource(
            f"{name}-system-nodeclass",
            api_version=auto.NODE_CLASS_API_VERSION,
            kind=auto.NODE_CLASS_KIND,
            metadata={"name": auto.SYSTEM_POOL},
            spec=auto.node_class_spec(
                role=node_role.name, cluster_name=self_nodes.cluster_name,
                security_group_ids=[self.cluster_security_group_id],
                storage=auto.ephemeral_storage(nodes["disk_size_gib"], auto.EPHEMERAL_IOPS[0], auto.EPHEMERAL_THROUGHPUT[0]),
                tags={**node_tags, "Name": f"{cluster_name}-system"}),
            opts=on_bootstrap,
        )
        largest_cpu = max(SYSTEM_INSTANCE_TYPES[t].vcpus for t in nodes["instance_types"])
        largest_memory = max(SYSTEM_INSTANCE_TYPES[t].memory_gib for t in nodes["instance_types"])
        node_pool = k8s.apiextensions.CustomResource(
            f"{name}-system-nodepool",
            api_version="karpenter.sh/v1",
            kind="NodePool",
            metadata={"name": auto.SYSTEM_POOL},
            spec=auto.system_node_pool_spec(nodes["instance_types"], nodes["arch"], nodes["max_size"], largest_cpu,
                                            largest_memory, SYSTEM_NODE_SELECTOR),
            opts=pulumi.ResourceOptions.merge(on_bootstrap, pulumi.ResourceOptions(depends_on=[node_class])),
        )
        provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self._eks.kubeconfig_json,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[node_pool]),
        )
        return self_nodes, provider


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


def _system_nodes(spec: SystemNodeGroup, *, auto_mode: bool = False) -> dict:
    types = list(spec.get("instance_types", ["m7i.xlarge"]))
    if not types:
        raise ValueError(f"{TYPE}: system_nodes.instance_types must name at least one type")
    try:
        arches = {cpu_architecture(t) for t in types}
    except ValueError as exc:
        raise ValueError(f"{TYPE}: system_nodes.instance_types: {exc}") from None
    if len(arches) != 1:
        raise ValueError(f"{TYPE}: system_nodes.instance_types mixes CPU architectures ({', '.join(types)}): one AMI type serves one")
    if auto_mode:
        for key in ("min_size", "desired_size"):
            if key in spec:
                raise ValueError(f"{TYPE}: system_nodes.{key}: EKS Auto Mode keeps no minimum or desired node count "
                                 "(it adds system nodes as pods need them, up to max_size); remove it")
        for instance_type in types:
            problem = auto.instance_type_problem(instance_type)
            if problem is None and instance_type not in SYSTEM_INSTANCE_TYPES:
                problem = (f"{instance_type} is not in gpufleet's system instance table (components/system_instances.py), "
                           "which sizes the system NodePool's limits")
            if problem:
                raise ValueError(f"{TYPE}: system_nodes.instance_types: {problem}")
        max_size = require_int_range(spec.get("max_size", 4), "system_nodes.max_size", 1, 100, name=TYPE)
        return {
            "max_size": max_size,
            "instance_types": types,
            "arch": "arm64" if arches == {"arm64"} else "amd64",
            "disk_size_gib": require_int_range(spec.get("disk_size_gib", 50), "system_nodes.disk_size_gib", 20, 1000, name=TYPE),
        }
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


def _auto_mode_cluster_role(name: str, cluster_name: str, partition: pulumi.Output[str], tags: Mapping[str, str], *,
                            parent: pulumi.Resource) -> tuple[aws.iam.Role, list[pulumi.Resource]]:
    """The cluster IAM role of an Auto Mode cluster (``<name>-cluster-role``): EKS may assume it and tag
    the session; Auto Mode's five managed policies, and the inline policy that lets it put the
    NodeClasses' tags on what it launches (:func:`~gpufleet.components.auto_mode.tagging_policy`)."""
    child = pulumi.ResourceOptions(parent=parent)
    role, attachments = service_role(
        f"{name}-cluster", service="eks.amazonaws.com", actions=list(auto.CLUSTER_ROLE_ACTIONS),
        policies=auto.CLUSTER_POLICIES,
        description=f"EKS Auto Mode cluster {cluster_name}: compute, block storage, load balancing, networking",
        partition=partition, tags=dict(tags), parent=parent,
    )
    policies: list[pulumi.Resource] = [*attachments]
    policies.append(aws.iam.RolePolicy(
        f"{name}-cluster-tagging",
        role=role.name,
        policy=partition.apply(lambda p: json.dumps(auto.tagging_policy(p))),
        opts=child,
    ))
    return role, policies


def _auto_mode_cluster_args(role: aws.iam.Role) -> dict:
    """The pulumi-eks ``Cluster`` arguments of an Auto Mode cluster. With ``autoMode.enabled`` pulumi-eks
    sets ``computeConfig.enabled``, ``storageConfig.blockStorage.enabled`` and
    ``kubernetesNetworkConfig.elasticLoadBalancing.enabled`` on the EKS cluster, creates it without the
    self-managed add-ons and installs neither the VPC CNI nor kube-proxy (``createCore``). The built-in
    node pools are off (``nodePools: []``), so ``nodeRoleArn`` stays empty (AWS: both empty for a
    cluster without built-in node pools) and no node role of pulumi-eks is made. Cluster DNS is Auto
    Mode's node-local DNS: no CoreDNS add-on."""
    return {
        "service_role": role,
        "auto_mode": eks.AutoModeOptionsArgs(
            enabled=True,
            create_node_role=False,
            compute_config=eks.ClusterComputeConfigArgs(node_pools=[]),
        ),
        "coredns_addon_options": eks.CoreDnsAddonOptionsArgs(enabled=False),
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
