"""The admin API for configuration versions: token guard, list, read, validate, publish, roll back.

The hub runs in-process (``HubApp`` through Litestar's ``AsyncTestClient``, lifespan included)
on both back-end sets, a fresh database per test; proxied traffic goes to real loopback
upstreams, so "traffic switches" is observed, not inferred. Every failure must be problem JSON
with a stable ``code`` and the request id, never a 500.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from hub.asgi import HubApp
from hub.config.loader import config_checksum, load_directory
from hub.db.migrate import migrate
from hub.settings import Settings
from tests.fixtures_upstreams import blue_document
from tests.hubproc import ADMIN_TOKEN, hub_env, write_policies
from tests.upstreams import UpstreamServer

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BASE = "/admin/api/config"
CHALLENGE = 'Bearer realm="hub-admin"'


def green_document(green: UpstreamServer) -> dict[str, Any]:
    """The edit: /svc/ goes to the green upstream, under /green."""
    return {
        "upstreams": [{"id": "green", "targets": [{"url": green.url}]}],
        "routes": [
            {"id": "svc", "prefix": "/svc/", "upstream": "green", "upstream_path": "/green"}
        ],
        "products": [],
    }


@pytest.fixture
def policies(tmp_path: Path, upstreams: tuple[UpstreamServer, UpstreamServer]) -> Path:
    doc = blue_document(upstreams[0])
    return write_policies(tmp_path / "policies", upstreams=doc["upstreams"], routes=doc["routes"])


def _settings(tmp_path: Path, policies: Path, overrides: dict[str, str]) -> Settings:
    return Settings.from_env(hub_env(tmp_path, policies, 8080, extra=overrides))


@pytest.fixture
async def client(
    tmp_path: Path, policies: Path, backend_env: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = _settings(tmp_path, policies, backend_env)
    if not settings.embedded_database:
        await migrate(settings.database_url)
    async with AsyncTestClient(app=HubApp(settings)) as test_client:  # type: ignore[arg-type]
        yield test_client


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
    assert body["request_id"]
    if detail is not None:
        assert body["detail"] == detail
    return body


async def served_by(client: httpx.AsyncClient) -> tuple[str, str]:
    """Which upstream answered /svc/probe, and the path it was asked for."""
    response = await client.get("/svc/probe")
    assert response.status_code == 200, response.text
    body = response.json()
    return body["server"], body["path"]


async def versions(client: httpx.AsyncClient) -> list[tuple[int, bool]]:
    response = await client.get(f"{BASE}/versions", headers=AUTH)
    assert response.status_code == 200, response.text
    return [(v["version"], v["active"]) for v in response.json()]


# --- authentication ---------------------------------------------------------------------------

ADMIN_CALLS = [
    ("GET", f"{BASE}/versions", None),
    ("GET", f"{BASE}/versions/1", None),
    ("GET", f"{BASE}/active", None),
    ("POST", f"{BASE}/validate", {"upstreams": [], "routes": []}),
    ("POST", f"{BASE}/versions", {"document": {"upstreams": [], "routes": []}}),
    ("POST", f"{BASE}/versions/1/activate", {}),
]


REFUSED = [
    ({}, "an admin bearer token is required"),
    ({"Authorization": "Bearer not-the-token"}, "the admin token is not valid"),
    ({"Authorization": f"Bearer {ADMIN_TOKEN}x"}, "the admin token is not valid"),
    ({"Authorization": f"Basic {ADMIN_TOKEN}"}, "an admin bearer token is required"),
    ({"Authorization": "Bearer "}, "an admin bearer token is required"),
    ({"Authorization": ADMIN_TOKEN}, "an admin bearer token is required"),
]


async def test_every_admin_endpoint_refuses_a_missing_or_wrong_token(
    client: httpx.AsyncClient,
) -> None:
    for headers, detail in REFUSED:
        for method, path, body in ADMIN_CALLS:
            response = await client.request(method, path, headers=headers, json=body)
            problem = assert_problem(response, 401, "unauthorized", detail)
            assert response.headers["www-authenticate"] == CHALLENGE
            assert problem["instance"] == path
            assert ADMIN_TOKEN not in response.text
    # The caller's request id is kept on problems.
    response = await client.get(f"{BASE}/versions", headers={"X-Request-ID": "admin-call-1"})
    assert assert_problem(response, 401, "unauthorized")["request_id"] == "admin-call-1"
    # The refused publishes and activations changed nothing.
    assert await versions(client) == [(1, True)]


@pytest.mark.parametrize("backend_env", ["embedded"], indirect=True)
async def test_no_bearer_admin_token_works_when_none_is_configured(
    tmp_path: Path, policies: Path, backend_env: dict[str, str]
) -> None:
    settings = _settings(tmp_path, policies, {**backend_env, "HUB_ADMIN_TOKEN": ""})
    assert settings.admin_token_sha256 is None
    async with AsyncTestClient(app=HubApp(settings)) as client:  # type: ignore[arg-type]
        response = await client.get(f"{BASE}/versions", headers=AUTH)
    # Only platform admins signed in as persons get in then (tests/test_admin_guard.py).
    assert_problem(
        response,
        401,
        "unauthorized",
        "no admin token is configured (HUB_ADMIN_TOKEN): sign in as a platform admin",
    )
    assert response.headers["www-authenticate"] == CHALLENGE


# --- reading versions -------------------------------------------------------------------------


async def test_the_seeded_version_is_listed_and_active(
    client: httpx.AsyncClient, policies: Path
) -> None:
    seeded = load_directory(policies)
    response = await client.get(f"{BASE}/versions", headers=AUTH)
    assert response.status_code == 200
    [summary] = response.json()
    created_at = summary.pop("created_at")
    assert created_at.endswith(("Z", "+00:00"))
    assert summary == {
        "version": 1,
        "checksum": seeded.checksum,
        "created_by": "seed:policies",
        "comment": "initial configuration",
        "based_on": None,
        "active": True,
    }
    active = await client.get(f"{BASE}/active", headers=AUTH)
    assert active.status_code == 200
    assert active.json()["document"] == seeded.raw
    assert active.json()["version"] == 1
    one = await client.get(f"{BASE}/versions/1", headers=AUTH)
    assert one.json() == active.json()


# --- validate ---------------------------------------------------------------------------------


async def test_validate_accepts_a_valid_document_and_stores_nothing(
    client: httpx.AsyncClient, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    document = green_document(upstreams[1])
    response = await client.post(f"{BASE}/validate", json=document, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "valid": True,
        "checksum": config_checksum(document),
        "routes": 1,
        "upstreams": 1,
    }
    assert await versions(client) == [(1, True)]
    assert await served_by(client) == ("blue", "/svc/probe")


async def test_validate_refuses_a_bad_document_with_every_exact_message(
    client: httpx.AsyncClient, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    document = green_document(upstreams[1])
    document["routes"] = [
        {"id": "svc", "prefix": "/svc/", "upstream": "visa"},
        {"id": "svc", "prefix": "/other/", "upstream": "green"},
        {"id": "mine", "prefix": "/admin/x/", "upstream": "green"},
    ]
    response = await client.post(f"{BASE}/validate", json=document, headers=AUTH)
    body = assert_problem(response, 422, "invalid_configuration")
    assert body["errors"] == [
        "$.routes[0].upstream: 'visa' is not a defined upstream",
        "$.routes[1].id: duplicate route id 'svc' (first defined at $.routes[0])",
        "$.routes[2].prefix: '/admin/x/' claims the reserved hub path '/admin'",
    ]
    assert body["detail"] == "; ".join(body["errors"])


async def test_validate_names_the_one_bad_upstream_exactly(
    client: httpx.AsyncClient, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    document = green_document(upstreams[1])
    document["routes"][0]["upstream"] = "visa"
    response = await client.post(f"{BASE}/validate", json=document, headers=AUTH)
    body = assert_problem(
        response,
        422,
        "invalid_configuration",
        "$.routes[0].upstream: 'visa' is not a defined upstream",
    )
    assert body["errors"] == ["$.routes[0].upstream: 'visa' is not a defined upstream"]


# --- publish, conflicts, rollback ---------------------------------------------------------------


async def test_publish_creates_a_version_and_traffic_switches_to_it(
    client: httpx.AsyncClient, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    assert await served_by(client) == ("blue", "/svc/probe")
    document = green_document(upstreams[1])
    response = await client.post(
        f"{BASE}/versions",
        json={"document": document, "comment": "move svc to green", "based_on": 1},
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    summary = response.json()
    summary.pop("created_at")
    assert summary == {
        "version": 2,
        "checksum": config_checksum(document),
        "created_by": "admin-token",
        "comment": "move svc to green",
        "based_on": 1,
        "active": True,
    }
    # The answer comes after the swap: the very next request is served by version 2.
    assert await served_by(client) == ("green", "/green/svc/probe")
    assert await versions(client) == [(2, True), (1, False)]
    stored = await client.get(f"{BASE}/versions/2", headers=AUTH)
    assert stored.json()["document"] == document
    metrics = (await client.get("/metrics")).text
    assert "hub_config_version 2.0" in metrics.splitlines()


async def test_publish_without_based_on_is_accepted(
    client: httpx.AsyncClient, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    response = await client.post(
        f"{BASE}/versions", json={"document": green_document(upstreams[1])}, headers=AUTH
    )
    assert response.status_code == 201, response.text
    assert response.json()["based_on"] == 1
    assert response.json()["comment"] == ""
    assert await served_by(client) == ("green", "/green/svc/probe")


async def test_publishing_a_bad_document_changes_nothing(
    client: httpx.AsyncClient, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    document = green_document(upstreams[1])
    document["routes"][0]["upstream"] = "visa"
    response = await client.post(
        f"{BASE}/versions", json={"document": document, "based_on": 1}, headers=AUTH
    )
    body = assert_problem(response, 422, "invalid_configuration")
    assert body["errors"] == ["$.routes[0].upstream: 'visa' is not a defined upstream"]
    assert await versions(client) == [(1, True)]
    assert await served_by(client) == ("blue", "/svc/probe")


async def test_a_stale_publish_is_refused_with_409_and_changes_nothing(
    client: httpx.AsyncClient, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    blue, green = upstreams
    first = await client.post(
        f"{BASE}/versions", json={"document": green_document(green), "based_on": 1}, headers=AUTH
    )
    assert first.status_code == 201
    # A second admin still editing version 1 tries to publish over version 2.
    stale = copy.deepcopy(blue_document(blue))
    stale["routes"][0]["upstream_path"] = "/stale"
    response = await client.post(
        f"{BASE}/versions", json={"document": stale, "based_on": 1}, headers=AUTH
    )
    assert_problem(response, 409, "conflict", "configuration changed: active version is 2, not 1")
    assert await versions(client) == [(2, True), (1, False)]
    assert await served_by(client) == ("green", "/green/svc/probe")
    # Stale rollbacks are refused the same way.
    response = await client.post(f"{BASE}/versions/1/activate", json={"based_on": 1}, headers=AUTH)
    assert_problem(response, 409, "conflict", "configuration changed: active version is 2, not 1")
    assert await versions(client) == [(2, True), (1, False)]


async def test_rollback_restores_the_earlier_routes_exactly(
    client: httpx.AsyncClient, upstreams: tuple[UpstreamServer, UpstreamServer], policies: Path
) -> None:
    green = upstreams[1]
    before = (await client.get(f"{BASE}/active", headers=AUTH)).json()
    published = await client.post(
        f"{BASE}/versions", json={"document": green_document(green), "based_on": 1}, headers=AUTH
    )
    assert published.status_code == 201
    assert await served_by(client) == ("green", "/green/svc/probe")

    response = await client.post(
        f"{BASE}/versions/1/activate", json={"based_on": 2, "comment": "undo"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 1
    assert response.json()["active"] is True
    assert await served_by(client) == ("blue", "/svc/probe")
    after = (await client.get(f"{BASE}/active", headers=AUTH)).json()
    # The rollback is audited on the version it made active: who, why, and what it undid.
    undo = after["changes"].pop()
    assert (undo["action"], undo["previous"], undo["actor"], undo["comment"]) == (
        "activate",
        2,
        "admin-token",
        "undo",
    )
    assert after == {**before, "active": True}
    assert after["checksum"] == load_directory(policies).checksum
    # A rollback points at the stored version; it does not copy it into a new one.
    assert await versions(client) == [(2, False), (1, True)]
    metrics = (await client.get("/metrics")).text
    assert "hub_config_version 1.0" in metrics.splitlines()

    # Roll forward again, this time without a body at all.
    response = await client.post(f"{BASE}/versions/2/activate", headers=AUTH)
    assert response.status_code == 200, response.text
    assert await served_by(client) == ("green", "/green/svc/probe")
    assert await versions(client) == [(2, True), (1, False)]


async def test_unknown_versions_are_404_problems(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/versions/99", headers=AUTH)
    assert_problem(response, 404, "not_found", "configuration version 99 does not exist")
    response = await client.post(f"{BASE}/versions/99/activate", json={}, headers=AUTH)
    assert_problem(response, 404, "not_found", "configuration version 99 does not exist")
    assert await versions(client) == [(1, True)]
    assert await served_by(client) == ("blue", "/svc/probe")


# --- malformed requests: problems with codes, never a 500 ---------------------------------------

MALFORMED = [
    # (method, path under /admin/api/config, body, status, code)
    ("POST", "/validate", b"{not json", 400, "bad_request"),
    ("POST", "/versions", b"[", 400, "bad_request"),
    ("POST", "/versions", b"", 400, "invalid_request"),
    ("POST", "/validate", b"[1, 2]", 400, "invalid_request"),
    ("POST", "/versions", b'{"document": [1]}', 400, "invalid_request"),
    ("POST", "/versions", b'{"comment": "no document"}', 400, "invalid_request"),
    ("POST", "/versions", b'{"document": {}, "based_on": "one"}', 400, "invalid_request"),
    ("POST", "/versions/1/activate", b"{nope", 400, "bad_request"),
    ("POST", "/versions/1/activate", b'{"based_on": []}', 400, "invalid_request"),
    ("GET", "/versions/abc", b"", 404, "not_found"),
    ("GET", "/versions?limit=x", b"", 400, "invalid_request"),
    ("DELETE", "/versions/1", b"", 405, "method_not_allowed"),
    ("PUT", "/active", b"{}", 405, "method_not_allowed"),
    ("GET", "/nothing-here", b"", 404, "not_found"),
]


async def test_malformed_requests_are_problems_with_codes_never_500(
    client: httpx.AsyncClient,
) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    for method, path, body, status, code in MALFORMED:
        response = await client.request(method, BASE + path, content=body, headers=headers)
        assert (response.status_code, response.json().get("code")) == (status, code), (
            method,
            path,
            body,
            response.text,
        )
        assert_problem(response, status, code)
    assert await versions(client) == [(1, True)]


async def test_publishing_a_schema_invalid_document_lists_every_error_exactly(
    client: httpx.AsyncClient,
) -> None:
    document = {"upstreams": [{"id": "Bad", "targets": []}], "routes": [], "colour": 1}
    response = await client.post(f"{BASE}/versions", json={"document": document}, headers=AUTH)
    body = assert_problem(response, 422, "invalid_configuration")
    assert body["errors"] == [
        "$.colour: unknown section 'colour' (expected one of: adapters, consumers, governance,"
        " issuers, permissions, plans, products, purposes, routes, upstreams)",
        "$.upstreams[0].id: 'Bad' does not match '^[a-z][a-z0-9_-]*$'",
        "$.upstreams[0].targets: [] should be non-empty",
    ]
    response = await client.post(
        f"{BASE}/versions", json={"document": {"routes": "x"}}, headers=AUTH
    )
    body = assert_problem(response, 422, "invalid_configuration")
    assert body["errors"] == ["$.routes: expected array, got string 'x'"]
    assert await versions(client) == [(1, True)]
