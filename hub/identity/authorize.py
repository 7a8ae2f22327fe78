"""``GET /oauth2/authorize``: the authorization code flow's first leg (RFC 6749 §4.1, OIDC §3.1).

The hub validates the request itself rather than through authlib's authorization endpoint:
a request here outlives one HTTP exchange (it waits, saved under a ``rid``, while the person
signs in and consents on the account pages, then resumes at ``?rid=``), which authlib's
request-bound ``validate_consent_request`` / ``create_authorization_response`` do not model.
authlib still redeems the codes (:mod:`hub.identity.grants`).

Order of checks (RFC 6749 §4.1.2.1): an unknown or disabled client, or a ``redirect_uri`` that
is not exactly (character for character) one the client registered, is shown as an HTML page
and never redirected to. Every later error goes back to the client with ``error``, ``state`` and
``iss`` (RFC 9207). ``redirect_uri`` is always required, even for a client with one URI.

PKCE is required of every client, confidential ones included: ``code_challenge_method=S256``
(``plain`` is refused, and so is leaving the method out, which RFC 7636 would read as ``plain``).
The OpenID Connect scopes (:data:`~hub.identity.id_tokens.OIDC_SCOPES`) are open to any client
with the authorization code grant; any other scope must be registered for the client.

Then the sign-in: no session, ``prompt=login``, an expired ``max_age`` or a session weaker than
``acr_values`` asks sends the browser to ``/account/login?rid=``; a third-party client without
the person's consent (or with ``prompt=consent``) to ``/account/consent?rid=``. A resumed
request whose sign-in (or consent) happened after the request was made is not sent back: that
is how a ``prompt=login`` or ``max_age=0`` request does not loop. ``prompt=none`` answers
``login_required`` / ``consent_required`` instead of showing a page.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import Any, Final
from urllib.parse import urlencode

from authlib.oauth2.rfc6749 import InvalidScopeError  # type: ignore[import-untyped]
from litestar import Request, Response, get

from hub.db.client_store import OAuthClient
from hub.identity._pages import message_page
from hub.identity._sso import NO_STORE, Sso, query_params, sso
from hub.identity.acr import satisfies, weakest_known
from hub.identity.authz_request import AuthorizationRequest, redirect_with
from hub.identity.client_auth import parse_scope
from hub.identity.codes import AuthorizationCode
from hub.identity.grants import PKCE_METHOD
from hub.identity.id_tokens import OIDC_SCOPES
from hub.identity.sessions import LoginSession

__all__ = ["AUTHORIZE_PATH", "CONSENT_PATH", "LOGIN_PATH", "authorize"]

AUTHORIZE_PATH: Final = "/oauth2/authorize"
LOGIN_PATH: Final = "/account/login"
CONSENT_PATH: Final = "/account/consent"
_MAX_NONCE_LENGTH: Final = 512
_PROMPTS: Final = frozenset({"none", "login", "consent", "select_account"})
# RFC 7636 §4.2: 43 to 128 unreserved characters.
_CHALLENGE: Final = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_MAX_AGE: Final = re.compile(r"[0-9]{1,9}")
_NO_CLIENT: Final = (
    "The application that sent you here is not registered with the hub, or may not sign"
    " people in this way. Go back to the application and try again."
)


class _Refused(Exception):
    """An error to send back to the client: ``error`` and ``error_description``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _page(message: str, *, status: int = 400) -> Response[Any]:
    return message_page("Sign-in request refused", message, status=status)


def _redirect(location: str) -> Response[Any]:
    return Response(b"", status_code=303, headers={"Location": location, **NO_STORE})


async def _client(context: Sso, client_id: str | None) -> OAuthClient | None:
    if not client_id or len(client_id) > 255:
        return None
    client = await context.identity.clients.get(client_id)
    usable = (
        client is not None
        and client.disabled_at is None
        and "authorization_code" in client.grant_types
    )
    return client if usable else None


def _bare(client_id: str, redirect_uri: str, state: str | None) -> AuthorizationRequest:
    """A stand-in request, to redirect an error before the whole request is understood."""
    return AuthorizationRequest(
        rid="",
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=(),
        state=state,
        nonce=None,
        code_challenge="",
        code_challenge_method="",
        acr=None,
        prompt=(),
        max_age=None,
        created_at=0.0,
    )


def _check_scopes(client: OAuthClient, scope: str | None) -> tuple[str, ...]:
    try:
        scopes = parse_scope(scope)
    except InvalidScopeError:
        raise _Refused("invalid_scope", "the scope parameter is malformed") from None
    if not scopes:
        raise _Refused("invalid_scope", "the scope parameter is required")
    refused = [s for s in scopes if s not in OIDC_SCOPES and s not in client.scopes]
    if refused:
        raise _Refused("invalid_scope", f"the client may not request: {' '.join(refused)}")
    return scopes


def _check_pkce(params: dict[str, str]) -> str:
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if not challenge:
        raise _Refused("invalid_request", "code_challenge is required (PKCE with S256)")
    if method != PKCE_METHOD:
        raise _Refused("invalid_request", "code_challenge_method must be S256")
    if _CHALLENGE.fullmatch(challenge) is None:
        raise _Refused("invalid_request", "code_challenge must be 43 to 128 unreserved characters")
    return challenge


def _check_prompt(value: str | None) -> tuple[str, ...]:
    prompt = tuple(dict.fromkeys((value or "").split()))
    unknown = [p for p in prompt if p not in _PROMPTS]
    if unknown:
        raise _Refused("invalid_request", f"unsupported prompt value: {unknown[0][:40]}")
    if "none" in prompt and len(prompt) > 1:
        raise _Refused("invalid_request", "prompt=none may not be combined with other values")
    return prompt


def _new_request(
    context: Sso, client: OAuthClient, redirect_uri: str, params: dict[str, str]
) -> AuthorizationRequest:
    """The request checked past its redirect URI; :class:`_Refused` for what goes back."""
    if "request" in params:
        raise _Refused("request_not_supported", "request objects are not supported")
    if "request_uri" in params:
        raise _Refused("request_uri_not_supported", "request_uri is not supported")
    response_type = params.get("response_type")
    if not response_type:
        raise _Refused("invalid_request", "response_type is required")
    if response_type != "code":
        raise _Refused("unsupported_response_type", "only response_type=code is supported")
    if params.get("response_mode", "query") != "query":
        raise _Refused("invalid_request", "only response_mode=query is supported")
    scopes = _check_scopes(client, params.get("scope"))
    challenge = _check_pkce(params)
    nonce = params.get("nonce")
    if nonce is not None and not 0 < len(nonce) <= _MAX_NONCE_LENGTH:
        raise _Refused("invalid_request", f"nonce must be 1 to {_MAX_NONCE_LENGTH} characters")
    max_age = params.get("max_age")
    if max_age is not None and _MAX_AGE.fullmatch(max_age) is None:
        raise _Refused("invalid_request", "max_age must be a non-negative integer")
    return AuthorizationRequest(
        rid=context.authz_requests.new_rid(),
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        state=params.get("state"),
        nonce=nonce,
        code_challenge=challenge,
        code_challenge_method=PKCE_METHOD,
        acr=weakest_known(params.get("acr_values", "").split()),
        prompt=_check_prompt(params.get("prompt")),
        max_age=None if max_age is None else int(max_age),
        created_at=time.time(),
    )


async def _live_session(
    context: Sso, request: Request[Any, Any, Any]
) -> tuple[str, LoginSession] | None:
    """The browser's session, if it is live and its person may still sign in."""
    cookie = context.session_cookie(request)
    session = await context.sessions.get(cookie)
    if cookie is None or session is None:
        return None
    person = await context.identity.persons.get(session.person_id)
    if person is None or person.disabled_at is not None:
        await context.sessions.end(cookie)
        return None
    return cookie, session


async def _needs_consent(
    context: Sso, client: OAuthClient, req: AuthorizationRequest, person_id: str
) -> bool:
    if client.first_party:
        return False
    consent = next(
        (
            c
            for c in await context.identity.consents.list_for(person_id)
            if c.client_id == client.client_id
        ),
        None,
    )
    if consent is None:
        return True
    if "consent" in req.prompt and consent.updated_at.timestamp() < req.created_at:
        return True
    return not set(req.scopes) - {"openid"} <= consent.scopes


async def _proceed(
    context: Sso,
    request: Request[Any, Any, Any],
    client: OAuthClient,
    req: AuthorizationRequest,
    *,
    saved: bool,
) -> Response[Any]:
    """Sign-in, consent, then the code: the common path of a new and a resumed request."""
    issuer = context.settings.issuer
    interactive = "none" not in req.prompt

    async def ask(path: str, error: str, description: str) -> Response[Any]:
        if not interactive:
            return _redirect(redirect_with(req, issuer, error=error, error_description=description))
        if not saved:
            await context.authz_requests.save(req)
        return _redirect(f"{path}?{urlencode({'rid': req.rid})}")

    live = await _live_session(context, request)
    if live is None:
        return await ask(LOGIN_PATH, "login_required", "the person is not signed in")
    cookie, session = live
    # Signed in after this request was made: whatever it asked of the sign-in was asked then.
    fresh = session.auth_time >= int(req.created_at)
    too_old = req.max_age is not None and time.time() - session.auth_time > req.max_age
    if not fresh and ("login" in req.prompt or too_old):
        return await ask(LOGIN_PATH, "login_required", "a new sign-in is required")
    if not satisfies(session.acr, req.acr):
        if fresh:
            await context.authz_requests.finish(req.rid)
            return _redirect(
                redirect_with(
                    req,
                    issuer,
                    error="unmet_authentication_requirements",
                    error_description="the sign-in did not reach the requested acr",
                )
            )
        return await ask(LOGIN_PATH, "login_required", "a stronger sign-in is required")
    if await _needs_consent(context, client, req, session.person_id):
        return await ask(CONSENT_PATH, "consent_required", "the person has not consented")
    if saved and await context.authz_requests.finish(req.rid) is None:
        return _page("This sign-in request was already completed. Go back to the application.")
    code = await context.codes.issue(
        AuthorizationCode(
            client_id=client.client_id,
            redirect_uri=req.redirect_uri,
            scopes=req.scopes,
            nonce=req.nonce,
            code_challenge=req.code_challenge,
            code_challenge_method=req.code_challenge_method,
            person_id=session.person_id,
            sid=session.sid,
            acr=session.acr,
            amr=session.amr,
            auth_time=session.auth_time,
        )
    )
    clients = list(session.extra.get("clients", []))
    if client.client_id not in clients:
        # Which relying parties this session signed in to: logout tells (or revokes) them.
        extra = {**session.extra, "clients": [*clients, client.client_id]}
        await context.sessions.update(cookie, replace(session, extra=extra))
    return _redirect(redirect_with(req, issuer, code=code))


@get(AUTHORIZE_PATH, tags=["identity"], include_in_schema=True)
async def authorize(request: Request[Any, Any, Any]) -> Response[Any]:
    """The authorization endpoint (authorization code flow with PKCE; OpenID Connect)."""
    context = sso(request)
    params = query_params(request)
    if isinstance(params, str):
        return _page(params)
    if "rid" in params:
        saved = await context.authz_requests.load(params["rid"])
        client = None if saved is None else await _client(context, saved.client_id)
        if saved is None or client is None or saved.redirect_uri not in client.redirect_uris:
            return _page(
                "This sign-in request has expired or was already used."
                " Go back to the application and start again.",
            )
        return await _proceed(context, request, client, saved, saved=True)
    client = await _client(context, params.get("client_id"))
    if client is None:
        return _page(_NO_CLIENT)
    redirect_uri = params.get("redirect_uri")
    # Exact string comparison: no normalisation, no case folding, no prefix match.
    if not redirect_uri or redirect_uri not in client.redirect_uris:
        return _page(
            "The address the application asked to return to is not one it registered,"
            " so the hub will not send you there."
        )
    try:
        req = _new_request(context, client, redirect_uri, params)
    except _Refused as refused:
        bare = _bare(client.client_id, redirect_uri, params.get("state"))
        location = redirect_with(
            bare,
            context.settings.issuer,
            error=refused.error,
            error_description=refused.description,
        )
        return _redirect(location)
    return await _proceed(context, request, client, req, saved=False)
