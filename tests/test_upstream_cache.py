"""`gpufleet schemas pull`: the shipped lock, downloads from an HTTP server on 127.0.0.1, copies from a
local mirror, sha256 verification (nothing partial is kept), the cache location, and what `gpufleet
plan` says and finds with and without the pulled files."""

from __future__ import annotations

import hashlib
import http.server
import importlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from typer.testing import CliRunner

from gpufleet.infra import upstream_cache
from gpufleet.infra.cli import app
from gpufleet.infra.upstream_cache import Lock, LockedFile, UpstreamError, load_lock, make_lock, pull, pulled_dir
from tests.harness import REPO

SHARED_UPSTREAM = Path(os.environ.get("GPUFLEET_UPSTREAM_DIR") or REPO.parent / "shared" / "upstream")
NO_MIRROR = f"no upstream mirror at {SHARED_UPSTREAM} (set GPUFLEET_UPSTREAM_DIR to a checkout of shared/upstream)"


def _schema_module():
    """The module with ``upstream_dir`` and ``ManifestValidator``."""
    return importlib.import_module("gpufleet.infra.validation.schema")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("GPUFLEET_CACHE_DIR", str(root))
    return root


# -- a raw.githubusercontent.com stand-in on 127.0.0.1 ---------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    delay = 0.0

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.delay:
            time.sleep(self.delay)
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gives up (the size cap, the timeout tests) breaks the pipe: expected, not noise."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


@pytest.fixture
def serve() -> Iterator:
    servers = []

    def start(directory: Path, delay: float = 0.0) -> str:
        handler = type("Handler", (_Handler,), {"delay": delay})
        server = _Server(("127.0.0.1", 0), lambda *a, **k: handler(*a, directory=str(directory), **k))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


FILES = {
    "crds/karpenter/karpenter.sh_nodepools.yaml": b"kind: CustomResourceDefinition\n",
    "crds/kueue/kueue.x-k8s.io_clusterqueues.yaml": b"kind: CustomResourceDefinition\nspec: {}\n",
    "charts/keda/values.yaml": b"replicaCount: 1\n",
}


def raw_site(root: Path, base: str = "") -> tuple[Path, Lock]:
    """A directory served like raw.githubusercontent.com (``<owner>/<repo>/<tag>/<upstream path>``) and
    the lock naming its files."""
    site = root / "site"
    files = []
    for i, (path, data) in enumerate(FILES.items()):
        upstream_path = f"config/{Path(path).name}"
        (site / "acme" / f"project{i}" / "v1.0.0" / upstream_path).parent.mkdir(parents=True, exist_ok=True)
        (site / "acme" / f"project{i}" / "v1.0.0" / upstream_path).write_bytes(data)
        files.append(LockedFile(path, f"acme/project{i}", "v1.0.0", upstream_path,
                                f"{base}/acme/project{i}/v1.0.0/{upstream_path}",
                                hashlib.sha256(data).hexdigest(), len(data)))
    return site, Lock(tuple(files))


def leftovers(cache: Path) -> list[str]:
    return sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*")) if cache.exists() else []


# -- the shipped lock ------------------------------------------------------------------------------


def test_the_shipped_lock_pins_raw_urls_at_tags_with_full_hashes():
    lock = load_lock()
    assert len(lock.files) >= 50
    for f in lock.files:
        assert f.url == f"https://raw.githubusercontent.com/{f.repo}/{f.tag}/{f.upstream_path}", f.path
        assert len(f.sha256) == 64 and f.path.split("/")[0] in ("crds", "charts")
    paths = {f.path for f in lock.files}
    for needed in ("crds/karpenter/karpenter.sh_nodepools.yaml", "crds/kserve/serving.kserve.io_inferenceservices.yaml",
                   "crds/keda/keda.sh_scaledobjects.yaml", "crds/kueue/kueue.x-k8s.io_clusterqueues.yaml",
                   "crds/kuberay/ray.io_rayclusters.yaml", "charts/karpenter/values.yaml"):
        assert needed in paths


def test_the_shipped_lock_is_the_one_built_from_the_mirror():
    """The lock is regenerated, never hand-edited: `gpufleet schemas lock --from` gives the same file."""
    if not (SHARED_UPSTREAM / "SOURCES.md").is_file():
        pytest.skip(NO_MIRROR)
    assert make_lock(SHARED_UPSTREAM).dumps() == upstream_cache.LOCK_FILE.read_text()
    result = CliRunner().invoke(app, ["schemas", "lock", "--from", str(SHARED_UPSTREAM)])
    assert result.exit_code == 0, result.output
    assert result.stdout == upstream_cache.LOCK_FILE.read_text()


def test_make_lock_refuses_unlisted_missing_and_altered_files(tmp_path: Path):
    mirror = tmp_path / "mirror"
    (mirror / "crds" / "a").mkdir(parents=True)
    (mirror / "crds" / "a" / "x.yaml").write_text("x: 1\n")
    digest = hashlib.sha256(b"x: 1\n").hexdigest()
    sources = ("# s\n\n## Releases\n\n| project | repo | tag | commit |\n|---|---|---|---|\n"
               "| a | github.com/acme/a | v1 | `abc` |\n\n## Files\n\n| file | repo | tag | upstream path | bytes | sha256 |\n"
               "|---|---|---|---|---|---|\n| `crds/a/x.yaml` | acme/a | v1 | `deploy/x.yaml` | 5 | `{sha}` |\n")
    (mirror / "SOURCES.md").write_text(sources.format(sha=digest[:16]))
    (locked,) = make_lock(mirror).files
    assert (locked.url, locked.commit) == ("https://raw.githubusercontent.com/acme/a/v1/deploy/x.yaml", "abc")
    (mirror / "SOURCES.md").write_text(sources.format(sha="0" * 16))
    with pytest.raises(UpstreamError, match=r"crds/a/x.yaml: sha256 .* differs from SOURCES.md"):
        make_lock(mirror)
    (mirror / "SOURCES.md").write_text(sources.format(sha=digest[:16]))
    (mirror / "crds" / "a" / "extra.yaml").write_text("y: 1\n")
    with pytest.raises(UpstreamError, match="crds/a/extra.yaml: not listed in SOURCES.md"):
        make_lock(mirror)


def test_a_lock_cannot_write_outside_the_cache(tmp_path: Path):
    entry = {"path": "../../etc/passwd", "repo": "a/b", "tag": "v1", "upstreamPath": "x", "url": "https://x/y",
             "sha256": "0" * 64, "size": 1}
    for path in ("../../etc/passwd", "/etc/passwd", "crds/../../x", "crds/x", "other/a/b"):
        (tmp_path / "lock.json").write_text(json.dumps({"lockVersion": 1, "files": [{**entry, "path": path}]}))
        with pytest.raises(UpstreamError, match="expected a relative path"):
            load_lock(tmp_path / "lock.json")
    (tmp_path / "lock.json").write_text(json.dumps({"lockVersion": 1, "files": [{**entry, "path": "crds/a/b", "url": "file:///etc/passwd"}]}))
    with pytest.raises(UpstreamError, match="expected an https URL"):
        load_lock(tmp_path / "lock.json")


# -- cache location --------------------------------------------------------------------------------


def test_cache_root_env_then_xdg_then_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("GPUFLEET_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert upstream_cache.cache_root() == tmp_path / "explicit"
    monkeypatch.delenv("GPUFLEET_CACHE_DIR")
    assert upstream_cache.cache_root() == tmp_path / "xdg" / "gpufleet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert upstream_cache.cache_root() == tmp_path / "home" / ".cache" / "gpufleet"


# -- downloading -----------------------------------------------------------------------------------


def test_pull_downloads_verifies_and_stores_under_a_versioned_folder(tmp_path: Path, cache: Path, serve):
    site, _ = raw_site(tmp_path)
    _, lock = raw_site(tmp_path, base=serve(site))
    assert pulled_dir(lock) is None
    folder = pull(lock=lock)
    assert folder == cache / "upstream" / lock.id == pulled_dir(lock)
    for path, data in FILES.items():
        assert (folder / path).read_bytes() == data
    assert json.loads((folder / "upstream.lock.json").read_text())["files"][0]["path"] == sorted(FILES)[0]
    assert leftovers(cache) == sorted(["upstream", f"upstream/{lock.id}", *(f"upstream/{lock.id}/{p}" for p in
                                      ["upstream.lock.json", "crds", "charts", "crds/karpenter", "crds/kueue",
                                       "charts/keda", *FILES])])
    # Pulled once: the next pull answers the cache without a request (the server is gone).
    (site / "acme").rename(site / "gone")
    assert pull(lock=lock) == folder


def test_a_hash_mismatch_names_the_file_and_keeps_nothing(tmp_path: Path, cache: Path, serve):
    site, _ = raw_site(tmp_path)
    _, lock = raw_site(tmp_path, base=serve(site))
    (site / "acme" / "project1" / "v1.0.0" / "config" / "kueue.x-k8s.io_clusterqueues.yaml").write_bytes(b"tampered\n")
    with pytest.raises(UpstreamError) as raised:
        pull(lock=lock)
    message = str(raised.value)
    assert message.startswith("crds/kueue/kueue.x-k8s.io_clusterqueues.yaml: sha256 mismatch: expected ")
    assert hashlib.sha256(b"tampered\n").hexdigest() in message and "nothing was stored" in message
    assert leftovers(cache) == ["upstream"]  # the first file, already fetched, was not kept
    assert pulled_dir(lock) is None


def test_missing_files_size_cap_and_timeouts_fail_naming_the_file(tmp_path: Path, cache: Path, serve):
    site, _ = raw_site(tmp_path)
    _, lock = raw_site(tmp_path, base=serve(site))
    with pytest.raises(UpstreamError, match=r"^crds/karpenter/karpenter.sh_nodepools.yaml: larger than 10 bytes"):
        pull(lock=lock, max_bytes=10)
    (site / "acme" / "project2" / "v1.0.0" / "config" / "values.yaml").unlink()
    with pytest.raises(UpstreamError, match=r"^charts/keda/values.yaml: HTTP 404"):
        pull(lock=lock)
    _, slow = raw_site(tmp_path, base=serve(site, delay=3))
    started = time.monotonic()
    with pytest.raises(UpstreamError, match=r"^crds/karpenter/karpenter.sh_nodepools.yaml: .*timed out"):
        pull(lock=slow, timeout=0.5)
    assert time.monotonic() - started < 3
    assert leftovers(cache) == ["upstream"]


def test_cli_pull_from_an_http_mirror_of_the_shipped_lock(cache: Path, serve):
    if not SHARED_UPSTREAM.is_dir():
        pytest.skip(NO_MIRROR)
    result = CliRunner().invoke(app, ["schemas", "pull", "--from", serve(SHARED_UPSTREAM)])
    assert result.exit_code == 0, result.output
    lock = load_lock()
    assert result.stdout.strip() == f"{len(lock.files)} upstream files verified (sha256) in {cache / 'upstream' / lock.id}"
    for f in lock.files:
        assert hashlib.sha256((cache / "upstream" / lock.id / f.path).read_bytes()).hexdigest() == f.sha256


# -- a local mirror (../shared/upstream) -----------------------------------------------------------


def test_pull_copies_from_a_local_mirror_and_plan_finds_the_cache(cache: Path, monkeypatch: pytest.MonkeyPatch):
    if not SHARED_UPSTREAM.is_dir():
        pytest.skip(NO_MIRROR)
    result = CliRunner().invoke(app, ["schemas", "pull", "--from", str(SHARED_UPSTREAM)])
    assert result.exit_code == 0, result.output
    lock = load_lock()
    folder = cache / "upstream" / lock.id
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == sorted(
        [f.path for f in lock.files] + ["upstream.lock.json"])
    # Outside a checkout and without GPUFLEET_UPSTREAM_DIR, the schema checks use the pulled files.
    schema = _schema_module()
    monkeypatch.setenv("GPUFLEET_UPSTREAM_DIR", str(cache / "nowhere"))
    monkeypatch.setattr(schema, "_repo_root_from", lambda start: None)
    assert schema.upstream_dir() == folder
    where = CliRunner().invoke(app, ["schemas", "where"])
    assert (where.exit_code, where.stdout.strip()) == (0, str(folder))


def test_a_tampered_local_mirror_is_refused(tmp_path: Path, cache: Path):
    if not SHARED_UPSTREAM.is_dir():
        pytest.skip(NO_MIRROR)
    lock = load_lock()
    mirror = tmp_path / "mirror"
    for f in lock.files:
        (mirror / f.path).parent.mkdir(parents=True, exist_ok=True)
        (mirror / f.path).write_bytes((SHARED_UPSTREAM / f.path).read_bytes())
    victim = next(f for f in lock.files if f.path.endswith("karpenter.sh_nodepools.yaml"))
    (mirror / victim.path).write_bytes((mirror / victim.path).read_bytes().replace(b"maxLength: 63", b"maxLength: 64"))
    result = CliRunner().invoke(app, ["schemas", "pull", "--from", str(mirror)])
    assert result.exit_code == 1
    assert f"error: {victim.path} (from {mirror}): sha256 mismatch" in " ".join(result.stderr.split())
    assert leftovers(cache) == ["upstream"]


# -- without schemas -------------------------------------------------------------------------------


def test_without_schemas_plan_names_the_unchecked_kinds_and_the_fix(run, cache: Path, monkeypatch: pytest.MonkeyPatch):
    import pulumi_kubernetes as k8s

    from gpufleet.components import PriorityClasses
    from gpufleet.infra.offline import plan as plan_module

    def program() -> None:
        PriorityClasses("prio", {})
        for name in ("a100", "h100"):
            k8s.apiextensions.CustomResource(name, api_version="kueue.x-k8s.io/v1beta1", kind="ResourceFlavor",
                                             metadata={"name": name}, spec={"nodeLabels": {"pool": name}})

    recording = run(program)
    schema = _schema_module()
    monkeypatch.setenv("GPUFLEET_UPSTREAM_DIR", str(cache / "nowhere"))
    monkeypatch.setattr(schema, "_repo_root_from", lambda start: None)
    assert schema.upstream_dir() is None
    errors, note, rejections = plan_module._check_schemas(recording, "1.35")
    assert errors == [] and rejections == []
    assert note == ("3 of 5 Kubernetes objects schema-checked (Kubernetes 1.35; not checked, no upstream CRDs: "
                    "ResourceFlavor; run `gpufleet schemas pull` to check them); admission webhooks of KServe, "
                    "KubeRay, Kueue and LeaderWorkerSet checked; DRA claims validated")


def test_the_pull_timeout_default_is_the_cache_default():
    from gpufleet.infra import schemas_cli

    assert schemas_cli.TIMEOUT_SECONDS == upstream_cache.TIMEOUT_SECONDS
