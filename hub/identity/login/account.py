"""``/account`` (who is signed in) and ``/account/logout`` (the hub's own sign-out)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post

from hub.identity.login._pages import form_page, posted_form
from hub.identity.login._render import message_page, redirect
from hub.identity.login._web import (
    clear_cookie,
    current_session,
    identity_of,
    runtime_of,
    session_cookie,
)

__all__ = ["account_home", "logout_page", "logout_submit"]


@get("/", include_in_schema=False)
async def account_home(request: Request[Any, Any, Any]) -> Response[str]:
    """A small page naming the signed-in person, with links to MFA and sign-out."""
    runtime = runtime_of(request)
    _raw, session = await current_session(request, runtime)
    if session is None:
        return redirect("/account/login?return_to=/account")
    person = await identity_of(runtime).persons.get(session.person_id)
    if person is None or person.disabled_at is not None:
        return redirect("/account/login?return_to=/account")
    return form_page(
        request,
        runtime.settings,
        "account.html",
        person_name=f"{person.given_name} {person.family_name}",
        identifier=person.identifier,
        mfa=bool(person.totp_secret),
    )


@get("/logout", include_in_schema=False)
async def logout_page(request: Request[Any, Any, Any]) -> Response[str]:
    """A sign-out button: a GET never signs anyone out (a link or image could trigger it)."""
    runtime = runtime_of(request)
    return form_page(request, runtime.settings, "logout.html")


@post("/logout", include_in_schema=False, status_code=200)
async def logout_submit(request: Request[Any, Any, Any]) -> Response[str]:
    """End the session, its refresh tokens, and the cookie."""
    runtime = runtime_of(request)
    settings = runtime.settings
    form = await posted_form(request, settings)
    if isinstance(form, Response):
        return form
    raw, _session = await current_session(request, runtime)
    if raw:
        ended = await runtime.sessions.end(raw)
        if ended is not None:
            await identity_of(runtime).refresh_tokens.revoke_session(ended.sid)
    return message_page(
        "signed_out",
        "You are signed out",
        "You have been signed out of the hub on this browser.",
        status=200,
        cookies=[clear_cookie(session_cookie(settings, ""))],
        link=("/account/login", "Sign in again"),
    )
