"""apimachinery's validation helpers as the controllers' webhooks call them, with their exact messages
(``k8s.io/apimachinery/pkg/util/validation`` and ``.../util/validation/field``), plus small accessors for
plain-dict manifests."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping

# k8s.io/apimachinery/pkg/util/validation/validation.go
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + r"(\." + _DNS1123_LABEL_FMT + ")*"
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = "(" + _QUALIFIED_NAME_FMT + ")?"

_DNS1123_SUBDOMAIN = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")
_DNS1035_LABEL = re.compile(f"^{_DNS1035_LABEL_FMT}$")
_QUALIFIED_NAME = re.compile(f"^{_QUALIFIED_NAME_FMT}$")
_LABEL_VALUE = re.compile(f"^{_LABEL_VALUE_FMT}$")


def _max_len(n: int) -> str:
    return f"must be no more than {n} characters"


def _format_errors(value: str, limit: int, pattern: "re.Pattern[str]", message: str) -> list[str]:
    """apimachinery's shape of a format check: the length error, then the format error."""
    return ([_max_len(limit)] if len(value) > limit else []) + ([] if pattern.match(value) else [message])


def is_dns1035_label(value: str) -> list[str]:
    """``validation.IsDNS1035Label``."""
    return _format_errors(value, 63, _DNS1035_LABEL, (
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
        "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
        f"regex used for validation is '{_DNS1035_LABEL_FMT}')"))


def is_dns1123_subdomain(value: str) -> list[str]:
    """``validation.IsDNS1123Subdomain``."""
    return _format_errors(value, 253, _DNS1123_SUBDOMAIN, (
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
        "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
        f"'{_DNS1123_SUBDOMAIN_FMT}')"))


def is_qualified_name(value: str) -> list[str]:
    """``validation.IsQualifiedName`` (label keys, resource names)."""
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
        errs = is_dns1123_subdomain(prefix)
        if errs:
            return ["prefix part " + e for e in errs]
    else:
        return [
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
            f"validation is '{_QUALIFIED_NAME_FMT}') with an optional DNS subdomain prefix and '/' (e.g. "
            "'example.com/MyName')"
        ]
    if not name:
        return ["name part must be non-empty"]
    return ["name part " + e for e in _format_errors(name, 63, _QUALIFIED_NAME, (
        "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        f"'{_QUALIFIED_NAME_FMT}')"))]


def is_valid_label_value(value: str) -> list[str]:
    """``validation.IsValidLabelValue``."""
    return _format_errors(value, 63, _LABEL_VALUE, (
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
        "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
        f"regex used for validation is '{_LABEL_VALUE_FMT}')"))


def go_quote(value: Any) -> str:
    """How ``field.Invalid`` shows a value: strings quoted, numbers bare."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def invalid(path: str, value: Any, detail: str) -> str:
    """``field.Invalid(path, value, detail).Error()``."""
    return f"{path}: Invalid value: {go_quote(value)}: {detail}"


def duplicate(path: str, value: Any) -> str:
    """``field.Duplicate(path, value).Error()``."""
    return f"{path}: Duplicate value: {go_quote(value)}"


def not_supported(path: str, value: Any, valid: list[str]) -> str:
    """``field.NotSupported(path, value, valid).Error()``."""
    return f"{path}: Unsupported value: {go_quote(value)}: supported values: " + ", ".join(f'"{v}"' for v in valid)


def required(path: str, detail: str = "") -> str:
    return f"{path}: Required value" + (f": {detail}" if detail else "")


def aggregate(errors: list[str]) -> str:
    """``field.ErrorList.ToAggregate().Error()``: one message, or ``[a, b]``."""
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")
_SUFFIX = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18, "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}


def quantity(value: Any) -> Decimal | None:
    """A ``resource.Quantity`` (string or number) as a Decimal, or None when it does not parse."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    m = _QUANTITY.match(value.strip())
    if not m:
        return None
    try:
        number, suffix = Decimal(m[1]), m[2] or ""
    except InvalidOperation:
        return None
    if suffix[:1] in ("e", "E"):
        return number * (Decimal(10) ** int(suffix[1:]))
    return number * _SUFFIX[suffix]


# -- plain-dict accessors ------------------------------------------------------------------------------


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def seq(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []


def dig(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def name_of(obj: Mapping[str, Any]) -> str:
    value = dig(obj, "metadata", "name")
    return value if isinstance(value, str) else ""


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return mapping(dig(obj, "metadata", "labels"))


def annotations_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return mapping(dig(obj, "metadata", "annotations"))


def env_var(container: Any, name: str) -> tuple[bool, str]:
    """(exists, value) of an env var of a container (``utils.EnvVarByName``)."""
    for env in seq(mapping(container).get("env")):
        if mapping(env).get("name") == name:
            value = mapping(env).get("value")
            return True, value if isinstance(value, str) else ""
    return False, ""


def integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None
