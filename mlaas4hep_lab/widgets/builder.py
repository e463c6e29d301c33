"""PreprocBuilder: pick files and labels, see every branch, and build preproc.json visually.

The builder edits a working copy of preproc.json in its original format (``"remove": "False"``
strings, ``cut_1``/``cut_2`` keys, key order are kept as they are unless edited), so a file loaded
and saved unchanged round-trips exactly. Each expression is checked as it is typed, with the
engine's own parser and the branches of the files; the message shows beside the field. The
shared state's ``preproc`` is only set when the whole preproc is valid for these files.
"""

from __future__ import annotations

import copy
import glob
import html
import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as w

from mlaas4hep.config import FLAT, JAGGED, load_list, load_preproc
from mlaas4hep.errors import MLaaS4HEPError, did_you_mean
from mlaas4hep.expr import compile_expression
from mlaas4hep.preproc import Preprocessor

from .state import WorkbenchState

_CUT_KEY = re.compile(r"cut(?:_(\d+))?$")
_SECTIONS = ("new_branch", "flat_cut", "jagged_cut")
ERROR_STYLE = "color: var(--jp-error-color1, #d32f2f)"
OK_STYLE = "color: var(--jp-success-color1, #388e3c)"


def _message(text: str, ok: bool = False) -> str:
    if not text:
        return ""
    return f'<span style="{OK_STYLE if ok else ERROR_STYLE}">{html.escape(text)}</span>'


def _as_bool(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _like(original: Any, value: bool) -> Any:
    """A boolean written the way the file already writes them ("True"/"False" or true/false)."""
    return ("True" if value else "False") if isinstance(original, str) else value


def _cut_keys(entry: dict) -> list[str]:
    keyed = [(int(m.group(1)) if m.group(1) else 0, k) for k in entry if (m := _CUT_KEY.match(k))]
    return [k for _, k in sorted(keyed)]


def _rename_key(mapping: dict, old: str, new: str) -> dict:
    """The mapping with key ``old`` renamed, order kept."""
    return {(new if k == old else k): v for k, v in mapping.items()}


class CutEditor(w.VBox):
    """The cuts of one entry (``cut`` or ``cut_1``, ``cut_2`` ...), each an expression and, for
    jagged ones, ``all``/``any``."""

    def __init__(self, entry: dict, modes: tuple[str, ...], changed: Callable[[], None],
                 check: Callable[[str], str]):
        super().__init__()
        self.entry, self.modes, self.changed, self.check = entry, modes, changed, check
        self.add = w.Button(description="+ cut", layout=w.Layout(width="70px"), tooltip="add a cut")
        self.add.on_click(lambda _: self._add())
        self._render()

    def _render(self) -> None:
        rows = [self._row(key) for key in _cut_keys(self.entry)]
        self.children = [*rows, self.add]

    def _row(self, key: str) -> w.Widget:
        value = self.entry[key]
        text, mode = (value, FLAT) if isinstance(value, str) else (value[0], value[1])
        expr = w.Text(value=text, placeholder="e.g. x > 10", layout=w.Layout(width="260px"), continuous_update=True)
        options = self.modes if mode in self.modes else (*self.modes, mode)
        kind = w.Dropdown(options=options, value=mode, layout=w.Layout(width="80px"),
                          tooltip="flat: one value per event; all / any: a condition on each element")
        note = w.HTML(_message(self.check(text)))
        remove = w.Button(description="✕", layout=w.Layout(width="32px"), tooltip="remove this cut")

        def store(_: Any = None) -> None:
            self.entry[key] = expr.value if kind.value == FLAT else [expr.value, kind.value]
            note.value = _message(self.check(expr.value))
            self.changed()

        expr.observe(store, "value")
        kind.observe(store, "value")

        def drop(_: Any) -> None:
            del self.entry[key]
            self._render()
            self.changed()

        remove.on_click(drop)
        return w.HBox([w.Label(key, layout=w.Layout(width="48px")), expr, kind, remove, note])

    def _add(self) -> None:
        keys = _cut_keys(self.entry)
        mode = self.modes[0]
        value = "" if mode == FLAT else ["", mode]
        if not keys:
            self.entry["cut"] = value
        else:
            if keys == ["cut"]:  # a second cut: the first becomes cut_1 (the entry is shared: edit in place)
                self.entry["cut_1"] = self.entry.pop("cut")
                keys = ["cut_1"]
            numbers = [int(_CUT_KEY.match(k).group(1) or 0) for k in keys]
            self.entry[f"cut_{max(numbers) + 1}"] = value
        self._render()
        self.changed()


class NewBranchRow(w.VBox):
    """One entry of ``new_branch``."""

    def __init__(self, builder: PreprocBuilder, name: str):
        super().__init__(layout=w.Layout(border="1px solid var(--jp-border-color2, #ccc)", padding="4px", margin="2px 0"))
        self.builder, self.name = builder, name
        entry = builder.doc["new_branch"][name]
        self.name_box = w.Text(value=name, description="name", layout=w.Layout(width="220px"), continuous_update=False)
        self.definition = w.Text(value=str(entry.get("def", "")), description="def", placeholder="e.g. log(partonE)",
                                 layout=w.Layout(width="360px"), continuous_update=True)
        self.note = w.HTML(_message(builder.check_expression(self.definition.value)))
        self.kind = w.Dropdown(options=[("infer", ""), ("flat", FLAT), ("jagged", JAGGED)],
                               value=entry.get("type", "") if entry.get("type") in (FLAT, JAGGED) else "",
                               description="type", layout=w.Layout(width="170px"))
        self.remove = w.Checkbox(value=_as_bool(entry.get("remove", False)), description="remove after cuts", indent=False)
        keys = entry.get("keys_to_remove", [])
        self.keys_to_remove = w.Text(value=", ".join(keys) if isinstance(keys, list) else str(keys),
                                     description="keys_to_remove", placeholder="branches to drop from the features",
                                     style={"description_width": "initial"}, layout=w.Layout(width="360px"),
                                     continuous_update=False)
        self.delete = w.Button(description="delete", button_style="danger", layout=w.Layout(width="70px"))
        self.cuts = CutEditor(entry, (FLAT, "all", "any"), builder.changed, builder.check_expression)
        self.name_box.observe(self._rename, "value")
        self.definition.observe(self._set_def, "value")
        self.kind.observe(self._set_kind, "value")
        self.remove.observe(self._set_remove, "value")
        self.keys_to_remove.observe(self._set_keys, "value")
        self.delete.on_click(lambda _: builder.delete_entry("new_branch", self.name))
        self.children = [w.HBox([self.name_box, self.kind, self.delete]), w.HBox([self.definition, self.note]),
                         self.cuts, w.HBox([self.remove, self.keys_to_remove])]

    @property
    def entry(self) -> dict:
        return self.builder.doc["new_branch"][self.name]

    def _rename(self, change: dict) -> None:
        new = change["new"].strip()
        if not new or new == self.name or new in self.builder.doc["new_branch"]:
            return
        self.builder.doc["new_branch"] = _rename_key(self.builder.doc["new_branch"], self.name, new)
        self.name = new
        self.builder.changed()

    def _set_def(self, change: dict) -> None:
        self.entry["def"] = change["new"]
        self.note.value = _message(self.builder.check_expression(change["new"]))
        self.builder.changed()

    def _set_kind(self, change: dict) -> None:
        if change["new"]:
            self.entry["type"] = change["new"]
        else:
            self.entry.pop("type", None)
        self.builder.changed()

    def _set_remove(self, change: dict) -> None:
        self.entry["remove"] = _like(self.entry.get("remove", False), change["new"])
        self.builder.changed()

    def _set_keys(self, change: dict) -> None:
        keys = [k.strip() for k in change["new"].split(",") if k.strip()]
        if keys:
            self.entry["keys_to_remove"] = keys
        else:
            self.entry.pop("keys_to_remove", None)
        self.builder.changed()


class BranchCutRow(w.VBox):
    """One entry of ``flat_cut`` or ``jagged_cut``: cuts on a branch."""

    def __init__(self, builder: PreprocBuilder, section: str, name: str):
        super().__init__(layout=w.Layout(border="1px solid var(--jp-border-color2, #ccc)", padding="4px", margin="2px 0"))
        self.builder, self.section, self.name = builder, section, name
        entry = builder.doc[section][name]
        self.branch = w.Combobox(value=name, options=builder.branch_options(JAGGED if section == "jagged_cut" else FLAT),
                                 description="branch", ensure_option=False, layout=w.Layout(width="260px"),
                                 continuous_update=False)
        self.remove = w.Checkbox(value=_as_bool(entry.get("remove", False)), description="remove after cuts", indent=False)
        self.delete = w.Button(description="delete", button_style="danger", layout=w.Layout(width="70px"))
        modes = ("all", "any") if section == "jagged_cut" else (FLAT,)
        self.cuts = CutEditor(entry, modes, builder.changed, builder.check_expression)
        self.branch.observe(self._rename, "value")
        self.remove.observe(self._set_remove, "value")
        self.delete.on_click(lambda _: builder.delete_entry(self.section, self.name))
        self.children = [w.HBox([self.branch, self.remove, self.delete]), self.cuts]

    def _rename(self, change: dict) -> None:
        new = change["new"].strip()
        entries = self.builder.doc[self.section]
        if not new or new == self.name or new in entries:
            return
        self.builder.doc[self.section] = _rename_key(entries, self.name, new)
        self.name = new
        self.builder.changed()

    def _set_remove(self, change: dict) -> None:
        entry = self.builder.doc[self.section][self.name]
        entry["remove"] = _like(entry.get("remove", False), change["new"])
        self.builder.changed()


class FilesPanel(w.VBox):
    """Files and their labels: typed in, or picked from the ROOT files under the current folder."""

    def __init__(self, state: WorkbenchState):
        super().__init__()
        self.state = state
        self.rows = w.VBox()
        found = sorted(glob.glob("**/*.root", recursive=True))[:200]
        self.picker = w.Dropdown(options=[("pick a ROOT file here ...", "")] + [(p, p) for p in found],
                                 layout=w.Layout(width="420px"))
        self.picker.observe(self._picked, "value")
        self.add = w.Button(description="+ file", layout=w.Layout(width="70px"))
        self.add.on_click(lambda _: self._add_row("", ""))
        self.apply = w.Button(description="use these files", button_style="primary")
        self.apply.on_click(self._apply)
        self.note = w.HTML()
        for i, path in enumerate(state.files):
            self._add_row(path, state.labels[i] if i < len(state.labels) else "")
        if not state.files:
            self._add_row("", "")
        self.children = [w.HTML("<b>Files</b> (path or root:// / https:// URL) and labels (0, 1 ... or class names)"),
                         self.rows, w.HBox([self.add, self.picker]), w.HBox([self.apply, self.note])]

    def _add_row(self, path: str, label: str) -> None:
        path_box = w.Text(value=path, placeholder="data.root", layout=w.Layout(width="420px"))
        label_box = w.Text(value=label, placeholder="label", layout=w.Layout(width="120px"))
        remove = w.Button(description="✕", layout=w.Layout(width="32px"))
        row = w.HBox([path_box, label_box, remove])
        remove.on_click(lambda _: setattr(self.rows, "children", [r for r in self.rows.children if r is not row]))
        self.rows.children = [*self.rows.children, row]

    def _picked(self, change: dict) -> None:
        if not change["new"]:
            return
        empty = [r for r in self.rows.children if not r.children[0].value]
        if empty:
            empty[0].children[0].value = change["new"]
        else:
            self._add_row(change["new"], "")
        self.picker.value = ""

    def _apply(self, _: Any = None) -> None:
        pairs = [(r.children[0].value.strip(), r.children[1].value.strip()) for r in self.rows.children]
        pairs = [(p, l) for p, l in pairs if p]
        if not pairs:
            self.note.value = _message("add at least one file")
            return
        labels = [l for _, l in pairs]
        if any(labels) and not all(labels):
            self.note.value = _message("give every file a label, or none (unlabelled)")
            return
        try:
            files = [e.value for e in load_list([p for p, _ in pairs], "files")]
        except MLaaS4HEPError as err:
            self.note.value = _message(str(err))
            return
        self.state.labels = labels if all(labels) else []
        self.state.files = files
        self.note.value = _message(f"{len(files)} file(s)", ok=True)


class PreprocBuilder(w.VBox):
    """Files, the branch table, and the preproc editor with a live preproc.json."""

    def __init__(self, state: WorkbenchState):
        super().__init__()
        self.state = state
        self.doc: dict = copy.deepcopy(dict(state.preproc))
        self.files = FilesPanel(state)
        self.branch_table = w.HTML("<i>choose files to see their branches</i>")
        self.new_box, self.flat_box, self.jagged_box = w.VBox(), w.VBox(), w.VBox()
        self.add_new = w.Button(description="+ new branch")
        self.add_flat = w.Button(description="+ flat cut")
        self.add_jagged = w.Button(description="+ jagged cut")
        self.add_new.on_click(lambda _: self.add_entry("new_branch"))
        self.add_flat.on_click(lambda _: self.add_entry("flat_cut"))
        self.add_jagged.on_click(lambda _: self.add_entry("jagged_cut"))
        self.error = w.HTML()
        self.json_view = w.Textarea(layout=w.Layout(width="100%", height="260px"), disabled=True)
        self.path = w.Text(value="preproc.json", description="file", layout=w.Layout(width="360px"))
        self.load_button = w.Button(description="load")
        self.save_button = w.Button(description="save")
        self.file_note = w.HTML()
        self.load_button.on_click(lambda _: self.load(self.path.value))
        self.save_button.on_click(lambda _: self.save(self.path.value))
        self._kinds: dict[str, str] = {}
        self._unsupported: dict[str, str] = {}
        state.observe(self._inputs_changed, ["files", "labels", "params", "sample_size"])
        state.observe(self._preproc_changed, "preproc")
        self.children = [
            self.files,
            w.HTML("<b>Branches</b>"), self.branch_table,
            w.HTML("<b>New branches</b>"), self.new_box, self.add_new,
            w.HTML("<b>Flat cuts</b>"), self.flat_box, self.add_flat,
            w.HTML("<b>Jagged cuts</b>"), self.jagged_box, self.add_jagged,
            self.error,
            w.HTML("<b>preproc.json</b>"), self.json_view,
            w.HBox([self.path, self.load_button, self.save_button, self.file_note]),
        ]
        self._render_rows()
        self._refresh_json()
        if state.files:
            self._inputs_changed()

    # -- branches of the files ----------------------------------------------------------------

    def _inputs_changed(self, _: Any = None) -> None:
        threading.Thread(target=self._load_branches, daemon=True).start()

    def _load_branches(self) -> None:
        try:
            sample = self.state.sample()
            if sample is None:
                return
            self.branch_table.value = "<i>reading the first events of each file ...</i>"
            kinds = sample.kinds
            ranges = sample.ranges(list(kinds))
            self._kinds = kinds
            self._unsupported = {n: i.reason for n, i in sample.branches.items() if not i.supported}
            self.branch_table.value = self._table(sample, ranges)
            for row in [*self.flat_box.children, *self.jagged_box.children]:
                row.branch.options = self.branch_options(JAGGED if row.section == "jagged_cut" else FLAT)
            self.changed()
        except MLaaS4HEPError as err:
            self.branch_table.value = _message(str(err))

    def _table(self, sample, ranges: dict) -> str:
        cells = []
        for name, info in sample.branches.items():
            lo, hi = ranges.get(name, (None, None))
            fmt = lambda v: "" if v is None else f"{v:.6g}"  # noqa: E731
            note = info.reason if not info.supported else ("" if name in ranges else "not in every file")
            cells.append(f"<tr><td>{html.escape(name)}</td><td>{info.kind or '-'}</td><td>{info.dtype}</td>"
                         f"<td>{html.escape(info.typename)}</td><td style='text-align:right'>{fmt(lo)}</td>"
                         f"<td style='text-align:right'>{fmt(hi)}</td><td>{html.escape(note)}</td></tr>")
        head = ("<tr><th>branch</th><th>kind</th><th>dtype</th><th>ROOT type</th><th>min</th><th>max</th>"
                "<th>note</th></tr>")
        n = sample.n_events
        return (f"<div style='max-height:260px; overflow:auto'><table class='mlaas4hep-branches'>{head}"
                f"{''.join(cells)}</table></div><small>ranges over the first {n:,} events of each file</small>")

    def branch_options(self, kind: str) -> list[str]:
        new = {n: e.get("type") for n, e in self.doc.get("new_branch", {}).items()}
        names = [n for n, k in self._kinds.items() if k == kind]
        return names + [n for n, k in new.items() if k in (kind, None, "")]

    # -- editing ------------------------------------------------------------------------------

    def _render_rows(self) -> None:
        self.new_box.children = [NewBranchRow(self, n) for n in self.doc.get("new_branch", {})]
        self.flat_box.children = [BranchCutRow(self, "flat_cut", n) for n in self.doc.get("flat_cut", {})]
        self.jagged_box.children = [BranchCutRow(self, "jagged_cut", n) for n in self.doc.get("jagged_cut", {})]

    def add_entry(self, section: str) -> None:
        entries = self.doc.setdefault(section, {})
        base = {"new_branch": "new_branch", "flat_cut": "branch", "jagged_cut": "branch"}[section]
        name = next(f"{base}_{i}" for i in range(1, 10_000) if f"{base}_{i}" not in entries)
        entries[name] = {"def": ""} if section == "new_branch" else {"cut": "" if section == "flat_cut" else ["", "all"]}
        self._render_rows()
        self.changed()

    def delete_entry(self, section: str, name: str) -> None:
        self.doc[section].pop(name, None)
        if not self.doc[section]:
            del self.doc[section]
        self._render_rows()
        self.changed()

    def check_expression(self, text: str) -> str:
        """'' when ``text`` parses and names only known branches; else what is wrong."""
        if not text.strip():
            return "empty"
        try:
            expr = compile_expression(text)
        except MLaaS4HEPError as err:
            return err.message.split("\n")[0]
        if self._kinds:
            known = set(self._kinds) | set(self.doc.get("new_branch", {}))
            for name in sorted(expr.names - known):
                if name in self._unsupported:
                    return f"{name!r} cannot be used: {self._unsupported[name]}"
                hint = did_you_mean(name, known)
                return f"unknown branch {name!r}" + (f" ({hint})" if hint else "")
        return ""

    def changed(self) -> None:
        """The working copy changed: show it, check it, and publish it when valid."""
        self._refresh_json()
        doc = {k: v for k, v in self.doc.items() if v or k not in _SECTIONS}
        try:
            preproc = load_preproc(doc)
            if self._kinds:
                Preprocessor(preproc, self._kinds, self._unsupported)
        except MLaaS4HEPError as err:
            self.error.value = _message(str(err))
            self.state.preproc_draft = copy.deepcopy(doc)  # before the error: observers read both
            self.state.preproc_error = str(err)
            self.state.message = str(err)
            return
        self.error.value = ""
        self.state.message = ""
        self.state.preproc_draft = copy.deepcopy(doc)
        if doc != self.state.preproc:
            self.state.preproc = copy.deepcopy(doc)
        self.state.preproc_error = ""

    def _refresh_json(self) -> None:
        self.json_view.value = json.dumps(self.doc, indent=2)

    def _preproc_changed(self, change: dict) -> None:
        if change["new"] != self.doc:  # set from outside (a notebook, another panel)
            self.doc = copy.deepcopy(dict(change["new"]))
            self._render_rows()
            self._refresh_json()

    def to_dict(self) -> dict:
        """The preproc.json being edited (valid or not)."""
        return copy.deepcopy(self.doc)

    def load(self, path: str | os.PathLike) -> None:
        try:
            text = Path(path).read_text()
            doc = json.loads(text)
            load_preproc(doc)  # reported if it is not a preproc at all
        except (OSError, ValueError, MLaaS4HEPError) as err:
            self.file_note.value = _message(f"{path}: {err}")
            return
        self.doc = doc
        self._render_rows()
        self.changed()
        self.file_note.value = _message(f"loaded {path}", ok=True)

    def save(self, path: str | os.PathLike) -> None:
        try:
            Path(path).write_text(json.dumps(self.doc, indent=2) + "\n")
        except OSError as err:
            self.file_note.value = _message(f"{path}: {err.strerror or err}")
            return
        self.file_note.value = _message(f"saved {path}", ok=True)
