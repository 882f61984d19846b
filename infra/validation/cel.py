"""CEL (``x-kubernetes-validations``) evaluation with cel-python, plus the parts of Kubernetes' CEL
libraries with unambiguous semantics (regex, strings, lists).

Rules that cannot be evaluated faithfully (functions cel-python lacks, evaluation errors) are reported
as not evaluated, never as failures; transition rules (``oldSelf``) never apply on create.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from gpufleet.infra.validation.structural import _Node

# --------------------------------------------------------------------------------------------------
# CEL (x-kubernetes-validations)
# --------------------------------------------------------------------------------------------------

_OLDSELF = re.compile(r"\boldSelf\b")
_CEL_RESERVED = frozenset(
    "true false null in as break const continue else for function if import let loop package namespace "
    "return var void while".split()
)
_CEL_ESCAPABLE = re.compile(r"^[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*$")


def _cel_escape(name: str) -> str:
    """Kubernetes' escaping of property names for CEL field selection."""
    if name in _CEL_RESERVED:
        return f"__{name}__"
    if not _CEL_ESCAPABLE.match(name):
        return name
    return (
        name.replace("__", "__underscores__").replace(".", "__dot__").replace("-", "__dash__").replace("/", "__slash__")
    )


class _CelUnavailable(Exception):
    pass


@functools.lru_cache(maxsize=1)
def _cel_env():
    """(celpy module, celtypes module, Environment, extension functions) or raises _CelUnavailable."""
    try:
        import celpy  # type: ignore[import-not-found]
        from celpy import celtypes  # type: ignore[import-not-found]
    except Exception as exc:  # pragma: no cover - depends on the environment
        raise _CelUnavailable(f"cel-python not importable: {exc}") from exc
    try:
        import re2 as _re  # type: ignore[import-not-found]  # RE2, like Kubernetes
    except Exception:  # pragma: no cover
        _re = re
    try:
        env = celpy.Environment(runner_class=_folding_runner_class(celpy))
    except Exception:  # pragma: no cover - cel-python internals changed: plain interpreter
        env = celpy.Environment()
    return celpy, celtypes, env, _k8s_cel_functions(celtypes, _re)


# Parse-tree nodes that only pass a single literal value through (no operator, identifier or call).
_CONST_NODES = frozenset(
    "expr conditionalor conditionaland relation addition multiplication unary member primary literal "
    "list_lit exprlist".split()
)


def _folding_runner_class(celpy: Any) -> type:
    """cel-python's interpreter, with constant list literals evaluated once per compiled rule.

    Kubernetes rules such as ``self in ["karpenter.k8s.aws/instance-tenancy", ... 28 more]`` otherwise
    re-build the list (hundreds of parse-tree visits) for every value checked.  (cel-python's own
    ``CompiledRunner`` mis-evaluates ``has()`` in 0.5.0, so it is not an option.)
    """
    import lark
    from celpy.evaluation import CELEvalError, Evaluator

    missing = object()

    def is_constant(tree: Any) -> bool:
        return all(t.data in _CONST_NODES for t in tree.iter_subtrees())

    class FoldingEvaluator(Evaluator):
        def __init__(self, ast: Any, activation: Any, consts: dict[int, Any]):
            super().__init__(ast, activation=activation)
            self._consts = consts

        def sub_evaluator(self, ast: Any) -> Any:
            return FoldingEvaluator(ast, self.activation, self._consts)

        def _visit_tree(self, tree: Any) -> Any:
            value = self._consts.get(id(tree), missing)
            if value is not missing:
                return value
            return super()._visit_tree(tree)

    class FoldingRunner(celpy.InterpretedRunner):
        def __init__(self, environment: Any, ast: Any, functions: Any = None):
            super().__init__(environment, ast, functions)
            self._consts: dict[int, Any] = {}  # id(subtree) -> value; self.ast keeps the subtrees alive
            base = Evaluator(ast, activation=self.new_activation())
            for t in ast.iter_subtrees():
                if (
                    t.data == "primary"
                    and len(t.children) == 1
                    and isinstance(t.children[0], lark.Tree)
                    and t.children[0].data == "list_lit"
                    and is_constant(t)
                ):
                    try:
                        value = base.visit(t)
                    except Exception:
                        continue
                    if not isinstance(value, CELEvalError):
                        self._consts[id(t)] = value

        def evaluate(self, context: Any) -> Any:
            return FoldingEvaluator(self.ast, self.new_activation(), self._consts).evaluate(context)

    return FoldingRunner


def _k8s_cel_functions(ct: Any, rx: Any) -> dict[str, Any]:
    """The parts of Kubernetes' CEL libraries (regex, strings, lists) with unambiguous semantics.

    Not provided (rules using them are reported as skipped): quantity, url, ip/cidr, semver, format,
    authz, optional types.
    """
    S, L, I = ct.StringType, ct.ListType, ct.IntType

    def _str(x: Any) -> str:
        if not isinstance(x, str):
            raise TypeError("no such overload")
        return str(x)

    def find(s, pattern):
        m = rx.search(_str(pattern), _str(s))
        return S(m.group(0) if m else "")

    def find_all(s, pattern, limit=-1):
        found = [m.group(0) for m in rx.finditer(_str(pattern), _str(s))]
        return L([S(f) for f in (found if int(limit) < 0 else found[: int(limit)])])

    def split(s, sep, limit=-1):
        s, sep, n = _str(s), _str(sep), int(limit)
        if n == 0:
            return L([])
        if sep == "":
            parts = list(s)
            if n > 0 and len(parts) > n:
                parts = parts[: n - 1] + ["".join(parts[n - 1 :])]
        else:
            parts = s.split(sep) if n < 0 else s.split(sep, n - 1)
        return L([S(p) for p in parts])

    def lower_ascii(s):
        return S("".join(c.lower() if c.isascii() else c for c in _str(s)))

    def upper_ascii(s):
        return S("".join(c.upper() if c.isascii() else c for c in _str(s)))

    def trim(s):
        return S(_str(s).strip())

    def replace(s, old, new, limit=-1):
        return S(_str(s).replace(_str(old), _str(new), int(limit)))

    def substring(s, start, end=None):
        s = _str(s)
        b, e = int(start), len(s) if end is None else int(end)
        if not (0 <= b <= e <= len(s)):
            raise ValueError("index out of range")
        return S(s[b:e])

    def char_at(s, i):
        s, i = _str(s), int(i)
        if not 0 <= i <= len(s):
            raise ValueError("index out of range")
        return S(s[i : i + 1])

    def index_of(x, sub, offset=0):
        if isinstance(x, list):
            for i, v in enumerate(x):
                if v == sub:
                    return I(i)
            return I(-1)
        s, o = _str(x), int(offset)
        if not 0 <= o <= len(s):
            raise ValueError("index out of range")
        return I(s.find(_str(sub), o))

    def last_index_of(x, sub, offset=None):
        if isinstance(x, list):
            for i in range(len(x) - 1, -1, -1):
                if x[i] == sub:
                    return I(i)
            return I(-1)
        s = _str(x)
        return I(s.rfind(_str(sub)) if offset is None else s.rfind(_str(sub), 0, int(offset) + len(_str(sub))))

    def join(lst, sep=""):
        if not isinstance(lst, list):
            raise TypeError("no such overload")
        return S(_str(sep).join(_str(v) for v in lst))

    def is_sorted(lst):
        if not isinstance(lst, list):
            raise TypeError("no such overload")
        return ct.BoolType(all(lst[i] <= lst[i + 1] for i in range(len(lst) - 1)))

    def lst_sum(lst):
        if not isinstance(lst, list):
            raise TypeError("no such overload")
        if not lst:
            return I(0)
        total = lst[0]
        for v in lst[1:]:
            total = total + v
        return total

    def lst_max(lst):
        if not isinstance(lst, list) or not lst:
            raise ValueError("max of empty list")
        return max(lst)

    return {
        "find": find, "findAll": find_all, "split": split, "lowerAscii": lower_ascii, "upperAscii": upper_ascii,
        "trim": trim, "replace": replace, "substring": substring, "charAt": char_at, "indexOf": index_of,
        "lastIndexOf": last_index_of, "join": join, "isSorted": is_sorted, "sum": lst_sum, "max": lst_max,
    }


@functools.lru_cache(maxsize=None)
def _cel_program(rule: str) -> tuple[Any, str | None]:
    """(runner, None) or (None, reason it cannot run)."""
    try:
        celpy, _ct, env, funcs = _cel_env()
    except _CelUnavailable as exc:
        return None, str(exc)
    try:
        return env.program(env.compile(rule), functions=funcs), None
    except Exception as exc:
        return None, f"cel-python cannot compile it: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _to_cel(x: Any, node: _Node | None, ct: Any) -> Any:
    if x is None:
        return None
    if isinstance(x, bool):
        return ct.BoolType(x)
    t = node.type if node is not None else None
    if isinstance(x, int):
        return ct.DoubleType(x) if t == "number" else ct.IntType(x)
    if isinstance(x, float):
        return ct.IntType(int(x)) if t == "integer" and x.is_integer() else ct.DoubleType(x)
    if isinstance(x, str):
        if node is not None and node.fmt == "date-time":
            try:
                return ct.TimestampType(x)
            except Exception:
                pass
        return ct.StringType(x)
    if isinstance(x, list):
        it = node.items if node is not None else None
        return ct.ListType([_to_cel(v, it, ct) for v in x])
    if isinstance(x, dict):
        if node is not None and node.properties is not None:
            props = node.properties
            return ct.MapType({ct.StringType(_cel_escape(k)): _to_cel(v, props.get(k), ct) for k, v in x.items()})
        an = node.additional if node is not None and isinstance(node.additional, _Node) else None
        return ct.MapType({ct.StringType(k): _to_cel(v, an, ct) for k, v in x.items()})
    return x


_REASONS = {
    "FieldValueForbidden": "Forbidden",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
}



def _cel_value(x: Any, node: _Node) -> Any:
    try:
        return _to_cel(x, node, _cel_env()[1])
    except _CelUnavailable:
        return None


def _run_rule(rule: str, self_value: Any) -> tuple[bool | None, str | None]:
    """(True|False, None) when evaluated, (None, reason) when it could not be."""
    program, why = _cel_program(rule)
    if program is None:
        return None, why or "not compiled"
    ct = _cel_env()[1]
    try:
        result = program.evaluate({"self": self_value})
    except Exception as exc:  # CELEvalError (no such key, no such overload, unknown function ...) and the like
        msg = exc.args[0] if getattr(exc, "args", None) else exc
        return None, f"evaluation error: {str(msg)[:200]}"
    if not isinstance(result, ct.BoolType):
        return None, f"evaluation did not yield a bool: {str(result)[:200]}"
    return bool(result), None
