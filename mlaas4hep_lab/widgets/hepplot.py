"""Explore's histograms drawn as HEP plots: an experiment style (mplhep's CMS, ATLAS or LHCb),
error bars (√N, or √Σw² with weights), a ratio or significance panel of signal against
background, axis labels with units, cut lines of an N−1 plot, and JupyterLab's dark theme.

Figures are drawn on matplotlib's Agg canvas (no pyplot global state) into PNG bytes.
"""

from __future__ import annotations

import io
import re
import threading
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
import PIL.Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mlaas4hep.explore import Histogram

STYLES = ("CMS", "ATLAS", "LHCb", "plain")
LOWER = ("none", "signal / background", "S/√B per bin")

#: JupyterLab's dark theme colours (--jp-layout-color1, --jp-ui-font-color1)
DARK = {"figure.facecolor": "#111111", "axes.facecolor": "#111111", "savefig.facecolor": "#111111",
        "text.color": "#e0e0e0", "axes.labelcolor": "#e0e0e0", "axes.edgecolor": "#bdbdbd",
        "xtick.color": "#e0e0e0", "ytick.color": "#e0e0e0", "grid.color": "#616161",
        "legend.labelcolor": "#e0e0e0"}

#: matplotlib's rcParams are one global: two plotters (two explorers in one kernel) drawing at
#: once in threads would draw with each other's style
_RC_LOCK = threading.Lock()

_UNIT = re.compile(r"[\[(]\s*([^\[\]()]{1,20}?)\s*[\])]\s*$")


#: a title that is ROOT's leaf list ("px[nPx]/F", "jetPt[nJets]"): its brackets are dimensions
_LEAF_LIST = re.compile(r"^\w+(\[\w+\])+(/\w)?$")


def unit_from_title(title: str) -> str:
    """The unit at the end of a ROOT branch title: ``"jet pT [GeV]"`` or ``"HT (GeV)"`` → GeV;
    none in a leaf list (``"jetPt[nJets]"``: a dimension, not a unit)."""
    if _LEAF_LIST.match((title or "").strip()):
        return ""
    m = _UNIT.search(title or "")
    return m.group(1) if m else ""


@dataclass
class PlotOptions:
    colours: dict[str, str]
    signal: str | None = None
    style: str = "CMS"
    normalise: bool = False
    per_width: bool = False
    log_y: bool = False
    lower: str = "none"
    unit: str = ""
    dark: bool = False
    label: str = ""  # what the branch is (a new branch's definition), under the x axis name
    roles: dict[str, str] | None = None  # group -> "signal" / "background", shown in the legend


def _style(name: str) -> dict:
    if name == "plain":
        return {}
    import mplhep

    return dict(getattr(mplhep.style, name))


class HepPlotter:
    """Draws histograms into PNG bytes, keeping one figure per look (style, lower panel, theme):
    redrawing replaces the data artists but keeps the axes and their ticks, which is most of
    the cost of a figure (an HEP style has minor ticks on all four sides). One per explorer:
    not thread-safe."""

    def __init__(self, size: tuple[float, float] = (7.2, 4.6), dpi: int = 90):
        self.size, self.dpi = size, dpi
        self._figures: dict[tuple, tuple[Figure, Any, Any, list]] = {}
        # per figure: what its frame looked like (limits, scales, labels) and its pixels without
        # the data, so that a redraw with the same frame draws only the data over them
        self._frames: dict[tuple, tuple[tuple, Any]] = {}
        self.frame_reused = 0  # drawings that reused the frame (for tests and the bench)
        self.drawings = 0

    def _rc(self, opts: PlotOptions) -> dict:
        rc = _style(opts.style)
        rc.update({"font.size": 10, "axes.labelsize": 11, "legend.fontsize": 8, "xtick.labelsize": 9,
                   "ytick.labelsize": 9, "figure.figsize": self.size, "figure.dpi": self.dpi})
        if opts.dark:
            rc.update(DARK)
        return rc

    def _figure(self, opts: PlotOptions, lower: bool) -> tuple[Figure, Any, Any, list]:
        key = (opts.style, lower, opts.dark)
        if key not in self._figures:
            fig = Figure(figsize=self.size, dpi=self.dpi)
            FigureCanvasAgg(fig)
            if lower:
                ax, low = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
            else:
                ax, low = fig.add_subplot(1, 1, 1), None
            keep = _experiment_label(ax, opts.style) if opts.style != "plain" else []
            fig.subplots_adjust(left=0.12, right=0.97, top=0.93, bottom=0.13)
            self._figures[key] = (fig, ax, low, keep)
        fig, ax, low, keep = self._figures[key]
        for target in (ax, low):
            if target is None:
                continue
            for artist in [*target.lines, *target.collections, *target.patches, *target.texts, *target.containers]:
                if artist not in keep and artist in target.get_children():
                    artist.remove()
            target.containers.clear()
            if target.get_legend() is not None:
                target.get_legend().remove()
            target.set_yscale("linear")
            target.set_title("", loc="right")
            target.set_xlabel("")
            target.set_ylabel("")
            target.relim()
            target.autoscale(True)
        return fig, ax, low, keep

    def draw(self, h: Histogram, opts: PlotOptions) -> bytes:
        """The histogram (after the cuts with error bars, before them dashed) as PNG bytes."""
        with _RC_LOCK, matplotlib.rc_context(self._rc(opts)):
            lower = opts.lower != "none" and opts.signal in h.after and len(h.after) > 1
            key = (opts.style, lower, opts.dark)
            fig, ax, low, keep = self._figure(opts, lower)
            _plot(h, opts, ax, low)
            return self._render(key, fig, [a for a in (ax, low) if a is not None], keep)

    def _render(self, key: tuple, fig: Figure, axes: list, keep: list) -> bytes:
        """Rasterise the figure to PNG. The frame (axes, ticks, tick labels, axis labels: most
        of the cost, with the legend) is drawn only when it differs from the last drawing of this
        figure; else its pixels are restored and the data (curves, error bars, cut lines) drawn
        over them. Both ways draw the data after the frame, so they give the same pixels."""
        canvas = fig.canvas
        self.drawings += 1
        data = sorted((a for target in axes for a in _data_artists(target, keep)), key=lambda a: a.get_zorder())
        frame = _frame_signature(fig, axes)
        known = self._frames.get(key)
        if known is not None and known[0] == frame:
            canvas.restore_region(known[1])
            self.frame_reused += 1
        else:
            for artist in data:
                artist.set_visible(False)
            try:
                canvas.draw()
            finally:
                for artist in data:
                    artist.set_visible(True)
            self._frames[key] = (frame, canvas.copy_from_bbox(fig.bbox))
        renderer = canvas.get_renderer()
        for artist in data:
            artist.draw(renderer)
        width, height = canvas.get_width_height()
        image = PIL.Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        out = io.BytesIO()
        image.save(out, format="png", compress_level=1)
        return out.getvalue()


def _data_artists(ax, keep: list) -> list:
    """What a redraw replaces on ``ax``: curves, error bars, cut lines and their labels."""
    return [a for a in [*ax.lines, *ax.collections, *ax.patches, *ax.texts] if a not in keep]


def _frame_signature(fig: Figure, axes: list) -> tuple:
    """Everything the frame's pixels depend on besides the figure's look: the limits and
    scales (hence ticks and tick labels), the axis labels, the title and the legend (its
    labels, and the colour and line style of each entry)."""
    out: list = [fig.get_size_inches().tolist(), fig.dpi]
    for ax in axes:
        out.append((ax.get_xlim(), ax.get_ylim(), ax.get_xscale(), ax.get_yscale(), ax.get_xlabel(),
                    ax.get_ylabel(), ax.get_title(loc="right"), ax.get_title(), ax.get_title(loc="left")))
        legend = ax.get_legend()
        if legend is not None:
            out.append(tuple((text.get_text(), _look(handle)) for text, handle in
                             zip(legend.get_texts(), legend.legend_handles)))
    return tuple(out)


def _look(artist) -> tuple:
    """The colour, line style and width of a legend entry."""
    colour = artist.get_edgecolor() if hasattr(artist, "get_edgecolor") else artist.get_color()
    return (str(np.asarray(colour).round(4).tolist()), str(artist.get_linestyle()), float(artist.get_linewidth()),
            float(artist.get_alpha() or 1.0))


def draw(h: Histogram, opts: PlotOptions, size: tuple[float, float] = (7.2, 4.6), dpi: int = 90) -> bytes:
    """One histogram as PNG bytes, on a figure of its own."""
    return HepPlotter(size, dpi).draw(h, opts)


def _plot(h: Histogram, opts: PlotOptions, ax, low) -> None:
    widths = np.diff(h.edges)
    centres = (h.edges[:-1] + h.edges[1:]) / 2
    scaled: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    roles = opts.roles or {}
    for group in h.after:
        colour = opts.colours.get(group, "#777777")
        name = f"{group} = {roles[group]}" if roles.get(group) else group
        for which, counts, w2 in (("before", h.before[group], h.before_w2.get(group, h.before[group])),
                                  ("after", h.after[group], h.after_w2.get(group, h.after[group]))):
            factor = np.ones_like(widths)
            if opts.normalise and counts.sum():
                factor = factor / counts.sum()
            if opts.per_width:
                factor = factor / widths
            values, errors = counts * factor, np.sqrt(w2) * factor
            if which == "before":
                ax.stairs(values, h.edges, color=colour, linestyle="--", alpha=0.55, linewidth=1.1,
                          label=f"{name} (all)")
            else:
                ax.stairs(values, h.edges, color=colour, linewidth=1.8, label=f"{name} (after cuts)")
                ax.errorbar(centres, values, yerr=errors, fmt="none", ecolor=colour, elinewidth=1.0, capsize=0)
                scaled[group] = (values, errors)
    for value in h.cut_values:
        for target in (ax, low):
            if target is not None:
                target.axvline(value, color="#ff9800", linewidth=1.4, linestyle="-.")
        ax.annotate(f"cut {value:g}", (value, 0.8), xycoords=("data", "axes fraction"), xytext=(3, 0),
                    textcoords="offset points", color="#ff9800", fontsize=8)
    if opts.log_y:
        ax.set_yscale("log")
    unit = f" [{opts.unit}]" if opts.unit and h.what != "multiplicity" else ""
    xlabel = f"number of {h.branch} per event" if h.what == "multiplicity" else f"{h.branch}{unit}"
    if opts.label:
        xlabel += f"   ({opts.label})"
    (low or ax).set_xlabel(xlabel)
    ax.set_ylabel(_ylabel(h, opts, widths))
    if h.n_minus_1:
        ax.set_title("N−1: every cut except those on " + h.branch, fontsize=9, loc="right")
    ax.autoscale_view()
    bottom, top = ax.get_ylim()
    if opts.log_y:  # headroom above the data for the label and the legend, as HEP plots leave
        ax.set_ylim(bottom, top * 30 if top > 0 else top)
    else:
        ax.set_ylim(*_nice_limits(ax, bottom, bottom + (top - bottom) * 1.35))
    ax.legend(frameon=False, ncol=2, loc="upper right")
    ax.grid(alpha=0.25)
    if low is not None:
        _lower_panel(low, h, opts, scaled, centres)


def _ylabel(h: Histogram, opts: PlotOptions, widths: np.ndarray) -> str:
    what = "events" if h.what == "multiplicity" or not h.weighted else "events (Σw)"
    if h.what != "multiplicity" and h.weighted:
        what = "weighted events"
    if opts.normalise:
        what = "fraction of " + what
    regular = widths.size and np.allclose(widths, widths[0])
    unit = opts.unit if h.what != "multiplicity" else ""
    if opts.per_width:
        return f"{what} / {unit}" if unit else f"{what} / bin width"
    if regular and h.what != "multiplicity":
        return f"{what} / {widths[0]:.3g}" + (f" {unit}" if unit else "")
    return what


def _lower_panel(low, h: Histogram, opts: PlotOptions, scaled: dict, centres: np.ndarray) -> None:
    signal = opts.signal
    s, s_err = scaled[signal]
    others = [g for g in scaled if g != signal]
    b = sum(scaled[g][0] for g in others)
    b_err = np.sqrt(sum(scaled[g][1] ** 2 for g in others))
    with np.errstate(all="ignore"):
        if opts.lower == "signal / background":
            value = s / b
            error = value * np.sqrt((s_err / s) ** 2 + (b_err / b) ** 2)
            low.axhline(1.0, color="#9e9e9e", linewidth=0.8)
            low.set_ylabel("S / B", fontsize=9)
        else:
            sig_counts, bkg_counts = h.after[signal], sum(h.after[g] for g in others)
            value = sig_counts / np.sqrt(bkg_counts)
            error = np.zeros_like(value)
            low.set_ylabel("S/√B", fontsize=9)
    good = np.isfinite(value)
    low.errorbar(centres[good], value[good], yerr=np.where(np.isfinite(error), error, 0)[good], fmt="o",
                 markersize=3, color=opts.colours.get(signal, "#e42536"))
    low.grid(alpha=0.25)
    low.set_ylim(*_nice_limits(low, *low.get_ylim()))


def _nice_limits(ax, bottom: float, top: float) -> tuple[float, float]:
    """The limits widened to the axis's own tick values: a small change of the data keeps the
    same limits (and the frame can be reused; see HepPlotter._render)."""
    if not (np.isfinite(bottom) and np.isfinite(top)) or top <= bottom:
        return bottom, top
    ticks = ax.yaxis.get_major_locator().tick_values(bottom, top)
    below, above = ticks[ticks <= bottom], ticks[ticks >= top]
    return (float(below.max()) if below.size else bottom), (float(above.min()) if above.size else top)


def _experiment_label(ax, style: str) -> list:
    """"CMS Simulation" (or ATLAS, LHCb) above the frame, as the experiments write it. Drawn as
    plain text: mplhep's own label renders the figure twice to place itself, too slow here."""
    bold = {"CMS": ("CMS", "bold", "normal"), "ATLAS": ("ATLAS", "bold", "italic"),
            "LHCb": ("LHCb", "normal", "normal")}[style]
    name = ax.text(0.0, 1.015, bold[0], transform=ax.transAxes, fontsize=12, fontweight=bold[1],
                   fontstyle=bold[2], va="bottom", ha="left")
    sub = ax.annotate("Simulation", xy=(1, 0), xycoords=name, xytext=(4, 0), textcoords="offset points",
                      fontsize=10, fontstyle="italic", va="bottom", ha="left")
    return [name, sub]
