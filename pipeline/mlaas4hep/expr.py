"""Preproc expressions: parsed with :mod:`ast` into a whitelist, compiled into vectorised
functions over flat (numpy) and jagged (awkward) arrays. Never ``eval``.

The language: numbers, ``True``/``False``, the constants ``pi`` and ``e`` (also ``np.pi``,
``np.e``), branch names,
``+ - * / // ** %``, unary ``-``/``+``, comparisons (chained too: ``1 <= x <= 16``),
``& | ~`` and ``and / or / not`` (all element-wise logical), and the functions in
:data:`FUNCTIONS` (``np.log`` and ``numpy.log`` are accepted as spellings of ``log``).
Reducers (``count sum min max mean``) turn a jagged value into a flat one, per event.
Objects and four-vectors (:mod:`~mlaas4hep.physics`): ``jetPt[0]`` (the leading object; NaN
where an event has none, a cut on NaN fails), ``nth(x, n, fill)``, ``first last argmax argmin``
(``jetEta[argmax(jetPt)]``), ``sort sort_desc``, ``deltaPhi deltaR``, and the mass, pt, eta,
phi of a pair of objects or of the sum of all of them (``mass(jetPt, jetEta, jetPhi, jetM, 0, 1)``).

Exactness rules:

* A branch (or new branch) named ``pi`` or ``e`` is that branch, never the constant:
  :attr:`Expression.constants` lists the constant names an expression uses, and whoever binds
  it to branches (:class:`~mlaas4hep.preproc.Preprocessor`) reads a branch of that name instead.
* Names are matched exactly as written (Python's parser NFKC-normalises identifiers, so ``ﬁ``
  would become ``fi``; the text as written is used instead).
* Integer branches are computed in 64 bits (int8/16/32 values never wrap or refuse a literal
  that does not fit them), float16 in float32; integer literals must fit in 64 bits. An integer
  ``+ - *`` or negation whose result for some event does not fit in 64 bits is refused when it is
  computed, never wrapped.
* Parts without any branch are folded when compiled; one that overflows or divides by zero is
  refused. Nesting deeper than :data:`MAX_DEPTH` is refused.
"""

from __future__ import annotations

import ast
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from . import physics
from .errors import ExpressionError, did_you_mean

SCALAR, FLAT, JAGGED = "scalar", "flat", "jagged"
_RANK = {SCALAR: 0, FLAT: 1, JAGGED: 2}


def _is_ak(x: Any) -> bool:
    return isinstance(x, ak.Array)


def _where(cond, a, b):
    if _is_ak(cond) or _is_ak(a) or _is_ak(b):
        return ak.where(cond, a, b)
    return np.where(cond, a, b)


def _reducer(func: Callable, integer: bool = False, propagate_nan: bool = False) -> Callable:
    """A per-event reducer; booleans count as 0/1 (``sum`` of a condition counts the passes).

    ``propagate_nan``: an event with a NaN element reduces to NaN, as ``sum`` and ``mean`` do
    (awkward's ``min``/``max`` skip NaN, and give ±inf for an event of NaN only).
    """

    def reduce(x):
        if not _is_ak(x):
            raise TypeError("a reducer needs a jagged value")
        kind = _content_kind(x)
        if kind == "b" or (kind in "iu" and not integer):
            x = ak.values_astype(x, np.int64 if integer else np.float64)
        out = ak.to_numpy(ak.fill_none(func(x, axis=1), 0 if integer else np.nan))
        if propagate_nan and kind == "f":
            has_nan = ak.to_numpy(ak.any(np.isnan(x), axis=1))
            if has_nan.any():
                out = np.where(has_nan, np.nan, out)
        return out

    return reduce


def _content_dtype(x: ak.Array) -> np.dtype:
    layout = ak.to_layout(x)
    while hasattr(layout, "content"):
        layout = layout.content
    return layout.dtype if hasattr(layout, "dtype") else np.dtype(object)


def _content_kind(x: ak.Array) -> str:
    return _content_dtype(x).kind


def _count(x):
    return ak.to_numpy(ak.num(x, axis=1))


@dataclass(frozen=True)
class Function:
    impl: Callable
    nargs: int
    reducer: bool = False  # jagged -> flat, per event
    doc: str = ""
    jagged_out: bool = False  # jagged -> jagged (sort)
    int_args: tuple[int, ...] = ()  # positions that must be integer numbers (object indices)
    flat_args: tuple[int, ...] = ()  # positions that must not be jagged (per-event index, fill)


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
FUNCTIONS["sum"] = Function(_reducer(ak.sum, integer=True), 1, reducer=True, doc="0 for an empty event")
FUNCTIONS["min"] = Function(_reducer(ak.min, propagate_nan=True), 1, reducer=True,
                            doc="NaN for an empty event or one with a NaN element")
FUNCTIONS["max"] = Function(_reducer(ak.max, propagate_nan=True), 1, reducer=True,
                            doc="NaN for an empty event or one with a NaN element")
FUNCTIONS["mean"] = Function(_reducer(ak.mean), 1, reducer=True, doc="NaN for an empty event")

FUNCTIONS["nth"] = Function(physics.nth, 3, reducer=True, flat_args=(1, 2),
                            doc="nth(x, n, fill): the n-th element per event (x[n] with fill for a missing one)")
FUNCTIONS["first"] = Function(physics.first, 1, reducer=True, doc="x[0]: NaN for an empty event")
FUNCTIONS["last"] = Function(physics.last, 1, reducer=True, doc="x[-1]: NaN for an empty event")
FUNCTIONS["argmax"] = Function(physics.argmax, 1, reducer=True, doc="index of the largest element; -1 if empty or NaN")
FUNCTIONS["argmin"] = Function(physics.argmin, 1, reducer=True, doc="index of the smallest element; -1 if empty or NaN")
FUNCTIONS["sort"] = Function(physics.sort, 1, jagged_out=True, doc="ascending, per event")
FUNCTIONS["sort_desc"] = Function(physics.sort_desc, 1, jagged_out=True, doc="descending, per event")
FUNCTIONS["deltaPhi"] = Function(physics.delta_phi, 2, doc="deltaPhi(phi1, phi2), wrapped into [-pi, pi)")
FUNCTIONS["deltaR"] = Function(physics.delta_r, 4, doc="deltaR(eta1, phi1, eta2, phi2)")
for _suffix, _names, _inputs in (("", physics.PTETAPHIM, "pt, eta, phi, m"), ("_xyze", physics.XYZE, "px, py, pz, E")):
    for _component, _pair_name, _sum_name in (("mass", "mass", "sum_mass"), ("pt", "pair_pt", "sum_pt"),
                                              ("eta", "pair_eta", "sum_eta"), ("phi", "pair_phi", "sum_phi")):
        FUNCTIONS[_pair_name + _suffix] = Function(
            physics.pair_function(_names, _component), 6, reducer=True, int_args=(4, 5),
            doc=f"{_pair_name}{_suffix}({_inputs}, i, j): {_component} of objects i + j; NaN if one is missing")
        FUNCTIONS[_sum_name + _suffix] = Function(
            physics.total_function(_names, _component), 4, reducer=True,
            doc=f"{_sum_name}{_suffix}({_inputs}): {_component} of the sum of all objects of the event")

CONSTANTS = {"pi": float(np.pi), "e": float(np.e)}

#: Deepest nesting of an expression (a sum of 150 terms is 150 deep)
MAX_DEPTH = 200
_INT64_MAX = 2**63 - 1

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
    #: constant names used (``pi``, ``e``): a branch of that name, when there is one, wins
    constants: frozenset[str] = frozenset()

    def __call__(self, arrays: Mapping[str, Any]) -> Any:
        with np.errstate(all="ignore"):
            try:
                return self._fn(arrays)
            except ExpressionError:
                raise
            except (TypeError, ValueError, KeyError, IndexError, ArithmeticError, RecursionError) as err:
                raise ExpressionError(
                    f"could not evaluate {self.text!r}: {type(err).__name__}: {err}", where=self.where
                ) from None

    def check_names(self, known: Iterable[str]) -> None:
        """Raise if the expression reads a name that is not in ``known``."""
        known = list(known)
        for name in sorted(self.names):
            if name not in known:
                raise ExpressionError(
                    f"unknown branch {name!r} in {self.text!r}",
                    where=self.where,
                    hint=lookalike_hint(name, known) or did_you_mean(name, known) or _closest_hint(known),
                )

    def kind(self, kinds: Mapping[str, str]) -> str:
        """The kind of the result (``scalar``, ``flat`` or ``jagged``) given branch kinds."""
        self.check_names(kinds)
        return _kind_of(self._tree, kinds, self)


def lookalike_hint(name: str, known: Iterable[str]) -> str | None:
    """A hint for a name that differs from a branch only by Unicode look-alikes (``ℌT``, ``HT``)."""
    folded = unicodedata.normalize("NFKC", name)
    for other in known:
        if other != name and unicodedata.normalize("NFKC", other) == folded:
            return f"did you mean {other!r}? names are matched exactly as written"
    return None


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
        shown = f"\n    {source}\n    {' ' * col}^" if len(source) <= 120 and "\n" not in source else ""
        raise ExpressionError(
            f"syntax error in {_short(source)!r} at column {col + 1}: {err.msg}{shown}", where=where,
        ) from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"{_short(source)!r} is nested too deeply (at most {MAX_DEPTH} levels)",
                              where=where) from None
    except ValueError as err:  # e.g. a NUL character
        raise ExpressionError(f"cannot parse {_short(source)!r}: {err}", where=where) from None
    depth = _depth(tree)
    if depth > MAX_DEPTH:
        raise ExpressionError(f"{_short(source)!r} is nested {depth} levels deep; at most {MAX_DEPTH} are allowed",
                              where=where, hint="split it into new branches")
    _restore_names(tree, source)
    names: set[str] = set()
    constants: set[str] = set()
    fn = _Compiler(source, where, names, constants).compile(tree)
    return Expression(text=source, where=where, names=frozenset(names), _tree=tree, _fn=fn,
                      constants=frozenset(constants))


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _depth(tree: ast.AST) -> int:
    """The nesting depth of a tree, without recursion."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _restore_names(tree: ast.AST, source: str) -> None:
    """Put back each name as written: Python's parser NFKC-normalises identifiers (``ﬁ`` becomes
    ``fi``, ``ℌ`` becomes ``H``), but branch names must match exactly. Offsets are UTF-8 bytes."""
    lines = source.encode("utf-8").splitlines(keepends=True)

    def written(lineno: int, start: int, end_lineno: int, end: int) -> str:
        if lineno != end_lineno:
            return ""
        return lines[lineno - 1][start:end].decode("utf-8", errors="replace")

    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            raw = written(node.lineno, node.col_offset, node.end_lineno, node.end_col_offset)
            if raw and raw != node.id:
                node.id = raw
        elif isinstance(node, ast.Attribute):
            raw = written(node.value.end_lineno, node.value.end_col_offset, node.end_lineno, node.end_col_offset)
            raw = raw.strip().lstrip(".").strip()
            if raw and raw != node.attr and raw.isidentifier():
                node.attr = raw


class _Compiler:
    def __init__(self, text: str, where: str, names: set[str], constants: set[str]):
        self.text, self.where, self.names, self.constants = text, where, names, constants
        self._dynamic: dict[int, bool] = {}  # id(node) -> uses a name (branch or shadowable constant)
        self._folded: dict[int, Any] = {}  # id(node) -> its value, for parts without names

    def fail(self, node: ast.AST, message: str, hint: str | None = None) -> ExpressionError:
        col = getattr(node, "col_offset", 0)
        return ExpressionError(
            f"{message} in {self.text!r} (column {col + 1})", where=self.where, hint=hint
        )

    def compile(self, node: ast.AST) -> Callable[[Mapping[str, Any]], Any]:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise self.fail(node, f"{_describe(node)} is not allowed", _ALLOWED_HINT)
        fn = method(node)
        if isinstance(node, ast.Name):
            dynamic = True
        else:
            children = node.args if isinstance(node, ast.Call) else ast.iter_child_nodes(node)
            dynamic = any(self._dynamic.get(id(child), False) for child in children)
        self._dynamic[id(node)] = dynamic
        if not dynamic and not isinstance(node, ast.Constant):
            return self._fold(node, fn)
        return fn

    def _fold(self, node: ast.AST, fn: Callable) -> Callable:
        """Compute a part without branches now; refuse one that overflows or divides by zero."""
        part = ast.unparse(node)
        try:
            with np.errstate(all="raise"):
                value = fn({})
        except (FloatingPointError, OverflowError, ZeroDivisionError) as err:
            raise self.fail(node, f"{part!r} cannot be computed: {err}") from None
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
            left, right = (self._folded_value(n) for n in (node.left, node.right))
            if _is_int(left) and _is_int(right):
                exact = {ast.Add: int.__add__, ast.Sub: int.__sub__, ast.Mult: int.__mul__}[type(node.op)](
                    int(left), int(right))
                if not -_INT64_MAX - 1 <= exact <= _INT64_MAX:
                    raise self.fail(node, f"{part!r} overflows 64-bit integers", "write a float, e.g. 2.0**70")
                value = exact
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            raise self.fail(node, f"{part!r} is {value} (an overflow or a division by zero)")
        self._folded[id(node)] = value
        return lambda env: value

    def _folded_value(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        return self._folded.get(id(node))

    def visit_Constant(self, node: ast.Constant):
        value = node.value
        if isinstance(value, bool):
            return lambda env: value
        if isinstance(value, int):
            if value > _INT64_MAX:
                raise self.fail(node, f"integer {value} does not fit in 64 bits (at most 2**63-1)",
                                f"write it as a float, e.g. {float(value):.6g}")
            return lambda env: value
        if isinstance(value, float):
            if not np.isfinite(value):
                raise self.fail(node, f"number {_short(ast.get_source_segment(self.text, node) or repr(value))} "
                                      "is too large for a float (at most about 1.8e308)")
            return lambda env: value
        raise self.fail(node, f"constant {value!r} is not allowed (numbers and True/False only)")

    def visit_Name(self, node: ast.Name):
        name = node.id
        if name in FUNCTIONS:
            raise self.fail(node, f"{name!r} is a function; call it as {name}(...)")
        if name in CONSTANTS:
            # the constant, unless the environment has a branch of that name: the binding
            # (Preprocessor) reads such a branch, so it is there whenever it exists
            self.constants.add(name)
            value = CONSTANTS[name]
            return lambda env, name=name: _widen(env[name]) if name in env else value
        self.names.add(name)

        def lookup(env, name=name):
            try:
                return _widen(env[name])
            except KeyError:
                raise ExpressionError(
                    f"branch {name!r} is not available", where=self.where,
                    hint=did_you_mean(name, env) or _closest_hint(list(env)),
                ) from None

        return lookup

    def visit_Attribute(self, node: ast.Attribute):
        """``np.pi`` / ``np.e``: the constant, whatever the branches are called."""
        if isinstance(node.value, ast.Name) and node.value.id in _NUMPY_MODULES and node.attr in CONSTANTS:
            value = CONSTANTS[node.attr]
            return lambda env: value
        raise self.fail(node, f"{_describe(node)} is not allowed", _ALLOWED_HINT)

    def visit_BinOp(self, node: ast.BinOp):
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise self.fail(node, f"operator {_OP_TEXT.get(type(node.op), type(node.op).__name__)!r} is not allowed", _ALLOWED_HINT)
        left, right = self.compile(node.left), self.compile(node.right)
        if isinstance(node.op, (ast.Add, ast.Sub, ast.Mult)):
            checked = _OVERFLOW_CHECKS[type(node.op)]
            part = ast.unparse(node)

            def arithmetic(env):
                a, b = left(env), right(env)
                result = op(a, b)
                folded = isinstance(a, int) and isinstance(b, int)  # constants: checked exactly when folded
                if not folded and _int64_result(result) and checked(a, b, result):
                    raise ExpressionError(
                        f"{part!r} overflows 64-bit integers for some events in {self.text!r}; integer "
                        "branches are computed exactly or not at all", where=self.where,
                        hint="compute it in floating point, e.g. multiply one side by 1.0")
                return result

            return arithmetic
        return lambda env: op(left(env), right(env))

    def visit_UnaryOp(self, node: ast.UnaryOp):
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.USub):
            part = ast.unparse(node)

            def negative(env):
                value = operand(env)
                if _int64_result(value) and np.any(_flat_values(value) == np.iinfo(np.int64).min):
                    raise ExpressionError(f"{part!r} overflows 64-bit integers (-(-2**63)) in {self.text!r}",
                                          where=self.where, hint="compute it in floating point")
                return np.negative(value)

            return negative
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
        for position in func.int_args:
            if _integer_literal(node.args[position]) is None:
                raise self.fail(node.args[position], f"argument {position + 1} of {name}() must be a whole number "
                                                     f"(an object index such as 0 or 1), got "
                                                     f"{ast.unparse(node.args[position])!r}")
        args = [self.compile(a) for a in node.args]
        impl = func.impl
        if func.nargs == 1:
            arg = args[0]
            return lambda env: impl(arg(env))
        return lambda env: impl(*(a(env) for a in args))

    def visit_Subscript(self, node: ast.Subscript):
        """``x[n]``: the n-th element of each event of a jagged value (NaN where missing)."""
        if isinstance(node.slice, ast.Slice):
            raise self.fail(node, "slices are not allowed; take one element, e.g. jetPt[0]")
        value, index = self.compile(node.value), self.compile(node.slice)
        return lambda env: physics.nth(value(env), index(env))

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


def _integer_literal(node: ast.AST) -> int | None:
    if isinstance(node, ast.Constant) and _is_int(node.value):
        return int(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _integer_literal(node.operand)
        return None if inner is None else -inner
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _widen(value: Any) -> Any:
    """Integers as int64 (no wrap-around, and any 64-bit literal fits), float16 as float32."""
    if isinstance(value, np.ndarray):
        kind, size = value.dtype.kind, value.dtype.itemsize
        if (kind == "i" and size < 8) or (kind == "u" and size < 8):
            return value.astype(np.int64)
        if kind == "f" and size < 4:
            return value.astype(np.float32)
        return value
    if _is_ak(value):
        dtype = _content_dtype(value)
        if dtype.kind in "iu" and dtype.itemsize < 8:
            return ak.values_astype(value, np.int64)
        if dtype.kind == "f" and dtype.itemsize < 4:
            return ak.values_astype(value, np.float32)
    return value


def _flat_values(x: Any) -> np.ndarray:
    """All the numbers of a flat or jagged value, as one numpy array."""
    if _is_ak(x):
        return np.asarray(ak.to_numpy(ak.flatten(x, axis=None)))
    return np.asarray(x)


def _int64_result(x: Any) -> bool:
    if _is_ak(x):
        return _content_dtype(x) == np.int64
    return isinstance(x, (np.ndarray, np.integer)) and x.dtype == np.int64


def _operands(a: Any, b: Any, result: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``a``, ``b`` and ``result`` as flat int64 numpy arrays of one length (broadcast like the op)."""
    if _is_ak(result):
        a, b = ak.broadcast_arrays(a, b)
        return (_flat_values(a).astype(np.int64, copy=False), _flat_values(b).astype(np.int64, copy=False),
                _flat_values(result))
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
    return a.ravel(), b.ravel(), np.asarray(result).ravel()


def _add_overflows(a: Any, b: Any, result: Any) -> bool:
    x, y, r = _operands(a, b, result)
    return bool(np.any(((x ^ r) & (y ^ r)) < 0))  # both operands' signs differ from the result's


def _sub_overflows(a: Any, b: Any, result: Any) -> bool:
    x, y, r = _operands(a, b, result)
    return bool(np.any(((x ^ y) & (x ^ r)) < 0))


def _mul_overflows(a: Any, b: Any, result: Any) -> bool:
    x, y, _ = _operands(a, b, result)
    approx = np.abs(x.astype(np.float64) * y.astype(np.float64))
    near = np.flatnonzero(approx >= 2.0**62)  # float64 is exact enough below this
    return any(not -_INT64_MAX - 1 <= int(x[i]) * int(y[i]) <= _INT64_MAX for i in near)


_OVERFLOW_CHECKS: dict[type, Callable[[Any, Any, Any], bool]] = {
    ast.Add: _add_overflows, ast.Sub: _sub_overflows, ast.Mult: _mul_overflows,
}


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
    if isinstance(node, (ast.Constant, ast.Attribute)):  # numbers, np.pi
        return SCALAR
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS and node.id not in kinds:
            return SCALAR
        return kinds[node.id]
    if isinstance(node, ast.BinOp):
        return _max_kind(_kind_of(node.left, kinds, expr), _kind_of(node.right, kinds, expr))
    if isinstance(node, ast.UnaryOp):
        return _kind_of(node.operand, kinds, expr)
    if isinstance(node, ast.BoolOp):
        return _max_kind(*(_kind_of(v, kinds, expr) for v in node.values))
    if isinstance(node, ast.Compare):
        return _max_kind(*(_kind_of(v, kinds, expr) for v in [node.left, *node.comparators]))
    if isinstance(node, ast.Subscript):
        value_kind, index_kind = _kind_of(node.value, kinds, expr), _kind_of(node.slice, kinds, expr)
        if value_kind != JAGGED:
            raise ExpressionError(
                f"{ast.unparse(node.value)!r} is {value_kind} (one value per event): only a jagged value can be "
                f"indexed in {expr.text!r}", where=expr.where)
        if index_kind == JAGGED:
            raise ExpressionError(f"the index {ast.unparse(node.slice)!r} must be one number per event, not "
                                  f"jagged, in {expr.text!r}", where=expr.where, hint="e.g. argmax(jetPt)")
        return FLAT
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr  # validated at compile
        arg_kinds = [_kind_of(a, kinds, expr) for a in node.args]
        function = FUNCTIONS[name]
        for position in function.flat_args:
            if arg_kinds[position] == JAGGED:
                raise ExpressionError(
                    f"argument {position + 1} of {name}() must be one number per event, but "
                    f"{ast.unparse(node.args[position])!r} is jagged in {expr.text!r}", where=expr.where)
        if function.jagged_out:
            if arg_kinds[0] != JAGGED:
                raise ExpressionError(
                    f"{name}() works on a jagged value, but {ast.unparse(node.args[0])!r} is {arg_kinds[0]} "
                    f"in {expr.text!r}", where=expr.where)
            return JAGGED
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
