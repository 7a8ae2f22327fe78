"""A work permit end to end through the running hub, with real processes, on both back-end sets.

Processes: the hub (``hub serve``), the sandbox civil and commercial registries, the sandbox
payment provider, the visa service (``python -m services.visas``) and the work permits service
(``python -m services.work_permits``), each on a free loopback port. A vendor application
delegated by an establishment gets a work visa issued (the visa service's
``visa.application.issued`` event teaches the permits service the visa); the test publishes
``contract.activated`` on the bus, standing in for the contracts service, which has not
landed; the vendor requests the permit through the hub, renews it with a fee the provider
captures (its signed webhook reaches the hub, whose ``payment.captured`` event reaches the
service), and a second establishment takes the worker over with the consent of the worker
(signed in through the hub's SSO) and of both establishments.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

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

pytestmark = pytest.mark.integration

CR_A = "4030000001"  # Demo Trading Co in the sandbox commercial registry
CR_B = "4030000005"  # Tiny Shop
# the sign-in tests make citizens (national IDs); a resident worker would be the same here
OWNER, WORKER = "1000000201", "1000000301"
POLICIES = ROOT / "policies"
SCOPES = "visas.apply permits.manage"


@dataclass
class System:
    hub: HubProcess
    provider: Provider
    backends: dict[str, str]
    tmp: Path
    loop: LoopThread
    bus: EventBus
    seen: list[Event]

    def database_url(self) -> str:
        env = hub_env(self.tmp, self.tmp / "policies", self.hub.port, extra=self.backends)
        return Settings.from_env(env).database_url


def _policies(
    folder: Path, sandboxes: dict[str, Any], provider: Provider, urls: dict[str, str]
) -> Path:
    """The repository's policies, pointed at this test's sandboxes and services."""
    shutil.copytree(POLICIES, folder)
    adapters = yaml.safe_load((folder / "adapters.yaml").read_text())
    keep = [a for a in adapters["adapters"] if a["id"] in {"sms-provider", "email-provider"}]
    adapters["adapters"] = [*adapter_document(sandboxes), adapter_item(provider), *keep]
    (folder / "adapters.yaml").write_text(yaml.safe_dump(adapters))
    upstreams = yaml.safe_load((folder / "upstreams.yaml").read_text())
    for upstream in upstreams["upstreams"]:
        if upstream["id"] in urls:
            upstream["targets"] = [{"url": urls[upstream["id"]]}]
    (folder / "upstreams.yaml").write_text(yaml.safe_dump(upstreams))
    return folder


def _service(
    tmp: Path,
    hub: HubProcess,
    backends: dict[str, str],
    module: str,
    prefix: str,
    port: int,
    credentials: dict[str, str],
    namespace: str,
) -> subprocess.Popen[bytes]:
    """Start ``python -m services.<module>`` with its ``<prefix>_*`` settings."""
    hub_settings = Settings.from_env(hub_env(tmp, tmp / "policies", hub.port, extra=backends))
    env = {
        f"{prefix}_PORT": str(port),
        f"{prefix}_DATA_DIR": str(tmp / module),
        f"{prefix}_HUB_URL": hub.url,
        f"{prefix}_CLIENT_ID": credentials["client_id"],
        f"{prefix}_CLIENT_SECRET": credentials["client_secret"],
        f"{prefix}_EVENTS_NAMESPACE": namespace,
        f"{prefix}_SWEEP_SECONDS": "3600",
    }
    if hub_settings.amqp_url:  # the real set: RabbitMQ, and its own schema in PostgreSQL
        env[f"{prefix}_AMQP_URL"] = hub_settings.amqp_url
        env[f"{prefix}_DATABASE_URL"] = hub_settings.database_url
        env[f"{prefix}_DATABASE_SCHEMA"] = module
    else:  # the embedded set: its own SQLite file, the bus in the hub's database
        env[f"{prefix}_BUS_DATABASE_URL"] = hub_settings.database_url
    clean = {
        k: v
        for k, v in hub_env(tmp, tmp / "policies", hub.port).items()
        if not k.startswith(("VISAS_", "PERMITS_"))
    }
    with (tmp / f"{module}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", f"services.{module}"],
            env={**clean, **env},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, backends: dict[str, str]) -> Iterator[System]:
    tmp = tmp_path_factory.mktemp("permits-e2e")
    namespace = events_namespace()
    backends = {**backends, "HUB_EVENTS_NAMESPACE": namespace}
    ports = {"visas": free_port(), "permits": free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    with run_sandboxes(tmp / "sandboxes") as sandboxes, run_provider(tmp / "provider") as provider:
        policies = _policies(tmp / "policies", sandboxes, provider, urls)
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
            loop.run(
                provider.point_webhooks(f"{hub.url}/api/payments/v1/webhooks/payment-provider")
            )
            visas_client = hub_command(
                tmp, hub, backends, "clients", "create", "--name", "Visa service",
                "--owner", "visas", "--scopes",
                "registry.visa-eligibility payments.write payments.read payments.refund",
            )  # fmt: skip
            permits_client = hub_command(
                tmp, hub, backends, "clients", "create", "--name", "Work permits service",
                "--owner", "permits", "--scopes", "payments.write payments.read",
            )  # fmt: skip
            processes = [
                _service(tmp, hub, backends, "visas", "VISAS", ports["visas"], visas_client,
                         namespace),
                _service(tmp, hub, backends, "work_permits", "PERMITS", ports["permits"],
                         permits_client, namespace),
            ]  # fmt: skip
            hub_settings = Settings.from_env(hub_env(tmp, policies, hub.port, extra=backends))
            seen: list[Event] = []
            bus = build_event_bus_for(
                amqp_url=hub_settings.amqp_url,
                database_url=hub_settings.database_url,
                namespace=namespace,
            )

            async def listen() -> None:
                async def record(event: Event) -> None:
                    seen.append(event)

                await bus.start()
                await bus.subscribe(f"{namespace}.test.permits", "permit.#", record)
                await bus.subscribe(
                    f"{namespace}.test.notifications", "notification.requested", record
                )

            try:
                loop.run(listen())
                for (name, url), process in zip(urls.items(), processes, strict=True):
                    assert wait_http(f"{url}/healthz", 30, process=process), (
                        tmp / f"{'work_permits' if name == 'permits' else name}.log"
                    ).read_text()
                # the hub marks the new upstreams healthy at their next probe
                deadline = time.monotonic() + 20
                for path in ("/api/visas/v1/reasons", "/api/permits/v1/reasons"):
                    while httpx.get(f"{hub.url}{path}", timeout=5).status_code != 200:
                        assert time.monotonic() < deadline, f"the hub never reached {path}"
                        time.sleep(0.2)
                yield System(
                    hub=hub,
                    provider=provider,
                    backends=backends,
                    tmp=tmp,
                    loop=loop,
                    bus=bus,
                    seen=seen,
                )
            finally:
                loop.run(bus.aclose())
                loop.close()
                stop_processes(processes)


async def _arrange(url: str, owner: str, vendors: dict[str, str]) -> dict[str, str]:
    """Two establishments, each delegating visas.apply and permits.manage to its vendor."""
    engine = create_engine(url)
    try:
        people = PeopleStores.on(engine)
        made: dict[str, str] = {}
        for cr, name in ((CR_A, "Demo Trading Co"), (CR_B, "Tiny Shop")):
            establishment = await people.establishments.create(
                cr_number=cr, name=name, sector="retail", size="small"
            )
            await people.establishments.add_member(establishment.id, owner, "owner")
            await people.delegations.grant(
                establishment.id,
                grantor=owner,
                scopes=SCOPES.split(),
                valid_until=datetime.now(UTC) + timedelta(days=30),
                grantee_client=vendors[cr],
            )
            made[cr] = establishment.id
        return made
    finally:
        await engine.dispose()


def _vendor_token(hub: HubProcess, vendor: dict[str, str], cr: str) -> dict[str, str]:
    answer = httpx.post(
        f"{hub.url}/oauth2/token",
        data={"grant_type": "client_credentials", "establishment": cr, "scope": SCOPES},
        auth=(vendor["client_id"], vendor["client_secret"]),
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _person_token(system: System, identifier: str) -> dict[str, str]:
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
    return {"Authorization": f"Bearer {token['access_token']}"}


def _until(check: Callable[[], Any], what: str, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return found


def _contract_activated(
    contract_id: str, establishment: str, person: str, visa_number: str
) -> Event:
    """What the contracts service publishes when both parties signed (ISSUE 7's payload)."""
    return Event(
        type="contract.activated",
        payload={
            "contract_id": contract_id,
            "establishment_id": establishment,
            "employee": {"id": person, "nationality": "IND", "citizen": False},
            "occupation": "2512",
            "salary": 15000,
            "start_date": datetime.now(UTC).date().isoformat(),
            "end_date": None,
            "state": "active",
            "at": datetime.now(UTC).isoformat(),
            "visa_number": visa_number,
        },
    )


def test_visa_contract_permit_renewal_and_transfer_through_the_hub(system: System) -> None:
    hub, tmp, backends = system.hub, system.tmp, system.backends
    owner = add_person(tmp, hub, backends, OWNER, "Owner")
    worker = add_person(tmp, hub, backends, WORKER, "Ravi")
    vendors = {
        cr: hub_command(
            tmp,
            hub,
            backends,
            "clients",
            "create",
            "--name",
            f"HR suite {cr}",
            "--owner",
            f"acme-{cr}",
            "--scopes",
            SCOPES,
        )
        for cr in (CR_A, CR_B)
    }
    ids = system.loop.run(
        _arrange(system.database_url(), owner, {cr: v["client_id"] for cr, v in vendors.items()})
    )
    est_a, est_b = ids[CR_A], ids[CR_B]
    vendor_a = _vendor_token(hub, vendors[CR_A], CR_A)
    vendor_b = _vendor_token(hub, vendors[CR_B], CR_B)

    # 1. A work visa, issued by the visa service's automatic rules once its fee is captured.
    application = httpx.post(
        f"{hub.url}/api/visas/v1/establishments/{est_a}/applications",
        json={
            "cr_number": CR_A,
            "worker": {
                "given_name": "Ravi",
                "family_name": "Kumar",
                "nationality": "IND",
                "passport_number": "P7654321",
                "birth_date": "1990-04-01",
            },
            "occupation": "2512",
            "monthly_salary": 15000,
        },
        headers={**vendor_a, "Idempotency-Key": "visa-1"},
        timeout=TIMEOUT,
    )
    assert application.status_code == 201, application.text
    view = f"{hub.url}/api/visas/v1/applications/{application.json()['id']}"
    issued = _until(
        lambda: (
            (v := httpx.get(view, headers=vendor_a, timeout=TIMEOUT).json())["state"] == "issued"
            and v
        ),
        "the visa was never issued",
    )
    visa_number = issued["visa"]["number"]

    # 2. Before the contract is active, the permit is refused and nothing is written.
    permits = f"{hub.url}/api/permits/v1/establishments/{est_a}/permits"
    body = {"visa_number": visa_number, "contract_id": "ct-e2e-a"}
    headers = {**vendor_a, "Idempotency-Key": "permit-1"}
    early = _until(
        lambda: (
            (a := httpx.post(permits, json=body, headers=headers, timeout=TIMEOUT))
            .json()
            .get("code")
            == "no_active_contract"  # the visa is known (learnt from its event), the contract not
            and a
        ),
        "the permits service never learnt of the visa",
    )
    assert early.status_code == 422

    # 3. The contract is activated (the contracts service's event, published by this test).
    system.loop.run(system.bus.publish(_contract_activated("ct-e2e-a", est_a, worker, visa_number)))
    answer = _until(
        lambda: (
            (a := httpx.post(permits, json=body, headers=headers, timeout=TIMEOUT)).status_code
            in {200, 201}
            and a
        ),
        "the permit was never issued",
    )
    permit = answer.json()
    assert (permit["state"], permit["person_id"], permit["establishment_id"]) == (
        "active", worker, est_a,
    )  # fmt: skip
    assert permit["worker"]["passport_number"] == "P7654321"
    replay = httpx.post(permits, json=body, headers=headers, timeout=TIMEOUT)
    assert (replay.status_code, replay.json()["id"]) == (200, permit["id"])
    url = f"{hub.url}/api/permits/v1/permits/{permit['id']}"
    mine = _person_token(system, WORKER)
    assert httpx.get(url, headers=mine, timeout=TIMEOUT).status_code == 200
    assert httpx.get(url, headers=vendor_b, timeout=TIMEOUT).status_code == 404

    # 4. The renewal fee goes through the hub's payments API; the captured payment renews it.
    renew = httpx.post(
        f"{url}/renew", headers={**vendor_a, "Idempotency-Key": "renew-1"}, timeout=TIMEOUT
    )
    assert renew.status_code == 202, renew.text
    again = httpx.post(
        f"{url}/renew", headers={**vendor_a, "Idempotency-Key": "renew-1"}, timeout=TIMEOUT
    )
    assert again.status_code == 200
    renewed = _until(
        lambda: (
            (p := httpx.get(url, headers=vendor_a, timeout=TIMEOUT).json())["renewals"] == 1 and p
        ),
        "the permit was never renewed",
    )
    assert renewed["state"] == "active"
    assert renewed["expires_on"] > permit["expires_on"]
    book = system.loop.run(system.provider.book())
    assert len([i for i in book["intents"] if i["amount"] == 96_000]) == 1  # one charge

    # 5. A transfer to the second establishment: its vendor asks (its consent), the worker
    #    signed in through the SSO consents, and the permit moves only at the current
    #    establishment's consent.
    system.loop.run(system.bus.publish(_contract_activated("ct-e2e-b", est_b, worker, visa_number)))
    transfers = f"{hub.url}/api/permits/v1/establishments/{est_b}/transfers"
    requested = _until(
        lambda: (
            (
                a := httpx.post(
                    transfers,
                    json={"person_id": worker, "contract_id": "ct-e2e-b"},
                    headers={**vendor_b, "Idempotency-Key": "transfer-1"},
                    timeout=TIMEOUT,
                )
            ).status_code
            == 201
            and a
        ),
        "the transfer was never accepted",
    ).json()
    assert requested["missing"] == ["worker", "current"]
    transfer = f"{hub.url}/api/permits/v1/transfers/{requested['id']}"
    posing = httpx.post(
        f"{transfer}/consent", json={"as": "worker"}, headers=vendor_b, timeout=TIMEOUT
    )
    assert posing.status_code == 403
    consent = httpx.post(
        f"{transfer}/consent", json={"as": "worker"}, headers=mine, timeout=TIMEOUT
    )
    assert consent.status_code == 200, consent.text
    assert httpx.get(url, headers=vendor_a, timeout=TIMEOUT).json()["establishment_id"] == est_a
    done = httpx.post(
        f"{transfer}/consent", json={"as": "current"}, headers=vendor_a, timeout=TIMEOUT
    )
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "completed"
    moved = httpx.get(url, headers=vendor_b, timeout=TIMEOUT).json()
    assert (moved["establishment_id"], moved["contract_id"]) == (est_b, "ct-e2e-b")
    assert httpx.get(url, headers=vendor_a, timeout=TIMEOUT).status_code == 404

    # 6. Each step's domain event and notification requests are on the bus.
    for step in ("issued", "renewed", "transferred"):
        _until(
            lambda step=step: any(
                e.type == f"permit.{step}" and e.payload["permit_id"] == permit["id"]
                for e in system.seen
            ),
            f"no permit.{step} event",
        )
        notices = _until(
            lambda step=step: [
                e for e in system.seen
                if e.type == "notification.requested" and e.payload["template"] == f"permit.{step}"
            ],
            f"no permit.{step} notification",
        )  # fmt: skip
        assert all("channels" not in n.payload for n in notices)
