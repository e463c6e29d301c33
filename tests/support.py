"""Helpers shared by the test modules (conftest files import from here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# CI sets this so that a missing tool fails the run instead of skipping tests
REQUIRE_ALL = os.environ.get("MLAAS4HEP_REQUIRE_ALL") == "1"


def need(condition: bool, reason: str) -> None:
    """Skip when a tool is missing on a developer machine; fail in CI, where it must be there."""
    if condition:
        return
    if REQUIRE_ALL:
        pytest.fail(f"required for this run: {reason}")
    pytest.skip(reason)


def torch_model(hidden: int = 16) -> str:
    """model.py source of a small PyTorch classifier (loss and optimizer left to the defaults)."""
    return f"""from torch import nn


def model(idim):
    return nn.Sequential(nn.Linear(idim, {hidden}), nn.ReLU(), nn.Linear({hidden}, 1))
"""


def keras_model(hidden: int = 16) -> str:
    """model.py source of a small compiled Keras classifier (the original contract)."""
    return f"""import keras


def model(idim):
    net = keras.Sequential([keras.Input((idim,)), keras.layers.Dense({hidden}, activation="relu"),
                            keras.layers.Dense(1, activation="sigmoid")])
    net.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return net
"""


# a big network trained many epochs on 1200 events: overtrained on purpose (the evaluation's flag)
OVERTRAINED_MODEL = '''
import torch
from torch import nn

def model(idim):
    return nn.Sequential(nn.Linear(idim, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 1))

def optimizer(parameters):
    return torch.optim.Adam(parameters, lr=3e-3)
'''
OVERTRAINED_PARAMS = {"nevts": 1200, "chunk_size": 2000, "epochs": 25, "mode": "standard", "batch_size": 32,
                      "test_fraction": 0.4}


def write_labelled_pair(folder: Path, n_events: int, seed: int, separation: float = 1.0,
                        names: tuple[str, str] = ("sig.root", "bkg.root")) -> tuple[Path, Path]:
    """A ttH-like signal file and a background file of ``n_events`` each in ``folder``, from one seed."""
    from mlaas4hep.datagen import write_tth

    return (write_tth(folder / names[0], n_events, signal=True, seed=seed, separation=separation),
            write_tth(folder / names[1], n_events, signal=False, seed=seed, separation=separation))


def write_input_lists(folder: Path, labelled: dict[str, int]) -> dict[str, Path]:
    """files.txt and labels.txt in ``folder``: the files named (relative to it), one label each."""
    (folder / "files.txt").write_text("".join(f"{name}\n" for name in labelled))
    (folder / "labels.txt").write_text("".join(f"{label}\n" for label in labelled.values()))
    return {"files": folder / "files.txt", "labels": folder / "labels.txt"}


def use_local_jobs(mp: pytest.MonkeyPatch, job_root: Path) -> None:
    """The client of the magic and widgets: in-process jobs under ``job_root``, with no lab server,
    token or remote services taken from the developer's environment."""
    for var in ("MLAAS4HEP_LAB_URL", "MLAAS4HEP_LAB_TOKEN", "MLAAS4HEP_REMOTES"):
        mp.delenv(var, raising=False)
    mp.setenv("MLAAS4HEP_JOB_ROOT", str(job_root))


def magic_shell():
    """A real IPython InteractiveShell (history in memory) with the %mlaas4hep magic loaded."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "mlaas4hep_lab")
    return shell


def cancel_and_check(manager, job_id: str, pid: int, logged: str) -> None:
    """Cancel the running job ``job_id`` (its process ``pid``) and check what a user sees: it is
    cancelled, no process of its group is left, its last event says so, and its log shows
    ``logged`` (training went on until then) and ends with the cancellation."""
    from mlaas4hep.jobs import process

    assert process.group_members(pid)
    cancelled = manager.cancel(job_id)
    assert cancelled.status == "cancelled"
    assert process.group_members(pid) == []
    assert manager.events(job_id).events[-1]["error"] == "cancelled"
    log = manager.logs(job_id).text
    assert logged in log and log.endswith("mlaas4hep: cancelled by user\n")
