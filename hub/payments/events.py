"""The domain events of payments, written through the transactional outbox.

:func:`emit` is the one place payments produce events. The store calls it inside the
transaction that changes the payment, so the event row commits with the change or not at all
(:func:`hub.events.outbox.enqueue`); the relay publishes it afterwards. Event ids are derived
from what happened (``payment.captured`` of a payment, ``payment.refunded`` of one refund), so
even a change applied twice could not enqueue its event twice; the key is the payment id, so
the events of one payment are published in order.

Types: ``payment.captured``, ``payment.refunded``, ``payment.failed``, ``payment.cancelled``,
``payment.expired``. The payload carries the payment's ``reference`` (e.g.
``visa-application:42``) so the service that asked for the payment can tie it back.
"""

from __future__ import annotations

import uuid
from typing import Any

from hub.db.payment_store import Payment, Refund
from hub.events.outbox import enqueue

__all__ = ["emit", "event_id", "event_payload"]

_NAMESPACE = uuid.UUID("6f1d0c0e-3a55-4c1b-9a53-7d1f3f0b8a11")


def event_id(event_type: str, payment: Payment, refund: Refund | None) -> str:
    """The event's id: the same change always gives the same id."""
    subject = refund.id if refund is not None else payment.id
    return str(uuid.uuid5(_NAMESPACE, f"{event_type}:{subject}"))


def event_payload(payment: Payment, refund: Refund | None) -> dict[str, Any]:
    """What consumers get: the payment as it stands after the change (and the refund)."""
    payload: dict[str, Any] = {
        "payment_id": payment.id,
        "reference": payment.reference,
        "owner": payment.owner,
        "state": payment.state.value,
        "amount": payment.amount,
        "currency": payment.currency,
        "amount_captured": payment.amount_captured,
        "amount_refunded": payment.amount_refunded,
        "failure_code": payment.failure_code,
    }
    if refund is not None:
        payload["refund"] = {"id": refund.id, "amount": refund.amount}
    return payload


async def emit(conn: Any, event_type: str, payment: Payment, refund: Refund | None) -> None:
    """Write one payment event to the outbox, in the caller's transaction."""
    await enqueue(
        conn,
        type=event_type,
        payload=event_payload(payment, refund),
        key=payment.id,
        event_id=event_id(event_type, payment, refund),
    )
