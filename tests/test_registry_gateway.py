"""Registrar reads through the whole hub, on both back-end sets, against sandbox processes.

The hub runs in process (``HubApp`` through Litestar's ``AsyncTestClient``) with its real
database and back-ends; the sandboxes are real processes. A vendor application reads a person
for a purpose: the answer is cut to the purpose's fields and the read is in the audit log
before the answer leaves; refusals read nothing; the person sees the read in their own
data-access view (and only theirs), except while an admin's restriction holds it back; and when
the audit log cannot be written the read is refused, never served unlogged.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import time_machine
import yaml
from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs

from hub.asgi import HubApp
from hub.db.audit_store import AuditStore
from hub.db.migrate import migrate
from hub.identity.acr import ACR_PASSWORD
from hub.identity.sessions import cookie_name
from hub.settings import Settings
from tests.helpers import LoopThread
from tests.hubproc import ADMIN_TOKEN, hub_env
from tests.registrars import Sandbox, adapter_document, run_sandboxes, secrets_env
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.integration

_T = TypeVar("_T")
ISSUER = "http://127.0.0.1:8080"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PERSON = "/api/registry/v1/persons"
VISA_FIELDS = ["alive", "family_name", "given_name", "id_kind", "national_id", "nationality"]

PURPOSES = [
    {
        "id": "visa-eligibility",
        "description": "Checking that an employer may sponsor a work visa.",
        "reads": [
            {"adapter": "civil-registry", "operation": "get_person", "fields": VISA_FIELDS},
            {
                "adapter": "commercial-registry",
                "operation": "get_establishment",
                "fields": ["cr_number", "name", "owner_national_id", "status"],
            },
        ],
        "principals": [{"kinds": ["client"], "scopes": ["registry.visa-eligibility"]}],
    },
    {
        "id": "case-investigation",
        "description": "An agency officer's investigation.",
        "reads": [{"adapter": "civil-registry", "operation": "get_person", "fields": ["address"]}],
        "principals": [{"kinds": ["person"], "roles": ["agency_officer"]}],
    },
    {
        "id": "qualification-verification",
        "description": "Verifying a certificate.",
        "reads": [
            {"adapter": "education-registry", "operation": "get_certificate", "fields": ["number"]}
        ],
        "principals": [{"kinds": ["client"], "scopes": ["registry.visa-eligibility"]}],
    },
]
ROUTES = [
    {
        "id": "persons",
        "path": PERSON + "/{id}",
        "methods": ["GET"],
        "adapter": {"name": "civil-registry", "operation": "get_person"},
        "auth": {"methods": ["jwt", "api_key"]},
    },
    {
        "id": "establishments",
        "path": "/api/registry/v1/establishments/{cr_number}",
        "methods": ["GET"],
        "adapter": {"name": "commercial-registry", "operation": "get_establishment"},
        "auth": {"methods": ["jwt", "api_key"]},
    },
]


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Sandbox]]:
    with run_sandboxes(tmp_path_factory.mktemp("sandboxes")) as started:
        yield started


@pytest.fixture(autouse=True)
def _clean(sandboxes: dict[str, Sandbox]) -> None:
    for sandbox in sandboxes.values():
        sandbox.reset()


def write_policies(folder: Path, sandboxes: dict[str, Sandbox]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "routes.yaml").write_text(yaml.safe_dump({"routes": ROUTES}))
    (folder / "adapters.yaml").write_text(
        yaml.safe_dump({"adapters": adapter_document(sandboxes), "purposes": PURPOSES})
    )
    return folder


@dataclass
class Hub:
    app: HubApp
    client: AsyncTestClient[Any]
    token: str = ""

    def call(self, fn: Callable[..., Coroutine[Any, Any, _T]], *args: Any, **kwargs: Any) -> _T:
        return self.client.blocking_portal.call(functools.partial(fn, *args, **kwargs))

    @property
    def identity(self) -> Any:
        return self.app.runtime.identity

    def person(self, identifier: str) -> Any:
        return self.call(
            self.identity.persons.create,
            kind="citizen" if identifier.startswith("1") else "resident",
            identifier=identifier,
            given_name="Test",
            family_name="Person",
        )

    def session(self, person: Any) -> dict[str, str]:
        raw, _ = self.call(
            self.app.runtime.sessions.create, person_id=person.id, acr=ACR_PASSWORD, amr=["pwd"]
        )
        name = cookie_name(self.app.runtime.settings.session_cookie_secure)
        return {"Cookie": f"{name}={raw}"}

    async def read(
        self, identifier: str, query: str = "?purpose=visa-eligibility", **headers: str
    ) -> httpx.Response:
        return await self.client.get(
            f"{PERSON}/{identifier}{query}",
            headers={"Authorization": f"Bearer {self.token}", **headers},
        )

    def entry(self, seq: int) -> Any:
        return self.call(AuditStore(self.app.runtime.engine).get, seq)


class _AsServed:
    """Litestar's test transport puts the query in ``raw_path``; uvicorn (ASGI) does not."""

    def __init__(self, app: HubApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and b"?" in scope.get("raw_path", b""):
            scope = {**scope, "raw_path": scope["raw_path"].partition(b"?")[0]}
        await self.app(scope, receive, send)


@asynccontextmanager
async def open_hub(
    tmp: Path, env: dict[str, str], sandboxes: dict[str, Sandbox]
) -> AsyncIterator[Hub]:
    policies = write_policies(tmp / "policies", sandboxes)
    extra = {**env, **secrets_env(), "HUB_AUDIT_TIMEOUT_SECONDS": "1"}
    settings = Settings.from_env(hub_env(tmp, policies, 8080, extra=extra))
    if not settings.embedded_database:
        await migrate(settings.database_url)
    app = HubApp(settings)
    served = _AsServed(app)
    async with AsyncTestClient(app=served, base_url=ISSUER) as client:  # type: ignore[arg-type]
        hub = Hub(app, client)
        vendor, secret = hub.call(
            hub.identity.clients.create,
            name="Visa Vendor Ltd",
            owner="tests",
            auth_method="client_secret_basic",
            scopes=["registry.visa-eligibility"],
        )
        answer = await client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "scope": "registry.visa-eligibility"},
            auth=(vendor.client_id, secret),
        )
        assert answer.status_code == 200, answer.text
        hub.token = answer.json()["access_token"]
        yield hub


@pytest.fixture
async def hub(
    tmp_path: Path, backend_env: dict[str, str], sandboxes: dict[str, Sandbox]
) -> AsyncIterator[Hub]:
    async with open_hub(tmp_path, backend_env, sandboxes) as opened:
        yield opened


async def test_a_read_is_minimised_and_audited_before_it_is_answered(
    hub: Hub, sandboxes: dict[str, Sandbox]
) -> None:
    answer = await hub.read("1000000001", **{"X-On-Behalf-Of": "visa-application:42"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert sorted(body) == VISA_FIELDS  # no birth date, no address: not the purpose's
    assert body["given_name"] == "Aisha"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.headers["x-hub-purpose"] == "visa-eligibility"
    entry = hub.entry(int(answer.headers["x-hub-audit-entry"]))
    assert entry.kind == "read"
    assert (entry.actor_kind, entry.purpose, entry.person_ref) == (
        "client",
        "visa-eligibility",
        "1000000001",
    )
    assert entry.client_id is not None
    assert entry.on_behalf_of == "visa-application:42"
    assert list(entry.fields) == VISA_FIELDS
    assert entry.request_id == answer.headers["x-request-id"]
    assert entry.config_version == hub.app.runtime.snapshot.version  # type: ignore[union-attr]
    assert sandboxes["civil-registry"].stats()["received"] == 1


async def test_refusals_are_clear_and_read_nothing(hub: Hub, sandboxes: dict[str, Sandbox]) -> None:
    cases = [
        ("", 400, "purpose_required"),
        ("?purpose=marketing", 400, "unknown_purpose"),
        ("?purpose=case-investigation", 403, "purpose_not_allowed"),  # not for clients
        ("?purpose=qualification-verification", 403, "purpose_not_allowed"),  # not persons
        ("?purpose=visa-eligibility&purpose=visa-eligibility", 400, "invalid_request"),
        ("?purpose=visa-eligibility&extra=1", 400, "invalid_request"),
    ]
    for query, status, code in cases:
        answer = await hub.read("1000000001", query)
        assert (answer.status_code, answer.json()["code"]) == (status, code), query
    assert (await hub.read("12345", "?purpose=visa-eligibility")).json()["code"] == (
        "invalid_request"
    )
    bad_header = await hub.read("1000000001", **{"X-On-Behalf-Of": "no spaces allowed"})
    assert bad_header.json()["code"] == "invalid_header"
    anonymous = await hub.client.get(f"{PERSON}/1000000001?purpose=visa-eligibility")
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "unauthorized")
    assert sandboxes["civil-registry"].stats()["received"] == 0  # nothing was read
    assert hub.call(AuditStore(hub.app.runtime.engine).head).seq == 0  # nothing was logged


async def test_an_unknown_record_is_audited_and_404(hub: Hub) -> None:
    answer = await hub.read("1000999999")
    assert (answer.status_code, answer.json()["code"]) == (404, "record_not_found")
    entry = hub.entry(int(answer.headers["x-hub-audit-entry"]))
    assert (entry.outcome, entry.person_ref, list(entry.fields)) == ("not_found", "1000999999", [])


async def test_an_answer_outside_the_contract_never_reaches_the_caller(
    hub: Hub, sandboxes: dict[str, Sandbox]
) -> None:
    sandboxes["civil-registry"].faults(out_of_contract_rate=1.0)
    with capture_logs() as logs:
        answer = await hub.read("1000000001")
    assert (answer.status_code, answer.json()["code"]) == (502, "upstream_contract_violation")
    assert "Aisha" not in answer.text
    violation = next(e for e in logs if e["event"] == "adapter.contract_violation")
    assert violation["request_id"] == answer.headers["x-request-id"]
    assert hub.call(AuditStore(hub.app.runtime.engine).head).seq == 0  # no data, no read


async def test_the_person_sees_only_reads_of_their_own_data(hub: Hub) -> None:
    aisha, maria = hub.person("1000000001"), hub.person("2000000001")
    assert (await hub.read("1000000001")).status_code == 200
    assert (await hub.read("2000000001")).status_code == 200
    owner = await hub.client.get(
        "/api/registry/v1/establishments/4030000001?purpose=visa-eligibility",
        headers={"Authorization": f"Bearer {hub.token}"},
    )
    assert owner.status_code == 200  # Demo Trading Co: Aisha's ID is among the fields

    mine = await hub.client.get("/api/me/v1/data-access", headers=hub.session(aisha))
    assert mine.status_code == 200, mine.text
    entries = mine.json()["entries"]
    assert [e["record_kind"] for e in entries] == ["establishment", "person"]  # newest first
    person_read = entries[1]
    assert person_read["accessor"] == {
        "kind": "client",
        "name": "Visa Vendor Ltd",
        "client_id": person_read["accessor"]["client_id"],
    }
    assert person_read["purpose"]["code"] == "visa-eligibility"
    assert person_read["purpose"]["description"].startswith("Checking")
    assert person_read["fields"] == VISA_FIELDS
    assert person_read["record"] == "1000000001"
    assert mine.headers["cache-control"] == "no-store"

    theirs = (await hub.client.get("/api/me/v1/data-access", headers=hub.session(maria))).json()
    assert [e["record"] for e in theirs["entries"]] == ["2000000001"]

    anonymous = await hub.client.get("/api/me/v1/data-access")
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "unauthorized")
    vendor = await hub.client.get(
        "/api/me/v1/data-access", headers={"Authorization": f"Bearer {hub.token}"}
    )
    assert (vendor.status_code, vendor.json()["code"]) == (403, "user_authentication_required")
    bad = await hub.client.get("/api/me/v1/data-access?limit=0", headers=hub.session(aisha))
    assert bad.status_code == 400


async def test_a_restriction_hides_a_read_until_its_embargo_ends(hub: Hub) -> None:
    aisha = hub.person("1000000001")
    seq = int((await hub.read("1000000001")).headers["x-hub-audit-entry"])
    now = datetime.now(UTC)
    until = now + timedelta(days=30)
    restrict = f"/admin/api/audit/entries/{seq}/restrict"
    body = {"reason": "investigation 2026/17", "embargo_until": until.isoformat()}
    assert (await hub.client.post(restrict, json=body)).status_code == 401  # admins only
    made = await hub.client.post(restrict, json=body, headers=ADMIN)
    assert made.status_code == 201, made.text
    restriction = made.json()["seq"]
    again = await hub.client.post(restrict, json=body, headers=ADMIN)
    assert (again.status_code, again.json()["code"]) == (409, "conflict")
    past = {"reason": "x", "embargo_until": (now - timedelta(days=1)).isoformat()}
    assert (await hub.client.post(restrict, json=past, headers=ADMIN)).status_code == 400
    unknown = "/admin/api/audit/entries/9999/restrict"
    assert (await hub.client.post(unknown, json=body, headers=ADMIN)).status_code == 404
    on_restriction = f"/admin/api/audit/entries/{restriction}/restrict"
    assert (await hub.client.post(on_restriction, json=body, headers=ADMIN)).status_code == 409

    view = (await hub.client.get("/api/me/v1/data-access", headers=hub.session(aisha))).json()
    assert view["entries"] == []  # hidden while the embargo holds

    with time_machine.travel(until + timedelta(minutes=1), tick=True):
        session = hub.session(aisha)
        shown = (await hub.client.get("/api/me/v1/data-access", headers=session)).json()
        assert [e["id"] for e in shown["entries"]] == [seq]
        assert shown["entries"][0]["released_at"] is not None
        listed = (await hub.client.get("/admin/api/audit/restrictions", headers=ADMIN)).json()
    (item,) = listed
    assert item["active"] is False
    assert item["release"]["actor"] == "system:embargo"  # the release itself is logged, once
    releases = await hub.client.get("/admin/api/audit/entries?kind=release", headers=ADMIN)
    assert len(releases.json()) == 1
    late = await hub.client.post(
        f"/admin/api/audit/restrictions/{restriction}/release", json={"reason": "x"}, headers=ADMIN
    )
    assert (late.status_code, late.json()["code"]) == (409, "conflict")
    verify = (await hub.client.get("/admin/api/audit/verify", headers=ADMIN)).json()
    assert verify["ok"] is True


async def test_an_admin_may_release_a_restriction_early(hub: Hub) -> None:
    aisha = hub.person("1000000001")
    seq = int((await hub.read("1000000001")).headers["x-hub-audit-entry"])
    until = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    made = await hub.client.post(
        f"/admin/api/audit/entries/{seq}/restrict",
        json={"reason": "case 5", "embargo_until": until},
        headers=ADMIN,
    )
    restriction = made.json()["seq"]
    release = f"/admin/api/audit/restrictions/{restriction}/release"
    assert (await hub.client.post(release, json={"reason": " "}, headers=ADMIN)).status_code == 400
    missing = "/admin/api/audit/restrictions/9999/release"
    assert (await hub.client.post(missing, json={"reason": "x"}, headers=ADMIN)).status_code == 404
    done = await hub.client.post(release, json={"reason": "case closed"}, headers=ADMIN)
    assert done.status_code == 200, done.text
    assert done.json()["actor"] == "admin-token"
    view = (await hub.client.get("/api/me/v1/data-access", headers=hub.session(aisha))).json()
    assert [e["id"] for e in view["entries"]] == [seq]


@pytest.mark.backends
async def test_postgres_cut_refuses_the_read(
    tmp_path: Path, postgres_url: str, sandboxes: dict[str, Sandbox]
) -> None:
    await migrate(postgres_url)
    # The proxy runs on a loop of its own: the test client blocks this one at start-up.
    loop = LoopThread()
    proxy = TcpProxy(target_port=5432)
    loop.run(proxy.start())
    try:
        url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        async with open_hub(tmp_path, {"HUB_DATABASE_URL": url}, sandboxes) as hub:
            assert (await hub.read("1000000001")).status_code == 200
            loop.run(proxy.cut())
            refused = await hub.read("1000000001")
            assert (refused.status_code, refused.json()["code"]) == (503, "audit_unavailable")
            assert "Aisha" not in refused.text
            loop.run(proxy.restore())
            for _ in range(20):  # the pool drops its dead connections, then works again
                answer = await hub.read("1000000001")
                if answer.status_code == 200:
                    break
            assert answer.status_code == 200
            report = (await hub.client.get("/admin/api/audit/verify", headers=ADMIN)).json()
            assert report["ok"] is True
    finally:
        loop.run(proxy.aclose())
        loop.close()


async def test_a_locked_sqlite_database_refuses_the_read(
    tmp_path: Path, sandboxes: dict[str, Sandbox]
) -> None:
    db = tmp_path / "data" / "hub.db"
    env = {"HUB_DATABASE_URL": f"sqlite+aiosqlite:///{db}"}
    async with open_hub(tmp_path, env, sandboxes) as hub:
        assert (await hub.read("1000000001")).status_code == 200
        blocker = sqlite3.connect(db, isolation_level=None)
        try:
            blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
            refused = await hub.read("1000000001")
            assert (refused.status_code, refused.json()["code"]) == (503, "audit_unavailable")
            assert "Aisha" not in refused.text
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert (await hub.read("1000000001")).status_code == 200
