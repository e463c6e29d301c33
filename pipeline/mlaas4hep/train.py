"""Model-agnostic training over a :class:`~mlaas4hep.Dataset`, chunk by chunk.

Two modes (params ``mode``):

- ``chunk`` (the original MLaaS4HEP): each chunk is trained for ``epochs`` epochs, then the next
  one; one pass over the data. A checkpoint after each chunk.
- ``standard``: ``epochs`` passes over the whole dataset, one epoch per chunk per pass. With
  ``cache: true`` the dataset's row store (the selected events of the first pass) stays on
  local disk, so later epochs never read ROOT again. A checkpoint after each epoch.

Rows are held out by a hash of (file, entry): ``test_fraction`` of all events for the final test
metrics (the same events whatever the chunking, epoch or resume), and ``validation_split`` of
the rest of each chunk for val_loss and the val metrics (:mod:`mlaas4hep.holdout`). The next
chunk is read and tensorized in the background while the current one trains. A checkpoint's state
is :mod:`mlaas4hep.checkpoint`'s, early stopping :mod:`mlaas4hep.early_stopping`'s.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .adapters import ModelAdapter, make_adapter
from .checkpoint import CHECKPOINT_VERSION, RunState, load_state
from .dataset import Dataset
from .early_stopping import EarlyStopping
from .errors import ConfigError, MLaaS4HEPError
from .evaluate import class_names, evaluate
from .events import EventLog, Listener, json_safe
from .holdout import Split, keep_rows, kept_scores, kept_weights, row_fraction, split_entries, split_rows
from .metrics import classification_metrics, weighted_metrics
from .mix import Chunk, StreamPosition
from .specs import write_json_atomic

# the names this module has always offered, whose homes are now holdout, checkpoint and metrics
__all__ = ["CHECKPOINT_VERSION", "RunState", "Split", "Trainer", "row_fraction", "split_entries", "split_rows",
           "train", "weighted_metrics"]


class Trainer:
    """One training run: inputs, model.py, and an output folder.

    The output folder holds ``events.jsonl``, ``specs.json``, ``checkpoint/``, ``test/`` (held-out
    rows) and the artifact folder (``fout``).
    """

    def __init__(self, dataset: Dataset, model: str | os.PathLike, output: str | os.PathLike = "mlaas4hep-output",
                 *, fout: str = "artifact", name: str | None = None, on_event: Listener | None = None,
                 resume: bool = False):
        self.ds = dataset
        self.params = dataset.params
        self.model_path = Path(model)
        self.output = Path(output)
        self.fout = _artifact_folder_name(fout)
        self.name = name or self.output.name
        self.resume = resume
        self.listeners = [on_event] if on_event else []
        if self.ds.labels is None:
            raise ConfigError("training needs labels: give one label per file (labels.txt or --labels)")
        if not self.model_path.exists():
            raise ConfigError("model file not found", where=str(self.model_path))
        self._prepare_output()
        self.checkpoint_dir = self.output / "checkpoint"
        self.test_dir = self.output / "test"
        self.sample_dir = self.output / "train_sample"
        self.cache_dir = self.output / "cache"  # chunks cached by earlier versions: removed on a fresh run
        self.best_dir = self.output / "best"
        start_seq = EventLog.last_seq(self.output / "events.jsonl") if resume else 0
        if not resume:
            (self.output / "events.jsonl").unlink(missing_ok=True)
        self.events = EventLog(self.output / "events.jsonl", self.listeners, start_seq=start_seq)
        self.adapter: ModelAdapter | None = None
        self.state: RunState | None = None
        self._start = time.monotonic()
        self._rate = _Rate(0)  # training events per second, the one rate every UI shows

    def _prepare_output(self) -> None:
        try:
            self.output.mkdir(parents=True, exist_ok=True)
            probe = self.output / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as err:
            raise ConfigError(f"the output folder is not writable: {err.strerror or err}", where=str(self.output)) from None

    # -- the run ------------------------------------------------------------------------------

    def run(self):
        from .artifact import write_artifact

        try:
            self.events.emit("job_start", name=self.name, mode=self.params.mode, files=self.ds.paths,
                             labels=list(self.ds.labels.values), params=self.params.to_dict(),
                             preproc=self.ds.preproc.to_dict() if self.ds.preproc else None,
                             model=str(self.model_path), resumed=self.resume)
            specs = self._specs()
            idim = len(self.ds.feature_names)
            self.adapter = make_adapter(self.model_path, idim, self.ds.labels.n_classes, self.params.seed)
            self.state = self._initial_state(specs)
            if self.params.mode == "chunk":
                self._train_chunks()
            else:
                stopping = EarlyStopping(self.params, self.state, self.adapter, self.best_dir)
                stopping.check()
                self._train_epochs(stopping)
                stopping.restore_best(self.events)
            y_test, scores_test = self._held_out(self.test_dir)
            metrics = classification_metrics(y_test, scores_test) if y_test.size else {"events": 0}
            weight_test = self._held_out_weights(self.test_dir)
            if weight_test is not None and y_test.size:
                metrics.update(weighted_metrics(y_test, scores_test, weight_test))
            self.state.seconds += time.monotonic() - self._start
            artifact = write_artifact(self.output / self.fout, self.adapter, self.ds, metrics, self.state.history,
                                      training=self._training_summary())
            if y_test.size:
                self._evaluate(artifact.path, y_test, scores_test)
            self.events.emit("artifact", path=str(artifact.path))
            processed = self.state.events_processed
            self.events.emit("finished", metrics=metrics, seconds=round(self.state.seconds, 3),
                             artifact=str(artifact.path), framework=self.adapter.framework,
                             events_processed=processed, rate=round(self._rate.of(processed), 1))
            return artifact
        except MLaaS4HEPError as err:
            self.events.emit("failed", error=str(err), type=type(err).__name__)
            raise
        except KeyboardInterrupt:
            self.events.emit("failed", error="interrupted", type="KeyboardInterrupt")
            raise
        except Exception as err:
            self.events.emit("failed", error=f"{type(err).__name__}: {err}", type=type(err).__name__)
            raise
        finally:
            self.events.close()

    def _specs(self) -> dict[str, Any]:
        start = time.monotonic()
        cached = self.ds._specs is not None  # noqa: SLF001 - already computed by the caller
        specs = self.ds.specs()
        write_json_atomic(self.output / "specs.json", {k: v for k, v in specs.items() if k != "cache_key"}, indent=2)
        plan = self.ds.plan()
        for level, message in self.ds.selection.notes:
            self.events.emit("log", level=level, message=message)
        self.events.emit("specs_done", features=len(self.ds.feature_names), events=specs["events"]["total"],
                         events_read=specs["events_read"]["total"], used=plan.total, chunks=plan.n_chunks,
                         seconds=round(time.monotonic() - start, 3), cached=cached)
        for message in self.ds.warnings:
            self.events.emit("log", level="warning", message=message)
        if plan.total == 0:
            raise ConfigError("no events pass the preproc cuts: nothing to train on",
                              where=self.ds.preproc.source if self.ds.preproc else "files")
        return specs

    def _initial_state(self, specs: dict[str, Any]) -> RunState:
        fresh = RunState(self.params.mode, specs["cache_key"], len(self.ds.feature_names))
        state_file = self.checkpoint_dir / "state.json"
        if not self.resume:
            for folder in (self.checkpoint_dir, self.test_dir, self.sample_dir, self.cache_dir, self.best_dir):
                shutil.rmtree(folder, ignore_errors=True)
            return fresh
        if not state_file.exists():
            self.events.emit("log", level="warning", message=f"no checkpoint in {self.checkpoint_dir}; starting from the beginning")
            return fresh
        state = load_state(state_file, fresh)
        self.adapter.load_checkpoint(self.checkpoint_dir)
        self.events.emit("log", level="info", message=(
            f"resuming after chunk {state.chunk_done}" if state.mode == "chunk" else f"resuming after epoch {state.epoch_done}"))
        return state

    def _checkpoint(self, chunk: int, epoch: int) -> None:
        tmp = self.output / "checkpoint.part"
        shutil.rmtree(tmp, ignore_errors=True)
        self.adapter.save_checkpoint(tmp)
        self.state.seconds += time.monotonic() - self._start
        self._start = time.monotonic()
        write_json_atomic(tmp / "state.json", self.state.__dict__)
        old = self.output / "checkpoint.old"
        shutil.rmtree(old, ignore_errors=True)
        if self.checkpoint_dir.exists():
            os.replace(self.checkpoint_dir, old)
        os.replace(tmp, self.checkpoint_dir)
        shutil.rmtree(old, ignore_errors=True)
        self.events.emit("checkpoint", path=str(self.checkpoint_dir), chunk=chunk, epoch=epoch)

    # -- chunk mode ---------------------------------------------------------------------------

    def _train_chunks(self) -> None:
        p = self.params
        total = self.ds.plan().total
        first = self.state.chunk_done + 1
        resume = (first, [StreamPosition(*pos) for pos in self.state.positions]) if first > 0 else None
        rate = self._rate = _Rate(self.state.events_processed)
        for chunk in self.ds.iter_chunks(resume=resume):
            self.events.emit("chunk_start", chunk=chunk.index, epoch=1, events=len(chunk))
            rows = split_rows(chunk, p.test_fraction, p.validation_split, p.seed)
            self._keep_test_rows(chunk, rows)
            validation = (chunk.X[rows.val], chunk.y[rows.val]) if rows.val.any() else None
            started = time.monotonic()
            self.adapter.fit(chunk.X[rows.train], chunk.y[rows.train], epochs=p.epochs, batch_size=p.batch_size,
                             validation=validation, on_epoch=self._epoch_recorder(chunk.index, len(chunk), rate, total),
                             **_weights_of(chunk, rows.train))
            self.state.events_processed += len(chunk)
            self.state.chunk_done = chunk.index
            self.state.positions = [[pos.next_entry, pos.taken] for pos in chunk.positions]
            self.events.emit("chunk_done", chunk=chunk.index, epoch=p.epochs, events_processed=self.state.events_processed,
                             events_total=total, rate=round(rate.of(self.state.events_processed), 1),
                             seconds=round(time.monotonic() - started, 3))
            self.events.emit("progress", chunk=chunk.index, epoch=p.epochs, events_processed=self.state.events_processed,
                             events_total=total, rate=round(rate.of(self.state.events_processed), 1),
                             eta=round(rate.eta(self.state.events_processed, total), 1))
            self._checkpoint(chunk.index, p.epochs)

    def _epoch_recorder(self, chunk: int, events: int, rate: _Rate, total: int) -> Callable[[dict[str, float]], None]:
        """The per-epoch callback of one chunk's training: history, an ``epoch`` event, and a
        ``progress`` event that counts the chunk's epochs done as their share of its events (so
        every UI shows the same progress within a chunk, from the same numbers)."""
        epochs = itertools.count(1)

        def record(metrics: dict[str, float]) -> None:
            epoch = next(epochs)
            entry = {"epoch": epoch, "chunk": chunk, "step": chunk * self.params.epochs + epoch, **metrics}
            self.state.history.append(entry)
            self.events.emit("epoch", **entry)
            if epoch < self.params.epochs:  # the last epoch's share comes with chunk_done
                processed = self.state.events_processed + events * epoch // self.params.epochs
                self.events.emit("progress", chunk=chunk, epoch=epoch, events_processed=processed, events_total=total,
                                 rate=round(rate.of(processed), 1), eta=round(rate.eta(processed, total), 1))

        return record

    # -- standard mode ------------------------------------------------------------------------

    def _train_epochs(self, stopping: EarlyStopping) -> None:
        p = self.params
        total = self.ds.plan().total
        rate = self._rate = _Rate(self.state.events_processed)
        for epoch in range(self.state.epoch_done + 1, p.epochs + 1):
            if self.state.stopped_epoch:
                break
            sums: dict[str, float] = {}
            weights: dict[str, int] = {}
            done = 0
            for chunk in self._epoch_chunks(epoch):
                self.events.emit("chunk_start", chunk=chunk.index, epoch=epoch, events=len(chunk))
                rows = split_rows(chunk, p.test_fraction, p.validation_split, p.seed)
                if epoch == 1:
                    self._keep_test_rows(chunk, rows)
                validation = (chunk.X[rows.val], chunk.y[rows.val]) if rows.val.any() else None
                started = time.monotonic()
                (metrics,) = self.adapter.fit(chunk.X[rows.train], chunk.y[rows.train], epochs=1,
                                              batch_size=p.batch_size, validation=validation,
                                              **_weights_of(chunk, rows.train))
                for key, value in metrics.items():
                    n = int(rows.val.sum()) if key.startswith("val_") else int(rows.train.sum())
                    sums[key] = sums.get(key, 0.0) + value * n
                    weights[key] = weights.get(key, 0) + n
                done += len(chunk)
                processed = self.state.events_processed + done
                self.events.emit("chunk_done", chunk=chunk.index, epoch=epoch, events_processed=processed,
                                 events_total=total * p.epochs, rate=round(rate.of(processed), 1),
                                 seconds=round(time.monotonic() - started, 3), loss=metrics.get("loss"))
                self.events.emit("progress", chunk=chunk.index, epoch=epoch, events_processed=processed,
                                 events_total=total * p.epochs, rate=round(rate.of(processed), 1),
                                 eta=round(rate.eta(processed, total * p.epochs), 1))
            record = {"epoch": epoch, "chunk": None, "step": epoch,
                      **{k: sums[k] / weights[k] for k in sums if weights[k]}}
            self.state.history.append(record)
            self.events.emit("epoch", **record)
            self.state.events_processed += done
            self.state.epoch_done = epoch
            stop = stopping.step(record)
            self._checkpoint(-1, epoch)
            if stop:
                es = p.early_stopping
                self.events.emit("early_stop", epoch=epoch, best_epoch=self.state.best_epoch, monitor=es["monitor"],
                                 best=self.state.best_value, patience=es["patience"], restored=es["restore_best"])
                break

    def _training_summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {"mode": self.params.mode, "epochs_trained": self.state.epoch_done
                                   if self.params.mode == "standard" else self.params.epochs,
                                   "events_processed": self.state.events_processed}
        es = self.params.early_stopping
        if es:
            summary["early_stopping"] = {**es, "best_epoch": self.state.best_epoch, "best": self.state.best_value,
                                         "stopped_epoch": self.state.stopped_epoch or None}
        return summary

    def _epoch_chunks(self, epoch: int) -> Iterator[Chunk]:
        """Every epoch mixes afresh (seed + epoch). The first pass over ROOT keeps the selected
        rows in the dataset's row store; with ``cache: true`` the store stays, so later epochs
        (and later runs on the same inputs) never read ROOT again."""
        yield from self.ds.iter_chunks(seed=self.params.seed + epoch)

    # -- test metrics -------------------------------------------------------------------------

    def _keep_test_rows(self, chunk: Chunk, rows: Split) -> None:
        keep_rows(self.test_dir, chunk, rows.test)
        keep_rows(self.sample_dir, chunk, rows.sample)

    def _held_out_weights(self, folder: Path) -> np.ndarray | None:
        """The event weights of the rows kept in ``folder``, in the order of :meth:`_held_out`;
        None without params.json ``weight``."""
        if not self.ds.selection.weighted:
            return None
        return kept_weights(folder, self.ds.plan().n_chunks)

    def _held_out(self, folder: Path) -> tuple[np.ndarray, np.ndarray]:
        """Labels and the final model's scores of the rows kept in ``folder``."""
        return kept_scores(folder, self.ds.plan().n_chunks, self.adapter.predict)

    def _evaluate(self, artifact: Path, y_test: np.ndarray, scores_test: np.ndarray) -> None:
        """``evaluation.json`` in the artifact (test rows against the training sample) and an
        ``evaluation`` event with the same content."""
        y_train, scores_train = self._held_out(self.sample_dir)
        result = evaluate(y_test, scores_test, y_train, scores_train, n_classes=self.adapter.n_classes,
                          weight_test=self._held_out_weights(self.test_dir),
                          weight_train=self._held_out_weights(self.sample_dir),
                          class_names=class_names(self.ds.labels.classes, self.adapter.n_classes),
                          history=self.state.history, seed=self.params.seed)
        write_json_atomic(artifact / "evaluation.json", json_safe(result), indent=1)
        self.events.emit("evaluation", **result)


def _weights_of(chunk: Chunk, rows: np.ndarray) -> dict[str, Any]:
    """``sample_weight`` for the adapter's fit when the chunk carries event weights."""
    return {} if chunk.weight is None else {"sample_weight": chunk.weight[rows]}


class _Rate:
    def __init__(self, already: int):
        self.start = time.monotonic()
        self.already = already

    def of(self, processed: int) -> float:
        elapsed = time.monotonic() - self.start
        return (processed - self.already) / elapsed if elapsed > 0 else 0.0

    def eta(self, processed: int, total: int) -> float:
        rate = self.of(processed)
        return (total - processed) / rate if rate > 0 else 0.0


#: What a run keeps in its output folder; the artifact folder cannot take one of these names
_RESERVED = {"checkpoint", "checkpoint.part", "checkpoint.old", "test", "train_sample", "cache", "best",
             "events.jsonl", "specs.json", "store"}


def _artifact_folder_name(fout: str) -> str:
    """The artifact's folder is a plain name inside the output folder (``--fout``)."""
    if not isinstance(fout, str) or not fout.strip() or fout in (".", "..") or "/" in fout or os.sep in fout:
        raise ConfigError(f"the artifact folder must be a plain name inside the output folder, got {fout!r}",
                          where="--fout", hint="e.g. --fout artifact; choose where with --output")
    if fout in _RESERVED:
        raise ConfigError(f"{fout!r} is a name the run uses for its own files", where="--fout",
                          hint="e.g. --fout artifact")
    return fout


def train(dataset: Dataset, model: str | os.PathLike = "model.py", *, output: str | os.PathLike = "mlaas4hep-output",
          fout: str = "artifact", on_event: Callable[[dict[str, Any]], None] | None = None, resume: bool = False,
          name: str | None = None):
    """Train model.py's model on the dataset; returns the :class:`~mlaas4hep.artifact.Artifact`.

    ``on_event`` receives every event (see :mod:`mlaas4hep.events`); they are also written to
    ``output/events.jsonl``.
    """
    return Trainer(dataset, model, output, fout=fout, name=name, on_event=on_event, resume=resume).run()
