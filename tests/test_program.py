"""The Pulumi program under ``infra/``: what each repository stack declares, run exactly as the
language host runs it (``runpy.run_path`` of the ``main`` directory inside ``run_in_stack``)."""

from __future__ import annotations

import json
import runpy
from collections import Counter

import pulumi
import pytest

from gpufleet.infra.offline.plan import Project
from tests.harness import REPO, stack_config, with_config

MAIN = str(Project.find(REPO).main_dir)


def program():
    runpy.run_path(MAIN, run_name="__main__")


def test_pulumi_yaml_points_at_infra_and_stacks():
    project = Project.find(REPO)
    assert project.name == "gpufleet"
    assert project.main_dir == REPO / "infra"
    assert project.stacks_dir == REPO / "stacks"
    assert project.stacks() == ["automode", "dev", "options", "prod"]


@pytest.mark.parametrize(("stack", "azs", "nats"), [
    ("dev", 2, 1), ("prod", 3, 3)])
def test_stack_declares_network_and_cluster(run, stack, azs, nats):
    recording = run(program, config=stack_config(stack), stack=stack)
    counts = Counter(r.type for r in recording.resources)
    assert counts["gpufleet:network:Network"] == 1
    assert counts["gpufleet:cluster:Cluster"] == 1
    assert counts["eks:index:Cluster"] == 1
    assert counts["aws:ec2/subnet:Subnet"] == 2 * azs
    assert counts["aws:ec2/natGateway:NatGateway"] == nats
    assert counts["pulumi:providers:aws"] == 1


@pytest.mark.parametrize("stack", ["dev", "prod", "options", "automode"])
def test_every_resource_has_a_component_parent_and_the_stack_provider(run, stack):
    recording = run(program, config=stack_config(stack), stack=stack)
    by_urn = recording.by_urn()
    provider = recording.one("pulumi:providers:aws")
    assert provider.inputs["region"] == {"dev": "us-west-2", "prod": "us-east-1", "options": "eu-west-1",
                                         "automode": "us-west-2"}[stack]
    for resource in recording.resources:
        if resource.type.startswith("pulumi:providers:aws") or resource.type.startswith("gpufleet:"):
            continue
        parent = by_urn.get(resource.parent)
        assert parent is not None and parent.type.startswith("gpufleet:"), f"{resource.urn} is not inside a component"
        if resource.type.startswith("aws:"):
            assert resource.provider.startswith(provider.urn), f"{resource.urn} does not use the stack's AWS provider"


def test_default_tags_name_the_stack(run):
    recording = run(program, config=stack_config("prod"), stack="prod")
    tags = json.loads(recording.one("pulumi:providers:aws").inputs["defaultTags"])["tags"]
    assert tags["gpufleet:stack"] == "prod" and tags["gpufleet:environment"] == "prod"
    assert tags["cost-center"] == "ml-prod"


def test_prod_cluster_is_private_encrypted_logged_and_protected(run):
    recording = run(program, config=stack_config("prod"), stack="prod")
    eks = recording.one("eks:index:Cluster").inputs
    assert eks["name"] == "gpufleet-prod"
    assert eks["endpointPublicAccess"] is False and eks["endpointPrivateAccess"] is True
    assert eks["encryptionConfigKeyArn"].startswith("arn:aws:kms:us-east-1:")
    assert len(eks["enabledClusterLogTypes"]) == 5
    assert eks["deletionProtection"] is True
    assert set(eks["accessEntries"]) == {"platform-admins", "sre-oncall"}
    assert recording.one("aws:kms/key:Key").protect is True


def test_dev_cluster_is_not_deletion_protected(run):
    eks = run(program, config=stack_config("dev"), stack="dev").one("eks:index:Cluster").inputs
    assert eks["deletionProtection"] is False
    assert eks["publicAccessCidrs"] == ["203.0.113.0/24"]


def test_private_subnets_are_tagged_for_the_stack_cluster(run):
    recording = run(program, config=stack_config("dev"), stack="dev")
    private = [s for s in recording.of_type("aws:ec2/subnet:Subnet") if "-private-" in s.name]
    assert {s.inputs["tags"]["karpenter.sh/discovery"] for s in private} == {"gpufleet-dev"}


def test_stack_outputs(run):
    outputs = run(program, config=stack_config("dev"), stack="dev").stack_outputs
    assert set(outputs) == {"clusterName", "kubeconfig", "oidcProviderArn", "vpcId"}
    assert outputs["clusterName"] == "gpufleet-dev"
    assert outputs["kubeconfig"]["value"].startswith("{")  # a secret wrapping the kubeconfig JSON


def test_invalid_config_registers_nothing():
    from gpufleet.infra.offline import run_program

    recorded = []
    bad = with_config(stack_config("dev"), "kubernetesVersion", "1.20")
    with pytest.raises(pulumi.RunError) as caught:
        run_program(program, project="gpufleet", stack="dev", config=bad, on_resource=recorded.append)
    assert "gpufleet:kubernetesVersion: Kubernetes 1.20 is not supported by EKS" in str(caught.value)
    assert recorded == []
