"""What KServe v0.20.0's validating webhook (``inferenceservice.kserve-webhook-server.validator``) rejects
when an ``serving.kserve.io`` InferenceService is created.

Ported from ``pkg/apis/serving/v1beta1/inference_service_validation.go`` (``validateInferenceService`` and
the functions it calls), ``component.go`` (``ComponentExtensionSpec.Validate``,
``validateExactlyOneImplementation``), ``predictor.go`` (``PredictorSpec.GetImplementations``),
``predictor_custom.go`` (``CustomPredictor.GetStorageUri``/``Validate``) and ``pkg/validation/env_policy.go``.
The code index holds those files at a commit near v0.20.0, not at the tag itself; the multi-variant
canary check (``spec.canary``, new in v0.20.0) is not in the stored source and follows the v0.20.0
behaviour of ``validateCanarySpecs`` (noted next to it).

Like upstream, validation stops at the first error: :func:`validate` returns at most one reason.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping

from gpufleet.infra.validation.admission._k8s import annotations_of, dig, env_var, integer, mapping, name_of, seq

SOURCE = "KServe admission webhook"

# inference_service_validation.go: IsvcNameFmt / IsvcRegexp
_ISVC_NAME_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_ISVC_NAME = re.compile(f"^{_ISVC_NAME_FMT}$")

# pkg/constants/constants.go
_DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
_AUTOSCALER_CLASS = "serving.kserve.io/autoscalerClass"
_KNATIVE_CLASS = "autoscaling.knative.dev/class"
_KNATIVE_HPA = "hpa.autoscaling.knative.dev"
_ALLOWED_AUTOSCALER_CLASSES = ("hpa", "external", "keda", "none")  # AutoscalerAllowedClassList
_HPA_METRICS = ("cpu", "memory")  # AutoscalerAllowedHPAMetricsList
_KPA_METRICS = ("concurrency", "rps")  # AutoscalerAllowedKPAMetricsList
_PREDICTOR_CONTAINER = "kserve-container"  # InferenceServiceContainerName
_TRANSFORMER_CONTAINER = "transformer-container"  # TransformerContainerName
_STORAGE_URI_ENV = "STORAGE_URI"  # CustomSpecStorageUriEnvVarKey
_PROTOCOL_ENV = "PROTOCOL"  # CustomSpecProtocolEnvVarKey
_BLOCKED_ENV = ("PYTHONPATH",)  # pkg/validation/env_policy.go DefaultBlockedEnvVars
_DEFAULT_MIN_REPLICAS = 1  # constants.DefaultMinReplicas
_LOGGER_MODES = ("all", "request", "response")

# predictor.go PredictorSpec: the framework fields, in GetImplementations order and in field order.
_FRAMEWORKS = ("sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface", "pmml",
               "lightgbm", "paddle", "model")
# component.go ExactlyOneErrorFor lists every PredictorSpec field but the last (ComponentExtensionSpec).
_PREDICTOR_FIELDS = ("SKLearn, XGBoost, Tensorflow, PyTorch, Triton, ONNX, HuggingFace, PMML, LightGBM, Paddle, "
                     "Model, StorageUris, WorkerSpec, PodSpec")

# Storage URI schemes the storage initializer understands (pkg/utils SupportedStorageURIPrefixList at
# v0.20.0, hf:// included) and component.go's UnsupportedStorageURIFormatError.
_STORAGE_PREFIXES = ("gs://", "s3://", "pvc://", "file://", "https://", "http://", "hdfs://", "webhdfs://",
                     "oci://", "hf://")
_AZURE_BLOB = re.compile(r"https://(.+?).blob.core.windows.net/(.+)")


class _Reject(Exception):
    pass


def validate(isvc: Mapping[str, Any]) -> list[str]:
    """[] when the webhook admits ``isvc``; else ``[reason]`` (upstream returns the first error)."""
    try:
        _validate_inference_service(isvc)
    except _Reject as rejection:
        return [f"{SOURCE}: {rejection}"]
    return []


def _fail(message: str) -> None:
    raise _Reject(message)


def _validate_inference_service(isvc: Mapping[str, Any]) -> None:
    # inference_service_validation.go validateInferenceService, in upstream order.
    name = name_of(isvc)
    annotations = annotations_of(isvc)
    spec = mapping(isvc.get("spec"))
    predictor = mapping(spec.get("predictor"))
    _validate_name(name)
    _validate_autoscaler_class(annotations)
    _validate_blocked_env_vars(name, spec)
    _validate_collocation_storage_uri(predictor)
    _validate_predictor_framework_names(predictor)
    _validate_multiple_storage_uris(spec)
    components: list[tuple[str, Mapping[str, Any], Callable[[Mapping[str, Any]], list[_Impl]]]] = [
        ("PredictorSpec", predictor, _predictor_implementations)
    ]
    for field, kind in (("transformer", "TransformerSpec"), ("explainer", "ExplainerSpec")):
        if isinstance(spec.get(field), Mapping):
            components.append((kind, spec[field], _other_implementations))
    for kind, component, implementations in components:
        impls = implementations(component)
        if len(impls) != 1:  # component.go validateExactlyOneImplementation / ExactlyOneErrorFor
            fields = _PREDICTOR_FIELDS if kind == "PredictorSpec" else "the implementations"
            _fail(f"exactly one of [{fields}] must be specified in {kind}")
        impls[0].validate()
        _validate_component_extension(component)
        _validate_autoscaling_extension(annotations, component)
    _validate_canary(spec, predictor)


def _validate_name(name: str) -> None:
    # inference_service_validation.go validateInferenceServiceName; component.go InvalidISVCNameFormatError
    if not _ISVC_NAME.match(name):
        _fail(
            f'the InferenceService "{name}" is invalid: a InferenceService name must consist of lower case '
            "alphanumeric characters or '-', and must start with alphabetical character. (e.g. \"my-name\" or "
            f"\"abc-123\", regex used for validation is '{_ISVC_NAME_FMT}')"
        )


def _validate_autoscaler_class(annotations: Mapping[str, Any]) -> None:
    # inference_service_validation.go validateInferenceServiceAutoscaler
    if _AUTOSCALER_CLASS in annotations and annotations[_AUTOSCALER_CLASS] not in _ALLOWED_AUTOSCALER_CLASSES:
        _fail(f"[{annotations[_AUTOSCALER_CLASS]}] is not a supported autoscaler class type")


def _validate_blocked_env_vars(name: str, spec: Mapping[str, Any]) -> None:
    # inference_service_validation.go validateBlockedEnvVars -> pkg/validation/env_policy.go ValidateBlockedEnvVars
    predictor = mapping(spec.get("predictor"))
    groups = [seq(predictor.get("containers")), seq(predictor.get("initContainers"))]
    framework = next((f for f in _FRAMEWORKS if isinstance(predictor.get(f), Mapping)), None)
    if framework:
        groups.append([predictor[framework]])
    worker = predictor.get("workerSpec")
    if isinstance(worker, Mapping):
        groups += [seq(worker.get("containers")), seq(worker.get("initContainers"))]
    for field in ("transformer", "explainer"):
        component = spec.get(field)
        if isinstance(component, Mapping):
            groups += [seq(component.get("containers")), seq(component.get("initContainers"))]
    for containers in groups:
        for container in containers:
            for env in seq(mapping(container).get("env")):
                if mapping(env).get("name") in _BLOCKED_ENV:
                    _fail(
                        f'the InferenceService "{name}" is invalid: setting {env["name"]} in container '
                        f'"{mapping(container).get("name", "")}" is not allowed for security reasons'
                    )


def _validate_collocation_storage_uri(predictor: Mapping[str, Any]) -> None:
    # inference_service_validation.go validateCollocationStorageURI (StorageUriPresentInTransformerError)
    for container in seq(predictor.get("containers")):
        if mapping(container).get("name") == _TRANSFORMER_CONTAINER:
            if env_var(container, _STORAGE_URI_ENV)[0]:
                _fail("storage uri should not be specified in transformer container")
            break


def _validate_predictor_framework_names(predictor: Mapping[str, Any]) -> None:
    # inference_service_validation.go validatePredictor
    for framework in _FRAMEWORKS:
        if mapping(predictor.get(framework)).get("name"):
            _fail("the 'name' field is not allowed in standard predictor")


class _Impl:
    """A component implementation (``ComponentImplementation``): its storage URI and ``Validate``."""

    def __init__(self, spec: Mapping[str, Any], custom: bool):
        self.spec = spec
        self.custom = custom

    def storage_uri(self) -> str | None:
        if not self.custom:
            # predictor.go PredictorExtensionSpec.GetStorageUri
            value = self.spec.get("storageUri")
            return value if isinstance(value, str) else None
        # predictor_custom.go CustomPredictor.GetStorageUri: the STORAGE_URI env of kserve-container
        for container in seq(self.spec.get("containers")):
            if mapping(container).get("name") == _PREDICTOR_CONTAINER:
                exists, value = env_var(container, _STORAGE_URI_ENV)
                return value if exists else None
        return None

    def validate(self) -> None:
        if self.custom:
            # predictor_custom.go CustomPredictor.validateCustomProtocol (on the first container). Upstream
            # formats InvalidProtocol with its two arguments swapped; the message is reproduced as sent.
            first = seq(self.spec.get("containers"))[:1]
            exists, value = env_var(first[0], _PROTOCOL_ENV) if first else (False, "")
            if exists and value not in ("v1", "v2"):
                _fail(f"invalid protocol v1, v2. Must be one of [{value}]")
        uri = self.storage_uri()
        if uri:
            _validate_storage_uri(uri)


def _validate_storage_uri(uri: str) -> None:
    # The storage initializer's scheme check (pkg/utils ValidateStorageURI with component.go's
    # UnsupportedStorageURIFormatError): an unsupported scheme never becomes ready, modelled as rejected.
    if "://" not in uri or uri.startswith(_STORAGE_PREFIXES) or _AZURE_BLOB.match(uri):
        return
    _fail(
        f"storageUri, must be one of: [{', '.join(_STORAGE_PREFIXES)}] or match "
        f"https://{{}}.blob.core.windows.net/{{}}/{{}} or be an absolute or relative local path. StorageUri [{uri}] "
        "is not supported"
    )


def _predictor_implementations(predictor: Mapping[str, Any]) -> list[_Impl]:
    # predictor.go PredictorSpec.GetImplementations
    impls = [_Impl(predictor[f], custom=False) for f in _FRAMEWORKS if isinstance(predictor.get(f), Mapping)]
    containers = seq(predictor.get("containers"))
    if containers:
        for container in containers:
            if mapping(container).get("name") == _PREDICTOR_CONTAINER:
                impls.append(_Impl(predictor, custom=True))
        if not impls:
            impls.append(_Impl(predictor, custom=True))  # the first container is the predictor container
    return impls


_OTHER_IMPLEMENTATIONS = ("alibi", "art")


def _other_implementations(component: Mapping[str, Any]) -> list[_Impl]:
    # transformer.go / explainer.go GetImplementations: a custom pod spec, or (explainer) ART.
    impls = [_Impl(component[f], custom=False) for f in _OTHER_IMPLEMENTATIONS if isinstance(component.get(f), Mapping)]
    if seq(component.get("containers")):
        impls.append(_Impl(component, custom=True))
    return impls


def _validate_component_extension(component: Mapping[str, Any]) -> None:
    # component.go ComponentExtensionSpec.Validate: validateContainerConcurrency, validateReplicas, validateLogger
    concurrency = integer(component.get("containerConcurrency"))
    if concurrency is not None and concurrency < 0:
        _fail("parallelism cannot be less than 0")
    min_replicas = integer(component.get("minReplicas"))
    min_replicas = _DEFAULT_MIN_REPLICAS if min_replicas is None else min_replicas
    max_replicas = integer(component.get("maxReplicas")) or 0
    if min_replicas < 0:
        _fail("'MinReplicas' cannot be less than 0")
    if max_replicas < 0:
        _fail("'MaxReplicas' cannot be less than 0")
    if min_replicas > max_replicas and max_replicas != 0:
        _fail("'MinReplicas' cannot be greater than MaxReplicas")
    logger = component.get("logger")
    if isinstance(logger, Mapping) and logger.get("mode") not in _LOGGER_MODES:
        _fail("invalid logger type")


def _validate_autoscaling_extension(annotations: Mapping[str, Any], component: Mapping[str, Any]) -> None:
    # inference_service_validation.go validateAutoScalingCompExtension: the switch is on the annotation as
    # written; only the literal "Standard" takes the Standard branch, anything else (Serverless, a missing
    # annotation) is validated for Knative.
    if annotations.get(_DEPLOYMENT_MODE) == "Standard":
        autoscaler = annotations.get(_AUTOSCALER_CLASS)
        if autoscaler == "hpa":
            _validate_hpa_extension(component)
        elif autoscaler == "keda":
            _validate_keda_extension(component)
        return
    if annotations.get(_KNATIVE_CLASS) == _KNATIVE_HPA:
        _validate_hpa_extension(component)
        return
    _validate_kpa_extension(component)


def _validate_hpa_extension(component: Mapping[str, Any]) -> None:
    # inference_service_validation.go validateScalingHPACompExtension
    metric = component.get("scaleMetric") or "cpu"
    if metric not in _HPA_METRICS:
        _fail(f"[{metric}] is not a supported metric")
    target = integer(component.get("scaleTarget"))
    if target is not None:
        if (metric == "cpu" and target < 1) or target > 100:
            _fail("the target utilization percentage should be a [1-100] integer")
        if metric == "memory" and target < 1:
            _fail("the target memory should be greater than 1 MiB")
    for spec in seq(dig(component, "autoScaling", "metrics")):
        kind = mapping(spec).get("type")
        if kind == "Resource":
            if not isinstance(mapping(spec).get("resource"), Mapping):
                _fail("metricSpec.Resource is not set for resource metric source type")
        else:
            _fail(f"invalid HPA metric source type with value [{kind}],valid metric source types are Resource")


def _validate_keda_extension(component: Mapping[str, Any]) -> None:
    # inference_service_validation.go validateScalingKedaCompExtension
    if component.get("scaleMetric") is not None:
        _fail("ScaleMetric is not supported for KEDA")
    for spec in seq(dig(component, "autoScaling", "metrics")):
        spec = mapping(spec)
        kind = spec.get("type")
        if kind == "Resource":
            resource = spec.get("resource")
            if not isinstance(resource, Mapping):
                _fail("metricSpec.Resource is not set for resource metric source type")
            target = mapping(resource.get("target"))
            if resource.get("name") == "cpu":
                if target.get("type") != "Utilization":
                    _fail("the cpu target value type should be Utilization")
            elif resource.get("name") == "memory":
                if target.get("type") not in ("AverageValue", "Utilization"):
                    _fail("the memory target value type should be AverageValue or Utilization")
            else:
                _fail(f"resource type {resource.get('name')} is not supported")
            _validate_scale_target(target)
        elif kind in ("External", "PodMetric"):
            key = "external" if kind == "External" else "podmetric"
            source = spec.get(key)
            if not isinstance(source, Mapping):
                field = "External" if kind == "External" else "PodMetric"
                _fail(f"metricSpec.{field} is not set for {'external' if kind == 'External' else 'pod'} metric source type")
            if not dig(source, "metric", "query"):
                _fail("the query should not be empty")
            if dig(source, "target", "value") is None:
                _fail("the target threshold value should not be empty")
            _validate_scale_target(mapping(source.get("target")))
        else:
            _fail(f"unknown KEDA metric type with value [{kind}].Valid types are Resource,External,PodMetric")


def _validate_scale_target(target: Mapping[str, Any]) -> None:
    # inference_service_validation.go validateScaleTarget / validateTargetUtilization
    kind = target.get("type")
    if kind == "Utilization":
        value = integer(target.get("averageUtilization"))
        if value is None:
            _fail("the AverageUtilization type should be set")
        elif not 1 <= value <= 100:
            _fail("the target utilization percentage should be a [1-100] integer")
    elif kind == "AverageValue" and target.get("averageValue") is None:
        _fail("the AverageValue type should be set")
    elif kind == "Value" and target.get("value") is None:
        _fail("the Value type should be set")


def _validate_kpa_extension(component: Mapping[str, Any]) -> None:
    # inference_service_validation.go validateScalingKPACompExtension
    if component.get("deploymentStrategy") is not None:
        _fail("customizing deploymentStrategy is only supported for raw deployment mode")
    metric = component.get("scaleMetric") or "concurrency"
    if metric not in _KPA_METRICS:
        _fail(f"[{metric}] is not a supported metric")
    target = integer(component.get("scaleTarget"))
    if target is not None and metric == "rps" and target < 1:
        _fail("the target for rps should be greater than 1")


def _validate_multiple_storage_uris(spec: Mapping[str, Any]) -> None:
    # inference_service_validation.go validateMultipleStorageURIs / validateMultipleStorageURIsSpec
    for field, implementations in (("transformer", _other_implementations), ("explainer", _other_implementations),
                                   ("predictor", _predictor_implementations)):
        component = spec.get(field)
        if not isinstance(component, Mapping):
            continue
        uris = component.get("storageUris")
        impls = implementations(component)
        if impls and impls[0].storage_uri() is not None and uris is not None:
            _fail("Setting both StorageURI and StorageURIs is not supported.")
        _validate_storage_uris_spec(seq(uris))


def _validate_storage_uris_spec(uris: list[Any]) -> None:
    paths: list[str] = []
    pvc_paths: list[str] = []
    for entry in uris:
        entry = mapping(entry)
        uri = entry.get("uri") or ""
        mount = entry.get("mountPath")
        mount = "/mnt/models" if mount is None else str(mount)  # the CRD default
        # validateStorageURISpec
        if uri == "":
            _fail("storage URI cannot be empty")
        if mount == "/":
            _fail("storage path cannot be empty")
        if not mount.startswith("/"):
            _fail(f"storage path must be absolute: {mount}")
        if ".." in mount:
            _fail(f"storage path cannot contain '..' for security reasons: {mount}")
        (pvc_paths if uri.startswith("pvc://") else paths).append(mount)
    if len(paths) <= 1:
        return
    if len(pvc_paths) != len(set(pvc_paths)):
        _fail("PVC storage paths must be unique")
    if _common_parent(paths) == "/":
        shown = "[" + " ".join(paths) + "]"
        _fail(f"storage paths must have a common parent directory. Current paths: {shown} have no common parent beyond root")


def _common_parent(paths: list[str]) -> str:
    # pkg/utils FindCommonParentPath
    split = [[p for p in path.split("/") if p] for path in paths]
    common: list[str] = []
    for parts in zip(*split):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return "/" + "/".join(common)


def _validate_canary(spec: Mapping[str, Any], predictor: Mapping[str, Any]) -> None:
    # v0.20.0 inference_service_validation.go validateCanarySpecs (spec.canary, the multi-variant canary;
    # not in the stored source, see the module docstring): a canary variant is rolled out against the
    # stable predictor's model, so the stable predictor must name one: a storageUri (for a custom
    # `containers:` predictor the STORAGE_URI env of kserve-container, predictor_custom.go GetStorageUri),
    # storageUris, or a `model:` spec. Every canary predictor has exactly one implementation.
    canaries = seq(spec.get("canary"))
    if not canaries:
        return
    impls = _predictor_implementations(predictor)
    has_model = (
        isinstance(predictor.get("model"), Mapping)
        or bool(seq(predictor.get("storageUris")))
        or any(impl.storage_uri() for impl in impls)
    )
    if not has_model:
        _fail(
            "spec.canary requires the stable predictor to specify a storageUri or model (for a custom container "
            f'predictor: the {_STORAGE_URI_ENV} env of container "{_PREDICTOR_CONTAINER}"); spec.predictor has neither'
        )
    for i, canary in enumerate(canaries):
        if len(_predictor_implementations(mapping(mapping(canary).get("predictor")))) != 1:
            _fail(f"exactly one of [{_PREDICTOR_FIELDS}] must be specified in spec.canary[{i}].predictor")
