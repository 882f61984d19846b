"""What `pip install gpufleet` / `gpufleet[cli]` ship: the version from one source, py.typed in every
package, every imported third-party package declared in the right extra, the components importable
without the cli extra, and an sdist without tests that builds a complete wheel."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from typer.testing import CliRunner

import gpufleet
from gpufleet.infra.cli import app
from tests.harness import REPO

tomllib = pytest.importorskip("tomllib")
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement)[0].lower().replace("_", "-")  # type: ignore[index]


def declared(*groups: str) -> set[str]:
    requirements = list(PROJECT["dependencies"])
    for group in groups:
        requirements += PROJECT["optional-dependencies"][group]
    return {_name(r) for r in requirements}


def package_dirs() -> dict[str, Path]:
    """Import name -> directory of every package in the repository (a directory with __init__.py
    under one of the mapped roots)."""
    out: dict[str, Path] = {}
    mapped = {REPO / directory for directory in SETUPTOOLS["package-dir"].values()}
    for package, directory in SETUPTOOLS["package-dir"].items():
        root = REPO / directory
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root)
            if "venv" in relative.parts or "packs" in relative.parts:
                continue
            if init.parent != root and init.parent in mapped:
                continue  # the root of another mapped package (infra/root is gpufleet itself)
            out[".".join([package, *relative.parts])] = init.parent
    return out


def third_party_imports(directory: Path) -> set[str]:
    modules = set()
    for path in directory.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m not in ("gpufleet", "__future__", "tests")}


def distributions(modules: set[str]) -> dict[str, set[str]]:
    owners = metadata.packages_distributions()
    return {m: {d.lower().replace("_", "-") for d in owners.get(m, [])} for m in modules}


# --------------------------------------------------------------------------------------------------


def test_version_has_one_source():
    assert gpufleet.__version__ == PROJECT["version"] == metadata.version("gpufleet")
    result = CliRunner().invoke(app, ["--version"])
    assert (result.exit_code, result.stdout) == (0, f"gpufleet {PROJECT['version']}\n")


def test_every_package_is_listed_typed_and_mapped():
    found = package_dirs()
    assert set(found) == set(SETUPTOOLS["packages"]), "pyproject's packages list every package, and only those"
    for name, directory in found.items():
        assert (directory / "py.typed").is_file(), f"{name} has no py.typed"
    assert "py.typed" in SETUPTOOLS["package-data"]["*"]
    assert "upstream.lock.json" in SETUPTOOLS["package-data"]["gpufleet.infra"]


def test_every_third_party_import_is_declared_where_it_is_needed():
    base, cli, test = declared(), declared("cli"), declared("cli", "test")
    for root, allowed, where in (
        (REPO / "components", base, "dependencies"),
        (REPO / "infra" / "root", base, "dependencies"),
        (REPO / "infra", cli, "dependencies or the cli extra"),
        (REPO / "policies", cli, "dependencies or the cli extra"),
        (REPO / "tests", test, "dependencies, the cli or the test extra"),
    ):
        for module, owners in distributions(third_party_imports(root)).items():
            assert owners, f"{root.name}/ imports {module}, which no installed distribution provides"
            assert owners & allowed, f"{root.name}/ imports {module} ({', '.join(sorted(owners))}): declare it in {where}"


def test_components_import_without_the_cli_extra():
    """With every module only the cli extra brings made unimportable, the components still import."""
    cli_only = declared("cli") - declared() - {"protobuf"}  # protobuf comes with pulumi itself
    owners = metadata.packages_distributions()
    blocked = sorted(m for m, dists in owners.items() if {d.lower().replace("_", "-") for d in dists} & cli_only
                     and not {d.lower().replace("_", "-") for d in dists} & declared())
    assert {"typer", "rich", "pulumi_policy", "jsonschema", "celpy", "kubernetes_validate"} <= set(blocked)
    script = f"""
import importlib, pkgutil, sys
BLOCKED = {blocked!r}
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{{name}} (cli extra) imported")
sys.meta_path.insert(0, Block())
import gpufleet, gpufleet.components as components
for info in pkgutil.iter_modules(components.__path__):
    importlib.import_module(f"gpufleet.components.{{info.name}}")
print(sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO.parent, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"


def test_the_sdist_leaves_tests_out_and_builds_a_complete_wheel(tmp_path: Path):
    pytest.importorskip("build")
    build = subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path), str(REPO)],
                           capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stderr[-3000:]
    (sdist,) = tmp_path.glob("gpufleet-*.tar.gz")
    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name}
    assert not {m for m in members if m.split("/")[0] in ("tests", "benchmarks", "stacks", "venv", ".ci")}
    assert not {m for m in members if m.startswith("policies/packs")}
    assert {"README.md", "CHANGELOG.md", "LICENSE", "pyproject.toml", "infra/root/__init__.py",
            "infra/upstream.lock.json"} <= members
    wheel_build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(sdist)],
                                 capture_output=True, text=True, timeout=900)
    assert wheel_build.returncode == 0, wheel_build.stderr[-3000:]
    (wheel,) = tmp_path.glob("gpufleet-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in SETUPTOOLS["packages"]:
        assert f"{package.replace('.', '/')}/py.typed" in names, package
        assert f"{package.replace('.', '/')}/__init__.py" in names, package
    assert "gpufleet/infra/upstream.lock.json" in names
    # The declared licence travels with the wheel as its text, not only as a name.
    (license_file,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    assert "Apache License" in zipfile.ZipFile(wheel).read(license_file).decode()
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "gpufleet = gpufleet.__main__:main" in entry_points
