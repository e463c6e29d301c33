"""``LiveChart``: live training curves (loss, val_loss, accuracy, ...) drawn as SVG in the
browser by ``chart.js``, an anywidget module with no build step and no external imports."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import anywidget
from traitlets import Bool, Dict, Float, List, Unicode

CSS = """
.mlaas4hep-chart {
  font-family: var(--jp-ui-font-family, sans-serif);
  font-size: var(--jp-ui-font-size1, 13px);
  color: var(--jp-ui-font-color1, #222);
  background: var(--jp-layout-color1, #fff);
  width: 100%;
  min-width: 200px;
}
.mlaas4hep-chart-title { font-weight: 600; margin: 2px 0 4px 4px; }
.mlaas4hep-chart svg { display: block; overflow: visible; }
.mlaas4hep-chart svg text { fill: var(--jp-ui-font-color2, #555); font-size: var(--jp-ui-font-size0, 11px); }
.mlaas4hep-chart svg text.label { fill: var(--jp-ui-font-color1, #222); font-size: var(--jp-ui-font-size1, 13px); }
.mlaas4hep-chart svg text.empty { fill: var(--jp-ui-font-color3, #999); }
.mlaas4hep-chart svg .grid line { stroke: var(--jp-border-color2, #e0e0e0); stroke-width: 1; }
.mlaas4hep-chart svg rect.frame { stroke: var(--jp-border-color1, #bdbdbd); stroke-width: 1; }
.mlaas4hep-chart svg .marks line { stroke: var(--jp-ui-font-color3, #999); stroke-opacity: 0.35;
  stroke-width: 1; stroke-dasharray: 2 3; }
.mlaas4hep-chart-legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 4px 0 0 56px; }
.mlaas4hep-chart-legend .item { display: inline-flex; align-items: center; gap: 4px; white-space: nowrap; }
"""


def _point(x: Any, y: Any) -> list:
    """[x, y] with y None when missing or not finite (JSON has no NaN)."""
    x = float(x)
    if y is not None:
        y = float(y)
        if not math.isfinite(y):
            y = None
    return [int(x) if x.is_integer() else x, y]


class LiveChart(anywidget.AnyWidget):
    """Curves that grow while a model trains.

    Synced traits: ``series`` (name -> list of ``[x, y]``; ``y`` may be None, which breaks the
    line), ``x_label``, ``y_label``, ``log_y``, ``title``, and ``marks`` (x positions drawn as
    faint vertical lines, e.g. chunk boundaries). A name ``val_<m>`` is drawn dashed in the
    colour of ``<m>``. The browser side creates its SVG once and then only updates it.

    Change ``series`` through :meth:`set_series`, :meth:`append`, :meth:`extend` and
    :meth:`clear` (they re-assign the dict, so that the change is synced); they may be called
    from any thread.
    """

    _esm = Path(__file__).with_name("chart.js")
    _css = CSS

    series = Dict(default_value={}).tag(sync=True)
    x_label = Unicode("step").tag(sync=True)
    y_label = Unicode("").tag(sync=True)
    log_y = Bool(False).tag(sync=True)
    title = Unicode("").tag(sync=True)
    marks = List(Float(), default_value=[]).tag(sync=True)

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._lock = threading.RLock()

    def set_series(self, name: str, points: Iterable[Iterable[Any]]) -> None:
        """Replace (or add) one series."""
        with self._lock:
            series = dict(self.series)
            series[name] = [_point(x, y) for x, y in points]
            self.series = series

    def append(self, name: str, x: float, y: float | None) -> None:
        """Add one point to a series (created if new)."""
        self.extend({name: [(x, y)]})

    def extend(self, points: Mapping[str, Iterable[Iterable[Any]]]) -> None:
        """Add points to several series at once: one update for the browser."""
        with self._lock:
            series = dict(self.series)
            for name, new in points.items():
                series[name] = [*series.get(name, []), *(_point(x, y) for x, y in new)]
            self.series = series

    def add_mark(self, x: float) -> None:
        """Add a vertical line at ``x`` (once)."""
        with self._lock:
            if float(x) not in self.marks:
                self.marks = [*self.marks, float(x)]

    def clear(self) -> None:
        """Remove every series and mark."""
        with self._lock:
            self.series = {}
            self.marks = []
