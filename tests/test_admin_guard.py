"""Who may use the admin API: the admin token, or a platform admin signed in at MFA.

The whole hub runs in-process (:mod:`tests.sso_support`) on both back-end sets. A person gets in
with the hub's session cookie (made by the real session manager, as the sign-in page makes it)
or with an access token the hub issued through the real authorization code flow; either way
only with an active ``platform_admin`` role and a sign-in at ``urn:hub:acr:mfa`` or above. What
they change is recorded under ``person:<id>``; what the admin token changes, under
``admin-token``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from hub.db.people_store import PeopleStores, StaffRole
from hub.db.person_store import Person
from hub.identity.acr import ACR_MFA, ACR_NATIONAL_IDP, ACR_PASSWORD
from tests.hubproc import ADMIN_TOKEN
from tests.sso_support import COOKIE, ISSUER, Pkce, SsoHub, backend_env, sso_hub

__all__ = ["backend_env", "sso_hub"]  # fixtures, used by name

pytestmark = pytest.mark.integration

TOKEN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SAME_ORIGIN = {"Origin": ISSUER}
MFA = {"acr": ACR_MFA, "amr": ("pwd", "otp")}
CHALLENGE = 'Bearer realm="hub-admin"'


def staff(hub: SsoHub) -> Any:
    return PeopleStores.on(hub.runtime.engine).staff


def make_admin(hub: SsoHub, person: Person | None = None) -> StaffRole:
    role: StaffRole = hub.call(staff(hub).grant, (person or hub.person).id, "platform_admin")
    return role


def cookie_of(hub: SsoHub, person: Person | None = None, **sign_in: Any) -> dict[str, str]:
    """The Cookie header of a fresh login session (at MFA unless told)."""
    raw, _session = hub.sign_in(person, **({**MFA, **sign_in}))
    return {"Cookie": f"{COOKIE}={raw}"}


async def access_token(hub: SsoHub, acr: str = ACR_MFA) -> str:
    """An access token the hub issues the person through the portal's code flow."""
    raw, _session = hub.sign_in(acr=acr, amr=("pwd", "otp") if acr == ACR_MFA else ("pwd",))
    pkce = Pkce.new()
    code, _params = await hub.code_for(hub.portal_client, pkce, raw)
    response = await hub.exchange(hub.portal_client, code, pkce)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


async def publish(hub: SsoHub, headers: dict[str, str], comment: str) -> httpx.Response:
    """Publish the active document again, as a new version."""
    active = await hub.client.get("/admin/api/config/active", headers=headers)
    assert active.status_code == 200, active.text
    body = {"document": active.json()["document"], "comment": comment}
    return await hub.client.post("/admin/api/config/versions", json=body, headers=headers)


async def test_the_admin_token_still_works_and_acts_as_admin_token(sso_hub: SsoHub) -> None:
    hub = sso_hub
    response = await hub.client.get("/admin/api/persons", headers=TOKEN)
    assert response.status_code == 200, response.text
    assert [p["id"] for p in response.json()] == [hub.person.id]
    published = await publish(hub, TOKEN, "by the token")
    assert published.status_code == 201, published.text
    assert published.json()["created_by"] == "admin-token"
    # No credential at all: the challenge, as before.
    bare = await hub.client.get("/admin/api/persons")
    assert_problem(bare, 401, "unauthorized")
    assert bare.headers["www-authenticate"] == CHALLENGE


async def test_a_platform_admin_at_mfa_reads_and_publishes_as_themself(sso_hub: SsoHub) -> None:
    hub = sso_hub
    make_admin(hub)
    cookie = cookie_of(hub)

    persons = await hub.client.get("/admin/api/persons", headers=cookie)
    assert persons.status_code == 200, persons.text
    assert [p["id"] for p in persons.json()] == [hub.person.id]

    published = await publish(hub, {**cookie, **SAME_ORIGIN}, "by a person")
    assert published.status_code == 201, published.text
    assert published.json()["created_by"] == f"person:{hub.person.id}"
    history = await hub.client.get("/admin/api/config/versions", headers=cookie)
    assert [(v["version"], v["created_by"]) for v in history.json()][:2] == [
        (2, f"person:{hub.person.id}"),
        (1, "seed:policies"),
    ]
    # A stronger sign-in than MFA (the national IdP) satisfies the minimum too.
    national = cookie_of(hub, acr=ACR_NATIONAL_IDP, amr=("fed",))
    assert (await hub.client.get("/admin/api/staff", headers=national)).status_code == 200


async def test_the_delegation_audit_names_the_admin_who_acted(sso_hub: SsoHub) -> None:
    hub = sso_hub
    make_admin(hub)
    headers = {**cookie_of(hub), **SAME_ORIGIN}
    owner = hub.create_person("1000000077", email="owner@example.gov")
    post = hub.client.post
    shop = await post(
        "/admin/api/establishments",
        json={"cr_number": "4030000077", "name": "Shop", "sector": "retail", "size": "small"},
        headers=headers,
    )
    assert shop.status_code == 201, shop.text
    shop_id = shop.json()["id"]
    member = {"person_id": owner.id, "role": "owner"}
    added = await post(f"/admin/api/establishments/{shop_id}/members", json=member, headers=headers)
    assert added.status_code == 201, added.text
    grant = {
        "grantor": owner.id,
        "grantee_client": hub.vendor.client_id,
        "scopes": ["svc.read"],
        "valid_until": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
    }
    granted = await post(
        f"/admin/api/establishments/{shop_id}/delegations", json=grant, headers=headers
    )
    assert granted.status_code == 201, granted.text
    delegation_id = granted.json()["id"]

    # No "by": the revocation is the acting admin's.
    revoked = await post(
        f"/admin/api/delegations/{delegation_id}/revoke",
        json={"reason": "vendor contract ended"},
        headers=headers,
    )

    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_by"] == f"person:{hub.person.id}"
    events = await hub.client.get(f"/admin/api/delegations/{delegation_id}/events", headers=headers)
    assert [(e["action"], e["actor"]) for e in events.json()] == [
        ("granted", owner.id),
        ("revoked", f"person:{hub.person.id}"),
    ]


async def test_a_person_without_the_role_is_refused(sso_hub: SsoHub) -> None:
    hub = sso_hub
    response = await hub.client.get("/admin/api/persons", headers=cookie_of(hub))
    assert_problem(response, 403, "admin_role_required")
    # An agency officer is staff, but not a platform admin.
    hub.call(staff(hub).grant, hub.person.id, "agency_officer", "moi")
    response = await hub.client.get("/admin/api/persons", headers=cookie_of(hub))
    assert_problem(response, 403, "admin_role_required")


async def test_a_platform_admin_signed_in_with_a_password_only_must_step_up(
    sso_hub: SsoHub,
) -> None:
    hub = sso_hub
    make_admin(hub)
    response = await hub.client.get(
        "/admin/api/persons?limit=5", headers=cookie_of(hub, acr=ACR_PASSWORD, amr=("pwd",))
    )
    problem = assert_problem(response, 401, "insufficient_user_authentication")
    assert problem["acr_values"] == ACR_MFA
    assert problem["step_up"] == (
        "/account/login?acr_values=urn%3Ahub%3Aacr%3Amfa&return_to=/admin/api/persons%3Flimit%3D5"
    )
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_user_authentication"' in challenge
    assert f'acr_values="{ACR_MFA}"' in challenge


async def test_a_revoked_role_is_refused_at_once(sso_hub: SsoHub) -> None:
    hub = sso_hub
    role = make_admin(hub)
    cookie = cookie_of(hub)
    assert (await hub.client.get("/admin/api/persons", headers=cookie)).status_code == 200
    hub.call(staff(hub).revoke, role.id)
    response = await hub.client.get("/admin/api/persons", headers=cookie)
    assert_problem(response, 403, "admin_role_required")


async def test_a_disabled_platform_admin_is_refused(sso_hub: SsoHub) -> None:
    hub = sso_hub
    make_admin(hub)
    token = await access_token(hub)  # outlives the sign-out that disabling does
    disabled = await hub.client.post(f"/admin/api/persons/{hub.person.id}/disable", headers=TOKEN)
    assert disabled.status_code == 200, disabled.text
    response = await hub.client.get(
        "/admin/api/persons", headers={"Authorization": f"Bearer {token}"}
    )
    assert_problem(response, 403, "admin_role_required")


async def test_a_session_caller_changing_state_must_come_from_the_hub(sso_hub: SsoHub) -> None:
    hub = sso_hub
    make_admin(hub)
    cookie = cookie_of(hub)
    # An empty document would remove every route: it validates only with allow_empty.
    url = "/admin/api/config/validate?allow_empty=true"
    document = {"upstreams": [], "routes": []}
    for headers in (
        {},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/admin"},
    ):
        response = await hub.client.post(url, json=document, headers={**cookie, **headers})
        assert_problem(response, 403, "csrf_origin_mismatch")
    for headers in (SAME_ORIGIN, {"Referer": f"{ISSUER}/account"}):
        response = await hub.client.post(url, json=document, headers={**cookie, **headers})
        assert response.status_code == 200, response.text
        assert response.json()["valid"] is True
    # A cross-site request changed nothing.
    staff_before = await hub.client.get("/admin/api/staff", headers=cookie)
    cross = await hub.client.post(
        "/admin/api/staff",
        json={"person_id": hub.person.id, "role": "agency_officer", "agency": "moi"},
        headers={**cookie, "Origin": "https://evil.example"},
    )
    assert_problem(cross, 403, "csrf_origin_mismatch")
    assert (await hub.client.get("/admin/api/staff", headers=cookie)).json() == staff_before.json()


async def test_a_hub_access_token_of_a_platform_admin_at_mfa_works(sso_hub: SsoHub) -> None:
    hub = sso_hub
    make_admin(hub)
    bearer = {"Authorization": f"Bearer {await access_token(hub)}"}
    response = await hub.client.get("/admin/api/persons", headers=bearer)
    assert response.status_code == 200, response.text
    # A bearer token is no cookie: no Origin is needed to change state.
    published = await publish(hub, bearer, "by a token of a person")
    assert published.status_code == 201, published.text
    assert published.json()["created_by"] == f"person:{hub.person.id}"

    weak = {"Authorization": f"Bearer {await access_token(hub, ACR_PASSWORD)}"}
    problem = assert_problem(
        await hub.client.get("/admin/api/persons", headers=weak),
        401,
        "insufficient_user_authentication",
    )
    assert problem["acr_values"] == ACR_MFA
    assert "step_up" not in problem  # a token holder asks its client for a new token


async def test_a_bad_or_foreign_credential_is_refused(sso_hub: SsoHub) -> None:
    hub = sso_hub
    make_admin(hub)
    token = await access_token(hub)
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    response = await hub.client.get(
        "/admin/api/persons", headers={"Authorization": f"Bearer {forged}"}
    )
    assert_problem(response, 401, "invalid_token")
    # The header wins over the cookie: a wrong token is not rescued by a good session.
    response = await hub.client.get(
        "/admin/api/persons", headers={"Authorization": "Bearer nope", **cookie_of(hub)}
    )
    assert_problem(response, 401, "unauthorized")
    # A session that ended (or never was) is no credential.
    stale = {"Cookie": f"{COOKIE}={'x' * 43}"}
    assert_problem(await hub.client.get("/admin/api/persons", headers=stale), 401, "unauthorized")


async def test_a_client_credentials_token_has_no_person_to_be_an_admin(sso_hub: SsoHub) -> None:
    hub = sso_hub
    machine, secret = hub.create_client(
        name="Automation",
        auth_method="client_secret_basic",
        scopes=["svc.read"],
        grant_types=["client_credentials"],
    )
    assert secret is not None
    issued = await hub.token({"grant_type": "client_credentials"}, auth=(machine.client_id, secret))
    assert issued.status_code == 200, issued.text
    bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    response = await hub.client.get("/admin/api/persons", headers=bearer)
    # Valid, but nobody behind it: no sign-in or role can help, so 403 rather than a challenge.
    assert_problem(response, 403, "user_authentication_required")
