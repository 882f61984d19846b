"""The files of a standalone CrossGuard pack directory (``gpufleet policy-pack init DIR``).

A pack directory is what ``pulumi preview --policy-pack DIR`` and ``pulumi policy publish`` take: a
``PulumiPolicy.yaml`` (runtime python, its own ``venv``), a ``__main__.py`` serving
:func:`gpufleet.policies.pack.build_policies`, and a ``requirements.txt`` the Pulumi CLI installs into
that venv (``pulumi install``), which pins the gpufleet release whose rules the pack enforces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from gpufleet import __version__
from gpufleet.policies.pack import PACK_NAME, PRODUCTION_ENV_VAR

__all__ = ["main_source", "pack_files", "requirement_line", "write_pack"]

DESCRIPTION = "gpufleet: GPU scheduling, isolation and production-readiness rules for an EKS GPU/ML platform"
DISTRIBUTION = "gpufleet[cli]"

_MAIN_DOC = '''"""The gpufleet GPU production policy pack: ``pulumi preview --policy-pack <this directory>``.

The policies are built in :mod:`gpufleet.policies.pack` (importable, testable); this file only serves
them. ``PolicyPack(...)`` starts the analyzer's gRPC server and blocks until the engine stops it, so
nothing may import this module.{production_note}
"""
'''


def main_source(production: bool = False) -> str:
    """``__main__.py``: production defaults always on with ``production``, else decided per stack
    (``gpufleet:environment: prod``, or ``GPUFLEET_POLICY_PRODUCTION``)."""
    if production:
        doc = _MAIN_DOC.format(production_note="\n\nProduction defaults always apply (`gpufleet policy-pack init --production`).")
        imports = "from gpufleet.policies.pack import PACK_NAME, assume_from_environ, build_policies, default_enforcement\n"
        decide = "production = True\n"
    else:
        doc = _MAIN_DOC.format(production_note="")
        imports = ("from gpufleet.policies.pack import (\n"
                   "    PACK_NAME, assume_from_environ, build_policies, default_enforcement, production_from_environ,\n"
                   ")\n")
        decide = "production = production_from_environ()\n"
    return (
        f"{doc}\nfrom pulumi_policy import PolicyPack\n\n{imports}\n{decide}\n"
        "PolicyPack(\n"
        "    PACK_NAME,\n"
        "    policies=build_policies(production=production, assume=assume_from_environ()),\n"
        "    enforcement_level=default_enforcement(production),\n"
        ")\n"
    )


def policy_project(version: str = __version__) -> str:
    """``PulumiPolicy.yaml``: the pack runs in its own ``venv`` (created by ``pulumi install``)."""
    return (
        f'description: "{DESCRIPTION}"\n'
        f"version: {version}\n"
        "runtime:\n"
        "  name: python\n"
        "  options:\n"
        "    virtualenv: venv\n"
    )


def requirement_line(spec: Optional[str] = None) -> str:
    """The pack's gpufleet requirement. Default: this gpufleet version, pinned. ``spec``: an existing
    wheel, sdist or source directory (written as an absolute ``file:`` reference, so pip resolves it
    from any working directory), or any pip requirement, written as given."""
    if spec is None:
        return f"{DISTRIBUTION}=={__version__}"
    path = Path(spec).expanduser()
    if path.exists():
        return f"{DISTRIBUTION} @ {path.resolve().as_uri()}"
    return spec


def readme(directory_name: str, production: bool, requirement: str) -> str:
    production_text = (
        "This pack always applies the production defaults (it was created with `--production`): the `eks-*`\n"
        "rules are mandatory and time-slicing is refused on every stack it judges."
        if production
        else "A stack whose `gpufleet:environment` is `prod` gets the production defaults (the `eks-*` rules\n"
        f"become mandatory, time-slicing is refused); other stacks can set `{PRODUCTION_ENV_VAR}=true` (or\n"
        "`false`) in the environment of `pulumi preview`."
    )
    return f"""# {PACK_NAME} policy pack

CrossGuard pack with every rule of gpufleet's production checklist (GPU scheduling, isolation,
serving resilience, EKS hardening), from `{requirement}`.

## Run it

```sh
cd {directory_name} && pulumi install && cd -      # creates {directory_name}/venv from requirements.txt
pulumi preview --policy-pack {directory_name} [--policy-pack-config config.json]
```

`pulumi install` in the pack directory creates its virtualenv (`venv`, see `PulumiPolicy.yaml`) and
installs `requirements.txt` into it; without the Pulumi CLI the same is
`python3 -m venv venv && venv/bin/pip install -r requirements.txt` in the pack directory.

{production_text}

## Configure it

`--policy-pack-config` takes a JSON object: `"all"` or a policy name mapped to a level (`mandatory`,
`advisory`, `disabled`) or to `{{"enforcementLevel": ..., <setting>: ...}}`; every policy accepts
`exempt` (glob patterns matched against `Kind/namespace/name`). `pulumi policy` shows each policy's
settings and defaults.

## Publish it to your Pulumi organization

```sh
pulumi policy publish <org> --dir {directory_name}   # uploads this directory as a new pack version
pulumi policy enable <org>/{PACK_NAME} latest --policy-group default
```

Bump `version` in `PulumiPolicy.yaml` for every publish (the service refuses a version twice). The
Pulumi service runs the published pack with the requirements above, so pin gpufleet (the default
`{DISTRIBUTION}==<version>`), or point at a wheel your runners can reach.

## Upgrade gpufleet

Change the version in `requirements.txt` (or recreate the pack with `gpufleet policy-pack init`),
then `pulumi install` again.
"""


def pack_files(directory_name: str, *, production: bool = False, requirement: Optional[str] = None) -> dict[str, str]:
    """File name -> content of a complete pack."""
    line = requirement_line(requirement)
    return {
        "PulumiPolicy.yaml": policy_project(),
        "__main__.py": main_source(production),
        "requirements.txt": (
            "# The gpufleet release whose rules this pack enforces (written by `gpufleet policy-pack init`).\n"
            f"{line}\n"
        ),
        "README.md": readme(directory_name, production, line),
    }


def write_pack(
    directory: Path, *, production: bool = False, requirement: Optional[str] = None, force: bool = False
) -> list[Path]:
    """Write a complete pack into ``directory`` (created if missing). Existing pack files are only
    replaced with ``force``; raises ``FileExistsError`` naming them otherwise."""
    directory = Path(directory)
    files = pack_files(str(directory), production=production, requirement=requirement)
    existing = [name for name in files if (directory / name).exists()]
    if existing and not force:
        raise FileExistsError(f"{directory}: already has {', '.join(existing)} (--force replaces them)")
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        (directory / name).write_text(text)
        written.append(directory / name)
    return written
