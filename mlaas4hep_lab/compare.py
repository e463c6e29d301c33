"""Compare training runs: their loss curves and ROC curves overlaid, and a table of their
params, preproc, events, time and test metrics with the differences marked.

Everything comes from each job's events (``job_start`` carries the params and the preproc,
``specs_done`` the features and events, ``finished`` the test metrics and time, ``evaluation``
the ROC and AUC), so local, in-process and remote jobs compare alike. ``%mlaas4hep compare ID
ID ...`` shows :func:`compare_html` in a notebook (:func:`compare_text` in a terminal).
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

from .widgets.evaluation import COLORS, DIM, _frame, _scale, _ticks, roc_axis, roc_points

#: params that say where and how fast a run reads, not what it learns: left out of the table
QUIET_PARAMS = {"verbose", "hist", "cache_dir", "specs_cache", "read_threads", "retries", "retry_wait", "timeout",
                "redirector"}


def fetch_events(client: Any, job_id: str) -> list[dict[str, Any]]:
    """Every event of a job, page by page."""
    events: list[dict[str, Any]] = []
    since = 0
    for _ in range(10_000):  # bounded: a page holds at least one event
        page = client.events(job_id, since)
        if not page.events:
            break
        events.extend(page.events)
        since = page.last_seq
    return events


def summarize(job_id: str, events: list[dict[str, Any]], info: Any = None) -> dict[str, Any]:
    """What the comparison shows of one run, from its events (and ``client.job`` info)."""
    run: dict[str, Any] = {"id": job_id, "name": getattr(info, "name", "") or job_id,
                           "status": getattr(info, "status", ""), "params": {}, "preproc": None, "features": None,
                           "events": None, "seconds": None, "metrics": {}, "evaluation": None, "history": [],
                           "early_stop": None}
    for e in events:
        kind = e.get("event")
        if kind == "job_start":
            run["name"] = getattr(info, "name", "") or e.get("name") or job_id
            run["params"] = dict(e.get("params") or {})
            run["preproc"] = e.get("preproc")
        elif kind == "specs_done":
            run["features"], run["events"] = e.get("features"), e.get("used")
        elif kind == "epoch":
            run["history"].append({"step": e.get("step"), "loss": e.get("loss"), "val_loss": e.get("val_loss")})
        elif kind == "evaluation":
            run["evaluation"] = e
        elif kind == "early_stop":
            run["early_stop"] = e
        elif kind == "finished":
            run["metrics"], run["seconds"] = dict(e.get("metrics") or {}), e.get("seconds")
    return run


def job_summary(client: Any, job_id: str) -> dict[str, Any]:
    return summarize(job_id, fetch_events(client, job_id), client.job(job_id))


def preproc_summary(preproc: dict[str, Any] | None) -> str:
    """New branches and cuts in one line: "new leadJetPt = max(jetPt); cuts: leadJetPt > 50, any(partonPt > 150)"."""
    if not preproc:
        return "none"
    new, cuts = [], []
    for name, spec in (preproc.get("new_branch") or {}).items():
        new.append(f"{name} = {spec.get('def')}")
        if spec.get("cut"):
            cuts.append(_cut_text(spec["cut"]))
    for section in ("flat_cut", "jagged_cut"):
        for _name, spec in (preproc.get(section) or {}).items():
            if isinstance(spec, dict) and spec.get("cut"):
                cuts.append(_cut_text(spec["cut"]))
    parts = []
    if new:
        parts.append("new " + "; ".join(new))
    parts.append("cuts: " + (", ".join(cuts) if cuts else "none"))
    return "; ".join(parts)


def _cut_text(cut: Any) -> str:
    if isinstance(cut, (list, tuple)) and len(cut) == 2:
        return f"{cut[1]}({cut[0]})"
    if isinstance(cut, (list, tuple)):
        return " and ".join(map(str, cut))
    return str(cut)


def _value(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:.4f}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) if v else "–"
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    return str(v)


def table_rows(runs: list[dict[str, Any]]) -> list[tuple[str, str, list[str], bool]]:
    """(section, label, one cell per run, whether the cells differ)."""
    rows: list[tuple[str, str, list[str], bool]] = []

    def add(section: str, label: str, cells: list[str]) -> None:
        rows.append((section, label, cells, len(set(cells)) > 1))

    add("run", "status", [r["status"] or "–" for r in runs])
    keys = []
    for r in runs:
        for k in r["params"]:
            if k not in keys and k not in QUIET_PARAMS:
                keys.append(k)
    for k in keys:
        add("params", k, [_value(r["params"].get(k)) for r in runs])
    add("preproc", "preproc", [preproc_summary(r["preproc"]) for r in runs])
    add("data", "features", [_value(r["features"]) for r in runs])
    add("data", "events", [_value(r["events"]) for r in runs])
    add("data", "steps trained", [_value(len(r["history"])) for r in runs])
    add("data", "time", [f"{r['seconds']:.1f} s" if isinstance(r["seconds"], (int, float)) else "–" for r in runs])
    metric_keys = []
    for r in runs:
        for k in r["metrics"]:
            if k not in metric_keys:
                metric_keys.append(k)
    for k in metric_keys:
        add("test", f"test {k}", [_value(r["metrics"].get(k)) for r in runs])
    add("test", "AUC ± bootstrap", [
        f"{r['evaluation']['auc']['value']:.4f} ± {r['evaluation']['auc']['std']:.4f}"
        if r["evaluation"] and r["evaluation"]["auc"].get("std") is not None else "–" for r in runs])
    add("test", "overtraining", [("yes" if r["evaluation"]["overtraining"]["flag"] else "no") if r["evaluation"]
                                 else "–" for r in runs])
    return rows


W, H = 420, 240


def loss_svg(runs: list[dict[str, Any]]) -> str:
    """loss (solid) and val_loss (dashed) of every run, one colour per run."""
    x0, x1, y0, y1 = 48, W - 10, H - 34, 10
    points = [(h["step"], h[k]) for r in runs for h in r["history"] for k in ("loss", "val_loss")
              if isinstance(h.get(k), (int, float)) and math.isfinite(h[k]) and h.get("step") is not None]
    if not points:
        return f"<div style='color:{DIM}'>no loss curves yet</div>"
    xt = _ticks(min(p[0] for p in points), max(p[0] for p in points), 6)
    yt = _ticks(min(0.0, min(p[1] for p in points)), max(p[1] for p in points), 4)
    sx, sy = _scale(xt[0], xt[-1], x0, x1), _scale(yt[0], yt[-1], y0, y1)
    body = _frame(xt, yt, sx, sy, (x0, x1, y0, y1))
    body.append(f"<text x='{(x0 + x1) / 2}' y='{H - 4}' text-anchor='middle'>step (epochs over the run)</text>")
    for i, r in enumerate(runs):
        for key, dash in (("loss", ""), ("val_loss", " stroke-dasharray='5 3'")):
            pts = [(h["step"], h[key]) for h in r["history"]
                   if isinstance(h.get(key), (int, float)) and math.isfinite(h[key])]
            d = "".join(f"{'L' if j else 'M'}{sx(x):.1f},{sy(y):.1f}" for j, (x, y) in enumerate(pts))
            body.append(f"<path class='mlaas4hep-compare-curve' data-run='{_esc(r['id'])}' data-series='{key}' "
                        f"d='{d}' fill='none' stroke='{COLORS[i % len(COLORS)]}' stroke-width='2'{dash}/>")
    return _svg("compare-loss", body)


def roc_overlay_svg(runs: list[dict[str, Any]], log: bool = False) -> str:
    """The ROC curve (the first curve of each run's evaluation) of every run."""
    x0, x1, y0, y1 = 48, W - 10, H - 34, 10
    curves = [(i, r, roc_points(r["evaluation"]["roc"][0], log)) for i, r in enumerate(runs)
              if r["evaluation"] and r["evaluation"].get("roc")]
    if not curves:
        return f"<div style='color:{DIM}'>no evaluation yet</div>"
    sx = _scale(0, 1, x0, x1)
    yt, sy = roc_axis(max([0.0] + [y for _, _, pts in curves for _, y in pts]), log, y0, y1)
    body = _frame(_ticks(0, 1), yt, sx, sy, (x0, x1, y0, y1))
    body.append(f"<text x='{(x0 + x1) / 2}' y='{H - 4}' text-anchor='middle'>signal efficiency</text>")
    label = "1 / background efficiency" if log else "background rejection (1 − ε_B)"
    body.append(f"<text transform='translate(11,{(y0 + y1) / 2}) rotate(-90)' text-anchor='middle'>{label}</text>")
    for i, r, pts in curves:
        d = "".join(f"{'L' if j else 'M'}{sx(x):.1f},{sy(y):.1f}" for j, (x, y) in enumerate(pts))
        body.append(f"<path class='mlaas4hep-compare-roc' data-run='{_esc(r['id'])}' d='{d}' fill='none' "
                    f"stroke='{COLORS[i % len(COLORS)]}' stroke-width='2'/>")
    return _svg("compare-roc", body)


def compare_html(runs: list[dict[str, Any]], log: bool = False) -> str:
    """The comparison: a legend, the overlaid curves, the table (differences marked)."""
    legend = "".join(
        f"<span style='margin-right:14px'><span style='display:inline-block;width:18px;height:3px;vertical-align:middle;"
        f"background:{COLORS[i % len(COLORS)]};margin-right:4px'></span><b>{_esc(r['name'])}</b> "
        f"<code>{_esc(r['id'])}</code></span>" for i, r in enumerate(runs))
    head = "".join(f"<th style='padding:2px 10px;text-align:left;border-bottom:2px solid {COLORS[i % len(COLORS)]}'>"
                   f"{_esc(r['name'])}</th>" for i, r in enumerate(runs))
    body = []
    for section, label, cells, differs in table_rows(runs):
        style = "background:var(--jp-warn-color3,#fff3e0);" if differs else ""
        tds = "".join(f"<td style='padding:2px 10px;{style}{'font-weight:600' if differs else ''}'>{_esc(c)}</td>"
                      for c in cells)
        body.append(f"<tr class='mlaas4hep-compare-row' data-section='{section}' data-row='{_esc(label)}' "
                    f"data-differs='{'yes' if differs else 'no'}'><th style='padding:2px 10px;text-align:left;"
                    f"color:{DIM};font-weight:normal'>{_esc(label)}</th>{tds}</tr>")
    box = "border:1px solid var(--jp-border-color2,#ddd);border-radius:3px;padding:4px"
    return (f"<div class='mlaas4hep-compare' data-runs='{len(runs)}'><div style='margin:4px 0'><b>Comparison of "
            f"{len(runs)} runs</b> · {legend}</div>"
            "<div style='display:flex;flex-wrap:wrap;gap:10px'>"
            f"<div style='{box}'><b>loss</b> (solid) and <b>val_loss</b> (dashed){loss_svg(runs)}</div>"
            f"<div style='{box}'><b>ROC</b>{roc_overlay_svg(runs, log)}</div></div>"
            f"<table class='mlaas4hep-compare-table' style='border-collapse:collapse;margin-top:8px'>"
            f"<thead><tr><th></th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"<div style='color:{DIM};margin-top:2px'>highlighted: rows where the runs differ</div></div>")


def compare_text(runs: list[dict[str, Any]]) -> str:
    """The table as plain text (a terminal IPython); differing rows start with '*'."""
    from mlaas4hep.console import table

    rows = [[("* " if differs else "  ") + label, *cells] for _, label, cells, differs in table_rows(runs)]
    return table(["", *[f"{r['name']} ({r['id']})" for r in runs]], rows) + "\n* the runs differ here"


def _svg(kind: str, body: list[str]) -> str:
    return (f"<svg class='mlaas4hep-eval-chart' data-chart='{kind}' viewBox='0 0 {W} {H}' width='{W}' height='{H}' "
            f"style='font-size:10px;fill:{DIM};max-width:100%;display:block'>{''.join(body)}</svg>")


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)
