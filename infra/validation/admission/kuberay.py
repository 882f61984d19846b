"""What KubeRay v1.7.0 refuses for ``ray.io`` RayCluster, RayJob and RayService objects.

Ported from ``ray-operator/controllers/ray/utils/validation.go`` (the code index holds it at a commit
near v1.7.0) with the name limits of ``ray-operator/controllers/ray/utils/constant.go``. The operator
runs these checks before it reconciles an object (and its validating webhook, when installed, on
create): an object that fails them is never reconciled, so it is modelled as rejected.

Checks behind feature gates that are off by default (``RayJobDeletionPolicy``: worker-group
``suspend`` without autoscaling, ``deletionStrategy``) are not modelled. Like upstream, each validator
stops at the first error.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import yaml

from gpufleet.infra.validation.admission._k8s import (
    annotations_of,
    dig,
    env_var,
    integer,
    is_dns1035_label,
    is_qualified_name,
    is_valid_label_value,
    mapping,
    name_of,
    seq,
)

SOURCE = "KubeRay"

# constant.go
MAX_RAY_CLUSTER_NAME = 53  # MaxRayClusterNameLength: 63 - len("-serve-svc")
MAX_RAY_SERVICE_NAME = MAX_RAY_CLUSTER_NAME - 6  # MaxRayServiceNameLength
MAX_RAY_JOB_NAME = MAX_RAY_CLUSTER_NAME - 6  # MaxRayJobNameLength
_FT_ENABLED = "ray.io/ft-enabled"  # RayFTEnabledAnnotationKey
_EXTERNAL_STORAGE_NS = "ray.io/external-storage-namespace"  # RayExternalStorageNSAnnotationKey
_INITIALIZING_TIMEOUT = "ray.io/initializing-timeout"  # RayServiceInitializingTimeoutAnnotation
_CLUSTER_SELECTOR_KEY = "ray.io/cluster"  # RayJobClusterSelectorKey
_RAY_REDIS_ADDRESS = "RAY_REDIS_ADDRESS"
_REDIS_PASSWORD = "REDIS_PASSWORD"
_REDIS_USERNAME = "REDIS_USERNAME"
_AUTOSCALER_V2_ENV = "RAY_enable_autoscaler_v2"
_UPGRADE_TYPES = ("NewClusterWithIncrementalUpgrade", "NewCluster", "None")


class _Reject(Exception):
    pass


def _fail(message: str) -> None:
    raise _Reject(message)


def _run(check: Any, obj: Mapping[str, Any]) -> list[str]:
    try:
        check(obj)
    except _Reject as rejection:
        return [f"{SOURCE}: {rejection}"]
    return []


def validate_ray_cluster(obj: Mapping[str, Any]) -> list[str]:
    """raycluster_controller: ValidateRayClusterMetadata, then ValidateRayClusterSpec."""

    def check(o: Mapping[str, Any]) -> None:
        _validate_metadata("RayCluster", name_of(o), MAX_RAY_CLUSTER_NAME, "")
        _validate_cluster_spec(mapping(o.get("spec")), annotations_of(o))

    return _run(check, obj)


def validate_ray_job(obj: Mapping[str, Any]) -> list[str]:
    """rayjob_controller: ValidateRayJobMetadata, then ValidateRayJobSpec."""

    def check(o: Mapping[str, Any]) -> None:
        _validate_metadata("RayJob", name_of(o), MAX_RAY_JOB_NAME, "The RayJob metadata is invalid: ")
        _validate_job_spec(o)

    return _run(check, obj)


def validate_ray_service(obj: Mapping[str, Any]) -> list[str]:
    """rayservice_controller: ValidateRayServiceMetadata, then ValidateRayServiceSpec."""

    def check(o: Mapping[str, Any]) -> None:
        _validate_metadata("RayService", name_of(o), MAX_RAY_SERVICE_NAME, "")
        _validate_initializing_timeout(annotations_of(o))
        _validate_service_spec(o)

    return _run(check, obj)


def _validate_metadata(kind: str, name: str, limit: int, prefix: str) -> None:
    # validation.go ValidateRayClusterMetadata / ValidateRayJobMetadata / ValidateRayServiceMetadata
    if len(name) > limit:
        _fail(f"{prefix}{kind} name should be no more than {limit} characters")
    errs = is_dns1035_label(name)
    if errs:
        _fail(f"{prefix}{kind} name should be a valid DNS1035 label: [{' '.join(errs)}]")


_GO_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _go_duration_seconds(text: str) -> float | None:
    if text == "0":
        return 0.0
    if not _GO_DURATION.match(text):
        return None
    sign = -1.0 if text.startswith("-") else 1.0
    total = sum(float(n) * _DURATION_UNITS[u] for n, _, u in re.findall(r"(\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text))
    return sign * total


def _validate_initializing_timeout(annotations: Mapping[str, Any]) -> None:
    # validation.go validateInitializingTimeout (wrapped by ValidateRayServiceMetadata)
    value = annotations.get(_INITIALIZING_TIMEOUT)
    if not isinstance(value, str) or value == "":
        return
    prefix = "RayService annotations is invalid: "
    seconds = _go_duration_seconds(value)
    if seconds is not None:
        if seconds <= 0:
            _fail(f"{prefix}annotation {_INITIALIZING_TIMEOUT} must be a positive duration, got: {value}")
        return
    if re.fullmatch(r"[+-]?\d+", value):
        if int(value) <= 0:
            _fail(f"{prefix}annotation {_INITIALIZING_TIMEOUT} must be a positive integer (seconds), got: {value}")
        return
    _fail(
        f"{prefix}annotation {_INITIALIZING_TIMEOUT} has invalid format: {value}. Expected Go duration format "
        "(e.g., '5m', '1h') or positive integer seconds"
    )


def _containers(group: Mapping[str, Any]) -> list[Any]:
    return seq(dig(group, "template", "spec", "containers"))


def _validate_group_resources(group_name: str, group: Mapping[str, Any]) -> None:
    # validation.go validateRayGroupResources
    params = mapping(group.get("rayStartParams"))
    if any(params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")) and mapping(group.get("resources")):
        _fail(
            f"resource fields should not be set in both rayStartParams and Resources for {group_name} group; "
            "please use only one"
        )


def _validate_group_labels(group_name: str, group: Mapping[str, Any]) -> None:
    # validation.go validateRayGroupLabels
    if "labels" in mapping(group.get("rayStartParams")):
        _fail(
            f"rayStartParams['labels'] is not supported for {group_name} group; please use the top-level Labels "
            "field instead"
        )
    errs: list[str] = []
    for key, value in mapping(group.get("labels")).items():
        for err in is_qualified_name(str(key)):
            errs.append(f"invalid label key for {group_name} group: '{key}', error: {err}")
        for err in is_valid_label_value(str(value)):
            errs.append(f"invalid label value for key '{key}' in {group_name} group: '{value}', error: {err}")
    if errs:
        _fail("; ".join(errs))


def _autoscaling_enabled(spec: Mapping[str, Any]) -> bool:
    # util.go IsAutoscalingEnabled
    return spec.get("enableInTreeAutoscaling") is True


def _validate_cluster_spec(spec: Mapping[str, Any], annotations: Mapping[str, Any]) -> None:
    # validation.go ValidateRayClusterSpec
    head = mapping(spec.get("headGroupSpec"))
    head_containers = _containers(head)
    if not head_containers:
        _fail("headGroupSpec should have at least one container")
    _validate_group_resources("Head", head)
    _validate_group_labels("Head", head)
    workers = [mapping(w) for w in seq(spec.get("workerGroupSpecs"))]
    for worker in workers:
        if not _containers(worker):
            _fail("workerGroupSpec should have at least one container")
        _validate_group_resources(str(worker.get("groupName", "")), worker)
        _validate_group_labels(str(worker.get("groupName", "")), worker)

    gcs_ft = spec.get("gcsFaultToleranceOptions")
    if annotations.get(_FT_ENABLED) and gcs_ft is not None:
        _fail(
            f"{_FT_ENABLED} annotation and GcsFaultToleranceOptions are both set. Please use only "
            "GcsFaultToleranceOptions to configure GCS fault tolerance"
        )
    head_container = head_containers[0]
    # util.go IsGCSFaultToleranceEnabled
    ft_enabled = gcs_ft is not None or str(annotations.get(_FT_ENABLED, "")).lower() == "true"
    if not ft_enabled and env_var(head_container, _RAY_REDIS_ADDRESS)[0]:
        _fail(
            f"{_RAY_REDIS_ADDRESS} is set which implicitly enables GCS fault tolerance, but GcsFaultToleranceOptions "
            "is not set. Please set GcsFaultToleranceOptions to enable GCS fault tolerance"
        )
    params = mapping(head.get("rayStartParams"))
    if gcs_ft is not None:
        if params.get("redis-password"):
            _fail(
                "cannot set `redis-password` in rayStartParams when GcsFaultToleranceOptions is enabled - use "
                "GcsFaultToleranceOptions.RedisPassword instead"
            )
        if env_var(head_container, _REDIS_PASSWORD)[0]:
            _fail(
                "cannot set `REDIS_PASSWORD` env var in head Pod when GcsFaultToleranceOptions is enabled - use "
                "GcsFaultToleranceOptions.RedisPassword instead"
            )
        if env_var(head_container, _RAY_REDIS_ADDRESS)[0]:
            _fail(
                "cannot set `RAY_REDIS_ADDRESS` env var in head Pod when GcsFaultToleranceOptions is enabled - use "
                "GcsFaultToleranceOptions.RedisAddress instead"
            )
        if annotations.get(_EXTERNAL_STORAGE_NS):
            _fail(
                "cannot set `ray.io/external-storage-namespace` annotation when GcsFaultToleranceOptions is "
                "enabled - use GcsFaultToleranceOptions.ExternalStorageNamespace instead"
            )
    if params.get("redis-username") or env_var(head_container, _REDIS_USERNAME)[0]:
        _fail(
            "cannot set redis username in rayStartParams or environment variables - use "
            "GcsFaultToleranceOptions.RedisUsername instead"
        )

    v2_set, v2_value = env_var(head_container, _AUTOSCALER_V2_ENV)
    if not _autoscaling_enabled(spec):
        if v2_set and v2_value in ("1", "true"):
            _fail(
                f"environment variable {_AUTOSCALER_V2_ENV} cannot be set to '{v2_value}' when "
                "enableInTreeAutoscaling is false. Please set enableInTreeAutoscaling: true to use autoscaler v2"
            )
    else:
        for worker in workers:
            if worker.get("suspend") is True:
                _fail(f"worker group {worker.get('groupName', '')} cannot be suspended with Autoscaler enabled")
        options_version = dig(spec, "autoscalerOptions", "version")
        if options_version is not None and v2_set:
            _fail(
                f"both .spec.autoscalerOptions.version and head Pod env var {_AUTOSCALER_V2_ENV} are set, please "
                "only use the former"
            )
        # util.go IsAutoscalingV2Enabled
        if options_version == "v2" or (v2_set and v2_value in ("1", "true")):
            policy = dig(head, "template", "spec", "restartPolicy")
            if policy not in (None, "", "Never"):
                _fail("restartPolicy for head Pod should be Never or unset when using autoscaler V2")
            for worker in workers:
                policy = dig(worker, "template", "spec", "restartPolicy")
                if policy not in (None, "", "Never"):
                    _fail(
                        f"restartPolicy for worker group {worker.get('groupName', '')} should be Never or unset "
                        "when using autoscaler V2"
                    )

    # util.go IsAuthEnabled: authOptions.mode == token needs Ray >= 2.52.0
    if dig(spec, "authOptions", "mode") == "token":
        ray_version = spec.get("rayVersion")
        if not ray_version:
            _fail("authOptions.mode is 'token' but RayVersion was not specified. Ray version 2.52.0 or later is required")
        parsed = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", str(ray_version))
        if not parsed:
            _fail(f"authOptions.mode is 'token' but RayVersion format is invalid: {ray_version}")
        elif tuple(int(p or 0) for p in parsed.groups()) < (2, 52, 0):
            _fail(f"authOptions.mode is 'token' but minimum Ray version is 2.52.0, got {ray_version}")


def _validate_job_spec(job: Mapping[str, Any]) -> None:
    # validation.go ValidateRayJobSpec (and validateDeletionConfiguration's first check)
    spec = mapping(job.get("spec"))
    invalid = "The RayJob spec is invalid: "
    suspend = spec.get("suspend") is True
    shutdown = spec.get("shutdownAfterJobFinishes") is True
    ttl = integer(spec.get("ttlSecondsAfterFinished")) or 0
    if suspend and not shutdown:
        _fail(f"{invalid}a RayJob with shutdownAfterJobFinishes set to false is not allowed to be suspended")
    if ttl < 0:
        _fail(f"{invalid}TTLSecondsAfterFinished must be a non-negative integer")
    if not shutdown and ttl > 0:
        _fail(f"{invalid}a RayJob with shutdownAfterJobFinishes set to false cannot have TTLSecondsAfterFinished")
    selector = mapping(spec.get("clusterSelector"))
    cluster_spec = spec.get("rayClusterSpec")
    mode = spec.get("submissionMode")
    if suspend and selector:
        _fail(f"{invalid}the ClusterSelector mode doesn't support the suspend operation")
    if not isinstance(cluster_spec, Mapping) and not selector:
        _fail(f"{invalid}one of RayClusterSpec or ClusterSelector must be set")
    if selector:
        if not selector.get(_CLUSTER_SELECTOR_KEY):
            _fail("cluster name in ClusterSelector should not be empty")
        if mode == "SidecarMode":
            _fail("ClusterSelector is not supported in SidecarMode")
    backoff = integer(spec.get("backoffLimit"))
    if mode == "InteractiveMode" and backoff is not None and backoff > 0:
        _fail(f"{invalid}BackoffLimit is incompatible with InteractiveMode")
    if mode == "SidecarMode":
        if spec.get("submitterPodTemplate") is not None:
            _fail("Currently, SidecarMode doesn't support SubmitterPodTemplate")
        if spec.get("submitterConfig") is not None:
            _fail("Currently, SidecarMode doesn't support SubmitterConfig")
        policy = dig(cluster_spec, "headGroupSpec", "template", "spec", "restartPolicy")
        if policy not in (None, "", "Never"):
            _fail("restartPolicy for head Pod should be Never or unset when using SidecarMode")
    if isinstance(cluster_spec, Mapping):
        try:
            _validate_cluster_spec(cluster_spec, annotations_of(job))
        except _Reject as rejection:
            _fail(f"{invalid}{rejection}")
    # dashboardclient.UnmarshalRuntimeEnvYAML: runtimeEnvYAML must be a YAML mapping
    runtime_env = spec.get("runtimeEnvYAML")
    if isinstance(runtime_env, str) and runtime_env.strip():
        try:
            parsed = yaml.safe_load(runtime_env)
        except yaml.YAMLError as error:
            _fail(f"failed to unmarshal RuntimeEnvYAML: {runtime_env}: {str(error).splitlines()[0]}")
        else:
            if parsed is not None and not isinstance(parsed, dict):
                _fail(f"failed to unmarshal RuntimeEnvYAML: {runtime_env}: not a YAML mapping")
    deadline = integer(spec.get("activeDeadlineSeconds"))
    if deadline is not None and deadline <= 0:
        _fail(f"{invalid}activeDeadlineSeconds must be a positive integer")
    if backoff is not None and backoff < 0:
        _fail(f"{invalid}backoffLimit must be a positive integer")


def _validate_service_spec(service: Mapping[str, Any]) -> None:
    # validation.go ValidateRayServiceSpec / ValidateClusterUpgradeOptions
    spec = mapping(service.get("spec"))
    cluster_spec = mapping(spec.get("rayClusterConfig"))
    _validate_cluster_spec(cluster_spec, annotations_of(service))
    if dig(cluster_spec, "headGroupSpec", "headService", "metadata", "name"):
        _fail("spec.rayClusterConfig.headGroupSpec.headService.metadata.name should not be set")
    upgrade_type = dig(spec, "upgradeStrategy", "type")
    if upgrade_type is not None and upgrade_type not in _UPGRADE_TYPES:
        _fail(
            f"Spec.UpgradeStrategy.Type value {upgrade_type} is invalid, valid options are "
            "NewClusterWithIncrementalUpgrade, NewCluster, or None"
        )
    delay = integer(spec.get("rayClusterDeletionDelaySeconds"))
    if delay is not None and delay < 0:
        _fail(f"Spec.RayClusterDeletionDelaySeconds should be a non-negative integer, got {delay}")
    if upgrade_type == "NewClusterWithIncrementalUpgrade":
        if not _autoscaling_enabled(cluster_spec):
            _fail("Ray Autoscaler is required for NewClusterWithIncrementalUpgrade")
        options = dig(spec, "upgradeStrategy", "clusterUpgradeOptions")
        if not isinstance(options, Mapping):
            _fail("ClusterUpgradeOptions are required for NewClusterWithIncrementalUpgrade")
        surge = integer(options.get("maxSurgePercent"))
        if surge is not None and not 0 <= surge <= 100:
            _fail("maxSurgePercent must be between 0 and 100")
        step = integer(options.get("stepSizePercent"))
        if step is None or not 0 <= step <= 100:
            _fail("stepSizePercent must be between 0 and 100")
        interval = integer(options.get("intervalSeconds"))
        if interval is None or interval <= 0:
            _fail("intervalSeconds must be greater than 0")
        if not options.get("gatewayClassName"):
            _fail("gatewayClassName is required for NewClusterWithIncrementalUpgrade")
