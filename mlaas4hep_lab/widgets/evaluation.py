"""``EvaluationView``: the evaluation of a finished job in the Workbench's Train tab.

The same content as the JupyterLab job view's panel (js/evaluation.ts), drawn as inline SVG in
an ``HTML`` widget: AUC with its bootstrap uncertainty, a plain overtraining flag, the ROC curve
(background rejection 1 - eff, or 1 / eff on a log scale), the score distributions of train
(points) and test (filled) events per class with their KS p-values, and the confusion matrix.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

import ipywidgets as widgets

from mlaas4hep.classes import evaluation_classes

W, H = 340, 230
LEFT, RIGHT, TOP, BOTTOM = 48, 10, 10, 34
#: the colours of runs in a comparison (classes take theirs from mlaas4hep.classes)
COLORS = ("var(--jp-brand-color1, #1976d2)", "var(--jp-warn-color1, #f57c00)", "var(--jp-success-color1, #388e3c)",
          "var(--jp-error-color1, #d32f2f)", "var(--jp-accent-color1, #7b1fa2)", "var(--jp-ui-font-color2, #666)")
ERROR_COLOR = "var(--jp-error-color1, #d32f2f)"
OK_COLOR = "var(--jp-success-color1, #388e3c)"
DIM = "var(--jp-ui-font-color2, #666)"


def format_p(p: float | None) -> str:
    """A KS p-value as people read it (as the JupyterLab panel writes it)."""
    if p is None or not math.isfinite(p):
        return "p = –"
    return f"p = {float(f'{p:.2g}')}" if p >= 0.001 else f"p = {p:.1e}".replace("e-0", "e-")


def roc_points(curve: dict[str, Any], log: bool) -> list[tuple[float, float]]:
    """(signal efficiency, background rejection): 1 - eff, or 1 / eff (log; eff = 0 left out)."""
    out = []
    for x, b in zip(curve["signal_efficiency"], curve["background_efficiency"]):
        if x is None or b is None:
            continue
        if log:
            if b > 0:
                out.append((x, 1.0 / b))
        else:
            out.append((x, 1.0 - b))
    return out


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step + 1e-9) * step
    n = int(math.ceil((hi - first) / step - 1e-9))
    return [round(first + i * step, 12) for i in range(n + 1)]


def _tick(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.0e}".replace("e+0", "e").replace("e+", "e")
    return f"{v:.4g}"


def _frame(xt, yt, sx, sy, box: tuple[float, float, float, float] = (LEFT, W - RIGHT, H - BOTTOM, TOP)) -> list[str]:
    """Grid, tick labels and axes; ``box`` = (x0, x1, y0, y1) of the plot area."""
    x0, x1, y0, y1 = box
    out = []
    for t in yt:
        y = round(sy(t)) + 0.5
        out.append(f"<line x1='{x0}' x2='{x1}' y1='{y}' y2='{y}' stroke='var(--jp-border-color2,#ddd)'/>")
        out.append(f"<text x='{x0 - 6}' y='{y + 4}' text-anchor='end'>{_tick(t)}</text>")
    for t in xt:
        x = round(sx(t)) + 0.5
        out.append(f"<text x='{x}' y='{y0 + 15}' text-anchor='middle'>{_tick(t)}</text>")
    out.append(f"<line x1='{x0}' x2='{x1}' y1='{y0 + 0.5}' y2='{y0 + 0.5}' stroke='{DIM}'/>")
    out.append(f"<line x1='{x0 - 0.5}' x2='{x0 - 0.5}' y1='{y1}' y2='{y0}' stroke='{DIM}'/>")
    return out


def _scale(d0: float, d1: float, r0: float, r1: float):
    k = (r1 - r0) / (d1 - d0) if d1 != d0 else 0.0
    return lambda v: r0 + (v - d0) * k


def roc_axis(top: float, log: bool, y0: float, y1: float) -> tuple[list[float], Any]:
    """The y ticks and scale of a ROC chart whose largest rejection is ``top``: 1 − eff from 0
    to 1, or 1 / eff on decades from 1 (log)."""
    if log:
        decades = max(1, math.ceil(math.log10(max(10.0, top))))
        s = _scale(0, decades, y0, y1)
        return [10.0 ** i for i in range(decades + 1)], lambda v: s(math.log10(max(v, 1.0)))
    return _ticks(0, 1), _scale(0, 1, y0, y1)


_HEX = re.compile(r"^#[0-9a-fA-F]{3,8}$")


def class_info(ev: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Each class's view name, role and colour (:mod:`mlaas4hep.classes`), by class index: the
    evaluation's own, or for one written before evaluations carried it, from its class names."""
    info = ev.get("class_info")
    if not info or not all(isinstance(c.get("colour"), str) and _HEX.match(c["colour"]) for c in info):
        info = evaluation_classes(ev["classes"])["class_info"]  # (a colour is put into SVG as it is)
    return {c["class"]: c for c in info}


def classes_html(ev: dict[str, Any]) -> str:
    """Which class is which (in its colour) and what the score means."""
    items = "".join(
        f"<span class='mlaas4hep-eval-class' data-class='{c['class']}' data-colour='{c['colour']}' "
        f"style='margin-right:14px;white-space:nowrap'><span style='display:inline-block;width:10px;height:10px;"
        f"background:{c['colour']};margin-right:4px'></span><b>{_esc(c['name'])}</b>: {_esc(c['description'])}</span>"
        for c in class_info(ev).values())
    meaning = ev.get("score_meaning") or evaluation_classes(ev["classes"])["score_meaning"]
    return f"<div class='mlaas4hep-eval-classes'><small>{items} · {_esc(meaning)}</small></div>"


def _svg(kind: str, body: list[str], extra: str = "") -> str:
    return (f"<svg class='mlaas4hep-eval-chart' data-chart='{kind}' {extra} viewBox='0 0 {W} {H}' width='{W}' "
            f"height='{H}' style='font-size:10px;fill:{DIM};max-width:100%'>{''.join(body)}</svg>")


def roc_svg(ev: dict[str, Any], log: bool) -> str:
    x0, x1, y0, y1 = LEFT, W - RIGHT, H - BOTTOM, TOP
    curves = [(c, roc_points(c, log)) for c in ev["roc"]]
    colours = class_info(ev)
    sx = _scale(0, 1, x0, x1)
    yt, sy = roc_axis(max([0.0] + [y for _, pts in curves for _, y in pts]), log, y0, y1)
    body = _frame(_ticks(0, 1), yt, sx, sy)
    body.append(f"<text x='{(x0 + x1) / 2}' y='{H - 4}' text-anchor='middle'>signal efficiency</text>")
    label = "1 / background efficiency" if log else "background rejection (1 − ε_B)"
    body.append(f"<text transform='translate(11,{(y0 + y1) / 2}) rotate(-90)' text-anchor='middle'>{label}</text>")
    for curve, pts in curves:
        d = "".join(f"{'L' if j else 'M'}{sx(x):.1f},{sy(y):.1f}" for j, (x, y) in enumerate(pts))
        color = colours[curve["class"]]["colour"]  # binary: the class the score is of (label 1)
        auc = curve.get("auc")
        body.append(f"<path class='mlaas4hep-roc-curve' data-class='{curve['class']}' d='{d}' fill='none' "
                    f"stroke='{color}' stroke-width='2'><title>{_esc(curve['name'])}: AUC "
                    f"{'–' if auc is None else f'{auc:.4f}'}</title></path>")
    return _svg("roc", body, f"data-scale='{'log' if log else 'linear'}'")


def _density(counts: list[float], edges: list[float]) -> list[float]:
    total = sum(counts)
    return [c / total / (edges[i + 1] - edges[i]) if total > 0 else 0.0 for i, c in enumerate(counts)]


def scores_svg(ev: dict[str, Any]) -> str:
    x0, x1, y0, y1 = LEFT, W - RIGHT, H - BOTTOM, TOP
    edges = ev["score_histograms"]["edges"]
    rows = [(h, _density(h["test"], edges), _density(h["train"], edges) if h.get("train") else None)
            for h in ev["score_histograms"]["classes"]]
    ymax = max([1e-9] + [v for _, test, train in rows for v in test + (train or [])])
    yt = _ticks(0, ymax, 4)
    sx = _scale(edges[0], edges[-1], x0, x1)
    sy = _scale(0, yt[-1], y0, y1)
    body = _frame(_ticks(edges[0], edges[-1]), yt, sx, sy)
    score_of = sorted({h["score_of"] for h, _, _ in rows})
    caption = f"score (probability of {_esc(score_of[0])})" if len(score_of) == 1 else "score (each class's own)"
    body.append(f"<text x='{(x0 + x1) / 2}' y='{H - 4}' text-anchor='middle'>{caption}</text>")
    colours = class_info(ev)
    for h, test, train in rows:
        color = colours[h["class"]]["colour"]
        d = f"M{sx(edges[0]):.1f},{sy(0):.1f}"
        for i, v in enumerate(test):
            d += f"L{sx(edges[i]):.1f},{sy(v):.1f}L{sx(edges[i + 1]):.1f},{sy(v):.1f}"
        d += f"L{sx(edges[-1]):.1f},{sy(0):.1f}Z"
        body.append(f"<path class='mlaas4hep-eval-test' data-class='{h['class']}' d='{d}' fill='{color}' "
                    f"fill-opacity='0.25' stroke='{color}'/>")
        if train:
            dots = "".join(f"<circle cx='{sx((edges[i] + edges[i + 1]) / 2):.1f}' cy='{sy(v):.1f}' r='2.2'/>"
                           for i, v in enumerate(train) if h["train"][i] > 0)
            body.append(f"<g class='mlaas4hep-eval-train' data-class='{h['class']}' fill='{color}'>{dots}</g>")
    return _svg("scores", body)


def confusion_html(ev: dict[str, Any]) -> str:
    c = ev["confusion"]
    head = "".join(f"<th style='padding:2px 8px'>{_esc(n)}</th>" for n in c["classes"])
    rows = []
    for i, row in enumerate(c["matrix"]):
        total = sum(row)
        cells = "".join(
            f"<td class='mlaas4hep-confusion-cell' data-true='{i}' data-pred='{j}' style='padding:2px 8px;"
            f"text-align:right;{'font-weight:600' if i == j else ''}'>{round(v):,}"
            f"<small style='color:{DIM}'>{f' {100 * v / total:.1f}%' if total > 0 else ''}</small></td>"
            for j, v in enumerate(row))
        rows.append(f"<tr><th style='padding:2px 8px;text-align:left'>{_esc(c['classes'][i])}</th>{cells}</tr>")
    return (f"<div style='color:{DIM};max-width:320px'>Confusion (test events; {_esc(c['rule'])})</div>"
            "<table class='mlaas4hep-confusion' style='border-collapse:collapse'><thead><tr>"
            f"<th style='padding:2px 8px'>true \\ predicted</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def flag_html(ev: dict[str, Any]) -> str:
    over = ev["overtraining"]
    if over["flag"]:
        items = "".join(f"<li>{_esc(r)}</li>" for r in over["reasons"])
        return (f"<div class='mlaas4hep-overtraining' data-flag='yes' style='border-left:4px solid {ERROR_COLOR};"
                f"padding:4px 10px;background:var(--jp-layout-color2,#f5f5f5)'><b style='color:{ERROR_COLOR}'>"
                f"⚠ Overtrained</b><ul style='margin:2px 0 0;padding-left:20px'>{items}</ul></div>")
    return (f"<div class='mlaas4hep-overtraining' data-flag='no' style='border-left:4px solid {OK_COLOR};"
            f"padding:4px 10px;background:var(--jp-layout-color2,#f5f5f5)'><b style='color:{OK_COLOR}'>✓ No sign of "
            f"overtraining</b>: train and test scores agree (KS p ≥ {over['ks_alpha']} for every class) and val_loss "
            "is not rising while loss falls.</div>")


def summary_html(ev: dict[str, Any]) -> str:
    """The panel's head: AUC, test events and the overtraining flag."""
    auc = ev["auc"]
    value = "" if auc.get("value") is None else f"AUC {auc['value']:.4f}" + (
        f" ± {auc['std']:.4f}" if auc.get("std") is not None else "")
    return (f"<div class='mlaas4hep-evaluation' data-overtraining='{'yes' if ev['overtraining']['flag'] else 'no'}'>"
            f"<div style='margin:8px 0 4px'><b>Evaluation</b> <span class='mlaas4hep-eval-auc' style='color:{DIM}'>"
            f"{value} · {ev['events']['test']:,} test events</span></div>{flag_html(ev)}</div>")


def evaluation_html(ev: dict[str, Any], log: bool = False) -> str:
    """The whole panel as HTML (inline SVG): the head and the charts."""
    return summary_html(ev) + charts_html(ev, log)


def charts_html(ev: dict[str, Any], log: bool = False) -> str:
    """ROC, score distributions with the KS p-values, confusion matrix."""
    ks_items = []
    colours = class_info(ev)
    for h in ev["score_histograms"]["classes"]:
        ks = next((k for k in ev["ks"] if k["class"] == h["class"]), None)
        low = ks is not None and ks["p_value"] is not None and ks["p_value"] < ev["overtraining"]["ks_alpha"]
        color = colours[h["class"]]["colour"]
        ks_items.append(
            f"<span class='mlaas4hep-eval-ks-item' data-class='{h['class']}' data-low='{'yes' if low else 'no'}' "
            f"style='margin-right:14px;{f'color:{ERROR_COLOR};font-weight:600' if low else ''}'>"
            f"<span style='display:inline-block;width:10px;height:10px;background:{color};margin-right:4px'></span>"
            f"{_esc(colours[h['class']]['name'])}: KS {format_p(ks['p_value']) if ks else 'p = – (no train sample)'}</span>")
    box = "border:1px solid var(--jp-border-color2,#ddd);border-radius:3px;padding:4px"
    return classes_html(ev) + (
        "<div class='mlaas4hep-eval-charts' style='display:flex;flex-wrap:wrap;gap:10px;margin-top:2px;"
        "align-items:flex-start'>"
        f"<div style='{box}'><div><b>ROC</b></div>{roc_svg(ev, log)}</div>"
        f"<div style='{box}'><div><b>Score distributions</b>: train (points) vs test (filled)</div>{scores_svg(ev)}"
        f"<div class='mlaas4hep-eval-ks'>{''.join(ks_items)}</div></div>"
        f"<div>{confusion_html(ev)}</div></div>")


class EvaluationView(widgets.VBox):
    """The evaluation panel: ``show(evaluation)`` (the ``evaluation`` event's content, or None
    to hide it); ``log_scale`` ticks the log background rejection of the ROC."""

    def __init__(self, **kwargs: Any):
        self.log_scale = widgets.Checkbox(value=False, description="log background rejection", indent=False,
                                    layout=widgets.Layout(width="auto"))
        self.head = widgets.HTML()
        self.html = widgets.HTML()
        self.evaluation: dict[str, Any] | None = None
        super().__init__(children=[self.head, self.log_scale, self.html], **kwargs)
        self.log_scale.observe(lambda _change: self._render(), names="value")
        self.add_class("mlaas4hep-evaluation-view")
        self.layout.display = "none"

    def show(self, evaluation: dict[str, Any] | None) -> None:
        if evaluation is self.evaluation:
            return
        self.evaluation = evaluation
        self._render()

    def _render(self) -> None:
        if not self.evaluation:
            self.head.value = self.html.value = ""
            self.layout.display = "none"
            return
        self.head.value = summary_html(self.evaluation)
        self.html.value = charts_html(self.evaluation, self.log_scale.value)
        self.layout.display = None

    def close(self) -> None:
        self.log_scale.close()
        self.head.close()
        self.html.close()
        super().close()


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=False)
