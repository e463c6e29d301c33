"""The files of a saved PyTorch model: state dict, TorchScript export, checkpoints, each written
atomically, and one clear error for a damaged or foreign file."""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError

STATE_FILE = "model.pt"
TORCHSCRIPT_FILE = "model.ts"
CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = 1


def export_torchscript(model: nn.Module, idim: int, path: Path, device: torch.device,
                       saved_method: str | None = None) -> tuple[str | None, str | None]:
    """``model.ts`` by scripting, else by tracing; a candidate counts only if it gives the
    model's outputs on a batch of a size other than the traced one. A model that already is
    TorchScript (loaded from ``model.ts``) is saved again as it is, under ``saved_method``.
    Returns (method, error)."""
    if path.exists():
        path.unlink()  # never leave a stale export beside a new state dict
    if isinstance(model, torch.jit.ScriptModule):
        candidates = [(saved_method or "script", lambda m, x: m)]
        reference = model
    else:
        candidates = [("script", lambda m, x: torch.jit.script(m)),
                      ("trace", lambda m, x: torch.jit.trace(m, x[:2]))]
        try:
            reference = copy.deepcopy(model)
        except Exception:  # noqa: BLE001 - an uncopyable module: export the model itself
            reference = model
    was_training = reference.training
    device = next((p.device for p in reference.parameters()), device)
    if reference is not model:
        reference = reference.cpu()
        device = torch.device("cpu")
    reference.eval()
    example = torch.randn((5, idim), generator=torch.Generator().manual_seed(12345)).to(device)
    errors = []
    try:
        with torch.no_grad():
            expected = reference(example)
        for method, make in candidates:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
                    exported = make(reference, example)
                    with torch.no_grad():
                        got = exported(example)
                    if (not isinstance(got, torch.Tensor) or got.shape != expected.shape
                            or not torch.allclose(got, expected, rtol=1e-4, atol=1e-5)):
                        raise RuntimeError("the exported module does not reproduce the model's outputs")
                    tmp = path.with_name(path.name + ".tmp")
                    torch.jit.save(exported, str(tmp))
                os.replace(tmp, path)
                return method, None
            except Exception as err:  # noqa: BLE001 - any failure only means no TorchScript file
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                errors.append(f"{method}: {type(err).__name__}: {first}")
    finally:
        reference.train(was_training)
    return None, "; ".join(errors)


def read_saved(read: Any, path: Path) -> Any:
    """Read a saved model, weights or checkpoint; a damaged or foreign file is one clear error."""
    try:
        return read()
    except Exception as err:  # noqa: BLE001 - torch raises many types for a damaged file
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ConfigError(f"cannot read this saved PyTorch file (damaged, or not written by mlaas4hep): "
                          f"{type(err).__name__}: {first}", where=str(path)) from None


def atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
