"""A wide NanoAOD-like file (1,033 branches): the engine's first pass (specs + every chunk) next
to one ``uproot.iterate`` over the same branches, for 40 selected branches and for all of them.

    python bench/wide.py [--events 20000] [--repeat 3] [--chunk-size 10000] [--case both|selected|all]

Each case runs in its own process, uproot and the engine alternating; figures are the median of
``--repeat`` rounds: seconds, events per second, CPU seconds (all threads) and peak resident
memory (VmHWM, ``common.PEAK_MB``), with the engine / uproot ratios. Targets of issue 18:
selected branches, engine events/s >= 0.8x uproot's (with the first epoch reading ROOT once); all
branches, engine peak memory <= 1.5x uproot's. The engine's sources are byte-compiled
first, as uproot's and awkward's are (pip wrote their bytecode; see ``common.compile_sources``).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from common import DATA, PEAK_MB, compile_sources, machine

COLLECTIONS = ("Jet", "Muon", "Electron", "Tau", "Photon", "FatJet", "SubJet", "GenPart")
MEMBERS = 40  # per collection, plus its counter n<Collection>
N_FLAT = 1033 - len(COLLECTIONS) * (MEMBERS + 1)  # HLT bits and event-level numbers


def ensure_wide(n_events: int, seed: int = 1) -> str:
    """Generate (once) a tree of 8 collections x 40 members with counters, and flat branches:
    1,033 branches in all, NanoAOD's naming (nJet, Jet_pt, HLT_..., MET_...)."""
    import awkward as ak
    import numpy as np
    import uproot

    path = DATA / f"wide-{n_events}.root"
    if path.exists():
        return str(path)
    DATA.mkdir(exist_ok=True)
    start = time.perf_counter()
    print(f"generating {path} ({n_events:,} events, 1,033 branches) ...", flush=True)
    rng = np.random.default_rng(seed)
    arrays: dict = {}
    for c in COLLECTIONS:
        counts = rng.poisson(3, n_events)
        total = int(counts.sum())
        fields = {}
        for m in range(MEMBERS):
            kind = m % 4
            values = (rng.normal(50, 20, total).astype(np.float32) if kind < 2 else
                      rng.integers(-5, 1000, total).astype(np.int32) if kind == 2 else rng.random(total) < 0.5)
            fields[f"v{m:02d}"] = ak.unflatten(values, counts)
        arrays[c] = ak.zip(fields)
    for i in range(N_FLAT):
        kind = i % 3
        arrays[f"HLT_path{i:03d}" if kind == 0 else f"MET_x{i:03d}" if kind == 1 else f"PV_n{i:03d}"] = (
            rng.random(n_events) < 0.1 if kind == 0 else rng.normal(30, 10, n_events) if kind == 1
            else rng.integers(0, 60, n_events).astype(np.int32))
    with uproot.recreate(path) as out:
        tree = out.mktree("Events", {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in arrays.items()})
        step = 5000
        for a in range(0, n_events, step):
            tree.extend({k: v[a:a + step] for k, v in arrays.items()})
    with uproot.open(path) as f:
        n_branches = len(f["Events"].keys())
    print(f"  done in {time.perf_counter() - start:.1f}s, {path.stat().st_size / 1e6:.0f} MB, "
          f"{n_branches} branches", flush=True)
    return str(path)


CHILD = PEAK_MB + r"""
import json, resource, sys, time, tempfile
path, tool, names, chunk = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
start, cpu = time.perf_counter(), time.process_time()
n = 0
if tool == "engine":
    import mlaas4hep
    params = {"branch": "Events", "chunk_size": chunk, "specs_cache": False, "cache_dir": tempfile.mkdtemp()}
    if names:
        params["selected_branches"] = names
    ds = mlaas4hep.Dataset([path], params=params)
    ds.specs()
    for X, _ in ds.chunks():
        n += len(X)
    width = len(ds.feature_names)
else:
    import uproot
    for arrays in uproot.iterate(path + ":Events", names or None, step_size=chunk, library="ak"):
        n += len(arrays)
    width = len(names) if names else None
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu": cpu, "events": n, "peak_mb": peak_mb(),
                  "width": width}))
"""


def run(path: str, tool: str, names: list[str], chunk: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, path, tool, json.dumps(names), str(chunk)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def selected_branches(path: str) -> list[str]:
    """20 flat numbers and 20 members of two collections: what an analysis picks."""
    import uproot

    with uproot.open(path) as f:
        keys = f["Events"].keys()
    flat = [k for k in keys if k.startswith(("MET_x", "PV_n"))][:20]
    jagged = [k for k in keys if k.startswith(("Jet_v", "Muon_v"))][:20]
    return flat + jagged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--case", choices=("both", "selected", "all"), default="both")
    args = parser.parse_args()
    path = ensure_wide(args.events)
    print(f"machine: {machine()}; {args.events:,} events; chunk {args.chunk_size:,}; median of {args.repeat} "
          f"rounds, uproot and the engine alternating; {compile_sources()}; load average {os.getloadavg()[0]:.1f}")
    cases = {"40 selected branches": selected_branches(path), "all 1,033 branches": []}
    if args.case != "both":
        cases = dict([list(cases.items())[args.case == "all"]])
    print(f"{'case':24} {'tool':7} {'seconds':>8} {'kev/s':>8} {'CPU s':>6} {'peak MB':>8} {'features':>9}")
    for case, names in cases.items():
        runs: dict[str, list[dict]] = {"uproot": [], "engine": []}
        for _ in range(args.repeat):  # alternating, so that both see the same load
            for tool in runs:
                runs[tool].append(run(path, tool, names, args.chunk_size))
        results = {}
        for tool, done in runs.items():
            results[tool] = {k: statistics.median(r[k] for r in done) for k in ("seconds", "cpu", "peak_mb")}
            results[tool]["events"] = done[0]["events"]
            width = done[0]["width"]
            rate = results[tool]["events"] / results[tool]["seconds"] / 1e3
            print(f"{case:24} {tool:7} {results[tool]['seconds']:8.2f} {rate:8.1f} {results[tool]['cpu']:6.2f} "
                  f"{results[tool]['peak_mb']:8.0f} {width if width is not None else '':>9}")
        speed = results["uproot"]["seconds"] / results["engine"]["seconds"]
        cpu = results["uproot"]["cpu"] / results["engine"]["cpu"]
        memory = results["engine"]["peak_mb"] / results["uproot"]["peak_mb"]
        print(f"{case:24} engine/uproot: events/s {speed:.2f}x (per CPU second {cpu:.2f}x), peak memory {memory:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
