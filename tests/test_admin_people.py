"""The admin API and CLI for people: persons, establishments, staff, vendors and delegations.

The hub runs in-process (``HubApp`` through Litestar's ``AsyncTestClient``, lifespan included) on
both back-end sets, a fresh database per test. Every answer the hub gives in this module is
recorded, and none may carry a person's credential columns: that check runs after each test.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs
from typer.testing import CliRunner, Result

from hub.asgi import HubApp
from hub.cli.main import app as cli_app
from hub.db.migrate import migrate
from hub.db.people_store import PersonStore
from hub.settings import Settings
from tests.hubproc import ADMIN_TOKEN, hub_env, write_policies

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BASE = "/admin/api"
CHALLENGE = 'Bearer realm="hub-admin"'
PERSON_FIELDS = {
    "id",
    "kind",
    "identifier",
    "given_name",
    "family_name",
    "email",
    "phone",
    "created_at",
    "disabled_at",
}
ESTABLISHMENT_FIELDS = {"id", "cr_number", "name", "sector", "size", "created_at"}
MEMBERSHIP_FIELDS = {"person_id", "establishment_id", "role", "since", "until"}
STAFF_FIELDS = {"id", "person_id", "role", "agency", "granted_at", "revoked_at"}
VENDOR_FIELDS = {"id", "name", "contact_email", "created_at"}
DELEGATION_FIELDS = {
    "id",
    "establishment_id",
    "grantor",
    "grantee_person",
    "grantee_client",
    "scopes",
    "valid_from",
    "valid_until",
    "created_at",
    "revoked_at",
    "revoked_by",
}
EVENT_FIELDS = {"id", "delegation_id", "action", "actor", "at", "reason", "details"}
# Names and values no answer may ever contain.
ARGON2 = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DP"
RECOVERY = ["rc-hash-one", "rc-hash-two"]
NEVER_SHOWN = [
    "password",
    "totp",
    "recovery",
    "failed_logins",
    "locked_until",
    ARGON2,
    TOTP_SECRET,
    *RECOVERY,
]


@pytest.fixture(params=[pytest.param("embedded"), pytest.param("real", marks=pytest.mark.backends)])
def backend_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """``HUB_*`` overrides of one back-end set: SQLite + in-process, or PostgreSQL/Redis/AMQP."""
    if request.param == "embedded":
        return {"HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'data' / 'hub.db'}"}
    return {
        "HUB_DATABASE_URL": request.getfixturevalue("postgres_url"),
        "HUB_REDIS_URL": request.getfixturevalue("redis_url"),
        "HUB_AMQP_URL": request.getfixturevalue("amqp_url"),
    }


@dataclass
class Hub:
    """The app, its test client, and every answer body it gave."""

    app: HubApp
    client: AsyncTestClient[Any]
    answers: list[str]


@pytest.fixture
async def hub(tmp_path: Path, backend_env: dict[str, str]) -> AsyncIterator[Hub]:
    policies = write_policies(
        tmp_path / "policies",
        upstreams=[{"id": "svc", "targets": [{"url": "http://127.0.0.1:9"}]}],
        routes=[{"id": "svc", "prefix": "/svc/", "upstream": "svc"}],
    )
    settings = Settings.from_env(hub_env(tmp_path, policies, 8080, extra=backend_env))
    if not settings.embedded_database:
        await migrate(settings.database_url)
    app = HubApp(settings)
    answers: list[str] = []

    async def record(response: httpx.Response) -> None:
        await response.aread()
        # The OpenAPI document names the password an operator may set (an input, never shown).
        if not response.request.url.path.startswith("/schema"):
            answers.append(response.text)

    async with AsyncTestClient(app=app) as test_client:  # type: ignore[arg-type]
        test_client.event_hooks["response"].append(record)
        yield Hub(app, test_client, answers)
    assert answers, "the test made no call"
    for text in answers:
        for never in NEVER_SHOWN:
            assert never not in text, f"an answer carries {never!r}: {text}"


@pytest.fixture
def client(hub: Hub) -> httpx.AsyncClient:
    return hub.client


def assert_problem(
    response: httpx.Response, status: int, code: str, detail: str | None = None
) -> dict[str, Any]:
    """A problem answer: status, media type, stable code, request id echoed in the header."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == (status, code), body
    assert body["request_id"] == response.headers["x-request-id"]
    if detail is not None:
        assert body["detail"] == detail
    return body


async def post(client: httpx.AsyncClient, path: str, body: Any = None) -> dict[str, Any]:
    response = await client.post(BASE + path, json=body, headers=AUTH)
    assert response.status_code in (200, 201), response.text
    answer: dict[str, Any] = response.json()
    return answer


async def get(client: httpx.AsyncClient, path: str) -> Any:
    response = await client.get(BASE + path, headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


async def person(client: httpx.AsyncClient, identifier: str, **fields: Any) -> dict[str, Any]:
    body = {
        "kind": "citizen" if identifier.startswith("1") else "resident",
        "identifier": identifier,
        "given_name": "Sara",
        "family_name": "Alharbi",
        **fields,
    }
    return await post(client, "/persons", body)


async def establishment(client: httpx.AsyncClient, cr_number: str = "1010000001") -> str:
    body = {"cr_number": cr_number, "name": "Alharbi Trading", "sector": "retail", "size": "small"}
    return str((await post(client, "/establishments", body))["id"])


def future(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def refused(
    client: httpx.AsyncClient,
    path: str,
    body: Any,
    status: int,
    code: str,
    detail: str | None = None,
) -> None:
    if isinstance(body, bytes):
        headers = {**AUTH, "Content-Type": "application/json"}
        response = await client.post(BASE + path, content=body, headers=headers)
    else:
        response = await client.post(BASE + path, json=body, headers=AUTH)
    assert_problem(response, status, code, detail)


# --- authentication ---------------------------------------------------------------------------

CALLS = [
    ("POST", "/persons", {"kind": "citizen"}),
    ("GET", "/persons", None),
    ("GET", "/persons/per_0", None),
    ("POST", "/persons/per_0/disable", None),
    ("POST", "/establishments", {"cr_number": "1"}),
    ("GET", "/establishments", None),
    ("GET", "/establishments/est_0", None),
    ("GET", "/establishments/est_0/members", None),
    ("POST", "/establishments/est_0/members", {"person_id": "per_0", "role": "owner"}),
    ("POST", "/establishments/est_0/members/per_0/end", None),
    ("POST", "/establishments/est_0/delegations", {"grantor": "per_0"}),
    ("GET", "/establishments/est_0/delegations", None),
    ("GET", "/delegations/del_0", None),
    ("POST", "/delegations/del_0/revoke", {"by": "x", "reason": "y"}),
    ("GET", "/delegations/del_0/events", None),
    ("POST", "/staff", {"person_id": "per_0", "role": "platform_admin"}),
    ("GET", "/staff", None),
    ("POST", "/staff/stf_0/revoke", None),
    ("POST", "/vendors", {"name": "x", "contact_email": "a@b.c"}),
    ("GET", "/vendors", None),
    ("GET", "/vendors/ven_0", None),
]


async def test_every_endpoint_refuses_a_missing_or_wrong_admin_token(
    client: httpx.AsyncClient,
) -> None:
    for headers, detail in [
        ({}, "an admin bearer token is required"),
        ({"Authorization": "Bearer not-the-token"}, "the admin token is not valid"),
    ]:
        for method, path, body in CALLS:
            response = await client.request(method, BASE + path, headers=headers, json=body)
            assert_problem(response, 401, "unauthorized", detail)
            assert response.headers["www-authenticate"] == CHALLENGE
    assert await get(client, "/persons") == []
    assert await get(client, "/establishments") == []
    assert await get(client, "/staff") == []
    assert await get(client, "/vendors") == []
    # Every endpoint is documented, and a person's schema has no credential in it.
    schema = (await client.get("/schema/openapi.json")).json()
    for method, path, _body in CALLS:
        template = re.sub(r"/(per|est|del|stf|ven)_0", lambda m: "/{" + _PARAM[m[1]] + "}", path)
        assert method.lower() in schema["paths"][BASE + template], template
    assert set(schema["components"]["schemas"]["PersonView"]["properties"]) == PERSON_FIELDS
    # A password goes in on one endpoint, and no answer's schema has room for one.
    assert set(schema["components"]["schemas"]["CredentialSet"]["properties"]) == {"password"}
    for name, component in schema["components"]["schemas"].items():
        if name != "CredentialSet":
            assert not any(
                never in field for field in component.get("properties", {}) for never in NEVER_SHOWN
            ), name


_PARAM = {
    "per": "person_id",
    "est": "establishment_id",
    "del": "delegation_id",
    "stf": "staff_role_id",
    "ven": "vendor_id",
}


async def test_unknown_ids_are_404_problems(client: httpx.AsyncClient) -> None:
    full_grant = {"grantor": "per_0", "grantee_person": "per_1", "scopes": ["a"]}
    for method, path, body in CALLS:
        if "_0" not in path:
            continue
        grant = path.endswith("/delegations") and method == "POST"
        sent = {**full_grant, "valid_until": future(1)} if grant else body
        response = await client.request(method, BASE + path, headers=AUTH, json=sent)
        assert_problem(response, 404, "not_found")


# --- persons ----------------------------------------------------------------------------------


async def test_a_person_is_created_found_paged_and_disabled(hub: Hub) -> None:
    client = hub.client
    with capture_logs() as events:
        response = await client.post(
            f"{BASE}/persons",
            json={
                "kind": "citizen",
                "identifier": "1000000001",
                "given_name": "Sara",
                "family_name": "Alharbi",
                "email": "sara@example.sa",
                "phone": "+966501234567",
            },
            headers=AUTH,
        )
        assert response.status_code == 201, response.text
        sara = response.json()
        assert set(sara) == PERSON_FIELDS
        assert re.fullmatch(r"per_[0-9a-f]{16}", sara["id"])
        assert (sara["kind"], sara["identifier"], sara["email"], sara["phone"]) == (
            "citizen",
            "1000000001",
            "sara@example.sa",
            "+966501234567",
        )
        assert sara["disabled_at"] is None
        ravi = await person(client, "2000000002", given_name="Ravi", family_name="Kumar")
        assert (ravi["kind"], ravi["email"], ravi["phone"]) == ("resident", None, None)

        assert await get(client, f"/persons/{sara['id']}") == sara
        assert await get(client, "/persons?identifier=2000000002") == [ravi]
        assert await get(client, "/persons?identifier=1999999999") == []
        everyone = await get(client, "/persons")
        assert {p["id"] for p in everyone} == {sara["id"], ravi["id"]}
        first = await get(client, "/persons?limit=1")
        second = await get(client, "/persons?limit=1&offset=1")
        assert first + second == everyone
        assert await get(client, "/persons?offset=2") == []

        disabled = await post(client, f"/persons/{sara['id']}/disable")
        assert disabled["disabled_at"] is not None
        assert {k: v for k, v in disabled.items() if k != "disabled_at"} == {
            k: v for k, v in sara.items() if k != "disabled_at"
        }
        assert await post(client, f"/persons/{sara['id']}/disable") == disabled
    audit = [e for e in events if str(e.get("event", "")).startswith("admin.")]
    assert [e["event"] for e in audit] == [
        "admin.person_created",
        "admin.person_created",
        "admin.person_disabled",
        "admin.person_disabled",
    ]
    logged = repr(events)
    for personal in ("1000000001", "2000000002", "Alharbi", "sara@example.sa", "+9665"):
        assert personal not in logged


GOOD_PERSON = {
    "kind": "citizen",
    "identifier": "1000000001",
    "given_name": "Sara",
    "family_name": "Alharbi",
}
BAD_PERSONS: list[tuple[Any, int, str, str | None]] = [
    (b"{nope", 400, "bad_request", None),
    ({k: v for k, v in GOOD_PERSON.items() if k != "kind"}, 400, "invalid_request", None),
    ({**GOOD_PERSON, "identifier": 1000000001}, 400, "invalid_request", None),
    (
        {**GOOD_PERSON, "kind": "visitor"},
        400,
        "invalid_request",
        "kind must be one of 'citizen', 'resident', not 'visitor'",
    ),
    (
        {**GOOD_PERSON, "identifier": "123456789"},
        400,
        "invalid_request",
        "identifier must be exactly 10 digits",
    ),
    (
        {**GOOD_PERSON, "identifier": "2000000001"},
        400,
        "invalid_request",
        "a citizen's identifier starts with 1 (national ID)",
    ),
    (
        {**GOOD_PERSON, "kind": "resident"},
        400,
        "invalid_request",
        "a resident's identifier starts with 2 (resident ID)",
    ),
    (
        {**GOOD_PERSON, "given_name": ""},
        400,
        "invalid_request",
        "given_name must be 1 to 200 characters",
    ),
    (
        {**GOOD_PERSON, "email": "not-an-address"},
        400,
        "invalid_request",
        "email is not a valid e-mail address",
    ),
    (
        {**GOOD_PERSON, "phone": "0501234567"},
        400,
        "invalid_request",
        "phone must be in E.164 form, such as +966501234567",
    ),
]


async def test_bad_person_requests_are_400_problems_and_duplicates_409(
    client: httpx.AsyncClient,
) -> None:
    for body, status, code, detail in BAD_PERSONS:
        await refused(client, "/persons", body, status, code, detail)
    assert await get(client, "/persons") == []
    for query, detail in [
        ("limit=0", "limit must be between 1 and 500"),
        ("limit=501", "limit must be between 1 and 500"),
        ("offset=-1", "offset must not be negative"),
        ("limit=many", None),
    ]:
        response = await client.get(f"{BASE}/persons?{query}", headers=AUTH)
        assert_problem(response, 400, "invalid_request", detail)

    first = await person(client, "1000000001")
    await refused(
        client,
        "/persons",
        {**GOOD_PERSON, "given_name": "Other"},
        409,
        "conflict",
        "a person with this identifier already exists",
    )
    assert await get(client, "/persons") == [first]


async def test_no_answer_carries_a_persons_credentials(hub: Hub) -> None:
    client = hub.client
    sara = await person(client, "1000000001")
    engine = hub.app.runtime.engine
    persons = PersonStore(engine)
    # The hub's engine lives on the test client's event loop (its portal), not on this one.
    portal = client.blocking_portal
    portal.call(functools.partial(persons.set_password_hash, sara["id"], ARGON2))
    portal.call(functools.partial(persons.set_totp, sara["id"], TOTP_SECRET, RECOVERY))
    portal.call(functools.partial(persons.record_login_failure, sara["id"]))
    stored = portal.call(functools.partial(persons.get, sara["id"]))
    assert stored is not None
    assert stored.password_hash == ARGON2
    est = await establishment(client)
    await post(client, f"/establishments/{est}/members", {"person_id": sara["id"], "role": "owner"})

    answers = [
        await get(client, f"/persons/{sara['id']}"),
        *await get(client, "/persons"),
        *await get(client, "/persons?identifier=1000000001"),
        *await get(client, f"/establishments/{est}/members"),
        await post(client, f"/persons/{sara['id']}/disable"),
    ]
    assert all(set(answer) in (PERSON_FIELDS, MEMBERSHIP_FIELDS) for answer in answers)
    # The hub fixture then checks every answer of this test for the credentials' values.


# --- establishments and memberships -----------------------------------------------------------


async def test_establishments_and_their_members(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{BASE}/establishments",
        json={
            "cr_number": "1010000001",
            "name": "Alharbi Trading",
            "sector": "G47",
            "size": "small",
        },
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    shop = response.json()
    assert set(shop) == ESTABLISHMENT_FIELDS
    assert re.fullmatch(r"est_[0-9a-f]{16}", shop["id"])
    assert (shop["cr_number"], shop["sector"], shop["size"]) == ("1010000001", "G47", "small")
    assert await get(client, f"/establishments/{shop['id']}") == shop
    assert await get(client, "/establishments?cr_number=1010000001") == [shop]
    assert await get(client, "/establishments?cr_number=1010000002") == []
    assert await get(client, "/establishments?limit=1&offset=0") == [shop]

    sara = await person(client, "1000000001")
    members = f"/establishments/{shop['id']}/members"
    owner = await post(client, members, {"person_id": sara["id"], "role": "owner"})
    assert set(owner) == MEMBERSHIP_FIELDS
    assert (owner["person_id"], owner["establishment_id"], owner["role"], owner["until"]) == (
        sara["id"],
        shop["id"],
        "owner",
        None,
    )
    employee = await post(client, members, {"person_id": sara["id"], "role": "employee"})
    await refused(
        client,
        members,
        {"person_id": sara["id"], "role": "owner"},
        409,
        "conflict",
        f"person {sara['id']!r} already is owner of establishment {shop['id']!r}",
    )
    await refused(
        client,
        members,
        {"person_id": sara["id"], "role": "manager"},
        400,
        "invalid_request",
        "role must be one of 'owner', 'hr_officer', 'employee', not 'manager'",
    )
    await refused(client, members, {"role": "owner"}, 400, "invalid_request")
    await refused(
        client,
        members,
        {"person_id": "per_missing", "role": "owner"},
        404,
        "not_found",
        "person 'per_missing' does not exist",
    )
    assert await get(client, members) == [owner, employee]

    [ended] = (
        await client.post(
            f"{BASE}{members}/{sara['id']}/end", json={"role": "employee"}, headers=AUTH
        )
    ).json()
    assert ended["role"] == "employee"
    assert ended["until"] is not None
    assert await get(client, members) == [owner]
    assert await get(client, f"{members}?include_ended=true") == [owner, ended]
    # No body: every role the person still holds there ends.
    response = await client.post(f"{BASE}{members}/{sara['id']}/end", headers=AUTH)
    assert response.status_code == 200, response.text
    assert [m["role"] for m in response.json()] == ["owner"]
    assert await get(client, members) == []
    await refused(
        client,
        f"{members}/{sara['id']}/end",
        None,
        404,
        "not_found",
        f"person {sara['id']!r} has no active membership in establishment {shop['id']!r}",
    )


BAD_ESTABLISHMENTS: list[tuple[dict[str, Any], str]] = [
    ({"cr_number": "101000000"}, "cr_number must be exactly 10 digits"),
    ({"cr_number": "10100000-1"}, "cr_number must be exactly 10 digits"),
    ({"size": "huge"}, "size must be one of 'micro', 'small', 'medium', 'large', not 'huge'"),
    (
        {"sector": "retail and more"},
        "sector must be a short code of 1 to 32 letters, digits, '_', '.' or '-'",
    ),
    ({"name": ""}, "name must be 1 to 200 characters"),
]


async def test_bad_establishments_are_400_problems_and_duplicates_409(
    client: httpx.AsyncClient,
) -> None:
    good = {"cr_number": "1010000001", "name": "Shop", "sector": "retail", "size": "micro"}
    for fields, detail in BAD_ESTABLISHMENTS:
        await refused(client, "/establishments", {**good, **fields}, 400, "invalid_request", detail)
    await refused(client, "/establishments", {"name": "Shop"}, 400, "invalid_request")
    assert await get(client, "/establishments") == []
    await establishment(client, "1010000001")
    await refused(
        client,
        "/establishments",
        good,
        409,
        "conflict",
        "an establishment with CR number 1010000001 already exists",
    )
    assert len(await get(client, "/establishments")) == 1


# --- staff roles and vendors ------------------------------------------------------------------


async def test_staff_roles_are_granted_listed_and_revoked(client: httpx.AsyncClient) -> None:
    sara = await person(client, "1000000001")
    officer = await post(
        client, "/staff", {"person_id": sara["id"], "role": "agency_officer", "agency": "moi"}
    )
    assert set(officer) == STAFF_FIELDS
    assert re.fullmatch(r"stf_[0-9a-f]{16}", officer["id"])
    assert (officer["role"], officer["agency"], officer["revoked_at"]) == (
        "agency_officer",
        "moi",
        None,
    )
    admin = await post(client, "/staff", {"person_id": sara["id"], "role": "platform_admin"})
    assert admin["agency"] is None
    for body, status, code, detail in [
        (
            {"person_id": sara["id"], "role": "platform_admin"},
            409,
            "conflict",
            f"person {sara['id']!r} already is platform_admin",
        ),
        (
            {"person_id": sara["id"], "role": "agency_officer"},
            400,
            "invalid_request",
            "an agency_officer role names its agency",
        ),
        (
            {"person_id": sara["id"], "role": "platform_admin", "agency": "moi"},
            400,
            "invalid_request",
            "a platform_admin role belongs to no agency",
        ),
        (
            {"person_id": sara["id"], "role": "auditor"},
            400,
            "invalid_request",
            "role must be one of 'agency_officer', 'platform_admin', not 'auditor'",
        ),
        (
            {"person_id": "per_missing", "role": "platform_admin"},
            404,
            "not_found",
            "person 'per_missing' does not exist",
        ),
    ]:
        await refused(client, "/staff", body, status, code, detail)

    revoked = await post(client, f"/staff/{admin['id']}/revoke")
    assert revoked["revoked_at"] is not None
    assert await post(client, f"/staff/{admin['id']}/revoke") == revoked
    everyone = await get(client, "/staff")
    assert {r["id"] for r in everyone} == {officer["id"], admin["id"]}
    assert await get(client, f"/staff?person_id={sara['id']}&active_only=true") == [officer]
    assert await get(client, "/staff?person_id=per_other") == []


async def test_vendor_organisations_are_created_and_listed(client: httpx.AsyncClient) -> None:
    acme = await post(client, "/vendors", {"name": "Acme Payroll", "contact_email": "ops@acme.sa"})
    assert set(acme) == VENDOR_FIELDS
    assert re.fullmatch(r"ven_[0-9a-f]{16}", acme["id"])
    assert await get(client, "/vendors") == [acme]
    assert await get(client, f"/vendors/{acme['id']}") == acme
    await refused(
        client,
        "/vendors",
        {"name": "Bad", "contact_email": "nobody"},
        400,
        "invalid_request",
        "contact_email is not a valid e-mail address",
    )
    await refused(client, "/vendors", {"name": "No contact"}, 400, "invalid_request")
    assert await get(client, "/vendors") == [acme]


# --- delegations ------------------------------------------------------------------------------


@dataclass
class Shop:
    id: str
    owner: str
    officer: str
    employee: str
    outsider: str  # the HR officer of another establishment
    client: str


async def shop(client: httpx.AsyncClient) -> Shop:
    est = await establishment(client, "1010000001")
    other = await establishment(client, "1010000002")
    ids = [(await person(client, f"100000000{n}"))["id"] for n in range(1, 5)]
    owner, officer, employee, outsider = ids
    for person_id, role, where in [
        (owner, "owner", est),
        (officer, "hr_officer", est),
        (employee, "employee", est),
        (outsider, "hr_officer", other),
    ]:
        await post(
            client, f"/establishments/{where}/members", {"person_id": person_id, "role": role}
        )
    vendor = await post(
        client,
        "/clients",
        {
            "name": "Payroll sync",
            "owner": "ven_acme",
            "scopes": ["payroll.read"],
            "auth_method": "client_secret_basic",
        },
    )
    return Shop(est, owner, officer, employee, outsider, vendor["client_id"])


async def test_a_delegation_is_granted_listed_revoked_and_audited(hub: Hub) -> None:
    client = hub.client
    s = await shop(client)
    grants = f"/establishments/{s.id}/delegations"
    before = datetime.now(UTC)
    response = await client.post(
        BASE + grants,
        json={
            "grantor": s.owner,
            "grantee_person": s.officer,
            "scopes": ["payroll.read", "contracts.sign"],
            "valid_until": future(30),
            "reason": "quarterly payroll",
        },
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    to_officer = response.json()
    assert set(to_officer) == DELEGATION_FIELDS
    assert re.fullmatch(r"del_[0-9a-f]{16}", to_officer["id"])
    assert (to_officer["grantor"], to_officer["grantee_person"], to_officer["grantee_client"]) == (
        s.owner,
        s.officer,
        None,
    )
    assert to_officer["scopes"] == ["payroll.read", "contracts.sign"]
    assert datetime.fromisoformat(to_officer["valid_from"]) >= before - timedelta(seconds=1)
    assert (to_officer["revoked_at"], to_officer["revoked_by"]) == (None, None)
    to_vendor = await post(
        client,
        grants,
        {
            "grantor": s.owner,
            "grantee_client": s.client,
            "scopes": ["payroll.read"],
            "valid_from": future(1),
            "valid_until": future(365),
        },
    )
    assert to_vendor["grantee_client"] == s.client
    assert await get(client, grants) == [to_officer, to_vendor]
    assert await get(client, f"/delegations/{to_officer['id']}") == to_officer

    revoked = await post(
        client,
        f"/delegations/{to_officer['id']}/revoke",
        {"by": s.owner, "reason": "officer on leave"},
    )
    assert revoked["revoked_at"] is not None
    assert revoked["revoked_by"] == s.owner
    again = await post(
        client, f"/delegations/{to_officer['id']}/revoke", {"by": "admin", "reason": "again"}
    )
    assert again == revoked
    events = await get(client, f"/delegations/{to_officer['id']}/events")
    assert all(set(event) == EVENT_FIELDS for event in events)
    assert [(e["action"], e["actor"], e["reason"]) for e in events] == [
        ("granted", s.owner, "quarterly payroll"),
        ("revoked", s.owner, "officer on leave"),
    ]
    assert events[0]["details"]["scopes"] == ["payroll.read", "contracts.sign"]
    assert events[1]["at"] == revoked["revoked_at"]
    await refused(
        client,
        f"/delegations/{to_vendor['id']}/revoke",
        {"by": s.owner, "reason": ""},
        400,
        "invalid_request",
        "reason must be 1 to 1000 characters",
    )
    await refused(
        client, f"/delegations/{to_vendor['id']}/revoke", {"by": s.owner}, 400, "invalid_request"
    )

    # The owner leaves: their delegations lapse with them, audited as the admin's act.
    ended = await client.post(f"{BASE}/establishments/{s.id}/members/{s.owner}/end", headers=AUTH)
    assert ended.status_code == 200, ended.text
    lapsed = await get(client, f"/delegations/{to_vendor['id']}")
    assert lapsed["revoked_by"] == "admin-token"
    [_, event] = await get(client, f"/delegations/{to_vendor['id']}/events")
    assert (event["action"], event["actor"], event["reason"]) == (
        "revoked",
        "admin-token",
        "membership ended",
    )
    # The first delegation was revoked already; ending the membership added nothing to it.
    assert len(await get(client, f"/delegations/{to_officer['id']}/events")) == 2


async def test_delegations_that_may_not_be_granted_are_refused(client: httpx.AsyncClient) -> None:
    s = await shop(client)
    grants = f"/establishments/{s.id}/delegations"
    good = {
        "grantor": s.owner,
        "grantee_person": s.officer,
        "scopes": ["payroll.read"],
        "valid_until": future(30),
    }
    here = repr(s.id)
    cases: list[tuple[dict[str, Any], int, str, str | None]] = [
        (
            {"grantor": s.officer, "grantee_person": s.employee},
            403,
            "forbidden",
            f"person {s.officer!r} is not an owner of establishment {here}",
        ),
        (
            {"grantee_person": s.employee},
            409,
            "conflict",
            f"person {s.employee!r} is not an HR officer of establishment {here}",
        ),
        (
            {"grantee_person": s.outsider},
            409,
            "conflict",
            f"person {s.outsider!r} is not an HR officer of establishment {here}",
        ),
        ({"valid_until": future(-1)}, 400, "invalid_request", "valid_until must be in the future"),
        (
            {"valid_until": future(366)},
            400,
            "invalid_request",
            "a delegation lasts at most 365 days",
        ),
        (
            {"valid_from": future(10), "valid_until": future(5)},
            400,
            "invalid_request",
            "valid_until must be after valid_from",
        ),
        (
            {"valid_from": future(-1)},
            400,
            "invalid_request",
            "valid_from must not be in the past",
        ),
        (
            {"valid_until": "2999-01-01T00:00:00"},
            400,
            "invalid_request",
            "valid_until must be a timezone-aware datetime",
        ),
        ({"valid_until": "next week"}, 400, "invalid_request", None),
        (
            {"grantee_client": s.client},
            400,
            "invalid_request",
            "name exactly one grantee: grantee_person or grantee_client",
        ),
        (
            {"grantee_person": None},
            400,
            "invalid_request",
            "name exactly one grantee: grantee_person or grantee_client",
        ),
        ({"scopes": "payroll.read"}, 400, "invalid_request", None),
        ({"scopes": []}, 400, "invalid_request", "a delegation names at least one scope"),
        (
            {"grantee_person": None, "grantee_client": s.client, "scopes": ["visas.write"]},
            400,
            "invalid_scope",
            f"client {s.client!r} is not allowed the scope(s): visas.write",
        ),
        (
            {"grantee_person": None, "grantee_client": "cli_missing"},
            404,
            "not_found",
            "client 'cli_missing' does not exist",
        ),
        ({"grantor": "per_missing"}, 404, "not_found", "person 'per_missing' does not exist"),
    ]
    for fields, status, code, detail in cases:
        await refused(client, grants, {**good, **fields}, status, code, detail)
    await refused(
        client,
        "/establishments/est_missing/delegations",
        good,
        404,
        "not_found",
        "establishment 'est_missing' does not exist",
    )
    assert await get(client, grants) == []


# --- the CLI ----------------------------------------------------------------------------------


def test_the_cli_manages_people_establishments_and_delegations(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str
) -> None:
    for name in list(os.environ):
        if name.startswith("HUB_"):
            monkeypatch.delenv(name)
    env = {"HUB_DATA_DIR": str(tmp_path / "data"), "HUB_DATABASE_URL": database_url}
    asyncio.run(migrate(database_url))

    def hub(*args: str) -> Result:
        return CliRunner().invoke(cli_app, list(args), env=env, catch_exceptions=False)

    def created(result: Result) -> str:
        assert result.exit_code == 0, result.output
        return result.output.split(":", 1)[1].strip()

    owner = created(
        hub(
            "people", "create", "--kind", "citizen", "--identifier", "1000000001",
            "--given-name", "Sara", "--family-name", "Alharbi",
        )
    )  # fmt: skip
    officer = created(
        hub(
            "people", "create", "--kind", "resident", "--identifier", "2000000002",
            "--given-name", "Ravi", "--family-name", "Kumar", "--phone", "+966501234567",
        )
    )  # fmt: skip
    bad = hub(
        "people", "create", "--kind", "citizen", "--identifier", "2000000003",
        "--given-name", "X", "--family-name", "Y",
    )  # fmt: skip
    assert (bad.exit_code, bad.output) == (
        1,
        "error: a citizen's identifier starts with 1 (national ID)\n",
    )
    listing = hub("people", "list").output.splitlines()
    assert [line.split()[:3] for line in listing] == [
        [owner, "citizen", "1000000001"],
        [officer, "resident", "2000000002"],
    ]
    assert hub("people", "list", "--identifier", "2000000002").output.split()[0] == officer

    est = created(
        hub(
            "establishments", "create", "--cr-number", "1010000001", "--name", "Shop",
            "--sector", "retail", "--size", "small",
        )
    )  # fmt: skip
    assert hub("establishments", "list").output.split()[:3] == [est, "1010000001", "small"]
    for person_id, role in [(owner, "owner"), (officer, "hr_officer")]:
        added = hub("establishments", "add-member", est, person_id, "--role", role)
        assert added.exit_code == 0, added.output
        assert added.output.startswith(f"{person_id} is {role} of {est} since ")
    wrong = hub("establishments", "add-member", est, officer, "--role", "boss")
    assert wrong.exit_code == 1
    assert "role must be one of" in wrong.output

    grant = hub(
        "delegations", "grant", est, "--grantor", owner, "--to-person", officer,
        "--scopes", "payroll.read,contracts.sign", "--days", "30", "--reason", "payroll",
    )  # fmt: skip
    delegation = created(grant)
    assert re.fullmatch(r"del_[0-9a-f]{16}\nvalid .*", delegation, flags=re.DOTALL)
    delegation = delegation.split()[0]
    refused = hub(
        "delegations", "grant", est, "--grantor", officer, "--to-person", owner,
        "--scopes", "payroll.read", "--days", "30",
    )  # fmt: skip
    assert refused.exit_code == 1
    assert f"is not an owner of establishment '{est}'" in refused.output
    neither = hub(
        "delegations", "grant", est, "--grantor", owner, "--to-person", officer, "--scopes", "x"
    )
    assert (neither.exit_code, neither.output) == (
        2,
        "error: give exactly one of --days and --until\n",
    )
    [line] = hub("delegations", "list", est).output.splitlines()
    assert line.split()[:5] == [delegation, "granted", owner, "->", officer]
    assert line.endswith("[payroll.read contracts.sign]")

    revoked = hub("delegations", "revoke", delegation, "--reason", "left the company")
    assert revoked.exit_code == 0, revoked.output
    assert revoked.output.startswith(f"delegation {delegation} revoked ")
    assert hub("delegations", "list", est).output.split()[1] == "revoked"
    missing = hub("delegations", "revoke", "del_missing", "--reason", "x")
    assert (missing.exit_code, missing.output) == (
        1,
        "error: delegation 'del_missing' does not exist\n",
    )
