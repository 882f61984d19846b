"""The helpers several components and areas share: IRSA trust, Helm values merging, managed namespaces,
name checks, and the config validators and field paths of the areas."""

from __future__ import annotations

import json

import pulumi
import pytest
from pydantic import ValidationError

from gpufleet.components._file_cache import check_namespaces
from gpufleet.components._iam import irsa_trust_policy
from gpufleet.components._k8s import deep_merge, managed_namespace, require_dns_label
from gpufleet.infra.areas.base import ConfigModel, DnsLabel, IamPrincipalArn, camel_path

PROVIDER = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-west-2.amazonaws.com/id/ABC"
ISSUER = "oidc.eks.us-west-2.amazonaws.com/id/ABC"


@pytest.mark.parametrize("url", [f"https://{ISSUER}", ISSUER])
def test_irsa_trust_names_one_service_account_and_the_sts_audience(url):
    (statement,) = json.loads(irsa_trust_policy(PROVIDER, url, "kube-system", "efs-csi-controller-sa"))["Statement"]
    assert statement["Principal"] == {"Federated": PROVIDER}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {"StringEquals": {
        f"{ISSUER}:sub": "system:serviceaccount:kube-system:efs-csi-controller-sa",
        f"{ISSUER}:aud": "sts.amazonaws.com",
    }}


def test_deep_merge_merges_mappings_and_replaces_the_rest_without_touching_the_base():
    base = {"controller": {"replicas": 2, "resources": {"cpu": "1"}}, "tolerations": [{"key": "a"}]}
    merged = deep_merge(base, {"controller": {"resources": {"memory": "1Gi"}}, "tolerations": []})
    assert merged == {"controller": {"replicas": 2, "resources": {"cpu": "1", "memory": "1Gi"}}, "tolerations": []}
    assert base["controller"]["resources"] == {"cpu": "1"}


@pytest.mark.parametrize(("level", "expected"), [(None, "restricted"), ("privileged", "privileged")])
def test_managed_namespace_is_a_child_held_to_one_pod_security_level(run, level, expected):
    """Enforced, audited and warned at the same level (restricted unless the component needs more), so
    a pod the admission check would refuse is also logged and reported to whoever applies it."""
    def program():
        owner = pulumi.ComponentResource("gpufleet:test:Owner", "owner")
        extra = {} if level is None else {"pod_security": level}
        managed_namespace("owner-namespace", "ray-system", parent=owner, **extra)
        owner.register_outputs({})

    recording = run(program)
    namespace = recording.one("kubernetes:core/v1:Namespace")
    assert namespace.parent == recording.one("gpufleet:test:Owner").urn
    assert namespace.inputs["metadata"] == {"name": "ray-system", "labels": {
        "app.kubernetes.io/managed-by": "gpufleet",
        "pod-security.kubernetes.io/enforce": expected,
        "pod-security.kubernetes.io/audit": expected,
        "pod-security.kubernetes.io/warn": expected,
    }}


def test_name_checks_name_the_field():
    assert require_dns_label("kuberay-system", "namespace", name="T") == "kuberay-system"
    with pytest.raises(ValueError, match=r"^T: claim_name is not a valid object name: 'Weights'$"):
        require_dns_label("Weights", "claim_name", name="T", what="valid object name")
    with pytest.raises(ValueError, match=r"^T: namespaces\[1\] is not a namespace name: 'a_b'$"):
        check_namespaces(["ok", "a_b"], name="T")
    with pytest.raises(ValueError, match="namespaces repeats a namespace"):
        check_namespaces(["ml", "ml"], name="T")


class _Section(ConfigModel):
    name: DnsLabel
    principal_arn: IamPrincipalArn


def test_shared_config_validators():
    assert _Section.model_validate({"name": "gpu-dev", "principalArn": "arn:aws:iam::111122223333:role/ml"}).name == "gpu-dev"
    with pytest.raises(ValidationError) as error:
        _Section.model_validate({"name": "GPU", "principalArn": "arn:aws:iam::111122223333:group/ml"})
    messages = {e["loc"][0]: e["msg"] for e in error.value.errors()}
    assert messages == {
        "name": "Value error, must be a DNS label: lowercase letters, digits and '-', at most 63 characters",
        "principalArn": "Value error, must be an IAM role or user ARN (arn:aws:iam::<12-digit account>:role/<name>)",
    }


def test_camel_path_leaves_quoted_label_keys_alone():
    assert camel_path("limits.memory_gib") == "limits.memoryGib"
    assert camel_path("node_labels['team_name']") == "nodeLabels['team_name']"
