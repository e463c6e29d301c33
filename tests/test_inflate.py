"""ZLIB baskets inflated by ISA-L (mlaas4hep/inflate.py): the same values as Python's zlib on real
files, a damaged basket still named a damaged file, and the user's choice kept."""

from __future__ import annotations

import os
import subprocess
import sys

import awkward as ak
import numpy as np
import pytest
import uproot

import mlaas4hep
from mlaas4hep import inflate
from mlaas4hep.errors import DataError
from mlaas4hep.read import BranchReadError, RootFile


def data(name: str) -> str:
    import skhep_testdata

    return skhep_testdata.data_path(name)


def test_the_engine_inflates_with_isal():
    assert inflate.in_use() == "isal"  # isal is a dependency: the import of the engine switched it on


@pytest.mark.parametrize("name,tree", [("uproot-HZZ-zlib.root", "events"), ("uproot-Zmumu-zlib.root", "events"),
                                       ("uproot-issue-172.root", "events"), ("uproot-small-dy-withoffsets.root", "tree")])
def test_real_zlib_files_give_the_same_values_with_isal_and_zlib(name, tree):
    path = data(name)
    with uproot.open(path) as f:
        assert f.file.compression.name == "ZLIB"
    rfile = RootFile(path, tree)
    names = [k for k, info in rfile.branches.items() if info.kind is not None]
    assert len(names) >= 5
    values = {}
    for library in ("zlib", "isal"):
        with inflate.using(library):
            fresh = RootFile(path, tree)  # a new opening: no basket kept from the other library's read
            values[library] = fresh.arrays(names)
            fresh.close()
    for name_ in names:
        a, b = values["zlib"][name_], values["isal"][name_]
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name_
        else:
            assert ak.array_equal(a, b, equal_nan=True), name_


def damaged_copy(tmp_path, flip_at: int = 40):
    """A ZLIB file of two jagged and two flat branches, baskets of 500 entries; the second basket
    of 'b' has bytes changed in the middle of its deflate stream."""
    rng = np.random.default_rng(5)
    n = 3000
    counts = rng.integers(0, 5, n)
    columns = {"a": rng.integers(0, 50, n).astype(np.int32), "b": rng.integers(0, 50, n).astype(np.int32),
               "c": ak.unflatten(rng.integers(0, 9, int(counts.sum())).astype(np.float32), counts),
               "d": ak.unflatten(rng.integers(0, 9, int(counts.sum())).astype(np.float32), counts)}
    path = tmp_path / "whole.root"
    with uproot.recreate(path, compression=uproot.ZLIB(1)) as out:
        tree = out.mktree("Events", {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in columns.items()})
        for a in range(0, n, 500):
            tree.extend({k: v[a:a + 500] for k, v in columns.items()})
    raw = bytearray(path.read_bytes())
    with uproot.open(path) as f:
        seek = int(f["Events"]["b"].member("fBasketSeek")[1])
    header = raw.index(b"ZL\x08", seek)  # ROOT's compression header, then the zlib stream
    for i in range(flip_at, flip_at + 8):
        raw[header + 9 + i] ^= 0x5A
    damaged = tmp_path / "damaged.root"
    damaged.write_bytes(bytes(raw))
    return damaged


@pytest.mark.parametrize("library", ["isal", "zlib"])
def test_a_damaged_basket_is_a_damaged_file_whichever_library_inflates(tmp_path, library):
    """ISA-L raises its own error class: were it not counted as damage, the reader would blame
    the one branch whose basket failed, skip it and train without it."""
    damaged = damaged_copy(tmp_path)
    with inflate.using(library):
        assert inflate.in_use() == library
        ds = mlaas4hep.Dataset([str(damaged)], params={"branch": "Events", "specs_cache": False})
        with pytest.raises(DataError) as err:
            ds.specs()
    assert inflate.in_use() == "isal"  # as it was before the block
    assert not isinstance(err.value, BranchReadError)
    text = str(err.value)
    assert "corrupt or truncated ROOT file" in text and str(damaged) in text and "\n" not in text


def run_python(code: str, **env) -> str:
    """stdout then stderr of ``python -c code`` with ``env`` set (``None``: removed)."""
    full = {**os.environ, **env}
    full = {k: v for k, v in full.items() if v is not None}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=full)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip() + "\n" + out.stderr


CODE = "import mlaas4hep.read, uproot; print(uproot.compression._decompress_ZLIB.library)"


def test_the_users_choice_is_kept():
    assert run_python(CODE, MLAAS4HEP_INFLATE=None).startswith("isal\n")
    assert run_python(CODE, MLAAS4HEP_INFLATE="zlib").startswith("zlib\n")
    unknown = run_python(CODE, MLAAS4HEP_INFLATE="fast")
    assert unknown.startswith("zlib\n") and "MLAAS4HEP_INFLATE='fast' is not one of isal, zlib" in unknown
    # a library chosen in uproot before the engine was imported stands
    chosen = run_python("import uproot.compression as c; c._decompress_ZLIB.library = 'deflate'; " + CODE,
                        MLAAS4HEP_INFLATE=None)
    assert chosen.startswith("deflate\n")
