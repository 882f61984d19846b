"""Tests for gpufleet.infra.validation.schema: strict offline validation of Kubernetes manifests.

Built-in kinds need only the kubernetes-validate package. The custom-resource tests need the upstream
CRDs (shared/upstream) and are skipped without them.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import yaml

from gpufleet.infra.validation import cel as cel_eval
from gpufleet.infra.validation import schema, structural
from gpufleet.infra.validation.schema import ManifestValidator, upstream_dir

K8S = "1.35"
UPSTREAM_MISSING = (
    "upstream CRDs not found: set GPUFLEET_UPSTREAM_DIR to a checkout of shared/upstream "
    "(CRDs and chart values at the pinned tags), or place it at ../shared/upstream"
)


# --------------------------------------------------------------------------------------------------
# fixtures and sample manifests
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def builtin() -> ManifestValidator:
    return ManifestValidator(K8S)


@pytest.fixture(scope="module")
def crds_dir() -> Path:
    up = upstream_dir()
    if up is None or not (up / "crds").is_dir():
        pytest.skip(UPSTREAM_MISSING)
    return up / "crds"


@pytest.fixture(scope="module")
def v(crds_dir: Path) -> ManifestValidator:
    return ManifestValidator(K8S, [crds_dir])


@pytest.fixture()
def cel() -> None:
    pytest.importorskip("celpy", reason="cel-python is not installed: CEL rules are not evaluated")


def deployment() -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "vllm", "namespace": "inference", "labels": {"app.kubernetes.io/name": "vllm"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "vllm"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "vllm"}},
                "spec": {
                    "nodeSelector": {"karpenter.sh/nodepool": "gpu"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [
                        {
                            "name": "server",
                            "image": "vllm/vllm-openai:v0.6.0",
                            "args": ["--model", "meta-llama/Llama-3.1-8B-Instruct"],
                            "ports": [{"containerPort": 8000, "name": "http"}],
                            "resources": {
                                "requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": 1},
                                "limits": {"memory": "32Gi", "nvidia.com/gpu": 1},
                            },
                            "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}},
                        }
                    ],
                },
            },
        },
    }


def nodepool() -> dict:
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": "gpu"},
        "spec": {
            "template": {
                "metadata": {"labels": {"gpufleet.io/pool": "gpu"}},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "gpu"},
                    "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
                    "requirements": [
                        {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": ["g5", "g6"]},
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand", "spot"]},
                        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                    ],
                    "expireAfter": "720h",
                },
            },
            "limits": {"cpu": "1000", "memory": "4000Gi", "nvidia.com/gpu": 64},
            "disruption": {
                "consolidationPolicy": "WhenEmpty",
                "consolidateAfter": "10m",
                "budgets": [{"nodes": "10%"}, {"nodes": "0", "schedule": "0 9 * * mon-fri", "duration": "8h"}],
            },
            "weight": 50,
        },
    }


def ec2nodeclass() -> dict:
    discovery = {"tags": {"karpenter.sh/discovery": "gpufleet-prod"}}
    return {
        "apiVersion": "karpenter.k8s.aws/v1",
        "kind": "EC2NodeClass",
        "metadata": {"name": "gpu"},
        "spec": {
            "role": "KarpenterNodeRole-gpufleet-prod",
            "amiSelectorTerms": [{"alias": "al2023@latest"}],
            "subnetSelectorTerms": [copy.deepcopy(discovery)],
            "securityGroupSelectorTerms": [copy.deepcopy(discovery)],
            "metadataOptions": {
                "httpEndpoint": "enabled",
                "httpProtocolIPv6": "disabled",
                "httpPutResponseHopLimit": 1,
                "httpTokens": "required",
            },
            "blockDeviceMappings": [
                {
                    "deviceName": "/dev/xvda",
                    "rootVolume": True,
                    "ebs": {
                        "volumeSize": "200Gi",
                        "volumeType": "gp3",
                        "encrypted": True,
                        "iops": 6000,
                        "throughput": 500,
                        "deleteOnTermination": True,
                    },
                }
            ],
            "tags": {"team": "ml-platform"},
        },
    }


def inference_service() -> dict:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "llama",
            "namespace": "models",
            "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"},
        },
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "maxReplicas": 2,
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "storageUri": "hf://meta-llama/Llama-3.1-8B-Instruct",
                    "resources": {
                        "requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"},
                        "limits": {"memory": "32Gi", "nvidia.com/gpu": "1"},
                    },
                },
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            }
        },
    }


def cluster_queue() -> dict:
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "ClusterQueue",
        "metadata": {"name": "gpu"},
        "spec": {
            "namespaceSelector": {},
            "cohortName": "ml",
            "queueingStrategy": "BestEffortFIFO",
            "preemption": {"reclaimWithinCohort": "Any", "withinClusterQueue": "LowerPriority"},
            "resourceGroups": [
                {
                    "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                    "flavors": [
                        {
                            "name": "gpu-on-demand",
                            "resources": [
                                {"name": "cpu", "nominalQuota": 64},
                                {"name": "memory", "nominalQuota": "512Gi"},
                                {"name": "nvidia.com/gpu", "nominalQuota": 8, "borrowingLimit": 0},
                            ],
                        }
                    ],
                }
            ],
        },
    }


def one_error_at(errors: list[str], path: str, *needles: str) -> str:
    """The single error naming ``path``; every needle must occur in it."""
    hits = [e for e in errors if e.startswith(path + ":")]
    assert len(hits) == 1, f"expected one error at {path!r}, got {errors!r}"
    for n in needles:
        assert n in hits[0], f"{n!r} not in {hits[0]!r}"
    return hits[0]


# --------------------------------------------------------------------------------------------------
# built-in kinds (no upstream needed)
# --------------------------------------------------------------------------------------------------


def test_valid_deployment_passes(builtin: ManifestValidator) -> None:
    assert builtin.validate(deployment()) == []


def test_unknown_container_field_names_its_path(builtin: ManifestValidator) -> None:
    d = deployment()
    d["spec"]["template"]["spec"]["containers"][0]["resources"]["limit"] = {"cpu": "1"}  # typo of "limits"
    errors = builtin.validate(d)
    one_error_at(errors, "spec.template.spec.containers[0].resources.limit", "unknown field")
    assert len(errors) == 1


def test_wrong_type_fails(builtin: ManifestValidator) -> None:
    d = deployment()
    d["spec"]["replicas"] = "two"
    one_error_at(builtin.validate(d), "spec.replicas", "integer")


def test_all_problems_are_reported(builtin: ManifestValidator) -> None:
    d = deployment()
    c = d["spec"]["template"]["spec"]["containers"][0]
    c["resources"]["limits"]["cpu"] = ["1"]
    c["imagePullPolicy"] = "Sometimes"
    c["ports"][0]["containerPort"] = "8000"
    d["spec"]["template"]["spec"]["restart_policy"] = "Always"
    del c["name"]
    errors = builtin.validate(d)
    base = "spec.template.spec.containers[0]"
    one_error_at(errors, f"{base}.resources.limits.cpu", "string or number")
    one_error_at(errors, f"{base}.ports[0].containerPort", "integer")
    one_error_at(errors, f"{base}.name", "Required")
    one_error_at(errors, "spec.template.spec.restart_policy", "unknown field")
    assert len(errors) >= 4


def test_unknown_kind_fails(builtin: ManifestValidator) -> None:
    m = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert builtin.validate(m) == [
        "no schema for example.com/v1 Widget: neither a built-in kind at Kubernetes 1.35 nor a known CRD"
    ]
    # a CRD kind is unknown without the CRD
    assert not builtin.knows("karpenter.sh/v1", "NodePool")


def test_knows_is_exact(builtin: ManifestValidator) -> None:
    assert builtin.knows("apps/v1", "Deployment")
    assert builtin.knows("v1", "ConfigMap")
    assert builtin.knows("rbac.authorization.k8s.io/v1", "ClusterRole")
    assert builtin.knows("policy/v1", "PodDisruptionBudget")
    assert not builtin.knows("rbac/v1", "ClusterRole")  # the group is matched in full
    assert not builtin.knows("apps.example.com/v1", "Deployment")
    assert not builtin.knows("v1", "Container")  # a type, not a kind
    assert not builtin.knows("apps/v1", "deployment")
    # autoscaling/v2beta2 was removed in 1.26
    assert ManifestValidator("1.25").knows("autoscaling/v2beta2", "HorizontalPodAutoscaler")
    assert not builtin.knows("autoscaling/v2beta2", "HorizontalPodAutoscaler")


def test_versions() -> None:
    assert ManifestValidator("v1.35.2").schema_version == "1.35.0"
    newest = ManifestValidator("1.99")
    assert newest.schema_version == schema._shipped_schema_versions()[-1]
    with pytest.raises(ValueError):
        ManifestValidator("1.10")
    with pytest.raises(ValueError):
        ManifestValidator("latest")


def test_missing_apiversion_and_non_mapping(builtin: ManifestValidator) -> None:
    assert builtin.validate({"kind": "ConfigMap"}) == ['apiVersion: Required value: missing required field "apiVersion"']
    assert builtin.validate(["not", "a", "mapping"])[0].startswith("(root):")  # type: ignore[arg-type]


def test_nulls_are_unset_for_builtins(builtin: ManifestValidator) -> None:
    d = deployment()
    d["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = None  # IntOrString: oneOf would reject null
    d["metadata"]["annotations"] = None
    assert builtin.validate(d) == []


def test_object_meta_label_syntax(builtin: ManifestValidator) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"bad key": "x" * 64}}}
    errors = builtin.validate(cm)
    assert any(e.startswith("metadata.labels[bad key]:") and "name part" in e for e in errors), errors
    assert any(e.startswith("metadata.labels[bad key]:") and "63" in e for e in errors), errors
    cm["metadata"]["labels"] = {"app.kubernetes.io/name": "ok", "tier": ""}
    assert builtin.validate(cm) == []
    cm["metadata"]["nmae"] = "typo"
    one_error_at(builtin.validate(cm), "metadata.nmae", "unknown field")


def test_accepts_mappings_and_tuples(builtin: ManifestValidator) -> None:
    from types import MappingProxyType

    d = deployment()
    d["spec"]["template"]["spec"]["containers"] = tuple(d["spec"]["template"]["spec"]["containers"])
    assert builtin.validate(MappingProxyType(d)) == []


def test_builtin_validation_is_fast(builtin: ManifestValidator) -> None:
    objs = []
    for i in range(100):
        d = deployment()
        d["metadata"]["name"] = f"vllm-{i}"
        d["spec"]["replicas"] = i
        objs.append(d)
    start = time.perf_counter()
    assert all(builtin.validate(o) == [] for o in objs)
    assert time.perf_counter() - start < 5.0


# --------------------------------------------------------------------------------------------------
# upstream_dir
# --------------------------------------------------------------------------------------------------


def test_upstream_dir_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUFLEET_UPSTREAM_DIR", str(tmp_path))
    assert upstream_dir() == tmp_path.resolve()
    # A missing directory falls back to the checkout's ../shared/upstream, then to the pulled cache.
    monkeypatch.setenv("GPUFLEET_UPSTREAM_DIR", str(tmp_path / "missing"))
    monkeypatch.setenv("GPUFLEET_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(schema, "_repo_root_from", lambda start: None)
    assert upstream_dir() is None


def test_upstream_dir_from_repository_root() -> None:
    import os

    if os.environ.get("GPUFLEET_UPSTREAM_DIR"):
        pytest.skip("GPUFLEET_UPSTREAM_DIR overrides the repository-relative location")
    root = schema._repo_root_from(Path(schema.__file__).resolve().parent)
    found = upstream_dir()
    if root is None or not (root.parent / "shared" / "upstream").is_dir():
        pytest.skip(UPSTREAM_MISSING)
    assert found == root.parent / "shared" / "upstream"


# --------------------------------------------------------------------------------------------------
# custom resources (need shared/upstream)
# --------------------------------------------------------------------------------------------------


def test_crd_kinds_are_indexed(v: ManifestValidator) -> None:
    assert v.crd_load_errors == {}
    for api, kind in [
        ("karpenter.sh/v1", "NodePool"),
        ("karpenter.k8s.aws/v1", "EC2NodeClass"),
        ("serving.kserve.io/v1beta1", "InferenceService"),
        ("kueue.x-k8s.io/v1beta2", "ClusterQueue"),
        ("kueue.x-k8s.io/v1beta1", "ClusterQueue"),  # still served (not the storage version)
        ("ray.io/v1", "RayCluster"),
        ("keda.sh/v1alpha1", "ScaledObject"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("nvidia.com/v1", "ClusterPolicy"),
    ]:
        assert v.knows(api, kind), (api, kind)
    assert v.knows("apps/v1", "Deployment")  # built-ins too


def test_shallow_index_matches_full_parse(crds_dir: Path) -> None:
    """The cheap CRD index (no schema parsing) agrees with a full YAML parse on every upstream file."""
    files = sorted(crds_dir.rglob("*.yaml"))
    assert files
    for f in files:
        full = schema._full_crd_index(str(f), schema._stamp(f))
        assert full, f
        assert schema._shallow_crd_index(f.read_text(encoding="utf-8")) == full, f


def test_nodepool_v1beta1_is_not_served(v: ManifestValidator, crds_dir: Path) -> None:
    with open(crds_dir / "karpenter" / "karpenter.sh_nodepools.yaml", encoding="utf-8") as fh:
        crd = yaml.load(fh, Loader=schema._YAML_LOADER)
    served = {ver["name"] for ver in crd["spec"]["versions"] if ver["served"]}
    assert "v1beta1" not in served and "v1" in served
    m = nodepool()
    m["apiVersion"] = "karpenter.sh/v1beta1"
    assert not v.knows("karpenter.sh/v1beta1", "NodePool")
    assert v.validate(m) == [
        "no schema for karpenter.sh/v1beta1 NodePool: neither a built-in kind at Kubernetes 1.35 nor a known CRD"
    ]


def test_valid_nodepool_passes(v: ManifestValidator) -> None:
    assert v.validate(nodepool()) == []


def test_valid_ec2nodeclass_passes(v: ManifestValidator) -> None:
    assert v.validate(ec2nodeclass()) == []


def test_snake_case_key_in_cr_spec_fails(v: ManifestValidator) -> None:
    m = nodepool()
    spec = m["spec"]["template"]["spec"]
    spec["node_class_ref"] = spec.pop("nodeClassRef")
    errors = v.validate(m)
    one_error_at(errors, "spec.template.spec.node_class_ref", "unknown field")
    one_error_at(errors, "spec.template.spec.nodeClassRef", "Required")


def test_unknown_field_in_cr_metadata_fails(v: ManifestValidator) -> None:
    m = nodepool()
    m["metadata"]["lables"] = {"a": "b"}
    one_error_at(v.validate(m), "metadata.lables", "unknown field")


def test_cr_type_and_enum_errors(v: ManifestValidator) -> None:
    m = ec2nodeclass()
    m["spec"]["metadataOptions"]["httpTokens"] = "mandatory"
    m["spec"]["blockDeviceMappings"][0]["ebs"]["iops"] = "6000"
    errors = v.validate(m)
    one_error_at(errors, "spec.metadataOptions.httpTokens", "required", "optional")
    one_error_at(errors, "spec.blockDeviceMappings[0].ebs.iops", "integer")


def test_int_or_string(v: ManifestValidator) -> None:
    m = nodepool()
    m["spec"]["limits"] = {"cpu": 1000, "memory": "4000Gi", "nvidia.com/gpu": "64"}
    assert v.validate(m) == []
    m["spec"]["limits"]["nvidia.com/gpu"] = ["64"]
    one_error_at(v.validate(m), "spec.limits[nvidia.com/gpu]", "integer or string")
    m["spec"]["limits"]["nvidia.com/gpu"] = "64 GPUs"  # pattern: a resource.Quantity
    one_error_at(v.validate(m), "spec.limits[nvidia.com/gpu]", "does not match")


def test_integral_float_is_an_integer(v: ManifestValidator) -> None:
    m = nodepool()
    m["spec"]["weight"] = 50.0
    assert v.validate(m) == []
    m["spec"]["weight"] = 50.5
    one_error_at(v.validate(m), "spec.weight", "integer")


def test_defaults_apply_before_validation(v: ManifestValidator) -> None:
    m = nodepool()
    del m["spec"]["disruption"]  # defaulted to {consolidateAfter: 0s}: passes "required: [consolidateAfter]"
    assert v.validate(m) == []
    m["spec"]["disruption"] = {"consolidationPolicy": "WhenEmpty"}  # present, so no default; field required
    one_error_at(v.validate(m), "spec.disruption.consolidateAfter", "Required")


def test_null_of_non_nullable_field_is_pruned(v: ManifestValidator) -> None:
    m = nodepool()
    m["spec"]["weight"] = None
    m["spec"]["disruption"] = None  # pruned then defaulted
    assert v.validate(m) == []


def test_list_type_map_duplicates(v: ManifestValidator) -> None:
    m = cluster_queue()
    flavors = m["spec"]["resourceGroups"][0]["flavors"]
    flavors.append(copy.deepcopy(flavors[0]))
    one_error_at(v.validate(m), "spec.resourceGroups[0].flavors[1]", "Duplicate", "gpu-on-demand")


def test_valid_inference_service_passes(v: ManifestValidator) -> None:
    assert v.validate(inference_service()) == []
    m = inference_service()
    m["spec"]["predictor"]["model"]["storage_uri"] = m["spec"]["predictor"]["model"].pop("storageUri")
    one_error_at(v.validate(m), "spec.predictor.model.storage_uri", "unknown field")


def test_valid_cluster_queue_passes(v: ManifestValidator) -> None:
    assert v.validate(cluster_queue()) == []
    m = cluster_queue()
    m["spec"]["cohort"] = m["spec"].pop("cohortName")  # the v1beta1 field name
    errors = v.validate(m)
    one_error_at(errors, "spec.cohort", "unknown field")
    m["apiVersion"] = "kueue.x-k8s.io/v1beta1"
    assert v.validate(m) == []


def test_go_regex_syntax_in_patterns(v: ManifestValidator) -> None:
    """Kueue uses RE2's mid-pattern flags (^(?i)...), which Python's re rejects."""
    ac = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "AdmissionCheck",
        "metadata": {"name": "provisioning"},
        "spec": {
            "controllerName": "kueue.x-k8s.io/provisioning-request",
            "parameters": {"apiGroup": "kueue.x-k8s.io", "kind": "ProvisioningRequestConfig", "name": "gpu"},
        },
    }
    assert v.validate(ac) == []
    ac["spec"]["parameters"]["kind"] = "9-Config"
    one_error_at(v.validate(ac), "spec.parameters.kind", "does not match")


# -- CEL (x-kubernetes-validations) ----------------------------------------------------------------


def test_cel_restricted_requirement_keys(v: ManifestValidator, cel: None) -> None:
    m = nodepool()
    m["spec"]["template"]["spec"]["requirements"][0]["key"] = "karpenter.sh/nodepool"
    one_error_at(
        v.validate(m), "spec.template.spec.requirements[0].key", 'label "karpenter.sh/nodepool" is restricted'
    )
    m["spec"]["template"]["spec"]["requirements"][0]["key"] = "karpenter.sh/custom"  # needs find()
    one_error_at(v.validate(m), "spec.template.spec.requirements[0].key", 'label domain "karpenter.sh" is restricted')
    m["spec"]["template"]["spec"]["requirements"][0]["key"] = "karpenter.k8s.aws/instance-gpu-count"
    assert v.validate(m) == []


def test_cel_restricted_template_labels(v: ManifestValidator, cel: None) -> None:
    m = nodepool()
    m["spec"]["template"]["metadata"]["labels"]["kubernetes.io/hostname"] = "n1"
    one_error_at(v.validate(m), "spec.template.metadata.labels", 'label "kubernetes.io/hostname" is restricted')


def test_cel_in_operator_requires_values(v: ManifestValidator, cel: None) -> None:
    m = nodepool()
    m["spec"]["template"]["spec"]["requirements"][0]["values"] = []
    one_error_at(v.validate(m), "spec.template.spec.requirements", "operator 'In' must have a value defined")


def test_cel_gt_needs_one_integer_value(v: ManifestValidator, cel: None) -> None:
    m = nodepool()
    m["spec"]["template"]["spec"]["requirements"].append(
        {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["0", "1"]}
    )
    one_error_at(v.validate(m), "spec.template.spec.requirements", "single positive integer")
    m["spec"]["template"]["spec"]["requirements"][-1]["values"] = ["0"]
    assert v.validate(m) == []


def test_cel_budget_schedule_needs_duration(v: ManifestValidator, cel: None) -> None:
    m = nodepool()
    del m["spec"]["disruption"]["budgets"][1]["duration"]
    one_error_at(v.validate(m), "spec.disruption.budgets", "'schedule' must be set with 'duration'")


def test_cel_exactly_one_of_role_and_instance_profile(v: ManifestValidator, cel: None) -> None:
    m = ec2nodeclass()
    m["spec"]["instanceProfile"] = "KarpenterNodeInstanceProfile"
    one_error_at(v.validate(m), "spec", "exactly one of ['role', 'instanceProfile']")
    del m["spec"]["role"]
    assert v.validate(m) == []
    del m["spec"]["instanceProfile"]
    one_error_at(v.validate(m), "spec", "exactly one of ['role', 'instanceProfile']")


def test_cel_ami_selector_terms(v: ManifestValidator, cel: None) -> None:
    m = ec2nodeclass()
    m["spec"]["amiSelectorTerms"] = [{"alias": "al2023@latest", "id": "ami-0123456789abcdef0"}]
    errors = v.validate(m)
    assert errors and all(e.startswith("spec.amiSelectorTerms") for e in errors), errors
    assert any("alias" in e for e in errors), errors
    m["spec"]["amiSelectorTerms"] = [{"alias": "ubuntu@latest"}]  # alias family checked with split('@')
    assert any(e.startswith("spec.amiSelectorTerms[0].alias:") for e in v.validate(m))
    m["spec"]["amiSelectorTerms"] = [{}]
    assert any("expected at least one" in e for e in v.validate(m)), v.validate(m)
    m["spec"]["amiSelectorTerms"] = [{"id": "ami-0123456789abcdef0"}]
    m["spec"]["amiFamily"] = "AL2023"
    assert v.validate(m) == []


def test_cel_block_device_mappings_single_root_volume(v: ManifestValidator, cel: None) -> None:
    m = ec2nodeclass()
    bdm = m["spec"]["blockDeviceMappings"]
    bdm.append(copy.deepcopy(bdm[0]) | {"deviceName": "/dev/xvdb"})
    one_error_at(v.validate(m), "spec.blockDeviceMappings", "root")


def test_cel_errors_are_skipped_not_failed(v: ManifestValidator, cel: None) -> None:
    """A rule that errors on evaluation (x.values accessed without has()) is 'not evaluated'."""
    rule = "self.all(x, x.operator == 'In' ? x.values.size() != 0 : true)"
    m = nodepool()
    del m["spec"]["template"]["spec"]["requirements"][0]["values"]
    assert v.validate(m) == []
    assert rule in v.cel_skipped
    assert "no such member" in v.cel_skip_reasons[rule]


def test_cel_coverage_of_karpenter_rules(crds_dir: Path, cel: None) -> None:
    """Every non-transition Karpenter rule hit by the sample objects is evaluated, none skipped."""
    fresh = ManifestValidator(K8S, [crds_dir / "karpenter"])
    for m in (nodepool(), ec2nodeclass()):
        assert fresh.validate(m) == []
    assert fresh.cel_skipped == set(), fresh.cel_skip_reasons
    assert len(fresh.cel_evaluated) >= 30
    assert not any("oldSelf" in r for r in fresh.cel_evaluated)


def test_all_upstream_cel_rules_compile(crds_dir: Path, cel: None) -> None:
    rules: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for r in node.get("x-kubernetes-validations") or []:
                rules.add(r["rule"])
            for val in node.values():
                walk(val)
        elif isinstance(node, list):
            for val in node:
                walk(val)

    for f in sorted((crds_dir / "karpenter").glob("*.yaml")) + sorted((crds_dir / "kueue").glob("*.yaml")):
        walk(yaml.load(f.read_text(encoding="utf-8"), Loader=schema._YAML_LOADER))
    assert rules
    failed = {r: why for r in rules if (why := cel_eval._cel_program(r)[1]) is not None}
    assert failed == {}


def test_cel_rule_extension_functions(cel: None) -> None:
    """The Kubernetes CEL library functions cel-python lacks, as provided here."""
    cases = {
        "self.find('^[^/]+') == 'karpenter.sh'": "karpenter.sh/foo",
        "self.split('@')[1] == 'latest'": "al2023@latest",
        "self.lowerAscii() == 'abc' && self.upperAscii() == 'ABC'": "aBc",
        "self.findAll('[0-9]+').size() == 3 && self.findAll('[0-9]+', 1) == ['5']": "g5.12xlarge-2",
        "self.indexOf('@') == 6 && self.substring(0, 6) == 'al2023'": "al2023@latest",
        "self.replace('-', '_') == 'a_b' && ['a', 'b'].join('-') == 'a-b'": "a-b",
    }
    for rule, value in cases.items():
        assert cel_eval._run_rule(rule, cel_eval._cel_value(value, structural._Node({"type": "string"}))) == (
            True,
            None,
        ), rule
    ok, why = cel_eval._run_rule("isQuantity(self)", cel_eval._cel_value("1Gi", structural._Node({})))
    assert ok is None and why


def test_cr_validation_is_fast(v: ManifestValidator) -> None:
    objs = []
    for i in range(100):
        m = nodepool() if i % 2 else ec2nodeclass()
        m["metadata"]["name"] = f"pool-{i}"
        objs.append(m)
    v.validate(objs[0])
    v.validate(objs[1])
    start = time.perf_counter()
    assert all(v.validate(o) == [] for o in objs)
    assert time.perf_counter() - start < 5.0


def test_validators_share_compiled_schemas(crds_dir: Path) -> None:
    a = ManifestValidator(K8S, [crds_dir])
    start = time.perf_counter()
    b = ManifestValidator(K8S, [crds_dir / "karpenter", crds_dir / "karpenter" / "karpenter.sh_nodepools.yaml"])
    assert time.perf_counter() - start < 1.0
    assert a.validate(nodepool()) == b.validate(nodepool()) == []
    assert b.crd_kinds() == [
        ("eks.amazonaws.com/v1", "NodeClass"),  # gpufleet's modeled CRD, always loaded
        ("karpenter.k8s.aws/v1", "EC2NodeClass"),
        ("karpenter.sh/v1", "NodeClaim"),
        ("karpenter.sh/v1", "NodePool"),
        ("karpenter.sh/v1alpha1", "NodeOverlay"),
    ]
    with pytest.raises(FileNotFoundError):
        ManifestValidator(K8S, [crds_dir / "no-such-dir"])
