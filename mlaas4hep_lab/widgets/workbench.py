"""The Workbench: every panel in tabs, over one shared state.

>>> from mlaas4hep_lab import Workbench
>>> Workbench(files="files.txt", labels="labels.txt", preproc="preproc.json")
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as w

from mlaas4hep.config import load_list, load_params, load_preproc

from .builder import PreprocBuilder
from .explorer import BranchExplorer
from .monitor import TrainingMonitor
from .state import WorkbenchState
from .submit import SubmitPanel

PathOrList = str | os.PathLike | Sequence[str]


class Workbench(w.VBox):
    """Preprocessing, exploration and training of one dataset, in tabs.

    ``files``/``labels``: lists, comma lists or paths of files.txt / labels.txt (none: pick files
    in the first tab). ``params``/``preproc``: dicts or paths of params.json / preproc.json.
    ``client``: where jobs run (default: this server, or in-process jobs without one).
    ``units``: a unit per branch for Explore's axes (``{"jetPt": "GeV"}``), where the files'
    branch titles give none; the user can change them in Explore.
    """

    def __init__(self, files: PathOrList | None = None, labels: PathOrList | None = None,
                 params: str | os.PathLike | Mapping[str, Any] | None = None,
                 preproc: str | os.PathLike | Mapping[str, Any] | None = None, *,
                 model: str | os.PathLike | None = None, sample_size: int = 20_000, client: Any = None,
                 units: Mapping[str, str] | None = None):
        super().__init__()
        state = WorkbenchState(sample_size=sample_size, units=dict(units or {}))
        if params is not None:
            load_params(params)  # a mistake is reported here, with the file and key
            state.params = _json(params)
        if preproc is not None:
            load_preproc(preproc)
            state.preproc = _json(preproc)
        if model is not None:
            state.model_source = Path(model).read_text() if os.path.exists(model) else str(model)
        if labels is not None:
            state.labels = [e.value for e in load_list(labels, "labels")]
        if files is not None:
            state.files = [e.value for e in load_list(files, "files")]
        self.state = state
        self.builder = PreprocBuilder(state)
        self.explorer = BranchExplorer(state)
        self.submit = SubmitPanel(state, client=client)
        self.monitor = TrainingMonitor(state=state, client=self.submit.client)
        self.new_job = w.Accordion(children=[self.submit], titles=("New job",))
        self.train = w.VBox([self.submit, self.monitor])
        state.observe(self._job_changed, "job_id")
        self.tabs = w.Tab(children=[self.builder, self.explorer, self.train])
        for i, title in enumerate(("Preprocessing", "Explore", "Train")):
            self.tabs.set_title(i, title)
        self.children = [w.HTML("<h3 style='margin:4px 0'>MLaaS4HEP workbench</h3>"), self.tabs]

    def _job_changed(self, change: dict) -> None:
        """With a job attached, its monitor comes first and the form folds into "New job"."""
        if change["new"]:
            self.new_job.selected_index = None
            self.train.children = [self.monitor, self.new_job]
        else:
            self.train.children = [self.submit, self.monitor]

    @property
    def preproc(self) -> dict:
        """The preproc.json being built."""
        return self.builder.to_dict()


def _json(source: str | os.PathLike | Mapping[str, Any]) -> dict:
    if isinstance(source, Mapping):
        return dict(source)
    return json.loads(Path(source).read_text())
