"""What checks DRA objects and claims: the API server's validation of ResourceClaimTemplates (one-field
mutations of a known-good template), the schedulability rule and the simulator counting claims as GPUs
of DRA pools only, and Kueue's accounting of claims through ``deviceClassMappings``."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from gpufleet.infra.simulate import simulate
from gpufleet.infra.validation.admission import admission_problems
from gpufleet.policies.core import RuleContext, Subject
from gpufleet.policies.rules.gpu_workload_schedulable import check as schedulable_check
from tests.simulate_fixtures import deployment, inputs, node_pool

GOOD = {
    "apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
    "metadata": {"name": "chat-gpus", "namespace": "serving"},
    "spec": {"spec": {"devices": {
        "requests": [{"name": "gpus", "exactly": {"deviceClassName": "gpu.nvidia.com", "allocationMode": "ExactCount",
                                                  "count": 2,
                                                  "selectors": [{"cel": {"expression": "device.attributes['gpu.nvidia.com'].productName == 'NVIDIA L40S'"}}]}}],
        "constraints": [{"requests": ["gpus"], "matchAttribute": "resource.kubernetes.io/pcieRoot"}],
    }}},
}
PREFIX = "resource.k8s.io validation: spec.spec.devices"
DRA_LABELS = {"nvidia.com/gpu.deploy.device-plugin": "false"}


def mutated(path: str, value: Any) -> dict[str, Any]:
    template = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node: Any = template["spec"]["spec"]["devices"]
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return template


def test_the_known_good_template_is_admitted():
    assert admission_problems(GOOD) == []


@pytest.mark.parametrize("path, value, message", [
    ("requests.0.name", "GPUs", "requests[0].name: Invalid value: \"GPUs\": a lowercase RFC 1123 label"),
    ("requests.0.exactly.deviceClassName", None, "requests[0].exactly.deviceClassName: Required value"),
    ("requests.0.exactly.deviceClassName", "GPU_class", "requests[0].exactly.deviceClassName: Invalid value: \"GPU_class\""),
    ("requests.0.exactly.count", 0, "requests[0].exactly.count: Invalid value: 0: must be greater than zero"),
    ("requests.0.exactly.allocationMode", "All", "requests[0].exactly.count: Invalid value: 2: must not be specified when allocationMode is 'All'"),
    ("requests.0.exactly.allocationMode", "Some", "requests[0].exactly.allocationMode: Unsupported value: \"Some\""),
    ("requests.0.exactly.selectors", [{"cel": {"expression": " "}}], "requests[0].exactly.selectors[0].cel.expression: Required value"),
    ("requests.0.exactly", None, "requests[0]: Required value: exactly one of `exactly` or `firstAvailable` is required"),
    ("requests.0.firstAvailable", [{"name": "a", "deviceClassName": "gpu.nvidia.com"}],
     "requests[0]: Invalid value: null: exactly one of `exactly` or `firstAvailable` is required, but multiple fields are set"),
    ("constraints.0.requests", ["gpu"], "constraints[0].requests[0]: Invalid value: \"gpu\": must be the name of a request"),
    ("requests", [GOOD["spec"]["spec"]["devices"]["requests"][0]] * 2, "requests[1].name: Duplicate value: \"gpus\""),
    ("requests", [{**GOOD["spec"]["spec"]["devices"]["requests"][0], "name": f"r{i}"} for i in range(33)],
     "requests: Too many: 33: must have at most 32 items"),
])
def test_one_field_mutations_are_rejected_with_the_api_servers_message(path, value, message):
    (problem,) = admission_problems(mutated(path, value))
    assert problem.startswith("resource.k8s.io validation:") and f"spec.spec.devices.{message}" in problem


def test_first_available_subrequests_may_be_referenced():
    template = mutated("requests", [{"name": "gpus", "firstAvailable": [
        {"name": "big", "deviceClassName": "gpu.nvidia.com", "count": 2},
        {"name": "mig", "deviceClassName": "mig.nvidia.com"}]}])
    template["spec"]["spec"]["devices"]["constraints"] = [{"requests": ["gpus/big"], "matchAttribute": "a.b/c"}]
    assert admission_problems(template) == []


def test_a_resource_claim_is_validated_at_its_own_path():
    claim = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim", "metadata": {"name": "c", "namespace": "x"},
             "spec": {"devices": {"requests": [{"name": "gpus", "exactly": {"deviceClassName": ""}}]}}}
    assert admission_problems(claim) == [
        "resource.k8s.io validation: spec.devices.requests[0].exactly.deviceClassName: Required value"]


# -- pods that claim, on the pools that publish --------------------------------------------------


def claim_template(name: str, device_class: str, count: int, namespace: str = "apps") -> dict[str, Any]:
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaimTemplate",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"spec": {"devices": {"requests": [
                {"name": "gpus", "exactly": {"deviceClassName": device_class, "count": count}}]}}}}


def claiming(name: str, pool: str, replicas: int, template: str, **kwargs: Any) -> dict[str, Any]:
    manifest = deployment(name, pool, replicas, gpus=0, **kwargs)
    spec = manifest["spec"]["template"]["spec"]
    spec["resourceClaims"] = [{"name": "gpus", "resourceClaimTemplateName": template}]
    spec["containers"][0]["resources"]["claims"] = [{"name": "gpus"}]
    return manifest


def findings(manifests: list[dict[str, Any]]) -> list[str]:
    subjects = [Subject.from_manifest(m, urn=f"urn:test::{m['kind']}::{m['metadata']['name']}") for m in manifests]
    return [message for _, message in schedulable_check(subjects, RuleContext())]


DRA_POOL = node_pool("dra", types=["g6e.12xlarge"], labels=DRA_LABELS)
PLUGIN_POOL = node_pool("plugin", types=["g6e.12xlarge"])


def test_a_claim_fits_a_dra_pool_that_publishes_enough_devices():
    assert findings([DRA_POOL, PLUGIN_POOL, claim_template("four", "gpu.nvidia.com", 4),
                     claiming("llm", "dra", 1, "four", cpu="8", memory="64Gi")]) == []


@pytest.mark.parametrize("manifests, words", [
    # a claim on the device-plugin pool: nothing publishes devices there
    ([claim_template("one", "gpu.nvidia.com", 1), claiming("llm", "plugin", 1, "one")],
     "plugin: the pod claims gpu.nvidia.com devices, and its nodes run the device plugin"),
    # more devices than a node has
    ([claim_template("eight", "gpu.nvidia.com", 8), claiming("llm", "dra", 1, "eight")],
     "one pod asks for 8 gpu.nvidia.com devices (DRA)"),
    # MIG devices on a whole-GPU DRA pool
    ([claim_template("slice", "mig.nvidia.com", 1), claiming("llm", "dra", 1, "slice")],
     "dra: the pod claims mig.nvidia.com devices, and its DRA nodes publish gpu.nvidia.com devices"),
    # an nvidia.com/gpu limit on a DRA pool: no device plugin advertises it
    ([deployment("llm", "dra", 1)], "its nodes run no device plugin"),
])
def test_claims_and_limits_that_fit_no_pool_are_flagged(manifests, words):
    (message,) = findings([DRA_POOL, PLUGIN_POOL, *manifests])
    assert words in message, message


def test_claims_are_not_judged_when_no_pool_runs_the_dra_driver():
    assert findings([PLUGIN_POOL, claim_template("one", "gpu.nvidia.com", 1), claiming("llm", "plugin", 1, "one")]) == []


def test_the_simulator_counts_claims_as_devices_of_the_dra_pool():
    result = simulate(inputs([DRA_POOL, claim_template("two", "gpu.nvidia.com", 2),
                              claiming("llm", "dra", 3, "two", cpu="8", memory="64Gi")]), ["min"]).results["min"]
    # g6e.12xlarge has 4 GPUs: two pods of 2 devices each per node, so two nodes for three pods
    assert [(r["instanceType"], r["count"]) for r in result.node_rows() if r["pool"] == "dra"] == [("g6e.12xlarge", 2)]
    assert result.gpus()["pools"] == [{"pool": "dra", "resource": "gpu.nvidia.com.deviceclass.resource.k8s.io/devices",
                                       "requested": 6, "provisioned": 8, "gpus": 8}]
    assert result.pending == []


def test_the_simulator_leaves_a_device_plugin_request_on_a_dra_pool_pending():
    result = simulate(inputs([DRA_POOL, deployment("llm", "dra", 1)]), ["min"]).results["min"]
    assert [p.pod.name for p in result.pending] == ["llm"]


def test_kueue_reads_the_mapping_and_charges_claims_in_the_mapped_resource():
    from gpufleet.infra.simulate.inputs import kueue_device_classes, kueue_requests
    from gpufleet.infra.simulate.cluster import Pod

    subjects = [Subject(type="kubernetes:helm.sh/v3:Release", name="kueue",
                        props={"chart": "oci://registry.k8s.io/kueue/charts/kueue", "values": {"managerConfig": {
                            "controllerManagerConfigYaml": yaml.safe_dump({"resources": {"deviceClassMappings": [
                                {"name": "nvidia.com/gpu", "deviceClassNames": ["gpu.nvidia.com"]}]}})}}},
                        urn="urn:test::Release::kueue")]
    mapped = kueue_device_classes(subjects)
    assert mapped == {"gpu.nvidia.com": "nvidia.com/gpu"}
    pod = Pod("Deployment", "apps", "llm", 0, {"cpu": 4000, "gpu.nvidia.com.deviceclass.resource.k8s.io/devices": 2,
                                                "mig.nvidia.com.deviceclass.resource.k8s.io/devices": 1}, {}, {})
    charged = kueue_requests([pod, pod], (), mapped)
    assert charged["nvidia.com/gpu"] == 4 and charged["cpu"] == 8
    # an unmapped class stays under its own name, which no ClusterQueue covers
    assert charged["mig.nvidia.com.deviceclass.resource.k8s.io/devices"] == 2


def quota_findings(hard: dict[str, str]) -> list[str]:
    from gpufleet.policies.rules.gpu_namespace_quota import check as quota_check

    manifests = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}},
        {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q", "namespace": "apps"}, "spec": {"hard": hard}},
        claim_template("two", "gpu.nvidia.com", 2), claiming("llm", "dra", 1, "two"),
    ]
    subjects = [Subject.from_manifest(m, urn=f"urn:test::{m['kind']}::{m['metadata']['name']}") for m in manifests]
    return [message for _, message in quota_check(subjects, RuleContext())]


def test_the_quota_rule_accepts_a_deviceclass_cap_and_flags_its_absence():
    assert quota_findings({"requests.nvidia.com/gpu": "4", "gpu.nvidia.com.deviceclass.resource.k8s.io/devices": "2"}) == []
    (message,) = quota_findings({"requests.nvidia.com/gpu": "4"})
    assert "requesting gpu.nvidia.com (DRA)" in message and "gpu.nvidia.com.deviceclass.resource.k8s.io/devices" in message


@pytest.mark.parametrize("version", ["1.34", "1.35"])
def test_claim_templates_and_device_classes_are_schema_checked_as_built_in_kinds(version):
    from gpufleet.infra.validation.schema import ManifestValidator

    validator = ManifestValidator(version)
    assert validator.knows("resource.k8s.io/v1", "ResourceClaimTemplate") and validator.knows("resource.k8s.io/v1", "DeviceClass")
    assert validator.validate(GOOD) == []
    typo = mutated("requests.0.exactly.colour", "x")
    assert validator.validate(typo) == ['spec.spec.devices.requests[0].exactly.colour: unknown field "colour"']
    device_class = {"apiVersion": "resource.k8s.io/v1", "kind": "DeviceClass", "metadata": {"name": "gpu.example.com"},
                    "spec": {"selectors": [{"cel": {"expression": "device.driver == 'gpu.nvidia.com'"}}]}}
    assert validator.validate(device_class) == []
