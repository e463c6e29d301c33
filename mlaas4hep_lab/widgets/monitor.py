"""``TrainingMonitor``: a job's live view (curves, progress, status, log tail, test metrics)."""

from __future__ import annotations

import html
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets

from mlaas4hep.client import Client, ServerError, shared_client
from mlaas4hep.console import human_time
from mlaas4hep.errors import MLaaS4HEPError
from mlaas4hep.jobs.models import FINISHED

from .chart import LiveChart

ACTIVE = ("queued", "running")
META_KEYS = {"event", "seq", "time", "epoch", "chunk", "step"}
CANCEL_TYPES = ("Cancelled", "Timeout")
ERROR_COLOR = "var(--jp-error-color1, #d32f2f)"
OK_COLOR = "var(--jp-success-color1, #388e3c)"
WARN_COLOR = "var(--jp-warn-color1, #f57c00)"
DIM_COLOR = "var(--jp-ui-font-color2, #666)"



def default_client() -> Client:
    """The process's shared ``Client()`` (this server, or in-process jobs without one)."""
    return shared_client()


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


class TrainingMonitor(widgets.VBox):
    """Follows one training job: its curves, progress, status, log tail and test metrics.

    ``TrainingMonitor(job_id=None, client=None, state=None, poll=True)``

    - ``job_id``: the job to show. Without one, the monitor shows ``state.job_id`` and follows
      it: whenever ``state.job_id`` changes (e.g. the submit panel queued a job) it re-attaches.
    - ``client``: a :class:`mlaas4hep.client.Client`; default ``Client()`` (this Jupyter
      server, or in-process jobs), shared with the other panels.
    - ``state``: a :class:`~mlaas4hep_lab.widgets.state.WorkbenchState` (optional).
    - ``poll``: follow the job in a daemon thread (long-polling ``client.events``). With
      ``poll=False`` nothing runs in the background: call :meth:`refresh` or :meth:`wait`.

    Attaching replays the job's whole event history (``since=0``), so after a notebook reload
    ``TrainingMonitor(job_id)`` shows everything again, then follows the live events. Each event
    goes through :meth:`handle`, the one place that folds events into the monitor's state. The
    poller stops when the job has finished and no more events come, on :meth:`close`, and on
    re-attaching. Client errors (an unknown job, a server that is down) are shown in the status
    line, never raised; a server that cannot be reached is retried a few times first.

    Plain data for programs and tests: ``job_id``, ``status`` (``""`` before the job is known,
    then ``queued``, ``running``, ``succeeded``, ``failed`` or ``cancelled``), ``error`` (the
    job's error, or the client's), ``history`` (the ``epoch`` events), ``metrics`` (the test
    metrics of the ``finished`` event), ``done`` and ``total`` (events processed / to process),
    ``rate`` (events/s), ``eta`` (s), ``log_lines`` (the log tail). Widgets: ``header``,
    ``chart`` (a :class:`~mlaas4hep_lab.widgets.chart.LiveChart`; x is the epoch event's
    ``step``, with ``marks`` at chunk boundaries in chunk mode), ``progress`` (0-100) and
    ``progress_text``, ``status_line``, ``cancel_button``, ``metrics_table``, ``log_view``.

    :meth:`wait` blocks until the job has finished and all its events are folded in.
    """

    log_size = 20
    log_interval = 2.0  # seconds between log refreshes while the job runs
    poll_wait = 2.0  # long-poll: seconds the server may hold an events request
    retries = 3  # an unreachable server is retried this many times before the monitor gives up

    def __init__(self, job_id: str | None = None, client: Client | None = None, state: Any = None,
                 poll: bool = True, **kwargs: Any):
        self.header = widgets.HTML()
        self.status_line = widgets.HTML()
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", button_style="danger", disabled=True,
                                            tooltip="stop the job (SIGTERM, then SIGKILL)",
                                            layout=widgets.Layout(width="auto", flex="0 0 auto"))
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=100.0, layout=widgets.Layout(width="50%"))
        self.progress_text = widgets.HTML()
        self.chart = LiveChart(x_label="step (epochs over the run)", y_label="", title="")
        self.log_y = widgets.Checkbox(value=False, description="log y", indent=False,
                                      layout=widgets.Layout(width="auto"))
        widgets.link((self.log_y, "value"), (self.chart, "log_y"))
        self.metrics_table = widgets.HTML()
        self.log_view = widgets.HTML()
        self.cancel_button.on_click(self._on_cancel)
        super().__init__(children=[
            self.header,
            widgets.HBox([self.status_line, self.cancel_button],
                         layout=widgets.Layout(justify_content="space-between", align_items="center")),
            widgets.HBox([self.progress, self.progress_text], layout=widgets.Layout(align_items="center")),
            self.chart,
            self.log_y,
            self.metrics_table,
            self.log_view,
        ], **kwargs)
        self.poll = poll
        self.state = state
        self._client = client
        self._lock = threading.RLock()
        self._generation = 0
        self._follow: _Follow | None = None
        self._batch = False
        self._reset("")
        if state is not None:
            state.observe(self._on_state_job, names="job_id")
        job_id = job_id or (state.job_id if state is not None else "")
        if job_id:
            self.attach(job_id)
        else:
            self._render()

    # -- the client ---------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = default_client()
        return self._client

    # -- attaching ----------------------------------------------------------------------------

    def attach(self, job_id: str) -> None:
        """Show ``job_id`` (replaying its history), following it while ``poll``; ``""`` detaches."""
        with self._lock:
            self._stop_follow()
            self._generation += 1
            self._reset(job_id or "")
            follow = self._follow = _Follow(job_id or "", self._generation) if job_id else None
            self._render()
        if follow is None:
            return
        if self.poll:
            follow.thread = threading.Thread(target=self._run, args=(follow,), daemon=True,
                                             name=f"mlaas4hep-monitor-{job_id}")
            follow.thread.start()

    def detach(self) -> None:
        """Stop following and show no job."""
        self.attach("")

    def close(self) -> None:
        """Stop the poller, stop observing the state, and close the widgets."""
        with self._lock:
            self._stop_follow()
            self._generation += 1
        if self.state is not None:
            try:
                self.state.unobserve(self._on_state_job, names="job_id")
            except ValueError:
                pass
        for child in (self.header, self.status_line, self.cancel_button, self.progress, self.progress_text,
                      self.chart, self.log_y, self.metrics_table, self.log_view):
            child.close()
        super().close()

    def _on_state_job(self, change: dict) -> None:
        if change["new"] != self.job_id:
            self.attach(change["new"])

    def _stop_follow(self) -> None:
        if self._follow is not None:
            self._follow.stop.set()
            self._follow.done.set()
            self._follow = None

    def _reset(self, job_id: str) -> None:
        self.job_id = job_id
        self.name = ""
        self.kernel = ""
        self.mode = ""
        self.epochs: int | None = None
        self.status = ""
        self.error = ""
        self.client_error = ""
        self.history: list[dict[str, Any]] = []
        self.metrics: dict[str, Any] = {}
        self.done = 0
        self.total = 0
        self.rate = 0.0
        self.eta: float | None = None
        self.seconds: float | None = None
        self.chunk: int | None = None
        self.epoch: int | None = None
        self.artifact = ""
        self.notes: list[str] = []
        self.log_lines: list[str] = []
        self._log_partial = ""
        self._last_seq = 0
        self._pending: dict[str, list] = {}
        self._pending_marks: list[float] = []
        self.chart.clear()
        self.metrics_table.value = ""
        self.log_view.value = ""

    # -- following ----------------------------------------------------------------------------

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

    # -- folding events -----------------------------------------------------------------------

    def handle(self, event: dict[str, Any]) -> None:
        """Fold one event (a dict of ``events.jsonl``) into the monitor and its widgets."""
        with self._lock:
            seq = event.get("seq")
            if isinstance(seq, int):
                if seq <= self._last_seq:
                    return  # already folded
                self._last_seq = seq
            kind = event.get("event")
            if kind == "job_start":
                self.name = self.name or event.get("name") or ""
                self.mode = event.get("mode") or ""
                self.epochs = (event.get("params") or {}).get("epochs")
                self.status = "running"
            elif kind == "specs_done":
                used = event.get("used") or 0
                self.total = used * (self.epochs or 1) if self.mode == "standard" else used
            elif kind == "chunk_start":
                self.chunk, self.epoch = event.get("chunk"), event.get("epoch")
                if self.status in ("", "queued"):
                    self.status = "running"
            elif kind == "epoch":
                self._fold_epoch(event)
            elif kind in ("chunk_done", "progress"):
                self.done = int(event.get("events_processed") or self.done)
                self.total = int(event.get("events_total") or self.total)
                self.rate = float(event.get("rate") or 0.0)
                if event.get("eta") is not None:
                    self.eta = float(event["eta"])
                elif self.rate > 0:
                    self.eta = max(self.total - self.done, 0) / self.rate
                self.chunk, self.epoch = event.get("chunk", self.chunk), event.get("epoch", self.epoch)
            elif kind == "artifact":
                self.artifact = event.get("path") or ""
            elif kind == "finished":
                self.metrics = dict(event.get("metrics") or {})
                self.seconds = event.get("seconds")
                self.status = "succeeded"
                if self.total:
                    self.done = self.total
                self.eta = 0.0
            elif kind == "failed":
                self.error = event.get("error") or "failed"
                self.status = "cancelled" if event.get("type") in CANCEL_TYPES else "failed"
            elif kind == "log":
                self.notes = [*self.notes, f"{event.get('level', 'info')}: {event.get('message', '')}"][-3:]
            if not self._batch:
                self._flush()

    def _fold_epoch(self, event: dict[str, Any]) -> None:
        record = dict(event)
        self.history.append(record)
        step = record.get("step") or len(self.history)
        names = [k for k, v in record.items()
                 if k not in META_KEYS and (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)))]
        bases = []
        for name in names:
            base = name[4:] if name.startswith("val_") else name
            if base not in bases:
                bases.append(base)
        names.sort(key=lambda n: (n.removeprefix("val_") != "loss", bases.index(n.removeprefix("val_")),
                                  n.startswith("val_")))
        for name in names:
            self._pending.setdefault(name, []).append((step, record[name]))
        chunk = record.get("chunk")
        if isinstance(chunk, int) and chunk > 0 and record.get("epoch") == 1:
            self._pending_marks.append(step - 0.5)  # a new chunk starts training here
        self.chunk, self.epoch = chunk, record.get("epoch")

    def _job_status(self, status: str) -> None:
        """The server's word on the status; events may already have said more (the error)."""
        if status in FINISHED:
            self.status = status
        elif status == "running" and self.status in ("", "queued"):
            self.status = "running"
        elif status == "queued" and not self.status:
            self.status = "queued"

    # -- rendering ----------------------------------------------------------------------------

    def _flush(self) -> None:
        """Push the folded data to the widgets (once per page of events while replaying)."""
        if self._pending:
            pending, self._pending = self._pending, {}
            self.chart.extend(pending)
        if self._pending_marks:
            marks, self._pending_marks = self._pending_marks, []
            self.chart.marks = [*self.chart.marks, *marks]
        self._render()

    def _render(self) -> None:
        self._render_header()
        self._render_status()
        self._render_progress()
        self._render_metrics()
        self.cancel_button.disabled = not (self.job_id and self.status in ACTIVE)

    def _render_header(self) -> None:
        if not self.job_id:
            self.header.value = f"<b>Training monitor</b> <span style='color:{DIM_COLOR}'>· no job</span>"
            return
        parts = [f"<b>{_esc(self.name or 'job')}</b>", f"job <code>{_esc(self.job_id)}</code>"]
        if self.kernel:
            parts.append(f"kernel {_esc(self.kernel)}")
        if self.mode:
            parts.append(f"{_esc(self.mode)} mode")
        if self.status:
            parts.append(_esc(self.status))
        self.header.value = " · ".join(parts)

    def _render_status(self) -> None:
        if not self.job_id:
            text = f"<span style='color:{DIM_COLOR}'>no job attached</span>"
        elif self.status == "queued":
            text = "queued"
        elif self.status == "running":
            where = []
            if self.chunk is not None:
                where.append(f"chunk {self.chunk}")
            if self.epoch is not None:
                where.append(f"epoch {self.epoch}" + (f"/{self.epochs}" if self.epochs else ""))
            text = "running" + (" · " + ", ".join(where) if where else "")
        elif self.status == "succeeded":
            took = f" in {_duration(self.seconds)}" if self.seconds is not None else ""
            text = f"<span style='color:{OK_COLOR}'>succeeded{took}</span>"
        elif self.status == "failed":
            text = f"<span style='color:{ERROR_COLOR}'>failed: {_esc(self.error or 'unknown error')}</span>"
        elif self.status == "cancelled":
            why = "" if self.error in ("", "cancelled") else f": {_esc(self.error)}"
            text = f"<span style='color:{WARN_COLOR}'>cancelled{why}</span>"
        else:
            text = f"<span style='color:{DIM_COLOR}'>connecting…</span>" if not self.client_error else ""
        if self.client_error:
            text += (" · " if text else "") + f"<span style='color:{ERROR_COLOR}'>{_esc(self.client_error)}</span>"
        if self.notes and self.status in ACTIVE:
            text += f"<br><span style='color:{DIM_COLOR}'>{_esc(self.notes[-1])}</span>"
        self.status_line.value = text

    def _render_progress(self) -> None:
        if self.total > 0:
            self.progress.value = min(100.0, 100.0 * self.done / self.total)
        elif self.status == "succeeded":
            self.progress.value = 100.0
        else:
            self.progress.value = 0.0
        self.progress.bar_style = {"succeeded": "success", "failed": "danger", "cancelled": "warning"}.get(self.status, "")
        if not self.job_id or not (self.total or self.done):
            self.progress_text.value = ""
            return
        text = f"{self.done:,}/{self.total:,} events"
        if self.status in ACTIVE:
            if self.rate > 0:
                text += f" · {self.rate:,.0f} events/s"
            if self.eta is not None:
                text += f" · ETA {_duration(self.eta)}"
        elif self.status == "succeeded" and self.seconds:
            text += f" · {self.done / self.seconds:,.0f} events/s overall" if self.seconds > 0 else ""
        self.progress_text.value = f"<span style='margin-left:8px'>{text}</span>"

    def _render_metrics(self) -> None:
        if not self.metrics:
            self.metrics_table.value = ""
            return
        rows = "".join(
            f"<tr><td style='padding:2px 12px 2px 0'>{_esc(str(k))}</td>"
            f"<td style='text-align:right;font-family:var(--jp-code-font-family,monospace)'>{_number(v)}</td></tr>"
            for k, v in self.metrics.items())
        self.metrics_table.value = (
            "<div style='margin-top:6px'><b>Test metrics</b>"
            f"<table class='mlaas4hep-metrics' style='border-collapse:collapse;margin-top:2px'>{rows}</table></div>")

    def _render_log(self) -> None:
        if not self.log_lines:
            self.log_view.value = ""
            return
        text = _esc("\n".join(self.log_lines))
        self.log_view.value = (
            f"<details><summary style='color:{DIM_COLOR}'>log (last {self.log_size} lines)</summary>"
            "<pre style='max-height:18em;overflow:auto;margin:2px 0;padding:4px;font-size:var(--jp-code-font-size,12px);"
            "background:var(--jp-layout-color2,#f5f5f5);color:var(--jp-ui-font-color1,#222)'>"
            f"{text}</pre></details>")

    # -- cancelling ---------------------------------------------------------------------------

    def cancel(self) -> None:
        """Cancel the job (errors go to the status line)."""
        job_id = self.job_id
        if not job_id:
            return
        self.cancel_button.disabled = True
        try:
            info = self.client.cancel(job_id)
        except Exception as err:  # noqa: BLE001 - e.g. it has just finished: say so
            message = str(err) if isinstance(err, MLaaS4HEPError) else f"{type(err).__name__}: {err}"
            with self._lock:
                if self.job_id == job_id:
                    self.client_error = f"cancel: {message}"
                    self._render()
            return
        with self._lock:
            if self.job_id == job_id:
                self._job_status(info.status)
                if info.error and not self.error:
                    self.error = info.error
                self._render()

    def _on_cancel(self, _button: Any) -> None:
        self.cancel()


def _duration(seconds: float | None) -> str:
    return "?" if seconds is None or not math.isfinite(seconds) else human_time(seconds)


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _esc(str(value))
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.4f}"


def _esc(text: str) -> str:
    """HTML text content (quotes need no escaping there, and read better unescaped)."""
    return html.escape(text, quote=False)
