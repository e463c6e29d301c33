"""Which branches are read, and which become features.

Features are the supported branches common to every file (or ``selected_branches``), minus
``exclude_branches``, the ``identifier`` branches and what the preproc removes, plus the new
branches the preproc keeps. Branches read are the source features plus every branch the preproc
expressions use.

As in the original MLaaS4HEP: an empty ``identifier`` means ``run``, ``event`` and
``luminosityBlock`` (those the files have), and an ``exclude_branches`` or ``identifier`` name
that the files lack is ignored, with a warning. What was decided that way is in ``notes``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .config import JAGGED, Params, Preproc
from .errors import ConfigError, DataError
from .preproc import Preprocessor
from .weights import WeightedPreprocessor, weight_expression
from .read import RootFile


@dataclass
class FeatureSelection:
    flat: list[str]  # feature branches with one value per event, sorted
    jagged: list[str]  # feature branches with a list per event, sorted
    read: list[str]  # source branches to read
    identifiers: list[str]
    # every usable branch (source and new) -> flat | jagged; of a single file with selected_branches
    # and neither preproc nor weight, only the selected and identifier branches
    kinds: dict[str, str]
    dtypes: dict[str, str]  # source branches -> numpy dtype name (as kinds)
    skipped: dict[str, str] = field(default_factory=dict)  # branch -> why it is not a feature
    preprocessor: Preprocessor | None = None
    notes: list[tuple[str, str]] = field(default_factory=list)  # (level "info" | "warning", message)

    @property
    def features(self) -> list[str]:
        return self.flat + self.jagged

    @property
    def weighted(self) -> bool:
        """Whether each block carries event weights (params.json ``weight``) as ``WEIGHT``."""
        return isinstance(self.preprocessor, WeightedPreprocessor)


def select_features(files: Sequence[RootFile], params: Params, preproc: Preproc,
                    unreadable: Mapping[str, str] | None = None) -> FeatureSelection:
    """Check the params' branch lists and the preproc against the files; decide the features.

    ``unreadable``: branches uproot was found unable to read (by the specs pass), with why;
    they are skipped like unsupported ones.
    """
    first = files[0]
    unreadable = dict(unreadable or {})
    weight = weight_expression(params)
    # Only the selected branches and the identifiers are classified where nothing else is asked
    # about (uproot works out each branch's interpretation then: most of opening a wide tree).
    # Without a selection, with a preproc or weight (whose expressions may name any branch) and
    # with several files (the branches not in every file are listed as skipped) every one is.
    everything = not params.selected_branches or bool(preproc) or weight is not None or len(files) > 1
    if everything:
        names: Sequence[str] = list(first.branches)
    else:
        wanted = set(params.selected_branches) | set(params.identifier or DEFAULT_IDENTIFIERS)
        names = [n for n in first.branches if n in wanted]
    common, dtypes, skipped, unsupported = _usable(files, names, unreadable)

    source = f"{params.source}"
    for name in params.selected_branches:
        _require(name, files, "selected_branches", source)
        if name in unsupported:
            raise ConfigError(f"branch {name!r} cannot be a feature: {unsupported[name]}",
                              where=f"{source}: selected_branches")
        if name in skipped:
            raise DataError(f"branch {name!r} cannot be a feature: {skipped[name]}", where=f"{source}: selected_branches")
    notes: list[tuple[str, str]] = []
    identifiers = _identifiers(files, params, source, notes)
    for name in params.exclude_branches:
        if not any(name in f.branches for f in files):
            hint = first.missing_hint(name)
            notes.append(("warning", f"{source}: exclude_branches: branch {name!r} is not in the files; ignored"
                                     + (f" ({hint})" if hint else "")))

    if weight is not None:  # the weight rides with the preproc: env[WEIGHT] in every block
        preprocessor = WeightedPreprocessor(preproc or Preproc(), common, {**unsupported, **skipped}, weight)
    else:
        preprocessor = Preprocessor(preproc, common, {**unsupported, **skipped}) if preproc else None
    if params.selected_branches:
        candidates = list(params.selected_branches)
    else:
        candidates = list(common)
        skipped.update(unsupported)
    dropped = set(params.exclude_branches) | set(params.identifier) | set(identifiers)
    if preprocessor is not None:
        dropped |= preprocessor.removed
    source_features = [n for n in candidates if n not in dropped]
    kinds = dict(preprocessor.kinds if preprocessor else common)
    features = source_features + [n for n in (preprocessor.new_names if preprocessor else []) if n not in dropped]
    if not features:
        if not everything:  # the message counts every branch that cannot be a feature
            _, _, skipped, unsupported = _usable(files, list(first.branches), unreadable)
        raise ConfigError(_no_features(first, params, candidates, dropped, {**unsupported, **skipped}),
                          where=first.where)
    read = list(dict.fromkeys(source_features + sorted(preprocessor.inputs if preprocessor else [])))
    flat = sorted(n for n in features if kinds[n] != JAGGED)
    jagged = sorted(n for n in features if kinds[n] == JAGGED)
    return FeatureSelection(flat, jagged, read, identifiers, kinds, dtypes, skipped, preprocessor, notes)


def _usable(files: Sequence[RootFile], names: Sequence[str], unreadable: Mapping[str, str]
            ) -> tuple[dict[str, str], dict[str, str], dict[str, str], dict[str, str]]:
    """Of the first file's branches ``names``: the kind and dtype of those usable in every file,
    those skipped (not in every file, or of another kind in one) and those that cannot be
    features, each with why."""
    first = files[0]
    common: dict[str, str] = {}
    dtypes: dict[str, str] = {}
    skipped: dict[str, str] = {}
    unsupported: dict[str, str] = {}
    for name in names:
        info = first.branches[name]
        if not info.supported or name in unreadable:
            unsupported[name] = info.reason if not info.supported else f"uproot cannot read it: {unreadable[name]}"
            continue
        for other in files[1:]:
            other_info = other.branches.get(name)
            if other_info is None:
                skipped[name] = f"not in every file (missing in {other.path})"
                break
            if other_info.kind != info.kind:
                skipped[name] = f"{info.kind} in {first.path} but {other_info.kind} in {other.path}"
                break
        else:
            common[name] = info.kind
            dtypes[name] = info.dtype
    return common, dtypes, skipped, unsupported


#: The original's identifiers when params give none
DEFAULT_IDENTIFIERS = ("run", "event", "luminosityBlock")


def _identifiers(files: Sequence[RootFile], params: Params, source: str, notes: list[tuple[str, str]]) -> list[str]:
    """The identifier branches every file has; the others are reported in ``notes``."""
    if not params.identifier:
        found = [n for n in DEFAULT_IDENTIFIERS if all(n in f.branches for f in files)]
        chosen = [n for n in found if n in params.selected_branches]
        if chosen:
            notes.append(("warning", f"{source}: selected_branches: {', '.join(chosen)} not used as "
                                     f"feature{'s' if len(chosen) > 1 else ''}: identifier is empty, so "
                                     f"{', '.join(DEFAULT_IDENTIFIERS)} are event identifiers (as in the original); "
                                     "give identifier explicitly to use them as features"))
        if found:
            notes.append(("info", f"{source}: identifier is empty, so {', '.join(found)} "
                                  f"{'is an event identifier' if len(found) == 1 else 'are event identifiers'}, "
                                  "not features (as in the original MLaaS4HEP)"))
        return found
    found = []
    for name in params.identifier:
        lacking = [f for f in files if name not in f.branches]
        if not lacking:
            found.append(name)
            continue
        hint = lacking[0].missing_hint(name)
        where = "the files" if len(lacking) == len(files) else f"{lacking[0].where}"
        notes.append(("warning", f"{source}: identifier: branch {name!r} is not in {where}; ignored"
                                 + (f" ({hint})" if hint else "")))
    return found


def _no_features(first: RootFile, params: Params, candidates: Sequence[str], dropped: set[str],
                 refused: Mapping[str, str]) -> str:
    """Why no branch is left as a feature, with counts and the commonest reasons."""
    parts = []
    excluded = len([n for n in candidates if n in dropped])
    if excluded:
        parts.append(f"{excluded} excluded, identifiers or removed by the preproc")
    if refused:
        reasons = Counter(_reason_kind(r) for r in refused.values())
        shown = "; ".join(f"{n} {why}" for why, n in reasons.most_common(4))
        more = f"; {sum(reasons.values()) - sum(n for _, n in reasons.most_common(4))} other" if len(reasons) > 4 else ""
        example = next(iter(refused.items()))
        parts.append(f"{len(refused)} cannot be features ({shown}{more}; e.g. {example[0]!r}: {example[1]})")
    total = len(first.branches)
    return (f"no features left in tree {first.tree_name!r}: of its {total} leaf branches, "
            + (", ".join(parts) or "none remain") + f" (params: {params.source})")


def _reason_kind(reason: str) -> str:
    """A reason without the details that differ from branch to branch (type names, counts)."""
    if reason.startswith("string branch"):
        return "strings"
    if reason.startswith("fixed-size array"):
        return "fixed-size arrays"
    if reason.startswith("leaf list"):
        return "leaf lists"
    if reason.startswith("holds "):
        return "never filled"
    if reason.startswith("uproot cannot read"):
        return "unreadable"
    if reason.startswith("not in every file") or " but " in reason:
        return "differ between files"
    return "objects or nested containers"


def _require(name: str, files: Sequence[RootFile], key: str, source: str) -> None:
    for f in files:
        if name not in f.branches:
            raise DataError(
                f"branch {name!r} (from {source}: {key}) is not in tree {f.tree_name!r}", where=f.where,
                hint=f.missing_hint(name),
            )
