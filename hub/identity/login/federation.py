"""``/account/federation/national/start`` and ``/callback``: sign in through the national IdP.

``start`` keeps the PKCE verifier, the nonce and where to go afterwards in the ephemeral store
under ``fed:<state>`` for ten minutes, and sends the browser to the IdP. The record is bound to
this browser by the ``hub_fed`` cookie (SameSite=Lax, so it comes back on the IdP's top-level
redirect): a ``state`` and ``code`` lifted from another browser's callback URL are useless here.
``callback`` uses the record up, redeems the code, verifies the ID token and signs in the person
whose national ID it carries, at the ``national-idp`` level. A national ID with no person in the
hub (or a disabled one) is told so plainly; the IdP being down or refusing is a page, never a 500.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any, Final

from litestar import Request, Response, get
from litestar.datastructures import Cookie

from hub.errors import FederationFailed
from hub.identity.acr import ACR_NATIONAL_IDP
from hub.identity.login._render import message_page, redirect
from hub.identity.login._signin import finish_sign_in
from hub.identity.login._web import (
    Destination,
    account_cookie,
    clear_cookie,
    destination_from,
    identity_of,
    runtime_of,
)
from hub.identity.login.national_idp import NationalIdpClient
from hub.settings import Settings

__all__ = ["CALLBACK_PATH", "FED_COOKIE", "federation_callback", "federation_start"]

CALLBACK_PATH: Final = "/account/federation/national/callback"
FED_COOKIE: Final = "hub_fed"
_FED_PREFIX: Final = "fed:"
_FED_SECONDS: Final = 10 * 60
_CLIENT_STATE_KEY: Final = "national_idp_client"
_MAX_PARAM: Final = 2048


def _client(request: Request[Any, Any, Any], settings: Settings) -> NationalIdpClient | None:
    """The IdP client for these settings, made once per app (it caches metadata and keys)."""
    issuer = settings.national_idp_issuer
    client_id = settings.national_idp_client_id
    secret = settings.national_idp_client_secret
    if issuer is None or client_id is None or secret is None:
        return None
    state = request.app.state
    client = state.get(_CLIENT_STATE_KEY)
    if isinstance(client, NationalIdpClient) and client.issuer == issuer:
        return client
    client = NationalIdpClient(
        issuer=issuer,
        client_id=client_id,
        client_secret=secret,
        redirect_uri=settings.issuer + CALLBACK_PATH,
    )
    state[_CLIENT_STATE_KEY] = client
    return client


def _fed_cookie(settings: Settings, value: str) -> Cookie:
    return account_cookie(
        settings,
        FED_COOKIE,
        value,
        path="/account/federation",
        samesite="lax",
        max_age=_FED_SECONDS,
    )


def _cleared_fed_cookie(settings: Settings) -> Cookie:
    return clear_cookie(_fed_cookie(settings, ""))


def _unavailable() -> Response[str]:
    return message_page(
        "federation_unavailable",
        "Sign-in with the national identity provider is not available",
        "This hub is not set up to use the national identity provider.",
        status=404,
    )


def _failed(settings: Settings, detail: str, *, status: int = 502) -> Response[str]:
    return message_page(
        "federation_failed",
        "The national identity provider could not sign you in",
        f"{detail} Please try again in a few minutes, or sign in with your password.",
        status=status,
        link=("/account/login", "Back to sign-in"),
        cookies=[_cleared_fed_cookie(settings)],
    )


def _bad_state(settings: Settings) -> Response[str]:
    return message_page(
        "federation_state_invalid",
        "This sign-in cannot be completed",
        "The answer from the national identity provider does not belong to a sign-in started "
        "in this browser, or it came too late. Start again from the sign-in page.",
        status=400,
        link=("/account/login", "Back to sign-in"),
        cookies=[_cleared_fed_cookie(settings)],
    )


@get("/federation/national/start", include_in_schema=False)
async def federation_start(request: Request[Any, Any, Any]) -> Response[str]:
    """Send the browser to the national IdP, remembering how to carry on afterwards."""
    runtime = runtime_of(request)
    settings = runtime.settings
    client = _client(request, settings)
    if client is None:
        return _unavailable()
    destination = destination_from(request.query_params)
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # 86 characters, within RFC 7636's 43..128
    binding = request.cookies.get(FED_COOKIE) or ""
    if len(binding) != 43:
        binding = secrets.token_urlsafe(32)
    try:
        url = await client.authorization_url(state=state, nonce=nonce, code_verifier=verifier)
    except FederationFailed:
        return _failed(settings, "The national identity provider is not answering.")
    record = {
        "verifier": verifier,
        "nonce": nonce,
        "binding": binding,
        "destination": destination.to_json(),
    }
    await runtime.ephemeral.put(_FED_PREFIX + state, record, _FED_SECONDS)
    return redirect(url, cookies=[_fed_cookie(settings, binding)])


@get("/federation/national/callback", include_in_schema=False)
async def federation_callback(request: Request[Any, Any, Any]) -> Response[str]:
    """Finish the sign-in the IdP sends back: check, redeem, verify, link by national ID."""
    runtime = runtime_of(request)
    settings = runtime.settings
    client = _client(request, settings)
    if client is None:
        return _unavailable()
    params = request.query_params
    state = params.get("state") or ""
    if not state or len(state) > _MAX_PARAM:
        return _bad_state(settings)
    record = await runtime.ephemeral.take(_FED_PREFIX + state)
    binding = request.cookies.get(FED_COOKIE) or ""
    expected = record.get("binding") if record else None
    if (
        record is None
        or not isinstance(expected, str)
        or not hmac.compare_digest(expected.encode(), binding.encode("utf-8", "replace"))
    ):
        return _bad_state(settings)
    issuer_param = params.get("iss")
    if issuer_param is not None and issuer_param != client.issuer:
        # RFC 9207: the answer comes from another provider (a mix-up attack).
        return _bad_state(settings)
    error = params.get("error")
    if error:
        if error == "access_denied":
            return message_page(
                "federation_denied",
                "Sign-in was cancelled",
                "The sign-in at the national identity provider was cancelled.",
                status=403,
                link=("/account/login", "Back to sign-in"),
                cookies=[_cleared_fed_cookie(settings)],
            )
        return _failed(
            settings, f"The national identity provider answered “{error[:80]}”.", status=502
        )
    code = params.get("code") or ""
    if not code or len(code) > _MAX_PARAM:
        return _bad_state(settings)
    try:
        identity = await client.redeem(
            code=code, code_verifier=str(record["verifier"]), nonce=str(record["nonce"])
        )
    except FederationFailed:
        return _failed(settings, "The national identity provider could not complete the sign-in.")
    person = await identity_of(runtime).persons.by_identifier(identity.national_id)
    if person is None or person.disabled_at is not None:
        return message_page(
            "no_linked_person",
            "No record for this national ID",
            "The national identity provider signed you in, but this service holds no record "
            "for your national ID. Contact the service desk if you think it should.",
            status=403,
            cookies=[_cleared_fed_cookie(settings)],
        )
    destination = Destination.from_json(dict(record.get("destination") or {}))
    return await finish_sign_in(
        request,
        runtime,
        person_id=person.id,
        acr=ACR_NATIONAL_IDP,
        amr=["fed"],
        destination=destination,
        cookies=[_cleared_fed_cookie(settings)],
    )
