"""Run the engine over every TTree of the real ROOT files in scikit-hep-testdata, as a new user
would (branch = the tree, no selection, no preproc), and classify each run:

  ok        specs and one full pass of chunks; event counts equal uproot's, every value in
            [0, 1], no two source branches folded into one feature
  refused   a clear refusal: one line of the project's error type naming the file and the tree
  traceback any other exception
  wrong     it ran, but the counts differ, a value is outside [0, 1], or branches collapsed
  hang      no answer within the time cap (the worker is killed and replaced)

Each tree runs in a worker process with a time cap. ``--json`` writes one record per tree;
the table of counts is printed at the end. tests/test_realfiles.py runs this script.

    python scripts/survey_testdata.py [--timeout 120] [--only issue403] [--json out.jsonl]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import traceback
from collections import Counter

STATUSES = ("ok", "refused", "traceback", "wrong", "hang")


def testdata_files() -> list[str]:
    import skhep_testdata

    folder = os.path.join(os.path.dirname(skhep_testdata.__file__), "data")
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".root"))


def trees_of(path: str) -> list[str]:
    """The TTrees in a file (paths inside it), found with uproot alone."""
    import uproot

    try:
        with uproot.open(path) as f:
            names = f.classnames(recursive=True)
    except Exception:  # noqa: BLE001 - a file uproot cannot list has no tree to run
        return []
    return sorted({k.rsplit(";", 1)[0] for k, c in names.items() if c in ("TTree", "TNtuple", "TNtupleD")})


def leaf_paths(path: str, tree: str) -> tuple[int, list[str]]:
    """uproot's own view: the number of entries and the full path of every leaf branch."""
    import uproot

    with uproot.open(path) as f:
        t = f[tree]
        leaves = [p for p, b in t.iteritems(recursive=True, full_paths=True) if not b.branches]
        return int(t.num_entries), leaves


def check_tree(path: str, tree: str) -> dict:
    """One run of the engine over one tree, classified."""
    import numpy as np

    import mlaas4hep
    from mlaas4hep.errors import MLaaS4HEPError

    base = os.path.basename(path)
    record = {"file": base, "tree": tree}
    try:
        entries, leaves = leaf_paths(path, tree)
    except Exception as err:  # noqa: BLE001 - uproot itself cannot read the tree
        entries, leaves = None, None
        record["uproot"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    record["entries"], record["leaves"] = entries, None if leaves is None else len(leaves)
    t0 = time.perf_counter()
    try:
        with mlaas4hep.Dataset([path], params={"branch": tree, "specs_cache": False, "chunk_size": 50_000}) as ds:
            listed = ds.branches()
            specs = ds.specs()
            names = ds.feature_names
            rows, bad = 0, []
            for X, _ in ds.chunks(shuffle=False):
                rows += len(X)
                if X.size:
                    out = ~(np.isfinite(X) & (X >= 0) & (X <= 1))
                    if out.any():
                        cols = np.flatnonzero(out.any(axis=0))
                        bad += [f"{names[c]}: {float(X[:, c].min())}..{float(X[:, c].max())}" for c in cols[:5]]
    except MLaaS4HEPError as err:
        text = str(err)
        record["seconds"] = round(time.perf_counter() - t0, 2)
        record["message"] = text
        problems = []
        if "\n" in text:
            problems.append("more than one line")
        if base not in text:
            problems.append("does not name the file")
        if tree not in text:
            problems.append("does not name the tree")
        record["status"] = "refused" if not problems else "wrong"
        if problems:
            record["why"] = "refusal " + ", ".join(problems)
        return record
    except Exception as err:  # noqa: BLE001 - a traceback is what this survey counts
        record["seconds"] = round(time.perf_counter() - t0, 2)
        record["status"] = "traceback"
        record["message"] = f"{type(err).__name__}: {err}"[:500]
        record["traceback"] = traceback.format_exc()[-3000:]
        return record
    record["seconds"] = round(time.perf_counter() - t0, 2)
    record["features"] = len(names)
    record["skipped"] = len(specs.get("skipped", {}))
    wrong = []
    if entries is not None and specs["events"]["total"] != entries:
        wrong.append(f"specs count {specs['events']['total']} events, uproot {entries}")
    if entries is not None and rows != entries:
        wrong.append(f"chunks gave {rows} rows, uproot counts {entries} entries")
    if bad:
        wrong.append("normalised values outside [0, 1]: " + "; ".join(bad))
    if leaves is not None and len(listed) != len(leaves):
        wrong.append(f"{len(leaves)} leaf branches in the tree but the engine lists {len(listed)} (collapsed by name)")
    features = list(specs["fkeys"]) + list(specs["jkeys"])
    if len(set(features)) != len(features):
        wrong.append("two features share one name")
    if wrong:
        record["status"] = "wrong"
        record["why"] = " | ".join(wrong)
    else:
        record["status"] = "ok"
    return record


def _worker(tasks, results) -> None:
    os.environ.setdefault("MLAAS4HEP_CACHE_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"), "mlaas4hep-survey"))
    while True:
        task = tasks.get()
        if task is None:
            return
        results.put(check_tree(*task))


class Worker:
    def __init__(self, ctx):
        self.ctx = ctx
        self.tasks, self.results = ctx.Queue(), ctx.Queue()
        self.proc = ctx.Process(target=_worker, args=(self.tasks, self.results), daemon=True)
        self.proc.start()

    def run(self, path: str, tree: str, timeout: float) -> dict:
        import queue

        self.tasks.put((path, tree))
        try:
            return self.results.get(timeout=timeout)
        except queue.Empty:
            return {"file": os.path.basename(path), "tree": tree, "status": "hang",
                    "message": f"no answer within {timeout:g} s"}

    def alive(self) -> bool:
        return self.proc.is_alive()

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.proc.kill()
        else:
            self.tasks.put(None)
        self.proc.join(10)


def survey(only: str = "", timeout: float = 120.0, log=None) -> list[dict]:
    ctx = mp.get_context("spawn")
    worker = Worker(ctx)
    records = []
    try:
        for path in testdata_files():
            if only and only not in os.path.basename(path):
                continue
            for tree in trees_of(path):
                record = worker.run(path, tree, timeout)
                if record["status"] == "hang" or not worker.alive():
                    if record["status"] != "hang":
                        record = {**record, "status": "traceback", "message": "worker process died"}
                    worker.stop(kill=True)
                    worker = Worker(ctx)
                records.append(record)
                if log:
                    line = f"{record['status']:9} {record['file']}:{record['tree']}"
                    if record.get("message") or record.get("why"):
                        line += "  " + (record.get("why") or record["message"]).splitlines()[0][:200]
                    print(line, file=log, flush=True)
    finally:
        worker.stop(kill=not worker.alive())
    return records


def table(records: list[dict]) -> str:
    counts = Counter(r["status"] for r in records)
    head = "| " + " | ".join(STATUSES) + " | trees |"
    rule = "|" + "---|" * (len(STATUSES) + 1)
    row = "| " + " | ".join(str(counts.get(s, 0)) for s in STATUSES) + f" | {len(records)} |"
    return "\n".join([head, rule, row])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per tree (default 120)")
    parser.add_argument("--only", default="", help="only files whose name contains this")
    parser.add_argument("--json", help="write one JSON record per tree to this file")
    parser.add_argument("--quiet", action="store_true", help="no line per tree")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    records = survey(args.only, args.timeout, None if args.quiet else sys.stdout)
    if args.json:
        with open(args.json, "w") as out:
            for r in records:
                out.write(json.dumps(r) + "\n")
    print(table(records))
    print(f"{len(records)} trees in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
