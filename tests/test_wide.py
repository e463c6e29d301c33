"""Wide files (issue 18 §5): what keeps the memory of a pass over a thousand branches near
uproot's own, with the same values: blocks that end where baskets end, a chunk's pieces read
and tensorized one stored block at a time, and an engine import without sympy."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import awkward as ak
import numpy as np
import pytest
import uproot

import mlaas4hep
from mlaas4hep import heap, mix, specs
from mlaas4hep.read import RootFile
from mlaas4hep.store import RowStore
from mlaas4hep.tensorize import Jagged, packed


@pytest.fixture(scope="module")
def baskets(tmp_path_factory):
    """6,000 events in baskets of 1,500: 12 flat and 4 jagged branches of two collections."""
    path = tmp_path_factory.mktemp("wide") / "baskets.root"
    rng = np.random.default_rng(18)
    n = 6000
    counts = {"a": rng.poisson(3, n), "b": rng.poisson(1, n)}
    arrays = {f"x{i:02d}": rng.normal(i, 1 + i, n) if i % 2 else rng.integers(-50, 50, n).astype(np.int32)
              for i in range(12)}
    for c, k in counts.items():
        for m in range(2):
            arrays[f"{c}_v{m}"] = ak.unflatten(rng.normal(m, 2, int(k.sum())).astype(np.float32), k)
    with uproot.recreate(path) as out:
        tree = out.mktree("Events", {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in arrays.items()})
        for a in range(0, n, 1500):
            tree.extend({k: v[a:a + 1500] for k, v in arrays.items()})
    return str(path)


def chunks_of(ds):
    return [(c.X.copy(), c.entry.copy(), c.file_index.copy()) for c in ds.iter_chunks()]


def test_aligned_step_rounds_down_to_whole_clusters_only_where_they_are_regular():
    assert specs.aligned_step([0, 1500, 3000, 4500, 6000], 2500) == 1500
    assert specs.aligned_step([0, 1500, 3000, 4500, 5000], 7000) == 6000  # the last cluster may be short
    assert specs.aligned_step([0, 5000, 10000], 2500) == 2500  # a cluster larger than a block
    assert specs.aligned_step([0, 1000, 3000, 4000], 2500) == 2500  # clusters of different sizes
    assert specs.aligned_step([0, 6000], 10_000) == 6000  # one cluster: the whole file in a block
    assert specs.aligned_step([0, 6000], 4000) == 4000
    assert specs.aligned_step([], 700) == 700


def test_basket_starts_and_sizes_of_a_released_file_do_not_reopen_it(baskets):
    """A multi-file Dataset releases each file once it knows its branches; planning a pass
    (basket starts, bytes per entry, what streaming holds) uses what was read when it was
    opened, without opening it again, and gives what an open file gives."""
    names = list(RootFile(baskets).branches)
    open_file = RootFile(baskets)
    open_file.branches  # noqa: B018
    expected = (open_file.cluster_starts(names), open_file.bytes_per_entry(names), open_file.stream_bytes(names, 700))
    released = RootFile(baskets)
    released.branches.classify_all()
    released.release()
    assert (released.cluster_starts(names), released.bytes_per_entry(names),
            released.stream_bytes(names, 700)) == expected
    assert expected[0] == [0, 1500, 3000, 4500, 6000] and expected[1] > 0
    assert released._file is None  # not reopened
    fresh = RootFile(baskets)  # branches not classified yet: opened as before
    fresh.release()
    assert fresh.cluster_starts(names) == expected[0] and fresh._file is not None


def test_a_released_file_keeps_none_of_uproots_objects(tmp_path):
    """What a released file keeps is small: uproot's tree and branch objects (11 MB for a file
    of 1,033 branches) are dropped, so a Dataset of hundreds of files does not hold each
    file's metadata. Reading it again reopens it and gives the same values."""
    import gc
    import weakref

    path = tmp_path / "wide.root"
    rng = np.random.default_rng(3)
    columns = {f"x{i:03d}": rng.normal(size=2000) for i in range(60)}
    with uproot.recreate(path) as out:
        out.mktree("Events", {k: v.dtype for k, v in columns.items()}).extend(columns)
    files = [tmp_path / f"copy{i}.root" for i in range(3)]
    for f in files:
        f.write_bytes(path.read_bytes())
    ds = mlaas4hep.Dataset([str(f) for f in files], params={"branch": "Events", "specs_cache": False})
    opened = ds.files
    trees = [weakref.ref(f._tree) for f in opened if f._tree is not None]
    rfile = opened[1]
    rfile._bind()  # opened again, with uproot's objects
    trees.append(weakref.ref(rfile._tree))
    branch = weakref.ref(rfile._objects["x000"])
    rfile.release()
    gc.collect()
    assert all(t() is None for t in trees) and branch() is None
    assert rfile._objects == {} and set(rfile._header) == {f"x{i:03d}" for i in range(60)}
    assert rfile.cluster_starts(["x000", "x059"]) == [0, 2000] and rfile._file is None
    values = rfile.arrays(["x007"])["x007"]
    assert np.array_equal(values, uproot.open(path)["Events"]["x007"].array(library="np"))


def test_a_thread_reading_a_file_another_thread_is_reopening_waits_for_it(baskets, monkeypatch):
    """Two range threads of a pass on a released file: the second comes while the first is
    reopening it (finding its tree), and waits for the file and its tree (it used to see the
    file open and its tree not yet, and fail)."""
    import threading

    names = list(RootFile(baskets).branches)
    rfile = RootFile(baskets)
    rfile.branches  # noqa: B018

    def sums() -> list:
        return [[float(np.sum(ak.flatten(a[n], axis=None))) for n in names]
                for _, _, a in rfile.iterate(names, 0, 6000, 1500)]

    expected = sums()
    rfile.release()
    finding = threading.Event()
    real = RootFile._find_tree

    def slow_find_tree(self, opened):
        finding.set()
        time.sleep(0.3)
        return real(self, opened)

    monkeypatch.setattr(RootFile, "_find_tree", slow_find_tree)
    got: dict = {}

    def read(name: str, after: threading.Event | None) -> None:
        if after is not None:
            after.wait(10)
        try:
            got[name] = sums()
        except Exception as err:  # noqa: BLE001 - reported by the assert below
            got[name] = err

    threads = [threading.Thread(target=read, args=("first", None)),
               threading.Thread(target=read, args=("second", finding))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert got == {"first": expected, "second": expected}


def test_read_pass_blocks_end_where_baskets_end(baskets, tmp_path, monkeypatch):
    """With blocks of 2,500 entries asked for, the pass reads blocks of 1,500 (whole baskets),
    so uproot keeps no decompressed basket from one block to the next; the specs are those
    of blocks that cut baskets."""
    clusters = RootFile(baskets).cluster_starts(list(RootFile(baskets).branches))
    assert clusters == [0, 1500, 3000, 4500, 6000]
    blocks = []
    real = RootFile.iterate

    def iterate(self, names, start=0, stop=None, step=100_000):
        for first, end, arrays in real(self, names, start, stop, step):
            blocks.append((first, end))
            yield first, end, arrays

    monkeypatch.setattr(RootFile, "iterate", iterate)
    monkeypatch.setattr(specs, "block_entries", lambda *a: 2500)
    monkeypatch.setattr(specs, "read_entries", lambda *a: 3500)  # reads of a range at once end there too
    params = {"specs_cache": False, "cache_dir": str(tmp_path / "a"), "chunk_size": 2000}
    aligned = mlaas4hep.Dataset([baskets], params=params)
    got = aligned.specs()
    assert blocks and all(a in clusters and b in clusters for a, b in blocks)
    assert sum(b - a for a, b in blocks) == 6000

    monkeypatch.setattr(specs, "aligned_step", lambda clusters, step: step)
    monkeypatch.setattr(specs, "read_entries", lambda *a: 0)  # read block by block, not a range at once
    blocks.clear()
    cut = mlaas4hep.Dataset([baskets], params={**params, "cache_dir": str(tmp_path / "b")})
    expected = cut.specs()
    assert (0, 2500) in blocks  # the blocks asked for: they cut the baskets at 1,500 and 3,000
    for key in ("minv", "maxv", "nans", "jdim", "events"):
        assert got[key] == expected[key]
    for (xa, ea, fa), (xb, eb, fb) in zip(chunks_of(aligned), chunks_of(cut), strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ea, eb)


def test_store_stream_reads_one_stored_block_at_a_time(baskets, tmp_path, monkeypatch):
    """A chunk larger than a stored block reads the store one block at a time, and large pieces
    are tensorized as they come, never joined into a copy; the chunks are those of a direct read
    (no row store) and of pieces all joined."""
    reads = []
    real = RowStore.read

    def read(self, i, a, b):
        reads.append((self.block_stop(i, a), a, b))
        return real(self, i, a, b)

    joins = []
    real_concat = mix.concat_blocks
    monkeypatch.setattr(mix, "concat_blocks", lambda blocks, jagged: joins.append(len(blocks)) or real_concat(blocks, jagged))
    monkeypatch.setattr(RowStore, "read", read)
    monkeypatch.setattr(specs, "block_entries", lambda *a: 1500)
    params = {"specs_cache": False, "chunk_size": 4000, "shuffle": True}
    monkeypatch.setattr(mix, "JOIN_BYTES", 1)  # every piece counts as large
    ds = mlaas4hep.Dataset([baskets], params={**params, "cache_dir": str(tmp_path / "a")})
    ds.specs()
    one_by_one = chunks_of(ds)
    assert len(reads) >= 4 and all(b <= stop for stop, a, b in reads)
    assert joins == []

    monkeypatch.setattr(mix, "JOIN_BYTES", 1 << 40)  # every piece counts as small: all joined
    ds = mlaas4hep.Dataset([baskets], params={**params, "cache_dir": str(tmp_path / "b")})
    ds.specs()
    joined = chunks_of(ds)
    assert joins and max(joins) >= 2

    (tmp_path / "file").write_text("")
    direct = mlaas4hep.Dataset([baskets], params={**params, "cache_dir": str(tmp_path / "file" / "c")})
    direct.specs()
    for other in (joined, chunks_of(direct)):
        assert len(other) == len(one_by_one) == 2
        for (xa, ea, fa), (xb, eb, fb) in zip(one_by_one, other):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ea, eb)
            np.testing.assert_array_equal(fa, fb)


def test_packed_reuses_offsets_and_gives_the_lists_of_a_slice():
    whole = ak.Array([[1.0, 2.0], [], [3.0], [4.0, 5.0, 6.0]])
    offsets, values = packed(whole)
    assert offsets.tolist() == [0, 2, 2, 3, 6] and values.tolist() == [1, 2, 3, 4, 5, 6]
    assert np.shares_memory(offsets, np.asarray(whole.layout.offsets))  # no copy
    offsets, values = packed(whole[2:])  # offsets from 2: moved to 0
    assert offsets.tolist() == [0, 1, 4] and values.tolist() == [3, 4, 5, 6]
    offsets, values = packed(Jagged(np.array([3, 4, 6]), np.arange(8.0)))
    assert offsets.tolist() == [0, 1, 3] and values.tolist() == [3, 4, 5]


MALLOC_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def run_python(code: str, **env: str) -> str:
    """Run ``code`` in a new interpreter started with ``env`` and none of glibc's malloc
    settings but those (Dask's nanny puts MALLOC_TRIM_THRESHOLD_ into this process's environment)."""
    base = {k: v for k, v in os.environ.items() if k not in MALLOC_SETTINGS}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**base, **env})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_importing_the_engine_leaves_vector_and_sympy_until_a_preproc_needs_them():
    code = ("import sys, numpy as np, mlaas4hep\n"
            "print('vector' in sys.modules, 'sympy' in sys.modules)\n"
            "from mlaas4hep.physics import delta_phi\n"
            "print(round(float(delta_phi(np.array([3.0]), np.array([-3.0]))[0]), 6), 'vector' in sys.modules)\n")
    assert run_python(code).splitlines() == ["False False", f"{round(6.0 - 2 * np.pi, 6)} True"]


def test_importing_the_engine_to_read_data_leaves_training_plotting_and_xrootd_unloaded():
    heavy = ("matplotlib", "pandas", "sklearn", "ipywidgets", "torch", "tensorflow", "keras", "XRootD",
             "mlaas4hep.train", "mlaas4hep.artifact", "mlaas4hep.adapters", "mlaas4hep.evaluate")
    code = ("import sys, mlaas4hep\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
            "import mlaas4hep.train\n"  # the submodule: mlaas4hep.train stays the function
            "from mlaas4hep.train import train\n"
            "print(mlaas4hep.train is train, callable(mlaas4hep.train), mlaas4hep.Artifact.__name__)\n")
    assert run_python(code).splitlines() == ["[]", "True True Artifact"]


def test_heap_thresholds_are_set_once_unless_the_user_set_them():
    code = "from mlaas4hep import heap; print(heap.bound_retained_memory(), heap.bound_retained_memory())"
    glibc = heap._glibc() is not None
    assert run_python(code) == ("True True" if glibc else "False False")
    assert run_python(code, MALLOC_TRIM_THRESHOLD_="65536") == "False False"
    assert run_python(code, GLIBC_TUNABLES="glibc.malloc.mmap_threshold=65536") == "False False"
    # set after the start (as Dask's nanny does before spawning workers): glibc never saw it
    late = "import os; os.environ['MALLOC_TRIM_THRESHOLD_'] = '65536'\n" + code
    assert run_python(late) == ("True True" if glibc else "False False")


def test_a_selection_classifies_only_its_branches_and_the_listing_still_has_every_one(baskets, tmp_path,
                                                                                      monkeypatch):
    """With selected_branches, one file and no preproc, only the selected branches (and the
    identifiers, none here) are classified: uproot working out each branch's interpretation is
    most of opening a tree of a thousand branches. The listing and a second file's skipped list
    still see every branch."""
    from mlaas4hep import read

    seen: list[str] = []
    classify = read.branch_info
    monkeypatch.setattr(read, "branch_info", lambda b, key=None, *a, **k: seen.append(key) or classify(b, key, *a, **k))
    params = {"branch": "Events", "chunk_size": 2000, "specs_cache": False, "cache_dir": str(tmp_path / "c"),
              "selected_branches": ["x03", "a_v1"]}
    ds = mlaas4hep.Dataset([baskets], params=params)
    spec = ds.specs()
    X = np.concatenate([x for x, _ in ds.chunks()])
    assert sorted(seen) == ["a_v1", "x03"]
    assert spec["skipped"] == {} and ds.feature_names[0] == "x03" and X.shape[0] == 6000
    with uproot.open(baskets) as f:
        x03 = f["Events"]["x03"].array(library="np")
    assert np.allclose(np.sort(X[:, 0]), np.sort((x03 - x03.min()) / (x03.max() - x03.min())), atol=1e-6)  # mixed rows
    listing = ds.branches()
    assert len(listing) == 20 and listing["b_v0"]["kind"] == "jagged" and listing["x00"]["dtype"] == "int32"
    assert listing["na_v0"]["kind"] == "flat"  # the counters uproot wrote

    # a second file without x00: x00 is listed as skipped though not selected, as before
    other = tmp_path / "other.root"
    with uproot.open(baskets) as f:
        names = [k for k in f["Events"].keys() if k != "x00" and not k.startswith("n")]
        arrays = f["Events"].arrays(names, library="ak")
    with uproot.recreate(other) as out:  # as the fixture writes: the same counter branches
        tree = out.mktree("Events", {k: arrays[k].type if arrays[k].ndim > 1 else arrays[k].type.content for k in names})
        tree.extend({k: arrays[k] for k in names})
    two = mlaas4hep.Dataset([baskets, str(other)], params={**params, "cache_dir": str(tmp_path / "d")})
    assert two.specs()["skipped"] == {"x00": f"not in every file (missing in {other})"}
