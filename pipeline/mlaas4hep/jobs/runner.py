"""The process of one job: ``python -m mlaas4hep.jobs.runner JOB_FOLDER``.

It reads ``request.json`` and the copied inputs, trains with events into ``events.jsonl`` and
the artifact into ``artifact/``, and ends by writing ``status.json`` (``succeeded`` or
``failed`` with the message), which tells any manager, even one started after this process,
how the job ended. stdout and stderr go to ``log.txt`` (the manager opens it), with a line per
chunk and per epoch.

Before anything else it writes ``pid.json`` (its pid and start time): a manager that stopped
between starting this process and recording it still finds the job. Files it writes are its
owner's only (umask 077).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path


def apply_resources(resources: dict) -> None:
    """Thread count and GPU visibility, set before numpy, TensorFlow or PyTorch start."""
    threads = resources.get("threads")
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                    "TF_NUM_INTEROP_THREADS"):
            os.environ[var] = str(threads)
    if resources.get("gpu") is False:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def write_status(folder: Path, **status) -> None:
    _write_json(folder / "status.json", {**status, "time": time.time()})


def record_self(folder: Path) -> None:
    """``pid.json``: this process, as :func:`mlaas4hep.jobs.process.alive` recognises it."""
    from mlaas4hep.jobs.process import start_time

    _write_json(folder / "pid.json", {"pid": os.getpid(), "start": start_time(os.getpid())})


def _write_json(path: Path, body: dict) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(body))
    os.replace(tmp, path)


def log_line(event: dict) -> None:
    """A line of the job's log for the events a reader of the log wants: one per epoch and per
    chunk, with loss and speed."""
    kind = event.get("event")
    if kind == "epoch":
        metrics = " ".join(f"{k} {v:.4g}" for k, v in event.items()
                           if k not in ("event", "seq", "time", "epoch", "chunk", "step") and isinstance(v, (int, float)))
        where = f"chunk {event['chunk']} " if event.get("chunk") is not None else ""
        print(f"{where}epoch {event.get('epoch')}: {metrics}", flush=True)
    elif kind == "chunk_done":
        print(f"chunk {event.get('chunk')} done: {event.get('events_processed')}/{event.get('events_total')} events, "
              f"{event.get('rate', 0):.0f} events/s", flush=True)
    elif kind == "specs_done":
        print(f"specs: {event.get('features')} features, {event.get('events')} events in "
              f"{event.get('chunks')} chunks", flush=True)
    elif kind == "finished":
        metrics = " ".join(f"{k} {v:.4g}" for k, v in (event.get("metrics") or {}).items()
                           if isinstance(v, (int, float)))
        print(f"finished in {event.get('seconds', 0):.1f} s: {metrics}", flush=True)


def run(folder: Path) -> int:
    os.umask(0o077)
    record_self(folder)
    request = json.loads((folder / "request.json").read_text())
    apply_resources(request.get("resources") or {})
    from mlaas4hep import quiet

    quiet.install()  # TensorFlow's C++ start-up noise stays out of the log
    print(f"mlaas4hep job {folder.name}: python {sys.executable}, pid {os.getpid()}", flush=True)

    from mlaas4hep.dataset import Dataset
    from mlaas4hep.errors import MLaaS4HEPError
    from mlaas4hep.train import train

    inputs = folder / "inputs"
    try:
        ds = Dataset(
            request["files"], labels=request.get("labels"), params=str(inputs / "params.json"),
            preproc=str(inputs / "preproc.json") if (inputs / "preproc.json").exists() else None,
            specs=str(inputs / "specs.json") if (inputs / "specs.json").exists() else None,
        )
        with ds:
            artifact = train(ds, inputs / "model.py", output=folder, fout="artifact", name=request.get("name"),
                             on_event=log_line)
        write_status(folder, status="succeeded", metrics=artifact.metrics)
        return 0
    except MLaaS4HEPError as err:
        print(f"error: {err}", flush=True)
        write_status(folder, status="failed", error=str(err))
        return 1
    except Exception as err:  # noqa: BLE001 - a bug or an environment problem: logged with its traceback
        traceback.print_exc()
        write_status(folder, status="failed", error=f"internal error: {type(err).__name__}: {err} (see the log)")
        return 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m mlaas4hep.jobs.runner JOB_FOLDER", file=sys.stderr)
        return 2
    return run(Path(argv[0]))


if __name__ == "__main__":
    sys.exit(main())
