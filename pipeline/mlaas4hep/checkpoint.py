"""What a run's checkpoint records besides the model (:class:`RunState`), and reading it back to
resume: only into a run of the same inputs, params, preproc and mode."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

CHECKPOINT_VERSION = 1


@dataclass
class RunState:
    """What a checkpoint records besides the model."""

    mode: str
    specs_key: str
    n_features: int
    chunk_done: int = -1  # chunk mode: last trained chunk
    epoch_done: int = 0  # standard mode: last finished epoch
    positions: list[list[int]] = field(default_factory=list)
    events_processed: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    best_epoch: int = 0  # early stopping: the epoch with the best monitored value so far
    best_value: float | None = None
    stopped_epoch: int = 0  # early stopping: the epoch after which training stopped (0: it did not)
    version: int = CHECKPOINT_VERSION


def load_state(state_file: Path, fresh: RunState) -> RunState:
    """The state in ``state_file``, which must be of a run like ``fresh`` (same specs key,
    features and mode)."""
    try:
        state = RunState(**json.loads(state_file.read_text()))
    except (ValueError, TypeError) as err:
        raise ConfigError(f"unreadable checkpoint state: {err}", where=str(state_file)) from None
    if state.specs_key != fresh.specs_key or state.n_features != fresh.n_features or state.mode != fresh.mode:
        raise ConfigError("the checkpoint is from a run with other inputs, params or preproc", where=str(state_file),
                          hint="run without --resume to start again, or restore the original inputs")
    return state
