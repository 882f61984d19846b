"""Every rule explains itself: what it guards in a line, why (the production checklist's reason), how
to fix a violation, and a passing example that really passes it."""

from __future__ import annotations

import pytest

from gpufleet.policies.core import PolicyConfig, Subject, evaluate, example_subjects
from gpufleet.policies.pod_templates import gpu_pod_templates
from gpufleet.policies.rules import RULES


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_rule_has_summary_why_fix_and_example(rule):
    assert 10 < len(rule.summary) <= 100 and "\n" not in rule.summary
    assert len(rule.why) > 60, "say why it matters in production"
    assert len(rule.fix) > 40, "say how to fix a violation"
    assert rule.example.strip()


@pytest.mark.parametrize("production", [False, True], ids=["dev", "prod"])
@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_passing_example_passes_its_rule(rule, production):
    subjects = example_subjects(rule)
    assert subjects, "the example has at least one object"
    config = PolicyConfig(production=production, all="mandatory")
    assert [str(v) for v in evaluate(subjects, config, [rule])] == []


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_passing_example_is_something_the_rule_judges(rule):
    """Not a vacuous pass: the example holds a GPU workload (the gpu-* rules judge those), the cloud
    resource or EC2NodeClass the rule reads, or the annotation it looks at."""
    subjects = example_subjects(rule)
    if rule.name.startswith("gpu-nodepool"):
        assert any(s.is_a("karpenter.sh", "NodePool") for s in subjects)
    elif rule.name.startswith(("gpu-", "container-")):
        assert list(gpu_pod_templates(subjects)), "a GPU workload"
    elif rule.name.startswith("eks-"):
        assert any(not s.is_kubernetes for s in subjects)
    elif rule.name == "image-pinned":
        assert list(gpu_pod_templates(subjects)), "a GPU workload"
    elif rule.name == "aws-imdsv2-required":
        assert any(s.is_a("karpenter.k8s.aws", "EC2NodeClass") for s in subjects)
    else:
        assert any(s.annotations for s in subjects)


def test_example_subjects_reads_manifests_and_pulumi_resources():
    from gpufleet.policies.core import Rule

    rule = Rule("r", "d", example="apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n"
                                  "pulumiType: eks:index:Cluster\nname: c\nprops: {endpointPublicAccess: false}\n")
    namespace, cluster = example_subjects(rule)
    assert (namespace.type, namespace.object_name) == ("kubernetes:core/v1:Namespace", "a")
    assert cluster == Subject("eks:index:Cluster", "c", {"endpointPublicAccess": False})
