"""Finishing a sign-in: the new session (fixation defence), the pending second factor, the bar.

A sign-in never reuses the session the browser brought: :meth:`SessionManager.create` ends it
and a fresh random cookie value is set, so a value planted before sign-in (session fixation) is
worthless afterwards. Between the password and the TOTP code there is no session at all, only a
pending record in the ephemeral store named by the ``hub_mfa`` cookie.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from litestar import Request, Response
from litestar.datastructures import Cookie

from hub.identity.acr import weakest_known
from hub.identity.authz_request import AuthorizationRequest
from hub.identity.login._render import redirect
from hub.identity.login._web import (
    Destination,
    account_cookie,
    clear_cookie,
    session_cookie,
    session_cookie_value,
)
from hub.identity.sessions import LoginSession
from hub.runtime import Runtime
from hub.settings import Settings

__all__ = [
    "MFA_COOKIE",
    "MFA_PENDING_SECONDS",
    "Bar",
    "PendingMfa",
    "bar_for",
    "cleared_mfa_cookie",
    "finish_sign_in",
    "mfa_cookie",
    "new_pending_mfa",
    "peek_pending_mfa",
    "put_back_pending_mfa",
    "take_pending_mfa",
]

MFA_COOKIE: Final = "hub_mfa"
MFA_PENDING_SECONDS: Final = 5 * 60
_MFA_PREFIX: Final = "mfa:"
_MAX_PENDING_ID: Final = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """What a sign-in must reach: a minimum ``acr`` and how recent it must be."""

    request: AuthorizationRequest | None = None
    acr: str | None = None
    max_age: int | None = None

    def met_by(self, session: LoginSession, now: float | None = None) -> bool:
        """Whether ``session`` is recent enough (``prompt=login``, ``max_age``) to go on with."""
        now = time.time() if now is None else now
        req = self.request
        if req is not None and "login" in req.prompt and session.auth_time < int(req.created_at):
            return False
        return self.max_age is None or now - session.auth_time <= self.max_age


async def bar_for(
    runtime: Runtime, values: dict[str, str] | Any, destination: Destination
) -> tuple[Bar, bool]:
    """The bar a query or form asks for, and ``False`` when its ``rid`` is no longer known."""
    if destination.rid:
        req = await runtime.authz_requests.load(destination.rid)
        if req is None:
            return Bar(), False
        return Bar(request=req, acr=req.acr, max_age=req.max_age), True
    acr = weakest_known((values.get("acr_values") or "").split())
    raw_max_age = values.get("max_age") or ""
    max_age = int(raw_max_age) if raw_max_age.isascii() and raw_max_age.isdigit() else None
    return Bar(acr=acr, max_age=max_age), True


def mfa_cookie(settings: Settings, value: str) -> Cookie:
    """The ``hub_mfa`` cookie naming a pending second factor."""
    return account_cookie(
        settings,
        MFA_COOKIE,
        value,
        path="/account/login",
        samesite="strict",
        max_age=MFA_PENDING_SECONDS,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingMfa:
    """A person past the password (or signed in at password level), owing a TOTP code."""

    id: str
    person_id: str
    identifier: str
    destination: Destination
    attempts: int
    expires_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "identifier": self.identifier,
            "destination": self.destination.to_json(),
            "attempts": self.attempts,
            "expires_at": self.expires_at,
        }


async def new_pending_mfa(
    runtime: Runtime, *, person_id: str, identifier: str, destination: Destination
) -> tuple[PendingMfa, Cookie]:
    """Keep a pending second factor for five minutes; the cookie that names it."""
    pending = PendingMfa(
        id=secrets.token_urlsafe(32),
        person_id=person_id,
        identifier=identifier,
        destination=destination,
        attempts=0,
        expires_at=time.time() + MFA_PENDING_SECONDS,
    )
    await runtime.ephemeral.put(_MFA_PREFIX + pending.id, pending.to_json(), MFA_PENDING_SECONDS)
    return pending, mfa_cookie(runtime.settings, pending.id)


def _pending_id(request: Request[Any, Any, Any]) -> str | None:
    value = request.cookies.get(MFA_COOKIE)
    if not value or len(value) > _MAX_PENDING_ID:
        return None
    return value


async def peek_pending_mfa(request: Request[Any, Any, Any], runtime: Runtime) -> PendingMfa | None:
    """The pending second factor of this browser, left in place."""
    pending_id = _pending_id(request)
    if pending_id is None:
        return None
    return _pending(pending_id, await runtime.ephemeral.get(_MFA_PREFIX + pending_id))


async def take_pending_mfa(request: Request[Any, Any, Any], runtime: Runtime) -> PendingMfa | None:
    """The pending second factor of this browser, removed: concurrent posts cannot share it."""
    pending_id = _pending_id(request)
    if pending_id is None:
        return None
    return _pending(pending_id, await runtime.ephemeral.take(_MFA_PREFIX + pending_id))


async def put_back_pending_mfa(runtime: Runtime, pending: PendingMfa) -> bool:
    """Store ``pending`` again for the rest of its lifetime; ``False`` when that has run out."""
    remaining = pending.expires_at - time.time()
    if remaining <= 0:
        return False
    await runtime.ephemeral.put(_MFA_PREFIX + pending.id, pending.to_json(), remaining)
    return True


def _pending(pending_id: str, data: dict[str, Any] | None) -> PendingMfa | None:
    if data is None:
        return None
    try:
        return PendingMfa(
            id=pending_id,
            person_id=str(data["person_id"]),
            identifier=str(data["identifier"]),
            destination=Destination.from_json(dict(data["destination"])),
            attempts=int(data["attempts"]),
            expires_at=float(data["expires_at"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


async def finish_sign_in(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    *,
    person_id: str,
    acr: str,
    amr: Sequence[str],
    destination: Destination,
    cookies: Sequence[Cookie] = (),
) -> Response[str]:
    """A new session (ending the browser's old one) and a 303 on to ``destination``."""
    settings = runtime.settings
    raw, _session = await runtime.sessions.create(
        person_id=person_id,
        acr=acr,
        amr=amr,
        replaces=session_cookie_value(request, settings),
    )
    return redirect(destination.url, cookies=[*cookies, session_cookie(settings, raw)])


def cleared_mfa_cookie(settings: Settings) -> Cookie:
    """The ``hub_mfa`` cookie, expired."""
    return clear_cookie(mfa_cookie(settings, ""))
