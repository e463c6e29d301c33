"""The vectorised engine against a per-event Python reference, value for value."""

from __future__ import annotations

import math

import numpy as np
import pytest

import mlaas4hep
from reference import reference

ATOL = 2e-6  # float32 features in [0, 1]


def engine_rows(ds: mlaas4hep.Dataset):
    """All rows of one unshuffled pass, ordered by (file, entry)."""
    chunks = list(ds.iter_chunks(shuffle=False))
    X = np.concatenate([c.X for c in chunks])
    fi = np.concatenate([c.file_index for c in chunks])
    entry = np.concatenate([c.entry for c in chunks])
    y = np.concatenate([c.y for c in chunks]) if chunks and chunks[0].y is not None else None
    order = np.lexsort((entry, fi))
    return X[order], fi[order], entry[order], (None if y is None else y[order])


def check_specs_against(specs, ref, paths):
    assert specs["events"]["per_file"] == dict(zip(paths, ref["events"]))
    assert specs["events"]["total"] == sum(ref["events"])
    assert specs["events_read"]["per_file"] == dict(zip(paths, ref["events_read"]))
    assert specs["jdim"] == ref["jdim"]
    assert specs["nans"] == ref["nans"]
    for name in ref["minv"]:
        assert specs["minv"][name] == pytest.approx(ref["minv"][name], rel=1e-6), name
        assert specs["maxv"][name] == pytest.approx(ref["maxv"][name], rel=1e-6), name


# ---------------------------------------------------------------------------------------------
# flat, jagged, int, bool and NaN-bearing branches


def test_kitchen_sink_without_preproc_matches_reference(kitchen_sink):
    ds = mlaas4hep.Dataset([str(kitchen_sink)], params={"identifier": ["id"], "use_masks": True, "chunk_size": 700})
    specs = ds.specs()
    flat = ["b", "const", "i", "njb", "njf", "nji", "x"]
    jagged = ["jb", "jf", "ji"]
    assert specs["fkeys"] == flat and specs["jkeys"] == jagged
    ref = reference([str(kitchen_sink)], "Events", flat + jagged,
                    lambda e: ({n: e[n] for n in flat + jagged}, True), flat, jagged, masks=True)
    check_specs_against(specs, ref, ds.paths)
    assert specs["nans"]["x"] > 0 and specs["nans"]["jf"] > 0  # the file has NaN and inf
    X, fi, entry, y = engine_rows(ds)
    assert y is None
    assert X.dtype == np.float32 and X.shape == ref["X"].shape
    np.testing.assert_allclose(X, ref["X"], rtol=0, atol=ATOL)
    assert list(entry) == ref["entries"][0]
    assert ds.feature_names[:7] == flat and ds.feature_names[7] == "jb[0]"
    assert ds.feature_names[-1] == f"ji_mask[{specs['jdim']['ji'] - 1}]"
    const = ds.feature_names.index("const")
    assert not X[:, const].any()  # a constant branch maps to 0


SINK_PREPROC = {
    "new_branch": {
        "jf_log": {"def": "log1p(jf)", "type": "jagged", "cut": ["jf_log < 4", "all"]},
        "ratio": {"def": "x / (i + 1)", "type": "flat", "cut": "ratio > 0.5", "keys_to_remove": ["x"]},
        "njf_big": {"def": "count(jf) + sum(ji > 10)", "remove": True, "cut": "njf_big >= 2"},
    },
    "flat_cut": {"i": {"cut": "i != 3"}, "b": {"cut": "b | (i > 5)", "remove": "True"}},
    "jagged_cut": {"ji": {"cut": ["ji > 0", "any"]}, "jb": {"cut_1": ["jb", "any"]}},
}


def sink_event(e):
    jf, ji, jb = list(e["jf"]), list(e["ji"]), list(e["jb"])
    jf_log = [math.log1p(float(v)) for v in jf]
    with np.errstate(all="ignore"):
        ratio = float(e["x"]) / (int(e["i"]) + 1)
    njf_big = len(jf) + sum(1 for v in ji if v > 10)
    passed = (
        all(v < 4 for v in jf_log) and ratio > 0.5 and njf_big >= 2 and e["i"] != 3
        and (bool(e["b"]) or e["i"] > 5) and any(v > 0 for v in ji) and any(jb)
    )
    values = {"const": e["const"], "i": e["i"], "njb": e["njb"], "njf": e["njf"], "nji": e["nji"],
              "ratio": ratio, "jb": jb, "jf": jf, "ji": ji, "jf_log": jf_log}
    return values, passed


def test_kitchen_sink_with_every_preproc_feature_matches_reference(kitchen_sink, kitchen_sink2):
    ds = mlaas4hep.Dataset([str(kitchen_sink), str(kitchen_sink2)], labels=["1", "0"],
                           params={"identifier": "id", "chunk_size": 500}, preproc=SINK_PREPROC)
    specs = ds.specs()
    flat = ["const", "i", "njb", "njf", "nji", "ratio"]
    jagged = ["jb", "jf", "jf_log", "ji"]
    assert specs["fkeys"] == flat and specs["jkeys"] == jagged
    branches = ["x", "i", "b", "const", "njb", "njf", "nji", "jb", "jf", "ji"]
    ref = reference([str(kitchen_sink), str(kitchen_sink2)], "Events", branches, sink_event, flat, jagged)
    assert 0 < ref["events"][0] < ref["events_read"][0]
    check_specs_against(specs, ref, ds.paths)
    X, fi, entry, y = engine_rows(ds)
    np.testing.assert_allclose(X, ref["X"], rtol=0, atol=ATOL)
    assert list(y) == [1] * ref["events"][0] + [0] * ref["events"][1]
    assert np.count_nonzero(X[:, ds.feature_names.index("ratio")] == 0) >= specs["nans"]["ratio"]


def test_figure4_on_tth(tth, figure4):
    """The paper's preproc: selected counts, jdim and min/max against a per-event computation."""
    ds = mlaas4hep.Dataset(tth["files"], labels=tth["labels"],
                           params={"identifier": ["run", "event", "luminosityBlock"], "chunk_size": 1000},
                           preproc=figure4)
    specs = ds.specs()
    flat = ["HT", "MET", "MET_phi", "lep1Eta", "lep1Phi", "lep1Pt", "nBJets", "nJets_square", "nLeptons",
            "nPartons", "passTrigger", "weight"]
    jagged = ["jetBtag", "jetEta", "jetM", "jetPhi", "jetPt", "log_partonE", "partonEta", "partonPhi", "partonPt"]
    assert specs["fkeys"] == flat and specs["jkeys"] == jagged
    assert "partonE" not in ds.feature_names and "nJets" not in ds.feature_names  # keys_to_remove

    def event(e):
        log_e = [math.log(float(v)) for v in e["partonE"]]
        n2 = float(e["nJets"]) ** 2
        passed = (any(v < 6.31 for v in log_e) and all(v > 5.85 for v in log_e) and 1 <= n2 <= 16
                  and 0 <= e["nLeptons"] <= 2 and all(v > 200 for v in e["partonPt"]))
        values = {n: e[n] for n in flat + jagged if n in e}
        values.update(nJets_square=n2, log_partonE=log_e)
        return values, passed

    branches = [b for b in flat + jagged if b not in ("nJets_square", "log_partonE")] + ["partonE", "nJets"]
    ref = reference([str(tth["signal"]), str(tth["background"])], "Events", branches, event, flat, jagged)
    assert all(n > 100 for n in ref["events"])
    check_specs_against(specs, ref, ds.paths)
    assert specs["jdim"]["jetPt"] == 4  # nJets**2 <= 16
    assert specs["minv"]["partonPt"] > 200 and specs["minv"]["log_partonE"] > 5.85
    X, fi, entry, y = engine_rows(ds)
    np.testing.assert_allclose(X, ref["X"], rtol=0, atol=ATOL)


# ---------------------------------------------------------------------------------------------
# mixing


@pytest.fixture(scope="module")
def tth_dataset(tth):
    def make(**params):
        return mlaas4hep.Dataset(tth["files"], labels=tth["labels"],
                                 params={"chunk_size": 1000, "identifier": "run,event,luminosityBlock", **params},
                                 preproc={"flat_cut": {"nLeptons": {"cut": "nLeptons <= 2"}}})
    return make


def test_every_selected_event_exactly_once_per_pass(tth_dataset):
    ds = tth_dataset()
    specs = ds.specs()
    seen = {0: [], 1: []}
    sizes = []
    for chunk in ds.iter_chunks():
        sizes.append(len(chunk))
        for i in (0, 1):
            seen[i].extend(chunk.entry[chunk.file_index == i].tolist())
        # labels follow the file of each row
        assert np.array_equal(chunk.y, np.where(chunk.file_index == 0, 1, 0))
    for i, path in enumerate(ds.paths):
        assert len(seen[i]) == len(set(seen[i])) == specs["events"]["per_file"][path]
    assert all(s == 1000 for s in sizes[:-1]) and 0 < sizes[-1] <= 1000
    assert sum(sizes) == specs["events"]["total"]


def test_each_chunk_keeps_the_proportions(tth_dataset):
    ds = tth_dataset()
    specs = ds.specs()
    events = [specs["events"]["per_file"][p] for p in ds.paths]
    share = events[0] / sum(events)
    for chunk in ds.iter_chunks():
        n_sig = int(np.count_nonzero(chunk.file_index == 0))
        assert abs(n_sig - share * len(chunk)) <= 1.0 + 1e-9, (chunk.index, n_sig, len(chunk))


def test_shuffle_permutes_rows_and_is_seeded(tth_dataset):
    ds = tth_dataset()
    plain = {(int(f), int(e)): row for c in ds.iter_chunks(shuffle=False)
             for f, e, row in zip(c.file_index, c.entry, c.X.copy())}
    first = [c.entry.copy() for c in ds.iter_chunks(shuffle=True, seed=1)]
    again = [c.entry.copy() for c in ds.iter_chunks(shuffle=True, seed=1)]
    other = [c.entry.copy() for c in ds.iter_chunks(shuffle=True, seed=2)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    for chunk in ds.iter_chunks(shuffle=True, seed=1):
        for f, e, row in zip(chunk.file_index, chunk.entry, chunk.X):
            np.testing.assert_array_equal(row, plain[(int(f), int(e))])
        assert not np.all(np.diff(chunk.entry[chunk.file_index == 0]) > 0)  # really shuffled


def test_nevts_caps_the_total_and_reads_only_the_first_entries(tth_dataset):
    ds = tth_dataset(nevts=2500)
    specs = ds.specs()
    assert specs["events_read"]["per_file"] == {p: 2500 for p in ds.paths}
    chunks = list(ds.iter_chunks())
    total = sum(len(c) for c in chunks)
    assert total == 2500 and len(chunks) == 3
    assert max(int(c.entry.max()) for c in chunks) < 2500
    sig = sum(int(np.count_nonzero(c.file_index == 0)) for c in chunks)
    events = [specs["events"]["per_file"][p] for p in ds.paths]
    assert abs(sig - 2500 * events[0] / sum(events)) <= 1


def test_unlabelled_chunks_have_no_labels(tth):
    ds = mlaas4hep.Dataset(tth["files"], params={"chunk_size": 4000, "nevts": 6000})
    out = list(ds.chunks())
    assert [len(X) for X, _ in out] == [4000, 2000]
    assert all(y is None for _, y in out)


def test_kept_chunks_are_never_overwritten(tth_dataset):
    ds = tth_dataset(chunk_size=500)
    kept, copies = [], []
    for X, y in ds.chunks():
        kept.append(X)
        copies.append(X.copy())
    assert len(kept) > 5
    for a, b in zip(kept, copies):
        np.testing.assert_array_equal(a, b)


def test_buffers_are_reused_when_dropped(tth_dataset):
    ds = tth_dataset(chunk_size=500)
    bases = set()
    for X, _ in ds.chunks():
        bases.add(id(X.base))
        del X
    assert len(bases) <= 4  # the pool's size, not one buffer per chunk


def test_stopping_early_releases_the_background_threads(tth_dataset):
    import threading

    before = {t.ident for t in threading.enumerate()}  # e.g. an earlier test's API thread pool

    def ours():
        return [t.name for t in threading.enumerate() if t.name.startswith("mlaas4hep-") and t.ident not in before]

    ds = tth_dataset(chunk_size=500)
    for _ in range(3):
        it = ds.chunks()
        next(it)
        assert ours()  # the prefetch thread and the readers are at work
        it.close()
        assert ours() == []  # closing joins them: none is left behind, whatever else runs


def test_identifiers_travel_with_rows(tth):
    import uproot

    ds = mlaas4hep.Dataset(tth["files"], labels=tth["labels"], params={"identifier": ["event"], "chunk_size": 3000})
    events = {i: uproot.open(p)["Events"]["event"].array(library="np") for i, p in enumerate(ds.paths)}
    for chunk in ds.iter_chunks(identifiers=True):
        assert "event" not in ds.feature_names
        for i in (0, 1):
            rows = chunk.file_index == i
            np.testing.assert_array_equal(chunk.identifiers["event"][rows], events[i][chunk.entry[rows]])


# ---------------------------------------------------------------------------------------------
# specs cache


def test_specs_are_cached_and_invalidated(tth, tmp_path, monkeypatch, figure4):
    import os
    import shutil

    import mlaas4hep.dataset as dataset_module

    sig = shutil.copy(tth["signal"], tmp_path / "s.root")
    params = {"cache_dir": str(tmp_path / "cache")}
    first = mlaas4hep.Dataset([sig], params=params, preproc=figure4).specs()

    calls = []
    real = dataset_module.compute_specs
    monkeypatch.setattr(dataset_module, "compute_specs", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = mlaas4hep.Dataset([sig], params=params, preproc=figure4).specs()
    assert calls == [] and again["events"] == first["events"]

    figure4["flat_cut"]["nLeptons"]["cut"] = "nLeptons <= 1"
    changed = mlaas4hep.Dataset([sig], params=params, preproc=figure4).specs()
    assert calls == [1] and changed["events"]["total"] < first["events"]["total"]

    mlaas4hep.Dataset([sig], params={**params, "nevts": 500}, preproc=figure4).specs()
    assert calls == [1, 1]

    st = os.stat(sig)
    os.utime(sig, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file changed
    mlaas4hep.Dataset([sig], params=params, preproc=figure4).specs()
    assert calls == [1, 1, 1]
    assert not (tmp_path / "global-specs.json").exists()


def test_given_specs_file_sets_the_normalisation(tth, tmp_path):
    import json

    ds = mlaas4hep.Dataset(tth["files"], labels=tth["labels"], params={"chunk_size": 50_000})
    specs = ds.specs()
    custom = {**specs, "maxv": {**specs["maxv"], "HT": specs["maxv"]["HT"] * 2}}
    path = tmp_path / "specs.json"
    path.write_text(json.dumps(custom))
    X1, _ = next(iter(ds.chunks(shuffle=False)))
    col = ds.feature_names.index("HT")
    other = mlaas4hep.Dataset(tth["files"], labels=tth["labels"], params={"chunk_size": 50_000}, specs=path)
    X2, _ = next(iter(other.chunks(shuffle=False)))
    lo = specs["minv"]["HT"]
    np.testing.assert_allclose(X2[:, col], X1[:, col] * (specs["maxv"]["HT"] - lo) / (2 * specs["maxv"]["HT"] - lo),
                               rtol=1e-5, atol=1e-6)


def test_jdim_cap_clips_and_counts(tth):
    ds = mlaas4hep.Dataset(tth["files"], params={"jdim": 3, "chunk_size": 50_000})
    specs = ds.specs()
    assert all(f"jetPt[{i}]" in ds.feature_names for i in range(3)) and "jetPt[3]" not in ds.feature_names
    list(ds.chunks())
    import uproot

    over = sum(int(np.clip(uproot.open(p)["Events"]["nJets"].array(library="np") - 3, 0, None).sum())
               for p in ds.paths)
    assert ds.clipped["jetPt"] == over > 0
    assert specs["jdim"]["jetPt"] > 3  # specs keep the true maximum


def test_resuming_from_a_chunk_gives_the_same_chunks(tth_dataset):
    ds = tth_dataset(chunk_size=1500, nevts=9000)
    full = [(c.X.copy(), c.y.copy(), c.entry.copy(), c.positions) for c in ds.iter_chunks()]
    assert len(full) == 6
    for k in (1, 4):
        resumed = [(c.index, c.X.copy(), c.y.copy(), c.entry.copy(), c.positions)
                   for c in ds.iter_chunks(resume=(k, full[k - 1][3]))]
        assert [r[0] for r in resumed] == list(range(k, 6))
        for (index, X, y, entry, positions), (fX, fy, fentry, fpositions) in zip(resumed, full[k:]):
            np.testing.assert_array_equal(X, fX)
            np.testing.assert_array_equal(y, fy)
            np.testing.assert_array_equal(entry, fentry)
            assert positions == fpositions
    # a second resume from a resumed run's positions agrees too
    again = list(ds.iter_chunks(resume=(5, full[4][3])))
    np.testing.assert_array_equal(again[0].entry, full[5][2])
