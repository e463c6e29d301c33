"""Bodies of the service's own operations (uploads, who am I, health, the original's verbs).
The jobs operations use the jobs API's models (:mod:`mlaas4hep.jobs.models`), unchanged."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class UploadInfo(BaseModel):
    id: str
    path: str = Field(..., description="name files inside the upload in job requests as '<path>/<file>'")
    files: list[str]
    bytes: int
    created: float | None = None


class UploadList(BaseModel):
    uploads: list[UploadInfo]


class UserInfo(BaseModel):
    """The user as the service sees it (from the validated token, never from a request body)."""

    id: str = Field(..., description="the service's name for (issuer, subject): jobs' owner and folder name")
    issuer: str
    subject: str
    name: str = Field(..., description="preferred_username or email, for display")
    scopes: list[str]
    groups: list[str]
    via: str = Field(..., description="'bearer' (a token) or 'proxy' (headers from a trusted OAuth2-Proxy)")


class Health(BaseModel):
    status: str
    version: str
    jobs_queued: int
    jobs_running: int


class OriginalSubmit(BaseModel):
    """The original service's input.json: names of files inside the user's folder ``name``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., description="the folder given to /upload?name=...")
    files: str = Field(..., description="files.txt inside the folder (relative entries are taken from the folder)")
    labels: str | None = Field(None, description="labels.txt inside the folder")
    model: str = Field(..., description="model.py inside the folder")
    params: str | None = Field(None, description="params.json inside the folder")
    preproc: str | None = Field(None, description="preproc.json inside the folder")
    specs: str | None = Field(None, description="a specs file inside the folder")
    fout: str | None = Field(None, description="accepted for compatibility; the model comes back from /model")
    device: str | None = Field(None, description="'cpu' hides the GPUs from the job, 'gpu' shows them")
    cpus: str | int | float | None = Field(None, description="threads for the job")
    memory: str | None = Field(None, description="accepted and checked (e.g. '3gb'); not enforced")
    kernel: str | None = None
    # the original ran a container with these host paths; here the folder is the user's own
    host_folder: Any = Field(None, description="ignored (the original's container mount)")
    cert_folder: Any = Field(None, description="ignored (the original's container mount)")


class ProcessCreated(BaseModel):
    process_name: str
    job_id: str


class ProcessStatus(BaseModel):
    process_name: str
    job_id: str
    status: str
    error: str | None = None


class FolderResult(BaseModel):
    name: str
    files: list[str] = Field(default_factory=list, description="files written or removed")
    bytes: int = 0
