"""The admin API for vendor credentials: OAuth clients and API keys.

The hub runs in-process (``HubApp`` through Litestar's ``AsyncTestClient``, lifespan included) on
both back-end sets, a fresh database per test, with a route that takes API keys in front of a
real loopback upstream, so "the gateway refuses a revoked key at once" is observed end to end.
Secrets must appear in the answer that created or rotated them and nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs

from hub.asgi import HubApp
from hub.db.migrate import migrate
from hub.settings import Settings
from tests.hubproc import ADMIN_TOKEN, hub_env, write_policies
from tests.upstreams import UpstreamServer

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BASE = "/admin/api"
CHALLENGE = 'Bearer realm="hub-admin"'
# Without HUB_ADMIN_TOKEN only platform admins signed in as persons get in (test_admin_guard.py).
NO_ADMIN_TOKEN = "no admin token is configured (HUB_ADMIN_TOKEN): sign in as a platform admin"
KEY_FORMAT = re.compile(r"hub_([0-9a-f]{10})_[A-Za-z0-9_-]{43}")
PUBLIC_JWKS = {
    "keys": [
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            "kid": "vendor-1",
        }
    ]
}
PRIVATE_JWKS = {
    "keys": [{**PUBLIC_JWKS["keys"][0], "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]
}
CLIENT_FIELDS = {
    "client_id",
    "name",
    "owner",
    "auth_method",
    "scopes",
    "grant_types",
    "jwks",
    "created_at",
    "disabled_at",
    "client_type",
    "redirect_uris",
    "post_logout_redirect_uris",
    "first_party",
}
KEY_FIELDS = {"id", "prefix", "name", "scopes", "client_id", "created_at", "expires_at"}
KEY_FIELDS |= {"revoked_at"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer("svc").start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def policies(tmp_path: Path, upstream: UpstreamServer) -> Path:
    """/svc/ takes API keys with scope svc.read; /open/ takes anyone."""
    return write_policies(
        tmp_path / "policies",
        upstreams=[{"id": "svc", "targets": [{"url": upstream.url}]}],
        routes=[
            {
                "id": "svc",
                "prefix": "/svc/",
                "upstream": "svc",
                "auth": {"methods": ["api_key"], "scopes": ["svc.read"]},
            },
            {"id": "open", "prefix": "/open/", "upstream": "svc"},
        ],
    )


def _settings(tmp_path: Path, policies: Path, overrides: dict[str, str]) -> Settings:
    return Settings.from_env(hub_env(tmp_path, policies, 8080, extra=overrides))


@pytest.fixture
async def hub(
    tmp_path: Path, policies: Path, backend_env: dict[str, str]
) -> AsyncIterator[tuple[HubApp, AsyncTestClient[Any]]]:
    settings = _settings(tmp_path, policies, backend_env)
    if not settings.embedded_database:
        await migrate(settings.database_url)
    app = HubApp(settings)
    async with AsyncTestClient(app=app) as test_client:  # type: ignore[arg-type]
        yield app, test_client


@pytest.fixture
def client(hub: tuple[HubApp, AsyncTestClient[Any]]) -> httpx.AsyncClient:
    return hub[1]


def assert_problem(
    response: httpx.Response, status: int, code: str, detail: str | None = None
) -> dict[str, Any]:
    """A problem answer: status, media type, stable code, request id echoed in the header."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"https://hub.example.gov/problems/{code}"
    assert body["request_id"] == response.headers["x-request-id"]
    if detail is not None:
        assert body["detail"] == detail
    return body


def secret_of(value: str) -> str:
    """The secret part of an API key (``hub_<prefix>_<secret>``; it may hold ``_``), or a secret."""
    return value.split("_", 2)[2] if value.startswith("hub_") else value


async def create_client(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "Payroll sync",
        "owner": "Acme Payroll",
        "scopes": ["svc.read"],
        "auth_method": "client_secret_basic",
        **fields,
    }
    response = await client.post(f"{BASE}/clients", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def create_key(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "batch", "scopes": ["svc.read"], **fields}
    response = await client.post(f"{BASE}/apikeys", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def admin_get(client: httpx.AsyncClient, path: str) -> httpx.Response:
    response = await client.get(BASE + path, headers=AUTH)
    assert response.status_code == 200, response.text
    return response


async def token(client: httpx.AsyncClient, client_id: str, secret: str) -> httpx.Response:
    form = {"grant_type": "client_credentials", "scope": "svc.read"}
    return await client.post("/oauth2/token", data=form, auth=(client_id, secret))


# --- authentication ---------------------------------------------------------------------------

CALLS = [
    ("POST", "/clients", {"name": "x", "owner": "y", "scopes": [], "auth_method": "x"}),
    ("GET", "/clients", None),
    ("GET", "/clients/cli_0000000000000000", None),
    ("POST", "/clients/cli_0000000000000000/rotate-secret", None),
    ("POST", "/clients/cli_0000000000000000/disable", None),
    ("PATCH", "/clients/cli_0000000000000000", {"redirect_uris": ["https://a.example/cb"]}),
    ("POST", "/apikeys", {"name": "x", "scopes": []}),
    ("GET", "/apikeys", None),
    ("GET", "/apikeys/0123", None),
    ("POST", "/apikeys/0123/revoke", None),
    ("POST", "/apikeys/0123/rotate", None),
]

REFUSED = [
    ({}, "an admin bearer token is required"),
    ({"Authorization": "Bearer not-the-token"}, "the admin token is not valid"),
    ({"Authorization": f"Bearer {ADMIN_TOKEN}x"}, "the admin token is not valid"),
    ({"Authorization": f"Basic {ADMIN_TOKEN}"}, "an admin bearer token is required"),
]


async def test_every_endpoint_refuses_a_missing_or_wrong_admin_token(
    client: httpx.AsyncClient,
) -> None:
    # Something real to act on, so a refusal cannot be a 404 in disguise.
    vendor = await create_client(client)
    key = await create_key(client)
    for headers, detail in REFUSED:
        for method, template, body in CALLS:
            path = BASE + template.replace("cli_0000000000000000", vendor["client_id"]).replace(
                "0123", key["id"]
            )
            response = await client.request(method, path, headers=headers, json=body)
            assert_problem(response, 401, "unauthorized", detail)
            assert response.headers["www-authenticate"] == CHALLENGE
            assert ADMIN_TOKEN not in response.text
    # The refused calls changed nothing.
    [listed] = (await admin_get(client, "/clients")).json()
    assert listed["disabled_at"] is None
    [record] = (await admin_get(client, "/apikeys")).json()
    assert record["prefix"] == key["prefix"]
    assert record["revoked_at"] is None


@pytest.mark.parametrize("backend_env", ["embedded"], indirect=True)
async def test_no_bearer_admin_token_works_when_none_is_configured(
    tmp_path: Path, policies: Path, backend_env: dict[str, str]
) -> None:
    settings = _settings(tmp_path, policies, {**backend_env, "HUB_ADMIN_TOKEN": ""})
    async with AsyncTestClient(app=HubApp(settings)) as client:  # type: ignore[arg-type]
        for method, path, body in CALLS:
            response = await client.request(method, BASE + path, headers=AUTH, json=body)
            assert_problem(response, 401, "unauthorized", NO_ADMIN_TOKEN)


# --- OAuth clients ----------------------------------------------------------------------------


async def test_a_secret_client_is_created_and_its_secret_shown_only_once(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        f"{BASE}/clients",
        json={
            "name": "Payroll sync",
            "owner": "Acme Payroll",
            "scopes": ["svc.read", "svc.write", "svc.read"],
            "auth_method": "client_secret_basic",
        },
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    secret = created.pop("client_secret")
    assert len(secret) == 43  # 32 random bytes, base64url
    assert set(created) == CLIENT_FIELDS
    assert re.fullmatch(r"cli_[0-9a-f]{16}", created["client_id"])
    assert created["name"] == "Payroll sync"
    assert created["owner"] == "Acme Payroll"
    assert created["auth_method"] == "client_secret_basic"
    assert created["scopes"] == ["svc.read", "svc.write"]
    assert created["grant_types"] == ["client_credentials"]
    assert created["jwks"] is None
    assert created["disabled_at"] is None
    assert created["client_type"] == "confidential"
    assert created["redirect_uris"] == []
    assert created["post_logout_redirect_uris"] == []
    assert created["first_party"] is False

    # The secret works at the token endpoint.
    issued = await token(client, created["client_id"], secret)
    assert issued.status_code == 200, issued.text

    # Lists and reads carry the client, never the secret nor its hash.
    listing = await admin_get(client, "/clients")
    assert listing.json() == [created]
    one = await admin_get(client, f"/clients/{created['client_id']}")
    assert one.json() == created
    for answer in (listing, one):
        assert secret not in answer.text
        assert '"client_secret"' not in answer.text
        assert "secret_hash" not in answer.text
        assert "cache-control" not in answer.headers


async def test_rotating_a_client_secret_replaces_it_at_once(client: httpx.AsyncClient) -> None:
    vendor = await create_client(client)
    client_id, first = vendor["client_id"], vendor["client_secret"]
    response = await client.post(f"{BASE}/clients/{client_id}/rotate-secret", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"client_id", "client_secret"}
    assert body["client_id"] == client_id
    second = body["client_secret"]
    assert second != first
    assert len(second) == 43

    refused = await token(client, client_id, first)
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert (await token(client, client_id, second)).status_code == 200
    for path in ("/clients", f"/clients/{client_id}"):
        text = (await admin_get(client, path)).text
        assert first not in text
        assert second not in text


async def test_disabling_a_client_stops_it_and_its_secret_can_no_longer_rotate(
    client: httpx.AsyncClient,
) -> None:
    vendor = await create_client(client)
    client_id = vendor["client_id"]
    response = await client.post(f"{BASE}/clients/{client_id}/disable", headers=AUTH)
    assert response.status_code == 200, response.text
    disabled = response.json()
    assert set(disabled) == CLIENT_FIELDS
    assert disabled["disabled_at"] is not None
    assert {k: v for k, v in disabled.items() if k != "disabled_at"} == {
        k: v for k, v in vendor.items() if k not in ("disabled_at", "client_secret")
    }
    assert (await admin_get(client, f"/clients/{client_id}")).json() == disabled

    refused = await token(client, client_id, vendor["client_secret"])
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"

    # Disabling again is harmless and keeps the first date.
    again = await client.post(f"{BASE}/clients/{client_id}/disable", headers=AUTH)
    assert again.status_code == 200
    assert again.json() == disabled

    rotated = await client.post(f"{BASE}/clients/{client_id}/rotate-secret", headers=AUTH)
    assert_problem(rotated, 409, "conflict", f"client {client_id!r} is disabled")
    assert "client_secret" not in rotated.text


async def test_a_private_key_jwt_client_registers_its_public_keys_and_has_no_secret(
    client: httpx.AsyncClient,
) -> None:
    vendor = await create_client(client, auth_method="private_key_jwt", jwks=PUBLIC_JWKS)
    assert vendor["client_secret"] is None
    assert vendor["auth_method"] == "private_key_jwt"
    assert vendor["jwks"] == PUBLIC_JWKS
    client_id = vendor["client_id"]
    one = await admin_get(client, f"/clients/{client_id}")
    assert one.json()["jwks"] == PUBLIC_JWKS
    response = await client.post(f"{BASE}/clients/{client_id}/rotate-secret", headers=AUTH)
    assert_problem(
        response, 409, "conflict", f"client {client_id!r} authenticates with private_key_jwt"
    )


GOOD_CLIENT = {
    "name": "Payroll sync",
    "owner": "Acme Payroll",
    "scopes": ["svc.read"],
    "auth_method": "client_secret_basic",
}

BAD_CLIENTS: list[tuple[Any, int, str, str | None]] = [
    # (body, status, code, exact detail or None)
    (b"{not json", 400, "bad_request", None),
    (b"", 400, "invalid_request", None),
    (b"[1]", 400, "invalid_request", None),
    ({**GOOD_CLIENT, "auth_method": "client_secret_post"}, 400, "invalid_request", None),
    ({**GOOD_CLIENT, "auth_method": "none"}, 400, "invalid_request", None),
    ({k: v for k, v in GOOD_CLIENT.items() if k != "name"}, 400, "invalid_request", None),
    ({k: v for k, v in GOOD_CLIENT.items() if k != "scopes"}, 400, "invalid_request", None),
    ({**GOOD_CLIENT, "scopes": "svc.read"}, 400, "invalid_request", None),
    ({**GOOD_CLIENT, "scopes": [1]}, 400, "invalid_request", None),
    ({**GOOD_CLIENT, "jwks": [1]}, 400, "invalid_request", None),
    (
        {**GOOD_CLIENT, "scopes": ["svc read"]},
        400,
        "invalid_request",
        "invalid scope name: 'svc read'",
    ),
    ({**GOOD_CLIENT, "name": " "}, 400, "invalid_request", "name must be 1 to 200 characters"),
    (
        {**GOOD_CLIENT, "owner": "x" * 201},
        400,
        "invalid_request",
        "owner must be 1 to 200 characters",
    ),
    (
        {**GOOD_CLIENT, "auth_method": "private_key_jwt"},
        400,
        "invalid_request",
        "a private_key_jwt client must register its public jwks",
    ),
    (
        {**GOOD_CLIENT, "auth_method": "private_key_jwt", "jwks": PRIVATE_JWKS},
        400,
        "invalid_request",
        "the jwks holds private or symmetric key material; send public keys only",
    ),
    (
        {
            **GOOD_CLIENT,
            "auth_method": "private_key_jwt",
            "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]},
        },
        400,
        "invalid_request",
        "the jwks holds private or symmetric key material; send public keys only",
    ),
    (
        {**GOOD_CLIENT, "auth_method": "private_key_jwt", "jwks": {"keys": []}},
        400,
        "invalid_request",
        "jwks must be a JWK set with at least one key",
    ),
    (
        {**GOOD_CLIENT, "jwks": PUBLIC_JWKS},
        400,
        "invalid_request",
        "a client_secret_basic client registers no jwks",
    ),
]


async def test_malformed_client_registrations_are_problems_and_store_nothing(
    client: httpx.AsyncClient,
) -> None:
    for body, status, code, detail in BAD_CLIENTS:
        if isinstance(body, bytes):
            headers = {**AUTH, "Content-Type": "application/json"}
            response = await client.post(f"{BASE}/clients", content=body, headers=headers)
        else:
            response = await client.post(f"{BASE}/clients", json=body, headers=AUTH)
        assert (response.status_code, response.json().get("code")) == (status, code), (
            body,
            response.text,
        )
        assert_problem(response, status, code, detail)
        # A refused private key is not echoed back.
        assert PRIVATE_JWKS["keys"][0]["d"] not in response.text
    assert (await admin_get(client, "/clients")).json() == []


async def test_unknown_clients_are_404_problems(client: httpx.AsyncClient) -> None:
    missing = "cli_00000000deadbeef"
    detail = f"client {missing!r} does not exist"
    for method, suffix in (("GET", ""), ("POST", "/rotate-secret"), ("POST", "/disable")):
        response = await client.request(method, f"{BASE}/clients/{missing}{suffix}", headers=AUTH)
        assert_problem(response, 404, "not_found", detail)
    response = await client.patch(
        f"{BASE}/clients/{missing}", json={"redirect_uris": ["https://a.example/cb"]}, headers=AUTH
    )
    assert_problem(response, 404, "not_found", detail)
    response = await client.post(
        f"{BASE}/apikeys", json={"name": "k", "scopes": [], "client_id": missing}, headers=AUTH
    )
    assert_problem(response, 404, "not_found", detail)
    assert (await admin_get(client, "/apikeys")).json() == []


# --- SSO clients ------------------------------------------------------------------------------

PORTAL = {
    "name": "Citizen portal",
    "owner": "hub",
    "scopes": ["openid", "profile"],
    "auth_method": "none",
    "client_type": "public",
    "redirect_uris": ["https://portal.example/cb", "http://127.0.0.1:8123/cb"],
    "post_logout_redirect_uris": ["https://portal.example/bye"],
    "first_party": True,
}


async def test_a_public_sso_client_is_registered_and_its_uris_replaced(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(f"{BASE}/clients", json=PORTAL, headers=AUTH)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created.pop("client_secret") is None
    assert set(created) == CLIENT_FIELDS
    assert created["client_type"] == "public"
    assert created["auth_method"] == "none"
    assert created["grant_types"] == ["authorization_code", "refresh_token"]
    assert created["redirect_uris"] == PORTAL["redirect_uris"]
    assert created["post_logout_redirect_uris"] == PORTAL["post_logout_redirect_uris"]
    assert created["first_party"] is True
    client_id = created["client_id"]

    changed = await client.patch(
        f"{BASE}/clients/{client_id}",
        json={"redirect_uris": ["https://portal.example/new"]},
        headers=AUTH,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["redirect_uris"] == ["https://portal.example/new"]
    assert changed.json()["post_logout_redirect_uris"] == PORTAL["post_logout_redirect_uris"]
    cleared = await client.patch(
        f"{BASE}/clients/{client_id}", json={"post_logout_redirect_uris": []}, headers=AUTH
    )
    assert cleared.json()["post_logout_redirect_uris"] == []
    assert (await admin_get(client, f"/clients/{client_id}")).json() == cleared.json()


async def test_a_confidential_client_may_register_for_the_code_flow(
    client: httpx.AsyncClient,
) -> None:
    created = await create_client(
        client,
        scopes=["openid"],
        grant_types=["authorization_code", "refresh_token"],
        redirect_uris=["https://vendor.example/cb"],
    )
    assert created["client_secret"]
    assert created["client_type"] == "confidential"
    assert created["grant_types"] == ["authorization_code", "refresh_token"]


BAD_SSO_CLIENTS: list[tuple[dict[str, Any], str, str]] = [
    ({"auth_method": "client_secret_basic"}, "invalid_request", "a public client authenticates"),
    ({"redirect_uris": []}, "invalid_request", "at least one redirect URI"),
    ({"grant_types": ["client_credentials"]}, "invalid_request", "client_credentials grant"),
    ({"grant_types": ["implicit"]}, "invalid_request", "unsupported grant types"),
    ({"redirect_uris": ["http://portal.example/cb"]}, "invalid_request", "only for loopback"),
    ({"redirect_uris": ["https://portal.example/cb#x"]}, "invalid_request", "fragment"),
    ({"redirect_uris": ["https://*.portal.example/cb"]}, "invalid_request", "wildcards"),
    ({"redirect_uris": ["/cb"]}, "invalid_request", "absolute"),
    (
        {"redirect_uris": [f"https://portal.example/{n}" for n in range(11)]},
        "invalid_request",
        "at most 10",
    ),
    (
        {"redirect_uris": ["https://portal.example/" + "a" * 600]},
        "invalid_request",
        "longer than 512",
    ),
    ({"post_logout_redirect_uris": ["http://x.example/"]}, "invalid_request", "post_logout"),
    ({"client_type": "hybrid"}, "invalid_request", "Validation failed"),
    ({"first_party": "yes"}, "invalid_request", "Validation failed"),
    ({"client_type": "confidential"}, "invalid_request", "confidential client must authenticate"),
]


async def test_refused_sso_client_registrations_are_400_problems_and_store_nothing(
    client: httpx.AsyncClient,
) -> None:
    for changes, code, fragment in BAD_SSO_CLIENTS:
        response = await client.post(f"{BASE}/clients", json={**PORTAL, **changes}, headers=AUTH)
        assert (response.status_code, response.json().get("code")) == (400, code), changes
        body = assert_problem(response, 400, code)
        assert fragment in body["detail"], (changes, body)
    assert (await admin_get(client, "/clients")).json() == []


async def test_refused_redirect_uri_updates_are_400_problems_and_change_nothing(
    client: httpx.AsyncClient,
) -> None:
    created = (await client.post(f"{BASE}/clients", json=PORTAL, headers=AUTH)).json()
    created.pop("client_secret")
    path = f"{BASE}/clients/{created['client_id']}"
    for body, code, fragment in [
        ({"redirect_uris": []}, "invalid_request", "at least one redirect URI"),
        ({"redirect_uris": ["https://portal.example/#x"]}, "invalid_request", "fragment"),
        ({"redirect_uris": "https://portal.example/cb"}, "invalid_request", "Validation failed"),
        ({"post_logout_redirect_uris": ["ftp://portal.example/"]}, "invalid_request", "absolute"),
    ]:
        response = await client.patch(path, json=body, headers=AUTH)
        assert (response.status_code, response.json().get("code")) == (400, code), body
        problem = assert_problem(response, 400, code)
        assert fragment in problem["detail"]
    assert (await admin_get(client, f"/clients/{created['client_id']}")).json() == created


# --- API keys ---------------------------------------------------------------------------------


async def test_an_api_key_is_shown_once_and_listed_by_prefix_only(
    client: httpx.AsyncClient,
) -> None:
    vendor = await create_client(client)
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    response = await client.post(
        f"{BASE}/apikeys",
        json={
            "name": "nightly batch",
            "scopes": ["svc.read"],
            "client_id": vendor["client_id"],
            "expires_at": expires.isoformat(),
        },
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    api_key = created.pop("api_key")
    match = KEY_FORMAT.fullmatch(api_key)
    assert match is not None
    assert set(created) == KEY_FIELDS
    assert created["prefix"] == match.group(1)
    assert created["name"] == "nightly batch"
    assert created["scopes"] == ["svc.read"]
    assert created["client_id"] == vendor["client_id"]
    assert datetime.fromisoformat(created["expires_at"]) == expires
    assert created["revoked_at"] is None

    listing = await admin_get(client, "/apikeys")
    assert listing.json() == [created]
    one = await admin_get(client, f"/apikeys/{created['id']}")
    assert one.json() == created
    secret_part = secret_of(api_key)
    for answer in (listing, one):
        assert api_key not in answer.text
        assert secret_part not in answer.text
        assert "hash" not in answer.text

    # The key opens the route that takes keys.
    ok = await client.get("/svc/probe", headers={"X-API-Key": api_key})
    assert ok.status_code == 200, ok.text


async def test_revoking_a_key_is_final_and_idempotent(client: httpx.AsyncClient) -> None:
    key = await create_key(client)
    response = await client.post(f"{BASE}/apikeys/{key['id']}/revoke", headers=AUTH)
    assert response.status_code == 200, response.text
    revoked = response.json()
    assert set(revoked) == KEY_FIELDS
    assert revoked["revoked_at"] is not None
    assert revoked["prefix"] == key["prefix"]
    assert key["api_key"] not in response.text
    again = await client.post(f"{BASE}/apikeys/{key['id']}/revoke", headers=AUTH)
    assert again.status_code == 200
    assert again.json() == revoked
    rotated = await client.post(f"{BASE}/apikeys/{key['id']}/rotate", headers=AUTH)
    assert_problem(rotated, 409, "conflict", f"API key {key['id']!r} is revoked")
    assert "api_key" not in rotated.text
    assert (await admin_get(client, "/apikeys")).json() == [revoked]


async def test_rotating_a_key_keeps_its_id_and_replaces_prefix_and_secret(
    client: httpx.AsyncClient,
) -> None:
    key = await create_key(client)
    old = key["api_key"]
    assert (await client.get("/svc/probe", headers={"X-API-Key": old})).status_code == 200

    response = await client.post(f"{BASE}/apikeys/{key['id']}/rotate", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    rotated = response.json()
    new = rotated.pop("api_key")
    match = KEY_FORMAT.fullmatch(new)
    assert match is not None
    assert rotated["id"] == key["id"]
    assert rotated["prefix"] == match.group(1) != key["prefix"]
    assert {k: v for k, v in rotated.items() if k != "prefix"} == {
        k: v for k, v in key.items() if k not in ("prefix", "api_key")
    }
    listing = await admin_get(client, "/apikeys")
    assert listing.json() == [rotated]
    assert new not in listing.text
    assert old not in listing.text

    # The old key was verified (and cached) a moment ago; it is refused from the next request.
    refused = await client.get("/svc/probe", headers={"X-API-Key": old})
    assert_problem(refused, 401, "invalid_token", "unknown API key")
    assert (await client.get("/svc/probe", headers={"X-API-Key": new})).status_code == 200


async def test_a_revoked_key_is_refused_by_the_gateway_at_once(
    hub: tuple[HubApp, AsyncTestClient[Any]],
) -> None:
    app, client = hub
    key = await create_key(client)
    headers = {"X-API-Key": key["api_key"]}
    # Verified once: from now on this replica answers from its cache, not the database.
    assert (await client.get("/svc/probe", headers=headers)).status_code == 200
    assert (await client.get("/svc/probe", headers=headers)).status_code == 200

    revoked = await client.post(f"{BASE}/apikeys/{key['id']}/revoke", headers=AUTH)
    assert revoked.status_code == 200, revoked.text
    refused = await client.get("/svc/probe", headers=headers)
    assert_problem(refused, 401, "invalid_token", "API key revoked")
    assert refused.headers["www-authenticate"].startswith('Bearer realm="hub"')

    # Why the API tells the cache: a revocation behind this replica's back (another replica's,
    # here written straight to the store) is only seen once the cache entry has aged out.
    other = await create_key(client)
    other_headers = {"X-API-Key": other["api_key"]}
    assert (await client.get("/svc/probe", headers=other_headers)).status_code == 200
    assert app.runtime.identity is not None
    # The hub's engine lives on the test client's event loop (its portal), not on this one.
    client.blocking_portal.call(app.runtime.identity.api_keys.revoke, other["id"])
    record = client.blocking_portal.call(app.runtime.identity.api_keys.get, other["id"])
    assert record is not None
    assert record.revoked_at is not None
    assert (await client.get("/svc/probe", headers=other_headers)).status_code == 200


BAD_KEYS: list[tuple[Any, int, str, str | None]] = [
    (b"{nope", 400, "bad_request", None),
    (b"", 400, "invalid_request", None),
    ({"scopes": ["svc.read"]}, 400, "invalid_request", None),
    ({"name": "k"}, 400, "invalid_request", None),
    ({"name": "k", "scopes": "svc.read"}, 400, "invalid_request", None),
    ({"name": "k", "scopes": [], "expires_at": "next tuesday"}, 400, "invalid_request", None),
    ({"name": "k", "scopes": [], "client_id": 7}, 400, "invalid_request", None),
    (
        {"name": "k", "scopes": [], "expires_at": "2999-01-01T00:00:00"},
        400,
        "invalid_request",
        "expires_at must be a timezone-aware datetime",
    ),
    (
        {"name": "k", "scopes": [], "expires_at": "2001-01-01T00:00:00Z"},
        400,
        "invalid_request",
        "expires_at must be in the future",
    ),
    ({"name": "", "scopes": []}, 400, "invalid_request", "name must be 1 to 200 characters"),
    ({"name": "k", "scopes": [""]}, 400, "invalid_request", "invalid scope name: ''"),
]


async def test_malformed_key_requests_are_problems_and_issue_nothing(
    client: httpx.AsyncClient,
) -> None:
    for body, status, code, detail in BAD_KEYS:
        if isinstance(body, bytes):
            headers = {**AUTH, "Content-Type": "application/json"}
            response = await client.post(f"{BASE}/apikeys", content=body, headers=headers)
        else:
            response = await client.post(f"{BASE}/apikeys", json=body, headers=AUTH)
        assert (response.status_code, response.json().get("code")) == (status, code), (
            body,
            response.text,
        )
        assert_problem(response, status, code, detail)
    assert (await admin_get(client, "/apikeys")).json() == []


async def test_a_key_for_a_disabled_client_is_refused(client: httpx.AsyncClient) -> None:
    vendor = await create_client(client)
    disabled = await client.post(f"{BASE}/clients/{vendor['client_id']}/disable", headers=AUTH)
    assert disabled.status_code == 200
    response = await client.post(
        f"{BASE}/apikeys",
        json={"name": "k", "scopes": ["svc.read"], "client_id": vendor["client_id"]},
        headers=AUTH,
    )
    assert_problem(response, 409, "conflict", f"client {vendor['client_id']!r} is disabled")
    assert (await admin_get(client, "/apikeys")).json() == []


async def test_unknown_keys_are_404_problems(client: httpx.AsyncClient) -> None:
    missing = "f" * 32
    detail = f"API key {missing!r} does not exist"
    for method, suffix in (("GET", ""), ("POST", "/revoke"), ("POST", "/rotate")):
        response = await client.request(method, f"{BASE}/apikeys/{missing}{suffix}", headers=AUTH)
        assert_problem(response, 404, "not_found", detail)
    response = await client.delete(f"{BASE}/apikeys/{missing}", headers=AUTH)
    assert_problem(response, 405, "method_not_allowed")


# --- audit log --------------------------------------------------------------------------------


async def test_every_change_is_logged_without_any_secret(client: httpx.AsyncClient) -> None:
    with capture_logs() as events:
        vendor = await create_client(client)
        rotated = await client.post(
            f"{BASE}/clients/{vendor['client_id']}/rotate-secret", headers=AUTH
        )
        await client.post(f"{BASE}/clients/{vendor['client_id']}/disable", headers=AUTH)
        key = await create_key(client)
        new_key = await client.post(f"{BASE}/apikeys/{key['id']}/rotate", headers=AUTH)
        await client.post(f"{BASE}/apikeys/{key['id']}/revoke", headers=AUTH)
    secrets = [
        vendor["client_secret"],
        rotated.json()["client_secret"],
        key["api_key"],
        new_key.json()["api_key"],
    ]
    audit = [e for e in events if str(e.get("event", "")).startswith("admin.")]
    assert [e["event"] for e in audit] == [
        "admin.client_created",
        "admin.client_secret_rotated",
        "admin.client_disabled",
        "admin.apikey_created",
        "admin.apikey_rotated",
        "admin.apikey_revoked",
    ]
    assert {e.get("client_id") for e in audit[:3]} == {vendor["client_id"]}
    assert {e.get("key_id") for e in audit[3:]} == {key["id"]}
    logged = repr(events)
    for secret in secrets:
        assert secret not in logged
        assert secret_of(secret) not in logged


async def test_the_keys_of_a_disabled_client_stop_working(
    hub: tuple[HubApp, AsyncTestClient[Any]],
) -> None:
    _app, client = hub
    vendor = await create_client(client)
    key = await create_key(client, client_id=vendor["client_id"])
    disabled = await client.post(f"{BASE}/clients/{vendor['client_id']}/disable", headers=AUTH)
    assert disabled.status_code == 200, disabled.text

    refused = await client.get("/svc/probe", headers={"X-API-Key": key["api_key"]})
    assert_problem(refused, 401, "invalid_token", "API key revoked")
