"""Framework adapters: one interface over Keras 3 and PyTorch models.

The user's model.py defines ``def model(idim)`` (the original MLaaS4HEP contract) returning a
compiled Keras model or a ``torch.nn.Module``. The framework is detected from the returned
object; TensorFlow and PyTorch are imported only when needed. model.py is the only user code
that is ever run, and only in the training process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError

# TensorFlow's C++ start-up chatter; set before model.py imports keras (the user can override)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EpochCallback = Callable[[dict[str, float]], None]

#: Losses whose targets are one-hot rows: as the original did, integer labels are one-hot encoded
#: for them (``ex_keras.py``: two softmax units with ``loss="categorical_crossentropy"``).
ONE_HOT_LOSSES = frozenset({"categorical_crossentropy", "categorical_focal_crossentropy", "categorical_hinge"})


def loss_key(name: str) -> str:
    """A loss name in one spelling: ``CategoricalCrossentropy`` and ``categorical_crossentropy``
    are both ``categoricalcrossentropy``."""
    return name.replace("_", "").lower()


def wants_one_hot(loss: Any) -> bool:
    """Whether a loss (a name, a loss object or a loss function, of Keras or the user) takes
    one-hot targets rather than class indices."""
    keys = {loss_key(n) for n in ONE_HOT_LOSSES}
    if isinstance(loss, str):
        return loss_key(loss) in keys
    for candidate in (loss, getattr(loss, "fn", None)):  # keras.losses.LossFunctionWrapper keeps .fn
        if candidate is None:
            continue
        name = getattr(candidate, "__name__", None) or type(candidate).__name__
        if loss_key(name) in keys:
            return True
        if loss_key(type(candidate).__name__) in keys:
            return True
    return False


def one_hot(y: np.ndarray, width: int) -> np.ndarray:
    """Integer labels as float32 one-hot rows of ``width`` columns."""
    y = np.asarray(y).reshape(-1)
    if y.size and (y.min() < 0 or y.max() >= width):
        raise ValueError(f"labels must be class indices 0..{width - 1}, got values from {y.min()} to {y.max()}")
    out = np.zeros((y.shape[0], width), np.float32)
    out[np.arange(y.shape[0]), y.astype(np.int64, copy=False)] = 1.0
    return out


class ModelAdapter(ABC):
    """What the trainer needs from a model, whatever its framework."""

    framework: ClassVar[str]

    def __init__(self, model: Any, n_classes: int, module: ModuleType | None = None, seed: int = 0):
        self.model = model
        self.n_classes = max(2, n_classes)
        self.module = module
        self.seed = seed

    @property
    def binary(self) -> bool:
        return self.n_classes <= 2

    @abstractmethod
    def check_input(self, n_features: int, source: str) -> None:
        """Raise a ConfigError when the model cannot take ``n_features`` inputs or its output
        does not fit the number of classes."""

    @abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int,
            validation: tuple[np.ndarray, np.ndarray] | None = None,
            on_epoch: EpochCallback | None = None,
            sample_weight: np.ndarray | None = None) -> list[dict[str, float]]:
        """Train on one block of rows; metrics (loss, val_loss, ...) per epoch. ``sample_weight``:
        one weight per row (params.json ``weight``): each row's loss counts in proportion."""

    @abstractmethod
    def predict(self, X: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Probabilities: shape (n,) for binary labels (of class 1), (n, k) for k classes."""

    @abstractmethod
    def save(self, folder: Path) -> dict[str, Any]:
        """Write the trained model into ``folder``; returns what to record about it."""

    @classmethod
    @abstractmethod
    def load(cls, folder: Path, info: dict[str, Any], module: ModuleType | None = None) -> ModelAdapter:
        """The adapter of a saved model (``info`` is what :meth:`save` returned; ``module`` the
        user's model.py, for what cannot be loaded without it)."""

    @abstractmethod
    def save_checkpoint(self, folder: Path) -> None:
        """Weights and optimizer state, to resume training."""

    @abstractmethod
    def load_checkpoint(self, folder: Path) -> None:
        ...

    @staticmethod
    @abstractmethod
    def versions() -> dict[str, str]:
        """Library versions, recorded in the artifact."""


# ---------------------------------------------------------------------------------------------
# model.py


def load_model_module(path: str | os.PathLike) -> ModuleType:
    """Import the user's model.py (in this process); errors name the file and line."""
    path = Path(path)
    if not path.exists():
        raise ConfigError("model file not found", where=str(path))
    if path.is_dir():
        raise ConfigError("expected a model.py file, got a folder", where=str(path))
    name = "mlaas4hep_user_model_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError("cannot load this file as Python (does it end in .py?)", where=str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling need the module registered
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        sys.modules.pop(name, None)
        where = f"{path}:{err.lineno}" if err.lineno else str(path)
        raise ConfigError(f"syntax error: {err.msg}", where=where,
                          hint=(err.text or "").strip() or None) from None
    except Exception as err:  # noqa: BLE001 - any failure of user code is reported, with its line
        sys.modules.pop(name, None)
        raise ConfigError(f"importing it failed: {type(err).__name__}: {err}", where=_user_line(err, path)) from None
    return module


def _user_line(err: BaseException, path: Path) -> str:
    """``path:line`` of the deepest frame of the user's file in the traceback."""
    line = None
    resolved = str(path.resolve())
    for frame in traceback.extract_tb(err.__traceback__):
        if os.path.abspath(frame.filename) == resolved:
            line = frame.lineno
    return f"{path}:{line}" if line else str(path)


def build_model(module: ModuleType, idim: int, source: str) -> Any:
    """Call ``module.model(idim)``; errors say what the contract is."""
    fn = getattr(module, "model", None)
    if fn is None or not callable(fn):
        defined = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                         and getattr(v, "__module__", None) == module.__name__)
        raise ConfigError(
            "defines no function 'model(idim)'", where=source,
            hint=("it defines " + ", ".join(defined)) if defined else "add def model(idim): ... return a compiled model",
        )
    try:
        params = inspect.signature(fn).parameters
        if len([p for p in params.values() if p.default is inspect.Parameter.empty and p.kind in
                (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) > 1:
            raise ConfigError("model() must take one argument, the number of input features (idim)",
                              where=source)
    except (TypeError, ValueError):
        pass
    try:
        return fn(idim)
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - user code; reported with its line
        raise ConfigError(f"model({idim}) failed: {type(err).__name__}: {err}",
                          where=_user_line(err, Path(source))) from None


def detect_framework(obj: Any) -> str | None:
    """``keras`` or ``torch`` from the class hierarchy, without importing either."""
    for cls in type(obj).__mro__:
        module = cls.__module__ or ""
        if module.startswith("keras") and cls.__name__ in ("Model", "Sequential", "Functional"):
            return "keras"
        if module.startswith("torch.nn") and cls.__name__ == "Module":
            return "torch"
    return None


def adapter_class(framework: str) -> type[ModelAdapter]:
    if framework == "keras":
        from .keras_adapter import KerasAdapter

        return KerasAdapter
    if framework == "torch":
        from .torch_adapter import TorchAdapter

        return TorchAdapter
    raise ValueError(f"unknown framework {framework!r}")


def make_adapter(model_path: str | os.PathLike, idim: int, n_classes: int, seed: int = 0) -> ModelAdapter:
    """Load model.py, build the model for ``idim`` features, wrap it in its adapter, and check it."""
    module = load_model_module(model_path)
    source = str(model_path)
    _seed_everything(seed)
    obj = build_model(module, idim, source)
    framework = detect_framework(obj)
    if framework is None:
        raise ConfigError(
            f"model({idim}) returned {type(obj).__module__}.{type(obj).__name__}; expected a compiled "
            "Keras model (keras.Model) or a torch.nn.Module", where=source)
    adapter = adapter_class(framework)(obj, n_classes, module=module, seed=seed)
    adapter.check_input(idim, source)
    return adapter


def _seed_everything(seed: int) -> None:
    """Seed the frameworks that are already imported (model.py imported them)."""
    if "keras" in sys.modules:
        sys.modules["keras"].utils.set_random_seed(seed)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)
