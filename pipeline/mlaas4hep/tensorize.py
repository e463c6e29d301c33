"""Turn selected events into float32 feature rows.

Features, in a fixed order recorded as names: the flat branches (sorted), then each jagged
branch (sorted) padded with 0 (or clipped, and counted) to its ``jdim`` as ``name[0]`` ...
``name[jdim-1]``, then, with ``use_masks``, a mask column per jagged element
(``name_mask[i]``: 1 = a real element, 0 = padding). Every value is min/max normalised with the
specs (a constant branch maps to 0); NaN and ±inf values become ``nan_value`` (the params'
``nan``, default 0); padding stays 0.

Rows are written straight into a caller's (reused) buffer at given row positions, so mixing
and shuffling cost no extra copy. No per-event Python loop.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from .errors import ConfigError

WIDE_FEATURES = 10_000  # rows wider than this earn a warning naming the branch that made them


@dataclass
class FeatureLayout:
    """Column positions of every feature, and the normalisation of each branch."""

    flat: list[str]
    jagged: list[str]
    jdim: dict[str, int]
    minv: dict[str, float]
    maxv: dict[str, float]
    masks: bool = False
    nan_value: float = 0.0  # what NaN and ±inf values become
    names: list[str] = field(default_factory=list)
    column: dict[str, int] = field(default_factory=dict)  # first value column of each branch
    mask_column: dict[str, int] = field(default_factory=dict)  # first mask column of each jagged branch

    def __post_init__(self) -> None:
        names = list(self.flat)
        for name in self.jagged:
            self.column[name] = len(names)
            names += [f"{name}[{i}]" for i in range(self.jdim[name])]
        for i, name in enumerate(self.flat):
            self.column[name] = i
        if self.masks:
            for name in self.jagged:
                self.mask_column[name] = len(names)
                names += [f"{name}_mask[{i}]" for i in range(self.jdim[name])]
        self.names = names

    @classmethod
    def from_specs(cls, specs: Mapping[str, Any], masks: bool = False,
                   jdim_cap: int | Mapping[str, int] | None = None, nan_value: float = 0.0) -> FeatureLayout:
        jagged = list(specs["jkeys"])
        jdim = {n: int(specs["jdim"][n]) for n in jagged}
        if isinstance(jdim_cap, int):
            jdim = {n: min(d, jdim_cap) for n, d in jdim.items()}
        elif jdim_cap:
            for name, cap in jdim_cap.items():
                if name not in jdim:
                    raise ConfigError(f"jdim names {name!r}, which is not a jagged feature",
                                      where="params: jdim", hint="jagged features: " + ", ".join(jagged))
                jdim[name] = min(jdim[name], int(cap))
        return cls(list(specs["fkeys"]), jagged, jdim, dict(specs["minv"]), dict(specs["maxv"]), masks,
                   float(nan_value))

    @property
    def n_features(self) -> int:
        return len(self.names)

    def width_warning(self, rows: int, limit: int = WIDE_FEATURES) -> str | None:
        """A warning when the rows are wider than ``limit`` features, naming the jagged branch
        that pads them most (a few long lists set its jdim) and how to cap it; else None."""
        if self.n_features <= limit or not self.jagged:
            return None
        widest = sorted(self.jagged, key=lambda n: -self.jdim[n])[:3]
        size = rows * self.n_features * 4
        size_text = f"{size / 1e9:.1f} GB" if size >= 1e8 else f"{size / 1e6:.1f} MB"
        shown = ", ".join(f"{n!r} (jdim {self.jdim[n]:,})" for n in widest)
        return (f"{self.n_features:,} features per event ({size_text} per chunk of {rows:,} events); the widest "
                f"jagged branches: {shown}; cap them with \"jdim\": {{\"{widest[0]}\": 50}} in params.json, "
                f"or leave them out with exclude_branches")

    def scale(self, name: str) -> tuple[float, float]:
        lo, hi = float(self.minv[name]), float(self.maxv[name])
        return lo, (1.0 / (hi - lo) if hi > lo else 0.0)


@dataclass(frozen=True)
class Jagged:
    """A jagged array of numbers as plain numpy: event i's values are
    ``content[offsets[i]:offsets[i + 1]]`` (``offsets`` need not start at 0). What the row store
    hands out: cheaper to slice and concatenate than an awkward array."""

    offsets: np.ndarray  # int64 (n + 1,)
    content: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, item: slice) -> Jagged:
        start, stop, step = item.indices(len(self))
        if step != 1:
            raise IndexError("Jagged supports only contiguous slices")
        return Jagged(self.offsets[start:stop + 1] if stop > start else self.offsets[start:start + 1], self.content)

    @property
    def dtype(self) -> np.dtype:
        return self.content.dtype


def packed(array: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets, values)`` of a jagged array of numbers, offsets from 0 and values contiguous
    (copied only where the array does not hold them contiguously already)."""
    given = _offsets_of(array)
    if given is not None:  # uproot's and the store's lists: offsets and contiguous values already
        offsets, content = given
        first = int(offsets[0])
        return (offsets if first == 0 else offsets - first), content[first:int(offsets[-1])]
    starts, counts, content = _list_parts(array)
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    if len(counts) == 0:
        return offsets, content[:0]
    first = int(starts[0])
    if (starts == first + offsets[:-1]).all():
        return offsets, content[first:first + int(offsets[-1])]
    return offsets, content[np.repeat(starts - offsets[:-1], counts) + np.arange(int(offsets[-1]))]


class Tensorizer:
    """Fills rows of a float32 buffer from a block of selected events."""

    def __init__(self, layout: FeatureLayout):
        self.layout = layout
        self.clipped: dict[str, int] = {n: 0 for n in layout.jagged}  # elements beyond jdim, dropped
        self._lock = threading.Lock()  # fill may run in several threads at once

    def fill(self, out: np.ndarray, rows: slice | np.ndarray, arrays: Mapping[str, Any]) -> None:
        """Write the features of ``arrays`` (n events) into ``out[rows]`` (n rows), which must
        be zero already (padding is what the jagged values do not overwrite).

        Jagged values are scattered element by element straight into ``out``, with one scatter
        index per distinct list structure: the branches of one collection (``jetPt``,
        ``jetEta``, ... sharing ``nJets``) share it.
        """
        layout = self.layout
        if not out.flags.c_contiguous:  # written through a flat view of it
            raise ValueError("Tensorizer.fill needs a C-contiguous output buffer")
        if layout.flat:
            n = len(arrays[layout.flat[0]])
        elif layout.jagged:
            n = len(arrays[layout.jagged[0]])
        else:
            return
        row_index = np.arange(rows.start, rows.start + n) if isinstance(rows, slice) else rows
        flat_out = out.reshape(-1)
        width = out.shape[1]
        # at shuffled rows, each value's flat position in a view that starts at its column: one
        # plain index array for every column (out[rows, column] takes numpy's slower mixed path)
        firsts = None if isinstance(rows, slice) else np.multiply(rows, width, dtype=np.int64)
        for name in layout.flat:
            lo, scale = layout.scale(name)
            values = _normalise(np.asarray(arrays[name]), lo, scale, layout.nan_value)
            if firsts is None:
                out[rows, layout.column[name]] = values
            else:
                flat_out[layout.column[name]:][firsts] = values
        cache: list[tuple[np.ndarray, np.ndarray, _Scatter]] = []
        for name in layout.jagged:
            jdim = layout.jdim[name]
            starts, counts, content = _list_parts(arrays[name])
            scatter = None
            for cached_starts, cached_counts, cached in cache:
                if cached.jdim == jdim and np.array_equal(cached_counts, counts) and np.array_equal(cached_starts, starts):
                    scatter = cached
                    break
            if scatter is None:
                scatter = _Scatter(starts, counts, jdim, row_index, width)
                cache.append((starts, counts, scatter))
            if scatter.clipped:
                with self._lock:
                    self.clipped[name] += scatter.clipped
            if scatter.target.size == 0:
                continue
            lo, scale = layout.scale(name)
            values = content[scatter.source] if scatter.source is not None else content[starts[0]:starts[0] + scatter.target.size]
            # the view that starts at the branch's first column: no shifted copy of the targets
            flat_out[layout.column[name]:][scatter.target] = _normalise(values, lo, scale, layout.nan_value)
            if layout.masks:
                flat_out[layout.mask_column[name]:][scatter.target] = 1.0


class _Scatter:
    """Where each element of a jagged block goes in the output (flat positions relative to the
    branch's first column), and where it comes from in the content."""

    def __init__(self, starts: np.ndarray, counts: np.ndarray, jdim: int, row_index: np.ndarray, width: int):
        self.jdim = jdim
        total = int(counts.sum())
        firsts = np.cumsum(counts) - counts  # each event's first element, counted from 0
        contiguous = len(starts) == 0 or (starts[0] + firsts == starts).all()
        clipping = total > 0 and int(counts.max()) > jdim
        # element i of event e lands at row_index[e] * width + (i - firsts[e]): one repeat
        target = np.repeat(row_index * width - firsts, counts)
        target += np.arange(total)
        source = None if contiguous else np.repeat(starts - firsts, counts) + np.arange(total)
        self.clipped = 0
        if clipping:
            keep = np.arange(total) - np.repeat(firsts, counts) < jdim
            self.clipped = total - int(np.count_nonzero(keep))
            target = target[keep]
            source = (np.flatnonzero(keep) + starts[0]) if source is None else source[keep]
        self.source = source
        self.target = target


def _normalise(values: np.ndarray, lo: float, scale: float, nan_value: float = 0.0) -> np.ndarray:
    """(values - min) * 1/(max - min) as float32, non-finite values as ``nan_value``.

    The subtraction and the scaling are done in float64 and only the result is stored as
    float32: an integer above 2**24 (an event number, a time stamp) cast to float32 first
    would lose the digits that distinguish it from the minimum.
    """
    out = np.subtract(values, lo, dtype=np.float64)
    out *= scale  # max maps to 1 within 1 ulp of float64, which the float32 rounding absorbs
    result = out.astype(np.float32)
    if values.dtype.kind == "f":
        bad = ~np.isfinite(result)
        if bad.any():
            result[bad] = nan_value
    return result


def _offsets_of(array: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(offsets, content)`` of a list-offset array of numbers as they are (int64 offsets,
    not necessarily from 0), or None where the array is another kind of list."""
    if isinstance(array, Jagged):
        return (array.offsets, array.content) if array.offsets.dtype == np.int64 else None
    layout = ak.to_layout(array)
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray) \
            and not layout.content.inner_shape:
        offsets = np.asarray(layout.offsets)
        return (offsets, np.asarray(layout.content.data)) if offsets.dtype == np.int64 and len(offsets) else None
    return None


def _list_parts(array: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """starts, counts and content of a jagged array of numbers (ListOffsetArray or ListArray)."""
    if isinstance(array, Jagged):
        return array.offsets[:-1], np.diff(array.offsets), array.content
    layout = ak.to_layout(array)
    if isinstance(layout, ak.contents.ListOffsetArray):
        offsets = np.asarray(layout.offsets)
        starts, stops = offsets[:-1], offsets[1:]
    elif isinstance(layout, ak.contents.ListArray):
        starts, stops = np.asarray(layout.starts), np.asarray(layout.stops)
    elif isinstance(layout, ak.contents.RegularArray):
        size = layout.size
        starts = np.arange(layout.length, dtype=np.int64) * size
        stops = starts + size
    else:  # an indexed or option-typed list (after some awkward operations): pack it once
        packed = ak.to_layout(ak.to_packed(ak.fill_none(ak.Array(layout), [], axis=0)))
        if not isinstance(packed, (ak.contents.ListOffsetArray, ak.contents.ListArray)):
            raise TypeError(f"expected a jagged array of numbers, got {ak.Array(layout).type}")
        return _list_parts(packed)
    content = layout.content
    if not isinstance(content, ak.contents.NumpyArray):
        content = ak.to_layout(ak.to_packed(ak.Array(content)))
        if not isinstance(content, ak.contents.NumpyArray):
            raise TypeError(f"expected a jagged array of numbers, got {ak.Array(layout).type}")
    return starts.astype(np.int64, copy=False), (stops - starts).astype(np.int64, copy=False), np.asarray(content.data)
