"""How many events each file gives in all, and to each chunk.

Quotas are proportional to each file's selected events (``nevts`` caps the total). Each chunk
takes from every file its proportional share of the chunk, so the label mix is the same in
every chunk; rounding leftovers go to the files furthest behind their share, so that every
chunk has exactly ``chunk_size`` events (but the last) and every file ends exactly at its
quota: no file runs dry early, nothing wraps around, nothing is drawn twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` into integers proportional to ``weights``, none above its weight
    (largest-remainder method). ``total`` must not exceed ``sum(weights)``."""
    whole = sum(weights)
    if total > whole:
        raise ValueError(f"cannot take {total} from {whole}")
    if whole == 0:
        return [0] * len(weights)
    exact = [total * w / whole for w in weights]
    parts = [min(w, math.floor(x)) for w, x in zip(weights, exact)]
    short = total - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: exact[i] - parts[i], reverse=True)
    while short > 0:
        for i in order:
            if short and parts[i] < weights[i]:
                parts[i] += 1
                short -= 1
    return parts


@dataclass(frozen=True)
class Plan:
    """Per-file quotas and the chunk size."""

    quotas: tuple[int, ...]
    chunk_size: int

    @classmethod
    def build(cls, events: Sequence[int], nevts: int, chunk_size: int) -> Plan:
        available = sum(events)
        total = available if nevts < 0 else min(nevts, available)
        if chunk_size < 0:  # the original's -1: every event in one chunk
            chunk_size = max(total, 1)
        return cls(tuple(apportion(total, events)), chunk_size)

    @property
    def total(self) -> int:
        return sum(self.quotas)

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.total / self.chunk_size) if self.total else 0

    def share(self, i: int) -> float:
        """File i's expected events per chunk."""
        return self.chunk_size * self.quotas[i] / self.total if self.total else 0.0

    def takes(self) -> Iterator[list[int]]:
        """For each chunk, how many events to take from each file."""
        n = len(self.quotas)
        total = self.total
        taken = [0] * n
        done = 0
        while done < total:
            size = min(self.chunk_size, total - done)
            target = done + size
            desired = [q * target / total - t for q, t in zip(self.quotas, taken)]
            take = [max(0, min(math.floor(d), q - t)) for d, q, t in zip(desired, self.quotas, taken)]
            short = size - sum(take)
            if short < 0:  # floor never overshoots, but keep the chunk size exact regardless
                raise AssertionError("plan overshoot")
            order = sorted(range(n), key=lambda i: desired[i] - take[i], reverse=True)
            while short > 0:
                for i in order:
                    if short and taken[i] + take[i] < self.quotas[i]:
                        take[i] += 1
                        short -= 1
            for i in range(n):
                taken[i] += take[i]
            done += size
            yield take
