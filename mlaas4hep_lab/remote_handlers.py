"""The remote MLaaS4HEP services, for the JupyterLab sidebar: ``<base_url>/mlaas4hep/lab/remotes``.

``GET lab/remotes`` lists the configured services (names and URLs, never tokens);
``lab/remotes/<name>/<path>`` forwards a request of the jobs API (``jobs``, ``jobs/<id>/...``,
``kernels``, ``whoami``) to that service with the user's own token, added here on the server
(``mlaas4hep_lab.hub.access_token``): the browser never holds it. The service's answer (status,
body) comes back as it is; an unreachable service is a 502 and a missing token a 401, each with a
message that says what to do.
"""

from __future__ import annotations

import asyncio
import re

from jupyter_server.auth import authorized
from tornado import web

from mlaas4hep.client import ServerError, remote_client, remotes
from mlaas4hep.errors import MLaaS4HEPError

from .handlers import BaseHandler

#: what may be forwarded: the jobs API's own paths, nothing else of the service
_FORWARDED = re.compile(r"(jobs(/[A-Za-z0-9_-]+(/[a-z_]+)?)?|kernels|whoami)")


class RemotesHandler(BaseHandler):
    """``{"remotes": [{"name", "url"}], "problem": str}``."""

    @web.authenticated
    @authorized
    def get(self) -> None:
        try:
            found = remotes()
            problem = ""
        except MLaaS4HEPError as err:
            found, problem = {}, str(err)
        self.send({"remotes": [{"name": name, "url": entry["url"]} for name, entry in found.items()],
                   "problem": problem})


class RemoteProxyHandler(BaseHandler):
    """Forward one jobs-API request to the remote service ``name``, with the user's token."""

    @web.authenticated
    @authorized
    async def get(self, name: str, path: str) -> None:
        await self._forward("GET", name, path)

    @web.authenticated
    @authorized
    async def post(self, name: str, path: str) -> None:
        await self._forward("POST", name, path)

    @web.authenticated
    @authorized
    async def delete(self, name: str, path: str) -> None:
        await self._forward("DELETE", name, path)

    async def _forward(self, method: str, name: str, path: str) -> None:
        if not _FORWARDED.fullmatch(path):
            raise web.HTTPError(404, f"{path!r} is not a jobs API path of a remote service")
        known = remotes_or_400()
        if name not in known:
            raise web.HTTPError(404, f"no remote service {name!r} (configured: {', '.join(sorted(known)) or 'none'}; "
                                     "set c.MLaaS4HEPLab.remotes or MLAAS4HEP_REMOTES)")
        client = remote_client(name)
        params = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        body = self.request.body or None
        headers = {"Content-Type": self.request.headers["Content-Type"]} if body and \
            "Content-Type" in self.request.headers else None
        try:
            response = await asyncio.get_running_loop().run_in_executor(
                None, lambda: client.send(method, "/" + path, params=params or None, data=body, headers=headers,
                                          timeout=70.0))
        except ServerError as err:  # unreachable (502), or no token to send (401)
            raise web.HTTPError(err.status or 502, str(err)) from None
        self.set_status(response.status_code)
        self.set_header("Content-Type", response.headers.get("Content-Type", "application/json"))
        if response.headers.get("Content-Disposition"):
            self.set_header("Content-Disposition", response.headers["Content-Disposition"])
        self.finish(response.content)


def remotes_or_400() -> dict:
    try:
        return remotes()
    except MLaaS4HEPError as err:
        raise web.HTTPError(400, str(err)) from None


#: (path under <base_url>/mlaas4hep/lab, handler)
REMOTE_ROUTES: list[tuple[str, type[BaseHandler]]] = [
    ("/remotes", RemotesHandler),
    (r"/remotes/([A-Za-z0-9_.-]+)/(.+)", RemoteProxyHandler),
]
