"""Issue 13: every bad stack file is refused (``PlanInputError``, which ``gpufleet plan`` maps to exit
2) with its field path or file:line, in bounded time and memory. One test per defect the fuzz run
found; the generated cases are in test_property_stack_files.py."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Union

import pytest
import yaml
from typer.testing import CliRunner

from gpufleet.infra.cli import app
from gpufleet.infra.config import parse_stack_config, ConfigError
from gpufleet.infra.offline.plan import PlanInputError, Project
from tests.harness import REPO

DEV_TEXT = (REPO / "stacks" / "Pulumi.dev.yaml").read_text()
PROD_TEXT = (REPO / "stacks" / "Pulumi.prod.yaml").read_text()
DEV = yaml.safe_load(DEV_TEXT)
PROD = yaml.safe_load(PROD_TEXT)
SHOWN = "stacks/Pulumi.x.yaml"


def project(root: Path) -> Project:
    (root / "stacks").mkdir(exist_ok=True)
    return Project(root=root, name="gpufleet", main_dir=REPO / "infra", stacks_dir=root / "stacks")


def read_stack(root: Path, content: Union[str, bytes]) -> dict[str, str]:
    """The stack file ``content`` through the same path ``gpufleet plan`` reads it."""
    proj = project(root)
    target = proj.stacks_dir / "Pulumi.x.yaml"
    target.write_bytes(content.encode() if isinstance(content, str) else content)
    return proj.stack_config("x")


def refused(root: Path, content: Union[str, bytes]) -> list[str]:
    with pytest.raises(PlanInputError) as caught:
        read_stack(root, content)
    problems = caught.value.problems
    assert problems and all(p.startswith(SHOWN) for p in problems), problems
    assert not any("Traceback" in p for p in problems)
    return problems


def changed(base: dict, edit: Callable[[dict], Any]) -> str:
    document = copy.deepcopy(base)
    edit(document["config"])
    return yaml.safe_dump(document, sort_keys=False)


def one(problems: list[str], *needles: str) -> str:
    assert len(problems) >= 1
    text = " | ".join(problems)
    for needle in needles:
        assert needle in text, problems
    return text


def test_reference_stacks_read_cleanly(tmp_path):
    assert read_stack(tmp_path, DEV_TEXT)["gpufleet:environment"] == "dev"
    assert read_stack(tmp_path, PROD_TEXT)["gpufleet:environment"] == "prod"


# ---- 1. the whole internet, spelled without /0 -------------------------------------------------------

def _public(cidrs, ack=None):
    def edit(config):
        cluster = config["gpufleet:cluster"]
        cluster.update({"endpointPublicAccess": True, "publicAccessCidrs": cidrs})
        if ack is not None:
            cluster["acknowledgePublicEndpoint"] = ack
    return edit


@pytest.mark.parametrize("cidrs", [
    ["0.0.0.0/1", "128.0.0.0/1"],
    ["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"],
    ["10.0.0.0/7", "203.0.113.0/24"],
])
@pytest.mark.parametrize("base", [DEV, PROD], ids=["dev", "prod"])
def test_public_cidrs_covering_more_than_a_slash_8_are_refused_everywhere(tmp_path, cidrs, base):
    one(refused(tmp_path, changed(base, _public(cidrs, ack=True))),
        "gpufleet:cluster.publicAccessCidrs", "more than a /8")


def test_a_public_endpoint_in_prod_needs_an_acknowledgement(tmp_path):
    one(refused(tmp_path, changed(PROD, _public(["203.0.113.0/24"]))), "gpufleet:cluster.acknowledgePublicEndpoint")
    assert read_stack(tmp_path, changed(PROD, _public(["203.0.113.0/24"], ack=True)))


def test_one_slash_8_is_the_most_a_public_endpoint_may_cover(tmp_path):
    assert read_stack(tmp_path, changed(DEV, _public(["12.0.0.0/9", "12.128.0.0/9"])))


# ---- 2. unbounded time and memory -------------------------------------------------------------------

def _bounded(script: str) -> tuple[float, float, str]:
    """Run ``script`` (which sets ``result``) in a fresh interpreter after gpufleet's imports;
    (seconds, peak MB allocated while it ran, ``result``)."""
    code = "\n".join([
        "import time, tracemalloc",
        "import gpufleet.infra.offline.plan, gpufleet.infra.config, gpufleet.infra.manifests",
        "tracemalloc.start()",
        "started = time.perf_counter()",
        textwrap.dedent(script).strip(),
        "elapsed = time.perf_counter() - started",
        "peak = tracemalloc.get_traced_memory()[1] / 2**20",
        "print(f'{elapsed:.3f} {peak:.1f} {result}')",
    ])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    elapsed, peak, result = done.stdout.strip().split(" ", 2)
    return float(elapsed), float(peak), result


_READ = """
from pathlib import Path
from gpufleet.infra.offline.plan import PlanInputError, Project
root = Path({root!r})
proj = Project(root=root, name="gpufleet", main_dir=root, stacks_dir=root)
try:
    proj.stack_config("x")
    result = "accepted"
except PlanInputError as error:
    result = "refused: " + error.problems[0][:200]
"""

LAUGHS = "config:\n  gpufleet:tags:\n    a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"    a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)
)


@pytest.mark.parametrize(("name", "content"), [
    ("alias bomb", LAUGHS),
    ("10 MB tag value", "config:\n  gpufleet:tags:\n    team: " + "x" * 10_000_000 + "\n"),
    ("110,000 pools by alias", "config:\n  gpufleet:environment: dev\n  gpufleet:region: us-west-2\n"
     "  gpufleet:kubernetesVersion: '1.35'\n  gpufleet:gpuPools:\n"
     "    - &p {name: p, instanceFamilies: [g6e], limits: {gpus: 8, cpu: 192, memoryGib: 2048}}\n"
     + "    - *p\n" * 110_000),
    ("deep nesting", "config:\n  gpufleet:tags: " + "[" * 50_000 + "]" * 50_000 + "\n"),
    ("deep block nesting", "config:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(2000))),
])
def test_bombs_are_refused_in_under_5_s_and_200_mb(tmp_path, name, content):
    (tmp_path / "Pulumi.x.yaml").write_text(content)
    elapsed, peak, result = _bounded(_READ.format(root=str(tmp_path)))
    assert result.startswith("refused: "), result
    assert "Pulumi.x.yaml" in result
    assert elapsed < 5, f"{name}: {elapsed:.1f} s"
    assert peak < 200, f"{name}: {peak:.0f} MB"


def test_110000_pools_through_the_engine_config_are_refused_quickly():
    pools = [{"name": f"p{i}", "instanceFamilies": ["g6e"], "limits": {"gpus": 8, "cpu": 192, "memoryGib": 2048}}
             for i in range(110_000)]
    import json
    import time
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        parse_stack_config({"gpufleet:environment": "dev", "gpufleet:region": "us-west-2",
                            "gpufleet:kubernetesVersion": "1.35", "gpufleet:gpuPools": json.dumps(pools)})
    assert time.perf_counter() - started < 5
    assert caught.value.problems[0].startswith("gpufleet:gpuPools: ")


def test_a_10_mb_tag_through_the_engine_config_is_refused_quickly():
    import json
    import time
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        parse_stack_config({"gpufleet:environment": "dev", "gpufleet:region": "us-west-2",
                            "gpufleet:kubernetesVersion": "1.35", "gpufleet:tags": json.dumps({"team": "x" * 10_000_000})})
    assert time.perf_counter() - started < 5
    assert caught.value.problems[0].startswith("gpufleet:tags: 'team': a string of 10000000 characters")


def test_check_refuses_devices_and_fifos_without_reading_them(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    for target, kind in (("/dev/zero", "character device"), (str(fifo), "FIFO")):
        done = subprocess.run([sys.executable, "-m", "gpufleet.infra.cli", "check", target],
                              capture_output=True, text=True, timeout=60, cwd=REPO)
        assert done.returncode == 2, done.stderr
        assert f"{target}: not a regular file (a {kind})" in " ".join(done.stderr.split())
        assert "Traceback" not in done.stderr


# ---- 3. bad input that used to fail as "the program failed" -----------------------------------------

def test_non_utf8_and_utf16_files_are_refused_with_the_line(tmp_path):
    one(refused(tmp_path, DEV_TEXT.encode("utf-16")), "UTF-16")
    broken = DEV_TEXT.replace("team: ml-platform", "team: ml-\xe9").encode("latin-1")
    line = DEV_TEXT.splitlines().index("    team: ml-platform") + 1
    one(refused(tmp_path, broken), f"{SHOWN}:{line}: not UTF-8")


@pytest.mark.parametrize(("old", "new", "needles"), [
    ("expireAfter: 168h", "expireAfter: 2024-01-01", ("gpufleet:gpuPools[0].expireAfter", "unquoted date")),
    ("team: ml-platform", "team: !!binary bWwtcGxhdGZvcm0=", ("gpufleet:tags.team", "!!binary")),
    ("    team: ml-platform\n", "    team: !!set {a, b}\n", ("gpufleet:tags.team", "!!set")),
    ("team: ml-platform", 'team: "ml-\\ud800"', ("Pulumi.x.yaml:",)),
    ("claimSizeGib: 200", "claimSizeGib: 10000000000000000000000000000000000000000",
     ("gpufleet:modelCache.claimSizeGib", "64-bit")),
    ("claimSizeGib: 200", "claimSizeGib: 1000000000000000", ("gpufleet:modelCache.claimSizeGib", "less than or equal")),
])
def test_values_yaml_cannot_carry_are_refused_naming_the_field(tmp_path, old, new, needles):
    assert old in DEV_TEXT
    one(refused(tmp_path, DEV_TEXT.replace(old, new, 1)), *needles)


def test_recursion_limit_nesting_is_refused(tmp_path):
    one(refused(tmp_path, DEV_TEXT + "  gpufleet:x: " + "[" * 5000 + "]" * 5000 + "\n"), SHOWN)


def test_component_only_checks_now_name_the_yaml_field(tmp_path):
    def no_class(config):
        config["gpufleet:serving"]["kserve"]["gatewayApi"] = {"className": ""}
    one(refused(tmp_path, changed(PROD, no_class)), "gpufleet:serving.kserve.gatewayApi.className")

    def mixed(config):
        config["gpufleet:cluster"]["systemNodes"]["instanceTypes"] = ["m7i.xlarge", "m7g.xlarge"]
    one(refused(tmp_path, changed(PROD, mixed)), "gpufleet:cluster.systemNodes.instanceTypes", "mixes CPU architectures")

    def reasons(config):
        config["gpufleet:gpuPools"][0]["disruption"]["budgets"][1]["reasons"] = ["Underutilized", "Underutilized"]
    one(refused(tmp_path, changed(PROD, reasons)), "gpufleet:gpuPools[0].disruption.budgets[1].reasons", "twice")


# ---- 4. duplicate keys ------------------------------------------------------------------------------

@pytest.mark.parametrize(("old", "new", "needles"), [
    ("    azCount: 2\n", "    azCount: 2\n    azCount: 3\n", ("gpufleet:network: duplicate key 'azCount'",)),
    ("  gpufleet:kueue:\n", "  gpufleet:network: {azCount: 3}\n  gpufleet:kueue:\n",
     ("duplicate key 'gpufleet:network'",)),
    ("{pool: gpu-dev, gpus: 7}", "{pool: gpu-dev, gpus: 20, gpus: 2}",
     ("gpufleet:teams[0].gpuQuotas[0]: duplicate key 'gpus'",)),
])
def test_duplicate_keys_are_refused_naming_both_lines(tmp_path, old, new, needles):
    assert old in DEV_TEXT
    text = one(refused(tmp_path, DEV_TEXT.replace(old, new, 1)), *needles)
    assert "(first at line " in text


def test_a_key_set_bare_and_qualified_is_refused(tmp_path):
    one(refused(tmp_path, DEV_TEXT + "  region: us-east-1\n"), "gpufleet:region: set twice")


# ---- 5. keys in a mistyped namespace ----------------------------------------------------------------

@pytest.mark.parametrize(("extra", "needles"), [
    ("  gpufleets:tags: {a: b}\n", ("gpufleets:tags", "did you mean gpufleet:tags")),
    ("  gpu-fleet:monitoring: {enabled: false}\n", ("gpu-fleet:monitoring", "did you mean gpufleet:monitoring")),
    ("  myorg:monitoring: {enabled: false}\n", ("did you mean gpufleet:monitoring",)),
    ("  acme:foo: bar\n", ("unknown config namespace 'acme'",)),
    ("  ':tags': {a: b}\n", ("neither part empty",)),
    ("  'gpufleet:': x\n", ("neither part empty",)),
])
def test_keys_outside_gpufleet_must_be_pulumis(tmp_path, extra, needles):
    one(refused(tmp_path, DEV_TEXT + extra), *needles)


def test_pulumi_and_provider_namespaces_pass(tmp_path):
    assert read_stack(tmp_path, DEV_TEXT + "  aws:region: us-west-2\n  kubernetes:context: x\n  pulumi:template: y\n")


def test_misspelt_gpufleet_keys_get_a_suggestion(tmp_path):
    one(refused(tmp_path, DEV_TEXT.replace("azCount: 2", "azcount: 2")), "gpufleet:network.azcount: unknown key; did you mean azCount?")
    one(refused(tmp_path, DEV_TEXT.replace("gpufleet:kueue:", "gpufleet:queue:")), "did you mean gpufleet:kueue?")


def test_a_misspelt_top_level_key_is_refused(tmp_path):
    one(refused(tmp_path, DEV_TEXT.replace("config:", "confg:", 1)), "confg", "did you mean config")


# ---- 6. values that fail at deploy ------------------------------------------------------------------

def _set(path: list, value: Any) -> Callable[[dict], None]:
    def edit(config):
        node = config
        for key in path[:-1]:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
        node[path[-1]] = value
    return edit


@pytest.mark.parametrize(("base", "path", "value", "field"), [
    (PROD, ["gpufleet:gpuOperator", "namespace"], "GPU_Operator", "gpufleet:gpuOperator.namespace"),
    (PROD, ["gpufleet:monitoring", "namespace"], "monitoring.svc", "gpufleet:monitoring.namespace"),
    (PROD, ["gpufleet:serving", "kserve", "namespace"], "-kserve", "gpufleet:serving.kserve.namespace"),
    (DEV, ["gpufleet:ray", "clusters", 0, "head", "nodeSelector"], {"bad key!": "x"},
     "gpufleet:ray.clusters[0].head.nodeSelector"),
    (PROD, ["gpufleet:gpuPools", 0, "labels"], {"example.com/": "x"}, "gpufleet:gpuPools[0].labels"),
    (DEV, ["gpufleet:tags", "aws:team"], "x", "gpufleet:tags"),
    (DEV, ["gpufleet:tags", "k" * 129], "x", "gpufleet:tags"),
    (DEV, ["gpufleet:tags", "team"], "v" * 257, "gpufleet:tags"),
    (DEV, ["gpufleet:tags", "team"], "a\x00b", "gpufleet:tags"),
    (DEV, ["gpufleet:region"], "us-east-9", "gpufleet:region"),
    (DEV, ["gpufleet:region"], "zz-fake-1", "gpufleet:region"),
    (DEV, ["gpufleet:region"], "us-west-2\x85", "gpufleet:region"),
    (DEV, ["gpufleet:cluster", "adminAccess", 0, "principalArn"], "arn:aws:iam::111122223333:role/ádmin",
     "gpufleet:cluster.adminAccess[0].principalArn"),
    (DEV, ["gpufleet:cluster", "adminAccess", 0, "principalArn"], "arn:aws:iam::١١١١٢٢٢٢٣٣٣٣:role/admin",
     "gpufleet:cluster.adminAccess[0].principalArn"),
    (PROD, ["gpufleet:serving", "inferenceServices", 0, "hfTokenSecret"], {"name": "hf", "key": ""},
     "gpufleet:serving.inferenceServices[0].hfTokenSecret.key"),
    (PROD, ["gpufleet:serving", "inferenceServices", 0, "model"], "chat 8b", "gpufleet:serving.inferenceServices[0].model"),
    (PROD, ["gpufleet:serving", "inferenceServices", 0, "shmSize"], "0", "gpufleet:serving.inferenceServices[0].shmSize"),
    (PROD, ["gpufleet:modelCache", "claimSizeGib"], True, "gpufleet:modelCache.claimSizeGib"),
    (PROD, ["gpufleet:gpuPools", 0, "rootVolume"], {"iops": True}, "gpufleet:gpuPools[0].rootVolume.iops"),
    (PROD, ["gpufleet:modelCache", "enabled"], "yes", "gpufleet:modelCache.enabled"),
    (PROD, ["gpufleet:teams", 0, "cpu"], "384", "gpufleet:teams[0].cpu"),
    (PROD, ["gpufleet:serving", "prometheusUrl"], "http://x y", "gpufleet:serving.prometheusUrl"),
    (PROD, ["gpufleet:serving", "kserve", "domain"], "ML.example.com", "gpufleet:serving.kserve.domain"),
    (PROD, ["gpufleet:serving", "kserve", "gatewayApi", "gateway"], "gw", "gpufleet:serving.kserve.gatewayApi.gateway"),
    (PROD, ["gpufleet:serving", "kserve", "ingressClassName"], "nginx", "gpufleet:serving.kserve"),
    (PROD, ["gpufleet:modelCache", "addonVersion"], "latest please", "gpufleet:modelCache.addonVersion"),
    (PROD, ["gpufleet:cluster", "adminAccess", 1, "principalArn"], "arn:aws-cn:iam::111122223333:role/sre",
     "gpufleet:cluster.adminAccess[1].principalArn"),
    (PROD, ["gpufleet:modelCache", "lustre", "s3ImportPath"], "s3:/bucket", "gpufleet:modelCache.lustre.s3ImportPath"),
])
def test_values_that_would_fail_at_deploy_are_refused_at_plan(tmp_path, base, path, value, field):
    one(refused(tmp_path, changed(base, _set(path, value))), f"{SHOWN}: {field}")


# ---- 8. images ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("image", "env", "needle"), [
    ("vllm/vllm-openai", "dev", "has no tag"),
    ("vllm/vllm-openai:latest", "prod", "'latest' tag"),
    ("registry.example.com:5000/vllm", "dev", "has no tag"),
])
def test_unpinned_images_are_refused(tmp_path, image, env, needle):
    def edit(config):
        config["gpufleet:environment"] = env
        config["gpufleet:serving"]["inferenceServices"][0]["image"] = image
    one(refused(tmp_path, changed(PROD, edit)), "gpufleet:serving.inferenceServices[0].image", needle)


def test_latest_passes_config_outside_prod(tmp_path):
    # (the image-pinned policy rule still reports it, advisory outside prod)
    assert read_stack(tmp_path, changed(DEV, _set(["gpufleet:serving", "inferenceServices", 0, "image"],
                                                  "vllm/vllm-openai:latest")))


# ---- plan exit codes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [
    DEV_TEXT.encode("utf-16"),
    DEV_TEXT.replace("expireAfter: 168h", "expireAfter: 2024-01-01").encode(),
    DEV_TEXT.replace("    azCount: 2\n", "    azCount: 2\n    azCount: 3\n").encode(),
    changed(PROD, _public(["0.0.0.0/1", "128.0.0.0/1"], ack=True)).encode(),
    LAUGHS.encode(),
])
def test_plan_exits_2_naming_the_stack_file(tmp_path, content):
    (tmp_path / "Pulumi.yaml").write_text((REPO / "Pulumi.yaml").read_text().replace("main: infra/", f"main: {REPO / 'infra'}"))
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.x.yaml").write_bytes(content)
    result = CliRunner().invoke(app, ["plan", "x", "--project-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert f"error: {SHOWN}" in result.output
    assert "Traceback" not in result.output and "the program failed" not in result.output
