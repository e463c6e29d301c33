"""Previews of the data with the engine's own preproc: branch ranges, histograms before and
after the cuts per label, and the cut flow.

A :class:`Sample` reads the first ``n_events`` of each file once (only the branches asked for)
and keeps them; evaluating a preproc on it goes through the same
:class:`~mlaas4hep.preproc.Preprocessor` as training, so what a preview shows is what training
gets. Evaluations are cached by the preproc's content, so redrawing after a change of binning or
branch costs nothing.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from .config import JAGGED, Labels, Preproc, load_labels, load_list, load_params, load_preproc
from .errors import ConfigError, did_you_mean
from .preproc import Preprocessor
from .read import BranchInfo, RootFile, resolve_path


@dataclass
class Evaluation:
    """A preproc applied to the sample: per file the arrays (new branches included), each cut's
    pass mask (in the order of the file), and the AND of all cuts."""

    env: list[dict[str, Any]]
    cut_masks: list[list[tuple[str, np.ndarray]]]
    selected: list[np.ndarray]
    kinds: dict[str, str]


@dataclass
class Histogram:
    """Counts per group (label or file), before and after the cuts, on shared bins."""

    branch: str
    what: str  # "values" or "multiplicity"
    edges: np.ndarray
    before: dict[str, np.ndarray]
    after: dict[str, np.ndarray]


class Sample:
    """The first ``n_events`` of each file, for interactive previews."""

    def __init__(self, files: str | os.PathLike | Sequence[str], labels: str | os.PathLike | Sequence[str] | None = None,
                 params: str | os.PathLike | Mapping[str, Any] | None = None, n_events: int = 100_000):
        if n_events < 1:
            raise ConfigError(f"the sample needs at least 1 event per file, got {n_events}")
        self.params = load_params(params)
        entries = load_list(files, "files")
        self.paths = [resolve_path(e.value, self.params.redirector, e.base_dir, e.origin) for e in entries]
        self.labels: Labels | None = None if labels is None else load_labels(labels, len(self.paths))
        self.n_events = n_events
        self.files = [RootFile(p, self.params.branch, origin=e.origin, retries=self.params.retries,
                               retry_wait=self.params.retry_wait,
                               open_options={"timeout": self.params.timeout, "array_cache": None})
                      for p, e in zip(self.paths, entries)]
        self._arrays: list[dict[str, Any]] = [{} for _ in self.files]
        self._evaluations: OrderedDict[str, Evaluation] = OrderedDict()

    # -- what is there ------------------------------------------------------------------------

    @property
    def branches(self) -> dict[str, BranchInfo]:
        """The branches of the first file."""
        return self.files[0].branches

    @property
    def kinds(self) -> dict[str, str]:
        """Branches usable in expressions and as features: in every file, of one kind."""
        out = {}
        for name, info in self.branches.items():
            if info.supported and all(f.branches.get(name) and f.branches[name].kind == info.kind for f in self.files[1:]):
                out[name] = info.kind
        return out

    @property
    def groups(self) -> list[str]:
        """The group of each file in overlays: its label (class name or ``label N``), or the file."""
        if self.labels is None:
            return [os.path.basename(p) for p in self.paths]
        if self.labels.classes:
            return [self.labels.classes[v] for v in self.labels.values]
        return [f"label {v}" for v in self.labels.values]

    def events(self) -> list[int]:
        """Events in the sample of each file."""
        return [min(self.n_events, f.num_entries) for f in self.files]

    def arrays(self, names: Sequence[str]) -> list[dict[str, Any]]:
        """The sample's arrays of ``names`` for each file (read once, then kept)."""
        kinds = self.kinds
        for name in names:
            if name not in kinds:
                info = self.branches.get(name)
                reason = info.reason if info is not None else None
                raise ConfigError(f"branch {name!r} cannot be shown" + (f": {reason}" if reason else " (no such branch)"),
                                  where=self.paths[0], hint=None if info else self.files[0].missing_hint(name))
        for rfile, cache in zip(self.files, self._arrays):
            missing = [n for n in names if n not in cache]
            if missing:
                cache.update(rfile.arrays(missing, 0, min(self.n_events, rfile.num_entries)))
        return [{n: cache[n] for n in names} for cache in self._arrays]

    def ranges(self, names: Sequence[str] | None = None) -> dict[str, tuple[float | None, float | None]]:
        """Min and max of the finite values of each branch in the sample."""
        names = list(self.kinds) if names is None else list(names)
        out: dict[str, tuple[float | None, float | None]] = {}
        per_file = self.arrays(names)
        for name in names:
            values = np.concatenate([_values(a[name]) for a in per_file])
            finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
            out[name] = (float(finite.min()), float(finite.max())) if finite.size else (None, None)
        return out

    # -- the preproc on the sample ------------------------------------------------------------

    def evaluate(self, preproc: Preproc | Mapping[str, Any] | None) -> Evaluation:
        """Apply a preproc to the sample (cached by its content)."""
        preproc = load_preproc(preproc if preproc else None)
        key = preproc.canonical()
        if key in self._evaluations:
            self._evaluations.move_to_end(key)
            return self._evaluations[key]
        kinds = self.kinds
        if not preproc:
            n = self.events()
            evaluation = Evaluation([{} for _ in self.files], [[] for _ in self.files],
                                    [np.ones(k, bool) for k in n], dict(kinds))
        else:
            unsupported = {n: i.reason for n, i in self.branches.items() if not i.supported}
            pre = Preprocessor(preproc, kinds, unsupported)
            inputs = sorted(pre.inputs)
            env, masks, selected = [], [], []
            for arrays in self.arrays(inputs):
                with_new = pre.add_new_branches(arrays)
                cuts = [(cut.label, mask) for cut, mask in pre.cut_masks(with_new)]
                total = np.ones(len(next(iter(with_new.values()))), bool)
                for _, mask in cuts:
                    total &= mask
                env.append(with_new)
                masks.append(cuts)
                selected.append(total)
            evaluation = Evaluation(env, masks, selected, dict(pre.kinds))
        self._evaluations[key] = evaluation
        while len(self._evaluations) > 8:
            self._evaluations.popitem(last=False)
        return evaluation

    def histogram(self, branch: str, preproc: Preproc | Mapping[str, Any] | None = None, *, bins: int = 50,
                  multiplicity: bool = False, range: tuple[float, float] | None = None) -> Histogram:
        """Counts of ``branch`` (all elements of a jagged branch, or with ``multiplicity`` its
        number of elements per event) per group, before and after the preproc's cuts. The bins
        span the values before the cuts, so both histograms share them."""
        import hist

        evaluation = self.evaluate(preproc)
        if branch not in evaluation.kinds:
            raise ConfigError(f"no branch {branch!r} to show", hint=did_you_mean(branch, evaluation.kinds))
        jagged = evaluation.kinds[branch] == JAGGED
        if multiplicity and not jagged:
            raise ConfigError(f"{branch!r} is flat: it has no multiplicity")
        columns = []
        for i, env in enumerate(evaluation.env):
            values = env[branch] if branch in env else self.arrays([branch])[i][branch]
            columns.append(values)

        def per_event_values(values: Any, mask: np.ndarray | None) -> np.ndarray:
            if mask is not None:
                values = values[mask]
            if multiplicity:
                return ak.to_numpy(ak.num(values, axis=1)).astype(np.float64)
            return _values(values).astype(np.float64)

        before = [per_event_values(v, None) for v in columns]
        after = [per_event_values(v, m) for v, m in zip(columns, evaluation.selected)]
        auto = range is None
        if auto:
            finite = np.concatenate([b[np.isfinite(b)] for b in before]) if before else np.empty(0)
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            if finite.size and hi - lo < 200 and np.all(np.mod(finite, 1) == 0):
                lo, hi, bins = lo - 0.5, hi + 0.5, int(hi - lo + 1)  # integers: one bin each, centred
            elif hi <= lo:
                lo, hi = lo - 0.5, hi + 0.5
            range = (lo, hi)
            # bins exclude their upper edge: the maximum goes into the last bin, not the overflow
            top = np.nextafter(range[1], range[0])
            before = [np.where(b == range[1], top, b) for b in before]
            after = [np.where(a == range[1], top, a) for a in after]
        axis = hist.axis.Regular(bins, range[0], range[1], name=branch)
        out_before: dict[str, np.ndarray] = {}
        out_after: dict[str, np.ndarray] = {}
        for group, b, a in zip(self.groups, before, after):
            for target, values in ((out_before, b), (out_after, a)):
                h = hist.Hist(axis)
                h.fill(values[np.isfinite(values)])
                target[group] = target.get(group, 0) + h.values()
        return Histogram(branch, "multiplicity" if multiplicity else "values", axis.edges, out_before, out_after)

    def cutflow(self, preproc: Preproc | Mapping[str, Any] | None) -> list[dict[str, Any]]:
        """Events left after each cut (cumulative, in the order of the file), per file and per
        group, with the efficiency relative to the previous step and to the start."""
        evaluation = self.evaluate(preproc)
        start = self.events()
        alive = [np.ones(n, bool) for n in start]
        groups = self.groups
        rows = [_cutflow_row("all events", start, start, start, groups)]
        previous = list(start)
        labels = [label for label, _ in evaluation.cut_masks[0]] if evaluation.cut_masks else []
        for k, label in enumerate(labels):
            for i in range(len(alive)):
                alive[i] &= evaluation.cut_masks[i][k][1]
            counts = [int(a.sum()) for a in alive]
            rows.append(_cutflow_row(label, counts, previous, start, groups))
            previous = counts
        return rows

    def close(self) -> None:
        for f in self.files:
            f.close()


def _cutflow_row(cut: str, counts: list[int], previous: list[int], start: list[int], groups: list[str]) -> dict[str, Any]:
    by_group: dict[str, int] = {}
    by_group_start: dict[str, int] = {}
    for group, n, s in zip(groups, counts, start):
        by_group[group] = by_group.get(group, 0) + n
        by_group_start[group] = by_group_start.get(group, 0) + s
    total, total_prev, total_start = sum(counts), sum(previous), sum(start)
    return {
        "cut": cut,
        "per_file": counts,
        "per_group": by_group,
        "group_efficiency": {g: (by_group[g] / by_group_start[g] if by_group_start[g] else None) for g in by_group},
        "total": total,
        "relative": total / total_prev if total_prev else None,
        "efficiency": total / total_start if total_start else None,
    }


def _values(array: Any) -> np.ndarray:
    """Flat numpy values of a flat or jagged array."""
    if isinstance(array, ak.Array) and array.ndim > 1:
        return ak.to_numpy(ak.flatten(array, axis=1))
    return np.asarray(array)
