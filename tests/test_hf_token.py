"""``HuggingFaceToken``: one Secret per namespace, the token a Pulumi secret, field-named errors, and
workloads given its ``secret_ref`` reading that Secret."""

from __future__ import annotations

import pulumi
import pytest

from gpufleet.components.gpu_instances import instance_types_of
from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.components.hf_token import HuggingFaceToken
from gpufleet.components.inference_service import InferenceService

TYPE = "gpufleet:serving:HuggingFaceToken"


def program(**args):
    def run_it():
        HuggingFaceToken("hf", {"token": "hf_secret_value", "namespaces": ["serving", "research"], **args})
    return run_it


def test_one_opaque_secret_per_namespace_with_the_token_kept_secret(run):
    recording = run(program())
    component = recording.one(TYPE)
    secrets = recording.of_type("kubernetes:core/v1:Secret")
    assert sorted(r.name for r in secrets) == ["hf-research", "hf-serving"]
    assert {r.parent for r in secrets} == {component.urn}
    for secret in secrets:
        manifest = secret.manifest()
        assert manifest["metadata"]["name"] == "hf-token" and manifest["type"] == "Opaque"
        assert manifest["stringData"] == {"token": "[secret]"}
    assert "hf_secret_value" not in str([r.manifest() for r in secrets])


def test_secret_name_and_key_can_be_chosen(run):
    recording = run(program(secret_name="hub-credentials", key="hf-token"))
    manifest = recording.of_type("kubernetes:core/v1:Secret")[0].manifest()
    assert manifest["metadata"]["name"] == "hub-credentials"
    assert manifest["stringData"] == {"hf-token": "[secret]"}


@pytest.mark.parametrize(("args", "message"), [
    ({"namespaces": []}, "namespaces must name at least one"),
    ({"namespaces": ["Serving"]}, r"namespaces\[0\] is not a namespace name"),
    ({"namespaces": ["a", "a"]}, "names a namespace twice"),
    ({"key": "Token!"}, "key must be a DNS label"),
    ({"token": None}, "token is required"),
])
def test_argument_errors_name_the_field(args, message):
    with pytest.raises(ValueError, match=message):
        HuggingFaceToken("hf", {"token": "t", "namespaces": ["serving"], **args})



def test_workloads_given_secret_ref_read_that_secret_key(run):
    """``secret_ref`` is what workloads pass as ``hf_token_secret``: the predictor and the weights
    loader Job then read ``HF_TOKEN`` from exactly that Secret and key, in the Secret's namespace."""

    def program():
        token = HuggingFaceToken("hf", {"token": "hf_secret_value", "namespaces": ["serving"],
                                        "secret_name": "hub", "key": "hf"})
        InferenceService("chat", {
            "namespace": "serving", "placement": GpuPlacement("serving", tuple(instance_types_of(families=["g6e"]))),
            "model_name": "chat-8b", "storage_uri": "pvc://model-weights/Qwen/Qwen2.5-7B-Instruct",
            "weights_source": "hf://Qwen/Qwen2.5-7B-Instruct", "hf_token_secret": token.secret_ref,
        }, opts=pulumi.ResourceOptions(depends_on=[token]))

    recording = run(program)
    secret = recording.one("kubernetes:core/v1:Secret").manifest()
    reference = {"secretKeyRef": {"name": "hub", "key": "hf"}}
    assert (secret["metadata"]["namespace"], secret["metadata"]["name"], list(secret["stringData"])) == \
        ("serving", "hub", ["hf"])
    (predictor,) = recording.one("kubernetes:serving.kserve.io/v1beta1:InferenceService").inputs["spec"]["predictor"]["containers"]
    (loader,) = recording.one("kubernetes:batch/v1:Job").inputs["spec"]["template"]["spec"]["containers"]
    for container in (predictor, loader):
        (token_env,) = [e for e in container["env"] if e["name"] == "HF_TOKEN"]
        assert token_env == {"name": "HF_TOKEN", "valueFrom": reference}
    assert "hf_secret_value" not in str([predictor, loader])
