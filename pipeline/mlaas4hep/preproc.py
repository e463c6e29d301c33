"""Apply a preproc.json to blocks of events: new branches, then flat and jagged cuts.

A :class:`Preprocessor` is a :class:`~mlaas4hep.config.Preproc` bound to the branch kinds of a
tree. Binding checks everything that can be checked before reading data: unknown branches
(with the closest names), new branches defined in terms of each other (ordered, cycles
refused), the kind (flat / jagged) of every expression and cut, and cuts in the wrong section.

Semantics: new branches are computed before the cuts that use them; all cuts are AND-ed per
event; a jagged cut ``"all"`` keeps an event when every element passes (no elements: passes),
``"any"`` when at least one does (no elements: fails).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import awkward as ak
import numpy as np

from .config import FLAT, JAGGED, Cut, NewBranch, Preproc
from .errors import ConfigError, ExpressionError, did_you_mean
from .expr import SCALAR, lookalike_hint


class Preprocessor:
    """A preproc bound to the kinds of the source branches (``{name: "flat"|"jagged"}``).

    ``unsupported`` maps branches that exist but cannot be used (strings, objects) to why.
    """

    def __init__(self, preproc: Preproc, kinds: Mapping[str, str], unsupported: Mapping[str, str] | None = None):
        self.preproc = preproc
        self.source_kinds = dict(kinds)
        self.unsupported = dict(unsupported or {})
        self.kinds: dict[str, str] = dict(kinds)  # source and new branches
        self.new_branches: list[NewBranch] = self._order_new_branches()
        self.cuts: list[Cut] = preproc.cuts
        self._check_sections()
        for cut in self.cuts:
            self._check_cut(cut)
        self.inputs: set[str] = self._inputs()
        self.removed: set[str] = self._removed()

    # -- binding ------------------------------------------------------------------------------

    def _known(self, name: str, where: str, text: str) -> None:
        if name in self.kinds:
            return
        if name in self.unsupported:
            raise ExpressionError(f"branch {name!r} in {text!r} cannot be used: {self.unsupported[name]}", where=where)
        raise ExpressionError(
            f"unknown branch {name!r} in {text!r}", where=where,
            hint=lookalike_hint(name, self.kinds) or did_you_mean(name, self.kinds) or _listing(self.kinds),
        )

    def _order_new_branches(self) -> list[NewBranch]:
        """New branches in an order where each comes after the new branches it uses."""
        pending = {nb.name: nb for nb in self.preproc.new_branches}
        for nb in pending.values():
            if nb.name in self.source_kinds:
                raise ConfigError(f"new branch {nb.name!r} has the name of an existing branch; choose another name",
                                  where=nb.key)
        ordered: list[NewBranch] = []
        while pending:
            ready = [nb for nb in pending.values() if not (_uses(nb.expr) & set(pending))]
            if not ready:
                cycle = ", ".join(sorted(pending))
                raise ConfigError(f"new branches are defined in terms of each other in a cycle: {cycle}",
                                  where=f"{self.preproc.source}: new_branch")
            for nb in ready:
                for name in sorted(nb.expr.names):
                    self._known(name, f"{nb.key}.def", nb.expr.text)
                self._check_shadowed(nb.expr, f"{nb.key}.def")
                kind = nb.expr.kind(self.kinds)
                if kind == SCALAR:
                    raise ExpressionError(f"{nb.expr.text!r} does not use any branch", where=f"{nb.key}.def")
                if nb.kind is not None and nb.kind != kind:
                    uses = ", ".join(f"{n} ({self.kinds[n]})" for n in sorted(nb.expr.names))
                    raise ExpressionError(
                        f"declared type {nb.kind!r} but {nb.expr.text!r} gives a {kind} value (it uses {uses})",
                        where=f"{nb.key}.type",
                        hint="use a reducer such as max(...), sum(...) or count(...) to get one value per event"
                        if nb.kind == FLAT else None,
                    )
                self.kinds[nb.name] = kind
                ordered.append(nb)
                del pending[nb.name]
        return ordered

    def _check_sections(self) -> None:
        for bc in (*self.preproc.flat_cuts, *self.preproc.jagged_cuts):
            if bc.name not in self.kinds:
                self._known(bc.name, bc.key, bc.name)
            actual = self.kinds[bc.name]
            if actual != bc.kind:
                if bc.kind == FLAT:
                    raise ConfigError(
                        f"a flat cut on jagged branch {bc.name!r}: move it to jagged_cut as "
                        f"[expression, \"all\"] or [expression, \"any\"]", where=bc.key)
                raise ConfigError(
                    f"a jagged cut on flat branch {bc.name!r}: move it to flat_cut as a plain expression",
                    where=bc.key)
        for nb in self.preproc.new_branches:
            for key in nb.keys_to_remove:
                if key not in self.kinds:
                    raise ConfigError(f"keys_to_remove names unknown branch {key!r}", where=f"{nb.key}.keys_to_remove",
                                      hint=did_you_mean(key, self.kinds))

    def _check_shadowed(self, expr, where: str) -> None:
        """A constant name (``pi``, ``e``) that is also an unusable branch is refused, never
        silently taken as the constant."""
        for name in sorted(expr.constants):
            if name not in self.kinds and name in self.unsupported:
                raise ExpressionError(
                    f"{name!r} in {expr.text!r} is a branch of the file, which cannot be used: "
                    f"{self.unsupported[name]}", where=where,
                    hint=f"a branch named {name!r} is never taken as the constant; use np.{name} for the constant")

    def _check_cut(self, cut: Cut) -> None:
        for name in sorted(cut.expr.names):
            self._known(name, cut.key, cut.text)
        self._check_shadowed(cut.expr, cut.key)
        kind = cut.expr.kind(self.kinds)
        if kind == SCALAR:
            raise ExpressionError(f"cut {cut.text!r} does not use any branch", where=cut.key)
        if cut.mode == FLAT and kind == JAGGED:
            raise ExpressionError(
                f"cut {cut.text!r} gives one value per element (jagged); write [{cut.text!r}, \"all\"] "
                f"or [{cut.text!r}, \"any\"]", where=cut.key)
        if cut.mode != FLAT and kind != JAGGED:
            raise ExpressionError(
                f"cut {cut.text!r} is flat (one value per event), so {cut.mode!r} does not apply; "
                f"give it as a plain string", where=cut.key)

    def _inputs(self) -> set[str]:
        names: set[str] = set()
        for nb in self.new_branches:
            names |= _uses(nb.expr)
        for cut in self.cuts:
            names |= _uses(cut.expr)
        return {n for n in names if n in self.source_kinds}

    def _removed(self) -> set[str]:
        removed = set()
        for nb in self.preproc.new_branches:
            if nb.remove:
                removed.add(nb.name)
            removed.update(nb.keys_to_remove)
        for bc in (*self.preproc.flat_cuts, *self.preproc.jagged_cuts):
            if bc.remove:
                removed.add(bc.name)
        return removed

    @property
    def new_names(self) -> list[str]:
        return [nb.name for nb in self.new_branches]

    # -- applying -----------------------------------------------------------------------------

    def add_new_branches(self, arrays: Mapping[str, Any]) -> dict[str, Any]:
        """``arrays`` plus every new branch (flat ones as numpy, jagged ones as awkward)."""
        env = dict(arrays)
        for nb in self.new_branches:
            value = nb.expr(env)
            env[nb.name] = _flat_numpy(value) if self.kinds[nb.name] == FLAT else ak.Array(value)
        return env

    def cut_masks(self, env: Mapping[str, Any]) -> list[tuple[Cut, np.ndarray]]:
        """Each cut's own pass/fail per event, in the order of the file (for a cut flow)."""
        return [(cut, self._evaluate_cut(cut, env)) for cut in self.cuts]

    def cut_mask(self, cut: Cut, env: Mapping[str, Any]) -> np.ndarray:
        """One cut's pass/fail per event on ``env`` (the arrays with the new branches)."""
        return self._evaluate_cut(cut, env)

    def apply(self, arrays: Mapping[str, Any]) -> tuple[dict[str, Any], np.ndarray | None]:
        """New branches, and the AND of all cuts per event (None when there are no cuts)."""
        env = self.add_new_branches(arrays)
        mask = None
        for cut in self.cuts:
            passed = self._evaluate_cut(cut, env)
            mask = passed if mask is None else np.logical_and(mask, passed, out=mask)
        return env, mask

    def _evaluate_cut(self, cut: Cut, env: Mapping[str, Any]) -> np.ndarray:
        value = cut.expr(env)
        if cut.mode != FLAT:
            if _content_dtype(value).kind != "b":
                raise ExpressionError(f"cut {cut.text!r} gives numbers, not True/False; write a comparison "
                                      f"such as '{cut.text} > 0'", where=cut.key)
            reduce = ak.all if cut.mode == "all" else ak.any
            return ak.to_numpy(reduce(value, axis=1)).astype(bool, copy=False)
        value = _flat_numpy(value)
        if value.dtype.kind != "b":
            raise ExpressionError(f"cut {cut.text!r} gives numbers, not True/False; write a comparison "
                                  f"such as '{cut.text} > 0'", where=cut.key)
        return np.array(value, dtype=bool, copy=True)


def _uses(expr) -> set[str]:
    """Branch names an expression may read: its names, and constant names a branch may shadow."""
    return set(expr.names) | set(expr.constants)


def _flat_numpy(value: Any) -> np.ndarray:
    if isinstance(value, ak.Array):
        return ak.to_numpy(value)
    return np.asarray(value)


def _content_dtype(value: Any) -> np.dtype:
    layout = ak.to_layout(value)
    while hasattr(layout, "content"):
        layout = layout.content
    return layout.dtype if hasattr(layout, "dtype") else np.dtype(object)


def _listing(kinds: Mapping[str, str]) -> str | None:
    if not kinds:
        return None
    names = sorted(kinds)
    shown = ", ".join(names[:12])
    return f"branches are: {shown}" + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
