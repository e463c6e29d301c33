"""MLaaS4HEP engine: stream ROOT files of any size into training-ready arrays.

The public API::

    ds = mlaas4hep.Dataset(files, labels=None, params=None, preproc=None)
    ds.specs()                 # branch kinds, min/max, jdim, NaN and event counts
    for X, y in ds.chunks():   # X float32 (n, n_features), y int labels (None if unlabelled)
        ...
    artifact = mlaas4hep.train(ds, model="model.py", on_event=print)
    mlaas4hep.Artifact.load(path).predict(arrays_or_files)
"""

from . import xrootd as _xrootd

_xrootd.preload_before_tensorflow()  # the bindings load before TensorFlow if ever: see mlaas4hep/xrootd.py

import sys as _sys
import types as _types

from ._version import __version__
from .config import Params, Preproc, load_params, load_preproc
from .dataset import Dataset
from .errors import ConfigError, DataError, ExpressionError, MLaaS4HEPError
from .expr import compile_expression

# ``Artifact`` and ``train`` (with the adapters, evaluation, checkpoints and metrics they bring)
# are imported when first used: a process that only reads data does not pay for them.
_LAZY = {"Artifact": ".artifact", "train": ".train"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


class _Package(_types.ModuleType):
    """``mlaas4hep.train`` is the function, as ``from .train import train`` made it when it was
    imported eagerly: importing the submodule ``mlaas4hep.train`` (which sets the package's
    attribute to the module) keeps it so."""

    def __setattr__(self, name: str, value) -> None:
        if name == "train" and isinstance(value, _types.ModuleType):
            value = value.train
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package

__all__ = [
    "__version__",
    "Dataset",
    "Artifact",
    "train",
    "Params",
    "Preproc",
    "load_params",
    "load_preproc",
    "compile_expression",
    "MLaaS4HEPError",
    "ConfigError",
    "DataError",
    "ExpressionError",
]
