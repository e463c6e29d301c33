"""Previews of the data with the engine's own preproc: branch ranges, histograms before and
after the cuts per label, and the cut flow.

A :class:`Sample` reads the first ``n_events`` of each file once (only the branches asked for)
and keeps them; with params.json ``weight`` every count is a sum of event weights (Σw) and
carries its error √Σw²; evaluating a preproc on it goes through the same
:class:`~mlaas4hep.preproc.Preprocessor` as training, so what a preview shows is what training
gets. Evaluations are cached by the preproc's content, so redrawing after a change of binning or
branch costs nothing.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from .config import JAGGED, Cut, Labels, Preproc, load_labels, load_list, load_params, load_preproc
from .classes import ClassInfo, class_colours, class_table, signal_of
from .errors import ConfigError, ExpressionError, did_you_mean
from .expr import compile_expression
from .preproc import Preprocessor
from .read import BranchInfo, RootFile, resolve_path


@dataclass
class Evaluation:
    """A preproc applied to the sample: per file the arrays (new branches included), each cut's
    pass mask (in the order the user wrote them), and the AND of all cuts."""

    env: list[dict[str, Any]]
    cut_masks: list[list[tuple[str, np.ndarray]]]
    selected: list[np.ndarray]
    kinds: dict[str, str]
    cuts: list[Cut] = field(default_factory=list)  # in the order of cut_masks


@dataclass
class Histogram:
    """Counts per group (label or file), before and after the cuts, on shared bins.

    Counts are sums of event weights (the number of entries without ``weight`` in params);
    ``before_w2`` / ``after_w2`` hold Σw² per bin, so the error of a bin is its square root.
    With ``n_minus_1`` the "after" histograms have every cut except those on this branch, and
    ``cut_values`` are the thresholds of the cuts on it (for lines on the plot).
    """

    branch: str
    what: str  # "values" or "multiplicity"
    edges: np.ndarray
    before: dict[str, np.ndarray]
    after: dict[str, np.ndarray]
    before_w2: dict[str, np.ndarray] = field(default_factory=dict)
    after_w2: dict[str, np.ndarray] = field(default_factory=dict)
    weighted: bool = False
    n_minus_1: bool = False
    cut_values: list[float] = field(default_factory=list)
    excluded_cuts: list[str] = field(default_factory=list)

    def errors(self, which: str = "after") -> dict[str, np.ndarray]:
        """√Σw² (√N without weights) per bin and group."""
        return {g: np.sqrt(v) for g, v in (self.after_w2 if which == "after" else self.before_w2).items()}


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
        self._weights: list[np.ndarray] | None = None
        self._new_values: OrderedDict = OrderedDict()  # (file, new-branch definitions) -> their values
        self._cut_masks: OrderedDict = OrderedDict()  # (file, definitions, mode, text) -> pass per event
        self._binned: dict[str, tuple] = {}  # branches binned, element by element (see histogram)
        weight = self.params.weight
        self.weight_text: str | None = weight["expr"] if weight else None
        self._weight_expr = compile_expression(weight["expr"], f"{self.params.source}: weight") if weight else None
        scale = weight.get("scale") if weight else None
        if isinstance(scale, list) and len(scale) != len(self.paths):
            raise ConfigError(f"{len(scale)} scale(s) for {len(self.paths)} file(s); give one per file, in the "
                              "order of the files", where=f"{self.params.source}: weight.scale")
        self._scale = scale if isinstance(scale, list) else [1.0 if scale is None else scale] * len(self.paths)

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

    @property
    def weighted(self) -> bool:
        """Whether counts are sums of event weights (params.json ``weight``)."""
        return self._weight_expr is not None

    def classes(self) -> list[ClassInfo]:
        """The classes of the labels (names, roles, colours: :mod:`mlaas4hep.classes`); empty
        without labels."""
        if self.labels is None:
            return []
        return class_table(self.labels.values, self.labels.classes or None)

    def colours(self) -> dict[str, str]:
        """The colour of each group: its class's, or one per file without labels."""
        table = self.classes()
        return {c.name: c.colour for c in table} if table else class_colours(self.groups)

    @property
    def signal(self) -> str | None:
        """The group that is the signal, when the labels say so: a class named ``signal`` (or
        ``sig``), else with labels 0 and 1, ``label 1`` (the score is the probability of label 1)."""
        return signal_of(self.classes())

    def class_mapping(self) -> list[tuple[str, str]]:
        """Each group and what it is: ``[("label 1", "signal, label 1 (the score is P(signal))"), ...]``."""
        if self.labels is None:
            return [(g, "file (unlabelled)") for g in self.groups]
        return [(c.name, c.description) for c in self.classes()]

    def weights(self) -> list[np.ndarray] | None:
        """Each file's event weights in the sample (params.json ``weight`` × the file's scale);
        None without weights."""
        if self._weight_expr is None:
            return None
        if self._weights is None:
            expr = self._weight_expr
            kinds = self.kinds
            expr.check_names(kinds)
            if expr.kind(kinds) == JAGGED:
                raise ExpressionError(f"the weight {expr.text!r} gives a value per element; it needs one per event",
                                      where=expr.where, hint="use a reducer such as sum(...) or a leading object x[0]")
            names = sorted(expr.names | {c for c in expr.constants if c in kinds})
            out = []
            for arrays, scale, n in zip(self.arrays(names), self._scale, self.events()):
                value = expr(arrays)
                value = np.broadcast_to(np.asarray(ak.to_numpy(value) if isinstance(value, ak.Array) else value,
                                                   dtype=np.float64), (n,)) * scale
                out.append(np.array(value, dtype=np.float64))
            self._weights = out
        return self._weights

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
        # the content as written, in its order: the order of the cuts matters to the cut flow
        key = json.dumps(preproc.raw, separators=(",", ":"))
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
            order = written_order(preproc)
            # a cut edit leaves the new branches and the other cuts as they were: their values
            # and pass masks are kept (by the definitions of the new branches, and the cut's text)
            defs = json.dumps(preproc.raw.get("new_branch") or {}, separators=(",", ":"))
            env, masks, selected = [], [], []
            for i, arrays in enumerate(self.arrays(inputs)):
                def new_values(arrays: dict = arrays) -> dict[str, Any]:
                    full = pre.add_new_branches(arrays)
                    return {nb.name: full[nb.name] for nb in pre.new_branches}

                with_new = {**arrays, **self._kept(self._new_values, (i, defs), 4 * len(self.files), new_values)}
                cuts = [(pre.cuts[k].label, self._kept(self._cut_masks, (i, defs, pre.cuts[k].mode, pre.cuts[k].text),
                                                        64 * len(self.files),
                                                        lambda k=k: pre.cut_mask(pre.cuts[k], with_new)))
                        for k in order]
                total = np.ones(self.events()[i], bool)
                for _, mask in cuts:
                    total &= mask
                env.append(with_new)
                masks.append(cuts)
                selected.append(total)
            evaluation = Evaluation(env, masks, selected, dict(pre.kinds), [pre.cuts[k] for k in order])
        self._evaluations[key] = evaluation
        while len(self._evaluations) > 8:
            self._evaluations.popitem(last=False)
        return evaluation

    @staticmethod
    def _kept(cache: OrderedDict, key: Any, size: int, compute: Any) -> Any:
        """``cache[key]``, computed once (the least recently used dropped beyond ``size``)."""
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        value = cache[key] = compute()
        while len(cache) > size:
            cache.popitem(last=False)
        return value

    def histogram(self, branch: str, preproc: Preproc | Mapping[str, Any] | None = None, *, bins: int = 50,
                  multiplicity: bool = False, range: tuple[float, float] | None = None,
                  n_minus_1: bool = False) -> Histogram:
        """Counts of ``branch`` (all elements of a jagged branch, or with ``multiplicity`` its
        number of elements per event) per group, before and after the preproc's cuts. The bins
        span the values before the cuts, so both histograms share them. With weights, counts are
        Σw (each element of a jagged branch carries its event's weight) and Σw² is kept per bin.
        With ``n_minus_1``, "after" applies every cut except those on ``branch``."""
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
        weights = self.weights()
        if weights is None:
            weights = [None] * len(columns)
        selected = evaluation.selected
        excluded: list[str] = []
        cut_values: list[float] = []
        if n_minus_1:
            on_branch = [k for k, cut in enumerate(evaluation.cuts) if cut_is_on(cut, branch)]
            excluded = [evaluation.cuts[k].label for k in on_branch]
            for k in on_branch:
                cut_values += thresholds(evaluation.cuts[k], branch)
            selected = []
            for masks, n in zip(evaluation.cut_masks, self.events()):
                keep = np.ones(n, bool)
                for k, (_, mask) in enumerate(masks):
                    if k not in on_branch:
                        keep &= mask
                selected.append(keep)

        # the values binned once per branch, definition (new branches) and binning: each element's
        # bin and the event it belongs to, so that a cut edit only selects and counts (bincount)
        preproc_raw = load_preproc(preproc if preproc else None).raw or {}
        key = json.dumps([branch, multiplicity, bins, range, preproc_raw.get("new_branch")], sort_keys=True,
                         default=str)
        binned = self._binned.get(key)
        if binned is None:
            binned = self._bin(columns, weights, multiplicity, bins, range, branch)
            self._binned[key] = binned
            while len(self._binned) > 4:  # element arrays: a few branches' worth
                self._binned.pop(next(iter(self._binned)))
        else:
            self._binned[key] = self._binned.pop(key)  # most recently used last
        edges, per_file = binned
        n_bins = len(edges) - 1
        out: dict[str, dict[str, np.ndarray]] = {"before": {}, "after": {}, "before_w2": {}, "after_w2": {}}
        for group, (index, owner, w, before), mask in zip(self.groups, per_file, selected):
            after = _count(index, w, mask if owner is None else mask[owner], n_bins)
            for which, (counts, w2) in (("before", before), ("after", after)):
                out[which][group] = out[which].get(group, 0) + counts
                out[which + "_w2"][group] = out[which + "_w2"].get(group, 0) + w2
        return Histogram(branch, "multiplicity" if multiplicity else "values", edges, out["before"],
                         out["after"], out["before_w2"], out["after_w2"], self.weighted, n_minus_1, sorted(cut_values),
                         excluded)

    @staticmethod
    def _bin(columns: list, weights: list, multiplicity: bool, bins: int, range: tuple[float, float] | None,
             branch: str) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]]:
        """The bin edges, and per file each element's bin + 1 (0: not finite or outside), the
        event it belongs to (None: one element per event), its weight (its event's) and the
        histogram of every element (Σw, Σw²)."""
        import hist

        flat = []
        for values, w in zip(columns, weights):
            if multiplicity:
                flat.append((ak.to_numpy(ak.num(values, axis=1)).astype(np.float64), None, w))
            elif isinstance(values, ak.Array) and values.ndim > 1:
                counts = ak.to_numpy(ak.num(values, axis=1))
                owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
                flat.append((_values(values).astype(np.float64), owner, None if w is None else w[owner]))
            else:
                flat.append((_values(values).astype(np.float64), None, w))
        if range is None:  # the bins span the values before the cuts
            finite = np.concatenate([v[np.isfinite(v)] for v, _, _ in flat]) if flat else np.empty(0)
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            if finite.size and hi - lo < 200 and np.all(np.mod(finite, 1) == 0):
                lo, hi, bins = lo - 0.5, hi + 0.5, int(hi - lo + 1)  # integers: one bin each, centred
            elif hi <= lo:
                lo, hi = lo - 0.5, hi + 0.5
            # bins exclude their upper edge: the maximum goes into the last bin, not the overflow
            top = np.nextafter(hi, lo)
            flat = [(np.where(v == hi, top, v), owner, w) for v, owner, w in flat]
            range = (lo, hi)
        axis = hist.axis.Regular(bins, range[0], range[1], name=branch)
        per_file = []
        for values, owner, w in flat:
            index = np.zeros(values.shape, np.int64)
            finite = np.isfinite(values)
            inside = axis.index(values[finite])
            index[finite] = np.where((inside >= 0) & (inside < bins), inside + 1, 0)
            per_file.append((index, owner, w, _count(index, w, None, bins)))
        return np.asarray(axis.edges), per_file

    def cutflow(self, preproc: Preproc | Mapping[str, Any] | None) -> list[dict[str, Any]]:
        """Events left after each cut (cumulative, in the order the user wrote the cuts), per file
        and per group, with the efficiency relative to the previous step and to the start. With
        weights, each row also has the weighted yields (Σw) and their errors (√Σw²); when the
        labels say which group is the signal, S/√B and S/√(S+B) of each step."""
        evaluation = self.evaluate(preproc)
        start = self.events()
        weights = self.weights()
        alive = [np.ones(n, bool) for n in start]
        groups = self.groups
        signal = self.signal
        rows = [_cutflow_row("all events", start, start, start, groups, _yields(alive, weights), signal)]
        previous = list(start)
        labels = [label for label, _ in evaluation.cut_masks[0]] if evaluation.cut_masks else []
        for k, label in enumerate(labels):
            for i in range(len(alive)):
                alive[i] &= evaluation.cut_masks[i][k][1]
            counts = [int(a.sum()) for a in alive]
            rows.append(_cutflow_row(label, counts, previous, start, groups, _yields(alive, weights), signal))
            previous = counts
        return rows

    def close(self) -> None:
        for f in self.files:
            f.close()


def _count(index: np.ndarray, w: np.ndarray | None, keep: np.ndarray | None, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Σw and Σw² per bin (the counts twice without weights) of the elements ``keep`` selects
    (all with None); ``index`` is each element's bin + 1, 0 for none. The elements left out
    weigh 0 rather than being copied out: faster on the sample's sizes."""
    if w is None:
        counts = np.bincount(index, weights=keep, minlength=bins + 1)[1:] if keep is not None else \
            np.bincount(index, minlength=bins + 1)[1:].astype(np.float64)
        return counts, counts
    if keep is not None:
        w = np.where(keep, w, 0.0)
    return np.bincount(index, weights=w, minlength=bins + 1)[1:], np.bincount(index, weights=w * w, minlength=bins + 1)[1:]


def _yields(alive: list[np.ndarray], weights: list[np.ndarray] | None) -> list[tuple[float, float]]:
    """(Σw, Σw²) of the events alive in each file; (N, N) without weights."""
    if weights is None:
        return [(float(a.sum()), float(a.sum())) for a in alive]
    return [(float(w[a].sum()), float(np.square(w[a]).sum())) for a, w in zip(alive, weights)]


def _cutflow_row(cut: str, counts: list[int], previous: list[int], start: list[int], groups: list[str],
                 yields: list[tuple[float, float]], signal: str | None) -> dict[str, Any]:
    by_group: dict[str, int] = {}
    by_group_start: dict[str, int] = {}
    sum_w: dict[str, float] = {}
    sum_w2: dict[str, float] = {}
    for group, n, s, (w, w2) in zip(groups, counts, start, yields):
        by_group[group] = by_group.get(group, 0) + n
        by_group_start[group] = by_group_start.get(group, 0) + s
        sum_w[group] = sum_w.get(group, 0.0) + w
        sum_w2[group] = sum_w2.get(group, 0.0) + w2
    total, total_prev, total_start = sum(counts), sum(previous), sum(start)
    row = {
        "cut": cut,
        "per_file": counts,
        "per_group": by_group,
        "group_efficiency": {g: (by_group[g] / by_group_start[g] if by_group_start[g] else None) for g in by_group},
        "total": total,
        "relative": total / total_prev if total_prev else None,
        "efficiency": total / total_start if total_start else None,
        "per_file_weighted": [w for w, _ in yields],
        "per_group_weighted": sum_w,
        "per_group_error": {g: float(np.sqrt(v)) for g, v in sum_w2.items()},
        "weighted": float(sum(w for w, _ in yields)),
        "weighted_error": float(np.sqrt(sum(w2 for _, w2 in yields))),
    }
    if signal is not None and signal in sum_w:
        s_yield = sum_w[signal]
        b_yield = sum(v for g, v in sum_w.items() if g != signal)
        row["s_over_sqrt_b"] = s_yield / np.sqrt(b_yield) if b_yield > 0 else None
        row["s_over_sqrt_s_b"] = s_yield / np.sqrt(s_yield + b_yield) if s_yield + b_yield > 0 else None
    return row


def written_order(preproc: Preproc) -> list[int]:
    """Indices into ``preproc.cuts`` in the order the user wrote the cuts in preproc.json
    (sections, entries and cut keys as they come in the file). Applying cuts in any order gives
    the same selection; only a cut flow's order depends on it."""
    cuts = preproc.cuts
    paths = {}
    for k, cut in enumerate(cuts):
        paths[cut.key.rsplit(": ", 1)[-1]] = k
    order: list[int] = []
    for section, entries in (preproc.raw or {}).items():
        if not isinstance(entries, dict):
            continue
        for name, body in entries.items():
            if not isinstance(body, dict):
                continue
            for key in body:
                k = paths.get(f"{section}.{name}.{key}")
                if k is not None and k not in order:
                    order.append(k)
    order += [k for k in range(len(cuts)) if k not in order]  # anything not found keeps its place
    return order


def cut_is_on(cut: Cut, branch: str) -> bool:
    """Whether a cut is "on" ``branch``: it reads it, or it is written under its entry."""
    path = cut.key.rsplit(": ", 1)[-1].split(".")
    return branch in cut.expr.names or (len(path) >= 2 and path[1] == branch)


def thresholds(cut: Cut, branch: str) -> list[float]:
    """The numbers ``branch`` is compared with in a cut (``x > 30``, ``1 <= x <= 16``), to draw."""
    import ast

    out: list[float] = []
    for node in ast.walk(cut.expr._tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for left, right in zip(operands, operands[1:]):
            for this, other in ((left, right), (right, left)):
                if isinstance(this, ast.Name) and this.id == branch:
                    value = _number(other)
                    if value is not None:
                        out.append(value)
    return out


def _number(node: Any) -> float | None:
    import ast

    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _number(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    return None


def _values(array: Any) -> np.ndarray:
    """Flat numpy values of a flat or jagged array."""
    if isinstance(array, ak.Array) and array.ndim > 1:
        return ak.to_numpy(ak.flatten(array, axis=1))
    return np.asarray(array)
