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


def readme_python_example() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Use the components in your own program", 1)[1].split("\n## ", 1)[0]
    (example,) = re.findall(r"```python\n(.+?)\n```", section, flags=re.S)
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
