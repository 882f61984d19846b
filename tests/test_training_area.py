"""Stack area ``training``: the prod stack's TrainJob (research, two 8-GPU EFA nodes of the batch pool,
admitted through the team's Kueue queue), the trainer on the system nodes, and configuration errors
that name the YAML field."""

from __future__ import annotations

import copy
import json
import runpy

import pytest
import yaml

from gpufleet.infra.config import ConfigError, parse_stack_config
from tests.harness import REPO, stack_config, with_config

TRAIN_JOB = "kubernetes:trainer.kubeflow.org/v1alpha1:TrainJob"
RUNTIME = "kubernetes:trainer.kubeflow.org/v1alpha1:ClusterTrainingRuntime"


def _training(raw=None) -> dict:
    raw = raw or stack_config("prod")
    return json.loads(raw["gpufleet:training"])


def _with_job(**changes) -> dict:
    raw = stack_config("prod")
    training = _training(raw)
    training["jobs"][0].update(changes)
    return with_config(raw, "training", training)


def _problems(raw) -> list[str]:
    with pytest.raises(ConfigError) as error:
        parse_stack_config(raw)
    return error.value.problems


def test_prod_trains_on_two_efa_nodes_through_the_research_queue(run):
    recording = run(lambda: runpy.run_path(str(REPO / "infra"), run_name="__main__"), config=stack_config("prod"), stack="prod")
    (job,) = recording.of_type(TRAIN_JOB)
    metadata, spec = job.inputs["metadata"], job.inputs["spec"]
    assert (metadata["name"], metadata["namespace"]) == ("llm-pretrain", "research")
    queues = [q for q in recording.of_type("kubernetes:kueue.x-k8s.io/v1beta2:LocalQueue")
              if q.inputs["metadata"]["namespace"] == "research"]
    (queue,) = queues
    assert metadata["labels"]["kueue.x-k8s.io/queue-name"] == queue.inputs["metadata"]["name"]
    assert metadata["labels"]["kueue.x-k8s.io/priority-class"] == "gpufleet-training"
    trainer = spec["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 8)
    assert trainer["resourcesPerNode"]["limits"]["vpc.amazonaws.com/efa"] == "4"
    assert trainer["resourcesPerNode"]["requests"] == trainer["resourcesPerNode"]["limits"]
    pod = spec["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpufleet.io/gpu-pool": "batch"}
    assert {v["name"]: v.get("persistentVolumeClaim") for v in pod["volumes"]}["checkpoints"] == {"claimName": "model-weights"}
    # The job waits for the trainer (its runtime), Kueue and the model cache.
    trainer_release = [r for r in recording.of_type("kubernetes:helm.sh/v3:Release") if "kubeflow-trainer" in r.inputs["chart"]]
    assert len(trainer_release) == 1
    assert len(recording.of_type(RUNTIME)) == 1
    # Kueue admits TrainJobs (its integration is on) with gang admission (waitForPodsReady).
    kueue = next(r for r in recording.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"].endswith("/kueue"))
    manager = yaml.safe_load(kueue.inputs["values"]["managerConfig"]["controllerManagerConfigYaml"])
    assert "trainer.kubeflow.org/trainjob" in manager["integrations"]["frameworks"]
    assert manager["waitForPodsReady"]["timeout"] == "20m"
    # No ClusterQueue covers EFA interfaces: Kueue ignores them, or it would never admit the job.
    assert manager["resources"] == {"excludeResourcePrefixes": ["vpc.amazonaws.com/efa"]}
    # The batch pool is an EFA pool: its EC2NodeClass carries the EFA security group, the plugin runs.
    group = next(r for r in recording.of_type("aws:ec2/securityGroup:SecurityGroup") if r.name == "batch-efa-sg")
    assert group.inputs["ingress"][0]["self"] is True
    assert any(r.inputs["chart"] == "aws-efa-k8s-device-plugin" for r in recording.of_type("kubernetes:helm.sh/v3:Release"))


@pytest.mark.parametrize(("changes", "expected"), [
    ({"team": "nobody"}, "gpufleet:training.jobs[0].team: 'nobody' is not a team"),
    ({"pool": "nowhere"}, "gpufleet:training.jobs[0].pool: 'nowhere' is not a GPU pool"),
    ({"gpusPerNode": 16}, "gpufleet:training.jobs[0].gpusPerNode: (16) exceeds what one node of pool 'batch' offers"),
    ({"shmSize": "1000Gi"}, "gpufleet:training.jobs[0].shmSize: (1000Gi) must be below memory"),
    ({"image": "pytorch/pytorch"}, "gpufleet:training.jobs[0].image: must be pinned"),
    ({"numNodes": 5}, "gpufleet:training.jobs[0].numNodes: 5 nodes × 8 GPUs = 40 GPUs, more than pool 'batch' may hold"),
    ({"pool": "serving-mig"}, "gpufleet:training.jobs[0].pool: (pool 'serving-mig') shares its GPUs (mig)"),
    ({"checkpoint": {"claim": "Bad"}}, "gpufleet:training.jobs[0].checkpoint.claim"),
])
def test_job_problems_name_the_field(changes, expected):
    problems = _problems(_with_job(**changes))
    assert any(p.startswith(expected) for p in problems), problems


def test_a_job_larger_than_the_team_quota_is_refused():
    raw = stack_config("prod")
    teams = json.loads(raw["gpufleet:teams"])
    research = next(t for t in teams if t["name"] == "research")
    research["gpuQuotas"] = [{**q, "gpus": 8, "borrowingLimit": 4} if q["pool"] == "batch" else q for q in research["gpuQuotas"]]
    (problem,) = [p for p in _problems(with_config(raw, "teams", teams)) if "training" in p]
    assert problem.startswith("gpufleet:training.jobs[0].numNodes: the job needs 16 GPUs at once (gang admission) "
                              "but team 'research' can hold at most 12 on pool 'batch'")


def test_a_job_larger_than_the_team_cpu_memory_is_refused():
    raw = stack_config("prod")
    teams = json.loads(raw["gpufleet:teams"])
    research = next(t for t in teams if t["name"] == "research")
    research["memoryGib"] = 1500
    problems = [p for p in _problems(with_config(raw, "teams", teams)) if p.startswith("gpufleet:training")]
    assert problems == ["gpufleet:training.jobs[0].numNodes: 2 nodes request 176 CPUs and 2000 GiB, more than the "
                        "namespace ResourceQuota of team 'research' allows (512 CPUs, 1500 GiB: gpufleet:teams cpu/memoryGib)"]


def test_jobs_need_the_trainer_and_a_checkpoint_claim():
    raw = stack_config("prod")
    training = _training(raw)
    training["enabled"] = False
    assert "gpufleet:training.enabled: jobs need Kubeflow Trainer (set enabled: true)" in _problems(with_config(raw, "training", training))
    no_cache = with_config(raw, "modelCache", {"enabled": False})
    assert any(p.startswith("gpufleet:training.jobs[0].checkpoint.claim: gpufleet:modelCache does not cover team 'research'")
               for p in _problems(no_cache))


def test_queued_jobs_need_kueue_trainjob_integration():
    raw = with_config(stack_config("prod"), "kueue", {**json.loads(stack_config("prod")["gpufleet:kueue"]),
                                                       "frameworks": ["batch/job", "ray.io/rayjob", "ray.io/raycluster",
                                                                      "ray.io/rayservice"]})
    assert ("gpufleet:kueue.frameworks: queued training jobs need Kueue's TrainJob integration "
            "('trainer.kubeflow.org/trainjob')") in _problems(raw)


def test_unknown_keys_are_refused_with_their_path():
    problems = _problems(_with_job(gpus=8))
    assert "gpufleet:training.jobs[0].gpus: unknown key (check the spelling; see the configuration reference in README.md)" in problems


def test_efa_asked_of_a_pool_without_efa_names_the_pool_field():
    raw = stack_config("prod")
    pools = json.loads(raw["gpufleet:gpuPools"])
    serving = copy.deepcopy(next(p for p in pools if p["name"] == "serving"))
    serving["efa"] = True
    pools = [serving if p["name"] == "serving" else p for p in pools]
    problems = _problems(with_config(raw, "gpuPools", pools))
    assert any(p.startswith("gpufleet:gpuPools[0].efa: is true but g6e.12xlarge, ") and
               "have no EFA interfaces gpufleet knows of (EFA types: p4d.24xlarge (4)" in p for p in problems), problems
