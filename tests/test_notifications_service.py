"""The notification service in-process, on SQLite and PostgreSQL, with the hub stood in for.

The hub is an ``httpx.MockTransport`` at the service's only door (tests/notifications_support.py);
the service's own code, tables, consumers and dispatcher are real, and the event bus is the
in-process one. Events go in on the bus, messages come out at the stand-in's SMS and e-mail
routes, and the inbox and preferences API are driven over HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.backends.events.base import Event
from services.notifications.app import REQUESTS_QUEUE, create_app
from services.notifications.domain import Preferences, advance, mask, plan
from services.notifications.settings import NotificationSettings
from services.notifications.templates import FSI, PDI, render
from tests.notifications_support import NotifyHub
from tests.service_support import Running, principal, product_schema, serve, storage
from tests.visas_support import ISSUER

schema = partial(product_schema, "notifications")
INBOX = "/api/notifications/v1/me/inbox"
PREFERENCES = "/api/notifications/v1/me/preferences"


def requested(
    notification_id: str = "app_1.issued",
    *,
    kind: str = "person",
    subject: str = "p-aisha",
    email: str | None = "aisha@example.test",
    phone: str | None = None,
    state: str = "issued",
    **extra: Any,
) -> dict[str, Any]:
    """A ``notification.requested`` payload in the visa service's format."""
    recipient: dict[str, Any] = {"kind": kind, "id": subject, "client_id": None}
    if email:
        recipient["email"] = email
    if phone:
        recipient["phone"] = phone
    return {
        "notification_id": notification_id,
        "recipient": recipient,
        "template": f"visa.application.{state}",
        "subject": f"Visa application app_1: {state}",
        "body": "The visa for Ravi Kumar was issued: W000000123.",
        "data": {"application_id": "app_1", "state": state, "visa_number": "W000000123"},
        "reference": "visa-application:app_1",
        **extra,
    }


class World:
    def __init__(self, service: Running, hub: NotifyHub) -> None:
        self.app = service.app
        self.client = service.client
        self.hub = hub
        self.bus = service.bus
        self.aisha = principal(hub, "p-aisha", audience="notifications")
        self.omar = principal(hub, "p-omar", audience="notifications")
        self.vendor = principal(
            hub, "c-vendor", kind="client", client_id="c-vendor", audience="notifications"
        )

    @property
    def service(self) -> Any:
        return self.app.state["notifications"].service

    async def publish(self, payload: dict[str, Any], event_id: str | None = None) -> Event:
        event = (
            Event(type="notification.requested", payload=payload)
            if event_id is None
            else Event(type="notification.requested", payload=payload, id=event_id)
        )
        await self.bus.publish(event)
        return event

    async def receipt(self, reference: str, status: str, receipt_id: str, **extra: Any) -> None:
        await self.bus.publish(
            Event(
                type="notification.receipt",
                payload={
                    "adapter": "email-provider",
                    "receipt_id": receipt_id,
                    "message_id": "em_x",
                    "reference": reference,
                    "status": status,
                    "occurred_at": "2026-12-03T08:00:00Z",
                    **extra,
                },
                id=f"evt-{receipt_id}",
            )
        )

    async def inbox(self, headers: dict[str, str] | None = None, **params: str) -> Any:
        answer = await self.client.get(INBOX, headers=headers or self.aisha, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def until(self, check: Any, what: str) -> Any:
        last = None
        for _ in range(300):
            last = await check()
            if last:
                return last
            await asyncio.sleep(0.02)
        raise AssertionError(f"never {what}: {last!r}")

    async def message(self, headers: dict[str, str] | None = None) -> dict[str, Any]:
        async def first() -> Any:
            items = (await self.inbox(headers))["items"]
            return items[0] if items else None

        found: dict[str, Any] = await self.until(first, "a message in the inbox")
        return found

    async def status(self, message_id: str, wanted: str) -> dict[str, Any]:
        async def check() -> Any:
            answer = await self.client.get(f"{INBOX}/{message_id}", headers=self.aisha)
            body = answer.json()
            return body if body["status"] == wanted else None

        found: dict[str, Any] = await self.until(check, f"status {wanted}")
        return found


@pytest.fixture
async def world(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    settings = NotificationSettings(
        **await storage(database_url, tmp_path, "notifications"),
        hub_url=ISSUER,
        client_id="notifications-service",
        client_secret="s3cret",
        dispatch_seconds=0.05,
        retry_seconds=0.01,
        max_attempts=2,
        receipt_seconds=0.3,
        bus_database_url="unused",
    )
    hub = NotifyHub()
    probe = principal(hub, "p-aisha", audience="notifications")
    async with serve(create_app, settings, hub, probe=INBOX, headers=probe) as service:
        yield World(service, hub)


# ---- the pipeline ---------------------------------------------------------------------------


async def test_a_request_is_sent_by_email_and_delivered_by_its_receipt(world: World) -> None:
    await world.publish(requested())
    message = await world.message()
    jsonschema.validate(message, schema("message.schema.json"))
    assert (message["language"], message["dir"]) == ("en", "ltr")
    assert message["subject"] == "Visa application app_1: issued"
    assert message["read"] is False

    async def sent_once() -> Any:
        return world.hub.sends("email")

    (email,) = await world.until(sent_once, "an e-mail sent")
    assert email["to"] == "aisha@example.test"
    assert email["reference"] == f"{message['id']}.email"
    assert '<html lang="en" dir="ltr">' in email["html"]
    assert world.hub.sends("sms") == []  # e-mail first by default; SMS only as a fallback

    await world.status(message["id"], "sent")
    await world.receipt(email["reference"], "delivered", "rc_1")
    delivered = await world.status(message["id"], "delivered")
    by_channel = {d["channel"]: d for d in delivered["deliveries"]}
    assert by_channel["sms"]["status"] == "skipped"  # no phone number anywhere
    delivery = by_channel["email"]
    assert delivery["status"] == "delivered"
    assert delivery["address"] == "a***@example.test"  # masked in the inbox
    assert delivery["provider_id"].startswith("em_")

    # Late, repeated and out-of-order receipts change nothing.
    await world.receipt(email["reference"], "sent", "rc_0")
    await world.receipt(email["reference"], "delivered", "rc_1")
    await world.receipt(email["reference"], "failed", "rc_2", error="bounced")
    await asyncio.sleep(0.2)
    again = await world.client.get(f"{INBOX}/{message['id']}", headers=world.aisha)
    assert again.json()["status"] == "delivered"
    assert {d["channel"]: d["status"] for d in again.json()["deliveries"]}["email"] == "delivered"
    assert len(world.hub.sends("email")) == 1


async def test_a_lost_receipt_is_made_up_for_by_asking_the_provider(world: World) -> None:
    await world.publish(requested())
    message = await world.message()
    sent = await world.status(message["id"], "sent")
    email = next(d for d in sent["deliveries"] if d["channel"] == "email")
    assert email["status"] == "accepted"  # no receipt: accepted by the provider, no more
    provider_id = email["provider_id"]
    world.hub.statuses[provider_id] = "delivered"  # delivered, but its receipt never came
    delivered = await world.status(message["id"], "delivered")
    assert ("GET", f"/api/notify/v1/email/{provider_id}") in world.hub.calls
    assert {d["channel"]: d["status"] for d in delivered["deliveries"]}["email"] == "delivered"


async def test_the_same_event_twice_and_the_same_notification_twice_make_one_message(
    world: World,
) -> None:
    first = await world.publish(requested())
    await world.publish(requested(), event_id=first.id)  # a redelivered event
    await world.publish(requested())  # the same notification under another event id
    await world.message()
    await asyncio.sleep(0.3)
    page = await world.inbox()
    assert len(page["items"]) == 1
    assert page["unread"] == 1
    assert len(world.hub.sends("email")) == 1


async def test_arabic_is_rendered_right_to_left_with_isolated_values(world: World) -> None:
    put = await world.client.put(
        PREFERENCES,
        headers=world.aisha,
        json={"channels": ["email", "inbox"], "language": "ar", "email": None, "phone": None},
    )
    assert put.status_code == 200, put.text
    await world.publish(requested())
    message = await world.message()
    assert (message["language"], message["dir"]) == ("ar", "rtl")
    assert f"{FSI}W000000123{PDI}" in message["body"]
    assert f"{FSI}app_1{PDI}" in message["subject"]
    assert "التأشيرة" in message["body"]

    async def sent() -> Any:
        return world.hub.sends("email")

    (email,) = await world.until(sent, "an e-mail sent")
    assert email["language"] == "ar"
    assert '<html lang="ar" dir="rtl">' in email["html"]
    assert 'dir="rtl"' in email["html"].split("<body", 1)[1]
    assert f"{FSI}W000000123{PDI}" in email["html"]


def test_templates_and_rules_without_a_server() -> None:
    data = {"application_id": "app_9", "visa_number": "W000000999", "state": "issued"}
    english = render(
        "visa.application.issued", "en", subject="Issued", body="Visa <b>issued</b>", data=data
    )
    assert (english.language, english.dir, english.text) == ("en", "ltr", "Visa <b>issued</b>")
    assert "&lt;b&gt;" in english.html  # the producer's text is escaped, never markup
    arabic = render("visa.application.issued", "ar", subject="x", body="y", data=data)
    assert arabic.dir == "rtl"
    assert arabic.text.count(FSI) == arabic.text.count(PDI) == 2
    unknown = render("contract.signed", "ar", subject="Signed", body="It is signed.", data={})
    assert (unknown.language, unknown.text) == ("en", "It is signed.")  # no half translation
    script = render("visa.application.issued", "ar", subject="x", body="y",
                    data={**data, "visa_number": "<script>"})  # fmt: skip
    assert "<script>" not in script.html
    assert mask("sms", "+966500000123") == "+966******123"
    assert mask("email", "hr@demo.example") == "h***@demo.example"
    assert advance("delivered", "sent") == "delivered"
    assert advance("failed", "delivered") == "failed"
    assert advance("accepted", "delivered") == "delivered"
    steps, skipped = plan(
        Preferences(channels=("sms", "email", "inbox"), phone=None),
        {"email": "a@b.example", "phone": "not-a-number"},
    )
    assert (steps, skipped) == ([("email", "a@b.example")], ["sms"])
    assert plan(Preferences(channels=("inbox",)), {"email": "a@b.example"}) == ([], [])


# ---- channels, preferences and fallback ----------------------------------------------------


async def test_sms_first_by_preference_then_email_when_the_sms_receipt_fails(world: World) -> None:
    put = await world.client.put(
        PREFERENCES,
        headers=world.aisha,
        json={"channels": ["sms", "email"], "language": "en", "phone": "+966500000123"},
    )
    assert put.status_code == 200
    await world.publish(requested())
    message = await world.message()

    async def sms() -> Any:
        return world.hub.sends("sms")

    (text_message,) = await world.until(sms, "an SMS sent")
    assert text_message["to"] == "+966500000123"
    await world.status(message["id"], "sent")
    await world.receipt(text_message["reference"], "failed", "rc_sms", error="unreachable")

    async def email() -> Any:
        return world.hub.sends("email")

    (mail,) = await world.until(email, "the e-mail fallback")
    await world.receipt(mail["reference"], "delivered", "rc_mail")
    done = await world.status(message["id"], "delivered")
    assert done["channel"] == "email"
    assert [(d["channel"], d["status"]) for d in done["deliveries"]] == [
        ("sms", "failed"),
        ("email", "delivered"),
    ]


async def test_a_failing_channel_falls_back_and_a_channel_without_address_is_skipped(
    world: World,
) -> None:
    world.hub.failing["email"] = "fail"  # the hub's e-mail route answers 503, every time
    await world.client.put(
        PREFERENCES,
        headers=world.aisha,
        json={"channels": ["email", "sms"], "language": "en", "phone": "+966500000777"},
    )
    await world.publish(requested())
    message = await world.message()

    async def sms() -> Any:
        return world.hub.sends("sms")

    await world.until(sms, "the SMS fallback")
    emails = [c for c in world.hub.calls if c[1] == "/api/notify/v1/email"]
    assert len(emails) == 2  # max_attempts tries, then the next channel
    current = await world.status(message["id"], "sent")
    assert current["channel"] == "sms"
    assert current["deliveries"][0]["status"] == "failed"

    # No e-mail and no phone anywhere: SMS and e-mail are skipped, the inbox holds it.
    await world.publish(requested("app_2.issued", email=None), event_id="evt-noaddress")

    async def second() -> Any:
        items = (await world.inbox())["items"]
        return next((i for i in items if i["notification_id"] == "app_2.issued"), None)

    await world.client.put(
        PREFERENCES, headers=world.aisha, json={"channels": ["sms", "email"], "language": "en"}
    )
    await world.publish(requested("app_3.issued", email=None))

    async def third() -> Any:
        items = (await world.inbox())["items"]
        return next((i for i in items if i["notification_id"] == "app_3.issued"), None)

    inbox_only = await world.until(third, "the inbox-only message")
    assert inbox_only["status"] == "inbox_only"
    assert {d["status"] for d in inbox_only["deliveries"]} == {"skipped"}


async def test_a_refused_message_moves_on_at_once_and_all_failing_ends_failed(
    world: World,
) -> None:
    world.hub.failing.update({"email": "refuse", "sms": "refuse"})
    await world.publish(requested(phone="+966500000555"))
    message = await world.message()
    failed = await world.status(message["id"], "failed")
    assert [(d["channel"], d["status"]) for d in failed["deliveries"]] == [
        ("email", "failed"),
        ("sms", "failed"),
    ]
    refused = [c for c in world.hub.calls if c[1].startswith("/api/notify/v1/")]
    assert len(refused) == 2  # a refusal is not retried: the message as it is will not pass


async def test_inbox_only_sends_nothing_outside(world: World) -> None:
    await world.client.put(
        PREFERENCES, headers=world.aisha, json={"channels": ["inbox"], "language": "en"}
    )
    await world.publish(requested(phone="+966500000123"))
    message = await world.message()
    assert message["status"] == "inbox_only"
    await asyncio.sleep(0.2)
    assert world.hub.sent == []


# ---- bad events ----------------------------------------------------------------------------


async def test_a_bad_event_is_dead_lettered_and_the_next_one_still_served(world: World) -> None:
    bad = await world.publish({"notification_id": "x", "recipient": {"kind": "martian"}})
    await world.publish(requested())
    await world.message()

    async def dead() -> Any:
        return await world.bus.dead_letters(f"hub.{REQUESTS_QUEUE}")

    (letter,) = await world.until(dead, "a dead letter")
    assert letter.event.id == bad.id
    assert len((await world.inbox())["items"]) == 1


# ---- the inbox API -------------------------------------------------------------------------


async def test_the_inbox_is_the_callers_own(world: World) -> None:
    await world.publish(requested())
    await world.publish(requested("vendor.1", kind="client", subject="c-vendor"))
    mine = await world.message()
    vendors = await world.message(world.vendor)
    assert vendors["notification_id"] == "vendor.1"
    assert [i["id"] for i in (await world.inbox())["items"]] == [mine["id"]]
    assert (await world.inbox(world.omar))["items"] == []

    for method, path in (
        ("GET", f"{INBOX}/{mine['id']}"),
        ("POST", f"{INBOX}/{mine['id']}/read"),
        ("POST", f"{INBOX}/{mine['id']}/unread"),
    ):
        other = await world.client.request(method, path, headers=world.omar)
        assert (other.status_code, other.json()["code"]) == (404, "notification_not_found")
        anonymous = await world.client.request(method, path)
        assert anonymous.status_code == 401
        forged = await world.client.request(
            method, path, headers={"x-hub-principal-token": "eyJhbGciOiJub25lIn0.e30."}
        )
        assert forged.status_code == 401
    assert (await world.inbox())["items"][0]["read"] is False  # Omar changed nothing

    read = await world.client.post(f"{INBOX}/{mine['id']}/read", headers=world.aisha)
    assert read.status_code == 200
    assert read.json()["read"] is True
    page = await world.inbox(unread="true")
    assert (page["items"], page["unread"]) == ([], 0)
    unread = await world.client.post(f"{INBOX}/{mine['id']}/unread", headers=world.aisha)
    assert unread.json()["read"] is False
    assert (await world.inbox(unread="true"))["unread"] == 1
    jsonschema.validate(await world.inbox(), schema("message-page.schema.json"))


async def test_an_establishments_messages_are_its_owners_and_its_acting_applications(
    world: World,
) -> None:
    """The compliance service's band changes go to the establishment (recipient kind)."""
    await world.publish(
        requested("compliance.est_a.1.green", kind="establishment", subject="est_a", email=None)
    )
    owner = principal(world.hub, "p-owner", memberships=("est_a:owner",), audience="notifications")
    vendor = principal(
        world.hub, "c-hr", kind="client", client_id="c-hr", establishment="est_a",
        audience="notifications",
    )  # fmt: skip

    async def listed() -> Any:
        page = await world.inbox(owner, establishment="est_a")
        return page if page["items"] else None

    found = await world.until(listed, "the establishment's message")
    assert [i["notification_id"] for i in found["items"]] == ["compliance.est_a.1.green"]
    assert (await world.inbox(vendor, establishment="est_a"))["items"] == found["items"]
    assert (await world.inbox(owner))["items"] == []  # not in the owner's own inbox
    refused = (
        world.aisha,  # no membership
        principal(world.hub, "p-hr", memberships=("est_a:hr_officer",),
                  audience="notifications"),  # not its owner
        principal(world.hub, "c-other", kind="client", client_id="c-other",
                  establishment="est_b", audience="notifications"),
    )  # fmt: skip
    for headers in refused:
        answer = await world.client.get(INBOX, headers=headers, params={"establishment": "est_a"})
        assert (answer.status_code, answer.json()["code"]) == (403, "establishment_not_permitted")
    anonymous = await world.client.get(INBOX, params={"establishment": "est_a"})
    assert anonymous.status_code == 401
    empty = await world.client.get(INBOX, headers=owner, params={"establishment": ""})
    assert (empty.status_code, empty.json()["code"]) == (400, "invalid_request")


async def test_the_inbox_pages_and_refuses_bad_queries(world: World) -> None:
    for index in range(3):
        await world.publish(requested(f"app_{index}.issued"))

    async def three() -> Any:
        return len((await world.inbox())["items"]) == 3

    await world.until(three, "three messages")
    first = await world.inbox(limit="2")
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    rest = await world.inbox(limit="2", cursor=first["next_cursor"])
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None
    assert {i["id"] for i in first["items"]}.isdisjoint(i["id"] for i in rest["items"])
    for params in ({"limit": "0"}, {"limit": "abc"}, {"unread": "maybe"}, {"cursor": "x"},
                   {"colour": "red"}):  # fmt: skip
        answer = await world.client.get(INBOX, headers=world.aisha, params=params)
        assert (answer.status_code, answer.json()["code"]) == (400, "invalid_request"), params


async def test_preferences_are_the_callers_own_and_checked(world: World) -> None:
    default = await world.client.get(PREFERENCES, headers=world.aisha)
    assert default.status_code == 200
    jsonschema.validate(default.json(), schema("preferences.schema.json"))
    assert default.json()["stored"] is False
    assert default.json()["channels"] == ["email", "sms", "inbox"]
    chosen = {"channels": ["sms"], "language": "ar", "phone": "+966500000123", "email": None}
    put = await world.client.put(PREFERENCES, headers=world.aisha, json=chosen)
    assert put.status_code == 200
    assert put.json()["stored"] is True
    assert (await world.client.get(PREFERENCES, headers=world.aisha)).json()["language"] == "ar"
    assert (await world.client.get(PREFERENCES, headers=world.omar)).json()["stored"] is False
    for body in (
        {"channels": [], "language": "en"},
        {"channels": ["pigeon"], "language": "en"},
        {"channels": ["sms", "sms"], "language": "en"},
        {"channels": ["sms"], "language": "fr"},
        {"channels": ["sms"], "language": "en", "phone": "0500"},
        {"channels": ["email"], "language": "en", "email": "not-an-address"},
        {"channels": ["email"], "language": "en", "owner": "person:p-omar"},
        [1, 2],
    ):
        answer = await world.client.put(PREFERENCES, headers=world.aisha, json=body)
        assert (answer.status_code, answer.json()["code"]) == (400, "invalid_request"), body
    not_json = await world.client.put(PREFERENCES, headers=world.aisha, content=b"{nope")
    assert not_json.status_code == 400
    huge = await world.client.put(PREFERENCES, headers=world.aisha, content=b" " * 9000)
    assert huge.status_code == 413
    anonymous = await world.client.put(PREFERENCES, json=chosen)
    assert anonymous.status_code == 401
    assert (await world.client.get(PREFERENCES, headers=world.aisha)).json()["language"] == "ar"


async def test_metrics_count_by_channel_and_outcome(world: World) -> None:
    await world.publish(requested())

    async def sent() -> Any:
        return world.hub.sends("email")

    await world.until(sent, "an e-mail sent")
    await asyncio.sleep(0.1)
    text_body = (await world.client.get("/metrics")).text
    assert 'notifications_sends_total{channel="email",outcome="accepted"} 1.0' in text_body
    assert 'notifications_events_total{outcome="applied",type="notification.requested"} 1.0' in (
        text_body
    )


@given(st.lists(st.sampled_from(["accepted", "sent", "delivered", "failed"]), max_size=12))
def test_any_order_and_repetition_of_receipts_ends_at_the_first_final_one(
    reports: list[str],
) -> None:
    status = "pending"
    for report in reports:
        status = advance(status, report)
    finals = [r for r in reports if r in {"delivered", "failed"}]
    if finals:
        assert status == finals[0]  # the first final report wins, whatever comes after
    else:
        rank = {"pending": 0, "accepted": 1, "sent": 2}
        assert status == max(["pending", *reports], key=rank.__getitem__)
    assert advance(status, status) == status  # a repeat changes nothing
