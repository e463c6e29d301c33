"""The one small state object the panels share. Panels observe its traits and set them; they
never call each other."""

from __future__ import annotations

import threading
from typing import Any

from traitlets import Dict, HasTraits, Int, List, Unicode, observe

from mlaas4hep.explore import Sample


class WorkbenchState(HasTraits):
    """What the user is working on.

    - ``files``, ``labels``: the inputs (labels: one per file, or empty for unlabelled).
    - ``params``: params.json content; ``preproc``: the preproc.json content (the original
      format), set by the builder only when it is valid; ``preproc_draft`` is what the builder
      holds now (valid or not) and ``preproc_error`` why it is invalid ("" when valid), so that
      other panels can say what they show instead.
    - ``sample_size``: events per file in the previews.
    - ``job_id``: the job the monitor shows (set by the submit panel, or by the user).
    - ``target``: where jobs go: ``""`` for this server (or in-process), else a remote's name.
    - ``message``: the last problem a panel wants the user to see ("" when all is well).
    - ``units``: the unit the user gave to a branch in Explore (``{"jetPt": "GeV"}``), shown on
      its axes instead of the one in the branch's title.
    """

    files = List(Unicode())
    labels = List(Unicode())
    params = Dict()
    preproc = Dict()
    preproc_draft = Dict()
    preproc_error = Unicode("")
    sample_size = Int(20_000)
    model_source = Unicode("")
    job_id = Unicode("")
    target = Unicode("")
    message = Unicode("")
    units = Dict()

    def __init__(self, **kwargs: Any):
        self._sample: Sample | None = None  # before the traits: setting them notifies observers
        self._lock = threading.Lock()
        super().__init__(**kwargs)

    def sample(self) -> Sample | None:
        """The preview sample of the current inputs (read lazily, kept until they change);
        None without files."""
        with self._lock:
            if self._sample is None and self.files:
                labels = list(self.labels) if self.labels else None
                self._sample = Sample(list(self.files), labels=labels, params=dict(self.params) or None,
                                      n_events=self.sample_size)
            return self._sample

    def peek_sample(self) -> Sample | None:
        """The preview sample if it has been read already (None otherwise; never reads)."""
        with self._lock:
            return self._sample

    @observe("files", "labels", "params", "sample_size")
    def _inputs_changed(self, change: dict) -> None:
        if change["name"] == "params" and _same_data_params(change["old"], change["new"]):
            return  # epochs, batch size ... do not change what the sample holds
        with self._lock:
            if self._sample is not None:
                self._sample.close()
            self._sample = None


_DATA_KEYS = ("branch", "redirector", "retries", "retry_wait", "timeout")


def _same_data_params(old: Any, new: Any) -> bool:
    if not isinstance(old, dict) or not isinstance(new, dict):  # the first assignment: old is Undefined
        return False
    return all(old.get(k) == new.get(k) for k in _DATA_KEYS)
