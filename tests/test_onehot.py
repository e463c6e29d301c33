"""Categorical losses get one-hot labels, as in the original MLaaS4HEP: its ex_keras.py (two
softmax units, loss="categorical_crossentropy", integer labels in labels.txt) trains as it is,
for any number of classes, in Keras and in PyTorch (``loss = "categorical_crossentropy"``)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

import mlaas4hep
from mlaas4hep.adapters import make_adapter, one_hot, wants_one_hot
from mlaas4hep.cli import main as cli_main
from mlaas4hep.datagen import write_tth
from mlaas4hep.errors import ConfigError
from mlaas4hep.events import read_events

# the shape of the original's ex_keras.py: Dense(32) relu, Dense(2) softmax, categorical_crossentropy
ORIGINAL_STYLE_KERAS = """
from keras.models import Sequential
from keras.layers import Dense, Activation, Input

def model(idim):
    net = Sequential([Input((idim,)), Dense(32), Activation("relu"), Dense({k}), Activation("softmax")])
    net.compile(optimizer="adam", loss={loss}, metrics=["accuracy"])
    return net
"""


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory) -> dict[str, Path]:
    """Three ttH-like samples that differ: background, signal, and a more separated signal."""
    folder = tmp_path_factory.mktemp("three")
    write_tth(folder / "bkg.root", 4000, signal=False, seed=2, separation=1.5)
    write_tth(folder / "sig.root", 4000, signal=True, seed=3, separation=1.5)
    write_tth(folder / "far.root", 4000, signal=True, seed=4, separation=4.0)
    (folder / "files.txt").write_text("bkg.root\nsig.root\nfar.root\n")
    (folder / "labels.txt").write_text("0\n1\n2\n")
    (folder / "params.json").write_text(json.dumps({"chunk_size": 6000, "epochs": 3, "batch_size": 64}))
    return {"folder": folder, "files": folder / "files.txt", "labels": folder / "labels.txt",
            "params": folder / "params.json"}


def test_original_ex_keras_trains_through_the_workflow(tth, tmp_path, capsys):
    model = tmp_path / "ex_keras.py"
    model.write_text(ORIGINAL_STYLE_KERAS.format(k=2, loss="'categorical_crossentropy'"))
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"chunk_size": 7000, "epochs": 2, "batch_size": 100, "split": 0.3}))
    code = cli_main(["workflow", "--files", str(tth["files"]), "--labels", str(tth["labels"]), "--model", str(model),
                     "--params", str(params), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Traceback" not in err
    events = read_events(tmp_path / "out" / "events.jsonl")
    finished = [e for e in events if e["event"] == "finished"]
    assert finished and finished[0]["metrics"]["auc"] > 0.6, finished
    epochs = [e for e in events if e["event"] == "epoch"]
    assert epochs and all(0.0 <= e["accuracy"] <= 1.0 and np.isfinite(e["val_loss"]) for e in epochs)
    start = next(e for e in events if e["event"] == "job_start")
    assert start["params"]["validation_split"] == 0.3  # the original's "split"
    artifact = mlaas4hep.Artifact.load(tmp_path / "out" / "artifact")
    assert "event" not in artifact.feature_names and artifact.identifiers == ["run", "event", "luminosityBlock"]


@pytest.mark.parametrize("loss", ["'categorical_crossentropy'", "'CategoricalCrossentropy'",
                                  "keras.losses.CategoricalCrossentropy()", "keras.losses.categorical_crossentropy"])
def test_keras_three_classes_with_every_spelling_of_the_loss(three_classes, tmp_path, loss):
    model = tmp_path / "model.py"
    model.write_text("import keras\n" + ORIGINAL_STYLE_KERAS.format(k=3, loss=loss))
    ds = mlaas4hep.Dataset(three_classes["files"], labels=three_classes["labels"], params=three_classes["params"])
    artifact = mlaas4hep.train(ds, model, output=tmp_path / "out")
    assert artifact.adapter.one_hot is True
    assert artifact.metrics["accuracy"] > 0.5, artifact.metrics  # chance is 1/3


def test_keras_categorical_loss_on_one_unit_is_refused(tth, tmp_path):
    model = tmp_path / "model.py"
    model.write_text(ORIGINAL_STYLE_KERAS.format(k=1, loss="'categorical_crossentropy'"))
    ds = mlaas4hep.Dataset(tth["files"], labels=tth["labels"], params={"epochs": 1})
    with pytest.raises(ConfigError, match="compiled with 'categorical_crossentropy', which needs one output unit per "
                                          "class, but it has 1 output"):
        mlaas4hep.train(ds, model, output=tmp_path / "out")


def test_sparse_and_binary_losses_keep_integer_labels():
    assert not wants_one_hot("sparse_categorical_crossentropy") and not wants_one_hot("binary_crossentropy")
    assert wants_one_hot("categorical_focal_crossentropy") and wants_one_hot("CategoricalHinge")
    np.testing.assert_array_equal(one_hot(np.array([2, 0, 1]), 3), [[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    with pytest.raises(ValueError, match="labels must be class indices 0..1, got values from 0 to 2"):
        one_hot(np.array([0, 2]), 2)


TORCH_CATEGORICAL = """
import torch
from torch import nn

loss = "categorical_crossentropy"

def model(idim):
    return nn.Sequential(nn.Linear(idim, 32), nn.ReLU(), nn.Linear(32, {k}){last})

def optimizer(parameters):
    return torch.optim.Adam(parameters, lr=3e-3)
"""


@pytest.mark.parametrize("last", ["", ", nn.Softmax(dim=1)", ", nn.LogSoftmax(dim=1)"])
def test_torch_categorical_crossentropy_gets_one_hot_targets(three_classes, tmp_path, last):
    torch = pytest.importorskip("torch")
    model = tmp_path / "model.py"
    model.write_text(textwrap.dedent(TORCH_CATEGORICAL.format(k=3, last=last)))
    ds = mlaas4hep.Dataset(three_classes["files"], labels=three_classes["labels"], params=three_classes["params"])
    artifact = mlaas4hep.train(ds, model, output=tmp_path / "out")
    adapter = artifact.adapter
    assert adapter._one_hot and adapter._loss_name == "categorical_crossentropy"
    assert artifact.metrics["accuracy"] > 0.5, artifact.metrics
    # the loss is the cross-entropy against one-hot rows, computed here independently
    X, y = next(ds.chunks(shuffle=False))
    X, y = X[:256], y[:256]
    with torch.no_grad():
        out = adapter.model(torch.from_numpy(X))
        target = adapter._as_target(y, len(y))
        assert target.shape == (256, 3) and target.dtype == torch.float32
        probabilities = adapter.predict(X)
        expected = -np.log(np.clip(probabilities[np.arange(256), y], 1e-7, None)).mean()
        assert float(adapter._loss_of(out, target)) == pytest.approx(expected, rel=1e-3)


def test_torch_keras_loss_names_must_fit_the_output(tmp_path):
    pytest.importorskip("torch")
    for source, message in (
        (TORCH_CATEGORICAL.format(k=1, last=""), "loss 'categorical_crossentropy' needs one output unit per class"),
        (TORCH_CATEGORICAL.format(k=2, last="").replace('"categorical_crossentropy"', '"binary_crossentropy"'),
         "loss 'binary_crossentropy' needs 1 output unit; the model has 2"),
        (TORCH_CATEGORICAL.format(k=2, last="").replace('"categorical_crossentropy"', '"mse"'),
         "loss is the string 'mse'"),
    ):
        path = tmp_path / "model.py"
        path.write_text(textwrap.dedent(source))
        with pytest.raises(ConfigError, match=message):
            make_adapter(path, 10, 2)


def test_torch_categorical_crossentropy_takes_event_weights(tmp_path):
    """Σ w·loss / Σ w with one-hot targets: weight 0 removes an event from the loss."""
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.py"
    path.write_text(textwrap.dedent(TORCH_CATEGORICAL.format(k=3, last="")))
    adapter = make_adapter(path, 10, 3)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(6, 10)).astype(np.float32), np.array([0, 1, 2, 0, 1, 2])
    out = adapter.model(torch.from_numpy(X))
    target = adapter._as_target(y, 6)
    weights = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    weighted = adapter._weighted_loss(out, target, weights)
    assert float(weighted.detach()) == pytest.approx(float(adapter._loss_of(out[:3], target[:3]).detach()), rel=1e-6)
