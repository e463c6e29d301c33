"""The row store: every file's selected events, before padding and normalisation, on local disk.

The first pass over ROOT (the specs pass, or a read pass when the specs came from their cache)
appends each block of selected events here as it goes; chunks are then mixed from the store
with plain file reads. So the first epoch reads and decompresses every basket once, the memory
of mixing does not grow with the number of files (a file in the store costs a read position,
not its partly-used ROOT baskets), and a complete store is never re-read from ROOT.

Values keep the dtype the preproc produced (a jagged branch as offsets + contiguous values), so
chunks mixed from the store are value for value those mixed straight from ROOT. Layout: one
``rows.bin`` (the arrays, back to back) and ``meta.json`` (where each block's arrays are),
written last: a store without it is incomplete and never used.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .tensorize import Jagged, packed

STORE_VERSION = 1
FLAT, JAGGED = "flat", "jagged"


class StoreFull(Exception):
    """The store cannot be written (disk full, or below its free-space reserve): it is dropped
    and the pass reads ROOT directly instead."""


class StoreWriter:
    """Appends blocks of selected events of any file, from any thread, to ``folder/rows.bin``.

    ``columns``: name -> "flat" or "jagged". ``reserve``: bytes of disk to leave free; the
    writer stops (``StoreFull``) rather than fill the disk.
    """

    def __init__(self, folder: Path, n_files: int, columns: Mapping[str, str], reserve: int = 1 << 30):
        self.folder = Path(folder)
        self.columns = dict(columns)
        self.reserve = reserve
        self.folder.mkdir(parents=True, exist_ok=False)
        self._out = open(self.folder / "rows.bin", "wb")
        self._lock = threading.Lock()
        self._pos = 0
        self._checked = 0
        self._segments: list[list[dict[str, Any]]] = [[] for _ in range(n_files)]
        self._file_bytes = [0] * n_files
        self.failed: str | None = None

    def add(self, file_index: int, start: int, entry: np.ndarray, arrays: Mapping[str, Any]) -> None:
        """One block of file ``file_index`` read from entry ``start``: the entry numbers of its
        selected events and their arrays (numpy for flat columns, awkward or Jagged for jagged)."""
        if self.failed or len(entry) == 0:  # a block where nothing passes the cuts holds nothing
            return
        parts: list[np.ndarray] = [np.ascontiguousarray(entry, dtype=np.int64)]
        layout: dict[str, list] = {}
        for name, kind in self.columns.items():
            if kind == JAGGED:
                offsets, values = packed(arrays[name])
                values = np.ascontiguousarray(values)
                layout[name] = [values.dtype.str, len(parts)]
                parts += [offsets, values]
            else:
                values = np.ascontiguousarray(np.asarray(arrays[name]))
                if values.ndim != 1:
                    raise TypeError(f"column {name!r}: expected one value per event, got shape {values.shape}")
                layout[name] = [values.dtype.str, len(parts)]
                parts.append(values)
        size = sum(p.nbytes for p in parts)
        with self._lock:
            if self.failed:
                return
            try:
                if self._pos + size - self._checked > 256 << 20:  # look at the free space every 256 MB
                    self._checked = self._pos
                    if shutil.disk_usage(self.folder).free - size < self.reserve:
                        raise StoreFull(f"less than {self.reserve >> 20} MB of disk would be left")
                where = []
                for p in parts:
                    where.append(self._pos)
                    self._out.write(memoryview(p).cast("B") if p.nbytes else b"")
                    self._pos += p.nbytes
            except (OSError, StoreFull) as err:
                self.failed = str(err)
                return
            segment = {"start": int(start), "n": len(entry), "entry": where[0],
                       "columns": {name: [dtype, where[i]] + ([where[i + 1]] if self.columns[name] == JAGGED else [])
                                   for name, (dtype, i) in layout.items()}}
            self._segments[file_index].append(segment)
            self._file_bytes[file_index] += size

    def finish(self, key: str) -> RowStore | None:
        """Close the data file and write ``meta.json``; None (and the folder removed) if the
        store could not be written completely."""
        with self._lock:
            try:
                self._out.close()
            except OSError as err:
                self.failed = self.failed or str(err)
            if self.failed:
                shutil.rmtree(self.folder, ignore_errors=True)
                return None
            files = [sorted(segments, key=lambda s: s["start"]) for segments in self._segments]
            meta = {"version": STORE_VERSION, "key": key, "columns": self.columns, "files": files,
                    "bytes": self._pos, "file_bytes": self._file_bytes}
            tmp = self.folder / f".meta.{uuid.uuid4().hex}"
            try:
                tmp.write_text(json.dumps(meta))
                os.replace(tmp, self.folder / "meta.json")
            except OSError:
                shutil.rmtree(self.folder, ignore_errors=True)
                return None
        return RowStore(self.folder, meta)

    def abandon(self) -> None:
        with self._lock:
            self.failed = self.failed or "abandoned"
            try:
                self._out.close()
            except OSError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)


class RowStore:
    """A complete store, read with positioned reads (safe from several threads at once)."""

    def __init__(self, folder: Path, meta: dict[str, Any]):
        self.folder = Path(folder)
        self.meta = meta
        self.columns: dict[str, str] = meta["columns"]
        self._segments: list[list[dict[str, Any]]] = meta["files"]
        # selected events before each segment, per file
        self._firsts = [np.cumsum([0] + [s["n"] for s in segs]) for segs in self._segments]
        self._fd: int | None = None

    @classmethod
    def open(cls, folder: Path, key: str) -> RowStore | None:
        """The complete store in ``folder`` made for ``key``, or None."""
        try:
            meta = json.loads((Path(folder) / "meta.json").read_text())
        except (OSError, ValueError):
            return None
        if meta.get("version") != STORE_VERSION or meta.get("key") != key:
            return None
        if not (Path(folder) / "rows.bin").is_file():
            return None
        return cls(folder, meta)

    @property
    def n_files(self) -> int:
        return len(self._segments)

    def events(self, i: int) -> int:
        """Selected events of file i in the store."""
        return int(self._firsts[i][-1])

    def bytes_per_event(self, i: int) -> float:
        n = self.events(i)
        return self.meta["file_bytes"][i] / n if n else 0.0

    def block_stop(self, i: int, a: int) -> int:
        """The selected event of file i just after the stored block that holds event ``a``."""
        firsts = self._firsts[i]
        k = int(np.searchsorted(firsts, a, side="right"))
        return int(firsts[min(k, len(firsts) - 1)])

    def read(self, i: int, a: int, b: int) -> list[tuple[np.ndarray, dict[str, Any]]]:
        """Selected events [a, b) of file i: ``(entry, arrays)`` per stored block they span."""
        out = []
        firsts = self._firsts[i]
        k = int(np.searchsorted(firsts, a, side="right")) - 1
        while a < b:
            seg = self._segments[i][k]
            lo, hi = a - int(firsts[k]), min(b, int(firsts[k + 1])) - int(firsts[k])
            m = hi - lo
            entry = self._pread(seg["entry"] + 8 * lo, np.int64, m)
            arrays: dict[str, Any] = {}
            for name, (dtype, where, *content) in seg["columns"].items():
                dt = np.dtype(dtype)
                if self.columns[name] == JAGGED:
                    offsets = self._pread(where + 8 * lo, np.int64, m + 1)
                    values = self._pread(content[0] + dt.itemsize * int(offsets[0]), dt, int(offsets[-1] - offsets[0]))
                    arrays[name] = Jagged(offsets - offsets[0] if offsets[0] else offsets, values)
                else:
                    arrays[name] = self._pread(where + dt.itemsize * lo, dt, m)
            if m:
                out.append((entry, arrays))
            a += m
            k += 1
        return out

    def _pread(self, offset: int, dtype: Any, count: int) -> np.ndarray:
        if self._fd is None:
            self._fd = os.open(self.folder / "rows.bin", os.O_RDONLY)
        out = np.empty(count, dtype)
        view = memoryview(out).cast("B")
        done = 0
        while done < out.nbytes:
            n = os.preadv(self._fd, [view[done:]], offset + done)
            if n <= 0:
                raise OSError(f"row store {self.folder} is truncated")
            done += n
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def sweep_temporary(folder: Path) -> None:
    """Remove temporary stores left by processes that no longer run (``tmp-<pid>-...``)."""
    try:
        entries = list(Path(folder).glob("tmp-*"))
    except OSError:
        return
    for path in entries:
        try:
            pid = int(path.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def temporary_folder(folder: Path) -> Path:
    return Path(folder) / f"tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}"


def columns_of(kinds: Mapping[str, str], names: Sequence[str]) -> dict[str, str]:
    return {name: (JAGGED if kinds.get(name) == JAGGED else FLAT) for name in names}
