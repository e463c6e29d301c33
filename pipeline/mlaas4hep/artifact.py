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
from .errors import ConfigError, DataError, MLaaS4HEPError, did_you_mean
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


#: What an artifact's mlaas4hep.json must hold: key path -> the JSON types it may have
_CONTRACT = {
    "framework": (str,), "model": (dict,), "features": (list,), "tree": (str,), "branches": (list,),
    "kinds": (dict,), "preproc": (dict, type(None)), "labels": (dict,), "layout": (dict,),
    "layout.flat": (list,), "layout.jagged": (list,), "layout.jdim": (dict,), "layout.masks": (bool,),
    "labels.n_classes": (int,),
}


def _check_contract(contract: dict[str, Any], where: str) -> None:
    """Every key the artifact is used through is there, with its type; else one clear error."""
    for path, types in _CONTRACT.items():
        value: Any = contract
        for part in path.split("."):
            value = value.get(part, _MISSING) if isinstance(value, dict) else _MISSING
        if value is _MISSING:
            raise ConfigError(f"the artifact's mlaas4hep.json lacks {path!r}", where=where,
                              hint="it was not written by mlaas4hep workflow, or it was edited")
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            raise ConfigError(f"the artifact's mlaas4hep.json has a {type(value).__name__} for {path!r}", where=where)
    if contract["framework"] not in ("keras", "torch"):
        raise ConfigError(f"unknown framework {contract['framework']!r} in the artifact", where=where)


_MISSING = object()


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
            contract = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read mlaas4hep.json: {err}", where=str(meta)) from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"mlaas4hep.json is not valid JSON: {err.msg}", where=str(meta)) from None
        except RecursionError:
            raise ConfigError("mlaas4hep.json is not valid JSON: nested too deeply", where=str(meta)) from None
        if not isinstance(contract, dict):
            raise ConfigError(f"expected a JSON object in mlaas4hep.json, got {type(contract).__name__}",
                              where=str(meta))
        if contract.get("format") != FORMAT:
            raise ConfigError(f"unknown artifact format {contract.get('format')!r}", where=str(meta))
        _check_contract(contract, str(meta))
        try:
            return cls(path, contract, model_source=str(model) if model else None)
        except MLaaS4HEPError as err:
            raise ConfigError(f"the artifact's preproc or layout is not valid: {err}", where=str(meta)) from None
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ConfigError(f"the artifact's feature contract is damaged: {type(err).__name__}: {err}",
                              where=str(meta)) from None

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
        if out.exists() and not out.is_file():
            raise ConfigError("cannot write the scores here: it is not a regular file", where=str(out))
        if not isinstance(branch, str) or not branch.strip() or "/" in branch:
            raise ConfigError(f"the score branch needs a name without '/', got {branch!r}")
        names = [branch] if self.n_classes <= 2 else [f"{branch}_{c}" for c in range(self.n_classes)]
        taken = set(self.identifiers) | ({"file", "entry"} if failed == "omit" else set())
        clash = sorted(taken & set(names))
        if clash:
            raise ConfigError(f"the score branch {clash[0]!r} would have the name of an identifier or index branch "
                              f"of the output ({', '.join(sorted(taken))})", hint="choose another --branch")
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
