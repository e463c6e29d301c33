"""Loading the XRootD Python bindings safely.

The bindings (xrootd 5.6 to 6.x wheels) crash the interpreter with a segmentation fault when they
are first imported after TensorFlow in the same process; imported before it, both work. So
``import mlaas4hep`` puts a finder in front of the import system that loads them (where they are
installed, about 20 ms) just before TensorFlow is first imported, by anyone; a process that never
imports TensorFlow loads them only when it reads a ``root://`` URL (and never pays for them, nor for
their exit handler, which looks at every object alive). Reading a ``root://`` URL in a process that
loaded TensorFlow before ``mlaas4hep`` is refused with a clear message instead of a crash (a
notebook that ran ``import keras`` before ``import mlaas4hep``, say).
"""

from __future__ import annotations

import sys
import warnings
from types import ModuleType

from .errors import DataError

_TF_MODULES = ("tensorflow", "keras.src.backend.tensorflow")


def _quiet_exit() -> None:
    # The bindings' exit handler looks at every object alive (isinstance on each); PyTorch answers
    # that with a FutureWarning on stderr at every exit. It says nothing to the user: hide it.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"XRootD\.client\.finalize")


class _BeforeTensorFlow:
    """A meta path finder that finds nothing: asked for ``tensorflow`` (what ``import keras``
    with its TensorFlow backend, ``tf_keras`` and ``import tensorflow`` all import first), it
    loads the bindings, steps aside, and lets the import go on."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "tensorflow":
            try:
                sys.meta_path.remove(self)
            except ValueError:  # another thread removed it
                return None
            preload()
        return None


def preload_before_tensorflow() -> None:
    """Have the bindings imported just before TensorFlow is first imported (nothing to do where
    either is loaded already)."""
    if "XRootD.client" in sys.modules or any(name in sys.modules for name in _TF_MODULES):
        return
    if not any(type(f).__name__ == _BeforeTensorFlow.__name__ for f in sys.meta_path):  # once, reloads too
        sys.meta_path.insert(0, _BeforeTensorFlow())


def preload() -> None:
    """Import the bindings now if they are installed and TensorFlow is not loaded yet."""
    if "XRootD.client" in sys.modules or any(name in sys.modules for name in _TF_MODULES):
        return
    try:
        import XRootD.client  # noqa: F401
    except ImportError:
        return
    _quiet_exit()


def client(where: str) -> ModuleType:
    """``XRootD.client``, or a :class:`DataError` saying why it cannot be loaded here."""
    if "XRootD.client" in sys.modules:
        return sys.modules["XRootD.client"]
    if "tensorflow" in sys.modules:
        raise DataError(
            "the XRootD Python bindings crash this process when they are loaded after TensorFlow, "
            "and TensorFlow is already loaded", where=where,
            hint="import mlaas4hep before tensorflow or keras (restart the kernel first), or read "
                 "the file in a job, which starts a fresh process")
    try:
        import XRootD.client as xrd
    except ImportError:
        raise DataError("reading root:// URLs needs the XRootD Python bindings", where=where,
                        hint="pip install xrootd") from None
    _quiet_exit()
    return xrd
