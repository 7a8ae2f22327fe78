"""The payments store under concurrency, on SQLite and PostgreSQL: each change happens once."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hub.db.engine import create_engine
from hub.db.migrate import migrate
from hub.db.payment_store import PaymentDraft, PaymentStore
from hub.errors import IdempotencyConflict, IdempotencyInProgress
from hub.payments.states import PaymentState


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[tuple[PaymentStore, list[str]]]:
    await migrate(database_url)
    engine = create_engine(database_url)
    events: list[str] = []

    async def sink(_conn: Any, event_type: str, *_rest: Any) -> None:
        events.append(event_type)

    try:
        yield PaymentStore(engine, events=sink), events
    finally:
        await engine.dispose()


async def _captured(store: PaymentStore, amount: int = 10000) -> str:
    payment_id = "pay_" + secrets.token_hex(12)
    await store.create(
        PaymentDraft(
            id=payment_id, owner="o", reference="r:1", description="", amount=amount,
            currency="SAR", capture_method="manual", payment_method="pm_card_ok",
            adapter="payment-provider",
        ),
        owner="o",
        key=payment_id,
    )  # fmt: skip
    await store.advance(payment_id, PaymentState.REQUIRES_CAPTURE, provider_id="pi_" + payment_id)
    return payment_id


async def test_a_refund_settled_concurrently_is_booked_once(
    store: tuple[PaymentStore, list[str]],
) -> None:
    payments, events = store
    payment_id = await _captured(payments)
    moves = await asyncio.gather(
        *(payments.advance(payment_id, PaymentState.CAPTURED, captured=10000) for _ in range(5))
    )
    assert sum(moved for _, moved in moves) == 1
    refund = await payments.reserve_refund(
        payment_id=payment_id, refund_id="rf_" + secrets.token_hex(12), amount=4000,
        reason="", owner="o", key="k",
    )  # fmt: skip
    # The API's answer and the webhook (and its duplicate) settle the same refund at once.
    results = await asyncio.gather(
        *(payments.settle_refund(refund.id, provider_id="re_1") for _ in range(5))
    )
    assert sum(moved for _, _, moved in results) == 1
    payment = await payments.get(payment_id)
    assert payment is not None
    assert (payment.amount_refunded, payment.amount_refund_pending) == (4000, 0)
    assert payment.state == PaymentState.PARTIALLY_REFUNDED
    assert events == ["payment.captured", "payment.refunded"]


async def test_one_key_is_claimed_once_and_bound_to_its_request(
    store: tuple[PaymentStore, list[str]],
) -> None:
    payments, _ = store

    async def claim(fingerprint: str = "f") -> str:
        try:
            await payments.claim(
                owner="o", key="same", operation="create", fingerprint=fingerprint, lease=30
            )
        except IdempotencyInProgress:
            return "in_progress"
        return "claimed"

    outcomes = await asyncio.gather(*(claim() for _ in range(6)))
    assert sorted(outcomes) == ["claimed"] + ["in_progress"] * 5
    with pytest.raises(IdempotencyConflict):
        await payments.claim(owner="o", key="same", operation="create", fingerprint="g", lease=30)
    await payments.finish(owner="o", key="same", status=201, body={"id": "x"})
    replay = await payments.claim(
        owner="o", key="same", operation="create", fingerprint="f", lease=30
    )
    assert replay.replay == (201, {"id": "x"})
    # Another caller's key of the same name is its own.
    theirs = await payments.claim(
        owner="p", key="same", operation="create", fingerprint="g", lease=30
    )
    assert theirs.replay is None
