"""A tiny PromQL evaluator for tests: instant queries over synthetic series, on the syntax tree of
``promql-parser`` (the Rust parser Prometheus-compatible tools use).

It covers what gpufleet's alerts and panels use, with Prometheus' semantics for each:
selectors with label matchers (5-minute lookback), ``changes``/``avg_over_time`` over a range,
arithmetic and comparison (filtering) operators, ``and``/``or``/``unless`` with ``on(...)``, and
``max``/``min``/``sum``/``avg`` ``by (...)``. Anything else raises, so a test never silently
evaluates an expression it does not understand.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Iterable, Mapping

import promql_parser

Labels = frozenset  # of (name, value) pairs, "__name__" included for raw series
Series = Mapping[Labels, list[tuple[float, float]]]
"""Labels → samples ``(time in seconds, value)``, in time order."""

LOOKBACK = 300.0


def labels(name: str, **pairs: str) -> Labels:
    """The label set of a series ``name{pairs}``; empty values are dropped (as Prometheus does)."""
    return frozenset({("__name__", name), *((k, v) for k, v in pairs.items() if v != "")})


def evaluate(expr: str, series: Series, at: float) -> dict[Labels, float]:
    """The instant vector ``expr`` yields at time ``at``."""
    result = _eval(promql_parser.parse(expr), series, at)
    if isinstance(result, float):
        return {frozenset(): result}
    return result


def _matches(matcher, value: str) -> bool:
    op = str(matcher.op).rsplit(".", 1)[-1]
    if op == "Equal":
        return value == matcher.value
    if op == "NotEqual":
        return value != matcher.value
    if op == "Re":
        return re.fullmatch(matcher.value, value) is not None
    if op == "NotRe":
        return re.fullmatch(matcher.value, value) is None
    raise NotImplementedError(f"matcher {op}")


def _select(selector, series: Series) -> Iterable[tuple[Labels, list[tuple[float, float]]]]:
    for key, samples in series.items():
        found = dict(key)
        if selector.name and found.get("__name__") != selector.name:
            continue
        if all(_matches(m, found.get(m.name, "")) for m in selector.matchers.matchers):
            yield key, samples


def _drop_name(key: Labels) -> Labels:
    return frozenset((k, v) for k, v in key if k != "__name__")


def _seconds(value: timedelta) -> float:
    return value.total_seconds()


def _eval(node, series: Series, at: float):
    kind = type(node).__name__
    if kind == "NumberLiteral":
        return float(node.val)
    if kind == "ParenExpr":
        return _eval(node.expr, series, at)
    if kind == "VectorSelector":
        out = {}
        for key, samples in _select(node, series):
            recent = [v for t, v in samples if at - LOOKBACK < t <= at]
            if recent:
                out[key] = recent[-1]
        return out
    if kind == "Call":
        return _call(node, series, at)
    if kind == "AggregateExpr":
        return _aggregate(node, series, at)
    if kind == "BinaryExpr":
        return _binary(node, series, at)
    raise NotImplementedError(kind)


def _call(node, series: Series, at: float) -> dict[Labels, float]:
    name = node.func.name
    (arg,) = node.args
    if type(arg).__name__ != "MatrixSelector":
        raise NotImplementedError(f"{name} of {type(arg).__name__}")
    window = _seconds(arg.range)
    out = {}
    for key, samples in _select(arg.vector_selector, series):
        values = [v for t, v in samples if at - window < t <= at]
        if not values:
            continue
        if name == "changes":
            out[_drop_name(key)] = float(sum(1 for a, b in zip(values, values[1:]) if a != b))
        elif name == "avg_over_time":
            out[_drop_name(key)] = sum(values) / len(values)
        else:
            raise NotImplementedError(name)
    return out


def _aggregate(node, series: Series, at: float) -> dict[Labels, float]:
    op = str(node.op)
    inner = _eval(node.expr, series, at)
    by = set(node.modifier.labels) if node.modifier is not None else set()
    if node.modifier is not None and str(node.modifier.type).rsplit(".", 1)[-1] != "By":
        raise NotImplementedError("aggregation without")
    groups: dict[Labels, list[float]] = {}
    for key, value in inner.items():
        group = frozenset((k, v) for k, v in key if k in by)
        groups.setdefault(group, []).append(value)
    reduce = {"max": max, "min": min, "sum": sum, "avg": lambda v: sum(v) / len(v)}
    if op not in reduce:
        raise NotImplementedError(op)
    return {group: float(reduce[op](values)) for group, values in groups.items()}


_ARITH = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
          "/": lambda a, b: a / b if b else float("nan")}
_COMPARE = {">": lambda a, b: a > b, "<": lambda a, b: a < b, ">=": lambda a, b: a >= b,
            "<=": lambda a, b: a <= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


def _signature(key: Labels, matching) -> Labels:
    names = {k for k, _ in key} - {"__name__"}
    if matching is not None:
        include = str(matching.type).rsplit(".", 1)[-1] == "Include"  # on (...) vs ignoring (...)
        names = names & set(matching.labels) if include else names - set(matching.labels)
    return frozenset((k, v) for k, v in key if k in names)


def _binary(node, series: Series, at: float):
    op = str(node.op)
    modifier = node.modifier
    matching = modifier.matching if modifier is not None else None
    if modifier is not None and modifier.return_bool:
        raise NotImplementedError("bool modifier")
    lhs, rhs = _eval(node.lhs, series, at), _eval(node.rhs, series, at)
    if op in ("and", "or", "unless"):
        right = {_signature(k, matching) for k in rhs}
        if op == "and":
            return {k: v for k, v in lhs.items() if _signature(k, matching) in right}
        if op == "unless":
            return {k: v for k, v in lhs.items() if _signature(k, matching) not in right}
        left = {_signature(k, matching) for k in lhs}
        return {**lhs, **{k: v for k, v in rhs.items() if _signature(k, matching) not in left}}
    if op in _ARITH:
        fn, keep = _ARITH[op], False
    elif op in _COMPARE:
        fn, keep = _COMPARE[op], True
    else:
        raise NotImplementedError(op)
    if isinstance(lhs, float) and isinstance(rhs, float):
        return fn(lhs, rhs) if not keep else (lhs if fn(lhs, rhs) else {})
    if isinstance(rhs, float):
        if keep:
            return {k: v for k, v in lhs.items() if fn(v, rhs)}
        return {_drop_name(k): fn(v, rhs) for k, v in lhs.items()}
    if isinstance(lhs, float):
        if keep:
            return {k: v for k, v in rhs.items() if fn(lhs, v)}
        return {_drop_name(k): fn(lhs, v) for k, v in rhs.items()}
    # One-to-one vector matching (group_left/right is not used by gpufleet).
    right = {}
    for key, value in rhs.items():
        signature = _signature(key, matching)
        if signature in right:
            raise ValueError(f"many-to-many matching on {sorted(signature)}")
        right[signature] = value
    out = {}
    for key, value in lhs.items():
        signature = _signature(key, matching)
        if signature not in right:
            continue
        if keep:
            if fn(value, right[signature]):
                out[key] = value
        else:
            out[_drop_name(key) if matching is None else signature] = fn(value, right[signature])
    return out
