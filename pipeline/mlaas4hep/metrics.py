"""Test metrics computed the same way for every framework: loss, accuracy, ROC AUC (and the
weighted AUC with event weights)."""

from __future__ import annotations

from typing import Any

import numpy as np


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve for binary labels (the Mann-Whitney U statistic, ties averaged).
    NaN when only one class is present."""
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    ranks = np.empty(score.size, dtype=np.float64)
    # average ranks over ties
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [score.size]])
    avg = (starts + ends - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def classification_metrics(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """loss (cross-entropy), accuracy, and auc for binary labels; ``scores`` are probabilities:
    shape (n,) for binary, (n, k) for k classes."""
    y = np.asarray(y).astype(np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    eps = 1e-7
    if scores.ndim == 1 or scores.shape[1] == 1:
        p = np.clip(scores.reshape(-1), eps, 1 - eps)
        loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        accuracy = float(np.mean((p >= 0.5) == (y == 1)))
        # the AUC of the scores as they are: clipping would tie the most confident ones
        return {"loss": loss, "accuracy": accuracy, "auc": roc_auc(y, scores.reshape(-1)), "events": int(y.size)}
    p = np.clip(scores, eps, 1.0)
    loss = float(-np.mean(np.log(p[np.arange(y.size), y])))
    accuracy = float(np.mean(np.argmax(scores, axis=1) == y))
    return {"loss": loss, "accuracy": accuracy, "events": int(y.size)}


def weighted_metrics(y: np.ndarray, scores: np.ndarray, weight: np.ndarray) -> dict[str, Any]:
    """The test AUC with event weights (binary labels), and the test events' Σw."""
    from .evaluate import roc_auc

    out: dict[str, Any] = {"weighted_events": float(np.sum(weight))}
    scores = np.asarray(scores)
    if scores.ndim == 1 and np.unique(y).size == 2:
        out["weighted_auc"] = float(roc_auc(np.asarray(y) == 1, scores, weight))
    return out
