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
