"""Jupyter kernelspecs whose Python can run a job, found without importing Jupyter.

A kernelspec is a folder ``kernels/<name>/kernel.json`` in one of Jupyter's data paths
(``$JUPYTER_PATH``, the user's, the environment's, the system's); its ``argv[0]`` is the
interpreter. Only Python kernels are listed.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from .models import KernelInfo

DEFAULT = "python3"


def data_paths() -> list[Path]:
    """Jupyter's data folders, most specific first (as jupyter_core orders them)."""
    paths = [Path(p) for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    user = os.environ.get("JUPYTER_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "jupyter")
    paths.append(Path(user))
    paths.append(Path(sys.prefix) / "share" / "jupyter")
    paths += [Path("/usr/local/share/jupyter"), Path("/usr/share/jupyter")]
    return paths


def find_kernels() -> dict[str, KernelInfo]:
    """Python kernelspecs by name (the first found wins), and ``python3`` = this interpreter
    when no kernelspec of that name exists."""
    found: dict[str, KernelInfo] = {}
    for base in data_paths():
        folder = base / "kernels"
        if not folder.is_dir():
            continue
        for spec in sorted(folder.iterdir()):
            name = spec.name.lower()
            if name in found:
                continue
            try:
                data = json.loads((spec / "kernel.json").read_text())
            except (OSError, ValueError):
                continue
            argv = data.get("argv") or []
            if data.get("language", "python").lower() != "python" or not argv:
                continue
            python = _interpreter(argv[0])
            if python:
                found[name] = KernelInfo(name=name, display_name=data.get("display_name", name), python=python)
    found.setdefault(DEFAULT, KernelInfo(name=DEFAULT, display_name=f"Python {sys.version.split()[0]} (server)",
                                         python=sys.executable))
    return found


def _interpreter(program: str) -> str | None:
    if program in ("python", "python3", "{python}") or program.endswith("{python}"):
        return sys.executable  # jupyter_client resolves these to the server's interpreter
    if os.path.isabs(program):
        return program if os.access(program, os.X_OK) else None
    return shutil.which(program)
