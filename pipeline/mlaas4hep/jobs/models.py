"""Request and response bodies of the jobs API (pydantic models; the OpenAPI document is made
from them)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator, model_validator

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: tuple[str, ...] = ("succeeded", "failed", "cancelled")

PATH_MAX = 4096  # Linux's longest path: a longer name is a mistake, said at once
LABEL_MAX = 200
JSON_DEPTH_MAX = 32  # params, preproc and specs are a few levels deep; far more is an attack or a bug

PathText = Annotated[str, Field(max_length=PATH_MAX)]


def json_depth(value: Any, limit: int = JSON_DEPTH_MAX) -> int:
    """How deeply ``value`` nests lists and dicts, counting no further than ``limit + 1`` (so that
    a hostile document is measured without recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth > limit:
                return deepest
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


class Resources(BaseModel):
    """What a job may use."""

    model_config = ConfigDict(extra="forbid")

    threads: int | None = Field(None, ge=1, le=1024, description="CPU threads for numpy, TensorFlow and PyTorch")
    gpu: bool = Field(True, description="let the job see the GPUs (false hides them)")
    timeout: float | None = Field(None, gt=0, description="seconds after which the job is cancelled")


class WorkflowRequest(BaseModel):
    """A training job: the same inputs as ``mlaas4hep workflow``."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200, description="a name to show; default: the model file's name")
    files: list[PathText] = Field(..., min_length=1,
                                  description="ROOT files: paths on the server, root:// or http(s):// URLs")
    labels: list[StrictStr | StrictInt] | None = Field(None, description="one label per file: integers (as numbers or "
                                                                            "strings) or class names")
    model: str | None = Field(None, description="the model.py source code")
    model_path: PathText | None = Field(None, description="a model.py on the server (instead of 'model'): a text file "
                                                          "under the server's root folder (or a folder its admin "
                                                          "allows), up to the server's size limit")
    params: dict[str, Any] = Field(default_factory=dict, description="params.json content")
    preproc: dict[str, Any] | None = Field(None, description="preproc.json content")
    specs: dict[str, Any] | None = Field(None, description="a specs file's content, for its normalisation")
    kernel: str | None = Field(None, description="the Jupyter kernelspec whose Python runs the job; default: the server's")
    resources: Resources = Field(default_factory=Resources)

    @field_validator("labels")
    @classmethod
    def _labels_as_text(cls, labels: list[str | int] | None) -> list[str] | None:
        """Numbers and names alike, as labels.txt has them."""
        if labels is None:
            return None
        out = []
        for i, label in enumerate(labels):
            text = str(label).strip()
            if not text or len(text) > LABEL_MAX:
                raise ValueError(f"label {i} must be an integer or a name of 1 to {LABEL_MAX} characters")
            out.append(text)
        return out

    @field_validator("params", "preproc", "specs")
    @classmethod
    def _not_too_deep(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and json_depth(value) > JSON_DEPTH_MAX:
            raise ValueError(f"nested more than {JSON_DEPTH_MAX} levels deep")
        return value

    @model_validator(mode="after")
    def _one_model(self) -> WorkflowRequest:
        if (self.model is None) == (self.model_path is None):
            raise ValueError("give exactly one of 'model' (the source) and 'model_path'")
        if self.labels is not None and len(self.labels) != len(self.files):
            raise ValueError(f"{len(self.labels)} labels for {len(self.files)} files; give one label per file")
        return self


class Progress(BaseModel):
    events_processed: int = 0
    events_total: int = 0
    rate: float = 0.0
    chunk: int | None = None
    epoch: int | None = None


class JobInfo(BaseModel):
    """A job as the API shows it."""

    id: str
    name: str
    owner: str
    status: JobStatus
    created: float = Field(..., description="Unix seconds")
    started: float | None = None
    finished: float | None = None
    kernel: str | None = None
    python: str | None = None
    progress: Progress = Field(default_factory=Progress)
    metrics: dict[str, Any] = Field(default_factory=dict, description="last epoch metrics, then the test metrics")
    error: str | None = None
    artifact: bool = Field(False, description="whether the artifact can be downloaded")


class JobList(BaseModel):
    jobs: list[JobInfo]


class EventsPage(BaseModel):
    events: list[dict[str, Any]]
    last_seq: int = Field(..., description="pass as 'since' to get the next events")
    status: JobStatus


class LogsPage(BaseModel):
    text: str
    offset: int = Field(..., description="pass as 'offset' to get what follows")
    size: int = Field(..., description="bytes in the log so far")


class KernelInfo(BaseModel):
    name: str
    display_name: str
    python: str
    language: str = "python"


class KernelList(BaseModel):
    kernels: list[KernelInfo]
    default: str


class ErrorBody(BaseModel):
    message: str
    reason: str | None = None
