"""The stack configuration: every ``gpufleet:*`` key of a stack, validated in one place.

Pulumi hands a program its configuration as a flat map of ``"namespace:key" -> string`` (objects
JSON-encoded). :func:`parse_stack_config` turns the ``gpufleet`` part of that map into a frozen
:class:`StackConfig`, or raises :class:`ConfigError` listing *every* problem, each naming the field
path the way it is written in ``Pulumi.<stack>.yaml`` (e.g. ``gpufleet:network.azCount``). Keys of
other namespaces must be Pulumi's or a provider's (:mod:`gpufleet.infra.config_keys`); values are taken
without surprise coercions (:class:`~gpufleet.infra.areas.base.ConfigModel`). Stack files are read by
:mod:`gpufleet.infra.yaml_input` before they get here.
"""

from __future__ import annotations

import ipaddress
import json
import re
from contextlib import contextmanager
from typing import Any, Collection, Iterator, Literal, Mapping, Optional

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from gpufleet.components.cluster import cpu_architecture, partition_of
# One EKS version list for the stack config and the Cluster component (re-exported from here too).
from gpufleet.components.eks_versions import EKS_SUPPORTED_VERSIONS, unsupported_version_problem
from gpufleet.infra.areas.base import AWS_REGIONS, AwsTags, ConfigModel, FieldProblem, IamPrincipalArn, image_is_latest
from gpufleet.infra.areas.gpu_operator import GpuOperatorSection, MonitoringSection
from gpufleet.infra.areas.gpu_pools import GpuPoolSection, KarpenterSection
from gpufleet.infra.areas.model_cache import ModelCacheSection
from gpufleet.infra.areas.ray import RaySection
from gpufleet.infra.areas.serving import ServingSection
from gpufleet.infra.areas.tenancy import KueueSection, TeamSection
from gpufleet.infra.areas.training import TrainingSection
from gpufleet.infra.config_keys import NAMESPACE, keys_at, model_keys, namespace_problems, suggestion
from gpufleet.policies.cidr import MAX_OPEN_PREFIX, coverage


CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")

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
    """The nodes that run cluster controllers (never GPU workloads): an EKS managed node group, or with
    ``autoMode`` the ``system`` NodePool of EKS Auto Mode that replaces it."""

    instance_types: tuple[str, ...] = ("m7i.xlarge",)
    """EC2 instance types, all of one CPU architecture. Default ``[m7i.xlarge]``."""
    min_size: int = Field(2, ge=1, le=50)
    """Minimum nodes. Default 2 (controllers survive one node loss). Not with ``autoMode`` (Auto Mode
    adds system nodes as the pods on them need)."""
    max_size: int = Field(4, ge=1, le=50)
    """Maximum nodes (with ``autoMode``: the system NodePool's limits hold this many of the largest
    type, and the controllers must fit them). Default 4."""
    desired_size: int = Field(2, ge=1, le=50)
    """Nodes at creation. Default 2. Not with ``autoMode``."""
    disk_size_gib: int = Field(50, ge=20, le=1000)
    """Encrypted gp3 root volume size (with ``autoMode``: the NodeClass's ephemeral storage). Default 50 GiB."""

    @field_validator("instance_types")
    @classmethod
    def _types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one instance type")
        for item in value:
            if not _INSTANCE_TYPE.match(item):
                raise ValueError(f"{item!r} is not an EC2 instance type (e.g. m7i.xlarge)")
        if len(set(value)) != len(value):
            raise ValueError("an instance type is listed twice")
        arches = {cpu_architecture(item) for item in value}
        if len(arches) > 1:
            # The same check as components.cluster._system_nodes: one node group, one AMI type.
            raise ValueError(f"mixes CPU architectures ({', '.join(value)}): a node group runs one AMI type, "
                             "so list only x86_64 or only arm64 (Graviton) types")
        return value

    def size_problem(self) -> Optional[str]:
        """Why the managed node group's sizes are out of order, or None (``ClusterConfig`` asks, unless
        Auto Mode, which keeps no minimum or desired count, runs the system nodes)."""
        if not self.min_size <= self.desired_size <= self.max_size:
            return f"need minSize <= desiredSize <= maxSize, got {self.min_size} <= {self.desired_size} <= {self.max_size}"
        return None


class ClusterConfig(ConfigModel):
    """The EKS control plane and its system node group."""

    name: Optional[str] = None
    """EKS cluster name. Default ``gpufleet-<stack>``."""
    endpoint_private_access: bool = True
    """Serve the Kubernetes API inside the VPC. Default true."""
    endpoint_public_access: bool = False
    """Also serve the API on the internet (then ``publicAccessCidrs`` is required). Default false."""
    public_access_cidrs: tuple[str, ...] = Field((), max_length=40)
    """CIDRs allowed to reach a public endpoint; together they may cover at most a /8's worth of
    addresses (``0.0.0.0/0``, or ``[0.0.0.0/1, 128.0.0.0/1]``, is refused). Default none."""
    acknowledge_public_endpoint: bool = False
    """A ``prod`` stack with ``endpointPublicAccess: true`` must set this to true: it says the public
    API endpoint is intended. Default false."""
    secrets_encryption: bool = True
    """Envelope-encrypt Kubernetes Secrets with a dedicated, rotated, protected KMS key. Default true."""
    log_types: tuple[Literal["api", "audit", "authenticator", "controllerManager", "scheduler"], ...] = CONTROL_PLANE_LOG_TYPES
    """Control-plane log types sent to CloudWatch. Default all five."""
    system_nodes: SystemNodesConfig = SystemNodesConfig()
    """The controllers' nodes: a managed node group, or with ``autoMode`` Auto Mode's ``system`` NodePool."""
    admin_access: tuple[AccessEntryConfig, ...] = ()
    """IAM principals granted cluster access through EKS access entries. Default none."""
    workload_identity: Literal["podIdentity", "irsa"] = "podIdentity"
    """How controllers (Karpenter, the CSI drivers) get AWS credentials: ``podIdentity`` (the
    ``eks-pod-identity-agent`` add-on and an EKS Pod Identity association per role) or ``irsa`` (the
    cluster's OIDC provider). Default ``podIdentity``; stacks created before it existed keep ``irsa``
    (switching updates each role's trust policy in place: restart the controllers afterwards)."""
    auto_mode: bool = False
    """Run EKS Auto Mode instead of self-managed Karpenter: EKS provisions the nodes, pod networking,
    DNS, block storage, load balancers, the Pod Identity agent and the NVIDIA driver and device plugin.
    gpufleet then installs no Karpenter (``gpufleet:karpenter`` is refused), turns Auto Mode's built-in
    node pools off and declares a ``system`` NodePool (``systemNodes``: ``instanceTypes``, ``maxSize``,
    ``diskSizeGib``) and a NodePool and ``eks.amazonaws.com/v1`` NodeClass per GPU pool. Refused there:
    pools' ``amiFamily``/``amiVersion``, GPU ``sharing`` other than ``none`` (AWS's device plugin runs),
    ``expireAfter`` past ``504h`` (Auto Mode's 21-day node lifetime; default ``336h``), the bundled
    monitoring stack's ``ebsCsiDriver`` (Auto Mode provisions the volume). Switching it on a running
    stack replaces the EKS cluster (Auto Mode gets its own cluster role, which EKS cannot change): use
    a new stack. Default false."""

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
        covered = coverage(value)
        if covered.wider_than(MAX_OPEN_PREFIX):
            raise ValueError(f"together these cover {covered.describe()}, more than a /{MAX_OPEN_PREFIX}: that is "
                             "the whole internet for an attacker; name the networks that need the API")
        if len(set(value)) != len(value):
            raise ValueError("a CIDR is listed twice")
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
        problem = None if self.auto_mode else self.system_nodes.size_problem()
        if problem:
            raise FieldProblem("systemNodes", problem)
        return self


class StackConfig(ConfigModel):
    """All of a stack's ``gpufleet:*`` configuration."""

    environment: Literal["dev", "staging", "prod"]
    """What the stack is for; ``prod`` turns advisory production checks into mandatory ones."""
    region: str
    """AWS region, e.g. ``us-west-2`` (one of ``AWS_REGIONS`` in ``infra/areas/base.py``)."""
    kubernetes_version: str = Field(json_schema_extra={"enum": list(EKS_SUPPORTED_VERSIONS)})
    """EKS Kubernetes minor version, a string (quote it in YAML: ``"1.35"``), one of the versions in EKS
    standard or extended support."""
    network: NetworkConfig = NetworkConfig()
    """The VPC."""
    cluster: ClusterConfig = ClusterConfig()
    """The EKS cluster."""
    tags: AwsTags = {}
    """Tags added to every AWS resource (besides ``gpufleet:stack`` and ``gpufleet:environment``): keys
    1-128, values up to 256 characters, no ``aws:`` prefix, at most 48."""
    hf_token: Optional[SecretStr] = None
    """Hugging Face access token, for gated models. Set it with ``pulumi config set --secret hfToken
    <token>`` (a plain value is refused); gpufleet keeps it a Pulumi secret and stores it as the
    Kubernetes Secret ``hf-token`` (key ``token``) in every namespace that serves models. Default none."""
    karpenter: KarpenterSection = KarpenterSection()
    """Karpenter: controller, IAM, interruption queue (not with ``cluster.autoMode``: EKS runs its own)."""
    gpu_pools: tuple[GpuPoolSection, ...] = Field((), max_length=100)
    """GPU NodePools (Karpenter NodePool + EC2NodeClass each; with ``cluster.autoMode`` an
    ``eks.amazonaws.com/v1`` NodeClass instead)."""
    gpu_operator: GpuOperatorSection = GpuOperatorSection()
    """NVIDIA GPU Operator: device plugin, GFD, sharing (time-slicing, MPS or MIG), DCGM exporter."""
    monitoring: MonitoringSection = MonitoringSection()
    """GPU alerts and dashboard."""
    teams: tuple[TeamSection, ...] = Field((), max_length=500)
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
        if value not in AWS_REGIONS:
            close = suggestion(value, sorted(AWS_REGIONS))
            hint = f"; did you mean {close}?" if close else ""
            raise ValueError(f"not an AWS region (e.g. us-west-2){hint}")
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
        siblings = keys_at(StackConfig, error["loc"][:-1])
        close = suggestion(str(error["loc"][-1]), siblings) if siblings else None
        if close:
            message = f"unknown key; did you mean {close}?" if len(error["loc"]) > 1 else \
                f"unknown key; did you mean {NAMESPACE}:{close}?"
    elif error["type"] == "missing":
        message = "required but not set"
    elif "input" in error and error["type"] not in ("model_type", "value_error", "assertion_error") \
            and error["loc"][:1] not in [(name,) for name in SECRET_KEYS]:
        shown = json.dumps(error["input"], default=str)
        if len(shown) <= 60:
            message += f" (got {shown})"
    return message


_REMEMBERED: dict[Any, StackConfig] = {}  # see remembered_config


@contextmanager
def remembered_config(raw: Mapping[str, str], secret_keys: Optional[Collection[str]], project: Optional[str],
                      config: StackConfig) -> Iterator[None]:
    """Within: :func:`parse_stack_config` of these arguments answers ``config`` without validating
    again (``gpufleet plan`` validates the map, then the program reads the same one)."""
    key = (frozenset(raw.items()), frozenset(secret_keys or ()), project)
    _REMEMBERED[key] = config
    try:
        yield
    finally:
        del _REMEMBERED[key]


def parse_stack_config(raw: Mapping[str, str], secret_keys: Optional[Collection[str]] = None,
                       project: Optional[str] = None) -> StackConfig:
    """Validate the ``gpufleet:*`` keys of an engine config map; keys of other namespaces must belong
    to Pulumi, a provider or the project itself (:func:`namespace_problems`) and are not read.

    ``secret_keys``: the keys the engine marks secret; when given, a :data:`SECRET_KEYS` value that
    is not one of them is refused. ``project``: the Pulumi project's name (a user's program reads its
    own ``<project>:*`` keys).
    """
    if _REMEMBERED and secret_keys is not None:
        remembered = _REMEMBERED.get((frozenset(raw.items()), frozenset(secret_keys), project))
        if remembered is not None:
            return remembered
    problems = namespace_problems([str(key) for key in raw], model_keys(StackConfig), project)
    if problems:
        raise ConfigError(problems)
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
        try:
            values[name] = _decode(text)
        except ValueError as error:
            raise ConfigError([f"{NAMESPACE}:{name}: {error}"]) from None
    try:
        config = StackConfig.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = error["loc"] or ("",)
            cause = (error.get("ctx") or {}).get("error")
            if isinstance(cause, FieldProblem):
                # "must be ..." about a field, found by its model's validator: named at the field.
                path = _field_path(loc) + ("" if cause.path.startswith("[") else ".") + cause.path
                problems.append(f"{path}: {cause.problem}")
                continue
            problems.append(f"{_field_path(loc)}: {_problem(error)}")
        raise ConfigError(problems) from None
    # Checks across sections (quotas vs pool limits, sharing vs instance types, ...).
    from gpufleet.infra.areas import AREAS

    problems = _stack_problems(config) + [problem for area in AREAS for problem in area.cross_check(config)]
    if problems:
        raise ConfigError(problems)
    return config


def _stack_problems(config: StackConfig) -> list[str]:
    """Rules on fields of several sections: ARNs in the region's partition; in prod, a public API
    endpoint must be acknowledged and no image may float on ``latest``."""
    problems = []
    if config.environment == "prod" and config.cluster.endpoint_public_access and not config.cluster.acknowledge_public_endpoint:
        problems.append(f"{NAMESPACE}:cluster.acknowledgePublicEndpoint: a prod stack with endpointPublicAccess: true must "
                        "set acknowledgePublicEndpoint: true (the Kubernetes API is then reachable from "
                        f"{', '.join(config.cluster.public_access_cidrs)}); or turn the public endpoint off")
    partition = partition_of(config.region)
    for path, arn in _arns(config):
        if arn and arn.split(":")[1] != partition:
            problems.append(f"{path}: {arn} is in partition {arn.split(':')[1]!r}, but region {config.region} is in "
                            f"{partition!r}: the ARN cannot be used there")
    if config.environment == "prod":
        for path, image in _images(config):
            if image_is_latest(image):
                problems.append(f"{path}: {image!r} floats on the 'latest' tag, refused in prod: pin a version "
                                "(and preferably a digest, @sha256:...)")
    return problems


def _arns(config: StackConfig) -> list[tuple[str, Optional[str]]]:
    """(field path, ARN) of every ARN the stack names."""
    found: list[tuple[str, Optional[str]]] = [
        (f"{NAMESPACE}:cluster.adminAccess[{i}].principalArn", entry.principal_arn)
        for i, entry in enumerate(config.cluster.admin_access)
    ]
    for i, team in enumerate(config.teams):
        found += [(f"{NAMESPACE}:teams[{i}].access[{k}].principalArn", entry.principal_arn)
                  for k, entry in enumerate(team.access)]
    found.append((f"{NAMESPACE}:modelCache.kmsKeyArn", config.model_cache.kms_key_arn))
    return found


def _images(config: StackConfig) -> list[tuple[str, Optional[str]]]:
    """(field path, image) of every image the stack names."""
    found: list[tuple[str, Optional[str]]] = []
    for i, service in enumerate(config.serving.inference_services):
        found.append((f"{NAMESPACE}:serving.inferenceServices[{i}].image", service.image))
        canary = getattr(service, "canary", None)
        if canary is not None:
            found.append((f"{NAMESPACE}:serving.inferenceServices[{i}].canary.image", getattr(canary, "image", None)))
    for i, triton in enumerate(getattr(config.serving, "triton_services", ())):
        found.append((f"{NAMESPACE}:serving.tritonServices[{i}].image", triton.image))
    for section in ("clusters", "jobs", "services"):
        for i, workload in enumerate(getattr(config.ray, section)):
            found.append((f"{NAMESPACE}:ray.{section}[{i}].image", workload.image))
    return found


def _decode(text: Any) -> Any:
    """Engine config values are strings; objects and lists arrive JSON-encoded (raises ValueError for
    JSON nested past the interpreter's recursion limit)."""
    if not isinstance(text, str):
        return text
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return text
        except RecursionError:
            raise ValueError("nested too deeply") from None
    return text


def load_from_pulumi() -> StackConfig:
    """The running program's stack configuration (raises :class:`ConfigError`)."""
    from pulumi.runtime.config import CONFIG, get_config_env, is_config_secret

    import pulumi

    raw = {**get_config_env(), **CONFIG.get()}
    return parse_stack_config(raw, secret_keys={key for key in raw if is_config_secret(key)},
                              project=pulumi.get_project())
