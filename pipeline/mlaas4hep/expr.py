"""Preproc expressions: parsed with :mod:`ast` into a whitelist, compiled into vectorised
functions over flat (numpy) and jagged (awkward) arrays. Never ``eval``.

The language: numbers, ``True``/``False``, the constants ``pi`` and ``e``, branch names,
``+ - * / // ** %``, unary ``-``/``+``, comparisons (chained too: ``1 <= x <= 16``),
``& | ~`` and ``and / or / not`` (all element-wise logical), and the functions in
:data:`FUNCTIONS` (``np.log`` and ``numpy.log`` are accepted as spellings of ``log``).
Reducers (``count sum min max mean``) turn a jagged value into a flat one, per event.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from .errors import ExpressionError, did_you_mean

SCALAR, FLAT, JAGGED = "scalar", "flat", "jagged"
_RANK = {SCALAR: 0, FLAT: 1, JAGGED: 2}


def _is_ak(x: Any) -> bool:
    return isinstance(x, ak.Array)


def _where(cond, a, b):
    if _is_ak(cond) or _is_ak(a) or _is_ak(b):
        return ak.where(cond, a, b)
    return np.where(cond, a, b)


def _reducer(func: Callable) -> Callable:
    def reduce(x):
        out = func(x, axis=1)
        return ak.to_numpy(ak.fill_none(out, np.nan))

    return reduce


def _count(x):
    return ak.to_numpy(ak.num(x, axis=1))


@dataclass(frozen=True)
class Function:
    impl: Callable
    nargs: int
    reducer: bool = False  # jagged -> flat, per event
    doc: str = ""


_UNARY = [
    "log", "log10", "log2", "log1p", "exp", "expm1", "sqrt", "cbrt", "square",
    "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
    "arcsinh", "arccosh", "arctanh", "floor", "ceil", "rint", "trunc", "sign",
    "isnan", "isfinite", "isinf", "deg2rad", "rad2deg",
]
_BINARY = ["arctan2", "hypot", "minimum", "maximum", "fmin", "fmax", "power"]

FUNCTIONS: dict[str, Function] = {name: Function(getattr(np, name), 1) for name in _UNARY}
FUNCTIONS.update({name: Function(getattr(np, name), 2) for name in _BINARY})
FUNCTIONS["abs"] = Function(np.absolute, 1)
FUNCTIONS["absolute"] = FUNCTIONS["abs"]
FUNCTIONS["where"] = Function(_where, 3, doc="where(cond, a, b)")
FUNCTIONS["count"] = Function(_count, 1, reducer=True, doc="number of elements per event")
FUNCTIONS["sum"] = Function(_reducer(ak.sum), 1, reducer=True)
FUNCTIONS["min"] = Function(_reducer(ak.min), 1, reducer=True, doc="NaN for an empty event")
FUNCTIONS["max"] = Function(_reducer(ak.max), 1, reducer=True, doc="NaN for an empty event")
FUNCTIONS["mean"] = Function(_reducer(ak.mean), 1, reducer=True, doc="NaN for an empty event")

CONSTANTS = {"pi": float(np.pi), "e": float(np.e)}

_BINOPS: dict[type, Callable] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide,
    ast.Mod: np.mod,
    ast.Pow: np.float_power,  # ints to negative powers would fail with np.power
    ast.BitAnd: np.logical_and,
    ast.BitOr: np.logical_or,
}
_CMPOPS: dict[type, Callable] = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
}
_OP_TEXT = {
    ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>", ast.BitXor: "^",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
}
_NUMPY_MODULES = {"np", "numpy"}


@dataclass
class Expression:
    """A compiled preproc expression.

    ``names`` are the branch names it reads; calling it with a mapping of branch name to
    array (numpy for flat branches, awkward for jagged ones) returns the result.
    """

    text: str
    where: str
    names: frozenset[str]
    _tree: ast.expr = field(repr=False)
    _fn: Callable[[Mapping[str, Any]], Any] = field(repr=False)

    def __call__(self, arrays: Mapping[str, Any]) -> Any:
        with np.errstate(all="ignore"):
            try:
                return self._fn(arrays)
            except ExpressionError:
                raise
            except (TypeError, ValueError) as err:
                raise ExpressionError(
                    f"could not evaluate {self.text!r}: {err}", where=self.where
                ) from err

    def check_names(self, known: Iterable[str]) -> None:
        """Raise if the expression reads a name that is not in ``known``."""
        known = list(known)
        for name in sorted(self.names):
            if name not in known:
                raise ExpressionError(
                    f"unknown branch {name!r} in {self.text!r}",
                    where=self.where,
                    hint=did_you_mean(name, known) or _closest_hint(known),
                )

    def kind(self, kinds: Mapping[str, str]) -> str:
        """The kind of the result (``scalar``, ``flat`` or ``jagged``) given branch kinds."""
        self.check_names(kinds)
        return _kind_of(self._tree, kinds, self)


def _closest_hint(known: list[str]) -> str | None:
    if not known:
        return None
    shown = ", ".join(sorted(known)[:12])
    more = "" if len(known) <= 12 else f", ... ({len(known)} in all)"
    return f"branches are: {shown}{more}"


def compile_expression(text: str, where: str = "expression") -> Expression:
    """Parse ``text`` into the whitelist and compile it. ``where`` names its place for errors."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(f"expected a non-empty expression string, got {text!r}", where=where)
    source = text.strip()
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError as err:
        col = (err.offset or 1) - 1
        raise ExpressionError(
            f"syntax error in {source!r} at column {col + 1}: {err.msg}\n    {source}\n    {' ' * col}^",
            where=where,
        ) from None
    names: set[str] = set()
    fn = _Compiler(source, where, names).compile(tree)
    return Expression(text=source, where=where, names=frozenset(names), _tree=tree, _fn=fn)


class _Compiler:
    def __init__(self, text: str, where: str, names: set[str]):
        self.text, self.where, self.names = text, where, names

    def fail(self, node: ast.AST, message: str, hint: str | None = None) -> ExpressionError:
        col = getattr(node, "col_offset", 0)
        return ExpressionError(
            f"{message} in {self.text!r} (column {col + 1})", where=self.where, hint=hint
        )

    def compile(self, node: ast.AST) -> Callable[[Mapping[str, Any]], Any]:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise self.fail(node, f"{_describe(node)} is not allowed", _ALLOWED_HINT)
        return method(node)

    def visit_Constant(self, node: ast.Constant):
        value = node.value
        if isinstance(value, bool) or isinstance(value, (int, float)):
            return lambda env: value
        raise self.fail(node, f"constant {value!r} is not allowed (numbers and True/False only)")

    def visit_Name(self, node: ast.Name):
        name = node.id
        if name in CONSTANTS:
            value = CONSTANTS[name]
            return lambda env: value
        if name in FUNCTIONS:
            raise self.fail(node, f"{name!r} is a function; call it as {name}(...)")
        self.names.add(name)

        def lookup(env, name=name):
            try:
                return env[name]
            except KeyError:
                raise ExpressionError(
                    f"branch {name!r} is not available", where=self.where,
                    hint=did_you_mean(name, env) or _closest_hint(list(env)),
                ) from None

        return lookup

    def visit_BinOp(self, node: ast.BinOp):
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise self.fail(node, f"operator {_OP_TEXT.get(type(node.op), type(node.op).__name__)!r} is not allowed", _ALLOWED_HINT)
        left, right = self.compile(node.left), self.compile(node.right)
        return lambda env: op(left(env), right(env))

    def visit_UnaryOp(self, node: ast.UnaryOp):
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.USub):
            return lambda env: np.negative(operand(env))
        if isinstance(node.op, ast.UAdd):
            return operand
        # ``not`` and ``~`` are both element-wise logical negation
        return lambda env: np.logical_not(operand(env))

    def visit_BoolOp(self, node: ast.BoolOp):
        parts = [self.compile(v) for v in node.values]
        op = np.logical_and if isinstance(node.op, ast.And) else np.logical_or

        def boolop(env):
            result = parts[0](env)
            for part in parts[1:]:
                result = op(result, part(env))
            return result

        return boolop

    def visit_Compare(self, node: ast.Compare):
        ops = []
        for op in node.ops:
            impl = _CMPOPS.get(type(op))
            if impl is None:
                raise self.fail(node, f"comparison {_OP_TEXT.get(type(op), type(op).__name__)!r} is not allowed")
            ops.append(impl)
        operands = [self.compile(node.left)] + [self.compile(c) for c in node.comparators]

        def compare(env):
            values = [operand(env) for operand in operands]
            result = ops[0](values[0], values[1])
            for i in range(1, len(ops)):
                result = np.logical_and(result, ops[i](values[i], values[i + 1]))
            return result

        return compare

    def visit_Call(self, node: ast.Call):
        name = self._function_name(node.func)
        func = FUNCTIONS.get(name)
        if func is None:
            raise self.fail(
                node, f"unknown function {name!r}",
                did_you_mean(name, FUNCTIONS) or "functions are: " + ", ".join(sorted(FUNCTIONS)),
            )
        if node.keywords:
            raise self.fail(node, f"{name}() takes no keyword arguments")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.fail(node, f"{name}() takes no *arguments")
        if len(node.args) != func.nargs:
            raise self.fail(node, f"{name}() takes {func.nargs} argument{'s' if func.nargs > 1 else ''}, got {len(node.args)}")
        args = [self.compile(a) for a in node.args]
        impl = func.impl
        if func.nargs == 1:
            arg = args[0]
            return lambda env: impl(arg(env))
        return lambda env: impl(*(a(env) for a in args))

    def _function_name(self, func: ast.expr) -> str:
        if isinstance(func, ast.Name):
            return func.id
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in _NUMPY_MODULES
        ):
            return func.attr
        raise self.fail(func, "only the whitelisted functions can be called", _ALLOWED_HINT)


_ALLOWED_HINT = (
    "allowed: numbers, branch names, + - * / // ** %, comparisons, & | ~, and/or/not, "
    "and functions like log, sqrt, abs, where, max"
)


def _describe(node: ast.AST) -> str:
    names = {
        "Attribute": "attribute access", "Subscript": "indexing", "Lambda": "lambda",
        "ListComp": "a comprehension", "GeneratorExp": "a comprehension", "DictComp": "a comprehension",
        "SetComp": "a comprehension", "List": "a list", "Tuple": "a tuple", "Dict": "a dict",
        "Set": "a set", "IfExp": "an if-expression", "NamedExpr": "assignment (:=)",
        "JoinedStr": "an f-string", "Starred": "*unpacking", "Await": "await", "Yield": "yield",
    }
    return names.get(type(node).__name__, type(node).__name__)


def _kind_of(node: ast.AST, kinds: Mapping[str, str], expr: Expression) -> str:
    if isinstance(node, ast.Constant):
        return SCALAR
    if isinstance(node, ast.Name):
        return SCALAR if node.id in CONSTANTS else kinds[node.id]
    if isinstance(node, ast.BinOp):
        return _max_kind(_kind_of(node.left, kinds, expr), _kind_of(node.right, kinds, expr))
    if isinstance(node, ast.UnaryOp):
        return _kind_of(node.operand, kinds, expr)
    if isinstance(node, ast.BoolOp):
        return _max_kind(*(_kind_of(v, kinds, expr) for v in node.values))
    if isinstance(node, ast.Compare):
        return _max_kind(*(_kind_of(v, kinds, expr) for v in [node.left, *node.comparators]))
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr  # validated at compile
        arg_kinds = [_kind_of(a, kinds, expr) for a in node.args]
        if FUNCTIONS[name].reducer:
            if arg_kinds[0] != JAGGED:
                raise ExpressionError(
                    f"{name}() reduces a jagged value to one per event, but its argument "
                    f"{ast.unparse(node.args[0])!r} is {arg_kinds[0]} in {expr.text!r}",
                    where=expr.where,
                )
            return FLAT
        return _max_kind(*arg_kinds)
    raise AssertionError(f"unvalidated node {node!r}")  # compile_expression rejects these


def _max_kind(*kinds: str) -> str:
    return max(kinds, key=_RANK.__getitem__)
