"""The tenancy area: ``gpufleet:teams`` / ``gpufleet:kueue`` config, its cross-checks against the GPU
pools (field-named errors), and its composition onto the Platform."""

from __future__ import annotations

import runpy
from collections import Counter
from types import SimpleNamespace

import pulumi
import pytest

from gpufleet.components.gpu_instances import instance_types_of
from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.infra.areas import tenancy
from gpufleet.infra.areas.base import Platform
from gpufleet.infra.areas.gpu_pools import configured_placements
from gpufleet.infra.areas.tenancy import KueueSection, TeamSection, cross_check, namespace_gpu_caps
from gpufleet.infra.areas.tenancy_capacity import kueue_cpu_memory
from gpufleet.infra.config import ConfigError, StackConfig, parse_stack_config
from gpufleet.infra.offline.plan import Project
from gpufleet.policies.core import parse_quantity
from tests.harness import BASE_CONFIG, REPO, stack_config, with_config

SERVING = GpuPlacement(pool="serving", instance_types=tuple(instance_types_of(["g6e"])), gpu_limit=16)
MIG = GpuPlacement(
    pool="serving-mig", instance_types=tuple(instance_types_of(types=["p4de.24xlarge", "p5.48xlarge"])),
    gpu_limit=16, sharing="mig", mig_profile="1g.10gb",
)
BATCH = GpuPlacement(pool="batch", instance_types=tuple(instance_types_of(["g6e", "p4d", "p5"])),
                     capacity_types=("spot",), gpu_limit=32)
PLACEMENTS = {p.pool: p for p in (SERVING, MIG, BATCH)}

TEAMS = [
    {"name": "serving", "cpu": 192, "memoryGib": 1536, "fairSharingWeight": 2,
     "access": [{"principalArn": "arn:aws:iam::111122223333:role/serving-engineers"}],
     "gpuQuotas": [{"pool": "serving", "gpus": 12, "borrowingLimit": 4}, {"pool": "serving-mig", "gpus": 8}]},
    {"name": "research", "gpuQuotas": [{"pool": "serving", "gpus": 4, "lendingLimit": 4}, {"pool": "batch", "gpus": 24}]},
]


def pool(name: str, gpus: int):
    """Stand-in for a ``gpufleet:gpuPools`` entry: the attributes cross_check reads."""
    return SimpleNamespace(name=name, limits=SimpleNamespace(gpus=gpus))


def stand_in(teams=TEAMS, pools=(("serving", 16), ("serving-mig", 16), ("batch", 32)), admin=(), kueue=None):
    return SimpleNamespace(
        teams=tuple(TeamSection.model_validate(t) for t in teams),
        gpu_pools=tuple(pool(*p) for p in pools),
        cluster=SimpleNamespace(admin_access=tuple(SimpleNamespace(principal_arn=a) for a in admin)),
        kueue=KueueSection.model_validate(kueue or {}),
    )


def test_consistent_teams_and_pools_have_no_problems():
    assert cross_check(stand_in()) == []


def test_quota_on_unknown_pool_names_the_field():
    teams = [{"name": "ml", "gpuQuotas": [{"pool": "gpu-dev", "gpus": 1}, {"pool": "gpu-prod", "gpus": 1}]}]
    assert cross_check(stand_in(teams, pools=[("gpu-dev", 8)])) == [
        "gpufleet:teams[0].gpuQuotas[1].pool: 'gpu-prod' is not a GPU pool (gpufleet:gpuPools names: gpu-dev)"]


def test_nominal_quotas_above_the_pool_limit_are_reported():
    teams = [TEAMS[0], {**TEAMS[1], "gpuQuotas": [{"pool": "serving", "gpus": 6}]}]
    assert cross_check(stand_in(teams)) == [
        "gpufleet:teams[1].gpuQuotas[0].gpus: nominal GPU quotas on pool 'serving' sum to 18 "
        "(serving 12, research 6), above the pool's limits.gpus (16)"]


def test_borrowing_beyond_the_pool_is_reported():
    teams = [{"name": "ml", "gpuQuotas": [{"pool": "batch", "gpus": 30, "borrowingLimit": 4}]}]
    assert cross_check(stand_in(teams)) == [
        "gpufleet:teams[0].gpuQuotas[0].borrowingLimit: gpus + borrowingLimit (30 + 4) exceeds pool 'batch' limits.gpus (32)"]


def test_duplicate_team_and_shared_principals_are_reported():
    arn = "arn:aws:iam::111122223333:role/serving-engineers"
    teams = [TEAMS[0], {"name": "serving", "access": [{"principalArn": arn}]}]
    problems = cross_check(stand_in(teams, admin=[arn]))
    assert "gpufleet:teams[1].name: team 'serving' is already gpufleet:teams[0]" in problems
    assert (f"gpufleet:teams[0].access[0].principalArn: {arn} already has an access entry "
            "(gpufleet:cluster.adminAccess); EKS allows one per principal") in problems
    assert (f"gpufleet:teams[1].access[0].principalArn: {arn} already has an access entry "
            "(gpufleet:cluster.adminAccess); EKS allows one per principal") in problems


def test_a_pool_named_like_the_cpu_flavor_is_reported():
    teams = [{"name": "ml", "gpuQuotas": [{"pool": "cpu", "gpus": 1}]}]
    expected = "gpufleet:gpuPools[0].name: 'cpu' is Kueue's CPU flavor (Ray heads, CPU-only jobs); rename the pool"
    assert cross_check(stand_in(teams, pools=[("cpu", 8)])) == [expected]
    assert cross_check(stand_in(teams, pools=[("cpu", 8)], kueue={"enabled": False})) == []


def test_quotas_without_pools_are_reported():
    problems = cross_check(stand_in([{"name": "ml", "gpuQuotas": [{"pool": "x", "gpus": 1}]}], pools=[]))
    assert "gpufleet:kueue: teams have gpuQuotas but gpufleet:gpuPools is empty" in problems


@pytest.mark.parametrize("teams, path, reason", [
    ([{"name": "kube-system"}], "gpufleet:teams[0].name", "system namespace"),
    ([{"name": "ML"}], "gpufleet:teams[0].name", "DNS label"),
    ([{"name": "ml", "gpuQuotas": [{"pool": "a", "gpus": -1}]}], "gpufleet:teams[0].gpuQuotas[0].gpus", "greater than or equal"),
    ([{"name": "ml", "gpuQuotas": [{"pool": "a", "gpus": 1, "lendingLimit": 2}]}], "gpufleet:teams[0].gpuQuotas[0]", "lendingLimit (2) exceeds gpus (1)"),
    ([{"name": "ml", "gpuQuotas": [{"pool": "a", "gpus": 1}, {"pool": "a", "gpus": 1}]}], "gpufleet:teams[0]", "same pool twice"),
    ([{"name": "ml", "access": [{"principalArn": "arn:aws:iam::1:role/x"}]}], "gpufleet:teams[0].access[0].principalArn", "IAM role or user ARN"),
    ([{"name": "ml", "quota": 3}], "gpufleet:teams[0].quota", "unknown key"),
])
def test_team_config_errors_name_the_field(teams, path, reason):
    with pytest.raises(ConfigError) as error:
        parse_stack_config(with_config(BASE_CONFIG, "teams", teams))
    assert any(p.startswith(path + ":") and reason in p for p in error.value.problems), error.value.problems


@pytest.mark.parametrize("kueue, path, reason", [
    ({"frameworks": ["ray.io/rayjobs"]}, "gpufleet:kueue.frameworks", "not a Kueue 0.19 integration"),
    ({"podsReadyTimeoutMinutes": 0}, "gpufleet:kueue.podsReadyTimeoutMinutes", "greater than or equal"),
    ({"cohort": "Team_A"}, "gpufleet:kueue.cohort", "DNS label"),
])
def test_kueue_config_errors_name_the_field(kueue, path, reason):
    with pytest.raises(ConfigError) as error:
        parse_stack_config(with_config(BASE_CONFIG, "kueue", kueue))
    assert any(p.startswith(path + ":") and reason in p for p in error.value.problems), error.value.problems


def test_namespace_gpu_caps_follow_quota_borrowing_and_pool_units():
    serving, research = (TeamSection.model_validate(t) for t in TEAMS)
    # serving: 12 + 4 borrowable whole GPUs; 8 MIG GPUs x 7 slices, unlimited borrowing → whole pool.
    assert namespace_gpu_caps(serving, PLACEMENTS) == {"nvidia.com/gpu": 16, "nvidia.com/mig-1g.10gb": 16 * 7}
    # research: unlimited borrowing on two whole-GPU pools → both pools' limits.
    assert namespace_gpu_caps(research, PLACEMENTS) == {"nvidia.com/gpu": 16 + 32}
    assert namespace_gpu_caps(TeamSection(name="cpu-only"), PLACEMENTS) == {"nvidia.com/gpu": 0}


def test_namespace_gpu_caps_leave_room_for_the_teams_predictors():
    serving = TeamSection.model_validate(TEAMS[0])
    services = [
        SimpleNamespace(team="serving", pool="serving", gpus=2, min_replicas=1, max_replicas=3,
                        canary=SimpleNamespace(min_replicas=1)),  # (3 + 1) x 2 whole GPUs
        SimpleNamespace(team="serving", pool="serving-mig", gpus=1, min_replicas=2, max_replicas=None, canary=None),
        SimpleNamespace(team="research", pool="serving", gpus=1, min_replicas=5, max_replicas=None, canary=None),
    ]
    assert namespace_gpu_caps(serving, PLACEMENTS, services) == {
        "nvidia.com/gpu": 16 + 8, "nvidia.com/mig-1g.10gb": 16 * 7 + 2}


def compose_program(teams=TEAMS, kueue=None, placements=PLACEMENTS, environment="prod", out=None):
    config = StackConfig.model_validate({
        "environment": environment, "region": "us-east-1", "kubernetesVersion": "1.35",
        "teams": teams, "kueue": kueue or {},
    })

    def program():
        platform = Platform(
            stack="test", config=config, cluster_name="gpu-test", opts=pulumi.ResourceOptions(),
            network=None, cluster=SimpleNamespace(cluster_name=pulumi.Output.from_input("gpu-test")),
            placements=dict(placements),
        )
        tenancy.compose(platform)
        if out is not None:
            out.append(platform)
    return program


def test_compose_puts_namespaces_queues_and_kueue_on_the_platform(run):
    platforms = []
    recording = run(compose_program(out=platforms))
    platform = platforms[0]
    assert set(platform.namespaces) == {"serving", "research"}
    assert platform.local_queues == {"serving": "serving", "research": "research"}
    assert platform.components["kueue"] is not None
    assert platform.components["priority-classes"] is not None
    counts = Counter(r.type for r in recording.resources)
    assert counts["gpufleet:tenancy:Team"] == 2
    assert counts["gpufleet:kueue:Kueue"] == 1
    assert counts["gpufleet:scheduling:PriorityClasses"] == 1
    assert counts["kubernetes:kueue.x-k8s.io/v1beta2:ResourceFlavor"] == 4  # three pools and the CPU flavor
    assert counts["kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue"] == 2
    assert counts["kubernetes:kueue.x-k8s.io/v1beta2:LocalQueue"] == 2


def test_local_queue_depends_on_its_cluster_queue(run):
    recording = run(compose_program())
    queues = {r.inputs["metadata"]["name"]: r for r in recording.of_type("kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue")}
    for local in recording.of_type("kubernetes:kueue.x-k8s.io/v1beta2:LocalQueue"):
        name = local.inputs["metadata"]["namespace"]
        assert local.inputs["spec"]["clusterQueue"] == name
        assert queues[name].urn in local.dependencies


def quota_disagreements(recording) -> list[str]:
    """Per team: Σ over the ClusterQueue's flavors of each resource's nominal quota must not exceed
    the namespace ResourceQuota's ``requests.<resource>``; otherwise Kueue admits pods the
    ResourceQuota refuses (evicted and requeued by waitForPodsReady, forever)."""
    hard = {r.inputs["metadata"]["namespace"]: r.inputs["spec"]["hard"]
            for r in recording.of_type("kubernetes:core/v1:ResourceQuota")}
    found = []
    queues = recording.of_type("kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue")
    assert queues
    for queue in queues:
        spec = queue.inputs["spec"]
        [namespace] = spec["namespaceSelector"]["matchExpressions"][0]["values"]
        nominal: Counter = Counter()
        for group in spec["resourceGroups"]:
            for flavor in group["flavors"]:
                for resource in flavor["resources"]:
                    nominal[resource["name"]] += parse_quantity(resource["nominalQuota"])
        for resource, total in nominal.items():
            ceiling = parse_quantity(hard[namespace][f"requests.{resource}"])
            if total > ceiling:
                found.append(f"{namespace} {resource}: nominal {total} > ResourceQuota {ceiling}")
    return found


def test_team_quota_and_cluster_queue_agree(run):
    recording = run(compose_program())
    assert quota_disagreements(recording) == []
    queues = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in recording.of_type("kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue")}
    cpu_group, gpu_group = queues["serving"]["resourceGroups"]
    assert cpu_group["flavors"] == [{"name": "cpu", "resources": [
        {"name": "cpu", "nominalQuota": "192", "borrowingLimit": "0"},
        {"name": "memory", "nominalQuota": "1536Gi", "borrowingLimit": "0"}]}]
    flavors = {f["name"]: f for f in gpu_group["flavors"]}
    assert {"name": "nvidia.com/mig-1g.10gb", "nominalQuota": "56"} in flavors["serving-mig"]["resources"]
    assert queues["serving"]["fairSharing"] == {"weight": "2"}
    labels = {r.inputs["metadata"]["name"]: r.inputs["metadata"]["labels"] for r in recording.of_type("kubernetes:core/v1:Namespace")}
    assert labels["research"]["gpufleet.io/environment"] == "prod"


def test_quota_agreement_catches_cpu_counted_per_flavor(run):
    """The check itself: the former layout (the team's cpu in every flavor) is caught."""
    recording = run(compose_program())
    queue = next(r for r in recording.of_type("kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue")
                 if r.inputs["metadata"]["name"] == "research")
    cpu_group, gpu_group = queue.inputs["spec"]["resourceGroups"]
    gpu_group["flavors"][0]["resources"].append({"name": "cpu", "nominalQuota": "64"})
    assert quota_disagreements(recording) == ["research cpu: nominal 128 > ResourceQuota 64"]


def test_team_namespaces_depend_on_kueue(run):
    recording = run(compose_program(teams=[*TEAMS, {"name": "analytics"}]))
    kueue = recording.one("gpufleet:kueue:Kueue")
    release = recording.one("kubernetes:helm.sh/v3:Release")
    namespaces = {r.inputs["metadata"]["name"]: r for r in recording.of_type("kubernetes:core/v1:Namespace")}
    for team in ("serving", "research", "analytics"):
        assert release.urn in namespaces[team].dependencies, team
    # No cycle: nothing of Kueue depends on anything of a team.
    team_urns = {r.urn for r in recording.resources if "team-" in r.name}
    kueue_side = [kueue, *(r for r in recording.resources if r.name.startswith("kueue-"))]
    assert all(not (set(r.dependencies) & team_urns) for r in kueue_side)
    # Without Kueue the namespaces depend on nothing.
    recording = run(compose_program(kueue={"enabled": False}))
    assert all(r.dependencies == [] for r in recording.of_type("kubernetes:core/v1:Namespace"))


def test_without_pools_or_with_kueue_disabled_teams_have_no_queue(run):
    platforms = []
    run(compose_program(teams=[{"name": "ml"}], placements={}, environment="dev", out=platforms))
    assert "kueue" not in platforms[0].components and platforms[0].local_queues == {}
    assert set(platforms[0].namespaces) == {"ml"}
    platforms.clear()
    recording = run(compose_program(kueue={"enabled": False}, out=platforms))
    assert recording.of_type("gpufleet:kueue:Kueue") == [] and platforms[0].local_queues == {}


def test_a_team_without_gpu_quotas_gets_no_cluster_queue(run):
    recording = run(compose_program(teams=[*TEAMS, {"name": "analytics"}]))
    names = {r.inputs["metadata"]["name"] for r in recording.of_type("kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue")}
    assert names == {"serving", "research"}
    assert len(recording.of_type("kubernetes:kueue.x-k8s.io/v1beta2:LocalQueue")) == 2


# -- with the real gpufleet:gpuPools model and the repository stacks --------------------------------

def problems_of(raw) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse_stack_config(raw)
    return error.value.problems


def test_repository_stacks_have_their_teams():
    prod, dev = parse_stack_config(stack_config("prod")), parse_stack_config(stack_config("dev"))
    assert [t.name for t in prod.teams] == ["serving", "research"]
    assert [t.name for t in dev.teams] == ["ml"]
    assert prod.teams[0].gpu_quotas != prod.teams[1].gpu_quotas
    assert [q.pool for q in dev.teams[0].gpu_quotas] == ["gpu-dev", "gpu-dev-mps"]


def test_real_pool_model_over_commitment_is_reported():
    raw = stack_config("prod")
    teams = [t.model_dump(by_alias=True, exclude_none=True) for t in parse_stack_config(raw).teams]
    teams[1]["gpuQuotas"][1]["gpus"] = 13  # serving pool: 20 + 13 > 32
    assert problems_of(with_config(raw, "teams", teams)) == [
        "gpufleet:teams[1].gpuQuotas[1].gpus: nominal GPU quotas on pool 'serving' sum to 33 "
        "(serving 20, research 13), above the pool's limits.gpus (32)"]


def predictor(config, pool: str):
    """(name, most units) of the one inference service of a repository stack on ``pool``."""
    [service] = [s for s in config.serving.inference_services if s.pool == pool]
    replicas = service.max_replicas if service.max_replicas is not None else service.min_replicas
    canary = service.canary.min_replicas if service.canary is not None else 0
    return service.name, (replicas + canary) * service.gpus


def test_queued_quotas_and_predictors_over_the_pool_are_reported():
    """KServe predictors are not admitted by Kueue: their GPUs at most replicas (+ canary) count
    against the pool next to the nominal quotas."""
    raw = stack_config("prod")
    config = parse_stack_config(raw)
    name, units = predictor(config, "serving")
    assert units >= 1
    teams = [t.model_dump(by_alias=True, exclude_none=True) for t in config.teams]
    teams[1]["gpuQuotas"][1]["gpus"] = 12  # serving pool: 20 + 12 = 32 queued, plus the predictor's
    assert problems_of(with_config(raw, "teams", teams)) == [
        "gpufleet:teams[1].gpuQuotas[1].gpus: on pool 'serving' the nominal GPU quotas (serving 20, research 12) "
        f"plus the GPUs of the inference services at their most replicas ({name} {units}; not admitted by Kueue) "
        f"need {32 + units} GPUs, above the pool's limits.gpus (32)"]


def test_predictors_on_shared_pools_count_in_physical_gpus():
    """MIG: a predictor replica holds ``gpus`` 1g.10gb slices, 7 to a GPU of the pool; the Triton
    reranker's replicas count like the vLLM service's."""
    raw = stack_config("prod")
    config = parse_stack_config(raw)
    name, slices = predictor(config, "serving-mig")
    assert 0 < slices <= 14
    [triton] = [s for s in config.serving.triton_services if s.pool == "serving-mig"]
    triton_slices = triton.max_replicas * triton.gpus
    teams = [t.model_dump(by_alias=True, exclude_none=True) for t in config.teams]
    teams[0]["gpuQuotas"][1]["gpus"] = 12  # (12 + 4) x 7 = 112 slices: the whole pool, plus the predictors'
    assert problems_of(with_config(raw, "teams", teams)) == [
        "gpufleet:teams[1].gpuQuotas[2].gpus: on pool 'serving-mig' the nominal GPU quotas (serving 12, research 4) "
        f"plus the GPUs of the inference services at their most replicas ({name} {slices / 7:.2f}, {triton.name} "
        f"{triton_slices / 7:.2f}; not admitted by Kueue) need {(112 + slices + triton_slices) / 7:.2f} GPUs, above "
        f"the pool's limits.gpus (16)"]
    teams[0]["gpuQuotas"][1]["gpus"] = 10  # 98 slices + the predictor's fit
    parse_stack_config(with_config(raw, "teams", teams))


def test_predictors_without_max_replicas_count_min_replicas():
    """Time-slicing: the dev service (1 replica, no maxReplicas, 1 of 4 slices of a GPU) needs a
    quarter GPU next to the queue's nominal 8 GPUs of an 8-GPU pool."""
    raw = with_config(stack_config("dev"), "teams", [{"name": "ml", "gpuQuotas": [{"pool": "gpu-dev", "gpus": 8},
                                                                                 {"pool": "gpu-dev-mps", "gpus": 1}]}])
    assert problems_of(raw) == [
        "gpufleet:teams[0].gpuQuotas[0].gpus: on pool 'gpu-dev' the nominal GPU quotas (ml 8) plus the GPUs of "
        "the inference services at their most replicas (qwen-small 0.25; not admitted by Kueue) need 8.25 GPUs, "
        "above the pool's limits.gpus (8)"]
    assert [q.gpus for q in parse_stack_config(stack_config("dev")).teams[0].gpu_quotas] == [7, 1]


def test_mps_pool_quota_counts_mps_clients_like_time_sliced_replicas():
    """MPS: the smollm-mps service takes one of 4 MPS clients of a GPU (0.25 GPU) next to the queue's
    nominal GPUs of the 2-GPU MPS pool."""
    raw = with_config(stack_config("dev"), "teams", [{"name": "ml", "gpuQuotas": [{"pool": "gpu-dev", "gpus": 7},
                                                                                 {"pool": "gpu-dev-mps", "gpus": 2}]}])
    assert problems_of(raw) == [
        "gpufleet:teams[0].gpuQuotas[1].gpus: on pool 'gpu-dev-mps' the nominal GPU quotas (ml 2) plus the GPUs of "
        "the inference services at their most replicas (smollm-mps 0.25; not admitted by Kueue) need 2.25 GPUs, "
        "above the pool's limits.gpus (2)"]


def test_real_pool_model_unknown_pool_is_reported():
    raw = with_config(stack_config("dev"), "teams", [{"name": "ml", "gpuQuotas": [{"pool": "gpu-prod", "gpus": 1}]}])
    assert problems_of(raw) == [
        "gpufleet:teams[0].gpuQuotas[0].pool: 'gpu-prod' is not a GPU pool (gpufleet:gpuPools names: gpu-dev, gpu-dev-mps)"]


def test_prod_flavors_and_quotas_match_the_node_pools(run):
    main = str(Project.find(REPO).main_dir)
    recording = run(lambda: runpy.run_path(main, run_name="__main__"), config=stack_config("prod"), stack="prod")
    node_pools = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in recording.of_type("kubernetes:karpenter.sh/v1:NodePool")}
    flavors = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in recording.of_type("kubernetes:kueue.x-k8s.io/v1beta2:ResourceFlavor")}
    assert flavors.pop("cpu", None) == {}
    assert set(flavors) == set(node_pools) == {"serving", "serving-mig", "multi-node", "batch"}
    for name, flavor in flavors.items():
        template = node_pools[name]["template"]
        assert flavor["nodeLabels"].items() <= template["metadata"]["labels"].items()
        tolerated = {(t["key"], t["effect"]) for t in flavor["tolerations"]}
        assert {(t["key"], t["effect"]) for t in template["spec"]["taints"]} <= tolerated
    # Nominal quotas, back in physical GPUs, fit every pool's limit.
    per_gpu = {"nvidia.com/gpu": 1, "nvidia.com/mig-1g.10gb": 7}
    used = Counter()
    for queue in recording.of_type("kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue"):
        cpu_group, gpu_group = queue.inputs["spec"]["resourceGroups"]
        assert [f["name"] for f in cpu_group["flavors"]] == ["cpu"]
        assert cpu_group["coveredResources"] == ["cpu", "memory"]
        for flavor in gpu_group["flavors"]:
            for resource in flavor["resources"]:
                if resource["name"] in per_gpu:
                    used[flavor["name"]] += int(resource["nominalQuota"]) // per_gpu[resource["name"]]
    for name, gpus in used.items():
        assert gpus <= node_pools[name]["limits"]["nvidia.com/gpu"], name
    assert used == {"serving": 24, "serving-mig": 14, "batch": 32}
    assert quota_disagreements(recording) == []
    local_queues = {r.inputs["metadata"]["namespace"]: r.inputs["spec"]["clusterQueue"]
                    for r in recording.of_type("kubernetes:kueue.x-k8s.io/v1beta2:LocalQueue")}
    assert local_queues == {"serving": "serving", "research": "research"}


def test_dev_mps_flavor_counts_in_shared_gpus_like_time_slicing(run):
    """Both dev pools advertise nvidia.com/gpu.shared: the ml queue's GPU group covers that one resource
    with a flavor per pool, each quota in that pool's replicas (7 GPUs x 4 time-sliced, 1 GPU x 4 MPS)."""
    main = str(Project.find(REPO).main_dir)
    recording = run(lambda: runpy.run_path(main, run_name="__main__"), config=stack_config("dev"), stack="dev")
    flavors = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in recording.of_type("kubernetes:kueue.x-k8s.io/v1beta2:ResourceFlavor")}
    assert flavors["gpu-dev-mps"]["nodeLabels"]["gpufleet.io/gpu-pool"] == "gpu-dev-mps"
    (queue,) = recording.of_type("kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue")
    _, gpu_group = queue.inputs["spec"]["resourceGroups"]
    assert gpu_group["coveredResources"] == ["nvidia.com/gpu.shared"]
    assert {f["name"]: [(r["name"], r["nominalQuota"]) for r in f["resources"]] for f in gpu_group["flavors"]} == {
        "gpu-dev": [("nvidia.com/gpu.shared", "28")], "gpu-dev-mps": [("nvidia.com/gpu.shared", "4")]}
    assert quota_disagreements(recording) == []


def outside_kueue_requests(recording) -> dict[str, Counter]:
    """Namespace → the most cpu/memory its rendered pods outside Kueue request at once: each
    InferenceService predictor (and canary) at ``maxReplicas``, else ``minReplicas``, every pod of each
    unqueued LeaderWorkerSet, and each Job
    without a Kueue queue label (one pod: the weights loaders), read from the rendered objects."""

    def pod(spec) -> Counter:
        total: Counter = Counter()
        for container in spec["containers"]:
            for resource, amount in container["resources"]["requests"].items():
                if resource in ("cpu", "memory"):
                    total[resource] += parse_quantity(amount)
        return total

    held: dict[str, Counter] = {}
    for isvc in recording.of_type("kubernetes:serving.kserve.io/v1beta1:InferenceService"):
        spec = isvc.inputs["spec"]
        for predictor in [spec["predictor"]] + [entry["predictor"] for entry in spec.get("canary", [])]:
            replicas = int(predictor.get("maxReplicas", predictor["minReplicas"]))
            for resource, amount in pod(predictor).items():
                held.setdefault(isvc.inputs["metadata"]["namespace"], Counter())[resource] += replicas * amount
    for lws in recording.of_type("kubernetes:leaderworkerset.x-k8s.io/v1:LeaderWorkerSet"):
        if "kueue.x-k8s.io/queue-name" in lws.inputs["metadata"].get("labels", {}):
            continue
        groups, group = int(lws.inputs["spec"]["replicas"]), lws.inputs["spec"]["leaderWorkerTemplate"]
        leader, worker = pod(group["leaderTemplate"]["spec"]), pod(group["workerTemplate"]["spec"])
        for resource in ("cpu", "memory"):
            held.setdefault(lws.inputs["metadata"]["namespace"], Counter())[resource] += groups * (
                leader[resource] + (int(group["size"]) - 1) * worker[resource])
    for job in recording.of_type("kubernetes:batch/v1:Job"):
        metadata = job.inputs["metadata"]
        assert "kueue.x-k8s.io/queue-name" not in metadata.get("labels", {})
        assert int(job.inputs["spec"].get("parallelism", 1)) == 1
        held.setdefault(metadata["namespace"], Counter()).update(pod(job.inputs["spec"]["template"]["spec"]))
    return held


@pytest.mark.parametrize("stack", ["dev", ("prod")])
def test_stack_queue_and_pods_outside_kueue_fit_the_namespace_quota(run, stack):
    """Predictors and weights loaders run in the team namespace outside Kueue and pay from the same
    ResourceQuota: the ClusterQueue's cpu/memory plus their most must fit ``requests.<resource>``,
    or Kueue admits jobs whose pods the quota refuses."""
    main = str(Project.find(REPO).main_dir)
    recording = run(lambda: runpy.run_path(main, run_name="__main__"), config=stack_config(stack), stack=stack)
    hard = {r.inputs["metadata"]["namespace"]: r.inputs["spec"]["hard"]
            for r in recording.of_type("kubernetes:core/v1:ResourceQuota")}
    held = outside_kueue_requests(recording)
    assert held  # both stacks serve models
    for queue in recording.of_type("kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue"):
        [namespace] = queue.inputs["spec"]["namespaceSelector"]["matchExpressions"][0]["values"]
        cpu_group = queue.inputs["spec"]["resourceGroups"][0]
        [flavor] = cpu_group["flavors"]
        for resource in flavor["resources"]:
            name = resource["name"]
            total = parse_quantity(resource["nominalQuota"]) + held.get(namespace, Counter())[name]
            assert total <= parse_quantity(hard[namespace][f"requests.{name}"]), (namespace, name)
            # whole units: at most one core / one GiB left unused
            assert parse_quantity(hard[namespace][f"requests.{name}"]) - total < (1 if name == "cpu" else 2**30)


def test_prod_serving_queue_gets_the_quota_its_predictors_and_loaders_leave(run):
    config = parse_stack_config(stack_config("prod"))
    serving, research = config.teams
    split = kueue_cpu_memory(config, serving, configured_placements(config))
    gib = 2**30
    # chat-8b: (6 + 1 canary) x (6 cores, 48Gi); bge-embeddings: 8 x (4 cores, 16Gi); 3 loaders of 1 core, 2Gi;
    # the Triton reranker: 4 x (4 cores, 8Gi) and its model repository Job of 1 core, 2Gi; deepseek-v3: one
    # group of 2 x (160 cores, 1536Gi) and its loader of 1 core, 2Gi
    assert [(what, cpu, memory / gib) for what, cpu, memory in split.held] == [
        ("chat-8b", 42, 336), ("chat-8b-weights (loader Job)", 1, 2), ("chat-8b-qwen3-weights (loader Job)", 1, 2),
        ("bge-embeddings", 32, 128), ("bge-embeddings-weights (loader Job)", 1, 2),
        ("reranker", 16, 32), ("reranker-model-repository (model repository Job)", 1, 2),
        ("deepseek-v3 (1 × 2 pods)", 320, 3072), ("deepseek-v3-weights (loader Job)", 1, 2)]
    assert (split.cpu, split.memory_gib) == (serving.cpu - 415, serving.memory_gib - 3578)
    research_split = kueue_cpu_memory(config, research, configured_placements(config))
    assert research_split.held == () and (research_split.cpu, research_split.memory_gib) == (512, 4096)
    recording = run(lambda: runpy.run_path(str(Project.find(REPO).main_dir), run_name="__main__"),
                    config=stack_config("prod"), stack="prod")
    queues = {r.inputs["metadata"]["name"]: r.inputs["spec"]
              for r in recording.of_type("kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue")}
    assert queues["serving"]["resourceGroups"][0]["flavors"][0]["resources"] == [
        {"name": "cpu", "nominalQuota": str(serving.cpu - 415), "borrowingLimit": "0"},
        {"name": "memory", "nominalQuota": f"{serving.memory_gib - 3578}Gi", "borrowingLimit": "0"}]


def test_fractional_requests_round_the_queue_down():
    """Predictor cpu ``2500m`` x 1 + loader 1 core of 4: Kueue gets 0.5 core → no whole core left."""
    raw = stack_config("dev")
    config = parse_stack_config(raw)
    services = [s.model_dump(by_alias=True, exclude_none=True) for s in config.serving.inference_services
                if s.pool == "gpu-dev"]  # the time-sliced pool's service only
    services[0]["cpu"] = "2500m"
    serving = {**config.serving.model_dump(by_alias=True, exclude_none=True), "inferenceServices": services}
    teams = [{**t.model_dump(by_alias=True, exclude_none=True), "cpu": 4} for t in config.teams]
    assert problems_of(with_config(with_config(raw, "serving", serving), "teams", teams)) == [
        "gpufleet:teams[0].cpu: the team's workloads outside Kueue (predictors of gpufleet:serving.inferenceServices "
        "and tritonServices at their most replicas, canary included, and weights loader and model repository Jobs: "
        "[qwen-small 2.5, qwen-small-weights (loader Job) 1]) hold up to 3.5 of the namespace ResourceQuota's 4 cores, leaving its Kueue ClusterQueue "
        "less than one whole core: raise cpu or lower the services' replicas"]
    teams[0]["cpu"] = 5  # 1.5 cores left: the queue gets 1
    config = parse_stack_config(with_config(with_config(raw, "serving", serving), "teams", teams))
    assert kueue_cpu_memory(config, config.teams[0], configured_placements(config)).cpu == 1


def test_predictors_filling_the_namespace_quota_are_reported_per_field():
    raw = stack_config("prod")
    teams = [t.model_dump(by_alias=True, exclude_none=True) for t in parse_stack_config(raw).teams]
    teams[0]["cpu"], teams[0]["memoryGib"] = 415, 3400  # exactly the cpu held; less memory than held
    held = ("chat-8b {}, chat-8b-weights (loader Job) {}, chat-8b-qwen3-weights (loader Job) {}, "
            "bge-embeddings {}, bge-embeddings-weights (loader Job) {}, reranker {}, "
            "reranker-model-repository (model repository Job) {}, deepseek-v3 (1 × 2 pods) {}, "
            "deepseek-v3-weights (loader Job) {}")
    prefix = ("the team's workloads outside Kueue (predictors of gpufleet:serving.inferenceServices and "
              "tritonServices at their most replicas, canary included, the pods of its unqueued "
              "gpufleet:serving.multiNodeServices, and weights loader and model repository Jobs: [")
    assert problems_of(with_config(raw, "teams", teams)) == [
        f"gpufleet:teams[0].cpu: {prefix}{held.format(42, 1, 1, 32, 1, 16, 1, 320, 1)}]) hold up to 415 of the namespace "
        "ResourceQuota's 415 cores, leaving its Kueue ClusterQueue less than one whole core: raise cpu or lower "
        "the services' replicas",
        f"gpufleet:teams[0].memoryGib: {prefix}{held.format(336, 2, 2, 128, 2, 32, 2, 3072, 2)}]) hold up to 3578 of the namespace "
        "ResourceQuota's 3400 GiB, leaving its Kueue ClusterQueue less than one whole GiB: raise memoryGib or "
        "lower the services' replicas"]


def test_a_team_without_a_queue_may_give_its_predictors_the_whole_quota():
    """No ClusterQueue (no gpuQuotas): nothing to leave room for, but predictors beyond the quota are
    refused by it."""
    raw = stack_config("prod")
    config = parse_stack_config(raw)
    teams = [t.model_dump(by_alias=True, exclude_none=True) for t in config.teams]
    teams[0].pop("gpuQuotas")
    teams[0]["cpu"], teams[0]["memoryGib"] = 415, 3578
    parse_stack_config(with_config(raw, "teams", teams))
    teams[0]["cpu"] = 414
    [problem] = problems_of(with_config(raw, "teams", teams))
    assert problem.startswith("gpufleet:teams[0].cpu: the team's workloads outside Kueue")
    assert problem.endswith("hold up to 415 of the namespace ResourceQuota's 414 cores, so the ResourceQuota "
                            "refuses predictor pods at their most replicas")


def test_dev_stack_quotas_agree_with_its_namespace_quota(run):
    main = str(Project.find(REPO).main_dir)
    recording = run(lambda: runpy.run_path(main, run_name="__main__"), config=stack_config("dev"), stack="dev")
    assert quota_disagreements(recording) == []
    namespace = next(r for r in recording.of_type("kubernetes:core/v1:Namespace") if r.inputs["metadata"]["name"] == "ml")
    assert recording.one("gpufleet:kueue:Kueue") and any(
        r.urn in namespace.dependencies for r in recording.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["name"] == "kueue")
