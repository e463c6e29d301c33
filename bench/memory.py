"""Peak memory of a full pass over 1x and 5x the data, each in its own process.

    python bench/memory.py [--events 200000] [--repeat 3]

1x: one file of N ttH-like events. 5x, twice: one file of 5N events, and five files of N events
(labels 1, 0, 1, 0, 1) mixed into every chunk. Each child process runs the uncached specs pass
and then every chunk (the full read, preproc, padding, normalisation and mixing) and reports
its peak resident set size (``ru_maxrss``). The bound the issue sets:
peak(5x) <= 1.1 * peak(1x) + 20 MB.

Five files streamed at once each keep their partly-read ROOT baskets (uproot decompresses whole
baskets), so that case also shows the cost per concurrently-read file, which depends on basket
sizes and the number of files, not on the amount of data. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from common import PARAMS, PREPROC, ensure_file, machine

CHILD = r"""
import json, resource, sys, time, tempfile
import mlaas4hep
paths = json.loads(sys.argv[1])
params = {**json.loads(sys.argv[2]), "chunk_size": int(sys.argv[4]), "cache_dir": tempfile.mkdtemp(),
          "specs_cache": False}
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
ds = mlaas4hep.Dataset(paths, labels=[str((i + 1) % 2) for i in range(len(paths))], params=params,
                       preproc=json.loads(sys.argv[3]))
start = time.perf_counter()
specs = ds.specs()
rss_specs = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
n = 0
for X, y in ds.chunks():
    n += len(X)
print(json.dumps({"rss_imports": rss0, "rss_after_specs": rss_specs,
                  "rss_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "events": n, "features": len(ds.feature_names), "seconds": time.perf_counter() - start}))
"""


def basket_mb(path: str, skip: list[str]) -> float:
    """Mean uncompressed basket size, summed over the branches the bench reads."""
    import uproot

    with uproot.open(path) as f:
        tree = f["Events"]
        return sum(sum(b.basket_uncompressed_bytes(i) for i in range(b.num_baskets)) / b.num_baskets
                   for b in tree.branches if b.name not in skip) / 1e6


def run_child(paths: list[str], chunk_size: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(paths), json.dumps(PARAMS), json.dumps(PREPROC),
                          str(chunk_size)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per file (default 200000)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="fresh processes per case (default 3); the median peak is compared, since a process's "
                             "peak RSS varies by +-10 MB from run to run with allocator and thread timing")
    parser.add_argument("--chunk-size", type=int, default=20_000,
                        help="chunk size (default 20000: even 1x spans several chunks, so both runs reach the "
                             "steady state of the chunk buffers)")
    args = parser.parse_args()
    files = [str(ensure_file(f"memory-{args.events // 1000}k-{i}.root", args.events, seed=100 + i, signal=i % 2 == 0))
             for i in range(5)]
    big = str(ensure_file(f"memory-{5 * args.events // 1000}k.root", 5 * args.events, seed=100))
    print(f"machine: {machine()}; chunk_size {args.chunk_size:,}; each pass in a fresh process\n")
    results = {}
    for name, paths in (("1x", files[:1]), ("5x one file", [big]), ("5x five files", files)):
        start = time.perf_counter()
        runs = [run_child(paths, args.chunk_size) for _ in range(max(1, args.repeat))]
        peaks = sorted(r["rss_peak"] for r in runs)
        r = dict(runs[0], rss_peak=statistics.median(peaks))
        results[name] = r
        print(f"{name}: {len(paths)} file(s), {r['events']:,} events in chunks, {r['features']} features, "
              f"{(time.perf_counter() - start) / len(runs):.1f}s a pass; peak RSS median {r['rss_peak']:.0f} MB "
              f"of {len(runs)} runs ({', '.join(f'{p:.0f}' for p in peaks)}; after imports {r['rss_imports']:.0f} MB, "
              f"after specs {r['rss_after_specs']:.0f} MB)")
    one = results["1x"]["rss_peak"]
    bound = 1.1 * one + 20
    print(f"\nbound: 1.1 * peak(1x) + 20 MB = {bound:.0f} MB (medians)")
    for name in ("5x one file", "5x five files"):
        five = results[name]["rss_peak"]
        print(f"{name:14s}: peak {five:.0f} MB = {five / one:.2f} x 1x, data {results[name]['events'] / results['1x']['events']:.2f} x "
              f"-> {'within' if five <= bound else 'OVER'} the bound ({bound - five:+.0f} MB margin)")
    basket = basket_mb(files[0], PARAMS["identifier"])
    extra = (results["5x five files"]["rss_peak"] - results["5x one file"]["rss_peak"]) / 4
    print(f"\nfive files vs one file: {extra:+.1f} MB per extra file read at once; one decompressed basket per branch "
          f"read is {basket:.1f} MB in these files, and uproot holds the partly-used one of each file until the next "
          f"chunk (the alternative is decompressing every basket several times)")

if __name__ == "__main__":
    main()
