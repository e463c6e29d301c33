"""OIDC bearer tokens, checked as a resource server should (RFC 6749, 7519, 8725).

The issuer's keys come from its discovery document (``{issuer}/.well-known/openid-configuration``
-> ``jwks_uri``) and are cached; a token signed with a key id not in the cache makes one new
fetch, at most once per ``refresh_interval``, so a flood of unknown kids cannot hammer the
issuer. Only asymmetric algorithms are accepted. The user is (``iss``, ``sub``); the name shown
is ``preferred_username`` or ``email``. No FastAPI in here.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import jwt
import requests

CACHE_SIZE = 10_000  # validated tokens remembered (until their exp)
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")


class AuthError(Exception):
    """A request that is not authenticated (401) or not authorized (403)."""

    def __init__(self, status: int, description: str, error: str = "invalid_token"):
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def www_authenticate(self) -> str:
        # printable ASCII only: a token's claims end up in the description, and a header value
        # must not carry line breaks or characters outside latin-1
        text = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in self.description)
        return f'Bearer error="{self.error}", error_description="{text}"'


def unauthenticated(description: str, error: str = "invalid_token") -> AuthError:
    return AuthError(401, description, error)


def forbidden(description: str) -> AuthError:
    return AuthError(403, description, "insufficient_scope")


@dataclass(frozen=True)
class User:
    """Who made a request, as the service sees it."""

    issuer: str
    subject: str
    name: str
    scopes: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    via: str = "bearer"  # "bearer" or "proxy"

    @cached_property  # asked on every request; a frozen dataclass keeps it in its __dict__
    def id(self) -> str:
        """A stable name for (iss, sub), safe as a folder name and the jobs' owner."""
        digest = hashlib.sha256(f"{self.issuer}\n{self.subject}".encode()).hexdigest()
        return "u" + digest[:24]


class KeySet:
    """The issuer's signing keys (JWKS), found through discovery, cached, and refreshed when a
    token names an unknown key id, at most once per ``refresh_interval`` seconds."""

    def __init__(self, issuer: str, refresh_interval: float = 30.0, timeout: float = 10.0):
        self.issuer = issuer.rstrip("/")
        self.refresh_interval = refresh_interval
        self.timeout = timeout
        self.fetches = 0  # JWKS downloads so far (the tests count them)
        self._keys: dict[str, jwt.PyJWK] = {}
        self._anonymous: list[jwt.PyJWK] = []  # keys without a kid
        self._jwks_uri: str | None = None
        self._last_fetch = float("-inf")
        self._lock = threading.Lock()
        self._session = requests.Session()

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = self._session.get(url, timeout=self.timeout)
            response.raise_for_status()
            data = response.json()
        except (requests.RequestException, ValueError) as err:
            raise IssuerUnavailable(f"cannot read the issuer's {what} at {url}: {err}") from None
        if not isinstance(data, dict):
            raise IssuerUnavailable(f"the issuer's {what} at {url} is not a JSON object")
        return data

    def _fetch(self) -> None:
        if self._jwks_uri is None:
            discovery = self._get_json(self.issuer + "/.well-known/openid-configuration", "discovery document")
            if str(discovery.get("issuer", "")).rstrip("/") != self.issuer:
                raise IssuerUnavailable(f"the discovery document names issuer {discovery.get('issuer')!r}, "
                                        f"not {self.issuer!r}")
            if not isinstance(discovery.get("jwks_uri"), str):
                raise IssuerUnavailable("the issuer's discovery document has no jwks_uri")
            self._jwks_uri = discovery["jwks_uri"]
        self._last_fetch = time.monotonic()
        self.fetches += 1
        data = self._get_json(self._jwks_uri, "JWKS")
        keys: dict[str, jwt.PyJWK] = {}
        anonymous = []
        for entry in data.get("keys") or []:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError):
                continue  # a key type or algorithm this library cannot use (or a symmetric one): skip it
            if entry.get("kid"):
                keys[entry["kid"]] = key
            else:
                anonymous.append(key)
        self._keys, self._anonymous = keys, anonymous

    def get(self, kid: str | None) -> jwt.PyJWK:
        """The key for ``kid``; one fetch when it is not known and the last fetch is old enough."""
        key = self._lookup(kid)  # known keys need no lock: a fetch in progress does not hold them up
        if key is not None:
            return key
        with self._lock:
            key = self._lookup(kid)
            if key is None and time.monotonic() - self._last_fetch >= self.refresh_interval:
                self._fetch()
                key = self._lookup(kid)
        if key is None:
            raise unauthenticated(f"the token is signed with a key the issuer does not publish (kid {kid!r})"
                                  if kid else "the token names no key (kid) and the issuer has several")
        return key

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid:
            return self._keys.get(kid)
        candidates = list(self._keys.values()) + self._anonymous
        return candidates[0] if len(candidates) == 1 else None


class IssuerUnavailable(Exception):
    """The issuer's discovery document or keys could not be read (a 503, not the user's fault)."""


@dataclass
class TokenValidator:
    """Checks a bearer token and says who it belongs to, or raises :class:`AuthError`."""

    issuer: str
    audience: str
    required_scope: str | None = None
    allowed_groups: tuple[str, ...] = ()
    leeway: float = 30.0
    refresh_interval: float = 30.0
    keys: KeySet = field(init=False)

    def __post_init__(self) -> None:
        self.issuer = self.issuer.rstrip("/")
        self.keys = KeySet(self.issuer, self.refresh_interval)
        self._init_cache()

    def _init_cache(self) -> None:
        self._cache: OrderedDict[str, tuple[User, float, float]] = OrderedDict()
        self._cache_lock = threading.Lock()

    def validate(self, token: str) -> User:
        """The token's user, authorized; a token seen before is not verified again until it
        expires (its signature, issuer and audience cannot change)."""
        now = time.time()
        user = self.cached(token, now)
        if user is not None:
            return user
        claims = self.claims(token)
        user = self.authorize(self.user(claims, "bearer"))
        with self._cache_lock:
            self._cache[token] = (user, float(claims.get("nbf", 0)) - self.leeway, float(claims["exp"]) + self.leeway)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return user

    def cached(self, token: str, now: float | None = None) -> User | None:
        """The user of a token validated before and still inside its nbf .. exp, else None."""
        now = time.time() if now is None else now
        with self._cache_lock:
            entry = self._cache.get(token)
            if entry is None:
                return None
            user, not_before, expires = entry
            if not not_before <= now < expires:
                del self._cache[token]
                return None
            self._cache.move_to_end(token)
            return user

    def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token`` (signature, alg, iss, aud, exp, nbf)."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as err:
            raise unauthenticated(f"the token is not a well-formed JWT: {err}") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise unauthenticated(f"algorithm {alg!r} is not accepted (accepted: {', '.join(ALGORITHMS)})")
        iss = str(unverified.get("iss", "")).rstrip("/")
        if iss != self.issuer:
            # checked before any key lookup, so that foreign tokens cannot trigger JWKS fetches
            raise unauthenticated(f"the token was issued by {unverified.get('iss')!r}, not by {self.issuer!r}")
        key = self.keys.get(header.get("kid"))
        published = key._jwk_data.get("alg")  # PyJWK guesses an alg when the JWK has none; only a published one binds
        if published and published != alg:
            raise unauthenticated(f"the token's algorithm {alg} is not the one of its key ({published})")
        try:
            return jwt.decode(token, key.key, algorithms=[alg], audience=self.audience, issuer=unverified.get("iss"),
                              leeway=self.leeway, options={"require": ["exp", "iss", "sub", "aud"]})
        except jwt.ExpiredSignatureError:
            raise unauthenticated("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise unauthenticated("the token is not valid yet (nbf or iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise unauthenticated(f"the token is not meant for this service (aud must contain {self.audience!r})") \
                from None
        except jwt.InvalidSignatureError:
            raise unauthenticated("the token's signature does not verify with the issuer's key") from None
        except jwt.MissingRequiredClaimError as err:
            raise unauthenticated(f"the token has no {err.claim!r} claim") from None
        except jwt.PyJWTError as err:
            raise unauthenticated(f"the token is not valid: {err}") from None

    def user(self, claims: Mapping[str, Any], via: str) -> User:
        scopes = claims.get("scope", claims.get("scp", ""))
        scopes = scopes.split() if isinstance(scopes, str) else [str(s) for s in scopes or []]
        groups: list[str] = []
        for key in ("groups", "wlcg.groups"):
            value = claims.get(key) or []
            groups += [value] if isinstance(value, str) else [str(g) for g in value]
        sub = str(claims["sub"])
        name = claims.get("preferred_username") or claims.get("email") or sub
        return User(issuer=str(claims["iss"]).rstrip("/"), subject=sub, name=str(name), scopes=tuple(scopes),
                    groups=tuple(groups), via=via)

    def authorize(self, user: User, scopes_known: bool = True) -> User:
        """The required scope or one of the allowed groups (when either is configured)."""
        if not self.required_scope and not self.allowed_groups:
            return user
        if self.required_scope and self.required_scope in user.scopes:
            return user
        if self.allowed_groups and set(_normal(user.groups)) & set(_normal(self.allowed_groups)):
            return user
        wanted = []
        if self.required_scope:
            wanted.append(f"the scope {self.required_scope!r}" + ("" if scopes_known else
                                                                   " (the proxy passed no token to check it in)"))
        if self.allowed_groups:
            wanted.append("one of the groups " + ", ".join(self.allowed_groups))
        raise forbidden("the token lacks " + " or ".join(wanted))


def _normal(groups: Iterable[str]) -> list[str]:
    """WLCG groups are written with a leading slash (``/cms``); accept either form."""
    return [g.strip().lstrip("/") for g in groups if g.strip()]
