"""The model registry: published models on disk, loaded lazily into an LRU of bounded size.

::

    models/                        --models DIR (default DATA_DIR/models)
      <name>/<version>/entry.json    owner, public, created, kind, where it came from
      <name>/<version>/model/        an artifact folder (mlaas4hep.json ...) or a TFaaS-style folder
                                     (params.json + a Keras file or a TF SavedModel, labels.txt)
      .pending/<job id>.json         jobs that publish themselves when they succeed

A name belongs to the user who first published it; versions are 1, 2, ... (the latest is used
when none is named). A model is seen only by its owner unless it was published public (then by
every authenticated user); anyone else gets :class:`ModelNotFound`, as for a name that does not
exist. Nothing here imports FastAPI.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..errors import ConfigError, MLaaS4HEPError
from .batcher import DynamicBatcher

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ARTIFACT_FILE = "mlaas4hep.json"
TFAAS_FILE = "params.json"
RECHECK = 1.0  # seconds a model's folders are trusted on the predictions' path (another service's changes)


class ModelNotFound(MLaaS4HEPError):
    """No such model for this user (it does not exist, or it is someone else's private one)."""

    http_status = 404


class ModelConflict(MLaaS4HEPError):
    """The name belongs to another user."""

    http_status = 409


class BadModel(MLaaS4HEPError):
    """A published folder that is neither a usable artifact nor a TFaaS-style model."""


class BadInput(MLaaS4HEPError):
    """Prediction input of the wrong shape or with values that are not finite numbers."""


class TooLarge(MLaaS4HEPError):
    """A prediction request with more rows than the service accepts."""

    http_status = 413


def check_model_name(name: Any, where: str = "name") -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ConfigError(f"{name!r} is not a valid model name", where=where,
                          hint="1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


@dataclass(frozen=True)
class Entry:
    """One published version of a model (what entry.json holds, plus where)."""

    name: str
    version: int
    owner: str
    public: bool
    created: float
    kind: str  # "artifact" or "tfaas"
    source: dict[str, Any]
    folder: Path  # the model/ folder

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "owner": self.owner, "public": self.public,
                "created": self.created, "kind": self.kind, "source": self.source}


# -- loaded models --------------------------------------------------------------------------------


class ServedModel:
    """A loaded model: feature rows in, scores out (through its batcher), and for artifacts the
    raw-event path (preproc, specs, tensorize of the artifact itself)."""

    def __init__(self, entry: Entry, max_batch: int, max_delay: float, threads: int | None = None):
        self.entry = entry
        self.artifact = None
        init = None
        if entry.kind == "artifact":
            from ..artifact import Artifact

            self.artifact = Artifact.load(entry.folder)
            adapter = self.artifact.adapter  # loads the model now, not on the first request
            self.feature_names = self.artifact.feature_names
            self.n_features = len(self.feature_names)
            self.classes = _classes(self.artifact.contract, self.artifact.n_classes)
            # Keras: one batch straight through the model (model.predict sets up a pipeline per call)
            self._call = getattr(adapter, "predict_batch", adapter.predict)
            if threads and self.artifact.contract.get("framework") == "torch":
                _torch_threads(threads)
                init = functools.partial(_torch_threads, threads)  # and in the batcher's thread, which calls it
        else:
            tf = TFaaSModel(entry.folder)
            self.feature_names, self.n_features, self.classes = tf.features, tf.n_features, tf.classes
            self._call = tf.predict
        self.batcher = DynamicBatcher(self._call, max_batch, max_delay, name=f"{entry.name}/{entry.version}",
                                      thread_init=init)
        self.size = sum(p.stat().st_size for p in entry.folder.rglob("*") if p.is_file() and not p.is_symlink())

    @property
    def output_width(self) -> int:
        return 1 if len(self.classes) <= 2 else len(self.classes)

    def rows(self, values: Any, keys: list[str] | None = None, where: str = "values") -> np.ndarray:
        """Feature rows from JSON: one row (a list of numbers) or several (a list of lists), as
        float32 of width n_features; ``keys`` (the TFaaS way) may give the columns in any order."""
        X = _numbers(values, where)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        if X.ndim != 2:
            raise BadInput(f"expected one row (a list of numbers) or rows (a list of lists), got {X.ndim} "
                           "levels of nesting", where=where)
        if keys is not None:
            X = self._reorder(X, keys)
        if X.shape[1] != self.n_features:
            raise BadInput(f"each row must have {self.n_features} features, got {X.shape[1]}", where=where,
                           hint=f"the features: {', '.join(self.feature_names)}" if self.feature_names else None)
        return X

    def _reorder(self, X: np.ndarray, keys: list[str]) -> np.ndarray:
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise BadInput("keys must be a list of feature names", where="keys")
        if len(keys) != X.shape[1]:
            raise BadInput(f"{len(keys)} keys for rows of {X.shape[1]} values", where="keys")
        if not self.feature_names:
            return X
        if len(set(keys)) != len(keys):
            raise BadInput("a key is given twice", where="keys")
        missing = [k for k in self.feature_names if k not in keys]
        if missing:
            raise BadInput(f"the model needs feature {missing[0]!r}, which is not in keys", where="keys",
                           hint=f"the features: {', '.join(self.feature_names)}")
        unknown = [k for k in keys if k not in self.feature_names]
        if unknown:
            raise BadInput(f"unknown feature {unknown[0]!r}", where="keys",
                           hint=f"the features: {', '.join(self.feature_names)}")
        index = {k: i for i, k in enumerate(keys)}
        return X[:, [index[k] for k in self.feature_names]]

    def events(self, events: Any) -> tuple[np.ndarray, np.ndarray]:
        """Feature rows and the pass mask of column-oriented raw events (the artifact's own preproc,
        specs and tensorize)."""
        if self.artifact is None:
            raise BadInput(f"model {self.entry.name!r} is a TFaaS-style model without a feature contract: send "
                           "normalised feature rows to /tfaas/json or /v2 instead of raw events", where="events")
        if not isinstance(events, Mapping) or not events:
            raise BadInput("events must be an object of branch name to values", where="events")
        kinds = self.artifact.contract.get("kinds", {})
        dtypes = self.artifact.contract.get("specs", {}).get("dtypes", {}) or {}
        needed = list(self.artifact.contract["branches"])
        missing = [b for b in needed if b not in events]
        if missing:
            raise BadInput(f"the model needs branch {missing[0]!r}, which is not in events", where="events",
                           hint=f"it needs {', '.join(needed)}")
        arrays: dict[str, Any] = {}
        n = None
        for name in needed:
            arrays[name] = _column(events[name], kinds.get(name, "flat"), dtypes.get(name), f"events.{name}")
            if n is not None and len(arrays[name]) != n:
                raise BadInput(f"branch {name!r} has {len(arrays[name])} events, {needed[0]!r} has {n}",
                               where=f"events.{name}")
            n = len(arrays[name])
        if not n:
            raise BadInput("no events", where="events")
        try:
            return self.artifact.features(arrays)
        except ConfigError as err:
            raise BadInput(err.message, where="events", hint=err.hint) from None

    def close(self) -> None:
        self.batcher.close()


def _torch_threads(threads: int) -> None:
    """PyTorch's CPU threads in this (serving) process. One is best here: the batcher gives a model
    its rows in large calls, the event loop needs a core of its own, and on small calls several
    threads mostly spin (a 64-row call of the bench's MLP took 10x the CPU time with 2 threads as
    with 1 on the 2-core development machine). Set in the thread that calls the model as well:
    the served model's batcher thread had run with two OpenMP threads, one of them spinning."""
    import torch

    torch.set_num_threads(threads)


def _classes(contract: Mapping[str, Any], n_classes: int) -> list[str]:
    labels = contract.get("labels") or {}
    names = labels.get("classes")
    if names and len(names) == n_classes:
        return [str(c) for c in names]
    return [str(c) for c in range(n_classes)]


def _numbers(values: Any, where: str) -> np.ndarray:
    """JSON numbers as float32, refusing strings, booleans, nulls, ragged rows and non-finite values."""
    if not isinstance(values, list) or not values:
        raise BadInput("expected a non-empty list of numbers or of rows", where=where)
    try:
        X = np.array(values, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise BadInput("every value must be a number, and every row as long as the first", where=where) from None
    if X.dtype == object or X.size == 0:
        raise BadInput("expected numbers", where=where)
    _only_numbers(values, X.ndim, where)
    # one pass for the usual case (every value finite and within float32): NaN fails the comparison
    if _largest(np.abs(X), axis=None) <= _FLOAT32_MAX:
        return X.astype(np.float32)
    bad = ~np.isfinite(X)
    if bad.any():
        at = np.argwhere(bad)[0]
        raise BadInput(f"value {X[tuple(at)]} at {list(map(int, at))} is not a finite number", where=where)
    big = np.abs(X) > np.finfo(np.float32).max
    if big.any():
        raise BadInput(f"value at {list(map(int, np.argwhere(big)[0]))} does not fit a 32-bit float", where=where)
    return X.astype(np.float32)


_NUMBER_TYPES = {int, float}
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_largest = np.maximum.reduce


def _only_numbers(values: list, ndim: int, where: str) -> None:
    """numpy reads true/false as 1/0, null as NaN and "1.5" as 1.5: refuse anything but JSON
    numbers, in every row. The types are collected in C (``map(type, ...)``), not by a loop per
    value."""
    flat = values
    for _ in range(ndim - 1):
        flat = itertools.chain.from_iterable(flat)
    types = set(map(type, flat))
    if not types <= _NUMBER_TYPES:
        raise BadInput("values must be numbers (not strings, true/false or null)", where=where)


def _column(values: Any, kind: str, dtype: str | None, where: str):
    """One branch of raw events: a list of numbers (flat) or of lists of numbers (jagged)."""
    import awkward as ak

    if not isinstance(values, list):
        raise BadInput("expected a list with one entry per event", where=where)
    target = np.dtype(dtype) if dtype and dtype in np.sctypeDict else np.dtype(np.float64)
    if kind == "jagged":
        if not all(isinstance(v, list) for v in values):
            raise BadInput("a jagged branch takes a list of lists (one list per event)", where=where)
        counts = np.fromiter((len(v) for v in values), np.int64, len(values))
        flat = [x for v in values for x in v]
        content = _finite(flat, target, where) if flat else np.empty(0, target)
        return ak.unflatten(content, counts)
    if any(isinstance(v, (list, dict)) for v in values):
        raise BadInput("a flat branch takes one number per event, not lists", where=where)
    return _finite(values, target, where)


def _finite(values: list, dtype: np.dtype, where: str) -> np.ndarray:
    """Numbers of one branch in its training dtype. A float branch may hold NaN or infinities (as
    ROOT files do; JSON clients without NaN may send null), handled as in training; an integer or
    boolean branch only whole numbers."""
    if any(isinstance(v, str) for v in values):
        raise BadInput("every value must be a number", where=where)
    floating = dtype.kind not in "iub"
    if not floating and any(v is None for v in values):
        raise BadInput(f"the branch holds {dtype.name} values; got null", where=where)
    try:
        raw = np.asarray([np.nan if v is None else v for v in values] if floating else values, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise BadInput("every value must be a number", where=where) from None
    if not floating:
        if not np.isfinite(raw).all():
            raise BadInput(f"the branch holds {dtype.name} values; got {raw[~np.isfinite(raw)][0]}", where=where)
        if (raw != np.round(raw)).any():
            raise BadInput(f"the branch holds {dtype.name} values; got a fraction", where=where)
    return raw.astype(dtype)


class TFaaSModel:
    """A model uploaded the TFaaS way: ``params.json`` naming a Keras file (``.keras``/``.h5``) or
    a TensorFlow SavedModel folder, optionally ``labels.txt`` (one class per line), ``inputNode`` /
    ``outputNode`` (SavedModel signature keys) and ``features`` (column names)."""

    def __init__(self, folder: Path):
        self.folder = folder
        params = read_params(folder)
        self.params = params
        model = folder / params["model"]
        labels = params.get("labels")
        self.classes = [line.strip() for line in (folder / labels).read_text().splitlines() if line.strip()] \
            if labels else []
        self.features = list(params.get("features") or [])
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if model.is_dir() or model.name == "saved_model.pb":
            self._load_saved_model(model if model.is_dir() else model.parent)
        else:
            self._load_keras(model)
        if self.features and len(self.features) != self.n_features:
            raise BadModel(f"params.json lists {len(self.features)} features, the model takes {self.n_features}",
                           where="params.json: features")
        if not self.classes:
            self.classes = ["0", "1"]

    def _load_keras(self, path: Path) -> None:
        try:
            import keras

            self.model = keras.models.load_model(path, compile=False)
        except ImportError:
            raise BadModel("Keras is not installed on this service") from None
        except Exception as err:  # noqa: BLE001 - explained to the user
            raise BadModel(f"cannot load the Keras model: {type(err).__name__}: {err}",
                           where=f"params.json: model ({path.name})") from None
        shape = self.model.inputs[0].shape if getattr(self.model, "inputs", None) else None
        if not shape or len(shape) != 2 or shape[-1] is None:
            raise BadModel("the Keras model must take rows of features, shape (batch, n_features)",
                           where=f"params.json: model ({path.name})")
        self.n_features = int(shape[-1])
        self._fn = lambda X: self.model(X, training=False)

    def _load_saved_model(self, path: Path) -> None:
        try:
            import tensorflow as tf

            loaded = tf.saved_model.load(str(path))
        except ImportError:
            raise BadModel("TensorFlow is not installed on this service") from None
        except Exception as err:  # noqa: BLE001
            raise BadModel(f"cannot load the SavedModel: {type(err).__name__}: {str(err)[:300]}",
                           where=f"params.json: model ({path.name})") from None
        key = self.params.get("signature", "serving_default")
        if key not in loaded.signatures:
            raise BadModel(f"the SavedModel has no signature {key!r}", where="params.json: signature",
                           hint=f"it has {', '.join(loaded.signatures) or 'none'}")
        signature = loaded.signatures[key]
        inputs = signature.structured_input_signature[1]
        name = self.params.get("inputNode") or (next(iter(inputs)) if len(inputs) == 1 else None)
        if name not in inputs:
            raise BadModel(f"the signature's inputs are {', '.join(inputs)}; name one as inputNode",
                           where="params.json: inputNode")
        shape = inputs[name].shape
        if len(shape) != 2 or shape[-1] is None:
            raise BadModel(f"input {name!r} must be rows of features, shape (batch, n_features)",
                           where="params.json: inputNode")
        self.n_features = int(shape[-1])
        outputs = list(signature.structured_outputs)
        out = self.params.get("outputNode") or (outputs[0] if len(outputs) == 1 else None)
        if out not in outputs:
            raise BadModel(f"the signature's outputs are {', '.join(outputs)}; name one as outputNode",
                           where="params.json: outputNode")
        self._loaded = loaded  # keeps the functions alive
        self._fn = lambda X: signature(**{name: tf.constant(X)})[out]

    def predict(self, X: np.ndarray) -> np.ndarray:
        out = np.asarray(self._fn(np.ascontiguousarray(X, dtype=np.float32)), dtype=np.float32)
        if out.ndim == 2 and out.shape[1] == 1:
            out = out.reshape(-1)
        return out


def read_params(folder: Path) -> dict[str, Any]:
    path = folder / TFAAS_FILE
    try:
        params = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise BadModel(f"cannot read params.json: {err}", where="params.json") from None
    except json.JSONDecodeError as err:
        raise BadModel(f"params.json is not valid JSON: {err.msg}", where="params.json") from None
    if not isinstance(params, dict):
        raise BadModel("params.json must be an object", where="params.json")
    model = params.get("model")
    if not isinstance(model, str) or not model:
        raise BadModel("params.json must name the model file or SavedModel folder in 'model'",
                       where="params.json: model", hint='e.g. {"model": "model.keras", "labels": "labels.txt"}')
    for key in ("model", "labels"):
        value = params.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or Path(value).is_absolute() or ".." in Path(value).parts:
            raise BadModel(f"{key} must be a file name inside the upload", where=f"params.json: {key}")
        if not (folder / value).exists():
            raise BadModel(f"{value!r} is not in the upload", where=f"params.json: {key}")
    if model.endswith(".pb") and Path(model).name != "saved_model.pb":
        raise BadModel("TensorFlow 1 frozen graphs (.pb) are not served; export a SavedModel or a Keras file",
                       where="params.json: model")
    features = params.get("features")
    if features is not None and (not isinstance(features, list) or not all(isinstance(f, str) for f in features)):
        raise BadModel("features must be a list of names", where="params.json: features")
    return params


# -- the registry ---------------------------------------------------------------------------------


class ModelRegistry:
    """Published models of every user, and the LRU of loaded ones. Thread-safe."""

    def __init__(self, root: str | os.PathLike, max_loaded: int = 8, max_batch: int = 256,
                 max_delay: float = 0.002, max_loaded_bytes: int = 4 << 30, model_threads: int | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._root = str(self.root)
        self.pending_dir = self.root / ".pending"
        self.pending_dir.mkdir(exist_ok=True)
        self.max_loaded = max(1, int(max_loaded))
        # memory of the loaded models, estimated by the size of their files (the weights); the
        # model just loaded always stays, even alone over the bound
        self.max_loaded_bytes = int(max_loaded_bytes)
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.model_threads = model_threads  # PyTorch's CPU threads (None: as the adapter sets them)
        self._lock = threading.RLock()
        self._loaded: OrderedDict[tuple[str, int], ServedModel] = OrderedDict()
        self._loading: dict[tuple[str, int], threading.Lock] = {}
        self.loads = 0  # models loaded from disk so far (evictions make it grow)
        self._version_cache: dict[str, tuple[int, list[int]]] = {}
        self._entry_cache: dict[tuple[str, int], tuple[tuple[int, int], Entry]] = {}
        self._checked: dict[str, float] = {}  # name -> when its folder was last looked at
        self._entry_seen: dict[str, float] = {}  # name -> when its versions' folders were last looked at

    # -- what is there ---------------------------------------------------------------------------

    def _versions(self, name: str, recent: bool = False) -> list[int]:
        """The published versions of ``name``; remembered until its folder changes (another
        service on the same folder publishing or deleting changes it too). ``recent``: trust
        what was seen less than ``RECHECK`` seconds ago without looking at the folder (the
        predictions' path: a file system call there lets the model's thread take the GIL, and
        the event loop waits for it to come back)."""
        cached = self._version_cache.get(name)
        if recent and cached is not None and time.monotonic() - self._checked.get(name, -RECHECK) < RECHECK:
            return cached[1]
        try:  # os.stat of a string: pathlib's objects cost more than the call
            stamp = os.stat(f"{self._root}/{name}").st_mtime_ns
        except (FileNotFoundError, NotADirectoryError):
            return []
        if cached is None or cached[0] != stamp:
            folder = self.root / name
            versions = sorted(int(p.name) for p in folder.iterdir()
                              if p.name.isdigit() and (p / "entry.json").exists())
            cached = self._version_cache[name] = (stamp, versions)
            self._entry_seen.pop(name, None)  # the versions' folders are looked at again too
        self._checked[name] = time.monotonic()
        return cached[1]

    def _entry(self, name: str, version: int, recent: bool = False) -> Entry:
        """entry.json of one version (never rewritten once published; remembered per folder
        identity, so a version deleted and published again is read again). ``recent``: as for
        :meth:`_versions`."""
        key = (name, version)
        cached = self._entry_cache.get(key)
        if recent and cached is not None and time.monotonic() - self._entry_seen.get(name, -RECHECK) < RECHECK:
            return cached[1]
        stat = os.stat(f"{self._root}/{name}/{version}")
        if cached is None or cached[0] != (stat.st_ino, stat.st_mtime_ns):
            folder = self.root / name / str(version)
            data = json.loads((folder / "entry.json").read_text())
            entry = Entry(name=name, version=version, owner=data["owner"], public=bool(data.get("public")),
                          created=float(data.get("created", 0)), kind=data["kind"],
                          source=dict(data.get("source") or {}), folder=folder / "model")
            cached = self._entry_cache[key] = ((stat.st_ino, stat.st_mtime_ns), entry)
        if recent:
            self._entry_seen[name] = time.monotonic()
        return cached[1]

    def _forget(self, name: str) -> None:
        """This registry changed ``name``: look at its folders again on the next request."""
        self._checked.pop(name, None)
        self._entry_seen.pop(name, None)

    def owner_of(self, name: str) -> str | None:
        versions = self._versions(name)
        return self._entry(name, versions[0]).owner if versions else None

    def visible(self, entry: Entry, user: str) -> bool:
        return entry.owner == user or entry.public

    def resolve(self, user: str, name: Any, version: Any = None) -> Entry:
        """The version (the latest by default) of ``name`` that ``user`` may use."""
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise ModelNotFound(f"no model {name!r}", where="model")
        versions = self._versions(name, recent=True)
        if version not in (None, ""):
            text = str(version)
            if not text.isdigit() or int(text) not in versions:
                raise ModelNotFound(f"model {name!r} has no version {text!r}", where="version")
            versions = [int(text)]
        for v in reversed(versions):
            try:
                entry = self._entry(name, v, recent=True)
            except (FileNotFoundError, NotADirectoryError):  # deleted meanwhile
                continue
            if self.visible(entry, user):
                return entry
        raise ModelNotFound(f"no model {name!r}" + (f" version {version}" if version not in (None, "") else ""),
                            where="model")

    def list(self, user: str) -> list[dict[str, Any]]:
        """The models ``user`` may use: the latest visible version of each, with all visible versions."""
        out = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and NAME_RE.fullmatch(p.name)):
            entries = [self._entry(folder.name, v) for v in self._versions(folder.name)]
            seen = [e for e in entries if self.visible(e, user)]
            if seen:
                out.append(self.describe(seen[-1], versions=[e.version for e in seen]))
        return out

    def describe(self, entry: Entry, versions: list[int] | None = None) -> dict[str, Any]:
        """Metadata from disk (the model is not loaded for it)."""
        info: dict[str, Any] = {**entry.to_json(), "versions": versions or [entry.version]}
        if entry.kind == "artifact":
            contract = json.loads((entry.folder / ARTIFACT_FILE).read_text())
            n_classes = int((contract.get("labels") or {}).get("n_classes", 2))
            info.update(framework=contract.get("framework"), features=list(contract.get("features") or []),
                        branches=list(contract.get("branches") or []), preproc=contract.get("preproc"),
                        labels=contract.get("labels"), metrics=contract.get("metrics") or {},
                        classes=_classes(contract, n_classes), tree=contract.get("tree"),
                        identifier=list(contract.get("identifier") or []))
        else:
            params = json.loads((entry.folder / TFAAS_FILE).read_text())
            info.update(framework="tfaas", features=list(params.get("features") or []), branches=[], preproc=None,
                        labels=None, metrics={}, classes=None, tree=None, identifier=[], params=params)
        key = (entry.name, entry.version)
        loaded = self._loaded.get(key)
        info["loaded"] = loaded is not None
        info["stats"] = loaded.batcher.stats() if loaded is not None else None
        return info

    # -- loading ---------------------------------------------------------------------------------

    def loaded_model(self, entry: Entry) -> ServedModel | None:
        """The model of ``entry`` if it is in memory (marked as just used), without loading it."""
        key = (entry.name, entry.version)
        with self._lock:
            served = self._loaded.get(key)
            if served is not None:
                self._loaded.move_to_end(key)
            return served

    def model(self, entry: Entry) -> ServedModel:
        """The loaded model of ``entry`` (loaded now if it is not; the least recently used one is
        unloaded when more than ``max_loaded`` are)."""
        key = (entry.name, entry.version)
        with self._lock:
            served = self._loaded.get(key)
            if served is not None:
                self._loaded.move_to_end(key)
                return served
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:  # one load per model at a time; others wait for it
            with self._lock:
                served = self._loaded.get(key)
                if served is not None:
                    self._loaded.move_to_end(key)
                    return served
            served = ServedModel(entry, self.max_batch, self.max_delay, self.model_threads)
            with self._lock:
                self.loads += 1
                self._loaded[key] = served
                self._loading.pop(key, None)
                evicted = []
                while len(self._loaded) > 1 and (len(self._loaded) > self.max_loaded or
                                                 self.loaded_bytes() > self.max_loaded_bytes):
                    evicted.append(self._loaded.popitem(last=False)[1])
            for old in evicted:
                old.close()
            return served

    def loaded_bytes(self) -> int:
        with self._lock:
            return sum(m.size for m in self._loaded.values())

    def loaded(self) -> list[tuple[str, int]]:
        with self._lock:
            return list(self._loaded)

    def evict(self, name: str, version: int | None = None) -> None:
        with self._lock:
            keys = [k for k in self._loaded if k[0] == name and (version is None or k[1] == version)]
            gone = [self._loaded.pop(k) for k in keys]
        for served in gone:
            served.close()

    # -- publishing ------------------------------------------------------------------------------

    def publish(self, owner: str, name: str, folder: Path, *, public: bool = False,
                source: dict | None = None) -> Entry:
        """A new version of ``name`` from a copy of a model folder. The copy is checked by loading
        the model before it is published."""
        check_model_name(name)
        kind = model_kind(folder)
        with self._lock:
            holder = self.owner_of(name)
            if holder is not None and holder != owner:
                raise ModelConflict(f"the model name {name!r} is taken; choose another", where="name")
        staging = self.root / f".staging-{uuid.uuid4().hex}"
        try:
            staging.mkdir()
            shutil.copytree(folder, staging / "model", symlinks=False)
            entry_data = {"owner": owner, "public": bool(public), "created": time.time(), "kind": kind,
                          "source": source or {}}
            probe = Entry(name=name, version=0, owner=owner, public=bool(public), created=entry_data["created"],
                          kind=kind, source=entry_data["source"], folder=staging / "model")
            ServedModel(probe, 1, 0.0, self.model_threads).close()  # refuse what cannot be loaded, before it is published
            with self._lock:
                holder = self.owner_of(name)
                if holder is not None and holder != owner:
                    raise ModelConflict(f"the model name {name!r} is taken; choose another", where="name")
                version = (self._versions(name) or [0])[-1] + 1
                (staging / "entry.json").write_text(json.dumps(entry_data, indent=1))
                (self.root / name).mkdir(exist_ok=True)
                os.rename(staging, self.root / name / str(version))
                self._forget(name)
            return self._entry(name, version)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def publish_archive(self, owner: str, name: str, archive: BinaryIO, *, public: bool, max_members: int,
                        max_bytes: int, source: dict | None = None) -> Entry:
        """Unpack a tar.gz (with the service's safe unpacking) and publish the model in it: an
        artifact folder, or a TFaaS-style folder with params.json, at the top or one folder down."""
        from ..service.archive import unpack_tar_gz

        tmp = self.root / f".upload-{uuid.uuid4().hex}"
        try:
            unpack_tar_gz(archive, tmp, max_members=max_members, max_bytes=max_bytes)
            return self.publish(owner, name, find_model_folder(tmp), public=public, source=source)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def delete(self, user: str, name: str, version: Any = None) -> None:
        """Remove ``name`` (every version, or one) of ``user``; someone else's is not found."""
        entry = self.resolve(user, name, version)
        if entry.owner != user:
            raise ModelNotFound(f"no model {name!r} of yours", where="model")
        with self._lock:
            if version in (None, ""):
                self.evict(name)
                trash = self.root / f".trash-{uuid.uuid4().hex}"
                os.rename(self.root / name, trash)
            else:
                self.evict(name, entry.version)
                trash = self.root / f".trash-{uuid.uuid4().hex}"
                os.rename(self.root / name / str(entry.version), trash)
                if not self._versions(name):
                    shutil.rmtree(self.root / name, ignore_errors=True)
            self._forget(name)
        shutil.rmtree(trash, ignore_errors=True)

    # -- jobs that publish themselves ------------------------------------------------------------

    def add_pending(self, job_id: str, owner: str, name: str, public: bool) -> None:
        check_model_name(name, "publish.name")
        holder = self.owner_of(name)
        if holder is not None and holder != owner:
            raise ModelConflict(f"the model name {name!r} is taken; choose another", where="publish.name")
        (self.pending_dir / f"{job_id}.json").write_text(json.dumps({"owner": owner, "name": name,
                                                                      "public": bool(public)}))

    def pending(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for path in sorted(self.pending_dir.glob("*.json")):
            try:
                out.append((path.stem, json.loads(path.read_text())))
            except (OSError, ValueError):
                continue
        return out

    def drop_pending(self, job_id: str) -> None:
        (self.pending_dir / f"{job_id}.json").unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            gone = list(self._loaded.values())
            self._loaded.clear()
        for served in gone:
            served.close()


def model_kind(folder: Path) -> str:
    if (folder / ARTIFACT_FILE).is_file():
        return "artifact"
    if (folder / TFAAS_FILE).is_file():
        read_params(folder)
        return "tfaas"
    raise BadModel("neither an artifact (mlaas4hep.json) nor a TFaaS-style model (params.json) was found",
                   where="upload", hint="upload the artifact folder of a job as a tar.gz, or a Keras file or "
                                        "SavedModel with a params.json")


def find_model_folder(root: Path) -> Path:
    """The folder of an unpacked upload that holds mlaas4hep.json or params.json: the top, or its
    only subfolder."""
    for candidate in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
        if (candidate / ARTIFACT_FILE).is_file() or (candidate / TFAAS_FILE).is_file():
            return candidate
    return root  # model_kind explains what is missing
