"""Remote reading through a real XRootD server and a real HTTP server on loopback."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

import mlaas4hep
from mlaas4hep import DataError

pytestmark = pytest.mark.remote

PARAMS = {"chunk_size": 2000, "identifier": "run,event,luminosityBlock", "retries": 2, "retry_wait": 0.05,
          "timeout": 5}
PREPROC = {"new_branch": {"leadPt": {"def": "max(jetPt)", "type": "flat", "cut": "leadPt > 40"}},
           "jagged_cut": {"partonPt": {"cut": ["partonPt > 150", "any"]}}}


def rows(ds):
    chunks = list(ds.iter_chunks(shuffle=False))
    X = np.concatenate([c.X for c in chunks])
    key = np.lexsort((np.concatenate([c.entry for c in chunks]), np.concatenate([c.file_index for c in chunks])))
    return X[key]


@pytest.fixture(scope="module")
def local_rows(tth):
    ds = mlaas4hep.Dataset([str(tth["signal"]), str(tth["background"])], labels=["1", "0"],
                           params=PARAMS, preproc=PREPROC)
    return ds.specs(), rows(ds)


def test_xrootd_reads_the_same_as_local(xrootd_server, local_rows):
    specs, expected = local_rows
    urls = [xrootd_server.url("signal.root"), xrootd_server.url("background.root")]
    ds = mlaas4hep.Dataset(urls, labels=["1", "0"], params=PARAMS, preproc=PREPROC)
    remote_specs = ds.specs()
    assert list(remote_specs["events"]["per_file"].values()) == list(specs["events"]["per_file"].values())
    assert remote_specs["minv"] == specs["minv"] and remote_specs["jdim"] == specs["jdim"]
    np.testing.assert_array_equal(rows(ds), expected)
    assert remote_specs["files"][urls[0]]["identity"]["uuid"]  # remote identity: UUID + size


def test_redirector_prefixes_names_that_are_not_local(xrootd_server, tth, tmp_path):
    (tmp_path / "files.txt").write_text("/signal.root\n")
    ds = mlaas4hep.Dataset(tmp_path / "files.txt",
                           params={**PARAMS, "redirector": f"root://127.0.0.1:{xrootd_server.port}/"})
    assert ds.paths == [f"root://127.0.0.1:{xrootd_server.port}//signal.root"]
    assert ds.specs()["events"]["total"] == 12_000


def test_xrootd_missing_file_is_a_clear_error(xrootd_server):
    with pytest.raises(DataError, match=r"nope.root.*ROOT file not found"):
        mlaas4hep.Dataset([xrootd_server.url("nope.root")], params=PARAMS).files


def test_http_with_range_requests_reads_the_same_as_local(range_server, local_rows):
    specs, expected = local_rows
    urls = [range_server.url("signal.root"), range_server.url("background.root")]
    before = range_server.requests
    ds = mlaas4hep.Dataset(urls, labels=["1", "0"], params=PARAMS, preproc=PREPROC)
    assert list(ds.specs()["events"]["per_file"].values()) == list(specs["events"]["per_file"].values())
    np.testing.assert_array_equal(rows(ds), expected)
    assert range_server.requests > before


def test_http_faults_are_retried(range_server, local_rows):
    specs, _ = local_rows
    range_server.fail_next(2)  # the first two requests get 503
    ds = mlaas4hep.Dataset([range_server.url("signal.root")], params=PARAMS, preproc=PREPROC)
    assert ds.specs()["events"]["total"] == list(specs["events"]["per_file"].values())[0]


def test_http_missing_file(range_server):
    with pytest.raises(DataError, match=r"missing.root.*ROOT file not found"):
        mlaas4hep.Dataset([range_server.url("missing.root")], params=PARAMS).files


def test_unreachable_server_fails_after_bounded_retries():
    from servers import free_port

    url = f"root://127.0.0.1:{free_port()}//signal.root"
    # bounded by the number of attempts (a hang would meet pytest's timeout), not by a wall time
    with pytest.raises(DataError, match=r"could not open after 3 attempts.*is the server reachable"):
        mlaas4hep.Dataset([url], params={**PARAMS, "timeout": 1}).files


def test_server_that_goes_away_mid_read(tth):
    """Kill the XRootD server after the specs pass: reading the chunks fails with a clear error.
    (The specs pass keeps no rows here, so the chunks must be read from the server; with the rows
    kept, the chunks need no server at all: see test_first_pass_keeps_rows_remote.)"""
    from servers import XRootDServer

    from support import need
    import shutil

    need(shutil.which("xrootd") is not None, "Debian's xrootd-server is not installed")
    server = XRootDServer([tth["signal"]])
    try:
        ds = mlaas4hep.Dataset([server.url("signal.root")], params={**PARAMS, "timeout": 2, "specs_cache": False})
        ds.specs(rows=False)
        server.stop()
        with pytest.raises(DataError, match=r"signal.root.*(remote read|could not open).*is the server reachable"):
            list(ds.chunks())
    finally:
        server.close()


def test_first_pass_keeps_rows_remote(tth):
    """Over root://, the specs pass reads the file once and keeps the rows: every chunk comes
    after the server is gone, value for value those of a pass that reads the server again."""
    from servers import XRootDServer

    from support import need
    import shutil

    need(shutil.which("xrootd") is not None, "Debian's xrootd-server is not installed")
    server = XRootDServer([tth["signal"], tth["background"]])
    try:
        urls = [server.url("signal.root"), server.url("background.root")]
        params = {**PARAMS, "timeout": 2, "specs_cache": False, "chunk_size": 1500}
        again = mlaas4hep.Dataset(urls, labels=["1", "0"], params=params)
        again.specs(rows=False)
        streamed = list(again.iter_chunks())  # rows read from the server once more
        ds = mlaas4hep.Dataset(urls, labels=["1", "0"], params=params)
        ds.specs()
        server.stop()
        kept = list(ds.iter_chunks())
    finally:
        server.close()
    assert len(kept) == len(streamed) > 2
    for a, b in zip(kept, streamed):
        np.testing.assert_array_equal(a.X, b.X)
        np.testing.assert_array_equal(a.y, b.y)
        np.testing.assert_array_equal(a.entry, b.entry)


def test_fault_classification_does_not_read_numbers_in_urls():
    """A connection error on port 40405 is a transient fault, not an HTTP 404."""
    from mlaas4hep.read import _transient

    assert _transient(OSError("XRootD error: [FATAL] Connection error in file root://127.0.0.1:40405//s.root"))
    assert _transient(TimeoutError("XRootD error: [ERROR] Operation expired"))
    assert not _transient(FileNotFoundError("file not found"))
    assert not _transient(OSError("[ERROR] Server responded with an error: [3011] no such file or directory"))


def test_a_root_file_is_read_through_several_xrootd_handles(xrootd_server, tth):
    """Baskets are asked for several at a time (uproot's default: one handle, one request after
    the other, a round trip each), and the values are those of the local file."""
    from mlaas4hep.read import XROOTD_HANDLES, RootFile

    remote = RootFile(xrootd_server.url("signal.root"))
    try:
        assert remote._file.file.source.num_workers == XROOTD_HANDLES > 1
        names = ["nJets", "jetPt", "HT"]
        got = remote.arrays(names)
    finally:
        remote.close()
    with RootFile(str(tth["signal"])) as local:
        expected = local.arrays(names)
    for name in names:
        assert ak.array_equal(ak.Array(got[name]), ak.Array(expected[name])), name
