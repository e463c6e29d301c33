"""``TrainingMonitor``: a job's live view (curves, progress, status, log tail, test metrics)."""

from __future__ import annotations

import html
import math
import threading
from typing import Any

import ipywidgets as widgets

from mlaas4hep.client import Client, shared_client
from mlaas4hep.console import human_time
from mlaas4hep.errors import MLaaS4HEPError
from mlaas4hep.jobs.models import FINISHED

from .chart import LiveChart
from .evaluation import EvaluationView
from .follow import JobFollower, _Follow

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


class TrainingMonitor(JobFollower, widgets.VBox):
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
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", button_style="", disabled=True,
                                            tooltip="stop the job (SIGTERM, then SIGKILL)",
                                            layout=widgets.Layout(width="auto", flex="0 0 auto"))
        # Cancel asks first, as Delete does: "Stop it" / "Keep running"
        self.confirm_text = widgets.HTML()
        self.confirm_button = widgets.Button(description="Stop it", icon="stop", button_style="danger",
                                             layout=widgets.Layout(width="auto"))
        self.keep_button = widgets.Button(description="Keep running", layout=widgets.Layout(width="auto"))
        self.confirm_box = widgets.HBox([self.confirm_text, self.confirm_button, self.keep_button],
                                        layout=widgets.Layout(display="none", align_items="center"))
        self.confirm_button.on_click(lambda _b: self.cancel())
        self.keep_button.on_click(lambda _b: self._ask_cancel(False))
        self.evaluation_view = EvaluationView()
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
            self.confirm_box,
            widgets.HBox([self.progress, self.progress_text], layout=widgets.Layout(align_items="center")),
            self.chart,
            self.log_y,
            self.metrics_table,
            self.evaluation_view,
            self.log_view,
        ], **kwargs)
        self.poll = poll
        self.state = state
        self._client = client
        self._job_client: Client | None = None
        self._lock = threading.RLock()
        self._generation = 0
        self._follow: _Follow | None = None
        self._batch = False
        self._reset("")
        if state is not None:
            state.observe(self._on_state_job, names="job_id")
        if not job_id and state is not None and state.job_id:
            job_id = state.job_id
            self._job_client = self._target_client()
        if job_id:
            self.attach(job_id)
        else:
            self._render()

    # -- the client ---------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        """The client of the job shown: its remote service's, when the state's target named one
        as the job was attached; else the monitor's own (default: this server)."""
        if self._job_client is not None:
            return self._job_client
        if self._client is None:
            self._client = default_client()
        return self._client

    def _target_client(self) -> Client | None:
        """The shared client of ``state.target`` (a remote service), None for "here"."""
        target = getattr(self.state, "target", "") if self.state is not None else ""
        if not target:
            return None
        from mlaas4hep.client import remote_client

        try:
            return remote_client(target)
        except MLaaS4HEPError:  # not a configured remote (the panel offers only those): here
            return None

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
            follow.thread = threading.Thread(target=self._run_and_watch, args=(follow,), daemon=True,
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
        for child in (self.header, self.status_line, self.cancel_button, self.confirm_text, self.confirm_button,
                      self.keep_button, self.confirm_box, self.progress, self.progress_text, self.chart, self.log_y,
                      self.metrics_table, self.evaluation_view, self.log_view):
            child.close()
        super().close()

    def _on_state_job(self, change: dict) -> None:
        if change["new"] != self.job_id:
            with self._lock:
                self._stop_follow()  # the old job's poller must not use the new job's client
                self._job_client = self._target_client() if change["new"] else None
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
        self.evaluation: dict[str, Any] | None = None
        self.early_stop: dict[str, Any] | None = None
        self.notes: list[str] = []
        self.log_lines: list[str] = []
        self._log_partial = ""
        self._last_seq = 0
        self._pending: dict[str, list] = {}
        self._pending_marks: list[float] = []
        self.chart.clear()
        self.metrics_table.value = ""
        self.log_view.value = ""
        self.evaluation_view.show(None)
        self.confirm_box.layout.display = "none"

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
            elif kind == "evaluation":
                self.evaluation = dict(event)
            elif kind == "early_stop":
                self.early_stop = dict(event)
            elif kind == "finished":
                self.metrics = dict(event.get("metrics") or {})
                self.seconds = event.get("seconds")
                self.rate = float(event.get("rate") or self.rate)
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
        self.evaluation_view.show(self.evaluation)
        active = bool(self.job_id and self.status in ACTIVE)
        self.cancel_button.disabled = not active
        self.cancel_button.button_style = "danger" if active else ""  # a red button only while it can act
        if not active:
            self.confirm_box.layout.display = "none"

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
            if self.early_stop:
                es = self.early_stop
                text += (f" · <span style='color:{DIM_COLOR}'>stopped early after epoch {es.get('epoch')}; best "
                         f"{_esc(str(es.get('monitor')))} in epoch {es.get('best_epoch')}</span>")
        elif self.status == "failed":
            text = f"<span style='color:{ERROR_COLOR}'>failed: {_esc(self.error or 'unknown error')}</span>"
        elif self.status == "deleted":
            text = (f"<span style='color:{DIM_COLOR}'>deleted: this job no longer exists (its folder, log and "
                    "artifact were removed)</span>")
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
        elif self.status == "succeeded" and self.rate > 0:
            text += f" · {self.rate:,.0f} events/s"
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
        self.confirm_box.layout.display = "none"
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
        self._ask_cancel(True)

    def _ask_cancel(self, ask: bool) -> None:
        """Show (or hide) the confirmation under the Cancel button."""
        if ask and self.job_id and self.status in ACTIVE:
            self.confirm_text.value = (f"Stop job <b>{_esc(self.name or self.job_id)}</b>? What it trained so far is "
                                       "lost (the last checkpoint stays). ")
            self.confirm_box.layout.display = None
        else:
            self.confirm_box.layout.display = "none"


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
