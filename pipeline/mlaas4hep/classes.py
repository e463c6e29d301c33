"""Which class is which, in one place for every view: the label → class → role → colour mapping
and what a model's score means.

Explore's plots, the score plots of an evaluation (the Workbench's Train tab, the JupyterLab job
view) and the cut flow all take their class names, roles and colours from :func:`class_table`;
an evaluation carries its table (``class_info``, ``score_meaning``), so the JupyterLab frontend
draws with the same colours without a rule of its own.

The signal is the class named ``signal`` (or ``sig``), else with integer labels 0 and 1, label 1
(a binary model's score is the probability of class 1). The signal is always red, the
background (the one other class) always blue; further classes take a fixed palette in the order
of their label values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

SIGNAL = "#e42536"
BACKGROUND = "#3f90da"
#: further classes (or files, when unlabelled), in order
PALETTE = ("#3f90da", "#e42536", "#f89c20", "#964a8b", "#9c9ca1", "#7a21dd", "#92dadd", "#a96b59")
SIGNAL_NAMES = ("signal", "sig")


@dataclass(frozen=True)
class ClassInfo:
    """One class: its label value (the model's class index), the name the views give it
    (``"label 1"`` for integer labels, else the class name), its role and its colour."""

    value: int
    name: str
    role: str  # "signal", "background" or "class"
    colour: str
    score: str = ""  # with two classes, on label 1: what the score is ("the score is P(signal)")

    @property
    def description(self) -> str:
        """What the class is, as the views write it: ``"signal, label 1 (the score is P(signal))"``."""
        text = f"{self.role}, label {self.value}"
        return f"{text} ({self.score})" if self.score else text


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


def class_table(values: Iterable[int], names: Sequence[str] | None = None) -> list[ClassInfo]:
    """The classes of these label values, in value order. ``names``: the class names of labels
    given as names (``names[value]``), None for integer labels."""
    distinct = sorted(set(int(v) for v in values))
    groups = [names[v] if names else f"label {v}" for v in distinct]
    signal = next((g for g in groups if g.lower() in SIGNAL_NAMES), None)
    if signal is None and not names and distinct == [0, 1]:
        signal = "label 1"
    colours = class_colours(groups, signal)
    role = {g: "signal" if g == signal else ("background" if signal else "class") for g in groups}

    def score(value: int, group: str) -> str:  # a binary model's score is P(label 1)
        if distinct != [0, 1] or value != 1:
            return ""
        if role[group] == "signal":
            return "the score is P(signal)"
        return f"the score is P({group})" + (", 1 − P(signal)" if signal else "")

    return [ClassInfo(v, g, role[g], colours[g], score(v, g)) for v, g in zip(distinct, groups)]


def signal_of(table: Sequence[ClassInfo]) -> str | None:
    """The name of the signal class, None when the labels do not say."""
    return next((c.name for c in table if c.role == "signal"), None)


def score_meaning(table: Sequence[ClassInfo]) -> str:
    """What a model's score means, in words."""
    scored = next((c for c in table if c.score), None)
    if scored is None:
        return "each class has its own score: the probability of that class"
    named = "" if scored.name == f"label {scored.value}" else f", {scored.name}"
    return f"{scored.score} (label {scored.value}{named})"


def evaluation_classes(names: Sequence[str]) -> dict:
    """``class_info`` and ``score_meaning`` of an evaluation whose classes are ``names`` (class
    names, or the label values "0", "1", ... of integer labels)."""
    integer = list(names) == [str(i) for i in range(len(names))]
    table = class_table(range(len(names)), None if integer else list(names))
    return {"class_info": [{"class": c.value, **{k: v for k, v in asdict(c).items() if k != "value"},
                            "description": c.description} for c in table],
            "score_meaning": score_meaning(table)}
