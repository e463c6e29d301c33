"""The row store: a first pass that reads ROOT once, mixing of many files with bounded memory,
and later passes with ``cache: true`` that never touch ROOT."""

from __future__ import annotations

import numpy as np
import pytest

import mlaas4hep
from mlaas4hep import ConfigError
from mlaas4hep.datagen import write_tth
from mlaas4hep.read import RootFile
from mlaas4hep.specs import entry_ranges

PREPROC = {
    "new_branch": {"log_partonE": {"def": "log(partonE)", "type": "jagged"}},
    "flat_cut": {"nLeptons": {"cut": "nLeptons <= 2"}},
    "jagged_cut": {"jetPt": {"cut": ["jetPt > 30", "any"]}},
}
N_FILES = 30


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """30 files of 300 to 1170 events (several baskets each), labels 1, 0, 2, 1, 0, 2, ..."""
    folder = tmp_path_factory.mktemp("many")
    paths = [str(write_tth(folder / f"f{i:02d}.root", 300 + 30 * i, signal=i % 3 != 1, seed=50 + i, batch=200))
             for i in range(N_FILES)]
    labels = [str([1, 0, 2][i % 3]) for i in range(N_FILES)]
    return paths, labels


def counting_reads(monkeypatch) -> dict[str, int]:
    """Entries read from ROOT, per file, from now on."""
    counts: dict[str, int] = {}
    real = RootFile.iterate

    def iterate(self, names, start=0, stop=None, step=100_000):
        for first, end, arrays in real(self, names, start, stop, step):
            counts[self.path] = counts.get(self.path, 0) + (end - first)
            yield first, end, arrays

    monkeypatch.setattr(RootFile, "iterate", iterate)
    return counts


def all_chunks(ds, **kw):
    return [(c.X.copy(), None if c.y is None else c.y.copy(), c.file_index.copy(), c.entry.copy(), c.positions,
             None if c.identifiers is None else {k: v.copy() for k, v in c.identifiers.items()})
            for c in ds.iter_chunks(**kw)]


def assert_same_chunks(a, b):
    assert len(a) == len(b) > 0
    for (xa, ya, fa, ea, pa, ia), (xb, yb, fb, eb, pb, ib) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(fa, fb)
        np.testing.assert_array_equal(ea, eb)
        assert pa == pb
        assert (ia is None) == (ib is None)
        for name in ia or {}:
            np.testing.assert_array_equal(ia[name], ib[name])


def test_first_pass_reads_every_entry_once_and_gives_the_chunks_of_a_direct_read(many, tmp_path, monkeypatch):
    paths, labels = many
    params = {"chunk_size": 1000, "identifier": ["run", "event"], "cache_dir": str(tmp_path / "c1"),
              "specs_cache": False}
    counts = counting_reads(monkeypatch)
    ds = mlaas4hep.Dataset(paths, labels=labels, params=params, preproc=PREPROC)
    ds.specs()
    kept = all_chunks(ds, identifiers=True)
    # specs and every chunk, identifiers included, from one read of each file
    assert counts == {p: RootFile(p).num_entries for p in paths}
    assert not list((tmp_path / "c1" / "rows").glob("tmp-*"))  # cache: false: the rows lasted one pass

    # where no row store can be written (the cache folder is a file), chunks come straight from
    # ROOT: the same chunks, value for value, in the same order
    (tmp_path / "not-a-folder").write_text("")
    direct = mlaas4hep.Dataset(paths, labels=labels, preproc=PREPROC,
                               params={**params, "cache_dir": str(tmp_path / "not-a-folder" / "c")})
    direct.specs()
    assert_same_chunks(kept, all_chunks(direct, identifiers=True))


def test_many_files_every_event_once_and_the_proportions_in_every_chunk(many, tmp_path):
    paths, labels = many
    ds = mlaas4hep.Dataset(paths, labels=labels, preproc=PREPROC,
                           params={"chunk_size": 700, "cache_dir": str(tmp_path), "memory_mb": 64})
    specs = ds.specs()
    events = np.array([specs["events"]["per_file"][p] for p in paths])
    total = events.sum()
    label_of = np.array([int(x) for x in labels])
    seen: list[set] = [set() for _ in paths]
    taken = np.zeros(len(paths))
    done = 0
    for chunk in ds.iter_chunks():
        n = len(chunk)
        assert n == 700 or done + n == total
        done += n
        per_file = np.bincount(chunk.file_index, minlength=len(paths))
        taken += per_file
        # each file: within one event of its share of everything handed out so far
        assert np.all(np.abs(taken - events * done / total) < 1.0 + 1e-9), chunk.index
        # so each file's count in this chunk is its share within two events, and each label's
        # within two events per file of that label
        assert np.all(np.abs(per_file - events * n / total) < 2.0), chunk.index
        for label in (0, 1, 2):
            files_l = label_of == label
            exact = n * events[files_l].sum() / total
            assert abs(np.count_nonzero(chunk.y == label) - exact) < 2 * files_l.sum(), (chunk.index, label)
        np.testing.assert_array_equal(chunk.y, label_of[chunk.file_index])
        for i in np.unique(chunk.file_index):
            entries = chunk.entry[chunk.file_index == i].tolist()
            assert not seen[i].intersection(entries)  # no event twice, no wrap-around
            seen[i].update(entries)
    assert [len(s) for s in seen] == events.tolist()  # every selected event exactly once
    assert done == total


def test_cache_true_later_passes_never_touch_root(tth, tmp_path, monkeypatch):
    import shutil

    folder = tmp_path / "data"
    folder.mkdir()
    paths = [str(shutil.copy(tth["signal"], folder)), str(shutil.copy(tth["background"], folder))]
    params = {"chunk_size": 2000, "cache": True, "cache_dir": str(tmp_path / "cache")}
    ds = mlaas4hep.Dataset(paths, labels=["1", "0"], params=params, preproc=PREPROC)
    ds.specs()
    first = all_chunks(ds, seed=3)
    ds.close()
    for p in paths:  # the ROOT files are gone: a later pass must not need them
        shutil.move(p, p + ".moved")
    counts = counting_reads(monkeypatch)
    later = all_chunks(ds, seed=3)
    assert counts == {}
    assert_same_chunks(first, later)
    assert not all(np.array_equal(a[3], b[3]) for a, b in zip(first, all_chunks(ds, seed=4)))  # remixed

    # a new Dataset on the same files reads no ROOT either: specs and rows both come from the cache
    for p in paths:
        shutil.move(p + ".moved", p)
    again = mlaas4hep.Dataset(paths, labels=["1", "0"], params=params, preproc=PREPROC)
    assert_same_chunks(first, all_chunks(again, seed=3))
    assert counts == {}


def test_cache_false_reads_root_again_in_each_later_pass(tth, tmp_path, monkeypatch):
    params = {"chunk_size": 2000, "cache_dir": str(tmp_path)}
    counts = counting_reads(monkeypatch)
    ds = mlaas4hep.Dataset(tth["files"], labels=tth["labels"], params=params)
    ds.specs()
    first = all_chunks(ds)
    assert counts == {p: RootFile(p).num_entries for p in ds.paths}  # specs and first pass: one read
    second = all_chunks(ds)
    assert counts == {p: 2 * RootFile(p).num_entries for p in ds.paths}
    assert_same_chunks(first, second)
    assert not list((tmp_path / "rows").iterdir())


def test_resume_from_the_store_gives_the_remaining_chunks(tth, tmp_path):
    ds = mlaas4hep.Dataset(tth["files"], labels=tth["labels"], preproc=PREPROC,
                           params={"chunk_size": 1500, "cache": True, "cache_dir": str(tmp_path)})
    full = all_chunks(ds)
    resumed = all_chunks(ds, resume=(4, full[3][4]))
    assert_same_chunks(full[4:], resumed)


def test_specs_without_rows_and_a_closed_dataset_leave_no_temporary_rows(tth, tmp_path):
    ds = mlaas4hep.Dataset(tth["files"], labels=tth["labels"], params={"cache_dir": str(tmp_path)})
    ds.specs(rows=False)
    assert not (tmp_path / "rows").exists() or not list((tmp_path / "rows").iterdir())
    ds = mlaas4hep.Dataset(tth["files"], labels=tth["labels"], params={"cache_dir": str(tmp_path), "specs_cache": False})
    ds.specs()
    assert len(list((tmp_path / "rows").glob("tmp-*/meta.json"))) == 1
    ds.close()
    assert not list((tmp_path / "rows").glob("tmp-*"))


def test_entry_ranges_cut_only_where_every_basket_starts():
    assert entry_ranges([0, 200, 400, 600, 800, 1000], 1000, 350) == [(0, 400), (400, 800), (800, 1000)]
    assert entry_ranges([0, 1000], 1000, 350) == [(0, 1000)]  # a basket is never split ...
    assert entry_ranges([0, 10_000], 10_000, 100) == [(a, min(a + 400, 10_000)) for a in range(0, 10_000, 400)]
    assert entry_ranges([0, 200, 400], 300, 100) == [(0, 200), (200, 300)]  # nevts stops inside a basket
    assert entry_ranges([0], 0, 100) == []


@pytest.mark.parametrize("value", [0, 10, "lots", -1])
def test_memory_budget_is_checked(value):
    with pytest.raises(ConfigError, match="memory_mb"):
        mlaas4hep.Dataset(["x.root"], params={"memory_mb": value})


def test_blocks_where_nothing_passes_the_cuts(tth, tmp_path):
    """A cut that rejects whole blocks (the first 10k entries of each file) leaves nothing to
    store for them: the chunks are still those of a direct read."""
    preproc = {"flat_cut": {"event": {"cut": "event > 10000"}}}  # event numbers count from 1
    params = {"chunk_size": 700, "specs_cache": False, "cache_dir": str(tmp_path / "c")}
    ds = mlaas4hep.Dataset([str(tth["signal"])], labels=["1"], params=params, preproc=preproc)
    ds.specs()
    kept = all_chunks(ds)
    assert sum(len(c[0]) for c in kept) == 2000 and min(int(c[3].min()) for c in kept) == 10000
    (tmp_path / "file").write_text("")
    direct = mlaas4hep.Dataset([str(tth["signal"])], labels=["1"], preproc=preproc,
                               params={**params, "cache_dir": str(tmp_path / "file" / "c")})
    direct.specs()
    assert_same_chunks(kept, all_chunks(direct))


def test_a_pass_with_cached_specs_streams_from_root_only_within_the_memory_budget(many, tmp_path, monkeypatch):
    """cache: false and specs from the cache: two files are read straight from ROOT (the rows
    are not written anywhere); thirty files under a 64 MB budget go through a row store, which
    is gone after the pass. Both read every entry once and give the chunks of a direct read."""
    paths, labels = many
    params = {"chunk_size": 1000, "cache_dir": str(tmp_path)}
    for count, budget, stored in ((2, 1024, False), (N_FILES, 64, True)):
        mlaas4hep.Dataset(paths[:count], labels=labels[:count], params=params, preproc=PREPROC).specs(rows=False)
        ds = mlaas4hep.Dataset(paths[:count], labels=labels[:count], preproc=PREPROC,
                               params={**params, "memory_mb": budget})
        folders = []
        real = mlaas4hep.store.StoreWriter.__init__
        monkeypatch.setattr(mlaas4hep.store.StoreWriter, "__init__",
                            lambda self, folder, *a, **k: folders.append(folder) or real(self, folder, *a, **k))
        counts = counting_reads(monkeypatch)
        chunks = all_chunks(ds)
        assert counts == {p: RootFile(p).num_entries for p in paths[:count]}
        assert bool(folders) == stored and not any(f.exists() for f in folders)
        monkeypatch.undo()
        (tmp_path / "file").write_text("")
        direct = mlaas4hep.Dataset(paths[:count], labels=labels[:count], preproc=PREPROC,
                                   params={**params, "cache_dir": str(tmp_path / "file" / "c")})
        assert_same_chunks(chunks, all_chunks(direct))
