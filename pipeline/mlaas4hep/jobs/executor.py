"""How the JobManager runs a job's process: the executor.

:class:`LocalExecutor` (the default) starts each job as a process group on this machine;
:class:`~mlaas4hep.jobs.dask_executor.DaskExecutor` starts it on a Dask worker. Either way the
job is ``python -m mlaas4hep.jobs.runner JOB_FOLDER``, writing its events, log and status into
the job folder, which is all the manager reads: events, logs and how a job ended are the same.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import process


class LocalExecutor:
    """Each job its own process group on this machine (stopped with SIGTERM, then SIGKILL)."""

    name = "local"

    def launch(self, job_id: str, argv: Sequence[str], cwd: Path, log: Path, env: dict[str, str]) -> Any:
        """Start the job; the handle the other methods take (raises OSError if it cannot start)."""
        return process.launch(argv, cwd, log, env)

    def record(self, handle: Any) -> tuple[int | None, str | None]:
        """What the database keeps to recognise the job after a restart: (pid, start time)."""
        return handle.pid, process.start_time(handle.pid)

    def running(self, row: Mapping[str, Any], handle: Any | None) -> bool:
        """Whether the job's process still runs (``handle``: None for a job an earlier manager started)."""
        if handle is not None:
            return handle.poll() is None
        return process.alive(row["pid"], row["pid_start"])

    def stop(self, row: Mapping[str, Any], grace: float) -> None:
        """Stop the job and everything it started."""
        if row["pid"] and process.alive(row["pid"], row["pid_start"]):
            process.stop_group(row["pid"], grace)

    def reap(self, handle: Any) -> int | None:
        """The exit status of a job this manager started (None if unknown)."""
        try:
            return handle.wait(timeout=5)
        except Exception:  # noqa: BLE001 - a process that will not be reaped stays a zombie; not fatal
            return None

    def cleanup(self, row: Mapping[str, Any], grace: float) -> None:
        """After the job's process ended: stop what it started and left behind."""
        if row["pid"] and process.group_members(row["pid"]):
            process.stop_group(row["pid"], grace)

    def close(self) -> None:
        pass


def make_executor(dask: str | None = None, resources: Mapping[str, float] | None = None) -> Any:
    """The executor a configuration names: ``dask`` (a scheduler address, or ``local``) gives a
    :class:`~mlaas4hep.jobs.dask_executor.DaskExecutor`, else a :class:`LocalExecutor`.
    ``MLAAS4HEP_DASK`` / ``MLAAS4HEP_DASK_RESOURCES`` (``GPU=1,MEM=8e9``) are the defaults."""
    dask = dask if dask is not None else os.environ.get("MLAAS4HEP_DASK", "")
    if not dask:
        return LocalExecutor()
    from .dask_executor import DaskExecutor, parse_resources

    if resources is None:
        resources = parse_resources(os.environ.get("MLAAS4HEP_DASK_RESOURCES", ""))
    return DaskExecutor(dask, resources)
