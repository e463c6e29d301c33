"""The user's OIDC access token, for a remote MLaaS4HEP service: ``access_token()``.

Looked up in this order (the first that is there wins):

1. ``MLAAS4HEP_TOKEN``: the token itself;
2. a token file: ``MLAAS4HEP_TOKEN_FILE``, else WLCG bearer-token discovery (``BEARER_TOKEN``,
   then the file ``$BEARER_TOKEN_FILE``, else ``$XDG_RUNTIME_DIR/bt_u$UID``, or ``/tmp/bt_u$UID``
   without ``XDG_RUNTIME_DIR``), where htgettoken or oidc-agent keep a fresh one;
3. JupyterHub: ``GET $JUPYTERHUB_API_URL/users/$JUPYTERHUB_USER`` with the server's own
   ``JUPYTERHUB_API_TOKEN``, reading ``auth_state.access_token`` (the hub must keep auth_state
   and let the server read it; see :data:`HUB_SETUP`). ``GET /user`` names the user when
   ``JUPYTERHUB_USER`` is not set; JupyterHub leaves its auth_state empty, so it is not read there.

Tokens from the hub are cached until shortly before their ``exp``; ``refresh=True`` reads the hub
again (the hub refreshes an expiring token with the IdP when ``auth_refresh_age`` /
``refresh_pre_spawn`` are set and it has a refresh token). Variables and files are read on each
call: whoever writes them keeps them fresh. A token whose ``exp`` has passed is refused here with
a message that says where it came from, rather than sent.

Only ``requests`` and the standard library: the engine's ``Client`` and the command line use this
outside Jupyter too. The token never goes to the browser.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass

from mlaas4hep.errors import MLaaS4HEPError

# how long before its exp a cached token is read again, and how long a token without exp is kept
EXPIRY_MARGIN = 60.0
NO_EXP_TTL = 300.0

HUB_SETUP = (
    "on the hub, keep auth_state and let user servers read it: c.Authenticator.enable_auth_state = True "
    "(with JUPYTERHUB_CRYPT_KEY set), and the scope 'admin:auth_state!user' for both the 'user' role "
    "(scopes ['self', 'admin:auth_state!user']) and the 'server' role (['users:activity!user', "
    "'access:servers!server', 'admin:auth_state!user']) in c.JupyterHub.load_roles; "
    "for tokens that stay fresh, ask the IdP for 'offline_access' (c.GenericOAuthenticator.scope) and set "
    "c.Authenticator.auth_refresh_age and c.Authenticator.refresh_pre_spawn = True")


class TokenError(MLaaS4HEPError):
    """No usable token: missing, unreadable, expired, or the hub would not give it."""


@dataclass(frozen=True)
class Token:
    value: str
    source: str  # where it came from, for messages: "MLAAS4HEP_TOKEN", "file /run/...", "JupyterHub"
    exp: float | None  # the JWT's exp (seconds since the epoch), None when not a JWT or none

    def expired(self, margin: float = 0.0) -> bool:
        return self.exp is not None and self.exp - margin <= time.time()


_cache: dict[str, Token] = {}
_cached_at: dict[str, float] = {}
_lock = threading.Lock()


def access_token(refresh: bool = False) -> str:
    """The user's access token for a remote MLaaS4HEP service (see the module's docstring);
    a :class:`TokenError` that says what to set up when there is none."""
    return find_token(refresh).value


def find_token(refresh: bool = False) -> Token:
    """:func:`access_token` with where the token came from and its expiry."""
    token = _from_environment()
    if token is None:
        token = _from_file()
    if token is None:
        token = _from_hub(refresh)
    if token is None:
        raise TokenError(
            "no access token for the MLaaS4HEP service: MLAAS4HEP_TOKEN, MLAAS4HEP_TOKEN_FILE, BEARER_TOKEN, "
            "BEARER_TOKEN_FILE and " + _discovery_file() + " are not set or not there, and this is not a "
            "JupyterHub server (no JUPYTERHUB_API_URL / JUPYTERHUB_API_TOKEN)",
            hint="set MLAAS4HEP_TOKEN or MLAAS4HEP_TOKEN_FILE, or run on JupyterHub; " + HUB_SETUP)
    if token.expired():
        raise TokenError(f"the access token expired {_ago(token.exp)}", where=token.source,
                         hint=_renew_hint(token.source))
    return token


def forget() -> None:
    """Drop the cached hub token (tests; a new login)."""
    with _lock:
        _cache.clear()
        _cached_at.clear()


# -- the sources ---------------------------------------------------------------------------------


def _from_environment() -> Token | None:
    for name in ("MLAAS4HEP_TOKEN",):
        value = os.environ.get(name, "").strip()
        if value:
            return _token(value, name)
    return None


def _from_file() -> Token | None:
    explicit = os.environ.get("MLAAS4HEP_TOKEN_FILE", "").strip()
    if explicit:
        return _read_file(explicit, "MLAAS4HEP_TOKEN_FILE", must_exist=True)
    # WLCG bearer token discovery (https://zenodo.org/records/3937438)
    value = os.environ.get("BEARER_TOKEN", "").strip()
    if value:
        return _token(value, "BEARER_TOKEN")
    named = os.environ.get("BEARER_TOKEN_FILE", "").strip()
    if named:
        return _read_file(named, "BEARER_TOKEN_FILE", must_exist=True)
    return _read_file(_discovery_file(), "WLCG token discovery", must_exist=False)


def _discovery_file() -> str:
    folder = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return os.path.join(folder, f"bt_u{os.getuid()}")


def _read_file(path: str, variable: str, must_exist: bool) -> Token | None:
    where = f"{path} ({variable})"
    try:
        text = open(os.path.expanduser(path), encoding="utf-8").read()
    except FileNotFoundError:
        if not must_exist:
            return None
        raise TokenError("the token file does not exist", where=where,
                         hint=f"write the token there, or unset {variable}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise TokenError(f"cannot read the token file: {getattr(err, 'strerror', None) or err}", where=where) from None
    value = text.strip()
    if not value:
        raise TokenError("the token file is empty", where=where, hint="write the access token into it")
    if any(c.isspace() for c in value):
        raise TokenError("the token file holds more than one word; it must hold only the access token", where=where)
    return _token(value, f"token file {path}")


def _from_hub(refresh: bool) -> Token | None:
    api = os.environ.get("JUPYTERHUB_API_URL", "").strip().rstrip("/")
    server_token = os.environ.get("JUPYTERHUB_API_TOKEN", "").strip()
    if not api or not server_token:
        return None
    with _lock:
        cached = _cache.get(api)
        if cached is not None and not refresh:
            fresh = (not cached.expired(EXPIRY_MARGIN) if cached.exp is not None
                     else time.monotonic() - _cached_at[api] < NO_EXP_TTL)
            if fresh:
                return cached
        token = _ask_hub(api, server_token)
        _cache[api] = token
        _cached_at[api] = time.monotonic()
        return token


def _ask_hub(api: str, server_token: str) -> Token:
    """``GET users/<name>`` (JupyterHub fills in ``auth_state`` there, for a token with the
    ``admin:auth_state`` scope; ``GET user`` only names the user), the name from
    ``JUPYTERHUB_USER`` or else ``GET user``."""
    from urllib.parse import quote

    name = os.environ.get("JUPYTERHUB_USER", "").strip()
    if not name:
        me = _hub_get(f"{api}/user", server_token)
        name = me.get("name") if isinstance(me, dict) else None
        if not isinstance(name, str) or not name:
            raise TokenError("the hub's answer names no user", where=f"{api}/user")
    url = f"{api}/users/{quote(name, safe='')}"
    model = _hub_get(url, server_token)
    if not isinstance(model, dict) or "auth_state" not in model:
        raise TokenError(f"the hub does not give this server your login's tokens (no auth_state in GET users/{name})",
                         where=url, hint=HUB_SETUP)
    state = model.get("auth_state")
    if not state:
        raise TokenError("the hub keeps no auth_state for you: auth_state is off, or you logged in before it "
                         "was turned on (log out and in again)", where=url, hint=HUB_SETUP)
    value = state.get("access_token") if isinstance(state, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise TokenError("the hub's auth_state has no access_token (is the authenticator an OAuthenticator?)",
                         where=url, hint=HUB_SETUP)
    return _token(value.strip(), f"JupyterHub ({api}) auth_state of {model.get('name', 'you')}")


def _hub_get(url: str, server_token: str) -> object:
    import requests

    try:
        response = requests.get(url, headers={"Authorization": f"token {server_token}"}, timeout=15)
    except requests.RequestException as err:
        raise TokenError(f"cannot reach the JupyterHub API for your token: {type(err).__name__}", where=url,
                         hint="is the hub running? JUPYTERHUB_API_URL is set by the hub's spawner") from None
    if response.status_code in (401, 403):
        raise TokenError(f"the hub refused this server's token (HTTP {response.status_code})", where=url,
                         hint="JUPYTERHUB_API_TOKEN is the server's own token; restart your server from the hub "
                              "control panel")
    if response.status_code >= 400:
        raise TokenError(f"the hub answered HTTP {response.status_code}", where=url)
    try:
        return response.json()
    except ValueError:
        raise TokenError("the hub's answer is not JSON", where=url) from None


# -- helpers --------------------------------------------------------------------------------------


def _token(value: str, source: str) -> Token:
    return Token(value, source, jwt_expiry(value))


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, unverified (only to know when to ask again); None otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, TypeError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


def _ago(exp: float) -> str:
    seconds = max(0, int(time.time() - exp))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def _renew_hint(source: str) -> str:
    if source.startswith("JupyterHub"):
        return ("the hub has no fresher one: log out and in again; for tokens the hub refreshes itself, ask the IdP "
                "for 'offline_access' and set c.Authenticator.auth_refresh_age and refresh_pre_spawn")
    if source.startswith("token file") or "FILE" in source or "discovery" in source:
        return "renew the token in that file (htgettoken, oidc-agent, or your IdP)"
    return f"set {source} to a fresh token"
