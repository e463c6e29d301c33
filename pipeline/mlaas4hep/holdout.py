"""Held-out rows: which rows of a chunk are test, validation and training rows, by a hash of
(file, entry) alone (the same rows whatever the chunking, shuffling, epoch or resume), and the
rows a run keeps on disk (``test/``, ``train_sample/``) until the final model scores them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .mix import Chunk


def row_fraction(file_index: np.ndarray, entry: np.ndarray, salt: int) -> np.ndarray:
    """A uniform number in [0, 1) per row, fixed by (file, entry, salt): which rows are held out
    never depends on chunking, shuffling or resuming."""
    with np.errstate(over="ignore"):
        h = entry.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        h ^= (file_index.astype(np.uint64) + np.uint64(1)) * np.uint64(0xBF58476D1CE4E5B9)
        h ^= np.uint64(salt & 0xFFFFFFFF) * np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
        h *= np.uint64(0xD6E8FEB86659FD93)
        h ^= h >> np.uint64(32)
    return (h >> np.uint64(11)).astype(np.float64) / float(2 ** 53)


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def sample(self) -> np.ndarray:
        """Training rows kept to compare their scores with the test rows' (about as many)."""
        return self.train & self._sample


def split_rows(chunk: Chunk, test_fraction: float, validation_split: float, seed: int) -> Split:
    return split_entries(chunk.file_index, chunk.entry, test_fraction, validation_split, seed)


def split_entries(file_index: np.ndarray, entry: np.ndarray, test_fraction: float, validation_split: float,
                  seed: int) -> Split:
    """Which rows are test, validation and training rows, by (file, entry) alone."""
    test = row_fraction(file_index, entry, seed) < test_fraction
    val = ~test & (row_fraction(file_index, entry, seed + 1) < validation_split)
    split = Split(~(test | val), val, test)
    train_share = (1.0 - test_fraction) * (1.0 - validation_split)
    sample_share = min(1.0, test_fraction / train_share) if train_share > 0 else 0.0
    split._sample = row_fraction(file_index, entry, seed + 2) < sample_share
    return split


def keep_rows(folder: Path, chunk: Chunk, keep: np.ndarray) -> None:
    """The chunk's rows ``keep`` into ``folder``: X, y (and the event weights w), one .npy each."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / f"X-{chunk.index:05d}.npy", chunk.X[keep])
    np.save(folder / f"y-{chunk.index:05d}.npy", chunk.y[keep])
    if chunk.weight is not None:
        np.save(folder / f"w-{chunk.index:05d}.npy", chunk.weight[keep])


def kept_scores(folder: Path, n_chunks: int,
                predict: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Labels and ``predict``'s scores of the rows kept in ``folder``, chunk by chunk."""
    ys, scores = [], []
    for index in range(n_chunks):
        x_path, y_path = folder / f"X-{index:05d}.npy", folder / f"y-{index:05d}.npy"
        if not x_path.exists():
            continue
        X = np.load(x_path, mmap_mode="r")
        if len(X):
            scores.append(predict(np.asarray(X)))
            ys.append(np.load(y_path))
    if not ys:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    return np.concatenate(ys), np.concatenate(scores)


def kept_weights(folder: Path, n_chunks: int) -> np.ndarray:
    """The event weights of the rows kept in ``folder``, in the order of :func:`kept_scores`."""
    out = []
    for index in range(n_chunks):
        x_path, w_path = folder / f"X-{index:05d}.npy", folder / f"w-{index:05d}.npy"
        if x_path.exists() and len(np.load(x_path, mmap_mode="r")):
            out.append(np.load(w_path))
    return np.concatenate(out) if out else np.empty(0)
