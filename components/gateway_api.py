"""Gateway API objects gpufleet creates for serving: the ``Gateway`` the KServe component owns and
the weighted ``HTTPRoute`` an :class:`~gpufleet.components.inference_service.InferenceService`
routes its variants with (``gateway.networking.k8s.io/v1``, validated against the Gateway API v1.6.1
CRDs).

Why gpufleet creates them instead of KServe (v0.20.0):

- the ``kserve-resources`` chart templates its Gateway with ``gatewayClassName: envoy`` hard-coded
  (``charts/kserve-resources/files/kserve/ingress_gateway-patch.yaml``; ``ingressGateway.className``
  only names the Ingress class), so with any other GatewayClass (Envoy Gateway's ``eg``) no route
  attaches: gpufleet sets the chart's ``createGateway: false`` and creates the Gateway with the
  configured class;
- KServe's Standard-mode HTTPRoute reconciler
  (``pkg/controller/v1beta1/inferenceservice/reconcilers/ingress/httproute_reconciler.go``,
  ``createRawTopLevelHTTPRoute``) emits one backendRef, the stable predictor Service: a
  ``spec.canary`` never gets traffic (weighted canary backends came after v0.20.0). gpufleet runs each
  variant as its own InferenceService and splits traffic with its own route.

Pure functions returning camelCase specs; errors name the argument, prefixed by the caller's type.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional, Sequence

API_VERSION = "gateway.networking.k8s.io/v1"
GROUP = "gateway.networking.k8s.io"
PREDICTOR_SERVICE_PORT = 80
"""Port of the Service KServe v0.20.0 creates for a Standard-mode predictor: ``constants.CommonDefaultHttpPort``
(``reconcilers/service/service_reconciler.go``, ``createDefaultSvc``: port 80 → the first container port)."""
VISIBILITY_LABEL = "networking.kserve.io/visibility"
CLUSTER_LOCAL = "cluster-local"
"""With this label KServe's HTTPRoute reconciler creates no route for the InferenceService (``Reconcile``:
``isInternal``), so gpufleet's route is the only one serving its hostname."""

_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$")
_REF = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def predictor_service(isvc: str) -> str:
    """Name of the Service KServe v0.20.0 creates for the predictor of InferenceService ``isvc`` in
    Standard mode (``constants.PredictorServiceName``: ``<isvc>-predictor``)."""
    return f"{isvc}-predictor"


def parse_gateway_ref(value: Any, field: str, *, name: str) -> tuple[str, str]:
    """``(namespace, name)`` of a ``<namespace>/<name>`` Gateway reference."""
    if not isinstance(value, str) or not _REF.match(value):
        raise ValueError(f"{name}: {field} must be '<namespace>/<name>' of a Gateway, got {value!r}")
    namespace, gateway = value.split("/")
    return namespace, gateway


def check_hostname(value: Any, field: str, *, name: str) -> str:
    """``value`` if it is a DNS name (a leading ``*.`` allowed)."""
    if not isinstance(value, str) or not _HOSTNAME.match(value) or len(value) > 253:
        raise ValueError(f"{name}: {field} must be a DNS name like 'chat-serving.ml.example.com', got {value!r}")
    return value


def gateway_spec(class_name: str, *, hostname: Optional[str] = None,
                 route_namespaces: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """One plain-HTTP listener on port 80 of GatewayClass ``class_name`` (TLS is terminated in front
    of it, or add an HTTPS listener). ``hostname`` (``*.<domain>``) limits the hosts it serves;
    ``route_namespaces`` (a label selector) limits which namespaces may attach routes (default all:
    routes live in the team namespaces)."""
    allowed: dict[str, Any] = {"from": "All"}
    if route_namespaces is not None:
        allowed = {"from": "Selector", "selector": dict(route_namespaces)}
    listener: dict[str, Any] = {"name": "http", "protocol": "HTTP", "port": 80,
                                "allowedRoutes": {"namespaces": allowed, "kinds": [{"group": GROUP, "kind": "HTTPRoute"}]}}
    if hostname:
        listener["hostname"] = hostname
    return {"gatewayClassName": class_name, "listeners": [listener]}


def weighted_route_spec(gateway: tuple[str, str], hostnames: Sequence[str],
                        backends: Sequence[tuple[str, int]], *, timeout_seconds: int) -> dict[str, Any]:
    """An HTTPRoute attached to ``gateway`` that sends every request for ``hostnames`` to the
    Services ``backends`` (``(service, weight)``) on the predictor port, in proportion to their
    weights (a weight of 0 keeps a backend listed but sends it nothing)."""
    namespace, name = gateway
    spec: dict[str, Any] = {
        "parentRefs": [{"group": GROUP, "kind": "Gateway", "namespace": namespace, "name": name}],
        "rules": [{
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [{"group": "", "kind": "Service", "name": service, "port": PREDICTOR_SERVICE_PORT,
                             "weight": weight} for service, weight in backends],
            # LLM completions outlast the implementations' defaults (KServe's own routes: 60 s)
            "timeouts": {"request": f"{timeout_seconds}s"},
        }],
    }
    if hostnames:
        spec["hostnames"] = list(hostnames)
    return spec
