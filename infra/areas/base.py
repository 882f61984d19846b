"""What every area shares: the config model base class and the :class:`Platform` being built."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import pulumi
from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from gpufleet.components import Cluster, Network
    from gpufleet.components.gpu_scheduling import GpuPlacement
    from gpufleet.infra.config import StackConfig


DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
IAM_PRINCIPAL = re.compile(r"^arn:aws(-[a-z]+)*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$")


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


def camel_path(path: str) -> str:
    """A Python field path as the stack YAML spells it: ``limits.memory_gib`` → ``limits.memoryGib``;
    quoted parts (label keys) are left alone."""
    parts = path.split("'")
    parts[::2] = [re.sub(r"_([a-z])", lambda m: m.group(1).upper(), part) for part in parts[::2]]
    return "'".join(parts)


DnsLabel = Annotated[str, AfterValidator(dns_label)]
"""A config string that must be a DNS label."""
IamPrincipalArn = Annotated[str, AfterValidator(iam_principal_arn)]
"""A config string that must be an IAM role or user ARN."""


class ConfigModel(BaseModel):
    """Base of every stack-config model: frozen, unknown keys refused, camelCase keys in YAML."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        # The docstring under each field is its description (docs/configuration.md, the JSON Schema).
        use_attribute_docstrings=True,
    )


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
