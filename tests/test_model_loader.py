"""``ModelWeightsLoader``: the Job that fills a model-cache claim from the Hugging Face Hub. Its Job is
validated strictly by ``run``; the tests pin what makes it safe and idempotent: the claim mounted
read-write at the target path, the CLI installed exactly from a hash-checked lock and
``hf download --local-dir`` (which skips files already there), restricted security contexts,
system-node placement without GPU tolerations, requests equal to limits, bounded retries and
runtime with Pulumi waiting longer, a failed Job replaced by the next update, no TTL (Pulumi would
see the Job vanish), and the token from a Secret reference only."""

from __future__ import annotations

import re
from collections import Counter

import pulumi_kubernetes as k8s
import pytest

from gpufleet.components.gpu_scheduling import SYSTEM_NODE_SELECTOR
from gpufleet.components.model_loader import (
    DEFAULT_IMAGE, HF_CLI_LOCK, HF_HUB_VERSION, TYPE, ModelWeightsLoader, job_name_for, parse_source,
)

JOB = "kubernetes:batch/v1:Job"
BASE = {"namespace": "serving", "claim_name": "model-weights", "path": "meta-llama/Meta-Llama-3-8B-Instruct",
        "source": "hf://meta-llama/Meta-Llama-3-8B-Instruct@0e9e39f249a16976918f6564b8830bc894c89659"}


def loader(**overrides):
    def program():
        ModelWeightsLoader("llama-weights", {**BASE, **overrides})
    return program


def job(recording):
    return recording.one(JOB)


def pod(recording):
    return job(recording).inputs["spec"]["template"]["spec"]


def container(recording):
    (found,) = pod(recording)["containers"]
    return found


def env(recording):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(recording)["env"]}


def test_one_job_named_after_the_resource_in_the_claims_namespace(run):
    recording = run(loader())
    component = recording.one(TYPE)
    children = recording.children(component.urn)
    assert Counter(c.type for c in children) == {JOB: 1}
    (child,) = children
    assert child.name == "llama-weights-job"
    assert child.inputs["metadata"]["name"] == "llama-weights"
    assert child.inputs["metadata"]["namespace"] == "serving"
    # its name is fixed: a replacement (new revision or path) must delete the old Job first
    assert child.delete_before_replace


def test_downloads_the_pinned_revision_into_the_claim_path(run):
    recording = run(loader())
    c = container(recording)
    values = env(recording)
    assert values["HF_REPO"] == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert values["HF_REVISION"] == "0e9e39f249a16976918f6564b8830bc894c89659"
    assert values["TARGET_DIR"] == "/mnt/models/meta-llama/Meta-Llama-3-8B-Instruct"
    script = c["command"][-1]
    assert c["command"][:2] == ["/bin/sh", "-c"]
    # values reach the shell as variables, never spliced into its text
    assert 'hf download "$HF_REPO" --revision "$HF_REVISION" --local-dir "$TARGET_DIR"' in script
    assert "meta-llama" not in script and "huggingface" not in script.split("hf download")[0].lower()
    assert c["image"] == DEFAULT_IMAGE
    assert {"name": "model-weights", "mountPath": "/mnt/models"} in c["volumeMounts"]
    assert {"name": "model-weights", "persistentVolumeClaim": {"claimName": "model-weights"}} in pod(recording)["volumes"]


def test_the_cli_is_installed_exactly_from_the_hash_checked_lock(run):
    recording = run(loader())
    lines = container(recording)["command"][-1].splitlines()
    assert lines == [
        "set -eu",
        "printf '%s\\n' \"$HF_CLI_REQUIREMENTS\" > \"$HF_CLI_REQUIREMENTS_FILE\"",
        'pip install --quiet --no-cache-dir --disable-pip-version-check --require-hashes --no-deps '
        '--only-binary :all: --target "$HF_CLI_DIR" --requirement "$HF_CLI_REQUIREMENTS_FILE"',
        'export PYTHONPATH="$HF_CLI_DIR" PATH="$HF_CLI_DIR/bin:$PATH"',
        'exec hf download "$HF_REPO" --revision "$HF_REVISION" --local-dir "$TARGET_DIR"',
    ]
    values = env(recording)
    assert values["HF_CLI_DIR"] == "/tmp/hf-cli"
    # the requirements file is written to the /tmp emptyDir: the root filesystem is read-only
    assert values["HF_CLI_REQUIREMENTS_FILE"] == "/tmp/hf-cli-requirements.txt"
    assert values["HF_CLI_REQUIREMENTS"].split("\n") == list(HF_CLI_LOCK)


def test_the_lock_pins_every_package_to_a_version_and_its_wheel_hashes():
    pinned = {}
    for line in HF_CLI_LOCK:
        match = re.fullmatch(r"([a-z0-9-]+)==([\w.]+)((?: --hash=sha256:[0-9a-f]{64})+)", line)
        assert match, line
        pinned[match[1]] = (match[2], match[3].count("--hash"))
    assert pinned["huggingface-hub"] == (HF_HUB_VERSION, 1)
    # huggingface_hub's own requirements and theirs (httpx2 → httpcore2 → h11, anyio, idna, truststore)
    assert set(pinned) == {"huggingface-hub", "anyio", "click", "filelock", "fsspec", "h11", "hf-xet", "httpcore2",
                           "httpx2", "idna", "packaging", "pyyaml", "tqdm", "truststore", "typing-extensions"}
    # compiled wheels: one hash for linux x86_64, one for aarch64
    assert pinned["hf-xet"][1] == pinned["pyyaml"][1] == 2


def test_revision_defaults_to_main_and_the_cli_install_can_be_skipped(run):
    recording = run(loader(source="hf://BAAI/bge-large-en-v1.5", install_hf_cli=False,
                           image="ghcr.io/example/hf-cli:1.0"))
    values = env(recording)
    assert values["HF_REVISION"] == "main"
    assert "HF_CLI_REQUIREMENTS" not in values and container(recording)["image"] == "ghcr.io/example/hf-cli:1.0"
    script = container(recording)["command"][-1]
    assert "pip install" not in script and script.rstrip().endswith('--local-dir "$TARGET_DIR"')


def test_a_failed_job_is_replaced_by_the_next_update(run):
    # pulumi-kubernetes awaits an unready Job again on every update; a Failed one never gets ready
    recording = run(loader())
    assert job(recording).inputs["metadata"]["annotations"] == {"pulumi.com/replaceUnready": "true"}


@pytest.mark.parametrize(("deadline", "timeout"), [(None, "130m"), (3600, "70m"), (60, "11m")])
def test_pulumi_waits_longer_than_the_download_may_take(run, monkeypatch, deadline, timeout):
    seen = {}
    original = k8s.batch.v1.Job.__init__

    def spy(self, resource_name, *a, opts=None, **kw):
        seen[resource_name] = opts.custom_timeouts
        original(self, resource_name, *a, opts=opts, **kw)

    monkeypatch.setattr(k8s.batch.v1.Job, "__init__", spy)
    recording = run(loader(**({} if deadline is None else {"active_deadline_seconds": deadline})))
    (timeouts,) = seen.values()
    assert (timeouts.create, timeouts.update) == (timeout, timeout)
    assert timeouts.delete is None
    assert job(recording).inputs["spec"]["activeDeadlineSeconds"] == (deadline or 7200)


def test_restricted_security_and_no_api_credentials(run):
    recording = run(loader())
    spec = pod(recording)
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    security = container(recording)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["privileged"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    # writable scratch only where pip and the CLI write
    mounts = {m["mountPath"] for m in container(recording)["volumeMounts"]}
    assert {"/tmp", "/home/loader"} <= mounts


def test_runs_on_system_nodes_never_on_gpu_nodes(run):
    recording = run(loader())
    spec = pod(recording)
    assert spec["nodeSelector"] == SYSTEM_NODE_SELECTOR
    assert "tolerations" not in spec and "affinity" not in spec
    resources = container(recording)["resources"]
    assert resources["requests"] == resources["limits"] == {"cpu": "1", "memory": "2Gi"}
    assert not any("nvidia.com" in key for key in resources["limits"])


def test_bounded_retries_and_runtime_and_kept_after_completion(run):
    recording = run(loader(active_deadline_seconds=3600, backoff_limit=2))
    spec = job(recording).inputs["spec"]
    assert spec["activeDeadlineSeconds"] == 3600 and spec["backoffLimit"] == 2
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert "ttlSecondsAfterFinished" not in spec


def test_hf_token_only_from_a_secret_reference(run):
    recording = run(loader(hf_token_secret={"name": "hf-token"}))
    token = next(e for e in container(recording)["env"] if e["name"] == "HF_TOKEN")
    assert token == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}}}
    assert "HF_TOKEN" not in env(run(loader()))


@pytest.mark.parametrize("overrides, message", [
    ({"source": "s3://bucket/llama"}, r"source must be hf://<org>/<model>\[@<revision>\]"),
    ({"source": "hf://llama"}, r"source must name a Hugging Face repository"),
    ({"source": "hf://meta-llama/Llama@"}, r"source has an invalid revision"),
    ({"source": "hf://meta-llama/Llama@../x"}, r"source has an invalid revision"),
    ({"path": "../etc"}, r"path must be a relative directory inside the claim"),
    ({"path": "/"}, r"path must be a relative directory inside the claim"),
    ({"claim_name": "Model_Weights"}, r"claim_name is not a claim name"),
    ({"namespace": None}, r"namespace is required"),
    ({"job_name": "x" * 64}, r"job_name is not a Job name"),
    ({"hf_token_secret": {"key": "token"}}, r"hf_token_secret.name is required \(a Secret reference"),
    ({"active_deadline_seconds": 10}, r"active_deadline_seconds must be an integer from 60"),
    ({"backoff_limit": -1}, r"backoff_limit must be an integer from 0"),
    ({"memory": "lots"}, r"memory must be a Kubernetes quantity"),
    ({"install_hf_cli": "yes"}, r"install_hf_cli must be bool"),
])
def test_errors_name_the_field(overrides, message):
    with pytest.raises((ValueError, TypeError), match=rf"^{TYPE}: {message}"):
        ModelWeightsLoader("llama-weights", {**BASE, **overrides})


def test_job_names_fit_a_label_value():
    assert job_name_for("llama", "canary") == "llama-canary-weights"
    long = job_name_for("a" * 45, "b" * 16)
    assert len(long) <= 63 and long == job_name_for("a" * 45, "b" * 16)
    assert long != job_name_for("a" * 45, "c" * 16)


def test_parse_source():
    assert parse_source("hf://Qwen/Qwen2.5-0.5B-Instruct").revision == "main"
    assert parse_source("hf://Qwen/Qwen2.5-0.5B-Instruct@v1.0").revision == "v1.0"
