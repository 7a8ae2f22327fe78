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
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hub.backends.events.base import Event
from tests.fleet_support import (
    NOTIFICATIONS,
    VISAS,
    Fleet,
    delegating_establishment,
    people_stores,
    run_fleet,
)
from tests.sso_e2e_support import TIMEOUT, add_person

pytestmark = pytest.mark.integration

CR = "4030000001"  # Demo Trading Co in the sandbox commercial registry: active, retail, small
OWNER, OFFICER = "1000000201", "1000000202"


async def _arrange(url: str, owner: str, officer: str, vendor: str) -> str:
    async with people_stores(url) as people:
        establishment = await delegating_establishment(
            people, CR, "Demo Trading Co", owner, ["visas.apply"], grantee_client=vendor
        )
        await people.staff.grant(officer, "agency_officer", agency="immigration")
        return establishment


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory, backends: dict[str, str]) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("visas-e2e")
    with run_fleet(
        tmp,
        backends,
        [NOTIFICATIONS, VISAS],
        listen={"notifications": ["notification.requested"]},
        notify=True,
    ) as fleet:
        yield fleet


def test_a_delegated_vendor_gets_a_work_visa_through_the_hub(system: Fleet) -> None:
    hub, tmp, backends = system.hub, system.tmp, system.backends
    owner = add_person(tmp, hub, backends, OWNER, "Owner")
    officer = add_person(tmp, hub, backends, OFFICER, "Officer")
    vendor = system.client("HR suite", "acme", "visas.apply")
    establishment = system.loop.run(
        _arrange(system.database_url(), owner, officer, vendor["client_id"])
    )

    # The vendor acts for the establishment with a delegated client-credentials token.
    vendor_auth = system.acting_for(vendor, CR, "visas.apply")

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
    reads = system.audit()
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
    book = system.loop.run(system.payments().book())
    mine = [i for i in book["intents"] if i["amount"] == 200_000]
    assert len(mine) == 1  # one charge, whatever the retry
    assert system.loop.run(system.payments().deliveries())["deliveries"]

    # An agency officer, signed in through the hub's SSO, approves from the review queue.
    officer_auth = system.token(OFFICER)
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
        for n in system.events
    ):
        assert time.monotonic() < deadline, [n.payload["template"] for n in system.events]
        time.sleep(0.1)
    issued_notice = next(
        n for n in system.events if n.payload["template"] == "visa.application.issued"
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
        headers=system.token(OFFICER),
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


def test_a_person_is_told_by_sms_when_the_email_bounces(system: Fleet) -> None:
    """Any service's notification.requested: the person's preference, a bounce, the fallback."""
    hub = system.hub
    person = add_person(system.tmp, hub, system.backends, "1000000205", "Noura")
    person_auth = system.token("1000000205")
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
        headers=system.token("1000000206"),
        timeout=TIMEOUT,
    )
    assert (other.status_code, other.json()["code"]) == (404, "notification_not_found")
