"""Helpers shared by the test modules (conftest files import from here)."""

from __future__ import annotations

import os

import pytest

# CI sets this so that a missing tool fails the run instead of skipping tests
REQUIRE_ALL = os.environ.get("MLAAS4HEP_REQUIRE_ALL") == "1"


def need(condition: bool, reason: str) -> None:
    """Skip when a tool is missing on a developer machine; fail in CI, where it must be there."""
    if condition:
        return
    if REQUIRE_ALL:
        pytest.fail(f"required for this run: {reason}")
    pytest.skip(reason)
