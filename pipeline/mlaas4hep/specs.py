"""The specs pass: one read of every file that gives what normalisation and mixing need.

Keys of the original MLaaS4HEP specs file: ``fkeys``, ``jkeys``, ``jdim`` (max jagged length),
``minv`` / ``maxv`` (finite values only), ``nans`` (NaN and inf values, counted, never in
min/max); plus ``events`` (events passing the preproc cuts) and ``events_read`` (before cuts),
each ``{"total": n, "per_file": {path: n}}``, and the same statistics per file under ``files``.

All statistics are over the events that pass the cuts. With ``nevts`` > 0 each file is read
up to its first ``nevts`` entries (no file can contribute more than that).

Results are cached on disk, keyed by each file's identity (path, size, mtime; for remote files
size, ROOT UUID and end offset), the tree, the branch selection, the preproc and ``nevts``: a
changed input never reuses a stale cache.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import awkward as ak
import numpy as np

from .config import Params, Preproc
from .features import FeatureSelection
from .heap import release_free_memory
from .read import JAGGED, RootFile
from .tensorize import Jagged, packed
from .weights import WEIGHT, file_scales

BLOCK_ENTRIES = 20_000  # entries per block of the read pass (fewer for wide events: block_entries)
UNIT_ENTRIES = 20_000  # entries of a range one thread reads (two blocks where blocks are smaller: unit_entries)
SPECS_VERSION = 2  # 2: an empty identifier excludes run, event, luminosityBlock
Progress = Callable[[str, int], None]  # (file path, entries just read)


class Sink(Protocol):
    """Where the read pass hands each block of selected events (the row store's writer)."""

    columns: dict[str, str]

    def add(self, file_index: int, start: int, entry: np.ndarray, arrays: dict[str, Any]) -> None: ...


class _Stats:
    """Running min/max/NaN count (and max length for jagged) of one branch."""

    __slots__ = ("minv", "maxv", "nans", "jdim")

    def __init__(self) -> None:
        self.minv, self.maxv, self.nans, self.jdim = np.inf, -np.inf, 0, 0

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        lo, hi = values.min(), values.max()
        # NaN propagates through min and max, and an inf would be one of them: finite extremes
        # mean every value is finite, and the masked copy below is needed only otherwise
        if values.dtype.kind == "f" and not (np.isfinite(lo) and np.isfinite(hi)):
            finite = np.isfinite(values)
            self.nans += values.size - int(np.count_nonzero(finite))
            values = values[finite]
            if values.size == 0:
                return
            lo, hi = values.min(), values.max()
        self.minv = min(self.minv, float(lo))
        self.maxv = max(self.maxv, float(hi))

    def to_dict(self) -> dict[str, Any]:
        empty = self.minv > self.maxv
        return {"minv": None if empty else self.minv, "maxv": None if empty else self.maxv,
                "nans": self.nans, "jdim": self.jdim}


def window(num_entries: int, nevts: int) -> int:
    """How many entries of a file are read: all, or the first ``nevts``."""
    return num_entries if nevts < 0 else min(num_entries, nevts)


class _RangeStats:
    """Statistics of the selected events in one entry range of one file; mergeable."""

    def __init__(self, selection: FeatureSelection):
        self.stats = {name: _Stats() for name in selection.features}
        self.events_read = 0
        self.events = 0
        self.weighted = 0.0  # Σ weight of the selected events (params weight; before the file's scale)

    def merge(self, other: _RangeStats) -> None:
        self.events_read += other.events_read
        self.events += other.events
        self.weighted += other.weighted
        for name, st in self.stats.items():
            o = other.stats[name]
            st.minv, st.maxv = min(st.minv, o.minv), max(st.maxv, o.maxv)
            st.nans += o.nans
            st.jdim = max(st.jdim, o.jdim)


def range_stats(rfile: RootFile, selection: FeatureSelection, start: int, stop: int, step: int,
                progress: Progress | None = None, sink: Sink | None = None, stats: bool = True,
                file_index: int = 0, read_step: int = 0) -> _RangeStats:
    """Statistics of the selected events in entries [start, stop) of one file, in blocks of
    ``step`` entries; with ``sink``, each block's selected events are also handed to it
    (``sink.add``), so that the pass that computes the specs also yields the training rows.

    ``read_step``: entries read from the file at once (then cut into blocks). uproot
    decompresses and interprets a whole basket for every read that touches it, so reading a
    range whose baskets hold 100k entries in reads of 10k would interpret each basket ten times.
    """
    out = _RangeStats(selection)
    pre = selection.preprocessor
    jagged = set(selection.jagged) | {n for n, kind in (sink.columns.items() if sink else ()) if kind == JAGGED}
    keep = list(sink.columns) if sink is not None else list(out.stats)
    new = (set(pre.new_names) if pre else set()) | {WEIGHT}  # computed, never read
    read = selection.read + [n for n in keep if n not in selection.read and n not in new]
    for first, end, arrays in _cut(rfile.iterate(read, start, stop, max(step, read_step)), step):
        env, mask = pre.apply(arrays) if pre else (arrays, None)
        out.events_read += end - first
        out.events += (end - first) if mask is None else int(np.count_nonzero(mask))
        if WEIGHT in env:
            out.weighted += float(np.sum(env[WEIGHT] if mask is None else env[WEIGHT][mask]))
        structures: list = []  # the branches of one collection share their selected offsets
        selected = {name: _selected(env[name], mask, name in jagged, structures) for name in keep}
        if stats:
            for name, st in out.stats.items():
                values = selected[name]
                if name in jagged:
                    if len(values):
                        st.jdim = max(st.jdim, int(np.diff(values.offsets).max()))
                    st.add(values.content[values.offsets[0]:values.offsets[-1]])
                else:
                    st.add(values)
        if sink is not None:
            entry = np.arange(first, end, dtype=np.int64) if mask is None else first + np.flatnonzero(mask)
            sink.add(file_index, first, entry, selected)
        if progress:
            progress(rfile.path, end - first)
    return out


def _cut(blocks: Iterator[tuple[int, int, dict[str, Any]]], step: int) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """Blocks of at most ``step`` entries (views) out of larger ones."""
    for first, end, arrays in blocks:
        if end - first <= step:
            yield first, end, arrays
            continue
        for a in range(first, end, step):
            b = min(a + step, end)
            yield a, b, {k: v[a - first:b - first] for k, v in arrays.items()}


def _selected(value: Any, mask: np.ndarray | None, jagged: bool, structures: list | None = None) -> Any:
    """The events of a block that pass the cuts: numpy for a flat value, :class:`Jagged` (offsets
    from 0, values contiguous) for a jagged one; what the statistics, the row store and the
    tensorizer all take, made once. ``structures``: the list structures seen in this block
    (offsets, which elements pass, selected offsets), shared by the branches of one collection."""
    if not jagged:
        values = ak.to_numpy(value) if isinstance(value, ak.Array) else np.asarray(value)
        return values if mask is None else values[mask]
    offsets, values = packed(value)
    if mask is None:
        return Jagged(offsets, values)
    for seen, elements, kept in structures if structures is not None else ():
        if seen is offsets or np.array_equal(seen, offsets):
            return Jagged(kept, values[elements])
    counts = np.diff(offsets)
    elements = np.repeat(mask, counts)
    counts = counts[mask]
    kept = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=kept[1:])
    if structures is not None:
        structures.append((offsets, elements, kept))
    return Jagged(kept, values[elements])


def file_specs(rfile: RootFile, selection: FeatureSelection, total: _RangeStats) -> dict[str, Any]:
    """One file's entry of the specs, from the merged statistics of its ranges."""
    per = {name: st.to_dict() for name, st in total.stats.items()}
    return {
        "identity": rfile.identity(),
        "num_entries": rfile.num_entries,
        "events_read": total.events_read,
        "events": total.events,
        **({"weighted": total.weighted} if selection.weighted else {}),
        "minv": {k: v["minv"] for k, v in per.items()},
        "maxv": {k: v["maxv"] for k, v in per.items()},
        "nans": {k: v["nans"] for k, v in per.items()},
        "jdim": {k: per[k]["jdim"] for k in selection.jagged},
    }


def merge_specs(per_file: dict[str, dict[str, Any]], selection: FeatureSelection, params: Params) -> dict[str, Any]:
    """Global specs from per-file ones."""
    def pick(key: str, name: str, fn: Callable) -> Any:
        values = [f[key][name] for f in per_file.values() if f[key][name] is not None]
        return fn(values) if values else None

    features = selection.features
    minv = {n: pick("minv", n, min) for n in features}
    maxv = {n: pick("maxv", n, max) for n in features}
    return {
        "version": SPECS_VERSION,
        "tree": params.branch,
        "fkeys": list(selection.flat),
        "jkeys": list(selection.jagged),
        "jdim": {n: max(f["jdim"][n] for f in per_file.values()) for n in selection.jagged},
        "minv": {n: (0.0 if v is None else v) for n, v in minv.items()},
        "maxv": {n: (0.0 if v is None else v) for n, v in maxv.items()},
        "nans": {n: sum(f["nans"][n] for f in per_file.values()) for n in features},
        "events": {"total": sum(f["events"] for f in per_file.values()),
                   "per_file": {p: f["events"] for p, f in per_file.items()},
                   **({"weighted": _weighted(per_file, params)} if selection.weighted else {})},
        "events_read": {"total": sum(f["events_read"] for f in per_file.values()),
                        "per_file": {p: f["events_read"] for p, f in per_file.items()}},
        "nevts": params.nevts,
        "identifier": list(selection.identifiers),
        "new_branches": [n for n in (selection.preprocessor.new_names if selection.preprocessor else [])],
        "dtypes": {n: selection.dtypes.get(n, "float64") for n in features},
        "skipped": dict(selection.skipped),
        "files": per_file,
    }


def _weighted(per_file: dict[str, dict[str, Any]], params: Params) -> dict[str, Any]:
    """Σw of the selected events, each file's sum times its scale: in total and per file."""
    scales = file_scales(params, len(per_file))
    out = {p: f.get("weighted", 0.0) * float(scale) for (p, f), scale in zip(per_file.items(), scales)}
    return {"total": sum(out.values()), "per_file": out}


def read_pass(files: Sequence[RootFile], selection: FeatureSelection, params: Params,
              progress: Progress | None = None, sink: Sink | None = None, stats: bool = True,
              workers: int = 2) -> list[_RangeStats]:
    """One read of every file: ranges of entries (of one file or several) in parallel threads
    (uproot's decompression and numpy release the GIL); the statistics of each file.

    Blocks are small (at most 20k entries, fewer for wide events within ``memory_mb``; each
    range is read from the file in pieces of up to a sixteenth of ``memory_mb`` and cut into
    blocks), the number of workers is fixed and files are opened in turn, so memory is the same
    for one file or many.
    """
    step = block_entries(files, selection, params)
    totals = [_RangeStats(selection) for _ in files]
    remaining = [0] * len(files)
    steps = [step] * len(files)
    whole = read_entries(files, selection, params)
    reads = [whole] * len(files)

    def units() -> Iterator[tuple[int, int, int]]:
        # a file is opened when its ranges are planned and released after its last one, so
        # that only the files being read are open
        for i, rfile in enumerate(files):
            stop = window(rfile.num_entries, params.nevts)
            clusters = rfile.cluster_starts(selection.read) if stop else []
            ranges = entry_ranges(clusters, stop, unit_entries(step)) if stop else []
            steps[i] = aligned_step(clusters, step)
            reads[i] = aligned_step(clusters, whole)  # reads too end where baskets end
            remaining[i] = max(1, len(ranges))
            yield from ((i, a, b) for a, b in ranges or [(0, 0)])

    def run(unit: tuple[int, int, int]) -> _RangeStats:
        i, a, b = unit
        return range_stats(files[i], selection, a, b, steps[i], progress, sink, stats, i, reads[i])

    pending: deque = deque()
    planned = units()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        try:
            for unit in itertools.islice(planned, workers + 1):
                pending.append((unit, pool.submit(run, unit)))
            while pending:
                (i, _, _), future = pending.popleft()
                totals[i].merge(future.result())
                remaining[i] -= 1
                if remaining[i] == 0:
                    files[i].release()  # unmap what was read of it
                for unit in itertools.islice(planned, 1):
                    pending.append((unit, pool.submit(run, unit)))
        finally:
            for _, future in pending:
                future.cancel()
    release_free_memory()  # what the worker threads freed: the chunks built next come on top
    return totals


def entry_ranges(clusters: Sequence[int], stop: int, span: int) -> list[tuple[int, int]]:
    """Split [0, stop) into ranges of about ``span`` entries (the work of one thread), cut
    where every branch starts a basket, so that no basket is decompressed twice; where those
    places are further than 16 spans apart, cut every ``4 * span`` entries anyway. (ROOT's own
    clusters, where its baskets grow to 100k+ entries, are often 8 to 16 spans apart: cutting
    them would decompress their baskets in two or three threads.)"""
    cuts = [0]
    for c in sorted(set(clusters)):
        if c >= stop:
            break
        if c - cuts[-1] >= span:
            cuts.append(c)
    cuts.append(stop)
    ranges = []
    for a, b in zip(cuts, cuts[1:]):
        if b - a > 16 * span:
            ranges += [(x, min(x + 4 * span, b)) for x in range(a, b, 4 * span)]
        elif b > a:
            ranges.append((a, b))
    return ranges


def aligned_step(clusters: Sequence[int], step: int) -> int:
    """``step`` rounded down to a whole number of clusters where a file's clusters (the entries
    where every branch read starts a basket) are all one size (all but the last) and no larger
    than ``step``: blocks then end where baskets end, and uproot holds no decompressed basket
    from one block to the next (with a thousand branches, as much memory as a block). Else
    ``step``."""
    starts = sorted({int(c) for c in clusters})  # a few numbers: no numpy (np.unique's first call costs 30 ms)
    spans = [b - a for a, b in zip(starts, starts[1:])]
    if not spans:
        return step
    size = spans[0]
    if size > step or any(s != size for s in spans[:-1]):
        return step
    return step // size * size


def block_entries(files: Sequence[RootFile], selection: FeatureSelection, params: Params) -> int:
    """Entries per block of the read pass: ``BLOCK_ENTRIES``, or fewer where the branches read are
    so wide that two workers' blocks would take more than an eighth of ``memory_mb``. (Each block
    costs the preproc, the selection and the row store a fixed overhead: blocks of 20k entries
    take about 0.1 CPU-s less per million events than blocks of 10k. What a thread holds grows
    with its range, not its blocks: see :func:`unit_entries`.)"""
    per_entry = max((f.bytes_per_entry(selection.read) for f in files[:1]), default=0.0)
    budget = params.memory_mb * (1 << 20) / 16
    return int(min(BLOCK_ENTRIES, max(1_000, budget / per_entry))) if per_entry > 0 else BLOCK_ENTRIES


def unit_entries(step: int) -> int:
    """Entries of a range one thread reads (a unit of work of the read pass), for blocks of
    ``step``: ``UNIT_ENTRIES`` (one block), or two blocks where blocks are smaller (wide
    events). A thread holds its range's arrays while it cuts them into blocks: ranges of 40k
    entries raised the peak of ``bench/memory.py``'s 100 files past its bound (205 vs 188 MB),
    and files of 50k entries would be read by one thread."""
    return min(2 * step, max(step, UNIT_ENTRIES))


def read_entries(files: Sequence[RootFile], selection: FeatureSelection, params: Params) -> int:
    """Entries of a range read from the file at once: as many as fit in a sixteenth of
    ``memory_mb`` (at least one block)."""
    per_entry = max((f.bytes_per_entry(selection.read) for f in files[:1]), default=0.0)
    step = block_entries(files, selection, params)
    return max(step, int(params.memory_mb * (1 << 20) / 16 / per_entry)) if per_entry > 0 else step


def compute_specs(files: Sequence[RootFile], selection: FeatureSelection, params: Params,
                  progress: Progress | None = None, sink: Sink | None = None,
                  reader: Callable[..., list[_RangeStats]] | None = None) -> dict[str, Any]:
    """The specs pass (see :func:`read_pass`); with ``sink``, it also stores the selected rows.
    ``reader``: another read pass of the same signature (on a Dask cluster: :mod:`.cluster`)."""
    totals = (reader or read_pass)(files, selection, params, progress, sink)
    per_file = {f.path: file_specs(f, selection, t) for f, t in zip(files, totals)}
    specs = merge_specs(per_file, selection, params)
    # each branch's full path in the tree (its name, where no other leaf shares its name)
    specs["paths"] = {n: files[0].branches[n].path for n in selection.read}
    return specs


# ---------------------------------------------------------------------------------------------
# cache


def cache_dir(params: Params) -> Path:
    if params.cache_dir:
        return Path(params.cache_dir).expanduser()
    if os.environ.get("MLAAS4HEP_CACHE_DIR"):
        return Path(os.environ["MLAAS4HEP_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlaas4hep"


def specs_key(files: Sequence[RootFile], params: Params, preproc: Preproc) -> str:
    """A hash of everything the specs depend on."""
    content = {
        "version": SPECS_VERSION,
        "files": [f.identity() for f in files],
        "tree": params.branch,
        "selected_branches": list(params.selected_branches),
        "exclude_branches": sorted(params.exclude_branches),
        "identifier": sorted(params.identifier),
        "preproc": json.loads(preproc.canonical()) if preproc else None,
        "nevts": params.nevts,
    }
    if params.weight:
        content["weight"] = params.weight
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:32]


def load_cached(key: str, params: Params) -> dict[str, Any] | None:
    path = cache_dir(params) / "specs" / f"{key}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if data.get("version") == SPECS_VERSION else None


def store_cached(key: str, specs: dict[str, Any], params: Params) -> Path | None:
    """Write atomically; a read-only cache folder only costs the cache, never the run."""
    folder = cache_dir(params) / "specs"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / f"{key}.json", specs)
    except OSError:
        return None
    return folder / f"{key}.json"


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int | None = None) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=indent)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
