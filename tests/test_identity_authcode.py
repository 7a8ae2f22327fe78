"""The authorization code flow with PKCE: ``/oauth2/authorize`` and the code at ``/oauth2/token``.

A first-party public client (the citizen portal: PKCE, no secret, no consent screen) and a
third-party confidential client (``client_secret_basic``, consent), against the whole hub app.
The attack cases follow RFC 9700 (OAuth 2.0 Security BCP): exact redirect URIs, PKCE downgrade,
code replay and code injection across clients.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import httpx
import jwt
import pytest

from hub.identity.acr import ACR_MFA, ACR_PASSWORD
from tests.sso_support import (
    ISSUER,
    PORTAL_URI,
    VENDOR_URI,
    Pkce,
    SsoHub,
    backend_env,
    query_of,
    sso_hub,
)

__all__ = ["backend_env", "sso_hub"]  # fixtures, used by name

pytestmark = pytest.mark.integration


def assert_page(response: httpx.Response, status: int = 400) -> str:
    """An HTML error page, never a redirect, with the hub's protective headers."""
    assert response.status_code == status, response.text
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    return response.text


def assert_error_redirect(
    response: httpx.Response, params: dict[str, str], error: str, description: str | None = None
) -> dict[str, str]:
    """An error sent back to the client's exact redirect URI with its state and our iss."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(params["redirect_uri"] + "?")
    query = query_of(location)
    assert query["error"] == error, query
    assert query["state"] == params["state"]
    assert query["iss"] == ISSUER
    assert "code" not in query
    if description is not None:
        assert query["error_description"] == description
    return query


def token_error(response: httpx.Response, error: str, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == error, body
    assert response.headers["cache-control"] == "no-store"
    return body


# -- the happy paths ---------------------------------------------------------------------------


async def test_the_portal_signs_a_person_in_with_pkce_and_no_secret(sso_hub: SsoHub) -> None:
    hub, client, pkce = sso_hub, sso_hub.portal_client, Pkce.new()
    cookie, session = hub.sign_in(acr=ACR_MFA, amr=("pwd", "otp"))
    params = hub.params(client, pkce, scope="openid profile email national_id")

    response = await hub.authorize(params, cookie)

    assert response.status_code == 303
    assert response.headers["cache-control"] == "no-store"
    location = response.headers["location"]
    assert location.startswith(PORTAL_URI + "?")
    query = query_of(location)
    assert query["state"] == params["state"]
    assert query["iss"] == ISSUER  # RFC 9207
    assert len(query["code"]) >= 43

    tokens = await hub.exchange(client, query["code"], pkce)

    assert tokens.status_code == 200, tokens.text
    assert tokens.headers["cache-control"] == "no-store"
    body = tokens.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "openid profile email national_id"
    assert body["expires_in"] == hub.runtime.settings.access_token_seconds
    assert body["refresh_token"]

    id_claims = await hub.verify_id_token(body["id_token"], client)
    assert id_claims["sub"] == hub.person.id
    assert id_claims["azp"] == client.client_id
    assert id_claims["nonce"] == params["nonce"]
    assert id_claims["acr"] == ACR_MFA
    assert id_claims["amr"] == ["pwd", "otp"]
    assert id_claims["auth_time"] == session.auth_time
    assert id_claims["sid"] == session.sid
    assert id_claims["exp"] - id_claims["iat"] <= 300
    digest = hashlib.sha256(body["access_token"].encode()).digest()
    assert id_claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    assert id_claims["given_name"] == "Amal"
    assert id_claims["family_name"] == "Haddad"
    assert id_claims["name"] == "Amal Haddad"
    assert id_claims["email"] == "amal@example.gov"
    assert id_claims["national_id"] == "1000000001"
    assert id_claims["person_kind"] == "citizen"
    assert "phone_number" not in id_claims  # the phone scope was not asked for

    header = jwt.get_unverified_header(body["access_token"])
    access = jwt.decode(
        body["access_token"],
        (await hub.jwks())[header["kid"]],
        algorithms=["RS256"],
        audience="hub",
        issuer=ISSUER,
    )
    assert access["kind"] == "person"
    assert access["sub"] == hub.person.id
    assert access["client_id"] == client.client_id
    assert access["acr"] == ACR_MFA
    assert access["auth_time"] == session.auth_time
    assert access["sid"] == session.sid

    # The session remembers the relying parties it signed in to (for logout).
    live = hub.call(hub.runtime.sessions.get, cookie)
    assert live is not None
    assert live.extra["clients"] == [client.client_id]


async def test_a_vendor_asks_consent_once_then_uses_its_secret(sso_hub: SsoHub) -> None:
    hub, client, pkce = sso_hub, sso_hub.vendor, Pkce.new()
    cookie, _ = hub.sign_in()
    params = hub.params(client, pkce, scope="openid profile svc.read")

    first = await hub.authorize(params, cookie)

    assert first.status_code == 303
    consent_url = first.headers["location"]
    assert consent_url.startswith("/account/consent?rid=")
    rid = query_of(consent_url)["rid"]
    # What the consent page does on "allow" (helper D's contract): grant, then resume.
    hub.call(hub.identity.consents.grant, hub.person.id, client.client_id, ["profile", "svc.read"])
    resumed = await hub.client.get(
        "/oauth2/authorize", params={"rid": rid}, headers={"Cookie": f"hub_session={cookie}"}
    )
    assert resumed.status_code == 303
    query = query_of(resumed.headers["location"])
    assert resumed.headers["location"].startswith(VENDOR_URI + "?")
    assert query["state"] == params["state"]

    # No secret: a confidential client cannot pass for a public one.
    anonymous = await hub.exchange(client, query["code"], pkce)
    token_error(anonymous, "invalid_client", 401)

    # That attempt used the code up; a new sign-in needs no consent screen any more.
    code, _ = await hub.code_for(client, pkce, cookie, scope="openid svc.read")
    tokens = await hub.exchange(client, code, pkce, secret=hub.vendor_secret)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["scope"] == "openid svc.read"
    claims = await hub.verify_id_token(body["id_token"], client)
    assert "given_name" not in claims

    # A rid is used up once its code is issued.
    again = await hub.client.get(
        "/oauth2/authorize", params={"rid": rid}, headers={"Cookie": f"hub_session={cookie}"}
    )
    assert_page(again)


async def test_without_openid_there_is_no_id_token(sso_hub: SsoHub) -> None:
    hub, pkce = sso_hub, Pkce.new()
    cookie, _ = hub.sign_in()
    hub.call(hub.identity.consents.grant, hub.person.id, hub.vendor.client_id, ["svc.read"])
    code, _ = await hub.code_for(hub.vendor, pkce, cookie, scope="svc.read")

    body = (await hub.exchange(hub.vendor, code, pkce, secret=hub.vendor_secret)).json()

    assert body["scope"] == "svc.read"
    assert "id_token" not in body


# -- sign-in and consent, loop-free -------------------------------------------------------------


async def test_no_session_sends_the_browser_to_login_and_the_request_resumes(
    sso_hub: SsoHub,
) -> None:
    hub, pkce = sso_hub, Pkce.new()
    params = hub.params(hub.portal_client, pkce)

    response = await hub.authorize(params)

    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/account/login?rid=")
    cookie, _ = hub.sign_in()
    resumed = await hub.authorize({"rid": query_of(location)["rid"]}, cookie)
    assert resumed.status_code == 303
    query = query_of(resumed.headers["location"])
    assert query["state"] == params["state"]
    tokens = await hub.exchange(hub.portal_client, query["code"], pkce)
    assert tokens.status_code == 200


@pytest.mark.parametrize("asked", [{"prompt": "login"}, {"max_age": "0"}])
async def test_prompt_login_and_max_age_ask_once_and_do_not_loop(
    sso_hub: SsoHub, asked: dict[str, str]
) -> None:
    hub, pkce = sso_hub, Pkce.new()
    old_cookie, _ = hub.sign_in(auth_time=int(time.time()) - 600)

    first = await hub.authorize(hub.params(hub.portal_client, pkce, **asked), old_cookie)

    assert first.headers["location"].startswith("/account/login?rid=")
    rid = query_of(first.headers["location"])["rid"]
    # The same old session again: still a login.
    again = await hub.authorize({"rid": rid}, old_cookie)
    assert again.headers["location"].startswith("/account/login?rid=")
    # Signed in anew after the request was made: the code, not another login.
    fresh, _ = hub.sign_in()
    done = await hub.authorize({"rid": rid}, fresh)
    assert "code" in query_of(done.headers["location"])


async def test_max_age_is_met_by_a_recent_sign_in(sso_hub: SsoHub) -> None:
    hub, pkce = sso_hub, Pkce.new()
    cookie, _ = hub.sign_in(auth_time=int(time.time()) - 30)

    response = await hub.authorize(hub.params(hub.portal_client, pkce, max_age="300"), cookie)

    assert "code" in query_of(response.headers["location"])


async def test_acr_values_ask_for_a_stronger_sign_in(sso_hub: SsoHub) -> None:
    hub, pkce = sso_hub, Pkce.new()
    weak, _ = hub.sign_in(acr=ACR_PASSWORD, auth_time=int(time.time()) - 60)
    params = hub.params(hub.portal_client, pkce, acr_values=f"{ACR_MFA} urn:other:acr")

    first = await hub.authorize(params, weak)

    assert first.headers["location"].startswith("/account/login?rid=")
    rid = query_of(first.headers["location"])["rid"]
    # A fresh sign-in that still falls short is an error, not a loop.
    still_weak, _ = hub.sign_in(acr=ACR_PASSWORD)
    refused = await hub.authorize({"rid": rid}, still_weak)
    assert_error_redirect(refused, params, "unmet_authentication_requirements")

    strong, _ = hub.sign_in(acr=ACR_MFA, amr=("pwd", "otp"))
    code, _ = await hub.code_for(
        hub.portal_client, pkce, strong, acr_values=ACR_MFA, nonce="n-strong"
    )
    body = (await hub.exchange(hub.portal_client, code, pkce)).json()
    claims = await hub.verify_id_token(body["id_token"], hub.portal_client)
    assert claims["acr"] == ACR_MFA


async def test_prompt_consent_shows_the_screen_even_after_consent(sso_hub: SsoHub) -> None:
    hub, pkce = sso_hub, Pkce.new()
    cookie, _ = hub.sign_in()
    hub.call(hub.identity.consents.grant, hub.person.id, hub.vendor.client_id, ["profile"])

    first = await hub.authorize(hub.params(hub.vendor, pkce, prompt="consent"), cookie)

    assert first.headers["location"].startswith("/account/consent?rid=")
    rid = query_of(first.headers["location"])["rid"]
    hub.call(hub.identity.consents.grant, hub.person.id, hub.vendor.client_id, ["profile"])
    done = await hub.authorize({"rid": rid}, cookie)
    assert "code" in query_of(done.headers["location"])


async def test_prompt_none_answers_instead_of_showing_pages(sso_hub: SsoHub) -> None:
    hub, pkce = sso_hub, Pkce.new()
    params = hub.params(hub.portal_client, pkce, prompt="none")
    assert_error_redirect(await hub.authorize(params), params, "login_required")

    cookie, _ = hub.sign_in()
    vendor_params = hub.params(hub.vendor, pkce, prompt="none")
    assert_error_redirect(
        await hub.authorize(vendor_params, cookie), vendor_params, "consent_required"
    )

    portal = await hub.authorize(params, cookie)
    assert "code" in query_of(portal.headers["location"])

    mixed = hub.params(hub.portal_client, pkce, prompt="none login")
    assert_error_redirect(await hub.authorize(mixed, cookie), mixed, "invalid_request")


async def test_a_disabled_person_s_session_does_not_sign_in(sso_hub: SsoHub) -> None:
    hub, pkce = sso_hub, Pkce.new()
    cookie, _ = hub.sign_in()
    hub.call(hub.identity.persons.disable, hub.person.id)

    response = await hub.authorize(hub.params(hub.portal_client, pkce), cookie)

    assert response.headers["location"].startswith("/account/login?rid=")
    assert hub.call(hub.runtime.sessions.get, cookie) is None


# -- the client and its redirect URI: a page, never a redirect ----------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        PORTAL_URI + "/extra",
        PORTAL_URI + "?next=https://evil.example",
        PORTAL_URI.upper(),
        PORTAL_URI.replace("portal", "PORTAL"),
        PORTAL_URI + "/",
        PORTAL_URI.replace(".gov/", ".gov:8443/"),
        PORTAL_URI.replace(".gov/", ".gov:443/"),
        PORTAL_URI + "#frag",
        PORTAL_URI.replace("https", "http"),
        PORTAL_URI.removesuffix("/callback"),
        "https://portal.example.gov.evil.example/callback",
        "https://evil.example/callback",
        PORTAL_URI + "%2F..",
        " " + PORTAL_URI,
    ],
)
async def test_a_redirect_uri_not_registered_exactly_is_never_redirected_to(
    sso_hub: SsoHub, variant: str
) -> None:
    hub = sso_hub
    cookie, _ = hub.sign_in()
    params = hub.params(hub.portal_client, Pkce.new(), redirect_uri=variant)

    response = await hub.authorize(params, cookie)

    assert_page(response)


async def test_redirect_uri_is_required_even_with_one_registered(sso_hub: SsoHub) -> None:
    hub = sso_hub
    params = hub.params(hub.portal_client, Pkce.new())
    del params["redirect_uri"]

    assert_page(await hub.authorize(params))


async def test_unknown_disabled_or_unfit_clients_get_a_page(sso_hub: SsoHub) -> None:
    hub, pkce = sso_hub, Pkce.new()
    unknown = hub.params(hub.portal_client, pkce, client_id="cli_<script>alert(1)</script>")
    text = assert_page(await hub.authorize(unknown))
    assert "<script>" not in text

    machine, _ = hub.create_client(
        name="Batch job", auth_method="client_secret_basic", scopes=["svc.read"]
    )
    assert_page(await hub.authorize(hub.params(machine, pkce, redirect_uri=VENDOR_URI)))

    hub.call(hub.identity.clients.disable, hub.vendor.client_id)
    assert_page(await hub.authorize(hub.params(hub.vendor, pkce)))


@pytest.mark.parametrize(
    "query",
    [
        "client_id=a&client_id=b",
        "client_id=%ff",
        "client_id=caf%C3%A9",
        "client_id=" + "a" * 9000,
    ],
)
async def test_a_malformed_request_is_a_page(sso_hub: SsoHub, query: str) -> None:
    response = await sso_hub.client.get("/oauth2/authorize?" + query)
    assert_page(response)


# -- errors sent back to the client ------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "error", "description"),
    [
        (
            {"code_challenge_method": "plain"},
            "invalid_request",
            "code_challenge_method must be S256",
        ),
        ({"code_challenge_method": None}, "invalid_request", "code_challenge_method must be S256"),
        (
            {"code_challenge_method": "s256"},
            "invalid_request",
            "code_challenge_method must be S256",
        ),
        ({"code_challenge": None}, "invalid_request", None),
        ({"code_challenge": "too-short"}, "invalid_request", None),
        ({"code_challenge": "a" * 42 + "!"}, "invalid_request", None),
        ({"response_type": "token"}, "unsupported_response_type", None),
        ({"response_type": "code id_token"}, "unsupported_response_type", None),
        ({"response_type": None}, "invalid_request", None),
        ({"response_mode": "fragment"}, "invalid_request", None),
        ({"scope": None}, "invalid_scope", None),
        ({"scope": "openid admin"}, "invalid_scope", None),
        ({"request": "eyJ"}, "request_not_supported", None),
        ({"request_uri": "https://evil.example/r"}, "request_uri_not_supported", None),
        ({"prompt": "create"}, "invalid_request", None),
        ({"max_age": "-1"}, "invalid_request", None),
        ({"nonce": "n" * 600}, "invalid_request", None),
    ],
)
async def test_a_bad_request_goes_back_with_an_error_and_no_code(
    sso_hub: SsoHub, change: dict[str, str | None], error: str, description: str | None
) -> None:
    hub = sso_hub
    cookie, _ = hub.sign_in()
    params = hub.params(hub.portal_client, Pkce.new())
    for name, value in change.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value

    response = await hub.authorize(params, cookie)

    assert_error_redirect(response, params, error, description)


async def test_the_vendor_may_not_ask_for_scopes_it_was_not_given(sso_hub: SsoHub) -> None:
    hub = sso_hub
    cookie, _ = hub.sign_in()
    params = hub.params(hub.portal_client, Pkce.new(), scope="openid svc.read")
    assert_error_redirect(await hub.authorize(params, cookie), params, "invalid_scope")


# -- the code at the token endpoint -------------------------------------------------------------


async def test_pkce_is_checked_when_the_code_is_redeemed(sso_hub: SsoHub) -> None:
    hub, client = sso_hub, sso_hub.portal_client
    cookie, _ = hub.sign_in()
    pkce, other = Pkce.new(), Pkce.new()

    code, _ = await hub.code_for(client, pkce, cookie)
    body = token_error(await hub.exchange(client, code, other), "invalid_grant")
    assert "code_verifier" in body["error_description"]

    code, _ = await hub.code_for(client, pkce, cookie)
    missing = {"grant_type": "authorization_code", "code": code, "redirect_uri": PORTAL_URI}
    token_error(await hub.token({**missing, "client_id": client.client_id}), "invalid_grant")

    # The verifier of another code (another PKCE pair) does not open this one either.
    first, _ = await hub.code_for(client, pkce, cookie)
    second, _ = await hub.code_for(client, other, cookie)
    token_error(await hub.exchange(client, second, pkce), "invalid_grant")
    assert (await hub.exchange(client, first, pkce)).status_code == 200

    # A plain-style verifier (the challenge itself) is no S256 verifier.
    code, _ = await hub.code_for(client, pkce, cookie)
    plain = Pkce(pkce.challenge, pkce.challenge)
    token_error(await hub.exchange(client, code, plain), "invalid_grant")


async def test_a_replayed_code_fails_and_revokes_what_it_produced(sso_hub: SsoHub) -> None:
    hub, client, pkce = sso_hub, sso_hub.portal_client, Pkce.new()
    cookie, _ = hub.sign_in()
    code, _ = await hub.code_for(client, pkce, cookie)
    first = await hub.exchange(client, code, pkce)
    assert first.status_code == 200
    tokens = first.json()

    replay = await hub.exchange(client, code, pkce)

    body = token_error(replay, "invalid_grant")
    assert body["error_description"] == "the authorization code was already used"
    refresh = await hub.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": client.client_id,
        }
    )
    token_error(refresh, "invalid_grant")
    userinfo = await hub.client.get(
        "/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert userinfo.status_code == 401


async def test_a_code_is_bound_to_its_client_and_redirect_uri(sso_hub: SsoHub) -> None:
    hub, pkce = sso_hub, Pkce.new()
    cookie, _ = hub.sign_in()
    hub.call(hub.identity.consents.grant, hub.person.id, hub.vendor.client_id, ["profile"])

    # The vendor's code, injected into the portal's token request.
    code, _ = await hub.code_for(hub.vendor, pkce, cookie)
    stolen = await hub.exchange(hub.portal_client, code, pkce, redirect_uri=VENDOR_URI)
    body = token_error(stolen, "invalid_grant")
    assert body["error_description"] == "the authorization code was issued to another client"
    # Shown to another client, it is used up for its own too.
    late = await hub.exchange(hub.vendor, code, pkce, secret=hub.vendor_secret)
    token_error(late, "invalid_grant")

    code, _ = await hub.code_for(hub.portal_client, pkce, cookie)
    moved = await hub.exchange(hub.portal_client, code, pkce, redirect_uri=PORTAL_URI + "/x")
    token_error(moved, "invalid_grant")

    code, _ = await hub.code_for(hub.portal_client, pkce, cookie)
    form = {"grant_type": "authorization_code", "code": code, "code_verifier": pkce.verifier}
    token_error(
        await hub.token({**form, "client_id": hub.portal_client.client_id}), "invalid_grant"
    )


async def test_unknown_and_missing_codes(sso_hub: SsoHub) -> None:
    hub, client = sso_hub, sso_hub.portal_client
    form = {
        "grant_type": "authorization_code",
        "redirect_uri": PORTAL_URI,
        "client_id": client.client_id,
    }
    token_error(
        await hub.token({**form, "code": "x" * 43, "code_verifier": "v" * 43}), "invalid_grant"
    )
    token_error(await hub.token(form), "invalid_request")


async def test_an_id_token_is_not_an_access_token_at_the_gateway(sso_hub: SsoHub) -> None:
    hub, pkce = sso_hub, Pkce.new()
    cookie, _ = hub.sign_in()
    code, _ = await hub.code_for(hub.portal_client, pkce, cookie)
    body = (await hub.exchange(hub.portal_client, code, pkce)).json()

    with_id_token = await hub.client.get(
        "/me/anything", headers={"Authorization": f"Bearer {body['id_token']}"}
    )
    with_access_token = await hub.client.get(
        "/me/anything", headers={"Authorization": f"Bearer {body['access_token']}"}
    )

    assert with_id_token.status_code == 401
    # Past authentication: the upstream (nothing listens on port 9) is what fails.
    assert with_access_token.status_code not in (401, 403)
