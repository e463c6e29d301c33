"""The ``%mlaas4hep`` IPython magic: train, watch and manage MLaaS4HEP jobs from a notebook.

Load it with ``%load_ext mlaas4hep_lab``, then::

    job = %mlaas4hep train --files sig.root,bkg.root --labels 1,0 --model model.py --params params.json
    %mlaas4hep jobs                          # id, name, status, progress, events/s, last loss, age
    %mlaas4hep status {job}                  # status, progress, metrics, error
    %mlaas4hep logs {job} --tail 20
    %mlaas4hep cancel {job}
    %mlaas4hep compare {a} {b} {c}           # curves and ROC overlaid, params and metrics side by side
    %mlaas4hep specs --files files.txt --labels labels.txt --preproc preproc.json
    %mlaas4hep --help                        # and %mlaas4hep <verb> --help

    %%mlaas4hep train --files files.txt --labels labels.txt --wait
    from torch import nn                     # the cell body is model.py
    def model(idim):
        return nn.Sequential(nn.Linear(idim, 16), nn.ReLU(), nn.Linear(16, 1))

``--files``/``--labels`` take a files.txt/labels.txt or a comma list; the files are paths where
the jobs run. For ``--remote``, files that exist here (and ``--model``) are uploaded to the
service first; ``root://`` and ``https://`` names, and names of files already on the service
(``uploads/<id>/...``), are sent as they are. ``--params``, ``--preproc`` and ``--specs`` are
local JSON files, checked here and sent as their content; so is ``--model``. ``$var`` and
``{expr}`` are expanded as in every line magic.

**Where jobs run.** Without ``--remote``: ``mlaas4hep.client.Client()``, i.e. this Jupyter server
(``MLAAS4HEP_LAB_URL``) or, in a plain IPython, an in-process job manager under
``$MLAAS4HEP_JOB_ROOT``, which lives as long as this Python session (it starts queued jobs; the
jobs themselves outlive it). ``--remote URL`` (a ``mlaas4hep serve``; ``/api/v1`` is added) or
``--remote NAME``, a name in ``MLAAS4HEP_REMOTES`` (a JSON object ``{"name": "https://..."}``, or
``{"name": {"url": ..., "token": ...}}``; on JupyterLab also ``c.MLaaS4HEPLab.remotes``). The
token: ``--token``, else the remote's own, else the user's (``mlaas4hep_lab.hub.access_token``:
``MLAAS4HEP_TOKEN``, a token file, or JupyterHub's auth_state). This server's kernel secret is
never sent to another URL.

**Display.** In a Jupyter kernel (a widget frontend), ``train`` and ``status`` show the
``mlaas4hep_lab.widgets.TrainingMonitor`` of the job; elsewhere they print text. ``train --wait``
blocks until the job ends (in text, with a progress line), then prints the status and the test
metrics; Ctrl-C stops waiting, not the job.

**Return value.** ``train`` returns the job id (a ``str``), so ``job = %mlaas4hep train ...``
works (an assignment echoes nothing); a bare ``%mlaas4hep train ...;`` (trailing ``;``) is not
echoed and returns None, as IPython silences such magics. Other verbs return None.

**Mistakes** (bad flags, missing or invalid files, unknown jobs, unreachable servers) print one
``mlaas4hep: error: ...`` line and return None; they never raise into the notebook.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class

try:  # IPython >= 8.9: a trailing ';' silences the echo of the return value
    from IPython.core.magic import output_can_be_silenced
except ImportError:  # pragma: no cover
    def output_can_be_silenced(fn):
        return fn

from mlaas4hep.client import close_shared_clients, resolve_remote, shared_client
from mlaas4hep.console import SpecsProgress
from mlaas4hep.errors import ConfigError, MLaaS4HEPError



class _Stop(Exception):
    """argparse wanted to exit (help printed, or a usage error): return from the magic."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # never sys.exit() the kernel
        print(f"mlaas4hep: error: {message}\n{self.format_usage().rstrip()}", file=sys.stderr)
        raise _Stop

    def exit(self, status: int = 0, message: str | None = None) -> None:
        if message:
            print(message.rstrip(), file=sys.stderr)
        raise _Stop


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="%mlaas4hep", description="Train MLaaS4HEP models as jobs and follow them.",
                     epilog="%mlaas4hep <verb> --help shows a verb's options. In a %%mlaas4hep train cell, "
                            "the cell body is model.py.")
    verbs = parser.add_subparsers(dest="verb", metavar="<verb>", parser_class=_Parser)

    def remote(p: argparse.ArgumentParser) -> None:
        p.add_argument("--remote", metavar="NAME|URL",
                       help="a server URL, or a name in MLAAS4HEP_REMOTES (default: this Jupyter server, "
                            "else in-process jobs)")
        p.add_argument("--token", help="the bearer token for --remote")

    p = verbs.add_parser("train", help="submit a training job (the model: --model or the cell body)")
    p.add_argument("--files", required=True, help="files.txt or a comma list of ROOT files (paths where jobs run)")
    p.add_argument("--labels", required=True, help="labels.txt or a comma list, one label per file")
    p.add_argument("--model", help="model.py (default: the cell body of %%%%mlaas4hep train)")
    p.add_argument("--params", help="params.json")
    p.add_argument("--preproc", help="preproc.json")
    p.add_argument("--specs", help="a specs JSON file whose min/max and jdim to use")
    p.add_argument("--name", help="a name for the job (default: the model file's name)")
    p.add_argument("--kernel", help="the kernelspec whose Python runs the job")
    p.add_argument("--threads", type=int, help="CPU threads for the job")
    p.add_argument("--no-gpu", action="store_true", help="hide the GPUs from the job")
    p.add_argument("--timeout", type=float, metavar="S", help="cancel the job after S seconds")
    p.add_argument("--wait", action="store_true", help="block until the job ends, then show its test metrics")
    remote(p)
    p = verbs.add_parser("jobs", help="list the jobs")
    remote(p)
    for verb, text in (("status", "a job's status, progress, metrics and error"), ("cancel", "stop a job")):
        p = verbs.add_parser(verb, help=text)
        p.add_argument("id", help="the job id")
        remote(p)
    p = verbs.add_parser("compare", help="compare runs: curves and ROC overlaid, params and metrics side by side")
    p.add_argument("ids", nargs="+", metavar="ID", help="two or more job ids")
    p.add_argument("--log", action="store_true", help="the ROC with 1 / background efficiency on a log scale")
    remote(p)
    p = verbs.add_parser("logs", help="print a job's log")
    p.add_argument("id", help="the job id")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    remote(p)
    p = verbs.add_parser("specs", help="compute the specs here and print their summary")
    p.add_argument("--files", required=True, help="files.txt or a comma list of ROOT files")
    p.add_argument("--labels", help="labels.txt or a comma list")
    p.add_argument("--params", help="params.json")
    p.add_argument("--preproc", help="preproc.json")
    return parser


@magics_class
class MLaaS4HEPMagics(Magics):
    @output_can_be_silenced
    @line_cell_magic
    def mlaas4hep(self, line: str, cell: str | None = None) -> str | None:
        """%mlaas4hep <verb> ...: MLaaS4HEP jobs (%mlaas4hep --help for the verbs)."""
        line = line.strip()
        if line.endswith(";"):
            line = line[:-1]
        parser = build_parser()
        try:
            argv = shlex.split(line)
        except ValueError as err:  # an unclosed quote, a trailing backslash
            print(f"mlaas4hep: error: cannot split the line: {err}", file=sys.stderr)
            return None
        try:
            if not argv:
                parser.print_help()
                return None
            args = parser.parse_args(argv)
            if cell is not None and args.verb != "train":
                raise ConfigError(f"only train takes a cell body (the model), not {args.verb}",
                                  hint="use %mlaas4hep (one %) for the other verbs")
            return getattr(self, "_" + args.verb)(args, cell)
        except _Stop:
            return None
        except MLaaS4HEPError as err:  # client.ServerError included
            print(f"mlaas4hep: error: {err}", file=sys.stderr)
            return None

    # -- verbs --------------------------------------------------------------------------------

    def _train(self, args: argparse.Namespace, cell: str | None) -> str:
        from mlaas4hep.config import load_list, load_params, load_preproc

        body = cell if cell is not None and cell.strip() else None
        if args.model and body:
            raise ConfigError("give the model either with --model or as the cell body, not both")
        if not args.model and not body:
            raise ConfigError("no model: give --model model.py, or use %%mlaas4hep train with model.py as the "
                              "cell body")
        request: dict[str, Any] = {
            "files": [e.local_path() for e in load_list(args.files, "files")],
            "labels": [e.value for e in load_list(args.labels, "labels")],
            "name": args.name or (Path(args.model).stem if args.model else None), "kernel": args.kernel,
            "resources": {"threads": args.threads, "gpu": not args.no_gpu, "timeout": args.timeout}}
        if args.params:
            load_params(args.params)  # checks it (naming the file and key); the raw dict is sent
            request["params"] = json.loads(_read_text(args.params, "params"))
        if args.preproc:
            load_preproc(args.preproc)
            request["preproc"] = json.loads(_read_text(args.preproc, "preproc"))
        if args.specs:
            from mlaas4hep.dataset import _load_specs

            request["specs"] = _load_specs(args.specs)
        request["model"] = body if body else _read_text(args.model, "model")
        client = _client(args)
        job = client.submit(request)
        widget = _has_frontend(self.shell)
        if widget:
            self._monitor(job.id, client)
        else:
            print(f"job {job.id} ({job.name}): {job.status}")
        if not args.wait:
            if not widget:
                print(f"follow it with %mlaas4hep status {job.id}, logs {job.id} or cancel {job.id}")
            return job.id
        try:
            info = client.follow(job.id, on_event=None if widget else _TextProgress())
        except KeyboardInterrupt:
            print(f"stopped waiting; job {job.id} goes on (%mlaas4hep cancel {job.id} stops it)")
            return job.id
        _print_outcome(info)
        return job.id

    def _jobs(self, args: argparse.Namespace, cell: str | None) -> None:
        from mlaas4hep.console import human_rate, human_time, table

        now = time.time()
        rows = []
        for j in _client(args).jobs():
            p = j.progress
            loss = j.metrics.get("loss")
            rows.append([j.id, j.name, j.status, f"{100 * p.events_processed / p.events_total:.0f}%"
                         if p.events_total else "-", human_rate(p.rate).strip() if p.rate else "-",
                         f"{loss:.4f}" if isinstance(loss, (int, float)) else "-",
                         human_time(now - j.created) + " ago"])
        if not rows:
            print("no jobs")
            return
        print(table(["id", "name", "status", "progress", "events/s", "last loss", "created"], rows,
                    right=(3, 4, 5)))

    def _status(self, args: argparse.Namespace, cell: str | None) -> None:
        from mlaas4hep.console import human_rate, human_time, table

        client = _client(args)
        j = client.job(args.id)
        if _has_frontend(self.shell):
            self._monitor(j.id, client)
            return
        print(f"job {j.id} ({j.name}): {j.status}" + (f", kernel {j.kernel}" if j.kernel else ""))
        p = j.progress
        if p.events_total:
            where = "".join(f", {k} {v}" for k, v in (("chunk", p.chunk), ("epoch", p.epoch)) if v is not None)
            print(f"progress: {100 * p.events_processed / p.events_total:.0f}% ({p.events_processed:,}/"
                  f"{p.events_total:,} events, {human_rate(p.rate)}events/s{where})")
        if j.started:
            end = j.finished or time.time()
            print(f"{'ran' if j.finished else 'running'} for {human_time(end - j.started)}")
        if j.metrics:
            rows = [[k, f"{v:.4f}" if isinstance(v, float) else v] for k, v in j.metrics.items()
                    if k not in ("chunk", "epoch", "step")]
            print(table(["metric", "value"], rows, right=(1,)))
        if j.error:
            print(f"error: {j.error}")

    def _compare(self, args: argparse.Namespace, cell: str | None) -> None:
        from .compare import compare_html, compare_text, job_summary

        if len(args.ids) < 2:
            raise ConfigError("compare needs two or more job ids", hint="%mlaas4hep jobs lists them")
        if len(set(args.ids)) != len(args.ids):
            raise ConfigError("a job id is given twice: " + ", ".join(sorted({i for i in args.ids
                                                                                if args.ids.count(i) > 1})))
        client = _client(args)
        runs = [job_summary(client, job_id) for job_id in args.ids]
        if _has_frontend(self.shell):
            from IPython.display import HTML, display

            display(HTML(compare_html(runs, log=args.log)))
        else:
            print(compare_text(runs))

    def _logs(self, args: argparse.Namespace, cell: str | None) -> None:
        client = _client(args)
        parts, offset = [], 0
        while True:
            page = client.logs(args.id, offset)
            parts.append(page.text)
            if not page.text or page.offset >= page.size:
                break
            offset = page.offset
        text = "".join(parts)
        if args.tail is not None:
            text = "\n".join(text.splitlines()[-args.tail:]) if args.tail > 0 else ""
        print(text.rstrip("\n") if text.strip() else f"(job {args.id} has no log yet)")

    def _cancel(self, args: argparse.Namespace, cell: str | None) -> None:
        j = _client(args).cancel(args.id)
        print(f"job {j.id} ({j.name}): {j.status}")

    def _specs(self, args: argparse.Namespace, cell: str | None) -> None:
        from mlaas4hep.cli import specs_summary
        from mlaas4hep.dataset import Dataset
        from mlaas4hep.specs import window

        with Dataset(args.files, labels=args.labels, params=args.params, preproc=args.preproc) as ds:
            total = sum(window(f.num_entries, ds.params.nevts) for f in ds.files)
            progress = SpecsProgress(total, stream=sys.stdout)
            specs = ds.specs(progress=progress, rows=False)  # no chunks follow: keep no rows
            if progress.done:
                progress.bar.close()
            print(specs_summary(specs, ds.labels.values if ds.labels else None))

    def _monitor(self, job_id: str, client: Any) -> None:
        from IPython.display import display

        from .widgets import TrainingMonitor  # only with a widget frontend

        display(TrainingMonitor(job_id=job_id, client=client))


# -- helpers ----------------------------------------------------------------------------------


def _has_frontend(shell: Any) -> bool:
    """A Jupyter (ipykernel) kernel, where widgets show; not a terminal IPython."""
    return type(shell).__name__ == "ZMQInteractiveShell" or ("ipykernel" in sys.modules and hasattr(shell, "kernel"))


def _client(args: argparse.Namespace) -> Any:
    """The session's Client for --remote/--token (made once, so local jobs keep being scheduled)."""

    url, token = None, args.token
    if args.remote:
        url, token = resolve_remote(args.remote, token)
    lab = os.environ.get("MLAAS4HEP_LAB_URL")
    if url is None and lab:
        url, token = lab, token or os.environ.get("MLAAS4HEP_LAB_TOKEN")
    return shared_client(url, token)  # shared with the panels; the lab's secret only goes to the lab


def close_clients() -> None:
    """Close the session's clients (tests; a kernel's exit does this anyway)."""
    close_shared_clients()


def _read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found", where=path) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read the {what} file: {err}", where=path) from None


class _TextProgress:
    """A job's events as text on stdout: the specs line, a progress line, the latest losses."""

    def __init__(self) -> None:
        self.bar = None
        self.factor = 1
        self.metrics = ""

    def __call__(self, event: dict[str, Any]) -> None:
        from mlaas4hep.console import ProgressBar

        kind = event.get("event")
        if kind == "job_start":
            self.factor = event["params"]["epochs"] if event.get("mode") == "standard" else 1
        elif kind == "specs_done":
            print(f"specs: {event['features']} features, {event['events']:,} events pass the cuts "
                  f"({event['used']:,} used, {event['chunks']} chunks)")
            self.bar = ProgressBar(event["used"] * self.factor, "train", stream=sys.stdout)
        elif kind == "epoch":
            shown = [k for k in ("loss", "val_loss", "accuracy", "val_accuracy", "auc", "val_auc")
                     if isinstance(event.get(k), (int, float))]
            self.metrics = "  ".join(f"{k} {event[k]:.4f}" for k in shown)
        elif kind in ("chunk_done", "progress") and self.bar is not None:
            self.bar.update(event["events_processed"], self.metrics, rate=event.get("rate"))
        elif kind == "log":
            print(f"{event.get('level')}: {event.get('message')}")
        elif kind in ("finished", "failed") and self.bar is not None:
            if event.get("rate") is not None:
                self.bar.update(event.get("events_processed", self.bar.done), self.metrics, rate=event["rate"])
            self.bar.close(self.metrics)


def _print_outcome(info: Any) -> None:
    from mlaas4hep.console import human_time, table

    took = f" in {human_time(info.finished - info.started)}" if info.finished and info.started else ""
    print(f"job {info.id} ({info.name}): {info.status}{took}")
    test = {k[len("test_"):]: v for k, v in info.metrics.items() if k.startswith("test_")}
    if test:
        print(table(["test metric", "value"], [[k, f"{v:.4f}" if isinstance(v, float) else v]
                                               for k, v in test.items()], right=(1,)))
    if info.error:
        print(f"error: {info.error}")
