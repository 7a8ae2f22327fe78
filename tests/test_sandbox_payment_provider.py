"""The sandbox payment provider on its own (Litestar's test client, no sockets)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from adapters.sandbox.payment_provider import ProviderConfig, create_app, signature_headers
from hub.errors import InvalidWebhookSignature
from hub.payments.webhooks import verify_signature

AUTH = {"Authorization": "Bearer k"}
INTENT = {"amount": 1500, "currency": "SAR", "merchant_reference": "pay_1"}


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    async with AsyncTestClient(app=create_app(ProviderConfig(api_key="k"))) as test_client:
        yield test_client


async def test_idempotency_keys_replay_and_refuse_another_body(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    first = await client.post(
        "/v1/payment_intents", json=INTENT, headers={**AUTH, "Idempotency-Key": "a"}
    )
    assert first.status_code == 201
    again = await client.post(
        "/v1/payment_intents", json=INTENT, headers={**AUTH, "Idempotency-Key": "a"}
    )
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = await client.post(
        "/v1/payment_intents",
        json={**INTENT, "amount": 1},
        headers={**AUTH, "Idempotency-Key": "a"},
    )
    assert (other.status_code, other.json()["error"]["code"]) == (409, "idempotency_conflict")
    assert len((await client.get("/_sandbox/book")).json()["intents"]) == 1
    assert (await client.post("/v1/payment_intents", json=INTENT)).status_code == 401


async def test_refunds_stop_at_the_capture_and_the_ledger_can_lie(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    intent = (await client.post("/v1/payment_intents", json=INTENT, headers=AUTH)).json()
    refund = {"payment_intent": intent["id"], "amount": 1, "merchant_reference": "r"}
    early = await client.post("/v1/refunds", json=refund, headers=AUTH)
    assert early.json()["error"]["code"] == "invalid_state"
    assert (
        await client.post(f"/v1/payment_intents/{intent['id']}/capture", headers=AUTH)
    ).status_code == 200
    body = {"payment_intent": intent["id"], "amount": 1000, "merchant_reference": "r1"}
    assert (await client.post("/v1/refunds", json=body, headers=AUTH)).status_code == 201
    over = await client.post("/v1/refunds", json={**body, "merchant_reference": "r2"}, headers=AUTH)
    assert (over.status_code, over.json()["error"]["code"]) == (400, "amount_too_large")
    lines = (await client.get("/v1/settlements", headers=AUTH)).json()["lines"]
    assert [(line["type"], line["amount"]) for line in lines] == [
        ("capture", 1500),
        ("refund", 1000),
    ]
    await client.post("/_sandbox/faults", json={"ledger_disagree": True})
    wrong = (await client.get("/v1/settlements", headers=AUTH)).json()["lines"]
    assert [(line["type"], line["amount"]) for line in wrong] == [
        ("refund", 1100),
        ("capture", 4200),
    ]
    bad_day = await client.get("/v1/settlements?date=today", headers=AUTH)
    assert bad_day.status_code == 400


async def test_faults_are_checked(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    for body in ({"error_rate": 2}, {"nope": 1}, {"hang": "yes"}, {"hang_seconds": 0}):
        assert (await client.post("/_sandbox/faults", json=body)).status_code == 400, body
    await client.post("/_sandbox/faults", json={"error_rate": 1.0, "error_status": 502})
    failed = await client.post("/v1/payment_intents", json=INTENT, headers=AUTH)
    assert failed.status_code == 502
    assert (await client.get("/_sandbox/book")).json()["intents"] == []  # nothing was done
    await client.post("/_sandbox/faults", json={"error_rate": 0.0, "malformed_rate": 1.0})
    cut = await client.post("/v1/payment_intents", json=INTENT, headers=AUTH)
    assert cut.status_code == 201
    assert len((await client.get("/_sandbox/book")).json()["intents"]) == 1  # done, answer broken


def test_the_hub_verifies_what_the_sandbox_signs() -> None:
    body = b'{"id":"evt_1"}'
    now = int(time.time())
    headers = signature_headers("s3cret", now, body)
    verify_signature(
        secret="s3cret",
        timestamp=headers["X-Provider-Timestamp"],
        signature=headers["X-Provider-Signature"],
        body=body,
        tolerance=300,
    )
    with pytest.raises(InvalidWebhookSignature):
        verify_signature(
            secret="other",
            timestamp=headers["X-Provider-Timestamp"],
            signature=headers["X-Provider-Signature"],
            body=body,
            tolerance=300,
        )


async def test_uncaptured_authorisations_lapse_as_automatic_cancellations(
    client: AsyncTestClient,  # type: ignore[type-arg]
) -> None:
    held = (await client.post("/v1/payment_intents", json=INTENT, headers=AUTH)).json()
    taken = (
        await client.post(
            "/v1/payment_intents", json={**INTENT, "merchant_reference": "pay_2"}, headers=AUTH
        )
    ).json()
    assert held["cancellation_reason"] is None
    capture = await client.post(f"/v1/payment_intents/{taken['id']}/capture", headers=AUTH)
    assert capture.status_code == 200
    # The default term is days: nothing lapses yet.
    assert (await client.post("/_sandbox/expire", json={})).json() == {"expired": []}
    lapsed = await client.post("/_sandbox/expire", json={"older_than": 0})
    assert lapsed.json() == {"expired": [held["id"]]}  # only the uncaptured one
    intent = (await client.get(f"/v1/payment_intents/{held['id']}", headers=AUTH)).json()
    assert (intent["status"], intent["cancellation_reason"]) == ("canceled", "automatic")
    assert intent["amount_capturable"] == 0
    late = await client.post(f"/v1/payment_intents/{held['id']}/capture", headers=AUTH)
    assert (late.status_code, late.json()["error"]["code"]) == (409, "invalid_state")
    bad = await client.post("/_sandbox/expire", json={"older_than": "soon"})
    assert bad.status_code == 400
    other = (
        await client.post(
            "/v1/payment_intents", json={**INTENT, "merchant_reference": "pay_3"}, headers=AUTH
        )
    ).json()
    cancelled = await client.post(f"/v1/payment_intents/{other['id']}/cancel", headers=AUTH)
    assert cancelled.json()["cancellation_reason"] == "requested_by_customer"
