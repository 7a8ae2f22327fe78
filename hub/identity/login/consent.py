"""``/account/consent``: a person allows (or refuses) a third-party client their data scopes.

Approving records the scopes (``openid`` aside: it only asks who the person is) and sends the
browser back to ``/oauth2/authorize?rid=...``, which issues the code. Denying uses the request up
and sends the browser to the client with ``error=access_denied`` (RFC 6749 §4.1.2.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from litestar import Request, Response, get, post

from hub.identity.authz_request import AuthorizationRequest, redirect_with
from hub.identity.login._pages import form_page, posted_form, request_expired
from hub.identity.login._render import message_page, redirect
from hub.identity.login._web import (
    Destination,
    current_session,
    destination_from,
    identity_of,
    runtime_of,
)
from hub.identity.sessions import LoginSession
from hub.runtime import Runtime

__all__ = ["SCOPE_TEXT", "consent_page", "consent_submit", "describe_scope"]

#: What a scope lets a client do, in words a person reads on the consent page.
SCOPE_TEXT: Final = {
    "profile": "See your name.",
    "email": "See your email address.",
    "phone": "See your phone number.",
    "address": "See your address.",
    "offline_access": "Keep access while you are not using it (until you withdraw it).",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ScopeLine:
    name: str
    text: str


def describe_scope(scope: str) -> str:
    """``scope`` in plain words; a data scope such as ``tax.read`` says which data and how."""
    if scope in SCOPE_TEXT:
        return SCOPE_TEXT[scope]
    area, _, verb = scope.rpartition(".")
    if area and verb in ("read", "write"):
        action = "See" if verb == "read" else "See and change"
        return f"{action} your {area.replace('_', ' ').replace('.', ' ')} data ({scope})."
    return f"Use your data under the permission “{scope}”."


async def _person_and_request(
    request: Request[Any, Any, Any], values: dict[str, str] | Any
) -> tuple[Runtime, LoginSession, AuthorizationRequest] | Response[str]:
    runtime = runtime_of(request)
    destination = destination_from(values)
    if not destination.rid:
        return request_expired()
    _raw, session = await current_session(request, runtime)
    if session is None:
        return redirect("/account/login" + Destination(rid=destination.rid).query())
    req = await runtime.authz_requests.load(destination.rid)
    if req is None:
        return request_expired()
    return runtime, session, req


@get("/consent", include_in_schema=False)
async def consent_page(request: Request[Any, Any, Any]) -> Response[str]:
    """The client's name and the data it asks for, with Allow and Deny."""
    found = await _person_and_request(request, request.query_params)
    if isinstance(found, Response):
        return found
    runtime, session, req = found
    identity = identity_of(runtime)
    client = await identity.clients.get(req.client_id)
    person = await identity.persons.get(session.person_id)
    if client is None or client.disabled_at is not None or person is None:
        return request_expired()
    return form_page(
        request,
        runtime.settings,
        "consent.html",
        client_name=client.name,
        person_name=f"{person.given_name} {person.family_name}",
        scopes=[ScopeLine(name=s, text=describe_scope(s)) for s in req.scopes if s != "openid"],
        rid=req.rid,
    )


@post("/consent", include_in_schema=False, status_code=200)
async def consent_submit(request: Request[Any, Any, Any]) -> Response[str]:
    """Record the person's answer and carry on the authorization request."""
    runtime = runtime_of(request)
    form = await posted_form(request, runtime.settings)
    if isinstance(form, Response):
        return form
    found = await _person_and_request(request, form)
    if isinstance(found, Response):
        return found
    runtime, session, req = found
    decision = form.get("decision")
    if decision == "deny":
        finished = await runtime.authz_requests.finish(req.rid)
        if finished is None:
            return request_expired()
        return redirect(redirect_with(finished, runtime.settings.issuer, error="access_denied"))
    if decision != "approve":
        return message_page(
            "invalid_form", "The form could not be read", "Choose Allow or Deny.", status=400
        )
    scopes = [s for s in req.scopes if s != "openid"]
    await identity_of(runtime).consents.grant(session.person_id, req.client_id, scopes)
    return redirect(Destination(rid=req.rid).url)
