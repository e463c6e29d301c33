"""Keras 3 models (the original MLaaS4HEP contract: model.py returns a compiled Keras model).

An uncompiled model is compiled with Adam and the loss that fits the labels
(``binary_crossentropy`` for a 1-unit output, ``sparse_categorical_crossentropy`` for k units),
with accuracy as metric. The model's output is taken as probabilities: a sigmoid unit for binary
labels, or softmax units (for two classes, the second unit is the probability of class 1).

A model compiled with a categorical loss (``"categorical_crossentropy"``, a
``keras.losses.CategoricalCrossentropy()`` object or the function; also the focal and hinge
variants) gets its labels one-hot encoded, one column per output unit, as the original did.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ..errors import ConfigError
from . import EpochCallback, ModelAdapter, one_hot, wants_one_hot


class _EpochEvents(keras.callbacks.Callback):
    def __init__(self, on_epoch: EpochCallback | None):
        super().__init__()
        self.on_epoch = on_epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.on_epoch is not None:
            self.on_epoch({k: float(v) for k, v in (logs or {}).items()})


def _loss_text(loss: Any) -> str:
    return repr(loss) if isinstance(loss, str) else type(loss).__name__


class KerasAdapter(ModelAdapter):
    framework = "keras"

    def __init__(self, model: Any, n_classes: int, module: Any = None, seed: int = 0):
        super().__init__(model, n_classes, module, seed)
        if not getattr(model, "compiled", False) or model.optimizer is None:
            loss = "binary_crossentropy" if self.binary and self._outputs() in (None, 1) else \
                "sparse_categorical_crossentropy"
            model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
        #: labels are given to the loss as one-hot rows (a categorical loss), not class indices
        self.one_hot = wants_one_hot(getattr(model, "loss", None))

    def _outputs(self) -> int | None:
        try:
            return int(self.model.output_shape[-1])
        except (AttributeError, ValueError, TypeError):
            return None

    def check_input(self, n_features: int, source: str) -> None:
        try:
            shape = self.model.input_shape
        except (AttributeError, ValueError):
            shape = None
        if shape is None:
            try:
                self.model.build((None, n_features))
                shape = self.model.input_shape
            except Exception as err:  # noqa: BLE001 - user model; explained below
                raise ConfigError(f"the Keras model cannot be built for {n_features} input features: {err}",
                                  where=source) from None
        if isinstance(shape, list):
            raise ConfigError(f"the Keras model has {len(shape)} inputs; it must take one, of "
                              f"{n_features} features", where=source)
        if shape[-1] is not None and int(shape[-1]) != n_features:
            raise ConfigError(
                f"the model's input size is {shape[-1]} but the data has {n_features} features",
                where=source, hint="build the model with Input(shape=(idim,)) using model(idim)'s argument")
        outputs = self._outputs()
        if self.one_hot and outputs is not None and outputs < 2:
            raise ConfigError(f"the model is compiled with {_loss_text(self.model.loss)}, which needs one output "
                              "unit per class, but it has 1 output", where=source,
                              hint="use Dense(2, activation='softmax') for two classes, or loss='binary_crossentropy' "
                                   "with one sigmoid unit")
        if self.binary and outputs not in (1, 2):
            raise ConfigError(f"the labels are binary but the model has {outputs} outputs; use one sigmoid "
                              "unit (or two softmax units)", where=source)
        if not self.binary and outputs != self.n_classes:
            raise ConfigError(f"the labels have {self.n_classes} classes but the model has {outputs} outputs",
                              where=source, hint=f"end the model with Dense({self.n_classes}, activation='softmax')")

    def fit(self, X: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int,
            validation: tuple[np.ndarray, np.ndarray] | None = None,
            on_epoch: EpochCallback | None = None,
            sample_weight: np.ndarray | None = None) -> list[dict[str, float]]:
        if self.one_hot:  # a categorical loss takes one-hot rows, as the original encoded them
            width = self._outputs() or self.n_classes
            y = one_hot(y, width)
            if validation is not None:
                validation = (validation[0], one_hot(validation[1], width))
        history = self.model.fit(
            X, y, epochs=epochs, batch_size=batch_size, validation_data=validation, shuffle=True,
            sample_weight=None if sample_weight is None else np.asarray(sample_weight, dtype=np.float32),
            verbose=0, callbacks=[_EpochEvents(on_epoch)],
        )
        keys = list(history.history)
        return [{k: float(history.history[k][i]) for k in keys} for i in range(len(history.epoch))]

    def predict(self, X: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        if len(X) == 0:
            return np.empty((0,) if self.binary else (0, self.n_classes), np.float32)
        return self._scores(np.asarray(self.model.predict(X, batch_size=batch_size, verbose=0)))

    def predict_batch(self, X: np.ndarray) -> np.ndarray:
        """:meth:`predict` of rows that fit one batch, without ``model.predict``'s per-call set-up
        (a data pipeline and callbacks: milliseconds per call), for serving small requests."""
        if len(X) == 0:
            return self.predict(X)
        return self._scores(np.asarray(self.model.predict_on_batch(X)))

    def _scores(self, out: np.ndarray) -> np.ndarray:
        if self.binary:
            return out[:, 1] if out.ndim == 2 and out.shape[1] == 2 else out.reshape(-1)
        return out

    def save(self, folder: Path) -> dict[str, Any]:
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save(folder / "model.keras")
        info: dict[str, Any] = {"model": "model.keras", "n_classes": self.n_classes}
        try:
            self.model.export(str(folder / "saved_model"), format="tf_saved_model", verbose=False)
            info["saved_model"] = "saved_model"
        except Exception as err:  # noqa: BLE001 - serving export is optional; recorded
            info["saved_model_error"] = f"{type(err).__name__}: {err}"
        return info

    @classmethod
    def load(cls, folder: Path, info: dict[str, Any], module: Any = None) -> KerasAdapter:
        custom = {}
        if module is not None:  # custom layers defined in model.py
            custom = {n: v for n, v in vars(module).items() if isinstance(v, type)}
        try:
            model = keras.models.load_model(folder / info.get("model", "model.keras"), custom_objects=custom)
        except Exception as err:  # noqa: BLE001 - explained to the user
            raise ConfigError(f"cannot load the Keras model: {err}", where=str(folder / "model.keras"),
                              hint="a model with custom layers needs its model.py") from None
        return cls(model, int(info.get("n_classes", 2)), module=module)

    def save_checkpoint(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "model.keras.part.keras"
        self.model.save(tmp)  # includes the optimizer state
        os.replace(tmp, folder / "model.keras")

    def load_checkpoint(self, folder: Path) -> None:
        custom = {n: v for n, v in vars(self.module).items() if isinstance(v, type)} if self.module else {}
        try:
            self.model = keras.models.load_model(folder / "model.keras", custom_objects=custom)
        except Exception as err:  # noqa: BLE001 - a damaged checkpoint, explained to the user
            raise ConfigError(f"cannot load the Keras checkpoint: {err}", where=str(folder / "model.keras"),
                              hint="run without --resume to start again") from None

    @staticmethod
    def versions() -> dict[str, str]:
        import tensorflow as tf

        return {"keras": keras.__version__, "tensorflow": tf.__version__, "backend": keras.backend.backend(),
                "python": platform.python_version()}
