"""The public entry point of the data layer: :class:`Dataset`.

>>> ds = mlaas4hep.Dataset("files.txt", labels="labels.txt", params="params.json", preproc="preproc.json")
>>> ds.specs()["jdim"]
>>> for X, y in ds.chunks():
...     model.fit(X, y)
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import shutil
import warnings
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .config import (Labels, ListEntry, Params, Preproc, load_labels, load_list, load_params,
                     load_preproc)
from .errors import ConfigError, DataError
from .features import FeatureSelection, select_features
from .mix import Chunk, ChunkMixer, FileStream, StoreStream, StreamPosition, prefetch, store_piece
from .plan import Plan
from .read import FLAT, BranchReadError, RootFile, resolve_path
from .specs import (Progress, cache_dir, compute_specs, load_cached, read_pass, specs_key, store_cached,
                    window)
from .weights import WEIGHT, file_scales, scaled
from .store import STORE_VERSION, RowStore, StoreWriter, columns_of, sweep_temporary, temporary_folder
from .specs_file import load_specs_file, normalisation
from .tensorize import FeatureLayout, Tensorizer

PathOrList = str | os.PathLike | Sequence[str]
log = logging.getLogger("mlaas4hep")


MIX_WORKERS = min(2, os.cpu_count() or 1)  # threads assembling chunks at once


class WideFeaturesWarning(UserWarning):
    """Rows so wide (a jagged branch padded to a long jdim) that chunks cost gigabytes."""


class Dataset:
    """Labelled (or unlabelled) ROOT files, with params and preproc, as a stream of chunks.

    ``files`` and ``labels``: a path of a files.txt / labels.txt, a comma-separated string or
    a list. ``params`` and ``preproc``: a path of the JSON file, a dict, or None for defaults.
    ``specs``: an existing specs file (path or dict) whose normalisation (min/max, jdim) is
    used instead of the computed one, as ``workflow --specs`` does.
    ``dask``: run the read pass and chunk building on a Dask cluster (``"local"``, a scheduler
    address or a ``distributed.Client``; see :mod:`mlaas4hep.cluster`).
    """

    def __init__(
        self,
        files: PathOrList,
        labels: PathOrList | None = None,
        params: str | os.PathLike | Mapping[str, Any] | Params | None = None,
        preproc: str | os.PathLike | Mapping[str, Any] | Preproc | None = None,
        specs: str | os.PathLike | Mapping[str, Any] | None = None,
        dask: Any = None,
    ):
        self.params: Params = load_params(params)
        self.preproc: Preproc = load_preproc(preproc)
        self.entries: list[ListEntry] = load_list(files, "files")
        self.paths: list[str] = [
            resolve_path(e.value, self.params.redirector, e.base_dir, e.origin) for e in self.entries
        ]
        seen: dict[str, str] = {}
        for path, entry in zip(self.paths, self.entries):
            if path in seen:
                raise ConfigError(f"file {path} is listed twice (also at {seen[path]})", where=entry.origin,
                                  hint="list each file once; its events are drawn from it only once")
            seen[path] = entry.origin
        files_origin = self.entries[0].origin.rsplit(":", 1)[0] if ":" in self.entries[0].origin else "files"
        self.labels: Labels | None = (
            None if labels is None else load_labels(labels, len(self.paths), files_origin)
        )
        self._given_specs = load_specs_file(specs) if specs is not None else None
        self._files: list[RootFile] | None = None
        self._selection: FeatureSelection | None = None
        self._specs: dict[str, Any] | None = None
        self._tensorizer: Tensorizer | None = None
        self.specs_from_cache = False  # whether the last specs() came from the cache
        self.warnings: list[str] = []  # what the user should know (too many features), once each
        self._store: RowStore | None = None
        self._store_temporary = False
        self._finalizer: weakref.finalize | None = None
        self._dask = dask
        self._client: Any = None
        self._own_client = False

    # -- files and branches -------------------------------------------------------------------

    @property
    def files(self) -> list[RootFile]:
        """The opened files (opened on first use; errors name the file and where it was listed)."""
        if self._files is None:
            opened = []
            try:
                for path, entry in zip(self.paths, self.entries):
                    opened.append(RootFile(path, self.params.branch, origin=entry.origin,
                                           retries=self.params.retries, retry_wait=self.params.retry_wait,
                                           # uproot's array cache only grows while streaming
                                           open_options={"timeout": self.params.timeout, "array_cache": None},
                                           read_threads=self.params.read_threads))
                    if len(self.paths) > 1:
                        # keep what is known of it, not its open file: reads reopen it in turn, so
                        # memory does not grow with the number of files (every branch's kind: the
                        # branches not in every file, or of another kind, are listed as skipped)
                        opened[-1].branches.classify_all()
                        opened[-1].release()
            except BaseException:
                for f in opened:
                    f.close()
                raise
            self._files = opened
        return self._files

    @property
    def selection(self) -> FeatureSelection:
        """Which branches are read and which are features (checked against every file)."""
        if self._selection is None:
            self._selection = select_features(self.files, self.params, self.preproc)
            for level, message in self._selection.notes:
                log.log(logging.WARNING if level == "warning" else logging.INFO, message)
        return self._selection

    def branches(self) -> dict[str, dict[str, str]]:
        """Every branch of the first file: kind (flat / jagged / None), dtype, type name, and why
        an unsupported one cannot be a feature."""
        return {
            name: {"kind": info.kind, "dtype": info.dtype, "typename": info.typename, "reason": info.reason}
            for name, info in self.files[0].branches.items()
        }

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` the work runs on (None: this process only)."""
        if self._client is None and self._dask is not None:
            from . import cluster

            self._client, self._own_client = cluster.connect(self._dask)
        return self._client

    def _cluster_reader(self) -> Any:
        """The read pass on the Dask workers (None: :func:`~mlaas4hep.specs.read_pass` here)."""
        if self.client is None:
            return None
        from . import cluster

        return functools.partial(cluster.read_pass, self.client)

    def _read_pass(self, progress: Progress | None, sink: Any, stats: bool) -> list:
        reader = self._cluster_reader() or read_pass
        return reader(self.files, self.selection, self.params, progress, sink=sink, stats=stats)

    # -- specs --------------------------------------------------------------------------------

    def specs(self, progress: Progress | None = None, refresh: bool = False, rows: bool = True) -> dict[str, Any]:
        """The specs (see :mod:`mlaas4hep.specs`), from the cache when nothing changed.

        A pass that computes them also keeps the selected rows in the row store (see
        :mod:`mlaas4hep.store`; ``rows=False``: it does not), so that the first pass of chunks
        reads no ROOT file again.
        """
        if self._specs is not None and not refresh:
            return self._specs
        self.selection  # noqa: B018 - checks the params and preproc against the files first
        key = specs_key(self.files, self.params, self.preproc)
        specs = None if (refresh or not self.params.specs_cache) else load_cached(key, self.params)
        self.specs_from_cache = specs is not None
        if specs is None:
            specs = self._compute_specs(progress, key if rows else None)
            if self.params.specs_cache:
                store_cached(key, specs, self.params)
        elif specs.get("unreadable"):
            self._selection = select_features(self.files, self.params, self.preproc, specs["unreadable"])
        specs["cache_key"] = key
        self._specs = specs
        return specs

    def _compute_specs(self, progress: Progress | None, key: str | None) -> dict[str, Any]:
        """The specs pass. A branch that uproot cannot read (found and named by the reader) is
        skipped with its reason and the pass is run again, unless the user asked for it by name.
        With a ``key``, the pass also keeps the selected rows in a row store."""
        unreadable: dict[str, str] = {}
        while True:
            writer = self._store_writer(key) if key is not None else None
            try:
                specs = compute_specs(self.files, self.selection, self.params, progress, sink=writer,
                                      reader=self._cluster_reader())
            except BranchReadError as err:
                if writer is not None:
                    writer.abandon()
                chosen = set(self.selection.features) - set(self.params.selected_branches)
                if not set(err.failing) <= chosen or set(err.failing) & set(unreadable):
                    raise
                unreadable.update(err.failing)
                self._selection = select_features(self.files, self.params, self.preproc, unreadable)
                continue
            except BaseException:
                if writer is not None:
                    writer.abandon()
                raise
            if writer is not None:
                self._adopt_store(writer, key)
            specs["unreadable"] = unreadable
            return specs

    @property
    def layout(self) -> FeatureLayout:
        """Feature columns and normalisation (from the given specs file, if any)."""
        computed = self.specs()
        norm = computed
        if self._given_specs is not None:
            name, given = self._given_specs
            norm = normalisation(given, name, computed, [*self.selection.identifiers, *self.params.identifier])
        layout = FeatureLayout.from_specs(norm, masks=self.params.use_masks, jdim_cap=self.params.jdim,
                                          nan_value=self.params.nan)
        total = computed["events"]["total"]
        rows = total if self.params.chunk_size < 0 else min(self.params.chunk_size, total)
        message = layout.width_warning(max(1, rows))
        if message and message not in self.warnings:
            self.warnings.append(message)
            warnings.warn(message, WideFeaturesWarning, stacklevel=2)
        return layout

    @property
    def feature_names(self) -> list[str]:
        return self.layout.names

    def plan(self) -> Plan:
        specs = self.specs()
        events = [specs["events"]["per_file"][p] for p in self.paths]
        return Plan.build(events, self.params.nevts, self.params.chunk_size)

    # -- chunks -------------------------------------------------------------------------------

    def iter_chunks(self, *, shuffle: bool | None = None, seed: int | None = None,
                    identifiers: bool = False, background: bool = True,
                    resume: tuple[int, Sequence[StreamPosition]] | None = None) -> Iterator[Chunk]:
        """:class:`~mlaas4hep.mix.Chunk` objects (X, y, and each row's file and entry).

        ``identifiers=True`` also carries the identifier branches per row (``selection.identifiers``).
        ``background=False`` builds chunks in the calling thread (for debugging).
        ``resume=(k, positions)`` starts at chunk k, each file at the position recorded by
        chunk k-1 (``Chunk.positions``): the chunks are those an uninterrupted pass gives.
        """
        specs = self.specs()
        layout = self.layout
        plan = self.plan()
        selection = self.selection
        shuffle = self.params.shuffle if shuffle is None else shuffle
        seed = self.params.seed if seed is None else seed
        ids = list(self.selection.identifiers) if identifiers else []
        if selection.weighted:
            ids.append(WEIGHT)  # carried like an identifier; Chunk.weight below
        labels = None if self.labels is None else self.labels.values
        tensorizer = Tensorizer(layout)
        self._tensorizer = tensorizer

        first_chunk, starts = resume if resume is not None else (0, [StreamPosition()] * len(self.paths))
        if len(starts) != len(self.paths):
            raise ConfigError(f"cannot resume: {len(starts)} stream positions for {len(self.paths)} files")

        store = self._row_store(specs, ids)

        def from_store() -> Iterator[Chunk]:
            reader = RowStore(store.folder, store.meta)  # a file descriptor of this pass's own
            streams: list[StoreStream | None] = []
            try:
                for i in range(len(self.paths)):
                    if plan.quotas[i] == 0 or starts[i].taken >= plan.quotas[i]:
                        streams.append(None)
                        continue
                    share = math.ceil(plan.share(i)) + 1
                    piece = store_piece(store, i, self.params.memory_mb)
                    streams.append(StoreStream(reader, i, max(share, piece), start=starts[i]))
                workers = self._mix_workers(plan, layout, max(map(store.bytes_per_event, range(len(self.paths)))))
                yield from ChunkMixer(streams, plan, tensorizer, labels, shuffle, seed, ids, first_chunk, starts,
                                      workers=workers)
            finally:
                reader.close()
                if self._store_temporary and self._store is store:
                    self._drop_store()  # cache: false: the rows last one pass

        def generate() -> Iterator[Chunk]:
            executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mlaas4hep-read")
            streams: list[FileStream | None] = []
            ahead = 2 if self._streaming_fits(specs, ahead=2) else 1  # blocks of each file read at once
            try:
                for i, rfile in enumerate(self.files):
                    if plan.quotas[i] == 0 or starts[i].taken >= plan.quotas[i]:
                        streams.append(None)
                        continue
                    stop = window(rfile.num_entries, self.params.nevts)
                    streams.append(FileStream(rfile, selection, stop, self._step(i, plan, specs), executor, ids,
                                              start=starts[i], ahead=ahead))
                per_event = max(f.bytes_per_entry(selection.read) for f in self.files)
                yield from ChunkMixer(streams, plan, tensorizer, labels, shuffle, seed, ids, first_chunk, starts,
                                      workers=self._mix_workers(plan, layout, per_event))
            finally:
                for stream in streams:
                    if stream is not None:
                        stream.close()
                executor.shutdown(wait=True, cancel_futures=True)

        def on_cluster() -> Iterator[Chunk]:
            from . import cluster

            try:
                yield from cluster.store_chunks(self.client, store, plan, layout, tensorizer, labels, shuffle, seed,
                                                ids, first_chunk, self.params.memory_mb)
            finally:
                if self._store_temporary and self._store is store:
                    self._drop_store()

        def chunks_of(store: RowStore | None) -> Iterator[Chunk]:
            if store is None:
                if self.client is not None:
                    log.warning("mlaas4hep: no row store for this pass: chunks are read from ROOT in this process")
                return generate()
            return on_cluster() if self.client is not None else from_store()

        if selection.weighted:
            scales = file_scales(self.params, len(self.paths))
            chunks = _with_weights(chunks_of(store), scales, identifiers)
        else:
            chunks = chunks_of(store)
        return prefetch(chunks) if background else chunks

    def chunks(self, *, shuffle: bool | None = None, seed: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """``(X, y)`` per chunk: X float32 (n, n_features), y int64 labels (None if unlabelled).

        Every selected event (up to ``nevts``) appears exactly once per pass. X may be a reused
        buffer once you drop it; keeping a reference (or a view) to it is always safe.
        """
        for chunk in self.iter_chunks(shuffle=shuffle, seed=seed):
            yield chunk.X, chunk.y

    @property
    def clipped(self) -> dict[str, int]:
        """Jagged elements beyond ``jdim`` dropped during the last pass, per branch."""
        return dict(self._tensorizer.clipped) if self._tensorizer else {}

    def _mix_workers(self, plan: Plan, layout: FeatureLayout, bytes_per_event: float) -> int:
        """Threads assembling chunks at once: ``MIX_WORKERS`` where what the extra chunks in flight
        hold (a row buffer, and the source values of each chunk being assembled) fits in a quarter
        of ``memory_mb``; else one, which tensorizes each piece as soon as it is read."""
        rows = max(1, min(plan.chunk_size, plan.total))
        extra = rows * (layout.n_features * 4 + MIX_WORKERS * bytes_per_event)
        return MIX_WORKERS if extra <= self.params.memory_mb * (1 << 20) / 4 else 1

    def _step(self, i: int, plan: Plan, specs: dict[str, Any]) -> int:
        """Entries to read per block from file i: about one chunk's share of its events."""
        path = self.paths[i]
        read = specs["events_read"]["per_file"][path]
        selected = specs["events"]["per_file"][path]
        efficiency = selected / read if read else 1.0
        return int(min(max(math.ceil(plan.share(i) / max(efficiency, 1e-6)), 2000), 500_000))

    # -- the row store ------------------------------------------------------------------------

    def _store_columns(self) -> dict[str, str]:
        """What the store keeps: the features, and the identifiers that are flat numbers."""
        selection = self.selection
        ids = [n for n in selection.identifiers
               if n not in selection.features and selection.kinds.get(n) == FLAT]
        return columns_of(selection.kinds, selection.features + ids + ([WEIGHT] if selection.weighted else []))

    def _store_key(self, key: str) -> str:
        content = {"version": STORE_VERSION, "specs": key, "columns": self._store_columns()}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:32]

    def _store_folder(self) -> Path:
        return cache_dir(self.params) / "rows"

    def _store_writer(self, key: str) -> StoreWriter | None:
        """A writer into a new folder (moved to its final place when complete); None where the
        store folder cannot be written: then chunks are read straight from ROOT."""
        folder = self._store_folder()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            sweep_temporary(folder)
            return StoreWriter(temporary_folder(folder), len(self.paths), self._store_columns())
        except OSError as err:
            log.warning("mlaas4hep: no row store (%s): every pass reads ROOT", err)
            return None

    def _adopt_store(self, writer: StoreWriter, key: str) -> None:
        """Finish a store: with ``cache: true`` it is kept in the cache folder for later passes
        and runs; else it lasts for the next pass."""
        self._drop_store()
        store_key = self._store_key(key)
        store = writer.finish(store_key)
        if store is None:
            log.warning("mlaas4hep: the row store could not be written (%s): chunks are read from ROOT",
                        writer.failed)
            return
        if self.params.cache:
            final = self._store_folder() / store_key
            shutil.rmtree(final, ignore_errors=True)
            try:
                os.replace(store.folder, final)
                store = RowStore(final, store.meta)
            except OSError:  # another process published the same store first
                shutil.rmtree(store.folder, ignore_errors=True)
                store = RowStore.open(final, store_key)
                if store is None:
                    return
        self._store, self._store_temporary = store, not self.params.cache
        if self._store_temporary:
            self._finalizer = weakref.finalize(self, shutil.rmtree, str(store.folder), True)

    def _drop_store(self) -> None:
        if self._store is not None:
            self._store.close()
            if self._store_temporary:
                self._store.remove()
        if self._finalizer is not None:
            self._finalizer.detach()
        self._store, self._store_temporary, self._finalizer = None, False, None

    def _row_store(self, specs: dict[str, Any], identifiers: Sequence[str]) -> RowStore | None:
        """The store the next pass reads: the one the specs pass wrote, the cached one (``cache:
        true``), or a new one filled by one read of every file; None: read straight from ROOT
        (with ``cache: false``, in one process, where every file read at once fits the budget)."""
        columns = self._store_columns()
        if any(name not in columns for name in identifiers):
            return None  # identifiers the store does not keep: read them from ROOT
        key = specs["cache_key"]
        if self._store is None and self.params.cache:
            found = RowStore.open(self._store_folder() / self._store_key(key), self._store_key(key))
            if found is not None:
                self._store, self._store_temporary = found, False
        if self._store is None and not self.params.cache and self.client is None and self._streaming_fits(specs):
            return None  # read straight from ROOT, overlapped with mixing: the same chunks, sooner
        if self._store is None:
            writer = self._store_writer(key)
            if writer is None:
                return None
            try:
                totals = self._read_pass(None, writer, stats=False)
            except BaseException:
                writer.abandon()
                raise
            expected = specs["events"]["per_file"]
            for path, total in zip(self.paths, totals):
                if total.events != expected.get(path):
                    writer.abandon()
                    raise DataError(f"{total.events} events pass the cuts now, {expected.get(path)} when the "
                                    "specs were computed: did the file change?", where=path,
                                    hint="run again with refreshed specs (--refresh, or specs_cache: false)")
            self._adopt_store(writer, key)
        return self._store

    def _streaming_fits(self, specs: dict[str, Any], ahead: int = 1) -> bool:
        """Whether reading every file at once straight from ROOT, ``ahead`` blocks of each read
        ahead, fits in half of ``memory_mb`` (each file being read holds its partly-used baskets;
        with many files it would not)."""
        plan = self.plan()
        budget = self.params.memory_mb * (1 << 20) / 2
        total = 0.0
        for i, rfile in enumerate(self.files):
            if plan.quotas[i]:
                step = self._step(i, plan, specs)
                total += rfile.stream_bytes(self.selection.read, step)
                total += (ahead - 1) * step * rfile.bytes_per_entry(self.selection.read)
                if total > budget:
                    return False
        return True

    # -- housekeeping -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the ROOT files (and drop a temporary row store; a cached one stays)."""
        for f in self._files or []:
            f.close()
        self._files = None
        if self._store is not None and self._store_temporary:
            self._drop_store()
        if self._client is not None and self._own_client:
            from . import cluster

            cluster.disconnect(self._client)
        self._client, self._own_client = None, False

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        labels = "" if self.labels is None else f", labels={list(self.labels.values)}"
        return f"Dataset({len(self.paths)} files{labels}, tree={self.params.branch!r})"


def _with_weights(chunks: Iterator[Chunk], scales: np.ndarray, identifiers: bool) -> Iterator[Chunk]:
    """Each chunk's event weights (the file's scale applied) moved into ``Chunk.weight``."""
    for chunk in chunks:
        ids = dict(chunk.identifiers or {})
        chunk.weight = scaled(ids.pop(WEIGHT), chunk.file_index, scales)
        chunk.identifiers = ids if identifiers else None
        yield chunk
