"""The dynamic batcher and the registry's LRU in process, with a real trained model: N requests
queued while the model is busy are served by one further model call (counted, not timed), each
with its own rows' scores; the LRU unloads the least recently used model."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import wait

import numpy as np
import pytest

from mlaas4hep.serving.batcher import BatcherClosed, DynamicBatcher
from mlaas4hep.serving.registry import BadInput, ModelNotFound, ModelRegistry


class Gated:
    """The real model's predict, counted; the first call waits until the test opens the gate."""

    def __init__(self, predict):
        self.predict = predict
        self.calls: list[int] = []
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __call__(self, X):
        self.calls.append(len(X))
        self.entered.set()
        self.gate.wait(30)
        return self.predict(X)


@pytest.mark.parametrize("max_batch, n, expected_calls", [(1000, 40, 2), (10, 40, 5), (1, 12, 12)])
def test_requests_queued_while_the_model_is_busy_share_model_calls(served_artifacts, max_batch, n,
                                                                    expected_calls):
    adapter = served_artifacts["torch"].adapter
    gated = Gated(adapter.predict)
    batcher = DynamicBatcher(gated, max_batch=max_batch, max_delay=0.0, name="t")
    rows = np.random.default_rng(1).random((n, len(served_artifacts["torch"].feature_names))).astype(np.float32)
    first = batcher.submit(rows[:1])
    assert gated.entered.wait(30)  # the worker is inside the first call; the rest queue up
    rest = [batcher.submit(rows[i:i + 1]) for i in range(1, n)]
    gated.gate.set()
    wait([first, *rest], timeout=60)
    got = np.concatenate([f.result() for f in [first, *rest]])
    np.testing.assert_allclose(got, adapter.predict(rows), rtol=1e-6, atol=1e-7)
    # one call for the first request, then the queued ones in calls of at most max_batch rows
    assert len(gated.calls) == expected_calls, gated.calls
    assert sum(gated.calls) == n and max(gated.calls) <= max_batch
    assert batcher.stats() == {"requests": n, "calls": expected_calls, "rows": n, "largest_call": max(gated.calls)}
    batcher.close()
    with pytest.raises(BatcherClosed):
        batcher.submit(rows[:1])


def test_awaited_requests_share_model_calls_and_each_gets_its_own_rows(served_artifacts):
    """The async path of the routes: requests awaited in one event loop while the model is busy
    go into one further call; each gets its own rows' scores (several rows for some), a request
    cancelled while it waits does not disturb the others, and threads' requests mix in."""
    adapter = served_artifacts["torch"].adapter
    gated = Gated(adapter.predict)
    batcher = DynamicBatcher(gated, max_batch=1000, max_delay=0.0, name="async")
    width = len(served_artifacts["torch"].feature_names)
    rows = np.random.default_rng(2).random((60, width)).astype(np.float32)
    sizes = [1, 3, 1, 2] * 5  # 35 rows in 20 requests
    starts = np.cumsum([0] + sizes[:-1])

    async def main():
        first = asyncio.ensure_future(batcher.scores(rows[:1]))
        while not gated.entered.is_set():  # bounded by the test's timeout
            await asyncio.sleep(0.01)
        waiting = [asyncio.ensure_future(batcher.scores(rows[s:s + n])) for s, n in zip(starts, sizes)]
        doomed = asyncio.ensure_future(batcher.scores(rows[40:45]))
        from_thread = batcher.submit(rows[45:47])
        await asyncio.sleep(0.05)  # the tasks have queued their requests
        doomed.cancel()
        gated.gate.set()
        got = await asyncio.gather(first, *waiting)
        with pytest.raises(asyncio.CancelledError):
            await doomed
        return got, from_thread.result(60)

    got, threaded = asyncio.run(main())
    expected = adapter.predict(rows)
    np.testing.assert_allclose(got[0], expected[:1], rtol=1e-6, atol=1e-7)
    for (s, n), scores in zip(zip(starts, sizes), got[1:]):
        assert scores.shape == (n,)
        np.testing.assert_allclose(scores, expected[s:s + n], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(threaded, expected[45:47], rtol=1e-6, atol=1e-7)
    # the first call, then one call for everything queued behind it (the cancelled request's rows
    # are computed too: it was cancelled after it was queued)
    assert gated.calls == [1, sum(sizes) + 5 + 2], gated.calls
    assert batcher.stats()["requests"] == 1 + len(sizes) + 2
    batcher.close()

    async def after_close():
        with pytest.raises(BatcherClosed):
            await batcher.scores(rows[:1])

    asyncio.run(after_close())


def test_an_awaited_request_gets_the_model_error(served_artifacts):
    width = len(served_artifacts["torch"].feature_names)

    def predict(X):
        raise ValueError("the model broke")

    batcher = DynamicBatcher(predict, max_batch=10, max_delay=0.0)

    async def main():
        with pytest.raises(ValueError, match="broke"):
            await batcher.scores(np.zeros((2, width), np.float32))

    asyncio.run(main())
    batcher.close()


def test_a_model_error_reaches_every_request_of_the_call_and_the_batcher_goes_on(served_artifacts):
    adapter = served_artifacts["torch"].adapter
    width = len(served_artifacts["torch"].feature_names)

    def predict(X):
        if (X < 0).any():
            raise ValueError("negative rows")
        return adapter.predict(X)

    batcher = DynamicBatcher(predict, max_batch=100, max_delay=0.0)
    with pytest.raises(ValueError, match="negative"):
        batcher(np.full((2, width), -1.0, np.float32), timeout=60)
    ok = batcher(np.full((3, width), 0.5, np.float32), timeout=60)
    assert ok.shape == (3,) and np.isfinite(ok).all()
    batcher.close()


def test_lru_unloads_the_least_recently_used_and_checks_rows(served_artifacts, tmp_path):
    registry = ModelRegistry(tmp_path / "models", max_loaded=1, max_delay=0.0)
    a = registry.publish("alice", "a", served_artifacts["torch"].path)
    b = registry.publish("alice", "b", served_artifacts["torch"].path, public=True)
    assert registry.resolve("bob", "b").version == 1
    with pytest.raises(ModelNotFound):
        registry.resolve("bob", "a")
    first = registry.model(a)
    assert registry.loaded() == [("a", 1)]
    registry.model(b)
    assert registry.loaded() == [("b", 1)] and registry.loads == 2
    with pytest.raises(BatcherClosed):  # the unloaded model's batcher takes no more requests
        first.batcher.submit(np.zeros((1, first.n_features), np.float32))
    served = registry.model(a)
    assert registry.loaded() == [("a", 1)] and registry.loads == 3
    with pytest.raises(BadInput, match="features"):
        served.rows([[0.0] * (served.n_features + 1)])
    with pytest.raises(BadInput, match="finite"):
        served.rows([float("inf")] * served.n_features)
    registry.delete("alice", "a")
    assert registry.loaded() == [] and [m["name"] for m in registry.list("alice")] == ["b"]
    registry.close()


def test_lru_bound_on_the_models_size(served_artifacts, tmp_path):
    """Models are unloaded, least recently used first, when their files together pass the bound;
    the one just loaded stays even alone over it."""
    path = served_artifacts["keras"].path
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    registry = ModelRegistry(tmp_path / "models", max_loaded=8, max_delay=0.0, max_loaded_bytes=int(size * 2.5))
    entries = [registry.publish("alice", name, path) for name in ("k1", "k2", "k3")]
    for entry in entries:
        registry.model(entry)
    assert registry.loaded() == [("k2", 1), ("k3", 1)]
    assert registry.loaded_bytes() <= size * 2.5
    tiny = ModelRegistry(tmp_path / "models", max_loaded=8, max_delay=0.0, max_loaded_bytes=1)
    tiny.model(entries[0])
    assert tiny.loaded() == [("k1", 1)]
    tiny.model(entries[1])
    assert tiny.loaded() == [("k2", 1)]
    registry.close()
    tiny.close()


def test_served_pytorch_models_use_the_configured_cpu_threads(served_artifacts, tmp_path):
    import torch  # served_artifacts has trained a PyTorch model already
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        registry = ModelRegistry(tmp_path / "models", model_threads=1, max_delay=0.0)
        entry = registry.publish("alice", "t", served_artifacts["torch"].path)
        served = registry.model(entry)
        assert torch.get_num_threads() == 1
        # the model is called in the batcher's thread: it has its one thread there too, even when
        # the process' setting changed after the model was loaded (the thread sets its own)
        torch.set_num_threads(2)
        seen = []
        call = served.batcher.predict

        def spy(X):
            seen.append((threading.current_thread().name, torch.get_num_threads()))
            return call(X)

        served.batcher.predict = spy
        X = np.random.default_rng(4).random((5, served.n_features)).astype(np.float32)
        np.testing.assert_allclose(served.batcher(X, timeout=60), served_artifacts["torch"].adapter.predict(X),
                                   rtol=1e-6, atol=1e-7)
        assert seen == [(f"batcher-{entry.name}/{entry.version}", 1)]
        registry.close()
    finally:
        torch.set_num_threads(before)


def test_the_batcher_sets_up_its_thread_and_serves_even_if_that_fails():
    seen = []

    def init():
        seen.append(threading.current_thread().name)

    batcher = DynamicBatcher(lambda X: X.sum(axis=1), max_batch=10, max_delay=0.0, name="m", thread_init=init)
    assert batcher(np.ones((2, 3), np.float32), timeout=30).tolist() == [3.0, 3.0]
    batcher.close()
    assert seen == ["batcher-m"]

    def broken():
        raise RuntimeError("no such setting")

    batcher = DynamicBatcher(lambda X: X.sum(axis=1), max_batch=10, max_delay=0.0, name="m", thread_init=broken)
    assert batcher(np.ones((1, 3), np.float32), timeout=30).tolist() == [3.0]
    batcher.close()


def test_a_registry_sees_its_own_changes_at_once_and_another_ones_within_recheck(served_artifacts, tmp_path,
                                                                                 monkeypatch):
    """Predictions trust what a registry saw of a model's folders for RECHECK seconds (no file
    system call per request); its own publish and delete count at once, another service's on the
    same folder after at most RECHECK."""
    import time

    from mlaas4hep.serving import registry as registry_module

    monkeypatch.setattr(registry_module, "RECHECK", 600.0)  # while the changes are made
    here = ModelRegistry(tmp_path / "models", max_delay=0.0)
    there = ModelRegistry(tmp_path / "models", max_delay=0.0)  # another service on the same folder
    path = served_artifacts["torch"].path
    here.publish("alice", "m", path)
    assert there.resolve("alice", "m").version == 1
    assert here.resolve("alice", "m").version == 1
    here.publish("alice", "m", path, public=True)
    assert here.resolve("alice", "m").version == 2  # its own change: at once
    assert here.resolve("bob", "m").version == 2
    assert there.resolve("alice", "m").version == 1  # another's: not yet (what it saw is trusted)
    monkeypatch.setattr(registry_module, "RECHECK", 0.2)
    time.sleep(0.3)
    assert there.resolve("alice", "m").version == 2 and there.resolve("bob", "m").public
    monkeypatch.setattr(registry_module, "RECHECK", 600.0)
    here.delete("alice", "m", 2)
    with pytest.raises(ModelNotFound):
        here.resolve("bob", "m")
    assert there.resolve("bob", "m").version == 2
    monkeypatch.setattr(registry_module, "RECHECK", 0.2)
    time.sleep(0.3)
    with pytest.raises(ModelNotFound):
        there.resolve("bob", "m")
    assert there.resolve("alice", "m").version == 1
    here.close()
    there.close()
