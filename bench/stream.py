"""Streaming throughput: raw ``uproot.iterate`` vs ``Dataset.chunks()``, alternated in one run.

    python bench/stream.py [--rounds 5] [--events 1000000]

The file (generated once, seeded): 1M ttH-like events, ZLIB, 14 flat branches and 8 jagged ones
(mean multiplicity about 6, at most 20). ``Dataset.chunks()`` runs the full path: 2 cuts, 1 new
branch, padding to jdim, min/max normalisation, shuffling, float32 chunks. The raw baseline
iterates over the same branches with the same step, doing nothing with the arrays; it is
shown twice, with uproot's default (decompression in the reading thread) and with the same
decompression thread pool the engine uses, so the ratio's source is visible.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import uproot

import mlaas4hep
from mlaas4hep.read import decompression_executor

from common import PARAMS, PREPROC, ensure_file, machine


def raw_pass(path, branches, step, executor=None) -> tuple[float, int]:
    start = time.perf_counter()
    n = 0
    tree = uproot.open(path)["Events"]
    for arrays in tree.iterate(filter_name=branches, step_size=step, how=dict, decompression_executor=executor):
        n += len(arrays[branches[0]])
    return time.perf_counter() - start, n


def engine_pass(ds) -> tuple[float, int]:
    start = time.perf_counter()
    n = 0
    for X, _ in ds.chunks():
        n += len(X)
    return time.perf_counter() - start, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()

    path = str(ensure_file(f"stream-{args.events // 1000}k.root", args.events, seed=1))
    ds = mlaas4hep.Dataset([path], params=PARAMS, preproc=PREPROC)
    start = time.perf_counter()
    specs = ds.specs(refresh=True)
    specs_time = time.perf_counter() - start
    branches = ds.selection.read
    step = ds._step(0, ds.plan(), specs)
    tree = uproot.open(path)["Events"]
    entries = tree.num_entries
    mb_zip = sum(tree[b].compressed_bytes for b in branches) / 1e6
    mb_raw = sum(tree[b].uncompressed_bytes for b in branches) / 1e6
    pool = decompression_executor(0)

    print(f"machine: {machine()}")
    print(f"file: {path}: {entries:,} events, {len(branches)} branches read "
          f"({mb_zip:.0f} MB compressed, {mb_raw:.0f} MB uncompressed), step {step:,} entries")
    print(f"engine: {len(ds.feature_names)} features, {specs['events']['total']:,} events pass the cuts, "
          f"chunks of {PARAMS['chunk_size']:,}")
    print(f"specs pass (one read of the file, uncached): {specs_time:.2f}s, {entries / specs_time / 1e3:.0f} kHz\n")

    engine_pass(ds)  # warm-up: thread pools, page cache, buffers
    raw_pass(path, branches, step)
    times: dict[str, list[float]] = {"raw uproot.iterate": [], "raw + decompression pool": [], "Dataset.chunks()": []}
    for r in range(args.rounds):
        t_raw, n_raw = raw_pass(path, branches, step)
        t_pool, _ = raw_pass(path, branches, step, pool)
        t_eng, n_eng = engine_pass(ds)
        times["raw uproot.iterate"].append(t_raw)
        times["raw + decompression pool"].append(t_pool)
        times["Dataset.chunks()"].append(t_eng)
        print(f"round {r + 1}: raw {t_raw:.2f}s  raw+pool {t_pool:.2f}s  engine {t_eng:.2f}s  "
              f"ratio {t_raw / t_eng:.2f}  ({n_raw:,} read, {n_eng:,} in chunks)")

    print(f"\nmedian of {args.rounds} alternating rounds (events/s counts events read from the file):")
    print(f"{'':26s} {'time':>7s} {'events/s':>10s} {'MB/s (zip)':>11s} {'MB/s (raw)':>11s} {'ratio to raw':>13s}")
    base = statistics.median(times["raw uproot.iterate"])
    for name, values in times.items():
        t = statistics.median(values)
        print(f"{name:26s} {t:6.2f}s {entries / t / 1e3:8.0f} k {mb_zip / t:10.0f} {mb_raw / t:11.0f} "
              f"{base / t:12.2f}x")
    eng = statistics.median(times["Dataset.chunks()"])
    print(f"\nDataset.chunks() vs raw uproot.iterate: {base / eng:.2f}x (target >= 0.7x, stretch >= 1.0x)")


if __name__ == "__main__":
    main()
