"""The project's error type: every mistake a user can make is raised as one of these.

A message says what was wrong, where (file, key path, branch, line) and, where it helps,
what would be right. The command line prints ``str(error)`` and exits non-zero; it never
shows a traceback for these.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MLaaS4HEPError(Exception):
    """An error the user can fix.

    ``where`` names the place (``params.json: chunk_size``, ``signal.root: tree 'Events'``),
    ``hint`` what would be right (``did you mean 'nJets'?``).
    """

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConfigError(MLaaS4HEPError):
    """A mistake in files.txt, labels.txt, params.json, preproc.json or a command-line value."""


class ExpressionError(ConfigError):
    """A preproc expression that does not parse, uses something outside the whitelist,
    names an unknown branch or has the wrong kind (flat / jagged)."""


class DataError(MLaaS4HEPError):
    """A ROOT file that is missing, unreadable, corrupt, or lacks the tree or a branch."""


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str | None:
    """A 'did you mean ...?' hint with the closest of ``choices``, or None."""
    choices = list(choices)
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in choices}
        close = [lowered[c] for c in difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)]
    if not close:
        return None
    return "did you mean " + " or ".join(repr(c) for c in close) + "?"
