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

from ._version import __version__
from .artifact import Artifact
from .config import Params, Preproc, load_params, load_preproc
from .dataset import Dataset
from .errors import ConfigError, DataError, ExpressionError, MLaaS4HEPError
from .expr import compile_expression
from .train import train

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
