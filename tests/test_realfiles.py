"""Real ROOT files that broke the engine (scikit-hep-testdata 0.3.12, and files written here with
the same shapes): exact normalisation of large integers, leaves that share a name, leaf lists,
branches never filled, Double32_t / Float16_t, STL containers, a branch uproot misreads, an
experimental RNTuple; and the whole collection, every TTree, through the survey script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

import mlaas4hep
from mlaas4hep.errors import ConfigError, DataError
from support import need

ROOT = Path(__file__).resolve().parent.parent


def data(name: str) -> str:
    import skhep_testdata

    return skhep_testdata.data_path(name)


def run(path, tree, **params):
    ds = mlaas4hep.Dataset([path], params={"branch": tree, "specs_cache": False, **params})
    specs = ds.specs()
    X = np.concatenate([x for x, _ in ds.chunks(shuffle=False)])
    return ds, specs, X


def test_large_integers_are_normalised_exactly(tmp_path):
    """Values above 2**24 differ from their minimum by less than a float32 step: subtracting in
    float32 gave 1.0023 or a constant column; every value must come out in [0, 1] and exact."""
    n = 500
    rng = np.random.default_rng(1)
    arrays = {
        "Event": (42_000_000 + rng.permutation(n)).astype(np.int64),  # like Zmumu's Event (event would be an identifier)
        "fSec": (1_700_000_000 + rng.integers(0, 7, n)).astype(np.uint32),  # a Unix time, 6 s range
        "fPulseCount": (280_000_000 + rng.integers(0, 1000, n)).astype(np.int32),
        "dom_id": (806_451_572 + rng.integers(0, 800_000_000, n)).astype(np.int64),
        "x": rng.normal(0, 1, n),
    }
    path = tmp_path / "ints.root"
    with uproot.recreate(path) as out:
        out.mktree("t", {k: v.dtype for k, v in arrays.items()}).extend(arrays)
    ds, specs, X = run(path, "t")
    assert X.min() >= 0 and X.max() <= 1
    for name, values in arrays.items():
        col = X[:, ds.feature_names.index(name)]
        v = values.astype(np.float64)
        expected = (v - v.min()) / (v.max() - v.min())
        np.testing.assert_allclose(col, expected, rtol=0, atol=1e-7)
    # a 6-second range keeps its 7 distinct seconds
    assert len(np.unique(X[:, ds.feature_names.index("fSec")])) == len(np.unique(arrays["fSec"]))


@pytest.mark.filterwarnings("ignore::mlaas4hep.dataset.WideFeaturesWarning")
def test_leaves_sharing_a_name_stay_apart():
    """uproot-issue126a: 16 channel objects with the same 28 members: 448 leaves, each its own
    branch keyed by full path, with its own min/max; nothing folded into the first channel."""
    path = data("uproot-issue126a.root")
    tree = uproot.open(path)["ChannelSet"]
    leaves = [p for p, b in tree.iteritems(recursive=True, full_paths=True) if not b.branches]
    ds = mlaas4hep.Dataset([path], params={"branch": "ChannelSet", "specs_cache": False})
    branches = ds.branches()
    assert len(branches) == len(leaves) == 448
    counts = [k for k in branches if k.endswith("/fPulseCount")]
    assert len(counts) == 16 and all(k in leaves for k in counts)
    specs = ds.specs()
    increments = [k for k in branches if k.endswith("/fIncrement")]
    for key in counts + increments:
        values = tree[key].array(library="np")
        assert specs["minv"][key] == float(values.min()) and specs["maxv"][key] == float(values.max())
    # the channels differ: not 16 copies of the first one
    assert len({(specs["minv"][k], specs["maxv"][k]) for k in increments}) > 1
    assert len(set(ds.feature_names)) == len(ds.feature_names)
    assert all(specs["paths"][k] == k for k in counts)  # the specs say where each feature comes from
    # a short name shared by several leaves is refused with the full paths to choose from
    with pytest.raises(DataError) as err:
        mlaas4hep.Dataset([path], params={"branch": "ChannelSet", "selected_branches": ["fPulseCount"]}).specs()
    assert "16 branches are named 'fPulseCount'" in str(err.value) and counts[0] in str(err.value)


def test_leaf_list_and_never_filled_branches_are_skipped_with_a_reason():
    with pytest.raises(ConfigError) as err:  # one structured leaf-list branch and nothing else
        mlaas4hep.Dataset([data("uproot-issue501.root")], params={"branch": "T"}).specs()
    text = str(err.value)
    assert "\n" not in text and "uproot-issue501.root" in text and "'T'" in text and "'point'" in text
    assert "leaf list" in text
    ds, specs, X = run(data("uproot-issue327.root"), "DstTree")
    never = {k: why for k, why in specs["skipped"].items() if why.startswith("holds 0 entries")}
    assert len(never) > 50 and X.shape[0] == 98 and X.max() <= 1


def test_double32_float16_and_stl_sets_are_numbers():
    path = data("uproot-double32-float16.root")
    ds, specs, X = run(path, "tree")
    tree = uproot.open(path)["tree"]
    scalars = [k for k in tree.keys() if "[" not in tree[k].typename]
    assert sorted(specs["fkeys"]) == sorted(scalars) and len(scalars) == 10
    col = ds.feature_names.index("double32_32")
    v = tree["double32_32"].array(library="np")
    np.testing.assert_allclose(X[:, col], (v - v.min()) / (v.max() - v.min()), atol=1e-6)
    ds, specs, X = run(data("uproot-stl_containers.root"), "tree")
    assert "set_int32" in specs["jkeys"] and "vector_int32" in specs["jkeys"]
    sets = uproot.open(data("uproot-stl_containers.root"))["tree"]["set_int32"].array()
    assert specs["jdim"]["set_int32"] == int(ak.max(ak.num(sets)))
    assert "std::map" in specs["skipped"]["map_int32_int16"]


def test_a_branch_uproot_misreads_is_found_named_and_skipped():
    path = data("uproot-small-dy-nooffsets.root")
    ds, specs, X = run(path, "tree")
    assert specs["skipped"]["Jet_jetId"].startswith("uproot cannot read it: basket 1")
    assert "Jet_jetId" not in specs["jkeys"] and "MET_pt" in specs["fkeys"]
    assert X.shape[0] == 501 and X.max() <= 1
    # the finding survives a trip to another process (a Dask worker)
    import pickle

    from mlaas4hep.read import BranchReadError

    err = BranchReadError({"Jet_jetId": "basket 1 ..."}, "tree", 0, 501, where=path)
    back = pickle.loads(pickle.dumps(err))
    assert isinstance(back, BranchReadError) and back.failing == err.failing and str(back) == str(err)
    # asked for by name, it is refused, naming the file, the tree and the branch, on one line
    with pytest.raises(DataError) as err:
        run(path, "tree", selected_branches=["Jet_jetId", "MET_pt"])
    text = str(err.value)
    assert "\n" not in text and "uproot-small-dy-nooffsets.root" in text and "'tree'" in text
    assert "'Jet_jetId'" in text and "exclude_branches" in text


def test_a_truncated_file_is_not_blamed_on_its_branches(tmp_path):
    whole = Path(data("uproot-HZZ.root")).read_bytes()
    cut = tmp_path / "cut.root"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    try:
        ds = mlaas4hep.Dataset([str(cut)], params={"branch": "events", "specs_cache": False})
        ds.specs()
    except DataError as err:
        assert "corrupt or truncated" in str(err) and "uproot cannot read branch" not in str(err)
    else:
        pytest.fail("a truncated file read without an error")


def test_an_experimental_rntuple_is_named_as_such():
    with pytest.raises(DataError) as err:
        mlaas4hep.Dataset([data("uproot-ntpl001_staff.root")], params={"branch": "Staff"}).specs()
    assert "RNTuple in ROOT's experimental format" in str(err.value) and "uproot cannot read" in str(err.value)


def test_no_features_left_names_the_file_the_tree_and_the_reasons():
    with pytest.raises(ConfigError) as err:
        mlaas4hep.Dataset([data("uproot-issue124.root")], params={"branch": "KM3NET_EVENT"}).specs()
    text = str(err.value)
    assert "uproot-issue124.root" in text and "tree 'KM3NET_EVENT'" in text
    assert "of its 4 leaf branches, 4 cannot be features" in text and "\n" not in text


def test_cache_message_only_when_the_cache_was_used(tmp_path):
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"branch": "empty_tree", "specs_cache": False}))
    cmd = [sys.executable, "-m", "mlaas4hep.cli", "specs", "--files", data("uproot-issue335.root"),
           "--params", str(params)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "pipeline"), str(ROOT)])})
    assert done.returncode == 0, done.stderr
    assert "from cache" not in done.stderr


@pytest.mark.slow
def test_every_tree_of_scikit_hep_testdata_is_read_right_or_refused_clearly(tmp_path):
    """The survey script over all 140 files: no traceback, no hang (a cap per tree), event
    counts equal uproot's, every normalised value in [0, 1], no two leaves folded into one
    feature, and every refusal one line naming the file, the tree and a branch."""
    import skhep_testdata

    assert skhep_testdata.__version__ == "0.3.12"
    out = tmp_path / "survey.jsonl"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "survey_testdata.py"), "--quiet",
                           "--timeout", "120", "--json", str(out)], capture_output=True, text=True, timeout=1500,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "pipeline"), str(ROOT)])})
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) >= 250 and len({r["file"] for r in records}) >= 130
    bad = [r for r in records if r["status"] not in ("ok", "refused")]
    assert not bad, "\n".join(f"{r['status']} {r['file']}:{r['tree']}: {r.get('why') or r.get('message')}" for r in bad)
    for r in records:
        if r["status"] == "ok":
            assert r["entries"] is not None and r["features"] > 0
        else:  # names the file and the tree (checked by the script) and a branch
            assert "'" in r["message"].split(r["tree"], 1)[1], r["message"]
    assert sum(r["status"] == "ok" for r in records) >= 200


def test_wide_rows_warn_and_name_the_jagged_branch_that_made_them():
    """uproot-issue399 Event: 10 events padded to 139,147 features by a few long lists."""
    path = data("uproot-issue399.root")
    ds = mlaas4hep.Dataset([path], params={"branch": "Event", "specs_cache": False})
    with pytest.warns(mlaas4hep.dataset.WideFeaturesWarning) as record:
        names = ds.feature_names
    assert len(names) > 100_000
    text = str(record[0].message)
    assert "'Eloss.S' (jdim 20,873)" in text and '"jdim"' in text and ds.warnings == [text]
    capped = mlaas4hep.Dataset([path], params={"branch": "Event", "specs_cache": False, "jdim": 50})
    assert len(capped.feature_names) < 10_000 and capped.warnings == []


def test_the_artifact_contract_keeps_leaves_sharing_a_name_apart(tmp_path):
    """Train on the 16 per-channel fIncrement leaves of issue126a (two copies, labels 1 and 0);
    the contract names them by full path and predicting from the files reads each one."""
    need(_has("torch"), "PyTorch is not installed")
    import shutil

    from support import torch_model

    files = []
    for name in ("a.root", "b.root"):
        files.append(str(shutil.copy(data("uproot-issue126a.root"), tmp_path / name)))
    tree = uproot.open(files[0])["ChannelSet"]
    keys = [p for p, b in tree.iteritems(recursive=True, full_paths=True) if p.endswith("/fIncrement")]
    assert len(keys) == 16
    (tmp_path / "model.py").write_text(torch_model(4))
    ds = mlaas4hep.Dataset(files, labels=["1", "0"],
                           params={"branch": "ChannelSet", "selected_branches": keys, "epochs": 1,
                                   "specs_cache": False, "test_fraction": 0.0, "validation_split": 0.0})
    artifact = mlaas4hep.train(ds, model=str(tmp_path / "model.py"), output=str(tmp_path / "out"))
    contract = json.loads((artifact.path / "mlaas4hep.json").read_text())
    assert sorted(contract["branches"]) == sorted(keys) and contract["paths"] == {k: k for k in contract["branches"]}
    assert sorted(contract["features"]) == sorted(keys)
    scores = artifact.predict(files[:1])
    assert scores.shape == (tree.num_entries,) and np.isfinite(scores).all()


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_an_rntuple_is_read_like_the_same_data_in_a_ttree(tmp_path):
    """uproot 5 writes RNTuples by default (``file["name"] = arrays``) and reads them: the engine
    gives the same rows from an RNTuple as from a TTree holding the same data."""
    rng = np.random.default_rng(6)
    n = 5000
    counts = rng.integers(0, 5, n)
    arrays = {"x": rng.normal(size=n), "i": rng.integers(0, 1000, n).astype(np.int32), "b": rng.random(n) < 0.3,
              "j": ak.unflatten(rng.normal(size=counts.sum()).astype(np.float32), counts)}
    with uproot.recreate(tmp_path / "nt.root") as out:
        out["t"] = {**arrays, "s": ["text"] * n}
    with uproot.recreate(tmp_path / "tt.root") as out:
        out.mktree("t", {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in arrays.items()}
                   ).extend(arrays)
    assert uproot.open(tmp_path / "nt.root").classname_of("t") == "ROOT::RNTuple"
    preproc = {"flat_cut": {"x": {"cut": "x > -1"}}, "jagged_cut": {"j": {"cut": ["j < 1.5", "all"]}}}
    ds = mlaas4hep.Dataset([str(tmp_path / "nt.root")], params={"branch": "t", "specs_cache": False, "chunk_size": 700},
                           preproc=preproc)
    tt = mlaas4hep.Dataset([str(tmp_path / "tt.root")], params={"branch": "t", "specs_cache": False, "chunk_size": 700,
                                                               "exclude_branches": ["nj"]}, preproc=preproc)
    assert ds.specs()["skipped"]["s"].startswith("string field")
    assert ds.specs()["events"] == {**tt.specs()["events"], "per_file": {ds.paths[0]: tt.specs()["events"]["total"]}}
    assert ds.feature_names == tt.feature_names
    rows = np.concatenate([x for x, _ in ds.chunks(shuffle=False)])
    np.testing.assert_array_equal(rows, np.concatenate([x for x, _ in tt.chunks(shuffle=False)]))
    assert 0 < len(rows) < n


def test_the_explorer_shows_leaves_sharing_a_name_by_full_path():
    from mlaas4hep.explore import Sample

    path = data("uproot-issue126a.root")
    sample = Sample([path], params={"branch": "ChannelSet"}, n_events=10)
    keys = [k for k in sample.kinds if k.endswith("/fSamples")]
    assert len(keys) == 16
    tree = uproot.open(path)["ChannelSet"]
    ranges = sample.ranges(keys)
    for key in keys:
        values = tree[key].array(library="np")
        assert ranges[key] == (float(values.min()), float(values.max()))
    with pytest.raises(ConfigError, match="16 branches are named 'fSamples'; name one by its full path"):
        sample.arrays(["fSamples"])
