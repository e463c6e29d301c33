"""``SubmitPanel``: where a job goes, its model, training params and resources, and Submit."""

from __future__ import annotations

import html
import json
import os
from typing import Any

import ipywidgets as widgets

from mlaas4hep.client import Client
from mlaas4hep.datagen import DEMO_MODEL
from mlaas4hep.errors import ConfigError, MLaaS4HEPError
from mlaas4hep.jobs.models import JobInfo

from .monitor import default_client

DEFAULT_MODEL = DEMO_MODEL  # a small Keras classifier, the original def model(idim) contract

# the params this panel edits, with the defaults of params.json
TRAINING_DEFAULTS = {"mode": "chunk", "epochs": 5, "chunk_size": 10000, "batch_size": 100}

REMOTE_UNAVAILABLE = (
    "Remote submission is not available yet: sending a job to {name} ({url}) needs the MLaaS4HEP remote "
    "service and your JupyterHub (OIDC) token; it comes with the remote-service work. "
    "Choose \u201c{here}\u201d to run the job here.")

ERROR_COLOR = "var(--jp-error-color1, #d32f2f)"
OK_COLOR = "var(--jp-success-color1, #388e3c)"
WARN_COLOR = "var(--jp-warn-color1, #f57c00)"

_STYLE = {"description_width": "110px"}


def remotes_from_env() -> tuple[dict[str, str], str]:
    """The remote endpoints of ``MLAAS4HEP_REMOTES`` (a JSON object name -> URL), and a
    problem to show ("" when none)."""
    text = os.environ.get("MLAAS4HEP_REMOTES", "").strip()
    if not text:
        return {}, ""
    try:
        data = json.loads(text)
    except ValueError as err:
        return {}, f"MLAAS4HEP_REMOTES is not valid JSON ({err.msg}); no remote endpoints"
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        return {}, 'MLAAS4HEP_REMOTES must be a JSON object {"name": "URL", ...}; no remote endpoints'
    return {k: v for k, v in data.items() if k}, ""


class SubmitPanel(widgets.VBox):
    """Queue a training job of the shared :class:`~mlaas4hep_lab.widgets.state.WorkbenchState`.

    ``SubmitPanel(state, client=None)``; ``client`` defaults to ``Client()`` (this Jupyter
    server, or in-process jobs without one), shared with the other panels.

    - **Target**: "this server" (``Client()``; "this machine (in-process jobs)" when there is no
      server), or a remote endpoint of ``MLAAS4HEP_REMOTES`` (a JSON object name -> URL). Sets
      ``state.target`` (``""`` = here). Remote submission is not available yet: choosing a
      remote says so and disables Submit.
    - **Job**: a name; the model as source (a textarea, from ``state.model_source`` or a small
      Keras model.py; edits go back to ``state.model_source``) or as the path of a model.py;
      the kernel whose Python runs the job (``client.kernels()``, default its ``default``).
    - **Training**: mode, epochs, chunk_size, batch_size: merged into ``state.params`` on
      submit, its other keys kept.
    - **Resources**: threads (0 = not set), GPU, timeout in seconds (0 = none).

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
        self.kernel = widgets.Dropdown(description="Kernel", style=_STYLE)
        params = {**TRAINING_DEFAULTS, **{k: v for k, v in dict(state.params).items() if k in TRAINING_DEFAULTS}}
        self.mode = widgets.Dropdown(options=["chunk", "standard"], description="mode", style=_STYLE)
        self.epochs = widgets.BoundedIntText(min=1, max=100_000, description="epochs", style=_STYLE)
        self.chunk_size = widgets.BoundedIntText(min=1, max=10**9, description="chunk_size", style=_STYLE)
        self.batch_size = widgets.BoundedIntText(min=1, max=10**9, description="batch_size", style=_STYLE)
        self._set_training(params)
        self.threads = widgets.BoundedIntText(value=0, min=0, max=1024, description="threads", style=_STYLE,
                                              tooltip="CPU threads of the job; 0 = not set")
        self.gpu = widgets.Checkbox(value=True, description="GPU (let the job see the GPUs)", indent=False)
        self.timeout = widgets.BoundedFloatText(value=0, min=0, max=10**7, description="timeout (s)", style=_STYLE,
                                                tooltip="cancel the job after this many seconds; 0 = none")
        self.submit_button = widgets.Button(description="Submit", icon="play", button_style="primary")
        self.message = widgets.HTML()
        self.last_job: JobInfo | None = None
        self._remote_notice = False

        self.target.observe(self._on_target, names="value")
        self.model_kind.observe(self._on_model_kind, names="value")
        self.model_source.observe(self._on_source_edit, names="value")
        self.submit_button.on_click(lambda _button: self.submit())
        state.observe(self._on_state, names=["model_source", "params", "target"])

        self._load_kernels()
        super().__init__(children=[
            self.target,
            self.name,
            self.model_kind, self.model_source, self.model_path,
            self.kernel,
            widgets.HTML("<b>Training</b>"),
            widgets.HBox([self.mode, self.epochs]), widgets.HBox([self.chunk_size, self.batch_size]),
            widgets.HTML("<b>Resources</b>"),
            widgets.HBox([self.threads, self.timeout]), self.gpu,
            widgets.HBox([self.submit_button, self.message], layout=widgets.Layout(align_items="center")),
        ], **kwargs)
        if remote_problem:
            self._show(remote_problem, WARN_COLOR)
        self._on_target({"new": self.target.value})

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
        if self.target.value:
            self._on_target({"new": self.target.value})
            return None
        self.submit_button.disabled = True
        self.submit_button.description = "Submitting…"
        self._show("")
        try:
            body = self.request()
            if body["params"] != dict(self.state.params):
                self.state.params = body["params"]
            job = self.client.submit(**body)
        except Exception as err:  # noqa: BLE001 - every problem is shown, nothing raised
            message = str(err) if isinstance(err, MLaaS4HEPError) else f"unexpected error: {type(err).__name__}: {err}"
            self._show(message, ERROR_COLOR)
            self.state.message = message
            return None
        finally:
            self.submit_button.description = "Submit"
            self.submit_button.disabled = bool(self.target.value)
        self.last_job = job
        self.state.message = ""
        self._show(f"queued job {_esc(job.name)} (<code>{_esc(job.id)}</code>)", OK_COLOR, escape=False)
        self.state.job_id = job.id
        return job

    # -- reacting -----------------------------------------------------------------------------

    def _on_target(self, change: dict) -> None:
        name = change["new"] or ""
        if self.state.target != name:
            self.state.target = name
        self.submit_button.disabled = bool(name)
        if name:
            self._show(REMOTE_UNAVAILABLE.format(name=name, url=self.remotes.get(name, "?"), here=self.here_label),
                       WARN_COLOR)
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
        except ValueError:
            pass
        super().close()


def _esc(text: str) -> str:
    """HTML text content (quotes need no escaping there, and read better unescaped)."""
    return html.escape(text, quote=False)
