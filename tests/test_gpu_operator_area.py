"""The ``gpu_operator`` area: its config sections, the sharing checks against environment and
instance facts (each naming its field), and what ``compose`` declares and hands to later areas."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Optional

import pulumi
import pytest

from gpufleet.components.gpu_instances import instance_types_of
from gpufleet.components.gpu_scheduling import GpuPlacement
from gpufleet.infra.areas import gpu_operator as area
from gpufleet.infra.areas import gpu_pools
from gpufleet.infra.areas.base import Platform
from gpufleet.infra.areas.gpu_operator import GpuOperatorSection, MonitoringSection
from gpufleet.infra.config import ConfigError, parse_stack_config
from tests.harness import BASE_CONFIG, with_config


def sharing(mode="none", replicas=None, mig_profile=None, acknowledge_no_isolation=None):
    return SimpleNamespace(mode=mode, replicas=replicas, mig_profile=mig_profile,
                           acknowledge_no_isolation=acknowledge_no_isolation)


def pool(name="gpu", families=("g6e",), types=(), ami_family="al2023", **share):
    """A stand-in with the attributes the area reads from a ``gpufleet:gpuPools[i]`` entry."""
    return SimpleNamespace(name=name, instance_families=tuple(families), instance_types=tuple(types),
                           ami_family=ami_family, sharing=sharing(**share))


def config(*pools, environment="dev", operator=None, monitoring=None):
    return SimpleNamespace(
        environment=environment,
        gpu_pools=tuple(pools),
        gpu_operator=GpuOperatorSection.model_validate(operator or {}),
        monitoring=MonitoringSection.model_validate(monitoring or {}),
    )


DEV_POOL = pool("gpu-dev", ("g5", "g6"), mode="time-slicing", replicas=4)
MIG_POOL = pool("serving-mig", ("p4de", "p5"), mode="mig", mig_profile="1g.10gb")


def test_dev_time_slicing_and_prod_mig_pass():
    assert area.cross_check(config(DEV_POOL)) == []
    assert area.cross_check(config(pool("serving"), MIG_POOL, pool("batch", ("g6e", "p4d", "p5")), environment="prod")) == []


def test_prod_refuses_time_slicing_naming_the_field():
    problems = area.cross_check(config(pool("serving"), DEV_POOL, environment="prod"))
    assert len(problems) == 1
    assert problems[0].startswith("gpufleet:gpuPools[1].sharing.mode: time-slicing gives no memory or fault isolation")


@pytest.mark.parametrize(("replicas", "shown"), [(None, "None"), (1, "1")])
def test_time_slicing_needs_two_or_more_replicas(replicas, shown):
    (problem,) = area.cross_check(config(pool("gpu-dev", ("g5",), mode="time-slicing", replicas=replicas)))
    assert problem == f"gpufleet:gpuPools[0].sharing.replicas: time-slicing needs replicas of at least 2 (pods per GPU), got {shown}"


def test_replicas_and_mig_profile_only_with_their_mode():
    problems = area.cross_check(config(pool("a", replicas=4), pool("b", mig_profile="1g.10gb")))
    assert problems == [
        "gpufleet:gpuPools[0].sharing.replicas: only used with mode time-slicing or mps (mode is none)",
        "gpufleet:gpuPools[1].sharing.migProfile: only used with mode mig (mode is none)",
    ]


MPS_POOL = pool("embed", ("g6",), mode="mps", replicas=4)


def test_mps_passes_in_dev_and_needs_an_acknowledgement_in_prod():
    assert area.cross_check(config(MPS_POOL)) == []
    (problem,) = area.cross_check(config(pool("serving"), MPS_POOL, environment="prod"))
    assert problem.startswith("gpufleet:gpuPools[1].sharing.acknowledgeNoIsolation: mps gives no fault isolation "
                              "(a fatal GPU fault in one pod fails every pod sharing that GPU); in prod set it to true")
    acknowledged = pool("embed", ("g6",), mode="mps", replicas=4, acknowledge_no_isolation=True)
    assert area.cross_check(config(acknowledged, environment="prod")) == []


@pytest.mark.parametrize(("replicas", "shown"), [(None, "None"), (1, "1"), (49, "49")])
def test_mps_replicas_bounds(replicas, shown):
    (problem,) = area.cross_check(config(pool("embed", ("g6",), mode="mps", replicas=replicas)))
    assert problem == (f"gpufleet:gpuPools[0].sharing.replicas: mps needs replicas from 2 to 48 (MPS clients per GPU), "
                       f"got {shown}")


def test_mps_on_bottlerocket_and_with_a_mig_profile_are_refused():
    problems = area.cross_check(config(pool("embed", ("g6",), ami_family="bottlerocket", mode="mps", replicas=4)))
    assert problems[0].startswith("gpufleet:gpuPools[0].sharing.mode: mps is done by the GPU Operator's device plugin, "
                                  "which is off on bottlerocket")
    (problem,) = area.cross_check(config(pool("embed", ("p5",), mode="mps", replicas=4, mig_profile="1g.10gb")))
    assert problem == "gpufleet:gpuPools[0].sharing.migProfile: only used with mode mig (mode is mps)"


def test_mig_only_on_mig_capable_families():
    (problem,) = area.cross_check(config(pool("s", ("g6e", "p5"), mode="mig", mig_profile="1g.10gb"), environment="prod"))
    assert problem.startswith("gpufleet:gpuPools[0].sharing.mode: mig needs MIG-capable instance types")
    assert problem.endswith("not capable: g6e")


def test_mig_on_instance_types_is_checked_too():
    assert area.cross_check(config(pool("s", (), ("p5.48xlarge",), mode="mig", mig_profile="3g.40gb"))) == []
    (problem,) = area.cross_check(config(pool("s", (), ("g6e.12xlarge",), mode="mig", mig_profile="3g.40gb")))
    assert problem.startswith("gpufleet:gpuPools[0].sharing.mode: mig needs MIG-capable")


def test_mig_profile_must_exist_on_every_gpu_of_the_pool():
    (problem,) = area.cross_check(config(pool("s", ("p4d", "p5"), mode="mig", mig_profile="1g.20gb")))
    assert problem.startswith("gpufleet:gpuPools[0].sharing.migProfile: '1g.20gb' does not exist on NVIDIA A100 40GB")
    (problem,) = area.cross_check(config(pool("s", ("p5",), mode="mig")))
    assert problem == "gpufleet:gpuPools[0].sharing.migProfile: required with mode mig (e.g. 1g.10gb)"


def test_sharing_is_refused_on_bottlerocket():
    (problem,) = area.cross_check(config(pool("d", ("g5",), ami_family="bottlerocket", mode="time-slicing", replicas=4)))
    assert problem.startswith("gpufleet:gpuPools[0].sharing.mode: time-slicing is done by the GPU Operator's device plugin")


def test_sharing_needs_the_operator():
    (problem,) = area.cross_check(config(DEV_POOL, operator={"enabled": False}))
    assert problem.startswith("gpufleet:gpuPools[0].sharing.mode: time-slicing needs the GPU Operator")


def test_pools_must_agree_on_ami_family():
    (problem,) = area.cross_check(config(pool("a"), pool("b", ami_family="bottlerocket")))
    assert problem.startswith("gpufleet:gpuPools[1].amiFamily: bottlerocket ships different GPU components than al2023")


def test_one_dcgm_exporter_only():
    problems = area.cross_check(config(pool("a"), monitoring={"standaloneExporter": True}))
    assert problems == ["gpufleet:monitoring.standaloneExporter: the GPU Operator already runs the DCGM exporter "
                        "(set gpufleet:gpuOperator.dcgmExporter to false, or leave this false)"]
    assert area.cross_check(config(pool("a"), operator={"dcgmExporter": False, "serviceMonitor": False},
                                   monitoring={"standaloneExporter": True})) == []


def test_service_monitor_needs_the_exporter():
    (problem,) = area.cross_check(config(pool("a"), operator={"dcgmExporter": False}))
    assert problem.startswith("gpufleet:gpuOperator.serviceMonitor: needs gpufleet:gpuOperator.dcgmExporter")


def test_standalone_exporter_without_operator_needs_a_namespace():
    (problem,) = area.cross_check(config(operator={"enabled": False}, monitoring={"standaloneExporter": True}))
    assert problem.startswith("gpufleet:monitoring.namespace: required for the standalone exporter")


def test_sections_parse_camel_case_and_refuse_unknown_keys():
    parsed = parse_stack_config(with_config(with_config(BASE_CONFIG, "gpuOperator", {
        "migStrategy": "single", "serviceMonitorLabels": {"release": "prom"}, "scrapeInterval": "30s",
    }), "monitoring", {"thresholds": {"temperatureCelsius": 80}, "ruleLabels": {"release": "prom"}}))
    assert parsed.gpu_operator.mig_strategy == "single"
    assert parsed.gpu_operator.service_monitor_labels == {"release": "prom"}
    assert parsed.monitoring.thresholds.temperature_celsius == 80
    assert parsed.monitoring.thresholds.memory_usage_percent == 90
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(with_config(BASE_CONFIG, "gpuOperator", {"migStrategy": "none", "dcgmExporters": True}))
    problems = "\n".join(caught.value.problems)
    assert "gpufleet:gpuOperator.migStrategy:" in problems
    assert "gpufleet:gpuOperator.dcgmExporters: unknown key" in problems
    with pytest.raises(ConfigError, match=r"gpufleet:monitoring\.thresholds\.temperatureCelsius"):
        parse_stack_config(with_config(BASE_CONFIG, "monitoring", {"thresholds": {"temperatureCelsius": 200}}))
    kv = parse_stack_config(with_config(BASE_CONFIG, "monitoring", {"thresholds": {"kvCacheUsagePercent": 95}}))
    assert (kv.monitoring.thresholds.kv_cache_usage_percent, parsed.monitoring.thresholds.kv_cache_usage_percent) == (95, 90)
    with pytest.raises(ConfigError, match=r"gpufleet:monitoring\.thresholds\.kvCacheUsagePercent"):
        parse_stack_config(with_config(BASE_CONFIG, "monitoring", {"thresholds": {"kvCacheUsagePercent": 0}}))


SHARED_POOLS = [
    {"name": "gpu-dev", "instanceFamilies": ["g5"], "limits": {"gpus": 8, "cpu": 192, "memoryGib": 768},
     "sharing": {"mode": "time-slicing", "replicas": 4}},
    {"name": "serving-mig", "instanceTypes": ["p5.48xlarge"], "limits": {"gpus": 8, "cpu": 192, "memoryGib": 2048},
     "sharing": {"mode": "mig", "migProfile": "1g.10gb"}},
]


def compose_with(placed: Optional[dict[str, GpuPlacement]] = None, operator=None, monitoring=None, pools=None):
    """Run ``compose`` on a platform holding ``placed``, or with ``pools`` (``gpufleet:gpuPools``) the
    placements the ``gpu_pools`` area builds for them; returns the platform after composition."""
    raw = with_config(with_config(BASE_CONFIG, "gpuOperator", operator or {}), "monitoring", monitoring or {})
    stack_config = parse_stack_config(with_config(raw, "gpuPools", pools) if pools else raw)
    if placed is None:
        placed = gpu_pools.configured_placements(stack_config)
    platform = Platform(stack="test", config=stack_config, cluster_name="gpufleet-test",
                        opts=pulumi.ResourceOptions(), network=None, cluster=None, placements=dict(placed))

    def program():
        area.compose(platform)
    return platform, program


def test_compose_declares_operator_and_monitoring_for_the_pools_placements(run):
    platform, program = compose_with(pools=SHARED_POOLS, operator={"migStrategy": "single"})
    handed_over = dict(platform.placements)
    recording = run(program)
    # The pools area built the placements with the operator's strategy; compose hands them on as they are.
    assert platform.placements == handed_over
    assert platform.placements["serving-mig"].gpu_resource == "nvidia.com/gpu"
    assert set(platform.components) == {"gpu-operator", "gpu-monitoring"}
    release = recording.one("kubernetes:helm.sh/v3:Release")
    assert release.inputs["values"]["mig"] == {"strategy": "single"}
    rule = recording.one("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    assert rule.inputs["metadata"]["namespace"] == "gpu-operator"
    # The alerts and dashboard go into the operator's namespace, after its release.
    monitoring = recording.one("gpufleet:monitoring:GpuMonitoring")
    assert {release.urn, recording.one("kubernetes:core/v1:Namespace").urn} <= set(monitoring.dependencies)


def test_compose_refuses_a_mig_placement_built_with_another_strategy(run):
    mixed = GpuPlacement("serving-mig", tuple(instance_types_of(["p5"])), sharing="mig", mig_profile="1g.10gb")
    _, program = compose_with({"serving-mig": mixed}, operator={"migStrategy": "single"})
    with pytest.raises(ValueError, match=r"placements\[0\]\.mig_strategy \(mixed\) differs from mig_strategy \(single\)"):
        run(program)


def test_compose_without_pools_declares_nothing(run):
    platform, program = compose_with({})
    recording = run(program)
    assert platform.components == {}
    assert recording.of_type("gpufleet:nvidia:GpuOperator") == []
    assert recording.of_type("gpufleet:monitoring:GpuMonitoring") == []


def test_compose_standalone_exporter_without_operator(run):
    platform, program = compose_with(
        {"serving": GpuPlacement("serving", tuple(instance_types_of(["g6e"])))},
        operator={"enabled": False}, monitoring={"standaloneExporter": True, "namespace": "monitoring"},
    )
    recording = run(program)
    assert set(platform.components) == {"gpu-monitoring"}
    release = recording.one("kubernetes:helm.sh/v3:Release")
    assert (release.inputs["chart"], release.inputs["namespace"]) == ("dcgm-exporter", "monitoring")


def _stack_with_pools(stack: str, edit) -> dict[str, str]:
    """This repository's ``stack`` config with its ``gpufleet:gpuPools`` changed by ``edit``."""
    import json

    from tests.harness import stack_config

    config = stack_config(stack)
    pools = json.loads(config["gpufleet:gpuPools"])
    edit(pools)
    return with_config(config, "gpuPools", pools)


def test_the_real_pool_model_reports_prod_time_slicing():
    def slice_serving(pools):
        pools[0]["sharing"] = {"mode": "time-slicing", "replicas": 4}

    with pytest.raises(ConfigError) as caught:
        parse_stack_config(_stack_with_pools("prod", slice_serving))
    assert any(p.startswith("gpufleet:gpuPools[0].sharing.mode: time-slicing gives no memory or fault isolation")
               for p in caught.value.problems), caught.value.problems


def test_the_real_pool_model_reports_prod_mps_without_acknowledgement():
    def share_serving(pools):
        pools[0]["sharing"] = {"mode": "mps", "replicas": 4}

    with pytest.raises(ConfigError) as caught:
        parse_stack_config(_stack_with_pools("prod", share_serving))
    assert any(p.startswith("gpufleet:gpuPools[0].sharing.acknowledgeNoIsolation: mps gives no fault isolation")
               for p in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(("sharing", "message"), [
    ({"mode": "mps", "replicas": 4, "migProfile": "1g.10gb"},
     "sharing.migProfile: is set but mode is 'mps': the NVIDIA device plugin cannot share MIG devices with MPS"),
    ({"mode": "mps", "replicas": 60}, "sharing.replicas: must be an integer from 2 to 48 with mps"),
    ({"mode": "time-slicing", "replicas": 4, "acknowledgeNoIsolation": True},
     "sharing.acknowledgeNoIsolation: only applies to mode 'mps'"),
])
def test_the_real_pool_model_names_mps_fields(sharing, message):
    def edit(pools):
        pools[1]["sharing"] = sharing

    with pytest.raises(ConfigError) as caught:
        parse_stack_config(_stack_with_pools("prod", edit))
    assert any(p.startswith("gpufleet:gpuPools[1]") and message in p for p in caught.value.problems), caught.value.problems


def test_the_real_pool_model_reports_an_unknown_mig_profile():
    def wrong_profile(pools):
        pools[1]["sharing"] = {"mode": "mig", "migProfile": "1g.5gb"}

    with pytest.raises(ConfigError) as caught:
        parse_stack_config(_stack_with_pools("prod", wrong_profile))
    # The pool model itself may report it first (same facts table); either way the field is named.
    assert any(p.startswith("gpufleet:gpuPools[1]") and "migProfile" in p and "1g.5gb" in p
               for p in caught.value.problems), caught.value.problems


def test_repository_stacks_pass():
    from tests.harness import stack_config

    dev, prod = parse_stack_config(stack_config("dev")), parse_stack_config(stack_config("prod"))
    assert [p.sharing.mode for p in dev.gpu_pools] == ["time-slicing", "mps"]
    assert [p.sharing.replicas for p in dev.gpu_pools] == [4, 4]
    assert [p.sharing.mode for p in prod.gpu_pools] == ["none", "mig", "none", "none"]
    assert prod.gpu_operator.service_monitor_labels == {"release": "kube-prometheus-stack"}


def test_plan_prod_with_an_mps_pool_needs_the_acknowledgement(tmp_path):
    """End to end: an unacknowledged MPS pool in prod is a config error (exit 2, naming the field); the
    acknowledged one plans with no policy violation (the ConfigMap names its entry) and shows MPS ×4."""
    import shutil

    import yaml
    from typer.testing import CliRunner

    from gpufleet.infra.cli import app
    from tests.harness import REPO

    shutil.copy(REPO / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copytree(REPO / "stacks", tmp_path / "stacks")
    shutil.copytree(REPO / "infra", tmp_path / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "stacks" / "Pulumi.prod.yaml"
    document = yaml.safe_load(path.read_text())
    pools = document["config"]["gpufleet:gpuPools"]
    pools.append({"name": "embed-mps", "instanceTypes": ["g6.xlarge"], "amiVersion": pools[0].get("amiVersion", "latest"),
                  "limits": {"gpus": 1, "cpu": 4, "memoryGib": 16}, "sharing": {"mode": "mps", "replicas": 4}})
    path.write_text(yaml.safe_dump(document))
    result = CliRunner().invoke(app, ["plan", "prod", "--project-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "gpufleet:gpuPools[4].sharing.acknowledgeNoIsolation: mps gives no fault isolation" in " ".join(result.output.split())
    pools[-1]["sharing"]["acknowledgeNoIsolation"] = True
    path.write_text(yaml.safe_dump(document))
    result = CliRunner().invoke(app, ["plan", "prod", "--project-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "sharing: MPS ×4" in result.output and "Policies: no violations." in result.output
