"""Dynamic batching: requests to one model queue up; one worker thread takes the first waiting
request, then keeps taking more until ``max_batch`` rows are gathered or ``max_delay`` seconds
have passed since the first was taken, calls the model once on all their rows, and hands each
request its own slice of the result. Requests that queue while the model is busy always go into
the next call; the batcher waits up to ``max_delay`` for more only under concurrent load (the
request came while others were still unanswered, the last call served several requests, or more
are already waiting), so a lone client, whose next request follows its answer, pays no delay.

The model is only ever called from the worker thread, so a model that is not thread-safe is
served safely. Threads wait on a :class:`concurrent.futures.Future` (:meth:`submit`); an async
route awaits :meth:`scores`, whose requests are asyncio futures of the caller's loop, handed their
results by one ``call_soon_threadsafe`` per model call (not one thread hop per request).
``max_batch=1`` is one model call per request (the baseline of the bench).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("mlaas4hep.serving")


@dataclass(slots=True)
class _Request:
    rows: np.ndarray
    future: Any = field(default_factory=Future)  # a concurrent Future, or an asyncio one of ``loop``
    loop: asyncio.AbstractEventLoop | None = None
    concurrent: bool = False  # other requests were unanswered when this one came


class BatcherClosed(RuntimeError):
    """The model was unloaded (deleted or evicted) before this request was served."""


class DynamicBatcher:
    """Coalesces concurrent :meth:`submit` calls into calls of ``predict(rows) -> scores`` (scores
    one row per input row, any trailing shape)."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], max_batch: int = 256,
                 max_delay: float = 0.002, name: str = "model", thread_init: Callable[[], Any] | None = None):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_delay < 0:
            raise ValueError(f"max_delay must not be negative, got {max_delay}")
        self.predict = predict
        self.thread_init = thread_init  # run first in the worker thread (per-thread settings of the model's library)
        self.max_batch = int(max_batch)
        self.max_delay = float(max_delay)
        self.name = name
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None
        # what happened: requests served, model calls made, rows through the model, largest call
        self.requests = 0
        self.calls = 0
        self.rows = 0
        self.largest = 0
        self._last_served = 0
        self._unanswered = 0  # requests queued or computed whose callers have not had their answer

    def stats(self) -> dict[str, int]:
        return {"requests": self.requests, "calls": self.calls, "rows": self.rows, "largest_call": self.largest}

    def submit(self, rows: np.ndarray) -> Future:
        """Queue ``rows`` (2-D); the future gives their scores, or the model's exception."""
        request = _Request(np.asarray(rows))
        self._put(request)
        return request.future

    async def scores(self, rows: np.ndarray) -> np.ndarray:
        """The scores of ``rows`` (2-D), awaited in the caller's event loop."""
        loop = asyncio.get_running_loop()
        request = _Request(np.asarray(rows), loop.create_future(), loop)
        self._put(request)
        return await request.future

    def _put(self, request: _Request) -> None:
        with self._lock:
            if self._closed:
                raise BatcherClosed(f"model {self.name!r} is no longer loaded")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"batcher-{self.name}", daemon=True)
                self._thread.start()
            request.concurrent = self._unanswered > 0
            self._unanswered += 1
            self._queue.put(request)

    def _answered(self, n: int) -> None:
        with self._lock:
            self._unanswered -= n

    def __call__(self, rows: np.ndarray, timeout: float | None = None) -> np.ndarray:
        return self.submit(rows).result(timeout)

    def close(self) -> None:
        """Serve what is queued, then stop the worker."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            self._queue.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(30)

    # -- the worker ---------------------------------------------------------------------------

    def _run(self) -> None:
        if self.thread_init is not None:
            try:
                self.thread_init()
            except Exception:  # noqa: BLE001 - a setting that failed must not stop the serving
                log.exception("the batcher of %s could not set up its thread", self.name)
        carry: _Request | None = None
        while True:
            first = carry if carry is not None else self._queue.get()
            carry = None
            if first is None:
                return
            batch = [first]
            count = len(first.rows)
            # wait for more only under concurrent load (this request came while others were
            # unanswered, the last call served several, or more are queued): a lone client, whose
            # next request comes only after its answer, is not delayed by max_delay on each one
            busy = first.concurrent or self._last_served > 1 or not self._queue.empty()
            deadline = time.monotonic() + (self.max_delay if busy else 0.0)
            stop = False
            while count < self.max_batch:
                wait = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                if count + len(item.rows) > self.max_batch:
                    carry = item  # the first of the next call: a call never exceeds max_batch by merging
                    break
                batch.append(item)
                count += len(item.rows)
            self._serve(batch, count)
            if stop:
                if carry is not None:
                    self._serve([carry], len(carry.rows))
                self._drain()
                return

    def _drain(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._hand_back([(item, None)], BatcherClosed(f"model {self.name!r} is no longer loaded"))

    def _serve(self, batch: list[_Request], count: int) -> None:
        # a thread's request cancelled meanwhile is dropped here; an async one is computed and
        # its result dropped in its loop (its state can only be read safely there)
        live = [r for r in batch if r.loop is not None or r.future.set_running_or_notify_cancel()]
        if len(live) < len(batch):
            self._answered(len(batch) - len(live))
        if not live:
            return
        rows = live[0].rows if len(live) == 1 else np.concatenate([r.rows for r in live])
        try:
            scores = np.asarray(self.predict(rows))
            if len(scores) != len(rows):
                raise RuntimeError(f"the model gave {len(scores)} scores for {len(rows)} rows")
        except BaseException as err:  # noqa: BLE001 - handed to every waiting caller
            self._hand_back([(r, None) for r in live], err)
            return
        finally:
            self.calls += 1
            self.requests += len(live)
            self.rows += len(rows)
            self.largest = max(self.largest, len(rows))
            self._last_served = len(live)
        results = []
        start = 0
        for r in live:
            stop = start + len(r.rows)
            results.append((r, scores[start:stop]))
            start = stop
        self._hand_back(results)

    def _hand_back(self, results: list[tuple[_Request, Any]], error: BaseException | None = None) -> None:
        """Results (or one error) to their callers: a thread's future directly, the async ones of
        each event loop in one call scheduled in that loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Request, Any]]] = {}
        threads = []
        for r, value in results:
            if r.loop is None:
                threads.append((r, value))
            else:
                by_loop.setdefault(r.loop, []).append((r, value))
        if threads:
            self._answered(len(threads))  # before the answers: a caller's next request is not "concurrent"
            for r, value in threads:
                if error is not None:
                    r.future.set_exception(error)
                else:
                    r.future.set_result(value)
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(self._settle, items, error)
            except RuntimeError:  # the loop is closed: nobody is waiting for these any more
                self._answered(len(items))

    def _settle(self, items: list[tuple[_Request, Any]], error: BaseException | None) -> None:
        """In the callers' loop: each future its result, unless it was cancelled meanwhile."""
        self._answered(len(items))
        for r, value in items:
            if r.future.done():
                continue
            if error is not None:
                r.future.set_exception(error)
            else:
                r.future.set_result(value)
