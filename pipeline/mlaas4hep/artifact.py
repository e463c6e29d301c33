"""A trained model and its feature contract, in one folder.

::

    artifact/
      mlaas4hep.json    the contract: feature names, specs (min/max/jdim), preproc, branches, tree,
                        identifiers, labels, framework, test metrics, library versions
      history.json      metrics per epoch
      model.keras       Keras: the model (and saved_model/, a TensorFlow SavedModel for serving)
      model.pt          PyTorch: the state dict (and model.ts, TorchScript, when it could be made)

:meth:`Artifact.predict` applies exactly the training preprocessing (new branches, cuts, padding,
normalisation with the training specs) to raw branch arrays or ROOT files before the model.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from ._version import __version__
from .adapters import ModelAdapter, adapter_class, load_model_module
from .config import FLAT, JAGGED, load_preproc
from .errors import ConfigError, DataError, did_you_mean
from .preproc import Preprocessor
from .read import RootFile, resolve_path
from .specs import write_json_atomic
from .tensorize import FeatureLayout, Tensorizer

FORMAT = "mlaas4hep-artifact"
FORMAT_VERSION = 1


def write_artifact(folder: Path, adapter: ModelAdapter, ds, metrics: dict[str, Any],
                   history: list[dict[str, Any]], training: dict[str, Any] | None = None) -> Artifact:
    """Save the model and its contract into ``folder`` (replaced if it exists). ``training``:
    how the run went (epochs trained, early stopping), recorded as is."""
    import uproot

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model_info = adapter.save(folder)
    layout = ds.layout
    specs = ds.specs()
    selection = ds.selection
    contract = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "framework": adapter.framework,
        "model": model_info,
        "features": layout.names,
        "n_features": layout.n_features,
        # the normalisation used in training (a given --specs file's, or the computed one)
        "layout": {"flat": layout.flat, "jagged": layout.jagged, "jdim": layout.jdim, "masks": layout.masks,
                   "nan": layout.nan_value, "minv": layout.minv, "maxv": layout.maxv},
        "specs": {k: specs[k] for k in ("fkeys", "jkeys", "jdim", "minv", "maxv", "nans", "events", "events_read",
                                        "dtypes", "skipped")},
        "preproc": ds.preproc.to_dict(),
        "branches": selection.read,
        "paths": {n: ds.files[0].branches[n].path for n in selection.read},  # full path in the tree
        "kinds": {n: selection.kinds[n] for n in selection.read if n in selection.kinds},
        "tree": ds.params.branch,
        "identifier": list(selection.identifiers),
        "labels": {"values": list(ds.labels.values), "classes": list(ds.labels.classes or []) or None,
                   "files": ds.paths, "n_classes": adapter.n_classes},
        "metrics": metrics,
        "params": ds.params.to_dict(),
        "training": training,
        "versions": {"mlaas4hep": __version__, "uproot": uproot.__version__, "awkward": ak.__version__,
                     "numpy": np.__version__, "python": platform.python_version(), **adapter.versions()},
    }
    write_json_atomic(folder / "mlaas4hep.json", contract, indent=2)
    write_json_atomic(folder / "history.json", history, indent=2)
    return Artifact(folder, contract, adapter)


class Artifact:
    """A trained model with its feature contract. ``Artifact.load(path)`` to read one."""

    def __init__(self, path: Path, contract: dict[str, Any], adapter: ModelAdapter | None = None,
                 model_source: str | None = None):
        self.path = Path(path)
        self.contract = contract
        self._adapter = adapter
        self._model_source = model_source
        self.layout = FeatureLayout(
            list(contract["layout"]["flat"]), list(contract["layout"]["jagged"]),
            {k: int(v) for k, v in contract["layout"]["jdim"].items()},
            dict(contract["layout"].get("minv", contract["specs"]["minv"])),
            dict(contract["layout"].get("maxv", contract["specs"]["maxv"])), bool(contract["layout"]["masks"]),
            float(contract["layout"].get("nan", 0.0)),
        )
        self.preproc = load_preproc(contract["preproc"] or None)

    @classmethod
    def load(cls, path: str | os.PathLike, model: str | os.PathLike | None = None) -> Artifact:
        """Read an artifact folder. ``model``: the model.py, needed only for a PyTorch model
        without a TorchScript export, or a Keras model with custom layers."""
        path = Path(path)
        meta = path / "mlaas4hep.json"
        if not meta.exists():
            raise ConfigError("not an artifact folder (no mlaas4hep.json in it)", where=str(path))
        try:
            contract = json.loads(meta.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(f"mlaas4hep.json is not valid JSON: {err.msg}", where=str(meta)) from None
        if contract.get("format") != FORMAT:
            raise ConfigError(f"unknown artifact format {contract.get('format')!r}", where=str(meta))
        return cls(path, contract, model_source=str(model) if model else None)

    # -- what it is ---------------------------------------------------------------------------

    @property
    def adapter(self) -> ModelAdapter:
        if self._adapter is None:
            module = load_model_module(self._model_source) if self._model_source else None
            self._adapter = adapter_class(self.framework).load(self.path, self.contract["model"], module=module)
        return self._adapter

    @property
    def framework(self) -> str:
        return self.contract["framework"]

    @property
    def feature_names(self) -> list[str]:
        return list(self.contract["features"])

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.contract.get("metrics") or {})

    @property
    def tree(self) -> str:
        return self.contract["tree"]

    @property
    def identifiers(self) -> list[str]:
        return list(self.contract.get("identifier") or [])

    @property
    def n_classes(self) -> int:
        return int(self.contract["labels"]["n_classes"])

    def __repr__(self) -> str:
        return f"Artifact({str(self.path)!r}, {self.framework}, {len(self.feature_names)} features)"

    # -- predictions --------------------------------------------------------------------------

    def features(self, arrays: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Feature rows of the events that pass the cuts, and the pass mask over all events."""
        arrays = {k: (v if isinstance(v, ak.Array) and v.ndim > 1 else np.asarray(v)) for k, v in arrays.items()}
        kinds = {k: (JAGGED if isinstance(v, ak.Array) else FLAT) for k, v in arrays.items()}
        needed = [b for b in self.contract["branches"]]
        missing = [b for b in needed if b not in arrays]
        if missing:
            raise ConfigError(f"the model needs branch {missing[0]!r}, which is not in the input",
                              where=str(self.path), hint=did_you_mean(missing[0], arrays) or
                              f"it needs {', '.join(needed)}")
        for name in needed:
            if kinds[name] != self.contract["kinds"].get(name, kinds[name]):
                raise ConfigError(f"branch {name!r} was {self.contract['kinds'][name]} in training but is "
                                  f"{kinds[name]} in the input", where=str(self.path))
        pre = Preprocessor(self.preproc, {n: self.contract["kinds"].get(n, kinds[n]) for n in arrays}) \
            if self.preproc else None
        env, mask = pre.apply(arrays) if pre else (arrays, None)
        n = len(next(iter(arrays.values())))
        mask = np.ones(n, dtype=bool) if mask is None else mask
        selected = {k: env[k][mask] for k in self.layout.flat + self.layout.jagged}
        X = np.zeros((int(mask.sum()), self.layout.n_features), np.float32)
        Tensorizer(self.layout).fill(X, slice(0, len(X)), selected)
        return X, mask

    def predict(self, data: Mapping[str, Any] | str | os.PathLike | Sequence[str], *, failed: str = "nan",
                batch_size: int = 4096) -> np.ndarray:
        """Scores (probability of class 1; one column per class for several classes).

        ``data``: a mapping of branch name to array (numpy for flat, awkward for jagged) or one or
        more ROOT files (read in chunks). Events that fail the preproc cuts get NaN
        (``failed="nan"``) or are left out (``failed="omit"``).
        """
        if failed not in ("nan", "omit"):
            raise ConfigError(f"failed must be 'nan' or 'omit', got {failed!r}")
        if isinstance(data, Mapping):
            X, mask = self.features(data)
            return self._expand(self.adapter.predict(X, batch_size), mask, failed)
        parts = [self._expand(self.adapter.predict(X, batch_size), mask, failed)
                 for _, _, X, mask, _ in self.iter_files(data)]
        if not parts:
            return np.empty((0,) if self.n_classes <= 2 else (0, self.n_classes), np.float32)
        return np.concatenate(parts)

    def _expand(self, scores: np.ndarray, mask: np.ndarray, failed: str) -> np.ndarray:
        if failed == "omit":
            return scores
        out = np.full((len(mask),) + scores.shape[1:], np.nan, dtype=np.float32)
        out[mask] = scores
        return out

    def iter_files(self, files: str | os.PathLike | Sequence[str], step: int = 50_000,
                   ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray, dict[str, np.ndarray]]]:
        """``(file index, first entry, X, pass mask, identifiers)`` per block of each file."""
        paths = [files] if isinstance(files, (str, os.PathLike)) else list(files)
        read = list(dict.fromkeys(self.contract["branches"] + self.identifiers))
        for i, name in enumerate(paths):
            with RootFile(resolve_path(os.fspath(name)), self.tree) as rfile:
                rfile.check_branches(read, "needed by the model")
                for start, _, arrays in rfile.iterate(read, step=step):
                    X, mask = self.features({b: arrays[b] for b in self.contract["branches"]})
                    yield i, start, X, mask, {k: np.asarray(arrays[k]) for k in self.identifiers}

    def score_files(self, files: str | os.PathLike | Sequence[str], out: str | os.PathLike, *,
                    branch: str = "score", failed: str = "sentinel", sentinel: float = -1.0,
                    step: int = 50_000, progress=None) -> dict[str, int]:
        """Write ``out``: a ROOT file with a tree named like the input's, holding the identifier
        branches and the score of every event, in input order.

        ``failed="sentinel"``: events that fail the cuts get ``sentinel`` (every entry is kept, so
        the tree works as a friend of the input). ``failed="omit"``: they are left out, and an
        ``entry`` branch says which input entry each row is.
        """
        import uproot

        if failed not in ("sentinel", "omit"):
            raise ConfigError(f"failed must be 'sentinel' or 'omit', got {failed!r}")
        out = Path(out)
        if not out.parent.exists():
            raise ConfigError(f"cannot write the scores: folder {out.parent} does not exist", where=str(out))
        names = [branch] if self.n_classes <= 2 else [f"{branch}_{c}" for c in range(self.n_classes)]
        tmp = out.with_name(out.name + ".part")
        counts = {"events": 0, "scored": 0, "failed_cuts": 0}
        try:
            with uproot.recreate(tmp) as rout:
                tree = None
                for i, start, X, mask, ids in self.iter_files(files, step):
                    scores = self.adapter.predict(X).astype(np.float32)
                    scores = scores.reshape(len(X), -1)
                    keep = mask if failed == "omit" else np.ones(len(mask), bool)
                    columns: dict[str, np.ndarray] = {k: v[keep] for k, v in ids.items()}
                    if failed == "omit":
                        columns["file"] = np.full(int(keep.sum()), i, np.int32)
                        columns["entry"] = (start + np.flatnonzero(mask)).astype(np.int64)
                    for c, name in enumerate(names):
                        full = np.full(len(mask), sentinel, np.float32)
                        full[mask] = scores[:, c]
                        columns[name] = full[keep]
                    if tree is None:
                        tree = rout.mktree(self.tree, {k: v.dtype for k, v in columns.items()},
                                           title=f"scores from {self.path.name}")
                    tree.extend(columns)
                    counts["events"] += len(mask)
                    counts["scored"] += int(mask.sum())
                    counts["failed_cuts"] += int((~mask).sum())
                    if progress:
                        progress(counts["events"])
            os.replace(tmp, out)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if counts["events"] == 0:
            raise DataError("the input files have no events", where=str(files))
        return counts
