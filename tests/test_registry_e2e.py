"""Certificates, occupations and compliance end to end through the running hub, real processes,
on the embedded back-end set (the journey test runs these services on both sets).

Processes: the hub (``hub serve``), the sandbox civil, commercial and education registries, and
the three services (``python -m services.certificates`` / ``occupations`` / ``compliance``),
each on a free loopback port. A worker signed in through the hub's SSO submits a qualification
certificate; the certificates service verifies it through the hub's education-registry route,
the read is in the hub's audit chain (``hub audit verify`` holds) and the worker sees it at
``/api/me/v1/data-access``. ``certificate.verified`` reaches the occupations service over the
bus, so the establishment's change of the worker's occupation to a professional one is approved
automatically; the compliance service reads the establishment's sector from the commercial
registry through the hub and emits ``compliance.band.changed`` as contracts come.

The contract service is built elsewhere: this test publishes its ``contract.activated`` events
on the bus itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
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
from tests.payments_support import API_KEY, WEBHOOK_SECRET
from tests.registrars import adapter_document, run_sandboxes, secrets_env
from tests.sandbox_support import stop_processes
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

CR = "4030000001"  # Demo Trading Co in the sandbox commercial registry: retail
WORKER, OWNER = "1000000001", "1000000301"  # the worker holds QC-2010-000001 in the sandbox
SERVICES = {
    "certificates": ("CERTIFICATES_", "registry.qualification-verification"),
    "occupations": ("OCCUPATIONS_", ""),
    "compliance": ("COMPLIANCE_", "registry.compliance-monitoring"),
}


@dataclass
class System:
    hub: HubProcess
    backends: dict[str, str]
    tmp: Path
    loop: LoopThread
    bus: EventBus
    events: list[Event]

    def database_url(self) -> str:
        env = hub_env(self.tmp, self.tmp / "policies", self.hub.port, extra=self.backends)
        return Settings.from_env(env).database_url

    def wait_event(self, predicate: Any, what: str) -> Event:
        deadline = time.monotonic() + 30
        while True:
            for event in list(self.events):
                if predicate(event):
                    return event
            assert time.monotonic() < deadline, f"no {what}: {[e.type for e in self.events]}"
            time.sleep(0.1)


def _policies(folder: Path, sandboxes: dict[str, Any], urls: dict[str, str]) -> Path:
    shutil.copytree(ROOT / "policies", folder)
    adapters = yaml.safe_load((folder / "adapters.yaml").read_text())
    adapters["adapters"] = [
        *adapter_document(sandboxes),
        # the payment provider, and the notify adapters the hub's routes name
        *(
            a
            for a in adapters["adapters"]
            if a["id"] in {"payment-provider", "sms-provider", "email-provider"}
        ),
    ]
    (folder / "adapters.yaml").write_text(yaml.safe_dump(adapters))
    upstreams = yaml.safe_load((folder / "upstreams.yaml").read_text())
    for upstream in upstreams["upstreams"]:
        if upstream["id"] in urls:
            upstream["targets"] = [{"url": urls[upstream["id"]]}]
    (folder / "upstreams.yaml").write_text(yaml.safe_dump(upstreams))
    return folder


async def _arrange(url: str, owner: str, hr: str) -> str:
    engine = create_engine(url)
    try:
        people = PeopleStores.on(engine)
        establishment = await people.establishments.create(
            cr_number=CR, name="Demo Trading Co", sector="retail", size="small"
        )
        await people.establishments.add_member(establishment.id, owner, "owner")
        await people.establishments.add_member(establishment.id, hr, "hr_officer")
        await people.delegations.grant(
            establishment.id,
            grantor=owner,
            scopes=["occupations.manage", "certificates.read", "compliance.read"],
            valid_until=datetime.now(UTC) + timedelta(days=30),
            grantee_person=hr,
        )
        return establishment.id
    finally:
        await engine.dispose()


async def _audit(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT adapter, operation, purpose, record_ref, person_ref"
                    " FROM registrar_audit"
                )
            )
            return list(rows.all())
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, backends: dict[str, str]) -> Iterator[System]:
    tmp = tmp_path_factory.mktemp("registry-e2e")
    namespace = events_namespace()
    backends = {**backends, "HUB_EVENTS_NAMESPACE": namespace}
    ports = {name: free_port() for name in SERVICES}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    processes: list[subprocess.Popen[bytes]] = []
    with run_sandboxes(tmp / "sandboxes") as sandboxes:
        policies = _policies(tmp / "policies", sandboxes, urls)
        env = {"HUB_ACCESS_LOG": "false", "HUB_CONFIG_POLL_SECONDS": "0.5", **secrets_env(),
               "HUB_ADAPTER_SECRET_PAYMENT_PROVIDER_KEY": API_KEY,
               "HUB_ADAPTER_SECRET_PAYMENT_WEBHOOK_SECRET": WEBHOOK_SECRET,
               **backends}  # fmt: skip
        with run_hub(tmp, policies, env=env) as hub:
            loop = LoopThread()
            hub_settings = Settings.from_env(hub_env(tmp, policies, hub.port, extra=backends))
            clean = {
                k: v
                for k, v in hub_env(tmp, policies, hub.port).items()
                if not k.startswith(tuple(prefix for prefix, _ in SERVICES.values()))
            }
            for name, (prefix, scopes) in SERVICES.items():
                service_env = {
                    f"{prefix}PORT": str(ports[name]),
                    f"{prefix}DATA_DIR": str(tmp / name),
                    f"{prefix}HUB_URL": hub.url,
                    f"{prefix}EVENTS_NAMESPACE": namespace,
                    f"{prefix}REFRESH_SECONDS": "0.5",
                }
                if scopes:
                    client = hub_command(
                        tmp, hub, backends, "clients", "create", "--name", f"{name} service",
                        "--owner", name, "--scopes", scopes,
                    )  # fmt: skip
                    service_env[f"{prefix}CLIENT_ID"] = client["client_id"]
                    service_env[f"{prefix}CLIENT_SECRET"] = client["client_secret"]
                if hub_settings.amqp_url:  # the real set: RabbitMQ, own schema in PostgreSQL
                    service_env[f"{prefix}AMQP_URL"] = hub_settings.amqp_url
                    service_env[f"{prefix}DATABASE_URL"] = hub_settings.database_url
                    service_env[f"{prefix}DATABASE_SCHEMA"] = name
                else:  # the embedded set: own SQLite file, the bus in the hub's database
                    service_env[f"{prefix}BUS_DATABASE_URL"] = hub_settings.database_url
                with (tmp / f"{name}.log").open("wb") as log:
                    processes.append(
                        subprocess.Popen(
                            [sys.executable, "-m", f"services.{name}"],
                            env={**clean, **service_env},
                            cwd=ROOT,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    )
            events: list[Event] = []
            bus = build_event_bus_for(
                amqp_url=hub_settings.amqp_url,
                database_url=hub_settings.database_url,
                namespace=namespace,
            )

            async def listen() -> None:
                async def record(event: Event) -> None:
                    events.append(event)

                await bus.start()
                for pattern in ("certificate.#", "occupation.#", "compliance.#",
                                "notification.requested"):  # fmt: skip
                    await bus.subscribe(f"{namespace}.test.registry", pattern, record)

            try:
                loop.run(listen())
                for process, name in zip(processes, SERVICES, strict=True):
                    assert wait_http(f"{urls[name]}/healthz", 30, process=process), (
                        tmp / f"{name}.log"
                    ).read_text()
                deadline = time.monotonic() + 20  # the hub marks upstreams healthy at a probe
                while (
                    httpx.get(f"{hub.url}/api/occupations/v1/reasons", timeout=5).status_code != 200
                ):
                    assert time.monotonic() < deadline, "the hub never reached the services"
                    time.sleep(0.2)
                yield System(hub=hub, backends=backends, tmp=tmp, loop=loop, bus=bus, events=events)
            finally:
                loop.run(bus.aclose())
                loop.close()
                stop_processes(processes)


def _token(system: System, identifier: str) -> str:
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


def _contract(establishment: str, number: int, person: str, *, citizen: bool) -> Event:
    return Event(
        type="contract.activated",
        payload={"contract_id": f"ct_e2e_{number}", "establishment_id": establishment,
                 "employee": {"id": person, "citizen": citizen,
                              "nationality": "SAU" if citizen else "PHL"},
                 "occupation": "5223", "salary": 5000, "start_date": "2026-01-01",
                 "end_date": None, "state": "active", "at": datetime.now(UTC).isoformat()},
    )  # fmt: skip


def test_a_certificate_verified_through_the_registry_unlocks_a_change_of_occupation(
    system: System,
) -> None:
    hub, tmp, backends = system.hub, system.tmp, system.backends
    worker = add_person(tmp, hub, backends, WORKER, "Aisha")
    owner = add_person(tmp, hub, backends, OWNER, "Owner")
    establishment = system.loop.run(_arrange(system.database_url(), owner, worker))
    worker_auth = {"Authorization": f"Bearer {_token(system, WORKER)}"}

    # The worker submits the certificate; the registry's record decides: verified.
    base = f"{hub.url}/api/certificates/v1"
    claim = {"number": "QC-2010-000001", "national_id": WORKER, "degree": "bachelor",
             "institution": "King Saud University", "year": 2010}  # fmt: skip
    answer = httpx.post(f"{base}/me/certificates", json=claim, headers=worker_auth, timeout=TIMEOUT)
    assert answer.status_code == 201, answer.text
    certificate = answer.json()
    assert certificate["state"] == "verified", certificate
    assert certificate["audit_entry"] is not None
    wrong = httpx.post(
        f"{base}/me/certificates",
        json={**claim, "number": "QC-2014-000002", "national_id": WORKER},
        headers=worker_auth,
        timeout=TIMEOUT,
    )  # Maria's diploma: someone else's certificate
    assert wrong.json()["state"] == "mismatch"
    assert wrong.json()["registry"] is None
    stranger = httpx.get(f"{base}/me/certificates/{certificate['id']}", timeout=TIMEOUT)
    assert stranger.status_code == 401

    # The registrar read is in the hub's audit chain, the chain holds, the worker sees the read.
    reads = system.loop.run(_audit(system.database_url()))
    assert any(
        (r.adapter, r.operation, r.purpose, r.record_ref, r.person_ref)
        == ("education-registry", "get_certificate", "qualification-verification",
            "QC-2010-000001", WORKER)
        for r in reads
    ), reads  # fmt: skip
    verified = subprocess.run(
        [sys.executable, "-m", "hub", "audit", "verify"],
        check=False,
        env=hub_env(tmp, tmp / "policies", hub.port, extra=backends),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    seen = httpx.get(f"{hub.url}/api/me/v1/data-access", headers=worker_auth, timeout=TIMEOUT)
    assert seen.status_code == 200, seen.text
    assert any(
        entry["purpose"]["code"] == "qualification-verification"
        and entry["record"] == "QC-2010-000001"
        for entry in seen.json()["entries"]
    ), seen.json()
    system.wait_event(
        lambda e: (
            e.type == "certificate.verified" and e.payload["certificate_id"] == certificate["id"]
        ),
        "certificate.verified",
    )
    notice = system.wait_event(
        lambda e: (
            e.type == "notification.requested" and e.payload["template"] == "certificate.verified"
        ),
        "the worker's notification",
    )
    assert "channels" not in notice.payload

    # The worker shares it with the establishment; its HR (the worker herself holds the
    # delegation here) reads it through the hub.
    shared = httpx.post(
        f"{base}/me/certificates/{certificate['id']}/shares",
        json={"establishment_id": establishment},
        headers=worker_auth,
        timeout=TIMEOUT,
    )
    assert shared.status_code == 200, shared.text
    listed = httpx.get(
        f"{base}/establishments/{establishment}/certificates", headers=worker_auth, timeout=TIMEOUT
    )
    assert [c["id"] for c in listed.json()["items"]] == [certificate["id"]]

    # The contract (published here for the contract service) and the verified certificate
    # reached the occupations service: a professional occupation is approved at once.
    contracts = [_contract(establishment, n, f"citizen-{n}", citizen=True) for n in range(3)]
    contracts += [_contract(establishment, n, f"worker-{n}", citizen=False) for n in range(3, 10)]
    contracts.append(_contract(establishment, 10, worker, citizen=True))
    for event in contracts:
        system.loop.run(system.bus.publish(event))
    occupations = f"{hub.url}/api/occupations/v1/establishments/{establishment}/change-requests"
    deadline = time.monotonic() + 30
    while True:
        change = httpx.post(
            occupations,
            json={"person_id": worker, "to": "2421", "reason": "promoted to analyst"},
            headers=worker_auth,
            timeout=TIMEOUT,
        )
        if change.status_code != 422:  # the contract event may not be consumed yet
            break
        assert time.monotonic() < deadline, change.text
        time.sleep(0.2)
    assert change.status_code == 201, change.text
    assert change.json()["state"] == "approved", change.json()
    system.wait_event(lambda e: e.type == "occupation.change.approved", "the approval")

    # The compliance service read the sector through the hub (retail, 0.30 required): 4 citizens
    # of 11 employees is green; the standing is the establishment's readers' only.
    standing_url = f"{hub.url}/api/compliance/v1/establishments/{establishment}/standing"
    deadline = time.monotonic() + 30
    while True:
        standing = httpx.get(standing_url, headers=worker_auth, timeout=TIMEOUT)
        if (
            standing.status_code == 200
            and standing.json()["total"] == 11
            and standing.json()["band"]
        ):
            break
        assert time.monotonic() < deadline, standing.text
        if standing.status_code == 200 and standing.json()["cr_number"] is None:
            owner_auth = {"Authorization": f"Bearer {_token(system, OWNER)}"}
            httpx.put(
                standing_url.replace("/standing", "/registration"),
                json={"cr_number": CR},
                headers=owner_auth,
                timeout=TIMEOUT,
            )
        time.sleep(0.3)
    assert (standing.json()["band"], standing.json()["sector"]) == ("green", "retail")
    changed = system.wait_event(
        lambda e: e.type == "compliance.band.changed" and e.payload["band"] == "green",
        "the band change",
    )
    assert changed.payload["establishment_id"] == establishment
    reads = system.loop.run(_audit(system.database_url()))
    assert any(
        (r.adapter, r.purpose, r.record_ref) == ("commercial-registry", "compliance-monitoring", CR)
        for r in reads
    ), reads
    outsider = add_person(tmp, hub, backends, "1000000302", "Outsider")
    assert outsider
    outsider_auth = {"Authorization": f"Bearer {_token(system, '1000000302')}"}
    refused = httpx.get(standing_url, headers=outsider_auth, timeout=TIMEOUT)
    assert refused.status_code == 403
