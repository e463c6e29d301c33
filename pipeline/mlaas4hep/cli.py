"""``mlaas4hep <verb>``: the command line.

Every user mistake is printed as one ``mlaas4hep: error: ...`` line (what, where, what would
be right) with a non-zero exit; tracebacks are only for bugs (or with ``--debug``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
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
    parser.add_argument("--dask", metavar="ADDRESS|local",
                        help="read and build chunks on a Dask cluster: a scheduler address (tcp://host:8786) or "
                             "'local' (worker processes on this machine); see README 'Scaling out'")


class _Parser(argparse.ArgumentParser):
    """Command-line mistakes as one ``mlaas4hep: error: ...`` line, like every other mistake."""

    def error(self, message: str):  # type: ignore[override]
        verb = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        where = f"mlaas4hep {verb} --help" if verb else "mlaas4hep --help"
        self.exit(EXIT_USER_ERROR, f"mlaas4hep: error: {message} (see {where})\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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

    p = verbs.add_parser("workflow", help="train model.py's model on the files (the original workflow.py)",
                         description="Specs, then training chunk by chunk (or epoch by epoch), a checkpoint after "
                                     "each, test metrics, and an artifact folder with the model and its feature "
                                     "contract. Events go to OUTPUT/events.jsonl.")
    _add_inputs(p)
    p.add_argument("--model", required=True, help="model.py defining def model(idim) (Keras or PyTorch)")
    p.add_argument("--specs", help="an existing specs file whose min/max and jdim to use")
    p.add_argument("--output", default="mlaas4hep-output", help="output folder (default: mlaas4hep-output)")
    p.add_argument("--fout", default="artifact", help="name of the artifact folder inside --output (default: artifact)")
    p.add_argument("--name", help="a name for the run (default: the output folder's name)")
    p.add_argument("--resume", action="store_true", help="continue a killed run from its last checkpoint")
    p.set_defaults(run=cmd_workflow)

    p = verbs.add_parser("predict", help="score ROOT files with a trained artifact, into a ROOT file",
                         description="Streams the inputs in chunks, applies the training preprocessing and the model, "
                                     "and writes a tree (named like the input tree) with the identifier branches and "
                                     "the score.")
    p.add_argument("--artifact", help="the artifact folder written by workflow (or --remote and --model)")
    p.add_argument("--remote", help="score through a model served by an MLaaS4HEP service instead: its URL "
                                    "(http://host:8080); the token comes from MLAAS4HEP_TOKEN or a token file")
    p.add_argument("--files", required=True, nargs="+", help="ROOT files (or a files.txt)")
    p.add_argument("--out", required=True, help="the ROOT file to write")
    p.add_argument("--branch", default="score", help="name of the score branch (default: score)")
    p.add_argument("--failed", choices=("sentinel", "omit"), default="sentinel",
                   help="events failing the preproc cuts: keep them with the sentinel score (default; the tree "
                        "is then a friend of the input) or omit them")
    p.add_argument("--sentinel", type=float, default=-1.0, help="score of events failing the cuts (default -1)")
    p.add_argument("--model", help="the model.py (only for PyTorch models without TorchScript); with --remote: the "
                                   "served model's name")
    p.add_argument("--version", type=int, help="with --remote: the served model's version (default: the latest)")
    p.set_defaults(run=cmd_predict)

    p = verbs.add_parser("evaluate", help="ROC, AUC, score distributions, KS and confusion of a trained artifact",
                         description="Scores ROOT files with the artifact and writes evaluation.json: ROC curve, AUC "
                                     "with a bootstrap uncertainty, score histograms per class (train vs held-out "
                                     "test), a KS test per class, the confusion matrix and an overtraining flag. "
                                     "Events of training files are split again exactly as in training.")
    p.add_argument("--artifact", required=True, help="the artifact folder written by workflow")
    p.add_argument("--files", required=True, nargs="+", help="ROOT files (or a files.txt)")
    p.add_argument("--labels", help="labels.txt or a comma list, one per file (default: the training labels "
                                    "of training files)")
    p.add_argument("--out", help="where to write the JSON (default: ARTIFACT/evaluation.json)")
    p.add_argument("--threshold", type=float, default=0.5, help="score threshold of the confusion matrix "
                                                                "(binary; default 0.5)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the AUC uncertainty "
                                                              "(default 200)")
    p.add_argument("--model", help="the model.py (only for PyTorch models without TorchScript)")
    p.set_defaults(run=cmd_evaluate)

    p = verbs.add_parser("serve", help="run the MLaaS4HEP service (jobs API and the original verbs, OIDC tokens)",
                         description="A FastAPI + uvicorn service over the JobManager: every request needs an OIDC "
                                     "bearer token of --issuer for --audience. Flags may also come from --config FILE "
                                     "or MLAAS4HEP_SERVE_* environment variables.")
    from .service.config import add_arguments as _serve_arguments

    _serve_arguments(p)
    p.set_defaults(run=cmd_serve)

    from .cli_remote import add_parsers as _remote_parsers

    _remote_parsers(verbs)

    p = verbs.add_parser("generate", help="write a seeded ttH-like signal/background dataset with inputs")
    p.add_argument("--out", default="demo-run", help="folder for the files (default: demo-run)")
    p.add_argument("--events", type=int, default=50_000, help="events per file (default: 50000)")
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(run=cmd_generate)

    p = verbs.add_parser("demo", help="generate the demo dataset, compute its specs, train on it and score it")
    p.add_argument("--out", default="demo-run", help="folder for the demo (default: demo-run)")
    p.add_argument("--events", type=int, default=100_000, help="events per file (default: 100000)")
    p.set_defaults(run=cmd_demo)
    return parser


class _WarningLines(logging.Handler):
    """The engine's warnings (``logging.getLogger("mlaas4hep")``) as ``mlaas4hep: warning: ...``
    lines on stderr; what was printed is remembered, so a training log event repeating it is
    not printed twice."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.printed: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.printed.add(message)
        print(f"mlaas4hep: {record.levelname.lower()}: {message}", file=sys.stderr)


_WARNINGS = _WarningLines()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logger = logging.getLogger("mlaas4hep")
    if _WARNINGS not in logger.handlers:
        logger.addHandler(_WARNINGS)
    from . import quiet

    quiet.install()  # TensorFlow's C++ start-up lines are not for the terminal
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
                   params=args.params, preproc=args.preproc, dask=getattr(args, "dask", None))


def _compute_specs(ds, refresh: bool = False, rows: bool = True) -> dict[str, Any]:
    from .console import SpecsProgress
    from .specs import window

    total = sum(window(f.num_entries, ds.params.nevts) for f in ds.files)
    progress = SpecsProgress(total)
    specs = ds.specs(progress=progress, refresh=refresh, rows=rows)
    if progress.done:
        progress.bar.close()
    elif ds.specs_from_cache:
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
    if specs.get("identifier"):
        out.append("event identifiers, not features: " + ", ".join(specs["identifier"]))
    if specs.get("skipped"):
        out.append("not used as features: " + "; ".join(f"{k} ({v})" for k, v in specs["skipped"].items()))
    return "\n\n".join(out)


def _check_output_file(path: str, option: str, example: str = "specs.json") -> None:
    """Refuse an output file that cannot be written before the long pass, not after it."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise MLaaS4HEPError(f"{option} names a folder, not a file", where=path,
                             hint=f"give a file name, e.g. {os.path.join(path, example)}")
    if os.path.exists(path) and not os.path.isfile(path):
        # a device or a pipe: writing goes to a temporary file that then replaces it
        raise MLaaS4HEPError(f"{option} names a device or special file, not a regular file", where=path)
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
        specs = _compute_specs(ds, refresh=args.refresh, rows=False)  # no chunks follow: keep no rows
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


class _TrainingProgress:
    """Draws training events in the terminal: a progress bar with events/s and ETA, the latest
    losses, and one line per finished chunk or epoch when not on a terminal."""

    def __init__(self) -> None:
        self.bar = None
        self.total_factor = 1
        self.last_metrics = ""

    def __call__(self, event: dict[str, Any]) -> None:
        from .console import ProgressBar

        kind = event["event"]
        if kind == "job_start":
            self.total_factor = event["params"]["epochs"] if event["mode"] == "standard" else 1
        elif kind == "specs_done":
            print(f"specs: {event['features']} features, {event['events']:,} events pass the cuts "
                  f"({event['used']:,} used, {event['chunks']} chunks)", file=sys.stderr)
            self.bar = ProgressBar(event["used"] * self.total_factor, "train")
        elif kind == "epoch":
            shown = [k for k in ("loss", "val_loss", "accuracy", "val_accuracy", "auc", "val_auc") if event.get(k) is not None]
            self.last_metrics = "  ".join(f"{k} {event[k]:.4f}" for k in shown)
        elif kind in ("chunk_done", "progress") and self.bar is not None:
            self.bar.update(event["events_processed"], self.last_metrics, rate=event.get("rate"))
        elif kind == "log" and event["message"] not in _WARNINGS.printed:
            print(f"{event['level']}: {event['message']}", file=sys.stderr)
        elif kind in ("finished", "failed") and self.bar is not None:
            if event.get("rate") is not None:
                self.bar.update(event.get("events_processed", self.bar.done), self.last_metrics, rate=event["rate"])
            self.bar.close(self.last_metrics)


def cmd_workflow(args: argparse.Namespace) -> int:
    from .console import table
    from .dataset import Dataset
    from .train import train

    if not args.labels:
        raise MLaaS4HEPError("training needs labels: give --labels labels.txt (one label per file) or a comma list")
    params = args.params
    if params is None and os.path.exists("params.json"):
        params = "params.json"  # the original workflow.py's default
    ds = Dataset(args.files, labels=args.labels, params=params, preproc=args.preproc, specs=args.specs,
                 dask=args.dask)
    with ds:
        artifact = train(ds, args.model, output=args.output, fout=args.fout, on_event=_TrainingProgress(),
                         resume=args.resume, name=args.name)
    metrics = artifact.metrics
    rows = [[k, f"{v:.4f}" if isinstance(v, float) else v] for k, v in metrics.items()]
    print(table(["test metric", "value"], rows, right=(1,)))
    print(f"\nartifact: {artifact.path}  ({artifact.framework}, {len(artifact.feature_names)} features)")
    print(f"events:   {Path(args.output) / 'events.jsonl'}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from .artifact import Artifact
    from .config import load_list
    from .console import ProgressBar

    if args.remote:
        return _predict_remote(args)
    if not args.artifact:
        raise MLaaS4HEPError("give --artifact FOLDER, or --remote URL with --model NAME")
    artifact = Artifact.load(args.artifact, model=args.model)
    files = [e.value for f in args.files for e in load_list(f, "files")]
    _check_output_file(args.out, "--out", "scores.root")
    from .read import RootFile, resolve_path

    total = 0
    for name in files:
        with RootFile(resolve_path(name), artifact.tree) as rfile:
            total += rfile.num_entries
    bar = ProgressBar(total, "predict")
    counts = artifact.score_files(files, args.out, branch=args.branch, failed=args.failed, sentinel=args.sentinel,
                                  progress=bar.update)
    bar.close()
    print(f"wrote {args.out}: tree {artifact.tree!r}, {counts['events']:,} events, {counts['scored']:,} scored, "
          f"{counts['failed_cuts']:,} failing the cuts ({'score ' + str(args.sentinel) if args.failed == 'sentinel' else 'omitted'})")
    return 0


def _predict_remote(args: argparse.Namespace, step: int = 2000) -> int:
    """``predict --remote URL --model NAME``: the ROOT files streamed through the service's raw-event
    route in blocks; the same friend tree as the local predict (identifiers and the score, the
    sentinel where an event fails the cuts)."""
    import numpy as np
    import uproot

    from .client import Client
    from .config import load_list
    from .console import ProgressBar
    from .read import RootFile, resolve_path

    if not args.model:
        raise MLaaS4HEPError("--remote needs --model NAME, the served model's name")
    if args.artifact:
        raise MLaaS4HEPError("give either --artifact (score here) or --remote (score on a service), not both")
    files = [e.value for f in args.files for e in load_list(f, "files")]
    _check_output_file(args.out, "--out")
    url = args.remote.rstrip("/")
    client = Client(url if url.endswith("/api/v1") else url + "/api/v1")  # the service's API, base URL or not
    meta = client.model(args.model, args.version)
    branches, ids, tree_name = list(meta["branches"]), list(meta.get("identifier") or []), meta.get("tree")
    if not branches or not tree_name:
        raise MLaaS4HEPError(f"model {args.model!r} has no feature contract (a TFaaS-style model): it scores "
                             "feature rows, not ROOT files", where="--model")
    n_classes = len(meta.get("classes") or [0, 1])
    names = [args.branch] if n_classes <= 2 else [f"{args.branch}_{c}" for c in range(n_classes)]
    read = list(dict.fromkeys(branches + ids))
    total = 0
    for name in files:
        with RootFile(resolve_path(name), tree_name) as rfile:
            total += rfile.num_entries
    bar = ProgressBar(total, "predict")
    counts = {"events": 0, "scored": 0, "failed_cuts": 0}
    out = Path(args.out)
    tmp = out.with_name(out.name + ".part")
    try:
        with uproot.recreate(tmp) as rout:
            tree = None
            for i, name in enumerate(files):
                with RootFile(resolve_path(name), tree_name) as rfile:
                    rfile.check_branches(read, "needed by the model")
                    for start, _, arrays in rfile.iterate(read, step=step):
                        scores = client.predict(args.model, {b: arrays[b] for b in branches}, meta["version"])
                        scores = scores.reshape(len(scores), -1)
                        passed = ~np.isnan(scores[:, 0])
                        keep = passed if args.failed == "omit" else np.ones(len(passed), bool)
                        columns = {k: np.asarray(arrays[k])[keep] for k in ids}
                        if args.failed == "omit":
                            columns["file"] = np.full(int(keep.sum()), i, np.int32)
                            columns["entry"] = (start + np.flatnonzero(passed)).astype(np.int64)
                        for c, branch in enumerate(names):
                            column = np.where(passed, scores[:, c], np.float32(args.sentinel)).astype(np.float32)
                            columns[branch] = column[keep]
                        if tree is None:
                            tree = rout.mktree(tree_name, {k: v.dtype for k, v in columns.items()},
                                               title=f"scores from {args.model} v{meta['version']}")
                        tree.extend(columns)
                        counts["events"] += len(passed)
                        counts["scored"] += int(passed.sum())
                        counts["failed_cuts"] += int((~passed).sum())
                        bar.update(counts["events"])
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    bar.close()
    print(f"wrote {args.out}: tree {tree_name!r}, {counts['events']:,} events, {counts['scored']:,} scored by "
          f"{args.model} v{meta['version']} at {args.remote}, {counts['failed_cuts']:,} failing the cuts")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .artifact import Artifact
    from .config import load_list
    from .console import table
    from .evaluate_artifact import evaluate_files
    from .events import json_safe
    from .specs import write_json_atomic

    if not 0.0 <= args.threshold <= 1.0:
        raise MLaaS4HEPError(f"--threshold must be from 0 to 1, got {args.threshold}")
    if not 0 <= args.bootstrap <= 100_000:
        raise MLaaS4HEPError(f"--bootstrap must be from 0 to 100,000, got {args.bootstrap:,}")
    artifact = Artifact.load(args.artifact, model=args.model)
    out = Path(args.out) if args.out else artifact.path / "evaluation.json"
    _check_output_file(str(out), "--out", "evaluation.json")
    files = [e.value for f in args.files for e in load_list(f, "files")]
    result = evaluate_files(artifact, files, args.labels, threshold=args.threshold, n_bootstrap=args.bootstrap)
    write_json_atomic(out, json_safe(result), indent=1)
    auc = result["auc"]
    rows = [["events (test / train)", f"{result['events']['test']:,} / {result['events']['train_sample']:,}"],
            ["AUC", f"{auc['value']:.4f}" + (f" ± {auc['std']:.4f}" if auc.get("std") is not None else "")]]
    for ks in result["ks"]:
        rows.append([f"KS train vs test, class {ks['name']}", f"D = {ks['statistic']:.4f}, p = {ks['p_value']:.3g}"])
    flag = result["overtraining"]
    rows.append(["overtraining", "YES" if flag["flag"] else "no sign"])
    print(table(["evaluation", "value"], rows))
    for reason in flag["reasons"]:
        print(f"  overtraining: {reason}")
    print(f"\nwrote {out}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .service.server import serve

    return serve(args)


#: Most events per file the generate and demo verbs write (a few GB on disk)
MAX_GENERATED = 50_000_000


def _check_generate(args: argparse.Namespace) -> None:
    if not 1 <= args.events <= MAX_GENERATED:
        raise MLaaS4HEPError(f"--events must be from 1 to {MAX_GENERATED:,} per file, got {args.events:,}")
    seed = getattr(args, "seed", 0)
    if not 0 <= seed < 2**63:
        raise MLaaS4HEPError(f"--seed must be from 0 to 2**63-1, got {seed}")


def cmd_generate(args: argparse.Namespace) -> int:
    from .datagen import write_demo_inputs

    _check_generate(args)
    _make_folder(args.out, "--out")
    paths = write_demo_inputs(args.out, n_events=args.events, seed=args.seed)
    for name, path in paths.items():
        print(f"{name:16s} {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .datagen import write_demo_inputs

    _check_generate(args)
    out = _make_folder(args.out, "--out")
    print(f"== generating the ttH-like demo dataset in {out}/ ({args.events:,} events per file)")
    paths = write_demo_inputs(out, n_events=args.events)
    inputs = dict(files=str(paths["files.txt"]), labels=str(paths["labels.txt"]), params=str(paths["params.json"]),
                  preproc=str(paths["preproc.json"]))
    print("== specs (preproc: the paper's Figure 4)")
    cmd_specs(argparse.Namespace(**inputs, fout=str(out / "specs.json"), refresh=False))
    print("\n== training the demo model.py (Keras), chunk by chunk")
    cmd_workflow(argparse.Namespace(**inputs, model=str(paths["model.py"]), specs=None, output=str(out / "run"),
                                    fout="artifact", name="demo", resume=False))
    print("\n== scoring the signal file with the trained model")
    cmd_predict(argparse.Namespace(artifact=str(out / "run" / "artifact"), files=[str(paths["signal.root"])],
                                   out=str(out / "signal-scores.root"), branch="score", failed="sentinel",
                                   sentinel=-1.0, model=None))
    print(f"\nDone. Everything is in {out}/: the inputs, specs.json, run/ (events.jsonl, checkpoint, artifact) "
          f"and signal-scores.root.")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
