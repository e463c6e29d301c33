"""Turn selected events into float32 feature rows.

Features, in a fixed order recorded as names: the flat branches (sorted), then each jagged
branch (sorted) padded with 0 (or clipped, and counted) to its ``jdim`` as ``name[0]`` ...
``name[jdim-1]``, then, with ``use_masks``, a mask column per jagged element
(``name_mask[i]``: 1 = a real element, 0 = padding). Every value is min/max normalised with the
specs (a constant branch maps to 0); NaN and inf become 0.

Rows are written straight into a caller's (reused) buffer at given row positions, so mixing
and shuffling cost no extra copy. No per-event Python loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from .errors import ConfigError


@dataclass
class FeatureLayout:
    """Column positions of every feature, and the normalisation of each branch."""

    flat: list[str]
    jagged: list[str]
    jdim: dict[str, int]
    minv: dict[str, float]
    maxv: dict[str, float]
    masks: bool = False
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
                   jdim_cap: int | Mapping[str, int] | None = None) -> FeatureLayout:
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
        return cls(list(specs["fkeys"]), jagged, jdim, dict(specs["minv"]), dict(specs["maxv"]), masks)

    @property
    def n_features(self) -> int:
        return len(self.names)

    def scale(self, name: str) -> tuple[float, float]:
        lo, hi = float(self.minv[name]), float(self.maxv[name])
        return lo, (1.0 / (hi - lo) if hi > lo else 0.0)


class Tensorizer:
    """Fills rows of a float32 buffer from a block of selected events."""

    def __init__(self, layout: FeatureLayout):
        self.layout = layout
        self.clipped: dict[str, int] = {n: 0 for n in layout.jagged}  # elements beyond jdim, dropped
        self._ranges = {n: np.arange(layout.jdim[n]) for n in layout.jagged}

    def fill(self, out: np.ndarray, rows: slice | np.ndarray, arrays: Mapping[str, Any]) -> None:
        """Write the features of ``arrays`` (n events) into ``out[rows]`` (n rows)."""
        layout = self.layout
        for name in layout.flat:
            lo, scale = layout.scale(name)
            values = np.asarray(arrays[name])
            out[rows, layout.column[name]] = _normalise(values, lo, scale)
        for name in layout.jagged:
            jdim = layout.jdim[name]
            if jdim == 0:
                continue
            starts, counts, content = _list_parts(arrays[name])
            lo, scale = layout.scale(name)
            j = self._ranges[name]
            valid = j < counts[:, None]
            if content.size:
                index = starts[:, None] + j
                np.minimum(index, content.size - 1, out=index)
                block = _normalise(content[index], lo, scale)
                block[~valid] = 0.0
            else:
                block = np.zeros((len(counts), jdim), dtype=np.float32)
            c0 = layout.column[name]
            out[rows, c0:c0 + jdim] = block
            if layout.masks:
                m0 = layout.mask_column[name]
                out[rows, m0:m0 + jdim] = valid
            over = counts - jdim
            self.clipped[name] += int(over[over > 0].sum())


def _normalise(values: np.ndarray, lo: float, scale: float) -> np.ndarray:
    """(values - min) / (max - min) as float32, non-finite values as 0."""
    work = np.float32 if values.dtype == np.float32 else np.float64
    out = values.astype(work, copy=True)
    out -= lo
    out *= scale
    if work is np.float64:
        out = out.astype(np.float32)
    if values.dtype.kind == "f":
        out[~np.isfinite(out)] = 0.0
    return out


def _list_parts(array: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """starts, counts and content of a jagged array of numbers (ListOffsetArray or ListArray)."""
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
