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


def torch_model(hidden: int = 16) -> str:
    """model.py source of a small PyTorch classifier (loss and optimizer left to the defaults)."""
    return f"""from torch import nn


def model(idim):
    return nn.Sequential(nn.Linear(idim, {hidden}), nn.ReLU(), nn.Linear({hidden}, 1))
"""


def keras_model(hidden: int = 16) -> str:
    """model.py source of a small compiled Keras classifier (the original contract)."""
    return f"""import keras


def model(idim):
    net = keras.Sequential([keras.Input((idim,)), keras.layers.Dense({hidden}, activation="relu"),
                            keras.layers.Dense(1, activation="sigmoid")])
    net.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return net
"""
