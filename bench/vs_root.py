"""``Dataset`` vs CERN ROOT's ``ROOT.Experimental.ML.RDataLoader`` on a file ROOT wrote itself.

    python bench/vs_root.py [--rounds 3] [--events 1000000]

Needs ``root`` (``pip install root``, in the ``bench`` extra); without it, says so and stops.
The file (written once with ``RDataFrame.Snapshot``, seeded): 12 flat float columns ``f0`` ...
``f11`` and 5 ``RVec<float>`` columns ``v0`` ... ``v4`` of one collection of Poisson(6) elements
capped at 20. Both loaders do the same work: a new column ``ht = f10 + f11`` (``f11`` then left
out), three cuts (``f2 > -1``, ``f3 < 1.5``, at least one ``v0 > 10``), the vectors padded to 20:
112 float32 columns. Our ``Dataset`` also min/max-normalises every column and shuffles each
10k-event chunk; RDataLoader (``as_numpy()``, batches of 1024, shuffled) does not normalise.

Each round runs each loader in a fresh process, alternating: the first epoch (for ROOT: building
the RDataFrame and the loader, JIT included, and every batch; for us: the uncached specs pass
and every chunk), a later epoch (ROOT: every batch again; us: every chunk again, with
``cache: true``), and the process's peak RSS. Medians of the rounds. Prints figures; asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from common import DATA, PEAK_MB, machine

WRITE = r"""
import sys, ROOT
n, path = int(sys.argv[1]), sys.argv[2]
ROOT.gRandom.SetSeed(12345)
df = ROOT.RDataFrame(n).Define("nObj", "(int)std::min(20, (int)gRandom->Poisson(6))")
for i in range(12):
    df = df.Define(f"f{i}", f"(float)gRandom->Gaus({i % 3}, 1.0)")
for i in range(5):
    df = df.Define(f"v{i}", "ROOT::RVecF v(nObj); for (auto &x : v) x = gRandom->Exp(30); return v;")
df.Snapshot("Events", path, [f"f{i}" for i in range(12)] + [f"v{i}" for i in range(5)])
"""

ROOT_CHILD = PEAK_MB + r"""
import json, resource, sys, time
import warnings; warnings.simplefilter("ignore")
import ROOT
path = sys.argv[1]
start = time.perf_counter()
df = (ROOT.RDataFrame("Events", path).Define("ht", "f10 + f11")
      .Filter("f2 > -1").Filter("f3 < 1.5").Filter("Sum(v0 > 10) >= 1"))
columns = [f"f{i}" for i in range(11)] + ["ht"] + [f"v{i}" for i in range(5)]
loader = ROOT.Experimental.ML.RDataLoader(df, batch_size=1024, columns=columns,
                                          max_vec_sizes={f"v{i}": 20 for i in range(5)}, shuffle=True,
                                          drop_remainder=False, set_seed=1)
times, rows, width = [], 0, 0
for epoch in range(2):
    rows = 0
    for batch in loader.as_numpy():
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        rows += len(x)
        width = x.shape[1]
    times.append(time.perf_counter() - start)
    start = time.perf_counter()
print(json.dumps({"first": times[0], "later": times[1], "rows": rows, "columns": width,
                  "rss": peak_mb()}))
"""

OURS_CHILD = PEAK_MB + r"""
import json, resource, shutil, sys, tempfile, time
import mlaas4hep
path = sys.argv[1]
cache = tempfile.mkdtemp(prefix="mlaas4hep-vsroot-")
start = time.perf_counter()
ds = mlaas4hep.Dataset([path], params={"chunk_size": 10000, "cache": True, "specs_cache": False, "seed": 1,
                                       "cache_dir": cache},
                       preproc={"new_branch": {"ht": {"def": "f10 + f11", "type": "flat", "keys_to_remove": ["f11"]}},
                                "flat_cut": {"f2": {"cut": "f2 > -1"}, "f3": {"cut": "f3 < 1.5"}},
                                "jagged_cut": {"v0": {"cut": ["v0 > 10", "any"]}}})
ds.specs()
times, rows, width = [], 0, 0
for epoch in range(2):
    rows = 0
    for X, _ in ds.chunks():
        rows += len(X)
        width = X.shape[1]
    times.append(time.perf_counter() - start)
    start = time.perf_counter()
print(json.dumps({"first": times[0], "later": times[1], "rows": rows, "columns": width,
                  "rss": peak_mb()}))
ds.close()
shutil.rmtree(cache, ignore_errors=True)  # the row store kept with cache: true
"""


def child(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"a child process failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    probe = subprocess.run([sys.executable, "-c", "import warnings; warnings.simplefilter('ignore'); import ROOT; "
                            "print(ROOT.gROOT.GetVersion()); ROOT.Experimental.ML.RDataLoader"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        print("skipped: CERN ROOT with ROOT.Experimental.ML.RDataLoader is not installed "
              "(pip install root, or pip install 'mlaas4hep-lab[bench]')")
        return
    version = probe.stdout.strip().splitlines()[-1]
    path = DATA / f"vs_root-{args.events // 1000}k.root"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        print(f"writing {path} with ROOT {version} (RDataFrame Snapshot, {args.events:,} events) ...", flush=True)
        subprocess.run([sys.executable, "-c", WRITE, str(args.events), str(path)], check=True, capture_output=True)
        print(f"  done in {time.perf_counter() - start:.1f}s, {path.stat().st_size / 1e6:.0f} MB", flush=True)
    print(f"machine: {machine()}; ROOT {version}; {path.name}; each loader in a fresh process per round, "
          f"alternating, median of {args.rounds}\n")
    results: dict[str, list[dict]] = {"RDataLoader": [], "Dataset": []}
    for r in range(args.rounds):
        for name, code in (("RDataLoader", ROOT_CHILD), ("Dataset", OURS_CHILD)):
            res = child(code, str(path))
            results[name].append(res)
            print(f"round {r + 1} {name:11s}: first epoch {res['first']:6.2f}s, later epoch {res['later']:6.2f}s, "
                  f"peak RSS {res['rss']:5.0f} MB, {res['rows']:,} rows x {res['columns']} columns", flush=True)
    med = {name: {k: statistics.median(x[k] for x in runs) for k in ("first", "later", "rss")}
           for name, runs in results.items()}
    root, ours = med["RDataLoader"], med["Dataset"]
    print(f"\n{'':12s} {'first epoch':>12s} {'later epoch':>12s} {'peak RSS':>9s}")
    for name in ("RDataLoader", "Dataset"):
        m = med[name]
        print(f"{name:12s} {m['first']:11.2f}s {m['later']:11.2f}s {m['rss']:7.0f}MB")
    print(f"\nDataset vs RDataLoader: first epoch {root['first'] / ours['first']:.2f}x faster (target >= 2x), "
          f"later epoch {root['later'] / ours['later']:.2f}x faster (target >= 3x), "
          f"peak RSS {ours['rss'] / root['rss']:.2f}x (target <= 0.5x)")


if __name__ == "__main__":
    main()
