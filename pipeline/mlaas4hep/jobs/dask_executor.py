"""Jobs on Dask workers: the :class:`DaskExecutor` of the JobManager.

Each job is one Dask task (key ``mlaas4hep-job-<id>``, with the executor's resource tags, such
as ``GPU=1``, so that the scheduler puts it on a worker that has them). The task starts the
same job process a local job runs, ``python -m mlaas4hep.jobs.runner JOB_FOLDER``, with the
worker's Python, in its own process group on the worker, and leaves the worker's thread while
it waits (``secede``). The job folder must be on storage both the manager and the workers see
(a shared file system): the process writes its events, log and status there, and the manager
reads them as for a local job.

Cancel sets a Dask ``Event`` that the task watches: it stops the job's process group (SIGTERM,
then SIGKILL). The task's future is published on the scheduler under its key, so a manager
started later (after a restart of the server) finds the job still running and re-attaches.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from . import process


def parse_resources(text: str) -> dict[str, float]:
    """``"GPU=1,MEM=8e9"`` -> ``{"GPU": 1.0, "MEM": 8e9}``; names what is wrong."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        try:
            amount = float(value)
        except ValueError:
            amount = -1.0
        if not sep or not name.strip() or amount <= 0:
            raise ConfigError(f"dask resources: expected NAME=AMOUNT (a positive number), got {part!r}",
                              where="dask resources", hint="for example GPU=1,MEM=8e9")
        out[name.strip()] = amount
    return out


def job_key(job_id: str) -> str:
    return f"mlaas4hep-job-{job_id}"


def _cancel_name(job_id: str) -> str:
    return f"mlaas4hep-cancel-{job_id}"


def run_job(job_id: str, folder: str, grace: float) -> int:
    """On a worker: the job's process, until it ends or is cancelled; its exit status."""
    from distributed import Event, get_client, secede

    folder_path = Path(folder)
    env = process.job_environment(os.environ)
    env.update(PYTHONUNBUFFERED="1", MLAAS4HEP_JOB_ID=job_id)
    child = process.launch([sys.executable, "-m", "mlaas4hep.jobs.runner", folder], folder_path,
                           folder_path / "log.txt", env)
    secede()  # the worker's thread is free for other tasks while the job runs
    cancel = Event(_cancel_name(job_id), client=get_client())
    try:
        while child.poll() is None:
            if cancel.wait(0.5):
                process.stop_group(child.pid, grace)
                break
    finally:
        if child.poll() is None or process.group_members(child.pid):
            process.stop_group(child.pid, grace)
    return child.wait()


def _task_state(key: str, dask_scheduler: Any = None) -> str | None:
    task = dask_scheduler.tasks.get(key)
    return None if task is None else task.state


class DaskJob:
    """The handle of a job this manager submitted: its future."""

    def __init__(self, job_id: str, future: Any):
        self.job_id = job_id
        self.future = future


class DaskExecutor:
    """Runs jobs on the workers of a Dask cluster (``address``: a scheduler address, ``"local"``
    or a ``distributed.Client``), each with ``resources`` (``{"GPU": 1}``)."""

    name = "dask"

    def __init__(self, address: Any, resources: Mapping[str, float] | None = None, grace: float = 5.0):
        self.address = address
        self.resources = dict(resources or {})
        self.grace = grace
        self._client: Any = None
        self._own = False

    @property
    def client(self) -> Any:
        if self._client is None:
            from ..cluster import connect

            self._client, self._own = connect(self.address)
        return self._client

    def launch(self, job_id: str, argv: Sequence[str], cwd: Path, log: Path, env: dict[str, str]) -> DaskJob:
        # argv and env are this machine's: the worker runs the runner with its own Python and
        # environment (less the server's secrets), on the job folder
        try:
            client = self.client
            future = client.submit(run_job, job_id, str(cwd), self.grace, key=job_key(job_id), pure=False,
                                   resources=self.resources or None)
            client.publish_dataset(future, name=job_key(job_id), override=True)
        except ConfigError as err:
            raise OSError(str(err)) from None
        return DaskJob(job_id, future)

    def record(self, handle: DaskJob) -> tuple[int | None, str | None]:
        return 0, "dask"  # no pid on this machine; the scheduler knows the job by its key

    def _future(self, job_id: str, handle: DaskJob | None) -> Any:
        if handle is not None:
            return handle.future
        try:
            return self.client.get_dataset(job_key(job_id), default=None)
        except (OSError, TimeoutError):
            return None

    def running(self, row: Mapping[str, Any], handle: DaskJob | None) -> bool:
        future = self._future(row["id"], handle)
        return future is not None and future.status == "pending"

    def stop(self, row: Mapping[str, Any], grace: float) -> None:
        from distributed import Event

        future = self._future(row["id"], None)
        Event(_cancel_name(row["id"]), client=self.client).set()
        if future is None:
            return
        if self.client.run_on_scheduler(_task_state, key=job_key(row["id"])) == "processing":
            # on a worker: the task stops the job's process group and returns
            deadline = time.monotonic() + 2 * grace + 10
            while future.status == "pending" and time.monotonic() < deadline:
                time.sleep(0.1)
        future.cancel()  # not started (waiting for a worker with the resources): never starts
        self._forget(row["id"])

    def reap(self, handle: DaskJob) -> int | None:
        try:
            return int(handle.future.result(timeout=5))
        except Exception:  # noqa: BLE001 - cancelled, lost or failed on the worker: the job folder says more
            return None
        finally:
            self._forget(handle.job_id)

    def cleanup(self, row: Mapping[str, Any], grace: float) -> None:
        self._forget(row["id"])  # the task stopped the job's process group before it returned

    def _forget(self, job_id: str) -> None:
        from distributed import Event

        try:
            self.client.unpublish_dataset(job_key(job_id))
        except KeyError:
            pass
        Event(_cancel_name(job_id), client=self.client).clear()

    def close(self) -> None:
        if self._client is not None and self._own:
            from ..cluster import disconnect

            disconnect(self._client)
        self._client = None
