"""The jobs REST API, described once: its operations and the OpenAPI document made from them.

Both HTTP faces serve exactly these operations: the Jupyter server extension under
``<base_url>/mlaas4hep/api/v1`` and the remote service under ``/api/v1``. The document is kept
in the repository as ``openapi.json`` beside this file; ``python -m mlaas4hep.jobs.api`` writes
it, and a test fails when the code and the committed document differ.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .._version import __version__
from .models import ErrorBody, EventsPage, JobInfo, JobList, KernelList, LogsPage, WorkflowRequest

DOCUMENT = Path(__file__).with_name("openapi.json")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # with {job_id}
    operation_id: str
    summary: str
    response: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    query: tuple[tuple[str, str, str], ...] = ()  # (name, type, description)
    binary: str | None = None  # media type of a binary response
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/jobs", "listJobs", "This user's jobs, oldest first", JobList),
    Operation("POST", "/jobs", "submitJob", "Queue a training job", JobInfo, body=WorkflowRequest, status=201,
              errors=(400, 413), description="The request is checked (params, preproc, labels, local files, model.py "
                                              "syntax, kernel) before anything is queued. The body is strict JSON "
                                              "(no NaN or Infinity) of at most the server's size limit; a "
                                              "model_path must name a regular text file under the server's "
                                              "folders, within its size limit."),
    Operation("GET", "/jobs/{job_id}", "getJob", "A job's status, progress and last metrics", JobInfo, errors=(404,)),
    Operation("DELETE", "/jobs/{job_id}", "deleteJob", "Remove a finished job and its files", None, status=204,
              errors=(404, 409)),
    Operation("POST", "/jobs/{job_id}/cancel", "cancelJob",
              "Stop a queued or running job (SIGTERM to its process group, then SIGKILL)", JobInfo, errors=(404, 409)),
    Operation("GET", "/jobs/{job_id}/events", "jobEvents", "The job's events after 'since' (long-poll)", EventsPage,
              errors=(400, 404), query=(("since", "integer", "return events with seq above this (default 0)"),
                                        ("timeout", "number", "seconds to wait for an event while the job is active "
                                                              "(default 10; at most 30 are waited; a finite "
                                                              "number of 0 or more)"))),
    Operation("GET", "/jobs/{job_id}/logs", "jobLogs", "The job's log from a byte offset", LogsPage, errors=(400, 404),
              query=(("offset", "integer", "byte offset to read from (default 0)"),)),
    Operation("GET", "/jobs/{job_id}/artifact", "jobArtifact", "The trained model and its contract, as tar.gz",
              errors=(404, 409), binary="application/gzip"),
    Operation("GET", "/kernels", "listKernels", "Jupyter kernelspecs whose Python can run jobs", KernelList),
    Operation("GET", "/openapi.json", "openapi", "This document", None, binary="application/json"),
)

_STATUS_TEXT = {200: "OK", 201: "Created", 204: "No content", 400: "Bad request (the message says what and where)",
                401: "Not authenticated", 403: "Not authorized", 404: "No such job", 409: "Not in this state",
                411: "Length required", 413: "Too large (over a limit of this user)",
                429: "Too many active jobs for this user", 503: "The token issuer cannot be reached"}


def _schemas(extra: tuple[type[BaseModel], ...] = ()) -> dict[str, Any]:
    models = [WorkflowRequest, JobInfo, JobList, EventsPage, LogsPage, KernelList, ErrorBody, *extra]
    out: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[model.__name__] = schema
    return dict(sorted(out.items()))


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def path_item(op: Operation) -> dict[str, Any]:
    """The OpenAPI operation object of ``op`` (the service adds its own operations with it)."""
    item: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary,
                            "security": [] if op.extra.get("public") else [{"bearer": []}], "responses": {}}
    if op.description:
        item["description"] = op.description
    parameters = []
    for name in re.findall(r"{(\w+)}", op.path):
        parameters.append({"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
    for name, kind, text in op.query:
        parameters.append({"name": name, "in": "query", "required": False, "description": text,
                           "schema": {"type": kind}})
    if parameters:
        item["parameters"] = parameters
    if op.body is not None:
        item["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(op.body)}}}
    elif "requestBody" in op.extra:
        item["requestBody"] = op.extra["requestBody"]
    ok: dict[str, Any] = {"description": _STATUS_TEXT[op.status]}
    if op.response is not None:
        ok["content"] = {"application/json": {"schema": _ref(op.response)}}
    elif op.binary:
        ok["content"] = {op.binary: {"schema": {"type": "string", "format": "binary"}}}
    item["responses"][str(op.status)] = ok
    errors = set(op.errors) if op.extra.get("public") else set(op.errors) | {401, 403}
    for code in sorted(errors):
        item["responses"][str(code)] = {"description": _STATUS_TEXT[code],
                                        "content": {"application/json": {"schema": _ref(ErrorBody)}}}
    return item


def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = path_item(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "MLaaS4HEP jobs API", "version": __version__,
                 "description": "Training jobs on ROOT data. Served by the JupyterLab extension under "
                                "<base_url>/mlaas4hep/api/v1 and by the MLaaS4HEP service under /api/v1. "
                                "Every operation needs a bearer token (or the Jupyter server's own login)."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": _schemas()},
        "paths": paths,
    }


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    DOCUMENT.write_text(render())
    print(f"wrote {DOCUMENT}", file=sys.stderr)
