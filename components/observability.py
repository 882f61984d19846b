"""``ObservabilityStack``: a bundled Prometheus Operator, Prometheus, Alertmanager and Grafana.

gpufleet's GPU alerts, DCGM ServiceMonitor, vLLM PodMonitors, Grafana dashboard and KEDA's
Prometheus triggers all need a Prometheus Operator and a Prometheus. This component installs the
``kube-prometheus-stack`` chart (pinned, :data:`CHART_VERSION`) so a fresh cluster has them:

- Prometheus keeps :data:`DEFAULT_RETENTION` of metrics (and at most ~85 % of its volume) on an
  encrypted gp3 EBS volume; the gp3 StorageClass (``WaitForFirstConsumer``, expandable) and the
  ``aws-ebs-csi-driver`` add-on that provisions it (pinned per Kubernetes version, its controller
  on the system nodes, a role through IRSA or EKS Pod Identity) come with it unless the cluster
  already has them.
- The chart selects ServiceMonitors, PodMonitors and PrometheusRules labelled ``release:
  <release name>`` (:meth:`ObservabilityStack.selector_labels`) in every namespace: give those
  labels to gpufleet's monitors and rules. Grafana's sidecar loads every ConfigMap labelled
  ``grafana_dashboard: "1"`` in any namespace (gpufleet's GPU dashboard carries it).
- The operator, Prometheus, Alertmanager and the admission-webhook Jobs run on the system nodes with
  requests (Prometheus' are the stack's to size); control-plane targets EKS does not expose (etcd,
  scheduler, controller manager) are not scraped, so their "target down" alerts never fire.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from gpufleet.components._file_cache import csi_driver_addon, pinned_addon_version
from gpufleet.components._k8s import MANAGED_BY, deep_merge, managed_namespace, require_dns_label
from gpufleet.components._validate import check_arg_keys, require_int_range
from gpufleet.components.auto_mode import STORAGE_PROVISIONER
from gpufleet.components.gpu_scheduling import SYSTEM_NODE_SELECTOR
from gpufleet.components.workload_identity import WorkloadIdentity, check_identity, workload_role

TYPE = "gpufleet:observability:ObservabilityStack"

CHART = "kube-prometheus-stack"
CHART_REPOSITORY = "https://prometheus-community.github.io/helm-charts"
CHART_VERSION = "88.5.3"
RELEASE_NAME = "kube-prometheus-stack"
DEFAULT_NAMESPACE = "monitoring"
DEFAULT_RETENTION = "15d"
RETENTION_SIZE_SHARE = 0.85
"""Share of the volume Prometheus may fill before it drops the oldest blocks (the rest is WAL and
compaction room)."""

PROMETHEUS_RESOURCES = {"cpu": "500m", "memory": "2Gi"}
OPERATOR_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
ALERTMANAGER_RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
WEBHOOK_JOB_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
"""Requests gpufleet sets for the stack's pods on the system nodes (the chart sets none)."""

DASHBOARD_LABEL = ("grafana_dashboard", "1")
"""The chart's Grafana sidecar label (``grafana.sidecar.dashboards.label``/``labelValue``)."""

EBS_CSI_ADDON = "aws-ebs-csi-driver"
EBS_CSI_PROVISIONER = "ebs.csi.aws.com"
AUTO_MODE_EBS_PROVISIONER = STORAGE_PROVISIONER
"""EKS Auto Mode's block storage provisioner (``create-storage-class.adoc``)."""
EBS_CSI_POLICY = "service-role/AmazonEBSCSIDriverPolicy"
EBS_CSI_NAMESPACE = "kube-system"
EBS_CSI_SERVICE_ACCOUNT = "ebs-csi-controller-sa"

EBS_CSI_ADDON_VERSIONS: Mapping[str, str] = {
    "1.32": "v1.47.1-eksbuild.1",
    "1.33": "v1.47.1-eksbuild.1",
    "1.34": "v1.47.1-eksbuild.1",
    "1.35": "v1.47.1-eksbuild.1",
    "1.36": "v1.47.1-eksbuild.1",
}
"""The ``aws-ebs-csi-driver`` add-on version gpufleet installs per EKS Kubernetes minor version.

Source: the driver's release notes (kubernetes-sigs/aws-ebs-csi-driver ``CHANGELOG.md``, v1.47.1)
as the first EKS build of that release. Check a row, or pick a newer build, with ``aws eks
describe-addon-versions --addon-name aws-ebs-csi-driver --kubernetes-version <minor> --query
'addons[].addonVersions[].addonVersion'``; ``ebs_csi_addon_version`` overrides it."""

_DURATION = re.compile(r"^[1-9]\d*(h|d|w|y)$")
_CPU = re.compile(r"^([1-9]\d*m|\d+(\.\d+)?)$")
_MEMORY = re.compile(r"^[1-9]\d*(Mi|Gi)$")


class PrometheusResources(TypedDict):
    """Prometheus' requests (memory is also its limit)."""

    cpu: NotRequired[str]
    """CPU request. Default ``500m``."""
    memory: NotRequired[str]
    """Memory request and limit. Default ``2Gi``."""


class ObservabilityStackArgs(TypedDict):
    """Inputs of :class:`ObservabilityStack`."""

    cluster_name: pulumi.Input[str]
    """EKS cluster (for the EBS CSI add-on). Required."""
    namespace: NotRequired[str]
    """Namespace created for the stack. Default ``monitoring`` (``serving.prometheusUrl``'s default
    ``http://prometheus-operated.monitoring.svc:9090`` points at it)."""
    release_name: NotRequired[str]
    """Helm release name: the ``release`` label the stack's Prometheus selects monitors and rules by.
    Default ``kube-prometheus-stack``."""
    retention: NotRequired[str]
    """How long Prometheus keeps metrics, e.g. ``15d``. Default ``15d``."""
    storage_gib: NotRequired[int]
    """Prometheus' gp3 volume. Default 50."""
    prometheus_resources: NotRequired[PrometheusResources]
    """Prometheus' requests. Default 500m CPU, 2Gi memory."""
    grafana: NotRequired[bool]
    """Install Grafana with its dashboard sidecar (every namespace). Default true."""
    storage_class_name: NotRequired[str]
    """StorageClass of Prometheus' volume. Default ``gp3``."""
    create_storage_class: NotRequired[bool]
    """Create that StorageClass (EBS gp3, encrypted). Default true."""
    ebs_csi_driver: NotRequired[bool]
    """Install the ``aws-ebs-csi-driver`` add-on that provisions the volume (false when the cluster
    already has it). Default true (false with ``auto_mode``, which refuses it)."""
    auto_mode: NotRequired[bool]
    """The cluster runs EKS Auto Mode: its block storage capability provisions the volume, so the
    StorageClass names Auto Mode's provisioner (``ebs.csi.eks.amazonaws.com``) and no EBS CSI add-on
    is installed. Default false."""
    kubernetes_version: NotRequired[str]
    """The cluster's Kubernetes minor version: picks the EBS CSI add-on version. Required with
    ``ebs_csi_driver`` unless ``ebs_csi_addon_version`` is given."""
    ebs_csi_addon_version: NotRequired[str]
    """EBS CSI add-on version instead of the pinned one. Default the pinned one."""
    workload_identity: NotRequired[WorkloadIdentity]
    """How the EBS CSI controller gets its credentials: ``irsa`` or ``podIdentity``. Default ``irsa``."""
    oidc_provider_arn: NotRequired[pulumi.Input[str]]
    """The cluster's IAM OIDC provider. Required with ``irsa`` and ``ebs_csi_driver``."""
    oidc_provider_url: NotRequired[pulumi.Input[str]]
    """The cluster's OIDC issuer. Required with ``irsa`` and ``ebs_csi_driver``."""
    extra_values: NotRequired[Mapping[str, Any]]
    """Further chart values, merged over gpufleet's (escape hatch). Default none."""
    tags: NotRequired[Mapping[str, str]]
    """Extra tags for the AWS resources. Default none."""


def stack_values(args: Mapping[str, Any]) -> dict[str, Any]:
    """The chart values gpufleet sets (``storage_class_name`` is the name, not an Output): also what
    the system-node fit check reads the stack's requests from."""
    retention = args.get("retention", DEFAULT_RETENTION)
    storage_gib = args.get("storage_gib", 50)
    resources = {**PROMETHEUS_RESOURCES, **dict(args.get("prometheus_resources", {}))}
    system = dict(SYSTEM_NODE_SELECTOR)
    label, label_value = DASHBOARD_LABEL
    values: dict[str, Any] = {
        "prometheusOperator": {
            "nodeSelector": system,
            "resources": OPERATOR_RESOURCES,
            "admissionWebhooks": {"patch": {"nodeSelector": system, "resources": WEBHOOK_JOB_RESOURCES}},
        },
        "prometheus": {"prometheusSpec": {
            "retention": retention,
            "retentionSize": f"{max(1, int(storage_gib * RETENTION_SIZE_SHARE))}GiB",
            "nodeSelector": system,
            "resources": {"requests": {"cpu": resources["cpu"], "memory": resources["memory"]},
                          "limits": {"memory": resources["memory"]}},
            "storageSpec": {"volumeClaimTemplate": {"spec": {
                "storageClassName": args.get("storage_class_name", "gp3"),
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": f"{storage_gib}Gi"}},
            }}},
        }},
        "alertmanager": {"alertmanagerSpec": {"nodeSelector": system, "resources": ALERTMANAGER_RESOURCES}},
        "grafana": {
            "enabled": args.get("grafana", True),
            "sidecar": {"dashboards": {"enabled": True, "label": label, "labelValue": label_value, "searchNamespace": "ALL"}},
        },
        # EKS runs these control-plane components out of reach: scraping them only raises TargetDown.
        "kubeEtcd": {"enabled": False},
        "kubeControllerManager": {"enabled": False},
        "kubeScheduler": {"enabled": False},
    }
    return deep_merge(values, dict(args.get("extra_values", {})))


class ObservabilityStack(pulumi.ComponentResource):
    """The ``kube-prometheus-stack`` chart (pinned) in its own namespace: Prometheus Operator and its
    CRDs, Prometheus with retention on an encrypted gp3 volume, Alertmanager, Grafana with the
    dashboard sidecar, kube-state-metrics and node-exporter; optionally the gp3 StorageClass and the
    EBS CSI add-on (pinned, IRSA or Pod Identity role). Custom resources of the Prometheus Operator
    (ServiceMonitor, PodMonitor, PrometheusRule) must depend on :attr:`release`."""

    namespace: str
    release_name: str
    prometheus_url: str
    """In-cluster URL of Prometheus (the operator's ``prometheus-operated`` Service)."""
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: ObservabilityStackArgs, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, ObservabilityStackArgs, name=TYPE)
        if args.get("cluster_name") is None:
            raise ValueError(f"{TYPE}: cluster_name is required")
        namespace = require_dns_label(args.get("namespace", DEFAULT_NAMESPACE), "namespace", name=TYPE)
        release_name = require_dns_label(args.get("release_name", RELEASE_NAME), "release_name", name=TYPE, what="Helm release name")
        retention = args.get("retention", DEFAULT_RETENTION)
        if not isinstance(retention, str) or not _DURATION.match(retention):
            raise ValueError(f"{TYPE}: retention must be a duration like '15d' (h, d, w or y), got {retention!r}")
        require_int_range(args.get("storage_gib", 50), "storage_gib", 10, 16384, name=TYPE)
        resources = dict(args.get("prometheus_resources", {}))
        unknown = set(resources) - {"cpu", "memory"}
        if unknown:
            raise ValueError(f"{TYPE}: prometheus_resources has unknown keys {sorted(unknown)} (cpu, memory)")
        if not _CPU.match(str(resources.get("cpu", "500m"))):
            raise ValueError(f"{TYPE}: prometheus_resources.cpu must be a CPU quantity like '500m' or '2', got {resources['cpu']!r}")
        if not _MEMORY.match(str(resources.get("memory", "2Gi"))):
            raise ValueError(f"{TYPE}: prometheus_resources.memory must be like '2Gi' or '512Mi', got {resources['memory']!r}")
        class_name = require_dns_label(args.get("storage_class_name", "gp3"), "storage_class_name", name=TYPE, what="valid object name")
        for key in ("grafana", "create_storage_class", "ebs_csi_driver", "auto_mode"):
            if not isinstance(args.get(key, True), bool):
                raise TypeError(f"{TYPE}: {key} must be bool")
        auto_mode = args.get("auto_mode", False)
        ebs = args.get("ebs_csi_driver", not auto_mode)
        if auto_mode and ebs:
            raise ValueError(f"{TYPE}: ebs_csi_driver: EKS Auto Mode's block storage provisions the volume "
                             f"({AUTO_MODE_EBS_PROVISIONER}); the aws-ebs-csi-driver add-on would be a second EBS driver")
        identity = check_identity(args.get("workload_identity", "irsa"), name=TYPE,
                                  oidc_provider_arn=args.get("oidc_provider_arn") if ebs else "unused",
                                  oidc_provider_url=args.get("oidc_provider_url") if ebs else "unused")
        addon_version = (pinned_addon_version(args.get("ebs_csi_addon_version"), args.get("kubernetes_version"),
                                              EBS_CSI_ADDON_VERSIONS, addon_name=EBS_CSI_ADDON, name=TYPE)
                         if ebs else None)
        values = stack_values(args)
        tags = dict(args.get("tags", {}))

        super().__init__(TYPE, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)

        # node-exporter reads the host's /proc and /sys with the host's network and PID namespaces.
        ns = managed_namespace(f"{name}-namespace", namespace, parent=self, pod_security="privileged")

        ready: list[pulumi.Resource] = [ns]
        if ebs:
            partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition
            role, association = workload_role(
                f"{name}-ebs-csi-role",
                identity=identity,
                cluster_name=args["cluster_name"],
                oidc_provider_arn=args.get("oidc_provider_arn"),
                oidc_provider_url=args.get("oidc_provider_url"),
                namespace=EBS_CSI_NAMESPACE,
                service_account=EBS_CSI_SERVICE_ACCOUNT,
                description="EBS CSI driver controller: creates, attaches and deletes the monitoring volumes",
                tags=tags,
                parent=self,
            )
            attachment = aws.iam.RolePolicyAttachment(
                f"{name}-ebs-csi-policy",
                role=role.name,
                policy_arn=partition.apply(lambda p: f"arn:{p}:iam::aws:policy/{EBS_CSI_POLICY}"),
                opts=child,
            )
            ready.append(csi_driver_addon(
                f"{name}-ebs-csi",
                cluster_name=args["cluster_name"],
                addon_name=EBS_CSI_ADDON,
                addon_version=addon_version,
                service_account_role_arn=role.arn if identity == "irsa" else None,
                tags=tags,
                parent=self,
                depends_on=[attachment, *([association] if association is not None else [])],
            ))
        if args.get("create_storage_class", True):
            ready.append(k8s.storage.v1.StorageClass(
                f"{name}-gp3",
                metadata={"name": class_name, "labels": dict(MANAGED_BY)},
                provisioner=AUTO_MODE_EBS_PROVISIONER if auto_mode else EBS_CSI_PROVISIONER,
                parameters={"type": "gp3", "encrypted": "true"},
                # The volume is created in the zone of the node Prometheus is scheduled to.
                volume_binding_mode="WaitForFirstConsumer",
                allow_volume_expansion=True,
                reclaim_policy="Delete",
                opts=child,
            ))

        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=release_name,
            chart=CHART,
            version=CHART_VERSION,
            repository_opts={"repo": CHART_REPOSITORY},
            namespace=namespace,
            values=values,
            timeout=900,
            opts=pulumi.ResourceOptions(parent=self, depends_on=ready),
        )
        self.namespace = namespace
        self.release_name = release_name
        self.prometheus_url = f"http://prometheus-operated.{namespace}.svc:9090"
        self.register_outputs({"namespace": namespace, "release_name": release_name, "prometheus_url": self.prometheus_url})

    def selector_labels(self) -> dict[str, str]:
        """Labels the stack's Prometheus selects ServiceMonitors, PodMonitors and rules by."""
        return {"release": self.release_name}
