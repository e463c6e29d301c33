"""Event weights (params.json ``weight``): an expression over the branches (new branches too)
giving one number per event, times an optional per-file scale.

The weight rides through the data path as one more per-event column, :data:`WEIGHT`, that the
preproc adds to each block of events: the specs pass sums it over the selected events (``events``
→ ``weighted``), the row store keeps it, and every chunk carries it as ``Chunk.weight`` (the
file's scale applied) for training's sample weights and the weighted test metrics. It is never
a feature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import awkward as ak
import numpy as np

from .config import JAGGED, Preproc
from .errors import ConfigError, ExpressionError
from .expr import Expression, compile_expression
from .params import Params
from .preproc import Preprocessor

#: The column that carries each event's weight (before the per-file scale)
WEIGHT = "__weight__"


class WeightedPreprocessor(Preprocessor):
    """A preproc that also computes each event's weight into ``env[WEIGHT]``."""

    def __init__(self, preproc: Preproc, kinds: Mapping[str, str], unsupported: Mapping[str, str] | None,
                 weight: Expression):
        super().__init__(preproc, kinds, unsupported)
        self.weight = weight
        for name in sorted(weight.names):
            self._known(name, weight.where, weight.text)
        if weight.kind(self.kinds) == JAGGED:
            raise ExpressionError(f"the weight {weight.text!r} gives a value per element; it needs one per event",
                                  where=weight.where, hint="use a reducer such as sum(...) or a leading object x[0]")
        self.inputs |= {n for n in (set(weight.names) | set(weight.constants)) if n in self.source_kinds}

    def apply(self, arrays: Mapping[str, Any]) -> tuple[dict[str, Any], np.ndarray | None]:
        env, mask = super().apply(arrays)
        n = len(next(iter(arrays.values()))) if arrays else 0
        value = self.weight(env)
        if isinstance(value, ak.Array):
            value = ak.to_numpy(value)
        env[WEIGHT] = np.array(np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)))
        return env, mask


def weight_expression(params: Params) -> Expression | None:
    if not params.weight:
        return None
    return compile_expression(params.weight["expr"], f"{params.source}: weight")


def file_scales(params: Params, n_files: int) -> np.ndarray:
    """The weight's scale of each file (1 without one)."""
    scale = (params.weight or {}).get("scale")
    if scale is None:
        return np.ones(n_files)
    if isinstance(scale, list):
        if len(scale) != n_files:
            raise ConfigError(f"{len(scale)} scale(s) for {n_files} file(s); give one per file, in the order of "
                              "the files", where=f"{params.source}: weight.scale")
        return np.asarray(scale, dtype=np.float64)
    return np.full(n_files, float(scale))


def scaled(weight: np.ndarray, file_index: np.ndarray, scales: Sequence[float] | np.ndarray) -> np.ndarray:
    """Each row's weight times its file's scale."""
    return np.asarray(weight, dtype=np.float64) * np.asarray(scales, dtype=np.float64)[file_index]
