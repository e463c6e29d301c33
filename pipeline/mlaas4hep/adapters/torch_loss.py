"""The loss of a PyTorch model.py, and what its output means.

The default loss follows the output:

=====================  ==============================  ====================================
output                 last module                     default loss
=====================  ==============================  ====================================
1 unit (binary)        ``nn.Sigmoid``                  ``nn.BCELoss``
1 unit (binary)        anything else (logits)          ``nn.BCEWithLogitsLoss``
w units                ``nn.LogSoftmax``               ``nn.NLLLoss``
w units                ``nn.Softmax``                  ``nn.NLLLoss`` on the log of the output
w units                anything else (logits)          ``nn.CrossEntropyLoss``
=====================  ==============================  ====================================

The "last module" is found by walking the last registered child down (the last layer of an
``nn.Sequential``). A w-unit output ending in ``nn.Sigmoid`` needs a ``loss`` of its own, and
a 1-unit output cannot end in (Log)Softmax.

What the output means (and so what ``TorchAdapter.predict`` does with it):

* the model ends in ``nn.Sigmoid`` or ``nn.Softmax``, or has no such layer but its loss is
  ``nn.BCELoss``: probabilities, returned as they are;
* it ends in ``nn.LogSoftmax``, or its loss is ``nn.NLLLoss``: log-probabilities, exponentiated;
* otherwise (``BCEWithLogitsLoss``, ``CrossEntropyLoss``, the default logits case, or a custom
  loss function on a model without a final activation): logits, passed through a sigmoid
  (1 unit) or a softmax (w units).

``predict`` returns shape ``(n,)`` for binary labels (the probability of class 1; the second
column for a 2-unit output) and ``(n, k)`` for k classes. A model that ends in Sigmoid with
``BCEWithLogitsLoss``, or in Softmax with ``CrossEntropyLoss``, would apply the activation
twice; that is reported as a ConfigError.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, NamedTuple

import torch
from torch import nn

from ..errors import ConfigError
from . import loss_key

LOGITS = "logits"
PROBABILITIES = "probabilities"
LOG_PROBABILITIES = "log_probabilities"

_EPS = 1e-7


class LossChoice(NamedTuple):
    """The loss to train with, its name, what the output means (LOGITS, PROBABILITIES or
    LOG_PROBABILITIES), where the loss came from ("model.py" or "default"), and whether
    targets are one-hot rows (``loss = "categorical_crossentropy"``)."""

    loss: Any
    name: str | None
    kind: str
    loss_from: str
    one_hot: bool


def resolve_loss(model: nn.Module, module: ModuleType | None, width: int, source: str) -> LossChoice:
    """The loss and what the output means, from model.py's ``loss`` and the model's last module."""
    last = last_module_name(model)
    user = getattr(module, "loss", None) if module is not None else None
    keras_name = _keras_loss_name(user, source) if isinstance(user, str) else None
    if keras_name is not None:  # a Keras-style name: the matching torch loss, set below
        loss, name = None, None
        loss_from = "model.py"
        check_keras_loss(keras_name, width, source)
    elif user is not None:
        loss = _user_loss(user, source)
        name = loss_name(loss)
        loss_from = "model.py"
    else:
        loss, name = None, None
        loss_from = "default"

    if width == 1 and last in ("Softmax", "LogSoftmax"):
        raise ConfigError(f"the model has 1 output unit and ends in nn.{last}, which makes it always "
                          f"{'1' if last == 'Softmax' else '0'}", where=source,
                          hint="end in nn.Sigmoid(), or in no activation (logits)")
    if last == "Sigmoid":
        kind = PROBABILITIES
    elif last == "Softmax":
        kind = PROBABILITIES
    elif last == "LogSoftmax":
        kind = LOG_PROBABILITIES
    elif isinstance(loss, nn.BCELoss):
        kind = PROBABILITIES
    elif isinstance(loss, nn.NLLLoss):
        kind = LOG_PROBABILITIES
    else:
        kind = LOGITS

    if isinstance(loss, nn.BCEWithLogitsLoss) and last == "Sigmoid":
        raise ConfigError("the model ends in nn.Sigmoid but its loss is BCEWithLogitsLoss, which applies "
                          "a sigmoid itself", where=source,
                          hint="remove the final nn.Sigmoid() (predictions still are probabilities), "
                               "or use nn.BCELoss()")
    if isinstance(loss, nn.CrossEntropyLoss) and last == "Softmax":
        raise ConfigError("the model ends in nn.Softmax but its loss is CrossEntropyLoss, which applies "
                          "a softmax itself", where=source,
                          hint="remove the final nn.Softmax() (predictions still are probabilities)")

    one_hot = keras_name == "categorical_crossentropy"
    if one_hot:
        if last == "Sigmoid":
            raise ConfigError(f"the model has {width} output units and ends in nn.Sigmoid; categorical "
                              "cross-entropy needs softmax probabilities or logits", where=source,
                              hint="end in nn.Softmax(dim=1) or in no activation (logits)")
        loss = _SoftTargetCrossEntropy(kind)
        name = "categorical_crossentropy"
    if loss is None:
        if width == 1:
            loss = nn.BCELoss() if kind == PROBABILITIES else nn.BCEWithLogitsLoss()
        elif last == "Sigmoid":
            raise ConfigError(f"the model has {width} output units and ends in nn.Sigmoid; no default "
                              "loss fits that", where=source,
                              hint="end in nn.Softmax(dim=1) or in no activation (logits), or define loss "
                                   "in model.py")
        elif kind == LOG_PROBABILITIES:
            loss = nn.NLLLoss()
        elif kind == PROBABILITIES:
            loss = _NLLOfProbabilities()
        else:
            loss = nn.CrossEntropyLoss()
        name = loss_name(loss)
    return LossChoice(loss, name, kind, loss_from, one_hot)


def check_keras_loss(name: str, width: int, source: str) -> None:
    """A Keras loss name fits the output's width."""
    if name == "binary_crossentropy" and width != 1:
        raise ConfigError(f"loss 'binary_crossentropy' needs 1 output unit; the model has {width}", where=source,
                          hint="use loss = 'categorical_crossentropy' for one unit per class")
    if name != "binary_crossentropy" and width == 1:
        raise ConfigError(f"loss {name!r} needs one output unit per class; the model has 1", where=source,
                          hint="end the model in nn.Linear(..., 2) for two classes, or use 'binary_crossentropy'")


class _NLLOfProbabilities(nn.Module):
    """Negative log-likelihood of a model that outputs probabilities (ends in Softmax)."""

    def forward(self, p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.nll_loss(torch.log(p.clamp_min(_EPS)), target)


class _SoftTargetCrossEntropy(nn.Module):
    """Categorical cross-entropy on one-hot (or soft) targets, from logits, probabilities or
    log-probabilities: the torch side of ``loss = "categorical_crossentropy"``."""

    def __init__(self, kind: str, reduction: str = "mean"):
        super().__init__()
        self.kind = kind
        self.reduction = reduction  # "none" gives one value per event (event weights use it)

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.kind == LOGITS:
            log_p = nn.functional.log_softmax(out, dim=1)
        elif self.kind == PROBABILITIES:
            log_p = torch.log(out.clamp_min(_EPS))
        else:
            log_p = out
        per_event = -(target * log_p).sum(dim=1)
        if self.reduction == "none":
            return per_event
        return per_event.sum() if self.reduction == "sum" else per_event.mean()


#: Keras loss names accepted in a PyTorch model.py (``loss = "categorical_crossentropy"``)
_KERAS_LOSSES = ("binary_crossentropy", "sparse_categorical_crossentropy", "categorical_crossentropy")


def _keras_loss_name(user: str, source: str) -> str:
    for name in _KERAS_LOSSES:
        if loss_key(user) == loss_key(name):
            return name
    raise ConfigError(f"loss is the string {user!r}; it must be a torch loss module, a loss class, a function "
                      "loss(output, target), or one of " + ", ".join(repr(n) for n in _KERAS_LOSSES), where=source,
                      hint="for PyTorch write e.g. loss = nn.BCEWithLogitsLoss()")


def loss_name(loss: Any) -> str:
    if isinstance(loss, _NLLOfProbabilities):
        return "NLLLoss(log(probabilities))"
    if isinstance(loss, nn.Module):
        return type(loss).__name__
    return getattr(loss, "__name__", None) or type(loss).__name__


def _user_loss(user: Any, source: str) -> Any:
    """model.py's ``loss``: an instance, a class (instantiated without arguments), or a function."""
    if isinstance(user, type):
        if not issubclass(user, nn.Module):
            raise ConfigError(f"loss is the class {user.__name__}, which is not a torch.nn.Module", where=source)
        try:
            return user()
        except Exception as err:  # noqa: BLE001 - user code
            raise ConfigError(f"loss class {user.__name__}() cannot be created without arguments: {err}",
                              where=source, hint=f"write loss = {user.__name__}(...) with its arguments") from None
    if callable(user):
        return user
    raise ConfigError(f"loss is {type(user).__name__}; it must be a torch loss module, a loss class, or a "
                      "function loss(output, target)", where=source)


def last_module_name(model: nn.Module) -> str:
    """Class name of the innermost last child (``original_name`` for TorchScript modules)."""
    m = model
    while True:
        children = list(m.children())
        if not children:
            break
        m = children[-1]
    if m is model and not isinstance(m, (nn.Sigmoid, nn.Softmax, nn.LogSoftmax)):
        return ""
    return getattr(m, "original_name", None) or type(m).__name__
