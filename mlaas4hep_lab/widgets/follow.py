"""Following one job for a widget: a daemon thread long-polls the client's events and log and
hands them to the widget; retries a server that cannot be reached, gives up on an unknown job.

:class:`JobFollower` is mixed into :class:`~mlaas4hep_lab.widgets.monitor.TrainingMonitor`,
which folds the events (``handle``) and draws them (``_flush``, ``_render``, ``_render_log``).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from mlaas4hep.client import ServerError
from mlaas4hep.errors import MLaaS4HEPError
from mlaas4hep.jobs.manager import JobNotFound
from mlaas4hep.jobs.models import FINISHED


@dataclass
class _Follow:
    """One attachment to one job: where the poller stands."""

    job_id: str
    generation: int
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    since: int = 0
    log_offset: int = 0
    next_log: float = 0.0
    failures: int = 0
    finished: bool = False
    thread: threading.Thread | None = None


class JobFollower:
    """The polling half of a job widget (see the module)."""

    def _current(self, follow: _Follow) -> bool:
        return not follow.stop.is_set() and follow.generation == self._generation

    def _run(self, follow: _Follow, deadline: float | None = None) -> None:
        """The poller: fold pages of events until the job has finished and no more come."""
        try:
            while self._current(follow) and not follow.finished:
                if deadline is not None and time.monotonic() >= deadline:
                    return
                self._step(follow, wait=self.poll_wait)
        except Exception as err:  # noqa: BLE001 - never raise out of the thread; show it
            self._client_failed(follow, err, fatal=True)
        finally:
            if follow.finished or not self._current(follow):
                follow.done.set()

    watch_interval = 5.0  # seconds between checks that a finished job still exists

    def _run_and_watch(self, follow: _Follow) -> None:
        """The poller thread: follow the job to its end, then check now and then that it still
        exists, so that a job deleted elsewhere (the sidebar, another notebook) shows so here."""
        self._run(follow)
        if not (follow.finished and self.status in FINISHED):
            return
        while self._current(follow) and not follow.stop.wait(self.watch_interval):
            try:
                self.client.job(follow.job_id)
            except JobNotFound:
                self._deleted(follow)
                return
            except ServerError as err:
                if err.status == 404:
                    self._deleted(follow)
                    return
            except Exception:  # noqa: BLE001 - a server that is down says nothing about the job
                continue

    def _deleted(self, follow: _Follow) -> None:
        with self._lock:
            if self._current(follow):
                self.status = "deleted"
                self.error = ""
                self._render()

    def refresh(self) -> bool:
        """One round without waiting (for ``poll=False``): fold the new events and the log.
        Returns True when the job has finished and every event is folded in."""
        follow = self._follow
        if follow is None:
            return False
        if not follow.finished:
            self._step(follow, wait=0.0)
        return follow.finished

    def _step(self, follow: _Follow, wait: float) -> None:
        client = self.client
        if follow.since == 0 and not self.status and not self._load_info(follow):
            return
        try:
            page = client.events(follow.job_id, follow.since, wait=wait)
        except Exception as err:  # noqa: BLE001 - shown in the status line
            self._client_failed(follow, err)
            return
        with self._lock:
            if not self._current(follow):
                return
            follow.failures = 0
            self.client_error = ""
            self._batch = True
            try:
                for event in page.events:
                    self.handle(event)
            finally:
                self._batch = False
            follow.since = max(follow.since, page.last_seq)
            self._job_status(page.status)
            finished = page.status in FINISHED and not page.events
            self._flush()
        now = time.monotonic()
        if finished or now >= follow.next_log:
            follow.next_log = now + self.log_interval
            self._refresh_logs(follow)
        if finished:
            self._load_info(follow, final=True)
            with self._lock:
                if self._current(follow):
                    follow.finished = True
                    self._render()
                    follow.done.set()

    def _load_info(self, follow: _Follow, final: bool = False) -> bool:
        """The job's name, kernel and status from ``client.job``; False when that failed."""
        try:
            info = self.client.job(follow.job_id)
        except Exception as err:  # noqa: BLE001 - shown in the status line
            self._client_failed(follow, err)
            return False
        with self._lock:
            if not self._current(follow):
                return False
            follow.failures = 0
            self.client_error = ""
            self.name = self.name or info.name
            self.kernel = info.kernel or ""
            if final or not self.status or info.status in FINISHED:
                self._job_status(info.status)
            if info.status in FINISHED and info.error and not self.error:
                self.error = info.error
            if info.status == "succeeded" and not self.metrics and final:
                self.metrics = {k[5:]: v for k, v in info.metrics.items() if k.startswith("test_")}
            self._render()
        return True

    def _client_failed(self, follow: _Follow, err: Exception, fatal: bool = False) -> None:
        """Show a client error; give up on an unknown job or after ``retries`` failed tries."""
        message = str(err) if isinstance(err, MLaaS4HEPError) else f"{type(err).__name__}: {err}"
        transient = isinstance(err, ServerError) and (err.status == 0 or err.status >= 500)
        with self._lock:
            if not self._current(follow):
                return
            follow.failures += 1
            give_up = fatal or not transient or follow.failures > self.retries
            if give_up:
                self.client_error = message
                follow.finished = True  # nothing more will come; wait() returns
                follow.done.set()
            else:
                self.client_error = f"{message}; retrying ({follow.failures}/{self.retries})"
            self._render()
        if not give_up:
            follow.stop.wait(min(2.0 ** (follow.failures - 1), 10.0))

    def _refresh_logs(self, follow: _Follow) -> None:
        try:
            for _ in range(16):  # at most 16 pages per refresh (4 MB from an in-process manager)
                page = self.client.logs(follow.job_id, follow.log_offset)
                with self._lock:
                    if not self._current(follow):
                        return
                    follow.log_offset = page.offset
                    if page.text:
                        self._add_log(page.text)
                if not page.text or page.offset >= page.size:
                    break
        except Exception:  # noqa: BLE001 - the log is a nicety; the status line shows real errors
            return
        with self._lock:
            if self._current(follow):
                self._render_log()

    def _add_log(self, text: str) -> None:
        lines = (self._log_partial + text).split("\n")
        self._log_partial = lines.pop()
        self.log_lines = [*self.log_lines, *lines][-self.log_size:]

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished and all its events are folded in (or the monitor
        gave up on a client error, or ``timeout`` seconds passed). Returns True when the job
        has finished. With ``poll=False`` the events are fetched in this thread."""
        follow = self._follow
        if follow is None:
            return False
        if follow.thread is None and not follow.finished:
            self._run(follow, deadline=None if timeout is None else time.monotonic() + timeout)
        else:
            follow.done.wait(timeout)
        return follow.finished and self.status in FINISHED
