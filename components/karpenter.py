"""``Karpenter``: the node provisioner for GPU capacity, with its IAM, interruption queue and Helm release.

Everything follows upstream's reference installation for the pinned version
(:mod:`gpufleet.components.karpenter_policy`): the six controller policies scoped by the cluster's
tags, a node role that joins the cluster through an EKS access entry, and an SQS queue fed by the
EventBridge rules for spot interruptions, rebalance recommendations, instance state changes and
scheduled maintenance, so Karpenter drains a node before EC2 takes it away.

NodePools and EC2NodeClasses (:class:`~gpufleet.components.gpu_node_pool.GpuNodePool`) depend on this
component: ``pulumi destroy`` deletes them, and Karpenter terminates their nodes, while the controller
and its permissions still exist. Deleted the other way round, GPU instances would keep running unowned.

Karpenter's scheduling simulation knows only ``nvidia.com/gpu`` of an AWS GPU instance type. Pools that
share GPUs (time-slicing, MIG with the ``mixed`` strategy) describe their shared resource to it with
NodeOverlays, which Karpenter 1.14 reads only behind the alpha feature gate ``nodeOverlay``
(``node_overlays=True`` sets ``settings.featureGates.nodeOverlay``).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal, Mapping, Optional, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from gpufleet.components._iam import eks_node_role, irsa_role
from gpufleet.components._k8s import deep_merge
from gpufleet.components._validate import check_arg_keys, require_int_range, require_one_of
from gpufleet.components.cluster import partition_of
from gpufleet.components.gpu_scheduling import SYSTEM_NODE_SELECTOR
from gpufleet.components.karpenter_policy import (
    INTERRUPTION_RULE_TARGET_ID,
    INTERRUPTION_RULE_UPSTREAM_IDS,
    INTERRUPTION_RULES,
    KARPENTER_VERSION,
    QUEUE_MESSAGE_RETENTION_SECONDS,
    QUEUE_SQS_MANAGED_SSE_ENABLED,
    controller_policies,
    interruption_queue_policy,
)

TYPE = "gpufleet:karpenter:Karpenter"

CHART = "oci://public.ecr.aws/karpenter/karpenter"
CRD_CHART = "oci://public.ecr.aws/karpenter/karpenter-crd"
SERVICE_ACCOUNT = "karpenter"
DISCOVERY_TAG = "karpenter.sh/discovery"
"""Tag (value: the cluster name) on the subnets and security group Karpenter's nodes use."""

LOG_LEVELS = ("debug", "info", "error")


_POLICY_SHORT_NAMES = {
    "KarpenterControllerNodeLifecyclePolicy": "node-lifecycle",
    "KarpenterControllerIAMIntegrationPolicy": "iam-integration",
    "KarpenterControllerEKSIntegrationPolicy": "eks-integration",
    "KarpenterControllerInterruptionPolicy": "interruption",
    "KarpenterControllerZonalShiftPolicy": "zonal-shift",
    "KarpenterControllerResourceDiscoveryPolicy": "resource-discovery",
}


class ControllerResources(TypedDict):
    """CPU and memory of each controller pod (requests = limits: the controller is never throttled)."""

    cpu: NotRequired[str]
    """CPU, e.g. ``"1"``. Default ``"1"`` (upstream's getting-started value)."""
    memory: NotRequired[str]
    """Memory, e.g. ``"1Gi"``. Default ``"1Gi"``."""


class KarpenterArgs(TypedDict):
    """Inputs of :class:`Karpenter`."""

    cluster_name: pulumi.Input[str]
    """EKS cluster name: ``settings.clusterName``, the discovery tag value and the IAM scope. Required."""
    oidc_provider_arn: pulumi.Input[str]
    """ARN of the cluster's IAM OIDC provider (the controller authenticates with IRSA). Required."""
    oidc_provider_url: pulumi.Input[str]
    """Issuer of that provider, with or without ``https://``. Required."""
    cluster_security_group_id: pulumi.Input[str]
    """Security group for Karpenter's nodes (the EKS cluster security group); it gets the discovery tag. Required."""
    version: NotRequired[str]
    """Chart and controller version, a 1.14 patch release (the CRDs and IAM policies gpufleet
    validates against). Default ``1.14.1``."""
    namespace: NotRequired[str]
    """Namespace of the controller. Default ``kube-system`` (upstream's recommendation)."""
    replicas: NotRequired[int]
    """Controller replicas, one per system node (hostname anti-affinity). Default 2."""
    controller_resources: NotRequired[ControllerResources]
    """Controller pod resources. Default 1 CPU, 1Gi."""
    log_level: NotRequired[Literal["debug", "info", "error"]]
    """Controller log level. Default ``info``."""
    node_overlays: NotRequired[bool]
    """Turn on the alpha ``nodeOverlay`` feature gate (``settings.featureGates.nodeOverlay``): needed
    by every :class:`~gpufleet.components.gpu_node_pool.GpuNodePool` that time-slices its GPUs or cuts
    them into MIG slices (``mixed`` strategy), whose NodeOverlays tell Karpenter the shared resource.
    Default ``False`` (the chart's default: NodeOverlays are ignored)."""
    extra_values: NotRequired[Mapping[str, Any]]
    """Further chart values, merged over gpufleet's (escape hatch). Default none."""
    tags: NotRequired[Mapping[str, str]]
    """Extra tags for the AWS resources. Default none."""


class Karpenter(pulumi.ComponentResource):
    """Karpenter on EKS: controller IAM role (IRSA) with upstream's policies, node role with an
    ``EC2_LINUX`` access entry, interruption queue with its EventBridge rules, the discovery tag on the
    node security group, and the CRD and controller Helm releases on the system nodes.

    Give it to every :class:`~gpufleet.components.gpu_node_pool.GpuNodePool`; they depend on it."""

    cluster_name: pulumi.Output[str]
    """The cluster name, which is also the value of :data:`DISCOVERY_TAG`."""
    node_role_name: pulumi.Output[str]
    """IAM role of the nodes Karpenter launches (an EC2NodeClass's ``role``)."""
    controller_role_arn: pulumi.Output[str]
    interruption_queue_name: pulumi.Output[str]
    release: k8s.helm.v3.Release
    """The controller's Helm release: what NodePools must wait for and outlive."""
    node_overlays: bool
    """Whether the controller applies NodeOverlays (the ``nodeOverlay`` feature gate is on, through
    ``node_overlays`` or ``extra_values``)."""

    def __init__(self, name: str, args: KarpenterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, KarpenterArgs, name=TYPE)
        for key in ("cluster_name", "oidc_provider_arn", "oidc_provider_url", "cluster_security_group_id"):
            if args.get(key) is None:
                raise ValueError(f"{TYPE}: {key} is required")
        version = args.get("version", KARPENTER_VERSION)
        if not isinstance(version, str) or not re.fullmatch(r"1\.14\.\d+", version):
            raise ValueError(
                f"{TYPE}: version must be a Karpenter 1.14 patch release like {KARPENTER_VERSION!r} "
                f"(the CRDs and IAM policies gpufleet is validated against), got {version!r}"
            )
        namespace = args.get("namespace", "kube-system")
        if not isinstance(namespace, str) or not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", namespace):
            raise ValueError(f"{TYPE}: namespace must be a Kubernetes namespace name, got {namespace!r}")
        replicas = require_int_range(args.get("replicas", 2), "replicas", 1, 10, name=TYPE)
        log_level = require_one_of(args.get("log_level", "info"), "log_level", LOG_LEVELS, name=TYPE)
        resources = dict(args.get("controller_resources", {}))
        unknown = set(resources) - {"cpu", "memory"}
        if unknown:
            raise ValueError(f"{TYPE}: controller_resources has unknown keys {sorted(unknown)} (cpu, memory)")
        cpu, memory = str(resources.get("cpu", "1")), str(resources.get("memory", "1Gi"))
        node_overlays = args.get("node_overlays", False)
        if not isinstance(node_overlays, bool):
            raise ValueError(f"{TYPE}: node_overlays must be a bool, got {node_overlays!r}")
        extra_values = dict(args.get("extra_values", {}))
        tags = dict(args.get("tags", {}))

        super().__init__(TYPE, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        region = aws.get_region_output(opts=invoke).region
        partition = region.apply(partition_of)
        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        cluster_name = pulumi.Output.from_input(args["cluster_name"])

        # -- nodes ---------------------------------------------------------------------------------
        node_role, node_attachments = eks_node_role(
            f"{name}-node",
            description=cluster_name.apply(lambda c: f"Nodes Karpenter launches in EKS cluster {c}"),
            partition=partition,
            tags=tags,
            parent=self,
        )
        # EC2_LINUX: EKS maps the role to system:node:{{EC2PrivateDNSName}} in system:nodes, so the
        # instances can register (the cluster uses API authentication, no aws-auth ConfigMap).
        node_access = aws.eks.AccessEntry(
            f"{name}-node-access",
            cluster_name=cluster_name,
            principal_arn=node_role.arn,
            type="EC2_LINUX",
            tags=tags,
            opts=child,
        )
        discovery_tag = aws.ec2.Tag(
            f"{name}-sg-discovery",
            resource_id=args["cluster_security_group_id"],
            key=DISCOVERY_TAG,
            value=cluster_name,
            opts=child,
        )

        # -- interruption queue --------------------------------------------------------------------
        queue = aws.sqs.Queue(
            f"{name}-interruption",
            name=cluster_name,
            message_retention_seconds=QUEUE_MESSAGE_RETENTION_SECONDS,
            sqs_managed_sse_enabled=QUEUE_SQS_MANAGED_SSE_ENABLED,
            tags=tags,
            opts=child,
        )
        queue_policy = aws.sqs.QueuePolicy(
            f"{name}-interruption-policy",
            queue_url=queue.url,
            policy=pulumi.Output.all(queue.arn, partition).apply(
                lambda a: json.dumps(interruption_queue_policy(a[0], a[1]))
            ),
            opts=child,
        )
        targets = []
        for short, pattern in INTERRUPTION_RULES.items():
            rule = aws.cloudwatch.EventRule(
                f"{name}-{short}",
                description=f"Karpenter interruption handling ({INTERRUPTION_RULE_UPSTREAM_IDS[short]})",
                event_pattern=json.dumps(pattern),
                tags=tags,
                opts=child,
            )
            targets.append(aws.cloudwatch.EventTarget(
                f"{name}-{short}-target",
                rule=rule.name,
                arn=queue.arn,
                target_id=INTERRUPTION_RULE_TARGET_ID,
                opts=child,
            ))

        # -- controller IAM (IRSA) -----------------------------------------------------------------
        controller_role = irsa_role(
            f"{name}-controller-role",
            oidc_provider_arn=args["oidc_provider_arn"],
            oidc_provider_url=args["oidc_provider_url"],
            namespace=namespace,
            service_account=SERVICE_ACCOUNT,
            description=cluster_name.apply(lambda c: f"Karpenter controller of EKS cluster {c} (IRSA)"),
            tags=tags,
            parent=self,
        )
        documents = pulumi.Output.all(partition, region, account_id, cluster_name, queue.arn, node_role.arn).apply(
            lambda a: controller_policies(
                partition=a[0], region=a[1], account_id=a[2], cluster_name=a[3],
                interruption_queue_arn=a[4], node_role_arn=a[5],
            )
        )
        controller_attachments = []
        for upstream_name, short in _POLICY_SHORT_NAMES.items():
            policy = aws.iam.Policy(
                f"{name}-{short}",
                description=cluster_name.apply(lambda c, u=upstream_name: f"{u}-{c}: Karpenter {KARPENTER_VERSION} reference policy"),
                policy=documents.apply(lambda d, u=upstream_name: json.dumps(d[u])),
                tags=tags,
                opts=child,
            )
            controller_attachments.append(aws.iam.RolePolicyAttachment(
                f"{name}-{short}-attachment",
                role=controller_role.name,
                policy_arn=policy.arn,
                opts=child,
            ))

        # -- Helm ----------------------------------------------------------------------------------
        # The main chart installs CRDs only on first install and never upgrades them; the CRD chart
        # keeps them at the controller's version.
        crds = k8s.helm.v3.Release(
            f"{name}-crds",
            name="karpenter-crd",
            chart=CRD_CHART,
            version=version,
            namespace=namespace,
            opts=child,
        )
        values = deep_merge(
            {
                "replicas": replicas,
                "logLevel": log_level,
                "nodeSelector": dict(SYSTEM_NODE_SELECTOR),
                "serviceAccount": {
                    "name": SERVICE_ACCOUNT,
                    "annotations": {"eks.amazonaws.com/role-arn": controller_role.arn},
                },
                "controller": {
                    # The system nodes allow one IMDS hop, so pods cannot read the region from IMDS.
                    "env": [{"name": "AWS_REGION", "value": region}],
                    "resources": {
                        "requests": {"cpu": cpu, "memory": memory},
                        "limits": {"cpu": cpu, "memory": memory},
                    },
                },
                "settings": {
                    "clusterName": cluster_name,
                    "interruptionQueue": queue.name,
                    **({"featureGates": {"nodeOverlay": True}} if node_overlays else {}),
                },
            },
            extra_values,
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-controller",
            name="karpenter",
            chart=CHART,
            version=version,
            namespace=namespace,
            skip_crds=True,
            values=values,
            opts=pulumi.ResourceOptions(
                parent=self,
                # Up: the controller starts with its permissions, queue and node access in place.
                # Destroy: all of them outlive the controller, which still needs them to drain and
                # terminate the nodes of NodePools deleted before it.
                depends_on=[
                    crds, *node_attachments, node_access, discovery_tag,
                    queue_policy, *targets, *controller_attachments,
                ],
            ),
        )

        settings = values.get("settings")
        gates = settings.get("featureGates") if isinstance(settings, Mapping) else None
        self.node_overlays = isinstance(gates, Mapping) and gates.get("nodeOverlay") is True
        self.cluster_name = cluster_name
        self.node_role_name = node_role.name
        self.controller_role_arn = controller_role.arn
        self.interruption_queue_name = queue.name
        self.register_outputs({
            "cluster_name": self.cluster_name,
            "node_role_name": self.node_role_name,
            "controller_role_arn": self.controller_role_arn,
            "interruption_queue_name": self.interruption_queue_name,
        })
