"""The process of one job: ``python -m mlaas4hep.jobs.runner JOB_FOLDER``.

It reads ``request.json`` and the copied inputs, trains with events into ``events.jsonl`` and
the artifact into ``artifact/``, and ends by writing ``status.json`` (``succeeded`` or
``failed`` with the message), which tells any manager, even one started after this process,
how the job ended. stdout and stderr go to ``log.txt`` (the manager opens it).
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
    tmp = folder / "status.json.part"
    tmp.write_text(json.dumps({**status, "time": time.time()}))
    os.replace(tmp, folder / "status.json")


def run(folder: Path) -> int:
    request = json.loads((folder / "request.json").read_text())
    apply_resources(request.get("resources") or {})
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
            artifact = train(ds, inputs / "model.py", output=folder, fout="artifact", name=request.get("name"))
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
