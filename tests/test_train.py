"""Training: real learning with Keras and PyTorch, events, artifacts, predictions into ROOT,
the chunk cache, resume after SIGKILL, and clear errors for bad model.py files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import uproot

import mlaas4hep
from mlaas4hep.cli import main as cli_main
from mlaas4hep.events import read_events
from support import write_input_lists, write_labelled_pair

KERAS_MODEL = '''
import keras

def model(idim):
    net = keras.Sequential([keras.Input((idim,)), keras.layers.Dense(32, activation="relu"),
                            keras.layers.Dense(1, activation="sigmoid")])
    net.compile(optimizer=keras.optimizers.Adam(2e-3), loss="binary_crossentropy", metrics=["accuracy"])
    return net
'''

TORCH_MODEL = '''
import torch
from torch import nn

def model(idim):
    return nn.Sequential(nn.Linear(idim, 32), nn.ReLU(), nn.Linear(32, 1))

def optimizer(parameters):
    return torch.optim.Adam(parameters, lr=2e-3)
'''

PARAMS = {"chunk_size": 4000, "epochs": 4, "batch_size": 128, "identifier": ["run", "event", "luminosityBlock"]}
CUTS = {"new_branch": {"leadJetPt": {"def": "max(jetPt)", "type": "flat", "cut": "leadJetPt > 60"}},
        "flat_cut": {"nLeptons": {"cut": "nLeptons <= 2"}}}


@pytest.fixture(scope="module")
def separable(tmp_path_factory) -> dict[str, Path]:
    """Signal and background that differ clearly in flat and jagged branches."""
    folder = tmp_path_factory.mktemp("separable")
    sig, bkg = write_labelled_pair(folder, 8000, seed=5, separation=1.6)
    (folder / "keras_model.py").write_text(KERAS_MODEL)
    (folder / "torch_model.py").write_text(TORCH_MODEL)
    (folder / "params.json").write_text(json.dumps(PARAMS))
    return {"folder": folder, "sig": sig, "bkg": bkg, **write_input_lists(folder, {"sig.root": 1, "bkg.root": 0}),
            "keras": folder / "keras_model.py", "torch": folder / "torch_model.py", "params": folder / "params.json"}


@pytest.fixture(scope="module")
def keras_run(separable, tmp_path_factory):
    out = tmp_path_factory.mktemp("keras-run")
    ds = mlaas4hep.Dataset(separable["files"], labels=separable["labels"], params=PARAMS)
    seen = []
    artifact = mlaas4hep.train(ds, separable["keras"], output=out, on_event=seen.append)
    return {"artifact": artifact, "events": seen, "output": out, "dataset": ds}


def test_keras_learns(keras_run):
    metrics = keras_run["artifact"].metrics
    assert metrics["auc"] > 0.9, metrics
    assert metrics["accuracy"] > 0.8 and metrics["events"] > 1000


def test_events_follow_the_schema(keras_run):
    events = keras_run["events"]
    assert events == read_events(keras_run["output"] / "events.jsonl")  # the file has the same
    kinds = [e["event"] for e in events]
    assert kinds[0] == "job_start" and kinds[1] == "specs_done" and kinds[-1] == "finished"
    assert kinds[-2] == "artifact"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    n_chunks = events[1]["chunks"]
    assert n_chunks == 4
    assert kinds.count("chunk_start") == kinds.count("chunk_done") == kinds.count("checkpoint") == n_chunks
    epochs = [e for e in events if e["event"] == "epoch"]
    assert len(epochs) == n_chunks * PARAMS["epochs"]
    assert all(e["loss"] > 0 and e["val_loss"] > 0 and "accuracy" in e for e in epochs)
    assert [e["step"] for e in epochs] == list(range(1, len(epochs) + 1))
    done = [e for e in events if e["event"] == "chunk_done"]
    assert [e["events_processed"] for e in done][-1] == done[-1]["events_total"] == events[1]["used"]
    assert all(e["rate"] > 0 for e in done)


def test_artifact_holds_the_model_and_its_contract(keras_run):
    path = keras_run["artifact"].path
    assert (path / "model.keras").is_file() and (path / "saved_model" / "saved_model.pb").is_file()
    contract = json.loads((path / "mlaas4hep.json").read_text())
    ds = keras_run["dataset"]
    assert contract["features"] == ds.feature_names and contract["framework"] == "keras"
    assert contract["specs"]["minv"] == ds.specs()["minv"] and contract["tree"] == "Events"
    assert contract["labels"]["values"] == [1, 0] and contract["identifier"] == PARAMS["identifier"]
    assert {"keras", "tensorflow", "uproot", "awkward", "numpy", "mlaas4hep"} <= set(contract["versions"])
    assert contract["metrics"] == keras_run["artifact"].metrics
    history = json.loads((path / "history.json").read_text())
    assert len(history) == 16 and history[0]["loss"] > history[-1]["loss"]


def test_loaded_artifact_predicts_like_the_trained_model(keras_run, separable):
    ds = keras_run["dataset"]
    trained = keras_run["artifact"].adapter
    rows = [(c.file_index.copy(), c.entry.copy(), trained.predict(c.X)) for c in ds.iter_chunks(shuffle=False)]
    fi = np.concatenate([r[0] for r in rows])
    entry = np.concatenate([r[1] for r in rows])
    expected = np.concatenate([r[2] for r in rows])[np.lexsort((entry, fi))]
    loaded = mlaas4hep.Artifact.load(keras_run["artifact"].path)
    from_files = loaded.predict([str(separable["sig"]), str(separable["bkg"])])
    np.testing.assert_allclose(from_files, expected, rtol=1e-5, atol=1e-6)
    # raw branch arrays give the same
    tree = uproot.open(separable["sig"])["Events"]
    arrays = tree.arrays(loaded.contract["branches"], entry_stop=500, how=dict)
    np.testing.assert_allclose(loaded.predict(arrays), expected[:500], rtol=1e-5, atol=1e-6)


def test_predict_writes_a_friend_tree_with_the_scores(separable, tmp_path):
    ds = mlaas4hep.Dataset(separable["files"], labels=separable["labels"], params=PARAMS, preproc=CUTS)
    artifact = mlaas4hep.train(ds, separable["keras"], output=tmp_path / "run")
    n_sig = uproot.open(separable["sig"])["Events"].num_entries
    expected = artifact.predict([str(separable["sig"])])  # NaN for events failing the cuts
    assert np.isnan(expected).any() and not np.isnan(expected).all()

    out = tmp_path / "scored.root"
    assert cli_main(["predict", "--artifact", str(artifact.path), "--files", str(separable["sig"]),
                     "--out", str(out)]) == 0
    tree = uproot.open(out)["Events"]
    assert tree.num_entries == n_sig  # every entry: usable as a friend of the input
    scores = tree["score"].array(library="np")
    np.testing.assert_allclose(scores, np.where(np.isnan(expected), -1.0, expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(tree["event"].array(library="np"),
                                  uproot.open(separable["sig"])["Events"]["event"].array(library="np"))

    omitted = tmp_path / "omitted.root"
    assert cli_main(["predict", "--artifact", str(artifact.path), "--files", str(separable["sig"]),
                     "--out", str(omitted), "--failed", "omit", "--branch", "dnn"]) == 0
    tree = uproot.open(omitted)["Events"]
    assert tree.num_entries == int((~np.isnan(expected)).sum())
    np.testing.assert_allclose(tree["dnn"].array(library="np"), expected[~np.isnan(expected)], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(tree["entry"].array(library="np"), np.flatnonzero(~np.isnan(expected)))


def test_torch_learns_and_predicts_after_reload(separable, tmp_path):
    ds = mlaas4hep.Dataset(separable["files"], labels=separable["labels"], params=PARAMS)
    artifact = mlaas4hep.train(ds, separable["torch"], output=tmp_path / "torch-run")
    assert artifact.framework == "torch"
    assert artifact.metrics["auc"] > 0.9, artifact.metrics
    assert (artifact.path / "model.pt").is_file()
    loaded = mlaas4hep.Artifact.load(artifact.path)  # TorchScript: no model.py needed
    files = [str(separable["sig"]), str(separable["bkg"])]
    np.testing.assert_allclose(loaded.predict(files), artifact.predict(files), rtol=1e-5, atol=1e-6)


def test_standard_mode_with_cache_reads_each_file_once(separable, tmp_path, monkeypatch):
    from mlaas4hep.read import RootFile

    params = {**PARAMS, "mode": "standard", "epochs": 3, "cache": True, "cache_dir": str(tmp_path / "cachedir")}
    entries_read: dict[str, int] = {}
    real_iterate = RootFile.iterate

    def counting(self, names, start=0, stop=None, step=100_000):
        for first, end, arrays in real_iterate(self, names, start, stop, step):
            entries_read[self.path] = entries_read.get(self.path, 0) + (end - first)
            yield first, end, arrays

    monkeypatch.setattr(RootFile, "iterate", counting)
    ds = mlaas4hep.Dataset(separable["files"], labels=separable["labels"], params=params)
    seen = []
    artifact = mlaas4hep.train(ds, separable["keras"], output=tmp_path / "cached", on_event=seen.append)
    # the specs pass is the only read: it also kept the rows that all three epochs train on
    assert entries_read == {p: 8000 for p in ds.paths}
    assert [e["event"] for e in seen].index("specs_done") < [e["event"] for e in seen].index("chunk_start")
    assert [e["epoch"] for e in seen if e["event"] == "epoch"] == [1, 2, 3]
    assert artifact.metrics["auc"] > 0.9
    assert len(list((tmp_path / "cachedir" / "rows").glob("*/meta.json"))) == 1

    entries_read.clear()  # a later run on the same inputs reads no ROOT at all (specs and rows cached)
    mlaas4hep.train(mlaas4hep.Dataset(separable["files"], labels=separable["labels"], params=params),
                    separable["keras"], output=tmp_path / "again")
    assert entries_read == {}

    params_nc = {**params, "cache": False}  # without the cache every epoch reads ROOT again
    entries_read.clear()
    mlaas4hep.train(mlaas4hep.Dataset(separable["files"], labels=separable["labels"], params=params_nc),
                    separable["keras"], output=tmp_path / "nocache")
    assert entries_read == {p: 3 * 8000 for p in ds.paths}
    assert len(list((tmp_path / "cachedir" / "rows").glob("tmp-*"))) == 0  # temporary rows are gone


def _workflow(separable, output, *extra, params=None):
    params_path = output.parent / f"{output.name}-params.json"
    params_path.write_text(json.dumps(params or PARAMS))
    return [sys.executable, "-m", "mlaas4hep.cli", "workflow", "--files", str(separable["files"]),
            "--labels", str(separable["labels"]), "--model", str(separable["keras"]),
            "--params", str(params_path), "--output", str(output), *extra]


def test_resume_after_sigkill_trains_every_chunk_once(separable, tmp_path):
    output = tmp_path / "killed"
    params = {**PARAMS, "chunk_size": 800, "epochs": 2}  # 20 chunks
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_workflow(separable, output, params=params), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    events = output / "events.jsonl"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if sum(e["event"] == "checkpoint" for e in read_events(events)) >= 3:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoints within 120 s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    first = read_events(events)
    assert first[-1]["event"] != "finished"
    killed_at = max(e["chunk"] for e in first if e["event"] == "checkpoint")
    assert killed_at < 19

    result = subprocess.run(_workflow(separable, output, "--resume", params=params), env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    everything = read_events(events)
    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1))
    checkpoints = [e["chunk"] for e in everything if e["event"] == "checkpoint"]
    assert sorted(checkpoints) == list(range(20))  # every chunk trained into the model exactly once
    resumed = everything[len(first):]
    assert min(e["chunk"] for e in resumed if e["event"] == "chunk_start") == killed_at + 1
    assert resumed[-1]["event"] == "finished" and resumed[-1]["metrics"]["auc"] > 0.9
    assert (output / "artifact" / "mlaas4hep.json").is_file()


@pytest.mark.parametrize("source, message", [
    ("import keras\ndef model(idim)\n    return None\n", r"model.py:2: syntax error"),
    ("import keras\n\ndef build(idim):\n    return None\n", r"model.py: defines no function 'model\(idim\)' \(it defines build\)"),
    ("def model(idim):\n    return {'layers': 3}\n", r"model.py: model\(\d+\) returned builtins.dict; expected a compiled Keras"),
    ("def model(idim):\n    return 1 / 0\n", r"model.py:2: model\(\d+\) failed: ZeroDivisionError"),
    ("import keras\ndef model(idim):\n    m = keras.Sequential([keras.Input((7,)), keras.layers.Dense(1, activation='sigmoid')])\n"
     "    m.compile(loss='binary_crossentropy')\n    return m\n", r"model's input size is 7 but the data has \d+ features"),
    ("import keras\ndef model(idim):\n    m = keras.Sequential([keras.Input((idim,)), keras.layers.Dense(3, activation='softmax')])\n"
     "    m.compile(loss='binary_crossentropy')\n    return m\n", r"labels are binary but the model has 3 outputs"),
    ("import no_such_package\n", r"model.py:1: importing it failed: ModuleNotFoundError"),
])
def test_bad_model_files_give_clear_errors(separable, tmp_path, capsys, source, message):
    model = tmp_path / "model.py"
    model.write_text(source)
    code = cli_main(["workflow", "--files", str(separable["files"]), "--labels", str(separable["labels"]),
                     "--model", str(model), "--params", str(separable["params"]), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    import re

    assert re.search(message, err), err
    assert "failed" in [e["event"] for e in read_events(tmp_path / "o" / "events.jsonl")]


def test_other_training_mistakes(separable, tmp_path, capsys):
    base = ["workflow", "--model", str(separable["keras"]), "--params", str(separable["params"])]
    assert cli_main(base + ["--files", str(separable["files"]), "--labels", "1,0,1",
                            "--output", str(tmp_path / "o")]) == 2
    assert "3 labels for 2 files" in capsys.readouterr().err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert cli_main(base + ["--files", str(separable["files"]), "--labels", str(separable["labels"]),
                            "--output", str(blocker / "out")]) == 2
    assert "the output folder is not writable" in capsys.readouterr().err
    assert cli_main(base + ["--files", str(separable["files"]), "--output", str(tmp_path / "o2")]) == 2
    assert "training needs labels" in capsys.readouterr().err
    assert cli_main(["predict", "--artifact", str(tmp_path), "--files", str(separable["sig"]),
                     "--out", str(tmp_path / "s.root")]) == 2
    assert "not an artifact folder" in capsys.readouterr().err
