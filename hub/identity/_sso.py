"""What the SSO endpoints (authorize, userinfo, logout) need, taken from ``app.state.runtime``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

from litestar import Request, Response

from hub.errors import ServiceUnavailable
from hub.identity._forms import printable
from hub.identity.authz_request import AuthorizationRequests
from hub.identity.codes import AuthorizationCodes
from hub.identity.id_tokens import IdTokens
from hub.identity.keys import KeyRing
from hub.identity.sessions import SessionManager, cookie_name
from hub.identity.tokens import TokenIssuer
from hub.settings import Settings

if TYPE_CHECKING:
    from hub.identity.oauth import IdentityStores

__all__ = [
    "MAX_QUERY_BYTES",
    "NO_STORE",
    "Sso",
    "clear_session_cookie",
    "parse_params",
    "query_params",
    "sso",
]

#: Every SSO answer is personal: never cached, by the browser or anyone between.
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
#: Far above any genuine authorization or logout request.
MAX_QUERY_BYTES: Final = 8192


@dataclass(frozen=True, slots=True, kw_only=True)
class Sso:
    """The collaborators of one SSO request."""

    settings: Settings
    keyring: KeyRing
    identity: IdentityStores
    sessions: SessionManager
    authz_requests: AuthorizationRequests
    codes: AuthorizationCodes

    @property
    def cookie_name(self) -> str:
        return cookie_name(self.settings.session_cookie_secure)

    def session_cookie(self, request: Request[Any, Any, Any]) -> str | None:
        """The session cookie's value the browser sent, if any."""
        return request.cookies.get(self.cookie_name)

    def tokens(self) -> TokenIssuer:
        return TokenIssuer(self.keyring, self.settings)

    def id_tokens(self) -> IdTokens:
        return IdTokens(self.keyring, self.settings)


def sso(request: Request[Any, Any, Any]) -> Sso:
    """The SSO collaborators of the app serving ``request``; 503 before the runtime started."""
    runtime = request.app.state.get("runtime")
    identity = getattr(runtime, "identity", None)
    keyring = getattr(runtime, "keyring", None)
    if runtime is None or identity is None or keyring is None:
        raise ServiceUnavailable(
            "the sign-in endpoints are not ready: no started app.state.runtime"
        )
    settings: Settings = runtime.settings
    return Sso(
        settings=settings,
        keyring=keyring,
        identity=identity,
        sessions=runtime.sessions,
        authz_requests=runtime.authz_requests,
        codes=AuthorizationCodes(runtime.ephemeral, lifetime=settings.auth_code_seconds),
    )


def clear_session_cookie(response: Response[Any], settings: Settings) -> None:
    """Tell the browser to drop the session cookie (same attributes as when it was set)."""
    response.set_cookie(
        key=cookie_name(settings.session_cookie_secure),
        value="",
        max_age=0,
        path="/",
        secure=settings.session_cookie_secure,
        httponly=True,
        samesite="lax",
    )


def parse_params(raw: bytes) -> dict[str, str] | str:
    """Query or form parameters, or why they are unusable (each at most once, printable ASCII)."""
    if len(raw) > MAX_QUERY_BYTES:
        return "The request is too long."
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, errors="strict")
    except ValueError:  # UnicodeDecodeError included
        return "The request is malformed."
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            # RFC 6749 §3.1: parameters MUST NOT be included more than once.
            return f"The parameter {name[:40]!r} is repeated."
        if not printable(name + value):
            return "The request holds characters that are not allowed."
        params[name] = value
    return params


def query_params(request: Request[Any, Any, Any]) -> dict[str, str] | str:
    """The query parameters of ``request``, or why they are unusable."""
    raw: bytes = request.scope.get("query_string", b"")
    return parse_params(raw)
