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
    ("a[0:2]", "slices are not allowed"),
    ("a['x']", "constant 'x' is not allowed"),
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


# ---------------------------------------------------------------------------------------------
# exactness: names as written, branches over constants, and one clear error for what cannot
# be computed


def test_a_branch_named_e_or_pi_wins_over_the_constant():
    env = {"e": np.array([1.0, 2.0]), "HT": np.array([10.0, 20.0])}
    expr = compile_expression("e + HT + pi")
    assert expr.names == {"HT"} and expr.constants == {"e", "pi"}
    assert expr(env).tolist() == pytest.approx([11.0 + np.pi, 22.0 + np.pi])
    assert expr.kind({"e": "flat", "HT": "flat"}) == "flat"
    assert compile_expression("e * 2").kind({"HT": "flat"}) == "scalar"  # no branch e: the constant
    assert compile_expression("np.e + HT")(env).tolist() == pytest.approx([10 + np.e, 20 + np.e])


def test_names_are_matched_as_written_not_nfkc_normalised():
    """Python's parser turns 'ﬁ' (a ligature) into 'fi' and 'ｌｏｇ' into 'log'."""
    env = {"ﬁ": np.array([1.0]), "fi": np.array([100.0])}
    expr = compile_expression("ﬁ * 2")
    assert expr.names == {"ﬁ"} and expr(env).tolist() == [2.0]
    assert compile_expression("fi * 2")(env).tolist() == [200.0]
    with pytest.raises(ExpressionError, match="unknown branch 'ℌT'.*did you mean 'HT'\\? names are matched exactly as written"):
        compile_expression("ℌT + 1").kind({"HT": "flat"})
    for text in ("ｌｏｇ(fi)", "np.ｌｏｇ(fi)"):
        with pytest.raises(ExpressionError, match="unknown function 'ｌｏｇ'"):
            compile_expression(text)


@pytest.mark.parametrize("text, message", [
    ("-" * 300 + "a", "is nested 302 levels deep; at most 200 are allowed"),
    ("a" + " + a" * 400, "is nested 402 levels deep"),
    ("a" + " + a" * 50_000, "is nested too deeply"),
    ("(" * 300 + "a" + ")" * 300, "too many nested parentheses"),
    ("log(" * 250 + "a" + ")" * 250, "too many nested parentheses"),
    ("a + 9223372036854775808", "integer 9223372036854775808 does not fit in 64 bits"),
    ("a + 2**" + "9" * 30, "does not fit in 64 bits"),
    ("a + 10**400", "'10 ** 400' cannot be computed: overflow"),
    ("a * 1e400", "number 1e400 is too large for a float"),
    ("a + 2.0**5000", "cannot be computed: overflow"),
    ("a + 1/0", "'1 / 0' cannot be computed: divide by zero"),
    ("a + 7 // 0", "'7 // 0' cannot be computed: divide by zero"),
    ("a + 7 % 0", "cannot be computed"),
    ("a + log(0)", "'log(0)' cannot be computed"),
    ("a + sqrt(-1)", "'sqrt(-1)' cannot be computed: invalid value"),
    ("a + (9223372036854775807 + 1)", "'9223372036854775807 + 1' overflows 64-bit integers"),
    ("a + 3037000500 * 3037000500", "overflows 64-bit integers"),
    ("a + exp(1000)", "'exp(1000)' cannot be computed: overflow"),
    ("a + 1\x00", "null"),
])
def test_what_cannot_be_computed_is_one_expression_error(text, message):
    with pytest.raises(ExpressionError) as info:
        compile_expression(text, where="preproc.json: new_branch.x.def")
    assert str(info.value).startswith("preproc.json: new_branch.x.def: ")
    assert message in str(info.value)


def test_small_integer_branches_neither_wrap_nor_refuse_literals():
    env = {"c": np.array([100, -100], dtype=np.int8), "u": np.array([1, 2], dtype=np.uint16),
           "n": np.array([2_000_000_000], dtype=np.int32)}
    assert compile_expression("c * 100")(env).tolist() == [10_000, -10_000]  # int8 would wrap
    assert compile_expression("c + 300")(env).tolist() == [400, 200]  # out of bounds for int8
    assert compile_expression("u - 5")(env).tolist() == [-4, -3]  # uint16 would wrap
    assert compile_expression("n * 4")(env).tolist() == [8_000_000_000]  # int32 would wrap
    assert compile_expression("n + 9223372030000000000")(env).tolist() == [9223372032000000000]
    with pytest.raises(ExpressionError, match="overflows 64-bit integers"):  # was wrapped silently
        compile_expression("n + 9223372036854775000")(env)


@pytest.mark.parametrize("values", [
    ak.Array([[True, False, True], [], [False]]),
    ak.values_astype(ak.Array([[1, 2, 3], [], [7]]), np.int8),
    ak.values_astype(ak.Array([[1, 2, 3], [], [7]]), np.uint32),
    ak.values_astype(ak.Array([[1.5, 2.5, 3.0], [], [7.0]]), np.float16),
])
def test_reducers_over_boolean_integer_and_float16_jagged_values(values):
    env = {"j": values}
    numbers = [[float(v) for v in event] for event in ak.to_list(values)]
    assert compile_expression("sum(j)")(env).tolist() == [sum(e) for e in numbers]
    assert compile_expression("count(j)")(env).tolist() == [3, 0, 1]
    for name, fn in (("min", min), ("max", max), ("mean", lambda e: sum(e) / len(e))):
        result = compile_expression(f"{name}(j)")(env)
        assert result[[0, 2]].tolist() == [fn(numbers[0]), fn(numbers[2])] and np.isnan(result[1]), name


def test_sum_of_a_condition_counts_the_passes(env):
    assert compile_expression("sum(pt > 4)")(env).tolist() == [2, 0, 1, 1]


def test_evaluation_errors_are_expression_errors(env):
    with pytest.raises(ExpressionError, match="could not evaluate 'sum\\(a\\)'.*a reducer needs a jagged value"):
        compile_expression("sum(a)", where="w")(env)


# ---------------------------------------------------------------------------------------------
# the same on real ROOT files, through the Dataset


@pytest.fixture(scope="module")
def odd_names(tmp_path_factory):
    """A ROOT file whose branches are called e, pi, ﬁ (a ligature) and fi, with int8 and float16."""
    import uproot

    rng = np.random.default_rng(5)
    n = 3000
    arrays = {"e": rng.normal(5, 1, n), "pi": rng.normal(-3, 1, n), "ﬁ": rng.normal(100, 5, n),
              "fi": rng.normal(1, 0.1, n), "small": rng.integers(-100, 100, n).astype(np.int8),
              "HT": rng.exponential(200, n)}
    path = tmp_path_factory.mktemp("odd") / "odd.root"
    with uproot.recreate(path) as out:
        out.mktree("Events", {k: v.dtype for k, v in arrays.items()}).extend(arrays)
    return path, arrays


def _rows(ds, name):
    import mlaas4hep  # noqa: F401

    chunk = next(ds.iter_chunks(shuffle=False))
    return chunk.entry, chunk.X[:, ds.feature_names.index(name)]


def test_branches_named_e_pi_and_a_ligature_are_read_not_replaced(odd_names):
    import mlaas4hep

    path, arrays = odd_names
    preproc = {"new_branch": {"x": {"def": "e + pi * 2", "type": "flat"}, "y": {"def": "ﬁ * 1000 + fi"},
                              "z": {"def": "small * 100"}}}
    ds = mlaas4hep.Dataset([str(path)], params={"chunk_size": -1, "selected_branches": ["HT"]}, preproc=preproc)
    specs = ds.specs()
    for name, expected in (("x", arrays["e"] + arrays["pi"] * 2), ("y", arrays["ﬁ"] * 1000 + arrays["fi"]),
                           ("z", arrays["small"].astype(np.int64) * 100)):
        assert specs["minv"][name] == pytest.approx(expected.min()) and specs["maxv"][name] == pytest.approx(
            expected.max()), name
        entry, column = _rows(ds, name)
        lo, hi = expected.min(), expected.max()
        np.testing.assert_allclose(column, ((expected - lo) / (hi - lo))[entry], atol=2e-6)


def test_a_new_branch_named_e_wins_over_the_constant(tth):
    """The issue's example: x2 = e + HT with e = HT*2 is 3*HT, never HT + 2.718."""
    import uproot

    import mlaas4hep

    preproc = {"new_branch": {"e": {"def": "HT*2"}, "x2": {"def": "e+HT"}}}
    ds = mlaas4hep.Dataset([str(tth["signal"])], params={"chunk_size": -1, "selected_branches": ["MET"]},
                           preproc=preproc)
    ht = uproot.open(tth["signal"])["Events"]["HT"].array(library="np").astype(np.float64)
    specs = ds.specs()
    assert specs["minv"]["x2"] == pytest.approx(3 * ht.min()) and specs["maxv"]["x2"] == pytest.approx(3 * ht.max())


def test_an_unusable_branch_named_pi_is_refused_not_taken_as_the_constant():
    from mlaas4hep.config import load_preproc
    from mlaas4hep.preproc import Preprocessor

    preproc = load_preproc({"new_branch": {"y": {"def": "x * pi"}}})
    with pytest.raises(ExpressionError, match="'pi' in 'x \\* pi' is a branch of the file, which cannot be used: "
                                              "a string branch.*use np.pi for the constant"):
        Preprocessor(preproc, {"x": "flat"}, {"pi": "a string branch"})
    assert Preprocessor(load_preproc({"new_branch": {"y": {"def": "x * np.pi"}}}), {"x": "flat"},
                        {"pi": "a string branch"}).inputs == {"x"}


@pytest.mark.parametrize(("text", "env"), [
    ("n * 4", {"n": np.array([1, 2**62], dtype=np.int64)}),
    ("n * n", {"n": np.array([3, 3_037_000_500], dtype=np.int64)}),
    ("n + m", {"n": np.array([2**62, 1]), "m": np.array([2**62, 1])}),
    ("n - m", {"n": np.array([-(2**62), 0]), "m": np.array([2**62 + 1, 0])}),
    ("-n", {"n": np.array([5, -(2**63)], dtype=np.int64)}),
    ("n * 1000", {"n": ak.Array([[1, 2], [], [2**61]])}),
    ("n + m", {"n": ak.Array([[1, 2**62], []]), "m": np.array([2**62, 0])}),
])
def test_integer_overflow_depending_on_the_data_is_refused_not_wrapped(text, env):
    with pytest.raises(ExpressionError, match="overflows 64-bit integers"):
        compile_expression(text)(env)


def test_integer_arithmetic_near_the_limits_stays_exact():
    big = np.array([2**62, -(2**62), 3_037_000_499, 0], dtype=np.int64)
    assert compile_expression("n * 2 - 1")({"n": np.array([2**62 - 1])}).tolist() == [2**63 - 3]
    assert compile_expression("n * n")({"n": big[2:]}).tolist() == [3_037_000_499**2, 0]
    assert compile_expression("n + m")({"n": big, "m": -big}).tolist() == [0, 0, 0, 0]
    assert compile_expression("n - 1")({"n": np.array([-(2**63) + 1])}).tolist() == [-(2**63)]
    jagged = compile_expression("n * 1000")({"n": ak.Array([[1, 2], [], [2**50]])})
    assert jagged.tolist() == [[1000, 2000], [], [2**50 * 1000]]
    assert compile_expression("n * 1.0 * n")({"n": np.array([2**62])}).tolist() == [2.0**124]


def test_min_and_max_of_an_event_with_nan_are_nan_like_sum_and_mean():
    values = ak.Array([[1.0, np.nan, 3.0], [np.nan], [], [2.0, 5.0]])
    env = {"j": values, "f": ak.values_astype(values, np.float32)}
    for name in ("j", "f"):
        for reducer in ("min", "max", "sum", "mean"):
            out = compile_expression(f"{reducer}({name})")(env)
            assert np.isnan(out[:2]).all(), (reducer, name, out)  # never skipped, never ±inf
        assert compile_expression(f"min({name})")(env)[3] == 2.0
        assert compile_expression(f"max({name})")(env)[3] == 5.0
    # a cut on such an event fails, as every cut on NaN does
    assert compile_expression("min(j) > 0")(env).tolist() == [False, False, False, True]
