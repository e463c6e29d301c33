"""PyTorch models behind the :class:`~mlaas4hep.adapters.ModelAdapter` interface.

The model.py contract for PyTorch
---------------------------------

``def model(idim)`` (required)
    returns a ``torch.nn.Module`` that takes a float32 tensor of shape ``(batch, idim)`` and
    returns one tensor: shape ``(batch, 1)`` or ``(batch,)`` (one unit) or ``(batch, w)``.
    For binary labels (0/1) the output has 1 unit (a score for class 1) or 2 units (one per
    class); for k > 2 classes it has k units.

``loss`` (optional)
    a torch loss module instance (``loss = nn.BCEWithLogitsLoss(pos_weight=...)``), a loss
    class (``loss = nn.BCEWithLogitsLoss``, created without arguments), or a function
    ``loss(output, target) -> tensor``. The target it receives is float32 with the output's
    shape for a 1-unit output, and int64 class indices of shape ``(batch,)`` for a w-unit
    output. A non-scalar result is averaged. The Keras names ``"binary_crossentropy"``,
    ``"sparse_categorical_crossentropy"`` (the defaults below) and ``"categorical_crossentropy"``
    are accepted too; with the last, the labels are one-hot encoded (float32, shape
    ``(batch, w)``) as the original did, and the loss is the cross-entropy of the output
    (logits, probabilities or log-probabilities, as below) against them.

``optimizer`` (optional)
    a function ``optimizer(parameters) -> torch.optim.Optimizer``
    (``def optimizer(params): return torch.optim.SGD(params, lr=0.01, momentum=0.9)``; an
    optimizer class that needs nothing but the parameters, ``optimizer = torch.optim.AdamW``,
    works too). It is created once: its state (momenta, step counts) carries over from one
    chunk to the next and is saved in checkpoints.

Defaults: ``torch.optim.Adam(parameters, lr=1e-3)``; the default loss for each output, and what
the output means (and so what :meth:`TorchAdapter.predict` does with it): see
:mod:`mlaas4hep.adapters.torch_loss`.

Training uses the GPU when ``torch.cuda.is_available()`` (hide it with
``CUDA_VISIBLE_DEVICES=``), else the CPU. Shuffling and the random numbers used inside the
model (dropout) come from generators seeded with the adapter's seed and kept by the adapter
(and in checkpoints), so training is repeatable and a resumed run equals an uninterrupted one,
whatever else uses torch's global generator. The number of CPU threads is capped at the CPUs
this process may use (affinity and cgroup quota) unless ``OMP_NUM_THREADS`` or
``MKL_NUM_THREADS`` is set; a thread count already at or below that is left alone.

Saved files: ``model.pt`` (the state dict) and, when ``torch.jit.script`` or else
``torch.jit.trace`` gives a module that reproduces the model's outputs, ``model.ts``
(TorchScript), which :meth:`TorchAdapter.load` uses to predict without the user's model.py.
Checkpoints: ``checkpoint.pt`` (weights, optimizer state, generator states, epochs done).
"""

from __future__ import annotations

import math
import os
import platform
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, DataError
from . import EpochCallback, ModelAdapter, _user_line, build_model, load_model_module, one_hot
from .torch_files import (CHECKPOINT_FILE, CHECKPOINT_FORMAT, STATE_FILE, TORCHSCRIPT_FILE, atomic_save,
                          export_torchscript, read_saved)
from .torch_loss import LOG_PROBABILITIES, LOGITS, resolve_loss

_threads_configured = False


class TorchAdapter(ModelAdapter):
    """A ``torch.nn.Module`` from model.py, trained chunk by chunk."""

    framework = "torch"

    def __init__(self, model: Any, n_classes: int, module: ModuleType | None = None, seed: int = 0):
        super().__init__(model, n_classes, module=module, seed=seed)
        _configure_threads()
        self.source = getattr(module, "__file__", None) or "model.py"
        self.device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
        self.model.to(self.device)
        self.epochs_done = 0
        self._idim: int | None = None
        self._width: int | None = None  # output units
        self._kind: str | None = None  # LOGITS, PROBABILITIES or LOG_PROBABILITIES
        self._kind_fixed = False  # loaded from TorchScript: kind and width come from the saved info
        self._loss: Any = None
        self._loss_name: str | None = None
        self._loss_from: str | None = None
        self._one_hot = False  # targets as one-hot rows (loss = "categorical_crossentropy")
        self._optimizer: torch.optim.Optimizer | None = None
        self._trainable = True
        self._shuffle = torch.Generator().manual_seed(seed)
        self._cpu_rng = torch.Generator().manual_seed(seed + 1).get_state()
        self._cuda_rng: torch.Tensor | None = None  # seeded on first use

    # -- checks -------------------------------------------------------------------------------

    def check_input(self, n_features: int, source: str) -> None:
        """A forward pass on a zero batch of shape (2, n_features); then the output width is
        checked against the classes, the loss and output kind are settled and the optimizer is
        created."""
        if not self._kind_fixed:
            self.source = source  # later errors (loss, optimizer) name model.py the same way
        x = torch.zeros((2, n_features), dtype=torch.float32, device=self.device)
        was_training = self.model.training
        self.model.eval()  # BatchNorm must not update its running statistics here
        try:
            with torch.no_grad():
                out = self.model(x)
        except Exception as err:  # noqa: BLE001 - user code, reported as a configuration mistake
            raise self._input_error(err, n_features, source) from None
        finally:
            self.model.train(was_training)
        if not isinstance(out, torch.Tensor):
            raise ConfigError(f"the model returned {type(out).__name__}; it must return one tensor "
                              "(batch, units)", where=source)
        if out.ndim == 1:
            width = 1
        elif out.ndim == 2:
            width = int(out.shape[1])
        else:
            raise ConfigError(f"the model's output has shape {tuple(out.shape)} for a batch of 2; "
                              "it must be (batch,) or (batch, units)", where=source)
        if self.binary and width not in (1, 2):
            raise ConfigError(
                f"the model's output has {width} units; with binary labels it must have 1 (a score "
                "for class 1) or 2 (one per class)", where=source)
        if not self.binary and width != self.n_classes:
            raise ConfigError(
                f"the model's output has {width} units; with {self.n_classes} classes it must have "
                f"{self.n_classes} (one per class)", where=source)
        if not out.is_floating_point():
            raise ConfigError(f"the model's output is {out.dtype}; it must be floating point", where=source)
        self._idim = n_features
        if self._kind_fixed:
            if width != self._width:
                raise ConfigError(f"the saved model's output has {width} units, its info says {self._width}",
                                  where=source)
            return
        self._width = width
        choice = resolve_loss(self.model, self.module, width, source)
        if isinstance(choice.loss, nn.Module):
            choice.loss.to(self.device)
        self._loss, self._loss_name, self._kind = choice.loss, choice.name, choice.kind
        self._loss_from, self._one_hot = choice.loss_from, choice.one_hot
        if self._trainable:
            self._ensure_optimizer()  # a mistake in model.py's optimizer shows now, not after reading data

    def _input_error(self, err: Exception, n_features: int, source: str) -> ConfigError:
        expected = _first_in_features(self.model)
        text = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        if expected is not None and expected != n_features:
            return ConfigError(
                f"the model's input size does not match the {n_features} features: its first layer "
                f"takes {expected} inputs, the data has {n_features} features", where=source,
                hint=f"build the first layer from idim, e.g. nn.Linear(idim, ...); torch said {text}")
        lowered = text.lower()
        shapes = any(w in lowered for w in ("shape", "size", "mat1", "dimension"))
        if expected is not None and shapes:  # the first layer fits: two inner layers do not
            return ConfigError(
                f"the model fails on a float32 batch of shape (2, {n_features}): {text}",
                where=_user_line(err, Path(source)),
                hint="its first layer takes the right number of inputs; check that each layer takes "
                     "as many inputs as the one before gives")
        if shapes:
            return ConfigError(
                f"the model's input size does not match the {n_features} features (a batch of shape "
                f"(2, {n_features}) fails: {text})", where=source,
                hint="build the first layer from idim, e.g. nn.Linear(idim, ...)")
        return ConfigError(f"the model fails on a float32 batch of shape (2, {n_features}): {text}",
                           where=_user_line(err, Path(source)))

    def _ensure_checked(self, n_features: int) -> None:
        if self._width is None or self._idim != n_features:
            self.check_input(n_features, self.source)

    # -- training -----------------------------------------------------------------------------

    def _ensure_optimizer(self) -> torch.optim.Optimizer:
        if self._optimizer is not None:
            return self._optimizer
        factory = getattr(self.module, "optimizer", None) if self.module is not None else None
        if factory is None:
            self._optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
            return self._optimizer
        if not callable(factory):
            raise ConfigError(f"optimizer is {type(factory).__name__}; it must be a function "
                              "optimizer(parameters) returning a torch.optim.Optimizer", where=self.source,
                              hint="def optimizer(params): return torch.optim.Adam(params, lr=1e-3)")
        try:
            opt = factory(self.model.parameters())
        except Exception as err:  # noqa: BLE001 - user code
            raise ConfigError(f"optimizer(parameters) failed: {type(err).__name__}: {err}",
                              where=_user_line(err, Path(self.source))) from None
        if not isinstance(opt, torch.optim.Optimizer):
            raise ConfigError(f"optimizer(parameters) returned {type(opt).__name__}; it must return a "
                              "torch.optim.Optimizer", where=self.source)
        self._optimizer = opt
        return opt

    def fit(self, X: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int,
            validation: tuple[np.ndarray, np.ndarray] | None = None,
            on_epoch: EpochCallback | None = None,
            sample_weight: np.ndarray | None = None) -> list[dict[str, float]]:
        if not self._trainable:
            raise ConfigError("this model was loaded from its TorchScript file; training it further needs "
                              "the model.py that built it", where=self.source,
                              hint="load it with TorchAdapter.load(folder, info, module='model.py')")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        Xt = _as_input(X)
        self._ensure_checked(Xt.shape[1])
        yt = self._as_target(y, Xt.shape[0])
        wt = None
        if sample_weight is not None:
            weights = np.asarray(sample_weight, dtype=np.float32).reshape(-1)
            if weights.shape[0] != Xt.shape[0]:
                raise ValueError(f"{weights.shape[0]} sample weights for {Xt.shape[0]} rows")
            if not np.all(np.isfinite(weights)):
                raise DataError(f"{int((~np.isfinite(weights)).sum())} event weight(s) are NaN or infinite",
                                where="params.json: weight", hint="a weight must be a finite number per event")
            wt = _from_numpy(np.ascontiguousarray(weights))
            self._check_weightable()
        val = None
        if validation is not None:
            Xv = _as_input(validation[0])
            if Xv.shape[1] != Xt.shape[1]:
                raise ValueError(f"validation rows have {Xv.shape[1]} features, training rows {Xt.shape[1]}")
            val = (Xv, self._as_target(validation[1], Xv.shape[0]))
        opt = self._ensure_optimizer()
        n = Xt.shape[0]
        history: list[dict[str, float]] = []
        with torch.random.fork_rng(devices=self._cuda_devices()):
            self._enter_rng()
            try:
                for _ in range(epochs):
                    self.model.train()
                    order = torch.randperm(n, generator=self._shuffle)
                    loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
                    correct = torch.zeros((), dtype=torch.int64, device=self.device)
                    for start, stop in _batches(n, batch_size):
                        rows = order[start:stop]
                        xb = Xt.index_select(0, rows).to(self.device, non_blocking=True)
                        yb = yt.index_select(0, rows).to(self.device, non_blocking=True)
                        opt.zero_grad(set_to_none=True)
                        out = self.model(xb)
                        if wt is None:
                            loss = self._loss_of(out, yb)
                        else:
                            wb = wt.index_select(0, rows).to(self.device, non_blocking=True)
                            loss = self._weighted_loss(out, yb, wb)
                        loss.backward()
                        opt.step()
                        with torch.no_grad():
                            loss_sum += loss.detach().double() * (stop - start)
                            correct += self._correct(out.detach(), yb)
                    metrics = {"loss": float(loss_sum) / n if n else math.nan,
                               "accuracy": float(correct) / n if n else math.nan}
                    if val is not None:
                        metrics.update(self._evaluate(*val, batch_size=batch_size))
                    self.epochs_done += 1
                    history.append(metrics)
                    if on_epoch is not None:
                        self._leave_rng()  # a checkpoint written by the callback sees the current state
                        on_epoch(dict(metrics))
                        self._enter_rng()  # and whatever the callback draws does not change training
            finally:
                self._leave_rng()
        return history

    def _loss_of(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self._width == 1:
            target = target.view(out.shape)
        try:
            loss = self._loss(out, target)
        except Exception as err:  # noqa: BLE001 - user code (or a loss that does not fit the output)
            raise ConfigError(
                f"the loss {self._loss_name} failed on output {tuple(out.shape)} and target "
                f"{tuple(target.shape)} {target.dtype}: {type(err).__name__}: {err}",
                where=_user_line(err, Path(self.source)) if self._loss_from == "model.py" else self.source,
                hint="a 1-unit output gets float targets of its shape, a w-unit output int64 class indices "
                     "(batch,)") from None
        if not isinstance(loss, torch.Tensor):
            raise ConfigError(f"the loss returned {type(loss).__name__}; it must return a tensor", where=self.source)
        return loss.mean() if loss.ndim else loss

    def _check_weightable(self) -> None:
        if not isinstance(getattr(self._loss, "reduction", None), str):
            raise ConfigError(f"the loss {self._loss_name} cannot weight events (params.json weight): it gives one "
                              "number per batch", where=self.source,
                              hint="use a torch loss module (nn.BCEWithLogitsLoss(), nn.CrossEntropyLoss(), ...) or "
                                   "a Keras loss name")

    def _weighted_loss(self, out: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Σ w·loss / Σ w over the batch: the loss module's own per-event values, weighted."""
        reduction = self._loss.reduction
        self._loss.reduction = "none"
        try:
            per_event = self._loss_of_events(out, target)
        finally:
            self._loss.reduction = reduction
        per_event = per_event.reshape(per_event.shape[0], -1).mean(dim=1)
        total = weight.sum()
        return (per_event * weight).sum() / torch.where(total != 0, total, torch.ones_like(total))

    def _loss_of_events(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self._width == 1:
            target = target.view(out.shape)
        return self._loss(out, target)

    def _correct(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self._width == 1:
            threshold = 0.0 if self._kind == LOGITS else 0.5
            return ((out.reshape(-1) >= threshold) == (target.reshape(-1) > 0.5)).sum()
        if target.ndim == 2:  # one-hot rows
            target = target.argmax(dim=1)
        return (out.argmax(dim=1) == target).sum()

    def _evaluate(self, X: torch.Tensor, y: torch.Tensor, batch_size: int) -> dict[str, float]:
        n = X.shape[0]
        if n == 0:
            return {"val_loss": math.nan, "val_accuracy": math.nan}
        self.model.eval()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        with torch.no_grad():
            for start, stop in _batches(n, max(batch_size, 4096)):
                xb = X[start:stop].to(self.device, non_blocking=True)
                yb = y[start:stop].to(self.device, non_blocking=True)
                out = self.model(xb)
                loss_sum += self._loss_of(out, yb).double() * (stop - start)
                correct += self._correct(out, yb)
        return {"val_loss": float(loss_sum) / n, "val_accuracy": float(correct) / n}

    def _as_target(self, y: np.ndarray, n: int) -> torch.Tensor:
        y = np.asarray(y).reshape(-1)
        if y.shape[0] != n:
            raise ValueError(f"{y.shape[0]} labels for {n} rows")
        if y.size:
            low, high = y.min(), y.max()
            limit = 2 if self._width == 1 else self._width
            if low < 0 or high >= limit:
                raise ValueError(f"labels must be class indices 0..{limit - 1}, got values from {low} to {high}")
        if self._one_hot:
            return _from_numpy(one_hot(y, self._width))
        dtype = np.float32 if self._width == 1 else np.int64
        return _from_numpy(np.ascontiguousarray(y, dtype=dtype))

    # -- random numbers: kept by the adapter, not taken from torch's global generator ----------

    def _cuda_devices(self) -> list[int]:
        return [self.device.index or 0] if self.device.type == "cuda" else []

    def _enter_rng(self) -> None:
        torch.set_rng_state(self._cpu_rng)
        if self.device.type == "cuda":
            if self._cuda_rng is None:
                torch.cuda.manual_seed(self.seed + 1)
            else:
                torch.cuda.set_rng_state(self._cuda_rng, self.device)

    def _leave_rng(self) -> None:
        self._cpu_rng = torch.get_rng_state()
        if self.device.type == "cuda":
            self._cuda_rng = torch.cuda.get_rng_state(self.device)

    # -- prediction ---------------------------------------------------------------------------

    def predict(self, X: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        Xt = _as_input(X)
        self._ensure_checked(Xt.shape[1])
        n = Xt.shape[0]
        width = self._width
        shape = (n,) if self.binary else (n, width)
        result = np.empty(shape, dtype=np.float32)
        self.model.eval()
        with torch.no_grad():
            for start, stop in _batches(n, max(1, batch_size), merge_single=False):
                out = self.model(Xt[start:stop].to(self.device, non_blocking=True))
                result[start:stop] = self._probabilities(out).cpu().numpy()
        return result

    def _probabilities(self, out: torch.Tensor) -> torch.Tensor:
        out = out.float()
        if self._width == 1:
            out = out.reshape(-1)
            return torch.sigmoid(out) if self._kind == LOGITS else out
        if self._kind == LOGITS:
            p = torch.softmax(out, dim=1)
        elif self._kind == LOG_PROBABILITIES:
            p = torch.exp(out)
        else:
            p = out
        return p[:, 1] if self.binary else p

    # -- saving -------------------------------------------------------------------------------

    def save(self, folder: Path) -> dict[str, Any]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self._width is None:
            raise ValueError("save() before the model has seen any data (call check_input or fit first)")
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        atomic_save(state, folder / STATE_FILE)
        method, error = export_torchscript(self.model, self._idim, folder / TORCHSCRIPT_FILE, self.device,
                                           self._saved_method)
        files = [STATE_FILE] + ([TORCHSCRIPT_FILE] if method else [])
        return {
            "framework": self.framework,
            "files": files,
            "state_dict": STATE_FILE,
            "torchscript": TORCHSCRIPT_FILE if method else None,
            "torchscript_method": method,
            "torchscript_error": error,
            "model_class": _class_name(self.model),
            "idim": self._idim,
            "n_classes": self.n_classes,
            "output_units": self._width,
            "outputs": self._kind,
            "loss": self._loss_name,
            "loss_from": self._loss_from,
            "optimizer": type(self._optimizer).__name__ if self._optimizer is not None else None,
            "epochs": self.epochs_done,
            "seed": self.seed,
        }

    _saved_method: str | None = None

    @classmethod
    def load(cls, folder: Path, info: dict[str, Any], *, module: ModuleType | str | os.PathLike | None = None,
             seed: int = 0) -> TorchAdapter:
        """The saved model. With ``module`` (model.py, as a path or an imported module) the
        model is rebuilt and gets the saved state dict (and can train further); without it the
        TorchScript file is used, for prediction only."""
        folder = Path(folder)
        idim = int(info["idim"])
        n_classes = int(info["n_classes"])
        if module is not None:
            if not isinstance(module, ModuleType):
                module = load_model_module(module)
            source = getattr(module, "__file__", None) or "model.py"
            state_path = folder / info.get("state_dict", STATE_FILE)
            if not state_path.exists():
                raise ConfigError("the saved state dict is missing", where=str(state_path))
            state = read_saved(lambda: torch.load(state_path, map_location="cpu", weights_only=True), state_path)
            obj = build_model(module, idim, source)
            if not isinstance(obj, nn.Module):
                raise ConfigError(f"model({idim}) returned {type(obj).__name__}, not a torch.nn.Module", where=source)
            try:
                obj.load_state_dict(state)
            except RuntimeError as err:
                raise ConfigError("the saved weights do not fit the model this model.py builds", where=source,
                                  hint=str(err).strip().splitlines()[0]) from None
            adapter = cls(obj, n_classes, module=module, seed=seed)
            adapter.check_input(idim, source)
            adapter.epochs_done = int(info.get("epochs", 0))
            return adapter
        ts_path = folder / (info.get("torchscript") or TORCHSCRIPT_FILE)
        if info.get("torchscript") and ts_path.exists():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                device = "cuda" if torch.cuda.is_available() else "cpu"
                scripted = read_saved(lambda: torch.jit.load(str(ts_path), map_location=device), ts_path)
            adapter = cls(scripted, n_classes, module=None, seed=seed)
            adapter.source = str(ts_path)
            adapter._kind_fixed = True
            adapter._kind = info["outputs"]
            adapter._width = int(info["output_units"])
            adapter._idim = idim
            adapter._loss_name = info.get("loss")
            adapter._loss_from = info.get("loss_from")
            adapter._trainable = False
            adapter._saved_method = info.get("torchscript_method")
            adapter.epochs_done = int(info.get("epochs", 0))
            return adapter
        reason = info.get("torchscript_error") or "no TorchScript file"
        raise ConfigError(
            "this PyTorch model was saved as a state dict only, so loading it needs the model.py that built it",
            where=str(folder / info.get("state_dict", STATE_FILE)),
            hint=f"TorchScript export failed ({reason}); load with module='path/to/model.py'")

    # -- checkpoints --------------------------------------------------------------------------

    def save_checkpoint(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        opt = self._ensure_optimizer() if self._trainable else None
        state = {
            "format": CHECKPOINT_FORMAT,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": opt.state_dict() if opt is not None else None,
            "shuffle_rng": self._shuffle.get_state(),
            "cpu_rng": self._cpu_rng.clone(),
            "cuda_rng": None if self._cuda_rng is None else self._cuda_rng.cpu().clone(),
            "epochs_done": self.epochs_done,
            "seed": self.seed,
        }
        atomic_save(state, folder / CHECKPOINT_FILE)

    def load_checkpoint(self, folder: Path) -> None:
        path = Path(folder) / CHECKPOINT_FILE
        if not path.exists():
            raise ConfigError("no PyTorch checkpoint here", where=str(path))
        state = read_saved(lambda: torch.load(path, map_location="cpu", weights_only=True), path)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError("not a checkpoint written by mlaas4hep", where=str(path))
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as err:
            raise ConfigError("the checkpoint's weights do not fit this model", where=str(path),
                              hint=str(err).strip().splitlines()[0]) from None
        if state["optimizer"] is not None and self._trainable:
            self._ensure_optimizer().load_state_dict(state["optimizer"])
        self._shuffle.set_state(state["shuffle_rng"])
        self._cpu_rng = state["cpu_rng"]
        self._cuda_rng = state["cuda_rng"] if self.device.type == "cuda" else None
        self.epochs_done = int(state["epochs_done"])

    @staticmethod
    def versions() -> dict[str, str]:
        versions = {"torch": torch.__version__, "python": platform.python_version()}
        if torch.version.cuda and torch.cuda.is_available():
            versions["cuda"] = str(torch.version.cuda)
        return versions


# ---------------------------------------------------------------------------------------------
# helpers


def _first_in_features(model: nn.Module) -> int | None:
    for m in model.modules():
        n = getattr(m, "in_features", None)
        if isinstance(n, int) and n > 0:
            return n
    return None


def _class_name(obj: Any) -> str:
    cls = type(obj)
    name = getattr(obj, "original_name", None) if isinstance(obj, torch.jit.ScriptModule) else None
    return name or f"{cls.__module__}.{cls.__qualname__}"


def _from_numpy(a: np.ndarray) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # read-only arrays: never written through
        return torch.from_numpy(a)


def _as_input(X: np.ndarray) -> torch.Tensor:
    """float32 (n, features) tensor sharing memory with X when X already is C-contiguous float32."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"expected rows of shape (n, features), got an array of shape {X.shape}")
    return _from_numpy(np.ascontiguousarray(X, dtype=np.float32))


def _batches(n: int, size: int, merge_single: bool = True) -> list[tuple[int, int]]:
    """(start, stop) of each batch; a last batch of one row joins the one before (BatchNorm
    cannot train on a single row)."""
    bounds = [(s, min(s + size, n)) for s in range(0, n, size)]
    if merge_single and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def _available_cpus() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = None
    try:  # cgroup v2
        fields = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if fields and fields[0] != "max":
            quota = int(fields[0]) / int(fields[1])
    except (OSError, ValueError, IndexError):
        try:  # cgroup v1
            q = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
            p = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            if q > 0 and p > 0:
                quota = q / p
        except (OSError, ValueError):
            pass
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def _configure_threads() -> None:
    """Cap torch's CPU threads at the CPUs this process may use, once, unless the thread
    count was chosen through the environment or is already at or below that."""
    global _threads_configured
    if _threads_configured:
        return
    _threads_configured = True
    if os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
        return
    available = _available_cpus()
    if torch.get_num_threads() > available:
        torch.set_num_threads(available)
