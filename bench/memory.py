"""Peak memory and events/s of a full first pass over 1, 10 and 100 files, each in its own process.

    python bench/memory.py [--events 50000] [--repeat 3] [--chunk-size 10000]

Every file holds the same number of ttH-like events (labels alternate 1, 0, 1, ...), so 10 and
100 files are 10x and 100x the data. Each child process runs what a first epoch runs: the
uncached specs pass and then every chunk (read, preproc, padding, normalisation and mixing of
every file into every chunk), and reports its peak resident set size (VmHWM, ``common.PEAK_MB``) and the
events per second of the whole pass. The target the issue sets:
100 files: peak <= 1.3 * peak(1 file) + 30 MB, at >= 0.7 * its events/s.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from common import PARAMS, PEAK_MB, PREPROC, ensure_file, machine

CHILD = PEAK_MB + r"""
import json, resource, sys, time, tempfile
import mlaas4hep
paths = json.loads(sys.argv[1])
params = {**json.loads(sys.argv[2]), "chunk_size": int(sys.argv[4]), "cache_dir": tempfile.mkdtemp(),
          "specs_cache": False}
rss0 = peak_mb()
ds = mlaas4hep.Dataset(paths, labels=[str((i + 1) % 2) for i in range(len(paths))], params=params,
                       preproc=json.loads(sys.argv[3]))
start = time.perf_counter()
specs = ds.specs()
rss_specs = peak_mb()
n = 0
for X, y in ds.chunks():
    n += len(X)
seconds = time.perf_counter() - start
ds.close()
print(json.dumps({"rss_imports": rss0, "rss_after_specs": rss_specs,
                  "rss_peak": peak_mb(),
                  "events": n, "events_read": specs["events_read"]["total"],
                  "features": len(ds.feature_names), "seconds": seconds}))
"""


def run_child(paths: list[str], chunk_size: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(paths), json.dumps(PARAMS), json.dumps(PREPROC),
                          str(chunk_size)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000,
                        help="events per file (default 50000: a few baskets, so that even one file is read by "
                             "two threads, as many files are)")
    parser.add_argument("--files", default="1,10,100", help="numbers of files to compare (default 1,10,100)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="fresh processes per case (default 3); medians are compared, since a process's "
                             "peak RSS varies by +-10 MB from run to run with allocator and thread timing")
    parser.add_argument("--chunk-size", type=int, default=10_000, help="chunk size (default 10000)")
    args = parser.parse_args()
    counts = [int(c) for c in args.files.split(",")]
    files = [str(ensure_file(f"memory-{args.events // 1000}k-{i}.root", args.events, seed=100 + i,
                             signal=i % 2 == 0))
             for i in range(max(counts))]
    print(f"machine: {machine()}; {args.events:,} events per file, chunk_size {args.chunk_size:,}; "
          f"each first pass (specs + every chunk) in a fresh process, median of {args.repeat}\n")
    results = {}
    for count in counts:
        runs = []
        for _ in range(max(1, args.repeat)):
            runs.append(run_child(files[:count], args.chunk_size))
        peak = statistics.median(r["rss_peak"] for r in runs)
        rate = statistics.median(r["events_read"] / r["seconds"] for r in runs)
        results[count] = (peak, rate)
        r = runs[0]
        print(f"{count:4d} file(s): {r['events']:>10,} events in chunks, {r['features']} features; "
              f"peak RSS {peak:6.0f} MB (runs {', '.join('%.0f' % x['rss_peak'] for x in runs)}; "
              f"after imports {r['rss_imports']:.0f} MB); {rate / 1e3:6.0f} k events/s "
              f"(runs {', '.join('%.0f' % (x['events_read'] / x['seconds'] / 1e3) for x in runs)})", flush=True)
    one_peak, one_rate = results[counts[0]]
    print(f"\n{'files':>6s} {'peak RSS':>9s} {'x 1 file':>9s} {'bound':>7s} {'events/s':>10s} {'x 1 file':>9s}")
    for count in counts:
        peak, rate = results[count]
        bound = 1.3 * one_peak + 30
        print(f"{count:6d} {peak:7.0f}MB {peak / one_peak:8.2f}x {bound:5.0f}MB {rate / 1e3:8.0f} k "
              f"{rate / one_rate:8.2f}x  {'within' if peak <= bound and rate >= 0.7 * one_rate else 'OUTSIDE'} "
              "the target (peak <= 1.3 x 1 file + 30 MB, events/s >= 0.7 x 1 file)")


if __name__ == "__main__":
    time0 = time.perf_counter()
    main()
    print(f"\n(bench took {time.perf_counter() - time0:.0f}s)")
