"""ipywidgets panels over one shared state: build the preproc, explore branches and cuts, submit
and monitor training. ``Workbench`` puts them together. (Imported on first use.)"""

from importlib import import_module
from typing import Any

_WHERE = {
    "Workbench": ".workbench", "WorkbenchState": ".state", "PreprocBuilder": ".builder",
    "BranchExplorer": ".explorer", "TrainingMonitor": ".monitor", "SubmitPanel": ".submit", "LiveChart": ".chart",
}
__all__ = list(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
