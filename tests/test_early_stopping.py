"""Early stopping (params.json ``early_stopping``) in standard mode, Keras and PyTorch: training
stops when the monitored metric stops improving, and the best epoch's model is the artifact."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mlaas4hep
from mlaas4hep.cli import main as cli_main
from mlaas4hep.config import load_params
from mlaas4hep.datagen import write_tth
from mlaas4hep.errors import ConfigError
from mlaas4hep.events import read_events
from mlaas4hep.metrics import classification_metrics
from mlaas4hep.train import split_rows

TORCH_MODEL = '''
import torch
from torch import nn

def model(idim):
    return nn.Sequential(nn.Linear(idim, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 1))

def optimizer(parameters):
    return torch.optim.Adam(parameters, lr=3e-3)
'''

KERAS_MODEL = '''
import keras

def model(idim):
    net = keras.Sequential([keras.Input((idim,)), keras.layers.Dense(128, activation="relu"),
                            keras.layers.Dense(128, activation="relu"), keras.layers.Dense(1, activation="sigmoid")])
    net.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy", metrics=["accuracy"])
    return net
'''

# few events, a big network, many epochs: val_loss turns up after a few epochs
PARAMS = {"nevts": 1000, "chunk_size": 2000, "epochs": 30, "mode": "standard", "batch_size": 32,
          "validation_split": 0.3, "early_stopping": {"monitor": "val_loss", "patience": 3, "restore_best": True}}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("early")
    write_tth(folder / "sig.root", 1500, signal=True, seed=3, separation=1.0)
    write_tth(folder / "bkg.root", 1500, signal=False, seed=3, separation=1.0)
    (folder / "torch_model.py").write_text(TORCH_MODEL)
    (folder / "keras_model.py").write_text(KERAS_MODEL)
    return folder


def test_params_validation():
    es = load_params({"mode": "standard", "early_stopping": {"patience": 4}}).early_stopping
    assert es == {"monitor": "val_loss", "patience": 4, "restore_best": True, "min_delta": 0.0}
    assert load_params({"early_stopping": None}).early_stopping is None
    with pytest.raises(ConfigError, match=r"early_stopping needs mode 'standard'.*mode.: .standard"):
        load_params({"early_stopping": {"patience": 2}})
    with pytest.raises(ConfigError, match=r"params: early_stopping.patence: unknown key 'patence'.*patience"):
        load_params({"mode": "standard", "early_stopping": {"patence": 2}})
    with pytest.raises(ConfigError, match=r"early_stopping.patience: expected an integer >= 1, got 0"):
        load_params({"mode": "standard", "early_stopping": {"patience": 0}})
    with pytest.raises(ConfigError, match=r"early_stopping: expected an object"):
        load_params({"mode": "standard", "early_stopping": 3})


def _val_loss_of(artifact, folder, params) -> float:
    """The artifact's loss on the run's validation rows (one chunk: the rows of every epoch)."""
    ds = mlaas4hep.Dataset([str(folder / "sig.root"), str(folder / "bkg.root")], labels=[1, 0], params=params)
    (chunk,) = list(ds.iter_chunks())
    rows = split_rows(chunk, ds.params.test_fraction, ds.params.validation_split, ds.params.seed)
    return classification_metrics(chunk.y[rows.val], artifact.adapter.predict(chunk.X[rows.val]))["loss"]


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_training_stops_and_the_best_epoch_is_the_artifact(data, tmp_path, framework):
    ds = mlaas4hep.Dataset([str(data / "sig.root"), str(data / "bkg.root")], labels=[1, 0], params=PARAMS)
    artifact = mlaas4hep.train(ds, data / f"{framework}_model.py", output=tmp_path / "run")
    events = read_events(tmp_path / "run" / "events.jsonl")
    epochs = [e for e in events if e["event"] == "epoch"]
    (stop,) = [e for e in events if e["event"] == "early_stop"]
    val = [e["val_loss"] for e in epochs]
    best = int(np.argmin(val)) + 1
    assert len(epochs) < PARAMS["epochs"]  # it stopped
    assert stop["best_epoch"] == best and stop["epoch"] == len(epochs) == best + 3
    assert stop["best"] == pytest.approx(min(val)) and stop["restored"] is True
    assert min(val) < val[-1]
    # the artifact is the model of the best epoch, not of the last one
    got = _val_loss_of(artifact, data, PARAMS)
    assert got == pytest.approx(val[best - 1], rel=2e-3)
    assert abs(got - val[-1]) > 10 * abs(got - val[best - 1])
    training = artifact.contract["training"]
    assert training["epochs_trained"] == len(epochs)
    assert training["early_stopping"]["best_epoch"] == best and training["early_stopping"]["stopped_epoch"] == len(epochs)
    kinds = [e["event"] for e in events]
    assert kinds.index("early_stop") < kinds.index("evaluation") < kinds.index("finished")


@pytest.mark.slow
def test_without_restore_best_the_last_epoch_is_kept_and_bad_monitor_is_named(data, tmp_path, capsys):
    params = {**PARAMS, "early_stopping": {"monitor": "val_loss", "patience": 2, "restore_best": False}}
    ds = mlaas4hep.Dataset([str(data / "sig.root"), str(data / "bkg.root")], labels=[1, 0], params=params)
    artifact = mlaas4hep.train(ds, data / "torch_model.py", output=tmp_path / "last")
    epochs = [e for e in read_events(tmp_path / "last" / "events.jsonl") if e["event"] == "epoch"]
    assert len(epochs) < params["epochs"]
    assert _val_loss_of(artifact, data, params) == pytest.approx(epochs[-1]["val_loss"], rel=2e-3)
    assert not (tmp_path / "last" / "best").exists()

    (tmp_path / "params.json").write_text(json.dumps({**PARAMS, "epochs": 2, "early_stopping": {"monitor": "val_auc"}}))
    code = cli_main(["workflow", "--files", f"{data / 'sig.root'},{data / 'bkg.root'}", "--labels", "1,0",
                     "--model", str(data / "torch_model.py"), "--params", str(tmp_path / "params.json"),
                     "--output", str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert code == 2 and "params.json: early_stopping.monitor" in err and "'val_auc'" in err and "val_loss" in err
