"""Behaviour the README promises that one-line mistakes in the engine would break silently:
the jagged ``all`` cut on events without elements, specs merged over several entry ranges,
per-file quotas that add up exactly, and held-out rows that never reach training."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

import mlaas4hep
from mlaas4hep.plan import Plan, apportion
from mlaas4hep.train import split_entries
from support import need, torch_model


def write_tree(path: Path, arrays: dict, tree: str = "Events") -> Path:
    with uproot.recreate(path) as out:
        types = {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in arrays.items()}
        out.mktree(tree, types).extend(arrays)
    return path


def test_jagged_all_cut_passes_events_without_elements(tmp_path):
    """README: a jagged cut "all" keeps an event when every element passes (no elements: passes);
    "any" keeps it when at least one does (no elements: fails)."""
    rng = np.random.default_rng(4)
    n = 3000
    counts = rng.integers(0, 4, n)  # a quarter of the events are empty
    iso = rng.exponential(2.0, counts.sum())
    arrays = {"x": rng.normal(size=n), "iso": ak.unflatten(iso, counts)}
    path = write_tree(tmp_path / "iso.root", arrays)
    lists = ak.to_list(arrays["iso"])
    expect_all = [i for i, v in enumerate(lists) if all(e < 3 for e in v)]
    expect_any = [i for i, v in enumerate(lists) if any(e < 3 for e in v)]
    assert sum(counts[expect_all] == 0) > 500  # the empty events are part of what is checked
    for how, expected in (("all", expect_all), ("any", expect_any)):
        ds = mlaas4hep.Dataset([str(path)], params={"branch": "Events", "specs_cache": False},
                               preproc={"jagged_cut": {"iso": {"cut": ["iso < 3", how]}}})
        assert ds.specs()["events"]["total"] == len(expected), how
        entries = np.concatenate([c.entry for c in ds.iter_chunks(shuffle=False)])
        assert entries.tolist() == expected, how


def test_specs_merge_every_entry_range_of_a_long_file(tmp_path):
    """A file longer than one specs range (100k entries) is read in several ranges in parallel;
    min, max, NaN counts and jdim must come from all of them, not the last one."""
    n = 250_000
    rng = np.random.default_rng(8)
    x = rng.random(n)
    x[10] = -7.5  # minimum in the first range
    x[150_000] = 1e6  # maximum in the second
    x[[20, 120_000, 240_000]] = np.nan  # one NaN in each range
    counts = rng.integers(0, 3, n)
    counts[30] = 9  # the longest list in the first range
    j = rng.normal(size=counts.sum())
    path = write_tree(tmp_path / "long.root", {"x": x, "j": ak.unflatten(j, counts)})
    ds = mlaas4hep.Dataset([str(path)], params={"branch": "Events", "specs_cache": False})
    specs = ds.specs()
    assert specs["events"]["total"] == specs["events_read"]["total"] == n
    assert specs["minv"]["x"] == -7.5 and specs["maxv"]["x"] == 1e6 and specs["nans"]["x"] == 3
    assert specs["jdim"]["j"] == 9
    assert specs["minv"]["j"] == float(j.min()) and specs["maxv"]["j"] == float(j.max())


def test_apportion_adds_up_exactly_and_never_exceeds_a_weight():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        weights = rng.integers(0, 50, rng.integers(3, 7)).tolist()
        if sum(weights) == 0:
            continue
        total = int(rng.integers(0, sum(weights) + 1))
        parts = apportion(total, weights)
        assert sum(parts) == total, (total, weights, parts)
        exact = [total * w / sum(weights) for w in weights]
        assert all(p <= w and abs(p - e) < 1 for p, w, e in zip(parts, weights, exact)), (total, weights, parts)
        plan = Plan(tuple(parts), int(rng.integers(1, 40)))
        takes = list(plan.takes())
        assert [sum(t) for t in takes[:-1]] == [plan.chunk_size] * (len(takes) - 1)
        assert np.sum(takes, axis=0).tolist() == list(parts) if takes else total == 0


def test_three_files_under_an_nevts_cap_give_each_event_once(tmp_path):
    sizes = (1000, 700, 333)
    paths = []
    for i, n in enumerate(sizes):
        arrays = {"x": np.random.default_rng(i).normal(size=n), "id": np.arange(n, dtype=np.int64)}
        paths.append(str(write_tree(tmp_path / f"f{i}.root", arrays)))
    nevts, chunk = 500, 64
    ds = mlaas4hep.Dataset(paths, labels=["1", "0", "0"],
                           params={"branch": "Events", "nevts": nevts, "chunk_size": chunk, "specs_cache": False})
    windows = [min(n, nevts) for n in sizes]
    seen = [[] for _ in paths]
    n_chunks = 0
    for c in ds.iter_chunks():
        assert len(c) == chunk or n_chunks == -(-nevts // chunk) - 1
        for i in range(len(paths)):
            seen[i] += c.entry[c.file_index == i].tolist()
        n_chunks += 1
    per_file = [len(s) for s in seen]
    assert sum(per_file) == nevts
    for i, s in enumerate(seen):
        assert len(set(s)) == len(s) and max(s) < windows[i]  # no event twice, none past the window
        assert abs(per_file[i] - nevts * windows[i] / sum(windows)) < 1


def test_test_and_validation_rows_are_disjoint_and_drawn_independently():
    n = 200_000
    file_index = np.repeat(np.arange(4, dtype=np.int32), n // 4)
    entry = np.tile(np.arange(n // 4, dtype=np.int64), 4)
    rows = split_entries(file_index, entry, test_fraction=0.2, validation_split=0.25, seed=11)
    assert not (rows.test & rows.val).any() and not (rows.train & (rows.test | rows.val)).any()
    assert (rows.train | rows.test | rows.val).all()
    assert rows.test.mean() == pytest.approx(0.2, abs=0.005)
    # validation is a quarter of what is not test (an independent draw), not what is left of
    # the test draw's range
    assert rows.val[~rows.test].mean() == pytest.approx(0.25, abs=0.005)
    again = split_entries(file_index[::-1], entry[::-1], 0.2, 0.25, 11)
    assert (again.test[::-1] == rows.test).all()  # by (file, entry), not by position


@pytest.mark.parametrize("mode", ["chunk", "standard"])
def test_no_test_row_ever_reaches_fit(tmp_path, monkeypatch, mode):
    need(_has("torch"), "PyTorch is not installed")
    import importlib

    train_module = importlib.import_module("mlaas4hep.train")  # the attribute is the train() function

    rng = np.random.default_rng(2)
    paths = []
    for i in range(2):
        n = 3000
        arrays = {"a": rng.normal(i, 1, n), "b": rng.normal(size=n), "id": np.arange(n, dtype=np.int64)}
        paths.append(str(write_tree(tmp_path / f"s{i}.root", arrays)))
    (tmp_path / "model.py").write_text(torch_model(8))
    fitted: list[np.ndarray] = []
    validated: list[np.ndarray] = []
    real = train_module.make_adapter

    def recording(*args, **kwargs):
        adapter = real(*args, **kwargs)
        fit = adapter.fit

        def spy(X, y, *a, validation=None, **kw):
            fitted.append(np.array(X, copy=True))
            if validation is not None:
                validated.append(np.array(validation[0], copy=True))
            return fit(X, y, *a, validation=validation, **kw)

        adapter.fit = spy
        return adapter

    monkeypatch.setattr(train_module, "make_adapter", recording)
    params = {"branch": "Events", "chunk_size": 1000, "epochs": 2, "mode": mode, "test_fraction": 0.2,
              "validation_split": 0.25, "specs_cache": False, "seed": 3}
    ds = mlaas4hep.Dataset(paths, labels=["1", "0"], params=params)
    mlaas4hep.train(ds, model=str(tmp_path / "model.py"), output=str(tmp_path / "out"))
    test_rows = np.concatenate([np.load(p) for p in sorted((tmp_path / "out" / "test").glob("X-*.npy"))])
    assert len(test_rows) == pytest.approx(0.2 * 6000, rel=0.15)

    def keys(X):
        return {row.tobytes() for row in np.ascontiguousarray(X)}

    test_keys, fit_keys, val_keys = keys(test_rows), keys(np.concatenate(fitted)), keys(np.concatenate(validated))
    assert len(test_keys) == len(test_rows)  # rows are distinct, so membership means the same event
    assert not test_keys & fit_keys, "test rows were trained on"
    assert not test_keys & val_keys and not fit_keys & val_keys
    assert len(fit_keys) + len(val_keys) + len(test_keys) == 6000


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None

