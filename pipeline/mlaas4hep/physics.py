"""Objects and four-vectors per event, for preproc expressions: the n-th object of a jagged
branch, arg-max picks, sorting, and Lorentz vectors with Scikit-HEP's ``vector`` (invariant
masses, ΔR, Δφ wrapped into [-π, π), pt/eta/phi/mass of a sum).

Every function is vectorised over events (awkward / numpy, no per-event loop). A missing object
(an event with fewer objects) gives NaN, never a value of another object. :mod:`~mlaas4hep.expr`
registers these under the names documented in the README.
"""

from __future__ import annotations

import functools
from typing import Any

import awkward as ak
import numpy as np


@functools.cache
def _vector() -> Any:
    """Scikit-HEP's ``vector``, imported on first use: it imports sympy, which costs every
    process that imports the engine about 0.4 s of CPU and 35 MB, though few preprocs use it."""
    import vector

    return vector


def _is_ak(x: Any) -> bool:
    return isinstance(x, ak.Array)


def _float(x: Any) -> Any:
    if _is_ak(x):
        return ak.values_astype(x, np.float64)
    return np.asarray(x, dtype=np.float64)


def _jagged(x: Any, what: str) -> ak.Array:
    if not _is_ak(x) or x.ndim < 2:
        raise TypeError(f"{what} needs a jagged value (a list of objects per event)")
    return x


def nth(x: Any, index: Any, fill: Any = np.nan) -> np.ndarray:
    """The ``index``-th element of each event of jagged ``x`` (negative constants count from
    the end); ``fill`` where an event has no such element. ``index`` is an integer or one
    integer per event (a negative per-event index, as ``argmax`` gives for an empty event, is
    missing)."""
    x = _jagged(x, "indexing")
    counts = ak.to_numpy(ak.num(x, axis=1)).astype(np.int64)
    content = ak.to_numpy(ak.flatten(x, axis=1))
    if content.dtype.kind in "biu":
        content = content.astype(np.float64)  # NaN must be able to fill it
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if counts.size else counts
    if isinstance(index, (int, np.integer)) and not isinstance(index, (bool, np.bool_)):
        position = np.full(counts.shape, int(index), np.int64)
        if index < 0:
            position = counts + index
    else:
        position = np.asarray(index)
        if position.dtype.kind == "f":
            whole = np.isfinite(position) & (np.mod(position, 1) == 0)
            position = np.where(whole, position, -1)
        elif position.dtype.kind not in "iu":
            raise TypeError(f"an index must be an integer, got {position.dtype}")
        position = position.astype(np.int64)
    valid = (position >= 0) & (position < counts)
    taken = content[np.where(valid, starts + position, 0)] if content.size else np.zeros(counts.shape)
    fill = np.asarray(fill, dtype=np.float64) if not isinstance(fill, np.ndarray) else fill
    return np.where(valid, taken, fill)


def first(x: Any) -> np.ndarray:
    return nth(x, 0)


def last(x: Any) -> np.ndarray:
    return nth(x, -1)


def _arg_extreme(x: Any, what: str, reduce: Any) -> np.ndarray:
    """Index of an extreme element of each event; -1 (a missing index) for an empty event and
    for an event with a NaN element, as ``max`` and ``min`` give NaN there (awkward's own
    ``argmax`` answers the NaN's index or another depending on where the NaN sits)."""
    x = _jagged(x, what)
    index = ak.to_numpy(ak.fill_none(reduce(x, axis=1), -1)).astype(np.int64)
    content = ak.flatten(x, axis=1)
    if ak.to_numpy(content).dtype.kind == "f":
        has_nan = ak.to_numpy(ak.any(np.isnan(x), axis=1))
        index = np.where(has_nan, -1, index)
    return index


def argmax(x: Any) -> np.ndarray:
    """Index of the largest element of each event; -1 for an empty event or one with a NaN."""
    return _arg_extreme(x, "argmax()", ak.argmax)


def argmin(x: Any) -> np.ndarray:
    """Index of the smallest element of each event; -1 for an empty event or one with a NaN."""
    return _arg_extreme(x, "argmin()", ak.argmin)


def sort(x: Any) -> ak.Array:
    """The elements of each event in ascending order."""
    return ak.sort(_jagged(x, "sort()"), axis=1)


def sort_desc(x: Any) -> ak.Array:
    """The elements of each event in descending order (``sort_desc(jetPt)[0]`` is the hardest)."""
    return ak.sort(_jagged(x, "sort_desc()"), axis=1, ascending=False)


# -- angles ------------------------------------------------------------------------------------


def _broadcast(*values: Any) -> list[Any]:
    """Flat and jagged values broadcast together (a lepton against each jet), as float64;
    all flat (or numbers): numpy arrays."""
    if not any(_is_ak(v) and v.ndim > 1 for v in values):
        return list(np.broadcast_arrays(*(np.asarray(ak.to_numpy(v) if _is_ak(v) else v, dtype=np.float64)
                                          for v in values)))
    arrays = [v if _is_ak(v) else (ak.Array(np.asarray(v, dtype=np.float64)) if np.ndim(v) else float(v))
              for v in values]
    return [_float(a) for a in ak.broadcast_arrays(*arrays)]


def _vectors3(eta: Any, phi: Any) -> Any:
    if _is_ak(eta):
        return _vector().zip({"rho": ak.ones_like(eta), "eta": eta, "phi": phi})
    return _vector().array({"rho": np.ones_like(eta), "eta": eta, "phi": phi})


def _out(value: Any) -> Any:
    if _is_ak(value):
        return value if value.ndim > 1 else ak.to_numpy(value)
    return np.asarray(value, dtype=np.float64)


def delta_phi(phi1: Any, phi2: Any) -> Any:
    """φ1 − φ2 wrapped into [-π, π)."""
    phi1, phi2 = _broadcast(phi1, phi2)
    zeros = ak.zeros_like(phi1) if _is_ak(phi1) else np.zeros_like(phi1)
    return _out(_vectors3(zeros, phi1).deltaphi(_vectors3(zeros, phi2)))


def delta_r(eta1: Any, phi1: Any, eta2: Any, phi2: Any) -> Any:
    """√(Δη² + Δφ²), Δφ wrapped."""
    eta1, phi1, eta2, phi2 = _broadcast(eta1, phi1, eta2, phi2)
    return _out(_vectors3(eta1, phi1).deltaR(_vectors3(eta2, phi2)))


# -- four-vectors ------------------------------------------------------------------------------

PTETAPHIM = ("pt", "eta", "phi", "mass")
XYZE = ("px", "py", "pz", "E")


def _lorentz(names: tuple[str, ...], values: list[Any]) -> Any:
    values = _broadcast(*values)
    if _is_ak(values[0]):
        return _vector().zip(dict(zip(names, values)))
    return _vector().array(dict(zip(names, values)))


def _pair(names: tuple[str, ...], a: Any, b: Any, c: Any, d: Any, i: Any, j: Any) -> Any:
    """The sum of objects ``i`` and ``j`` of each event (NaN components when one is missing)."""
    a, b, c, d = _broadcast(a, b, c, d)
    for value in (a, b, c, d):
        _jagged(value, "a pair of objects")
    first_ = _vector().array(dict(zip(names, (nth(a, i), nth(b, i), nth(c, i), nth(d, i)))))
    second = _vector().array(dict(zip(names, (nth(a, j), nth(b, j), nth(c, j), nth(d, j)))))
    return first_ + second


def _total(names: tuple[str, ...], a: Any, b: Any, c: Any, d: Any) -> Any:
    """The sum of all objects of each event (zero for an empty event)."""
    objects = _lorentz(names, [a, b, c, d])
    _jagged(objects.px if _is_ak(objects) else objects, "a sum of objects")
    sums = {k: ak.to_numpy(ak.sum(getattr(objects, k), axis=1)).astype(np.float64) for k in XYZE}
    return _vector().array(sums)


def _component(vectors: Any, name: str) -> np.ndarray:
    return np.asarray(getattr(vectors, name), dtype=np.float64)


def pair_function(names: tuple[str, ...], component: str):
    def pair(a, b, c, d, i, j):
        return _component(_pair(names, a, b, c, d, i, j), component)
    return pair


def total_function(names: tuple[str, ...], component: str):
    def total(a, b, c, d):
        with np.errstate(all="ignore"):
            return _component(_total(names, a, b, c, d), component)
    return total
