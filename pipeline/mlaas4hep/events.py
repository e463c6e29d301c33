"""Training events: one JSON-lines schema, the only channel from a run to any UI.

Every event is a JSON object with ``event`` (its type), ``seq`` (1, 2, ... within the run) and
``time`` (Unix seconds), plus the fields of its type:

==================  ==============================================================================
``job_start``       ``name``, ``framework``, ``mode``, ``files``, ``labels``, ``params``, ``preproc``,
                    ``resumed``
``specs_done``      ``features``, ``events`` (selected), ``events_read``, ``chunks``, ``seconds``,
                    ``cached``
``chunk_start``     ``chunk``, ``epoch``, ``events`` (rows in the chunk)
``progress``        ``events_processed``, ``events_total``, ``rate`` (events/s), ``eta`` (s),
                    ``chunk``, ``epoch`` -- throttled to at most a few per second
``epoch``           ``epoch``, ``chunk``, ``loss``, ``val_loss`` and the model's metrics
                    (``accuracy``, ``val_accuracy``, ...); one per training epoch
``chunk_done``      ``chunk``, ``epoch``, ``events_processed``, ``events_total``, ``rate``,
                    ``seconds``
``checkpoint``      ``path``, ``chunk``, ``epoch``
``artifact``        ``path``
``evaluation``      the content of the artifact's ``evaluation.json`` (see :mod:`mlaas4hep.evaluate`):
                    ``roc``, ``auc``, ``score_histograms``, ``ks``, ``confusion``, ``overtraining``
``early_stop``      ``epoch`` (the last one trained), ``best_epoch``, ``monitor``, ``best``
                    (its value there), ``restored`` (the best epoch's weights are the artifact)
``finished``        ``metrics`` (test loss, accuracy, auc...), ``seconds``, ``artifact``, ``events_processed``,
                    ``rate`` (training events/s, as in ``progress``)
``failed``          ``error`` (the message), ``type`` (the error class)
``log``             ``message``, ``level``
==================  ==============================================================================

``chunk`` counts from 0; ``epoch`` from 1. Only ``progress`` events are throttled; every other
event is always delivered.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

EVENT_TYPES = (
    "job_start", "specs_done", "chunk_start", "progress", "epoch", "chunk_done", "checkpoint",
    "artifact", "evaluation", "early_stop", "finished", "failed", "log",
)

Listener = Callable[[dict[str, Any]], None]


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python numbers, NaN/inf to None (JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


json_safe = _clean


class EventLog:
    """Emits events to listeners and, optionally, appends them to a JSON-lines file.

    ``max_rate``: progress events per second at most (others are never dropped).
    ``start_seq``: continue numbering (a resumed run appends to the same file).
    """

    def __init__(self, path: str | Path | None = None, listeners: list[Listener] | None = None,
                 max_rate: float = 4.0, start_seq: int = 0):
        self.path = Path(path) if path else None
        self.listeners = list(listeners or [])
        self.min_interval = 1.0 / max_rate if max_rate > 0 else 0.0
        self.seq = start_seq
        self._last_progress = 0.0
        self._lock = threading.Lock()
        self._stream: TextIO | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = self.path.open("a", buffering=1)

    @staticmethod
    def last_seq(path: str | Path) -> int:
        """The ``seq`` of the last event in an existing events file (0 if none)."""
        last = 0
        try:
            with open(path) as stream:
                for line in stream:
                    try:
                        last = int(json.loads(line).get("seq", last))
                    except (ValueError, AttributeError):
                        continue
        except FileNotFoundError:
            return 0
        return last

    def emit(self, event: str, **fields: Any) -> dict[str, Any] | None:
        """Send one event; returns it, or None when a progress event was throttled."""
        if event not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event!r}")
        now = time.time()
        with self._lock:
            if event == "progress":
                if now - self._last_progress < self.min_interval:
                    return None
                self._last_progress = now
            self.seq += 1
            record = {"event": event, "seq": self.seq, "time": round(now, 3), **_clean(fields)}
            if self._stream is not None:
                self._stream.write(json.dumps(record) + "\n")
        for listener in self.listeners:
            listener(record)
        return record

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def read_events(path: str | Path, since: int = 0) -> list[dict[str, Any]]:
    """Events of a JSON-lines file with ``seq`` > ``since`` (a torn last line is skipped)."""
    out = []
    try:
        with open(path) as stream:
            for line in stream:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if record.get("seq", 0) > since:
                    out.append(record)
    except FileNotFoundError:
        pass
    return out
