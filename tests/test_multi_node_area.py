"""``serving.multiNodeServices`` and ``serving.leaderWorkerSet``: field-named problems at the config
edge, GPU and cpu/memory accounting with the pools, quotas and Kueue, the Kueue integrations a queued
service turns on, the system-node fit of the LWS controller, and what the prod stack declares."""

from __future__ import annotations

import runpy

import pytest

from gpufleet.infra.areas import multi_node_serving as area
from gpufleet.infra.areas import system_nodes
from gpufleet.infra.areas.gpu_pools import configured_placements
from gpufleet.infra.areas.tenancy import cross_check as tenancy_problems
from gpufleet.infra.areas.tenancy_capacity import kueue_cpu_memory
from gpufleet.infra.config import StackConfig
from tests.harness import REPO, stack_config

POOLS = [
    {"name": "multi-node", "instanceTypes": ["p5.48xlarge"], "limits": {"gpus": 32, "cpu": 768, "memoryGib": 8192}},
    {"name": "multi-node-2", "instanceTypes": ["p5.48xlarge"], "limits": {"gpus": 16, "cpu": 384, "memoryGib": 4096}},
    {"name": "serving-mig", "instanceTypes": ["p5.48xlarge"], "limits": {"gpus": 16, "cpu": 384, "memoryGib": 4096},
     "sharing": {"mode": "mig", "migProfile": "1g.10gb"}},
]
DEEPSEEK = {"name": "deepseek", "team": "serving", "pool": "multi-node", "model": "deepseek-v3",
            "storage": "pvc://deepseek-ai/DeepSeek-V3", "weightsSource": "hf://deepseek-ai/DeepSeek-V3",
            "nodes": 2, "cpu": "96", "memory": "1024Gi", "shmSize": "64Gi", "weightsGib": 642}
TEAM = {"name": "serving", "cpu": 1024, "memoryGib": 8192}


def config(services=(DEEPSEEK,), teams=(TEAM,), kueue=None, azs=3, **serving):
    return StackConfig.model_validate({
        "environment": "dev", "region": "us-east-1", "kubernetesVersion": "1.35",
        "network": {"azCount": azs},
        "gpuPools": POOLS, "teams": list(teams), "modelCache": {"enabled": True},
        **({"kueue": kueue} if kueue is not None else {}),
        "serving": {**serving, "multiNodeServices": list(services)},
    })


def test_consistent_service_has_no_problems():
    assert area.cross_check(config()) == []
    assert tenancy_problems(config()) == []


@pytest.mark.parametrize("service, problem", [
    ({**DEEPSEEK, "team": "nobody"}, ".team: 'nobody' is not a team (gpufleet:teams[].name: serving)"),
    ({**DEEPSEEK, "pool": "nowhere"}, ".pool: 'nowhere' is not a GPU pool (gpufleet:gpuPools[].name: multi-node, multi-node-2, serving-mig)"),
    ({**DEEPSEEK, "pool": "serving-mig"}, ".pool: must be a whole-GPU pool: pool 'serving-mig' shares its GPUs (mig)"),
    ({**DEEPSEEK, "gpusPerNode": 16}, ".gpusPerNode: (16) exceeds what one node of pool 'multi-node' offers"),
    ({**DEEPSEEK, "groups": 3}, ".groups: groups × nodes × gpusPerNode (3 × 2 × 8 = 48) exceeds the GPU limit of pool 'multi-node' (32)"),
    ({**DEEPSEEK, "shmSize": "2Ti"}, ".shmSize: (2Ti) must be below memory (1024Gi)"),
    ({**DEEPSEEK, "weightsSource": None}, ".weightsSource: is required with pvc:// storage"),
    ({**DEEPSEEK, "preloaded": True}, ".weightsSource: set weightsSource or preloaded: true, not both"),
    ({**DEEPSEEK, "storage": "s3://bucket/ds", "weightsSource": None}, ".storage: must be pvc://<claim>/<path> or hf://"),
    ({**DEEPSEEK, "storage": "hf://deepseek-ai/DeepSeek-V3", "weightsSource": None},
     ".storage: with hf:// every pod downloads the whole model (642 GiB) into its node's root volume, but pool "
     "'multi-node' has rootVolume.sizeGib 200"),
    ({**DEEPSEEK, "hfTokenSecret": {"name": "hf-token"}}, ".hfTokenSecret.name: Secret 'hf-token' is created by gpufleet"),
    ({**DEEPSEEK, "disruptionBudget": {"minAvailable": 2}}, ".disruptionBudget.minAvailable: (2) allows no voluntary disruption"),
])
def test_problems_name_the_field(service, problem):
    problems = area.cross_check(config([service]))
    assert any(p.startswith(f"gpufleet:serving.multiNodeServices[0]{problem}") for p in problems), problems


def test_duplicate_names_in_a_team_are_refused():
    problems = area.cross_check(config([DEEPSEEK, DEEPSEEK]))
    assert "gpufleet:serving.multiNodeServices[1].name: 'deepseek' is already served in namespace 'serving' " \
           "(gpufleet:serving.multiNodeServices[0])" in problems


def test_disabled_controller_with_services_is_refused():
    assert area.cross_check(config(leaderWorkerSet={"enabled": False}))[0] == (
        "gpufleet:serving.leaderWorkerSet.enabled: multiNodeServices need the LeaderWorkerSet controller")


def test_more_exclusive_groups_than_zones_is_refused_and_null_turns_it_off():
    two = {**DEEPSEEK, "groups": 2}
    problems = area.cross_check(config([two], azs=2, teams=(TEAM,)))
    assert problems == []
    problems = area.cross_check(config([two, {**DEEPSEEK, "name": "other", "groups": 1, "weightsSource": None,
                                              "preloaded": True}], azs=2))
    assert any(p.startswith("gpufleet:serving.multiNodeServices[1].groups: team 'serving' runs 3 groups with exclusive "
                            "placement per topology.kubernetes.io/zone") for p in problems), problems
    assert area.cross_check(config([{**two, "exclusiveTopology": None}, {**DEEPSEEK, "name": "other", "weightsSource": None,
                                     "preloaded": True, "exclusiveTopology": None, "pool": "multi-node-2"}], azs=2)) == []


def test_gpus_outside_kueue_count_against_the_pool_with_the_quotas():
    teams = ({**TEAM, "gpuQuotas": [{"pool": "multi-node", "gpus": 24}]},)
    problems = area.cross_check(config(teams=teams))
    assert problems == ["gpufleet:serving.multiNodeServices[0].groups: on pool 'multi-node' the multi-node services and "
                        "inference services (deepseek 16) plus the teams' nominal Kueue quotas (24) need 40 GPUs, above "
                        "the pool's limits.gpus (32)"]
    ok = ({**TEAM, "gpuQuotas": [{"pool": "multi-node", "gpus": 16}]},)
    assert area.cross_check(config(teams=ok)) == []


def test_namespace_quota_and_kueue_share_pay_for_the_groups():
    cfg = config(teams=({**TEAM, "gpuQuotas": [{"pool": "multi-node", "gpus": 16}]},))
    placements = configured_placements(cfg)
    assert area.namespace_gpus(cfg, "serving", placements) == {"nvidia.com/gpu": 16}
    split = kueue_cpu_memory(cfg, cfg.teams[0], placements)
    held = {what: (cpu, memory) for what, cpu, memory in split.held}
    assert held["deepseek (1 × 2 pods)"] == (192, 2 * 1024 * 2**30)
    assert "deepseek-weights (loader Job)" in held
    assert split.cpu < 1024 - 192


def test_team_quota_too_small_for_its_groups_is_refused():
    problems = tenancy_problems(config(teams=({**TEAM, "cpu": 100},)))
    assert any(p.startswith("gpufleet:teams[0].cpu: the team's workloads outside Kueue") and "deepseek (1 × 2 pods) 192"
               in p for p in problems), problems


def test_queued_service_needs_a_queue_a_quota_one_group_fits_and_a_load_inside_the_timeout():
    queued = {**DEEPSEEK, "queued": True}
    assert area.cross_check(config([queued]))[0] == (
        "gpufleet:serving.multiNodeServices[0].queued: team 'serving' has no Kueue queue (gpufleet:kueue.enabled and "
        "the team's gpuQuotas make one)")
    small = ({**TEAM, "gpuQuotas": [{"pool": "multi-node", "gpus": 8, "borrowingLimit": 4}]},)
    problems = area.cross_check(config([queued], teams=small, kueue={"podsReadyTimeoutMinutes": 60}))
    assert problems == ["gpufleet:serving.multiNodeServices[0].nodes: one group needs 2 × 8 = 16 GPUs at once, but team "
                        "'serving' can hold at most 12 on pool 'multi-node' (gpuQuotas gpus + borrowingLimit, "
                        "limits.gpus): Kueue would never admit it"]
    fits = ({**TEAM, "gpuQuotas": [{"pool": "multi-node", "gpus": 16}]},)
    problems = area.cross_check(config([queued], teams=fits, kueue={"podsReadyTimeoutMinutes": 20}))
    assert problems == ["gpufleet:serving.multiNodeServices[0].loadSeconds: a group is expected to take 1884 s to be "
                        "ready, but Kueue evicts and requeues a workload whose pods are not ready within "
                        "gpufleet:kueue.podsReadyTimeoutMinutes (20 min): raise the timeout or do not queue the service"]
    cfg = config([queued], teams=fits, kueue={"podsReadyTimeoutMinutes": 60})
    assert area.cross_check(cfg) == []
    # inside Kueue: no GPUs outside it, and the integrations are turned on
    assert area.namespace_gpus(cfg, "serving", configured_placements(cfg)) == {}
    assert area.kueue_frameworks(cfg, ("batch/job",)) == ["batch/job", "pod", "leaderworkerset.x-k8s.io/leaderworkerset"]
    assert area.kueue_frameworks(config(), ("batch/job",)) == ["batch/job"]


def test_the_lws_controller_counts_on_the_system_nodes():
    pods = {p.what: p for p in system_nodes.system_node_pods(config())}
    controller = pods["LeaderWorkerSet controller"]
    assert (controller.count, controller.cpu_millis, controller.memory_mib) == (2, 500, 512)
    assert "weights loader serving/deepseek" in pods
    assert "LeaderWorkerSet controller" not in {p.what for p in system_nodes.system_node_pods(config(services=()))}


def test_chart_default_requests_match_the_chart(upstream):
    import yaml

    chart = yaml.safe_load((upstream / "charts" / "lws" / "values.yaml").read_text())
    assert chart["resources"]["requests"] == {"cpu": 1, "memory": "1Gi"}
    assert system_nodes.CHART_DEFAULTS[("lws", "resources.requests")] == {"cpu": "1", "memory": "1Gi"}


def test_prod_declares_a_two_node_model_and_the_controller(run):
    recording = run(lambda: runpy.run_path(str(REPO / "infra"), run_name="__main__"), config=stack_config("prod"),
                    stack="prod")
    (lws,) = recording.of_type("kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet")
    spec = lws.inputs["spec"]
    assert spec["leaderWorkerTemplate"]["size"] == 2
    leader = spec["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]
    flags = dict(zip(leader["args"][1::2], leader["args"][2::2]))
    assert flags["--tensor-parallel-size"] == "8" and flags["--pipeline-parallel-size"] == "2"
    releases = {r.inputs["chart"]: r for r in recording.of_type("kubernetes:helm.sh/v3:Release")}
    assert releases["oci://registry.k8s.io/lws/charts/lws"].inputs["version"] == "0.10.0"
    (quota,) = [r for r in recording.of_type("kubernetes:core/v1:ResourceQuota")
                if r.inputs["metadata"]["namespace"] == "serving"]
    # Kueue's most on the serving pool (20 + 8 borrowed) + chat-8b's 6 + 1 canary + deepseek-v3's 2 x 8
    assert quota.inputs["spec"]["hard"]["requests.nvidia.com/gpu"] == "51"


def test_a_queued_prod_service_turns_on_kueue_integrations_and_names_the_team_queue(run):
    import json

    from tests.harness import with_config

    raw = stack_config("prod")
    serving = json.loads(raw["gpufleet:serving"])
    serving["multiNodeServices"][0]["queued"] = True
    teams = json.loads(raw["gpufleet:teams"])
    teams[0]["gpuQuotas"].append({"pool": "multi-node", "gpus": 16})
    raw = with_config(with_config(with_config(raw, "serving", serving), "teams", teams), "kueue",
                      {"replicas": 2, "podsReadyTimeoutMinutes": 90})
    recording = run(lambda: runpy.run_path(str(REPO / "infra"), run_name="__main__"), config=raw, stack="prod")
    (lws,) = recording.of_type("kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet")
    assert lws.inputs["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "serving"
    kueue = next(r for r in recording.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "kueue")
    manager = kueue.inputs["values"]["managerConfig"]["controllerManagerConfigYaml"]
    assert "- pod\n" in manager and "- leaderworkerset.x-k8s.io/leaderworkerset\n" in manager
