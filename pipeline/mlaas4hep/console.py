"""Terminal output for the command line: aligned tables and a progress line with rate and ETA."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, TextIO


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """Rows as an aligned plain-text table; columns whose index is in ``right`` align right."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def human_rate(per_second: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if per_second >= scale:
            return f"{per_second / scale:.2f} {unit}"
    return f"{per_second:.0f} "


def human_time(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class ProgressBar:
    """``label [#####.....]  45%  1.2M/2.7M events  310 k ev/s  ETA 5s`` on one line.

    Redrawn in place at most ``fps`` times a second on a terminal; on a pipe or a file, one
    plain line every ``log_every`` seconds, so logs stay readable.
    """

    def __init__(self, total: int, label: str = "", unit: str = "events", stream: TextIO | None = None,
                 fps: float = 8.0, log_every: float = 10.0):
        self.total, self.label, self.unit = max(0, int(total)), label, unit
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = 1.0 / fps if self.tty else log_every
        self.start = time.monotonic()
        self.done = 0
        self.rate: float | None = None
        self._last = 0.0
        self._drawn = -1  # self.done when last drawn
        self._drawn_extra = ""
        self._closed = False

    def update(self, done: int, extra: str = "", rate: float | None = None) -> None:
        """``rate``: the events/s to show (the engine's, so that every UI agrees); default
        the bar's own, done over the time since it started."""
        self.done = done
        if rate is not None:
            self.rate = rate
        now = time.monotonic()
        if now - self._last >= self.interval or (done >= self.total and done != self._drawn):
            self._last = now
            self._draw(extra)

    def text(self, extra: str = "") -> str:
        elapsed = time.monotonic() - self.start
        rate = self.rate if self.rate is not None else (self.done / elapsed if elapsed > 0 else 0.0)
        frac = self.done / self.total if self.total else 1.0
        width = 24
        filled = int(round(width * min(frac, 1.0)))
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        parts = [
            f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {100 * frac:3.0f}%",
            f"{self.done:,}/{self.total:,} {self.unit}",
            f"{human_rate(rate)}{self.unit[:2]}/s",
            f"ETA {human_time(eta)}" if self.done < self.total else f"in {human_time(elapsed)}",
        ]
        if extra:
            parts.append(extra)
        return "  ".join(p.strip() for p in parts)

    def _draw(self, extra: str) -> None:
        self._drawn, self._drawn_extra = self.done, extra
        if self.tty:
            self.stream.write("\r\033[K" + self.text(extra))
        else:
            self.stream.write(self.text(extra) + "\n")
        self.stream.flush()

    def close(self, extra: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        if self._drawn != self.done or extra != self._drawn_extra:
            self._draw(extra)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class SpecsProgress:
    """A progress bar for the specs pass, fed ``(file, entries just read)`` from its threads."""

    def __init__(self, total: int, stream: TextIO | None = None):
        self.bar = ProgressBar(total, "specs", stream=stream)
        self.done: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, path: str, entries: int) -> None:
        with self._lock:
            self.done[path] = self.done.get(path, 0) + entries
            self.bar.update(sum(self.done.values()))
