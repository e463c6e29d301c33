"""Real servers on loopback for remote-reading tests: Debian's xrootd, and an HTTP server
with byte-range support (and optional fault injection, to exercise retries)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


def stop_process(process: subprocess.Popen, grace: float, kill_group: bool = False) -> None:
    """SIGTERM ``process``; after ``grace`` seconds SIGKILL it (or its whole process group)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            if kill_group:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
            process.wait()


def wait_for_health(process: subprocess.Popen, url: str, log: Path, name: str, timeout: float,
                    stop: Callable[[], None], interval: float = 0.1, tail: int = 2000) -> None:
    """Poll ``url`` until it answers 200. If ``process`` exits first, or nothing answers within
    ``timeout`` seconds (then ``stop()`` is called), raise with the last ``tail`` characters of ``log``."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited ({process.returncode}): {log.read_text()[-tail:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(interval)
    stop()
    raise RuntimeError(f"{name} did not answer within {timeout}s: {log.read_text()[-tail:]}")


class XRootDServer:
    """Debian's ``xrootd`` serving a world-readable copy of some files on loopback.

    xrootd refuses to run as root, so it drops to ``nobody`` (``-R nobody``).
    """

    def __init__(self, files: list[Path]):
        self.root = Path(tempfile.mkdtemp(prefix="mlaas4hep-xrd-"))
        self.data = self.root / "data"
        self.run = self.root / "run"
        self.data.mkdir()
        self.run.mkdir()
        for f in files:
            shutil.copy(f, self.data / f.name)
        os.chmod(self.root, 0o755)
        for p in self.data.iterdir():
            os.chmod(p, 0o644)
        os.chmod(self.data, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.run, "nobody")
        self.port = free_port()
        config = self.root / "xrootd.cfg"
        config.write_text(
            f"xrd.port {self.port}\nall.export /\noss.localroot {self.data}\n"
            f"all.adminpath {self.run}\nall.pidpath {self.run}\n"
        )
        args = ["xrootd", "-c", str(config), "-l", str(self.run / "xrootd.log"), "-n", "mlaas4hep"]
        if os.geteuid() == 0:
            args[1:1] = ["-R", "nobody"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        wait_for_port(self.port)

    def url(self, name: str) -> str:
        return f"root://127.0.0.1:{self.port}//{name}"

    def stop(self) -> None:
        stop_process(self.process, 10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class _RangeHandler(SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=a-b`` support; can be told to fail some requests."""

    server: RangeHTTPServer

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self.server.requests += 1
        if self.server.take_failure():
            self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "injected fault")
            return
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(HTTPStatus.NOT_FOUND, "not found")
            return
        size = path.stat().st_size
        ranged = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if not ranged:
            self._send(path, 0, size - 1, size, HTTPStatus.OK)
            return
        first, last = ranged.groups()
        if first == "":
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), min(size - 1, int(last) if last else size - 1)
        if start >= size or start > end:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return
        self._send(path, start, end, size, HTTPStatus.PARTIAL_CONTENT)

    def do_HEAD(self) -> None:
        self.server.requests += 1
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(HTTPStatus.NOT_FOUND, "not found")
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def _send(self, path: Path, start: int, end: int, size: int, status: HTTPStatus) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        self.server.bytes_sent += end - start + 1
        with path.open("rb") as f:
            f.seek(start)
            self.wfile.write(f.read(end - start + 1))


class RangeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.requests = 0
        self.bytes_sent = 0
        self._failures = 0
        self._lock = threading.Lock()
        handler = lambda *a, **k: _RangeHandler(*a, directory=str(self.folder), **k)  # noqa: E731
        super().__init__(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def fail_next(self, n: int) -> None:
        """Answer the next ``n`` GET requests with 503."""
        with self._lock:
            self._failures = n

    def take_failure(self) -> bool:
        with self._lock:
            if self._failures > 0:
                self._failures -= 1
                return True
            return False

    def close(self) -> None:
        self.shutdown()
        self.server_close()


# ---------------------------------------------------------------------------------------------
# OIDC: a real token issuer (npm oauth2-mock-server, tests/oidc) and the MLaaS4HEP service

OIDC_DIR = Path(__file__).with_name("oidc")


def oidc_available() -> bool:
    return shutil.which("node") is not None and (OIDC_DIR / "node_modules" / "oauth2-mock-server").is_dir()


class OIDCIssuer:
    """``node tests/oidc/issuer.mjs`` on a free loopback port: discovery, JWKS and a token
    endpoint with the client-credentials grant (see issuer.mjs for the claims it sets)."""

    def __init__(self, timeout: float = 30.0, alg: str = "RS256"):
        self.process = subprocess.Popen(["node", str(OIDC_DIR / "issuer.mjs")], cwd=OIDC_DIR, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True, env={**os.environ, "ISSUER_ALG": alg})
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.startswith("ISSUER ") or not line:
                break
        if not line.startswith("ISSUER "):
            self.close()
            raise RuntimeError(f"the OIDC issuer did not start: {line!r}")
        self.url = line.split()[1].strip()

    def token(self, client: str, audience: str | list[str] | None = "mlaas4hep", scope: str | None = "mlaas4hep",
              **extra: str) -> str:
        """An access token for ``client`` (its ``sub``), fetched with the client-credentials grant."""
        import requests

        data = {"grant_type": "client_credentials", **extra}
        if scope is not None:
            data["scope"] = scope
        if audience is not None:
            data["aud"] = audience
        response = requests.post(f"{self.url}/token", data=data, auth=(client, f"{client}-secret"), timeout=10)
        response.raise_for_status()
        return response.json()["access_token"]

    def close(self) -> None:
        stop_process(self.process, 10)
        if self.process.stdout:
            self.process.stdout.close()
        if self.process.stdin:
            self.process.stdin.close()


class ServiceProcess:
    """``mlaas4hep serve`` in its own process on a free loopback port."""

    def __init__(self, issuer: str, data_dir: Path, audience: str = "mlaas4hep", port: int | None = None,
                 env: dict[str, str] | None = None, **options: object):
        import sys

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = Path(data_dir)
        self.args = [sys.executable, "-c", "import sys; from mlaas4hep.cli import main; sys.exit(main())", "serve",
                     "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(data_dir),
                     "--issuer", issuer, "--audience", audience, "--log-level", "warning"]
        for key, value in options.items():
            self.args += [f"--{key.replace('_', '-')}", str(value)]
        self.env = {**os.environ, **(env or {})}
        self.log = self.data_dir.parent / f"{self.data_dir.name}-service.log"
        self.start()

    def start(self, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                            start_new_session=True)
        wait_for_health(self.process, self.url + "/api/v1/health", self.log, "the service", timeout, self.stop)

    def stop(self) -> None:
        stop_process(self.process, 15)

    def restart(self) -> None:
        self.stop()
        self.start()


# ---------------------------------------------------------------------------------------------
# JupyterHub: a real hub (PyPI jupyterhub + oauthenticator, npm configurable-http-proxy in
# tests/hub) logging users in at the loopback OIDC issuer

HUB_DIR = Path(__file__).with_name("hub")
PROXY = HUB_DIR / "node_modules" / ".bin" / "configurable-http-proxy"

HUB_CONFIG = '''\
import json, os
c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.JupyterHub.db_url = "sqlite:///{root}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{root}/cookie_secret"
c.JupyterHub.pid_file = "{root}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True

# the login: OIDC authorization code at the issuer; auth_state keeps the user's tokens
c.JupyterHub.authenticator_class = "generic-oauth"
c.GenericOAuthenticator.client_id = "hub"
c.GenericOAuthenticator.client_secret = "hub-secret"
c.GenericOAuthenticator.oauth_callback_url = "http://127.0.0.1:{port}/hub/oauth_callback"
c.GenericOAuthenticator.authorize_url = "{issuer}/authorize"
c.GenericOAuthenticator.token_url = "{issuer}/token"
c.GenericOAuthenticator.userdata_url = "{issuer}/userinfo"
c.GenericOAuthenticator.username_claim = "preferred_username"
c.GenericOAuthenticator.scope = ["openid", "profile", "offline_access", "mlaas4hep"]
c.GenericOAuthenticator.allow_all = True
c.Authenticator.enable_auth_state = True  # JUPYTERHUB_CRYPT_KEY is in the hub's environment
c.Authenticator.refresh_pre_spawn = True
c.Authenticator.auth_refresh_age = 10  # short: the refresh test waits for a token to expire
# the user's server may read its user's auth_state (the access token) through the hub API; the
# server's token gets only scopes its user holds, so the user role has it too
c.JupyterHub.load_roles = [
    {{"name": "user", "scopes": ["self", "admin:auth_state!user"]}},
    {{"name": "server", "scopes": ["users:activity!user", "access:servers!server", "admin:auth_state!user"]}},
]

# single-user servers: local processes of this (test) user, homes under {root}/home
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.SimpleLocalProcessSpawner.home_dir_template = "{root}/home/{{username}}"
c.Spawner.cmd = [{singleuser!r}]
c.Spawner.args = {args!r}
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.environment = json.loads({environment!r})
'''


def hub_available() -> bool:
    import importlib.util

    return (PROXY.exists() and importlib.util.find_spec("jupyterhub") is not None
            and importlib.util.find_spec("oauthenticator") is not None)


class JupyterHubProcess:
    """``jupyterhub`` on free loopback ports with GenericOAuthenticator against ``issuer``; user
    servers get ``environment`` (besides the hub's own variables)."""

    def __init__(self, issuer: str, root: Path, environment: dict[str, str], timeout: float = 120.0):
        import json
        import secrets
        import sys

        self.root = Path(root)
        (self.root / "home").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        bindir = Path(sys.executable).parent
        args = ["--allow-root"] if os.geteuid() == 0 else []
        config = HUB_CONFIG.format(port=self.port, hub_port=free_port(), proxy_api_port=free_port(), proxy=str(PROXY),
                                   root=self.root, issuer=issuer.rstrip("/"), args=args,
                                   singleuser=str(bindir / "jupyterhub-singleuser"),
                                   environment=json.dumps(environment))
        (self.root / "jupyterhub_config.py").write_text(config)
        env = {**os.environ, "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
               "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
        env.pop("JUPYTERHUB_API_TOKEN", None)
        self.log = self.root / "jupyterhub.log"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([str(bindir / "jupyterhub"), "-f", str(self.root / "jupyterhub_config.py")],
                                            cwd=self.root, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        wait_for_health(self.process, self.url + "/hub/health", self.log, "jupyterhub", timeout, self.close,
                        interval=0.2, tail=3000)

    def home(self, user: str) -> Path:
        return self.root / "home" / user

    def close(self) -> None:
        """Stop the hub; it stops the user servers and the proxy it started (cleanup_servers)."""
        stop_process(self.process, 60, kill_group=True)
