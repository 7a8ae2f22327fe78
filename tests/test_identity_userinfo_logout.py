"""``/oauth2/userinfo`` (OIDC Core §5.3, RFC 6750 errors) and ``/oauth2/logout`` (RP-initiated).

Logout with a valid ``id_token_hint`` ends the session at once; without one a page asks first,
with a double-submit token, so a cross-site link cannot sign anyone out. A
``post_logout_redirect_uri`` must be exactly one the client registered, or there is no redirect.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import jwt
import pytest

from hub.identity.id_tokens import IdTokens
from tests.sso_support import (
    COOKIE,
    LOGOUT_URI,
    Pkce,
    SsoHub,
    backend_env,
    query_of,
    sso_hub,
)

__all__ = ["backend_env", "sso_hub"]  # fixtures, used by name

pytestmark = pytest.mark.integration


async def signed_in(hub: SsoHub, scope: str = "openid profile phone") -> tuple[str, dict[str, Any]]:
    """A session cookie and the portal's tokens from it."""
    pkce = Pkce.new()
    cookie, _ = hub.sign_in()
    code, _ = await hub.code_for(hub.portal_client, pkce, cookie, scope=scope)
    response = await hub.exchange(hub.portal_client, code, pkce)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return cookie, tokens


async def userinfo(hub: SsoHub, token: str | None, method: str = "GET") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await hub.client.request(method, "/oauth2/userinfo", headers=headers)


def assert_bearer_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="hub"')
    assert f'error="{error}"' in challenge


# -- userinfo ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_userinfo_answers_the_claims_of_the_token_s_scopes(
    sso_hub: SsoHub, method: str
) -> None:
    hub = sso_hub
    _, tokens = await signed_in(hub)

    response = await userinfo(hub, tokens["access_token"], method)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "sub": hub.person.id,
        "given_name": "Amal",
        "family_name": "Haddad",
        "name": "Amal Haddad",
        "phone_number": "+966500000001",
    }


async def test_userinfo_refuses_what_is_not_a_live_person_access_token(sso_hub: SsoHub) -> None:
    hub = sso_hub
    _, tokens = await signed_in(hub)

    missing = await userinfo(hub, None)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="hub"'

    # An ID token is addressed to the client, not to the hub: not an access token.
    assert_bearer_error(await userinfo(hub, tokens["id_token"]), 401, "invalid_token")
    assert_bearer_error(await userinfo(hub, "not-a-token"), 401, "invalid_token")
    assert_bearer_error(await userinfo(hub, tokens["refresh_token"]), 401, "invalid_token")
    tampered = tokens["access_token"][:-4] + (
        "AAAA" if not tokens["access_token"].endswith("AAAA") else "BBBB"
    )
    assert_bearer_error(await userinfo(hub, tampered), 401, "invalid_token")

    # A token of the hub for a client (client credentials) is no person's.
    machine, secret = hub.create_client(
        name="Batch", auth_method="client_secret_basic", scopes=["openid"]
    )
    assert secret is not None
    machine_token = (
        await hub.token({"grant_type": "client_credentials"}, auth=(machine.client_id, secret))
    ).json()["access_token"]
    assert_bearer_error(await userinfo(hub, machine_token), 401, "invalid_token")

    # Signed by another key (alg none, HS256 with the public key...): refused.
    forged = jwt.encode(
        {**jwt.decode(tokens["access_token"], options={"verify_signature": False})},
        "secret-key-long-enough-for-hs256-xx",
        algorithm="HS256",
    )
    assert_bearer_error(await userinfo(hub, forged), 401, "invalid_token")

    # Revoked (RFC 7009) by its client.
    revoked = await hub.client.post(
        "/oauth2/revoke",
        data={"token": tokens["access_token"], "client_id": hub.portal_client.client_id},
    )
    assert revoked.status_code == 200
    assert_bearer_error(await userinfo(hub, tokens["access_token"]), 401, "invalid_token")


async def test_userinfo_needs_the_openid_scope_and_a_live_person(sso_hub: SsoHub) -> None:
    hub = sso_hub
    _, tokens = await signed_in(hub)
    narrowed = await hub.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": hub.portal_client.client_id,
            "scope": "profile",
        }
    )
    no_openid = narrowed.json()["access_token"]

    response = await userinfo(hub, no_openid)
    assert_bearer_error(response, 403, "insufficient_scope")
    assert 'scope="openid"' in response.headers["www-authenticate"]

    hub.call(hub.identity.persons.disable, hub.person.id)
    assert_bearer_error(await userinfo(hub, tokens["access_token"]), 401, "invalid_token")


async def test_userinfo_refuses_two_authorization_headers(sso_hub: SsoHub) -> None:
    hub = sso_hub
    _, tokens = await signed_in(hub)
    response = await hub.client.get(
        "/oauth2/userinfo",
        headers=[
            ("Authorization", f"Bearer {tokens['access_token']}"),
            ("Authorization", "Bearer other"),
        ],
    )
    # Refused either way (the transport may fold the two into one header).
    assert response.status_code in (400, 401)
    assert "sub" not in response.json()


# -- logout ------------------------------------------------------------------------------------


def assert_cookie_cleared(response: httpx.Response) -> None:
    cleared = [
        value
        for name, value in response.headers.multi_items()
        if name == "set-cookie" and value.startswith(f"{COOKIE}=")
    ]
    assert cleared, response.headers
    assert re.search(r"Max-Age=0", cleared[0], re.IGNORECASE)
    assert "Path=/" in cleared[0]
    assert "HttpOnly" in cleared[0]


async def logout(hub: SsoHub, params: dict[str, str], cookie: str | None) -> httpx.Response:
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
    return await hub.client.get("/oauth2/logout", params=params, headers=headers)


async def test_logout_with_a_hint_ends_the_session_and_returns_to_the_client(
    sso_hub: SsoHub,
) -> None:
    hub = sso_hub
    cookie, tokens = await signed_in(hub)

    response = await logout(
        hub,
        {
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": LOGOUT_URI,
            "state": "bye-1",
        },
        cookie,
    )

    assert response.status_code == 303
    assert response.headers["location"].startswith(LOGOUT_URI + "?")
    assert query_of(response.headers["location"]) == {"state": "bye-1"}
    assert_cookie_cleared(response)
    assert hub.call(hub.runtime.sessions.get, cookie) is None
    refreshed = await hub.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": hub.portal_client.client_id,
        }
    )
    assert refreshed.status_code == 400  # revoked with the session


async def test_an_expired_hint_still_signs_out(sso_hub: SsoHub) -> None:
    hub = sso_hub
    cookie, _ = hub.sign_in()
    # An ID token minted ten minutes ago (valid five): what a relying party still holds.
    old = IdTokens(hub.runtime.keyring, hub.runtime.settings, clock=lambda: time.time() - 600)
    hint = old.mint(
        client_id=hub.portal_client.client_id,
        person=hub.person,
        scopes=("openid",),
        auth_time=int(time.time()) - 600,
        acr="urn:hub:acr:pwd",
        amr=("pwd",),
        sid=None,
    )

    response = await logout(hub, {"id_token_hint": hint}, cookie)

    assert response.status_code == 200
    assert "signed out" in response.text
    assert_cookie_cleared(response)
    assert hub.call(hub.runtime.sessions.get, cookie) is None


async def test_logout_without_a_hint_asks_first_with_a_csrf_token(sso_hub: SsoHub) -> None:
    hub = sso_hub
    cookie, _ = hub.sign_in()
    params = {
        "client_id": hub.portal_client.client_id,
        "post_logout_redirect_uri": LOGOUT_URI,
        "state": 'x"><script>alert(1)</script>',
    }

    page = await logout(hub, params, cookie)

    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert csp.startswith("default-src 'none'")
    # The form may post to the hub and its answer redirect to the registered URI, nowhere else.
    assert csp.endswith("form-action 'self' https://portal.example.gov")
    assert "<script>" not in page.text
    assert hub.call(hub.runtime.sessions.get, cookie) is not None  # not signed out yet
    csrf_cookie = page.cookies.get("hub_logout_csrf")
    assert csrf_cookie
    set_cookie = page.headers["set-cookie"]
    assert "samesite=strict" in set_cookie.lower()
    # Scoped to the logout endpoint: it never meets the sign-in pages' hub_csrf (Path=/account).
    assert "path=/oauth2/logout" in set_cookie.lower()
    field = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert field is not None
    assert field.group(1) == csrf_cookie

    # A cross-site POST has no hub_logout_csrf cookie (SameSite=Strict): refused.
    form = {"csrf": csrf_cookie, **params}
    forged = await hub.client.post(
        "/oauth2/logout", data=form, headers={"Cookie": f"{COOKIE}={cookie}"}
    )
    assert forged.status_code == 403
    wrong = await hub.client.post(
        "/oauth2/logout",
        data={**form, "csrf": "x" * 43},
        headers={"Cookie": f"{COOKIE}={cookie}; hub_logout_csrf={csrf_cookie}"},
    )
    assert wrong.status_code == 403
    assert hub.call(hub.runtime.sessions.get, cookie) is not None

    confirmed = await hub.client.post(
        "/oauth2/logout",
        data=form,
        headers={"Cookie": f"{COOKIE}={cookie}; hub_logout_csrf={csrf_cookie}"},
    )
    assert confirmed.status_code == 303
    assert query_of(confirmed.headers["location"])["state"] == params["state"]
    assert_cookie_cleared(confirmed)
    assert hub.call(hub.runtime.sessions.get, cookie) is None


async def test_a_hint_for_someone_else_asks_first(sso_hub: SsoHub) -> None:
    hub = sso_hub
    _, tokens = await signed_in(hub)
    other = hub.create_person("1000000002")
    cookie, _ = hub.sign_in(other)

    response = await logout(hub, {"id_token_hint": tokens["id_token"]}, cookie)

    assert response.status_code == 200
    assert 'name="csrf"' in response.text
    assert hub.call(hub.runtime.sessions.get, cookie) is not None


@pytest.mark.parametrize(
    "uri",
    [
        LOGOUT_URI + "/",
        LOGOUT_URI + "?x=1",
        LOGOUT_URI.upper(),
        "https://evil.example/signed-out",
        LOGOUT_URI.replace(".gov/", ".gov:443/"),
    ],
)
async def test_an_unregistered_post_logout_uri_is_never_redirected_to(
    sso_hub: SsoHub, uri: str
) -> None:
    hub = sso_hub
    cookie, tokens = await signed_in(hub)

    response = await logout(
        hub, {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": uri}, cookie
    )

    assert response.status_code == 400
    assert "location" not in response.headers
    assert hub.call(hub.runtime.sessions.get, cookie) is not None


async def test_bad_logout_requests_show_a_page(sso_hub: SsoHub) -> None:
    hub = sso_hub
    cookie, tokens = await signed_in(hub)

    # A hint not signed by the hub.
    forged = jwt.encode(
        {"iss": "http://127.0.0.1:8080", "sub": hub.person.id, "aud": "x"}, "k" * 32
    )
    assert (await logout(hub, {"id_token_hint": forged}, cookie)).status_code == 400
    # An access token is not an ID token.
    assert (await logout(hub, {"id_token_hint": tokens["access_token"]}, cookie)).status_code == 400
    # client_id and the hint disagree.
    mismatch = {"id_token_hint": tokens["id_token"], "client_id": hub.vendor.client_id}
    assert (await logout(hub, mismatch, cookie)).status_code == 400
    # A post-logout URI without any client to check it against.
    assert (await logout(hub, {"post_logout_redirect_uri": LOGOUT_URI}, cookie)).status_code == 400
    assert hub.call(hub.runtime.sessions.get, cookie) is not None


async def test_logout_without_a_session_just_says_signed_out(sso_hub: SsoHub) -> None:
    hub = sso_hub

    response = await logout(hub, {}, None)

    assert response.status_code == 200
    assert "signed out" in response.text
    assert response.headers["x-frame-options"] == "DENY"
