"""What every area shares: the config model base class and the :class:`Platform` being built."""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional, Union

import pulumi
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from gpufleet.components import Cluster, Network
    from gpufleet.components.gpu_scheduling import GpuPlacement
    from gpufleet.infra.config import StackConfig


DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# IAM names: ASCII letters, digits and +=,.@_- (IAM User Guide, "IAM identifiers"); paths add '/'.
IAM_PRINCIPAL = re.compile(r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(role|user)/[A-Za-z0-9_+=,.@/-]{1,512}$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_IMAGE = re.compile(
    r"^(?P<name>[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]{1,2}[a-z0-9]+|-+[a-z0-9]+)*)*)"
    r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(@(?P<digest>sha256:[a-f0-9]{64}))?$"
)

MAX_TEXT = 65_536
"""Longest string any config field takes (a RayJob entrypoint or runtime env is the longest)."""
MAX_ITEMS = 1_000
"""Most entries of any list or mapping in the config (pools, teams, services, labels, ...)."""
MAX_NUMBER = 10**15
"""Largest magnitude of any number in the config; fields bound it further."""

# Public AWS regions, GovCloud and China (source: "AWS Region billing codes", AWS Global
# Infrastructure documentation, docs.aws.amazon.com/global-infrastructure/latest/regions/
# aws-region-billing-codes.html, read 2026-12-06). Add a region here when AWS opens one.
AWS_REGIONS: frozenset[str] = frozenset({
    "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "ca-west-1", "mx-central-1",
    "af-south-1",
    "ap-east-1", "ap-east-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-south-2",
    "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "ap-southeast-6",
    "ap-southeast-7",
    "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1", "eu-west-2", "eu-west-3",
    "il-central-1", "me-central-1", "me-south-1", "sa-east-1",
    "us-gov-east-1", "us-gov-west-1", "cn-north-1", "cn-northwest-1",
})


def dns_label(value: str) -> str:
    """Validator of names that become Kubernetes object names (RFC 1123 labels)."""
    if not DNS_LABEL.match(value):
        raise ValueError("must be a DNS label: lowercase letters, digits and '-', at most 63 characters")
    return value


def iam_principal_arn(value: str) -> str:
    """Validator of the IAM principals given Kubernetes access (EKS access entries take roles and
    users, never groups)."""
    if not IAM_PRINCIPAL.match(value):
        raise ValueError("must be an IAM role or user ARN (arn:aws:iam::<12-digit account>:role/<name>)")
    return value


def aws_region(value: str) -> str:
    """Validator of AWS region names: one of :data:`AWS_REGIONS`."""
    if value not in AWS_REGIONS:
        raise ValueError("not an AWS region (e.g. us-west-2; see AWS_REGIONS in infra/areas/base.py)")
    return value


def dns_subdomain(value: str) -> str:
    """Validator of names that may be DNS subdomains (Secrets, ConfigMaps): RFC 1123, <= 253."""
    if not DNS_SUBDOMAIN.match(value):
        raise ValueError("must be a DNS subdomain: lowercase letters, digits, '-' and '.', at most 253 characters")
    return value


def label_key_problem(key: str) -> Optional[str]:
    """Why ``key`` is not a Kubernetes label (or annotation, taint) key: ``[prefix/]name``, the
    prefix a DNS subdomain, the name 1-63 alphanumerics, '-', '_', '.' (apimachinery
    ``validation.IsQualifiedName``)."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        return f"{key!r}: empty prefix before '/'"
    if prefix and not DNS_SUBDOMAIN.match(prefix):
        return f"{key!r}: prefix {prefix!r} must be a DNS subdomain (lowercase, at most 253 characters)"
    if not _LABEL_NAME.match(name):
        return (f"{key!r}: name must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a "
                "letter or digit")
    return None


def label_value_problem(value: str) -> Optional[str]:
    """Why ``value`` is not a Kubernetes label value (empty, or like a label name)."""
    if value and not _LABEL_NAME.match(value):
        return f"value {value!r} must be empty or 1-63 letters, digits, '-', '_' or '.', starting and ending with one"
    return None


def labels(value: dict[str, str]) -> dict[str, str]:
    """Validator of a Kubernetes label (or node selector) map."""
    for key, item in value.items():
        problem = label_key_problem(key) or label_value_problem(item)
        if problem:
            raise ValueError(f"label {problem}")
    return value


def label_key(value: str) -> str:
    problem = label_key_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def secret_key(value: str) -> str:
    """Validator of a key of a Secret's data."""
    if not _SECRET_KEY.match(value):
        raise ValueError("must be a Secret key: 1-253 letters, digits, '-', '_' or '.'")
    return value


_TAG_TEXT = re.compile(r"^[\w\s.:/=+\-@]*$")


def aws_tags(value: dict[str, str]) -> dict[str, str]:
    """Validator of AWS resource tags (EC2 ``Tag`` limits, "Tag naming limits and requirements"):
    keys 1-128 and values 0-256 characters of letters, digits, spaces and ``_.:/=+-@``; the ``aws:``
    prefix is reserved for AWS; at most 50 tags a resource (gpufleet adds two)."""
    if len(value) > 48:
        raise ValueError(f"{len(value)} tags: AWS allows 50 a resource and gpufleet adds 2 (gpufleet:stack, "
                         "gpufleet:environment)")
    for key, item in value.items():
        if not 1 <= len(key) <= 128:
            raise ValueError(f"tag key {key[:40]!r}: must be 1-128 characters")
        if key.lower().startswith("aws:"):
            raise ValueError(f"tag key {key!r}: the aws: prefix is reserved for AWS")
        if len(item) > 256:
            raise ValueError(f"tag {key!r}: the value must be at most 256 characters, got {len(item)}")
        for text, what in ((key, "key"), (item, "value")):
            if not _TAG_TEXT.match(text):
                raise ValueError(f"tag {key!r}: the {what} may hold only letters, digits, spaces and _.:/=+-@")
    return value


def image_reference(value: str) -> str:
    """Validator of container image references: ``[registry/]repository:tag`` and/or ``@sha256:<digest>``;
    an untagged reference (an implicit ``latest``) is refused."""
    match = _IMAGE.match(value)
    if not match or len(value) > 512:
        raise ValueError(f"{value[:80]!r} is not a container image reference (registry/repository:tag)")
    if not match.group("tag") and not match.group("digest"):
        raise ValueError(f"{value!r} has no tag: pin a version (repository:1.2.3 or @sha256:...), an untagged "
                         "image is whatever 'latest' is at pull time")
    return value


def image_is_latest(value: Optional[str]) -> bool:
    """``value`` is a reference to the moving ``latest`` tag (without a digest)."""
    if not value:
        return False
    match = _IMAGE.match(value)
    return bool(match) and match.group("tag") == "latest" and not match.group("digest")


def positive_quantity(value: str) -> str:
    """Validator of Kubernetes resource quantities that must be above zero (``"8"``, ``500m``, ``32Gi``)."""
    from gpufleet.policies.core import Malformed, parse_quantity

    try:
        amount = parse_quantity(value)
    except Malformed:
        amount = None
    if amount is None or not value.strip() == value:
        raise ValueError(f"{value[:40]!r} is not a Kubernetes quantity (e.g. 8, 500m, 32Gi)")
    if amount <= 0:
        raise ValueError(f"{value!r} must be more than zero")
    return value


class FieldProblem(ValueError):
    """A model validator's problem with one of the model's fields (``path``, as the YAML spells it):
    the stack-config parser reports it at ``<model path>.<path>``."""

    def __init__(self, path: str, problem: str):
        self.path = path
        self.problem = problem
        super().__init__(f"{path} {problem}")


def camel_path(path: str) -> str:
    """A Python field path as the stack YAML spells it: ``limits.memory_gib`` → ``limits.memoryGib``;
    quoted parts (label keys) are left alone."""
    parts = path.split("'")
    parts[::2] = [re.sub(r"_([a-z])", lambda m: m.group(1).upper(), part) for part in parts[::2]]
    return "'".join(parts)


DnsLabel = Annotated[str, AfterValidator(dns_label)]
"""A config string that must be a DNS label."""
DnsSubdomain = Annotated[str, AfterValidator(dns_subdomain)]
"""A config string that must be a DNS subdomain (Secret and ConfigMap names)."""
IamPrincipalArn = Annotated[str, AfterValidator(iam_principal_arn)]
"""A config string that must be an IAM role or user ARN."""
Labels = Annotated[dict[str, str], AfterValidator(labels)]
"""A config map of Kubernetes labels (or a node selector)."""
LabelKey = Annotated[str, AfterValidator(label_key)]
"""A Kubernetes label, annotation or taint key."""
SecretKey = Annotated[str, AfterValidator(secret_key)]
"""A key of a Kubernetes Secret's data."""
AwsTags = Annotated[dict[str, str], AfterValidator(aws_tags)]
"""AWS resource tags."""
AwsRegion = Annotated[str, AfterValidator(aws_region)]
"""An AWS region name."""
PositiveQuantity = Annotated[str, AfterValidator(positive_quantity)]
"""A Kubernetes resource quantity above zero."""
ImageRef = Annotated[str, AfterValidator(image_reference)]
"""A container image reference with a tag or digest."""


def _admits(annotation: Any, kind: type) -> bool:
    """Whether a value of exactly ``kind`` (bool, int, float) can be valid for ``annotation``."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _admits(typing.get_args(annotation)[0], kind)
    if origin in (Union, types.UnionType):
        return any(_admits(arg, kind) for arg in typing.get_args(annotation))
    if origin is Literal:
        return any(type(arg) is kind for arg in typing.get_args(annotation))
    if annotation is Any:
        return True
    if kind is int:
        return annotation in (int, float)
    return annotation is kind


def _plain_value_problem(annotation: Any, value: Any) -> Optional[str]:
    """The surprise coercions pydantic's lax mode makes, refused: ``true`` where a number belongs (it
    becomes 1), a number or string where a boolean belongs, a string where a number belongs; plus
    control characters, lone surrogates and sizes past :data:`MAX_TEXT`, :data:`MAX_ITEMS`,
    :data:`MAX_NUMBER` anywhere in the value."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _plain_value_problem(typing.get_args(annotation)[0], value)
    if origin in (Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if value is None:
            return None
        if len(options) == 1:
            return _plain_value_problem(options[0], value)
        return _generic_problem(value)
    if isinstance(value, bool):
        if not _admits(annotation, bool) and (_admits(annotation, int) or _admits(annotation, float)):
            return f"must be a number, not {str(value).lower()}"
    elif annotation is bool and value is not None:
        return f"must be true or false, not {type(value).__name__} {_shown(value)}"
    elif isinstance(value, str) and not _admits(annotation, str) and (_admits(annotation, int) or _admits(annotation, float)):
        if annotation is not Any:
            return f"must be a number, not the string {_shown(value)}"
    if origin in (tuple, list) and isinstance(value, (list, tuple)):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        if len(value) > MAX_ITEMS:
            return f"at most {MAX_ITEMS} entries, got {len(value)}"
        for index, item in enumerate(value):
            problem = _plain_value_problem(args[0], item) if len(args) == 1 else _generic_problem(item)
            if problem:
                return f"[{index}]: {problem}"
        return None
    if origin is dict and isinstance(value, dict):
        _, item_type = typing.get_args(annotation)
        if len(value) > MAX_ITEMS:
            return f"at most {MAX_ITEMS} entries, got {len(value)}"
        for key, item in value.items():
            problem = _generic_problem(key) or _plain_value_problem(item_type, item)
            if problem:
                return f"{key!r}: {problem}" if isinstance(key, str) and not _CONTROL.search(key) else problem
        return None
    return _generic_problem(value)


def _generic_problem(value: Any, depth: int = 0) -> Optional[str]:
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            return f"a string of {len(value)} characters (at most {MAX_TEXT})"
        found = _CONTROL.search(value)
        if found:
            return f"contains the control character U+{ord(found.group()):04X}"
    elif isinstance(value, bool):
        return None
    elif isinstance(value, int):
        if abs(value) > MAX_NUMBER:
            return f"the number {_shown(value)} is out of range"
    elif isinstance(value, float):
        if value != value or abs(value) > MAX_NUMBER:
            return f"the number {_shown(value)} is out of range"
    elif isinstance(value, (list, tuple, dict)):
        if len(value) > MAX_ITEMS:
            return f"at most {MAX_ITEMS} entries, got {len(value)}"
        if depth > 32:
            return "nested too deeply"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            problem = (_generic_problem(key, depth + 1) if isinstance(value, dict) else None) or \
                _generic_problem(item, depth + 1)
            if problem:
                return problem
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class ConfigModel(BaseModel):
    """Base of every stack-config model: frozen, unknown keys refused, camelCase keys in YAML, and
    no surprise coercions (see :func:`_plain_value_problem`)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        # The docstring under each field is its description (docs/configuration.md, the JSON Schema).
        use_attribute_docstrings=True,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _plain_values(cls, value: Any, info: ValidationInfo) -> Any:
        field_info = cls.model_fields.get(info.field_name or "")
        if field_info is not None and not isinstance(value, BaseModel):
            problem = _plain_value_problem(field_info.annotation, value)
            if problem:
                raise ValueError(problem)
        return value


@dataclass
class Platform:
    """The platform as composed so far; each area's ``compose`` reads it and adds what it declares."""

    stack: str
    config: "StackConfig"
    cluster_name: str
    opts: pulumi.ResourceOptions
    """Options for every area component: the stack's AWS provider and the cluster's Kubernetes provider."""
    network: "Network"
    cluster: "Cluster"
    placements: dict[str, "GpuPlacement"] = field(default_factory=dict)
    """GPU pool name → its placement (gpu_pools; gpu_operator sets ``sharing``/``gpu_resource``)."""
    components: dict[str, Any] = field(default_factory=dict)
    """Area components by name (``karpenter``, ``gpu-operator``, ``kserve``, ...), for dependencies."""
    namespaces: dict[str, Any] = field(default_factory=dict)
    """Team name → its ``kubernetes.core.v1.Namespace`` (tenancy)."""
    local_queues: dict[str, str] = field(default_factory=dict)
    """Team name → name of its Kueue LocalQueue (tenancy)."""
    model_caches: dict[str, str] = field(default_factory=dict)
    """Namespace name → name of the model-weights PVC in it (model_cache)."""

    def depends_on(self, *names: str) -> pulumi.ResourceOptions:
        """``opts`` plus a dependency on the named area components that exist."""
        found = [self.components[n] for n in names if n in self.components]
        return pulumi.ResourceOptions.merge(self.opts, pulumi.ResourceOptions(depends_on=found))
