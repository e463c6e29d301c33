"""How good is a trained classifier, and is it overtrained? (``evaluation.json``)

Computed with numpy only, from labels and scores of the held-out test events and of a sample of
the training events:

- ``roc``: ROC curve points (signal efficiency vs background efficiency; background rejection is
  ``1 - background_efficiency``, or ``1 / background_efficiency`` on a log scale), one curve for
  binary labels (class 1 against class 0), one-vs-rest curves for k classes;
- ``auc``: area under the ROC curve with a bootstrap uncertainty (standard deviation and the
  central 68% interval of the resampled AUCs);
- ``score_histograms``: the score distribution of each true class, train and test;
- ``ks``: a two-sample Kolmogorov-Smirnov test per class between its train and test scores
  (the classic overtraining check), the p-value from the Kolmogorov distribution;
- ``confusion``: the confusion matrix of the test events (rows: true class, columns: predicted)
  at a threshold on the class-1 score (binary) or by the highest score (k classes);
- ``overtraining``: a plain flag, raised when any KS p-value is below 0.05 or when val_loss rises
  (significantly, by a t-test of its slope) while loss falls over the last epochs.

Every function takes optional per-event weights; with weights, efficiencies, histograms and the
confusion matrix are sums of weights, and the KS test uses weighted distributions with the
effective numbers of events (sum w)^2 / sum w^2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .classes import evaluation_classes

EVALUATION_VERSION = 1
KS_ALPHA = 0.05


def _weights(n: int, weight: np.ndarray | None) -> np.ndarray:
    if weight is None:
        return np.ones(n, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64).reshape(-1)
    if weight.shape[0] != n:
        raise ValueError(f"{weight.shape[0]} weights for {n} events")
    return weight


# ---------------------------------------------------------------------------------------------
# ROC and AUC


class _SortedScores:
    """Scores sorted once (highest first), so that a ROC and its AUC, and every bootstrap
    replicate of them, cost a cumulative sum, not a sort."""

    def __init__(self, positive: np.ndarray, score: np.ndarray):
        score = np.asarray(score, dtype=np.float64).reshape(-1)
        positive = np.asarray(positive).astype(bool).reshape(-1)
        if positive.shape != score.shape:
            raise ValueError(f"{positive.size} labels for {score.size} scores")
        self.order = np.argsort(-score, kind="mergesort")
        self.score = score[self.order]
        self.positive = positive[self.order]
        # last index of each run of equal scores: a threshold between distinct values
        self.ends = np.r_[np.flatnonzero(np.diff(self.score)), self.score.size - 1] if score.size else \
            np.empty(0, np.int64)

    def rates(self, weight_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(false positive rate, true positive rate), starting at (0, 0); NaN where a class
        has no weight."""
        tps = np.cumsum(weight_sorted * self.positive)[self.ends]
        fps = np.cumsum(weight_sorted * ~self.positive)[self.ends]
        tps = np.r_[0.0, tps]
        fps = np.r_[0.0, fps]
        with np.errstate(invalid="ignore", divide="ignore"):
            fpr = fps / fps[-1] if fps[-1] > 0 else np.full_like(fps, np.nan)
            tpr = tps / tps[-1] if tps[-1] > 0 else np.full_like(tps, np.nan)
        return fpr, tpr


def roc_curve(positive: np.ndarray, score: np.ndarray, weight: np.ndarray | None = None,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` at every distinct score, highest first; the first point is
    (0, 0) at threshold +inf. An event counts as positive-predicted when its score >= threshold.
    (The same points as scikit-learn's ``roc_curve(..., drop_intermediate=False)``.)"""
    sorted_scores = _SortedScores(positive, score)
    fpr, tpr = sorted_scores.rates(_weights(sorted_scores.score.size, weight)[sorted_scores.order])
    thresholds = np.r_[np.inf, sorted_scores.score[sorted_scores.ends]]
    return fpr, tpr, thresholds


def auc_of_curve(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Trapezoidal area under a ROC curve (ties between classes count half)."""
    if fpr.size < 2 or np.isnan(fpr[-1]) or np.isnan(tpr[-1]):
        return float("nan")
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def roc_auc(positive: np.ndarray, score: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Area under the ROC curve; NaN when a class is missing."""
    fpr, tpr, _ = roc_curve(positive, score, weight)
    return auc_of_curve(fpr, tpr)


def bootstrap_auc(positive: np.ndarray, score: np.ndarray, weight: np.ndarray | None = None, *,
                  n_bootstrap: int = 200, seed: int = 0) -> dict[str, Any]:
    """AUC with its bootstrap spread: the events are resampled with replacement ``n_bootstrap``
    times (as multiplicities of each event, so the scores are sorted only once)."""
    sorted_scores = _SortedScores(positive, score)
    n = sorted_scores.score.size
    w = _weights(n, weight)[sorted_scores.order]
    value = auc_of_curve(*sorted_scores.rates(w))
    out: dict[str, Any] = {"value": value, "std": None, "interval68": None, "bootstrap": 0}
    if n < 2 or n_bootstrap < 2 or math.isnan(value):
        return out
    rng = np.random.default_rng(seed)
    values = np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        multiplicity = np.bincount(rng.integers(0, n, n), minlength=n)[sorted_scores.order]
        values[b] = auc_of_curve(*sorted_scores.rates(w * multiplicity))
    values = values[np.isfinite(values)]
    if values.size >= 2:
        out["std"] = float(np.std(values, ddof=1))
        out["interval68"] = [float(v) for v in np.quantile(values, [0.16, 0.84])]
        out["bootstrap"] = int(values.size)
    return out


def thin_curve(fpr: np.ndarray, tpr: np.ndarray, points: int = 100) -> np.ndarray:
    """Indices of a few hundred points that keep the curve's shape on linear and log axes:
    evenly spaced in fpr, in tpr and in log10(fpr) from 1e-5, plus both ends."""
    n = fpr.size
    if n <= 3 * points:
        return np.arange(n)
    targets = [np.searchsorted(fpr, np.linspace(0, 1, points)),
               np.searchsorted(tpr, np.linspace(0, 1, points)),
               np.searchsorted(fpr, np.logspace(-5, 0, points))]
    idx = np.unique(np.clip(np.concatenate(targets + [np.array([0, n - 1])]), 0, n - 1))
    return idx


# ---------------------------------------------------------------------------------------------
# Kolmogorov-Smirnov


def kolmogorov_sf(x: float) -> float:
    """P(K > x) of the Kolmogorov distribution: 2 sum_k (-1)^(k-1) exp(-2 k^2 x^2); for small x
    the equivalent theta series 1 - sqrt(2 pi)/x sum_k exp(-(2k-1)^2 pi^2 / (8 x^2)), which
    converges there in a few terms."""
    if not x > 0:
        return 1.0
    if x < 1.0:
        k = np.arange(1, 21)
        cdf = math.sqrt(2 * math.pi) / x * float(np.sum(np.exp(-((2 * k - 1) ** 2) * math.pi ** 2 / (8 * x * x))))
        return float(min(1.0, max(0.0, 1.0 - cdf)))
    k = np.arange(1, 101)
    terms = np.exp(-2.0 * k * k * x * x) * np.where(k % 2 == 1, 1.0, -1.0)
    return float(min(1.0, max(0.0, 2.0 * np.sum(terms))))


def _ecdf_at(values_sorted: np.ndarray, cumulative: np.ndarray, points: np.ndarray) -> np.ndarray:
    return cumulative[np.searchsorted(values_sorted, points, side="right")] / cumulative[-1]


def ks_2samp(a: np.ndarray, b: np.ndarray, weight_a: np.ndarray | None = None,
             weight_b: np.ndarray | None = None) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test: ``(D, p)``. D is the largest distance between the two
    (weighted) empirical distribution functions; p = Q_KS(lambda) with Stephens' correction
    lambda = (sqrt(n) + 0.12 + 0.11 / sqrt(n)) D, n = n_a n_b / (n_a + n_b) (effective numbers
    of events with weights)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    wa, wb = _weights(a.size, weight_a), _weights(b.size, weight_b)
    if a.size == 0 or b.size == 0 or wa.sum() <= 0 or wb.sum() <= 0:
        return float("nan"), float("nan")
    oa, ob = np.argsort(a, kind="mergesort"), np.argsort(b, kind="mergesort")
    a, wa, b, wb = a[oa], wa[oa], b[ob], wb[ob]
    ca, cb = np.r_[0.0, np.cumsum(wa)], np.r_[0.0, np.cumsum(wb)]
    points = np.concatenate([a, b])
    d = float(np.max(np.abs(_ecdf_at(a, ca, points) - _ecdf_at(b, cb, points))))
    na = wa.sum() ** 2 / np.sum(wa * wa)
    nb = wb.sum() ** 2 / np.sum(wb * wb)
    en = math.sqrt(na * nb / (na + nb))
    return d, kolmogorov_sf((en + 0.12 + 0.11 / en) * d)


# ---------------------------------------------------------------------------------------------
# histograms, confusion, overtraining


def histogram(values: np.ndarray, edges: np.ndarray, weight: np.ndarray | None = None) -> list[float]:
    """Counts (sums of weights) per bin; the last bin includes its upper edge, values outside
    [edges[0], edges[-1]] are clipped into the first and last bins."""
    values = np.clip(np.asarray(values, dtype=np.float64), edges[0], edges[-1])
    counts, _ = np.histogram(values, bins=edges, weights=weight)
    return [float(c) for c in counts]


def confusion_matrix(y: np.ndarray, predicted: np.ndarray, n_classes: int,
                     weight: np.ndarray | None = None) -> list[list[float]]:
    """matrix[true][predicted], sums of weights."""
    y = np.asarray(y).astype(np.int64).reshape(-1)
    predicted = np.asarray(predicted).astype(np.int64).reshape(-1)
    flat = np.bincount(y * n_classes + predicted, weights=_weights(y.size, weight), minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes).tolist()


#: one-sided 95% quantiles of Student's t by degrees of freedom (a window of 3 to 12 epochs)
_T95 = {1: 6.314, 2: 2.920, 3: 2.353, 4: 2.132, 5: 2.015, 6: 1.943, 7: 1.895, 8: 1.860, 9: 1.833, 10: 1.812}


def _slope(y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of y over 0, 1, 2, ... and its standard error (inf with 2 points)."""
    x = np.arange(y.size, dtype=np.float64)
    slope, intercept = np.polyfit(x, y, 1)
    if y.size <= 2:
        return float(slope), math.inf
    residual = y - (slope * x + intercept)
    se = math.sqrt(float(np.sum(residual ** 2)) / (y.size - 2) / float(np.sum((x - x.mean()) ** 2)))
    return float(slope), se


def loss_trend(history: Sequence[dict[str, Any]], window: int = 5) -> dict[str, Any] | None:
    """Slopes of loss and val_loss over the last ``window`` epochs; None with fewer than 3.

    In chunk mode (epochs with a ``chunk``) each chunk counts once, with its last epoch: epochs
    of one chunk see the same few rows. ``diverging``: loss falls while val_loss rises
    significantly: its slope is above zero by more than the one-sided 5% Student-t quantile
    times its standard error (so a noisy validation set does not raise it).
    """
    by_chunk = any(h.get("chunk") is not None for h in history)
    if by_chunk:
        last: dict[Any, dict[str, Any]] = {}
        for h in history:
            last[h.get("chunk")] = h
        history = list(last.values())
    rows = [(float(h["loss"]), float(h["val_loss"])) for h in history
            if h.get("loss") is not None and h.get("val_loss") is not None
            and math.isfinite(float(h["loss"])) and math.isfinite(float(h["val_loss"]))]
    if len(rows) < 3:
        return None
    values = np.asarray(rows[-window:])
    loss_slope, _ = _slope(values[:, 0])
    val_slope, val_se = _slope(values[:, 1])
    return {"epochs": len(values), "per": "chunk" if by_chunk else "epoch", "loss_slope": loss_slope,
            "val_loss_slope": val_slope, "val_loss_slope_error": val_se,
            "diverging": bool(loss_slope < 0 and val_slope > _T95.get(len(values) - 2, 1.645) * val_se)}


def overtraining(ks: Sequence[dict[str, Any]], history: Sequence[dict[str, Any]] | None,
                 alpha: float = KS_ALPHA) -> dict[str, Any]:
    """The plain flag: any class's KS p-value below ``alpha``, or val_loss rising while loss
    falls over the last epochs. ``reasons`` says which, in words."""
    reasons = []
    for row in ks:
        p = row.get("p_value")
        if p is not None and math.isfinite(p) and p < alpha:
            reasons.append(f"KS test train vs test for class {row['name']}: p = {p:.3g} < {alpha}")
    trend = loss_trend(history or [])
    if trend is not None and trend["diverging"]:
        per = trend["per"]
        reasons.append(f"val_loss rising ({trend['val_loss_slope']:+.3g} ± {trend['val_loss_slope_error']:.2g}/{per}) "
                       f"while loss falls ({trend['loss_slope']:+.3g}/{per}) over the last {trend['epochs']} {per}s")
    return {"flag": bool(reasons), "reasons": reasons, "ks_alpha": alpha, "loss_trend": trend}


# ---------------------------------------------------------------------------------------------
# all of it


def class_names(classes: Sequence[str] | None, n_classes: int) -> list[str]:
    """The names of the classes (labels given as names), else their numbers."""
    if classes and len(classes) == n_classes:
        return [str(c) for c in classes]
    return [str(c) for c in range(n_classes)]


def _class_scores(scores: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, k) probabilities from (n,) class-1 scores or (n, k)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1 or scores.shape[1] == 1:
        p1 = scores.reshape(-1)
        return np.stack([1.0 - p1, p1], axis=1)
    if scores.shape[1] != n_classes:
        raise ValueError(f"scores have {scores.shape[1]} columns for {n_classes} classes")
    return scores


def evaluate(y_test: np.ndarray, scores_test: np.ndarray, y_train: np.ndarray | None = None,
             scores_train: np.ndarray | None = None, *, weight_test: np.ndarray | None = None,
             weight_train: np.ndarray | None = None, class_names: Sequence[str] | None = None,
             n_classes: int | None = None, threshold: float = 0.5,
             history: Sequence[dict[str, Any]] | None = None, n_bootstrap: int = 200, seed: int = 0,
             bins: int = 40) -> dict[str, Any]:
    """The evaluation of one model (the content of ``evaluation.json``).

    ``scores_*``: probabilities, shape (n,) (of class 1) for binary labels or (n, k). Without a
    training sample (``y_train``/``scores_train``) the train histograms and the KS test are
    left out.
    """
    y_test = np.asarray(y_test).astype(np.int64).reshape(-1)
    k = n_classes or (2 if np.asarray(scores_test).ndim == 1 else np.asarray(scores_test).shape[1])
    k = max(2, int(k))
    names = [str(c) for c in (class_names or range(k))]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for {k} classes")
    binary = k == 2
    p_test = _class_scores(scores_test, k)
    if p_test.shape[0] != y_test.size:
        raise ValueError(f"{p_test.shape[0]} scores for {y_test.size} labels")
    w_test = _weights(y_test.size, weight_test)
    has_train = y_train is not None and scores_train is not None and np.asarray(y_train).size > 0
    if has_train:
        y_train = np.asarray(y_train).astype(np.int64).reshape(-1)
        p_train = _class_scores(scores_train, k)
        w_train = _weights(y_train.size, weight_train)

    # ROC and AUC: class 1 vs 0, or each class vs the rest
    roc, per_class = [], []
    for c in ([1] if binary else range(k)):
        positive = y_test == c
        fpr, tpr, thresholds = roc_curve(positive, p_test[:, c], w_test)
        keep = thin_curve(fpr, tpr)
        boot = bootstrap_auc(positive, p_test[:, c], w_test, n_bootstrap=n_bootstrap, seed=seed + c)
        roc.append({"class": c, "name": names[c], "signal_efficiency": tpr[keep].tolist(),
                    "background_efficiency": fpr[keep].tolist(), "thresholds": thresholds[keep].tolist(),
                    "auc": boot["value"]})
        per_class.append({"class": c, "name": names[c], **boot})
    if binary:
        auc = dict(per_class[0])
        auc.pop("class"), auc.pop("name")
    else:
        values = [row["value"] for row in per_class]
        stds = [row["std"] for row in per_class]
        auc = {"value": float(np.mean(values)), "average": "macro (mean of one-vs-rest)",
               "std": float(np.sqrt(np.sum(np.square(stds)))) / k if all(s is not None for s in stds) else None,
               "interval68": None, "bootstrap": min(row["bootstrap"] for row in per_class)}
    auc["per_class"] = per_class

    # score distributions per true class: the class-1 score (binary), the own class's score (k)
    edges = np.linspace(0.0, 1.0, bins + 1)
    hist_rows, ks_rows = [], []
    for c in range(k):
        column = 1 if binary else c
        test_scores = p_test[y_test == c, column]
        row = {"class": c, "name": names[c], "score_of": names[column],
               "test": histogram(test_scores, edges, w_test[y_test == c]), "n_test": int(test_scores.size),
               "train": None, "n_train": 0}
        if has_train:
            train_scores = p_train[y_train == c, column]
            row["train"] = histogram(train_scores, edges, w_train[y_train == c])
            row["n_train"] = int(train_scores.size)
            d, p = ks_2samp(train_scores, test_scores, w_train[y_train == c], w_test[y_test == c])
            ks_rows.append({"class": c, "name": names[c], "statistic": d, "p_value": p,
                            "n_train": int(train_scores.size), "n_test": int(test_scores.size)})
        hist_rows.append(row)

    if binary:
        predicted = (p_test[:, 1] >= threshold).astype(np.int64)
        confusion = {"threshold": threshold, "rule": f"class 1 when its score >= {threshold}"}
    else:
        predicted = np.argmax(p_test, axis=1)
        confusion = {"threshold": None, "rule": "the class with the highest score"}
    confusion.update({"classes": names, "matrix": confusion_matrix(y_test, predicted, k, w_test)})

    return {
        "version": EVALUATION_VERSION,
        "n_classes": k,
        "classes": names,
        **evaluation_classes(names),  # each class's view name, role and colour; what the score means
        "events": {"test": int(y_test.size), "train_sample": int(y_train.size) if has_train else 0},
        "weighted": weight_test is not None or weight_train is not None,
        "roc": roc,
        "auc": auc,
        "score_histograms": {"edges": edges.tolist(), "classes": hist_rows},
        "ks": ks_rows,
        "confusion": confusion,
        "overtraining": overtraining(ks_rows, history),
    }


def summary(evaluation: dict[str, Any]) -> dict[str, Any]:
    """A few numbers of an evaluation, for tables and events."""
    ks = evaluation.get("ks") or []
    return {"auc": evaluation["auc"]["value"], "auc_std": evaluation["auc"].get("std"),
            "ks_p_min": min((r["p_value"] for r in ks if r["p_value"] is not None), default=None),
            "overtraining": evaluation["overtraining"]["flag"]}
