"""``Client``: one way to run jobs, whether on this Jupyter server, a remote MLaaS4HEP service,
or (without any server) an in-process :class:`~mlaas4hep.jobs.JobManager`.

Inside a kernel of a JupyterLab with the extension, ``Client()`` finds its server through
``MLAAS4HEP_LAB_URL`` and ``MLAAS4HEP_LAB_TOKEN``, which the extension puts in the environment
kernels inherit. Elsewhere, ``Client(url, token=...)`` talks to that server, and ``Client()``
with neither falls back to a JobManager on the default job folder.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ConfigError, MLaaS4HEPError
from .jobs.models import FINISHED, EventsPage, JobInfo, KernelList, LogsPage, WorkflowRequest

API_PATH = "/mlaas4hep/api/v1"


def default_root() -> Path:
    """The default job folder, shared by the server extension and the in-process fallback."""
    if os.environ.get("MLAAS4HEP_JOB_ROOT"):
        return Path(os.environ["MLAAS4HEP_JOB_ROOT"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "mlaas4hep"


class ServerError(MLaaS4HEPError):
    """The server answered with an error (``status`` is the HTTP status)."""

    def __init__(self, message: str, status: int, where: str | None = None, hint: str | None = None):
        self.status = status
        super().__init__(message, where=where, hint=hint)


class Client:
    """Jobs on a server (``url``, with a bearer ``token``) or, with neither, in this process."""

    def __init__(self, url: str | None = None, token: str | None = None, *, root: str | os.PathLike | None = None,
                 timeout: float = 60.0):
        own_url = os.environ.get("MLAAS4HEP_LAB_URL")
        url = url or own_url
        self.timeout = timeout
        self._manager = None
        self.user_token = False
        self.remote = False
        if url:
            url = url.rstrip("/")
            self.api = url if url.endswith("/api/v1") else url + API_PATH
            # the kernels' secret is for their own server only, never sent to another host
            own = bool(own_url) and url == own_url.rstrip("/")
            #: a remote MLaaS4HEP service (``.../api/v1``, not a Jupyter server's jobs API, which
            #: reads files where it runs and takes no uploads): local input files are uploaded to it
            self.remote = not own and not self.api.endswith(API_PATH)
            if token is None and own:
                token = os.environ.get("MLAAS4HEP_LAB_TOKEN")
            self.token = token
            # another server without a token given: the user's own OIDC token, looked up per
            # request (mlaas4hep_lab.hub: MLAAS4HEP_TOKEN, a token file, or JupyterHub's auth_state)
            self.user_token = token is None and not own
            import requests

            self._http = requests.Session()
            if self.token:
                self._http.headers["Authorization"] = f"Bearer {self.token}"
        else:
            from .jobs import JobManager

            self.api = None
            self._manager = JobManager(root or default_root())

    @property
    def local(self) -> bool:
        """True when jobs run through an in-process manager (no server)."""
        return self._manager is not None

    def __repr__(self) -> str:
        return f"Client({self.api!r})" if self.api else f"Client(local: {self._manager.root})"

    # -- HTTP ---------------------------------------------------------------------------------

    def send(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
             timeout: float | None = None, files: dict | None = None, data: bytes | None = None,
             headers: dict[str, str] | None = None) -> Any:
        """One request to the server (``path`` under its API), with the user's token and one retry
        with a fresh token after a 401; the ``requests.Response`` whatever its status. An
        unreachable server, and a 401/403 where no token could be found, raise :class:`ServerError`."""
        response, _source = self._send(method, path, json=json, params=params, timeout=timeout, files=files,
                                       data=data, headers=headers)
        return response

    def _send(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
              timeout: float | None = None, files: dict | None = None, data: bytes | None = None,
              headers: dict[str, str] | None = None) -> tuple[Any, str | None]:
        import requests

        url = self.api + path
        auth, problem, source = self._user_auth(refresh=False)

        def request() -> Any:
            return self._http.request(method, url, json=json, params=params, files=files, data=data,
                                      headers={**(headers or {}), **(auth or {})}, timeout=timeout or self.timeout)

        try:
            response = request()
            if response.status_code == 401 and self.user_token and problem is None:
                # the token may have expired since it was cached: once more with a fresh one
                auth, problem, source = self._user_auth(refresh=True)
                if problem is None:
                    response = request()
        except requests.ConnectionError as err:
            raise ServerError(f"cannot reach the MLaaS4HEP server: {_reason(err)}", 0, where=self.api,
                              hint="is the server running, and the URL right?") from None
        except requests.Timeout:
            raise ServerError(f"the server did not answer within {timeout or self.timeout:g} s", 0, where=url) from None
        if response.status_code in (401, 403) and problem is not None:
            # the service wants a token and none could be found: say what to set up
            found = f"{problem.where}: {problem.message}" if problem.where else problem.message
            raise ServerError(f"{_message(response)} (HTTP {response.status_code}); {found}",
                              response.status_code, where=f"{method} {url}", hint=problem.hint)
        return response, source

    def _call(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
              timeout: float | None = None, raw: bool = False, files: dict | None = None) -> Any:
        url = self.api + path
        response, source = self._send(method, path, json=json, params=params, timeout=timeout, files=files)
        if response.status_code >= 400:
            message = _message(response)
            hint = None
            if response.status_code == 401:
                hint = ("the service refused your token" + (f" (from {source})" if source else "")
                        + ": it is missing, wrong or expired")
            elif response.status_code == 403:
                hint = "the token is missing, wrong or expired, or it does not allow this"
            elif response.status_code == 413:
                hint = "the upload is larger than the service accepts: upload less, or ask its admin for more"
            raise ServerError(f"{message} (HTTP {response.status_code})", response.status_code,
                              where=f"{method} {url}", hint=hint)
        if raw:
            return response.content
        return response.json() if response.content else None

    def _user_auth(self, refresh: bool) -> tuple[dict[str, str] | None, Any, str | None]:
        """The Authorization header of the user's own token (``user_token``), and the
        :class:`~mlaas4hep_lab.hub.TokenError` when there is none (the request then goes
        without, so servers that need no token still work), and where the token came from."""
        if not self.user_token:
            return None, None, None
        from mlaas4hep_lab.hub import TokenError, find_token

        try:
            token = find_token(refresh)
        except TokenError as err:
            return None, err, None
        return {"Authorization": f"Bearer {token.value}"}, None, token.source

    # -- jobs ---------------------------------------------------------------------------------

    def submit(self, request: WorkflowRequest | dict[str, Any] | None = None, **fields: Any) -> JobInfo:
        """Queue a training job (a :class:`~mlaas4hep.jobs.WorkflowRequest` or its fields).
        Local file paths are made absolute, so they mean the same on the server."""
        body = dict(request.model_dump() if isinstance(request, WorkflowRequest) else (request or {}))
        body.update(fields)
        if self.remote:
            body = self.send_inputs(body)
        body["files"] = [_absolute(f) for f in body.get("files") or []]
        if body.get("model_path"):
            body["model_path"] = _absolute(body["model_path"])
        try:
            request = WorkflowRequest.model_validate(body)
        except Exception as err:  # pydantic's ValidationError: say which field
            raise ConfigError(_validation_message(err), where="job request") from None
        if self._manager:
            return self._manager.submit(request)
        return JobInfo.model_validate(self._call("POST", "/jobs", json=request.model_dump(exclude_none=True)))

    def jobs(self) -> list[JobInfo]:
        if self._manager:
            return self._manager.list()
        return [JobInfo.model_validate(j) for j in self._call("GET", "/jobs")["jobs"]]

    def job(self, job_id: str) -> JobInfo:
        if self._manager:
            return self._manager.get(job_id)
        return JobInfo.model_validate(self._call("GET", f"/jobs/{job_id}"))

    def events(self, job_id: str, since: int = 0, wait: float = 0.0) -> EventsPage:
        """Events after ``since``; with ``wait`` > 0, waits up to that long for one (long-poll)."""
        if self._manager:
            return self._manager.wait_events(job_id, since, wait)
        return EventsPage.model_validate(self._call("GET", f"/jobs/{job_id}/events", params={"since": since, "timeout": wait},
                                                    timeout=self.timeout + wait))

    def logs(self, job_id: str, offset: int = 0) -> LogsPage:
        if self._manager:
            return self._manager.logs(job_id, offset)
        return LogsPage.model_validate(self._call("GET", f"/jobs/{job_id}/logs", params={"offset": offset}))

    def cancel(self, job_id: str) -> JobInfo:
        if self._manager:
            return self._manager.cancel(job_id)
        return JobInfo.model_validate(self._call("POST", f"/jobs/{job_id}/cancel"))

    def delete(self, job_id: str) -> None:
        if self._manager:
            self._manager.delete(job_id)
        else:
            self._call("DELETE", f"/jobs/{job_id}")

    def artifact(self, job_id: str, dest: str | os.PathLike = ".") -> Path:
        """Download the job's artifact and unpack it into ``dest``/artifact-<id>; returns that folder."""
        if self._manager:
            data = self._manager.artifact_archive(job_id).read_bytes()
        else:
            data = self._call("GET", f"/jobs/{job_id}/artifact", raw=True)
        target = Path(dest) / f"artifact-{job_id}"
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = [m for m in tar.getmembers() if _safe_member(m)]
            for member in members:
                member.name = member.name.split("/", 1)[1] if "/" in member.name else ""
            tar.extractall(target, members=[m for m in members if m.name], filter="data")
        return target

    def upload(self, source: str | os.PathLike) -> dict[str, Any]:
        """Send a folder (packed here) or a tar.gz of inputs to a remote MLaaS4HEP service
        (``POST uploads``); jobs then name its files as ``<path>/<file>`` of the answer, e.g.
        ``client.submit(files=[f"{up['path']}/inputs/sig.root", ...])``."""
        if self._manager:
            raise ConfigError("uploads are for a remote MLaaS4HEP service; local jobs read local files",
                              hint="give Client(url, token=...) of a service")
        source = Path(source)
        if source.is_dir():
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
                tar.add(source, arcname=source.name)
            data, name = buffer.getvalue(), source.name + ".tar.gz"
        elif source.is_file():
            data, name = source.read_bytes(), source.name
        else:
            raise ConfigError("no such folder or archive", where=str(source))
        return self._call("POST", "/uploads", files={"file": (name, data, "application/gzip")},
                          timeout=max(self.timeout, 600.0))

    def send_inputs(self, body: dict[str, Any]) -> dict[str, Any]:
        """For a remote service: upload the request's ``files`` and ``model_path`` that are files
        here (one tar.gz, ``POST uploads``) and name them by their uploaded paths; ``root://``,
        ``https://`` and names that are not files here are left as they are."""
        body = dict(body)
        files = [str(f) for f in body.get("files") or []]
        model = body.get("model_path")
        local = [f for f in dict.fromkeys([*files, *([model] if model else [])]) if _is_local_file(f)]
        if not local:
            return body
        names, used = {}, set()
        for path in local:
            name = os.path.basename(path)
            if name in used:  # the same name in two folders: both go, under distinct names
                stem, dot, ext = name.partition(".")
                name = next(f"{stem}-{i}{dot}{ext}" for i in range(2, len(local) + 2)
                            if f"{stem}-{i}{dot}{ext}" not in used)
            used.add(name)
            names[path] = name
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for path, name in names.items():
                tar.add(path, arcname=f"inputs/{name}", recursive=False)
        up = self._call("POST", "/uploads", files={"file": ("inputs.tar.gz", buffer.getvalue(), "application/gzip")},
                        timeout=max(self.timeout, 600.0))
        remote = {path: f"{up['path']}/inputs/{name}" for path, name in names.items()}
        body["files"] = [remote.get(f, f) for f in files]
        if model:
            body["model_path"] = remote.get(model, model)
        return body

    # -- served models (a remote MLaaS4HEP service) ------------------------------------------------

    def _service_only(self, what: str) -> None:
        if self._manager:
            raise ConfigError(f"{what} needs a remote MLaaS4HEP service", hint="give Client(url, token=...) of a "
                                                                               "service (mlaas4hep serve)")

    def models(self) -> list[dict[str, Any]]:
        """The models this user may use on the service (their own and public ones)."""
        self._service_only("the model registry")
        return self._call("GET", "/models")["models"]

    def model(self, name: str, version: int | None = None) -> dict[str, Any]:
        """A model's metadata: features, branches, preproc, labels, framework, metrics."""
        self._service_only("the model registry")
        return self._call("GET", f"/models/{name}" + (f"/{version}" if version is not None else ""))

    def publish(self, job_id: str, name: str, public: bool = False) -> dict[str, Any]:
        """Publish a succeeded job's artifact on the service as model ``name``."""
        self._service_only("publishing")
        return self._call("POST", f"/jobs/{job_id}/publish", json={"name": name, "public": public})

    def predict(self, model: str, events: Any, version: int | None = None):
        """Scores of raw events from a served model: ``events`` maps branch names to arrays (numpy
        for flat branches, awkward or lists of lists for jagged ones), as read from the ROOT file.
        The service applies the model's own preproc and normalisation. Returns float32 scores (one
        column per class for several classes) with NaN where an event fails the cuts, like
        :meth:`Artifact.predict <mlaas4hep.artifact.Artifact.predict>`."""
        import numpy as np

        self._service_only("predict")
        body: dict[str, Any] = {"events": json_columns(events)}
        if version is not None:
            body["version"] = version
        answer = self._call("POST", f"/models/{model}/predict", json=body)
        scores = answer["scores"]
        width = next((len(s) for s in scores if isinstance(s, list)), None)
        if width is None:
            return np.array([np.nan if s is None else s for s in scores], np.float32)
        return np.array([[np.nan] * width if s is None else s for s in scores], np.float32).reshape(-1, width)

    def kernels(self) -> KernelList:
        if self._manager:
            from .jobs.kernels import DEFAULT, find_kernels

            return KernelList(kernels=list(find_kernels().values()), default=DEFAULT)
        return KernelList.model_validate(self._call("GET", "/kernels"))

    def follow(self, job_id: str, on_event: Callable[[dict[str, Any]], None] | None = None, since: int = 0,
               timeout: float | None = None) -> JobInfo:
        """Deliver the job's events to ``on_event`` as they come, until it finishes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            page = self.events(job_id, since, wait=10.0)
            for event in page.events:
                if on_event:
                    on_event(event)
            since = page.last_seq
            if page.status in FINISHED and not page.events:
                return self.job(job_id)
            if deadline is not None and time.monotonic() >= deadline:
                return self.job(job_id)

    def close(self) -> None:
        if self._manager:
            self._manager.close()


def json_columns(events: Any) -> dict[str, list]:
    """Branch arrays as JSON columns: a flat branch a list of numbers, a jagged one a list of lists;
    NaN as null (strict JSON has no NaN)."""
    import awkward as ak
    import numpy as np

    out: dict[str, list] = {}
    for name, values in dict(events).items():
        if isinstance(values, ak.Array) and values.ndim > 1:
            counts = np.asarray(ak.num(values, axis=1))
            flat = _nan_as_none(np.asarray(ak.flatten(values, axis=1)))
            bounds = np.cumsum(counts)[:-1]
            out[name] = [part.tolist() for part in np.split(flat, bounds)] if len(counts) else []
        elif isinstance(values, (list, tuple)):
            out[name] = list(values)
        else:
            out[name] = _nan_as_none(np.asarray(values)).tolist()
    return out


def _nan_as_none(array):
    import numpy as np

    if array.dtype.kind == "f" and np.isnan(array).any():
        array = array.astype(object)
        array[np.isnan(array.astype(float))] = None
    return array


_SHARED: dict[tuple, Client] = {}
_SHARED_LOCK = threading.Lock()


def shared_client(url: str | None = None, token: str | None = None) -> Client:
    """One :class:`Client` per server and token (or per local job folder) for the whole process.

    Notebook panels and the magic share it, so a notebook never runs several in-process job
    managers (each with a scheduler thread) on one job folder.
    """
    url = url or os.environ.get("MLAAS4HEP_LAB_URL")
    key = ("http", url.rstrip("/"), token) if url else ("local", str(default_root().expanduser().resolve()))
    with _SHARED_LOCK:
        client = _SHARED.get(key)
        if client is None:
            client = _SHARED[key] = Client(url, token=token) if url else Client()
        return client


def close_shared_clients() -> None:
    """Close every shared client (their in-process managers stop scheduling)."""
    with _SHARED_LOCK:
        while _SHARED:
            _SHARED.popitem()[1].close()


def service_api(url: str) -> str:
    """The jobs API of a ``mlaas4hep serve`` at ``url`` (``https://host`` -> ``https://host/api/v1``)."""
    url = url.rstrip("/")
    return url if url.endswith("/api/v1") else url + "/api/v1"


def remotes(text: str | None = None) -> dict[str, dict[str, str]]:
    """The remote MLaaS4HEP services of ``MLAAS4HEP_REMOTES`` (or ``text``): a JSON object of
    name -> URL, or name -> ``{"url": ..., "token": ...}``; as name -> ``{"url", "token"?}``."""
    text = os.environ.get("MLAAS4HEP_REMOTES", "") if text is None else text
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ConfigError(f"not valid JSON ({err})", where="env MLAAS4HEP_REMOTES",
                          hint='a JSON object {"name": "https://host"}') from None
    if not isinstance(data, dict):
        raise ConfigError('not a JSON object {"name": "https://host", ...}', where="env MLAAS4HEP_REMOTES")
    found = {}
    for name, entry in data.items():
        entry = {"url": entry} if isinstance(entry, str) else entry
        url = entry.get("url") if isinstance(entry, dict) else None
        if not name or not isinstance(url, str) or not re.match(r"https?://", url, re.IGNORECASE):
            raise ConfigError(f"remote {name!r} has no http(s):// URL", where="env MLAAS4HEP_REMOTES",
                              hint='give "name": "https://host" or "name": {"url": "https://host"}')
        token = entry.get("token")
        found[name] = {"url": url, **({"token": token} if isinstance(token, str) and token else {})}
    return found


def resolve_remote(remote: str, token: str | None = None) -> tuple[str, str | None]:
    """The jobs API URL and token of ``remote``: an http(s):// URL of a service, or a name in
    ``MLAAS4HEP_REMOTES``. Without a token, the client uses the user's own (``access_token()``)."""
    if re.match(r"https?://", remote, re.IGNORECASE):
        return service_api(remote), token
    known = remotes()
    if remote not in known:
        names = ", ".join(sorted(known)) or "none (MLAAS4HEP_REMOTES is not set)"
        raise ConfigError(f"unknown remote {remote!r}", where="--remote",
                          hint=f"give an http(s):// URL or a name in MLAAS4HEP_REMOTES; known: {names}")
    return service_api(known[remote]["url"]), token or known[remote].get("token")


def remote_client(remote: str, token: str | None = None) -> Client:
    """The shared :class:`Client` of a remote service (a name in ``MLAAS4HEP_REMOTES`` or a URL)."""
    url, token = resolve_remote(remote, token)
    return shared_client(url, token)


def _is_local_file(path: str) -> bool:
    return "://" not in path and os.path.isfile(path)


def _absolute(path: str) -> str:
    if "://" in path or os.path.isabs(path) or not os.path.exists(path):
        return path
    return os.path.abspath(path)


def _safe_member(member: tarfile.TarInfo) -> bool:
    """No absolute paths, no '..', no links: an archive cannot write outside its folder."""
    name = member.name
    return not (name.startswith("/") or ".." in Path(name).parts or member.issym() or member.islnk())


def _validation_message(err: Exception) -> str:
    errors = getattr(err, "errors", None)
    if not callable(errors):
        return str(err)
    parts = []
    for e in errors():
        loc = ".".join(str(x) for x in e.get("loc", ())) or "request"
        parts.append(f"{loc}: {e.get('msg')}")
    return "; ".join(parts)


def _message(response: Any) -> str:
    """The server's own reason: ``message`` of a JSON error body (FastAPI's ``detail`` too)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason
    if isinstance(body, dict):
        detail = body.get("message") or body.get("detail")
        if isinstance(detail, str) and detail:
            return detail
    return response.reason


def _reason(err: Exception) -> str:
    text = str(err)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[0][:200]
