"""An in-process Pulumi engine: runs a Pulumi program against the SDK's mock monitor and records
every resource registration exactly as the real engine would receive it.

Nothing is contacted: no Pulumi service, no cloud API, no Kubernetes API server. The program runs the
same way the Python language host runs it for ``pulumi preview``/``up`` (``run_in_stack`` around
``runpy.run_path`` of the project's ``main`` directory); only the resource monitor is replaced.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import math
import runpy
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import pulumi
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import resource as pulumi_resource
from pulumi.runtime import rpc, settings
from pulumi.runtime import stack as pulumi_stack
from pulumi.runtime.config import set_all_config
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.settings import SETTINGS, _get_rpc_manager
from pulumi.runtime.stack import run_in_stack

from gpufleet.infra.offline.fakes import FakeCloud

SECRET_PLACEHOLDER = "[secret]"
UNKNOWN_PLACEHOLDER = "(known after apply)"

ResourceHook = Callable[["RegisteredResource"], None]


@dataclass
class RegisteredResource:
    """One ``RegisterResource`` call as the engine received it."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    remote: bool
    protect: bool
    provider: str
    dependencies: list[str]
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    id: Optional[str]
    aliases: list[Any] = field(default_factory=list)
    delete_before_replace: bool = False
    ignore_changes: list[str] = field(default_factory=list)
    replace_on_changes: list[str] = field(default_factory=list)

    @property
    def is_kubernetes_object(self) -> bool:
        """A Kubernetes API object (built-in kind or custom resource), as opposed to Helm releases,
        providers and component resources."""
        return (
            self.custom
            and self.type.startswith("kubernetes:")
            and not self.type.startswith("kubernetes:helm.sh/")
            and not self.type.startswith("pulumi:providers:")
            and isinstance(self.inputs.get("apiVersion"), str)
            and isinstance(self.inputs.get("kind"), str)
        )

    def manifest(self) -> dict[str, Any]:
        """The object as it would be sent to the Kubernetes API server (secrets masked), with
        ``apiVersion``, ``kind`` and ``metadata`` first as people write them."""
        manifest = plain(self.inputs)
        head = {key: manifest.pop(key) for key in ("apiVersion", "kind", "metadata") if key in manifest}
        return {**head, **manifest}


@dataclass
class Recording:
    """Everything a program registered, in registration order."""

    project: str
    stack: str
    resources: list[RegisteredResource]
    stack_outputs: dict[str, Any]

    def of_type(self, type_token: str) -> list[RegisteredResource]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str) -> RegisteredResource:
        found = self.of_type(type_token)
        if len(found) != 1:
            raise AssertionError(f"expected exactly one {type_token}, found {len(found)}")
        return found[0]

    def children(self, parent_urn: str) -> list[RegisteredResource]:
        return [r for r in self.resources if r.parent == parent_urn]

    def descendants(self, ancestor_urn: str) -> Iterator[RegisteredResource]:
        for child in self.children(ancestor_urn):
            yield child
            yield from self.descendants(child.urn)

    def kubernetes_objects(self) -> list[RegisteredResource]:
        return [r for r in self.resources if r.is_kubernetes_object]

    def by_urn(self) -> dict[str, RegisteredResource]:
        return {r.urn: r for r in self.resources}


def plain(value: Any) -> Any:
    """Engine property values → plain JSON-able data: secrets masked, unknowns spelled out."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return _masked(value.get("value"))
        if value.get(rpc._special_sig_key) == rpc._special_resource_sig:
            return value.get("id") or value.get("urn")  # a resource reference, as analyzers receive it
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value == rpc.UNKNOWN:
        return UNKNOWN_PLACEHOLDER
    if isinstance(value, float) and value.is_integer():
        # The engine carries every number as a double; the Kubernetes provider sends 2.0 as 2.
        return int(value)
    if isinstance(value, pulumi.Resource):
        return f"<resource {type(value).__name__}>"
    return value


def _masked(value: Any) -> Any:
    """A secret's shape with every value masked: ``stringData: {token: "[secret]"}`` keeps its keys
    (so the object still validates), never its values."""
    if isinstance(value, dict) and value.get(rpc._special_sig_key) is None:
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return SECRET_PLACEHOLDER


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, keeping the request fields a plan needs (parent, protect, deps)."""

    def __init__(self, mocks: pulumi_mocks.Mocks, hook: Optional[ResourceHook]):
        super().__init__(mocks)
        self.recorded: list[RegisteredResource] = []
        self.stack_outputs: dict[str, Any] = {}
        self._hook = hook

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        inputs, plain = _converted(request.object)
        if plain:
            response = self._register_plain(request, inputs)
        else:
            # The mock monitor would rehydrate a resource reference among the inputs (pulumi-eks's
            # serviceRole) into a new resource object on its own thread's event loop, racing the
            # program's; a provider that does not accept resources gets the reference as its ID or URN
            # from the engine: so do the mocks.
            response = super().RegisterResource(_references_downgraded(request))
        registered = self.resources[response.urn]
        outputs = {key: _sharing(value, inputs.get(key, _ABSENT)) for key, value in (registered.state or {}).items()}
        # The mocks' state, now sharing the inputs' parts: the SDK's own copy is freed.
        self.resources[response.urn] = registered._replace(state=outputs)
        resource = RegisteredResource(
            urn=response.urn,
            type=sys.intern(request.type),
            name=request.name,
            parent=sys.intern(request.parent),
            custom=request.custom,
            remote=request.remote,
            protect=bool(request.protect),
            provider=sys.intern(request.provider),
            dependencies=[sys.intern(urn) for urn in request.dependencies],
            inputs=inputs,
            outputs=dict(outputs),
            id=registered.id,
            aliases=[_alias_text(a) for a in request.aliases] + list(request.aliasURNs),
            delete_before_replace=request.deleteBeforeReplace,
            ignore_changes=list(request.ignoreChanges),
            replace_on_changes=list(request.replaceOnChanges),
        )
        self.recorded.append(resource)
        if self._hook is not None:
            self._hook(resource)
        return response

    def _register_plain(self, request, inputs: dict[str, Any]):
        """The SDK's ``MockMonitor.RegisterResource`` (``pulumi/runtime/mocks.py``) for a request
        whose properties are plain JSON (no null, secret, unknown, resource reference, asset or
        archive: see :func:`_converted`). For those, the SDK's ``deserialize_properties`` gives
        exactly the recorded ``inputs`` (same keys, order and values), and when the mocks answer
        with them unchanged (a copy of the same values: Kubernetes objects, providers, components),
        its ``serialize_properties`` gives the ``Struct`` that setting each property in turn builds.
        The same steps, without the SDK's two walks of coroutines per value; any other answer is
        serialized by the SDK."""
        urn = self.make_urn(request.parent, request.type, request.name)
        pulumi_mocks._ensure_event_loop()
        given = _copied(inputs)
        resource_args = pulumi_mocks.MockResourceArgs(
            typ=request.type,
            name=request.name,
            inputs=given,
            provider=request.provider,
            resource_id=request.importId,
            custom=request.custom or False,
            transforms=pulumi_mocks._resolve_callbacks(request.transforms),
        )
        id_, state = self.mocks.new_resource(resource_args)
        obj_proto = _unchanged_struct(state, given)
        if obj_proto is None:
            obj_proto = pulumi_mocks._sync_await(rpc.serialize_properties(state, {}))
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, id_, state)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_, object=obj_proto)

    def RegisterResourceOutputs(self, request):  # noqa: N802 - gRPC method name
        if request.urn.endswith("::" + self._stack_urn_suffix()):
            self.stack_outputs = json_format.MessageToDict(request.outputs)
        return super().RegisterResourceOutputs(request)

    def _stack_urn_suffix(self) -> str:
        return f"pulumi:pulumi:Stack::{pulumi.get_project()}-{pulumi.get_stack()}"


_ABSENT = object()


def _struct_to_dict(struct: Any) -> dict[str, Any]:
    """``json_format.MessageToDict`` of a property ``Struct``: see :func:`_converted`."""
    return _converted(struct)[0]


def _converted(struct: Any) -> tuple[dict[str, Any], bool]:
    """(``json_format.MessageToDict`` of a property ``Struct``: the same keys in the same order, the
    same values: strings, doubles, booleans, ``None``, lists, dicts; plain). Every string is
    interned: a thousand copies of a service share their keys, labels, images and URNs instead of
    holding a copy each. Plain: no null, no signature key (secret, resource reference, asset,
    archive, output value) and no unknown anywhere, so the SDK's deserialization gives the same
    values. An infinite or NaN number goes to ``MessageToDict`` for its own error."""
    plain = [True]
    try:
        return _struct_fields(struct, plain), plain[0]
    except _NotJson:
        return json_format.MessageToDict(struct), False


class _NotJson(Exception):
    """A number JSON cannot carry (``MessageToDict`` refuses it)."""


def _struct_fields(struct: Any, plain: list[bool]) -> dict[str, Any]:
    fields = struct.fields
    if rpc._special_sig_key in fields:
        plain[0] = False
    return {sys.intern(key): _value(fields[key], plain) for key in fields}


def _value(value: Any, plain: list[bool]) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        text = value.string_value
        if text == rpc.UNKNOWN:
            plain[0] = False
        return sys.intern(text)
    if kind == "struct_value":
        return _struct_fields(value.struct_value, plain)
    if kind == "list_value":
        return [_value(item, plain) for item in value.list_value.values]
    if kind == "number_value":
        number = value.number_value
        if math.isinf(number) or math.isnan(number):
            raise _NotJson
        return number
    if kind == "bool_value":
        return value.bool_value
    plain[0] = False
    return None  # null_value, or no kind set


def _copied(value: Any) -> Any:
    """A copy of plain JSON data (containers new, strings and numbers shared)."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copied(item) for item in value]
    return value


def _unchanged_struct(state: Any, given: dict[str, Any]) -> Optional[struct_pb2.Struct]:
    """The ``Struct`` of ``state`` when the mocks answered with the plain inputs ``given`` unchanged
    (the same keys in the same order, the same value objects), built as ``serialize_properties``
    builds it (``Struct.__setitem__`` per property, in order); else None."""
    if type(state) is not dict or list(state) != list(given) or any(state[k] is not given[k] for k in given):
        return None
    if any(value is None for value in state.values()):  # serialize_properties drops those
        return None
    struct = struct_pb2.Struct()
    try:
        for key, value in state.items():
            struct[key] = value
    except ValueError:  # a value the mocks put there that is not plain JSON: the SDK serializes it
        return None
    return struct


def _sharing(value: Any, like: Any) -> Any:
    """``value`` (the mocks' state: the SDK's deserialized inputs, plus what the fake cloud adds),
    with each part equal to the same part of ``like`` (the recorded inputs) replaced by that part:
    outputs cost no memory where they repeat the inputs. Both come from the same ``Struct`` (a
    string, a double or a boolean in one is the same type in the other), so equal means the same
    value; where the SDK reshaped a value (a secret moved up, an unknown, a dropped null, a resource
    reference), the parts differ and ``value``'s are kept."""
    if type(value) is type(like) and value == like:
        return like
    if isinstance(value, dict) and isinstance(like, dict):
        return {key: _sharing(item, like.get(key, _ABSENT)) for key, item in value.items()}
    if isinstance(value, list) and isinstance(like, list) and len(value) == len(like):
        return [_sharing(item, other) for item, other in zip(value, like)]
    return value


_SIGNATURE_KEY = rpc._special_sig_key
_RESOURCE_REFERENCE = rpc._special_resource_sig


def _references_downgraded(request):
    """``request`` with every resource reference in its inputs replaced by the resource's ID (a
    custom resource) or URN (a component), as the engine sends it to a provider that does not accept
    resources; ``request`` itself when it holds none."""
    if _RESOURCE_REFERENCE not in request.object.SerializeToString().decode("latin-1"):
        return request
    copy = type(request)()
    copy.CopyFrom(request)

    def walk(value) -> None:
        kind = value.WhichOneof("kind")
        if kind == "struct_value":
            fields = value.struct_value.fields
            if _SIGNATURE_KEY in fields and fields[_SIGNATURE_KEY].string_value == _RESOURCE_REFERENCE:
                ref_id = fields["id"].string_value if "id" in fields else ""
                value.string_value = ref_id or fields["urn"].string_value
                return
            for item in fields.values():
                walk(item)
        elif kind == "list_value":
            for item in value.list_value.values:
                walk(item)

    for item in copy.object.fields.values():
        walk(item)
    return copy


def _alias_text(alias) -> str:
    if alias.urn:
        return alias.urn
    spec = alias.spec
    return f"name={spec.name or '*'} type={spec.type or '*'} parent={spec.parentUrn or ('<root>' if spec.noParent else '*')}"


async def _wait_for_rpcs(await_all_outstanding_tasks: bool = True) -> None:
    """``pulumi.runtime.stack.wait_for_rpcs`` in linear time, for programs run here.

    The SDK waits for every outstanding Output task with ``asyncio.wait(..., FIRST_COMPLETED)`` in a
    loop: each round registers a callback on every pending task and returns after one or a few
    finish, so a program with n pending Outputs costs O(n²) (a thousand inference services: tens of
    seconds in ``add_done_callback``). Here a round waits until every pending task is done or one
    raises (``FIRST_EXCEPTION``): the same tasks run in the same order on the same loop (waiting on
    a task never schedules it), the first failure is raised as before, and Outputs created meanwhile
    are picked up by the next round, as in the SDK."""
    rpc_manager = _get_rpc_manager()
    while True:
        while len(rpc_manager.rpcs) > 0:
            await asyncio.sleep(0)
            try:
                await rpc_manager.rpcs.pop()
            except Exception as exn:
                if rpc_manager.unhandled_exception is not None:
                    cause = rpc_manager.unhandled_exception.with_traceback(rpc_manager.exception_traceback)
                    raise exn from cause
                raise
        if rpc_manager.unhandled_exception is not None:
            raise rpc_manager.unhandled_exception.with_traceback(rpc_manager.exception_traceback)
        if await_all_outstanding_tasks:
            while True:
                with SETTINGS.lock:
                    if len(SETTINGS.outputs) == 0:
                        break
                    pending_outputs: list[asyncio.Task] = list(SETTINGS.outputs)
                    SETTINGS.outputs.clear()
                done, not_done = await asyncio.wait(pending_outputs, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    await task
                if not_done:
                    with SETTINGS.lock:
                        for task in not_done:
                            SETTINGS.outputs.add(task)
        if len(rpc_manager.rpcs) == 0:
            break


def _source_positions() -> Callable[[Any], Any]:
    """``pulumi.runtime.resource._get_source_position_for_frame`` once per (file, line): the SDK turns
    every frame of every registration's stack trace into a ``file://`` URI with pathlib (a fifth of
    a large plan); the answer depends on the file name and line only."""
    sdk = pulumi_resource._get_source_position_for_frame
    known: dict[tuple[str, Optional[int]], Any] = {}

    def position(frame: Any) -> Any:
        key = (frame.filename, frame.lineno)
        if key not in known:
            known[key] = sdk(frame)
        return known[key]

    return position


PROGRAM_GC_THRESHOLDS = (10_000, 10, 100)
"""The garbage collector's thresholds while a program runs, at least (CPython's defaults: 700, 10,
10): a young collection every 10,000 allocations, a full one after 100 middle ones."""


@contextmanager
def _collector_for_programs() -> Iterator[None]:
    """The cyclic garbage collector tuned for a Pulumi program for the duration of a run.

    Every resource leaves a few hundred container objects alive until the program ends (its
    ``Output`` s with their futures, tasks and contexts), and the SDK makes reference cycles as it
    goes (each ``contains_unknowns`` call, each ``Output`` task). With CPython's default thresholds
    those long-lived objects reach the old generation in small steps and every few steps a full
    collection walks the whole heap again, to find almost nothing: what a program leaves in the old
    generation lives until it ends. A third of the CPU of a plan with a thousand inference services
    went to the collector. With :data:`PROGRAM_GC_THRESHOLDS` the young generations still collect
    the cycles that die young, a full collection comes at most every ten million allocations, and
    one full collection at the end frees the program's garbage before the plan is checked. The
    caller's thresholds come back afterwards."""
    saved = gc.get_threshold()
    gc.set_threshold(*(max(mine, theirs) for mine, theirs in zip(PROGRAM_GC_THRESHOLDS, saved)))
    try:
        yield
    finally:
        gc.set_threshold(*saved)
        gc.collect()


def run_program(
    program: Callable[[], Any],
    *,
    project: str,
    stack: str,
    config: Mapping[str, str],
    secret_keys: Sequence[str] = (),
    preview: bool = True,
    on_resource: Optional[ResourceHook] = None,
    cloud: Optional[FakeCloud] = None,
) -> Recording:
    """Run ``program`` as the Pulumi language host would, against an in-process mock engine.

    ``config`` is the engine's flat config map (``"ns:key" -> string``, objects JSON-encoded), the form
    ``pulumi`` passes to a program. Each call runs in a fresh context and event loop, so calls never see
    each other's state. Exceptions raised by the program propagate unchanged.
    """
    mocks = cloud or FakeCloud()

    def in_fresh_context() -> Recording:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        # The mock monitor runs in executor threads and needs an event loop in each; own them so
        # they are closed with the run instead of being left to the garbage collector.
        thread_loops: list[asyncio.AbstractEventLoop] = []

        def give_thread_a_loop() -> None:
            thread_loop = asyncio.new_event_loop()
            asyncio.set_event_loop(thread_loop)
            thread_loops.append(thread_loop)

        loop.set_default_executor(ThreadPoolExecutor(initializer=give_thread_a_loop))
        try:
            monitor = _RecordingMonitor(mocks, on_resource)
            _configure(monitor, project=project, stack=stack, preview=preview)
            set_all_config(dict(config), list(secret_keys))
            sdk_wait, sdk_position = pulumi_stack.wait_for_rpcs, pulumi_resource._get_source_position_for_frame
            pulumi_stack.wait_for_rpcs = _wait_for_rpcs  # type: ignore[assignment]
            pulumi_resource._get_source_position_for_frame = _source_positions()  # type: ignore[assignment]
            try:
                with _collector_for_programs():
                    loop.run_until_complete(run_in_stack(program))
            finally:
                pulumi_stack.wait_for_rpcs = sdk_wait  # type: ignore[assignment]
                pulumi_resource._get_source_position_for_frame = sdk_position  # type: ignore[assignment]
            return Recording(project, stack, monitor.recorded, monitor.stack_outputs)
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            for thread_loop in thread_loops:
                thread_loop.close()
            asyncio.set_event_loop(None)

    return contextvars.Context().run(in_fresh_context)


def _configure(monitor: _RecordingMonitor, *, project: str, stack: str, preview: bool) -> None:
    """``pulumi.runtime.set_mocks`` without its eager root stack: ``run_in_stack`` makes that one,
    as it does under the real language host."""
    features = set(monitor.GetDeploymentInfo(empty_pb2.Empty()).supportedFeatures)
    settings.configure(
        pulumi_mocks.MockSettings(
            monitor=monitor,
            monitor_features=features,
            engine=pulumi_mocks.MockEngine(logging.getLogger("gpufleet.offline")),
            project=project,
            stack=stack,
            dry_run=preview,
            organization="organization",
            callbacks=None,
        )
    )


def run_project_main(main_dir: Path, **kwargs: Any) -> Recording:
    """Run a Pulumi project's ``main`` directory (its ``__main__.py``), exactly as the language host does."""
    main_dir = Path(main_dir)
    return run_program(lambda: runpy.run_path(str(main_dir), run_name="__main__"), **kwargs)
