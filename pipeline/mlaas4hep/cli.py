"""``mlaas4hep <verb>``: the command line.

Every user mistake is printed as one ``mlaas4hep: error: ...`` line (what, where, what would
be right) with a non-zero exit; tracebacks are only for bugs (or with ``--debug``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._version import __version__
from .errors import MLaaS4HEPError

EXIT_USER_ERROR = 2


def _add_inputs(parser: argparse.ArgumentParser, labels: bool = True) -> None:
    parser.add_argument("--files", required=True,
                        help="files.txt (one ROOT file per line, # comments) or a comma-separated list")
    if labels:
        parser.add_argument("--labels", help="labels.txt (one label per file) or a comma-separated list")
    parser.add_argument("--params", help="params.json (default: built-in defaults)")
    parser.add_argument("--preproc", help="preproc.json (new branches, flat and jagged cuts)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlaas4hep",
        description="MLaaS4HEP: machine learning on ROOT files of any size.",
    )
    parser.add_argument("--version", action="version", version=f"mlaas4hep {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    verbs = parser.add_subparsers(dest="verb", metavar="<verb>")
    verbs.required = True

    p = verbs.add_parser("specs", help="compute the specs (branch kinds, min/max, jdim, counts)",
                         description="One pass over the files: branch kinds, min/max of finite values, max jagged "
                                     "length, NaN counts, and events before and after the preproc cuts.")
    _add_inputs(p)
    p.add_argument("--fout", help="write the specs JSON here (default: only print the summary)")
    p.add_argument("--refresh", action="store_true", help="ignore the specs cache")
    p.set_defaults(run=cmd_specs)

    p = verbs.add_parser("branches", help="list the branches of a ROOT file and whether they can be features")
    p.add_argument("file", help="a ROOT file (local path, root:// or https:// URL)")
    p.add_argument("--tree", default="Events", help="tree name (default: Events)")
    p.set_defaults(run=cmd_branches)

    p = verbs.add_parser("stream", help="stream the training chunks and report shapes and throughput",
                         description="Read, preprocess, pad, normalise and mix all chunks, as training would.")
    _add_inputs(p)
    p.add_argument("--save", metavar="DIR", help="also save each chunk as DIR/chunk-NNNN.npz (X, y)")
    p.set_defaults(run=cmd_stream)

    p = verbs.add_parser("generate", help="write a seeded ttH-like signal/background dataset with inputs")
    p.add_argument("--out", default="demo-run", help="folder for the files (default: demo-run)")
    p.add_argument("--events", type=int, default=50_000, help="events per file (default: 50000)")
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(run=cmd_generate)

    p = verbs.add_parser("demo", help="generate the demo dataset and run the engine on it")
    p.add_argument("--out", default="demo-run", help="folder for the demo (default: demo-run)")
    p.add_argument("--events", type=int, default=50_000, help="events per file (default: 50000)")
    p.set_defaults(run=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except MLaaS4HEPError as err:
        if args.debug:
            raise
        print(f"mlaas4hep: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("mlaas4hep: interrupted", file=sys.stderr)
        return 130


# ---------------------------------------------------------------------------------------------


def _dataset(args: argparse.Namespace, labels: bool = True):
    from .dataset import Dataset

    return Dataset(args.files, labels=getattr(args, "labels", None) if labels else None,
                   params=args.params, preproc=args.preproc)


class _SpecsProgress:
    """Progress of the specs pass over all files, safe to call from the reading threads."""

    def __init__(self, total: int):
        from .console import ProgressBar

        self.bar = ProgressBar(total, "specs")
        self.done: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, path: str, entries: int) -> None:
        with self.lock:
            self.done[path] = self.done.get(path, 0) + entries
            self.bar.update(sum(self.done.values()))


def _compute_specs(ds, refresh: bool = False) -> dict[str, Any]:
    from .specs import window

    total = sum(window(f.num_entries, ds.params.nevts) for f in ds.files)
    progress = _SpecsProgress(total)
    specs = ds.specs(progress=progress, refresh=refresh)
    if progress.done:
        progress.bar.close()
    else:
        print("specs: from cache", file=sys.stderr)
    return specs


def specs_summary(specs: dict[str, Any], labels: Sequence[int] | None = None) -> str:
    from .console import table

    rows = []
    for name in specs["fkeys"] + specs["jkeys"]:
        kind = "jagged" if name in specs["jdim"] else "flat"
        rows.append([name, kind, specs["dtypes"].get(name, ""), specs["minv"][name], specs["maxv"][name],
                     specs["jdim"].get(name, ""), specs["nans"][name]])
    out = [table(["branch", "kind", "dtype", "min", "max", "jdim", "NaN/inf"], rows, right=(3, 4, 5, 6))]
    frows = []
    for i, (path, read) in enumerate(specs["events_read"]["per_file"].items()):
        sel = specs["events"]["per_file"][path]
        frows.append([os.path.basename(path) if len(path) > 60 else path,
                      "" if labels is None else labels[i], read, sel, f"{100 * sel / read:.1f}%" if read else "-"])
    frows.append(["total", "", specs["events_read"]["total"], specs["events"]["total"],
                  f"{100 * specs['events']['total'] / specs['events_read']['total']:.1f}%"
                  if specs["events_read"]["total"] else "-"])
    out.append(table(["file", "label", "read", "selected", "efficiency"], frows, right=(2, 3, 4)))
    if specs.get("skipped"):
        out.append("not used as features: " + "; ".join(f"{k} ({v})" for k, v in specs["skipped"].items()))
    return "\n\n".join(out)


def _check_output_file(path: str, option: str) -> None:
    """Refuse an output file that cannot be written before the long pass, not after it."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise MLaaS4HEPError(f"{option} names a folder, not a file", where=path,
                             hint=f"give a file name, e.g. {os.path.join(path, 'specs.json')}")
    if not os.path.isdir(folder):
        raise MLaaS4HEPError(f"cannot write {option}: folder {folder} does not exist", where=path,
                             hint="create the folder first or choose another path")


def _make_folder(path: str | os.PathLike, option: str) -> Path:
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        what = "it is a file, not a folder" if folder.is_file() else err.strerror
        raise MLaaS4HEPError(f"cannot create the {option} folder: {what}", where=str(path)) from None
    return folder


def cmd_specs(args: argparse.Namespace) -> int:
    from .specs import write_json_atomic

    if args.fout:
        _check_output_file(args.fout, "--fout")
    with _dataset(args) as ds:
        specs = _compute_specs(ds, refresh=args.refresh)
        print(specs_summary(specs, ds.labels.values if ds.labels else None))
        if args.fout:
            try:
                write_json_atomic(args.fout, {k: v for k, v in specs.items() if k != "cache_key"}, indent=2)
            except OSError as err:
                raise MLaaS4HEPError(f"cannot write the specs file: {err.strerror}", where=args.fout) from None
            print(f"\nwrote {args.fout}")
    return 0


def cmd_branches(args: argparse.Namespace) -> int:
    from .console import table
    from .read import RootFile, resolve_path

    with RootFile(resolve_path(args.file), args.tree) as rfile:
        rows = [[b.name, b.kind or "-", b.dtype, b.typename, b.reason] for b in rfile.branches.values()]
        print(f"{rfile.path}: tree {args.tree!r}, {rfile.num_entries:,} entries\n")
        print(table(["branch", "kind", "dtype", "ROOT type", "note"], rows))
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    import numpy as np

    from .console import ProgressBar, human_rate

    with _dataset(args) as ds:
        specs = _compute_specs(ds)
        plan = ds.plan()
        save = _make_folder(args.save, "--save") if args.save else None
        bar = ProgressBar(plan.total, "stream")
        start = time.perf_counter()
        done = 0
        shape = None
        for chunk in ds.iter_chunks():
            done += len(chunk)
            shape = chunk.X.shape
            if save:
                np.savez(save / f"chunk-{chunk.index:04d}.npz", X=chunk.X, y=chunk.y if chunk.y is not None else [])
            bar.update(done, f"chunk {chunk.index + 1}/{plan.n_chunks}")
        bar.close()
        elapsed = time.perf_counter() - start
        print(f"{plan.n_chunks} chunks, {done:,} events of {specs['events']['total']:,} selected, "
              f"{len(ds.feature_names)} features (last chunk {shape}), "
              f"{human_rate(done / elapsed if elapsed else 0)}events/s")
        clipped = {k: v for k, v in ds.clipped.items() if v}
        if clipped:
            print("jagged elements clipped at jdim: " + ", ".join(f"{k}: {v}" for k, v in clipped.items()))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .datagen import write_demo_inputs

    if args.events < 1:
        raise MLaaS4HEPError(f"--events must be at least 1, got {args.events}")
    _make_folder(args.out, "--out")
    paths = write_demo_inputs(args.out, n_events=args.events, seed=args.seed)
    for name, path in paths.items():
        print(f"{name:16s} {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .datagen import write_demo_inputs

    out = _make_folder(args.out, "--out")
    print(f"== generating the ttH-like demo dataset in {out}/ ({args.events:,} events per file)")
    paths = write_demo_inputs(out, n_events=args.events)
    ns = argparse.Namespace(files=str(paths["files.txt"]), labels=str(paths["labels.txt"]),
                            params=str(paths["params.json"]), preproc=str(paths["preproc.json"]),
                            fout=str(out / "specs.json"), refresh=False, save=None)
    print("== specs (preproc: the paper's Figure 4)")
    cmd_specs(ns)
    print("\n== streaming training chunks")
    cmd_stream(ns)
    print(f"\nDone. Inputs, specs.json and the preproc are in {out}/; try:\n"
          f"  mlaas4hep specs --files {paths['files.txt']} --labels {paths['labels.txt']} "
          f"--params {paths['params.json']} --preproc {paths['preproc.json']}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
