"""The engine on Dask (``dask.distributed``): the read pass and chunk building on cluster workers.

One machine stays the default; ``Dataset(..., dask=...)`` sends the heavy parts to a Dask
cluster (a ``LocalCluster``, dask-gateway, dask-jobqueue, a Kubernetes cluster: whatever gives a
scheduler address or a ``Client``):

- the read pass (the specs pass, or the pass that fills the row store): the same entry ranges
  the threads of :func:`~mlaas4hep.specs.read_pass` take (cut where every branch starts a
  basket), each a task on a worker that opens the file itself; the client merges the
  statistics in range order and writes the selected rows it gets back into the row store, so
  the specs equal the single-process ones exactly;
- the chunks: each chunk is a task that mixes it from the row store (which must be on a folder
  the workers see: ``cache_dir``) at the stream positions the plan gives, a bounded number ahead
  of the consumer, handed over in order: value for value the single-process stream.

Only small plain values travel to the workers (file names, entry ranges, the pickled
selection); no home-made scheduling: lost workers' tasks are re-run by Dask.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import Params
from .errors import ConfigError, DataError
from .features import FeatureSelection
from .mix import Chunk, ChunkMixer, StoreStream, StreamPosition, store_piece
from .plan import Plan
from .read import RootFile, is_remote
from .specs import (Progress, Sink, _RangeStats, aligned_step, block_entries, entry_ranges, range_stats,
                    read_entries, unit_entries, window)
from .store import JAGGED, RowStore
from .tensorize import FeatureLayout, Jagged, Tensorizer, packed

log = logging.getLogger("mlaas4hep")

DaskTarget = Any  # "local", a scheduler address, or a distributed.Client


def connect(target: DaskTarget, timeout: float = 10.0) -> tuple[Any, bool]:
    """A ``distributed.Client`` for ``target`` and whether we made it (and so close it).

    ``"local"``: a ``LocalCluster`` of worker processes on this machine (one per core, one
    thread each); a string: the address of a running scheduler (``tcp://host:8786``); a
    ``Client``: used as it is.
    """
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError("dask: the dask.distributed package is not installed", where="dask",
                          hint="pip install 'mlaas4hep-lab[dask]'") from None
    if isinstance(target, Client):
        return target, False
    if not isinstance(target, str) or not target.strip():
        raise ConfigError(f"dask: expected 'local', a scheduler address or a distributed.Client, got {target!r}",
                          where="dask")
    target = target.strip()
    if target == "local":
        cluster = local_cluster(os.cpu_count() or 1)
        client = Client(cluster)
        client._mlaas4hep_cluster = cluster  # closed with the client
        return client, True
    try:
        return Client(target, timeout=timeout), True
    except (OSError, TimeoutError, ValueError) as err:
        raise ConfigError(f"dask: cannot reach the scheduler at {target}: {err}", where="dask",
                          hint="start one (dask scheduler), or give 'local' for workers on this machine") from None


def local_cluster(workers: int, **options: Any) -> Any:
    """A ``LocalCluster`` of ``workers`` processes on this machine, one thread each, whose
    workers keep memory as this process does (see :mod:`.heap`).

    Dask's nanny starts each worker with ``MALLOC_TRIM_THRESHOLD_=65536``, and glibc then keeps
    its default 128 kB mmap threshold: every larger buffer of a read (a basket, a block's
    jagged values) is mapped and unmapped each time, nearly twice the page faults of a pass
    in one process (266k against 145k for the 4 x 200k-event pass of ``bench/scale.py``);
    and :func:`.heap.bound_retained_memory` leaves a process whose environment has a threshold
    alone. The workers start with the thresholds it sets instead, unless the user chose them
    (in this process's environment at its start or later, or in Dask's configuration). The
    servers' periodic work is less frequent (:data:`QUIETER`): it runs on the same cores.
    """
    import dask
    from distributed import LocalCluster

    options = {"threads_per_worker": 1, "processes": True, "dashboard_address": ":0", **options}
    key = "distributed.nanny.pre-spawn-environ"
    environ = dict(dask.config.get(key, default={}) or {})
    ours = _worker_heap_environ(environ)
    if ours:
        environ.update(ours)
        # the nanny takes a variable of this process's environment over its configuration
        # (and sets them there itself before it starts a worker): ours there too
        os.environ.update(ours)
    quieter = {name: ours for name, (dask_default, ours) in QUIETER.items()
               if str(dask.config.get(name, default=dask_default)) == dask_default}
    with dask.config.set({key: environ, **quieter}):  # read by the scheduler and each nanny and worker as made
        return LocalCluster(n_workers=workers, **options)


#: Dask's default and ours for the periodic work of every scheduler, nanny and worker, which on
#: this machine's cluster shares the cores with the work (each server's 20 ms event-loop tick and
#: 500 ms system monitor). On the 2-core development machine the idle client (scheduler and 2
#: nannies) used 0.04 CPU-s a second with Dask's settings, 0.02-0.03 with the tick alone at 500 ms;
#: a later repeat gave 0.09-0.16 with and without: the saving is small and not settled. A user's
#: own settings stand.
QUIETER = {"distributed.admin.tick.interval": ("20ms", "500ms"),
           "distributed.admin.system-monitor.interval": ("500ms", "2s")}


DASK_TRIM_THRESHOLD = "65536"  # what Dask's nanny sets by default


def _worker_heap_environ(environ: dict[str, Any]) -> dict[str, str]:
    """heap.py's thresholds as environment variables for the workers; none where the user chose
    glibc's thresholds (the nanny's pre-spawn ``environ`` holds what Dask would set)."""
    from .heap import MMAP_THRESHOLD, TRIM_THRESHOLD, _user_tuned

    ours = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}
    if _user_tuned():
        return {}
    allowed = {"MALLOC_MMAP_THRESHOLD_": {None, ours["MALLOC_MMAP_THRESHOLD_"]},
               "MALLOC_TRIM_THRESHOLD_": {None, ours["MALLOC_TRIM_THRESHOLD_"], DASK_TRIM_THRESHOLD}}
    for name, values in allowed.items():
        for value in (os.environ.get(name), environ.get(name)):
            if (None if value is None else str(value)) not in values:
                return {}
    return ours


def disconnect(client: Any) -> None:
    """Close a client made by :func:`connect` (and its LocalCluster)."""
    cluster = getattr(client, "_mlaas4hep_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def n_workers(client: Any) -> int:
    """Workers the scheduler knows now (at least 1)."""
    return max(1, client.run_on_scheduler(_count_workers))


def _count_workers(dask_scheduler: Any = None) -> int:
    return len(dask_scheduler.workers)


# -- on the workers ----------------------------------------------------------------------------

_SELECTIONS: OrderedDict[str, FeatureSelection] = OrderedDict()
_FILES: OrderedDict[tuple, RootFile] = OrderedDict()
_STORES: OrderedDict[tuple, RowStore] = OrderedDict()
_WORKER_LOCK = threading.Lock()


def _remember(cache: OrderedDict, key: Any, make: Any, keep: int = 8, drop: Any = None) -> Any:
    with _WORKER_LOCK:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    value = make()
    with _WORKER_LOCK:
        cache[key] = value
        while len(cache) > keep:
            _, old = cache.popitem(last=False)
            if drop is not None:
                drop(old)
    return value


def _selection(blob: bytes) -> FeatureSelection:
    import cloudpickle

    return _remember(_SELECTIONS, hashlib.sha256(blob).hexdigest(), lambda: cloudpickle.loads(blob), keep=4)


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def _worker_threads() -> int:
    """Threads of this Dask worker (1 outside a worker)."""
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return 1


def worker_open_options(file: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """uproot options and decompression threads for a file opened on a worker.

    A worker uses the cores Dask gave it and no more: without an explicit ``read_threads``, its
    baskets are decompressed by its own task threads (one per worker thread), not by a pool
    sized to the machine's cores, which several workers would share. A local file is read
    with reads, not a memory map, so that it can stay open across tasks (reopening it costs
    more than a range of baskets) while the pages read from it do not stay in the worker's
    memory (Dask counts them against its memory limit).
    """
    options = dict(file["open_options"])
    threads = file["read_threads"] or _worker_threads()
    if "handler" not in options and not is_remote(file["path"]):
        import uproot

        options["handler"] = uproot.source.file.MultithreadedFileSource
        options.setdefault("num_workers", _worker_threads())
    return options, threads


def _open(file: dict[str, Any]) -> RootFile:
    """The file as the client opened it, kept open for the worker's later tasks; a worker that
    sees another file (another size or ROOT UUID at that path) refuses it rather than mix two
    datasets."""
    key = (file["path"], file["tree"], repr(file["identity"]))

    def make() -> RootFile:
        options, threads = worker_open_options(file)
        rfile = RootFile(file["path"], file["tree"], origin=file["origin"], retries=file["retries"],
                         retry_wait=file["retry_wait"], open_options=options, read_threads=threads)
        if rfile.identity() != file["identity"]:
            rfile.close()
            raise DataError(f"worker {_worker_name()} sees another file at this path ({rfile.identity()}, "
                            f"the client saw {file['identity']})", where=file["path"],
                            hint="the workers must read the same files as the client: a shared folder or root:// URLs")
        return rfile

    return _remember(_FILES, key, make, keep=8, drop=lambda f: f.close())


class _Rows:
    """A sink that keeps a range's selected rows to send back to the client (jagged as Jagged)."""

    def __init__(self, columns: dict[str, str]):
        self.columns = columns
        self.blocks: list[tuple[int, np.ndarray, dict[str, Any]]] = []

    def add(self, file_index: int, start: int, entry: np.ndarray, arrays: dict[str, Any]) -> None:
        kept = {}
        for name, kind in self.columns.items():
            if kind == JAGGED:
                offsets, values = packed(arrays[name])
                kept[name] = Jagged(offsets, np.ascontiguousarray(values))
            else:
                kept[name] = np.ascontiguousarray(np.asarray(arrays[name]))
        self.blocks.append((start, np.ascontiguousarray(entry, dtype=np.int64), kept))


def run_range(blob: bytes, file: dict[str, Any], start: int, stop: int, step: int,
              columns: dict[str, str] | None, stats: bool, read_step: int = 0) -> tuple[_RangeStats, list]:
    """On a worker: the statistics of entries [start, stop) of one file, and (with ``columns``)
    its selected rows."""
    selection = _selection(blob)
    rfile = _open(file)
    rows = _Rows(columns) if columns is not None else None
    out = range_stats(rfile, selection, start, stop, step, sink=rows, stats=stats, read_step=read_step)
    return out, (rows.blocks if rows is not None else [])


def run_ranges(blob: bytes, file: dict[str, Any], ranges: Sequence[tuple[int, int]], step: int,
               stats: bool, read_step: int = 0) -> list[tuple[_RangeStats, list]]:
    """On a worker: :func:`run_range` (statistics only) for several consecutive ranges of one
    file, each range's statistics kept apart (merged on the client in the pass's order)."""
    return [run_range(blob, file, a, b, step, None, stats, read_step) for a, b in ranges]


def build_chunk(folder: str, key: str, plan: Plan, layout: FeatureLayout, labels: Sequence[int] | None,
                shuffle: bool, seed: int, identifiers: Sequence[str], index: int, takes: list[int],
                taken: list[int], piece: list[int]) -> tuple[Chunk, dict[str, int]]:
    """On a worker: chunk ``index`` mixed from the row store in ``folder``, each file's stream
    starting after the ``taken`` selected events the chunks before it used; with the jagged
    elements beyond jdim the chunk dropped."""
    store = _remember(_STORES, (folder, key), lambda: _open_store(folder, key), keep=4, drop=lambda s: s.close())
    streams: list[StoreStream | None] = []
    for i, quota in enumerate(plan.quotas):
        if quota == 0:
            streams.append(None)
            continue
        # where the file stands: reported as is by a file this chunk takes nothing from
        position = StreamPosition(_next_entry(store, i, taken[i]) if takes[i] == 0 else 0, taken[i])
        streams.append(StoreStream(store, i, max(piece[i], takes[i]), start=position))
    tensorizer = Tensorizer(layout)
    mixer = ChunkMixer(streams, plan, tensorizer, labels, shuffle, seed, identifiers, index)
    chunk = mixer._build(index, takes)  # X: a buffer of this task's own mixer, not reused
    return chunk, dict(tensorizer.clipped)


def _open_store(folder: str, key: str) -> RowStore:
    store = RowStore.open(Path(folder), key)
    if store is None:
        raise DataError(f"worker {_worker_name()} cannot read the row store", where=folder,
                        hint="the workers must see the client's cache folder: set params cache_dir (or "
                             "MLAAS4HEP_CACHE_DIR) to a folder they share")
    return store


def _next_entry(store: RowStore, i: int, taken: int) -> int:
    """The entry after the last of the first ``taken`` selected events of file i (0 for none)."""
    if taken == 0:
        return 0
    entry, _ = store.read(i, taken - 1, taken)[-1]
    return int(entry[-1]) + 1


# -- on the client -----------------------------------------------------------------------------


def file_description(rfile: RootFile, params: Params) -> dict[str, Any]:
    """What a worker needs to open a file as the client did."""
    return {"path": rfile.path, "tree": rfile.tree_name, "origin": rfile.origin, "retries": params.retries,
            "retry_wait": rfile.retry_wait, "open_options": dict(rfile.open_options),
            "read_threads": params.read_threads, "identity": rfile.identity()}


STATS_RANGES_PER_TASK = 4  # consecutive ranges of one file in one task when only statistics come back


def read_pass(client: Any, files: Sequence[RootFile], selection: FeatureSelection, params: Params,
              progress: Progress | None = None, sink: Sink | None = None, stats: bool = True,
              ahead: int | None = None) -> list[_RangeStats]:
    """:func:`mlaas4hep.specs.read_pass` on the workers of ``client``: the same ranges, merged in
    the same order (so sums of floats are the same), whatever order the workers finish them in.

    At most ``ahead`` tasks are in flight or finished but not merged yet: by default two per
    worker when their rows come back (so the client holds at most that many ranges' rows),
    eight per worker for statistics alone (small). A task is one range when its rows come back,
    else up to ``STATS_RANGES_PER_TASK`` consecutive ranges of one file (with ISA-L's inflate a
    range is about 30 ms of work, near Dask's own cost of a task). A new task is sent as soon
    as any one finishes, so one slow task does not leave the other workers idle.
    """
    import cloudpickle
    from distributed import as_completed

    step = block_entries(files, selection, params)
    blob = cloudpickle.dumps(selection)
    columns = dict(sink.columns) if sink is not None else None
    totals = [_RangeStats(selection) for _ in files]
    ahead = ahead or (2 if sink is not None else 8) * n_workers(client)

    steps = [step] * len(files)
    whole = read_entries(files, selection, params)
    reads = [whole] * len(files)

    def units() -> Iterator[tuple[int, int, int]]:
        for i, rfile in enumerate(files):  # the ranges and blocks of the one-process pass
            stop = window(rfile.num_entries, params.nevts)
            clusters = rfile.cluster_starts(selection.read) if stop else []
            ranges = entry_ranges(clusters, stop, unit_entries(step)) if stop else []
            steps[i] = aligned_step(clusters, step)
            reads[i] = aligned_step(clusters, whole)
            rfile.release()
            yield from ((i, a, b) for a, b in ranges)

    def tasks() -> Iterator[list[tuple[int, int, int]]]:
        if sink is not None:
            yield from ([unit] for unit in units())
            return
        # a file's ranges in tasks of at most STATS_RANGES_PER_TASK, as even as they can be (10
        # ranges: 4, 3, 3), so that no worker is left with one large task at the end
        for _, group in itertools.groupby(units(), key=lambda unit: unit[0]):
            ranges = list(group)
            n = -(-len(ranges) // STATS_RANGES_PER_TASK)
            size, extra = divmod(len(ranges), n)
            start = 0
            for k in range(n):
                stop = start + size + (k < extra)
                yield ranges[start:stop]
                start = stop

    descriptions: dict[int, dict[str, Any]] = {}
    running: dict[Any, tuple[int, list]] = {}  # future -> (its place in the pass, its units)
    finished: dict[int, tuple[list, list]] = {}  # place -> (units, results), not merged yet
    planned = enumerate(tasks())
    done = as_completed()

    def fill() -> None:
        while len(running) + len(finished) < ahead:
            place, task = next(planned, (None, None))
            if task is None:
                return
            i = task[0][0]
            if i not in descriptions:
                descriptions[i] = file_description(files[i], params)
            if len(task) == 1:
                _, a, b = task[0]
                future = client.submit(run_range, blob, descriptions[i], a, b, steps[i], columns, stats, reads[i],
                                       pure=False)
            else:
                future = client.submit(run_ranges, blob, descriptions[i], [(a, b) for _, a, b in task], steps[i],
                                       stats, reads[i], pure=False)
            running[future] = (place, task)
            done.add(future)

    merged = 0
    try:
        fill()
        for future in done:
            place, task = running.pop(future)
            result = future.result()
            finished[place] = (task, [result] if len(task) == 1 else result)
            future.release()
            while merged in finished:
                task, results = finished.pop(merged)
                merged += 1
                for (i, a, b), (part, blocks) in zip(task, results):
                    totals[i].merge(part)
                    if sink is not None:
                        for start, entry, arrays in blocks:
                            sink.add(i, start, entry, arrays)
                    if progress:
                        progress(files[i].path, b - a)
            fill()
    finally:
        for future in running:
            future.cancel()
    return totals


def store_chunks(client: Any, store: RowStore, plan: Plan, layout: FeatureLayout, tensorizer: Tensorizer,
                 labels: Sequence[int] | None, shuffle: bool, seed: int, identifiers: Sequence[str],
                 first_chunk: int, memory_mb: int, ahead: int | None = None) -> Iterator[Chunk]:
    """The chunks of a pass, each mixed by a worker from the row store, at most ``ahead``
    (default one per worker, plus one) in flight, yielded in order. ``tensorizer`` counts the
    jagged elements the chunks dropped."""
    ahead = ahead or n_workers(client) + 1
    n = len(plan.quotas)
    piece = [store_piece(store, i, memory_mb) for i in range(n)]
    labels = None if labels is None else [int(v) for v in labels]
    folder, key = str(store.folder), store.meta["key"]

    def tasks() -> Iterator[Any]:
        taken = [0] * n
        for index, takes in enumerate(plan.takes()):
            if index >= first_chunk:
                yield client.submit(build_chunk, folder, key, plan, layout, labels, shuffle, seed, list(identifiers),
                                    index, takes, list(taken), piece, pure=False)
            taken = [t + k for t, k in zip(taken, takes)]

    pending: deque = deque()
    planned = tasks()
    try:
        pending.extend(itertools.islice(planned, ahead))
        while pending:
            future = pending.popleft()
            chunk, clipped = future.result()
            future.release()
            for name, count in clipped.items():
                tensorizer.clipped[name] = tensorizer.clipped.get(name, 0) + count
            pending.extend(itertools.islice(planned, 1))
            yield chunk
    finally:
        for future in pending:
            future.cancel()
