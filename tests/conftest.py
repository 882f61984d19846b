"""The test harness: every test runs programs through gpufleet's offline engine (the Pulumi SDK's
mock monitor), and every Kubernetes object any test renders is validated strictly as it is
registered: built-in kinds against the Kubernetes OpenAPI schemas of the stack's version, custom
resources against the upstream CRDs (unknown fields are errors). A kind neither knows fails the test.
An object that passes its schema is then put to the pinned controllers' admission webhooks
(:mod:`gpufleet.infra.validation.admission`): a rejection fails the test as
``the API server would reject <Kind>/<name>: <reason>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import pytest

from gpufleet.infra.validation.admission import admission_problems, rejection_message
from gpufleet.infra.validation.schema import ManifestValidator, upstream_dir
from gpufleet.infra.offline import FakeCloud, Recording, RegisteredResource, run_program
from tests.harness import BASE_CONFIG, KUBERNETES_VERSION

UPSTREAM_MISSING = (
    "upstream CRDs and chart values not found: set GPUFLEET_UPSTREAM_DIR to a directory laid out like "
    "shared/upstream (crds/, charts/ at the tags in its SOURCES.md), place it at ../shared/upstream, or "
    "run `gpufleet schemas pull`"
)



@pytest.fixture(scope="session")
def upstream() -> Path:
    """The upstream CRDs/charts directory; skips the test when it is not available."""
    found = upstream_dir()
    if found is None:
        pytest.skip(UPSTREAM_MISSING)
    return found


@pytest.fixture(scope="session")
def _validators() -> dict[str, ManifestValidator]:
    return {}


def _validator(cache: dict[str, ManifestValidator], version: str) -> ManifestValidator:
    if version not in cache:
        found = upstream_dir()
        cache[version] = ManifestValidator(version, [found / "crds"] if found else [])
    return cache[version]


class StrictObjects:
    """Validates each Kubernetes object as the mock engine receives it: schema, then admission."""

    def __init__(self, validator: ManifestValidator, have_crds: bool):
        self.validator = validator
        self.have_crds = have_crds
        self.errors: list[str] = []
        self.needs_upstream: list[str] = []

    def __call__(self, resource: RegisteredResource) -> None:
        if not resource.is_kubernetes_object:
            return
        manifest = resource.manifest()
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        if not self.have_crds and not self.validator.knows(api_version, kind):
            self.needs_upstream.append(f"{api_version} {kind}")
            return
        schema_errors = self.validator.validate(manifest)
        for error in schema_errors:
            self.errors.append(f"{kind} {resource.name}: {error}")
        if not schema_errors:
            self.errors += [rejection_message(manifest, reason) for reason in admission_problems(manifest)]


@pytest.fixture
def run(_validators: dict[str, ManifestValidator]) -> Callable[..., Recording]:
    """``run(program, config=..., stack=...)``: run ``program`` under the offline engine and return
    what it registered; fails the test if any rendered Kubernetes object is invalid."""

    def runner(
        program: Callable[[], Any],
        *,
        config: Optional[Mapping[str, str]] = None,
        stack: str = "test",
        kubernetes_version: str = KUBERNETES_VERSION,
        region: Optional[str] = None,
        secret_keys: Sequence[str] = (),
    ) -> Recording:
        config = dict(BASE_CONFIG if config is None else config)
        region = region or config.get("gpufleet:region", "us-west-2")
        strict = StrictObjects(_validator(_validators, kubernetes_version), upstream_dir() is not None)
        recording = run_program(
            program,
            project="gpufleet",
            stack=stack,
            config=config,
            secret_keys=secret_keys,
            on_resource=strict,
            cloud=FakeCloud(region=region),
        )
        if strict.needs_upstream:
            pytest.skip(f"{UPSTREAM_MISSING} (needed for {', '.join(sorted(set(strict.needs_upstream)))})")
        assert not strict.errors, "invalid Kubernetes objects:\n" + "\n".join(strict.errors)
        return recording

    return runner
