"""The prediction routes' fast path: ``POST /tfaas/json`` and ``POST /v2/models/{name}[/versions/
{version}]/infer`` answered as plain ASGI, before FastAPI's middleware, routing and dependency
injection, which took more of a one-row request's CPU time than everything else in the app.

Nothing is skipped: the same token check (the validator's cache, else :class:`..service.auth.
Authenticator` in a worker thread, as the ``get_user`` dependency does), the same body limit and
JSON reading, the same route functions (:func:`.routes.tfaas_predict`, :func:`.routes.v2_infer`:
model visibility, shapes, numbers, row limits) and the same error answers
(:func:`..service.app.error_response`, the exception handlers' own function). Every other request,
and any request before the service has started, goes to FastAPI.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.routing import get_route_path
from starlette.types import Receive, Scope, Send

from ..service.app import MAX_JSON_BODY, check_length, error_response, parse_json
from ..service.tokens import User
from ..service.users import LimitExceeded
from .routes import tfaas_predict, v2_infer

TFAAS_JSON = "/tfaas/json"
V2_INFER = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")  # Starlette's {param}: [^/]+
_JSON_HEADERS = (b"content-type", b"application/json")


class ServiceApp(FastAPI):
    """The service's FastAPI application, with the prediction routes on the fast path."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and getattr(self.state, "service", None):
            path = get_route_path(scope)
            if path == TFAAS_JSON:
                await _predict(self, scope, receive, send, None)
                return
            if path.startswith("/v2/models/"):
                match = V2_INFER.fullmatch(path)
                if match is not None:
                    await _predict(self, scope, receive, send, match.groups())
                    return
        await super().__call__(scope, receive, send)


async def _predict(app: ServiceApp, scope: Scope, receive: Receive, send: Send,
                   v2: tuple[str, str | None] | None) -> None:
    """One prediction request: TFaaS's (``v2`` None) or the v2 protocol's (``v2`` = name, version)."""
    service = app.state.service
    authorization = length = binary = None
    for key, value in scope["headers"]:  # the first of each, as Starlette's Headers.get
        if key == b"authorization":
            authorization = authorization if authorization is not None else value.decode("latin-1")
        elif key == b"content-length":
            length = length if length is not None else value.decode("latin-1")
        elif key == b"inference-header-content-length":
            binary = binary if binary is not None else value.decode("latin-1")
    user: User | None = None
    try:
        user = service.authenticate.cached_header(authorization)
        if user is None:  # a token not seen before (or none): checked in a thread, it may fetch keys
            user = await run_in_threadpool(service.authenticate, Request(scope, receive))
        if v2 is None:
            answer = await tfaas_predict(service.serving, user, await _json(receive, length))
        else:
            answer = await v2_infer(service.serving, user, v2[0], v2[1], bool(binary),
                                    lambda: _json(receive, length))
    except ClientDisconnect:
        return  # the client went away: nobody to answer
    except Exception as err:  # noqa: BLE001 - answered as the exception handlers answer it
        response = error_response(err, scope["path"], "POST", service, user)
        await response(scope, receive, send)
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [_JSON_HEADERS, (b"content-length", str(len(answer)).encode())]})
    await send({"type": "http.response.body", "body": answer})


async def _json(receive: Receive, length: str | None, limit: int = MAX_JSON_BODY) -> Any:
    """The body's JSON value, with :func:`..service.app.json_body`'s limits and errors."""
    check_length(length, limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        if chunk:
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise LimitExceeded(f"the request body is larger than {limit} bytes", 413)
        if not message.get("more_body", False):
            break
    return parse_json(chunks[0] if len(chunks) == 1 else b"".join(chunks))
