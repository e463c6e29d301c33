"""MLaaS4HEP Lab: the Jupyter side of MLaaS4HEP.

- the server extension (``mlaas4hep_lab.app``): the jobs API for this JupyterLab;
- ``%load_ext mlaas4hep_lab``: the ``%mlaas4hep`` magic (``mlaas4hep_lab.magics``);
- ``mlaas4hep_lab.Workbench`` and the other panels (``mlaas4hep_lab.widgets``).

Widgets are imported on first use, so the server extension never loads ipywidgets.
"""

from typing import Any

from mlaas4hep import __version__

_WIDGETS = ("Workbench", "WorkbenchState", "PreprocBuilder", "BranchExplorer", "TrainingMonitor", "SubmitPanel",
            "LiveChart")


def _jupyter_server_extension_points() -> list[dict]:
    from .app import MLaaS4HEPLab

    return [{"module": "mlaas4hep_lab", "app": MLaaS4HEPLab}]


def load_ipython_extension(ipython) -> None:
    """``%load_ext mlaas4hep_lab``: registers the ``%mlaas4hep`` magic (see mlaas4hep_lab.magics)."""
    from .magics import MLaaS4HEPMagics

    ipython.register_magics(MLaaS4HEPMagics)


def __getattr__(name: str) -> Any:
    if name in _WIDGETS:
        from . import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__", *_WIDGETS]
