"""The stack configuration: every ``gpufleet:*`` key of a stack, validated in one place.

Pulumi hands a program its configuration as a flat map of ``"namespace:key" -> string`` (objects
JSON-encoded). :func:`parse_stack_config` turns the ``gpufleet`` part of that map into a frozen
:class:`StackConfig`, or raises :class:`ConfigError` listing *every* problem, each naming the field
path the way it is written in ``Pulumi.<stack>.yaml`` (e.g. ``gpufleet:network.azCount``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any, Collection, Literal, Mapping, Optional

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

# One EKS version list for the stack config and the Cluster component (re-exported from here too).
from gpufleet.components.eks_versions import EKS_SUPPORTED_VERSIONS, unsupported_version_problem
from gpufleet.infra.areas.base import ConfigModel, IamPrincipalArn
from gpufleet.infra.areas.gpu_operator import GpuOperatorSection, MonitoringSection
from gpufleet.infra.areas.gpu_pools import GpuPoolSection, KarpenterSection
from gpufleet.infra.areas.model_cache import ModelCacheSection
from gpufleet.infra.areas.ray import RaySection
from gpufleet.infra.areas.serving import ServingSection
from gpufleet.infra.areas.tenancy import KueueSection, TeamSection
from gpufleet.infra.areas.training import TrainingSection

NAMESPACE = "gpufleet"

CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")

_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")


SECRET_KEYS: tuple[str, ...] = ("hfToken",)
"""Keys that must be Pulumi secrets (``pulumi config set --secret``): a plain value is refused."""
SECRET_STAND_IN = "offline-stand-in-for-a-secret-value"
"""What the offline plan passes for an encrypted stack value it cannot decrypt (marked secret)."""


class ConfigError(Exception):
    """The stack configuration is invalid. ``problems`` holds one message per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack configuration:\n" + "\n".join(f"  - {p}" for p in problems))




class NetworkConfig(ConfigModel):
    """The VPC the cluster lives in."""

    cidr: str = "10.0.0.0/16"
    """IPv4 CIDR of the VPC, a /16 to /20 private range. Default ``10.0.0.0/16``."""
    az_count: int = Field(3, ge=2, le=6)
    """Availability zones to spread subnets over (EKS needs at least 2). Default 3."""
    nat_gateways: Literal["perAz", "single"] = "perAz"
    """``perAz`` (one NAT gateway per AZ: no cross-AZ dependency) or ``single`` (cheaper, one AZ
    failure cuts egress). Default ``perAz``."""

    @field_validator("cidr")
    @classmethod
    def _private_cidr(cls, value: str) -> str:
        try:
            network = ipaddress.IPv4Network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"not an IPv4 network in CIDR notation ({exc})") from None
        if not network.is_private:
            raise ValueError("must be a private (RFC 1918) range")
        if not 16 <= network.prefixlen <= 20:
            raise ValueError("prefix length must be between /16 and /20")
        return value


class AccessEntryConfig(ConfigModel):
    """An IAM principal given Kubernetes access through an EKS access entry."""

    principal_arn: IamPrincipalArn
    """ARN of the IAM role or user."""
    access_policy: Literal["cluster-admin", "admin", "edit", "view"] = "cluster-admin"
    """EKS access policy: ``cluster-admin`` (AmazonEKSClusterAdminPolicy), ``admin``, ``edit`` or
    ``view``, cluster-wide. Default ``cluster-admin``."""


class SystemNodesConfig(ConfigModel):
    """The EKS managed node group that runs cluster controllers (never GPU workloads)."""

    instance_types: tuple[str, ...] = ("m7i.xlarge",)
    """EC2 instance types, all of one CPU architecture. Default ``[m7i.xlarge]``."""
    min_size: int = Field(2, ge=1, le=50)
    """Minimum nodes. Default 2 (controllers survive one node loss)."""
    max_size: int = Field(4, ge=1, le=50)
    """Maximum nodes. Default 4."""
    desired_size: int = Field(2, ge=1, le=50)
    """Nodes at creation. Default 2."""
    disk_size_gib: int = Field(50, ge=20, le=1000)
    """Encrypted gp3 root volume size. Default 50 GiB."""

    @field_validator("instance_types")
    @classmethod
    def _types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one instance type")
        for item in value:
            if not _INSTANCE_TYPE.match(item):
                raise ValueError(f"{item!r} is not an EC2 instance type (e.g. m7i.xlarge)")
        return value

    @model_validator(mode="after")
    def _sizes(self) -> "SystemNodesConfig":
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                f"need minSize <= desiredSize <= maxSize, got {self.min_size} <= {self.desired_size} <= {self.max_size}"
            )
        return self


class ClusterConfig(ConfigModel):
    """The EKS control plane and its system node group."""

    name: Optional[str] = None
    """EKS cluster name. Default ``gpufleet-<stack>``."""
    endpoint_private_access: bool = True
    """Serve the Kubernetes API inside the VPC. Default true."""
    endpoint_public_access: bool = False
    """Also serve the API on the internet (then ``publicAccessCidrs`` is required). Default false."""
    public_access_cidrs: tuple[str, ...] = ()
    """CIDRs allowed to reach a public endpoint; ``0.0.0.0/0`` is refused. Default none."""
    secrets_encryption: bool = True
    """Envelope-encrypt Kubernetes Secrets with a dedicated, rotated, protected KMS key. Default true."""
    log_types: tuple[Literal["api", "audit", "authenticator", "controllerManager", "scheduler"], ...] = CONTROL_PLANE_LOG_TYPES
    """Control-plane log types sent to CloudWatch. Default all five."""
    system_nodes: SystemNodesConfig = SystemNodesConfig()
    """The controllers' node group."""
    admin_access: tuple[AccessEntryConfig, ...] = ()
    """IAM principals granted cluster access through EKS access entries. Default none."""
    workload_identity: Literal["podIdentity", "irsa"] = "podIdentity"
    """How controllers (Karpenter, the CSI drivers) get AWS credentials: ``podIdentity`` (the
    ``eks-pod-identity-agent`` add-on and an EKS Pod Identity association per role) or ``irsa`` (the
    cluster's OIDC provider). Default ``podIdentity``; stacks created before it existed keep ``irsa``
    (switching updates each role's trust policy in place: restart the controllers afterwards)."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not _CLUSTER_NAME.match(value):
            raise ValueError("1-100 letters, digits, '-' or '_', starting with a letter or digit")
        return value

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                network = ipaddress.IPv4Network(item, strict=True)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IPv4 CIDR ({exc})") from None
            if network.prefixlen == 0:
                raise ValueError("0.0.0.0/0 opens the API to the whole internet; name the networks that need it")
        return value

    @field_validator("log_types")
    @classmethod
    def _unique_logs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("log types must not repeat")
        return value

    @model_validator(mode="after")
    def _endpoint(self) -> "ClusterConfig":
        if not (self.endpoint_private_access or self.endpoint_public_access):
            raise ValueError("enable endpointPrivateAccess or endpointPublicAccess: the API must be reachable")
        if self.endpoint_public_access and not self.public_access_cidrs:
            raise ValueError("endpointPublicAccess needs publicAccessCidrs (the networks allowed to reach the API)")
        if self.public_access_cidrs and not self.endpoint_public_access:
            raise ValueError("publicAccessCidrs is set but endpointPublicAccess is false")
        principals = [entry.principal_arn for entry in self.admin_access]
        if len(set(principals)) != len(principals):
            raise ValueError("adminAccess names the same principalArn twice")
        return self


class StackConfig(ConfigModel):
    """All of a stack's ``gpufleet:*`` configuration."""

    environment: Literal["dev", "staging", "prod"]
    """What the stack is for; ``prod`` turns advisory production checks into mandatory ones."""
    region: str
    """AWS region, e.g. ``us-west-2``."""
    kubernetes_version: str = Field(json_schema_extra={"enum": list(EKS_SUPPORTED_VERSIONS)})
    """EKS Kubernetes minor version, a string (quote it in YAML: ``"1.35"``), one of the versions in EKS
    standard or extended support."""
    network: NetworkConfig = NetworkConfig()
    """The VPC."""
    cluster: ClusterConfig = ClusterConfig()
    """The EKS cluster."""
    tags: dict[str, str] = {}
    """Tags added to every AWS resource (besides ``gpufleet:stack`` and ``gpufleet:environment``)."""
    hf_token: Optional[SecretStr] = None
    """Hugging Face access token, for gated models. Set it with ``pulumi config set --secret hfToken
    <token>`` (a plain value is refused); gpufleet keeps it a Pulumi secret and stores it as the
    Kubernetes Secret ``hf-token`` (key ``token``) in every namespace that serves models. Default none."""
    karpenter: KarpenterSection = KarpenterSection()
    """Karpenter: controller, IAM, interruption queue."""
    gpu_pools: tuple[GpuPoolSection, ...] = ()
    """GPU NodePools (Karpenter NodePool + EC2NodeClass each)."""
    gpu_operator: GpuOperatorSection = GpuOperatorSection()
    """NVIDIA GPU Operator: device plugin, GFD, sharing (time-slicing, MPS or MIG), DCGM exporter."""
    monitoring: MonitoringSection = MonitoringSection()
    """GPU alerts and dashboard."""
    teams: tuple[TeamSection, ...] = ()
    """Tenants: namespace, quotas, access, Kueue queue each."""
    kueue: KueueSection = KueueSection()
    """Kueue: flavors, cluster queues, fair sharing."""
    model_cache: ModelCacheSection = ModelCacheSection()
    """Shared read-many volume for model weights."""
    serving: ServingSection = ServingSection()
    """KServe platform and InferenceServices."""
    ray: RaySection = RaySection()
    """KubeRay operator, RayClusters and RayServices."""
    training: TrainingSection = TrainingSection()
    """Kubeflow Trainer and multi-node TrainJobs."""

    @model_validator(mode="before")
    @classmethod
    def _bundled_monitoring(cls, values: Any) -> Any:
        # monitoring.install fills in the release labels and the Prometheus URL (areas/observability.py).
        from gpufleet.infra.areas.observability import bundled_defaults

        return bundled_defaults(values) if isinstance(values, dict) else values

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError("not an AWS region name (e.g. us-west-2)")
        return value

    @field_validator("kubernetes_version")
    @classmethod
    def _version(cls, value: str) -> str:
        problem = unsupported_version_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    def cluster_name(self, stack: str) -> str:
        return self.cluster.name or f"gpufleet-{stack}"


def _field_path(loc: tuple[Any, ...]) -> str:
    """Pydantic's error location (aliases) → ``gpufleet:network.azCount`` / ``...adminAccess[0].principalArn``."""
    head, *rest = loc
    path = f"{NAMESPACE}:{head}"
    for part in rest:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _problem(error: dict[str, Any]) -> str:
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if error["type"] == "extra_forbidden":
        message = "unknown key (check the spelling; see the configuration reference in README.md)"
    elif error["type"] == "missing":
        message = "required but not set"
    elif "input" in error and error["type"] not in ("model_type", "value_error", "assertion_error") \
            and error["loc"][:1] not in [(name,) for name in SECRET_KEYS]:
        shown = json.dumps(error["input"], default=str)
        if len(shown) <= 60:
            message += f" (got {shown})"
    return message


def parse_stack_config(raw: Mapping[str, str], secret_keys: Optional[Collection[str]] = None) -> StackConfig:
    """Validate the ``gpufleet:*`` keys of an engine config map (other namespaces are ignored).

    ``secret_keys``: the keys the engine marks secret; when given, a :data:`SECRET_KEYS` value that
    is not one of them is refused.
    """
    if secret_keys is not None:
        plain_secrets = [
            f"{NAMESPACE}:{name}: must be a secret: set it with `pulumi config set --secret {name} <value>` "
            "(a plain value sits unencrypted in the stack file)"
            for name in SECRET_KEYS
            if f"{NAMESPACE}:{name}" in raw and f"{NAMESPACE}:{name}" not in secret_keys
        ]
        if plain_secrets:
            raise ConfigError(plain_secrets)
    values: dict[str, Any] = {}
    for key, text in raw.items():
        namespace, _, name = key.partition(":")
        if namespace != NAMESPACE or not name:
            continue
        values[name] = _decode(text)
    try:
        config = StackConfig.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = error["loc"] or ("",)
            problems.append(f"{_field_path(loc)}: {_problem(error)}")
        raise ConfigError(problems) from None
    # Checks across sections (quotas vs pool limits, sharing vs instance types, ...).
    from gpufleet.infra.areas import AREAS

    problems = [problem for area in AREAS for problem in area.cross_check(config)]
    if problems:
        raise ConfigError(problems)
    return config


def _decode(text: Any) -> Any:
    """Engine config values are strings; objects and lists arrive JSON-encoded."""
    if not isinstance(text, str):
        return text
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return text
    return text


def config_map_from_stack_file(document: Mapping[str, Any]) -> dict[str, str]:
    """``Pulumi.<stack>.yaml`` content → the flat string map the engine hands a program."""
    config = (document or {}).get("config") or {}
    if not isinstance(config, Mapping):
        raise ConfigError(["config: must be a mapping of namespace:key to value"])
    flat: dict[str, str] = {}
    for key, value in config.items():
        key = str(key)
        if ":" not in key:
            # The CLI qualifies bare keys with the project name.
            key = f"{NAMESPACE}:{key}"
        if _is_secure(value):
            # Only the Pulumi CLI can decrypt it; the offline plan carries a stand-in, as a secret.
            flat[key] = SECRET_STAND_IN
        elif isinstance(value, bool):
            flat[key] = "true" if value else "false"
        elif isinstance(value, (Mapping, list)):
            flat[key] = json.dumps(value)
        else:
            flat[key] = str(value)
    return flat


def secure_keys_of_stack_file(document: Mapping[str, Any]) -> list[str]:
    """The keys of ``Pulumi.<stack>.yaml`` whose values are encrypted (``secure:``), qualified."""
    config = (document or {}).get("config") or {}
    if not isinstance(config, Mapping):
        return []
    return [str(key) if ":" in str(key) else f"{NAMESPACE}:{key}" for key, value in config.items() if _is_secure(value)]


def _is_secure(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"secure"}


def load_from_pulumi() -> StackConfig:
    """The running program's stack configuration (raises :class:`ConfigError`)."""
    from pulumi.runtime.config import CONFIG, get_config_env, is_config_secret

    raw = {**get_config_env(), **CONFIG.get()}
    return parse_stack_config(raw, secret_keys={key for key in raw if is_config_secret(key)})
