"""REST handlers of the jobs API under ``<base_url>/mlaas4hep/api/v1``: thin, over the JobManager.

Every handler needs an authenticated user: the Jupyter server's own login (cookie or token), or
``Authorization: Bearer <secret>`` with the per-server secret that the extension hands to
kernels (``MLAAS4HEP_LAB_TOKEN``). Errors are JSON ``{"message", "reason"}`` with the status
the API document gives. A request body is strict JSON (no NaN or Infinity), UTF-8, and at most
``MLaaS4HEPLab.max_body_size`` bytes (413 beyond, refused while it arrives).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jupyter_server.auth import authorized
from jupyter_server.auth.identity import User
from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel, ValidationError
from tornado import web

from mlaas4hep.errors import MLaaS4HEPError
from mlaas4hep.jobs import FINISHED, JobManager, JobNotFound, JobStateError, KernelList, WorkflowRequest
from mlaas4hep.jobs.api import DOCUMENT

API = "mlaas4hep/api/v1"
# blocking manager calls (submit, cancel, archive) run here, never on the event loop nor in its
# default executor, which other code may fill
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mlaas4hep-api")
JOB_ID = r"(?P<job_id>[0-9a-f]{1,32})"
_BEARER = re.compile(r"bearer\s+(\S+)", re.IGNORECASE)
MAX_BODY_SIZE = 4 * 1024 * 1024  # default of MLaaS4HEPLab.max_body_size
EVENTS_TIMEOUT_MAX = 30.0


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:40]} is out of range")
    return number


def parse_json_body(data: bytes) -> Any:
    """A request body as strict JSON: UTF-8, no NaN / Infinity, finite numbers. Errors are
    400s that say what is wrong."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise web.HTTPError(400, f"the request body is not UTF-8: byte {data[err.start]:#04x} at offset "
                                 f"{err.start}") from None
    try:
        return json.loads(text or "{}", parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as err:
        raise web.HTTPError(400, f"the request body is not valid JSON: {err.msg} at line {err.lineno}") from None
    except RecursionError:
        raise web.HTTPError(400, "the request body is not valid here: JSON nested too deeply") from None
    except ValueError as err:  # NaN, Infinity, 1e400, an integer of thousands of digits
        raise web.HTTPError(400, f"the request body is not valid here: {err}") from None


def error_status(err: Exception) -> int:
    if isinstance(err, JobNotFound):
        return 404
    if isinstance(err, JobStateError):
        return 409
    return 400


class BaseHandler(APIHandler):
    auth_resource = "mlaas4hep"

    @property
    def manager(self) -> JobManager:
        return self.settings["mlaas4hep_manager"]

    @property
    def owner(self) -> str:
        return self.settings["mlaas4hep_owner"]

    async def prepare(self) -> None:
        """Accept the kernels' per-server secret; anything else goes through Jupyter's own login."""
        match = _BEARER.match(self.request.headers.get("Authorization", ""))
        secret = self.settings.get("mlaas4hep_secret")
        if match and secret and hmac.compare_digest(match.group(1).encode(), secret.encode()):
            # header-authenticated, so no cookie and no XSRF check is involved
            self.current_user = self._jupyter_current_user = User(username=self.owner, name=self.owner)
            self.set_cors_headers()
            return
        await super().prepare()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json")
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason
        self.finish(json.dumps({"message": message, "reason": self._reason}))

    def send(self, body: BaseModel | dict | None, status: int = 200) -> None:
        self.set_status(status)
        if body is None:
            self.finish()
            return
        self.set_header("Content-Type", "application/json")
        self.finish(body.model_dump_json() if isinstance(body, BaseModel) else json.dumps(body))

    def fail(self, err: Exception) -> None:
        raise web.HTTPError(error_status(err), str(err)) from err

    def query_number(self, name: str, default: float, cast: type = int) -> float:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            value = cast(raw)
        except ValueError:
            value = None
        if value is None or (cast is float and not math.isfinite(value)):
            raise web.HTTPError(400, f"query parameter {name!r} must be a finite number, got {raw[:40]!r}")
        return value


@web.stream_request_body
class BodyHandler(BaseHandler):
    """A handler whose JSON body is limited in size: the body is taken as it arrives and a
    too-large one is refused with 413, before it fills the server's memory."""

    def initialize(self) -> None:
        self._chunks: list[bytes] = []
        self._received = 0

    @property
    def max_body_size(self) -> int:
        return self.settings.get("mlaas4hep_max_body_size", MAX_BODY_SIZE)

    async def prepare(self) -> None:
        await super().prepare()
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_body_size:
            raise web.HTTPError(413, f"the request body has {length} bytes; this server takes at most "
                                     f"{self.max_body_size} (MLaaS4HEPLab.max_body_size)")
        # a body that comes without a length is still cut off: tornado stops reading past this
        self.request.connection.set_max_body_size(self.max_body_size + 1)

    def data_received(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self._received <= self.max_body_size:
            self._chunks.append(chunk)

    def json_body(self) -> Any:
        if self._received > self.max_body_size:
            raise web.HTTPError(413, f"the request body has over {self.max_body_size} bytes; this server takes at "
                                     f"most {self.max_body_size} (MLaaS4HEPLab.max_body_size)")
        return parse_json_body(b"".join(self._chunks))


class JobsHandler(BodyHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        from mlaas4hep.jobs import JobList

        self.send(JobList(jobs=self.manager.list(self.owner)))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        try:
            request = WorkflowRequest.model_validate(body)
        except ValidationError as err:
            raise web.HTTPError(400, "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
                                               for e in err.errors())) from None
        try:
            job = await asyncio.get_running_loop().run_in_executor(_POOL, self.manager.submit, request, self.owner)
        except MLaaS4HEPError as err:
            self.fail(err)
        self.send(job, 201)


class JobHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        try:
            self.send(self.manager.get(job_id, self.owner))
        except MLaaS4HEPError as err:
            self.fail(err)

    @web.authenticated
    @authorized
    async def delete(self, job_id: str) -> None:
        try:
            self.manager.delete(job_id, self.owner)
        except MLaaS4HEPError as err:
            self.fail(err)
        self.send(None, 204)


class CancelHandler(BodyHandler):
    @web.authenticated
    @authorized
    async def post(self, job_id: str) -> None:
        try:
            job = await asyncio.get_running_loop().run_in_executor(_POOL, self.manager.cancel, job_id, self.owner)
        except MLaaS4HEPError as err:
            self.fail(err)
        self.send(job)


class EventsHandler(BaseHandler):
    """A long-poll: it answers at the first new event, when the job ends, at ``timeout`` (at
    most 30 s), and stops waiting as soon as its client goes away."""

    def initialize(self) -> None:
        self._gone = asyncio.Event()

    def on_connection_close(self) -> None:
        self._gone.set()

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        since = int(self.query_number("since", 0))
        timeout = self.query_number("timeout", 10.0, float)
        if timeout < 0:
            raise web.HTTPError(400, f"query parameter 'timeout' must be 0 or more seconds, got {timeout:g}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(timeout, EVENTS_TIMEOUT_MAX)
        try:
            while True:
                page = self.manager.events(job_id, since, self.owner)
                if page.events or page.status in FINISHED or loop.time() >= deadline:
                    break
                try:
                    await asyncio.wait_for(self._gone.wait(), timeout=min(0.25, max(deadline - loop.time(), 0)))
                except asyncio.TimeoutError:
                    continue
                return  # the client went away: nobody to answer
        except MLaaS4HEPError as err:
            self.fail(err)
        self.send(page)


class LogsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        try:
            self.send(self.manager.logs(job_id, int(self.query_number("offset", 0)), owner=self.owner))
        except MLaaS4HEPError as err:
            self.fail(err)


class ArtifactHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        try:
            archive = await asyncio.get_running_loop().run_in_executor(
                _POOL, self.manager.artifact_archive, job_id, self.owner)
        except MLaaS4HEPError as err:
            self.fail(err)
        self.set_header("Content-Type", "application/gzip")
        self.set_header("Content-Disposition", f'attachment; filename="mlaas4hep-{job_id}-artifact.tar.gz"')
        with archive.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                self.write(chunk)
                await self.flush()
        self.finish()


class KernelsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        kernels = self.settings["mlaas4hep_kernels"]()
        default = self.settings.get("mlaas4hep_default_kernel", "python3")
        self.send(KernelList(kernels=list(kernels.values()), default=default if default in kernels else "python3"))


class OpenAPIHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(DOCUMENT.read_text())


#: (path under the API, handler): what the API document lists, operation by operation.
ROUTES: list[tuple[str, type[BaseHandler]]] = [
    ("/jobs", JobsHandler),
    (f"/jobs/{JOB_ID}", JobHandler),
    (f"/jobs/{JOB_ID}/cancel", CancelHandler),
    (f"/jobs/{JOB_ID}/events", EventsHandler),
    (f"/jobs/{JOB_ID}/logs", LogsHandler),
    (f"/jobs/{JOB_ID}/artifact", ArtifactHandler),
    ("/kernels", KernelsHandler),
    ("/openapi.json", OpenAPIHandler),
]
