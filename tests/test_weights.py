"""Event weights (params.json ``weight``) through the engine: the specs' weighted event counts
and each chunk's weights, from the row store and straight from ROOT, against numpy on the files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import uproot

import mlaas4hep
from mlaas4hep.errors import MLaaS4HEPError
from support import need


def need_framework(name: str) -> None:
    try:
        __import__(name)
    except ImportError:
        need(False, f"{name} is not installed")

PREPROC = {"flat_cut": {"HT": {"cut": "HT > 250"}}, "new_branch": {"nj": {"def": "count(jetPt)", "type": "flat"}}}


def files(tth):
    return [str(tth["signal"]), str(tth["background"])]


def expected(tth, scale):
    out = {}
    for path, s in zip(files(tth), scale):
        a = uproot.open(path)["Events"].arrays(["HT", "weight", "jetPt"], library="np")
        keep = a["HT"] > 250
        nj = np.array([len(v) for v in a["jetPt"]], dtype=np.float64)
        w = a["weight"].astype(np.float64) * 2 * (1 + nj) / 100
        out[str(path)] = (w[keep] * s, np.flatnonzero(keep))
    return out


@pytest.mark.parametrize("cache", [False, True, "no store"])
def test_specs_and_chunks_carry_the_weights(tth, tmp_path, cache, monkeypatch):
    """From the row store (cache false and true) and straight from ROOT (no store)."""
    if cache == "no store":
        monkeypatch.setattr(mlaas4hep.Dataset, "_store_writer", lambda self, key: None)
        cache = False
    scale = [0.25, 4.0]
    params = {"identifier": ["run", "event", "luminosityBlock"], "chunk_size": 700, "cache": cache,
              "cache_dir": str(tmp_path), "exclude_branches": ["weight"],
              "weight": {"expr": "weight * 2 * (1 + nj) / 100", "scale": scale}}
    ds = mlaas4hep.Dataset(files(tth), labels=["1", "0"], params=params, preproc=PREPROC)
    want = expected(tth, scale)
    specs = ds.specs()
    weighted = specs["events"]["weighted"]
    for path, (w, _) in want.items():
        assert weighted["per_file"][path] == pytest.approx(w.sum(), rel=1e-9)
    assert weighted["total"] == pytest.approx(sum(w.sum() for w, _ in want.values()), rel=1e-9)
    assert "__weight__" not in ds.feature_names and "weight" not in ds.feature_names
    seen = {i: {} for i in range(2)}
    for chunk in ds.iter_chunks():
        assert chunk.weight is not None and chunk.weight.shape == (len(chunk),)
        for f, e, w in zip(chunk.file_index, chunk.entry, chunk.weight):
            seen[int(f)][int(e)] = w
    for i, (path, (w, entries)) in enumerate(want.items()):
        got = np.array([seen[i][int(e)] for e in entries])
        np.testing.assert_allclose(got, w, rtol=1e-9)


def test_a_weight_per_element_is_refused(tth):
    with pytest.raises(MLaaS4HEPError, match="per element; it needs one per event"):
        mlaas4hep.Dataset(files(tth), labels=["1", "0"], params={"weight": "jetPt"}).specs()
    with pytest.raises(MLaaS4HEPError, match="unknown branch 'wieght'"):
        mlaas4hep.Dataset(files(tth), labels=["1", "0"], params={"weight": "wieght"}).specs()


TORCH_MODEL = '''
import torch
from torch import nn

def model(idim):
    return nn.Sequential(nn.Linear(idim, 16), nn.ReLU(), nn.Linear(16, 1))

def optimizer(parameters):
    return torch.optim.Adam(parameters, lr=2e-3)
'''

KERAS_MODEL = '''
import keras

def model(idim):
    net = keras.Sequential([keras.Input((idim,)), keras.layers.Dense(16, activation="relu"),
                            keras.layers.Dense(1, activation="sigmoid")])
    net.compile(optimizer=keras.optimizers.Adam(2e-3), loss="binary_crossentropy")
    return net
'''

TRAIN = {"chunk_size": 3000, "epochs": 2, "batch_size": 128, "identifier": ["run", "event", "luminosityBlock"],
         "exclude_branches": ["weight"], "seed": 3}


def _train(tth, tmp_path, name: str, source: str, **params):
    (tmp_path / f"{name}.py").write_text(source)
    ds = mlaas4hep.Dataset(files(tth), labels=["1", "0"], params={**TRAIN, **params})
    artifact = mlaas4hep.train(ds, str(tmp_path / f"{name}.py"), output=tmp_path / name)
    return ds, artifact


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_training_uses_the_weights(tth, tmp_path, framework):
    """Unit weights train exactly as no weights; a zero scale on the background removes it from
    the loss, so the model calls everything signal; the test AUC is also given weighted."""
    need_framework(framework)
    source = TORCH_MODEL if framework == "torch" else KERAS_MODEL
    _, plain = _train(tth, tmp_path, "plain", source)
    _, ones = _train(tth, tmp_path, "ones", source, weight="weight * 0 + 1")
    assert ones.metrics["auc"] == pytest.approx(plain.metrics["auc"], abs=1e-6 if framework == "torch" else 0.02)
    assert ones.metrics["weighted_auc"] == pytest.approx(ones.metrics["auc"], abs=1e-9)
    _, no_bkg = _train(tth, tmp_path, "nobkg", source, weight={"expr": "weight", "scale": [1.0, 0.0]})
    scores = no_bkg.predict([files(tth)[1]])
    scores = scores[np.isfinite(scores)]
    assert scores.mean() > 0.9  # trained on signal only: background is called signal
    evaluation = json.loads((no_bkg.path / "evaluation.json").read_text())
    assert "weighted_auc" in no_bkg.metrics and evaluation


@pytest.mark.slow
def test_weights_on_the_dask_cluster_equal_one_process(tth, dask_client):
    params = {"chunk_size": 2000, "specs_cache": False, "exclude_branches": ["weight"],
              "weight": {"expr": "weight * (1 + nj)", "scale": [0.5, 2.0]}}
    one = mlaas4hep.Dataset(files(tth), labels=["1", "0"], params=params, preproc=PREPROC)
    spread = mlaas4hep.Dataset(files(tth), labels=["1", "0"], params=params, preproc=PREPROC, dask=dask_client)
    assert spread.specs()["events"]["weighted"]["per_file"] == pytest.approx(one.specs()["events"]["weighted"]["per_file"])
    for a, b in zip(one.iter_chunks(seed=4), spread.iter_chunks(seed=4)):
        np.testing.assert_array_equal(a.entry, b.entry)
        np.testing.assert_allclose(a.weight, b.weight, rtol=0)
