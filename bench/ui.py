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
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
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
        cpu.append(explorer.last_update_cpu_ms)
    weighted = explorer.histogram.weighted
    reused = (explorer._plotter.frame_reused, explorer._plotter.drawings)
    state.files = []
    return {"first": first, "end_to_end": sorted(end_to_end), "work": sorted(work), "cpu": sorted(cpu),
            "weighted": weighted,
            "reused": reused}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="sample events per file")
    parser.add_argument("--edits", type=int, default=15)
    args = parser.parse_args()
    files = [str(ensure_file("train-150k-sig.root", 150_000, seed=11, signal=True)),
             str(ensure_file("train-150k-bkg.root", 150_000, seed=11, signal=False))]
    base = measure(files, args.events, args.edits, {}, "plain", "none")
    hep = measure(files, args.events, args.edits, {"weight": {"expr": "weight * 0.5", "scale": [0.02, 1.3]}},
                  "CMS", "signal / background")
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


if __name__ == "__main__":
    main()
