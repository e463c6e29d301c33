"""Parse and validate the user's inputs: files.txt, labels.txt and preproc.json (params.json
is read by :mod:`mlaas4hep.params`; its names are re-exported here).

Every mistake raises :class:`~mlaas4hep.errors.ConfigError` naming the file, the key path and
what was expected. The original MLaaS4HEP keys, defaults and spellings (``"True"``/``"False"``
strings for booleans, ``""`` for an empty list, ``cut_1``/``cut_2`` ...) are accepted as-is.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, did_you_mean
from .expr import Expression, compile_expression
from .params import PARAMS, ParamSpec, Params, _bool, _str_list, load_json_object, load_params, validate_params

__all__ = [
    "PARAMS", "ParamSpec", "Params", "load_params", "validate_params",  # params.json lives in .params
    "ListEntry", "load_list", "Labels", "load_labels",
    "FLAT", "JAGGED", "Cut", "NewBranch", "BranchCut", "Preproc", "load_preproc",
]

# ---------------------------------------------------------------------------------------------
# files.txt and labels.txt


@dataclass(frozen=True)
class ListEntry:
    """One value from files.txt / labels.txt (or a command-line list), with where it came from."""

    value: str
    origin: str  # "files.txt:3", "--files[1]", "files[0]"
    base_dir: str | None = None  # folder of the list file, for relative paths

    def local_path(self) -> str:
        """The value as a path to send elsewhere: a relative name that is not found here but is
        next to its list file is taken from there; URLs and everything else as written."""
        name = self.value
        if self.base_dir and "://" not in name and not os.path.isabs(name) and not os.path.exists(name):
            candidate = os.path.join(self.base_dir, name)
            if os.path.exists(candidate):
                return candidate
        return name


def load_list(source: str | os.PathLike | Sequence[str], what: str = "files") -> list[ListEntry]:
    """Entries of a list: a path to a text file (one per line, ``#`` comments, blank lines
    skipped, commas allowed), a comma-separated string, or a Python list.

    A files list may also be one data file given directly (``--files data.root``): a ROOT file,
    or any file that does not read as a list (binary content, whatever its extension); it is
    then the only entry, and reading it says what is wrong with it."""
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if isinstance(source, str):
        if os.path.isfile(source):
            if what == "files" and _is_root_file(source):
                return [ListEntry(source, f"{what}[0]")]
            entries = _read_list_file(source, what)
            if entries is not None:
                return entries
            return [ListEntry(source, f"{what}[0]")]
        if source.endswith((".txt", ".list")):
            raise ConfigError(f"{what} list file not found", where=source)
        items = [s.strip() for s in source.split(",")]
        entries = [ListEntry(v, f"{what}[{i}]") for i, v in enumerate(items) if v]
    elif isinstance(source, Sequence):
        entries = []
        for i, v in enumerate(source):
            if isinstance(v, os.PathLike):
                v = os.fspath(v)
            if not isinstance(v, (str, int)):
                raise ConfigError(f"expected strings, got {v!r}", where=f"{what}[{i}]")
            entries.append(ListEntry(str(v).strip(), f"{what}[{i}]"))
    else:
        raise ConfigError(f"expected a list or a path to a list file, got {source!r}", where=what)
    if not entries:
        raise ConfigError(f"the {what} list is empty", where=what)
    return entries


def _is_root_file(path: str) -> bool:
    """A ROOT file (given directly, e.g. ``--files data.root``) rather than a list of them."""
    try:
        with open(path, "rb") as stream:
            return stream.read(4) == b"root"
    except OSError:
        return False


def _read_list_file(path: str, what: str) -> list[ListEntry] | None:
    """The entries of a list file; None for a files list that is not text (a data file)."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"cannot read {what} list: {err.strerror or err}", where=path) from None
    try:
        text = data.decode("utf-8")
        if "\x00" in text:
            raise UnicodeDecodeError("utf-8", data, text.index("\x00"), text.index("\x00") + 1, "a NUL byte")
    except UnicodeDecodeError as err:
        if what == "files":
            return None
        raise ConfigError(f"cannot read {what} list: it is not text ({err.reason} at byte {err.start})",
                          where=path) from None
    if what == "files" and not text.strip() and path.endswith(".root"):
        return None  # an empty data file, not an empty list
    lines = text.splitlines()
    base = os.path.dirname(os.path.abspath(path))
    entries = []
    for lineno, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        for value in (v.strip() for v in line.split(",")):
            if value:
                entries.append(ListEntry(value, f"{path}:{lineno}", base))
    if not entries:
        raise ConfigError(f"the {what} list has no entries (only blank lines or # comments)", where=path)
    return entries


#: Largest class number (a model has one output per class)
MAX_LABEL = 100_000
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)", re.IGNORECASE)


@dataclass(frozen=True)
class Labels:
    """One integer label per file, and class names when the labels were given as names."""

    values: tuple[int, ...]
    classes: tuple[str, ...] | None = None

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.classes else (max(self.values) + 1 if self.values else 0)


def load_labels(source: str | os.PathLike | Sequence[str | int], n_files: int, files_origin: str = "files") -> Labels:
    """Labels, one per file: integers (``0``, ``1``) or class names (``signal``, ``background``;
    numbered in order of first appearance)."""
    entries = load_list(source, "labels")
    if len(entries) != n_files:
        raise ConfigError(
            f"{len(entries)} label{'s' if len(entries) != 1 else ''} for {n_files} "
            f"file{'s' if n_files != 1 else ''} in {files_origin}; give one label per file, in the same order",
            where=entries[0].origin.rsplit(":", 1)[0] if ":" in entries[0].origin else "labels",
        )
    integer = [bool(re.fullmatch(r"[+-]?\d+", e.value)) for e in entries]
    if all(integer):
        values = tuple(int(e.value) for e in entries)
        for e, v in zip(entries, values):
            if v < 0:
                raise ConfigError(f"labels must be >= 0, got {v}", where=e.origin)
            if v > MAX_LABEL:
                raise ConfigError(f"label {v} is too large: labels are class numbers from 0 to {MAX_LABEL:,}",
                                  where=e.origin)
        return Labels(values)
    for e, is_int in zip(entries, integer):
        if is_int:
            other = next(o for o, i in zip(entries, integer) if not i)
            raise ConfigError(f"label {e.value!r} is a number but {other.value!r} (at {other.origin}) is a name",
                              where=e.origin, hint="give every label as an integer class (0, 1, ...) or every "
                                                   "label as a class name")
        if _NUMBER.fullmatch(e.value):
            raise ConfigError(f"label {e.value!r} is a number that is not an integer", where=e.origin,
                              hint="labels are integer classes (0, 1, ...) or class names")
    classes: list[str] = []
    for e in entries:
        if e.value not in classes:
            classes.append(e.value)
    return Labels(tuple(classes.index(e.value) for e in entries), tuple(classes))


# ---------------------------------------------------------------------------------------------
# preproc.json

FLAT, JAGGED = "flat", "jagged"
_CUT_KEY = re.compile(r"cut(?:_(\d+))?$")


@dataclass(frozen=True)
class Cut:
    """One cut: a boolean expression; ``mode`` is ``flat`` (per event) or ``all`` / ``any``
    (a jagged condition reduced per event)."""

    expr: Expression
    mode: str
    key: str  # key path, e.g. "new_branch.log_partonE.cut_1"

    @property
    def text(self) -> str:
        return self.expr.text

    @property
    def label(self) -> str:
        return self.text if self.mode == FLAT else f"{self.mode}({self.text})"


@dataclass(frozen=True)
class NewBranch:
    name: str
    expr: Expression
    kind: str | None  # declared type; None = inferred from the expression
    cuts: tuple[Cut, ...]
    remove: bool
    keys_to_remove: tuple[str, ...]
    key: str


@dataclass(frozen=True)
class BranchCut:
    """An entry of flat_cut or jagged_cut: cuts on an existing (or new) branch."""

    name: str
    kind: str  # flat for flat_cut, jagged for jagged_cut
    cuts: tuple[Cut, ...]
    remove: bool
    key: str


@dataclass(frozen=True)
class Preproc:
    """preproc.json, parsed. ``raw`` is the file's content as given, for exact round trips."""

    new_branches: tuple[NewBranch, ...] = ()
    flat_cuts: tuple[BranchCut, ...] = ()
    jagged_cuts: tuple[BranchCut, ...] = ()
    raw: dict = field(default_factory=dict, compare=False)
    source: str = "preproc"

    @property
    def cuts(self) -> list[Cut]:
        """Every cut, in the order of the file: new-branch cuts, flat cuts, jagged cuts."""
        out = [c for nb in self.new_branches for c in nb.cuts]
        out += [c for bc in self.flat_cuts for c in bc.cuts]
        out += [c for bc in self.jagged_cuts for c in bc.cuts]
        return out

    def to_dict(self) -> dict:
        return copy.deepcopy(self.raw)

    def canonical(self) -> str:
        """A stable text of the content (key order never matters) for cache keys."""
        return json.dumps(self.raw, sort_keys=True, separators=(",", ":"))

    def __bool__(self) -> bool:
        return bool(self.new_branches or self.flat_cuts or self.jagged_cuts)


_TOP_KEYS = ("new_branch", "flat_cut", "jagged_cut")
_NEW_BRANCH_KEYS = ("def", "type", "cut", "remove", "keys_to_remove")
_BRANCH_CUT_KEYS = ("cut", "remove")


def load_preproc(source: str | os.PathLike | Mapping[str, Any] | Preproc | None) -> Preproc:
    """preproc.json (a path or a dict; None or {} for none) as :class:`Preproc`."""
    if isinstance(source, Preproc):
        return source
    if source is None:
        return Preproc()
    name, data = load_json_object(source, "preproc")
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(
                f"unknown key {key!r}", where=name,
                hint=did_you_mean(key, _TOP_KEYS) or "top-level keys are new_branch, flat_cut, jagged_cut",
            )
    new_branches = tuple(
        _parse_new_branch(bname, body, name)
        for bname, body in _section(data, "new_branch", name).items()
    )
    flat_cuts = tuple(
        _parse_branch_cut(bname, body, FLAT, name)
        for bname, body in _section(data, "flat_cut", name).items()
    )
    jagged_cuts = tuple(
        _parse_branch_cut(bname, body, JAGGED, name)
        for bname, body in _section(data, "jagged_cut", name).items()
    )
    names = [nb.name for nb in new_branches]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ConfigError(f"new branch {sorted(dupes)[0]!r} is defined twice", where=f"{name}: new_branch")
    return Preproc(new_branches, flat_cuts, jagged_cuts, copy.deepcopy(data), name)


def _section(data: dict, key: str, name: str) -> dict:
    value = data.get(key, {})
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"expected an object {{branch: {{...}}}}, got {type(value).__name__}", where=f"{name}: {key}")
    return value


def _check_keys(body: Any, allowed: Sequence[str], where: str) -> dict:
    if not isinstance(body, dict):
        raise ConfigError(f"expected an object {{...}}, got {body!r}", where=where)
    for key in body:
        if key in allowed or _CUT_KEY.match(key):
            continue
        raise ConfigError(f"unknown key {key!r}", where=where,
                          hint=did_you_mean(key, allowed) or "keys are " + ", ".join(allowed))
    return body


def _is_identifier(name: str) -> bool:
    return name.isidentifier()


def _parse_new_branch(bname: str, body: Any, source: str) -> NewBranch:
    where = f"{source}: new_branch.{bname}"
    body = _check_keys(body, _NEW_BRANCH_KEYS, where)
    if not _is_identifier(bname):
        raise ConfigError(f"new branch name {bname!r} must be a valid identifier (letters, digits, _)",
                          where=f"{source}: new_branch")
    if "def" not in body:
        raise ConfigError("missing 'def' (the expression that defines the new branch)", where=where)
    expr = compile_expression(body["def"], f"{where}.def")
    kind = body.get("type")
    if kind is not None and kind not in (FLAT, JAGGED):
        raise ConfigError(f"expected 'flat' or 'jagged', got {kind!r}", where=f"{where}.type")
    if bname in expr.names or bname in expr.constants:
        raise ConfigError(f"new branch {bname!r} is defined in terms of itself", where=f"{where}.def")
    cuts = _parse_cuts(body, where, kind)
    remove = _bool(body.get("remove", False), f"{where}.remove")
    keys_to_remove = _str_list(body.get("keys_to_remove", ()), f"{where}.keys_to_remove")
    return NewBranch(bname, expr, kind, cuts, remove, keys_to_remove, where)


def _parse_branch_cut(bname: str, body: Any, kind: str, source: str) -> BranchCut:
    section = "flat_cut" if kind == FLAT else "jagged_cut"
    where = f"{source}: {section}.{bname}"
    body = _check_keys(body, _BRANCH_CUT_KEYS, where)
    cuts = _parse_cuts(body, where, kind)
    if not cuts:
        raise ConfigError("missing 'cut'", where=where)
    remove = _bool(body.get("remove", False), f"{where}.remove")
    return BranchCut(bname, kind, cuts, remove, where)


def _parse_cuts(body: dict, where: str, kind: str | None) -> tuple[Cut, ...]:
    keyed = []
    for key in body:
        m = _CUT_KEY.match(key)
        if m:
            keyed.append((int(m.group(1)) if m.group(1) else 0, key))
    cuts = []
    for _, key in sorted(keyed):
        cuts.append(_parse_cut(body[key], f"{where}.{key}", kind))
    return tuple(cuts)


def _parse_cut(value: Any, where: str, kind: str | None) -> Cut:
    if isinstance(value, str):
        if kind == JAGGED:
            raise ConfigError(
                f"a cut on a jagged branch needs a mode: write [{value!r}, \"all\"] or [{value!r}, \"any\"]",
                where=where,
            )
        return Cut(compile_expression(value, where), FLAT, where)
    if isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[0], str):
        mode = value[1]
        if mode not in ("all", "any"):
            raise ConfigError(f"the mode of a jagged cut must be \"all\" or \"any\", got {mode!r}", where=where)
        if kind == FLAT:
            raise ConfigError(
                f"[expression, {mode!r}] is a jagged cut, but this branch is flat: give the cut as a plain string",
                where=where,
            )
        return Cut(compile_expression(value[0], where), mode, where)
    raise ConfigError(
        f"expected a cut expression string, or [expression, \"all\"|\"any\"] for a jagged cut; got {value!r}",
        where=where,
    )
