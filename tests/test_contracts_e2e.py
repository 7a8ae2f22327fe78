"""An employment contract end to end through the running hub, with real processes, embedded.

On the embedded back-end set only: the journey test (``test_journey_e2e.py``) runs the same
service, this flow included, through the hub on both sets; a second run here added a minute
to CI and nothing the journey does not check.

Processes: the hub (``hub serve``), the sandbox civil, commercial and education registries, the
sandbox payment provider (the policies' payment routes need it) and the contracts service
(``python -m services.contracts``), each on a free loopback port. A vendor application
delegated ``contracts.manage`` by an establishment drafts a contract (the establishment is
checked in the sandbox commercial registry through the hub, and the read is in the audit
chain) and offers it; the employee signs in through the hub's SSO, finds it among their own,
accepts and signs it; the vendor signs for the establishment; the contract is active and both
signatures verify against the hub's JWKS, each naming the principal the hub authenticated.

Not yet end to end: the notification service has not landed, so the test stops at the
``notification.requested`` events on the bus.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from sqlalchemy import text

from hub.backends.events.base import Event, EventBus
from hub.backends.factory import build_event_bus_for
from hub.db.engine import create_engine
from hub.db.people_store import PeopleStores
from hub.settings import Settings
from tests.browser import Browser
from tests.fixtures_services import events_namespace, free_port
from tests.helpers import LoopThread
from tests.hubproc import ROOT, HubProcess, hub_command, hub_env, run_hub, wait_http
from tests.payments_support import API_KEY, WEBHOOK_SECRET, Provider, adapter_item, run_provider
from tests.registrars import adapter_document, run_sandboxes, secrets_env
from tests.sso_e2e_support import (
    APP_CB,
    TIMEOUT,
    AuthorizeRequest,
    add_person,
    first_party_app,
    public_client,
    query_of,
    sign_in,
)

pytestmark = [
    pytest.mark.integration,
    # the journey test covers the real back-end set: see the module's docstring
    pytest.mark.parametrize("backends", ["embedded"], indirect=True),
]

CR = "4030000001"  # Demo Trading Co in the sandbox commercial registry: active
SUSPENDED = "4030000002"
OWNER, EMPLOYEE = "1000000301", "1000000302"
POLICIES = ROOT / "policies"


@dataclass
class System:
    hub: HubProcess
    contracts_url: str
    backends: dict[str, str]
    tmp: Path
    loop: LoopThread
    events: list[Event]

    def database_url(self) -> str:
        env = hub_env(self.tmp, self.tmp / "policies", self.hub.port, extra=self.backends)
        return Settings.from_env(env).database_url


def _policies(folder: Path, sandboxes: Any, provider: Provider, contracts_url: str) -> Path:
    """The repository's policies, pointed at this test's sandboxes and contracts service."""
    shutil.copytree(POLICIES, folder)
    adapters = yaml.safe_load((folder / "adapters.yaml").read_text())
    keep = [a for a in adapters["adapters"] if a["id"] in {"sms-provider", "email-provider"}]
    adapters["adapters"] = [*adapter_document(sandboxes), adapter_item(provider), *keep]
    (folder / "adapters.yaml").write_text(yaml.safe_dump(adapters))
    upstreams = yaml.safe_load((folder / "upstreams.yaml").read_text())
    for upstream in upstreams["upstreams"]:
        if upstream["id"] == "contracts":
            upstream["targets"] = [{"url": contracts_url}]
    (folder / "upstreams.yaml").write_text(yaml.safe_dump(upstreams))
    return folder


async def _arrange(url: str, owner: str, vendor: str) -> str:
    engine = create_engine(url)
    try:
        people = PeopleStores.on(engine)
        establishment = await people.establishments.create(
            cr_number=CR, name="Demo Trading Co", sector="retail", size="small"
        )
        await people.establishments.add_member(establishment.id, owner, "owner")
        await people.delegations.grant(
            establishment.id,
            grantor=owner,
            scopes=["contracts.manage"],
            valid_until=datetime.now(UTC) + timedelta(days=30),
            grantee_client=vendor,
        )
        return establishment.id
    finally:
        await engine.dispose()


async def _audit(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT adapter, operation, purpose, record_ref FROM registrar_audit")
            )
            return list(rows.all())
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, backends: dict[str, str]) -> Iterator[System]:
    tmp = tmp_path_factory.mktemp("contracts-e2e")
    namespace = events_namespace()
    backends = {**backends, "HUB_EVENTS_NAMESPACE": namespace}
    port = free_port()
    contracts_url = f"http://127.0.0.1:{port}"
    with run_sandboxes(tmp / "sandboxes") as sandboxes, run_provider(tmp / "provider") as provider:
        policies = _policies(tmp / "policies", sandboxes, provider, contracts_url)
        env = {
            "HUB_ACCESS_LOG": "false",
            "HUB_CONFIG_POLL_SECONDS": "0.5",
            **secrets_env(),
            "HUB_ADAPTER_SECRET_PAYMENT_PROVIDER_KEY": API_KEY,
            "HUB_ADAPTER_SECRET_PAYMENT_WEBHOOK_SECRET": WEBHOOK_SECRET,
            **backends,
        }
        with run_hub(tmp, policies, env=env) as hub:
            loop = LoopThread()
            service = hub_command(
                tmp, hub, backends, "clients", "create", "--name", "Contracts service",
                "--owner", "contracts", "--scopes",
                "registry.employment-contract signatures.sign",
            )  # fmt: skip
            hub_settings = Settings.from_env(hub_env(tmp, policies, hub.port, extra=backends))
            contracts_env = {
                "CONTRACTS_PORT": str(port),
                "CONTRACTS_DATA_DIR": str(tmp / "contracts"),
                "CONTRACTS_HUB_URL": hub.url,
                "CONTRACTS_HUB_ISSUER": hub_settings.issuer,
                "CONTRACTS_CLIENT_ID": service["client_id"],
                "CONTRACTS_CLIENT_SECRET": service["client_secret"],
                "CONTRACTS_EVENTS_NAMESPACE": namespace,
                "CONTRACTS_SWEEP_SECONDS": "3600",
            }
            if hub_settings.amqp_url:  # the real set: RabbitMQ, and its own schema in PostgreSQL
                contracts_env["CONTRACTS_AMQP_URL"] = hub_settings.amqp_url
                contracts_env["CONTRACTS_DATABASE_URL"] = hub_settings.database_url
                contracts_env["CONTRACTS_DATABASE_SCHEMA"] = "contracts"
            else:  # the embedded set: its own SQLite file, the bus in the hub's database
                contracts_env["CONTRACTS_BUS_DATABASE_URL"] = hub_settings.database_url
            clean = {
                k: v
                for k, v in hub_env(tmp, policies, hub.port).items()
                if not k.startswith("CONTRACTS_")
            }
            with (tmp / "contracts.log").open("wb") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "services.contracts"],
                    env={**clean, **contracts_env},
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            events: list[Event] = []
            bus: EventBus = build_event_bus_for(
                amqp_url=hub_settings.amqp_url,
                database_url=hub_settings.database_url,
                namespace=namespace,
            )

            async def listen() -> None:
                async def record(event: Event) -> None:
                    events.append(event)

                await bus.start()
                await bus.subscribe(f"{namespace}.test.contracts", "#", record)

            try:
                loop.run(listen())
                assert wait_http(f"{contracts_url}/healthz", 30, process=process), (
                    tmp / "contracts.log"
                ).read_text()
                deadline = time.monotonic() + 20
                while (
                    httpx.get(f"{hub.url}/api/contracts/v1/reasons", timeout=5).status_code != 200
                ):
                    assert time.monotonic() < deadline, "the hub never reached the service"
                    time.sleep(0.2)
                yield System(
                    hub=hub,
                    contracts_url=contracts_url,
                    backends=backends,
                    tmp=tmp,
                    loop=loop,
                    events=events,
                )
            finally:
                loop.run(bus.aclose())
                loop.close()
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()


def _sso_token(system: System, identifier: str) -> str:
    """The person signs in through the hub's SSO login (a first-party app, PKCE)."""
    app = first_party_app(system.tmp, system.hub, system.backends)
    with public_client(app) as oauth, Browser() as browser:
        request = AuthorizeRequest(oauth, system.hub)
        answer = browser.follow(
            sign_in(browser, browser.follow(browser.get(request.url)), identifier), stop_at=APP_CB
        )
        location = answer.headers["location"]
        assert query_of(location)["state"] == request.state
        token = oauth.fetch_token(
            f"{system.hub.url}/oauth2/token",
            authorization_response=location,
            state=request.state,
            code_verifier=request.verifier,
        )
    access: str = token["access_token"]
    return access


def _wait_for(system: System, predicate: Any, what: str) -> list[Event]:
    deadline = time.monotonic() + 20
    while not (found := [e for e in system.events if predicate(e)]):
        assert time.monotonic() < deadline, f"no {what}: {[e.type for e in system.events]}"
        time.sleep(0.1)
    return found


def test_draft_sign_in_accept_sign_and_verify_through_the_hub(system: System) -> None:
    hub, tmp, backends = system.hub, system.tmp, system.backends
    owner = add_person(tmp, hub, backends, OWNER, "Owner")
    employee_id = add_person(tmp, hub, backends, EMPLOYEE, "Ravi")
    vendor = hub_command(
        tmp, hub, backends, "clients", "create", "--name", "HR suite", "--owner", "acme",
        "--scopes", "contracts.manage",
    )  # fmt: skip
    establishment = system.loop.run(_arrange(system.database_url(), owner, vendor["client_id"]))
    issued = httpx.post(
        f"{hub.url}/oauth2/token",
        data={"grant_type": "client_credentials", "establishment": CR, "scope": "contracts.manage"},
        auth=(vendor["client_id"], vendor["client_secret"]),
        timeout=TIMEOUT,
    )
    assert issued.status_code == 200, issued.text
    vendor_auth = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    base = f"{hub.url}/api/contracts/v1"
    start = (date.today() + timedelta(days=14)).isoformat()
    body = {
        "cr_number": CR,
        "employee": {
            "id": employee_id, "name": "Ravi Tester", "nationality": "IND", "citizen": False,
            "visa_number": "W123456789",
        },
        "occupation": "2512",
        "salary": 15000,
        "allowances": {"housing": 3000},
        "start_date": start,
        "terms": {"notice_days": 60, "clauses": ["Remote work two days a week."]},
    }  # fmt: skip
    url = f"{base}/establishments/{establishment}/contracts"

    # A suspended establishment is refused with its stable code, and nothing is made.
    refused = httpx.post(
        url,
        json={**body, "cr_number": SUSPENDED},
        headers={**vendor_auth, "Idempotency-Key": "e2e-suspended"},
        timeout=TIMEOUT,
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "establishment_not_active"

    headers = {**vendor_auth, "Idempotency-Key": "e2e-1"}
    drafted = httpx.post(url, json=body, headers=headers, timeout=TIMEOUT)
    assert drafted.status_code == 201, drafted.text
    contract = drafted.json()
    again = httpx.post(url, json=body, headers=headers, timeout=TIMEOUT)
    assert (again.status_code, again.json()["id"]) == (200, contract["id"])
    one = f"{base}/contracts/{contract['id']}"
    offered = httpx.post(f"{one}/offer", headers=vendor_auth, timeout=TIMEOUT)
    assert offered.json()["state"] == "offered", offered.text

    # The registrar check went through the hub's adapter, under its purpose, into the audit.
    reads = system.loop.run(_audit(system.database_url()))
    assert any(
        (r.adapter, r.operation, r.purpose, r.record_ref)
        == ("commercial-registry", "get_establishment", "employment-contract", CR)
        for r in reads
    ), reads

    # The employee signs in through the SSO, finds the offer among their own and accepts it.
    employee_auth = {"Authorization": f"Bearer {_sso_token(system, EMPLOYEE)}"}
    mine = httpx.get(f"{base}/me/contracts", headers=employee_auth, timeout=TIMEOUT)
    assert mine.status_code == 200, mine.text
    assert [c["id"] for c in mine.json()["items"]] == [contract["id"]]
    theirs = httpx.get(url, headers=employee_auth, timeout=TIMEOUT)
    assert theirs.status_code == 403  # not the establishment's
    accepted = httpx.post(f"{one}/accept", headers=employee_auth, timeout=TIMEOUT)
    assert accepted.json()["state"] == "accepted", accepted.text

    # Both sign: the hub signs each hash for the principal it authenticated.
    signed = httpx.post(f"{one}/sign", headers=employee_auth, timeout=TIMEOUT)
    assert signed.json()["state"] == "accepted", signed.text
    active = httpx.post(f"{one}/sign", headers=vendor_auth, timeout=TIMEOUT)
    assert active.json()["state"] == "active", active.text

    verified = httpx.get(f"{one}/signatures/verify", headers=employee_auth, timeout=TIMEOUT)
    assert verified.status_code == 200, verified.text
    result = verified.json()
    assert (result["valid"], result["complete"]) == (True, True), result
    by_party = {s["party"]: s["signer"] for s in result["signatures"]}
    assert (by_party["employee"]["kind"], by_party["employee"]["id"]) == ("person", employee_id)
    assert (by_party["employer"]["kind"], by_party["employer"]["client_id"]) == (
        "client",
        vendor["client_id"],
    )
    assert by_party["employer"]["on_behalf_of"] == establishment

    # Anyone holding the JWS checks it against the hub's published keys.
    signatures = httpx.get(f"{one}/signatures", headers=vendor_auth, timeout=TIMEOUT).json()
    jwks = httpx.get(f"{hub.url}/.well-known/jwks.json", timeout=TIMEOUT).json()
    for signature in signatures["items"]:
        kid = jwt.get_unverified_header(signature["jws"])["kid"]
        key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid)).key
        claims = jwt.decode(signature["jws"], key, algorithms=["EdDSA"])
        assert claims["document_hash"] == result["document_hash"] == contract["document_hash"]

    pdf = httpx.get(f"{one}/document?format=pdf", headers=employee_auth, timeout=TIMEOUT)
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-1.4")

    # The events and the notification requests reached the bus for the other services.
    activated = _wait_for(system, lambda e: e.type == "contract.activated", "activation")
    assert activated[0].payload["employee"] == {
        "id": employee_id,
        "nationality": "IND",
        "citizen": False,
    }
    notices = _wait_for(
        system,
        lambda e: (
            e.type == "notification.requested"
            and e.payload["template"] == "contract.activated"
            and e.payload["recipient"]["id"] == employee_id
        ),
        "activation notice",
    )
    assert "channels" not in notices[0].payload
