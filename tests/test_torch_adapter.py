"""The PyTorch adapter, with real training on small synthetic data (no mocks)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mlaas4hep.adapters import make_adapter
from mlaas4hep.errors import ConfigError
from mlaas4hep.metrics import classification_metrics, roc_auc
from support import need

try:
    import torch

    from mlaas4hep.adapters.torch_adapter import TorchAdapter
except ImportError:  # each test skips, or fails where MLAAS4HEP_REQUIRE_ALL=1 (CI)
    torch = TorchAdapter = None


@pytest.fixture(autouse=True)
def _needs_torch():
    need(torch is not None, "PyTorch is not installed")

IDIM = 20

MLP = """
import torch
from torch import nn

def model(idim):
    return nn.Sequential(nn.Linear(idim, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 1))
"""


def write_model(folder: Path, source: str, name: str = "model.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def blobs(n: int = 4000, k: int = 2, shift: float = 0.6, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """k Gaussian blobs in IDIM dimensions; class c is shifted by ``shift`` along a direction of its own."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centers = np.zeros((k, IDIM), np.float32)
    for c in range(1, k):
        centers[c] = shift * rng.choice([-1.0, 1.0], IDIM)
    X = (rng.normal(size=(n, IDIM)) + centers[y]).astype(np.float32)
    return X, y.astype(np.int64)


@pytest.fixture(scope="module")
def data():
    X, y = blobs()
    return X[:3000], y[:3000], X[3000:], y[3000:]


@pytest.fixture
def trained(tmp_path, data):
    X, y, Xt, yt = data
    path = write_model(tmp_path, MLP)
    adapter = make_adapter(path, IDIM, 2, seed=3)
    adapter.fit(X, y, epochs=2, batch_size=64)
    return adapter, path


def test_trains_binary_to_high_auc(tmp_path, data):
    X, y, Xt, yt = data
    adapter = make_adapter(write_model(tmp_path, MLP), IDIM, 2, seed=0)
    assert isinstance(adapter, TorchAdapter) and adapter.framework == "torch"
    seen = []
    history = adapter.fit(X, y, epochs=5, batch_size=64, validation=(Xt, yt), on_epoch=seen.append)
    assert len(history) == 5 and seen == history
    assert set(history[0]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    losses = [h["loss"] for h in history]
    assert losses[-1] < losses[0] and losses == sorted(losses, reverse=True)
    p = adapter.predict(Xt)
    assert p.shape == (len(Xt),) and p.dtype == np.float32 and 0 <= p.min() and p.max() <= 1
    assert roc_auc(yt, p) > 0.9
    # val_loss is the cross-entropy of the probabilities predict() returns
    assert history[-1]["val_loss"] == pytest.approx(classification_metrics(yt, p)["loss"], rel=1e-3)
    assert history[-1]["val_accuracy"] == pytest.approx(classification_metrics(yt, p)["accuracy"], abs=1e-3)
    assert adapter.versions()["torch"] == torch.__version__


def test_fit_twice_keeps_the_optimizer(trained, data):
    X, y, _, _ = data
    adapter, _ = trained
    opt = adapter._optimizer
    steps = opt.state[next(iter(opt.state))]["step"].item()
    assert steps == 2 * 47  # 3000 rows in batches of 64
    more = adapter.fit(X, y, epochs=2, batch_size=64)
    assert adapter._optimizer is opt
    assert opt.state[next(iter(opt.state))]["step"].item() == 4 * 47
    assert adapter.epochs_done == 4
    first_call = make_adapter(adapter.source, IDIM, 2, seed=3).fit(X, y, epochs=2, batch_size=64)
    assert more[0]["loss"] < first_call[-1]["loss"] < first_call[0]["loss"]


def test_save_and_load_without_model_py(trained, data, tmp_path):
    _, _, Xt, _ = data
    adapter, path = trained
    expected = adapter.predict(Xt)
    info = json.loads(json.dumps(adapter.save(tmp_path / "out")))
    assert info["torchscript_method"] == "script" and info["torchscript_error"] is None
    assert sorted(info["files"]) == ["model.pt", "model.ts"]
    assert (info["outputs"], info["loss"], info["loss_from"]) == ("logits", "BCEWithLogitsLoss", "default")
    assert (info["idim"], info["n_classes"], info["output_units"], info["optimizer"]) == (IDIM, 2, 1, "Adam")

    kept = path.read_text()
    path.unlink()  # the TorchScript file alone is enough
    loaded = TorchAdapter.load(tmp_path / "out", info)
    np.testing.assert_allclose(loaded.predict(Xt), expected, rtol=1e-6, atol=1e-7)
    with pytest.raises(ConfigError, match="model.py"):
        loaded.fit(Xt, np.zeros(len(Xt)), epochs=1, batch_size=64)

    path.write_text(kept)
    rebuilt = TorchAdapter.load(tmp_path / "out", info, module=path)
    np.testing.assert_array_equal(rebuilt.predict(Xt), expected)


NOT_EXPORTABLE = """
import numpy as np
from torch import nn

class Net(nn.Module):
    def __init__(self, idim):
        super().__init__()
        self.lin = nn.Linear(idim, 1)

    def forward(self, x):
        # a numpy scalar: scripting fails, tracing freezes it into a constant
        scale = np.float32(x.detach().abs().mean().item())
        return self.lin(x) * float(scale)

def model(idim):
    return Net(idim)
"""


def test_state_dict_only_needs_model_py(tmp_path, data):
    X, y, Xt, _ = data
    path = write_model(tmp_path, NOT_EXPORTABLE)
    adapter = make_adapter(path, IDIM, 2)
    adapter.fit(X[:500], y[:500], epochs=1, batch_size=100)
    info = adapter.save(tmp_path / "out")
    assert info["torchscript"] is None and info["files"] == ["model.pt"]
    assert "script:" in info["torchscript_error"] and "trace:" in info["torchscript_error"]
    assert not (tmp_path / "out" / "model.ts").exists()
    with pytest.raises(ConfigError, match="needs the model.py") as err:
        TorchAdapter.load(tmp_path / "out", info)
    assert "model.pt" in str(err.value)
    rebuilt = TorchAdapter.load(tmp_path / "out", info, module=path)
    np.testing.assert_array_equal(rebuilt.predict(Xt), adapter.predict(Xt))


def test_checkpoint_resumes_exactly(tmp_path, data):
    X, y, Xt, _ = data
    path = write_model(tmp_path, MLP)

    # uninterrupted: two epochs in one call; the epoch callback checkpoints after the first
    # and draws from torch's global generator, which must not change training
    def on_epoch(metrics):
        torch.rand(100)
        if whole.epochs_done == 1:
            whole.save_checkpoint(tmp_path / "ck_callback")

    whole = make_adapter(path, IDIM, 2, seed=5)
    history = whole.fit(X, y, epochs=2, batch_size=64, on_epoch=on_epoch)

    # one epoch, checkpoint, one more epoch
    split = make_adapter(path, IDIM, 2, seed=5)
    split.fit(X, y, epochs=1, batch_size=64)
    split.save_checkpoint(tmp_path / "ck")
    torch.manual_seed(1234)
    split_history = split.fit(X, y, epochs=1, batch_size=64)

    expected = whole.predict(Xt)
    assert split_history[0]["loss"] == pytest.approx(history[1]["loss"], rel=1e-6)
    np.testing.assert_allclose(split.predict(Xt), expected, rtol=1e-5, atol=1e-6)

    for folder in ("ck", "ck_callback"):
        fresh = make_adapter(path, IDIM, 2, seed=5)
        fresh.load_checkpoint(tmp_path / folder)
        assert fresh.epochs_done == 1
        torch.rand(7)
        resumed = fresh.fit(X, y, epochs=1, batch_size=64)
        assert resumed[0]["loss"] == pytest.approx(history[1]["loss"], rel=1e-6)
        np.testing.assert_allclose(fresh.predict(Xt), expected, rtol=1e-5, atol=1e-6)

    with pytest.raises(ConfigError, match="no PyTorch checkpoint"):
        fresh.load_checkpoint(tmp_path / "nowhere")


def test_wrong_input_size(tmp_path):
    path = write_model(tmp_path, """
        from torch import nn
        def model(idim):
            return nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 1))
    """)
    with pytest.raises(ConfigError) as err:
        make_adapter(path, IDIM, 2)
    assert err.value.where == str(path)
    text = str(err.value)
    assert "input size does not match the 20 features" in text and "takes 10 inputs" in text


def test_inner_size_mistake_is_not_called_an_input_mismatch(tmp_path):
    path = write_model(tmp_path, """
        from torch import nn
        def model(idim):
            return nn.Sequential(nn.Linear(idim, 32), nn.ReLU(), nn.Linear(16, 1))
    """)
    with pytest.raises(ConfigError, match="fails on a float32 batch of shape") as err:
        make_adapter(path, IDIM, 2)
    assert "input size" not in str(err.value) and "each layer" in str(err.value)


@pytest.mark.parametrize("units, n_classes, message", [
    (3, 2, "3 units; with binary labels it must have 1"),
    (1, 3, "1 units; with 3 classes it must have 3"),
])
def test_wrong_output_width(tmp_path, units, n_classes, message):
    path = write_model(tmp_path, f"""
        from torch import nn
        def model(idim):
            return nn.Linear(idim, {units})
    """)
    with pytest.raises(ConfigError, match=message) as err:
        make_adapter(path, IDIM, n_classes)
    assert err.value.where == str(path)


def test_custom_loss_and_optimizer(tmp_path, data):
    X, y, Xt, yt = data
    path = write_model(tmp_path, """
        import torch
        from torch import nn
        CALLS = []

        def model(idim):
            return nn.Sequential(nn.Linear(idim, 16), nn.ReLU(), nn.Linear(16, 1))

        def loss(output, target):
            CALLS.append(target.dtype)
            return nn.functional.binary_cross_entropy_with_logits(output, target)

        def optimizer(parameters):
            return torch.optim.SGD(parameters, lr=0.05, momentum=0.9)
    """)
    adapter = make_adapter(path, IDIM, 2)
    history = adapter.fit(X, y, epochs=3, batch_size=64, validation=(Xt, yt))
    assert isinstance(adapter._optimizer, torch.optim.SGD)
    assert adapter.module.CALLS and set(adapter.module.CALLS) == {torch.float32}
    assert history[-1]["loss"] < history[0]["loss"]
    assert roc_auc(yt, adapter.predict(Xt)) > 0.9
    info = adapter.save(tmp_path / "out")
    assert (info["loss"], info["loss_from"], info["optimizer"], info["outputs"]) == ("loss", "model.py", "SGD", "logits")


def test_sigmoid_output_is_returned_as_probabilities(tmp_path, data):
    X, y, Xt, _ = data
    path = write_model(tmp_path, """
        from torch import nn
        def model(idim):
            return nn.Sequential(nn.Linear(idim, 8), nn.ReLU(), nn.Linear(8, 1), nn.Sigmoid())
    """)
    adapter = make_adapter(path, IDIM, 2)
    adapter.fit(X[:1000], y[:1000], epochs=1, batch_size=100)
    assert isinstance(adapter._loss, torch.nn.BCELoss) and adapter._kind == "probabilities"
    with torch.no_grad():
        raw = adapter.model(torch.from_numpy(Xt)).reshape(-1).numpy()
    np.testing.assert_array_equal(adapter.predict(Xt), raw)


def test_sigmoid_with_logits_loss_is_a_mistake(tmp_path):
    path = write_model(tmp_path, """
        from torch import nn
        def model(idim):
            return nn.Sequential(nn.Linear(idim, 1), nn.Sigmoid())
        loss = nn.BCEWithLogitsLoss
    """)
    with pytest.raises(ConfigError, match="applies a sigmoid itself"):
        make_adapter(path, IDIM, 2)


def test_three_classes(tmp_path):
    X, y = blobs(4000, k=3, shift=0.7, seed=2)
    path = write_model(tmp_path, """
        from torch import nn
        def model(idim):
            return nn.Sequential(nn.Linear(idim, 32), nn.ReLU(), nn.Linear(32, 3))
    """)
    adapter = make_adapter(path, IDIM, 3)
    history = adapter.fit(X[:3000], y[:3000], epochs=4, batch_size=64, validation=(X[3000:], y[3000:]))
    assert isinstance(adapter._loss, torch.nn.CrossEntropyLoss)
    assert history[-1]["val_accuracy"] > 0.75  # chance: 1/3
    p = adapter.predict(X[3000:])
    assert p.shape == (1000, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert classification_metrics(y[3000:], p)["accuracy"] > 0.75
