"""Run the CrossGuard pack offline, the way the Pulumi engine runs it.

``pulumi preview --policy-pack DIR`` starts the pack (whose ``PolicyPack`` serves ``pulumi_policy``'s
analyzer servicer over gRPC) and then talks to it: ``GetAnalyzerInfo``, ``Configure`` with the
reconciled pack config, ``Analyze`` once per resource with its inputs, and ``AnalyzeStack`` once at
the end with every resource's outputs. :class:`PolicyAnalyzer` builds that same servicer from the same
policy objects (:func:`gpufleet.policies.pack.build_policies`) without starting a server and sends it
the same protobuf requests, built from what the offline engine recorded: properties as the engine
marshals them (a protobuf ``Struct``: every number a double, unknowns as the preview sentinel,
secrets as signature objects, ``__``-prefixed internal keys dropped), resource options, provider.

:func:`analyze_recording` is what ``gpufleet plan`` uses: one call over a whole
:class:`~gpufleet.infra.offline.engine.Recording`, answering :class:`~gpufleet.policies.core.Violation` s.
"""

from __future__ import annotations

import gc
import json
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Optional, Sequence

import jsonschema
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import Policy
from pulumi_policy.policy import _PolicyAnalyzerServicer

from gpufleet import __version__ as PACK_VERSION  # PulumiPolicy.yaml's ``version`` wins under the real CLI
from gpufleet.policies.core import Rule, Subject, Violation
from gpufleet.policies.pack import PACK_NAME, build_policies, default_enforcement, plain_props
from gpufleet.policies.wire import identical, shared_conversion, to_struct


if TYPE_CHECKING:  # the engine imports the Pulumi runtime; only type hints need it here
    from gpufleet.infra.offline.engine import Recording, RegisteredResource


_LEVEL_NAMES = {
    analyzer_pb2.ADVISORY: "advisory",
    analyzer_pb2.MANDATORY: "mandatory",
    analyzer_pb2.DISABLED: "disabled",
    analyzer_pb2.REMEDIATE: "remediate",
}
_LEVEL_VALUES = {name: value for value, name in _LEVEL_NAMES.items()}


class PolicyConfigError(ValueError):
    """A pack config the Pulumi CLI would refuse; ``problems`` holds one message each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class AnalyzerResource:
    """One resource as the engine describes it to an analyzer."""

    urn: str
    type: str
    name: str
    properties: Mapping[str, Any]
    """Wire form: what ``json_format.MessageToDict`` gives for the engine's ``Struct``."""
    parent: str = ""
    dependencies: Sequence[str] = ()
    protect: bool = False
    ignore_changes: Sequence[str] = ()
    delete_before_replace: Optional[bool] = None
    aliases: Sequence[str] = ()
    provider: Optional["AnalyzerResource"] = None

    @classmethod
    def from_registered(
        cls,
        resource: "RegisteredResource",
        *,
        outputs: bool = False,
        by_urn: Optional[Mapping[str, "RegisteredResource"]] = None,
        providers: Optional[dict[str, "AnalyzerResource"]] = None,
    ) -> "AnalyzerResource":
        """The engine's view of a recorded registration: ``Analyze`` sees its inputs,
        ``AnalyzeStack`` its outputs (``outputs=True``). ``providers``: provider URN → its view,
        shared between calls (filled as providers are met)."""
        provider = None
        provider_urn = resource.provider.rsplit("::", 1)[0] if resource.provider else ""
        if by_urn and provider_urn in by_urn:
            provider = providers.get(provider_urn) if providers is not None else None
            if provider is None:
                registered = by_urn[provider_urn]
                provider = cls(registered.urn, registered.type, registered.name, registered.inputs)
                if providers is not None:
                    providers[provider_urn] = provider
        properties = resource.outputs if outputs and resource.outputs else resource.inputs
        return cls(
            urn=resource.urn,
            type=resource.type,
            name=resource.name,
            properties=properties,
            parent=resource.parent,
            dependencies=tuple(resource.dependencies),
            protect=resource.protect,
            ignore_changes=tuple(resource.ignore_changes),
            delete_before_replace=resource.delete_before_replace or None,
            aliases=tuple(a for a in resource.aliases if isinstance(a, str) and a.startswith("urn:")),
            provider=provider,
        )

    def wire(self) -> bytes:
        """The properties as the engine sends them: its ``Struct`` (:func:`to_struct`), serialized.
        Made once per resource object (a provider is shared by every resource that uses it); every
        request carrying them parses these bytes, as the analyzer parses what the engine sends."""
        cached = self.__dict__.get("_wire")
        if cached is None:
            cached = to_struct(self.properties).SerializeToString()
            object.__setattr__(self, "_wire", cached)
        return cached

    def struct(self) -> struct_pb2.Struct:
        """The properties as the engine's ``Struct``."""
        return struct_pb2.Struct.FromString(self.wire())

    def options(self) -> analyzer_pb2.AnalyzerResourceOptions:
        """The resource options a request carries (made once: a request copies them)."""
        cached = self.__dict__.get("_options")
        if cached is None:
            cached = analyzer_pb2.AnalyzerResourceOptions(
                protect=self.protect,
                ignoreChanges=list(self.ignore_changes),
                deleteBeforeReplace=bool(self.delete_before_replace),
                deleteBeforeReplaceDefined=self.delete_before_replace is not None,
                aliases=list(self.aliases),
                parent=self.parent,
            )
            object.__setattr__(self, "_options", cached)
        return cached

    def provider_message(self) -> Optional[analyzer_pb2.AnalyzerProviderResource]:
        if self.provider is None:
            return None
        message = analyzer_pb2.AnalyzerProviderResource()
        self.fill_provider(message)
        return message

    def fill_provider(self, message: analyzer_pb2.AnalyzerProviderResource) -> None:
        """Set ``message`` (a request's ``provider`` field) to this resource's provider, if any."""
        provider = self.provider
        if provider is not None:
            message.type, message.urn, message.name = provider.type, provider.urn, provider.name
            message.properties.MergeFromString(provider.wire())


class PolicyAnalyzer:
    """``pulumi_policy``'s analyzer servicer for a set of policies, called in-process."""

    def __init__(
        self,
        policies: Optional[Sequence[Policy]] = None,
        *,
        production: bool = False,
        rules: Optional[Sequence[Rule]] = None,
        name: str = PACK_NAME,
    ):
        self.policies = list(policies) if policies is not None else build_policies(rules, production=production)
        if not self.policies:
            raise ValueError("a policy pack needs at least one policy (PolicyPack refuses an empty list)")
        self.name = name
        # PolicyPack(...) builds exactly this, then serves it over gRPC and blocks; we call it directly.
        self.servicer = _PolicyAnalyzerServicer(
            name, PACK_VERSION, self.policies, default_enforcement(production),
        )

    # -- the analyzer RPCs, with protobuf messages in and out ----------------------------------------

    def get_analyzer_info(self) -> analyzer_pb2.AnalyzerInfo:
        return self.servicer.GetAnalyzerInfo(empty_pb2.Empty(), None)

    def configure_stack(
        self,
        *,
        project: str,
        stack: str,
        config: Optional[Mapping[str, str]] = None,
        tags: Optional[Mapping[str, str]] = None,
        dry_run: bool = True,
    ) -> None:
        self.servicer.ConfigureStack(
            analyzer_pb2.AnalyzerStackConfigureRequest(
                project=project, stack=stack, organization="organization", dry_run=dry_run,
                config=dict(config or {}), tags=dict(tags or {}),
            ),
            None,
        )

    def configure(self, pack_config: Optional[Mapping[str, Any]] = None) -> dict[str, analyzer_pb2.PolicyConfig]:
        """Reconcile ``pack_config`` (the ``--policy-pack-config`` JSON) with the policies' defaults
        and schemas as the CLI does, then send ``Configure``. Raises :class:`PolicyConfigError` where
        the CLI would refuse the config."""
        reconciled = reconcile_config(self.get_analyzer_info(), pack_config)
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for key, (level, properties) in reconciled.items():
            entry = request.policyConfig[key]
            entry.enforcementLevel = _LEVEL_VALUES[level]
            if properties:
                json_format.ParseDict(properties, entry.properties)
        self.servicer.Configure(request, None)
        return dict(request.policyConfig)

    def analyze(self, resource: AnalyzerResource, *, fast: bool = False) -> analyzer_pb2.AnalyzeResponse:
        """``Analyze`` one resource; ``fast``: within :func:`shared_conversion` (same answer)."""
        request = analyzer_pb2.AnalyzeRequest(
            type=resource.type, urn=resource.urn, name=resource.name, options=resource.options(),
        )
        request.properties.MergeFromString(resource.wire())
        resource.fill_provider(request.provider)
        if fast:
            with shared_conversion(self.servicer) as shared:
                try:
                    return self.servicer.Analyze(request, None)
                finally:
                    shared.end_call()
        return self.servicer.Analyze(request, None)

    def analyze_stack(self, resources: Iterable[AnalyzerResource], *, fast: bool = False) -> analyzer_pb2.AnalyzeResponse:
        """``AnalyzeStack`` over ``resources``; ``fast``: within :func:`shared_conversion` (same answer)."""
        request = analyzer_pb2.AnalyzeStackRequest()
        add = request.resources.add
        for resource in resources:
            entry = add(type=resource.type, urn=resource.urn, name=resource.name, options=resource.options(),
                        parent=resource.parent, dependencies=list(resource.dependencies))
            entry.properties.MergeFromString(resource.wire())
            resource.fill_provider(entry.provider)
        if fast:
            with shared_conversion(self.servicer) as shared:
                try:
                    return self.servicer.AnalyzeStack(request, None)
                finally:
                    shared.end_call()
        return self.servicer.AnalyzeStack(request, None)


# -- config reconciliation, as pkg/resource/analyzer/config.go ---------------------------------------

def parse_pack_config(data: Optional[Mapping[str, Any]]) -> dict[str, tuple[Optional[str], dict[str, Any]]]:
    """``--policy-pack-config`` JSON → key → (level or None, properties), refusing what the CLI
    refuses: a value that is neither a level string nor an object, an unknown level."""
    result: dict[str, tuple[Optional[str], dict[str, Any]]] = {}
    problems: list[str] = []
    for key, value in (data or {}).items():
        if isinstance(value, str):
            if value not in _LEVEL_VALUES:
                problems.append(f"parsing enforcement level for {key!r}: {value!r} is not a valid enforcement level")
                continue
            result[key] = (value, {})
        elif isinstance(value, Mapping):
            properties = dict(value)
            level = properties.pop("enforcementLevel", None)
            if level is not None and level not in _LEVEL_VALUES:
                problems.append(f"parsing enforcement level for {key!r}: {level!r} is not a valid enforcement level")
                continue
            if level is None and not properties:
                continue
            result[key] = (level, properties)
        else:
            problems.append(f"parsing {key!r}: {json.dumps(value)} is not a valid value; must be a string or object")
    if problems:
        raise PolicyConfigError(problems)
    return result


def reconcile_config(
    info: analyzer_pb2.AnalyzerInfo, pack_config: Optional[Mapping[str, Any]]
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every policy's (level, properties): schema defaults, then ``initialConfig``, then the given
    config (``all`` first, then per policy), validated against each policy's config schema."""
    result: dict[str, tuple[str, dict[str, Any]]] = {}
    for policy in info.policies:
        schema = json_format.MessageToDict(policy.configSchema.properties)
        defaults = {k: v["default"] for k, v in schema.items() if isinstance(v, Mapping) and "default" in v}
        result[policy.name] = (_LEVEL_NAMES[policy.enforcementLevel], defaults)
    initial = {
        k: (_LEVEL_NAMES[v.enforcementLevel], json_format.MessageToDict(v.properties))
        for k, v in info.initialConfig.items()
    }
    if initial:
        _apply(result, dict(initial))
    given = parse_pack_config(pack_config)
    if given:
        _apply(result, given)

    problems: list[str] = []
    for policy in info.policies:
        properties = json_format.MessageToDict(policy.configSchema.properties)
        schema: dict[str, Any] = {"type": "object"}
        if properties:
            schema["properties"] = properties
        if policy.configSchema.required:
            schema["required"] = list(policy.configSchema.required)
        validator = jsonschema.Draft7Validator(schema)
        for error in sorted(validator.iter_errors(result[policy.name][1]), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in error.path)
            problems.append(f"{policy.name}: {where + ': ' if where else ''}{error.message}")
    if problems:
        raise PolicyConfigError(problems)
    for key, (level, _) in result.items():
        if level is None:
            raise PolicyConfigError([f"invalid enforcement level \"\" for {key!r}: give it an enforcementLevel"])
    return result


def _apply(result: dict[str, tuple[Any, dict[str, Any]]], given: Mapping[str, tuple[Optional[str], dict[str, Any]]]) -> None:
    everything = given.get("all")
    if everything is not None and everything[0] is not None:
        for key, (_, properties) in list(result.items()):
            result[key] = (everything[0], properties)
    for key, (level, properties) in given.items():
        current_level, current_properties = result.get(key, (None, {}))
        result[key] = (level or current_level, {**current_properties, **properties})


# -- one call for a whole recording ---------------------------------------------------------------

@dataclass
class PolicyReport:
    """What the pack said about a stack."""

    violations: list[Violation] = field(default_factory=list)
    """Policy violations (resource and stack policies), in the order the engine reports them."""
    not_run: list[str] = field(default_factory=list)
    """Policies ``pulumi_policy`` could not run during preview (a value it needed was unknown)."""

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.enforcement == "mandatory"]

    def document(self) -> dict[str, Any]:
        """JSON form: ``{"violations": [{policy, enforcement, kind, namespace, name, message, urn}]}``."""
        return {"violations": [violation_document(v, with_urn=True) for v in self.violations], "notRun": self.not_run}


def violation_document(violation: Violation, *, with_urn: bool = False) -> dict[str, str]:
    document = {
        "policy": violation.policy,
        "enforcement": violation.enforcement,
        "kind": violation.kind,
        "namespace": violation.namespace,
        "name": violation.name,
        "message": violation.message,
    }
    if with_urn:
        document["urn"] = violation.urn
    return document


def analyze_recording(
    recording: "Recording",
    *,
    production: bool,
    pack_config: Optional[Mapping[str, Any]] = None,
    stack_config: Optional[Mapping[str, str]] = None,
    preview: bool = True,
    rules: Optional[Sequence[Rule]] = None,
    fast: bool = True,
) -> PolicyReport:
    """Run the pack over everything ``recording`` registered, as ``pulumi preview --policy-pack``
    would: ``Analyze`` per resource (inputs), then ``AnalyzeStack`` (outputs). ``fast`` (the
    default) converts each resource once for all policies (:func:`shared_conversion`); the report is
    the same either way. Both ways, a resource whose outputs are its inputs (the same JSON data) is
    marshalled once for both calls, as the engine would send the same bytes."""
    policies = build_policies(rules, production=production)
    if not policies:
        return PolicyReport()
    analyzer = PolicyAnalyzer(policies, production=production)
    analyzer.configure_stack(project=recording.project, stack=recording.stack, config=stack_config, dry_run=preview)
    analyzer.configure(pack_config)
    by_urn = recording.by_urn()
    providers: dict[str, AnalyzerResource] = {}
    report = PolicyReport()
    with _collector_paused(), shared_conversion(analyzer.servicer) if fast else nullcontext():
        inputs: list[AnalyzerResource] = []
        for registered in recording.resources:
            resource = AnalyzerResource.from_registered(registered, by_urn=by_urn, providers=providers)
            inputs.append(resource)
            _collect(report, analyzer.analyze(resource, fast=fast), {resource.urn: resource}, default=resource)
        stack_resources = []
        for registered, analyzed in zip(recording.resources, inputs):
            if not registered.outputs or identical(registered.outputs, registered.inputs):
                stack_resources.append(analyzed)  # the same view: the engine sends the same bytes
            else:
                stack_resources.append(AnalyzerResource.from_registered(registered, outputs=True, by_urn=by_urn,
                                                                        providers=providers))
        _collect(report, analyzer.analyze_stack(stack_resources, fast=fast), {r.urn: r for r in stack_resources},
                 default=None, stack_name=f"{recording.project}-{recording.stack}")
    return report


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused while a recording is analyzed (as ``timeit`` pauses it),
    then restored as it was. The analysis keeps what it converts until it ends and leaves no garbage
    cycles to speak of (everything it makes is freed by reference counting), yet each collection
    its allocations trigger would walk the caller's whole heap (a plan holds hundreds of thousands
    of objects): at a thousand services, a third of the analysis's time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _collect(
    report: PolicyReport,
    response: analyzer_pb2.AnalyzeResponse,
    resources: Mapping[str, AnalyzerResource],
    *,
    default: Optional[AnalyzerResource],
    stack_name: str = "",
) -> None:
    for diagnostic in response.diagnostics:
        if diagnostic.message.startswith(f"can't run policy '{diagnostic.policyName}'"):
            report.not_run.append(diagnostic.message)
            continue
        resource = resources.get(diagnostic.urn) or default
        report.violations.append(diagnostic_violation(diagnostic, resource, stack_name=stack_name))


def diagnostic_violation(
    diagnostic: analyzer_pb2.AnalyzeDiagnostic, resource: Optional[AnalyzerResource], *, stack_name: str = ""
) -> Violation:
    """An engine diagnostic as a :class:`Violation` naming the resource's kind, namespace and name.
    ``pulumi_policy`` prefixes every message with the policy description and a newline."""
    message = diagnostic.message
    prefix = diagnostic.description + "\n"
    if diagnostic.description and message.startswith(prefix):
        message = message[len(prefix):]
    if resource is None:
        return Violation(diagnostic.policyName, _LEVEL_NAMES[diagnostic.enforcementLevel], "Stack", "", stack_name,
                         message, diagnostic.urn)
    subject = Subject(resource.type, resource.name, plain_props(json_format.MessageToDict(resource.struct())), resource.urn)
    return Violation(
        policy=diagnostic.policyName,
        enforcement=_LEVEL_NAMES[diagnostic.enforcementLevel],
        kind=subject.kind,
        namespace=subject.namespace,
        name=subject.object_name,
        message=message,
        urn=resource.urn,
    )
