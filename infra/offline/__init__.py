"""Run Pulumi programs in-process against deterministic fakes: nothing is contacted."""

from gpufleet.infra.offline.engine import Recording, RegisteredResource, run_program, run_project_main
from gpufleet.infra.offline.fakes import FakeCloud

__all__ = ["FakeCloud", "Recording", "RegisteredResource", "run_program", "run_project_main"]
