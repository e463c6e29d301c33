"""Scale-out on Dask: the specs pass and the chunk stream with 1 and 2 worker processes, in one run.

    python bench/scale.py [--files 4] [--events 200000] [--rounds 3]

Two ``distributed.LocalCluster`` s (1 worker process and 2 worker processes, one thread each:
each worker decompresses in its task thread, so it uses one core), both made as
``Dataset(dask="local")`` makes its cluster (:func:`mlaas4hep.cluster.local_cluster`: the same
settings for every worker, among them the heap thresholds of ``mlaas4hep.heap``), run side by side; rounds
alternate between them and two baselines without Dask: one process as the engine runs it by
default (2 range threads and a pool of 2 decompression threads: up to 2 cores), and one process
with one thread (``read_threads: 1``, one range at a time: the same core count as 1 worker).
Per round and cluster, a new ``Dataset`` (specs cache off, ``cache: false``) on seeded ttH-like
files (2 cuts, 1 new branch):

- specs: ``specs(rows=False)``, the specs pass alone (what ``mlaas4hep specs`` needs);
- first pass: ``specs()`` keeping the rows (each worker sends its ranges' selected rows back,
  the client writes the row store);
- stream: every chunk of one pass, each mixed by a worker from the row store.

Prints the medians with the CPU seconds of client and workers, where the specs pass's time goes
on the workers (task time / wall time per worker), the ratios (target for specs, 2 workers /
1 worker: 1.6x), the load average, and a projection of the specs pass on 100 workers from the
measured per-worker rate. Asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import statistics
import time

import mlaas4hep
from mlaas4hep.specs import compute_specs, read_pass

from common import PREPROC, ensure_file, machine


def _cpu(client) -> float:
    """CPU seconds used so far by this process and the workers of ``client``."""
    own = time.process_time()
    if client is None:
        return own
    return own + sum(client.run(time.process_time).values())


def measure(files: list[str], client, params: dict, one_thread: bool = False) -> dict[str, float]:
    """Wall and CPU seconds (client + workers) of the specs pass, the first pass and the stream;
    with a client, the seconds its workers spent in the specs pass's tasks."""
    out = {}
    labels = [1, 0] * (len(files) // 2) + [1] * (len(files) % 2)
    if one_thread:
        params = {**params, "read_threads": 1}
    with mlaas4hep.Dataset(files, labels=labels, params=params, preproc=PREPROC, dask=client) as ds:
        ds.selection  # noqa: B018 - opening the files and checking the branches: not the pass
        cpu, start = _cpu(client), time.perf_counter()
        with (get_task_stream(client) if client is not None else contextlib.nullcontext()) as tasks:
            if one_thread:  # the engine's read pass with one range at a time (no public knob)
                specs = compute_specs(ds.files, ds.selection, ds.params, reader=functools.partial(read_pass, workers=1))
            else:
                specs = ds.specs(rows=False)
        out["specs"], out["specs_cpu"] = time.perf_counter() - start, _cpu(client) - cpu
        if tasks is not None:
            out["specs_busy"] = sum(s["stop"] - s["start"] for t in tasks.data for s in t["startstops"]
                                    if s["action"] == "compute")
            out["specs_tasks"] = len(tasks.data)
        out["events"] = specs["events_read"]["total"]
        out["selected"] = specs["events"]["total"]
    if one_thread:
        return out
    with mlaas4hep.Dataset(files, labels=labels, params=params, preproc=PREPROC, dask=client) as ds:
        ds.selection  # noqa: B018
        cpu, start = _cpu(client), time.perf_counter()
        ds.specs()
        out["first"], out["first_cpu"] = time.perf_counter() - start, _cpu(client) - cpu
        cpu, start = _cpu(client), time.perf_counter()
        n = sum(len(c) for c in ds.iter_chunks())
        out["stream"], out["stream_cpu"] = time.perf_counter() - start, _cpu(client) - cpu
        assert n == out["selected"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--events", type=int, default=200_000, help="events per file")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    global get_task_stream
    from distributed import Client, get_task_stream

    from mlaas4hep.cluster import local_cluster

    files = [str(ensure_file(f"scale-{i}-{args.events}.root", args.events, seed=100 + i, signal=i % 2 == 0))
             for i in range(args.files)]
    size = sum(os.path.getsize(f) for f in files)
    params = {"specs_cache": False, "cache": False, "chunk_size": 50_000}
    clusters = {}
    for workers in (1, 2):
        cluster = local_cluster(workers, silence_logs=logging.ERROR)  # as Dataset(dask="local") makes it
        clusters[workers] = (cluster, Client(cluster))
    print(f"machine: {machine()}; load average at the start: {_load()}")
    print(f"data: {args.files} files x {args.events:,} events, {size / 1e6:.0f} MB (ZLIB); "
          f"{args.rounds} rounds, alternating; medians below")
    plain, single = "1 process, default threads", "1 process, 1 thread"
    results: dict[str, list[dict[str, float]]] = {plain: [], single: [], "1 worker": [], "2 workers": []}
    measure(files, clusters[1][1], params)  # warm-up: imports on the workers, page cache
    measure(files, clusters[2][1], params)
    for r in range(args.rounds):
        results[plain].append(measure(files, None, params))
        results[single].append(measure(files, None, params, one_thread=True))
        results["1 worker"].append(measure(files, clusters[1][1], params))
        results["2 workers"].append(measure(files, clusters[2][1], params))
        print(f"  round {r + 1} (load {_load()}): " + ", ".join(f"{k}: specs {v[-1]['specs']:.2f}s"
                                                              for k, v in results.items()), flush=True)
    for cluster, client in clusters.values():
        client.close()
        cluster.close()

    metrics = ("specs", "first", "stream")
    med = {k: {m: statistics.median(x[m] for x in v) for m in v[0]} for k, v in results.items()}
    events = results["1 worker"][0]["events"]
    selected = results["1 worker"][0]["selected"]
    print("\nwall time (events/s) and CPU seconds of client + workers, medians")
    print(f"{'':27} {'specs pass':>30} {'first pass (+rows)':>30} {'stream (store)':>30}")
    for k, m in med.items():
        print(f"{k:27} " + " ".join(
            f"{m[x]:7.2f}s {(events if x != 'stream' else selected) / m[x] / 1e3:6.0f} kev/s {m[x + '_cpu']:6.1f} cpu-s"
            if x in m else f"{'-':>30}" for x in metrics))
    for k in ("1 worker", "2 workers"):
        n = 1 if k == "1 worker" else 2
        m = med[k]
        print(f"specs pass, {k}: {m['specs_tasks']:.0f} tasks, in tasks {m['specs_busy']:.2f} s of "
              f"{n} x {m['specs']:.2f} s wall: each worker busy {m['specs_busy'] / (n * m['specs']):.0%} of the time")
    print()
    for metric in metrics:
        ratio = med["1 worker"][metric] / med["2 workers"][metric]
        note = " (target >= 1.6)" if metric == "specs" else ""
        print(f"{metric}: 2 workers / 1 worker = {ratio:.2f}x wall{note}; CPU 2 workers / 1 worker = "
              f"{med['2 workers'][metric + '_cpu'] / med['1 worker'][metric + '_cpu']:.2f}")
    print(f"specs: 1 worker / 1 process, 1 thread = {med[single]['specs'] / med['1 worker']['specs']:.2f}x wall, "
          f"CPU {med['1 worker']['specs_cpu'] / med[single]['specs_cpu']:.2f}x; "
          f"2 workers / 1 process, default threads = {med[plain]['specs'] / med['2 workers']['specs']:.2f}x wall")
    print(f"stream: CPU on the cluster / in one process = "
          f"{med['1 worker']['stream_cpu'] / med[plain]['stream_cpu']:.2f}x (1 worker), "
          f"{med['2 workers']['stream_cpu'] / med[plain]['stream_cpu']:.2f}x (2 workers)")
    load = os.getloadavg()[0]
    print(f"load average at the end: {_load()} on {os.cpu_count()} CPUs"
          + (" (a shared machine: wall-clock ratios are not meaningful)" if load > (os.cpu_count() or 1) else ""))

    # per-worker rate from CPU seconds: what a worker with a core of its own does
    per_worker = events / med["1 worker"]["specs_cpu"]
    per_worker_mb = size / 1e6 / med["1 worker"]["specs_cpu"]
    print(f"\nper-worker rate (1 worker, specs pass, per CPU second of client + worker): "
          f"{per_worker / 1e3:.0f} kev/s, {per_worker_mb:.1f} MB/s of ROOT file")
    print("projection, specs pass on 100 such workers (linear; storage and network not limiting):")
    for n_files, file_gb in ((100, 1), (1_000, 2), (10_000, 2)):
        seconds = n_files * file_gb * 1e3 / (100 * per_worker_mb)
        print(f"  {n_files:>6} files x {file_gb} GB: {seconds / 60:8.1f} min")


def _load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
