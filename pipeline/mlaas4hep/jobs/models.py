"""Request and response bodies of the jobs API (pydantic models; the OpenAPI document is made
from them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: tuple[str, ...] = ("succeeded", "failed", "cancelled")


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
    files: list[str] = Field(..., min_length=1, description="ROOT files: paths on the server, root:// or http(s):// URLs")
    labels: list[str] | None = Field(None, description="one label per file (integers or class names)")
    model: str | None = Field(None, description="the model.py source code")
    model_path: str | None = Field(None, description="a model.py on the server (instead of 'model')")
    params: dict[str, Any] = Field(default_factory=dict, description="params.json content")
    preproc: dict[str, Any] | None = Field(None, description="preproc.json content")
    specs: dict[str, Any] | None = Field(None, description="a specs file's content, for its normalisation")
    kernel: str | None = Field(None, description="the Jupyter kernelspec whose Python runs the job; default: the server's")
    resources: Resources = Field(default_factory=Resources)

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
