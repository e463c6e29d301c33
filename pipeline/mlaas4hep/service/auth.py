"""Who is asking: the FastAPI dependency that every route but /health depends on.

A bearer token in the ``Authorization`` header, checked by :class:`~.tokens.TokenValidator`.
Behind OAuth2-Proxy (the paper's set-up) the proxy's headers are believed only when the request
comes from one of the configured proxy addresses: ``X-Forwarded-Access-Token`` (checked like a
bearer token), else ``X-Forwarded-User`` / ``X-Forwarded-Email`` / ``X-Forwarded-Groups``. From
anywhere else those headers are ignored. A token in the query string is never accepted.
"""

from __future__ import annotations

import ipaddress
import re

from fastapi import Request

from .tokens import AuthError, TokenValidator, User, unauthenticated

_HEADERS_KEPT = 4096  # headers whose bearer token is remembered (all forgotten when more come)
_BEARER = re.compile(r"Bearer ([A-Za-z0-9\-._~+/]+=*)", re.IGNORECASE)


class Authenticator:
    def __init__(self, validator: TokenValidator, trusted_proxies: tuple[str, ...] = ()):
        self.validator = validator
        self.proxies = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]
        self._tokens: dict[str, str] = {}  # Authorization header -> its well-formed bearer token

    def from_proxy(self, request: Request) -> bool:
        if not self.proxies or request.client is None:
            return False
        try:
            peer = ipaddress.ip_address(request.client.host)
        except ValueError:
            return False
        return any(peer in net for net in self.proxies)

    def cached(self, request: Request) -> User | None:
        """The user of a bearer token validated before (no I/O, no crypto), else None."""
        return self.cached_header(request.headers.get("authorization"))

    def cached_header(self, header: str | None) -> User | None:
        """The user of the bearer token in this ``Authorization`` header value if it was validated
        before, else None (then the request goes through :meth:`__call__`)."""
        if not header:
            return None
        token = self._tokens.get(header)  # a header seen before: its token without the regex again
        if token is not None:
            return self.validator.cached(token)  # the token's validity (expiry included) is checked there
        match = _BEARER.fullmatch(header.strip())
        if not match:
            return None
        user = self.validator.cached(match.group(1))
        if user is not None:  # only headers of valid tokens are remembered
            if len(self._tokens) >= _HEADERS_KEPT:
                self._tokens.clear()
            self._tokens[header] = match.group(1)
        return user

    def __call__(self, request: Request) -> User:
        header = request.headers.get("authorization")
        if header is not None:
            match = _BEARER.fullmatch(header.strip())
            if not match:
                raise unauthenticated("malformed Authorization header: expected 'Bearer <token>'")
            return self.validator.validate(match.group(1))
        if self.from_proxy(request):
            token = request.headers.get("x-forwarded-access-token")
            if token:
                return self.validator.validate(token.strip())
            name = request.headers.get("x-forwarded-user")
            if name:
                email = request.headers.get("x-forwarded-email")
                groups = tuple(g.strip() for g in request.headers.get("x-forwarded-groups", "").split(",") if g.strip())
                user = User(issuer=self.validator.issuer, subject=name, name=email or name, groups=groups, via="proxy")
                return self.validator.authorize(user, scopes_known=False)
        if "access_token" in request.query_params:
            raise unauthenticated("tokens in the query string are not accepted; send 'Authorization: Bearer <token>'")
        raise unauthenticated("no bearer token: send 'Authorization: Bearer <token>'")


def auth_error_body(err: AuthError) -> dict[str, str]:
    return {"message": err.description, "reason": err.error}
