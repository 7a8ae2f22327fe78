"""The payments store: payments, refunds, idempotency records and webhook receipts.

Every change of a payment happens in one write transaction that locks the payment's row
(``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), checks the move
against the state graph (:mod:`hub.payments.states`), and hands each domain event it causes to
the event sink *inside that transaction*, so an event is written exactly when its change is.
A refund first reserves its amount with one conditional UPDATE (refused when the refunded and
pending amounts would exceed the capture), so concurrent refunds cannot overdraw a payment even
before the table's CHECK constraint would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db._store import Clock, Store, utcnow
from hub.db.payment_tables import IdempotencyRow, PaymentRow, RefundRow, WebhookReceiptRow
from hub.errors import (
    IdempotencyConflict,
    IdempotencyInProgress,
    InvalidPaymentState,
    PaymentNotFound,
    RefundExceedsCapture,
)
from hub.payments.states import REFUNDABLE, PaymentState, RefundState, advances, check

__all__ = [
    "Claim",
    "EventSink",
    "Payment",
    "PaymentDraft",
    "PaymentStore",
    "Refund",
    "WebhookApplier",
]

_PAYMENTS = cast(Table, PaymentRow.__table__)
_REFUNDS = cast(Table, RefundRow.__table__)
_KEYS = cast(Table, IdempotencyRow.__table__)
_RECEIPTS = cast(Table, WebhookReceiptRow.__table__)
_CLAIM_TRIES = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Payment:
    """A payment as stored."""

    id: str
    owner: str
    reference: str | None
    description: str
    amount: int
    currency: str
    capture_method: str
    payment_method: str
    state: PaymentState
    adapter: str
    provider_id: str | None
    amount_captured: int
    amount_refunded: int
    amount_refund_pending: int
    failure_code: str | None
    created_at: datetime
    updated_at: datetime
    captured_at: datetime | None

    @property
    def refundable(self) -> int:
        """What is left to refund (pending refunds count as taken)."""
        return self.amount_captured - self.amount_refunded - self.amount_refund_pending


@dataclass(frozen=True, slots=True, kw_only=True)
class Refund:
    """A refund as stored."""

    id: str
    payment_id: str
    amount: int
    currency: str
    state: RefundState
    reason: str
    provider_id: str | None
    created_at: datetime
    updated_at: datetime
    booked_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentDraft:
    """What a new payment is made of."""

    id: str
    owner: str
    reference: str | None
    description: str
    amount: int
    currency: str
    capture_method: str
    payment_method: str
    adapter: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """A claimed idempotency key: a stored answer to replay, or the work to (re)do."""

    replay: tuple[int, dict[str, Any]] | None = None
    payment_id: str | None = None
    refund_id: str | None = None


#: Writes one domain event inside the transaction of the change that caused it.
EventSink = Callable[[AsyncConnection, str, Payment, Refund | None], Awaitable[None]]


class _Race(Exception):
    """Another replica inserted the same key first: claim again."""


def _payment(row: Any) -> Payment:
    data = dict(row._mapping)
    data["state"] = PaymentState(data["state"])
    return Payment(**data)


def _refund(row: Any) -> Refund:
    data = dict(row._mapping)
    data["state"] = RefundState(data["state"])
    return Refund(**data)


class PaymentStore(Store):
    """Reads and changes the payments tables; ``events`` receives each state change's event."""

    def __init__(self, engine: Any, *, events: EventSink, clock: Clock = utcnow) -> None:
        super().__init__(engine, clock=clock)
        self._events = events

    # -- idempotency keys ----------------------------------------------------------------

    async def claim(
        self, *, owner: str, key: str, operation: str, fingerprint: str, lease: float
    ) -> Claim:
        """Take ``key`` for this request, or refuse: a stored answer, a conflict, in progress.

        A key whose first request died (its lease ran out without an answer) is taken over,
        with the payment or refund that request had already made, so the work resumes.
        """
        for _ in range(_CLAIM_TRIES):
            try:
                return await self._claim(owner, key, operation, fingerprint, lease)
            except _Race:
                continue
        raise IdempotencyInProgress(
            "another request with this Idempotency-Key is being served",
            headers={"Retry-After": "1"},
        )

    async def _claim(
        self, owner: str, key: str, operation: str, fingerprint: str, lease: float
    ) -> Claim:
        now = self._clock()
        async with self._write() as conn:
            row = (
                await conn.execute(
                    select(_KEYS)
                    .where(IdempotencyRow.owner == owner, IdempotencyRow.key == key)
                    .with_for_update()
                )
            ).first()
            if row is None:
                try:
                    await conn.execute(
                        insert(_KEYS).values(
                            owner=owner,
                            key=key,
                            operation=operation,
                            fingerprint=fingerprint,
                            state="in_progress",
                            locked_until=now + timedelta(seconds=lease),
                            created_at=now,
                        )
                    )
                except IntegrityError as exc:
                    raise _Race from exc
                return Claim()
            if row.operation != operation or row.fingerprint != fingerprint:
                raise IdempotencyConflict(
                    "this Idempotency-Key was used for a different request",
                    extra={"first_used_for": row.operation},
                )
            if row.state == "done":
                return Claim(replay=(int(row.status), dict(row.response or {})))
            if row.locked_until > now:
                raise IdempotencyInProgress(
                    "the first request with this Idempotency-Key is still being served",
                    headers={"Retry-After": "1"},
                )
            await conn.execute(
                update(_KEYS)
                .where(IdempotencyRow.owner == owner, IdempotencyRow.key == key)
                .values(locked_until=now + timedelta(seconds=lease))
            )
            return Claim(payment_id=row.payment_id, refund_id=row.refund_id)

    async def finish(self, *, owner: str, key: str, status: int, body: dict[str, Any]) -> None:
        """Store the answer: from now on the key replays it."""
        async with self._write() as conn:
            await conn.execute(
                update(_KEYS)
                .where(IdempotencyRow.owner == owner, IdempotencyRow.key == key)
                .values(state="done", status=status, response=body)
            )

    async def release(self, *, owner: str, key: str) -> None:
        """Let the next request with ``key`` take over at once (the outcome is not known yet)."""
        async with self._write() as conn:
            await conn.execute(
                update(_KEYS)
                .where(IdempotencyRow.owner == owner, IdempotencyRow.key == key)
                .values(locked_until=self._clock())
            )

    # -- payments ------------------------------------------------------------------------

    async def create(self, draft: PaymentDraft, *, owner: str, key: str) -> Payment:
        """Insert a payment in ``created`` and tie it to the key that made it."""
        now = self._clock()
        async with self._write() as conn:
            await conn.execute(
                insert(_PAYMENTS).values(
                    **{name: getattr(draft, name) for name in PaymentDraft.__dataclass_fields__},
                    state=PaymentState.CREATED.value,
                    amount_captured=0,
                    amount_refunded=0,
                    amount_refund_pending=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            await conn.execute(
                update(_KEYS)
                .where(IdempotencyRow.owner == owner, IdempotencyRow.key == key)
                .values(payment_id=draft.id)
            )
            return await self._locked(conn, draft.id)

    async def get(self, payment_id: str) -> Payment | None:
        async with self._read() as conn:
            row = (await conn.execute(select(_PAYMENTS).where(PaymentRow.id == payment_id))).first()
        return _payment(row) if row is not None else None

    async def _locked(self, conn: AsyncConnection, payment_id: str) -> Payment:
        row = (
            await conn.execute(
                select(_PAYMENTS).where(PaymentRow.id == payment_id).with_for_update()
            )
        ).first()
        if row is None:
            raise PaymentNotFound(f"no payment {payment_id}")
        return _payment(row)

    async def advance(
        self,
        payment_id: str,
        target: PaymentState,
        *,
        provider_id: str | None = None,
        captured: int | None = None,
        captured_at: datetime | None = None,
        failure_code: str | None = None,
    ) -> tuple[Payment, bool]:
        """Move the payment to ``target`` if that is forward; stale news changes nothing."""
        async with self._write() as conn:
            return await self._advance(
                conn,
                payment_id,
                target,
                provider_id=provider_id,
                captured=captured,
                captured_at=captured_at,
                failure_code=failure_code,
            )

    async def _advance(
        self,
        conn: AsyncConnection,
        payment_id: str,
        target: PaymentState,
        *,
        provider_id: str | None,
        captured: int | None,
        captured_at: datetime | None,
        failure_code: str | None,
    ) -> tuple[Payment, bool]:
        payment = await self._locked(conn, payment_id)
        values: dict[str, Any] = {}
        if provider_id is not None and payment.provider_id is None:
            values["provider_id"] = provider_id
        # Refund states follow booked refunds (settle_refund), never news of a state alone.
        moved = advances(payment.state, target) and target not in _BY_REFUNDS_ONLY
        if moved:
            check(payment.state, target)
            values["state"] = target.value
            if target == PaymentState.CAPTURED:
                values["amount_captured"] = captured if captured is not None else payment.amount
                values["captured_at"] = captured_at or self._clock()
            if failure_code is not None:
                values["failure_code"] = failure_code
        if not values:
            return payment, False
        values["updated_at"] = self._clock()
        await conn.execute(update(_PAYMENTS).where(PaymentRow.id == payment_id).values(**values))
        payment = await self._locked(conn, payment_id)
        if moved and target in _EVENTS:
            await self._events(conn, _EVENTS[target], payment, None)
        return payment, moved

    # -- refunds -------------------------------------------------------------------------

    async def reserve_refund(
        self, *, payment_id: str, refund_id: str, amount: int, reason: str, owner: str, key: str
    ) -> Refund:
        """Set ``amount`` aside for a new pending refund, or refuse when it is not there."""
        now = self._clock()
        pending = PaymentRow.amount_refund_pending
        async with self._write() as conn:
            result = await conn.execute(
                update(_PAYMENTS)
                .where(
                    PaymentRow.id == payment_id,
                    PaymentRow.state.in_([state.value for state in REFUNDABLE]),
                    PaymentRow.amount_refunded + pending + amount <= PaymentRow.amount_captured,
                )
                .values(amount_refund_pending=pending + amount, updated_at=now)
            )
            if not result.rowcount:
                payment = await self._locked(conn, payment_id)
                if payment.state not in REFUNDABLE:
                    raise InvalidPaymentState(
                        f"a payment that is {payment.state.value} cannot be refunded",
                        extra={"state": payment.state.value},
                    )
                raise RefundExceedsCapture(
                    f"only {payment.refundable} {payment.currency} (minor units) is left to refund",
                    extra={"refundable": payment.refundable, "currency": payment.currency},
                )
            payment = await self._locked(conn, payment_id)
            await conn.execute(
                insert(_REFUNDS).values(
                    id=refund_id,
                    payment_id=payment_id,
                    amount=amount,
                    currency=payment.currency,
                    state=RefundState.PENDING.value,
                    reason=reason,
                    created_at=now,
                    updated_at=now,
                )
            )
            await conn.execute(
                update(_KEYS)
                .where(IdempotencyRow.owner == owner, IdempotencyRow.key == key)
                .values(payment_id=payment_id, refund_id=refund_id)
            )
            return await self._refund_row(conn, refund_id)

    async def _refund_row(self, conn: AsyncConnection, refund_id: str) -> Refund:
        row = (await conn.execute(select(_REFUNDS).where(RefundRow.id == refund_id))).first()
        if row is None:
            raise PaymentNotFound(f"no refund {refund_id}")
        return _refund(row)

    async def settle_refund(
        self, refund_id: str, *, provider_id: str, booked_at: datetime | None = None
    ) -> tuple[Payment, Refund, bool]:
        """The provider booked a pending refund: move its amount from pending to refunded."""
        async with self._write() as conn:
            return await self._settle_refund(conn, refund_id, provider_id, booked_at)

    async def _settle_refund(
        self, conn: AsyncConnection, refund_id: str, provider_id: str, booked_at: datetime | None
    ) -> tuple[Payment, Refund, bool]:
        payment = await self._locked(conn, (await self._refund_row(conn, refund_id)).payment_id)
        # Read again under the payment's lock: a concurrent settle (the API's answer and the
        # webhook) may have booked it since the first read.
        refund = await self._refund_row(conn, refund_id)
        if refund.state != RefundState.PENDING:
            return payment, refund, False
        now = self._clock()
        refunded = payment.amount_refunded + refund.amount
        target = (
            PaymentState.REFUNDED
            if refunded == payment.amount_captured
            else PaymentState.PARTIALLY_REFUNDED
        )
        check(payment.state, target)
        await conn.execute(
            update(_REFUNDS)
            .where(RefundRow.id == refund_id)
            .values(
                state=RefundState.SUCCEEDED.value,
                provider_id=provider_id,
                booked_at=booked_at or now,
                updated_at=now,
            )
        )
        await conn.execute(
            update(_PAYMENTS)
            .where(PaymentRow.id == payment.id)
            .values(
                amount_refunded=refunded,
                amount_refund_pending=PaymentRow.amount_refund_pending - refund.amount,
                state=target.value,
                updated_at=now,
            )
        )
        payment = await self._locked(conn, payment.id)
        refund = await self._refund_row(conn, refund_id)
        await self._events(conn, "payment.refunded", payment, refund)
        return payment, refund, True

    async def fail_refund(self, refund_id: str) -> Refund:
        """The provider refused a pending refund: give its amount back."""
        now = self._clock()
        async with self._write() as conn:
            await self._locked(conn, (await self._refund_row(conn, refund_id)).payment_id)
            refund = await self._refund_row(conn, refund_id)  # as it stands under the lock
            if refund.state != RefundState.PENDING:
                return refund
            await conn.execute(
                update(_REFUNDS)
                .where(RefundRow.id == refund_id)
                .values(state=RefundState.FAILED.value, updated_at=now)
            )
            await conn.execute(
                update(_PAYMENTS)
                .where(PaymentRow.id == refund.payment_id)
                .values(
                    amount_refund_pending=PaymentRow.amount_refund_pending - refund.amount,
                    updated_at=now,
                )
            )
            return await self._refund_row(conn, refund_id)

    async def get_refund(self, refund_id: str) -> Refund | None:
        async with self._read() as conn:
            row = (await conn.execute(select(_REFUNDS).where(RefundRow.id == refund_id))).first()
        return _refund(row) if row is not None else None

    async def refunds(self, payment_id: str) -> list[Refund]:
        async with self._read() as conn:
            rows = await conn.execute(
                select(_REFUNDS)
                .where(RefundRow.payment_id == payment_id)
                .order_by(RefundRow.created_at, RefundRow.id)
            )
            return [_refund(row) for row in rows]

    # -- webhooks ------------------------------------------------------------------------

    async def take_event(
        self,
        *,
        adapter: str,
        event_id: str,
        type: str,
        payment_id: str,
        apply: Callable[[WebhookApplier], Awaitable[str]],
    ) -> str:
        """Apply one provider event exactly once: its outcome, or ``duplicate``.

        The receipt and the changes the event makes commit together, so an event is either
        applied and recorded or neither (and its redelivery is then applied).
        """
        try:
            return await self._take_event(adapter, event_id, type, payment_id, apply)
        except _Race:
            return "duplicate"  # a concurrent delivery of the same event won; ours rolled back

    async def _take_event(
        self,
        adapter: str,
        event_id: str,
        type: str,
        payment_id: str,
        apply: Callable[[WebhookApplier], Awaitable[str]],
    ) -> str:
        async with self._write() as conn:
            seen = (
                await conn.execute(
                    select(WebhookReceiptRow.outcome).where(
                        WebhookReceiptRow.adapter == adapter, WebhookReceiptRow.event_id == event_id
                    )
                )
            ).first()
            if seen is not None:
                return "duplicate"
            await self._locked(conn, payment_id)
            outcome = await apply(WebhookApplier(self, conn))
            try:
                await conn.execute(
                    insert(_RECEIPTS).values(
                        adapter=adapter,
                        event_id=event_id,
                        type=type[:64],
                        payment_id=payment_id,
                        outcome=outcome,
                        received_at=self._clock(),
                    )
                )
            except IntegrityError as exc:
                raise _Race from exc
        return outcome

    async def receipts(self, adapter: str) -> list[tuple[str, str, str]]:
        """``(event_id, type, outcome)`` of every event taken from ``adapter``."""
        async with self._read() as conn:
            rows = await conn.execute(
                select(
                    WebhookReceiptRow.event_id, WebhookReceiptRow.type, WebhookReceiptRow.outcome
                ).where(WebhookReceiptRow.adapter == adapter)
            )
            return [(row.event_id, row.type, row.outcome) for row in rows]

    # -- reconciliation ------------------------------------------------------------------

    async def booked_between(
        self, start: datetime, end: datetime
    ) -> tuple[list[Payment], list[tuple[Refund, Payment]]]:
        """Payments captured and refunds booked in ``[start, end)``."""
        async with self._read() as conn:
            payments = [
                _payment(row)
                for row in await conn.execute(
                    select(_PAYMENTS).where(
                        PaymentRow.captured_at >= start, PaymentRow.captured_at < end
                    )
                )
            ]
            rows = await conn.execute(
                select(_REFUNDS, _PAYMENTS.c.id.label("p_id"))
                .join(_PAYMENTS, PaymentRow.id == RefundRow.payment_id)
                .where(RefundRow.booked_at >= start, RefundRow.booked_at < end)
            )
            refunds = []
            for row in rows:
                data = {k: v for k, v in row._mapping.items() if k != "p_id"}
                data["state"] = RefundState(data["state"])
                refunds.append(Refund(**data))
        owners = {p.id: p for p in await self._many([r.payment_id for r in refunds])}
        return payments, [(refund, owners[refund.payment_id]) for refund in refunds]

    async def _many(self, ids: Sequence[str]) -> list[Payment]:
        if not ids:
            return []
        async with self._read() as conn:
            rows = await conn.execute(select(_PAYMENTS).where(PaymentRow.id.in_(set(ids))))
            return [_payment(row) for row in rows]

    async def by_ids(self, ids: Sequence[str]) -> list[Payment]:
        """The payments with these ids (unknown ids are left out)."""
        return await self._many(ids)


class WebhookApplier:
    """The changes a webhook may make, inside the webhook's own transaction."""

    def __init__(self, store: PaymentStore, conn: AsyncConnection) -> None:
        self._store = store
        self._conn = conn

    async def advance(
        self,
        payment_id: str,
        target: PaymentState,
        *,
        provider_id: str | None,
        captured: int | None,
        captured_at: datetime | None,
        failure_code: str | None,
    ) -> bool:
        _, moved = await self._store._advance(
            self._conn,
            payment_id,
            target,
            provider_id=provider_id,
            captured=captured,
            captured_at=captured_at,
            failure_code=failure_code,
        )
        return moved

    async def settle_refund(
        self, refund_id: str, *, provider_id: str, booked_at: datetime | None
    ) -> bool:
        _, _, moved = await self._store._settle_refund(
            self._conn, refund_id, provider_id, booked_at
        )
        return moved

    async def refund_known(self, refund_id: str) -> bool:
        row = (
            await self._conn.execute(select(RefundRow.id).where(RefundRow.id == refund_id))
        ).first()
        return row is not None


_BY_REFUNDS_ONLY = frozenset({PaymentState.PARTIALLY_REFUNDED, PaymentState.REFUNDED})

#: The event of each state a change may reach (refunds have their own: ``payment.refunded``).
_EVENTS = {
    PaymentState.CAPTURED: "payment.captured",
    PaymentState.FAILED: "payment.failed",
    PaymentState.CANCELLED: "payment.cancelled",
    PaymentState.EXPIRED: "payment.expired",
}
