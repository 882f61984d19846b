"""``KServe``: cert-manager then kserve-crd then kserve-resources, pinned; Standard mode on the system
nodes; values the charts know; ingress choices; errors."""

from __future__ import annotations

import pytest
import yaml

from gpufleet.components.kserve import (
    CERT_MANAGER_VERSION,
    KSERVE_VERSION,
    KServe,
    cert_manager_values,
    kserve_values,
)
from gpufleet.infra.helm_values import unknown_keys
from tests.harness import child_types

COMPONENT = "gpufleet:kserve:KServe"
RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
SYSTEM = {"gpufleet.io/node-role": "system"}


def platform(args=None):
    def program():
        KServe("kserve", args)
    return program


def releases(recording):
    return {r.inputs["name"]: r for r in recording.of_type(RELEASE)}


def test_children_are_exact(run):
    recording = run(platform())
    assert child_types(recording, COMPONENT, name_prefix="kserve-") == {NAMESPACE: 2, RELEASE: 3}


def test_releases_are_pinned_and_ordered(run):
    recording = run(platform())
    found = releases(recording)
    assert set(found) == {"cert-manager", "kserve-crd", "kserve"}
    assert found["kserve-crd"].inputs["chart"] == "oci://ghcr.io/kserve/charts/kserve-crd"
    assert found["kserve"].inputs["chart"] == "oci://ghcr.io/kserve/charts/kserve-resources"
    assert found["kserve-crd"].inputs["version"] == found["kserve"].inputs["version"] == KSERVE_VERSION == "v0.20.0"
    assert found["cert-manager"].inputs["version"] == CERT_MANAGER_VERSION
    assert found["cert-manager"].inputs["repositoryOpts"] == {"repo": "https://charts.jetstack.io"}
    assert found["cert-manager"].inputs["namespace"] == "cert-manager"
    assert found["kserve"].inputs["namespace"] == found["kserve-crd"].inputs["namespace"] == "kserve-system"
    # the controller and its webhook come after the CRDs and after cert-manager (webhook certificates)
    assert found["kserve-crd"].urn in found["kserve"].dependencies
    assert found["cert-manager"].urn in found["kserve"].dependencies


def test_namespaces_are_restricted(run):
    recording = run(platform())
    for namespace in recording.of_type(NAMESPACE):
        assert namespace.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {n.inputs["metadata"]["name"] for n in recording.of_type(NAMESPACE)} == {"cert-manager", "kserve-system"}


def test_standard_mode_on_system_nodes_in_cluster_only_by_default(run):
    values = releases(run(platform()))["kserve"].inputs["values"]
    controller = values["kserve"]["controller"]
    assert controller["deploymentMode"] == "Standard"
    assert controller["nodeSelector"] == SYSTEM
    assert controller["gateway"] == {"domain": "example.com", "disableIngressCreation": True}


def test_cert_manager_installs_its_crds_and_every_pod_on_system_nodes(run):
    values = releases(run(platform()))["cert-manager"].inputs["values"]
    # the chart's schema has no global.nodeSelector: each of its four pods takes its own
    assert values == {"crds": {"enabled": True, "keep": True}, "nodeSelector": SYSTEM,
                      "webhook": {"nodeSelector": SYSTEM}, "cainjector": {"nodeSelector": SYSTEM},
                      "startupapicheck": {"nodeSelector": SYSTEM}}
    assert "global" not in values


def test_without_cert_manager_only_kserve_is_installed(run):
    recording = run(platform({"install_cert_manager": False}))
    assert set(releases(recording)) == {"kserve-crd", "kserve"}
    assert len(recording.of_type(NAMESPACE)) == 1


def test_ingress_class_creates_ingresses():
    gateway = kserve_values({"ingress_class_name": "alb", "domain": "ml.example.org"})["kserve"]["controller"]["gateway"]
    assert gateway == {"domain": "ml.example.org", "disableIngressCreation": False,
                       "ingressGateway": {"className": "alb"}}


GATEWAY = "kubernetes:gateway.networking.k8s.io/v1:Gateway"


def test_gateway_api_creates_the_gateway_with_the_configured_class(run):
    """The v0.20.0 chart's Gateway hard-codes ``gatewayClassName: envoy`` (ingressGateway.className only
    names the Ingress class): with class ``eg`` no route would attach. gpufleet creates the Gateway."""
    built = {}

    def program():
        built["kserve"] = KServe("kserve", {"domain": "ml.example.com", "gateway_api": {
            "class_name": "eg", "route_namespaces": {"matchExpressions": [{"key": "gpufleet.io/team",
                                                                            "operator": "Exists"}]}}})

    recording = run(program)
    assert child_types(recording, COMPONENT, name_prefix="kserve-") == {NAMESPACE: 2, RELEASE: 3, GATEWAY: 1}
    gateway = recording.one(GATEWAY)
    assert gateway.inputs["metadata"]["name"] == "inference-gateway"
    assert gateway.inputs["metadata"]["namespace"] == "kserve-system"
    spec = gateway.inputs["spec"]
    assert spec["gatewayClassName"] == "eg"
    (listener,) = spec["listeners"]
    assert (listener["protocol"], listener["port"], listener["hostname"]) == ("HTTP", 80, "*.ml.example.com")
    assert listener["allowedRoutes"]["namespaces"] == {
        "from": "Selector", "selector": {"matchExpressions": [{"key": "gpufleet.io/team", "operator": "Exists"}]}}
    assert built["kserve"].gateway == "kserve-system/inference-gateway"
    # the chart creates no Gateway and KServe is pointed at gpufleet's
    values = releases(recording)["kserve"].inputs["values"]["kserve"]["controller"]["gateway"]
    assert values["disableIngressCreation"] is False
    assert values["ingressGateway"] == {"enableGatewayApi": True, "createGateway": False,
                                        "kserveGateway": "kserve-system/inference-gateway"}
    assert "className" not in values["ingressGateway"]


def test_an_existing_gateway_is_only_referenced(run):
    recording = run(platform({"gateway_api": {"gateway": "gateways/shared", "create_gateway": False}}))
    assert recording.of_type(GATEWAY) == []
    ingress = releases(recording)["kserve"].inputs["values"]["kserve"]["controller"]["gateway"]["ingressGateway"]
    assert ingress == {"enableGatewayApi": True, "createGateway": False, "kserveGateway": "gateways/shared"}


@pytest.mark.parametrize("args", [
    {}, {"ingress_class_name": "alb"}, {"gateway_api": {"class_name": "eg"}},
    {"gateway_api": {"gateway": "gateways/shared", "create_gateway": False}},
])
def test_every_value_key_exists_in_the_chart(upstream, args):
    chart = yaml.safe_load((upstream / "charts" / "kserve-resources" / "values.yaml").read_text())
    assert unknown_keys(kserve_values(args), chart) == []


CERT_MANAGER_SCHEMA_KEYS = {
    # keys of cert-manager's values.schema.json (additionalProperties: false at every level used here)
    "crds": {"enabled", "keep"}, "nodeSelector": None, "webhook": {"nodeSelector"},
    "cainjector": {"nodeSelector"}, "startupapicheck": {"nodeSelector"},
}


def test_cert_manager_values_are_only_schema_keys():
    values = cert_manager_values()
    assert set(values) <= set(CERT_MANAGER_SCHEMA_KEYS)
    for key, allowed in CERT_MANAGER_SCHEMA_KEYS.items():
        if allowed is not None:
            assert set(values[key]) <= allowed, key


@pytest.mark.parametrize("args, message", [
    ({"namespace": "KServe"}, r"namespace is not a namespace name"),
    ({"domain": "localhost"}, r"domain must be a DNS domain"),
    ({"ingress_class_name": "alb", "gateway_api": {"class_name": "eg"}}, r"set ingress_class_name or gateway_api"),
    ({"gateway_api": {}}, r"gateway_api.class_name is required when gateway_api.create_gateway is true"),
    ({"gateway_api": {"gateway": "no-namespace", "class_name": "eg"}}, r"gateway_api.gateway must be"),
    ({"gateway_api": {"gateway": "gateways/shared", "class_name": "eg"}},
     r"gateway_api.gateway \(gateways/shared\) must be in the KServe namespace 'kserve-system'"),
    ({"install_cert_manager": "yes"}, r"install_cert_manager must be bool"),
])
def test_errors_name_the_field(args, message):
    with pytest.raises((ValueError, TypeError), match=rf"^{COMPONENT}: {message}"):
        KServe("kserve", args)
