"""Real public files from scikit-hep-testdata 0.3.12: HZZ (jagged jets, muons, electrons) and
Zmumu (flat, with a string branch), through specs and chunks with a preproc on them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import uproot

import mlaas4hep

HZZ_PREPROC = {
    "new_branch": {
        "Jet_Pt": {"def": "hypot(Jet_Px, Jet_Py)", "type": "jagged", "cut": ["Jet_Pt > 25", "any"]},
        "MET": {"def": "hypot(MET_px, MET_py)", "type": "flat", "cut": "MET > 10",
                "keys_to_remove": ["MET_px", "MET_py"]},
    },
    "flat_cut": {"NMuon": {"cut": "NMuon >= 1"}},
    "jagged_cut": {"Muon_Iso": {"cut": ["Muon_Iso < 3", "all"]}},
}


def hzz_selection(path):
    t = uproot.open(path)["events"]
    data = t.arrays(["Jet_Px", "Jet_Py", "MET_px", "MET_py", "NMuon", "Muon_Iso"], library="np")
    keep, lengths, pts = [], [], []
    for i in range(t.num_entries):
        jet_pt = [math.hypot(float(x), float(y)) for x, y in zip(data["Jet_Px"][i], data["Jet_Py"][i])]
        met = math.hypot(float(data["MET_px"][i]), float(data["MET_py"][i]))
        if (any(p > 25 for p in jet_pt) and met > 10 and data["NMuon"][i] >= 1
                and all(v < 3 for v in data["Muon_Iso"][i])):
            keep.append(i)
            lengths.append(len(jet_pt))
            pts.extend(jet_pt)
    return keep, max(lengths), min(pts), max(pts)


@pytest.fixture(scope="module")
def hzz_pair():
    import skhep_testdata

    return [skhep_testdata.data_path("uproot-HZZ.root"), skhep_testdata.data_path("uproot-HZZ-lz4.root")]


def test_hzz_specs_and_chunks_match_an_independent_count(hzz_pair):
    ds = mlaas4hep.Dataset(hzz_pair, labels=["1", "0"], params={"branch": "events", "chunk_size": 300},
                           preproc=HZZ_PREPROC)
    specs = ds.specs()
    keep, jdim, pt_min, pt_max = hzz_selection(hzz_pair[0])
    assert 100 < len(keep) < 2421
    assert specs["events"]["per_file"] == {p: len(keep) for p in ds.paths}
    assert specs["events_read"]["total"] == 2 * 2421
    assert specs["jdim"]["Jet_Pt"] == jdim
    assert specs["minv"]["Jet_Pt"] == pytest.approx(pt_min, rel=1e-6)
    assert specs["maxv"]["Jet_Pt"] == pytest.approx(pt_max, rel=1e-6)
    assert "MET_px" not in specs["fkeys"] and "MET" in specs["fkeys"]
    assert "Jet_ID" in specs["jkeys"] and specs["dtypes"]["Jet_ID"] == "bool"
    entries = {0: [], 1: []}
    for chunk in ds.iter_chunks():
        assert chunk.X.shape[1] == len(ds.feature_names)
        assert np.isfinite(chunk.X).all() and chunk.X.min() >= 0 and chunk.X.max() <= 1 + 1e-6
        for i in (0, 1):
            entries[i] += chunk.entry[chunk.file_index == i].tolist()
    # the same events from both codecs, each exactly once
    assert sorted(entries[0]) == sorted(entries[1]) == keep


def test_zmumu_skips_its_string_branch_and_cuts_on_mass(zmumu):
    ds = mlaas4hep.Dataset([zmumu], params={"branch": "events", "identifier": ["Run", "Event"]},
                           preproc={"new_branch": {"dphi": {"def": "abs(phi1 - phi2)", "type": "flat"}},
                                    "flat_cut": {"M": {"cut": "80 < M < 100"}}})
    specs = ds.specs()
    assert "Type" in specs["skipped"] and "string" in specs["skipped"]["Type"]
    assert "Run" not in specs["fkeys"] and "dphi" in specs["fkeys"] and specs["jkeys"] == []
    t = uproot.open(zmumu)["events"]
    mass = t["M"].array(library="np")
    dphi = np.abs(t["phi1"].array(library="np") - t["phi2"].array(library="np"))
    selected = (mass > 80) & (mass < 100)
    assert specs["events"]["total"] == int(selected.sum()) > 0
    assert specs["maxv"]["dphi"] == pytest.approx(dphi[selected].max())
    (X, y), = list(ds.chunks(shuffle=False))
    assert y is None and X.shape == (int(selected.sum()), len(specs["fkeys"]))
    col = ds.feature_names.index("dphi")
    lo, hi = dphi[selected].min(), dphi[selected].max()
    np.testing.assert_allclose(X[:, col], (dphi[selected] - lo) / (hi - lo), atol=1e-6)
