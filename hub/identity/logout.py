"""``/oauth2/logout``: RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).

``GET`` with a valid ``id_token_hint`` (signed by this hub for a client; an expired one is fine,
a relying party keeps the one it got at sign-in) for the person signed in here ends the session
at once. Without one, or with one for another person, a cross-site link could sign someone out,
so the hub asks first: a page with a POST form, protected by a double-submit token (a random
value in the ``hub_logout_csrf`` cookie, ``SameSite=Strict``, equal to a hidden field).

Ending the session: the login session ends, the refresh tokens issued in it (and in the session
the hint names) are revoked, and the cookie is cleared. Then the browser goes to
``post_logout_redirect_uri`` with ``state`` when that URI is exactly one the client registered,
or sees a "signed out" page. A URI that is not registered is never redirected to: the hub shows
an error page instead.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import structlog
from litestar import Request, Response, get, post

from hub.identity._pages import PAGE_HEADERS, form_page, message_page
from hub.identity._sso import MAX_QUERY_BYTES, Sso, clear_session_cookie, parse_params, sso
from hub.identity.id_tokens import IdTokenHint

__all__ = ["CSRF_COOKIE", "LOGOUT_PATH", "logout", "logout_confirmed"]

log = structlog.get_logger("hub.identity")

LOGOUT_PATH: Final = "/oauth2/logout"
#: The double-submit token of the hub's own forms.
# Its own name and path: the sign-in pages' ``hub_csrf`` (Path=/account) must never meet it.
CSRF_COOKIE: Final = "hub_logout_csrf"
_CSRF_FIELD: Final = "csrf"
_TOKEN_LENGTHS: Final = range(32, 129)


class _Invalid(Exception):
    """A logout request the hub refuses, with the reason to show."""


def _invalid_page(message: str) -> Response[Any]:
    return message_page("Sign-out request refused", message, status=400)


def _signed_out_page() -> Response[Any]:
    return message_page(
        "You are signed out", "You have signed out of the hub. You may close this page."
    )


def _with_state(uri: str, state: str | None) -> str:
    if state is None:
        return uri
    separator = "&" if urlsplit(uri).query else "?"
    return uri + separator + urlencode({"state": state})


async def _destination(
    context: Sso, params: dict[str, str], hint: IdTokenHint | None
) -> str | None:
    """Where to send the browser afterwards; :class:`_Invalid` for a URI not registered."""
    client_id = params.get("client_id") or None
    if hint is not None and client_id is not None and client_id != hint.client_id:
        raise _Invalid("The client_id does not match the id_token_hint.")
    client_id = client_id or (hint.client_id if hint is not None else None)
    uri = params.get("post_logout_redirect_uri")
    if uri is None:
        return None
    if client_id is None or len(client_id) > 255:
        raise _Invalid("A post_logout_redirect_uri needs a client_id or an id_token_hint.")
    client = await context.identity.clients.get(client_id)
    # Exact string comparison, as for redirect URIs.
    if (
        client is None
        or client.disabled_at is not None
        or uri not in client.post_logout_redirect_uris
    ):
        raise _Invalid(
            "The address to return to after signing out is not registered for the application."
        )
    return _with_state(uri, params.get("state"))


async def _end(context: Sso, request: Request[Any, Any, Any], hint: IdTokenHint | None) -> None:
    """End the browser's session and revoke the refresh tokens issued in it."""
    sids: set[str] = set()
    cookie = context.session_cookie(request)
    if cookie is not None:
        session = await context.sessions.end(cookie)
        if session is not None:
            sids.add(session.sid)
            log.info("session ended", sid=session.sid, reason="rp_logout")
    if hint is not None and hint.sid is not None:
        sids.add(hint.sid)
    for sid in sids:
        await context.identity.refresh_tokens.revoke_session(sid)


def _finish(context: Sso, destination: str | None) -> Response[Any]:
    if destination is None:
        response = _signed_out_page()
    else:
        response = Response(b"", status_code=303, headers={**PAGE_HEADERS, "Location": destination})
    clear_session_cookie(response, context.settings)
    return response


def _csrf_token(request: Request[Any, Any, Any]) -> str:
    # Reuse the browser's token, so two open forms of the hub do not invalidate each other.
    current = request.cookies.get(CSRF_COOKIE, "")
    usable = len(current) in _TOKEN_LENGTHS and all(c.isalnum() or c in "-_" for c in current)
    return current if usable else secrets.token_urlsafe(32)


def _confirmation(
    context: Sso, request: Request[Any, Any, Any], params: dict[str, str], destination: str | None
) -> Response[Any]:
    token = _csrf_token(request)
    fields = {_CSRF_FIELD: token}
    for name in ("client_id", "post_logout_redirect_uri", "state"):
        if name in params:
            fields[name] = params[name]
    response = form_page(
        "Sign out of the hub?",
        "An application asked to sign you out of the hub.",
        action=LOGOUT_PATH,
        fields=fields,
        button="Sign out",
        then=destination,
    )
    response.set_cookie(
        key=CSRF_COOKIE,
        value=token,
        path=LOGOUT_PATH,
        secure=context.settings.session_cookie_secure,
        httponly=True,
        samesite="strict",
    )
    return response


@get(LOGOUT_PATH, tags=["identity"])
async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    """The end-session endpoint: sign out at once with a valid hint, else ask first."""
    context = sso(request)
    params = parse_params(request.scope.get("query_string", b""))
    if isinstance(params, str):
        return _invalid_page(params)
    hint: IdTokenHint | None = None
    raw_hint = params.get("id_token_hint")
    if raw_hint:
        hint = context.id_tokens().read_hint(raw_hint)
        if hint is None:
            return _invalid_page("The id_token_hint was not issued by this hub.")
    try:
        destination = await _destination(context, params, hint)
    except _Invalid as exc:
        return _invalid_page(str(exc))
    session = await context.sessions.get(context.session_cookie(request))
    if hint is None or (session is not None and session.person_id != hint.sub):
        if session is None:
            # Nobody to sign out: nothing a forged link could do.
            return _finish(context, destination)
        return _confirmation(context, request, params, destination)
    await _end(context, request, hint)
    return _finish(context, destination)


@post(LOGOUT_PATH, status_code=200, tags=["identity"])
async def logout_confirmed(request: Request[Any, Any, Any]) -> Response[Any]:
    """The confirmation form's POST: checks the double-submit token, then signs out."""
    context = sso(request)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_QUERY_BYTES:
            return _invalid_page("The request is too long.")
    params = parse_params(bytes(body))
    if isinstance(params, str):
        return _invalid_page(params)
    sent = params.get(_CSRF_FIELD, "")
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return message_page(
            "Sign-out not confirmed",
            "The sign-out form has expired. Go back to the application and sign out again.",
            status=403,
        )
    try:
        destination = await _destination(context, params, None)
    except _Invalid as exc:
        return _invalid_page(str(exc))
    await _end(context, request, None)
    return _finish(context, destination)
