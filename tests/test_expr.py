"""The expression whitelist: what compiles, what it computes, and what it refuses."""

import awkward as ak
import numpy as np
import pytest

from mlaas4hep import ExpressionError, compile_expression

FLAT = {"a": "flat", "b": "flat", "nJets": "flat"}
KINDS = {**FLAT, "pt": "jagged", "eta": "jagged"}


@pytest.fixture
def env():
    return {
        "a": np.array([1.0, 4.0, 9.0, 0.0]),
        "b": np.array([2.0, -1.0, 3.0, 5.0]),
        "nJets": np.array([0, 3, 5, 17], dtype=np.int32),
        "pt": ak.Array([[10.0, 20.0], [], [5.0], [30.0, 1.0, 2.0]]),
        "eta": ak.Array([[0.1, -0.2], [], [2.0], [0.0, 1.0, -1.0]]),
    }


@pytest.mark.parametrize("text, expected", [
    ("a + b * 2", [5.0, 2.0, 15.0, 10.0]),
    ("-a ** 2", [-1.0, -16.0, -81.0, -0.0]),
    ("a % 2", [1.0, 0.0, 1.0, 0.0]),
    ("a // 2", [0.0, 2.0, 4.0, 0.0]),
    ("sqrt(a)", [1.0, 2.0, 3.0, 0.0]),
    ("np.sqrt(a)", [1.0, 2.0, 3.0, 0.0]),
    ("hypot(a, b)", list(np.hypot([1.0, 4.0, 9.0, 0.0], [2.0, -1.0, 3.0, 5.0]))),
    ("maximum(a, b)", [2.0, 4.0, 9.0, 5.0]),
    ("where(a > b, a, b)", [2.0, 4.0, 9.0, 5.0]),
    ("abs(b)", [2.0, 1.0, 3.0, 5.0]),
    ("nJets ** 2", [0.0, 9.0, 25.0, 289.0]),
    ("nJets ** -1", [np.inf, 1 / 3, 1 / 5, 1 / 17]),
    ("2 * pi", [2 * np.pi] * 4),
])
def test_arithmetic_matches_numpy(env, text, expected):
    result = np.broadcast_to(compile_expression(text)(env), (4,))
    np.testing.assert_allclose(result, expected)


@pytest.mark.parametrize("text, expected", [
    ("1 <= nJets <= 16", [False, True, True, False]),
    ("(a > 1) & (b < 4)", [False, True, True, False]),
    ("(a > 1) | (b > 4)", [False, True, True, True]),
    ("~(a > 1)", [True, False, False, True]),
    ("a > 1 and b < 4", [False, True, True, False]),
    ("not a > 1 or nJets == 17", [True, False, False, True]),
    ("nJets != 3", [True, False, True, True]),
])
def test_logic_and_chained_comparisons(env, text, expected):
    assert list(compile_expression(text)(env)) == expected


def test_jagged_values_broadcast_with_flat(env):
    expr = compile_expression("pt * cosh(eta) + a")
    result = expr(env)
    assert ak.to_list(result)[0] == pytest.approx([10 * np.cosh(0.1) + 1, 20 * np.cosh(-0.2) + 1])
    assert ak.to_list(result)[1] == []
    assert expr.kind(KINDS) == "jagged"
    assert expr.names == {"pt", "eta", "a"}


def test_reducers_turn_jagged_into_flat(env):
    assert list(compile_expression("count(pt)")(env)) == [2, 0, 1, 3]
    assert list(compile_expression("sum(pt)")(env)) == [30.0, 0.0, 5.0, 33.0]
    maxima = compile_expression("max(pt)")(env)
    assert maxima[0] == 30 - 10 and np.isnan(maxima[1]) and list(maxima[2:]) == [5.0, 30.0]
    assert compile_expression("max(pt) > 15")(env).tolist() == [True, False, False, True]
    assert compile_expression("mean(pt)").kind(KINDS) == "flat"


def test_kinds(env):
    assert compile_expression("a * 2").kind(KINDS) == "flat"
    assert compile_expression("3 * 2").kind(KINDS) == "scalar"
    assert compile_expression("where(pt > 1, pt, 0)").kind(KINDS) == "jagged"
    with pytest.raises(ExpressionError, match="reduces a jagged value.*'a' is flat"):
        compile_expression("max(a)").kind(KINDS)


@pytest.mark.parametrize("text, message", [
    ("__import__('os').system('true')", "only the whitelisted functions can be called"),
    ("__import__('os')", "unknown function '__import__'"),
    ("a.__class__", "attribute access is not allowed"),
    ("os.system('ls')", "only the whitelisted functions can be called"),
    ("np.lib.stride_tricks(a)", "only the whitelisted functions can be called"),
    ("open('/etc/passwd')", "unknown function 'open'"),
    ("eval('1')", "unknown function 'eval'"),
    ("(lambda: 1)()", "only the whitelisted functions can be called"),
    ("[x for x in a]", "a comprehension is not allowed"),
    ("a[0]", "indexing is not allowed"),
    ("'text'", "constant 'text' is not allowed"),
    ("a @ b", "operator '@' is not allowed"),
    ("a if b else 0", "an if-expression is not allowed"),
    ("log(a, b)", "log\\(\\) takes 1 argument, got 2"),
    ("log(x=a)", "takes no keyword arguments"),
    ("a is b", "comparison 'is' is not allowed"),
    ("(y := 1)", "assignment"),
])
def test_refuses_everything_outside_the_whitelist(text, message):
    with pytest.raises(ExpressionError, match=message):
        compile_expression(text, where="preproc.json: new_branch.x.def")


def test_syntax_error_points_at_the_column():
    with pytest.raises(ExpressionError) as info:
        compile_expression("log(partonE", where="preproc.json: new_branch.log_partonE.def")
    text = str(info.value)
    assert text.startswith("preproc.json: new_branch.log_partonE.def: syntax error in 'log(partonE'")
    assert "^" in text


def test_unknown_branch_lists_the_closest():
    expr = compile_expression("log(partonEE)", where="preproc.json: new_branch.x.def")
    with pytest.raises(ExpressionError, match="unknown branch 'partonEE'.*did you mean 'partonE'"):
        expr.kind({"partonE": "jagged", "partonPt": "jagged", "nJets": "flat"})


def test_function_name_used_as_a_value():
    with pytest.raises(ExpressionError, match="'log' is a function"):
        compile_expression("log + 1")


def test_and_or_are_logical_even_on_numbers(env):
    # & and | mean element-wise and/or (a number counts as true when it is not 0)
    assert compile_expression("(a > 0) & b")(env).tolist() == [True, True, True, False]
    assert compile_expression("(a > 5) | nJets")(env).tolist() == [False, True, True, True]
