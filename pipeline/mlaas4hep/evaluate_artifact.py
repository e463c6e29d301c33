"""``mlaas4hep evaluate``: a trained artifact evaluated on ROOT files (evaluation.json).

Events of the files the model was trained on are split again exactly as training split them
(by file and entry), so their held-out events stay held out and their training events are the
train side of the overtraining check; every event of any other file is held out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import load_labels
from .errors import ConfigError
from .evaluate import class_names, evaluate
from .holdout import split_entries
from .plan import Plan
from .read import resolve_path


def evaluate_files(artifact, files: Sequence[str], labels: Sequence[str | int] | str | None = None, *,
                   threshold: float = 0.5, n_bootstrap: int = 200, progress=None) -> dict[str, Any]:
    """Evaluate a trained artifact on ROOT files.

    Events of a file the model was trained on are split again exactly as in training (by file
    and entry): its test events are the held-out ones, its training events the train sample,
    its validation events are left out, and selected events beyond the file's training quota
    count as held out. Every event of any other file is held out. ``labels``: one per file;
    without them, every file must be a training file (its training label is used).
    """
    contract = artifact.contract
    params = contract.get("params") or {}
    trained = [str(p) for p in contract["labels"]["files"]]
    training_index = {_same_file_key(p): i for i, p in enumerate(trained)}
    per_file = contract["specs"]["events"]["per_file"]
    quotas = Plan.build([int(per_file.get(p, 0)) for p in trained], int(params.get("nevts", -1)),
                        int(params.get("chunk_size", 10000))).quotas
    classes = contract["labels"].get("classes")
    n_classes = int(contract["labels"]["n_classes"])
    file_labels: list[int] = []
    if labels is None:
        for name in files:
            index = training_index.get(_same_file_key(resolve_path(str(name))))
            if index is None:
                raise ConfigError("this file was not used in training, so its label is unknown", where=str(name),
                                  hint="give --labels, one per file")
            file_labels.append(int(contract["labels"]["values"][index]))
    else:
        given = load_labels(labels, len(files))
        for value in given.values:
            name = given.classes[value] if given.classes else None
            if name is not None:
                if not classes or name not in classes:
                    raise ConfigError(f"label {name!r} is not a class of this model", where="labels",
                                      hint=f"its classes: {', '.join(classes or map(str, range(n_classes)))}")
                value = classes.index(name)
            if value >= n_classes:
                raise ConfigError(f"label {value} is not a class of this model (it has {n_classes})", where="labels")
            file_labels.append(int(value))

    test_y, test_s, train_y, train_s = [], [], [], []
    seen: dict[int, int] = {}
    for i, start, X, mask, _ in artifact.iter_files(list(files)):
        scores = artifact.adapter.predict(X)
        y = np.full(len(X), file_labels[i], np.int64)
        index = training_index.get(_same_file_key(resolve_path(str(files[i]))))
        if index is None:
            test_y.append(y), test_s.append(scores)
        else:
            entry = start + np.flatnonzero(mask)
            rank = seen.get(i, 0) + np.arange(len(entry))
            seen[i] = seen.get(i, 0) + len(entry)
            used = rank < quotas[index]
            split = split_entries(np.full(len(entry), index), entry, float(params.get("test_fraction", 0.1)),
                                  float(params.get("validation_split", 0.2)), int(params.get("seed", 0)))
            held = split.test | ~used
            test_y.append(y[held]), test_s.append(scores[held])
            train = split.train & used
            train_y.append(y[train]), train_s.append(scores[train])
        if progress:
            progress(len(mask))
    if not test_y or sum(len(a) for a in test_y) == 0:
        raise ConfigError("no held-out events to evaluate: every selected event of these files was used in "
                          "training", where=", ".join(map(str, files)), hint="evaluate on other files too")
    history = _history(artifact.path)
    result = evaluate(np.concatenate(test_y), np.concatenate(test_s),
                      np.concatenate(train_y) if train_y else None, np.concatenate(train_s) if train_s else None,
                      n_classes=n_classes, class_names=class_names(classes, n_classes), threshold=threshold,
                      history=history, n_bootstrap=n_bootstrap, seed=int(params.get("seed", 0)))
    result["files"] = [str(f) for f in files]
    return result


def _same_file_key(path: str) -> str:
    return path if "://" in path else os.path.realpath(path)


def _history(folder) -> list[dict[str, Any]]:
    try:
        return json.loads((Path(folder) / "history.json").read_text())
    except (OSError, ValueError):
        return []
