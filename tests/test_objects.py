"""Leading objects, picks and four-vectors in expressions, checked event by event against the plain
reference (tests/reference.py: math on each event, no awkward, no vector) on real ROOT files."""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
import pytest
import uproot

from mlaas4hep import ExpressionError
from mlaas4hep.explore import Sample
from mlaas4hep.expr import compile_expression

from reference import (ref_argmax, ref_argmin, ref_delta_phi, ref_delta_r, ref_nth, ref_pair, ref_total, ref_xyze)

N = 1500
KINDS = {"jetPt": "jagged", "jetEta": "jagged", "jetPhi": "jagged", "partonE": "jagged", "partonPt": "jagged",
         "partonEta": "jagged", "partonPhi": "jagged", "MET_phi": "flat", "lep1Eta": "flat", "HT": "flat"}


@pytest.fixture(scope="module")
def events(tth):
    tree = uproot.open(tth["signal"])["Events"]
    np_arrays = tree.arrays(list(KINDS), entry_stop=N, library="np")
    ak_arrays = tree.arrays(list(KINDS), entry_stop=N)
    env = {k: (ak_arrays[k] if KINDS[k] == "jagged" else np_arrays[k]) for k in KINDS}
    per_event = [{k: np_arrays[k][i] for k in KINDS} for i in range(N)]
    return env, per_event


def run(text: str, env) -> np.ndarray:
    expr = compile_expression(text)
    assert expr.kind(KINDS) == "flat"
    return np.asarray(expr(env), dtype=np.float64)


def check(got: np.ndarray, expected: list[float], rtol=1e-5, atol=1e-3) -> None:
    expected = np.array(expected, dtype=np.float64)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    ok = ~np.isnan(expected)
    np.testing.assert_allclose(got[ok], expected[ok], rtol=rtol, atol=atol)


@pytest.mark.parametrize("n", [0, 1, 3, -1])
def test_leading_objects(events, n):
    env, per_event = events
    check(run(f"jetPt[{n}]", env), [ref_nth(e["jetPt"], n) for e in per_event], rtol=0, atol=0)
    assert np.isnan(run(f"jetPt[{n}]", env)).sum() == sum(1 for e in per_event if len(e["jetPt"]) <= (n if n >= 0 else -n - 1))


def test_fill_first_last_argmax_and_sort(events):
    env, per_event = events
    check(run("nth(jetPt, 2, -1)", env), [ref_nth(e["jetPt"], 2, -1.0) for e in per_event], rtol=0, atol=0)
    check(run("first(jetEta)", env), [ref_nth(e["jetEta"], 0) for e in per_event], rtol=0, atol=0)
    check(run("last(jetEta)", env), [ref_nth(e["jetEta"], -1) for e in per_event], rtol=0, atol=0)
    check(run("jetEta[argmax(jetPt)]", env),
          [ref_nth(e["jetEta"], ref_argmax(e["jetPt"])) if len(e["jetPt"]) else math.nan for e in per_event],
          rtol=0, atol=0)
    check(run("sort_desc(jetPt)[1]", env), [ref_nth(sorted(e["jetPt"], reverse=True), 1) for e in per_event],
          rtol=0, atol=0)
    check(run("sort(jetPt)[0]", env), [ref_nth(sorted(e["jetPt"]), 0) for e in per_event], rtol=0, atol=0)


def test_argmax_and_argmin_with_nan_elements_are_missing_wherever_the_nan_sits():
    # awkward's own argmax answers the NaN's index when it comes first and skips it elsewhere
    jets = [[1.0, math.nan, 3.0], [math.nan, 2.0], [2.0, 5.0, math.nan], [math.nan], [], [4.0, 1.0, 4.0]]
    eta = [[0.1, 0.2, 0.3], [0.4, 0.5], [0.6, 0.7, 0.8], [0.9], [], [1.0, 1.1, 1.2]]
    env = {"jetPt": ak.Array(jets), "jetEta": ak.Array(eta)}
    kinds = {"jetPt": "jagged", "jetEta": "jagged"}
    for name, ref in (("argmax", ref_argmax), ("argmin", ref_argmin)):
        assert compile_expression(f"{name}(jetPt)")(env).tolist() == [ref(e) for e in jets] == (
            [-1, -1, -1, -1, -1, 0] if name == "argmax" else [-1, -1, -1, -1, -1, 1])
        picked = compile_expression(f"jetEta[{name}(jetPt)]")
        assert picked.kind(kinds) == "flat"
        got = np.asarray(picked(env), dtype=np.float64)
        assert np.isnan(got[:5]).all() and got[5] == (1.0 if name == "argmax" else 1.1)
    # sort puts NaN elements first both ways: the leading object is NaN where max / min are
    for name in ("sort", "sort_desc"):
        got = np.asarray(compile_expression(f"{name}(jetPt)[0]")(env), dtype=np.float64)
        assert np.isnan(got[:4]).all() and got[5] == (4.0 if name == "sort_desc" else 1.0)
    assert compile_expression("sort_desc(jetPt)")(env).tolist()[0][1:] == [3.0, 1.0]
    # max gives NaN for the same events: an index from argmax never picks another object than max
    assert np.isnan(np.asarray(compile_expression("max(jetPt)")(env), dtype=np.float64)[:5]).all()


def test_a_cut_on_a_missing_object_fails(tth):
    sample = Sample([str(tth["signal"])], n_events=N)
    rows = sample.cutflow({"new_branch": {"j3": {"def": "jetPt[3]", "cut": "j3 > -1e9"}}})
    jets = uproot.open(tth["signal"])["Events"]["nJets"].array(library="np", entry_stop=N)
    assert rows[-1]["total"] == int((jets >= 4).sum()) < N  # no fourth jet: NaN, the cut fails


def test_angles(events):
    env, per_event = events
    got = compile_expression("deltaPhi(MET_phi, jetPhi)")(env)
    expected = [[ref_delta_phi(e["MET_phi"], p) for p in e["jetPhi"]] for e in per_event]
    np.testing.assert_allclose(np.concatenate([np.asarray(x, float) for x in got.tolist() if len(x)]),
                               [v for ev in expected for v in ev], atol=1e-5)
    assert np.all(np.abs(np.concatenate([np.asarray(x, float) for x in got.tolist() if len(x)])) <= math.pi)
    check(run("deltaR(jetEta[0], jetPhi[0], jetEta[1], jetPhi[1])", env),
          [ref_delta_r(e["jetEta"][0], e["jetPhi"][0], e["jetEta"][1], e["jetPhi"][1]) if len(e["jetEta"]) > 1
           else math.nan for e in per_event])
    check(run("min(deltaR(0, MET_phi, partonEta, partonPhi))", env),
          [min((ref_delta_r(0.0, e["MET_phi"], a, b) for a, b in zip(e["partonEta"], e["partonPhi"])),
               default=math.nan) for e in per_event])


@pytest.mark.parametrize("component", ["mass", "pt", "eta", "phi"])
def test_four_vectors_of_pairs_and_sums(events, component):
    env, per_event = events
    pair = "mass" if component == "mass" else f"pair_{component}"
    jets = [[ref_xyze(*o) for o in zip(e["jetPt"], e["jetEta"], e["jetPhi"], [10.0] * len(e["jetPt"]))]
            for e in per_event]
    check(run(f"{pair}(jetPt, jetEta, jetPhi, 10, 0, 1)", env), [ref_pair(j, 0, 1)[component] for j in jets])
    check(run(f"sum_{component}(jetPt, jetEta, jetPhi, 10)", env),
          [ref_total(j)[component] for j in jets])
    # (px, py, pz, E) inputs: the partons, built from their pt, eta, phi and E; the engine computes
    # px, py, pz of float32 branches in float32, so near-massless sums differ by float32 rounding
    xyz = "partonPt*cos(partonPhi), partonPt*sin(partonPhi), partonPt*sinh(partonEta), partonE"
    partons = [[(pt * math.cos(ph), pt * math.sin(ph), pt * math.sinh(et), float(en)) for pt, et, ph, en in
                zip(map(float, e["partonPt"]), map(float, e["partonEta"]), map(float, e["partonPhi"]), e["partonE"])]
               for e in per_event]
    check(run(f"{pair}_xyze({xyz}, 0, 2)", env), [ref_pair(p, 0, 2)[component] for p in partons], rtol=1e-4,
          atol=0.5)
    check(run(f"sum_{component}_xyze({xyz})", env), [ref_total(p)[component] for p in partons], rtol=1e-4,
          atol=0.5)


@pytest.mark.parametrize("text, message", [
    ("mass(jetPt, jetEta, jetPhi, 0, 0, HT)", "argument 6 of mass() must be a whole number"),
    ("jetPt[0:2]", "slices are not allowed"),
    ("HT[0]", "'HT' is flat (one value per event): only a jagged value can be indexed"),
    ("jetEta[jetPt]", "the index 'jetPt' must be one number per event"),
    ("sort(HT)", "sort() works on a jagged value"),
    ("nth(jetPt, 0, jetEta)", "argument 3 of nth() must be one number per event"),
])
def test_mistakes_are_named(text, message):
    with pytest.raises(ExpressionError) as info:
        compile_expression(text, "preproc.json: new_branch.x.def").kind(KINDS)
    assert message in str(info.value) and "new_branch.x.def" in str(info.value)
