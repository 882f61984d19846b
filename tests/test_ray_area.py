"""The ray and model_cache areas: ``gpufleet:ray`` / ``gpufleet:modelCache`` config, cross-checks
against teams, pools, queues and caches (field-named errors, also for impossible workers), and what
the repository stacks compose from them."""

from __future__ import annotations

import copy
import runpy
from collections import Counter

import pytest

from gpufleet.components.kueue import CPU_FLAVOR
from gpufleet.infra.simulate.kueue import assign_flavor
from gpufleet.infra.config import ConfigError, parse_stack_config
from gpufleet.infra.offline.plan import Project
from tests.harness import BASE_CONFIG, REPO, stack_config, with_config

MAIN = str(Project.find(REPO).main_dir)

POOLS = [
    {"name": "batch", "instanceFamilies": ["g6e", "p4d"], "capacityTypes": ["spot"],
     "limits": {"gpus": 32, "cpu": 768, "memoryGib": 8192}},
    {"name": "serving-mig", "instanceTypes": ["p4de.24xlarge"], "limits": {"gpus": 16, "cpu": 384, "memoryGib": 4096},
     "sharing": {"mode": "mig", "migProfile": "1g.10gb"}},
]
TEAMS = [
    {"name": "research", "gpuQuotas": [{"pool": "batch", "gpus": 32}], "cpu": 512, "memoryGib": 4096},
    {"name": "serving", "cpu": 64},
]
GROUP = {"groupName": "gpu", "gpus": 8, "cpu": "88", "memory": "640Gi", "maxReplicas": 4}
CLUSTER = {"name": "batch", "team": "research", "pool": "batch", "workerGroups": [GROUP]}
SERVICE = {"name": "llm", "team": "serving", "pool": "serving-mig",
           "workerGroups": [{"groupName": "mig", "gpus": 2, "cpu": "8", "memory": "64Gi", "maxReplicas": 2}],
           "applications": [{"name": "llm", "importPath": "app:llm",
                             "deployments": [{"name": "LLM", "gpus": 1, "maxReplicas": 4}]}]}
JOB = {"name": "embed", "team": "research", "pool": "batch", "entrypoint": "python embed.py",
       "workerGroups": [{**GROUP, "maxReplicas": 2}]}
RAY = {"enabled": True, "clusters": [CLUSTER], "jobs": [JOB], "services": [SERVICE]}


def config(ray=RAY, model_cache=None, teams=TEAMS, kueue=None):
    # Two clusters' and a service's heads besides the controllers: system nodes that hold them.
    raw = with_config(BASE_CONFIG, "cluster", {"systemNodes": {"instanceTypes": ["m7i.2xlarge"]}})
    raw = with_config(raw, "gpuPools", POOLS)
    raw = with_config(raw, "teams", teams)
    raw = with_config(raw, "ray", ray)
    if model_cache is not None:
        raw = with_config(raw, "modelCache", model_cache)
    if kueue is not None:
        raw = with_config(raw, "kueue", kueue)
    return raw


def problems(raw) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse_stack_config(raw)
    return error.value.problems


def with_ray(**changes):
    ray = copy.deepcopy(RAY)
    for path, value in changes.items():
        target = ray
        *parents, last = path.split("__")
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(last) if last.isdigit() else last] = value
    return ray


def test_consistent_config_parses():
    parsed = parse_stack_config(config(model_cache={"enabled": True}))
    assert parsed.ray.clusters[0].worker_groups[0].max_replicas == 4
    assert parsed.model_cache.covered_teams(parsed) == ["research", "serving"]


@pytest.mark.parametrize(("ray", "expected"), [
    (with_ray(clusters__0__team="ml"),
     "gpufleet:ray.clusters[0].team: 'ml' is not a team (gpufleet:teams names: research, serving)"),
    (with_ray(clusters__0__pool="gpu"),
     "gpufleet:ray.clusters[0].pool: 'gpu' is not a GPU pool (gpufleet:gpuPools names: batch, serving-mig)"),
    (with_ray(services__0__workerGroups__0__pool="gpu"),
     "gpufleet:ray.services[0].workerGroups[0].pool: 'gpu' is not a GPU pool (gpufleet:gpuPools names: batch, serving-mig)"),
    (with_ray(enabled=False),
     "gpufleet:ray.enabled: clusters, jobs and services need the KubeRay operator (set enabled: true)"),
    (with_ray(services__0__team="research", services__0__name="batch"),
     "gpufleet:ray.services[0].name: 'batch' is already gpufleet:ray.clusters[0] in namespace 'research'"),
    (with_ray(services__0__queue=True),
     "gpufleet:ray.services[0].queue: team 'serving' has no Kueue LocalQueue (needs gpuQuotas and gpufleet:kueue.enabled); set queue: false"),
    (with_ray(clusters__0__weights=True),
     "gpufleet:ray.clusters[0].weights: gpufleet:modelCache does not cover team 'research'"),
    (with_ray(jobs__0__team="ml"),
     "gpufleet:ray.jobs[0].team: 'ml' is not a team (gpufleet:teams names: research, serving)"),
    (with_ray(jobs__0__team="serving"),
     "gpufleet:ray.jobs[0].queue: team 'serving' has no Kueue LocalQueue (needs gpuQuotas and gpufleet:kueue.enabled); set queue: false"),
    (with_ray(jobs__0__name="batch"),
     "gpufleet:ray.jobs[0].name: 'batch' is already gpufleet:ray.clusters[0] in namespace 'research'"),
    (with_ray(jobs__0__workerGroups__0__groupName="head"),
     "gpufleet:ray.jobs[0].workerGroups[0].groupName: 'head' is reserved by Kueue for the head pod set"),
    (with_ray(clusters__0__workerGroups__0__groupName="head"),
     "gpufleet:ray.clusters[0].workerGroups[0].groupName: 'head' is reserved by Kueue for the head pod set"),
])
def test_cross_check_names_the_field(ray, expected):
    assert expected in problems(config(ray))


def test_queue_needs_kueue():
    assert ("gpufleet:ray.clusters[0].queue: team 'research' has no Kueue LocalQueue (needs gpuQuotas and "
            "gpufleet:kueue.enabled); set queue: false") in problems(config(kueue={"enabled": False}))


@pytest.mark.parametrize(("ray", "path", "reason"), [
    (with_ray(clusters__0__workerGroups__0__gpus=9), "gpufleet:ray.clusters[0].workerGroups[0].gpus",
     "(9) exceeds what one node of pool 'batch' offers (8 × nvidia.com/gpu, placement.max_resources_per_node)"),
    (with_ray(services__0__workerGroups__0__gpus=57), "gpufleet:ray.services[0].workerGroups[0].gpus",
     "(57) exceeds what one node of pool 'serving-mig' offers (56 × nvidia.com/mig-1g.10gb, placement.max_resources_per_node)"),
    (with_ray(clusters__0__workerGroups__0__maxReplicas=5), "gpufleet:ray.clusters[0].workerGroups[0].maxReplicas",
     "exceeds pool 'batch''s GPU limit (32, placement.gpu_limit)"),
    (with_ray(clusters__0__workerGroups__0__memory="4000Gi"), "gpufleet:ray.clusters[0].workerGroups[0].memory",
     "exceeds the largest instance type of pool 'batch'"),
    (with_ray(clusters__0__image="rayproject/ray:latest"), "gpufleet:ray.clusters[0].image", "must be pinned to a release"),
    (with_ray(clusters__0__head={"nodeSelector": {"gpufleet.io/gpu-pool": "batch"}}), "gpufleet:ray.clusters[0].head.nodeSelector",
     "selects GPU nodes"),
    (with_ray(jobs__0__workerGroups=[{**GROUP, "groupName": f"g{i}", "maxReplicas": 1} for i in range(7)]),
     "gpufleet:ray.jobs[0].workerGroups", "has 7 groups; a queued RayJob (head and submitter included) admits at most 6"),
    (with_ray(jobs__0__entrypoint=" "), "gpufleet:ray.jobs[0]", "entrypoint is required"),
    (with_ray(jobs__0__workerGroups__0__gpus=9), "gpufleet:ray.jobs[0].workerGroups[0].gpus",
     "(9) exceeds what one node of pool 'batch' offers"),
    (with_ray(services__0__applications__0__deployments__0__gpus=4),
     "gpufleet:ray.services[0].applications[0].deployments[0].gpus", "exceeds the largest worker (2 GPUs)"),
])
def test_impossible_workloads_name_the_config_field(ray, path, reason):
    found = problems(config(ray))
    assert any(p.startswith(path + ":") and reason in p for p in found), found


def test_cross_check_sees_the_gpu_operators_mig_strategy():
    """The checks run on the placements composition builds: under the single strategy a MIG worker
    requests nvidia.com/gpu (slices); one pod gets at most the physical GPUs Karpenter sizes a node
    by, and its slices are not held against the pool's physical GPUs."""
    raw = with_config(config(with_ray(services__0__workerGroups__0__gpus=9)), "gpuOperator", {"migStrategy": "single"})
    assert ("gpufleet:ray.services[0].workerGroups[0].gpus: (9) exceeds what one node of pool 'serving-mig' offers "
            "(8 × nvidia.com/gpu, placement.max_resources_per_node)") in problems(raw)
    # 3 workers × 7 slices on a pool of 16 GPUs (112 slices): fits.
    fits = with_ray(services__0__workerGroups__0__gpus=7, services__0__workerGroups__0__maxReplicas=3)
    parse_stack_config(with_config(config(fits), "gpuOperator", {"migStrategy": "single"}))


@pytest.mark.parametrize(("section", "value", "path", "reason"), [
    ("ray", with_ray(clusters__0__workerGroups__0__gpus=0), "gpufleet:ray.clusters[0].workerGroups[0].gpus", "greater than or equal to 1"),
    ("ray", with_ray(clusters__0__role="inference"), "gpufleet:ray.clusters[0].role", "'training' or 'batch'"),
    ("ray", with_ray(clusters__0__workerGroups=[]), "gpufleet:ray.clusters[0]", "define at least one worker group"),
    ("ray", with_ray(clusters__0__name="Batch_1"), "gpufleet:ray.clusters[0].name", "DNS label"),
    ("ray", with_ray(jobs__0__name="e" * 42), "gpufleet:ray.jobs[0].name", "at most 41 characters"),
    ("ray", with_ray(jobs__0__entrypoint=""), "gpufleet:ray.jobs[0].entrypoint", "at least 1 character"),
    ("ray", with_ray(jobs__0__ttlSecondsAfterFinished=-1), "gpufleet:ray.jobs[0].ttlSecondsAfterFinished", "greater than or equal"),
    ("ray", {"enabled": True, "clusterz": []}, "gpufleet:ray.clusterz", "unknown key"),
    ("modelCache", {"enabled": True, "claimName": "Weights"}, "gpufleet:modelCache.claimName", "DNS label"),
    ("modelCache", {"enabled": True, "teams": ["ml"]}, "gpufleet:modelCache.teams[0]", "'ml' is not a team"),
    ("modelCache", {"enabled": True, "kmsKeyArn": "key"}, "gpufleet:modelCache.kmsKeyArn", "KMS key"),
    ("modelCache", {"enabled": True, "backend": "fsxLustre", "lustre": {"storageCapacityGib": 3000}},
     "gpufleet:modelCache.lustre.storageCapacityGib", "multiple of 2400"),
])
def test_section_errors_name_the_field(section, value, path, reason):
    raw = with_config(config(), section, value)
    found = problems(raw)
    assert any(p.startswith(path) and reason in p for p in found), found


# -- composition, through the real program ------------------------------------------------------------

def program():
    runpy.run_path(MAIN, run_name="__main__")


def test_prod_composes_the_operator_cache_and_batch_cluster(run):
    recording = run(program, config=stack_config("prod"), stack="prod")
    counts = Counter(r.type for r in recording.resources)
    assert counts["gpufleet:kuberay:KubeRayOperator"] == 1
    assert counts["gpufleet:model_cache:ModelCache"] == 1
    assert counts["gpufleet:ray:RayCluster"] == 1
    claims = recording.of_type("kubernetes:core/v1:PersistentVolumeClaim")
    assert {c.inputs["metadata"]["namespace"] for c in claims} >= {"serving", "research"}
    assert len(recording.of_type("aws:efs/mountTarget:MountTarget")) == 3
    nfs = [g for g in recording.of_type("aws:ec2/securityGroup:SecurityGroup") if any(r.get("fromPort") == 2049 for r in g.inputs.get("ingress", []))]
    assert [g.inputs["ingress"][0]["cidrBlocks"] for g in nfs] == [["10.40.0.0/16"]]

    cluster = recording.one("kubernetes:ray.io/v1:RayCluster")
    metadata, spec = cluster.inputs["metadata"], cluster.inputs["spec"]
    assert (metadata["name"], metadata["namespace"]) == ("batch", "research")
    assert metadata["labels"]["kueue.x-k8s.io/queue-name"] == "research"
    (worker,) = spec["workerGroupSpecs"]
    pod = worker["template"]["spec"]
    assert pod["nodeSelector"] == {"gpufleet.io/gpu-pool": "batch"}
    assert pod["priorityClassName"] == "gpufleet-batch"
    assert {"name": "model-weights", "persistentVolumeClaim": {"claimName": "model-weights"}} in pod["volumes"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert spec["headGroupSpec"]["template"]["spec"]["nodeSelector"] == {"gpufleet.io/node-role": "system"}

    # The RayCluster is created after the operator's CRDs, Kueue's webhook and the weights claim.
    release = {r.inputs["name"]: r.urn for r in recording.of_type("kubernetes:helm.sh/v3:Release")}
    assert {release["kuberay-operator"], release["kueue"]} <= set(cluster.dependencies)
    assert {c.urn for c in claims} <= set(cluster.dependencies)
    namespace = next(n for n in recording.of_type("kubernetes:core/v1:Namespace") if n.inputs["metadata"]["name"] == "research")
    assert namespace.urn in cluster.dependencies
    research_claim = next(c for c in claims if c.inputs["metadata"]["namespace"] == "research")
    assert namespace.urn in research_claim.dependencies


def test_dev_has_a_small_time_sliced_cluster(run):
    recording = run(program, config=stack_config("dev"), stack="dev")
    cluster = recording.one("kubernetes:ray.io/v1:RayCluster")
    (worker,) = cluster.inputs["spec"]["workerGroupSpecs"]
    limits = worker["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu.shared"] == 1
    assert worker["minReplicas"] == 0
    assert cluster.inputs["metadata"]["namespace"] == "ml"


def test_disabled_sections_compose_nothing(run):
    recording = run(program, config=BASE_CONFIG)
    types = {r.type for r in recording.resources}
    assert not types & {"gpufleet:kuberay:KubeRayOperator", "gpufleet:model_cache:ModelCache", "gpufleet:ray:RayCluster"}


def test_lustre_backend_serves_the_same_claims(run):
    raw = with_config(stack_config("dev"), "modelCache", {"enabled": True, "backend": "fsxLustre",
                                                          "lustre": {"s3ImportPath": "s3://weights/models"}})
    recording = run(program, config=raw, stack="dev")
    types = Counter(r.type for r in recording.resources)
    assert types["gpufleet:model_cache:LustreModelCache"] == 1
    assert types["gpufleet:model_cache:ModelCache"] == 0
    (claim,) = recording.of_type("kubernetes:core/v1:PersistentVolumeClaim")
    assert (claim.inputs["metadata"]["namespace"], claim.inputs["spec"]["volumeName"]) == ("ml", "model-weights-ml")
    volumes = recording.one("kubernetes:ray.io/v1:RayCluster").inputs["spec"]["workerGroupSpecs"][0]["template"]["spec"]["volumes"]
    assert {"name": "model-weights", "persistentVolumeClaim": {"claimName": "model-weights"}} in volumes


def test_prod_runs_a_queued_ray_job_for_research_on_batch(run):
    recording = run(program, config=stack_config("prod"), stack="prod")
    assert Counter(r.type for r in recording.resources)["gpufleet:ray:RayJob"] == 1
    job = recording.one("kubernetes:ray.io/v1:RayJob")
    metadata, spec = job.inputs["metadata"], job.inputs["spec"]
    assert (metadata["name"], metadata["namespace"]) == ("gpu-smoke-test", "research")
    assert metadata["labels"]["kueue.x-k8s.io/queue-name"] == "research"
    # Every queued Ray object names a WorkloadPriorityClass the stack declares.
    declared = {c.inputs["metadata"]["name"] for c in recording.of_type("kubernetes:kueue.x-k8s.io/v1beta2:WorkloadPriorityClass")}
    queued = [r for r in recording.of_type("kubernetes:ray.io/v1:RayJob") + recording.of_type("kubernetes:ray.io/v1:RayCluster")
              if "kueue.x-k8s.io/queue-name" in r.inputs["metadata"]["labels"]]
    assert len(queued) == 2
    assert {r.inputs["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] for r in queued} == {"gpufleet-batch"} <= declared
    assert spec["shutdownAfterJobFinishes"] is True and "suspend" not in spec
    (worker,) = spec["rayClusterSpec"]["workerGroupSpecs"]
    pod = worker["template"]["spec"]
    assert pod["nodeSelector"] == {"gpufleet.io/gpu-pool": "batch"}
    assert pod["priorityClassName"] == "gpufleet-batch"
    assert {"name": "model-weights", "persistentVolumeClaim": {"claimName": "model-weights"}} in pod["volumes"]
    release = {r.inputs["name"]: r.urn for r in recording.of_type("kubernetes:helm.sh/v3:Release")}
    assert {release["kuberay-operator"], release["kueue"]} <= set(job.dependencies)


def test_prod_kueue_admits_ray_heads_on_the_cpu_flavor_and_workers_on_their_pool(run):
    """Kueue's first fit (modelled by ``assign_flavor``) over the rendered research ClusterQueue:
    CPU-only pod sets (RayCluster head, RayJob head and submitter) land on the CPU flavor, which
    adds no GPU node selector or toleration; GPU worker pod sets at full size get their GPUs on
    ``batch`` (its node selector and toleration) and their cpu/memory on the team's CPU flavor."""
    recording = run(program, config=stack_config("prod"), stack="prod")
    flavors = {r.inputs["metadata"]["name"]: r.inputs.get("spec", {})
               for r in recording.of_type("kubernetes:kueue.x-k8s.io/v1beta2:ResourceFlavor")}
    queues = {r.inputs["metadata"]["name"]: r.inputs["spec"]
              for r in recording.of_type("kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue")}
    research = queues["research"]
    cpu_only = {"cpu": CPU_FLAVOR, "memory": CPU_FLAVOR}
    on_batch = {"cpu": CPU_FLAVOR, "memory": CPU_FLAVOR, "nvidia.com/gpu": "batch"}

    cluster = recording.one("kubernetes:ray.io/v1:RayCluster").inputs["spec"]
    job = recording.one("kubernetes:ray.io/v1:RayJob").inputs["spec"]
    for ray in (cluster, job["rayClusterSpec"]):
        assert assign_flavor(research, flavors, ray["headGroupSpec"]["template"]["spec"]) == cpu_only
        (worker,) = ray["workerGroupSpecs"]
        assert assign_flavor(research, flavors, worker["template"]["spec"], count=worker["maxReplicas"]) == on_batch
    assert assign_flavor(research, flavors, job["submitterPodTemplate"]["spec"]) == cpu_only
    assert flavors[CPU_FLAVOR] == {}
