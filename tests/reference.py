"""A deliberately plain reference for the engine: a Python loop over events, on arrays read
with uproot's numpy library (jagged branches as object arrays of per-event arrays).

It shares no code with the vectorised path (no awkward, no mlaas4hep), so agreement between
the two is evidence, not tautology. Slow, so only for test-sized files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import uproot

EventFn = Callable[[dict[str, Any]], "tuple[dict[str, Any], bool]"]


def read_events(path: str, tree: str, branches: Sequence[str]) -> list[dict[str, Any]]:
    data = uproot.open(path)[tree].arrays(list(branches), library="np")
    n = len(next(iter(data.values())))
    return [{b: data[b][i] for b in branches} for i in range(n)]


def _finite(values) -> list[float]:
    return [float(v) for v in values if math.isfinite(float(v))]


def reference(
    paths: Sequence[str], tree: str, branches: Sequence[str], event_fn: EventFn,
    flat: Sequence[str], jagged: Sequence[str], masks: bool = False, jdim_cap: int | None = None,
) -> dict[str, Any]:
    """Specs and feature rows, event by event.

    ``event_fn(event) -> (values, passed)``: ``values`` maps each feature to a number (flat)
    or a sequence (jagged); ``passed`` says whether the event passes the cuts.
    """
    selected: list[list[dict[str, Any]]] = []
    entries: list[list[int]] = []
    read = []
    for path in paths:
        events = read_events(path, tree, branches)
        read.append(len(events))
        keep, where = [], []
        for i, event in enumerate(events):
            values, passed = event_fn(event)
            if passed:
                keep.append(values)
                where.append(i)
        selected.append(keep)
        entries.append(where)

    minv, maxv, nans, jdim = {}, {}, {}, {}
    for name in list(flat) + list(jagged):
        all_values = []
        for keep in selected:
            for values in keep:
                v = values[name]
                all_values.extend(v if name in jagged else [v])
        finite = _finite(all_values)
        nans[name] = len(all_values) - len(finite)
        minv[name] = min(finite) if finite else 0.0
        maxv[name] = max(finite) if finite else 0.0
        if name in jagged:
            jdim[name] = max((len(values[name]) for keep in selected for values in keep), default=0)
    dims = {n: (min(d, jdim_cap) if jdim_cap else d) for n, d in jdim.items()}

    def norm(name: str, v: float) -> float:
        v = float(v)
        if not math.isfinite(v):
            return 0.0
        lo, hi = minv[name], maxv[name]
        return (v - lo) / (hi - lo) if hi > lo else 0.0

    rows = []
    for keep in selected:
        for values in keep:
            row = [norm(name, values[name]) for name in flat]
            for name in jagged:
                items = list(values[name])
                row += [norm(name, items[k]) if k < len(items) else 0.0 for k in range(dims[name])]
            if masks:
                for name in jagged:
                    row += [1.0 if k < len(values[name]) else 0.0 for k in range(dims[name])]
            rows.append(row)
    return {
        "X": np.array(rows, dtype=np.float64).reshape(len(rows), -1),
        "events": [len(k) for k in selected],
        "events_read": read,
        "entries": entries,
        "minv": minv, "maxv": maxv, "nans": nans, "jdim": jdim,
    }


# -- objects and four-vectors, one event at a time (plain math, no vector library) ----------------


def ref_nth(values, n: int, fill: float = math.nan) -> float:
    """The n-th element of one event's list (negative n counts from the end), or ``fill``."""
    items = list(values)
    k = n if n >= 0 else len(items) + n
    return float(items[k]) if 0 <= k < len(items) else fill


def ref_argmax(values) -> int:
    """Index of the first largest element; -1 for an empty event or one with a NaN (as max)."""
    items = [float(v) for v in values]
    if not items or any(math.isnan(v) for v in items):
        return -1
    return max(range(len(items)), key=lambda k: (items[k], -k))


def ref_argmin(values) -> int:
    items = [float(v) for v in values]
    if not items or any(math.isnan(v) for v in items):
        return -1
    return min(range(len(items)), key=lambda k: (items[k], k))


def ref_delta_phi(phi1: float, phi2: float) -> float:
    d = float(phi1) - float(phi2)
    while d >= math.pi:
        d -= 2 * math.pi
    while d < -math.pi:
        d += 2 * math.pi
    return d


def ref_delta_r(eta1: float, phi1: float, eta2: float, phi2: float) -> float:
    return math.hypot(float(eta1) - float(eta2), ref_delta_phi(phi1, phi2))


def ref_xyze(pt: float, eta: float, phi: float, m: float) -> tuple[float, float, float, float]:
    pt, eta, phi, m = float(pt), float(eta), float(phi), float(m)
    px, py, pz = pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)
    return px, py, pz, math.sqrt(px * px + py * py + pz * pz + m * m)


def ref_kinematics(px: float, py: float, pz: float, e: float) -> dict[str, float]:
    """mass, pt, eta, phi of a four-vector (mass negative for a space-like one, as vector does)."""
    pt = math.hypot(px, py)
    m2 = e * e - px * px - py * py - pz * pz
    mass = math.copysign(math.sqrt(abs(m2)), m2)
    eta = math.asinh(pz / pt) if pt > 0 else (math.copysign(math.inf, pz) if pz else 0.0)
    return {"mass": mass, "pt": pt, "eta": eta, "phi": math.atan2(py, px)}


def ref_pair(objects: list[tuple[float, float, float, float]], i: int, j: int) -> dict[str, float]:
    """Kinematics of objects i + j (given as px, py, pz, E), NaN when one is missing."""
    if max(i, j) >= len(objects):
        return {k: math.nan for k in ("mass", "pt", "eta", "phi")}
    a, b = objects[i], objects[j]
    return ref_kinematics(*(a[k] + b[k] for k in range(4)))


def ref_total(objects: list[tuple[float, float, float, float]]) -> dict[str, float]:
    """Kinematics of the sum of all objects (px, py, pz, E) of one event."""
    return ref_kinematics(*(sum(o[k] for o in objects) for k in range(4)))
