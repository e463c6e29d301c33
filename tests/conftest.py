"""Shared fixtures: generated ROOT files (seeded), the public scikit-hep-testdata files, and
real remote servers on loopback."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from mlaas4hep.datagen import FIGURE4_PREPROC, write_tth
from support import need, write_input_lists, write_labelled_pair


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Keep the specs cache of the tests out of the user's ~/.cache."""
    os.environ["MLAAS4HEP_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture(scope="session")
def tth(tmp_path_factory) -> dict[str, Path]:
    """ttH-like signal and background, 12k events each, and their input files."""
    folder = tmp_path_factory.mktemp("tth")
    sig = write_tth(folder / "signal.root", 12_000, signal=True, seed=7, batch=5_000)
    bkg = write_tth(folder / "background.root", 9_000, signal=False, seed=7, batch=4_000)
    return {"signal": sig, "background": bkg, "folder": folder,
            **write_input_lists(folder, {"signal.root": 1, "background.root": 0})}


@pytest.fixture
def figure4() -> dict:
    import copy

    return copy.deepcopy(FIGURE4_PREPROC)


def write_kitchen_sink(path: Path, n: int = 4000, seed: int = 3) -> Path:
    """Flat float (with NaN and inf), int, bool, a constant branch; jagged float (with NaN and
    empty events), int and bool; counters are written by uproot as n<name>."""
    rng = np.random.default_rng(seed)
    x = rng.normal(10, 3, n).astype(np.float32)
    x[rng.random(n) < 0.03] = np.nan
    x[rng.random(n) < 0.005] = np.inf
    counts = rng.integers(0, 13, n)
    jf = rng.exponential(20, counts.sum()).astype(np.float32)
    jf[rng.random(jf.size) < 0.02] = np.nan
    ji = rng.integers(-5, 50, counts.sum()).astype(np.int32)
    jb = rng.random(counts.sum()) < 0.3
    arrays = {
        "x": x,
        "i": rng.integers(0, 10, n).astype(np.int32),
        "b": rng.random(n) < 0.4,
        "const": np.full(n, 7.5),
        "id": np.arange(n, dtype=np.int64),
        "jf": ak.unflatten(jf, counts),
        "ji": ak.unflatten(ji, counts),
        "jb": ak.unflatten(jb, counts),
    }
    with uproot.recreate(path) as out:
        types = {k: (v.type.content if isinstance(v, ak.Array) else v.dtype) for k, v in arrays.items()}
        tree = out.mktree("Events", types)
        half = n // 2
        tree.extend({k: v[:half] for k, v in arrays.items()})
        tree.extend({k: v[half:] for k, v in arrays.items()})
    return path


@pytest.fixture(scope="session")
def kitchen_sink(tmp_path_factory) -> Path:
    return write_kitchen_sink(tmp_path_factory.mktemp("sink") / "sink.root")


@pytest.fixture(scope="session")
def kitchen_sink2(tmp_path_factory) -> Path:
    return write_kitchen_sink(tmp_path_factory.mktemp("sink2") / "sink2.root", n=3000, seed=11)


@pytest.fixture(scope="session")
def hzz() -> str:
    import skhep_testdata

    return skhep_testdata.data_path("uproot-HZZ.root")


@pytest.fixture(scope="session")
def zmumu() -> str:
    import skhep_testdata

    return skhep_testdata.data_path("uproot-Zmumu.root")


@pytest.fixture(scope="session")
def xrootd_server(tth):
    from servers import XRootDServer

    need(shutil.which("xrootd") is not None, "Debian's xrootd-server is not installed")
    server = XRootDServer([tth["signal"], tth["background"]])
    yield server
    server.close()


@pytest.fixture(scope="session")
def range_server(tth):
    from servers import RangeHTTPServer

    server = RangeHTTPServer(tth["folder"])
    yield server
    server.close()


@pytest.fixture(scope="session")
def oidc_issuer():
    """A real OIDC token issuer on loopback (npm oauth2-mock-server, installed into tests/oidc by
    scripts/setup-test-env.sh), shared by every test of the session."""
    from servers import OIDCIssuer, oidc_available

    need(oidc_available(), "node and tests/oidc/node_modules (npm ci --prefix tests/oidc)")
    issuer = OIDCIssuer()
    yield issuer
    issuer.close()


@pytest.fixture(scope="session")
def dask_client():
    """One real dask.distributed LocalCluster for the session: 2 worker processes (with their
    nannies, which restart a killed worker), 1 thread each, small memory, each tagged GPU=1."""
    need(importlib.util.find_spec("distributed") is not None, "dask.distributed (pip install mlaas4hep-lab[dask])")
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                           memory_limit="1.5GiB", silence_logs=logging.ERROR,
                           resources={"GPU": 1})
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def pytest_collection_modifyitems(config, items):
    """Browser tests (marked ``ui``) start JupyterLab and Chromium: ``-m "not slow"`` leaves them out."""
    for item in items:
        if item.get_closest_marker("ui") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def served_artifacts(tmp_path_factory) -> dict:
    """A tiny Keras and a tiny PyTorch artifact, trained once per session on ttH-like files with a
    new branch and a cut (so that some events fail it), for the serving tests."""
    import json

    import mlaas4hep
    from mlaas4hep.datagen import write_tth
    from support import keras_model, torch_model

    need(importlib.util.find_spec("keras") is not None and importlib.util.find_spec("torch") is not None,
         "Keras and PyTorch (pip install mlaas4hep-lab[tf-cpu,torch])")
    folder = tmp_path_factory.mktemp("served")
    write_labelled_pair(folder, 1500, seed=21, separation=1.5)
    write_input_lists(folder, {"sig.root": 1, "bkg.root": 0})
    write_tth(folder / "fresh.root", 400, signal=True, seed=99, separation=1.5)  # never seen in training
    preproc = {"new_branch": {"leadJetPt": {"def": "max(jetPt)", "type": "flat", "cut": "leadJetPt > 40"}},
               "flat_cut": {"nLeptons": {"cut": "nLeptons <= 2"}}}
    (folder / "preproc.json").write_text(json.dumps(preproc))
    params = {"chunk_size": 1500, "epochs": 1, "batch_size": 256}
    out = {"folder": folder, "fresh": folder / "fresh.root"}
    for framework, source in (("keras", keras_model(8)), ("torch", torch_model(8))):
        (folder / f"{framework}_model.py").write_text(source)
        ds = mlaas4hep.Dataset(folder / "files.txt", labels=folder / "labels.txt", params=params,
                               preproc=folder / "preproc.json")
        out[framework] = mlaas4hep.train(ds, folder / f"{framework}_model.py", output=folder / f"{framework}-run")
    return out
