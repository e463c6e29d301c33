"""Mix the selected events of labelled files into shuffled chunks of (X, y).

Each file is a stream of its selected events: a :class:`StoreStream` reads them from the row
store (see :mod:`.store`), a :class:`FileStream` straight from ROOT (read ahead in a thread
pool) where there is no store. A :class:`ChunkMixer` asks every stream for its share of each
chunk (see :mod:`.plan`), joins the pieces and writes the rows straight into a reused buffer at
shuffled positions; the whole assembly runs one chunk ahead of the consumer in a background
thread.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from collections import deque
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DataError
from .features import FeatureSelection
from .plan import Plan
from .read import RootFile
from .specs import _selected
from .store import RowStore
from .tensorize import Jagged, Tensorizer, packed
from .weights import WEIGHT


@dataclass
class Chunk:
    """One chunk: features, labels (None when unlabelled), and where each row came from."""

    X: np.ndarray  # float32 (n, n_features)
    y: np.ndarray | None  # int64 (n,)
    file_index: np.ndarray  # int32 (n,): position of the file in the file list
    entry: np.ndarray  # int64 (n,): entry number of the event in its file
    index: int  # chunk number, from 0
    identifiers: dict[str, np.ndarray] | None = None
    positions: list[StreamPosition] | None = None  # where each file's stream stands after this chunk
    weight: np.ndarray | None = None  # float64 (n,): each event's weight (params weight), None without

    def __len__(self) -> int:
        return len(self.X)


@dataclass(frozen=True)
class StreamPosition:
    """How far a file has been consumed: the next entry to read and the selected events taken.
    Recorded in checkpoints, so that a resumed run continues where the chunk ended."""

    next_entry: int = 0
    taken: int = 0


@dataclass
class Block:
    """Consecutive selected events of one file."""

    arrays: dict[str, Any]
    entry: np.ndarray

    def __len__(self) -> int:
        return len(self.entry)

    def slice(self, a: int, b: int) -> Block:
        return Block({k: v[a:b] for k, v in self.arrays.items()}, self.entry[a:b])


def concat_blocks(blocks: Sequence[Block], jagged: Sequence[str]) -> Block | None:
    """One block of the events of ``blocks``, in order; None where a column's dtype differs
    between blocks (joining would convert values; the caller then uses the blocks one by one)."""
    if len(blocks) == 1:
        return blocks[0]
    jagged = set(jagged)
    arrays: dict[str, Any] = {}
    for name in blocks[0].arrays:
        if name in jagged:
            parts = [_packed_piece(b.arrays[name]) for b in blocks]
            if len({values.dtype for _, values in parts}) != 1:
                return None
            # offsets of the joined array: each part's own, moved to where its values land
            starts = np.cumsum([0] + [len(v) for _, v in parts])
            offsets = np.concatenate([o[:-1] - (o[0] - start) for (o, _), start in zip(parts, starts)]
                                     + [starts[-1:]]).astype(np.int64, copy=False)
            arrays[name] = Jagged(offsets, np.concatenate([values for _, values in parts]))
        else:
            parts = [np.asarray(b.arrays[name]) for b in blocks]
            if len({p.dtype for p in parts}) != 1:
                return None
            arrays[name] = np.concatenate(parts)
    return Block(arrays, np.concatenate([b.entry for b in blocks]))


JOIN_BYTES = 8 << 20  # pieces are joined into groups of about this size before they are tensorized
JOIN_EVENTS = 4096  # ... unless they hold this many events: then a fill's per-branch work is small beside its values


def block_bytes(block: Block) -> int:
    """The bytes of a block's values (offsets included)."""
    total = block.entry.nbytes
    for value in block.arrays.values():
        if isinstance(value, Jagged):
            total += value.offsets.nbytes + value.content.itemsize * int(value.offsets[-1] - value.offsets[0])
        else:
            total += int(getattr(value, "nbytes", 0))
    return total


class FillGroups:
    """Gathers the pieces of a chunk, in row order, into the blocks to tensorize one by one:
    small pieces (a piece of each of many files) joined, so that the per-branch work of a fill
    is done once for many of them, up to ``JOIN_BYTES``; larger pieces, and pieces of
    ``JOIN_EVENTS`` events or more, as they come (joining them would only copy every value once
    more: with a thousand branches, as much memory as the chunk's events take; with one file,
    every stored block of it). Each group is handed on as soon as it is complete, so a chunk holds
    one group of source values at a time, not all of them."""

    def __init__(self, jagged: Sequence[str]):
        self.jagged = jagged
        self._run: list[Block] = []
        self._bytes = 0

    def add(self, block: Block) -> list[Block]:
        size = block_bytes(block)
        if size >= JOIN_BYTES or len(block) >= JOIN_EVENTS:
            return [*self.flush(), block]
        self._run.append(block)
        self._bytes += size
        return self.flush() if self._bytes >= JOIN_BYTES else []

    def flush(self) -> list[Block]:
        run, self._run, self._bytes = self._run, [], 0
        if len(run) <= 1:
            return run
        joined = concat_blocks(run, self.jagged)
        return [joined] if joined is not None else run


class FileStream:
    """The selected events of one file, in entry order, ``ahead`` blocks read ahead (at once,
    each a range of about ``step`` entries cut where the file's baskets start, where it can)."""

    def __init__(self, rfile: RootFile, selection: FeatureSelection, stop: int, step: int,
                 executor: Executor, identifiers: Sequence[str] = (), start: StreamPosition = StreamPosition(),
                 ahead: int = 1):
        self.rfile = rfile
        self.selection = selection
        self.keep = selection.features + [n for n in identifiers if n not in selection.features]
        self._jagged = set(selection.jagged)  # features; taken as Jagged, as the row store gives them
        self._read = selection.read + [n for n in identifiers if n not in selection.read and n != WEIGHT]
        self.position = start
        self.ahead = max(1, ahead)
        self._ranges = stream_ranges(rfile.cluster_starts(self._read) if stop > start.next_entry else [],
                                     start.next_entry, stop, step)
        self._executor = executor
        self._pending: deque[Future] = deque()
        self._current: Block | None = None
        self._pos = 0
        self._schedule()

    def _schedule(self) -> None:
        while len(self._pending) < self.ahead:
            entries = next(self._ranges, None)
            if entries is None:
                return
            self._pending.append(self._executor.submit(self._read_range, *entries))

    def _read_range(self, a: int, b: int) -> Block:
        blocks = [self._select(first, arrays) for first, _, arrays in self.rfile.iterate(self._read, a, b, b - a)]
        return blocks[0] if len(blocks) == 1 else concat_blocks(blocks, self._jagged)

    def _select(self, start: int, arrays: dict[str, Any]) -> Block:
        pre = self.selection.preprocessor
        env, mask = pre.apply(arrays) if pre else (arrays, None)
        jagged = self._jagged
        structures: list = []  # the branches of one collection share their selected offsets
        arrays = {k: _selected(env[k], mask, True, structures) if k in jagged else
                  (env[k] if mask is None else env[k][mask]) for k in self.keep}
        if mask is None:
            n = len(next(iter(env.values())))
            return Block(arrays, np.arange(start, start + n, dtype=np.int64))
        return Block(arrays, start + np.flatnonzero(mask).astype(np.int64))

    def take(self, k: int) -> list[Block]:
        """The next ``k`` selected events, as one or more blocks."""
        out = []
        while k > 0:
            while self._current is None or self._pos >= len(self._current):  # skips blocks where nothing passed
                if not self._pending:
                    raise DataError(
                        f"ran out of selected events ({k} more were expected from the specs pass); "
                        "did the file change while it was being read?", where=self.rfile.where)
                self._current, self._pos = self._pending.popleft().result(), 0
                self._schedule()
            n = min(k, len(self._current) - self._pos)
            piece = self._current.slice(self._pos, self._pos + n)
            out.append(piece)
            self._pos += n
            k -= n
            self.position = StreamPosition(int(piece.entry[-1]) + 1, self.position.taken + n)
        return out

    def close(self) -> None:
        """Stop reading ahead; waits for blocks already being read."""
        while self._pending:
            future = self._pending.popleft()
            if not future.cancel():
                try:
                    future.result()
                except Exception:  # noqa: BLE001 - the stream is being abandoned; its error no longer matters
                    pass
        self._ranges = iter(())


def stream_ranges(clusters: Sequence[int], start: int, stop: int, step: int) -> Iterator[tuple[int, int]]:
    """Consecutive ranges of about ``step`` entries covering [start, stop), each cut where every
    branch starts a basket (``clusters``) when one lies in its second half, so that no basket is
    decompressed by two ranges."""
    starts = np.unique(np.asarray(clusters, dtype=np.int64))
    a = start
    while a < stop:
        b = min(a + step, stop)
        if b < stop:
            i = int(np.searchsorted(starts, b, side="right")) - 1
            if i >= 0 and starts[i] >= a + max(1, step // 2):
                b = int(starts[i])
        yield a, b
        a = b


def _packed_piece(array: Any) -> tuple[np.ndarray, np.ndarray]:
    """``packed`` without its checks for a slice of the row store (contiguous by construction)."""
    if isinstance(array, Jagged):
        o = array.offsets
        return o, array.content[o[0]:o[-1]]
    return packed(array)


#: The most one file's read buffer holds while chunks are mixed from the row store; all files'
#: buffers together stay within an eighth of ``memory_mb``. (64 kB made the 100 files of
#: ``bench/memory.py`` 27k reads of 31 columns each, 7 of the 21 CPU-s of mixing them; 128 kB
#: halves that for 5 MB more at its peak.)
STORE_PIECE_BYTES = 128 << 10


def store_piece(store: RowStore, i: int, memory_mb: int) -> int:
    """Events of file i read from the row store at once (see ``STORE_PIECE_BYTES``)."""
    budget = memory_mb * (1 << 20) / 8 / max(store.n_files, 1)
    return int(min(STORE_PIECE_BYTES, budget) / max(store.bytes_per_event(i), 1.0))


class StoreStream:
    """The selected events of one file, from the row store, read ``piece`` events at a time
    (about the memory budget's share for one file), so memory does not grow with files."""

    def __init__(self, store: RowStore, index: int, piece: int, start: StreamPosition = StreamPosition()):
        self.store = store
        self.index = index
        self.piece = max(1, piece)
        self.position = start
        self._next = start.taken  # next selected event to read from the store
        self._end = store.events(index)
        self._current: Block | None = None
        self._pieces: list[Block] = []
        self._pos = 0

    def _fill(self, k: int) -> None:
        # one stored block at most: a chunk's share of a wide file is read as it is used, not at once
        stop = min(self._end, self._next + max(k, self.piece), self.store.block_stop(self.index, self._next))
        if stop <= self._next:
            raise DataError(f"the row store holds {self._end} selected events of this file; more were expected",
                            where=str(self.store.folder))
        self._pieces = [Block(arrays, entry) for entry, arrays in self.store.read(self.index, self._next, stop)]
        self._next = stop

    def take(self, k: int) -> Iterator[Block]:
        """The next ``k`` selected events, as blocks read one stored block at a time (consume
        them all: the position moves as they are handed out)."""
        while k > 0:
            while self._current is None or self._pos >= len(self._current):
                if not self._pieces:
                    self._fill(k)
                self._current, self._pos = self._pieces.pop(0), 0
            n = min(k, len(self._current) - self._pos)
            piece = self._current.slice(self._pos, self._pos + n)
            self._pos += n
            k -= n
            self.position = StreamPosition(int(piece.entry[-1]) + 1, self.position.taken + n)
            if self._pos >= len(self._current):
                self._current = None  # the stream no longer holds what it handed out in full
            yield piece
            del piece  # nor keeps it while the next stored block is read

    def close(self) -> None:
        self._current, self._pieces = None, []


class BufferPool:
    """Reuses output buffers that nobody else references any more.

    A buffer handed out as ``buf[:n]`` is reused only when the caller has dropped every view of
    it (its reference count is back to the pool's own), so keeping a chunk is always safe.
    A new buffer comes zeroed from the system (``np.zeros``: pages the kernel clears as they are
    first written), so it needs no zeroing of its own.
    """

    def __init__(self, shape: tuple[int, ...], dtype: Any, keep: int = 4):
        self.shape, self.dtype, self.keep = shape, dtype, keep
        self._buffers: list[np.ndarray] = []

    def take(self, n: int) -> tuple[np.ndarray, bool]:
        """The first ``n`` rows of a free buffer (a view: the buffer is not reused while it
        lives), and whether they are all zeros (a new buffer)."""
        for buf in self._buffers:
            # references: the list, the loop variable and getrefcount's argument
            if sys.getrefcount(buf) <= 3:
                return buf[:n], False
        buf = np.zeros(self.shape, self.dtype)
        if len(self._buffers) < self.keep:
            self._buffers.append(buf)
        return buf[:n], True


class ChunkMixer:
    """Builds chunks from file streams according to a plan."""

    def __init__(self, streams: Sequence[FileStream | StoreStream | None], plan: Plan, tensorizer: Tensorizer,
                 labels: Sequence[int] | None, shuffle: bool, seed: int, identifiers: Sequence[str] = (),
                 first_chunk: int = 0, starts: Sequence[StreamPosition] | None = None, workers: int = 1):
        self.streams = streams
        self.workers = workers  # threads assembling chunks at once
        self.plan = plan
        self.tensorizer = tensorizer
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.shuffle = shuffle
        self.seed = seed
        self.identifiers = list(identifiers)
        self.first_chunk = first_chunk
        self.starts = list(starts) if starts is not None else [StreamPosition()] * len(streams)
        size = max(1, min(plan.chunk_size, plan.total))  # a 10-event pass needs 10 rows, not chunk_size
        # chunks being assembled, the one waiting in prefetch's queue and the consumer's
        self._x = BufferPool((size, tensorizer.layout.n_features), np.float32, keep=workers + 3)

    def __iter__(self) -> Iterator[Chunk]:
        chunks = ((index, takes) for index, takes in enumerate(self.plan.takes()) if index >= self.first_chunk)
        if self.workers <= 1:
            for index, takes in chunks:
                yield self._build(index, takes)
            return
        # each chunk's pieces are taken here, in order (reads); chunks are assembled by
        # ``workers`` threads at once (numpy releases the GIL) and handed out in order
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="mlaas4hep-mix")
        pending: deque[Future] = deque()
        try:
            for index, takes in chunks:
                X, zeroed = self._x.take(sum(takes))
                pieces = list(self._pieces(takes))
                pending.append(pool.submit(self._assemble, index, X, pieces, self._positions(), zeroed))
                del X, pieces
                if len(pending) >= self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True)

    def _build(self, index: int, takes: list[int]) -> Chunk:
        """Chunk ``index`` in this thread, each piece tensorized as soon as it is read (a chunk
        holds one group of source values at a time)."""
        X, zeroed = self._x.take(sum(takes))
        return self._assemble(index, X, self._pieces(takes), None, zeroed)

    def _pieces(self, takes: list[int]) -> Iterator[tuple[int, Block]]:
        for i, (stream, k) in enumerate(zip(self.streams, takes)):
            if k:
                for block in stream.take(k):
                    yield i, block
                    del block  # not held while the next piece is read (one stored block at a time)

    def _positions(self) -> list[StreamPosition]:
        return [s.position if s is not None else start for s, start in zip(self.streams, self.starts)]

    def _assemble(self, index: int, X: np.ndarray, pieces: Iterable[tuple[int, Block]],
                  positions: list[StreamPosition] | None, zeroed: bool = False) -> Chunk:
        """The rows of ``pieces`` written into ``X`` at shuffled positions; ``positions``: where
        the streams stand after them (None: where they stand once ``pieces`` is consumed).
        ``zeroed``: X is all zeros already (a new buffer)."""
        n = len(X)
        if not zeroed:
            X.fill(0.0)  # padding: the tensorizer writes only real values
        y = None if self.labels is None else np.empty(n, np.int64)
        file_index = np.empty(n, np.int32)
        entry = np.empty(n, np.int64)
        ids = {name: None for name in self.identifiers}
        # one generator per chunk: a resumed run shuffles chunk k exactly as an uninterrupted one
        order = np.random.default_rng([self.seed, index]).permutation(n) if self.shuffle else None
        groups = FillGroups(self.tensorizer.layout.jagged)
        sizes: list[tuple[int, int]] = []  # (file, events) of each piece, in row order
        entries: list[np.ndarray] = []
        id_parts: dict[str, list[np.ndarray]] = {name: [] for name in self.identifiers}
        pos = 0

        def fill(blocks: list[Block]) -> None:
            nonlocal pos
            for block in blocks:
                m = len(block)
                self.tensorizer.fill(X, order[pos:pos + m] if order is not None else slice(pos, pos + m), block.arrays)
                pos += m

        for i, block in pieces:
            sizes.append((i, len(block)))
            entries.append(block.entry)
            for name in self.identifiers:
                id_parts[name].append(np.asarray(block.arrays[name]))
            fill(groups.add(block))
            del block  # a large piece is released as soon as it is tensorized
        fill(groups.flush())
        if positions is None:
            positions = self._positions()
        if not sizes:
            return Chunk(X, y, file_index, entry, index, ids if self.identifiers else None, positions)
        source = np.repeat(np.array([i for i, _ in sizes], np.int32), [m for _, m in sizes])
        rows = order if order is not None else slice(0, n)
        file_index[rows] = source
        entry[rows] = np.concatenate(entries)
        if y is not None:
            y[rows] = self.labels[source]
        for name in self.identifiers:
            values = np.concatenate(id_parts[name])
            ids[name] = np.empty(n, values.dtype)
            ids[name][rows] = values
        return Chunk(X, y, file_index, entry, index, ids if self.identifiers else None, positions)


def prefetch(iterator: Iterator[Any], depth: int = 1) -> Iterator[Any]:
    """Run ``iterator`` in a background thread, ``depth`` items ahead of the consumer.

    Exceptions are re-raised in the consumer; closing the generator stops the thread and
    closes ``iterator`` (in the thread that ran it).
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                items.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in iterator:
                if not put("item", item):
                    return
            put("done", None)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put("error", err)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="mlaas4hep-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        thread.join()
