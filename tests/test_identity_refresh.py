"""Refresh tokens: rotation, reuse detection, scope, revocation and introspection.

Every refresh spends the token and issues its successor in the same family; a spent token
presented again (it was copied) revokes the whole family, the newest token included (OAuth 2.0
Security BCP §4.14.2). Revoking a refresh token (RFC 7009) revokes its family; introspection
(RFC 7662) answers for the client's own refresh tokens only.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.sso_support import Pkce, SsoHub, backend_env, sso_hub

__all__ = ["backend_env", "sso_hub"]  # fixtures, used by name

pytestmark = pytest.mark.integration


async def sign_in_tokens(hub: SsoHub, scope: str = "openid profile email") -> dict[str, Any]:
    pkce = Pkce.new()
    cookie, _ = hub.sign_in()
    code, _ = await hub.code_for(hub.portal_client, pkce, cookie, scope=scope)
    response = await hub.exchange(hub.portal_client, code, pkce)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


async def refresh(hub: SsoHub, token: str, **extra: str) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": token,
        "client_id": hub.portal_client.client_id,
    }
    return await hub.token({**form, **extra})


def error_of(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    error: str = response.json()["error"]
    return error


async def test_a_refresh_rotates_the_token_and_keeps_the_sign_in(sso_hub: SsoHub) -> None:
    hub = sso_hub
    first = await sign_in_tokens(hub)

    response = await refresh(hub, first["refresh_token"])

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == "openid profile email"
    claims = await hub.verify_id_token(second["id_token"], hub.portal_client)
    first_claims = await hub.verify_id_token(first["id_token"], hub.portal_client)
    for name in ("sub", "auth_time", "acr", "sid", "email"):
        assert claims[name] == first_claims[name]
    assert "nonce" not in claims

    old = hub.call(hub.identity.refresh_tokens.get, first["refresh_token"])
    new = hub.call(hub.identity.refresh_tokens.get, second["refresh_token"])
    assert old.used_at is not None
    assert new.family_id == old.family_id
    assert new.used_at is None


async def test_reusing_a_spent_token_revokes_the_whole_family(sso_hub: SsoHub) -> None:
    hub = sso_hub
    first = await sign_in_tokens(hub)
    second = (await refresh(hub, first["refresh_token"])).json()
    third = (await refresh(hub, second["refresh_token"])).json()

    replay = await refresh(hub, first["refresh_token"])

    assert error_of(replay) == "invalid_grant"
    # The newest token, never used, died with its family: the thief and the owner both lose.
    assert error_of(await refresh(hub, third["refresh_token"])) == "invalid_grant"
    newest = hub.call(hub.identity.refresh_tokens.get, third["refresh_token"])
    assert newest.revoked_at is not None


async def test_the_scope_may_narrow_but_not_widen(sso_hub: SsoHub) -> None:
    hub = sso_hub
    tokens = await sign_in_tokens(hub, scope="openid profile")

    wider = await refresh(hub, tokens["refresh_token"], scope="openid profile email")
    assert error_of(wider) == "invalid_scope"

    # The refused request did not spend the token.
    narrower = await refresh(hub, tokens["refresh_token"], scope="profile")
    assert narrower.status_code == 200, narrower.text
    body = narrower.json()
    assert body["scope"] == "profile"
    assert "id_token" not in body  # no openid, no ID token
    # RFC 6749 §6: the successor keeps the scope the person granted.
    successor = await refresh(hub, body["refresh_token"])
    assert successor.json()["scope"] == "openid profile"


async def test_another_client_cannot_use_the_token(sso_hub: SsoHub) -> None:
    hub = sso_hub
    tokens = await sign_in_tokens(hub)
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}

    stolen = await hub.token(form, auth=(hub.vendor.client_id, hub.vendor_secret))

    assert error_of(stolen) == "invalid_grant"
    # Not spent by the failed attempt: the owner still refreshes.
    assert (await refresh(hub, tokens["refresh_token"])).status_code == 200


async def test_a_disabled_person_cannot_refresh(sso_hub: SsoHub) -> None:
    hub = sso_hub
    tokens = await sign_in_tokens(hub)
    hub.call(hub.identity.persons.disable, hub.person.id)

    assert error_of(await refresh(hub, tokens["refresh_token"])) == "invalid_grant"


async def test_a_disabled_client_cannot_refresh(sso_hub: SsoHub) -> None:
    hub = sso_hub
    tokens = await sign_in_tokens(hub)
    hub.call(hub.identity.clients.disable, hub.portal_client.client_id)

    assert error_of(await refresh(hub, tokens["refresh_token"]), 401) == "invalid_client"


async def test_bad_refresh_requests(sso_hub: SsoHub) -> None:
    hub = sso_hub
    assert error_of(await refresh(hub, "x" * 43)) == "invalid_grant"
    assert error_of(await refresh(hub, "x" * 500)) == "invalid_grant"
    form = {"grant_type": "refresh_token", "client_id": hub.portal_client.client_id}
    assert error_of(await hub.token(form)) == "invalid_request"


async def test_revoking_a_refresh_token_revokes_its_family(sso_hub: SsoHub) -> None:
    hub = sso_hub
    first = await sign_in_tokens(hub)
    second = (await refresh(hub, first["refresh_token"])).json()

    # A public client revokes its own token with its client_id alone (RFC 7009 §2.1).
    response = await hub.client.post(
        "/oauth2/revoke",
        data={"token": first["refresh_token"], "client_id": hub.portal_client.client_id},
    )

    assert response.status_code == 200, response.text
    assert error_of(await refresh(hub, second["refresh_token"])) == "invalid_grant"


async def test_a_client_cannot_revoke_another_client_s_refresh_token(sso_hub: SsoHub) -> None:
    hub = sso_hub
    tokens = await sign_in_tokens(hub)

    response = await hub.client.post(
        "/oauth2/revoke",
        data={"token": tokens["refresh_token"]},
        auth=(hub.vendor.client_id, hub.vendor_secret),
    )

    assert response.status_code == 400
    assert (await refresh(hub, tokens["refresh_token"])).status_code == 200


async def test_introspection_of_refresh_tokens_for_their_own_client(sso_hub: SsoHub) -> None:
    hub = sso_hub
    # The vendor (confidential) signs a person in and introspects its own refresh token.
    pkce = Pkce.new()
    cookie, _ = hub.sign_in()
    hub.call(hub.identity.consents.grant, hub.person.id, hub.vendor.client_id, ["svc.read"])
    code, _ = await hub.code_for(hub.vendor, pkce, cookie, scope="openid svc.read")
    tokens = (await hub.exchange(hub.vendor, code, pkce, secret=hub.vendor_secret)).json()
    auth = (hub.vendor.client_id, hub.vendor_secret)

    async def introspect(token: str, by: tuple[str, str] = auth) -> dict[str, Any]:
        response = await hub.client.post("/oauth2/introspect", data={"token": token}, auth=by)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    live = await introspect(tokens["refresh_token"])
    assert live["active"] is True
    assert live["client_id"] == hub.vendor.client_id
    assert live["sub"] == hub.person.id
    assert live["scope"] == "openid svc.read"
    access = await introspect(tokens["access_token"])
    assert access["active"] is True
    assert access["acr"] == live["acr"]

    # Another confidential client learns nothing.
    other, secret = hub.create_client(
        name="Other", auth_method="client_secret_basic", scopes=["hub:introspect"]
    )
    assert secret is not None
    assert await introspect(tokens["refresh_token"], (other.client_id, secret)) == {"active": False}

    rotated = await hub.token(
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, auth=auth
    )
    assert rotated.status_code == 200
    assert await introspect(tokens["refresh_token"]) == {"active": False}
    assert (await introspect(rotated.json()["refresh_token"]))["active"] is True
