"""The system node group must hold what gpufleet pins to it at ``minSize``: the kube-reserved formula,
the chart defaults against the pinned charts, the rendered Ray/loader pods, the reference stacks, and
the refusal (exit 2, naming ``gpufleet:cluster.systemNodes`` with the numbers) of a stack that does
not fit."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from gpufleet.components.ray_job import SUBMITTER_RESOURCES
from gpufleet.infra.areas import system_nodes as sn
from gpufleet.infra.cli import app
from gpufleet.infra.config import ConfigError, parse_stack_config
from tests.harness import REPO, stack_config, with_config


def _cluster(raw: dict[str, str], **nodes) -> dict[str, str]:
    cluster = json.loads(raw["gpufleet:cluster"])
    cluster["systemNodes"] = {**cluster["systemNodes"], **nodes}
    return with_config(raw, "cluster", cluster)


def _pods(config) -> dict[str, sn.SystemPods]:
    return {pod.what: pod for pod in sn.system_node_pods(config)}


@pytest.mark.parametrize(("vcpus", "millis"), [(1, 60), (2, 70), (4, 80), (8, 90), (16, 110), (48, 190)])
def test_kube_reserved_cpu_follows_the_eks_ami_formula(vcpus, millis):
    assert sn.kube_reserved_cpu_millis(vcpus) == millis


def test_allocatable_of_an_m7i_xlarge():
    facts = sn.SYSTEM_INSTANCE_TYPES["m7i.xlarge"]
    assert (facts.vcpus, facts.memory_gib, facts.max_pods) == (4, 16, 58)
    assert sn.kube_reserved_memory_mib(58) == 893  # 11 × 58 + 255
    cpu, memory = sn.allocatable(facts)
    assert cpu == 3920
    assert memory == int(16 * 1024 * sn.MEMORY_CAPACITY_SHARE) - 893 - 100
    assert 14 * 1024 < memory < 15 * 1024


def test_chart_defaults_are_the_pinned_charts(upstream):
    """Every request gpufleet leaves to a chart is that chart's default at the pinned tag."""
    for (chart, path), expected in sn.CHART_DEFAULTS.items():
        folder = upstream / "charts" / chart.replace("/", "/charts/")
        node = yaml.safe_load((folder / "values.yaml").read_text())
        for key in path.split("."):
            node = node[key]
        assert {k: str(v) for k, v in node.items()} == dict(expected), (chart, path)


def test_quantities():
    assert [sn.cpu_millis(q) for q in ("2", "500m", 1.5, "0.25")] == [2000, 500, 1500, 250]
    assert [sn.memory_mib(q) for q in ("8Gi", "512Mi", "1G", "1048576")] == [8192, 512, 954, 1]
    # A limit without a request requests the limit (the KubeRay operator's chart sets limits only).
    assert sn.container_requests({"limits": {"cpu": "500m", "memory": "1Gi"}}) == (500, 1024)
    assert sn.container_requests({"limits": {"cpu": "1"}, "requests": {"cpu": "200m"}}) == (200, 0)


def test_prod_pods_are_rendered_by_the_components():
    config = parse_stack_config(stack_config("prod"))
    pods = _pods(config)
    # The batch RayCluster's head (2 CPU, 8Gi) plus the in-tree autoscaler sidecar KubeRay adds.
    head = pods["RayCluster research/batch head"]
    assert (head.cpu_millis, head.memory_mib) == (2500, 8 * 1024 + 512)
    # The RayJob runs without the autoscaler: its head alone, and its submitter.
    assert (pods["RayJob research/gpu-smoke-test head"].cpu_millis, pods["RayJob research/gpu-smoke-test head"].memory_mib) == (1000, 4096)
    submitter = pods["RayJob research/gpu-smoke-test submitter"]
    assert (submitter.cpu_millis, submitter.memory_mib) == (sn.cpu_millis(SUBMITTER_RESOURCES["cpu"]), sn.memory_mib(SUBMITTER_RESOURCES["memory"]))
    # One loader Job per variant with a weightsSource, canary included, all at once on first deploy.
    loaders = sorted(what for what in pods if what.startswith("weights loader"))
    assert loaders == ["weights loader serving/bge-embeddings", "weights loader serving/chat-8b",
                       "weights loader serving/chat-8b canary qwen3", "weights loader serving/deepseek-v3"]
    # The Triton reranker's model repository Job (1 CPU, 2Gi): the weights loader's pod.
    repository = pods["model repository serving/reranker"]
    assert (repository.count, repository.cpu_millis, repository.memory_mib) == (1, 1000, 2048)
    lws = pods["LeaderWorkerSet controller"]
    assert (lws.count, lws.cpu_millis, lws.memory_mib) == (2, 500, 512)
    assert (pods["Karpenter controller"].count, pods["Karpenter controller"].cpu_millis) == (2, 1000)
    assert (pods["Kueue controller"].count, pods["Kueue controller"].cpu_millis) == (2, 500)
    assert (pods["KubeRay operator"].count, pods["KubeRay operator"].cpu_millis, pods["KubeRay operator"].memory_mib) == (2, 500, 1024)
    assert {what for what in pods if what.startswith("KEDA")} == {"KEDA operator", "KEDA metricsServer", "KEDA webhooks"}
    assert all(pods[w].count == 2 for w in pods if w.startswith("KEDA"))
    assert pods["NFD worker"].per_node and pods["kube-proxy"].per_node
    # Kubeflow Trainer (2 replicas, request = limit) and the JobSet controller its chart installs.
    assert (pods["Kubeflow Trainer controller"].count, pods["Kubeflow Trainer controller"].cpu_millis,
            pods["Kubeflow Trainer controller"].memory_mib) == (2, 500, 512)
    assert (pods["JobSet controller"].count, pods["JobSet controller"].cpu_millis, pods["JobSet controller"].memory_mib) == (1, 500, 128)
    total_cpu = sum(p.total(3)[0] for p in pods.values())
    assert 15_500 < total_cpu < 17_500


def test_reference_stacks_fit_with_headroom():
    for stack in ("dev", "prod", "options", "automode"):
        config = parse_stack_config(stack_config(stack))
        nodes = config.cluster.system_nodes
        auto_mode = config.cluster.auto_mode
        count = nodes.max_size if auto_mode else nodes.min_size  # Auto Mode grows the pool up to its limits
        cpu = sum(p.total(count)[0] for p in sn.system_node_pods(config))
        smallest = min(sn.allocatable(sn.SYSTEM_INSTANCE_TYPES[t], auto_mode=auto_mode)[0] for t in nodes.instance_types)
        assert cpu <= smallest * count * (1 - sn.HEADROOM), stack


def test_the_old_prod_system_nodes_are_refused_with_the_numbers():
    """3 × m7i.xlarge hold 11.76 allocatable vCPU; prod pins about 17 vCPU of requests there."""
    raw = _cluster(stack_config("prod"), instanceTypes=["m7i.xlarge", "m6i.xlarge"])
    with pytest.raises(ConfigError) as error:
        parse_stack_config(raw)
    (problem,) = error.value.problems
    assert problem.startswith("gpufleet:cluster.systemNodes: the pods pinned to the system nodes request 1")
    assert "minSize 3 × m7i.xlarge" in problem and "allocate 11.76 vCPU" in problem
    assert "raise minSize or use a larger instance type" in problem
    assert "RayCluster research/batch head 2.50 vCPU" in problem
    # More nodes of the same type fit.
    parse_stack_config(_cluster(stack_config("prod"), instanceTypes=["m7i.xlarge"], minSize=6, desiredSize=6, maxSize=7))


def test_the_smallest_listed_type_counts():
    raw = _cluster(stack_config("prod"), instanceTypes=["m7i.2xlarge", "m7i.large"])
    with pytest.raises(ConfigError, match=r"minSize 3 × m7i\.large \(the smallest of instanceTypes\)"):
        parse_stack_config(raw)


def test_unknown_instance_type_and_a_pod_larger_than_a_node_are_refused():
    with pytest.raises(ConfigError, match=r"gpufleet:cluster\.systemNodes\.instanceTypes: x9z\.huge not in gpufleet's"):
        parse_stack_config(_cluster(stack_config("dev"), instanceTypes=["x9z.huge"]))
    ray = json.loads(stack_config("dev")["gpufleet:ray"])
    ray["clusters"][0]["head"] = {"cpu": "6", "memory": "8Gi", "shmSize": "1Gi"}
    raw = with_config(_cluster(stack_config("dev"), minSize=3, desiredSize=3, maxSize=3), "ray", ray)
    with pytest.raises(ConfigError, match=r"RayCluster ml/dev head requests 6\.50 vCPU .* more than one m7i\.xlarge allocates"):
        parse_stack_config(raw)


def test_a_head_on_other_cpu_nodes_and_the_stacks_own_karpenter_sizes_count_as_configured():
    ray = json.loads(stack_config("dev")["gpufleet:ray"])
    ray["clusters"][0]["head"] = {"cpu": "500m", "memory": "2Gi", "shmSize": "512Mi", "nodeSelector": {"pool": "cpu"}}
    config = parse_stack_config(with_config(stack_config("dev"), "ray", ray))
    assert not any(what.startswith("RayCluster") for what in _pods(config))
    karpenter = parse_stack_config(with_config(stack_config("dev"), "karpenter", {"replicas": 2, "resources": {"cpu": "1", "memory": "2Gi"}}))
    assert (_pods(karpenter)["Karpenter controller"].cpu_millis, _pods(karpenter)["Karpenter controller"].memory_mib) == (1000, 2048)


def test_plan_exits_2_naming_the_node_group(tmp_path):
    for name in ("Pulumi.yaml",):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "stacks", tmp_path / "stacks")
    shutil.copytree(REPO / "infra", tmp_path / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "stacks" / "Pulumi.prod.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["gpufleet:cluster"]["systemNodes"]["instanceTypes"] = ["m7i.xlarge"]
    path.write_text(yaml.safe_dump(document))
    result = CliRunner().invoke(app, ["plan", "prod", "--project-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "gpufleet:cluster.systemNodes: the pods pinned to the system nodes request" in " ".join(result.output.split())


def test_karpenter_replicas_need_as_many_system_nodes(upstream):
    """The chart requires one controller per node (required hostname anti-affinity)."""
    chart = yaml.safe_load((upstream / "charts" / "karpenter" / "values.yaml").read_text())
    (term,) = chart["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    raw = with_config(_cluster(stack_config("dev"), instanceTypes=["m7i.2xlarge"], minSize=1, desiredSize=1),
                      "karpenter", {"replicas": 2, "resources": {"cpu": "500m", "memory": "1Gi"}})
    with pytest.raises(ConfigError, match=r"gpufleet:cluster\.systemNodes\.minSize: 1 nodes hold at most 1 Karpenter controllers"):
        parse_stack_config(raw)
