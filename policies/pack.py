"""gpufleet's rules as Pulumi CrossGuard policies (``pulumi_policy`` objects).

:func:`build_policies` turns every :class:`~gpufleet.policies.core.Rule` into a
``ResourceValidationPolicy`` (resource rules) or ``StackValidationPolicy`` (cross-resource rules)
with a config schema made of the rule's settings. The pack's ``__main__.py`` hands these to
``PolicyPack``; the offline analyzer harness (:mod:`gpufleet.policies.analyzer`) drives the very same
objects through the analyzer servicer, so ``gpufleet plan`` and ``pulumi preview --policy-pack``
judge a stack identically.

This module never constructs a ``PolicyPack``: that constructor starts a gRPC server and blocks
forever, so importing a module that builds one would hang the importer.

Two things the engine does that a rule must survive are handled here, once, for every rule:

* numbers arrive as floats (``replicas: 2.0``), in properties and in policy config alike;
* during ``pulumi preview`` a value computed from an unresolved Output arrives as one of the engine's
  unknown sentinels. ``pulumi_policy`` wraps properties in a proxy that raises on touching one; the
  wrappers here unwrap that proxy and put :data:`UNKNOWN` in place of each sentinel, which
  :func:`gpufleet.policies.core.is_unknown` recognises, so rules skip what is not known yet instead
  of being aborted for the whole resource.
"""

from __future__ import annotations

import json
import os
from collections import abc as _abc
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Optional, Sequence

if TYPE_CHECKING:  # pulumi_policy imports the Pulumi SDK: `gpufleet check` (exemptions, settings) does without
    from pulumi_policy import (
        EnforcementLevel,
        Policy,
        PolicyConfigSchema,
        ReportViolation,
        ResourceValidationArgs,
        StackValidationArgs,
    )

from gpufleet.policies.core import (
    ASSUME_KEY, ASSUMPTION_TOKENS, UNKNOWN_SENTINELS, PolicyConfig, Rule, RuleContext, Subject, Violation,
    parse_assumptions,
)

PACK_NAME = "gpufleet-gpu-production"
"""Name of the CrossGuard pack (``PolicyPack(PACK_NAME, ...)``)."""

ENVIRONMENT_CONFIG_KEY = "gpufleet:environment"
"""Stack config key naming the environment; ``prod`` makes the pack apply its production defaults."""

ASSUME_CONFIG_KEY = "gpufleet:policyAssume"
"""Stack config key with pack-wide assumptions (comma-separated, as ``gpufleet check --assume``)."""

ASSUME_ENV_VAR = "GPUFLEET_POLICY_ASSUME"
"""Environment variable with pack-wide assumptions (comma-separated); wins over the stack config key."""

PRODUCTION_ENV_VAR = "GPUFLEET_POLICY_PRODUCTION"
"""Environment variable forcing production defaults on (``true``) or off (``false``) for stacks
whose config has no ``gpufleet:environment`` (e.g. a program that only imports gpufleet components)."""

def _levels() -> Mapping[str, "EnforcementLevel"]:
    from pulumi_policy import EnforcementLevel

    return {
        "advisory": EnforcementLevel.ADVISORY,
        "mandatory": EnforcementLevel.MANDATORY,
        "disabled": EnforcementLevel.DISABLED,
    }


_SENTINEL_CHECK: list[Callable[[Any], bool]] = []


def _is_unknown_sentinel(value: Any) -> bool:
    """``pulumi_policy``'s own test for the engine's unknown sentinels (imported on first use)."""
    if not _SENTINEL_CHECK:
        from pulumi_policy.proxy import _is_unknown

        _SENTINEL_CHECK.append(_is_unknown)
    return _SENTINEL_CHECK[0](value)


class _Unknown:
    """A value Pulumi cannot know during preview (computed from an unresolved Output)."""

    _instance: Optional["_Unknown"] = None

    def __new__(cls) -> "_Unknown":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown during preview>"


UNKNOWN = _Unknown()
"""Stands in for every unknown value the engine sends; never a plain scalar or container."""


class PlainSource:
    """A properties object that knows its plain data: :func:`plain_props` answers :meth:`plain`
    instead of reading through the object (the offline harness's lazily built proxy,
    :mod:`gpufleet.policies.wire`, whose reads would give the same values)."""

    def plain(self) -> Any:
        raise NotImplementedError


def plain_props(value: Any) -> Any:
    """Properties as ``pulumi_policy`` hands them to a policy → plain dicts and lists, with
    :data:`UNKNOWN` in place of the engine's unknown sentinels.

    ``pulumi_policy`` wraps properties in proxies (``_DictProxy``/``_ListProxy``, Mappings and
    Sequences but not ``dict``/``list``) that raise ``UnknownValueError`` on touching an unknown; the
    raw values sit behind their ``"__target"`` key, the same door ``pulumi_policy``'s own
    serializer uses.
    """
    kind = type(value)
    if kind is str:  # the common leaves first: no ABC isinstance checks on the hot path
        return UNKNOWN if value in UNKNOWN_SENTINELS else value
    if kind is dict:  # string leaves inline, without a call each
        return {key: (UNKNOWN if item in UNKNOWN_SENTINELS else item) if type(item) is str else plain_props(item)
                for key, item in value.items()}
    if kind is list or kind is tuple:
        return [(UNKNOWN if item in UNKNOWN_SENTINELS else item) if type(item) is str else plain_props(item)
                for item in value]
    if kind is float or kind is int or kind is bool or value is None:
        return value
    if isinstance(value, PlainSource):
        return value.plain()
    if isinstance(value, _abc.Mapping) or isinstance(value, _abc.Sequence) and not isinstance(value, (str, bytes)):
        target = _proxy_target(value)
        if target is not None:
            value = target
    if isinstance(value, _abc.Mapping):
        return {key: plain_props(value[key]) for key in value}
    if isinstance(value, (list, tuple)):
        return [plain_props(item) for item in value]
    if _is_unknown_sentinel(value):
        return UNKNOWN
    return value


def _proxy_target(value: Any) -> Any:
    """The wrapped container of a ``pulumi_policy`` proxy; None for anything else."""
    if isinstance(value, (dict, list, tuple)):
        return None
    try:
        return value["__target"]
    except (KeyError, IndexError, TypeError):
        return None


class _SubjectCache:
    """One :class:`Subject` per resource for all policies, while :attr:`active` (the offline harness,
    :func:`gpufleet.policies.wire.shared_conversion`, turns it on while it calls the analyzer).

    There the servicer hands every policy (and both calls) the very same properties object for a
    resource, so the
    subject (its :func:`plain_props` conversion, and what rules derive from it: pod templates and
    their cross-resource resolution) is made once and shared, as ``gpufleet check`` shares it. An
    entry is found by the identity of the properties object (held, so the identity is never reused)
    plus the resource's type, name and URN. Inactive (under the Pulumi CLI, where every policy gets
    its own copy), each call converts afresh, as before."""

    def __init__(self) -> None:
        self.active = False
        self._entries: dict[tuple[int, str, str, str], tuple[Any, Subject]] = {}

    def get(self, type_: str, name: str, urn: str, props: Any) -> Subject:
        if not self.active:
            return Subject(type_, name, plain_props(props), urn)
        key = (id(props), type_, name, urn)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is props:
            return entry[1]
        subject = Subject(type_, name, plain_props(props), urn)
        self._entries[key] = (props, subject)
        return subject

    def clear(self) -> None:
        self._entries.clear()


SUBJECTS = _SubjectCache()
"""The process's subject cache (:class:`_SubjectCache`)."""


EXEMPT_SETTING = "exempt"
"""Setting every policy takes: glob patterns of resources the policy leaves alone."""

EXEMPT_SCHEMA: Mapping[str, Any] = {
    "type": "array",
    "items": {"type": "string", "minLength": 1},
    "description": (
        "Resources this policy does not judge: glob patterns matched against Kind/namespace/name "
        "(Kind/name for cluster-scoped objects and cloud resources), e.g. Deployment/research/*, */sandbox/*."
    ),
    "default": [],
}


ASSUME_SCHEMA: Mapping[str, Any] = {
    "type": "array",
    "items": {"type": "string", "enum": list(ASSUMPTION_TOKENS)},
    "description": (
        "What the cluster provides outside the resources under analysis (gpufleet.policies.assumptions), e.g. "
        "dcgm-exporter, gpu-quota, disruption-budgets, node-pools=external: the policies that read an "
        "assumption stop judging what it covers."
    ),
    "default": [],
}
"""Setting every policy takes: the same ``assume`` key as ``gpufleet check`` (per policy here, since
``--policy-pack-config`` only takes a level or an object per key)."""


def resource_path(kind: str, namespace: str, name: str) -> str:
    """What exemption patterns match: ``Kind/namespace/name`` or ``Kind/name``."""
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def is_exempt(kind: str, namespace: str, name: str, patterns: Any) -> bool:
    """Does an exemption pattern of the policy's ``exempt`` setting name this resource?"""
    if not isinstance(patterns, (list, tuple)):
        return False
    path = resource_path(kind, namespace, name)
    return any(isinstance(p, str) and fnmatchcase(path, p) for p in patterns)


def without_exempt(violations: Iterable[Violation], rules: Sequence[Rule], config: PolicyConfig) -> list[Violation]:
    """``violations`` minus those on resources their policy's ``exempt`` setting names (for callers
    of :func:`gpufleet.policies.core.evaluate`, which knows nothing of exemptions)."""
    patterns = {rule.name: config.settings_for(rule).get(EXEMPT_SETTING) for rule in rules}
    return [v for v in violations if not is_exempt(v.kind, v.namespace, v.name, patterns.get(v.policy))]


def settings_problems(data: Mapping[str, Any], rules: Sequence[Rule]) -> list[str]:
    """Problems with the settings a pack config JSON gives each rule, judged by the policies'
    config schemas as the Pulumi CLI judges ``--policy-pack-config`` (unknown keys are ignored)."""
    problems: list[str] = []
    for rule in rules:
        given = data.get(rule.name)
        if not isinstance(given, Mapping):
            continue
        import jsonschema  # only when some rule is given settings

        settings = {k: v for k, v in given.items() if k != "enforcementLevel"}
        schema = {"type": "object", "properties": config_schema(rule).properties}
        for error in jsonschema.Draft7Validator(schema).iter_errors(settings):
            where = ".".join(str(p) for p in error.path)
            problems.append(f"{rule.name}: {where + ': ' if where else ''}{error.message}")
    return problems


def config_schema(rule: Rule) -> "PolicyConfigSchema":
    """The rule's settings as a CrossGuard config schema: each setting's JSON schema with its
    ``default`` (the engine fills defaults from the schema before calling ``Configure``), plus the
    ``exempt`` list every policy takes."""
    properties: dict[str, dict[str, Any]] = {}
    for key, schema in rule.settings_schema.items():
        entry = dict(schema)
        if key in rule.defaults and "default" not in entry:
            entry["default"] = _jsonable(rule.defaults[key])
        properties[key] = entry
    properties.setdefault(EXEMPT_SETTING, dict(EXEMPT_SCHEMA))
    properties.setdefault(ASSUME_KEY, dict(ASSUME_SCHEMA))
    from pulumi_policy import PolicyConfigSchema

    return PolicyConfigSchema(properties=properties)


def _jsonable(value: Any) -> Any:
    """Tuples and frozensets in rule defaults → lists, as JSON (and the engine) knows them."""
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_jsonable(v) for v in value]
        return sorted(items) if isinstance(value, (set, frozenset)) else items
    return value


def _context(rule: Rule, config: Mapping[str, Any], production: bool, assume: frozenset[str] = frozenset()) -> RuleContext:
    """Rule defaults overlaid with the config the engine sent for this policy; the pack-wide
    assumptions plus the policy's own ``assume`` setting."""
    settings = {**rule.defaults, **{k: plain_props(v) for k, v in config.items() if k != "enforcementLevel"}}
    own = settings.get(ASSUME_KEY)
    own_tokens = [t for t in own if isinstance(t, str)] if isinstance(own, (list, tuple)) else []
    return RuleContext(settings=settings, production=production,
                       assume=assume | parse_assumptions(own_tokens, f"{rule.name}.{ASSUME_KEY}"))


class _Contexts:
    """A policy's :func:`_context` (and its ``exempt`` patterns) per config it is handed, made once:
    the servicer hands each call a shallow copy of the same config, so the entry is found by the keys
    and the identity of the values (the first copy is held, so those identities are not reused)."""

    def __init__(self, rule: Rule, production: bool, assume: frozenset[str]):
        self.rule, self.production, self.assume = rule, production, assume
        self._entries: dict[tuple[Any, ...], tuple[Mapping[str, Any], RuleContext, Any]] = {}
        empty = self._make({})
        self._last: tuple[list[str], list[int], tuple[Mapping[str, Any], RuleContext, Any]] = ([], [], empty)

    def __call__(self, config: Optional[Mapping[str, Any]]) -> tuple[RuleContext, Any]:
        if not config:
            config = {}
        keys, ids, entry = self._last
        values = list(map(id, config.values()))
        if values != ids or list(config) != keys:  # not the config of the last call (the common case)
            key = (tuple(config), tuple(values))
            found = self._entries.get(key)
            if found is None:
                if len(self._entries) >= 16:
                    self._entries.clear()
                found = self._entries[key] = self._make(config)
            entry = found
            self._last = (list(config), values, entry)  # the entry holds its config: the ids stay unique
        return entry[1], entry[2]

    def _make(self, config: Mapping[str, Any]) -> tuple[Mapping[str, Any], RuleContext, Any]:
        context = _context(self.rule, config, self.production, self.assume)
        return config, context, context.get(EXEMPT_SETTING)


def _exempt(subject: Subject, patterns: Any) -> bool:
    if not patterns:
        return False  # the common case: no exemptions, no resource path to build
    return is_exempt(subject.kind, subject.namespace, subject.object_name, patterns)


def _resource_validation(rule: Rule, production: bool, assume: frozenset[str]) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    check = rule.check_resource
    assert check is not None

    contexts = _Contexts(rule, production, assume)
    subjects = SUBJECTS

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        subject = subjects.get(args.resource_type, args.name, args.urn, args.props)
        context, exempt = contexts(args.get_config())
        if exempt and _exempt(subject, exempt):
            return
        for message in check(subject, context):
            report_violation(message, None)

    return validate


def _stack_validation(rule: Rule, production: bool, assume: frozenset[str]) -> Callable[[StackValidationArgs, ReportViolation], None]:
    check = rule.check_stack
    assert check is not None

    contexts = _Contexts(rule, production, assume)

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        get = SUBJECTS.get
        subjects = [get(r.resource_type, r.name, r.urn, r.props) for r in args.resources]
        context, exempt = contexts(args.get_config())
        for subject, message in check(subjects, context):
            if not _exempt(subject, exempt):
                report_violation(message, subject.urn or None)

    return validate


def build_policies(
    rules: Optional[Sequence[Rule]] = None, *, production: bool = False, assume: frozenset[str] = frozenset()
) -> list["Policy"]:
    """One CrossGuard policy per rule check (default: all of gpufleet's rules), with the pack-wide
    ``assume`` tokens (:func:`assume_from_environ`) in every policy's context.

    A rule with both a resource and a stack check yields two policies, the stack one named
    ``<rule>-stack`` (policy names are unique within a pack). Default enforcement levels are the
    rules' own, or their production defaults when ``production``.
    """
    if rules is None:
        from gpufleet.policies.rules import RULES

        rules = RULES
    from pulumi_policy import ResourceValidationPolicy, StackValidationPolicy

    levels = _levels()
    policies: list["Policy"] = []
    for rule in rules:
        level = levels[rule.default_enforcement(production)]
        schema = config_schema(rule)
        if rule.check_resource is not None:
            policies.append(ResourceValidationPolicy(
                name=rule.name,
                description=rule.description,
                validate=_resource_validation(rule, production, assume),
                enforcement_level=level,
                config_schema=schema,
            ))
        if rule.check_stack is not None:
            policies.append(StackValidationPolicy(
                name=stack_policy_name(rule),
                description=rule.description,
                validate=_stack_validation(rule, production, assume),
                enforcement_level=level,
                config_schema=schema,
            ))
    return policies


def stack_policy_name(rule: Rule) -> str:
    """Name of the stack policy of ``rule``: the rule's own name unless it also has a resource check."""
    return f"{rule.name}-stack" if rule.check_resource is not None else rule.name


def rule_for_policy(rules: Iterable[Rule], policy_name: str) -> Optional[Rule]:
    """The rule a policy was built from."""
    for rule in rules:
        if policy_name in (rule.name, stack_policy_name(rule)):
            return rule
    return None


def production_from_environ(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether the stack under analysis is production, as the pack process learns it.

    The Pulumi CLI starts a policy pack with the stack's config as JSON in ``PULUMI_CONFIG``; a stack
    whose ``gpufleet:environment`` is ``prod`` is production. ``GPUFLEET_POLICY_PRODUCTION``
    (``true``/``false``) overrides it. (A top-level ``"production"`` key is not possible in
    ``--policy-pack-config``: the CLI accepts only a level or an object per key.)
    """
    environ = os.environ if environ is None else environ
    forced = environ.get(PRODUCTION_ENV_VAR, "").strip().lower()
    if forced in ("1", "true", "yes"):
        return True
    if forced in ("0", "false", "no"):
        return False
    try:
        config = json.loads(environ.get("PULUMI_CONFIG") or "{}")
    except json.JSONDecodeError:
        return False
    return isinstance(config, dict) and config.get(ENVIRONMENT_CONFIG_KEY) == "prod"


def assume_from_environ(environ: Optional[Mapping[str, str]] = None) -> frozenset[str]:
    """Pack-wide assumptions, as the pack process learns them: ``GPUFLEET_POLICY_ASSUME``, else the
    stack config key ``gpufleet:policyAssume`` (from ``PULUMI_CONFIG``); comma-separated, as
    ``gpufleet check --assume``. An unknown assumption raises ValueError naming the nearest valid one:
    the pack refuses to start rather than judge with an assumption nobody meant."""
    environ = os.environ if environ is None else environ
    raw = environ.get(ASSUME_ENV_VAR)
    where = ASSUME_ENV_VAR
    if raw is None:
        try:
            config = json.loads(environ.get("PULUMI_CONFIG") or "{}")
        except json.JSONDecodeError:
            config = {}
        raw = config.get(ASSUME_CONFIG_KEY, "") if isinstance(config, dict) else ""
        where = ASSUME_CONFIG_KEY
    return parse_assumptions([raw] if isinstance(raw, str) else [], where)


def default_enforcement(production: bool) -> "EnforcementLevel":
    """The pack-wide level for policies without one (every gpufleet policy sets its own)."""
    from pulumi_policy import EnforcementLevel

    return EnforcementLevel.MANDATORY if production else EnforcementLevel.ADVISORY
