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
