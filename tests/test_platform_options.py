"""Platform options: EKS Pod Identity instead of IRSA, S3 model weights through Mountpoint, and the
bundled kube-prometheus-stack (``monitoring.install``): components, configuration refusals and the
reference stacks that use them."""

from __future__ import annotations

import json
import runpy

import pytest

from gpufleet.components import Karpenter
from gpufleet.components.eks_versions import EKS_SUPPORTED_VERSIONS
from gpufleet.components.model_cache import ModelCache
from gpufleet.components.observability import CHART_VERSION, EBS_CSI_ADDON_VERSIONS, ObservabilityStack, stack_values
from gpufleet.components.s3_model_cache import S3_CSI_ADDON_VERSIONS, S3ModelCache, mount_options
from gpufleet.components.workload_identity import POD_IDENTITY_AGENT_ADDON_VERSIONS
from gpufleet.infra.areas import system_nodes as sn
from gpufleet.infra.config import ConfigError, parse_stack_config
from tests.harness import REPO, child_types, stack_config, with_config

OIDC_URL = "oidc.eks.us-west-2.amazonaws.com/id/ABC123"
OIDC = {"oidc_provider_arn": f"arn:aws:iam::123456789012:oidc-provider/{OIDC_URL}", "oidc_provider_url": f"https://{OIDC_URL}"}
POD_IDENTITY_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
                   "Action": ["sts:AssumeRole", "sts:TagSession"]}],
}


def program():
    runpy.run_path(str(REPO / "infra"), run_name="__main__")


def _karpenter(**overrides):
    def declare():
        Karpenter("karpenter", {"cluster_name": "gpu-test", "cluster_security_group_id": "sg-0123", **overrides})
    return declare


# -- EKS Pod Identity --------------------------------------------------------------------------------


def test_karpenter_with_pod_identity_gets_an_association_and_no_annotation(run):
    recording = run(_karpenter(workload_identity="podIdentity"))
    role = next(r for r in recording.of_type("aws:iam/role:Role") if r.name == "karpenter-controller-role")
    assert json.loads(role.inputs["assumeRolePolicy"]) == POD_IDENTITY_TRUST
    association = recording.one("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert association.name == "karpenter-controller-role-pod-identity"
    assert (association.inputs["clusterName"], association.inputs["namespace"], association.inputs["serviceAccount"]) == (
        "gpu-test", "kube-system", "karpenter")
    assert association.inputs["roleArn"] == role.outputs["arn"]
    controller = next(r for r in recording.of_type("kubernetes:helm.sh/v3:Release") if r.name == "karpenter-controller")
    assert controller.inputs["values"]["serviceAccount"] == {"name": "karpenter"}
    assert association.urn in controller.dependencies


def test_karpenter_keeps_irsa_by_default(run):
    recording = run(_karpenter(**OIDC))
    assert recording.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation") == []
    role = next(r for r in recording.of_type("aws:iam/role:Role") if r.name == "karpenter-controller-role")
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    controller = next(r for r in recording.of_type("kubernetes:helm.sh/v3:Release") if r.name == "karpenter-controller")
    assert "eks.amazonaws.com/role-arn" in controller.inputs["values"]["serviceAccount"]["annotations"]


@pytest.mark.parametrize(("args", "message"), [
    ({}, "oidc_provider_arn is required with workload_identity 'irsa'"),
    ({"workload_identity": "oidc"}, "workload_identity must be one of 'irsa', 'podIdentity', got 'oidc'"),
])
def test_karpenter_identity_arguments_are_checked(run, args, message):
    with pytest.raises(ValueError, match=message):
        run(_karpenter(**args))


def test_efs_cache_with_pod_identity_associates_the_controller_service_account(run):
    def declare():
        ModelCache("cache", {"cluster_name": "gpu-test", "vpc_id": "vpc-0123", "subnet_ids": ["subnet-a"],
                             "nfs_client_cidrs": ["10.40.0.0/16"], "kubernetes_version": "1.35",
                             "workload_identity": "podIdentity"})
    recording = run(declare)
    association = recording.one("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert (association.inputs["namespace"], association.inputs["serviceAccount"]) == ("kube-system", "efs-csi-controller-sa")
    addon = recording.one("aws:eks/addon:Addon")
    assert "serviceAccountRoleArn" not in addon.inputs
    assert association.urn in addon.dependencies
    assert json.loads(recording.one("aws:iam/role:Role").inputs["assumeRolePolicy"]) == POD_IDENTITY_TRUST


def test_options_stack_runs_every_controller_on_pod_identity(run):
    recording = run(program, config=stack_config("options"), stack="options")
    agent = next(r for r in recording.of_type("aws:eks/addon:Addon") if r.inputs["addonName"] == "eks-pod-identity-agent")
    assert agent.inputs["addonVersion"] == POD_IDENTITY_AGENT_ADDON_VERSIONS["1.35"]
    provider = next(r for r in recording.of_type("pulumi:providers:kubernetes") if r.name == "cluster-k8s")
    assert agent.urn in provider.dependencies
    associations = {(a.inputs["namespace"], a.inputs["serviceAccount"])
                    for a in recording.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")}
    assert associations == {("kube-system", "karpenter"), ("kube-system", "ebs-csi-controller-sa"),
                            ("kube-system", "s3-csi-driver-sa")}
    # No role trusts the OIDC provider; every controller role trusts only the Pod Identity service.
    for role in recording.of_type("aws:iam/role:Role"):
        assert "AssumeRoleWithWebIdentity" not in role.inputs["assumeRolePolicy"], role.name
    controller_roles = [r for r in recording.of_type("aws:iam/role:Role") if r.name.endswith("csi-role") or r.name == "karpenter-controller-role"]
    assert len(controller_roles) == 3
    assert all(json.loads(r.inputs["assumeRolePolicy"]) == POD_IDENTITY_TRUST for r in controller_roles)


def test_existing_reference_stacks_keep_irsa():
    for stack in ("dev", "prod"):
        assert parse_stack_config(stack_config(stack)).cluster.workload_identity == "irsa", stack
    bare = {"gpufleet:environment": "dev", "gpufleet:region": "us-west-2", "gpufleet:kubernetesVersion": "1.35"}
    assert parse_stack_config(bare).cluster.workload_identity == "podIdentity"


def test_irsa_stack_has_no_agent_and_no_association(run):
    recording = run(program, config=stack_config("dev"), stack="dev")
    assert recording.of_type("aws:eks/podIdentityAssociation:PodIdentityAssociation") == []
    assert not any(r.inputs["addonName"] == "eks-pod-identity-agent" for r in recording.of_type("aws:eks/addon:Addon"))


def test_pinned_addon_tables_cover_every_supported_version():
    for table in (POD_IDENTITY_AGENT_ADDON_VERSIONS, S3_CSI_ADDON_VERSIONS, EBS_CSI_ADDON_VERSIONS):
        assert set(table) == set(EKS_SUPPORTED_VERSIONS)


# -- S3 model weights --------------------------------------------------------------------------------

S3_BASE = {"cluster_name": "gpu-test", "kubernetes_version": "1.35", "namespaces": ["serving"], **OIDC}


def _s3(**overrides):
    def declare():
        S3ModelCache("weights", {**S3_BASE, **overrides})
    return declare


def test_s3_cache_children_are_exact(run):
    recording = run(_s3())
    assert child_types(recording, "gpufleet:s3_model_cache:S3ModelCache", name_prefix="weights-") == {
        "aws:s3/bucket:Bucket": 1,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": 1,
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": 1,
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls": 1,
        "aws:s3/bucketPolicy:BucketPolicy": 1,
        "aws:iam/role:Role": 1,
        "aws:iam/rolePolicy:RolePolicy": 1,
        "aws:eks/addon:Addon": 1,
        "kubernetes:core/v1:PersistentVolume": 2,
        "kubernetes:core/v1:PersistentVolumeClaim": 2,
    }


def test_s3_bucket_is_protected_encrypted_private_and_tls_only(run):
    recording = run(_s3())
    bucket = recording.one("aws:s3/bucket:Bucket")
    assert bucket.protect is True and bucket.inputs["forceDestroy"] is False
    (rule,) = recording.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration").inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    block = recording.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    (deny,) = json.loads(recording.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])["Statement"]
    arn = bucket.outputs["arn"]
    assert deny == {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "s3:*",
                    "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def test_s3_kms_key_is_used_for_sse_kms_and_granted_to_the_driver(run):
    key = "arn:aws:kms:us-west-2:123456789012:key/abcd"
    recording = run(_s3(kms_key_arn=key))
    (rule,) = recording.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration").inputs["rules"]
    assert rule == {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": key}, "bucketKeyEnabled": True}
    statements = json.loads(recording.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])["Statement"]
    assert statements[-1] == {"Sid": "BucketKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": key}


def test_s3_driver_may_touch_only_its_bucket(run):
    recording = run(_s3())
    arn = recording.one("aws:s3/bucket:Bucket").outputs["arn"]
    statements = json.loads(recording.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])["Statement"]
    assert [(s["Action"], s["Resource"]) for s in statements] == [
        ("s3:ListBucket", arn),
        (["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:DeleteObject"], f"{arn}/*"),
    ]
    role = recording.one("aws:iam/role:Role")
    (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Condition"]["StringEquals"][f"{OIDC_URL}:sub"] == "system:serviceaccount:kube-system:s3-csi-driver-sa"
    addon = recording.one("aws:eks/addon:Addon")
    assert addon.inputs["addonName"] == "aws-mountpoint-s3-csi-driver"
    assert addon.inputs["addonVersion"] == S3_CSI_ADDON_VERSIONS["1.35"]
    assert addon.inputs["serviceAccountRoleArn"] == role.outputs["arn"]
    assert json.loads(addon.inputs["configurationValues"]) == {"controller": {"nodeSelector": {"gpufleet.io/node-role": "system"}}}


def test_s3_readers_mount_read_only_and_the_writer_claim_may_write(run):
    recording = run(_s3())
    volumes = {v.inputs["metadata"]["name"]: v.inputs["spec"] for v in recording.of_type("kubernetes:core/v1:PersistentVolume")}
    reader, writer = volumes["weights-serving-model-weights"], volumes["weights-serving-model-weights-writer"]
    bucket = recording.one("aws:s3/bucket:Bucket").outputs["bucket"]
    assert reader["accessModes"] == ["ReadOnlyMany"] and writer["accessModes"] == ["ReadWriteMany"]
    assert reader["claimRef"] == {"namespace": "serving", "name": "model-weights"}
    assert reader["storageClassName"] == "" and reader["persistentVolumeReclaimPolicy"] == "Retain"
    assert reader["csi"] == {"driver": "s3.csi.aws.com", "volumeHandle": "weights-serving-model-weights",
                             "volumeAttributes": {"bucketName": bucket}}
    assert reader["mountOptions"] == ["region us-west-2", "prefix serving/", "allow-other", "uid=1000", "gid=1000", "read-only"]
    assert "read-only" not in writer["mountOptions"] and {"allow-overwrite", "allow-delete"} <= set(writer["mountOptions"])
    claims = {c.inputs["metadata"]["name"]: c.inputs["spec"] for c in recording.of_type("kubernetes:core/v1:PersistentVolumeClaim")}
    assert claims["model-weights"]["accessModes"] == ["ReadOnlyMany"]
    assert claims["model-weights"]["volumeName"] == "weights-serving-model-weights"
    assert claims["model-weights-writer"]["volumeName"] == "weights-serving-model-weights-writer"


def test_mount_options_prefix_each_namespace():
    assert mount_options("eu-west-1", "research", writer=False)[:2] == ["region eu-west-1", "prefix research/"]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"kubernetes_version": "1.31"}, "has no pinned aws-mountpoint-s3-csi-driver add-on version"),
    ({"claim_name": "a" * 60}, "claim_name must leave room for the '-writer' suffix"),
    ({"claim_size": "lots"}, "claim_size must be a quantity"),
])
def test_s3_cache_arguments_are_checked(run, overrides, message):
    with pytest.raises(ValueError, match=message):
        run(_s3(**overrides))


def _options(key, value):
    return with_config(stack_config("options"), key, value)


def _problems(raw):
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw)
    return caught.value.problems


def test_s3_backend_refuses_a_weights_loader():
    serving = json.loads(stack_config("options")["gpufleet:serving"])
    service = serving["inferenceServices"][0]
    service.pop("preloaded")
    service["weightsSource"] = "hf://Qwen/Qwen2.5-7B-Instruct"
    (problem,) = _problems(_options("serving", serving))
    assert problem.startswith("gpufleet:serving.inferenceServices[0].weightsSource: the weights loader Job downloads with")
    assert "cannot rename" in problem and "preloaded: true" in problem


def test_s3_backend_refuses_read_write_ray_mounts():
    raw = _options("ray", {"enabled": True, "clusters": [{
        "name": "batch", "team": "inference", "pool": "serving",
        "workerGroups": [{"groupName": "gpu", "gpus": 1, "cpu": "4", "memory": "16Gi", "minReplicas": 0, "maxReplicas": 1}]}]})
    problems = _problems(raw)
    assert any(p.startswith("gpufleet:ray.clusters[0].weights: Ray workers mount the model cache read-write") for p in problems)


def test_s3_backend_refuses_efs_and_lustre_settings():
    cache = json.loads(stack_config("options")["gpufleet:modelCache"])
    assert _problems(_options("modelCache", {**cache, "throughputMode": "bursting"})) == [
        "gpufleet:modelCache: lustre and throughputMode do not apply to backend s3"]


def test_s3_backend_claims_must_fit_the_team_storage_quota():
    cache = json.loads(stack_config("options")["gpufleet:modelCache"])
    (problem,) = _problems(_options("modelCache", {**cache, "claimSizeGib": 1500}))
    assert problem.startswith("gpufleet:modelCache.claimSizeGib: backend s3 puts two claims of 1500 GiB")


def test_options_stack_serves_from_the_read_only_claim(run):
    recording = run(program, config=stack_config("options"), stack="options")
    services = [o for o in recording.kubernetes_objects() if o.inputs["kind"] == "InferenceService"]
    # chat on the device-plugin pool, chat-small on the DRA pool: both read the read-only claim
    assert sorted(s.inputs["metadata"]["name"] for s in services) == ["chat", "chat-small"]
    for service in services:
        volumes = service.inputs["spec"]["predictor"]["volumes"]
        assert {"name": "model-weights", "persistentVolumeClaim": {"claimName": "model-weights", "readOnly": True}} in volumes
    assert recording.of_type("kubernetes:batch/v1:Job") == []


# -- the bundled monitoring stack --------------------------------------------------------------------


def _stack(**overrides):
    def declare():
        ObservabilityStack("obs", {"cluster_name": "gpu-test", "kubernetes_version": "1.35", **OIDC, **overrides})
    return declare


def test_observability_children_and_release(run):
    recording = run(_stack())
    assert child_types(recording, "gpufleet:observability:ObservabilityStack", name_prefix="obs-") == {
        "kubernetes:core/v1:Namespace": 1,
        "aws:iam/role:Role": 1,
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment": 1,
        "aws:eks/addon:Addon": 1,
        "kubernetes:storage.k8s.io/v1:StorageClass": 1,
        "kubernetes:helm.sh/v3:Release": 1,
    }
    release = recording.one("kubernetes:helm.sh/v3:Release")
    assert (release.inputs["chart"], release.inputs["version"], release.inputs["name"]) == (
        "kube-prometheus-stack", CHART_VERSION, "kube-prometheus-stack")
    spec = release.inputs["values"]["prometheus"]["prometheusSpec"]
    assert (spec["retention"], spec["retentionSize"]) == ("15d", "42GiB")
    assert spec["storageSpec"]["volumeClaimTemplate"]["spec"]["storageClassName"] == "gp3"
    assert spec["nodeSelector"] == {"gpufleet.io/node-role": "system"}
    sc = recording.one("kubernetes:storage.k8s.io/v1:StorageClass").inputs
    assert (sc["provisioner"], sc["parameters"], sc["volumeBindingMode"]) == (
        "ebs.csi.aws.com", {"type": "gp3", "encrypted": "true"}, "WaitForFirstConsumer")
    addon = recording.one("aws:eks/addon:Addon")
    assert (addon.inputs["addonName"], addon.inputs["addonVersion"]) == ("aws-ebs-csi-driver", EBS_CSI_ADDON_VERSIONS["1.35"])
    dependencies = set(release.dependencies)
    assert addon.urn in dependencies and recording.one("kubernetes:storage.k8s.io/v1:StorageClass").urn in dependencies
    namespace = recording.one("kubernetes:core/v1:Namespace").inputs["metadata"]
    assert namespace["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_observability_without_the_ebs_driver_needs_no_oidc(run):
    recording = run(lambda: ObservabilityStack("obs", {"cluster_name": "c", "ebs_csi_driver": False}))
    assert recording.of_type("aws:eks/addon:Addon") == [] and recording.of_type("aws:iam/role:Role") == []


@pytest.mark.parametrize(("overrides", "message"), [
    ({"retention": "15 days"}, "retention must be a duration like '15d'"),
    ({"prometheus_resources": {"cpu": "lots"}}, "prometheus_resources.cpu must be a CPU quantity"),
    ({"storage_gib": 5}, "storage_gib must be an integer from 10 to 16384"),
])
def test_observability_arguments_are_checked(run, overrides, message):
    with pytest.raises(ValueError, match=message):
        run(_stack(**overrides))


def test_install_labels_every_monitor_and_points_keda_at_the_bundled_prometheus():
    config = parse_stack_config(stack_config("dev"))
    release = {"release": "kube-prometheus-stack"}
    assert config.monitoring.rule_labels == release
    assert config.gpu_operator.service_monitor_labels == release
    assert config.serving.pod_monitor_labels == release
    assert config.serving.prometheus_url == "http://prometheus-operated.monitoring.svc:9090"
    custom = with_config(stack_config("dev"), "monitoring",
                         {"install": True, "ruleLabels": {"release": "mine", "team": "ml"}, "stack": {"namespace": "obs"}})
    config = parse_stack_config(custom)
    assert config.monitoring.rule_labels == {"release": "mine", "team": "ml"}
    assert config.serving.prometheus_url == "http://prometheus-operated.obs.svc:9090"


def test_stack_settings_without_install_are_refused():
    raw = with_config(stack_config("prod"), "monitoring", {"ruleLabels": {"release": "kube-prometheus-stack"},
                                                           "stack": {"grafana": False}})
    assert _problems(raw) == ["gpufleet:monitoring.stack: only used with gpufleet:monitoring.install: true"]


def test_a_bad_stack_setting_names_its_field():
    raw = with_config(stack_config("dev"), "monitoring", {"install": True, "stack": {"prometheus": {"retention": "forever"}}})
    (problem,) = _problems(raw)
    assert problem.startswith("gpufleet:monitoring.stack.prometheus.retention: String should match pattern")


def test_dev_plan_monitors_depend_on_the_bundled_release(run):
    recording = run(program, config=stack_config("dev"), stack="dev")
    release = next(r for r in recording.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "kube-prometheus-stack")
    rule = recording.one("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    assert rule.inputs["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    by_urn = recording.by_urn()
    component = by_urn[rule.parent]
    assert release.urn in component.dependencies
    operator = recording.one("gpufleet:nvidia:GpuOperator")
    assert release.urn in operator.dependencies


def test_system_nodes_count_the_bundled_stack():
    config = parse_stack_config(stack_config("dev"))
    pods = {p.what: p for p in sn.system_node_pods(config)}
    assert (pods["Prometheus (+ config reloader)"].cpu_millis, pods["Prometheus (+ config reloader)"].memory_mib) == (260, 2098)
    assert pods["EBS CSI node"].per_node and pods["node-exporter"].per_node
    off = parse_stack_config(with_config(stack_config("dev"), "monitoring", {"install": False}))
    assert not any(p.what.startswith("Prometheus") for p in sn.system_node_pods(off))
    values = stack_values({})
    assert values["prometheusOperator"]["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    options = parse_stack_config(stack_config("options"))
    assert {p.what for p in sn.system_node_pods(options)} >= {"Mountpoint S3 CSI controller", "Mountpoint S3 CSI node"}


def test_an_unknown_workload_identity_names_the_field():
    cluster = json.loads(stack_config("options")["gpufleet:cluster"])
    (problem,) = _problems(_options("cluster", {**cluster, "workloadIdentity": "oidc"}))
    assert problem == "gpufleet:cluster.workloadIdentity: Input should be 'podIdentity' or 'irsa' (got \"oidc\")"
