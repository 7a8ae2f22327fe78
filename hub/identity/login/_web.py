"""What every account page shares: the runtime, the form reader, cookies, and where to go next."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import quote

from litestar import Request
from litestar.datastructures import Cookie

from hub.errors import ServiceUnavailable
from hub.identity import _forms
from hub.identity.sessions import LoginSession, cookie_name
from hub.proxy.headers import client_address
from hub.runtime import IdentityStores, Runtime
from hub.settings import Settings

__all__ = [
    "MAX_FORM_BYTES",
    "Destination",
    "account_cookie",
    "clear_cookie",
    "client_ip",
    "current_session",
    "destination_from",
    "identity_of",
    "read_form",
    "runtime_of",
    "safe_return_to",
    "session_cookie",
    "session_cookie_value",
]

#: A sign-in form is a few hundred bytes; anything far larger is not one of ours.
MAX_FORM_BYTES: Final = 16 * 1024
_MAX_FORM_FIELDS: Final = 16
_MAX_RETURN_TO: Final = 2048
# A local path: one leading slash, then printable ASCII without a backslash (browsers read
# "\" as "/", so "/\evil.example" would leave the site).
_LOCAL_PATH: Final = re.compile(r"/(?![/\\])[\x21-\x5b\x5d-\x7e]*")
_MAX_RID: Final = 64


def runtime_of(request: Request[Any, Any, Any]) -> Runtime:
    """The hub's runtime, which owns the stores the pages use."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def identity_of(runtime: Runtime) -> IdentityStores:
    """The identity stores (persons, clients, consents...) of a started runtime."""
    if runtime.identity is None:
        raise ServiceUnavailable("the identity stores are not ready")
    return runtime.identity


def client_ip(request: Request[Any, Any, Any], settings: Settings) -> str:
    """The client's address: the peer, or behind a trusted proxy the forwarded one."""
    peer = request.client.host if request.client else ""
    address, _ = client_address(peer, list(request.scope["headers"]), settings.trusted_proxies)
    return address or "unknown"


async def read_form(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The urlencoded body as a dict; each field at most once, size bounded."""
    return await _forms.read_form(request, max_bytes=MAX_FORM_BYTES, max_fields=_MAX_FORM_FIELDS)


def safe_return_to(value: str | None) -> str | None:
    """``value`` when it is a same-origin absolute path (never ``//host``), else ``None``."""
    if not value or len(value) > _MAX_RETURN_TO or _LOCAL_PATH.fullmatch(value) is None:
        return None
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Destination:
    """Where the browser goes once a page is done: a saved authorization request or a path."""

    rid: str | None = None
    return_to: str | None = None

    @property
    def url(self) -> str:
        """``/oauth2/authorize?rid=...`` for a request, else the local path, else ``/account``."""
        if self.rid:
            return "/oauth2/authorize?rid=" + quote(self.rid, safe="")
        return self.return_to or "/account"

    def query(self) -> str:
        """The same destination as a query string for another account page (with ``?``)."""
        if self.rid:
            return "?rid=" + quote(self.rid, safe="")
        if self.return_to:
            return "?return_to=" + quote(self.return_to, safe="")
        return ""

    def to_json(self) -> dict[str, Any]:
        return {"rid": self.rid, "return_to": self.return_to}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Destination:
        rid, return_to = data.get("rid"), data.get("return_to")
        return cls(
            rid=rid if isinstance(rid, str) else None,
            return_to=safe_return_to(return_to if isinstance(return_to, str) else None),
        )


def destination_from(values: dict[str, str] | Any) -> Destination:
    """The destination named by ``rid`` or ``return_to`` in a query or a form."""
    rid = values.get("rid") or None
    if rid is not None and (len(rid) > _MAX_RID or not rid.isascii() or not rid.isprintable()):
        rid = None
    return Destination(rid=rid, return_to=safe_return_to(values.get("return_to")))


def session_cookie_value(request: Request[Any, Any, Any], settings: Settings) -> str | None:
    """The session cookie the browser brought, if any."""
    return request.cookies.get(cookie_name(settings.session_cookie_secure)) or None


async def current_session(
    request: Request[Any, Any, Any], runtime: Runtime
) -> tuple[str | None, LoginSession | None]:
    """The browser's session cookie and the live session behind it (``None`` if none)."""
    raw = session_cookie_value(request, runtime.settings)
    session = await runtime.sessions.get(raw) if raw else None
    return raw, session


def session_cookie(settings: Settings, value: str) -> Cookie:
    """The session cookie: ``__Host-`` when Secure, HttpOnly, SameSite=Lax, Path=/, no Domain.

    No ``Max-Age``: the cookie ends with the browser session; the server enforces the idle and
    absolute lifetimes whatever the browser keeps.
    """
    return account_cookie(
        settings, cookie_name(settings.session_cookie_secure), value, path="/", samesite="lax"
    )


def account_cookie(
    settings: Settings,
    key: str,
    value: str,
    *,
    path: str,
    samesite: Literal["lax", "strict"],
    max_age: int | None = None,
) -> Cookie:
    """A cookie of the sign-in pages: never readable by script, Secure unless set otherwise."""
    return Cookie(
        key=key,
        value=value,
        path=path,
        max_age=max_age,
        secure=settings.session_cookie_secure,
        httponly=True,
        samesite=samesite,
    )


def clear_cookie(cookie: Cookie) -> Cookie:
    """``cookie`` expired at once, same name, path and attributes (``__Host-`` needs them)."""
    return Cookie(
        key=cookie.key,
        value="",
        path=cookie.path,
        max_age=0,
        expires=0,
        secure=cookie.secure,
        httponly=cookie.httponly,
        samesite=cookie.samesite,
    )
