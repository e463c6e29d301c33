"""One colour per class, the same in every plot (Explore, score distributions, the job view):
the signal is always red, the background always blue, further classes follow a fixed palette
in the order of their label values."""

from __future__ import annotations

from collections.abc import Sequence

SIGNAL = "#e42536"
BACKGROUND = "#3f90da"
#: further classes (or files, when unlabelled), in order
PALETTE = ["#3f90da", "#e42536", "#f89c20", "#964a8b", "#9c9ca1", "#7a21dd", "#92dadd", "#a96b59"]


def class_colours(groups: Sequence[str], signal: str | None = None) -> dict[str, str]:
    """A colour for each distinct group: ``signal`` red, the background (the one other group
    when there are two) blue, the rest from :data:`PALETTE` in order."""
    distinct = list(dict.fromkeys(groups))
    out: dict[str, str] = {}
    if signal in distinct:
        out[signal] = SIGNAL
        others = [g for g in distinct if g != signal]
        if len(others) == 1:
            out[others[0]] = BACKGROUND
    free = [c for c in PALETTE if c not in out.values()]
    for g in distinct:
        if g not in out:
            out[g] = free.pop(0) if free else PALETTE[len(out) % len(PALETTE)]
    return out
