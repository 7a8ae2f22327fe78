"""The payment provider's webhooks: verified, deduplicated, and applied only forward.

A delivery must carry ``X-Provider-Timestamp`` (Unix seconds) and ``X-Provider-Signature``
(``v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`` with the adapter's webhook secret, several
``v1=`` values separated by commas while a secret is rotated). A bad or missing signature is
``400 invalid_webhook_signature``; a timestamp further than the tolerance from now (default
300 s) is ``400 stale_webhook``, so a captured delivery cannot be replayed later. Neither
changes anything.

Each event carries the payment intent as it stood when the event was made (and, for refunds,
the refund). Applying it moves the payment to that state only if that is forward in the graph;
an older event arriving late is recorded as ``stale`` and changes nothing, so order does not
matter. The receipt (the provider's event id) is written in the same transaction as the
change: a duplicate delivery answers ``duplicate`` and changes nothing. An event for a payment
the hub does not have is ``404 payment_not_found`` and not recorded, so the provider's retry
can still be taken once the payment exists.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from adapters.payments.provider import Intent
from hub.db.payment_store import PaymentStore, WebhookApplier
from hub.errors import (
    InvalidRequest,
    InvalidWebhookSignature,
    PaymentNotFound,
    StaleWebhook,
)
from hub.payments.service import state_of

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookOutcome",
    "WebhookReceiver",
    "verify_signature",
]

TIMESTAMP_HEADER: Final = "x-provider-timestamp"
SIGNATURE_HEADER: Final = "x-provider-signature"
DEFAULT_TOLERANCE: Final = 300.0


def verify_signature(
    *,
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    tolerance: float,
    now: float | None = None,
) -> None:
    """Refuse a delivery whose signature does not verify or whose timestamp is too far off."""
    if not timestamp or not signature:
        raise InvalidWebhookSignature("the delivery is not signed")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise InvalidWebhookSignature("the signed timestamp is malformed")
    expected = hmac.new(
        secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    given = [part.strip().removeprefix("v1=") for part in signature.split(",")]
    if not any(hmac.compare_digest(expected, value) for value in given if value):
        raise InvalidWebhookSignature("the signature does not match the body")
    # Checked after the signature: an attacker cannot learn the window from the answers.
    skew = abs((time.time() if now is None else now) - int(timestamp))
    if skew > tolerance:
        raise StaleWebhook(
            f"the delivery was signed {int(skew)} s away from now (tolerance {tolerance:g} s)"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookOutcome:
    """What became of one delivery: ``applied``, ``stale``, ``unknown_refund`` or ``duplicate``."""

    event_id: str
    outcome: str
    payment_id: str


def _intent(data: Any) -> Intent:
    try:
        return Intent.of(data)
    except TypeError as exc:
        raise InvalidRequest("the event's payment intent is malformed") from exc


def _parse(body: bytes) -> tuple[str, str, Intent, Mapping[str, Any] | None]:
    try:
        event = json.loads(body)
        event_id, kind, data = str(event["id"]), str(event["type"]), event["data"]
        obj = data["object"]
    except (ValueError, KeyError, TypeError):
        raise InvalidRequest("the body is not a provider event") from None
    if not isinstance(obj, dict) or not 1 <= len(event_id) <= 128:
        raise InvalidRequest("the body is not a provider event")
    refund: Mapping[str, Any] | None = None
    if obj.get("object") == "refund":
        refund, intent_data = obj, data.get("payment_intent")
    else:
        intent_data = obj
    if not isinstance(intent_data, dict) or intent_data.get("status") not in (
        "requires_capture",
        "processing",
        "succeeded",
        "canceled",
        "failed",
    ):
        raise InvalidRequest("the event carries no payment intent the hub understands")
    return event_id, kind, _intent(intent_data), refund


class WebhookReceiver:
    """Takes the deliveries of one hub's payment adapters."""

    def __init__(self, store: PaymentStore, secret_of: Callable[[str], tuple[str, float]]):
        self._store = store
        self._secret_of = secret_of  # adapter id → (webhook secret, tolerance in seconds)

    async def receive(
        self, adapter: str, headers: Mapping[str, str], body: bytes
    ) -> WebhookOutcome:
        secret, tolerance = self._secret_of(adapter)
        verify_signature(
            secret=secret,
            timestamp=headers.get(TIMESTAMP_HEADER),
            signature=headers.get(SIGNATURE_HEADER),
            body=body,
            tolerance=tolerance,
        )
        event_id, kind, intent, refund = _parse(body)
        payment = await self._store.get(intent.merchant_reference)
        if (
            payment is None
            or payment.adapter != adapter
            or (payment.provider_id is not None and payment.provider_id != intent.id)
        ):
            raise PaymentNotFound("the event is about a payment the hub does not have")

        async def apply(applier: WebhookApplier) -> str:
            moved = await applier.advance(
                payment.id,
                state_of(intent),
                provider_id=intent.id,
                captured=intent.amount_received or None,
                captured_at=_time(intent.captured_at),
                failure_code=intent.failure_code,
            )
            if refund is not None:
                refund_id = str(refund.get("merchant_reference", ""))
                if not await applier.refund_known(refund_id):
                    return "unknown_refund"  # made outside the hub: reconciliation reports it
                created = refund.get("created")
                booked = datetime.fromtimestamp(created, UTC) if isinstance(created, int) else None
                moved = (
                    await applier.settle_refund(
                        refund_id, provider_id=str(refund.get("id", "")), booked_at=booked
                    )
                    or moved
                )
            return "applied" if moved else "stale"

        outcome = await self._store.take_event(
            adapter=adapter, event_id=event_id, type=kind, payment_id=payment.id, apply=apply
        )
        return WebhookOutcome(event_id=event_id, outcome=outcome, payment_id=payment.id)


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None
