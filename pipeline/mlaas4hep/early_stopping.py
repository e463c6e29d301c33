"""params.json ``early_stopping`` (standard mode): after each epoch, track the best value of the
monitored metric (that epoch's model kept in ``best/``) and say when to stop; at the end, make the
best epoch's model the one tested and saved (``restore_best``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .adapters import ModelAdapter
from .checkpoint import RunState
from .errors import ConfigError
from .events import EventLog
from .params import Params


class EarlyStopping:
    """The early stopping of one run; its progress lives in the run's :class:`RunState`
    (``best_epoch``, ``best_value``, ``stopped_epoch``), so it resumes with the checkpoint."""

    def __init__(self, params: Params, state: RunState, adapter: ModelAdapter, best_dir: Path):
        self.params = params
        self.state = state
        self.adapter = adapter
        self.best_dir = best_dir

    def check(self) -> None:
        """Refuse, before any training, to monitor a validation metric without validation rows."""
        es = self.params.early_stopping
        if es and es["monitor"].startswith("val_") and self.params.validation_split == 0:
            raise ConfigError(f"early_stopping monitors {es['monitor']!r} but validation_split is 0, so there are "
                              "no validation rows", where=f"{self.params.source}: early_stopping.monitor",
                              hint="set validation_split (e.g. 0.2) or monitor 'loss'")

    def step(self, record: dict[str, Any]) -> bool:
        """Track the best epoch (its model kept in ``best/``); True when training should stop."""
        es = self.params.early_stopping
        if not es:
            return False
        monitor = es["monitor"]
        value = record.get(monitor)
        if value is None or not np.isfinite(value):
            known = ", ".join(k for k in record if k not in ("epoch", "chunk", "step"))
            raise ConfigError(f"early_stopping monitors {monitor!r}, which this training does not report"
                              if value is None else f"early_stopping's {monitor!r} is {value} in epoch {record['epoch']}",
                              where=f"{self.params.source}: early_stopping.monitor", hint=f"it reports: {known}")
        lower = "loss" in monitor  # losses improve downwards, accuracy and the like upwards
        best = self.state.best_value
        delta = es["min_delta"]
        if best is None or (value < best - delta if lower else value > best + delta):
            self.state.best_value, self.state.best_epoch = float(value), int(record["epoch"])
            if es["restore_best"]:
                tmp = self.best_dir.with_name(self.best_dir.name + ".part")
                shutil.rmtree(tmp, ignore_errors=True)
                self.adapter.save_checkpoint(tmp)
                shutil.rmtree(self.best_dir, ignore_errors=True)
                os.replace(tmp, self.best_dir)
            return False
        if record["epoch"] - self.state.best_epoch >= es["patience"]:
            self.state.stopped_epoch = int(record["epoch"])
            return True
        return False

    def restore_best(self, events: EventLog) -> None:
        """With restore_best, the best epoch's model becomes the one tested and saved."""
        es = self.params.early_stopping
        if not es or not es["restore_best"] or not self.state.best_epoch:
            return
        if self.state.best_epoch != self.state.epoch_done:
            self.adapter.load_checkpoint(self.best_dir)
            events.emit("log", level="info", message=(
                f"the model of epoch {self.state.best_epoch} ({es['monitor']} {self.state.best_value:.5g}) is the "
                f"artifact, not that of the last epoch ({self.state.epoch_done})"))
