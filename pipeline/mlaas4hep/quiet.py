"""TensorFlow's C++ start-up noise, kept out of job logs and the terminal.

TensorFlow 2.20+ logs through absl before absl is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` no
longer silences lines such as ``WARNING: All log messages before absl::InitializeLog() ...`` and
``I0000 ... port.cc:153] oneDNN custom operations are on ...``. They are written while the
library loads, i.e. during ``import tensorflow``. :func:`install` wraps that one import (whoever
makes it: keras, model.py, the engine): file descriptor 2 goes to a temporary file meanwhile, and
afterwards every line of it except absl's informational lines is written back to stderr.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile
from types import ModuleType

_NOISE = re.compile(
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|[IW]\d{4} [\d:. ]+\s+\d+ [\w.]+:\d+\] .*"  # absl INFO / WARNING lines
    rb"|E\d{4} [\d:. ]+\s+\d+ [\w.]+:\d+\] Unable to register cu\w+ factory.*"  # GPU plugins on a CPU machine
)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def __getattr__(self, name: str):  # is_package, get_resource_reader, ...: the real loader's
        return getattr(self.loader, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                self.loader.exec_module(module)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                kept = [line for line in capture.read().splitlines(keepends=True)
                        if not _NOISE.fullmatch(line.rstrip(b"\r\n"))]
                if kept:
                    os.write(2, b"".join(kept))


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as the other finders do, and loads it quietly (once)."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Make the next ``import tensorflow`` in this process quiet (a no-op once it is imported)."""
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder())
