"""The JobManager: submit, watch, cancel and clean up training jobs. No Jupyter in here.

State lives in SQLite (``ROOT/jobs.sqlite``); each job has a folder ``ROOT/jobs/<id>/`` with
``request.json``, ``inputs/`` (model.py, params.json, preproc.json, specs.json), ``events.jsonl``,
``log.txt``, ``specs.json``, ``status.json``, ``pid.json`` and ``artifact/``; the root is created
0700, the job folders and the database are the owner's only. A queue with a concurrency limit
starts each job as its own process (``python -m mlaas4hep.jobs.runner``, with the interpreter of
the chosen kernelspec) in its own process group, detached: jobs outlive whoever started them. A
manager started later on the same folder re-attaches to the running ones and marks lost ones
failed. Several managers (threads, processes) may share a folder.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..config import load_labels, load_params, load_preproc
from ..errors import ConfigError, MLaaS4HEPError
from ..events import read_events
from ..read import is_remote
from . import process
from .executor import LocalExecutor
from .inputs import MODEL_SIZE_LIMIT, check_data_file, check_model_source, read_model_file
from .kernels import DEFAULT as DEFAULT_KERNEL, find_kernels
from .models import FINISHED, EventsPage, JobInfo, KernelInfo, LogsPage, Progress, WorkflowRequest
from .store import JobStore

LAUNCH_GRACE = 60.0  # a job claimed but without a process after this long was lost in a crash


class JobNotFound(MLaaS4HEPError):
    """No such job (or not one of this user's)."""


class JobStateError(MLaaS4HEPError):
    """The job is not in a state that allows this (deleting a running job, ...)."""


class JobManager:
    """Jobs under ``root``: at most ``concurrency`` run at once.

    ``owner``: the user jobs are submitted as by default. ``base_dir``: where relative file
    paths in requests are taken from. ``model_dirs``: the folders a ``model_path`` may name a
    file in (a server passes its own; default None: anywhere, as in-process use by the user
    alone needs); ``model_size_limit``: the largest model file read, in
    bytes. ``kernels``: a callable giving the kernelspecs (default:
    :func:`~mlaas4hep.jobs.kernels.find_kernels`). ``start=False`` does not start the scheduling
    thread (tests drive :meth:`tick` by hand). ``executor``: how a job's process is started and
    stopped (default :class:`~mlaas4hep.jobs.executor.LocalExecutor`; a
    :class:`~mlaas4hep.jobs.dask_executor.DaskExecutor` runs jobs on Dask workers).
    """

    def __init__(self, root: str | os.PathLike, concurrency: int = 1, *, owner: str | None = None,
                 base_dir: str | os.PathLike | None = None,
                 model_dirs: Sequence[str | os.PathLike] | None = None, model_size_limit: int = MODEL_SIZE_LIMIT,
                 kernels: Callable[[], dict[str, KernelInfo]] | None = None,
                 poll_interval: float = 0.5, cancel_grace: float = 5.0, start: bool = True,
                 executor: Any = None):
        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
        self.root = Path(root).expanduser().resolve()
        self.jobs_dir = self.root / "jobs"
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.jobs_dir.mkdir(mode=0o700, exist_ok=True)
        try:
            os.chmod(self.jobs_dir, 0o700)  # ours alone, also when an older version made it 0755
        except PermissionError:
            pass  # another user's folder: theirs to keep private
        self.concurrency = concurrency
        self.owner = owner or os.environ.get("JUPYTERHUB_USER") or getpass.getuser()
        self.base_dir = Path(base_dir).resolve() if base_dir else Path.cwd()
        self.model_dirs = None if model_dirs is None else [Path(d).expanduser().resolve() for d in model_dirs]
        self.model_size_limit = model_size_limit
        self.kernels = kernels or find_kernels
        self.poll_interval = poll_interval
        self.cancel_grace = cancel_grace
        self.executor = executor if executor is not None else LocalExecutor()
        self.store = JobStore(self.root / "jobs.sqlite")
        self._children: dict[str, Any] = {}  # job id -> Popen, for the jobs this manager started
        self._seen: dict[str, int] = {}  # job id -> bytes of events.jsonl already read
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.tick()  # re-attach to running jobs, finish lost ones, start queued ones
        if start:
            self._thread = threading.Thread(target=self._loop, name="mlaas4hep-jobs", daemon=True)
            self._thread.start()

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, request: WorkflowRequest | dict[str, Any], owner: str | None = None) -> JobInfo:
        """Check the request (params, preproc, labels, local files, model, kernel), write the
        job folder, and queue it. Errors are raised before anything is written."""
        if not isinstance(request, WorkflowRequest):
            request = WorkflowRequest.model_validate(request)
        params = load_params(request.params)
        preproc = load_preproc(request.preproc) if request.preproc else None
        files = [self._resolve(f, params.redirector) for f in request.files]
        if request.labels is not None:
            load_labels(request.labels, len(files))
        kernel = request.kernel or DEFAULT_KERNEL
        kernels = self.kernels()
        if kernel not in kernels:
            raise ConfigError(f"unknown kernel {kernel!r}", where="kernel",
                              hint="kernels: " + ", ".join(sorted(kernels)))
        if request.model is not None:
            source = request.model
        else:
            source = read_model_file(request.model_path, self.base_dir, self.model_dirs, self.model_size_limit)
        check_model_source(source)

        job_id = uuid.uuid4().hex[:12]
        folder = self.jobs_dir / job_id
        inputs = folder / "inputs"
        folder.mkdir(mode=0o700)
        inputs.mkdir(mode=0o700)
        _write_private(inputs / "model.py", source)
        _write_private(inputs / "params.json", json.dumps(request.params, indent=2))
        if preproc is not None:
            _write_private(inputs / "preproc.json", json.dumps(request.preproc, indent=2))
        if request.specs is not None:
            _write_private(inputs / "specs.json", json.dumps(request.specs))
        name = request.name or (Path(request.model_path).name if request.model_path else "model.py")
        body = request.model_dump(exclude={"model"})
        body.update(files=files, name=name, kernel=kernel)
        _write_private(folder / "request.json", json.dumps(body, indent=2))
        self.store.insert(id=job_id, name=name, owner=owner or self.owner, status="queued", created=time.time(),
                          kernel=kernel, python=kernels[kernel].python, folder=str(folder),
                          resources=request.resources.model_dump())
        self._wake.set()
        return self.get(job_id)

    def _resolve(self, name: str, redirector: str) -> str:
        if is_remote(name) or (redirector and not os.path.isabs(name) and not _exists(self.base_dir / name)):
            return name
        return str(check_data_file(name, self.base_dir))

    # -- reading ------------------------------------------------------------------------------

    def _row(self, job_id: str, owner: str | None) -> dict[str, Any]:
        row = self.store.get(job_id)
        if row is None or (owner is not None and row["owner"] != owner):
            raise JobNotFound(f"no job {job_id!r}")
        return row

    def get(self, job_id: str, owner: str | None = None) -> JobInfo:
        return self._info(self._row(job_id, owner))

    def list(self, owner: str | None = None) -> list[JobInfo]:
        return [self._info(row) for row in self.store.list(owner)]

    def _info(self, row: dict[str, Any]) -> JobInfo:
        folder = Path(row["folder"])
        return JobInfo(
            id=row["id"], name=row["name"], owner=row["owner"], status=row["status"], created=row["created"],
            started=row["started"], finished=row["finished"], kernel=row["kernel"], python=row["python"],
            progress=Progress(**row["progress"]), metrics=row["metrics"], error=row["error"],
            artifact=row["status"] == "succeeded" and (folder / "artifact" / "mlaas4hep.json").exists(),
        )

    def events(self, job_id: str, since: int = 0, owner: str | None = None) -> EventsPage:
        row = self._row(job_id, owner)
        events = read_events(Path(row["folder"]) / "events.jsonl", since)
        last = events[-1]["seq"] if events else since
        return EventsPage(events=events, last_seq=last, status=row["status"])

    def wait_events(self, job_id: str, since: int = 0, timeout: float = 10.0, owner: str | None = None) -> EventsPage:
        """Events after ``since``, waiting up to ``timeout`` seconds for one while the job is active."""
        deadline = time.monotonic() + timeout
        while True:
            page = self.events(job_id, since, owner)
            if page.events or page.status in FINISHED or time.monotonic() >= deadline:
                return page
            time.sleep(0.2)

    def logs(self, job_id: str, offset: int = 0, limit: int = 256 * 1024, owner: str | None = None) -> LogsPage:
        row = self._row(job_id, owner)
        path = Path(row["folder"]) / "log.txt"
        try:
            with path.open("rb") as stream:
                size = os.fstat(stream.fileno()).st_size
                stream.seek(min(max(offset, 0), size))
                data = stream.read(limit)
        except FileNotFoundError:
            return LogsPage(text="", offset=0, size=0)
        return LogsPage(text=data.decode("utf-8", "replace"), offset=min(max(offset, 0), size) + len(data), size=size)

    def wait(self, job_id: str, timeout: float | None = None, owner: str | None = None) -> JobInfo:
        """Block until the job has finished (or ``timeout``); returns its state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            info = self.get(job_id, owner)
            if info.status in FINISHED or (deadline is not None and time.monotonic() >= deadline):
                return info
            self._wake.set()
            time.sleep(0.1)

    def artifact_archive(self, job_id: str, owner: str | None = None) -> Path:
        """The artifact folder as ``artifact.tar.gz`` (made once)."""
        row = self._row(job_id, owner)
        folder = Path(row["folder"])
        if row["status"] != "succeeded" or not (folder / "artifact" / "mlaas4hep.json").exists():
            raise JobStateError(f"job {job_id} has no artifact (status: {row['status']})")
        archive = folder / "artifact.tar.gz"
        if not archive.exists():
            tmp = folder / "artifact.tar.gz.part"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as stream, tarfile.open(fileobj=stream, mode="w:gz") as tar:
                tar.add(folder / "artifact", arcname="artifact")
            os.replace(tmp, archive)
        return archive

    # -- changing -----------------------------------------------------------------------------

    def cancel(self, job_id: str, owner: str | None = None) -> JobInfo:
        """Stop a queued or running job (SIGTERM to its process group, then SIGKILL)."""
        row = self._row(job_id, owner)
        if row["status"] in FINISHED:
            raise JobStateError(f"job {job_id} has already {row['status']}")
        if self.store.update(job_id, only_if_status=("queued",), status="cancelled", finished=time.time(),
                             error="cancelled before it started"):
            _append_log(row, "cancelled by user before it started")
            return self.get(job_id)
        # the scheduler claims and launches under this lock: holding it, the job has its pid,
        # and the scheduler cannot mistake the process we stop for a lost one
        with self._lock:
            row = self.store.get(job_id)
            self.executor.stop(row, self.cancel_grace)
            self._reap(job_id)
            if self.store.update(job_id, only_if_status=("running",), status="cancelled", finished=time.time(),
                                 error="cancelled"):
                self._append_event(row, "failed", error="cancelled", type="Cancelled")
                _append_log(row, "cancelled by user")
        return self.get(job_id)

    def delete(self, job_id: str, owner: str | None = None) -> None:
        """Remove a finished job and its folder."""
        row = self._row(job_id, owner)
        if row["status"] not in FINISHED:
            raise JobStateError(f"job {job_id} is {row['status']}; cancel it before deleting it")
        self.store.delete(job_id)
        shutil.rmtree(row["folder"], ignore_errors=True)
        with self._lock:
            self._seen.pop(job_id, None)

    # -- the scheduler ------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            try:
                self.tick()
            except Exception as err:  # noqa: BLE001 - the loop must survive; report and go on
                print(f"mlaas4hep jobs: scheduler error: {type(err).__name__}: {err}", file=sys.stderr)

    def tick(self) -> None:
        """One round: update running jobs (progress, ends, timeouts), then start queued ones."""
        with self._lock:
            for row in self.store.list(status=("running",)):
                self._watch(row)
            while (row := self.store.claim_next(self.concurrency)) is not None:
                self._launch(row)

    def _launch(self, row: dict[str, Any]) -> None:
        folder = Path(row["folder"])
        env = process.job_environment(os.environ)
        env.update(PYTHONUNBUFFERED="1", MLAAS4HEP_JOB_ID=row["id"])
        try:
            child = self.executor.launch(row["id"], [row["python"], "-m", "mlaas4hep.jobs.runner", str(folder)],
                                         folder, folder / "log.txt", env)
        except OSError as err:
            self.store.update(row["id"], status="failed", finished=time.time(),
                              error=f"cannot start the job's Python {row['python']}: {err.strerror or err}")
            return
        self._children[row["id"]] = child
        pid, started = self.executor.record(child)
        self.store.update(row["id"], pid=pid, pid_start=started)

    def _adopt(self, row: dict[str, Any]) -> bool:
        """A running job without a pid in the database: its manager stopped between starting it
        and recording it. The process recorded itself in ``pid.json``; take that."""
        try:
            record = json.loads((Path(row["folder"]) / "pid.json").read_text())
            pid, started = int(record["pid"]), record.get("start")
        except (OSError, ValueError, KeyError, TypeError):
            return False
        if not self.store.update(row["id"], only_if_status=("running",), pid=pid, pid_start=started):
            return False
        row.update(pid=pid, pid_start=started)
        return True

    def _reap(self, job_id: str) -> int | None:
        child = self._children.pop(job_id, None)
        if child is None:
            return None
        return self.executor.reap(child)

    def _watch(self, row: dict[str, Any]) -> None:
        job_id = row["id"]
        if row["pid"] is None and not self._adopt(row):
            if time.time() - (row["started"] or 0) > LAUNCH_GRACE:
                self.store.update(job_id, only_if_status=("running",), status="failed", finished=time.time(),
                                  error="the job never started (its manager stopped while starting it)")
            return
        self._read_progress(row)
        child = self._children.get(job_id)
        running = self.executor.running(row, child)
        timeout = (row["resources"] or {}).get("timeout")
        if running and timeout and time.time() - row["started"] > timeout:
            self.executor.stop(row, self.cancel_grace)
            self._reap(job_id)
            if self.store.update(job_id, only_if_status=("running",), status="cancelled", finished=time.time(),
                                 error=f"timed out after {timeout:g} s"):
                self._append_event(row, "failed", error=f"timed out after {timeout:g} s", type="Timeout")
                _append_log(row, f"cancelled: timed out after {timeout:g} s")
            return
        if running:
            return
        code = self._reap(job_id)
        self.executor.cleanup(row, self.cancel_grace)  # what the job started outlives it: stop it too
        self._read_progress(row)
        self._finish(row, code)

    def _finish(self, row: dict[str, Any], code: int | None = None) -> None:
        """The job's process has ended (with exit status ``code``, when this manager started it):
        its status.json says how; without one it was lost."""
        folder = Path(row["folder"])
        try:
            status = json.loads((folder / "status.json").read_text())
        except (OSError, ValueError):
            status = {"status": "failed", "error": process.how_it_ended(code, folder / "log.txt")}
            _append_log(row, f"job lost: {status['error']}")
        fields: dict[str, Any] = {"status": status["status"], "finished": status.get("time", time.time()),
                                  "error": status.get("error")}
        if status.get("metrics"):
            current = self.store.get(row["id"])["metrics"]
            fields["metrics"] = {**current, **{f"test_{k}": v for k, v in status["metrics"].items()}}
        if self.store.update(row["id"], only_if_status=("running",), **fields) and status["status"] == "failed":
            last = read_events(folder / "events.jsonl")
            if not last or last[-1]["event"] != "failed":
                self._append_event(row, "failed", error=fields["error"], type="Lost")

    def _read_progress(self, row: dict[str, Any]) -> None:
        """Fold new events into the row's progress and last metrics."""
        path = Path(row["folder"]) / "events.jsonl"
        with self._lock:
            offset = self._seen.get(row["id"], 0)
        try:
            with path.open("rb") as stream:
                stream.seek(offset)
                data = stream.read()
        except FileNotFoundError:
            return
        complete = data[: data.rfind(b"\n") + 1]
        if not complete:
            return
        with self._lock:
            self._seen[row["id"]] = offset + len(complete)
        progress, metrics = dict(row["progress"]), dict(row["metrics"])
        for line in complete.decode("utf-8", "replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            kind = event.get("event")
            if kind in ("progress", "chunk_done", "finished"):  # finished: the run's final rate
                progress.update({k: event[k] for k in ("events_processed", "events_total", "rate", "chunk", "epoch")
                                 if k in event})
            elif kind == "specs_done":
                progress["events_total"] = event.get("used", 0)
            elif kind == "epoch":
                metrics.update({k: v for k, v in event.items() if k not in ("event", "seq", "time")})
        self.store.update(row["id"], progress=progress, metrics=metrics)

    def _append_event(self, row: dict[str, Any], kind: str, **fields: Any) -> None:
        """Write an event on behalf of a job whose process is gone (cancel, timeout, loss)."""
        from ..events import EventLog

        path = Path(row["folder"]) / "events.jsonl"
        log = EventLog(path, start_seq=EventLog.last_seq(path))
        log.emit(kind, **fields)
        log.close()

    def close(self) -> None:
        """Stop scheduling (running jobs keep running; a later manager re-attaches)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self.executor.close()
        self.store.close()

    def __enter__(self) -> JobManager:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _write_private(path: Path, text: str) -> None:
    """Write a file that only its owner may read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(text)


def _append_log(row: dict[str, Any], line: str) -> None:
    """A line in the job's log written by the manager (the job's process is gone)."""
    try:
        with open(Path(row["folder"]) / "log.txt", "a", encoding="utf-8") as log:
            log.write(f"mlaas4hep: {line}\n")
    except OSError:
        pass  # the folder was deleted: nobody will read this log


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):
        return False
