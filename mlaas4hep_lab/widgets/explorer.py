"""BranchExplorer: a branch's histogram before and after the current cuts, overlaid per label,
and the cut flow, on a sample of each file, with the engine's own preproc.

It follows the shared state: when the builder publishes a new preproc, the histogram and the
cut flow update (debounced). While the builder's preproc is invalid, the explorer says so and
what it shows instead (the last valid preproc), and it never lists a new branch whose current
definition it cannot show. Figures are HEP plots (:mod:`.hepplot`): error bars, an experiment
style, a ratio or significance panel, units, N−1 cut lines, JupyterLab's theme.
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

import ipywidgets as w

from mlaas4hep.config import JAGGED
from mlaas4hep.classes import signal_of
from mlaas4hep.errors import MLaaS4HEPError
from mlaas4hep.explore import Histogram

from .hepplot import LOWER, STYLES, HepPlotter, PlotOptions, unit_from_title
from .state import WorkbenchState
from .theme import ThemeProbe

#: how long the explorer waits after the first change of a quiet time for the rest of one edit
SETTLE = 0.015

WARN_STYLE = ("border-left: 4px solid var(--jp-warn-color1, #f57c00); padding: 4px 8px; "
              "background: rgba(245, 124, 0, 0.12); color: var(--jp-ui-font-color1, #222)")


class BranchExplorer(w.VBox):
    """Histogram of a branch (before / after the cuts, per label) and the cut flow."""

    def __init__(self, state: WorkbenchState, debounce: float = 0.1):
        super().__init__()
        self.add_class("mlaas4hep-explorer")
        self.state = state
        self.debounce = debounce
        self.branch = w.Dropdown(description="branch", options=[], layout=w.Layout(width="320px"))
        self.show = w.ToggleButtons(options=["values", "multiplicity"], value="values",
                                    tooltips=["the values (every element of a jagged branch)",
                                              "elements per event (jagged branches)"])
        self.n_minus_1 = w.Checkbox(value=False, description="N−1 (every cut except those on this branch)",
                                    indent=False, layout=w.Layout(width="auto"))
        self.style = w.Dropdown(options=STYLES, value="CMS", description="style", layout=w.Layout(width="170px"))
        self.lower = w.Dropdown(options=LOWER, value="none", description="lower panel",
                                style={"description_width": "initial"}, layout=w.Layout(width="260px"))
        self.per_width = w.Checkbox(value=False, description="per bin width", indent=False, layout=w.Layout(width="auto"))
        self.unit = w.Text(value="", placeholder="unit (from the title)", description="unit",
                           layout=w.Layout(width="190px"), continuous_update=False,
                           tooltip="the unit of this branch on the axes (kept per branch in the workbench)")
        self.theme = ThemeProbe()
        self.banner = w.HTML()
        self.classes = w.HTML()
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
        self.last_update_cpu_ms: float | None = None
        self.updates = 0
        self.hidden: dict[str, str] = {}  # new branches not listed, and why
        self._plotter = HepPlotter()
        self._wanted: str | None = None  # the branch the user picked last
        self._updating: int | None = None  # the thread listing the branches, while it does
        self._timer: threading.Timer | None = None
        self._last_request = -1e9  # when schedule() was last called (monotonic)
        self._burst = -1e9  # when the present run of changes began
        self._options = False  # whether a pending update lists the branches again
        self._lock = threading.Lock()
        self._drawing = threading.Lock()  # one update at a time: the figure is not thread-safe
        for control in (self.branch, self.show, self.normalise, self.log_y, self.bins, self.n_minus_1, self.style,
                        self.lower, self.per_width, self.unit):
            control.observe(lambda _: self.schedule(), "value")
        self.theme.observe(lambda _: self.schedule(), "dark")
        self.branch.observe(self._branch_picked, "value")
        self.unit.observe(self._unit_typed, "value")
        self._showing_unit: set[int] = set()  # threads putting a branch's unit in the field (not the user)
        self._unit_branch: str | None = None  # the branch whose unit the field shows
        self.sample_size.observe(self._resize, "value")
        state.observe(lambda _: self.schedule(), ["preproc", "preproc_error", "preproc_draft"])
        state.observe(lambda _: self.schedule(options=True), ["files", "labels", "params", "sample_size"])
        self.children = [
            self.banner,
            w.HBox([self.branch, self.show, self.n_minus_1]),
            w.HBox([self.normalise, self.per_width, self.log_y, self.bins, self.sample_size]),
            w.HBox([self.style, self.lower, self.unit]),
            self.classes, self.image, self.status, w.HTML("<b>Cut flow</b>"), self.cutflow, self.theme,
        ]
        if state.files:
            self.schedule(options=True)

    def _resize(self, change: dict) -> None:
        self.state.sample_size = change["new"]

    def schedule(self, options: bool = False) -> None:
        """Update soon. A change after a quiet time is shown at once (after ``SETTLE``: the
        builder sets several traits for one edit, all within it); changes coming quicker than
        ``debounce`` apart are folded into one update ``debounce`` after the last of them.
        ``options`` (list the branches again) is kept when later calls without it fold in."""
        with self._lock:
            now = time.monotonic()
            if self._timer is not None:
                self._timer.cancel()
            if now - self._last_request >= self.debounce:
                self._burst = now  # a change after a quiet time
            delay = max(0.0, self._burst + SETTLE - now) if now - self._burst < SETTLE else self.debounce
            self._last_request = now
            self._options = self._options or options
            self._timer = threading.Timer(delay, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            options, self._options = self._options, False
        self.update(options=options)

    def update(self, options: bool = False) -> None:
        """Recompute the histogram and the cut flow now, in this thread."""
        with self._drawing:
            self._update(options)

    def _branch_picked(self, change: dict) -> None:
        """A new branch: the unit the user gave it (kept in the state), else the one in its
        title in the file. A pick by the user (not by an update listing the branches) is
        remembered, so that an update running at the same moment never puts the previous
        branch back."""
        if threading.get_ident() != self._updating:
            self._wanted = change["new"]
        self._show_unit(change["new"])

    def unit_of(self, branch: str | None) -> str:
        """The unit shown for ``branch``: the user's, else the one in its title, else none."""
        if not branch:
            return ""
        if branch in self.state.units:
            return self.state.units[branch]
        try:
            sample = self.state.sample()
        except MLaaS4HEPError:
            return ""
        info = sample.branches.get(branch) if sample is not None else None
        return unit_from_title(info.title) if info is not None else ""

    def _show_unit(self, branch: str | None) -> None:
        """Put ``branch``'s unit in the field: what the user types next is this branch's."""
        thread = threading.get_ident()
        self._showing_unit.add(thread)
        try:
            self._unit_branch = branch
            self.unit.value = self.unit_of(branch)
        finally:
            self._showing_unit.discard(thread)

    def _unit_typed(self, change: dict) -> None:
        """The user's unit for the branch shown, kept in the state (a cleared field goes back to
        the title's unit)."""
        branch = self._unit_branch  # the branch whose unit the field shows
        if threading.get_ident() in self._showing_unit or not branch:
            return
        units = dict(self.state.units)
        if change["new"].strip():
            units[branch] = change["new"].strip()
        else:
            units.pop(branch, None)
        self.state.units = units

    def _update(self, options: bool) -> None:
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            sample = self.state.sample()
            if sample is None:
                self.status.value = "<i>choose files in the builder</i>"
                return
            preproc = dict(self.state.preproc) or None
            evaluation = sample.evaluate(preproc)
            self.hidden = stale_new_branches(preproc or {}, dict(self.state.preproc_draft), self.state.preproc_error)
            self.banner.value = invalid_banner(self.state.preproc_error, preproc or {}, self.hidden)
            names = [n for n in evaluation.kinds if n not in self.hidden]
            if options or list(self.branch.options) != names:
                current = self._wanted or self.branch.value
                if current not in names:
                    self._clear()  # what is drawn is of a branch no longer listed
                self._updating = threading.get_ident()
                try:
                    self.branch.options = names
                    if current in names:
                        self.branch.value = current
                    elif names:
                        self.branch.value = self._interesting(names, preproc or {})
                finally:
                    self._updating = None
            elif self._wanted in names and self.branch.value != self._wanted:
                self.branch.value = self._wanted
            name = self.branch.value
            if not name:
                self._clear()
                return
            jagged = evaluation.kinds[name] == JAGGED
            self.show.disabled = not jagged
            multiplicity = jagged and self.show.value == "multiplicity"
            histogram = sample.histogram(name, preproc, bins=self.bins.value, multiplicity=multiplicity,
                                         n_minus_1=self.n_minus_1.value)
            table = sample.classes()
            signal = signal_of(table)
            mapping = sample.class_mapping()
            roles = {c.name: c.role for c in table} if signal else {}
            colours = sample.colours()
            definition = (preproc or {}).get("new_branch", {}).get(name, {}).get("def")
            self.image.value = self._plotter.draw(histogram, PlotOptions(
                colours=colours, signal=signal, style=self.style.value, normalise=self.normalise.value,
                per_width=self.per_width.value, log_y=self.log_y.value, lower=self.lower.value,
                unit=self.unit_of(name), dark=self.theme.dark, roles=roles,
                label=f"{name} = {definition}" if definition else ""))
            self.histogram = histogram
            self.classes.value = classes_html(mapping, colours, sample.weight_text)
            self.cutflow_rows = sample.cutflow(preproc)
            self.cutflow.value = cutflow_html(self.cutflow_rows, sample.groups, weighted=sample.weighted,
                                              colours=colours)
            self.last_update_ms = (time.perf_counter() - start) * 1000
            self.last_update_cpu_ms = (time.thread_time() - cpu) * 1000  # this thread's CPU: steadier under load
            self.updates += 1
            events = sample.events()
            self.status.value = (f"<small>sample: the first {min(events):,}–{max(events):,} events of each of "
                                 f"{len(events)} file(s); updated in {self.last_update_ms:.0f} ms</small>")
        except MLaaS4HEPError as err:
            self._clear()
            self.status.value = f'<span style="color: var(--jp-error-color1, #d32f2f)">{html.escape(str(err))}</span>'

    def _clear(self) -> None:
        """Nothing drawn rather than a figure of something else under the chosen name."""
        self.histogram = None
        self.image.value = b""

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


def stale_new_branches(shown: dict, draft: dict, error: str) -> dict[str, str]:
    """New branches of the shown (last valid) preproc that the builder's invalid draft defines
    differently or no longer has, and why: they are not listed, never shown under their name."""
    if not error:
        return {}
    shown_new, draft_new = shown.get("new_branch", {}) or {}, draft.get("new_branch", {}) or {}
    out = {}
    for name, entry in shown_new.items():
        if name not in draft_new:
            out[name] = "renamed or deleted in the builder"
        elif (draft_new[name] or {}).get("def") != (entry or {}).get("def"):
            out[name] = f"its definition is now {(draft_new[name] or {}).get('def')!r}"
    for name in draft_new:
        if name not in shown_new:
            out.setdefault(name, "not valid yet")
    return out


def invalid_banner(error: str, shown: dict, hidden: dict[str, str]) -> str:
    """The warning over Explore while the builder's preproc is invalid: why, and what is shown."""
    if not error:
        return ""
    cuts = sum(1 for section in ("new_branch", "flat_cut", "jagged_cut")
               for entry in (shown.get(section) or {}).values() if isinstance(entry, dict)
               for key in entry if key.startswith("cut"))
    new = [n for n in (shown.get("new_branch") or {}) if n not in hidden]
    what = (f"the last valid preproc: {cuts} cut(s)" + (f", new branches {', '.join(new)}" if new else "")
            if shown else "the data without any preproc")
    lines = "".join(f"<li>{html.escape(n)}: not shown, {html.escape(why)}</li>" for n, why in hidden.items())
    return (f"<div class='mlaas4hep-invalid' style='{WARN_STYLE}'><b>The preproc in the builder is invalid</b>: "
            f"{html.escape(error)}<br>Shown instead: {html.escape(what)}."
            f"{f'<ul style=margin:2px>{lines}</ul>' if lines else ''}</div>")


def classes_html(mapping: list[tuple[str, str]], colours: dict[str, str], weight: str | None) -> str:
    """Which group is which class (and what the score means), in its colour; the weights used."""
    items = " ".join(f"<span style='white-space:nowrap'><span style='display:inline-block;width:10px;height:10px;"
                     f"background:{colours.get(g, '#777')};margin-right:4px'></span><b>{html.escape(g)}</b>: "
                     f"{html.escape(role)}</span>&nbsp;&nbsp;" for g, role in mapping)
    weights = (f"<br>weighted by <code>{html.escape(weight)}</code> (yields Σw, errors √Σw²)" if weight
               else "<br>unweighted (errors √N)")
    return f"<div class='mlaas4hep-classes'><small>{items}{weights}</small></div>"


def cutflow_html(rows: list[dict], groups: list[str], weighted: bool = False,
                 colours: dict[str, str] | None = None) -> str:
    """The cut flow as a table, in the order the cuts are written in preproc.json: events left
    after each cut per label and efficiencies; with weights the weighted yields ± √Σw²; when
    a label is the signal, S/√B and S/√(S+B)."""
    labels = list(dict.fromkeys(groups))
    colours = colours or {}
    significance = bool(rows) and "s_over_sqrt_b" in rows[0]

    def name(g: str) -> str:
        colour = colours.get(g)
        return f"<span style='color:{colour}'>{html.escape(g)}</span>" if colour else html.escape(g)

    head = "<tr><th>cut</th>" + "".join(
        f"<th>{name(g)}</th>" + (f"<th>{name(g)} Σw</th>" if weighted else "") + "<th>eff.</th>" for g in labels) + \
        "<th>total</th><th>relative</th><th>cumulative</th>" + \
        ("<th>S/√B</th><th>S/√(S+B)</th>" if significance else "") + "</tr>"

    def pct(value: Any) -> str:
        return "" if value is None else f"{100 * value:.1f}%"

    def num(value: Any) -> str:
        return "" if value is None else f"{value:.3g}"

    body = []
    for row in rows:
        cells = "".join(
            f"<td style='text-align:right'>{row['per_group'][g]:,}</td>"
            + (f"<td style='text-align:right'>{row['per_group_weighted'][g]:.4g} ± {row['per_group_error'][g]:.2g}</td>"
               if weighted else "")
            + f"<td style='text-align:right'>{pct(row['group_efficiency'][g])}</td>" for g in labels)
        extra = (f"<td style='text-align:right'>{num(row.get('s_over_sqrt_b'))}</td>"
                 f"<td style='text-align:right'>{num(row.get('s_over_sqrt_s_b'))}</td>") if significance else ""
        body.append(f"<tr><td>{html.escape(row['cut'])}</td>{cells}<td style='text-align:right'>{row['total']:,}</td>"
                    f"<td style='text-align:right'>{pct(row['relative'])}</td>"
                    f"<td style='text-align:right'>{pct(row['efficiency'])}</td>{extra}</tr>")
    note = ("<caption style='caption-side:bottom;text-align:left'><small>cuts in the order written in "
            "preproc.json; the selection does not depend on the order</small></caption>")
    return f"<table class='mlaas4hep-cutflow'>{note}{head}{''.join(body)}</table>"
