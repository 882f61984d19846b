"""``KServe``: the KServe platform in Standard deployment mode (plain Deployments, Services and
HTTPRoutes or Ingresses; no Knative, no Istio required), with cert-manager for its webhook
certificates.

Three pinned Helm releases, in order: cert-manager (optional: skip it when the cluster already runs
one), ``kserve-crd`` and ``kserve-resources`` (OCI charts from ``ghcr.io/kserve/charts`` at
:data:`KSERVE_VERSION`). The controller runs on the system nodes in a ``restricted`` namespace.
The ``kserve-runtime-configs`` chart (ClusterServingRuntimes) is not installed: gpufleet's
:class:`~gpufleet.components.inference_service.InferenceService` runs vLLM as a custom predictor
container, so every GPU and pod-hygiene setting is generated rather than inherited from a runtime.

Traffic: by default KServe creates no Ingress (services are reached in-cluster at
``<name>-predictor.<namespace>``). ``ingress_class_name`` makes it create Ingresses. ``gateway_api``
routes through the Gateway API instead (the Gateway API CRDs and an implementation such as Envoy
Gateway must be installed): this component creates the ``Gateway`` (``gateway.networking.k8s.io/v1``)
with the configured GatewayClass, and points KServe's ``ingressGateway.kserveGateway`` at it with the
chart's ``createGateway: false``. The v0.20.0 chart's own Gateway
(``charts/kserve-resources/files/kserve/ingress_gateway-patch.yaml``) hard-codes
``gatewayClassName: envoy``, so with any other class (Envoy Gateway's ``eg``) no route would attach.
gpufleet's :class:`~gpufleet.components.inference_service.InferenceService` attaches its own weighted
HTTPRoutes to that Gateway (``KServe.gateway``): KServe v0.20.0's routes send everything to the
stable predictor, so they cannot split traffic for a canary.

cert-manager values: no upstream ``values.yaml`` of cert-manager is vendored with gpufleet, so only
keys of the chart's ``values.schema.json`` (which refuses unknown keys) are set: ``crds.enabled``
and ``crds.keep``, and a ``nodeSelector`` per component (controller ``nodeSelector``,
``webhook.nodeSelector``, ``cainjector.nodeSelector``, ``startupapicheck.nodeSelector``): the
schema's ``global`` section has no ``nodeSelector``.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional, TypedDict

import pulumi
import pulumi_kubernetes as k8s
from typing_extensions import NotRequired

from gpufleet.components._k8s import DNS_LABEL, atomic_release, managed_namespace, require_dns_label
from gpufleet.components._validate import check_arg_keys
from gpufleet.components.gateway_api import API_VERSION as GATEWAY_API_VERSION
from gpufleet.components.gateway_api import gateway_spec, parse_gateway_ref
from gpufleet.components.gpu_scheduling import SYSTEM_NODE_SELECTOR

TYPE = "gpufleet:kserve:KServe"

KSERVE_VERSION = "v0.20.0"
"""KServe release whose CRDs gpufleet's InferenceServices are validated against."""
KSERVE_CHART_REGISTRY = "oci://ghcr.io/kserve/charts"
CERT_MANAGER_VERSION = "v1.21.2"
CERT_MANAGER_REPOSITORY = "https://charts.jetstack.io"
DEFAULT_NAMESPACE = "kserve-system"
"""Not ``kserve``: kserve-resources templates its own Namespace object when released into a namespace
named ``kserve``, which would collide with gpufleet's (labelled ``restricted``) Namespace."""
CERT_MANAGER_NAMESPACE = "cert-manager"
CERT_MANAGER_COMPONENTS = ("webhook", "cainjector", "startupapicheck")
"""cert-manager's pods besides the controller, each with its own ``nodeSelector`` value."""

_DOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")


DEFAULT_GATEWAY = "inference-gateway"
"""Name of the Gateway this component creates (in the KServe namespace). Not the chart's
``kserve-ingress-gateway``: Helm deletes that one when ``createGateway`` turns false, which must not
race with creating gpufleet's."""


class GatewayApiArgs(TypedDict):
    """Gateway API routing (HTTPRoutes attached to one Gateway)."""

    gateway: NotRequired[str]
    """``<namespace>/<name>`` of the Gateway routes attach to. Default
    ``<KServe namespace>/inference-gateway``."""
    create_gateway: NotRequired[bool]
    """Create that Gateway here (the chart's own never: its class is hard-coded ``envoy``). Default
    true; false for an existing Gateway."""
    class_name: NotRequired[str]
    """GatewayClass of the created Gateway (an installed Gateway API implementation, e.g. Envoy
    Gateway's ``eg``). Required when ``create_gateway``."""
    route_namespaces: NotRequired[Mapping[str, Any]]
    """Label selector of the namespaces whose HTTPRoutes may attach to the created Gateway. Default
    all namespaces."""


class KServeArgs(TypedDict):
    """Inputs of :class:`KServe`."""

    namespace: NotRequired[str]
    """Namespace of the KServe controller. Default ``kserve-system``."""
    install_cert_manager: NotRequired[bool]
    """Install cert-manager (:data:`CERT_MANAGER_VERSION`); false when the cluster has one. Default true."""
    domain: NotRequired[str]
    """Domain of InferenceService hostnames (``<name>-<namespace>.<domain>``). Default ``example.com``."""
    ingress_class_name: NotRequired[str]
    """Create an Ingress of this class per InferenceService. Default none (in-cluster only)."""
    gateway_api: NotRequired[GatewayApiArgs]
    """Route through a Gateway API Gateway instead (needed for canary traffic splits). Default none."""


def kserve_values(args: KServeArgs, namespace: str = DEFAULT_NAMESPACE) -> dict[str, Any]:
    """Values of the ``kserve-resources`` chart (plain data: tests compare it with its values.yaml)."""
    domain = args.get("domain", "example.com")
    if not isinstance(domain, str) or not _DOMAIN.match(domain):
        raise ValueError(f"{TYPE}: domain must be a DNS domain, got {domain!r}")
    ingress_class = args.get("ingress_class_name")
    gateway_api = args.get("gateway_api")
    if ingress_class is not None and gateway_api is not None:
        raise ValueError(f"{TYPE}: set ingress_class_name or gateway_api, not both")
    in_cluster_only = ingress_class is None and gateway_api is None
    gateway: dict[str, Any] = {"domain": domain, "disableIngressCreation": in_cluster_only}
    if ingress_class is not None:
        if not isinstance(ingress_class, str) or not DNS_LABEL.match(ingress_class):
            raise ValueError(f"{TYPE}: ingress_class_name must be an IngressClass name, got {ingress_class!r}")
        gateway["ingressGateway"] = {"className": ingress_class}
    if gateway_api is not None:
        name = "/".join(gateway_ref(gateway_api, namespace))
        # The chart never creates the Gateway (its template hard-codes gatewayClassName: envoy); KServe
        # is only told which Gateway routes attach to.
        gateway["ingressGateway"] = {"enableGatewayApi": True, "kserveGateway": name, "createGateway": False}
    return {
        "kserve": {
            "controller": {
                "deploymentMode": "Standard",
                "nodeSelector": dict(SYSTEM_NODE_SELECTOR),
                "gateway": gateway,
            },
        },
    }


def gateway_ref(gateway_api: GatewayApiArgs, namespace: str = DEFAULT_NAMESPACE) -> tuple[str, str]:
    """``(namespace, name)`` of the Gateway that ``gateway_api`` routes through (checked)."""
    ref = parse_gateway_ref(gateway_api.get("gateway", f"{namespace}/{DEFAULT_GATEWAY}"), "gateway_api.gateway",
                            name=TYPE)
    create = gateway_api.get("create_gateway", True)
    if not isinstance(create, bool):
        raise TypeError(f"{TYPE}: gateway_api.create_gateway must be bool")
    class_name = gateway_api.get("class_name")
    if create and not (isinstance(class_name, str) and DNS_LABEL.match(class_name)):
        raise ValueError(f"{TYPE}: gateway_api.class_name is required when gateway_api.create_gateway is true")
    if create and ref[0] != namespace:
        raise ValueError(f"{TYPE}: gateway_api.gateway ({'/'.join(ref)}) must be in the KServe namespace "
                         f"{namespace!r} when gateway_api.create_gateway is true")
    return ref


def cert_manager_values() -> dict[str, Any]:
    """Values of the cert-manager chart (keys documented upstream; see the module docstring)."""
    return {
        "crds": {"enabled": True, "keep": True},
        "nodeSelector": dict(SYSTEM_NODE_SELECTOR),
        **{component: {"nodeSelector": dict(SYSTEM_NODE_SELECTOR)} for component in CERT_MANAGER_COMPONENTS},
    }


class KServe(pulumi.ComponentResource):
    """KServe in Standard mode plus cert-manager (see the module docstring). InferenceServices
    depend on this component, so the CRDs and the admission webhook exist first."""

    namespace: pulumi.Output[str]
    gateway_api: bool
    """Whether services route through a Gateway API Gateway (canaries need it)."""
    gateway: Optional[str]
    """``<namespace>/<name>`` of that Gateway (``None`` without ``gateway_api``)."""

    def __init__(self, name: str, args: Optional[KServeArgs] = None, opts: Optional[pulumi.ResourceOptions] = None):
        check_arg_keys(args, KServeArgs, name=TYPE)
        args = args or {}
        namespace_name = args.get("namespace", DEFAULT_NAMESPACE)
        require_dns_label(namespace_name, "namespace", name=TYPE)
        install_cert_manager = args.get("install_cert_manager", True)
        if not isinstance(install_cert_manager, bool):
            raise TypeError(f"{TYPE}: install_cert_manager must be bool")
        values = kserve_values(args, namespace_name)

        super().__init__(TYPE, name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.gateway_api = "gateway_api" in args
        self.gateway = "/".join(gateway_ref(args["gateway_api"], namespace_name)) if self.gateway_api else None

        before_kserve: list[pulumi.Resource] = []
        if install_cert_manager:
            cm_namespace = managed_namespace(f"{name}-cert-manager-namespace", CERT_MANAGER_NAMESPACE, parent=self)
            before_kserve.append(atomic_release(
                f"{name}-cert-manager",
                name="cert-manager",
                chart="cert-manager",
                version=CERT_MANAGER_VERSION,
                repository=CERT_MANAGER_REPOSITORY,
                namespace=cm_namespace.metadata.name,
                values=cert_manager_values(),
                parent=self,
            ))
        namespace = managed_namespace(f"{name}-namespace", namespace_name, parent=self)
        crds = k8s.helm.v3.Release(
            f"{name}-crd",
            name="kserve-crd",
            chart=f"{KSERVE_CHART_REGISTRY}/kserve-crd",
            version=KSERVE_VERSION,
            namespace=namespace.metadata.name,
            atomic=True,
            opts=child,
        )
        resources = atomic_release(
            f"{name}-resources",
            name="kserve",
            chart=f"{KSERVE_CHART_REGISTRY}/kserve-resources",
            version=KSERVE_VERSION,
            namespace=namespace.metadata.name,
            values=values,
            parent=self,
            depends_on=[crds, *before_kserve],
        )
        gateway_api = args.get("gateway_api")
        if gateway_api is not None and gateway_api.get("create_gateway", True):
            gateway_namespace, gateway_name = gateway_ref(gateway_api, namespace_name)
            domain = args.get("domain", "example.com")
            k8s.apiextensions.CustomResource(
                f"{name}-gateway",
                api_version=GATEWAY_API_VERSION,
                kind="Gateway",
                metadata={"name": gateway_name, "namespace": namespace.metadata.name,
                          "labels": {"app.kubernetes.io/managed-by": "gpufleet"}},
                spec=gateway_spec(gateway_api["class_name"], hostname=f"*.{domain}",
                                  route_namespaces=gateway_api.get("route_namespaces")),
                opts=child,
            )
        self.namespace = resources.status.apply(lambda _: namespace_name)
        self.register_outputs({"namespace": self.namespace})
