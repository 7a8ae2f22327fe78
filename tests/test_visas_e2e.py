"""A work visa end to end through the running hub, with real processes, on both back-end sets.

Processes: the hub (``hub serve``), the sandbox civil and commercial registries, the sandbox
payment provider and the visa service (``python -m services.visas``), each on a free loopback
port. A vendor application delegated by an establishment applies for a work visa; the visa
service's eligibility checks go through the hub's registrar routes (and are in the audit
chain); the fee goes through the hub's payments API to the provider, whose signed webhook
confirms it; an agency officer signed in through the hub's SSO approves; the visa is issued and
verified on the public endpoint; and the applicant's notification is delivered: the
notification service (``python -m services.notifications``) consumes ``notification.requested``,
sends the e-mail through the hub's e-mail adapter to the sandbox e-mail provider, whose signed
receipt comes back through the hub's callback as ``notification.receipt``, and the vendor sees
the message ``delivered`` in its inbox through the hub.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
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
from tests.notify_support import (
    Sandbox,
    notify_adapters,
    notify_secrets_env,
    run_notify_sandboxes,
)
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

pytestmark = pytest.mark.integration

CR = "4030000001"  # Demo Trading Co in the sandbox commercial registry: active, retail, small
OWNER, OFFICER = "1000000201", "1000000202"
POLICIES = ROOT / "policies"


@dataclass
class System:
    hub: HubProcess
    visas_url: str
    visas: subprocess.Popen[bytes]
    provider: Provider
    backends: dict[str, str]
    tmp: Path
    loop: LoopThread
    bus: EventBus
    notifications: list[Event]
    notify: dict[str, Sandbox]
    notifications_service: subprocess.Popen[bytes]

    def database_url(self) -> str:
        env = hub_env(self.tmp, self.tmp / "policies", self.hub.port, extra=self.backends)
        return Settings.from_env(env).database_url


def _policies(
    folder: Path,
    sandboxes: dict[str, Any],
    provider: Provider,
    notify: dict[str, Sandbox],
    urls: dict[str, str],
) -> Path:
    """The repository's policies, pointed at this test's sandboxes and services."""
    shutil.copytree(POLICIES, folder)
    adapters = yaml.safe_load((folder / "adapters.yaml").read_text())
    registrars = adapter_document(sandboxes)
    adapters["adapters"] = [*registrars, adapter_item(provider), *notify_adapters(notify)]
    (folder / "adapters.yaml").write_text(yaml.safe_dump(adapters))
    upstreams = yaml.safe_load((folder / "upstreams.yaml").read_text())
    for upstream in upstreams["upstreams"]:
        if upstream["id"] in urls:
            upstream["targets"] = [{"url": urls[upstream["id"]]}]
    (folder / "upstreams.yaml").write_text(yaml.safe_dump(upstreams))
    return folder


async def _arrange(url: str, owner: str, officer: str, vendor: str) -> str:
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
            scopes=["visas.apply"],
            valid_until=datetime.now(UTC) + timedelta(days=30),
            grantee_client=vendor,
        )
        await people.staff.grant(officer, "agency_officer", agency="immigration")
        return establishment.id
    finally:
        await engine.dispose()


async def _audit(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT adapter, operation, purpose, client_id, record_ref FROM registrar_audit"
                )
            )
            return list(rows.all())
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, backends: dict[str, str]) -> Iterator[System]:
    tmp = tmp_path_factory.mktemp("visas-e2e")
    namespace = events_namespace()
    backends = {**backends, "HUB_EVENTS_NAMESPACE": namespace}
    visas_port, notifications_port = free_port(), free_port()
    visas_url = f"http://127.0.0.1:{visas_port}"
    notifications_url = f"http://127.0.0.1:{notifications_port}"
    with (
        run_sandboxes(tmp / "sandboxes") as sandboxes,
        run_provider(tmp / "provider") as provider,
        run_notify_sandboxes(tmp / "notify") as notify,
    ):
        urls = {"visas": visas_url, "notifications": notifications_url}
        policies = _policies(tmp / "policies", sandboxes, provider, notify, urls)
        env = {
            "HUB_ACCESS_LOG": "false",
            "HUB_CONFIG_POLL_SECONDS": "0.5",
            **secrets_env(),
            **notify_secrets_env(),
            "HUB_ADAPTER_SECRET_PAYMENT_PROVIDER_KEY": API_KEY,
            "HUB_ADAPTER_SECRET_PAYMENT_WEBHOOK_SECRET": WEBHOOK_SECRET,
            **backends,
        }
        with run_hub(tmp, policies, env=env) as hub:
            loop = LoopThread()
            loop.run(
                provider.point_webhooks(f"{hub.url}/api/payments/v1/webhooks/payment-provider")
            )
            for name, sandbox in notify.items():
                loop.run(sandbox.point_receipts(f"{hub.url}/api/callbacks/v1/{name}"))
            notifier = hub_command(
                tmp, hub, backends, "clients", "create", "--name", "Notification service",
                "--owner", "notifications", "--scopes", "notifications.send",
            )  # fmt: skip
            service = hub_command(
                tmp, hub, backends, "clients", "create", "--name", "Visa service",
                "--owner", "visas", "--scopes",
                "registry.visa-eligibility payments.write payments.read payments.refund",
            )  # fmt: skip
            hub_settings = Settings.from_env(hub_env(tmp, policies, hub.port, extra=backends))
            visas_env = {
                "VISAS_PORT": str(visas_port),
                "VISAS_DATA_DIR": str(tmp / "visas"),
                "VISAS_HUB_URL": hub.url,
                "VISAS_CLIENT_ID": service["client_id"],
                "VISAS_CLIENT_SECRET": service["client_secret"],
                "VISAS_EVENTS_NAMESPACE": namespace,
                "VISAS_SWEEP_SECONDS": "3600",
            }
            if hub_settings.amqp_url:  # the real set: RabbitMQ, and its own schema in PostgreSQL
                visas_env["VISAS_AMQP_URL"] = hub_settings.amqp_url
                visas_env["VISAS_DATABASE_URL"] = hub_settings.database_url
                visas_env["VISAS_DATABASE_SCHEMA"] = "visas"
            else:  # the embedded set: its own SQLite file, the bus in the hub's database
                visas_env["VISAS_BUS_DATABASE_URL"] = hub_settings.database_url
            clean = {
                k: v
                for k, v in hub_env(tmp, policies, hub.port).items()
                if not k.startswith("VISAS_")
            }
            with (tmp / "visas.log").open("wb") as log:
                visas = subprocess.Popen(
                    [sys.executable, "-m", "services.visas"],
                    env={**clean, **visas_env},
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            # The notification service: the same back-end set, its own tables and client.
            notifications_env = {
                key.replace("VISAS_", "NOTIFICATIONS_", 1): value
                for key, value in visas_env.items()
                if key.split("_", 1)[1]
                in {"HUB_URL", "EVENTS_NAMESPACE", "AMQP_URL", "DATABASE_URL", "BUS_DATABASE_URL"}
            }
            notifications_env.update({
                "NOTIFICATIONS_PORT": str(notifications_port),
                "NOTIFICATIONS_DATA_DIR": str(tmp / "notifications"),
                "NOTIFICATIONS_CLIENT_ID": notifier["client_id"],
                "NOTIFICATIONS_CLIENT_SECRET": notifier["client_secret"],
                "NOTIFICATIONS_DISPATCH_SECONDS": "0.2",
            })  # fmt: skip
            if "NOTIFICATIONS_DATABASE_URL" in notifications_env:
                notifications_env["NOTIFICATIONS_DATABASE_SCHEMA"] = "notifications"
            with (tmp / "notifications.log").open("wb") as log:
                notifications_service = subprocess.Popen(
                    [sys.executable, "-m", "services.notifications"],
                    env={**clean, **notifications_env},
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            notifications: list[Event] = []
            bus = build_event_bus_for(
                amqp_url=hub_settings.amqp_url,
                database_url=hub_settings.database_url,
                namespace=namespace,
            )

            async def listen() -> None:
                async def record(event: Event) -> None:
                    notifications.append(event)

                await bus.start()
                await bus.subscribe(
                    f"{namespace}.test.notifications", "notification.requested", record
                )

            try:
                loop.run(listen())
                assert wait_http(f"{visas_url}/healthz", 30, process=visas), (
                    tmp / "visas.log"
                ).read_text()
                assert wait_http(
                    f"{notifications_url}/healthz", 30, process=notifications_service
                ), (tmp / "notifications.log").read_text()
                # the hub marks the new upstream healthy at its next probe
                deadline = time.monotonic() + 20
                while httpx.get(f"{hub.url}/api/visas/v1/reasons", timeout=5).status_code != 200:
                    assert time.monotonic() < deadline, "the hub never reached the visa service"
                    time.sleep(0.2)
                yield System(
                    hub=hub,
                    visas_url=visas_url,
                    visas=visas,
                    provider=provider,
                    backends=backends,
                    tmp=tmp,
                    loop=loop,
                    bus=bus,
                    notifications=notifications,
                    notify=notify,
                    notifications_service=notifications_service,
                )
            finally:
                loop.run(bus.aclose())
                loop.close()
                for process in (visas, notifications_service):
                    process.terminate()
                for process in (visas, notifications_service):
                    try:
                        process.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        process.kill()


def _officer_token(system: System) -> str:
    return _person_token(system, OFFICER)


def _person_token(system: System, identifier: str) -> str:
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


def test_a_delegated_vendor_gets_a_work_visa_through_the_hub(system: System) -> None:
    hub, tmp, backends = system.hub, system.tmp, system.backends
    owner = add_person(tmp, hub, backends, OWNER, "Owner")
    officer = add_person(tmp, hub, backends, OFFICER, "Officer")
    vendor = hub_command(
        tmp, hub, backends,
        "clients", "create", "--name", "HR suite", "--owner", "acme", "--scopes", "visas.apply",
    )  # fmt: skip
    establishment = system.loop.run(
        _arrange(system.database_url(), owner, officer, vendor["client_id"])
    )

    # The vendor acts for the establishment with a delegated client-credentials token.
    issued_token = httpx.post(
        f"{hub.url}/oauth2/token",
        data={"grant_type": "client_credentials", "establishment": CR, "scope": "visas.apply"},
        auth=(vendor["client_id"], vendor["client_secret"]),
        timeout=TIMEOUT,
    )
    assert issued_token.status_code == 200, issued_token.text
    vendor_auth = {"Authorization": f"Bearer {issued_token.json()['access_token']}"}

    body = {
        "cr_number": CR,
        "worker": {
            "given_name": "Ravi",
            "family_name": "Kumar",
            "nationality": "IND",
            "passport_number": "P1234567",
            "birth_date": "1990-04-01",
        },
        "occupation": "5223",  # shop sales assistants: skill level 2, an officer reviews it
        "monthly_salary": 4000,
        "contact_email": "hr@demo-trading.example",
    }
    url = f"{hub.url}/api/visas/v1/establishments/{establishment}/applications"
    headers = {**vendor_auth, "Idempotency-Key": "e2e-1"}
    answer = httpx.post(url, json=body, headers=headers, timeout=TIMEOUT)
    assert answer.status_code == 201, answer.text
    application = answer.json()
    # ...or already in review: the provider's webhook may beat the answer on a loaded machine.
    assert application["state"] in {"awaiting_payment", "in_review"}
    again = httpx.post(url, json=body, headers=headers, timeout=TIMEOUT)  # a retry: no second
    assert again.status_code == 200
    assert again.json()["id"] == application["id"]

    # The registrar check went through the hub's adapter and is in the audit chain.
    reads = system.loop.run(_audit(system.database_url()))
    assert any(
        (r.adapter, r.operation, r.purpose, r.record_ref)
        == ("commercial-registry", "get_establishment", "visa-eligibility", CR)
        for r in reads
    ), reads

    # The fee: one payment in the hub, captured by the provider, confirmed by its webhook.
    view = f"{hub.url}/api/visas/v1/applications/{application['id']}"
    deadline = time.monotonic() + 30
    while (current := httpx.get(view, headers=vendor_auth, timeout=TIMEOUT).json())[
        "state"
    ] == "awaiting_payment":
        assert time.monotonic() < deadline, current
        time.sleep(0.1)
    assert current["state"] == "in_review", current
    assert current["fee"]["paid_at"]
    book = system.loop.run(system.provider.book())
    mine = [i for i in book["intents"] if i["amount"] == 200_000]
    assert len(mine) == 1  # one charge, whatever the retry
    assert system.loop.run(system.provider.deliveries())["deliveries"]

    # An agency officer, signed in through the hub's SSO, approves from the review queue.
    officer_auth = {"Authorization": f"Bearer {_officer_token(system)}"}
    queue = httpx.get(
        f"{hub.url}/api/visas/v1/review/applications",
        params={"state": "in_review"},
        headers=officer_auth,
        timeout=TIMEOUT,
    )
    assert queue.status_code == 200, queue.text
    assert application["id"] in [item["id"] for item in queue.json()["items"]]
    refused = httpx.get(f"{hub.url}/api/visas/v1/review/applications", headers=vendor_auth)
    assert refused.status_code == 403
    decided = httpx.post(
        f"{hub.url}/api/visas/v1/review/applications/{application['id']}/decision",
        json={"decision": "approve", "reason": "documents in order"},
        headers=officer_auth,
        timeout=TIMEOUT,
    )
    assert decided.status_code == 200, decided.text
    visa = decided.json()["visa"]
    assert decided.json()["state"] == "issued"

    # Anyone verifies the visa on the public endpoint, with its code and nothing else.
    verified = httpx.get(
        f"{hub.url}/api/visas/v1/verify/{visa['number']}",
        params={"code": visa["verification_code"]},
        timeout=TIMEOUT,
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["valid"] is True
    assert verified.json()["holder"] == "R. K****"

    history = httpx.get(f"{view}/history", headers=vendor_auth, timeout=TIMEOUT).json()["items"]
    assert [h["to"] for h in history] == [
        "submitted", "awaiting_payment", "in_review", "approved", "issued",
    ]  # fmt: skip

    # The applicant's notification of the issue is on the bus for the notification service.
    deadline = time.monotonic() + 20
    while not any(
        n.payload["template"] == "visa.application.issued"
        and n.payload["data"]["application_id"] == application["id"]
        for n in system.notifications
    ):
        assert time.monotonic() < deadline, [n.payload["template"] for n in system.notifications]
        time.sleep(0.1)
    issued_notice = next(
        n for n in system.notifications if n.payload["template"] == "visa.application.issued"
    )
    assert issued_notice.payload["recipient"]["client_id"] == vendor["client_id"]
    assert issued_notice.payload["recipient"]["email"] == "hr@demo-trading.example"
    assert json.dumps(issued_notice.payload)  # plain JSON, as the bus carries it

    # ...and delivered: the e-mail reached the sandbox provider through the hub's e-mail
    # adapter, its signed receipt came back through the hub, and the vendor's inbox (through
    # the hub) shows the message delivered by e-mail.
    def issued_message() -> dict[str, Any] | None:
        answer = httpx.get(
            f"{hub.url}/api/notifications/v1/me/inbox", headers=vendor_auth, timeout=TIMEOUT
        )
        assert answer.status_code == 200, answer.text
        for item in answer.json()["items"]:
            if item["template"] == "visa.application.issued" and item["status"] == "delivered":
                found: dict[str, Any] = item
                return found
        return None

    deadline = time.monotonic() + 30
    while (message := issued_message()) is None:
        assert time.monotonic() < deadline, (system.tmp / "notifications.log").read_text()
        time.sleep(0.2)
    assert message["data"]["application_id"] == application["id"]
    assert message["channel"] == "email"
    email = next(d for d in message["deliveries"] if d["channel"] == "email")
    assert (email["status"], email["address"]) == ("delivered", "h***@demo-trading.example")
    mails = system.loop.run(system.notify["email-provider"].messages())
    issued_mail = [m for m in mails if m["id"] == email["provider_id"]]
    assert len(issued_mail) == 1  # sent once
    assert issued_mail[0]["to"] == "hr@demo-trading.example"
    assert visa["number"] in issued_mail[0]["body"]["text"]
    assert issued_mail[0]["status"] == "delivered"
    # Someone else's token sees none of it.
    stranger = httpx.get(
        f"{hub.url}/api/notifications/v1/me/inbox",
        headers={"Authorization": f"Bearer {_officer_token(system)}"},
        timeout=TIMEOUT,
    )
    assert stranger.status_code == 200
    assert all(i["id"] != message["id"] for i in stranger.json()["items"])

    # The vendor's preferences, through the hub (its contract checks the body too).
    preferences = f"{hub.url}/api/notifications/v1/me/preferences"
    chosen = {"channels": ["inbox"], "language": "ar", "email": None, "phone": None}
    put = httpx.put(preferences, json=chosen, headers=vendor_auth, timeout=TIMEOUT)
    assert put.status_code == 200, put.text
    assert httpx.get(preferences, headers=vendor_auth, timeout=TIMEOUT).json()["language"] == "ar"
    bad = httpx.put(preferences, json={"channels": ["pigeon"]}, headers=vendor_auth)
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_request"
    anonymous = httpx.get(preferences, timeout=TIMEOUT)
    assert anonymous.status_code == 401


def test_a_person_is_told_by_sms_when_the_email_bounces(system: System) -> None:
    """Any service's notification.requested: the person's preference, a bounce, the fallback."""
    hub = system.hub
    person = add_person(system.tmp, hub, system.backends, "1000000205", "Noura")
    person_auth = {"Authorization": f"Bearer {_person_token(system, '1000000205')}"}
    preferences = f"{hub.url}/api/notifications/v1/me/preferences"
    chosen = {
        "channels": ["email", "sms"],
        "language": "ar",
        "email": "noura@bounce.example",  # the sandbox bounces it: its receipt says failed
        "phone": "+966500000205",
    }
    put = httpx.put(preferences, json=chosen, headers=person_auth, timeout=TIMEOUT)
    assert put.status_code == 200, put.text

    notification = {
        "notification_id": f"e2e-{uuid.uuid4().hex[:8]}.issued",
        "recipient": {"kind": "person", "id": person, "client_id": None},
        "template": "visa.application.issued",
        "subject": "Visa application app_e2e: issued",
        "body": "The visa was issued: W000000205.",
        "data": {"application_id": "app_e2e", "state": "issued", "visa_number": "W000000205"},
        "reference": "visa-application:app_e2e",
    }
    event = Event(type="notification.requested", payload=notification)
    system.loop.run(system.bus.publish(event))
    system.loop.run(system.bus.publish(event))  # published twice: one message all the same

    def delivered() -> dict[str, Any] | None:
        answer = httpx.get(
            f"{hub.url}/api/notifications/v1/me/inbox", headers=person_auth, timeout=TIMEOUT
        )
        assert answer.status_code == 200, answer.text
        items = answer.json()["items"]
        assert len(items) <= 1, items
        return items[0] if items and items[0]["status"] == "delivered" else None

    deadline = time.monotonic() + 40
    while (message := delivered()) is None:
        assert time.monotonic() < deadline, (system.tmp / "notifications.log").read_text()
        time.sleep(0.2)
    assert (message["language"], message["dir"], message["channel"]) == ("ar", "rtl", "sms")
    assert "\u2068W000000205\u2069" in message["body"]
    by_channel = {d["channel"]: d for d in message["deliveries"]}
    assert by_channel["email"]["status"] == "failed"
    assert "mailbox" in by_channel["email"]["error"]
    assert by_channel["sms"]["status"] == "delivered"
    texts = system.loop.run(system.notify["sms-provider"].messages())
    mine = [m for m in texts if m["to"] == "+966500000205"]
    assert len(mine) == 1
    assert mine[0]["body"]["text"] == message["body"]
    assert mine[0]["segments"] >= 1
    read = httpx.post(
        f"{hub.url}/api/notifications/v1/me/inbox/{message['id']}/read",
        headers=person_auth,
        timeout=TIMEOUT,
    )
    assert read.status_code == 200
    assert read.json()["read"] is True
    # Another signed-in person cannot read it or mark it.
    add_person(system.tmp, hub, system.backends, "1000000206", "Fahad")
    other = httpx.post(
        f"{hub.url}/api/notifications/v1/me/inbox/{message['id']}/unread",
        headers={"Authorization": f"Bearer {_person_token(system, '1000000206')}"},
        timeout=TIMEOUT,
    )
    assert (other.status_code, other.json()["code"]) == (404, "notification_not_found")
