"""What the API server's own validation of ``resource.k8s.io/v1`` ResourceClaimTemplates (and
ResourceClaims) rejects on create, beyond the OpenAPI schema.

Ported from Kubernetes ``pkg/apis/resource/validation/validation.go`` (the in-tree validation the
registry runs for built-in kinds; no webhook): ``ValidateResourceClaimTemplate`` →
``validateResourceClaimTemplateSpec`` → ``validateResourceClaimSpec`` → ``validateDeviceClaim``, with
``validateDeviceRequest``, ``validateExactDeviceRequest``, ``validateDeviceSubRequest``,
``validateDeviceClass`` (``corevalidation.ValidateDNS1123Subdomain``), ``validateRequestName``
(``ValidateDNS1123Label``), ``validateDeviceAllocationMode``, ``validateSelector``,
``validateDeviceConstraint`` and ``validateDeviceClaimConfiguration`` (request references), and the
size limits of ``pkg/apis/resource/types.go`` (``DeviceRequestsMaxSize``,
``FirstAvailableDeviceRequestMaxSize``, ``DeviceSelectorsMaxSize``, ``DeviceConstraintsMaxSize``,
``DeviceConfigMaxSize``). CEL
expressions are not compiled here (only their presence is checked).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from gpufleet.infra.validation.admission._k8s import (
    _format_errors, aggregate, duplicate, go_quote, invalid, is_dns1123_subdomain, mapping, not_supported, required,
    seq,
)

SOURCE = "resource.k8s.io validation"
DEVICE_REQUESTS_MAX_SIZE = 32
FIRST_AVAILABLE_MAX_SIZE = 8
DEVICE_CONSTRAINTS_MAX_SIZE = 32
DEVICE_CONFIG_MAX_SIZE = 32
DEVICE_SELECTORS_MAX_SIZE = 32
ALLOCATION_MODES = ["All", "ExactCount"]

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(f"^{_DNS1123_LABEL_FMT}$")


def is_dns1123_label(value: str) -> list[str]:
    """``validation.IsDNS1123Label``."""
    return _format_errors(value, 63, _DNS1123_LABEL, (
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
        f"and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
        f"'{_DNS1123_LABEL_FMT}')"))


def _too_many(path: str, actual: int, limit: int) -> str:
    """``field.TooMany(path, actual, limit).Error()``."""
    return f"{path}: Too many: {actual}: must have at most {limit} items"


def _name(value: Any, path: str) -> list[str]:
    """``validateRequestName`` (``corevalidation.ValidateDNS1123Label``)."""
    if not value:
        return [required(path)]
    return [invalid(path, value, e) for e in is_dns1123_label(str(value))]


def _device_class(value: Any, path: str) -> list[str]:
    """``validateDeviceClass``: required, a DNS subdomain."""
    if not value:
        return [required(path)]
    return [invalid(path, value, e) for e in is_dns1123_subdomain(str(value))]


def _selectors(selectors: Any, path: str) -> list[str]:
    """``validateSelectorSlice`` / ``validateSelector``: each selector has ``cel`` with an expression."""
    errors: list[str] = []
    if len(seq(selectors)) > DEVICE_SELECTORS_MAX_SIZE:
        errors.append(_too_many(path, len(seq(selectors)), DEVICE_SELECTORS_MAX_SIZE))
    for index, selector in enumerate(seq(selectors)):
        cel = mapping(selector).get("cel")
        if cel is None:
            errors.append(required(f"{path}[{index}].cel"))
        elif not str(mapping(cel).get("expression") or "").strip():
            errors.append(required(f"{path}[{index}].cel.expression"))
    return errors


def _allocation(request: Mapping[str, Any], path: str) -> list[str]:
    """``validateDeviceAllocationMode`` (the mode defaults to ExactCount and the count to 1)."""
    mode = request.get("allocationMode", "ExactCount")
    count = request.get("count")
    if mode == "All":
        return [invalid(f"{path}.count", count, "must not be specified when allocationMode is 'All'")] \
            if count not in (None, 0) else []
    if mode == "ExactCount":
        count = 1 if count is None else count
        if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
            return [invalid(f"{path}.count", count, "must be greater than zero")]
        return []
    return [not_supported(f"{path}.allocationMode", mode, ALLOCATION_MODES)]


def _exact(request: Mapping[str, Any], path: str) -> list[str]:
    """``validateExactDeviceRequest`` / ``validateDeviceSubRequest`` (without the name)."""
    return (_device_class(request.get("deviceClassName"), f"{path}.deviceClassName")
            + _selectors(request.get("selectors"), f"{path}.selectors")
            + _allocation(request, path))


def _request(request: Mapping[str, Any], path: str) -> tuple[list[str], set[str]]:
    """``validateDeviceRequest``: (errors, the names constraints and configs may reference)."""
    errors = _name(request.get("name"), f"{path}.name")
    name = str(request.get("name") or "")
    exactly, first = request.get("exactly"), seq(request.get("firstAvailable"))
    names = {name}
    if exactly is None and not first:
        errors.append(required(path, "exactly one of `exactly` or `firstAvailable` is required"))
    elif exactly is not None and first:
        errors.append(f"{path}: Invalid value: null: exactly one of `exactly` or `firstAvailable` is required, "
                      "but multiple fields are set")
    elif first:
        if len(first) > FIRST_AVAILABLE_MAX_SIZE:
            errors.append(_too_many(f"{path}.firstAvailable", len(first), FIRST_AVAILABLE_MAX_SIZE))
        seen: set[str] = set()
        for index, sub in enumerate(first):
            sub_path = f"{path}.firstAvailable[{index}]"
            sub_name = str(mapping(sub).get("name") or "")
            errors += _name(sub_name, f"{sub_path}.name")
            if sub_name and sub_name in seen:
                errors.append(duplicate(f"{sub_path}.name", sub_name))
            seen.add(sub_name)
            names.add(f"{name}/{sub_name}")
            errors += _exact(mapping(sub), sub_path)
    else:
        errors += _exact(mapping(exactly), f"{path}.exactly")
    return errors, names


def validate_claim_spec(spec: Mapping[str, Any], path: str) -> list[str]:
    """``validateResourceClaimSpec`` → ``validateDeviceClaim`` of ``spec`` at ``path``."""
    devices = mapping(spec.get("devices"))
    base = f"{path}.devices"
    errors: list[str] = []
    requests = seq(devices.get("requests"))
    if len(requests) > DEVICE_REQUESTS_MAX_SIZE:
        errors.append(_too_many(f"{base}.requests", len(requests), DEVICE_REQUESTS_MAX_SIZE))
    known: set[str] = set()
    seen: set[str] = set()
    for index, request in enumerate(requests):
        request_errors, names = _request(mapping(request), f"{base}.requests[{index}]")
        errors += request_errors
        name = str(mapping(request).get("name") or "")
        if name and name in seen:
            errors.append(duplicate(f"{base}.requests[{index}].name", name))
        seen.add(name)
        known |= names
    for what, limit in (("constraints", DEVICE_CONSTRAINTS_MAX_SIZE), ("config", DEVICE_CONFIG_MAX_SIZE)):
        entries = seq(devices.get(what))
        if len(entries) > limit:
            errors.append(_too_many(f"{base}.{what}", len(entries), limit))
        for index, entry in enumerate(entries):
            for position, reference in enumerate(seq(mapping(entry).get("requests"))):
                # validateRequestNameRef: a request, or <request>/<subrequest> of a firstAvailable one
                if reference not in known:
                    errors.append(invalid(f"{base}.{what}[{index}].requests[{position}]", reference,
                                          "must be the name of a request in the claim or the name of a request "
                                          "and a subrequest separated by '/'"))
    return errors


def validate_resource_claim_template(template: Mapping[str, Any]) -> list[str]:
    """``ValidateResourceClaimTemplate`` (the spec part; ObjectMeta is checked with the schema)."""
    errors = validate_claim_spec(mapping(mapping(template.get("spec")).get("spec")), "spec.spec")
    return [f"{SOURCE}: {aggregate(errors)}"] if errors else []


def validate_resource_claim(claim: Mapping[str, Any]) -> list[str]:
    """``ValidateResourceClaim`` (the spec part)."""
    errors = validate_claim_spec(mapping(claim.get("spec")), "spec")
    return [f"{SOURCE}: {aggregate(errors)}"] if errors else []


__all__ = ["validate_claim_spec", "validate_resource_claim", "validate_resource_claim_template", "go_quote"]
