"""Resource properties on the wire between the engine and the analyzer, and the offline harness's
shared conversion of them.

The engine sends an analyzer each resource's properties as a protobuf ``Struct``;
``pulumi_policy``'s servicer turns it back into a dict (``json_format.MessageToDict``), deserializes
it (secrets, assets) and wraps it in its unknown-checking proxy, once per policy and resource.

* :func:`to_struct` is the engine's side: properties → ``Struct``, exactly as
  ``json_format.ParseDict`` builds it (numbers as doubles, ``__``-prefixed internal keys dropped, a
  resource reference as its ID or URN), without ``ParseDict``'s generic machinery (per-node error
  paths, ABC checks).
* :func:`shared_conversion` is the offline harness's fast path: within it, the servicer's own code
  runs unchanged, but its three conversion steps are made once per distinct ``Struct`` content
  for all policies and both RPCs (``Analyze``'s inputs and ``AnalyzeStack``'s outputs of a
  resource are usually the same bytes; so are the provider properties every request carries), by
  exact equivalents: :func:`struct_to_dict` gives what ``MessageToDict`` gives for a ``Struct``;
  ``deserialize_properties`` is ``pulumi_policy``'s own, except that data without signature
  objects (secrets, assets), which it would copy unchanged, is taken as it is; the proxy is
  ``pulumi_policy``'s own, built when a policy first reads through it (gpufleet's policies read the
  deserialized properties directly, :class:`gpufleet.policies.pack.PlainSource`).

Properties are read-only to policies here: every policy, and every resource with the same
properties, is handed the same objects.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional

from google.protobuf import json_format, struct_pb2

import pulumi_policy.policy as _servicer_module
from pulumi_policy.deserialize import SPECIAL_SIG_KEY
from pulumi_policy.proxy import _DictProxy

from gpufleet.policies.core import UNKNOWN_SENTINELS
from gpufleet.policies.pack import SUBJECTS, PlainSource, plain_props

if TYPE_CHECKING:
    from pulumi_policy.policy import _PolicyAnalyzerServicer

_INTERNAL_KEY_PREFIX = "__"
_RESOURCE_REFERENCE = "5cf8f73096256a8f31e491e813e4eb8e"
"""The signature of a resource reference (``sdk/go/common/resource/sig``), under ``SPECIAL_SIG_KEY``."""


# -- the engine's side: properties → Struct --------------------------------------------------------

class _Unusual(Exception):
    """A value :func:`to_struct`'s direct path does not handle (left to ``ParseDict``)."""


def to_struct(properties: Mapping[str, Any]) -> struct_pb2.Struct:
    """Properties → the ``Struct`` the engine sends (numbers become doubles, internal keys dropped):
    the message ``json_format.ParseDict`` builds from them, byte for byte (a test compares both)."""
    struct = struct_pb2.Struct()
    try:
        _fill_struct(struct, properties)
    except _Unusual:  # anything but plain JSON data: ParseDict's own conversion (and its errors)
        struct = struct_pb2.Struct()
        json_format.ParseDict(_without_internal_keys(properties), struct)
    return struct


def _fill_struct(struct: struct_pb2.Struct, mapping: Any) -> None:
    if type(mapping) is not dict or mapping.get(SPECIAL_SIG_KEY) == _RESOURCE_REFERENCE:
        raise _Unusual  # a reference as the whole properties: ParseDict refuses it
    fields = struct.fields
    for key, value in mapping.items():
        if type(key) is not str:
            raise _Unusual
        if key.startswith(_INTERNAL_KEY_PREFIX):
            continue
        if type(value) is str:  # the common leaf, without a call
            fields[key].string_value = value
        else:
            _set_value(fields[key], value)


def _set_value(message: struct_pb2.Value, value: Any) -> None:
    """``json_format``'s ``_ConvertValueMessage`` for plain JSON data (an object or list is set even
    when empty, as ``ParseDict``'s ``Clear`` sets it)."""
    kind = type(value)
    if kind is str:
        message.string_value = value
    elif kind is dict:
        if value.get(SPECIAL_SIG_KEY) == _RESOURCE_REFERENCE:
            _set_reference(message, value)
            return
        struct = message.struct_value
        struct.Clear()  # set, even when nothing is left in it
        _fill_struct(struct, value)
    elif kind is float or kind is int:
        message.number_value = value
    elif kind is bool:
        message.bool_value = value
    elif value is None:
        message.null_value = struct_pb2.NULL_VALUE
    elif kind is list or kind is tuple:
        message.list_value.ClearField("values")  # set, even when empty
        add = message.list_value.values.add
        for item in value:
            if type(item) is str:
                add().string_value = item
            else:
                _set_value(add(), item)
    else:
        raise _Unusual


def _set_reference(message: struct_pb2.Value, reference: dict[str, Any]) -> None:
    """A resource reference as the engine marshals it for analyzers (without ``KeepResources``): its
    ID (a custom resource) or URN (a component), a plain string."""
    downgraded = reference.get("id") or reference.get("urn")
    if type(downgraded) is str:
        message.string_value = downgraded
    elif downgraded is None:
        message.null_value = struct_pb2.NULL_VALUE
    else:
        raise _Unusual


def _without_internal_keys(value: Any) -> Any:
    if isinstance(value, Mapping):
        if value.get(SPECIAL_SIG_KEY) == _RESOURCE_REFERENCE:  # as _set_reference
            return value.get("id") or value.get("urn")
        return {k: _without_internal_keys(v) for k, v in value.items() if not str(k).startswith(_INTERNAL_KEY_PREFIX)}
    if isinstance(value, (list, tuple)):
        return [_without_internal_keys(v) for v in value]
    return value


def identical(a: Any, b: Any) -> bool:
    """``a`` and ``b`` are the same JSON data down to key order, value types and the sign of zero, so
    :func:`to_struct` gives both the same message: equal, and equal in ``repr`` (which spells out
    what equality overlooks: ``1``, ``1.0`` and ``True``, ``0.0`` and ``-0.0``, the order of keys),
    both compared in C."""
    return a == b and repr(a) == repr(b)


# -- the analyzer's side: Struct → dict ------------------------------------------------------------

def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """What ``json_format.MessageToDict`` gives for a ``Struct`` (same keys in the same order, numbers
    as floats, an unset value as None), without its generic field machinery. Raises what it raises
    for an infinite or NaN number."""
    return _struct_dict(struct, struct, [0])


_SIGNATURE = 1
"""Flag of :func:`_struct_dict`: some object carries the engine's signature key (a secret, asset or
archive: ``pulumi_policy``'s deserialization changes it)."""
_UNKNOWN = 2
"""Flag of :func:`_struct_dict`: some string is an unknown sentinel (:func:`gpufleet.policies.pack.plain_props`
changes it)."""

_isinf, _isnan = math.isinf, math.isnan


def _struct_dict(struct: struct_pb2.Struct, root: struct_pb2.Struct, flags: list[int]) -> dict[str, Any]:
    fields = struct.fields
    if SPECIAL_SIG_KEY in fields:
        flags[0] |= _SIGNATURE
    result: dict[str, Any] = {}
    for key in fields:
        message = fields[key]
        if message.WhichOneof("kind") == "string_value":  # the common leaf, without a call
            text = result[key] = message.string_value
            if text in UNKNOWN_SENTINELS:
                flags[0] |= _UNKNOWN
        else:
            result[key] = _value(message, root, flags)
    return result


def _value(message: struct_pb2.Value, root: struct_pb2.Struct, flags: list[int]) -> Any:
    which = message.WhichOneof("kind")
    if which == "string_value":
        text = message.string_value
        if text in UNKNOWN_SENTINELS:
            flags[0] |= _UNKNOWN
        return text
    if which == "struct_value":
        return _struct_dict(message.struct_value, root, flags)
    if which == "list_value":
        return [_value(item, root, flags) for item in message.list_value.values]
    if which == "number_value":
        number = message.number_value
        if _isinf(number) or _isnan(number):
            json_format.MessageToDict(root)  # raises MessageToDict's own error
        return number
    if which == "bool_value":
        return message.bool_value
    return None


# -- the fast path --------------------------------------------------------------------------------

class _LazyProxy(_DictProxy, PlainSource):
    """``pulumi_policy``'s unknown-checking proxy of ``source``, built the first time a policy reads
    through it; every read then goes to that proxy, so a policy sees exactly what the servicer's own
    proxy shows (including ``UnknownValueError`` on an unknown). gpufleet's policies take the
    properties as plain data (:func:`gpufleet.policies.pack.plain_props`), which asks
    :meth:`plain`: the values the proxy wraps, ``plain`` itself when ``source`` holds no unknown."""

    def __init__(self, source: dict[str, Any], build: Callable[[dict[str, Any]], Any], plain: Optional[dict[str, Any]]):
        self._source = source
        self._build = build
        self._plain = plain
        self._real: Any = None

    def plain(self) -> Any:
        return self._plain if self._plain is not None else plain_props(self._source)

    def _proxy(self) -> Any:
        real = self._real
        if real is None:
            real = self._real = self._build(self._source)
        return real

    def __getitem__(self, key: Any) -> Any:
        return self._proxy()[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._proxy()[key] = value

    def __len__(self) -> int:
        return len(self._proxy())

    def __iter__(self) -> Iterator[Any]:
        return iter(self._proxy())

    def __repr__(self) -> str:
        return repr(self._proxy())


def _once_per_object(function: Callable[[Any], Any], memo: dict[int, tuple[Any, Any]]) -> Callable[..., Any]:
    """``function(x)``, for a function of one argument, computed once per argument object while
    ``memo`` holds it (the argument is held, so its identity is not reused)."""
    get = memo.get

    def call(value: Any) -> Any:
        entry = get(id(value))
        if entry is not None and entry[0] is value:
            return entry[1]
        result = function(value)
        memo[id(value)] = (value, result)
        return result

    return call


class _JsonFormat:
    """``google.protobuf.json_format`` as the servicer module sees it under :func:`shared_conversion`."""

    def __init__(self, message_to_dict: Callable[..., Any]):
        self.MessageToDict = message_to_dict

    def __getattr__(self, name: str) -> Any:
        return getattr(json_format, name)


class SharedConversion:
    """The memos of one :func:`shared_conversion`: per message object for the current servicer call
    (:meth:`end_call` drops them, with the requests they hold), per ``Struct`` content for the whole
    session (the converted, deserialized and proxied properties every policy of both RPCs gets).

    A converted ``Struct`` without signature objects (no secret, asset or archive) deserializes to
    the same data: ``pulumi_policy``'s ``deserialize_properties`` would copy it unchanged, so that
    dict itself is the deserialized one; without unknown sentinels either, it is also the plain
    data gpufleet's policies read. One tree per resource content instead of four."""

    def __init__(self, servicer: Optional["_PolicyAnalyzerServicer"]):
        self.servicer = servicer
        self._per_call: list[dict[int, tuple[Any, Any]]] = [{}, {}, {}]
        self._by_content: dict[bytes, dict[str, Any]] = {}
        self._flags: dict[int, int] = {}
        """id of a dict in ``_by_content`` → its :func:`_struct_dict` flags."""
        self._deserialized: dict[int, tuple[Any, Any]] = {}
        self._proxies: dict[int, tuple[Any, Any]] = {}

    def _message_to_dict(self) -> Callable[..., Any]:
        memo = self._per_call[0]
        get = memo.get
        by_content, all_flags = self._by_content, self._flags

        def message_to_dict(message: Any, *args: Any, **kwargs: Any) -> Any:
            entry = get(id(message))
            if entry is not None and entry[0] is message and not args and not kwargs:
                return entry[1]
            if args or kwargs or type(message) is not struct_pb2.Struct:
                return json_format.MessageToDict(message, *args, **kwargs)
            content = message.SerializeToString()
            result = by_content.get(content)
            if result is None:
                flags = [0]
                result = by_content[content] = _struct_dict(message, message, flags)
                all_flags[id(result)] = flags[0]
            memo[id(message)] = (message, result)
            return result

        return message_to_dict

    def _deserialize(self, deserialize: Callable[..., Any]) -> Callable[..., Any]:
        once = _once_per_object(deserialize, self._deserialized)
        get_flags = self._flags.get

        def call(value: Any, *args: Any, **kwargs: Any) -> Any:
            if args or kwargs:
                return deserialize(value, *args, **kwargs)
            if not get_flags(id(value), _SIGNATURE) & _SIGNATURE:
                return value  # held by _by_content: the id is this very dict's
            return once(value)

        return call

    def _proxy(self, proxy: Callable[[Any], Any]) -> Callable[[Any], Any]:
        get_flags = self._flags.get

        def lazy(source: Any) -> Any:
            if type(source) is not dict:
                return proxy(source)
            return _LazyProxy(source, proxy, source if get_flags(id(source), _UNKNOWN) == 0 else None)

        return _once_per_object(lazy, self._proxies)

    def end_call(self) -> None:
        for memo in self._per_call:
            memo.clear()

    @contextmanager
    def installed(self) -> Iterator["SharedConversion"]:
        saved = (_servicer_module.json_format, _servicer_module.deserialize_properties,
                 _servicer_module.unknown_checking_proxy, SUBJECTS.active)
        deserialize, proxy = saved[1], saved[2]
        _servicer_module.json_format = _JsonFormat(self._message_to_dict())  # type: ignore[assignment]
        _servicer_module.deserialize_properties = self._deserialize(deserialize)  # type: ignore[assignment]
        _servicer_module.unknown_checking_proxy = self._proxy(proxy)  # type: ignore[assignment]
        SUBJECTS.active = True
        servicer = self.servicer
        if servicer is not None:
            servicer._get_resource_options = _once_per_object(  # type: ignore[method-assign]
                servicer._get_resource_options, self._per_call[1])
            servicer._get_provider_resource = _once_per_object(  # type: ignore[method-assign]
                servicer._get_provider_resource, self._per_call[2])
        try:
            yield self
        finally:
            if servicer is not None:
                del servicer._get_resource_options, servicer._get_provider_resource  # back to the class's methods
            (_servicer_module.json_format, _servicer_module.deserialize_properties,
             _servicer_module.unknown_checking_proxy, SUBJECTS.active) = saved
            SUBJECTS.clear()
            self.end_call()


_ACTIVE: list[SharedConversion] = []


@contextmanager
def shared_conversion(servicer: Optional["_PolicyAnalyzerServicer"] = None) -> Iterator[SharedConversion]:
    """Within: ``pulumi_policy``'s servicer converts each distinct resource content once, for all
    policies and calls (see the module docstring); gpufleet's policies then share one
    :class:`~gpufleet.policies.core.Subject` per resource (:data:`gpufleet.policies.pack.SUBJECTS`)
    and what rules derive from it. Everything else is the servicer's own code; the results are
    identical (tests compare both paths). Swaps the servicer module's references for the duration:
    for the offline harness, which calls the servicer from one thread, never under the Pulumi CLI.
    With ``servicer``, its resource options and provider (also rebuilt per policy) are made once per
    request as well. Nested use (the same servicer) joins the session already open; call
    :meth:`SharedConversion.end_call` after each servicer call to release its request."""
    if _ACTIVE and _ACTIVE[-1].servicer is servicer:
        yield _ACTIVE[-1]
        return
    session = SharedConversion(servicer)
    _ACTIVE.append(session)
    try:
        with session.installed():
            yield session
    finally:
        _ACTIVE.pop()
