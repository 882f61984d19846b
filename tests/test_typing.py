"""The components are typed for their users: mypy accepts the README's example program and catches a
misspelt ``<X>Args`` key (the packages ship ``py.typed``)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tests.harness import REPO
from tests.test_readme import readme_python_example

mypy_api = pytest.importorskip("mypy.api", reason="mypy is in the test extras: pip install -e '.[test]'")

PACKAGES = {"components": "gpufleet.components", "infra": "gpufleet.infra", "policies": "gpufleet.policies"}

MISSPELT = textwrap.dedent('''
    import pulumi
    from gpufleet.components import GpuNodePool, Karpenter, Network

    network = Network("net", {"cluster_name": "ml", "az_cout": 3})
    karpenter = Karpenter("karpenter", {
        "cluster_name": "ml",
        "oidc_provider_arn": "arn",
        "oidc_provider_url": "url",
        "cluster_security_group_id": "sg",
    })
    pool = GpuNodePool("serving", {
        "karpenter": karpenter,
        "instance_families": ["g6e"],
        "limits": {"gpus": 16, "cpu": 768, "memory_gb": 6144},
    })
    ''')


def _mypy(tmp_path: Path, sources: dict[str, str]) -> tuple[str, int]:
    """mypy over ``sources`` only; gpufleet resolved from this checkout as ``gpufleet.*`` (an editable
    install's import hook is invisible to mypy), the cloud SDKs' huge generated modules not followed."""
    src = tmp_path / "src" / "gpufleet"
    src.mkdir(parents=True)
    for directory in PACKAGES:
        (src / directory).symlink_to(REPO / directory, target_is_directory=True)
    config = tmp_path / "mypy.ini"
    config.write_text(textwrap.dedent(f"""
        [mypy]
        mypy_path = {tmp_path / 'src'}
        follow_imports = silent
        cache_dir = {tmp_path / 'cache'}
        python_version = {sys.version_info.major}.{sys.version_info.minor}
        [mypy-pulumi_aws.*,pulumi_eks.*,pulumi_kubernetes.*]
        follow_imports = skip
        """))
    files = []
    for name, text in sources.items():
        (tmp_path / name).write_text(text)
        files.append(str(tmp_path / name))
    stdout, stderr, status = mypy_api.run(["--config-file", str(config), "--no-error-summary", *files])
    return stdout + stderr, status


def test_mypy_accepts_the_readme_example_and_catches_misspelt_args(tmp_path):
    output, status = _mypy(tmp_path, {"readme_example.py": readme_python_example() + "\n", "misspelt.py": MISSPELT})
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert not [e for e in errors if "readme_example.py" in e], output
    assert status == 1
    assert any('misspelt.py:5: error: Extra key "az_cout" for TypedDict "NetworkArgs"' in e for e in errors), output
    assert any('misspelt.py:15: error: Extra key "memory_gb" for TypedDict "PoolLimits"' in e for e in errors), output
    assert any('misspelt.py:15: error: Missing key "memory_gib" for TypedDict "PoolLimits"' in e for e in errors), output
    assert len(errors) == 3, output
