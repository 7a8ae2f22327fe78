"""Payments through the whole hub, on both back-end sets, against the sandbox provider process.

The hub serves on a loopback port in process (``tests.payments_support``) so the sandbox
delivers its signed webhooks to it over HTTP. The promise: no payment is captured twice,
whatever retries, timeouts or duplicate webhooks happen — checked on the provider's own book
and on the hub's, and by a clean reconciliation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.payments_support import (
    PAYMENTS,
    WEBHOOK,
    PaymentHub,
    Provider,
    new_key,
    open_payment_hub,
    run_provider,
    signed,
    until_settled,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with run_provider(tmp_path_factory.mktemp("provider")) as started:
        yield started


@pytest.fixture
async def hub(
    tmp_path: Path, backend_env: dict[str, str], provider: Provider
) -> AsyncIterator[PaymentHub]:
    await provider.reset()
    async with open_payment_hub(tmp_path, backend_env, provider) as opened:
        yield opened


async def test_a_payment_is_authorised_captured_and_refunded_with_its_events(
    hub: PaymentHub, provider: Provider
) -> None:
    key = new_key()
    body = {"amount": 25000, "currency": "SAR", "reference": "visa-application:42"}
    made = await hub.create(key, **body)
    assert made.status_code == 201, made.text
    payment = made.json()
    assert payment["state"] == "requires_capture"
    assert payment["reference"] == "visa-application:42"
    assert made.headers["location"] == f"{PAYMENTS}/{payment['id']}"
    assert made.headers["cache-control"] == "no-store"

    again = await hub.create(key, **body)
    assert again.status_code == 201
    assert again.json() == payment
    assert again.headers["idempotent-replayed"] == "true"
    other = await hub.create(key, **{**body, "amount": 25001})
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_conflict")

    captured = await hub.capture(payment["id"], new_key())
    assert captured.status_code == 200, captured.text
    assert (captured.json()["state"], captured.json()["amount_captured"]) == ("captured", 25000)

    part = await hub.refund(payment["id"], new_key(), amount=5000, reason="fee reduced")
    assert part.status_code == 201, part.text
    assert part.json()["state"] == "succeeded"
    assert part.json()["payment"]["state"] == "partially_refunded"
    rest = await hub.refund(payment["id"], new_key())  # default: all that is left
    assert rest.status_code == 201, rest.text
    assert (rest.json()["amount"], rest.json()["payment"]["state"]) == (20000, "refunded")

    await provider.webhooks_settled()
    final = (await hub.get(payment["id"])).json()
    assert final["state"] == "refunded"
    assert (final["amount_refunded"], final["amount_refundable"]) == (25000, 0)
    assert [r["amount"] for r in final["refunds"]] == [5000, 20000]

    events = await hub.events()
    assert [t for t, _ in events] == ["payment.captured", "payment.refunded", "payment.refunded"]
    assert {p["reference"] for _, p in events} == {"visa-application:42"}
    assert events[-1][1]["state"] == "refunded"
    # Every webhook was taken once; those that came after the API's own answer were stale.
    receipts = await hub.rows("SELECT outcome FROM payment_webhooks")
    assert len(receipts) == len((await provider.deliveries())["deliveries"])
    assert (await hub.reconcile())["clean"] is True


async def test_the_storm_captures_every_payment_exactly_once(
    hub: PaymentHub, provider: Provider
) -> None:
    """Retries with the same and other keys, accept-then-timeout, duplicate reordered webhooks."""
    storm = {
        "accept_then_timeout_rate": 0.3,
        "error_rate": 0.1,
        "hang_seconds": 1.0,
        "webhook_duplicate_rate": 0.5,
        "webhook_reorder": True,
        "webhook_delay_ms": 50,
    }
    count = 8
    keys = [new_key() for _ in range(count)]

    async def create(index: int) -> dict[str, Any]:
        body = {"amount": 1000 + index, "reference": f"visa-application:{index}"}
        # The same request three times at once (a client that retried too eagerly).
        answers = await asyncio.gather(
            *(until_settled(lambda: hub.create(keys[index], **body)) for _ in range(3))
        )
        ids = {a.json()["id"] for a in answers}
        assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
        assert len(ids) == 1
        return answers[0].json()

    # The first create's answer is always lost, so the adapter's look-up is sure to run; the
    # rest go through the storm, where a lost answer is one chance in three.
    await provider.faults(accept_then_timeout_rate=1.0, hang_seconds=1.0)
    first = await create(0)
    await provider.faults(**storm)
    payments = [first, *await asyncio.gather(*(create(i) for i in range(1, count)))]

    async def capture(payment: dict[str, Any]) -> None:
        key = new_key()
        attempts = [until_settled(lambda: hub.capture(payment["id"], key)) for _ in range(3)]
        # And one with a new key: a second capture that must not take the money twice.
        attempts.append(until_settled(lambda: hub.capture(payment["id"], new_key())))
        answers = await asyncio.gather(*attempts)
        for answer in answers:
            assert answer.status_code in (200, 409), answer.text
            if answer.status_code == 409:
                assert answer.json()["code"] == "invalid_payment_state"
        assert any(a.status_code == 200 for a in answers)

    await asyncio.gather(*(capture(p) for p in payments))
    await provider.faults(
        accept_then_timeout_rate=0.0, error_rate=0.0, webhook_reorder=False, webhook_delay_ms=0
    )
    await provider.webhooks_settled()

    ids = {p["id"] for p in payments}
    book = await provider.book()
    intents = [i for i in book["intents"] if i["merchant_reference"] in ids]
    assert len(intents) == count  # one intent per payment, whatever the retries
    assert {i["status"] for i in intents} == {"succeeded"}
    assert book["captures"] == count  # the provider booked exactly one capture each
    traffic = (await provider.stats())["by_path"]
    # The faults bit: answers were lost, the adapter looked the outcome up and sent again.
    assert traffic["POST /v1/payment_intents"] >= count
    assert traffic.get("GET /v1/payment_intents", 0) > 0
    assert traffic.get("GET /v1/payment_intents/pi_*", 0) > 0
    rows = await hub.rows("SELECT id, state, amount, amount_captured FROM payments")
    assert {r.id for r in rows} == ids
    assert all(r.state == "captured" and r.amount_captured == r.amount for r in rows)
    captured = await hub.events("payment.captured")
    assert sorted(p["payment_id"] for _, p in captured) == sorted(ids)
    deliveries = (await provider.deliveries())["deliveries"]
    assert sum(d["delivered"] for d in deliveries) > len(deliveries)  # duplicates were sent
    report = await hub.reconcile()
    assert report["clean"], report
    assert report["provider_lines"] == count


async def test_concurrent_refunds_never_exceed_the_capture(
    hub: PaymentHub, provider: Provider
) -> None:
    made = await hub.create(new_key(), amount=10000)
    payment_id = made.json()["id"]
    assert (await hub.capture(payment_id, new_key())).status_code == 200
    answers = await asyncio.gather(
        *(hub.refund(payment_id, new_key(), amount=3000) for _ in range(10))
    )
    statuses = sorted(a.status_code for a in answers)
    codes = sorted({(a.status_code, a.json().get("code"), a.json().get("detail")) for a in answers})
    assert statuses == [201] * 3 + [409] * 7, codes
    refused = next(a for a in answers if a.status_code == 409).json()
    assert refused["code"] == "refund_exceeds_capture"
    final = (await hub.get(payment_id)).json()
    assert (final["amount_refunded"], final["amount_refund_pending"]) == (9000, 0)
    assert final["state"] == "partially_refunded"
    intent = next(
        i for i in (await provider.book())["intents"] if i["merchant_reference"] == payment_id
    )
    assert intent["amount_refunded"] == 9000
    over = await hub.refund(payment_id, new_key(), amount=1001)
    assert (over.status_code, over.json()["refundable"]) == (409, 1000)


async def test_webhooks_are_verified_deduplicated_and_only_move_forward(
    hub: PaymentHub, provider: Provider
) -> None:
    made = await hub.create(new_key(), amount=5000)
    payment = made.json()
    assert (await hub.capture(payment["id"], new_key())).status_code == 200
    log = await provider.webhooks_settled()
    intent = next(
        i for i in (await provider.book())["intents"] if i["merchant_reference"] == payment["id"]
    )
    old = {**intent, "status": "requires_capture", "amount_received": 0}
    event = {"id": "evt_late_0001", "type": "payment_intent.amount_capturable_updated",
             "created": 1, "data": {"object": old}}  # fmt: skip
    body = json.dumps(event).encode()
    before = await hub.rows("SELECT event_id FROM payment_webhooks")

    bad = await hub.client.post(WEBHOOK, content=body, headers=signed(body, secret="wrong"))
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_webhook_signature")
    unsigned = await hub.client.post(
        WEBHOOK, content=body, headers={"Content-Type": "application/json"}
    )
    assert unsigned.json()["code"] == "invalid_webhook_signature"
    stale = await hub.client.post(WEBHOOK, content=body, headers=signed(body, at=1_000_000))
    assert (stale.status_code, stale.json()["code"]) == (400, "stale_webhook")
    tampered = await hub.client.post(WEBHOOK, content=body + b" ", headers=signed(body))
    assert tampered.json()["code"] == "invalid_webhook_signature"
    junk = b'{"hello": "world"}'
    assert (await hub.client.post(WEBHOOK, content=junk, headers=signed(junk))).json()[
        "code"
    ] == "invalid_request"
    stranger = json.dumps(
        {
            **event,
            "id": "evt_x",
            "data": {"object": {**old, "merchant_reference": "pay_" + "0" * 24}},
        }
    ).encode()
    unknown = await hub.client.post(WEBHOOK, content=stranger, headers=signed(stranger))
    assert (unknown.status_code, unknown.json()["code"]) == (404, "payment_not_found")
    assert await hub.rows("SELECT event_id FROM payment_webhooks") == before  # nothing taken

    late = await hub.client.post(WEBHOOK, content=body, headers=signed(body))
    assert late.json() == {"event_id": "evt_late_0001", "outcome": "stale"}
    assert (await hub.get(payment["id"])).json()["state"] == "captured"  # never backwards
    twice = await hub.client.post(WEBHOOK, content=body, headers=signed(body))
    assert twice.json()["outcome"] == "duplicate"
    first = log["deliveries"][0]["event_id"]
    await provider.redeliver(first)
    await provider.webhooks_settled()
    outcomes = await hub.rows("SELECT outcome FROM payment_webhooks WHERE event_id = :e", e=first)
    assert len(outcomes) == 1  # the redelivery was a duplicate, not a second receipt
    assert len(await hub.events("payment.captured")) == 1


async def test_a_lapsed_authorisation_expires_the_payment(
    hub: PaymentHub, provider: Provider
) -> None:
    """The provider lapses an uncaptured authorisation: the hub's payment is ``expired``."""
    payment = (await hub.create(new_key(), amount=7000, reference="visa-application:77")).json()
    cancelled = (await hub.create(new_key(), amount=7000, reference="visa-application:78")).json()
    assert payment["state"] == "requires_capture"
    answer = await hub.client.post(
        f"{PAYMENTS}/{cancelled['id']}/cancel", headers=hub.auth(new_key())
    )
    assert answer.status_code == 200, answer.text
    await provider.webhooks_settled()
    lapsed = await provider._call("POST", "/_sandbox/expire", {"older_than": 0})
    assert len(lapsed["expired"]) == 1
    await provider.webhooks_settled()

    final = (await hub.get(payment["id"])).json()
    assert final["state"] == "expired"
    assert (await hub.get(cancelled["id"])).json()["state"] == "cancelled"  # chosen, not lapsed
    late = await hub.capture(payment["id"], new_key())
    assert late.status_code == 409, late.text
    assert (await hub.get(payment["id"])).json()["state"] == "expired"
    expired = await hub.events("payment.expired")
    assert [p["reference"] for _, p in expired] == ["visa-application:77"]
    assert (await hub.reconcile())["clean"] is True
