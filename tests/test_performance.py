"""What keeps gpufleet fast, asserted without timing anything: the policy harness's fast path
answers exactly what the analyzer servicer answers and converts each resource once (counted
conversions); selector rules stay linear (counted comparisons, so a quadratic rule fails
deterministically); the compiled CRD cache gives the schemas the YAML gives; start-up imports stay
light."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pulumi
import pulumi_policy.policy as servicer_module
import pytest

from gpufleet.policies import rules as rules_module
from gpufleet.policies.analyzer import analyze_recording
from gpufleet.policies.core import PolicyConfig, Subject, evaluate
from gpufleet.policies.rules import _common
from tests.harness import REPO

# -- the fast path and the servicer path agree -----------------------------------------------------


@pytest.fixture(scope="module")
def reference_plans():
    from gpufleet.infra.offline.plan import Project, plan_stack

    project = Project.find(REPO)
    return {stack: (plan_stack(project, stack).recording, project.stack_config(stack)) for stack in ("dev", "prod")}


def _report(recording: Any, config: dict[str, str], *, production: bool, fast: bool) -> tuple[list[Any], list[str]]:
    report = analyze_recording(recording, production=production, stack_config=config, fast=fast)
    return [v for v in report.violations], list(report.not_run)


@pytest.mark.parametrize("stack", ["dev", "prod"])
@pytest.mark.parametrize("production", [False, True])
def test_fast_path_and_servicer_path_give_the_same_verdicts_on_the_reference_stacks(reference_plans, stack, production):
    recording, config = reference_plans[stack]
    assert _report(recording, config, production=production, fast=True) == \
        _report(recording, config, production=production, fast=False)


def _broken_gpu_service() -> None:
    """GPU Deployments breaking several rules (no toleration, no PDB, requests != limits, no /dev/shm),
    one with a value unknown during preview, in a production namespace, with a PDB that keeps nothing,
    and a Secret (a secret value on the wire)."""
    import pulumi_kubernetes as k8s

    k8s.core.v1.Namespace("ns", metadata={"name": "serving", "labels": {"gpufleet.io/environment": "prod"}})
    unknown = k8s.core.v1.ConfigMap("cm", metadata={"namespace": "serving"}, data={"a": "b"})
    k8s.core.v1.Secret("token", metadata={"name": "hf-token", "namespace": "serving"},
                       string_data={"token": pulumi.Output.secret("hf_abc")})  # a signature object on the wire
    for index in range(3):
        labels = {"gpufleet.io/variant": "stable", "app": f"llm-{index}"}
        container = {
            "name": "server", "image": "vllm/vllm-openai:v0.11.0",
            "args": ["--tensor-parallel-size", "2"],
            "resources": {"requests": {"nvidia.com/gpu": "2", "cpu": "8"}, "limits": {"nvidia.com/gpu": "2"}},
        }
        if index == 2:
            container["env"] = [{"name": "CM", "value": unknown.metadata.name}]
        k8s.apps.v1.Deployment(
            f"llm-{index}",
            metadata={"name": f"llm-{index}", "namespace": "serving"},
            spec={"replicas": 3, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}},
        )
        if index == 1:
            k8s.policy.v1.PodDisruptionBudget(
                f"pdb-{index}", metadata={"name": f"llm-{index}", "namespace": "serving"},
                spec={"maxUnavailable": 3, "selector": {"matchLabels": labels}},
            )


@pytest.mark.parametrize("production", [False, True])
def test_fast_path_and_servicer_path_give_the_same_violations_on_a_broken_stack(run, production):
    recording = run(_broken_gpu_service)
    fast = _report(recording, {}, production=production, fast=True)
    assert fast == _report(recording, {}, production=production, fast=False)
    assert {v.policy for v in fast[0]} >= {"gpu-toleration-required", "gpu-pdb-required", "gpu-shm-volume"}


def test_the_fast_path_leaves_the_servicer_module_as_it_found_it(reference_plans):
    import pulumi_policy.policy as servicer_module

    from gpufleet.policies.pack import SUBJECTS

    before = (servicer_module.json_format, servicer_module.deserialize_properties, servicer_module.unknown_checking_proxy)
    recording, config = reference_plans["dev"]
    analyze_recording(recording, production=False, stack_config=config)
    assert (servicer_module.json_format, servicer_module.deserialize_properties,
            servicer_module.unknown_checking_proxy) == before
    assert SUBJECTS.active is False


def _gpu_deployments(count: int) -> Any:
    """A program of ``count`` GPU Deployments, each with a PodDisruptionBudget."""

    def program() -> None:
        import pulumi_kubernetes as k8s

        k8s.core.v1.Namespace("ns", metadata={"name": "serving"})
        for index in range(count):
            labels = {"gpufleet.io/variant": "stable", "app": f"llm-{index}"}
            k8s.apps.v1.Deployment(f"llm-{index}", metadata={"name": f"llm-{index}", "namespace": "serving"}, spec={
                "replicas": 2, "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                    "name": "server", "image": "vllm/vllm-openai:v0.11.0",
                    "resources": {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}}]}}})
            k8s.policy.v1.PodDisruptionBudget(f"pdb-{index}", metadata={"name": f"llm-{index}", "namespace": "serving"},
                                              spec={"maxUnavailable": 1, "selector": {"matchLabels": labels}})

    return program


def _conversions(recording: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """(Struct → dict conversions, ``deserialize_properties`` runs) while the pack judges ``recording``."""
    import pulumi_policy.deserialize

    from gpufleet.policies import wire

    counts = [0, 0]
    convert, deserialize = wire._struct_dict, pulumi_policy.deserialize.deserialize_properties

    def counting_convert(struct: Any, root: Any, flags: list[int]) -> Any:
        counts[0] += struct is root
        return convert(struct, root, flags)

    def counting_deserialize(*args: Any, **kwargs: Any) -> Any:
        counts[1] += 1
        return deserialize(*args, **kwargs)

    monkeypatch.setattr(wire, "_struct_dict", counting_convert)
    monkeypatch.setattr(servicer_module, "deserialize_properties", counting_deserialize)
    analyze_recording(recording, production=True)
    monkeypatch.undo()
    return counts[0], counts[1]


def test_the_fast_path_converts_each_resource_once_whatever_the_policies_and_the_size(run, monkeypatch):
    for count in (10, 100):
        recording = run(_gpu_deployments(count))
        converted, deserialized = _conversions(recording, monkeypatch)
        # inputs (Analyze) and outputs (AnalyzeStack) are the same bytes here: one conversion per
        # resource, not one per policy (22 policies) and call; the plain data needs no deserializing
        assert converted <= len(recording.resources) + 2, (count, converted, len(recording.resources))
        assert deserialized == 0


# -- selector rules stay linear --------------------------------------------------------------------


def _gpu_services(count: int) -> list[Subject]:
    """``count`` GPU serving Deployments in one namespace, each with a Service and a PDB whose
    selectors all start with the same pair (as gpufleet's own InferenceServices do)."""
    subjects = [Subject.from_manifest({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "serving"}})]
    for index in range(count):
        labels = {"gpufleet.io/variant": "stable", "app": f"svc-{index}"}
        pod = {"containers": [{"name": "server", "image": "vllm/vllm-openai:v0.11.0",
                               "resources": {"requests": {"nvidia.com/gpu": 1}, "limits": {"nvidia.com/gpu": 1}}}],
               "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
               "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                   {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                                       "labelSelector": {"matchLabels": labels}}}]}}}
        meta = {"name": f"svc-{index}", "namespace": "serving"}
        subjects += [Subject.from_manifest(m) for m in (
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
             "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": pod}}},
            {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {"selector": labels, "ports": [{"port": 80}]}},
            {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta,
             "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}},
        )]
    return subjects


def _comparisons(count: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """Selector comparisons (``selector_matches`` calls in every rule, plus candidates the selector
    index hands out) while every rule judges ``count`` services."""
    calls = [0]
    original = _common.selector_matches

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    for module in [_common, *(sys.modules[r.check_resource.__module__ if r.check_resource else r.check_stack.__module__]
                              for r in rules_module.RULES)]:
        if getattr(module, "selector_matches", None) is original:
            monkeypatch.setattr(module, "selector_matches", counting)
    index_before = _common.SELECTOR_COMPARISONS[0]
    evaluate(_gpu_services(count), PolicyConfig(production=True), rules_module.RULES)
    monkeypatch.undo()
    return calls[0] + _common.SELECTOR_COMPARISONS[0] - index_before


def test_selector_rules_compare_linearly_many_selectors(monkeypatch):
    small, large = _comparisons(10, monkeypatch), _comparisons(100, monkeypatch)
    assert small > 0, "the rules compared no selector: the fixture no longer exercises them"
    # linear: ten times the services, at most ~ten times the comparisons (a quadratic rule: ~100x)
    assert large <= 12 * small, (small, large)


def test_pdbs_sharing_their_first_pair_are_not_all_candidates():
    index = _common.SelectorIndex()
    subjects = _gpu_services(50)
    for subject in subjects:
        if subject.is_a("policy", "PodDisruptionBudget"):
            index.add(subject, subject.spec.get("selector"))
    found = index.candidates("serving", {"gpufleet.io/variant": "stable", "app": "svc-7"})
    assert [s.object_name for s, _ in found] == ["svc-7"]


# -- the compiled CRD cache ------------------------------------------------------------------------


def test_compiled_crd_cache_serves_the_schema_the_yaml_gives(tmp_path, monkeypatch):
    from gpufleet.infra.validation import crd_cache, schema

    upstream = schema.upstream_dir()
    if upstream is None:
        pytest.skip("no upstream CRDs (gpufleet schemas pull)")
    monkeypatch.setenv("GPUFLEET_CACHE_DIR", str(tmp_path))
    path = next(iter(sorted((upstream / "crds" / "karpenter").glob("*.yaml"))))
    stamp = schema._stamp(path)
    for cached in (schema._load_docs, schema._crd_file_index, schema._crd_schemas):
        cached.cache_clear()
    from_yaml = schema._crd_schemas(str(path), stamp)
    stored = crd_cache.load(str(path), stamp)
    assert stored is not None and stored["schemas"] == from_yaml
    assert stored["index"] == list(schema._full_crd_index(str(path), stamp))
    assert all("description" not in (schema_ or {}) for schema_ in from_yaml.values())
    # a changed file (other mtime/size) is not served the old entry
    assert crd_cache.load(str(path), (stamp[0] + 1, stamp[1])) is None


def test_without_descriptions_keeps_a_property_named_description():
    schema = {"type": "object", "description": "the object", "properties": {
        "description": {"type": "string", "description": "a field called description"},
        "items": {"type": "array", "items": {"type": "string", "description": "x"}},
    }, "x-kubernetes-validations": [{"rule": "self.description != ''", "message": "m"}]}
    from gpufleet.infra.validation.crd_cache import without_descriptions

    assert without_descriptions(schema) == {"type": "object", "properties": {
        "description": {"type": "string"},
        "items": {"type": "array", "items": {"type": "string"}},
    }, "x-kubernetes-validations": [{"rule": "self.description != ''", "message": "m"}]}


# -- light start-up --------------------------------------------------------------------------------


def _imported_by(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True, cwd=REPO)
    return set(out.stdout.split())


def test_the_cli_and_the_rules_import_no_pulumi_sdk():
    for code in ("import gpufleet.infra.cli", "from gpufleet.policies.rules import RULES",
                 "from gpufleet.components.gpu_scheduling import GPU_RESOURCE"):
        modules = _imported_by(code)
        heavy = sorted(m for m in modules if m.split(".")[0] in ("pulumi", "pulumi_aws", "pulumi_kubernetes", "pulumi_policy"))
        assert heavy == [], f"{code}: imports {heavy[:5]}"


def _imported_by_command(args: list[str], tmp_path: Any) -> set[str]:
    """The modules loaded by the end of ``gpufleet ARGS``, run as a user runs it (output piped)."""
    listing = tmp_path / "modules.txt"
    code = ("import atexit, sys\n"
            f"atexit.register(lambda: open({str(listing)!r}, 'w').write('\\n'.join(sys.modules)))\n"
            f"sys.argv = ['gpufleet', *{args!r}]\n"
            "from gpufleet.infra.cli import main\nmain()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    return set(listing.read_text().split())


def test_check_and_help_import_neither_pydantic_nor_the_pulumi_sdk(tmp_path):
    """typer converts parameter values through pydantic; gpufleet's command line converts its strings,
    paths, choices and flags itself (infra/cli_params.py), and check's text report on a pipe is laid
    out without rich's Table (infra/cli_tables.py)."""
    manifest = tmp_path / "gpu.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ml}\nspec:\n  containers:\n"
        "  - name: c\n    image: vllm/vllm-openai:v0.11.0\n    resources: {limits: {nvidia.com/gpu: 1}}\n"
    )
    for args in (["--help"], ["check", str(manifest)], ["check", "--format", "json", "--assume", "gpu-quota", str(manifest)],
                 ["check", "--production", "--output", str(tmp_path / "report.txt"), str(manifest)]):
        modules = _imported_by_command(args, tmp_path)
        assert "gpufleet.policies.rules" in modules or args == ["--help"]  # the command did run
        heavy = sorted(m for m in modules if m.split(".")[0] in ("pydantic", "pydantic_core", "pulumi", "pulumi_aws",
                                                                 "pulumi_kubernetes", "pulumi_policy"))
        assert heavy == [] and "typer._adapters" not in modules, (args, heavy[:5])
        if args[0] == "check" and "--format" not in args:
            assert "rich.table" not in modules, args
    assert "violation" in (tmp_path / "report.txt").read_text()


def test_components_import_lazily_and_completely():
    import gpufleet.components as components

    for name in components.__all__:
        assert getattr(components, name).__name__ == name
    assert set(components.__all__) <= set(dir(components))
    with pytest.raises(AttributeError):
        components.NoSuchComponent  # noqa: B018
    assert issubclass(components.Cluster, pulumi.ComponentResource)
