"""The original MLaaS4HEP service's verbs, as thin aliases for the authenticated user, so that
the paper's curl calls work:

    curl -H "Authorization: Bearer $TOKEN" -F "file=@folder.tar.gz" .../upload?name=luca
    curl -H "Authorization: Bearer $TOKEN" -d @input.json .../submit
    curl -H "Authorization: Bearer $TOKEN" .../status?process_name=luca_1
    curl -H "Authorization: Bearer $TOKEN" -o logs.txt .../logs?process_name=luca_1
    curl -H "Authorization: Bearer $TOKEN" -o luca_1.tar.gz .../model?process_name=luca_1
    curl -H "Authorization: Bearer $TOKEN" .../delete_specs?name=luca
    curl -H "Authorization: Bearer $TOKEN" .../delete_folder?name=luca

Unlike the original, the folder ``name`` is the user's own (two users may both have ``luca``),
nothing reaches a shell, and errors are JSON with a real status code.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from ..config import load_list
from ..errors import ConfigError, MLaaS4HEPError
from ..jobs import FINISHED, WorkflowRequest
from ..jobs.models import Resources
from .app import CurrentUser, Svc, json_body, receive_archive
from .models import FolderResult, OriginalSubmit, ProcessCreated, ProcessStatus
from .users import CACHE, Conflict, check_name

_MEMORY = re.compile(r"\s*\d+(\.\d+)?\s*([kmgt]i?b?|b)?\s*", re.IGNORECASE)


def legacy_router() -> APIRouter:

    router = APIRouter(include_in_schema=False)

    @router.post("/upload", status_code=201, response_model=FolderResult)
    async def upload(request: Request, service: Svc, user: CurrentUser, name: str | None = None) -> FolderResult:
        check_name(name, "name")
        archive = await receive_archive(request, service, user)

        def unpack() -> FolderResult:
            with service.user_lock(user):
                _check_unused(service, user, name)
                left = service.check_disk(user)
                unpacked = service.space(user).replace_folder(name, archive.file, service.config.max_archive_members,
                                                              min(service.config.max_unpacked_bytes, left))
            return FolderResult(name=name, files=unpacked.files, bytes=unpacked.bytes)

        try:
            return await run_in_threadpool(unpack)
        finally:
            await archive.close()

    @router.post("/submit", status_code=201, response_model=ProcessCreated)
    async def submit(request: Request, service: Svc, user: CurrentUser) -> ProcessCreated:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise ConfigError("input.json must be a JSON object", hint="see the README's input.json")
        original = OriginalSubmit.model_validate(body)

        def run() -> ProcessCreated:
            job_request = to_workflow_request(service.space(user), original)
            job = service.submit(user, job_request)
            name = service.names.add(user.id, original.name, job.id)
            return ProcessCreated(process_name=name, job_id=job.id)

        return await run_in_threadpool(run)

    def process_status(process_name: str, service, user) -> ProcessStatus:
        job_id = service.names.job_id(user.id, process_name)
        job = service.manager.get(job_id, user.id)
        return ProcessStatus(process_name=process_name, job_id=job_id, status=job.status, error=job.error)

    @router.get("/status", response_model=ProcessStatus)
    def status(process_name: str, service: Svc, user: CurrentUser) -> ProcessStatus:
        return process_status(process_name, service, user)

    @router.get("/status_docker", response_model=ProcessStatus)
    def status_docker(process_name: str, service: Svc, user: CurrentUser) -> ProcessStatus:
        return process_status(process_name, service, user)

    @router.get("/logs")
    def logs(process_name: str, service: Svc, user: CurrentUser) -> PlainTextResponse:
        job_id = service.names.job_id(user.id, process_name)
        page = service.manager.logs(job_id, 0, limit=64 << 20, owner=user.id)
        disposition = f'attachment; filename="{process_name}.txt"'
        return PlainTextResponse(page.text, headers={"Content-Disposition": disposition})

    @router.get("/model")
    def model(process_name: str, service: Svc, user: CurrentUser) -> FileResponse:
        job_id = service.names.job_id(user.id, process_name)
        archive = service.manager.artifact_archive(job_id, user.id)
        return FileResponse(archive, media_type="application/gzip", filename=f"{process_name}.tar.gz")

    @router.get("/delete_specs", response_model=FolderResult)
    def delete_specs(service: Svc, user: CurrentUser, name: str | None = None) -> FolderResult:
        """The original removed the specs files in the folder, so that the next job computes
        them again; here that is the folder's ``*specs*`` files and this user's specs cache."""
        check_name(name, "name")
        space = service.space(user)
        folder = space.folder(name)
        removed = []
        for path in sorted(folder.rglob("*specs*")):
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed.append(str(path.relative_to(folder)))
        cache = space.root / CACHE
        if cache.is_dir():
            removed += sorted(str(p.relative_to(space.root)) for p in cache.rglob("*") if p.is_file())
            shutil.rmtree(cache)
        return FolderResult(name=name, files=removed)

    @router.get("/delete_folder", response_model=FolderResult)
    def delete_folder(service: Svc, user: CurrentUser, name: str | None = None) -> FolderResult:
        check_name(name, "name")
        with service.user_lock(user):
            folder = service.space(user).folder(name)
            _check_unused(service, user, name)
            files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
            shutil.rmtree(folder)
        return FolderResult(name=name, files=files)

    return router


def _check_unused(service, user, name: str) -> None:
    """Folders read by queued or running jobs are not replaced or removed under them."""
    for job_id in service.names.jobs_of_folder(user.id, name):
        try:
            job = service.manager.get(job_id, user.id)
        except MLaaS4HEPError:
            continue  # the job was deleted
        if job.status not in FINISHED:
            raise Conflict(f"folder {name!r} is in use by job {job_id} ({job.status}); wait for it or cancel it")


def to_workflow_request(space, original: OriginalSubmit) -> WorkflowRequest:
    """The original's input.json (names inside the user's folder) as a jobs API request."""
    folder = space.folder(original.name)

    def inside(value: str | None, key: str) -> Path | None:
        if value is None:
            return None
        return space.confine(value, f"input.json: {key}", base=folder)

    def read_json(value: str | None, key: str) -> dict[str, Any] | None:
        path = inside(value, key)
        if path is None:
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise ConfigError(f"cannot read {value} as JSON: {err}", where=f"input.json: {key}") from None
        except RecursionError:
            raise ConfigError(f"{value} is nested too deeply", where=f"input.json: {key}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{value} must hold a JSON object", where=f"input.json: {key}")
        return data

    params = read_json(original.params, "params") or {}
    files_list = inside(original.files, "files")
    redirector = str(params.get("redirector") or "")
    files = [space.resolve_file(e.value, f"{original.files}:{e.origin.rsplit(':', 1)[-1]}", base=folder,
                                redirector=redirector) for e in load_list(str(files_list), "files")]
    labels = None
    if original.labels is not None:
        labels = [e.value for e in load_list(str(inside(original.labels, "labels")), "labels")]
    model_path = inside(original.model, "model")
    try:
        source = model_path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {original.model}: {err}", where="input.json: model") from None
    resources: dict[str, Any] = {}
    if original.cpus not in (None, ""):
        try:
            resources["threads"] = max(1, int(float(original.cpus)))
        except (TypeError, ValueError):
            raise ConfigError(f"cpus must be a number, got {original.cpus!r}", where="input.json: cpus") from None
    if original.device is not None:
        if original.device.lower() not in ("cpu", "gpu"):
            raise ConfigError(f"device must be 'cpu' or 'gpu', got {original.device!r}", where="input.json: device")
        resources["gpu"] = original.device.lower() == "gpu"
    if original.memory is not None and not _MEMORY.fullmatch(str(original.memory)):
        raise ConfigError(f"memory must look like '3gb' or '512mb', got {original.memory!r}",
                          where="input.json: memory")
    if original.fout is not None:
        check_name(original.fout, "input.json: fout")
    return WorkflowRequest(
        name=original.name, files=files, labels=labels, model=source, params=params,
        preproc=read_json(original.preproc, "preproc"), specs=read_json(original.specs, "specs"),
        kernel=original.kernel, resources=Resources(**resources),
    )
