"""``SubmitPanel``: where a job goes, its model, training params and resources, and Submit."""

from __future__ import annotations

import glob
import html
import os
from typing import Any

import ipywidgets as widgets

from mlaas4hep.client import Client, remote_client, remotes
from mlaas4hep.console import human_time
from mlaas4hep.datagen import DEMO_MODEL
from mlaas4hep.errors import ConfigError, MLaaS4HEPError
from mlaas4hep.jobs.models import JobInfo

from .monitor import default_client

DEFAULT_MODEL = DEMO_MODEL  # a small Keras classifier, the original def model(idim) contract

# the params this panel edits, with the defaults of params.json
TRAINING_DEFAULTS = {"mode": "chunk", "epochs": 5, "chunk_size": 10000, "batch_size": 100}

REMOTE_TARGET = (
    "Jobs go to {name} ({url}) as you, with your own OIDC token (JupyterHub's, or MLAAS4HEP_TOKEN); "
    "input files on this server are uploaded there first, root:// and https:// files are read there.")

ERROR_COLOR = "var(--jp-error-color1, #d32f2f)"
OK_COLOR = "var(--jp-success-color1, #388e3c)"
WARN_COLOR = "var(--jp-warn-color1, #f57c00)"

_STYLE = {"description_width": "110px"}


def gpu_count() -> int:
    """GPUs this machine lets its processes see (NVIDIA's driver; CUDA_VISIBLE_DEVICES="" hides them)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    try:
        found = len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        found = len(glob.glob("/dev/nvidia[0-9]*"))
    if visible:
        found = min(found, len([v for v in visible.split(",") if v.strip()]))
    return found


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def remotes_from_env() -> tuple[dict[str, str], str]:
    """The remote MLaaS4HEP services of ``MLAAS4HEP_REMOTES`` (name -> URL; see
    :func:`mlaas4hep.client.remotes`), and a problem to show ("" when none)."""
    try:
        found = remotes()
    except MLaaS4HEPError as err:
        return {}, f"{err}; no remote endpoints"
    return {name: entry["url"] for name, entry in found.items()}, ""


class SubmitPanel(widgets.VBox):
    """Queue a training job of the shared :class:`~mlaas4hep_lab.widgets.state.WorkbenchState`.

    ``SubmitPanel(state, client=None)``; ``client`` defaults to ``Client()`` (this Jupyter
    server, or in-process jobs without one), shared with the other panels.

    - **Target**: "this server" (``Client()``; "this machine (in-process jobs)" when there is no
      server), or a remote MLaaS4HEP service of ``MLAAS4HEP_REMOTES`` (a JSON object name -> URL;
      on JupyterLab also ``c.MLaaS4HEPLab.remotes``). Sets ``state.target`` (``""`` = here). A
      remote job goes there with the user's own token (``mlaas4hep_lab.hub.access_token``); input
      files that are on this server are uploaded first; it runs in the service's default kernel.
      A monitor on the same state follows it there.
    - **Job**: a name; the model as source (a textarea, from ``state.model_source`` or a small
      Keras model.py; edits go back to ``state.model_source``) or as the path of a model.py;
      the kernel whose Python runs the job (``client.kernels()``, default its ``default``).
    - **Training**: mode, epochs, chunk_size, batch_size: merged into ``state.params`` on
      submit, its other keys kept.
    - **Resources**: threads (0 = all cores, said next to it), GPU (ticked when this machine has
      one; without a GPU unticked and disabled), timeout in seconds (0 = no limit).
    - A **summary** of what will be submitted (files and labels, events, preproc, params) above
      Submit, kept up to date. After a job is queued the name field is emptied, so that the next
      job does not take the previous one's name.

    :meth:`submit` (the Submit button) builds the request from ``state.files``,
    ``state.labels`` (None if empty), ``state.params``, ``state.preproc`` (None if empty) and
    the fields, queues it with ``client.submit``, and sets ``state.job_id`` (a monitor
    observing the state attaches to it). A mistake (no files, a bad param, a missing file, ...)
    is shown in the message line and put in ``state.message``; nothing is raised.
    """

    def __init__(self, state: Any, client: Client | None = None, **kwargs: Any):
        self.state = state
        self._client = client
        self.remotes, remote_problem = remotes_from_env()
        self.here_label = "this server" if not self.client.local else "this machine (in-process jobs)"

        self.target = widgets.Dropdown(
            options=[(self.here_label, "")] + [(f"{name} (remote: {url})", name) for name, url in self.remotes.items()],
            value=state.target if state.target in self.remotes else "", description="Target", style=_STYLE)
        self.name = widgets.Text(description="Job name", placeholder="default: the model's name", style=_STYLE)
        self.model_kind = widgets.ToggleButtons(options=[("model source", "source"), ("model.py path", "path")],
                                                value="source", description="Model", style=_STYLE)
        self.model_source = widgets.Textarea(value=state.model_source or DEFAULT_MODEL, continuous_update=False,
                                             layout=widgets.Layout(width="100%", height="16em"))
        self.model_path = widgets.Text(description="model.py", placeholder="path on the server, e.g. model.py",
                                       style=_STYLE, layout=widgets.Layout(display="none"))
        self.kernel = widgets.Dropdown(description="Kernel", style=_STYLE,
                                       layout=widgets.Layout(width="auto", min_width="360px", max_width="100%"))
        params = {**TRAINING_DEFAULTS, **{k: v for k, v in dict(state.params).items() if k in TRAINING_DEFAULTS}}
        self.mode = widgets.Dropdown(options=["chunk", "standard"], description="mode", style=_STYLE)
        self.epochs = widgets.BoundedIntText(min=1, max=100_000, description="epochs", style=_STYLE)
        self.chunk_size = widgets.BoundedIntText(min=1, max=10**9, description="chunk_size", style=_STYLE)
        self.batch_size = widgets.BoundedIntText(min=1, max=10**9, description="batch_size", style=_STYLE)
        self._set_training(params)
        self.cpus = cpu_count()
        self.gpus = gpu_count()
        self.threads = widgets.BoundedIntText(value=0, min=0, max=1024, description="threads", style=_STYLE,
                                              tooltip="CPU threads of the job; 0 = all cores")
        self.threads_hint = widgets.HTML()
        self.gpu = widgets.Checkbox(value=self.gpus > 0, disabled=self.gpus == 0, indent=False,
                                    description=(f"GPU (let the job see the {self.gpus} GPU{'s' if self.gpus > 1 else ''})"
                                                 if self.gpus else "GPU (none on this machine)"))
        self.timeout = widgets.BoundedFloatText(value=0, min=0, max=10**7, description="timeout (s)", style=_STYLE,
                                                tooltip="cancel the job after this many seconds; 0 = no limit")
        self.timeout_hint = widgets.HTML()
        self.summary = widgets.HTML()
        self.submit_button = widgets.Button(description="Submit", icon="play", button_style="primary")
        self.message = widgets.HTML()
        self.last_job: JobInfo | None = None
        self._remote_notice = False

        self.target.observe(self._on_target, names="value")
        self.model_kind.observe(self._on_model_kind, names="value")
        self.model_source.observe(self._on_source_edit, names="value")
        self.submit_button.on_click(lambda _button: self.submit())
        state.observe(self._on_state, names=["model_source", "params", "target"])
        state.observe(self._render_summary, names=["files", "labels", "preproc", "params"])
        for widget in (self.threads, self.timeout, self.mode, self.epochs, self.chunk_size, self.batch_size, self.gpu):
            widget.observe(self._render_summary, names="value")

        self._load_kernels()
        super().__init__(children=[
            self.target,
            self.name,
            self.model_kind, self.model_source, self.model_path,
            self.kernel,
            widgets.HTML("<b>Training</b>"),
            widgets.HBox([self.mode, self.epochs]), widgets.HBox([self.chunk_size, self.batch_size]),
            widgets.HTML("<b>Resources</b>"),
            widgets.HBox([self.threads, self.threads_hint], layout=widgets.Layout(align_items="center")),
            widgets.HBox([self.timeout, self.timeout_hint], layout=widgets.Layout(align_items="center")),
            self.gpu,
            self.summary,
            widgets.HBox([self.submit_button, self.message], layout=widgets.Layout(align_items="center")),
        ], **kwargs)
        if remote_problem:
            self._show(remote_problem, WARN_COLOR)
        self._on_target({"new": self.target.value})
        self._render_summary()

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = default_client()
        return self._client

    # -- fields -------------------------------------------------------------------------------

    def _load_kernels(self) -> None:
        try:
            kernels = self.client.kernels()
        except Exception as err:  # noqa: BLE001 - shown; the job then runs in the server's default
            message = str(err) if isinstance(err, MLaaS4HEPError) else f"{type(err).__name__}: {err}"
            self.kernel.options = [("the server's default", None)]
            self._show(f"cannot list the kernels: {message}", ERROR_COLOR)
            return
        options = [(f"{k.display_name} ({k.name})" if k.display_name != k.name else k.name, k.name)
                   for k in kernels.kernels]
        names = [k.name for k in kernels.kernels]
        if kernels.default not in names:
            options.insert(0, (f"{kernels.default} (default)", kernels.default))
        self.kernel.options = options
        self.kernel.value = kernels.default

    def _set_training(self, params: dict[str, Any]) -> None:
        for key, widget in (("mode", self.mode), ("epochs", self.epochs), ("chunk_size", self.chunk_size),
                            ("batch_size", self.batch_size)):
            value = params.get(key)
            try:
                if key == "mode":
                    if value in widget.options:
                        widget.value = value
                elif value is not None:
                    widget.value = int(value)
            except (TypeError, ValueError):
                pass  # a bad value stays in state.params; submitting reports it

    def training_params(self) -> dict[str, Any]:
        """``state.params`` with this panel's training fields merged in."""
        return {**dict(self.state.params), "mode": self.mode.value, "epochs": self.epochs.value,
                "chunk_size": self.chunk_size.value, "batch_size": self.batch_size.value}

    def request(self) -> dict[str, Any]:
        """The job request (the fields of :class:`~mlaas4hep.jobs.WorkflowRequest`) of the state
        and the fields; a :class:`~mlaas4hep.MLaaS4HEPError` when something is missing."""
        files = list(self.state.files)
        if not files:
            raise ConfigError("no files chosen", where="files", hint="choose the ROOT files to train on first")
        body: dict[str, Any] = {
            "name": self.name.value.strip() or None,
            "files": files,
            "labels": list(self.state.labels) or None,
            "params": self.training_params(),
            "preproc": dict(self.state.preproc) or None,
            "kernel": self.kernel.value,
            "resources": {"threads": self.threads.value or None, "gpu": bool(self.gpu.value),
                          "timeout": float(self.timeout.value) or None},
        }
        if self.model_kind.value == "path":
            path = self.model_path.value.strip()
            if not path:
                raise ConfigError("no model.py path given", where="model", hint="or choose 'model source'")
            body["model_path"] = path
        else:
            source = self.model_source.value
            if not source.strip():
                raise ConfigError("the model source is empty", where="model",
                                  hint="model.py must define def model(idim)")
            body["model"] = source
        return body

    # -- submitting ---------------------------------------------------------------------------

    def submit(self) -> JobInfo | None:
        """Queue the job; returns it, or None (the reason is in the message line)."""
        target = self.target.value
        self.submit_button.disabled = True
        self.submit_button.description = "Uploading and submitting…" if target else "Submitting…"
        self._show("")
        try:
            body = self.request()
            if body["params"] != dict(self.state.params):
                self.state.params = body["params"]
            if target:
                body["kernel"] = None  # this server's kernels mean nothing there
                job = remote_client(target).submit(**body)
            else:
                job = self.client.submit(**body)
        except Exception as err:  # noqa: BLE001 - every problem is shown, nothing raised
            message = str(err) if isinstance(err, MLaaS4HEPError) else f"unexpected error: {type(err).__name__}: {err}"
            self._show(message, ERROR_COLOR)
            self.state.message = message
            return None
        finally:
            self.submit_button.description = "Submit"
            self.submit_button.disabled = False
        self.last_job = job
        self.name.value = ""  # the next job gets its own name (or the default), not this one's
        self.state.message = ""
        where = f" on {_esc(target)}" if target else ""
        self._show(f"queued job {_esc(job.name)} (<code>{_esc(job.id)}</code>){where}", OK_COLOR, escape=False)
        self.state.job_id = job.id
        return job

    # -- reacting -----------------------------------------------------------------------------

    def _on_target(self, change: dict) -> None:
        name = change["new"] or ""
        if self.state.target != name:
            self.state.target = name
        if name:
            self._show(REMOTE_TARGET.format(name=name, url=self.remotes.get(name, "?")))
            self._remote_notice = True
        elif self._remote_notice:
            self._show("")

    def _on_model_kind(self, change: dict) -> None:
        source = change["new"] == "source"
        self.model_source.layout.display = "" if source else "none"
        self.model_path.layout.display = "none" if source else ""

    def _on_source_edit(self, change: dict) -> None:
        if change["new"] != self.state.model_source and change["new"] != DEFAULT_MODEL:
            self.state.model_source = change["new"]

    def _on_state(self, change: dict) -> None:
        if change["name"] == "model_source":
            if change["new"] and change["new"] != self.model_source.value:
                self.model_source.value = change["new"]
        elif change["name"] == "params":
            self._set_training({k: v for k, v in dict(change["new"]).items() if k in TRAINING_DEFAULTS})
        elif change["name"] == "target":
            value = change["new"] if change["new"] in self.remotes else ""
            if self.target.value != value:
                self.target.value = value

    def _render_summary(self, _change: Any = None) -> None:
        """What Submit will send, in a few lines; and what the zeros of the resources mean."""
        from ..compare import preproc_summary

        threads = self.threads.value
        self.threads_hint.value = (f"<span style='margin-left:8px'>all cores ({self.cpus})</span>" if not threads else
                                   f"<span style='margin-left:8px'>{threads} of {self.cpus} cores</span>")
        seconds = float(self.timeout.value)
        self.timeout_hint.value = ("<span style='margin-left:8px'>no limit</span>" if not seconds else
                                   f"<span style='margin-left:8px'>cancelled after {human_time(seconds)}</span>")
        files = list(self.state.files)
        labels = list(self.state.labels)
        params = self.training_params()
        nevts = params.get("nevts", -1)
        events = self._events_in_files()
        lines = [
            f"<b>files</b>: {len(files)}" + (f" (labels {_esc(', '.join(labels))})" if labels else " (no labels)")
            if files else "<b>files</b>: none chosen yet",
            "<b>events</b>: " + (f"{events:,} in the files" if events is not None else "counted once the files are "
                                 "read (Explore tab)") + (f"; nevts = {int(nevts):,}" if isinstance(nevts, int)
                                                          and nevts > 0 else "; all of them (nevts = -1)"),
            f"<b>preproc</b>: {_esc(preproc_summary(dict(self.state.preproc) or None))}",
            f"<b>features</b>: {self._features_text(params)}",
            f"<b>training</b>: {params['mode']} mode, {params['epochs']} epochs, chunk_size {params['chunk_size']:,}, "
            f"batch_size {params['batch_size']:,}; "
            f"{'all cores' if not threads else f'{threads} threads'}, {'GPU' if self.gpu.value else 'no GPU'}, "
            f"{'no time limit' if not seconds else f'time limit {human_time(seconds)}'}",
        ]
        self.summary.value = ("<div class='mlaas4hep-submit-summary' style='margin:6px 0;padding:4px 8px;"
                              "border-left:3px solid var(--jp-brand-color1,#1976d2)'>" + "<br>".join(lines) + "</div>")

    def _events_in_files(self) -> int | None:
        """Entries in the files when the preview has opened them already (never reads here)."""
        sample = self.state.peek_sample() if hasattr(self.state, "peek_sample") else None
        if sample is None:
            return None
        try:
            return sum(f.num_entries for f in sample.files)
        except Exception:  # noqa: BLE001 - a summary never fails the form
            return None

    def _features_text(self, params: dict[str, Any]) -> str:
        selected = params.get("selected_branches") or ""
        excluded = params.get("exclude_branches") or ""
        as_list = (lambda v: [x.strip() for x in v.split(",") if x.strip()] if isinstance(v, str) else list(v))
        selected, excluded = as_list(selected), as_list(excluded)
        text = (f"{len(selected)} selected branches ({_esc(', '.join(selected[:6]))}{', …' if len(selected) > 6 else ''})"
                if selected else "every supported branch")
        if excluded:
            text += f", without {_esc(', '.join(excluded))}"
        return text

    def _show(self, text: str, color: str | None = None, escape: bool = True) -> None:
        self._remote_notice = False
        if not text:
            self.message.value = ""
            return
        body = _esc(text) if escape else text
        self.message.value = f"<span style='color:{color or 'inherit'}'>{body}</span>"

    def close(self) -> None:
        try:
            self.state.unobserve(self._on_state, names=["model_source", "params", "target"])
            self.state.unobserve(self._render_summary, names=["files", "labels", "preproc", "params"])
        except ValueError:
            pass
        super().close()


def _esc(text: str) -> str:
    """HTML text content (quotes need no escaping there, and read better unescaped)."""
    return html.escape(text, quote=False)
