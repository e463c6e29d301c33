"""The service's OpenAPI document: the jobs API's operations (the same as the server
extension's) plus the service's own, made from the same models and the same code as the jobs
document. Kept in the repository as ``openapi.json`` beside this file;
``python -m mlaas4hep.service.openapi`` writes it, and a test fails when they differ."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..jobs import api
from ..jobs.api import Operation
from ..jobs.models import ErrorBody
from ..serving.protocol import EventScores, EventsRequest, ModelInfo, ModelList, PublishRequest
from .models import Health, UploadInfo, UploadList, UserInfo

DOCUMENT = Path(__file__).with_name("openapi.json")

_MULTIPART = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary", "description": "a tar.gz archive"}}}}}}

_MODEL_MULTIPART = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["name"],
    "properties": {"name": {"type": "string"}, "public": {"type": "string", "enum": ["true", "false"]},
                   "file": {"type": "string", "format": "binary", "description": "a tar.gz of a model folder"},
                   "model": {"type": "string", "format": "binary", "description": "a Keras file or a tar.gz of a "
                                                                                  "SavedModel"},
                   "params": {"type": "string", "format": "binary", "description": "params.json"},
                   "labels": {"type": "string", "format": "binary", "description": "labels.txt"}}}}}}

SERVICE_OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/health", "health", "Whether the service runs (no token needed)", Health,
              extra={"public": True}),
    Operation("GET", "/whoami", "whoami", "The user as the service sees it", UserInfo),
    Operation("POST", "/uploads", "createUpload", "Unpack a tar.gz of inputs (ROOT files, model.py, params.json, "
              "preproc.json) into a new upload", UploadInfo, status=201, errors=(400, 411, 413),
              description="Members must be plain files or folders with relative names (no '..', links, devices); "
                          "the number of members and the unpacked bytes are capped. Jobs name the files as "
                          "'uploads/<id>/<file>'.", extra={"requestBody": _MULTIPART}),
    Operation("GET", "/uploads", "listUploads", "This user's uploads", UploadList),
    Operation("DELETE", "/uploads/{upload_id}", "deleteUpload", "Remove an upload", None, status=204,
              errors=(404,)),
    Operation("GET", "/models", "listModels", "The models this user may use: their own and public ones", ModelList),
    Operation("POST", "/models", "uploadModel", "Publish a model from an upload", ModelInfo, status=201,
              errors=(400, 409, 411, 413),
              description="Multipart fields: 'name', 'public' (true/false) and either 'file' (a tar.gz of a job's "
                          "artifact folder, or of a folder with a TFaaS-style params.json) or 'model' (a Keras file, "
                          "or a tar.gz of a TF SavedModel folder) with 'params' (params.json) and optionally "
                          "'labels' (labels.txt). Archives are unpacked with the uploads' checks; the model is "
                          "loaded once before it is published. A name belongs to whoever first published it.",
              extra={"requestBody": _MODEL_MULTIPART}),
    Operation("GET", "/models/{name}", "getModel", "A model's latest version: features, branches, preproc, labels, "
              "framework, metrics", ModelInfo, errors=(404,)),
    Operation("GET", "/models/{name}/{version}", "getModelVersion", "One version of a model", ModelInfo,
              errors=(404,)),
    Operation("DELETE", "/models/{name}", "deleteModel", "Remove every version of one's own model (and unload it)",
              None, status=204, errors=(404,)),
    Operation("DELETE", "/models/{name}/{version}", "deleteModelVersion", "Remove one version of one's own model",
              None, status=204, errors=(404,)),
    Operation("POST", "/models/{name}/predict", "predictEvents", "Scores of raw events: the artifact's own preproc, "
              "specs and tensorize are applied", EventScores, body=EventsRequest, errors=(400, 404, 413),
              description="Branches column-oriented: a flat branch is a list of numbers (NaN or null where the ROOT "
                          "file has NaN), a jagged one a list of lists. Events that fail the cuts get a null score "
                          "and passed false."),
    Operation("POST", "/jobs/{job_id}/publish", "publishJob", "Publish a succeeded job's artifact as a model",
              ModelInfo, body=PublishRequest, status=201, errors=(400, 404, 409)),
)


def service_document() -> dict[str, Any]:
    doc = api.openapi_document()
    doc["info"]["title"] = "MLaaS4HEP service API"
    doc["info"]["description"] = (
        "Training jobs on ROOT data, for the users of an OIDC issuer. Every operation but /health needs "
        "'Authorization: Bearer <access token>'; a user sees only their own jobs and uploads. The jobs "
        "operations are those of the JupyterLab extension's API.")
    doc["servers"] = [{"url": "/api/v1"}]
    for op in api.OPERATIONS:  # the service's answers on top of the extension's
        item = doc["paths"][op.path][op.method.lower()]
        extra = [400] if op.query or op.body else []
        extra += [429, 413] if op.operation_id == "submitJob" else []
        for code in sorted(set(extra + [503]) - set(map(int, item["responses"]))):
            item["responses"][str(code)] = {"description": api._STATUS_TEXT[code], "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{ErrorBody.__name__}"}}}}
        item["responses"] = dict(sorted(item["responses"].items()))
    doc["paths"]["/openapi.json"]["get"]["responses"]["200"]["content"] = {
        "application/json": {"schema": {"type": "object", "description": "an OpenAPI 3.1 document"}}}
    for op in SERVICE_OPERATIONS:
        doc["paths"].setdefault(op.path, {})[op.method.lower()] = api.path_item(op)
        if not op.extra.get("public"):
            doc["paths"][op.path][op.method.lower()]["responses"].setdefault("503", {
                "description": api._STATUS_TEXT[503],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
    # links: where the ids of the other operations come from (clients and Schemathesis' stateful
    # phase follow them)
    job_ops = [op for op in api.OPERATIONS if "{job_id}" in op.path]
    for path, method, status, pointer in (("/jobs", "get", "200", "/jobs/0/id"), ("/jobs", "post", "201", "/id")):
        doc["paths"][path][method]["responses"][status]["links"] = {
            op.operation_id: {"operationId": op.operation_id, "parameters": {"job_id": f"$response.body#{pointer}"}}
            for op in job_ops}
    for path, method, status, pointer in (("/uploads", "get", "200", "/uploads/0/id"),
                                          ("/uploads", "post", "201", "/id")):
        doc["paths"][path][method]["responses"][status]["links"] = {
            "deleteUpload": {"operationId": "deleteUpload", "parameters": {"upload_id": f"$response.body#{pointer}"}}}
    # a job request may carry 'publish' (the service's, not the extension's): publish when it succeeds
    doc["paths"]["/jobs"]["post"]["description"] += (
        " The service also takes 'publish': {\"name\": ..., \"public\": false} beside the workflow's fields, to "
        "publish the job's artifact as a model when the job succeeds.")
    doc["components"]["schemas"] = api._schemas((Health, UserInfo, UploadInfo, UploadList, ModelInfo, ModelList,
                                                 PublishRequest, EventsRequest, EventScores))
    doc["paths"] = dict(sorted(doc["paths"].items()))
    return doc


def render() -> str:
    return json.dumps(service_document(), indent=2) + "\n"


if __name__ == "__main__":
    DOCUMENT.write_text(render())
    print(f"wrote {DOCUMENT}", file=sys.stderr)
