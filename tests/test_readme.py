"""The README's quickstart is what CI runs."""

from __future__ import annotations

import re

from tests.harness import REPO


def quickstart_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_quickstart_is_two_commands_plan_then_tests():
    commands = quickstart_commands()
    assert len(commands) == 2
    assert commands[0].startswith("python3 ") and commands[0].endswith("gpufleet plan dev")
    assert commands[1].startswith("python3 ") and "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert quickstart_commands()[1] in ci


def _own_program_section() -> str:
    text = (REPO / "README.md").read_text()
    return text.split("## Use the components in your own program", 1)[1].split("\n## ", 1)[0]


def _subsection(title: str) -> str:
    return _own_program_section().split(f"\n### {title}\n", 1)[1].split("\n### ", 1)[0]


def readme_python_example() -> str:
    """The component example at the top of the section (before its subsections)."""
    (example,) = re.findall(r"```python\n(.+?)\n```", _own_program_section().split("\n### ", 1)[0], flags=re.S)
    return example


def test_readme_component_example_runs_and_builds_what_it_says(run):
    example = readme_python_example()
    recording = run(lambda: exec(compile(example, "README.md", "exec"), {}))
    types = [r.type for r in recording.resources]
    for component in ("Network", "Cluster", "Karpenter", "GpuNodePool"):
        assert sum(t.startswith("gpufleet:") and t.endswith(f":{component}") for t in types) == 1, component
    node_pool = recording.one("kubernetes:karpenter.sh/v1:NodePool")
    assert node_pool.inputs["spec"]["limits"]["nvidia.com/gpu"] == 16
    assert recording.stack_outputs["kubeconfig"]


def test_readme_unit_test_example_runs_and_passes():
    (example,) = re.findall(r"```python\n(.+?)\n```", _subsection("Unit-test your program offline"), flags=re.S)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    tests = [function for name, function in namespace.items() if name.startswith("test_")]
    assert len(tests) == 1
    for test in tests:
        test()


def _user_project(tmp_path, stack_yaml: str):
    """A user's own Pulumi project: the README's component example as its program."""
    (tmp_path / "Pulumi.yaml").write_text("name: myml\nruntime: python\n")
    (tmp_path / "__main__.py").write_text(readme_python_example() + "\n")
    (tmp_path / "Pulumi.dev.yaml").write_text(stack_yaml)
    return tmp_path


def test_readme_plan_example_plans_a_users_program(tmp_path):
    from typer.testing import CliRunner

    from gpufleet.infra.cli import app

    (stack_yaml,) = re.findall(r"```yaml\n(.+?)```", _subsection("Plan your program offline"), flags=re.S)
    project = _user_project(tmp_path, stack_yaml)
    graph = tmp_path / "graph.mmd"
    result = CliRunner().invoke(app, ["plan", "dev", "--project-dir", str(project), "--graph", str(graph)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "myml-dev (pulumi:pulumi:Stack)" in result.output
    assert "Policies: no violations." in result.output
    assert '["net<br/>Network · ' in graph.read_text()


def test_users_own_keys_reach_the_program_qualified_with_its_project_name(tmp_path):
    from gpufleet.infra.offline.plan import Project

    (stack_yaml,) = re.findall(r"```yaml\n(.+?)```", _subsection("Plan your program offline"), flags=re.S)
    config = Project.find(_user_project(tmp_path, stack_yaml)).stack_config("dev")
    assert config["myml:teamName"] == "research"
    assert config["gpufleet:kubernetesVersion"] == "1.35"


def test_planning_a_users_program_without_the_plan_keys_says_which_to_add(tmp_path):
    from typer.testing import CliRunner

    from gpufleet.infra.cli import app

    project = _user_project(tmp_path, "config:\n  aws:region: eu-west-1\n  teamName: research\n")
    result = CliRunner().invoke(app, ["plan", "dev", "--project-dir", str(project)])
    assert result.exit_code == 2
    assert "Pulumi.dev.yaml: gpufleet:region: required but not set" in result.output
    message = " ".join(result.output.split())
    assert ("gpufleet plan needs gpufleet:environment, gpufleet:region, gpufleet:kubernetesVersion in every "
            "stack it plans, also for a program that does not read them") in message
