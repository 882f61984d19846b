"""The policy engine every gpufleet rule runs on, independent of the Pulumi policy SDK.

A rule is plain Python: it looks at :class:`Subject` s (one resource each: a Kubernetes manifest or
the inputs of a cloud resource) and returns messages. :func:`evaluate` runs every rule over a set of
subjects with a :class:`PolicyConfig` (enforcement levels, settings, production flag) and returns
:class:`Violation` s. The CrossGuard pack, ``gpufleet check`` and the plan integration all wrap this
module, so a rule behaves the same in CI, in ``pulumi preview`` and offline.

Values may be *unknown* while Pulumi previews (an Output not resolved yet): the engine passes a
sentinel in their place. Rules use :func:`as_number`, :func:`as_str` and :func:`is_unknown`, which
treat anything that is not a plain value where one is expected as unknown, and never flag an unknown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Literal, Mapping, Optional, Sequence, get_args

from gpufleet.policies.assumptions import (  # noqa: F401 - re-exported for rules and callers
    ASSUMPTION_TOKENS, ASSUMPTIONS, Assumption, UnknownNameError, nearest_name, parse_assumptions,
)

Enforcement = Literal["mandatory", "advisory", "disabled"]
ENFORCEMENT_LEVELS: tuple[str, ...] = get_args(Enforcement)

# Pulumi type tokens of Kubernetes resources that are not one object sent to the API server.
_NON_MANIFEST_PREFIXES = ("kubernetes:helm.sh/", "kubernetes:yaml", "kubernetes:kustomize")
HELM_RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"


# --------------------------------------------------------------------------------------------------
# Values that may be unknown or arrive as floats
# --------------------------------------------------------------------------------------------------

UNKNOWN_SENTINELS: frozenset[str] = frozenset({
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
    "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
    "04da6b54-80e4-46f7-96ec-b56ff0331ba9",  # string (also what the engine sends for any unknown)
    "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
    "030794c1-ac77-496b-92df-f27374a8bd58",  # asset
    "e48ece36-62e2-4504-bad9-02848725956a",  # archive
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
})
"""The strings the Pulumi engine and policy SDK put in place of values unknown during preview."""


def is_unknown(value: Any) -> bool:
    """An unknown value: one of the engine's sentinel strings, or anything that is neither a plain
    scalar nor a container (an SDK's unknown object)."""
    if isinstance(value, str):
        return value in UNKNOWN_SENTINELS
    if value is None or type(value) in (dict, list, int, float, bool, tuple):
        return False
    return not isinstance(value, (int, float, bool, list, tuple, dict, Mapping))


def contains_unknown(value: Any) -> bool:
    """``value`` or anything nested in it is unknown."""
    kind = type(value)  # plain data first, without typing.Mapping's slow isinstance check
    if kind is str:
        return value in UNKNOWN_SENTINELS
    if value is None or kind is bool or kind is int or kind is float:
        return False
    if kind is dict or kind is not list and kind is not tuple and isinstance(value, Mapping):
        items: Any = value.values()
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        return is_unknown(value)
    for item in items:
        if contains_unknown(item):
            return True
    return False


def as_number(value: Any) -> Optional[float]:
    """A number from an int, float (``2.0`` from the engine) or numeric string; None otherwise
    (absent, unknown, or not a number)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def as_str(value: Any) -> Optional[str]:
    """The string itself, or None when absent or unknown."""
    return value if isinstance(value, str) and value not in UNKNOWN_SENTINELS else None


def as_mapping(value: Any) -> Mapping[str, Any]:
    """The mapping itself, or an empty one (absent or unknown)."""
    if type(value) is dict:  # the common cases, without typing.Mapping's slow isinstance check
        return value
    if value is None or type(value) is str:
        return {}
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    """The list itself, or an empty one (absent or unknown)."""
    return list(value) if isinstance(value, (list, tuple)) else []


_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
_SUFFIX = {
    None: Decimal(1), "m": Decimal("0.001"), "k": Decimal(10) ** 3, "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9, "T": Decimal(10) ** 12, "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}


class Malformed(ValueError):
    """A quantity that is a string but not a Kubernetes quantity."""


def parse_quantity(value: Any) -> Optional[Decimal]:
    """A Kubernetes resource quantity (``"1"``, ``1``, ``2.0``, ``"500m"``, ``"4Gi"``) as a Decimal;
    None when absent or unknown. Raises :class:`Malformed` for a string that is no quantity."""
    if isinstance(value, bool) or is_unknown(value):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value.strip())
    if not match:
        raise Malformed(value)
    try:
        return Decimal(match.group(1)) * _SUFFIX[match.group(2)]
    except InvalidOperation as error:  # pragma: no cover - the regex admits only valid decimals
        raise Malformed(value) from error


def format_quantity(value: Decimal) -> str:
    """A Decimal as short text (``2``, ``0.5``)."""
    return format(value.normalize(), "f")


# --------------------------------------------------------------------------------------------------
# Subjects and violations
# --------------------------------------------------------------------------------------------------

def kubernetes_type(api_version: str, kind: str) -> str:
    """The Pulumi type token of a Kubernetes object: ``kubernetes:<group>/<version>:<Kind>``; the
    core group is ``core`` (``v1`` → ``core/v1``)."""
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{kind}"


@dataclass(frozen=True)
class Subject:
    """One resource under check.

    ``props`` of a Kubernetes object is its manifest as the API server gets it (camelCase); of any
    other type, its Pulumi inputs as the engine/analyzer sees them (camelCase). A subject is
    immutable, props included: what it tells about itself (kind, namespace, name, ...) is read once.
    """

    type: str
    """Pulumi type token, e.g. ``kubernetes:apps/v1:Deployment`` or ``aws:eks/cluster:Cluster``."""
    name: str
    """Pulumi logical name, or ``metadata.name`` for a plain manifest."""
    props: Mapping[str, Any]
    urn: str = ""

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], urn: str = "") -> "Subject":
        """A subject for a plain Kubernetes manifest (type derived from ``apiVersion``/``kind``)."""
        api_version = as_str(manifest.get("apiVersion")) or ""
        kind = as_str(manifest.get("kind")) or ""
        metadata = as_mapping(manifest.get("metadata"))
        name = as_str(metadata.get("name")) or as_str(metadata.get("generateName")) or ""
        return cls(kubernetes_type(api_version, kind), name, manifest, urn)

    @cached_property
    def is_kubernetes(self) -> bool:
        """A Kubernetes object (not a Helm release, YAML file group or cloud resource)."""
        return self.type.startswith("kubernetes:") and not self.type.startswith(_NON_MANIFEST_PREFIXES)

    @cached_property
    def is_helm_release(self) -> bool:
        return self.type == HELM_RELEASE_TYPE

    @cached_property
    def kind(self) -> str:
        """Kubernetes kind for Kubernetes objects; the last part of the type token otherwise."""
        if self.is_kubernetes:
            kind = as_str(self.props.get("kind"))
            if kind:
                return kind
        return self.type.rsplit(":", 1)[-1]

    @cached_property
    def api_version(self) -> str:
        """``apiVersion`` of a Kubernetes object (core group as ``v1``); empty for other types."""
        if not self.type.startswith("kubernetes:"):
            return ""
        declared = as_str(self.props.get("apiVersion"))
        if declared:
            return declared
        group_version = self.type.split(":")[1]
        return group_version[len("core/"):] if group_version.startswith("core/") else group_version

    @cached_property
    def group(self) -> str:
        """API group of a Kubernetes object (empty for the core group)."""
        api_version = self.api_version
        return api_version.rsplit("/", 1)[0] if "/" in api_version else ""

    @cached_property
    def metadata(self) -> Mapping[str, Any]:
        return as_mapping(self.props.get("metadata"))

    @cached_property
    def spec(self) -> Mapping[str, Any]:
        return as_mapping(self.props.get("spec"))

    @cached_property
    def object_name(self) -> str:
        """``metadata.name`` when known, else the logical name (Pulumi auto-naming; a manifest with only
        ``generateName``: that prefix)."""
        return as_str(self.metadata.get("name")) or self.name or as_str(self.metadata.get("generateName")) or ""

    @cached_property
    def namespace(self) -> str:
        """``metadata.namespace`` of a Kubernetes object (a Helm release: its ``namespace`` input);
        ``default`` when a namespaced object names none; empty for cluster-scoped kinds and cloud
        resources."""
        if self.is_helm_release:
            return as_str(self.props.get("namespace")) or "default"
        if not self.is_kubernetes:
            return ""
        declared = self.metadata.get("namespace")
        if is_unknown(declared):
            return ""
        if isinstance(declared, str) and declared:
            return declared
        return "" if (self.group, self.kind) in CLUSTER_SCOPED else "default"

    @cached_property
    def labels(self) -> Mapping[str, Any]:
        return as_mapping(self.metadata.get("labels"))

    @cached_property
    def annotations(self) -> Mapping[str, Any]:
        return as_mapping(self.metadata.get("annotations"))

    def derived(self, key: str, compute: Callable[["Subject"], Any]) -> Any:
        """``compute(self)``, computed once per subject (subjects are immutable): rules share derived
        facts such as pod templates without recomputing them for every rule."""
        cache = self.__dict__.get("_derived")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_derived", cache)
        if key not in cache:
            cache[key] = compute(self)
        return cache[key]

    def is_a(self, group: str, kind: str) -> bool:
        """This is a Kubernetes object of ``group`` (``""`` = core) and ``kind``, any version."""
        return self.is_kubernetes and self.kind == kind and self.group == group


CLUSTER_SCOPED: frozenset[tuple[str, str]] = frozenset({
    ("", "Namespace"), ("", "Node"), ("", "PersistentVolume"),
    ("rbac.authorization.k8s.io", "ClusterRole"), ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("scheduling.k8s.io", "PriorityClass"), ("storage.k8s.io", "StorageClass"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"), ("node.k8s.io", "RuntimeClass"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("karpenter.sh", "NodePool"), ("karpenter.sh", "NodeClaim"), ("karpenter.sh", "NodeOverlay"),
    ("karpenter.k8s.aws", "EC2NodeClass"), ("kueue.x-k8s.io", "ClusterQueue"),
    ("kueue.x-k8s.io", "ResourceFlavor"), ("kueue.x-k8s.io", "Cohort"), ("kueue.x-k8s.io", "Topology"),
    ("kueue.x-k8s.io", "WorkloadPriorityClass"), ("nvidia.com", "ClusterPolicy"),
    ("nvidia.com", "NVIDIADriver"), ("serving.kserve.io", "ClusterServingRuntime"),
    ("serving.kserve.io", "ClusterStorageContainer"), ("keda.sh", "ClusterTriggerAuthentication"),
    ("eksctl.io", "ClusterConfig"), ("resource.k8s.io", "DeviceClass"),
    ("trainer.kubeflow.org", "ClusterTrainingRuntime"),
})
"""Cluster-scoped kinds among those the rules look at (they have no namespace)."""


@dataclass(frozen=True)
class Violation:
    """One rule broken by one resource."""

    policy: str
    enforcement: str
    kind: str
    namespace: str
    name: str
    message: str
    urn: str = ""

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"[{self.enforcement}] {self.policy}: {self.kind} {where}: {self.message}"


# --------------------------------------------------------------------------------------------------
# Rules and their configuration
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RuleContext:
    """What a rule's check sees besides the subjects: its settings (defaults merged with the pack
    config), whether the stack is production, and what the cluster is assumed to provide beyond the
    checked resources (:data:`ASSUMPTIONS`)."""

    settings: Mapping[str, Any] = field(default_factory=dict)
    production: bool = False
    assume: frozenset[str] = frozenset()
    """Assumption tokens in force (``dcgm-exporter``, ``node-pools=external``, ...)."""

    def assumes(self, token: str) -> bool:
        """Is ``token`` (an entry of :data:`ASSUMPTION_TOKENS`) assumed?"""
        return token in self.assume

    def __getitem__(self, key: str) -> Any:
        return self.settings[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)


ResourceCheck = Callable[[Subject, RuleContext], Iterable[str]]
StackCheck = Callable[[Sequence[Subject], RuleContext], Iterable[tuple[Subject, str]]]


@dataclass(frozen=True)
class Rule:
    """One policy: a fully qualified name, what it guards and why, and its check(s)."""

    name: str
    description: str
    enforcement: Enforcement = "mandatory"
    """Default enforcement level (development stacks)."""
    production_enforcement: Optional[Enforcement] = None
    """Default level on production stacks; None = same as :attr:`enforcement`."""
    settings_schema: Mapping[str, Any] = field(default_factory=dict)
    """JSON-schema ``properties`` of the rule's settings (the pack's config schema)."""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """Default value of every setting in :attr:`settings_schema`."""
    check_resource: Optional[ResourceCheck] = None
    """Resource rule: messages about one subject."""
    check_stack: Optional[StackCheck] = None
    """Cross-resource rule: (subject, message) pairs over every subject of the stack."""
    summary: str = ""
    """What it guards, in a line (``gpufleet rules``, SARIF short description)."""
    why: str = ""
    """Why it matters in production (the production checklist's reason), for ``gpufleet rules explain``."""
    fix: str = ""
    """How to fix a violation."""
    example: str = ""
    """A passing example: YAML documents, Kubernetes manifests or, for cloud resources, a Pulumi resource
    as ``{pulumiType: <type token>, name: <name>, props: {<inputs>}}`` (see :func:`example_subjects`)."""

    def default_enforcement(self, production: bool) -> Enforcement:
        if production and self.production_enforcement is not None:
            return self.production_enforcement
        return self.enforcement


_RESERVED_KEYS = ("enforcementLevel",)


@dataclass(frozen=True)
class PolicyConfig:
    """Enforcement levels and settings for a run, shaped like Pulumi's policy pack config.

    Precedence for a rule's level: its own ``enforcementLevel`` > ``all`` > the rule's default (its
    production default when :attr:`production`).
    """

    production: bool = False
    """The stack is production: production defaults apply (``eks-*`` rules mandatory, no
    time-slicing)."""
    all: Optional[Enforcement] = None
    """Level for every rule without its own."""
    enforcement: Mapping[str, Enforcement] = field(default_factory=dict)
    """Rule name → level."""
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Rule name → settings overriding the rule's defaults."""
    assume: frozenset[str] = frozenset()
    """Assumptions for every rule (top-level ``assume``); a rule's own ``assume`` setting adds to them."""

    @classmethod
    def from_mapping(cls, data: Optional[Mapping[str, Any]]) -> "PolicyConfig":
        """Read the pack config JSON shape::

            {"all": "mandatory" | {"enforcementLevel": ...},
             "<rule>": "advisory" | {"enforcementLevel": ..., "<setting>": ...},
             "production": true,
             "assume": ["dcgm-exporter", "node-pools=external"]}

        as ``pulumi preview --policy-pack-config`` takes it (``production`` and ``assume`` only here: the
        Pulumi CLI takes a level or an object per key). Raises ValueError naming the key for
        an unknown level or a malformed entry.
        """
        data = data or {}
        production = data.get("production", False)
        if not isinstance(production, bool):
            raise ValueError(f"policy config: production must be true or false, not {production!r}")
        all_level: Optional[Enforcement] = None
        enforcement: dict[str, Enforcement] = {}
        settings: dict[str, dict[str, Any]] = {}
        assume = data.get(ASSUME_KEY, [])
        if not isinstance(assume, (list, tuple)):
            raise ValueError(f"policy config: {ASSUME_KEY} must be a list of assumptions, not {assume!r}")
        assumed = parse_assumptions(assume, f"policy config: {ASSUME_KEY}")
        for key, value in data.items():
            if key in ("production", ASSUME_KEY):
                continue
            if isinstance(value, str):
                level, extra = _level(key, value), {}
            elif isinstance(value, Mapping):
                raw = value.get("enforcementLevel")
                level = _level(key, raw) if raw is not None else None
                extra = {k: v for k, v in value.items() if k not in _RESERVED_KEYS}
            else:
                raise ValueError(f"policy config: {key} must be a level or an object, not {value!r}")
            if key == "all":
                all_level = level
                continue
            if level is not None:
                enforcement[key] = level
            if extra:
                if ASSUME_KEY in extra:
                    rule_assume = extra[ASSUME_KEY]
                    if not isinstance(rule_assume, (list, tuple)):
                        raise ValueError(f"policy config: {key}.{ASSUME_KEY} must be a list of assumptions, "
                                         f"not {rule_assume!r}")
                    parse_assumptions(rule_assume, f"policy config: {key}.{ASSUME_KEY}")
                settings[key] = extra
        return cls(production=production, all=all_level, enforcement=enforcement, settings=settings, assume=assumed)

    def enforcement_for(self, rule: Rule) -> Enforcement:
        if rule.name in self.enforcement:
            return self.enforcement[rule.name]
        if self.all is not None:
            return self.all
        return rule.default_enforcement(self.production)

    def settings_for(self, rule: Rule) -> dict[str, Any]:
        return {**rule.defaults, **self.settings.get(rule.name, {})}

    def assume_for(self, rule: Rule) -> frozenset[str]:
        """The config-wide assumptions plus the rule's own ``assume`` setting."""
        own = self.settings.get(rule.name, {}).get(ASSUME_KEY) or ()
        return self.assume | parse_assumptions(own, f"{rule.name}.{ASSUME_KEY}")

    def context_for(self, rule: Rule) -> RuleContext:
        return RuleContext(settings=self.settings_for(rule), production=self.production, assume=self.assume_for(rule))


ASSUME_KEY = "assume"
"""Config key of the assumptions: top-level in ``gpufleet check --config``, and a setting every policy
takes (the only form ``--policy-pack-config`` can carry)."""

CONFIG_KEYWORDS: tuple[str, ...] = ("all", "production", ASSUME_KEY)
"""Top-level config keys that are not rule names."""


def unknown_config_keys(data: Mapping[str, Any], rule_names: Iterable[str]) -> list[UnknownNameError]:
    """Keys of a check config that name no rule (nor ``all``/``production``/``assume``), each with the
    nearest valid name."""
    valid = [*rule_names]
    return [UnknownNameError("rule", key, [*valid, *CONFIG_KEYWORDS], "policy config") for key in data
            if key not in CONFIG_KEYWORDS and key not in valid]


def example_subjects(rule: Rule) -> list[Subject]:
    """The subjects of ``rule.example``: Kubernetes manifests, or Pulumi resources written as
    ``{pulumiType, name, props}`` (the policy test fixtures' form)."""
    import yaml

    subjects = []
    for document in yaml.safe_load_all(rule.example):
        if not isinstance(document, Mapping):
            continue
        if "pulumiType" in document:
            subjects.append(Subject(str(document["pulumiType"]), str(document.get("name", "example")),
                                    as_mapping(document.get("props"))))
        else:
            subjects.append(Subject.from_manifest(document))
    return subjects


def _level(key: str, value: Any) -> Enforcement:
    if value == "remediate":
        return "mandatory"  # gpufleet's rules do not remediate: they reject.
    if value not in ENFORCEMENT_LEVELS:
        raise ValueError(
            f"policy config: {key}.enforcementLevel must be one of {', '.join(ENFORCEMENT_LEVELS)}, not {value!r}"
        )
    return value  # type: ignore[return-value]


def violation(rule: Rule, level: str, subject: Subject, message: str) -> Violation:
    return Violation(
        policy=rule.name, enforcement=level, kind=subject.kind, namespace=subject.namespace,
        name=subject.object_name, message=message, urn=subject.urn,
    )


def evaluate(
    subjects: Sequence[Subject],
    config: Optional[PolicyConfig] = None,
    rules: Optional[Sequence[Rule]] = None,
) -> list[Violation]:
    """Run every enabled rule (default: all of gpufleet's) over ``subjects``; resource rules on each
    subject, stack rules once over all of them."""
    if rules is None:
        from gpufleet.policies.rules import RULES

        rules = RULES
    config = config or PolicyConfig()
    subjects = list(subjects)
    found: list[Violation] = []
    for rule in rules:
        level = config.enforcement_for(rule)
        if level == "disabled":
            continue
        context = config.context_for(rule)
        if rule.check_resource is not None:
            for subject in subjects:
                for message in rule.check_resource(subject, context):
                    found.append(violation(rule, level, subject, message))
        if rule.check_stack is not None:
            for subject, message in rule.check_stack(subjects, context):
                found.append(violation(rule, level, subject, message))
    return found
