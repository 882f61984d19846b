"""``gpufleet simulate``: golden scenarios with expectations computed by hand, properties of every
simulation, and the reference stacks."""

from __future__ import annotations

import json
import shutil
import xml.dom.minidom
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from gpufleet.infra.cli import app
from gpufleet.infra.simulate import PriceError, simulate
from gpufleet.infra.simulate.cluster import fits, tolerates_all
from gpufleet.infra.simulate.picture import render_svg
from gpufleet.infra.simulate.prices import ON_DEMAND_USD, SPOT_SHARE, hourly_usd
from tests.simulate_fixtures import (
    SYSTEM, config, deployment, inputs, job, node_pool, overlay,
)

REPO = Path(__file__).resolve().parent.parent
P4DE = ON_DEMAND_USD["us-east-1"]["p4de.24xlarge"]
SYSTEM_PRICE = ON_DEMAND_USD["us-east-1"]["m7i.2xlarge"]


def gpu_nodes(result, pool):
    return [(r["instanceType"], r["capacityType"], r["count"]) for r in result.node_rows() if r["pool"] == pool]


def mig_pool():
    return [node_pool("mig", types=["p4de.24xlarge"], labels={"nvidia.com/mig.config": "all-1g.10gb"}),
            overlay("mig-slices", "mig", {"nvidia.com/mig-1g.10gb": "56"})]


# -- golden scenarios ------------------------------------------------------------------------------


def test_preferred_anti_affinity_on_a_mig_service_launches_a_node_per_replica():
    # Two replicas of one 1g.10gb slice each: one p4de.24xlarge (56 slices) holds both, but Karpenter
    # treats the preferred anti-affinity as required and launches a second 8-GPU node.
    spread = simulate(inputs([*mig_pool(), deployment("embed", "mig", 2, resource="nvidia.com/mig-1g.10gb",
                                                      cpu="4", memory="16Gi", anti_affinity="preferred")]), ["min"])
    packed = simulate(inputs([*mig_pool(), deployment("embed", "mig", 2, resource="nvidia.com/mig-1g.10gb",
                                                      cpu="4", memory="16Gi")]), ["min"])
    assert gpu_nodes(spread.results["min"], "mig") == [("p4de.24xlarge", "on-demand", 2)]
    assert gpu_nodes(packed.results["min"], "mig") == [("p4de.24xlarge", "on-demand", 1)]
    assert spread.results["min"].hourly_usd == pytest.approx(2 * P4DE + 2 * SYSTEM_PRICE)
    assert spread.results["min"].gpus()["pools"] == [
        {"pool": "mig", "resource": "nvidia.com/mig-1g.10gb", "requested": 2, "provisioned": 112, "gpus": 16}]
    assert spread.ok and packed.ok


def test_required_anti_affinity_stays_pending_when_the_pool_limit_allows_one_node():
    # The pool may hold 8 GPUs: one p4de. Required anti-affinity cannot be relaxed: the second replica waits.
    pool = node_pool("mig", types=["p4de.24xlarge"], labels={"nvidia.com/mig.config": "all-1g.10gb"}, gpus=8)
    result = simulate(inputs([pool, mig_pool()[1], deployment("embed", "mig", 2, resource="nvidia.com/mig-1g.10gb",
                                                             anti_affinity="required")]), ["min"]).results["min"]
    assert gpu_nodes(result, "mig") == [("p4de.24xlarge", "on-demand", 1)]
    assert [p.reason for p in result.pending] == ["pool limit reached (mig: nvidia.com/gpu 8)"]


def test_time_sliced_replicas_pack_onto_one_gpu_until_it_is_full():
    # 4 replicas a GPU: five 1-replica pods need two g6.xlarge (1 GPU each), not five nodes.
    time_slicing = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dp", "namespace": "gpu-operator"},
                    "data": {"ts-time-slicing": "version: v1\nsharing:\n  timeSlicing:\n    resources:\n"
                                                "    - name: nvidia.com/gpu\n      replicas: 4\n"}}
    pool = node_pool("ts", types=["g6.xlarge", "g6.2xlarge"], labels={"nvidia.com/device-plugin.config": "ts-time-slicing"})
    result = simulate(inputs([pool, time_slicing, overlay("ts-shared", "ts", {"nvidia.com/gpu.shared": "4"}),
                              deployment("chat", "ts", 5, resource="nvidia.com/gpu.shared", cpu="500m", memory="2Gi")]),
                      ["min"]).results["min"]
    assert gpu_nodes(result, "ts") == [("g6.xlarge", "on-demand", 2)]
    assert sorted(len(n.pods) for n in result.placement.nodes if n.pool == "ts") == [1, 4]
    assert result.gpus()["pools"] == [
        {"pool": "ts", "resource": "nvidia.com/gpu.shared", "requested": 5, "provisioned": 8, "gpus": 2}]
    assert result.gpus()["requested"] == pytest.approx(1.25)


def test_a_pool_limit_leaves_the_replicas_beyond_it_pending():
    # 6 vCPU, 48 GiB and one GPU a replica: a g6e.2xlarge each; the pool's 2 GPUs hold two of three.
    result = simulate(inputs([node_pool("serving", families=["g6e"], gpus=2),
                              deployment("chat", "serving", 3, cpu="6", memory="48Gi")]), ["min"]).results["min"]
    assert gpu_nodes(result, "serving") == [("g6e.2xlarge", "on-demand", 2)]
    assert [(p.pod.kind, p.pod.name, p.reason) for p in result.pending] == [
        ("Deployment", "chat", "pool limit reached (serving: nvidia.com/gpu 2)")]


def test_a_pod_larger_than_any_instance_type_says_so():
    result = simulate(inputs([node_pool("serving", families=["g6e"]),
                              deployment("huge", "serving", 1, gpus=16)]), ["min"]).results["min"]
    assert result.pending[0].reason.startswith("too large for any instance type of serving (asks ")
    assert "nvidia.com/gpu 16" in result.pending[0].reason


def test_a_pod_no_pool_tolerates_stays_pending():
    result = simulate(inputs([node_pool("serving", families=["g6e"]),
                              deployment("careless", "serving", 1, tolerate=False)]), ["min"]).results["min"]
    assert [p.reason for p in result.pending] == ["no NodePool tolerates it and matches its node selection"]


def _queues(research_gpus: int, lend: int = 0):
    flavor = {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "ResourceFlavor", "metadata": {"name": "train"},
              "spec": {"nodeLabels": {"gpufleet.io/gpu-pool": "train"}}}
    cpu = {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "ResourceFlavor", "metadata": {"name": "cpu"}, "spec": {}}

    def queue(name, gpus):
        return {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "ClusterQueue", "metadata": {"name": name}, "spec": {
            "cohortName": "all", "resourceGroups": [
                {"coveredResources": ["cpu", "memory"], "flavors": [{"name": "cpu", "resources": [
                    {"name": "cpu", "nominalQuota": "100"}, {"name": "memory", "nominalQuota": "1000Gi"}]}]},
                {"coveredResources": ["nvidia.com/gpu"], "flavors": [{"name": "train", "resources": [
                    {"name": "nvidia.com/gpu", "nominalQuota": str(gpus)}]}]}]}}

    local = {"apiVersion": "kueue.x-k8s.io/v1beta1", "kind": "LocalQueue",
             "metadata": {"name": "research", "namespace": "research"}, "spec": {"clusterQueue": "research"}}
    return [flavor, cpu, queue("research", research_gpus), queue("other", lend), local]


def test_an_exhausted_quota_keeps_a_job_waiting():
    # Quota 4 GPUs: the 2-GPU job is admitted (flavor 'train' puts it on the train pool), the 3-GPU job waits.
    objects = [node_pool("train", families=["g6e"]), *_queues(4),
               job("first", "research", "research", 2), job("second", "research", "research", 3)]
    result = simulate(inputs(objects), ["min"]).results["min"]
    assert [(p.pod.name, p.reason.split(" (")[0]) for p in result.pending] == [
        ("second", "quota: ClusterQueue research has no room for it")]
    assert result.pending[0].reason.endswith("(nvidia.com/gpu 3): its nominal quota and what its cohort may lend "
                                             "are in use or too small")
    assert gpu_nodes(result, "train") == [("g6e.12xlarge", "on-demand", 1)]
    assert not result.pending[0].pod.spec.get("nodeSelector")  # never admitted: no flavor injected


def test_borrowing_from_the_cohort_admits_what_the_nominal_quota_cannot():
    objects = [node_pool("train", families=["g6e"]), *_queues(4, lend=2),
               job("first", "research", "research", 2), job("second", "research", "research", 3)]
    result = simulate(inputs(objects), ["min"]).results["min"]
    assert result.pending == []
    assert sum(p.requests.get("nvidia.com/gpu", 0) for n in result.placement.nodes for p in n.pods) == 5


def test_an_over_committed_system_node_group_leaves_pinned_pods_pending():
    # One m7i.xlarge allocates 3.92 vCPU: a 4-vCPU pod pinned to the system nodes never fits.
    loader = deployment("loader", None, 1, gpus=0, cpu="4", memory="1Gi", tolerate=False,
                        extra_spec={"nodeSelector": dict(SYSTEM)})
    result = simulate(inputs([loader], config(["m7i.xlarge"], min_size=1)), ["min"])
    minimum = result.results["min"]
    assert [(p.pod.name, p.reason) for p in minimum.pending] == [(
        "loader", "system node group full: 1 × m7i.xlarge cannot hold it and nothing scales the group "
                  "(raise gpufleet:cluster.systemNodes.minSize)")]
    assert not result.ok
    assert simulate(inputs([loader], config(["m7i.2xlarge"], min_size=1)), ["min"]).ok


def test_a_single_replica_pdb_blocks_the_drain_of_its_node():
    def pdb(name, **rule):
        return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": "apps"},
                "spec": {"selector": {"matchLabels": {"app": "chat"}}, **rule}}

    base = [node_pool("serving", families=["g6e"]), deployment("chat", "serving", 1, cpu="6", memory="48Gi")]
    blocked = simulate(inputs([*base, pdb("chat", minAvailable=1)]), ["min"])
    assert blocked.results["min"].blocked_drains == [{
        "pool": "serving", "pdb": "apps/chat",
        "reason": "minAvailable 1 with 1 pod(s): no pod may be evicted, so a drain of a node running one never finishes"}]
    assert not blocked.ok
    assert simulate(inputs([*base, pdb("chat", maxUnavailable=1)]), ["min"]).ok
    assert simulate(inputs([*base, pdb("chat", maxUnavailable="0%")]), ["min"]).results["min"].blocked_drains


def test_spot_is_preferred_over_on_demand_and_priced_at_the_spot_share():
    result = simulate(inputs([node_pool("batch", families=["g6e"], capacity=["spot", "on-demand"]),
                              deployment("train", "batch", 1, cpu="3", memory="24Gi")]), ["min"]).results["min"]
    assert gpu_nodes(result, "batch") == [("g6e.xlarge", "spot", 1)]
    row = next(r for r in result.node_rows() if r["pool"] == "batch")
    assert row["hourlyUsd"] == pytest.approx(ON_DEMAND_USD["us-east-1"]["g6e.xlarge"] * SPOT_SHARE["g6e"], abs=1e-4)


def test_min_and_max_scale_follow_the_scaled_object():
    scaled = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "chat", "namespace": "apps"},
              "spec": {"scaleTargetRef": {"name": "chat"}, "minReplicaCount": 1, "maxReplicaCount": 3}}
    result = simulate(inputs([node_pool("serving", families=["g6e"]), scaled,
                              deployment("chat", "serving", 2, cpu="6", memory="48Gi")]))
    assert gpu_nodes(result.results["min"], "serving") == [("g6e.2xlarge", "on-demand", 1)]
    assert gpu_nodes(result.results["max"], "serving") == [("g6e.2xlarge", "on-demand", 3)]


def test_a_region_the_price_table_lacks_is_refused_naming_it():
    with pytest.raises(PriceError, match="no prices for region 'eu-north-1'"):
        hourly_usd("eu-north-1", "g6e.xlarge", "on-demand")
    with pytest.raises(PriceError, match=r"no on-demand price for g4dn.xlarge in us-east-1"):
        hourly_usd("us-east-1", "g4dn.xlarge", "on-demand")


# -- properties ------------------------------------------------------------------------------------

_workload = st.fixed_dictionaries({
    "pool": st.sampled_from(["serving", "batch", None]),
    "replicas": st.integers(0, 4),
    "gpus": st.sampled_from([0, 1, 2, 4, 8]),
    "cpu": st.sampled_from(["500m", "2", "6", "30"]),
    "memory": st.sampled_from(["1Gi", "16Gi", "60Gi", "200Gi"]),
    "tolerate": st.booleans(),
    "anti": st.sampled_from([None, "preferred", "required"]),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_workload, max_size=5), st.integers(1, 3))
def test_properties_of_every_simulation(workloads, system_nodes):
    objects = [node_pool("serving", families=["g6e"], gpus=16),
               node_pool("batch", families=["g6e", "p5"], capacity=["spot"], gpus=24)]
    for index, w in enumerate(workloads):
        objects.append(deployment(f"w{index}", w["pool"], w["replicas"], gpus=w["gpus"], cpu=w["cpu"],
                                  memory=w["memory"], tolerate=w["tolerate"], anti_affinity=w["anti"]))
    simulation = simulate(inputs(objects, config(["m7i.xlarge"], min_size=system_nodes)))
    for result in simulation.results.values():
        placed = 0
        for node in result.placement.nodes:
            node_type = node.chosen[0]
            # No node is over its allocatable.
            assert fits(node.used, node_type.allocatable), (node.name, node.used, node_type.allocatable)
            for pod in node.pods:
                placed += 1
                # Every placed pod tolerates its node's taints.
                assert tolerates_all(pod.tolerations, node.taints)
        # Cost is the sum of the nodes' prices.
        assert result.hourly_usd == pytest.approx(sum(n.chosen[2] for n in result.placement.nodes), abs=1e-3)
        assert result.hourly_usd == pytest.approx(sum(r["hourlyUsd"] for r in result.node_rows()), abs=1e-3)
        # Every pod is placed or pending, never both.
        pods, _ = simulation_inputs_pods(objects, system_nodes, result.scale)
        assert placed + len(result.pending) == pods


def simulation_inputs_pods(objects, system_nodes, scale):
    pods, notes = inputs(objects, config(["m7i.xlarge"], min_size=system_nodes)).pods(scale)
    return len(pods), notes


# -- the picture -----------------------------------------------------------------------------------


def test_the_picture_is_svg_with_a_box_per_node_and_the_pending_pods():
    simulation = simulate(inputs([*mig_pool(), node_pool("serving", families=["g6e"], gpus=1),
                                  deployment("embed", "mig", 2, resource="nvidia.com/mig-1g.10gb"),
                                  deployment("chat", "serving", 2, cpu="6", memory="48Gi")]), ["min"])
    svg = render_svg("test", simulation.results)
    document = xml.dom.minidom.parseString(svg)
    texts = [t.firstChild.data for t in document.getElementsByTagName("text") if t.firstChild]
    assert "pool mig" in texts and "pool serving" in texts and "pool system" in texts
    assert any(t.startswith("p4de.24xlarge · on-demand · $") for t in texts)
    assert sum(1 for t in texts if t.startswith("apps/embed-")) == 2
    assert any(t.startswith("Pending Deployment apps/chat-1: pool limit reached") for t in texts)


# -- the reference stacks and the command -----------------------------------------------------------


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_reference_stacks_leave_nothing_pending_and_no_drain_blocked_at_min_scale(runner, stack, tmp_path):
    picture = tmp_path / "nodes.svg"
    result = runner.invoke(app, ["simulate", stack, "--format", "json", "--picture", str(picture),
                                 "--project-dir", str(REPO)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["stack"] == stack and set(document) >= {"min", "max"}
    minimum = document["min"]
    assert minimum["pending"] == [] and minimum["blockedDrains"] == []
    assert minimum["hourlyUsd"] == pytest.approx(sum(r["hourlyUsd"] for r in minimum["nodes"]), abs=1e-3)
    assert {r["pool"] for r in minimum["nodes"]} >= {"system"}
    xml.dom.minidom.parse(str(picture))


def test_prod_launches_what_its_pools_and_services_ask_for(runner):
    result = runner.invoke(app, ["simulate", "prod", "--scale", "min", "--format", "json", "--project-dir", str(REPO)])
    nodes = {(r["pool"], r["instanceType"], r["capacityType"]): r["count"] for r in json.loads(result.stdout)["min"]["nodes"]}
    # chat-8b (2 replicas, anti-affinity per host) and its canary: a g6e.2xlarge each (6 vCPU, 48 GiB);
    # bge-embeddings' and the Triton reranker's 1g.10gb replicas share one MIG node; deepseek-v3's group
    # takes two whole p5 nodes; on the batch pool (8-GPU EFA types only, spot) the TrainJob's two nodes
    # and the smoke test's 1-GPU worker, which takes a whole p4d of its own.
    assert nodes == {("system", "m7i.2xlarge", "on-demand"): 3, ("serving", "g6e.2xlarge", "on-demand"): 3,
                     ("serving-mig", "p4de.24xlarge", "on-demand"): 1, ("multi-node", "p5.48xlarge", "on-demand"): 2,
                     ("batch", "p4d.24xlarge", "spot"): 3}


def _project_copy(tmp_path: Path) -> Path:
    for name in ("Pulumi.yaml", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "stacks", tmp_path / "stacks")
    shutil.copytree(REPO / "infra", tmp_path / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_a_region_without_prices_exits_2(runner, tmp_path):
    project = _project_copy(tmp_path)
    stack = project / "stacks" / "Pulumi.dev.yaml"
    text = stack.read_text()
    assert "gpufleet:region: us-west-2" in text or "gpufleet:region: us-east-1" in text
    stack.write_text(text.replace("gpufleet:region: us-west-2", "gpufleet:region: eu-north-1")
                     .replace("gpufleet:region: us-east-1", "gpufleet:region: eu-north-1"))
    result = runner.invoke(app, ["simulate", "dev", "--project-dir", str(project)])
    assert result.exit_code == 2, result.output
    assert "no prices for region 'eu-north-1'" in result.output


def test_a_picture_that_is_not_svg_exits_2(runner):
    result = runner.invoke(app, ["simulate", "dev", "--picture", "nodes.png", "--project-dir", str(REPO)])
    assert result.exit_code == 2 and "FILE.svg" in result.output


def test_plan_prints_a_one_line_simulation_summary(runner):
    result = runner.invoke(app, ["plan", "dev", "--project-dir", str(REPO)], env={"COLUMNS": "300"})
    line = next(l for l in result.output.splitlines() if l.startswith("Simulated: "))
    assert line.startswith("Simulated: min ") and " · max " in line
    assert line.endswith(" · 0 Pending at min (gpufleet simulate dev)")


def test_a_stack_leaving_pods_pending_at_min_scale_exits_1_with_the_findings(runner, tmp_path):
    # 29 time-sliced workers always running, against the ml team's quota of 7 GPUs × 4 replicas = 28.
    project = _project_copy(tmp_path)
    stack = project / "stacks" / "Pulumi.dev.yaml"
    text = stack.read_text()
    assert "            minReplicas: 0\n            maxReplicas: 2\n" in text
    stack.write_text(text.replace("            minReplicas: 0\n            maxReplicas: 2\n",
                                  "            minReplicas: 29\n            maxReplicas: 30\n"))
    result = runner.invoke(app, ["simulate", "dev", "--scale", "min", "--project-dir", str(project)],
                           env={"COLUMNS": "120"})
    assert result.exit_code == 1, result.output
    assert ("error: Pending at min scale: RayCluster ml/dev ×30: quota: ClusterQueue ml has no room for it "
            "(nvidia.com/gpu.shared 29)") in result.output
    assert "Pending at min scale" in result.stdout and "ml/dev ×30" in result.stdout


def test_text_output_has_a_table_per_scale(runner):
    result = runner.invoke(app, ["simulate", "dev", "--project-dir", str(REPO)], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    for title in ("Nodes at min scale", "GPU allocation at min scale", "Nothing Pending at min scale.",
                  "Nodes at max scale"):
        assert title in result.stdout
    assert "│ gpu-dev     │ g6.xlarge     │ spot      │ 1     │" in result.stdout
    assert "│ gpu-dev-mps │ g6.xlarge     │ on-demand │ 1     │" in result.stdout


def test_a_pod_pinned_to_a_zone_gets_a_node_there():
    pinned = deployment("chat", "serving", 1, cpu="6", memory="48Gi",
                        extra_spec={"nodeSelector": {"gpufleet.io/gpu-pool": "serving",
                                                     "topology.kubernetes.io/zone": "us-east-1c"}})
    result = simulate(inputs([node_pool("serving", families=["g6e"]), pinned]), ["min"]).results["min"]
    assert result.pending == []
    assert [n.labels["topology.kubernetes.io/zone"] for n in result.placement.nodes if n.pool == "serving"] == ["us-east-1c"]
