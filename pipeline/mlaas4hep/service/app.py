"""The FastAPI application of ``mlaas4hep serve``: the jobs API under ``/api/v1`` (the same
operations and models as the JupyterLab extension), uploads, who-am-I and health, and the
original service's verbs (:mod:`.legacy`). Routes are thin: the user comes from one dependency
(:class:`.auth.Authenticator`), the work is done by the JobManager and :class:`.users.UserSpace`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.routing import Match

from .._version import __version__
from ..errors import ConfigError, MLaaS4HEPError
from ..jobs import FINISHED, JobManager, JobNotFound, JobStateError, WorkflowRequest
from ..jobs.models import EventsPage, JobInfo, JobList, KernelList, LogsPage
from . import json_codec
from .archive import UnsafeArchive
from .auth import Authenticator, auth_error_body
from .config import ServeConfig
from .models import Health, UploadInfo, UploadList, UserInfo
from .openapi import DOCUMENT
from .tokens import AuthError, IssuerUnavailable, TokenValidator, User
from .users import CACHE, Conflict, LimitExceeded, NotFound, ProcessNames, UserSpace, disk_usage

log = logging.getLogger("mlaas4hep.service")
MAX_JSON_BODY = 16 << 20  # a job request: model source, params, preproc, specs


class Service:
    """What the routes share: settings, the JobManager, token checks, users' spaces."""

    def __init__(self, config: ServeConfig, manager: JobManager | None = None):
        self.config = config
        self.data_dir = Path(config.data_dir).expanduser().resolve()
        self.users_dir = self.data_dir / "users"
        self.users_dir.mkdir(parents=True, exist_ok=True)
        # relative names in requests are resolved by this service inside the user's folder; the
        # manager's own base folder is empty, so that nothing resolves against the server's cwd
        empty = self.data_dir / "empty"
        empty.mkdir(exist_ok=True)
        self.manager = JobsDisabled() if config.no_jobs else \
            manager or JobManager(self.data_dir / "state", config.concurrency, owner="service",
                                  base_dir=empty, executor=_executor(config))
        from ..serving.routes import ModelService

        self.serving = ModelService(config, None if config.no_jobs else self.manager)
        self.validator = TokenValidator(config.issuer, config.audience, config.required_scope,
                                        config.allowed_groups, config.leeway, config.jwks_refresh_interval)
        self.authenticate = Authenticator(self.validator, config.trusted_proxies)
        self.names = ProcessNames(self.data_dir / "service.sqlite")
        self._user_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def space(self, user: User) -> UserSpace:
        return UserSpace(self.users_dir / user.id)

    def user_lock(self, user: User) -> threading.Lock:
        with self._locks_lock:
            return self._user_locks.setdefault(user.id, threading.Lock())

    def usage(self, user: User) -> int:
        """Bytes on disk of this user: folders, uploads and job folders."""
        total = disk_usage(self.space(user).root) if self.space(user).root.exists() else 0
        for row in ([] if self.config.no_jobs else self.manager.store.list(user.id)):
            total += disk_usage(Path(row["folder"]))
        return total

    def check_disk(self, user: User, adding: int = 0) -> int:
        """Bytes left to this user; :class:`LimitExceeded` (413) when ``adding`` does not fit."""
        left = self.config.max_disk_bytes - self.usage(user)
        if adding > left:
            raise LimitExceeded(f"over your disk limit: {adding} more bytes, {max(left, 0)} left of "
                                f"{self.config.max_disk_bytes} (delete old jobs, uploads or folders)", 413)
        return left

    def check_active(self, user: User) -> None:
        active = len(self.manager.store.list(user.id, status=("queued", "running")))
        if active >= self.config.max_active_jobs:
            raise LimitExceeded(f"you have {active} queued or running jobs, the limit is "
                                f"{self.config.max_active_jobs}; wait for some to finish or cancel them", 429)

    def submit(self, user: User, request: WorkflowRequest) -> JobInfo:
        """A job of ``user``: its local files confined to the user's folder, within the limits."""
        space = self.space(user)
        redirector = str((request.params or {}).get("redirector") or "")
        files = [space.resolve_file(f, f"files[{i}]", redirector=redirector) for i, f in enumerate(request.files)]
        # the specs cache of the user's jobs is the user's own (inside their folder): a job never
        # reads specs another user's job wrote
        params = dict(request.params or {})
        cache = params.get("cache_dir")
        if cache and not isinstance(cache, str):
            raise ConfigError(f"expected a folder name, got {cache!r}", where="params: cache_dir")
        params["cache_dir"] = str(space.confine(cache or CACHE, "params: cache_dir", must_exist=False))
        update: dict[str, Any] = {"files": files, "params": params}
        if request.model_path is not None:
            path = space.confine(request.model_path, "model_path")
            update = {**update, "model": _read_text(path, "model_path"), "model_path": None}
            update["name"] = request.name or path.name
        request = request.model_copy(update=update)
        with self.user_lock(user):
            self.check_active(user)
            self.check_disk(user)
            return self.manager.submit(request, owner=user.id)

    def public(self, user: User | None, message: str) -> str:
        """A message without the server's own paths: the user's folder shows as relative names."""
        if user is not None:
            root = str(self.space(user).root)
            message = message.replace(root + "/", "").replace(root, ".")
        return message.replace(str(self.data_dir), "<data>")

    def close(self) -> None:
        self.serving.close()
        self.manager.close()
        self.names.close()


class JobsDisabled:
    """The JobManager of a serving-only service (``--no-jobs``): every jobs route answers 404."""

    def __getattr__(self, name: str) -> Any:
        raise NotFound("this service serves models only (started with --no-jobs): no jobs or uploads here")

    def close(self) -> None:
        pass


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise MLaaS4HEPError(f"cannot read {path.name}: {err}", where=what) from None


def error_status(err: Exception) -> int:
    if isinstance(err, (JobNotFound, NotFound)):
        return 404
    if isinstance(err, (JobStateError, Conflict)):
        return 409
    if isinstance(err, LimitExceeded):
        return err.status
    return getattr(err, "http_status", 400)


def validation_message(err: ValidationError | RequestValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
                     for e in err.errors())


async def json_body(request: Request, limit: int = MAX_JSON_BODY) -> Any:
    """The request's JSON body, whatever its Content-Type (``curl -d @input.json`` sends a form type)."""
    check_length(request.headers.get("content-length"), limit)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise LimitExceeded(f"the request body is larger than {limit} bytes", 413)
    return parse_json(data)


def check_length(length: str | None, limit: int = MAX_JSON_BODY) -> None:
    """413 before reading a body whose Content-Length is over ``limit``."""
    if length is not None and length.isdigit() and int(length) > limit:
        raise LimitExceeded(f"the request body has {length} bytes; at most {limit} are accepted", 413)


def parse_json(data: bytes | bytearray) -> Any:
    """A request body's JSON value (an empty body is null); 400 with the parser's reason if it is not JSON."""
    try:
        return json_codec.loads(data or b"null")
    except ValueError as err:
        raise MLaaS4HEPError(f"the request body is not valid JSON: {err}") from None
    except RecursionError:
        raise MLaaS4HEPError("the request body is nested too deeply") from None


def error_response(err: Exception, path: str, method: str, service: Service | None,
                   user: User | None) -> JSONResponse:
    """The JSON answer ``{"message", "reason"}`` (the Open Inference Protocol's ``{"error"}`` too
    under /v2) to an error raised while serving ``path``, never a traceback: the service's
    exception handlers and the prediction fast path (:mod:`mlaas4hep.serving.fastpath`) both
    answer with it. Starlette's HTTP exceptions (404 / 405 of routing) are not handled here."""
    v2 = path.startswith("/v2")
    if isinstance(err, AuthError):
        body = auth_error_body(err)
        if v2:
            body = {"error": body.get("message", "not authenticated"), **body}
        return JSONResponse(body, status_code=err.status, headers={"WWW-Authenticate": err.www_authenticate()})
    headers = None
    if isinstance(err, IssuerUnavailable):
        log.error("token issuer unavailable: %s", err)
        status, message, reason = 503, f"tokens cannot be checked now: {err}", "issuer_unavailable"
        headers = {"Retry-After": "10"}
    elif isinstance(err, MLaaS4HEPError):
        status, message = error_status(err), str(err)
        reason = {404: "not_found", 409: "conflict", 413: "too_large", 429: "too_many_jobs"}.get(status, "bad_request")
        if isinstance(err, UnsafeArchive):
            reason = "unsafe_archive"
    elif isinstance(err, (RequestValidationError, ValidationError)):
        status, message, reason = 400, validation_message(err), "bad_request"
    else:
        log.exception("internal error on %s %s", method, path, exc_info=err)
        status, message = 500, f"internal error: {type(err).__name__} (reported in the service's log)"
        reason = "internal_error"
    return json_error(path, status, message, reason, service, user, headers)


def json_error(path: str, status: int, message: str, reason: str, service: Service | None, user: User | None,
               headers: dict[str, str] | None = None) -> JSONResponse:
    """``{"message", "reason"}`` (and the Open Inference Protocol's ``{"error"}`` under /v2), the
    message as this user may see it."""
    if service is not None:
        message = service.public(user, message)
    body = {"message": message, "reason": reason}
    if path.startswith("/v2"):
        body = {"error": message, **body}
    return JSONResponse(body, status_code=status, headers=headers)


async def get_service(request: Request) -> Service:
    return request.app.state.service


async def get_user(request: Request) -> User:
    """The authenticated user (every route but /health depends on this). A token seen before is
    answered from memory; a new one is checked in a worker thread (it may fetch the issuer's keys)."""
    authenticate = request.app.state.service.authenticate
    user = authenticate.cached(request) or await run_in_threadpool(authenticate, request)
    request.state.user = user
    return user


Svc = Annotated[Service, Depends(get_service)]
CurrentUser = Annotated[User, Depends(get_user)]


def create_app(config: ServeConfig, manager: JobManager | None = None) -> FastAPI:
    service_holder: dict[str, Service] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service = Service(config, manager)
        app.state.service = service
        service_holder["service"] = service
        yield
        service.close()

    from ..serving.fastpath import ServiceApp  # FastAPI, with the prediction routes on a fast path

    app = ServiceApp(title="MLaaS4HEP service", version=__version__, lifespan=lifespan, openapi_url=None,
                  docs_url=None, redoc_url=None)

    # -- errors: always JSON {"message", "reason"}, never a traceback ---------------------------

    async def _handled(request: Request, err: Exception) -> JSONResponse:
        return error_response(err, request.url.path, request.method, getattr(request.app.state, "service", None),
                              getattr(request.state, "user", None))

    for kind in (AuthError, IssuerUnavailable, MLaaS4HEPError, RequestValidationError, ValidationError, Exception):
        app.add_exception_handler(kind, _handled)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException):
        reason = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code, "error")
        headers = dict(getattr(err, "headers", None) or {})
        if err.status_code == 405:  # every method of the path, not only those of the first route matched
            methods = {m for route in request.app.state.api_router.routes
                       if route.matches(request.scope)[0] != Match.NONE for m in route.methods}
            if methods:
                headers["Allow"] = ", ".join(sorted(methods))
        return json_error(request.url.path, err.status_code, str(err.detail), reason,
                          getattr(request.app.state, "service", None), getattr(request.state, "user", None), headers)

    # -- the jobs API ----------------------------------------------------------------------------

    api = APIRouter(prefix="/api/v1")

    @api.get("/health", response_model=Health)
    def health(service: Svc) -> Health:
        if service.config.no_jobs:
            return Health(status="ok", version=__version__, jobs_queued=0, jobs_running=0)
        queued = len(service.manager.store.list(status=("queued",)))
        running = len(service.manager.store.list(status=("running",)))
        return Health(status="ok", version=__version__, jobs_queued=queued, jobs_running=running)

    @api.get("/whoami", response_model=UserInfo)
    def whoami(user: CurrentUser) -> UserInfo:
        return UserInfo(id=user.id, issuer=user.issuer, subject=user.subject, name=user.name,
                        scopes=list(user.scopes), groups=list(user.groups), via=user.via)

    @api.get("/openapi.json")
    def openapi(user: CurrentUser) -> Response:
        return Response(DOCUMENT.read_bytes(), media_type="application/json")

    @api.get("/jobs", response_model=JobList)
    def list_jobs(service: Svc, user: CurrentUser) -> JobList:
        return JobList(jobs=service.manager.list(user.id))

    @api.post("/jobs", response_model=JobInfo, status_code=201)
    async def submit_job(request: Request, service: Svc, user: CurrentUser) -> JobInfo:
        data = await json_body(request)
        # 'publish': {"name", "public"} publishes the job's artifact when it succeeds (not a field of
        # the workflow itself, so the JupyterLab extension's request model is unchanged)
        publish = data.pop("publish", None) if isinstance(data, dict) else None
        body = WorkflowRequest.model_validate(data)
        publishing = service.serving.check_publish(user.id, publish) if publish is not None else None
        job = await run_in_threadpool(service.submit, user, body)
        if publishing is not None:
            service.serving.publish_when_done(user.id, job.id, publishing)
        return job

    @api.get("/jobs/{job_id}", response_model=JobInfo)
    async def get_job(job_id: str, service: Svc, user: CurrentUser) -> Response:
        # the hottest route (clients poll it): one SQLite row by key, no thread hop, and the
        # model serialised once by pydantic instead of dumped, re-validated and encoded again
        return Response(service.manager.get(job_id, user.id).model_dump_json(), media_type="application/json")

    @api.delete("/jobs/{job_id}", status_code=204)
    def delete_job(job_id: str, service: Svc, user: CurrentUser) -> Response:
        service.manager.delete(job_id, user.id)
        return Response(status_code=204)

    @api.post("/jobs/{job_id}/cancel", response_model=JobInfo)
    def cancel_job(job_id: str, service: Svc, user: CurrentUser) -> JobInfo:
        return service.manager.cancel(job_id, user.id)

    @api.get("/jobs/{job_id}/events", response_model=EventsPage)
    async def job_events(job_id: str, service: Svc, user: CurrentUser, since: int = 0,
                         timeout: float = 10.0) -> EventsPage:
        timeout = min(max(timeout, 0.0), 30.0) if timeout == timeout else 0.0  # NaN waits not at all
        deadline = time.monotonic() + timeout
        while True:
            page = await run_in_threadpool(service.manager.events, job_id, max(since, 0), user.id)
            if page.events or page.status in FINISHED or time.monotonic() >= deadline:
                return page
            await asyncio.sleep(0.25)

    @api.get("/jobs/{job_id}/logs", response_model=LogsPage)
    def job_logs(job_id: str, service: Svc, user: CurrentUser, offset: int = 0) -> LogsPage:
        return service.manager.logs(job_id, max(offset, 0), owner=user.id)

    @api.get("/jobs/{job_id}/artifact")
    def job_artifact(job_id: str, service: Svc, user: CurrentUser) -> FileResponse:
        archive = service.manager.artifact_archive(job_id, user.id)
        return FileResponse(archive, media_type="application/gzip", filename=f"mlaas4hep-{job_id}-artifact.tar.gz")

    @api.get("/kernels", response_model=KernelList)
    def kernels(service: Svc, user: CurrentUser) -> KernelList:
        found = service.manager.kernels()
        return KernelList(kernels=sorted(found.values(), key=lambda k: k.name), default="python3")

    # -- uploads ---------------------------------------------------------------------------------

    @api.post("/uploads", response_model=UploadInfo, status_code=201)
    async def create_upload(request: Request, service: Svc, user: CurrentUser) -> UploadInfo:
        archive = await receive_archive(request, service, user)
        space = service.space(user)

        def unpack() -> UploadInfo:
            with service.user_lock(user):
                left = service.check_disk(user)
                upload_id, unpacked = space.new_upload(archive.file, service.config.max_archive_members,
                                                       min(service.config.max_unpacked_bytes, left))
            return UploadInfo(id=upload_id, path=f"uploads/{upload_id}", files=unpacked.files, bytes=unpacked.bytes,
                              created=time.time())

        try:
            return await run_in_threadpool(unpack)
        finally:
            await archive.close()

    @api.get("/uploads", response_model=UploadList)
    def list_uploads(service: Svc, user: CurrentUser) -> UploadList:
        space = service.space(user)
        uploads = []
        if space.uploads.is_dir():
            for folder in sorted(space.uploads.iterdir(), key=lambda p: p.stat().st_mtime):
                files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
                uploads.append(UploadInfo(id=folder.name, path=f"uploads/{folder.name}", files=files,
                                          bytes=disk_usage(folder), created=folder.stat().st_mtime))
        return UploadList(uploads=uploads)

    @api.delete("/uploads/{upload_id}", status_code=204)
    def delete_upload(upload_id: str, service: Svc, user: CurrentUser) -> Response:
        import shutil

        path = service.space(user).upload_path(upload_id)
        shutil.rmtree(path)
        return Response(status_code=204)

    from ..serving.routes import add_model_routes, tfaas_router, v2_router

    add_model_routes(api)
    # the prediction routes first: a request is matched against the routes in order
    app.include_router(tfaas_router())
    app.include_router(v2_router())
    app.include_router(api)
    app.state.api_router = api  # the test that the OpenAPI document covers every route reads it

    from .legacy import legacy_router

    app.include_router(legacy_router())
    return app


async def upload_limits(request: Request, service: Service, user: User) -> None:
    """The size checks of an upload (411 / 413), before its body is read."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise LimitExceeded("send the archive with a Content-Length (uploads are not accepted chunked)", 411)
    if int(length) > service.config.max_upload_bytes:
        raise LimitExceeded(f"the upload has {length} bytes; at most {service.config.max_upload_bytes} are "
                            "accepted", 413)
    await run_in_threadpool(service.check_disk, user, int(length))
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise MLaaS4HEPError("send the archive as multipart/form-data in the field 'file' "
                             "(curl -F 'file=@inputs.tar.gz')")


async def receive_archive(request: Request, service: Service, user: User):
    """The multipart field ``file`` of an upload, after the size checks (411 / 413)."""
    await upload_limits(request, service, user)
    try:
        form = await request.form(max_files=1, max_fields=8)
    except (MultiPartException, StarletteHTTPException, ValueError) as err:
        raise MLaaS4HEPError(f"the multipart body cannot be read: {getattr(err, 'detail', err)}") from None
    archive = form.get("file")
    if archive is None or isinstance(archive, str):
        await form.close()
        raise MLaaS4HEPError("no archive: send it in the multipart field 'file' (curl -F 'file=@inputs.tar.gz')")
    return archive


def _executor(config: ServeConfig) -> Any:
    """Jobs on this machine, or on Dask workers (``--dask``)."""
    from ..jobs.executor import make_executor

    if not config.dask:
        return make_executor("")
    from ..jobs.dask_executor import parse_resources

    return make_executor(config.dask, parse_resources(config.dask_resources))
