"""Time from a cut edit to the new histogram, on a 100k-event sample per file.

    python bench/ui.py [--events 100000] [--edits 15]

A PreprocBuilder and a BranchExplorer share one state, as in the Workbench. Each edit types a new
threshold into a cut field of the builder; the builder checks it and publishes the preproc; the
explorer (an edit after a quiet time waits 15 ms for the rest of its trait changes; quicker
edits fold into one update 0.1 s after the last) re-evaluates the preproc on the sample, counts
the histograms per label, draws the figure to PNG (the frame's pixels reused while limits and
labels stay) and rebuilds the cut flow. Measured: from setting the field to the new
image, end to end (debounce included), and the explorer's own work. Target: <= 300 ms.
Two setups in one run, side by side: the plainest plot (no weights, no experiment style, no lower
panel) as the baseline, and the physicist's (params weight with a per-file scale, √Σw² error
bars, CMS style, signal/background ratio panel, weighted cut flow with S/√B).
With ``--against REV`` (a git revision, e.g. the commit before a change) it also runs the second
setup on the code of REV and on this tree, each in a fresh process, alternating for ``--rounds``
rounds, and prints both side by side with their ratio.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import ensure_file, machine  # noqa: E402

from mlaas4hep_lab.widgets.builder import PreprocBuilder  # noqa: E402
from mlaas4hep_lab.widgets.explorer import BranchExplorer  # noqa: E402
from mlaas4hep_lab.widgets.state import WorkbenchState  # noqa: E402

PREPROC = {
    "new_branch": {"log_partonE": {"def": "log(partonE)", "type": "jagged", "cut": ["log_partonE > 5.7", "all"]}},
    "flat_cut": {"nLeptons": {"cut": "nLeptons <= 2"}, "HT": {"cut": "HT > 100"}},
    "jagged_cut": {"jetPt": {"cut": ["jetPt > 30", "any"]}},
}


def measure(files: list[str], events: int, edits: int, params: dict, style: str, lower: str) -> dict:
    state = WorkbenchState(files=files, labels=["signal", "background"], sample_size=events, preproc=PREPROC,
                           params=params)
    builder = PreprocBuilder(state)
    explorer = BranchExplorer(state, debounce=0.1)
    explorer.style.value, explorer.lower.value = style, lower
    start = time.perf_counter()
    while explorer.updates < 1:
        time.sleep(0.005)
    first = time.perf_counter() - start
    explorer.branch.value = "log_partonE"
    while explorer.histogram is None or explorer.histogram.branch != "log_partonE":
        time.sleep(0.005)
    while "partonPt" not in builder.branch_table.value:
        time.sleep(0.01)
    time.sleep(1.0)  # let the start-up updates settle: no timer pending when the clock starts
    ht = next(r for r in builder.flat_box.children if r.name == "HT")
    field = ht.cuts.children[0].children[1]
    end_to_end, work, cpu = [], [], []
    for i in range(edits):
        cut = f"HT > {100 + 10 * (i + 1)}"
        t0 = time.perf_counter()
        field.value = cut
        # done when the update for exactly this cut has drawn (the cut flow is set after the image)
        while not any(row["cut"] == cut for row in explorer.cutflow_rows):
            time.sleep(0.001)
        end_to_end.append((time.perf_counter() - t0) * 1000)
        work.append(explorer.last_update_ms)
        cpu.append(getattr(explorer, "last_update_cpu_ms", None))  # (None from older explorers)
    weighted = explorer.histogram.weighted
    plotter = explorer._plotter  # (older explorers count no frames: 0 of 0)
    reused = (getattr(plotter, "frame_reused", 0), getattr(plotter, "drawings", 0))
    state.files = []
    return {"first": first, "end_to_end": sorted(end_to_end), "work": sorted(work),
            "cpu": sorted(c for c in cpu if c is not None),
            "weighted": weighted,
            "reused": reused}


HEP_PARAMS = {"weight": {"expr": "weight * 0.5", "scale": [0.02, 1.3]}}


def child(files: list[str], events: int, edits: int) -> None:
    """The second setup on whatever code is first on the path, as one JSON line; the explorer
    thread's CPU time is taken around ``_update`` (older explorers do not record it)."""
    cpu: list[float] = []
    update = BranchExplorer._update

    def timed(self, options):
        start = time.thread_time()
        update(self, options)
        cpu.append((time.thread_time() - start) * 1000)

    BranchExplorer._update = timed
    run = measure(files, events, edits, HEP_PARAMS, "CMS", "signal / background")
    run["cpu"] = sorted(cpu[-edits:])
    print(json.dumps({k: run[k] for k in ("end_to_end", "work", "cpu")}))


def against(rev: str, files: list[str], events: int, edits: int, rounds: int) -> None:
    """REV's code and this tree's, alternating, each round a fresh process per side."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="ui-bench-") as tmp:
        archive = subprocess.run(["git", "-C", str(root), "archive", rev, "pipeline", "mlaas4hep_lab"],
                                 check=True, capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        sides = {rev: Path(tmp), "this tree": root}
        runs: dict[str, list[dict]] = {name: [] for name in sides}
        for r in range(rounds):
            for name, tree in sides.items():
                env = {**os.environ, "PYTHONPATH": f"{tree / 'pipeline'}{os.pathsep}{tree}"}
                load = os.getloadavg()[0]
                done = subprocess.run([sys.executable, __file__, "--child", "--events", str(events), "--edits",
                                       str(edits)], env=env, capture_output=True, text=True)
                if done.returncode:
                    sys.exit(f"the {name} run failed:\n{done.stderr[-3000:]}")
                runs[name].append({**json.loads(done.stdout.strip().splitlines()[-1]), "load": load})
    print(f"\n{rev} against this tree, weights+errors+CMS+ratio, {rounds} rounds alternating (median of each "
          "round's median):")
    for key, label in (("end_to_end", "edit -> new histogram (end to end)"), ("work", "explorer work"),
                       ("cpu", "  its CPU time")):
        medians = {name: statistics.median(statistics.median(r[key]) for r in rs) for name, rs in runs.items()}
        a, b = medians[rev], medians["this tree"]
        print(f"  {label:36s} {rev}: {a:6.0f} ms   this tree: {b:6.0f} ms   ratio {b / a:5.2f}x")
    loads = [r["load"] for rs in runs.values() for r in rs]
    print(f"  load average at the start of each process: {min(loads):.1f} to {max(loads):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="sample events per file")
    parser.add_argument("--edits", type=int, default=15)
    parser.add_argument("--against", metavar="REV", help="also compare with the code of this git revision")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of --against")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    files = [str(ensure_file("train-150k-sig.root", 150_000, seed=11, signal=True)),
             str(ensure_file("train-150k-bkg.root", 150_000, seed=11, signal=False))]
    if args.child:
        child(files, args.events, args.edits)
        return
    base = measure(files, args.events, args.edits, {}, "plain", "none")
    hep = measure(files, args.events, args.edits, HEP_PARAMS, "CMS", "signal / background")
    print(f"machine: {machine()}")
    print(f"sample: {args.events:,} events per file, 2 files; first preview (reading the sample) "
          f"{base['first']:.2f} s / {hep['first']:.2f} s")
    print(f"{args.edits} cut edits (HT threshold), histogram of log_partonE per label + cut flow:")
    print(f"  {'':36s} {'plain, unweighted':>26s}   {'weights+errors+CMS+ratio':>26s}   ratio (median)")
    for name, key in (("edit -> new histogram (end to end)", "end_to_end"),
                      ("explorer work (evaluate+fill+draw)", "work"),
                      ("  its CPU time (the explorer's thread)", "cpu")):
        cells = []
        for run in (base, hep):
            values = run[key]
            p90 = values[int(0.9 * (len(values) - 1))]
            cells.append(f"median {statistics.median(values):5.0f} p90 {p90:5.0f} ms")
        ratio = statistics.median(hep[key]) / statistics.median(base[key])
        print(f"  {name:36s} {cells[0]:>26s}   {cells[1]:>26s}   {ratio:5.2f}x")
    print(f"weighted histograms in the second setup: {hep['weighted']}; figure frame reused in "
          f"{base['reused'][0]} of {base['reused'][1]} / {hep['reused'][0]} of {hep['reused'][1]} drawings "
          "(the first drawings of a branch or a look draw it)")
    print("target: <= 300 ms end to end with weights and error bars on")
    if args.against:
        against(args.against, files, args.events, args.edits, args.rounds)


if __name__ == "__main__":
    main()
