"""The sandbox provider's book: payment intents, refunds, idempotency keys and settlement lines.

Pure state, no HTTP: the app calls it, and every change appends the webhook events it causes
to ``outbox`` (delivered by :mod:`.webhooks`). Amounts are whole minor units (halalas, cents).

Intents follow the provider's own states: ``requires_capture`` (authorised, manual capture),
``processing`` (a bank transfer, settled a moment later), ``succeeded`` (captured),
``canceled``, ``failed`` (declined). Payment methods: ``pm_card_ok`` authorises,
``pm_card_declined`` fails, ``pm_bank_transfer`` is processing and then succeeds by itself.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

__all__ = ["Book", "BookError", "Stored"]

CURRENCIES: Final = frozenset({"SAR", "USD", "EUR", "AED"})
METHODS: Final = frozenset({"pm_card_ok", "pm_card_declined", "pm_bank_transfer"})
_MAX_AMOUNT = 10**12


class BookError(Exception):
    """A request the provider refuses: ``status``, an error ``code`` and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


@dataclass(frozen=True, slots=True)
class Stored:
    """The answer recorded under an idempotency key, and what it was for."""

    fingerprint: str
    status: int
    body: dict[str, Any]


@dataclass(slots=True)
class _Line:
    """One settlement line: a capture or a refund, booked on a day."""

    kind: str
    payment_intent: str
    merchant_reference: str
    amount: int
    currency: str
    at: datetime
    refund: str | None = None
    refund_reference: str | None = None


def _now_iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class Book:
    """Everything the provider knows; ``clock`` is the time of bookings."""

    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, Stored] = field(default_factory=dict)
    lines: list[_Line] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    captures: int = 0  # capture bookings: a test asserts each payment was captured once
    #: How long an authorisation holds before it lapses (real card schemes: about seven days).
    authorisation_seconds: float = 7 * 86400

    # -- idempotency ---------------------------------------------------------------------

    @staticmethod
    def fingerprint(method: str, path: str, body: bytes) -> str:
        return hashlib.sha256(f"{method} {path}\n".encode() + body).hexdigest()

    def replay(self, key: str | None, fingerprint: str) -> Stored | None:
        """The stored answer for ``key``; 409 when the key was used for another request."""
        if key is None:
            return None
        stored = self.keys.get(key)
        if stored is None:
            return None
        if stored.fingerprint != fingerprint:
            raise BookError(
                409, "idempotency_conflict", "this Idempotency-Key was used for another request"
            )
        return stored

    def remember(
        self, key: str | None, fingerprint: str, status: int, body: dict[str, Any]
    ) -> None:
        if key is not None:
            self.keys[key] = Stored(fingerprint, status, body)

    # -- intents -------------------------------------------------------------------------

    def create_intent(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise BookError(400, "invalid_request", "the body must be a JSON object")
        amount = body.get("amount")
        currency = body.get("currency")
        method = body.get("payment_method", "pm_card_ok")
        capture = body.get("capture_method", "manual")
        reference = body.get("merchant_reference")
        if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount < _MAX_AMOUNT:
            raise BookError(400, "invalid_amount", "amount must be a positive whole number")
        if currency not in CURRENCIES:
            raise BookError(
                400, "invalid_currency", f"currency must be one of {sorted(CURRENCIES)}"
            )
        if method not in METHODS:
            raise BookError(400, "invalid_payment_method", f"unknown payment method {method!r}")
        if capture not in ("manual", "automatic"):
            raise BookError(400, "invalid_request", "capture_method is manual or automatic")
        if not isinstance(reference, str) or not 1 <= len(reference) <= 64:
            raise BookError(400, "invalid_request", "merchant_reference is required")
        now = self.clock()
        intent: dict[str, Any] = {
            "id": "pi_" + secrets.token_hex(8),
            "object": "payment_intent",
            "amount": amount,
            "currency": currency,
            "status": "requires_capture",
            "capture_method": capture,
            "payment_method": method,
            "amount_capturable": amount,
            "amount_received": 0,
            "amount_refunded": 0,
            "merchant_reference": reference,
            "description": str(body.get("description", ""))[:200],
            "failure_code": None,
            "cancellation_reason": None,
            "created": int(now.timestamp()),
            "captured_at": None,
        }
        self.intents[intent["id"]] = intent
        if method == "pm_card_declined":
            intent.update(status="failed", amount_capturable=0, failure_code="card_declined")
            self._event("payment_intent.payment_failed", intent)
        elif method == "pm_bank_transfer":
            intent.update(status="processing", amount_capturable=0)
            self._event("payment_intent.processing", intent)
        elif capture == "automatic":
            self._capture(intent, amount, now)
        else:
            self._event("payment_intent.amount_capturable_updated", intent)
        return dict(intent)

    def intent(self, intent_id: str) -> dict[str, Any]:
        intent = self.intents.get(intent_id)
        if intent is None:
            raise BookError(404, "not_found", "no such payment intent")
        return intent

    def find_intents(self, reference: str) -> list[dict[str, Any]]:
        return [dict(i) for i in self.intents.values() if i["merchant_reference"] == reference]

    def capture(self, intent_id: str, body: Any) -> dict[str, Any]:
        intent = self.intent(intent_id)
        if intent["status"] != "requires_capture":
            raise BookError(409, "invalid_state", f"the intent is {intent['status']}")
        amount = intent["amount"]
        if isinstance(body, dict) and body.get("amount_to_capture") is not None:
            amount = body["amount_to_capture"]
            if not isinstance(amount, int) or isinstance(amount, bool):
                raise BookError(400, "invalid_amount", "amount_to_capture must be a whole number")
            if not 0 < amount <= intent["amount_capturable"]:
                raise BookError(
                    400, "invalid_amount", "amount_to_capture exceeds the authorisation"
                )
        self._capture(intent, amount, self.clock())
        return dict(intent)

    def _capture(self, intent: dict[str, Any], amount: int, now: datetime) -> None:
        intent.update(
            status="succeeded",
            amount_received=amount,
            amount_capturable=0,
            captured_at=_now_iso(now),
        )
        self.captures += 1
        self.lines.append(
            _Line(
                "capture",
                intent["id"],
                intent["merchant_reference"],
                amount,
                intent["currency"],
                now,
            )
        )
        self._event("payment_intent.succeeded", intent)

    def settle_processing(self) -> None:
        """Bank transfers in ``processing`` succeed (called a moment after they were made)."""
        for intent in self.intents.values():
            if intent["status"] == "processing":
                self._capture(intent, intent["amount"], self.clock())

    def cancel(self, intent_id: str) -> dict[str, Any]:
        intent = self.intent(intent_id)
        if intent["status"] not in ("requires_capture", "processing"):
            raise BookError(409, "invalid_state", f"the intent is {intent['status']}")
        intent.update(
            status="canceled", amount_capturable=0, cancellation_reason="requested_by_customer"
        )
        self._event("payment_intent.canceled", intent)
        return dict(intent)

    def expire_lapsed(self, *, older_than: float | None = None) -> list[str]:
        """Lapse the authorisations held longer than ``older_than`` seconds (default: the term).

        A lapsed intent is cancelled with ``cancellation_reason: "automatic"``, as card
        providers report an authorisation that ran out; its ``payment_intent.canceled`` event
        goes out like any other.
        """
        term = self.authorisation_seconds if older_than is None else older_than
        cutoff = self.clock().timestamp() - term
        lapsed = []
        for intent in self.intents.values():
            if intent["status"] == "requires_capture" and intent["created"] <= cutoff:
                intent.update(
                    status="canceled", amount_capturable=0, cancellation_reason="automatic"
                )
                self._event("payment_intent.canceled", intent)
                lapsed.append(intent["id"])
        return lapsed

    # -- refunds -------------------------------------------------------------------------

    def refund(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise BookError(400, "invalid_request", "the body must be a JSON object")
        intent = self.intent(str(body.get("payment_intent", "")))
        amount = body.get("amount")
        reference = body.get("merchant_reference")
        if intent["status"] != "succeeded":
            raise BookError(409, "invalid_state", f"the intent is {intent['status']}")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise BookError(400, "invalid_amount", "amount must be a positive whole number")
        if amount > intent["amount_received"] - intent["amount_refunded"]:
            raise BookError(400, "amount_too_large", "the refund exceeds what is left to refund")
        if not isinstance(reference, str) or not 1 <= len(reference) <= 64:
            raise BookError(400, "invalid_request", "merchant_reference is required")
        now = self.clock()
        refund = {
            "id": "re_" + secrets.token_hex(8),
            "object": "refund",
            "payment_intent": intent["id"],
            "amount": amount,
            "currency": intent["currency"],
            "status": "succeeded",
            "merchant_reference": reference,
            "created": int(time.time()),
        }
        self.refunds[refund["id"]] = refund
        intent["amount_refunded"] += amount
        self.lines.append(
            _Line("refund", intent["id"], intent["merchant_reference"], amount, intent["currency"],
                  now, refund=refund["id"], refund_reference=reference)
        )  # fmt: skip
        self._event("refund.succeeded", refund, intent=intent)
        return dict(refund)

    def find_refunds(self, reference: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.refunds.values() if r["merchant_reference"] == reference]

    # -- settlement ----------------------------------------------------------------------

    def settlement(self, day: str | None, *, disagree: bool) -> list[dict[str, Any]]:
        """The ledger's lines of ``day`` (``YYYY-MM-DD``, UTC; all days when ``None``)."""
        lines: list[dict[str, Any]] = [
            {
                "type": line.kind,
                "payment_intent": line.payment_intent,
                "refund": line.refund,
                "refund_reference": line.refund_reference,
                "merchant_reference": line.merchant_reference,
                "amount": line.amount,
                "currency": line.currency,
                "booked_at": _now_iso(line.at),
            }
            for line in self.lines
            if day is None or line.at.strftime("%Y-%m-%d") == day
        ]
        if disagree:
            lines = lines[1:]  # a line the provider "forgot"
            if lines:
                lines[0] = {**lines[0], "amount": lines[0]["amount"] + 100}
            if len(lines) > 1:
                other = "USD" if lines[1]["currency"] != "USD" else "EUR"
                lines[1] = {**lines[1], "currency": other}
            lines.append(
                {
                    "type": "capture",
                    "payment_intent": "pi_phantom",
                    "refund": None,
                    "refund_reference": None,
                    "merchant_reference": "pay_unknown_to_anyone",
                    "amount": 4200,
                    "currency": "SAR",
                    "booked_at": _now_iso(self.clock()),
                }
            )
        return lines

    # -- events --------------------------------------------------------------------------

    def _event(
        self, kind: str, obj: dict[str, Any], *, intent: dict[str, Any] | None = None
    ) -> None:
        data: dict[str, Any] = {"object": dict(obj)}
        if intent is not None:
            data["payment_intent"] = dict(intent)
        self.outbox.append(
            {
                "id": "evt_" + secrets.token_hex(10),
                "type": kind,
                "created": int(time.time()),
                "data": data,
            }
        )


def canonical(body: dict[str, Any]) -> bytes:
    """The JSON bytes an event is sent (and signed) as."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
