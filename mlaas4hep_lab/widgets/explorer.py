"""BranchExplorer: a branch's histogram before and after the current cuts, overlaid per label,
and the cut flow, on a sample of each file, with the engine's own preproc.

It follows the shared state: when the builder publishes a new preproc, the histogram and the
cut flow update (debounced). Figures are drawn with matplotlib's Agg canvas (no pyplot global
state) into an image widget.
"""

from __future__ import annotations

import html
import io
import threading
import time
from typing import Any

import ipywidgets as w
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mlaas4hep.config import JAGGED
from mlaas4hep.errors import MLaaS4HEPError
from mlaas4hep.explore import Histogram

from .state import WorkbenchState

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


class BranchExplorer(w.VBox):
    """Histogram of a branch (before / after the cuts, per label) and the cut flow."""

    def __init__(self, state: WorkbenchState, debounce: float = 0.1):
        super().__init__()
        self.state = state
        self.debounce = debounce
        self.branch = w.Dropdown(description="branch", options=[], layout=w.Layout(width="320px"))
        self.show = w.ToggleButtons(options=["values", "multiplicity"], value="values",
                                    tooltips=["the values (every element of a jagged branch)",
                                              "elements per event (jagged branches)"])
        self.normalise = w.Checkbox(value=False, description="normalised", indent=False)
        self.log_y = w.Checkbox(value=False, description="log y", indent=False)
        self.bins = w.IntSlider(value=50, min=5, max=200, step=5, description="bins", continuous_update=False)
        self.sample_size = w.BoundedIntText(value=state.sample_size, min=100, max=10_000_000, step=1000,
                                            description="events/file", style={"description_width": "initial"},
                                            layout=w.Layout(width="200px"))
        self.image = w.Image(format="png", layout=w.Layout(max_width="760px"))
        self.cutflow = w.HTML()
        self.status = w.HTML()
        self.histogram: Histogram | None = None  # what is drawn (for tests)
        self.cutflow_rows: list[dict] = []
        self.last_update_ms: float | None = None
        self.updates = 0
        self._figure = Figure(figsize=(7.2, 3.8), dpi=90)
        FigureCanvasAgg(self._figure)
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._drawing = threading.Lock()  # one update at a time: the figure is not thread-safe
        for control in (self.branch, self.show, self.normalise, self.log_y, self.bins):
            control.observe(lambda _: self.schedule(), "value")
        self.sample_size.observe(self._resize, "value")
        state.observe(lambda _: self.schedule(), "preproc")
        state.observe(lambda _: self.schedule(options=True), ["files", "labels", "params", "sample_size"])
        self.children = [
            w.HBox([self.branch, self.show]),
            w.HBox([self.normalise, self.log_y, self.bins, self.sample_size]),
            self.image, self.status, w.HTML("<b>Cut flow</b>"), self.cutflow,
        ]
        if state.files:
            self.schedule(options=True)

    def _resize(self, change: dict) -> None:
        self.state.sample_size = change["new"]

    def schedule(self, options: bool = False) -> None:
        """Update after a short quiet time (several quick edits cost one update)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.debounce, self.update, kwargs={"options": options})
            self._timer.daemon = True
            self._timer.start()

    def update(self, options: bool = False) -> None:
        """Recompute the histogram and the cut flow now, in this thread."""
        with self._drawing:
            self._update(options)

    def _update(self, options: bool) -> None:
        start = time.perf_counter()
        try:
            sample = self.state.sample()
            if sample is None:
                self.status.value = "<i>choose files in the builder</i>"
                return
            preproc = dict(self.state.preproc) or None
            evaluation = sample.evaluate(preproc)
            names = list(evaluation.kinds)
            if options or list(self.branch.options) != names:
                current = self.branch.value
                self.branch.options = names
                if current in names:
                    self.branch.value = current
                elif names:
                    self.branch.value = self._interesting(names, preproc or {})
            name = self.branch.value
            if not name:
                return
            jagged = evaluation.kinds[name] == JAGGED
            self.show.disabled = not jagged
            multiplicity = jagged and self.show.value == "multiplicity"
            self.histogram = sample.histogram(name, preproc, bins=self.bins.value, multiplicity=multiplicity)
            self.image.value = self._draw(self.histogram)
            self.cutflow_rows = sample.cutflow(preproc)
            self.cutflow.value = cutflow_html(self.cutflow_rows, sample.groups)
            self.last_update_ms = (time.perf_counter() - start) * 1000
            self.updates += 1
            events = sample.events()
            self.status.value = (f"<small>sample: the first {min(events):,}–{max(events):,} events of each of "
                                 f"{len(events)} file(s); updated in {self.last_update_ms:.0f} ms</small>")
        except MLaaS4HEPError as err:
            self.status.value = f'<span style="color: var(--jp-error-color1, #d32f2f)">{html.escape(str(err))}</span>'

    def _interesting(self, names: list[str], preproc: dict) -> str:
        """The branch to show first: a new branch, else one the cuts are on, else the first
        that is not an event identifier."""
        candidates = list(preproc.get("new_branch", {})) + list(preproc.get("flat_cut", {})) + \
            list(preproc.get("jagged_cut", {}))
        for name in candidates:
            if name in names:
                return name
        identifiers = set(self.state.params.get("identifier") or []) | {"run", "event", "luminosityBlock", "lumi"}
        return next((n for n in names if n not in identifiers), names[0])

    def _draw(self, h: Histogram) -> bytes:
        fig = self._figure
        fig.clear()
        ax = fig.add_subplot(1, 1, 1)
        widths = np.diff(h.edges)
        for i, group in enumerate(h.before):
            colour = COLOURS[i % len(COLOURS)]
            for counts, style, suffix in ((h.before[group], dict(linestyle="--", alpha=0.55, linewidth=1.2), "all"),
                                          (h.after[group], dict(linewidth=2.0), "after cuts")):
                values = counts / (counts.sum() * widths) if self.normalise.value and counts.sum() else counts
                ax.stairs(values, h.edges, color=colour, label=f"{group} ({suffix})", **style)
        if self.log_y.value:
            ax.set_yscale("log")
        ax.set_xlabel(f"number of {h.branch} per event" if h.what == "multiplicity" else h.branch)
        ax.set_ylabel("density" if self.normalise.value else "events" if h.what == "multiplicity" else "entries")
        ax.legend(fontsize=8, frameon=False)
        ax.grid(alpha=0.25)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png")
        return out.getvalue()


def cutflow_html(rows: list[dict], groups: list[str]) -> str:
    """The cut flow as a table: events left after each cut, per label, and efficiencies."""
    labels = list(dict.fromkeys(groups))
    head = "<tr><th>cut</th>" + "".join(f"<th>{html.escape(g)}</th><th>eff.</th>" for g in labels) + \
           "<th>total</th><th>relative</th><th>cumulative</th></tr>"

    def pct(value: Any) -> str:
        return "" if value is None else f"{100 * value:.1f}%"

    body = []
    for row in rows:
        cells = "".join(f"<td style='text-align:right'>{row['per_group'][g]:,}</td>"
                        f"<td style='text-align:right'>{pct(row['group_efficiency'][g])}</td>" for g in labels)
        body.append(f"<tr><td>{html.escape(row['cut'])}</td>{cells}<td style='text-align:right'>{row['total']:,}</td>"
                    f"<td style='text-align:right'>{pct(row['relative'])}</td>"
                    f"<td style='text-align:right'>{pct(row['efficiency'])}</td></tr>")
    return f"<table class='mlaas4hep-cutflow'>{head}{''.join(body)}</table>"
