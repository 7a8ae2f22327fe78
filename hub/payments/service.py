"""The payments API's logic: create, capture, cancel, refund and read, with idempotency keys.

Each change runs under the caller's ``Idempotency-Key`` (:meth:`PaymentStore.claim`): the same
key with the same request answers the stored result, with another request ``409
idempotency_conflict``, while the first is still running ``409 idempotency_in_progress``. The
payment (or refund) is written before the provider is called, so the provider's own keys can
be derived from the hub's ids and a retry resumes the same payment. An answer is stored for
good once it is known: success, and refusals that will not change (a declined card is a
``failed`` payment; a refund beyond the capture a 409). When the provider's outcome is not known
(it timed out even after the adapter asked for the state) nothing is stored: the caller retries
with the same key and the hub takes up the same payment again.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from adapters.base import CallContext
from adapters.payments.provider import (
    CancelRequest,
    CaptureRequest,
    Intent,
    IntentQuery,
    IntentRequest,
    RefundRequest,
)
from adapters.payments.provider import Refund as ProviderRefund
from hub.adapters.registry import AdapterRegistry
from hub.db.payment_store import Claim, Payment, PaymentDraft, PaymentStore, Refund
from hub.errors import (
    AdapterUnavailable,
    HubError,
    InvalidPaymentState,
    InvalidRequest,
    PaymentNotFound,
    PaymentRefused,
)
from hub.payments.states import PaymentState, check

__all__ = ["Answer", "Payments", "payment_json", "refund_json", "state_of"]

_STATUS: Final[Mapping[str, PaymentState]] = {
    "requires_capture": PaymentState.REQUIRES_CAPTURE,
    "processing": PaymentState.PENDING,
    "succeeded": PaymentState.CAPTURED,
    "canceled": PaymentState.CANCELLED,
    "failed": PaymentState.FAILED,
}


def state_of(intent: Intent) -> PaymentState:
    """The hub's state for the provider's intent status.

    A cancellation the provider made itself (``automatic``: the authorisation lapsed before
    anyone captured it) is ``expired``, not ``cancelled``: nobody chose it.
    """
    if intent.status == "canceled" and intent.cancellation_reason == "automatic":
        return PaymentState.EXPIRED
    return _STATUS[intent.status]


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def refund_json(refund: Refund) -> dict[str, Any]:
    """A refund as the API shows it."""
    return {
        "id": refund.id,
        "payment_id": refund.payment_id,
        "amount": refund.amount,
        "currency": refund.currency,
        "state": refund.state.value,
        "reason": refund.reason,
        "created_at": _iso(refund.created_at),
        "booked_at": _iso(refund.booked_at),
    }


def payment_json(payment: Payment, refunds: list[Refund] | None = None) -> dict[str, Any]:
    """A payment as the API shows it."""
    body: dict[str, Any] = {
        "id": payment.id,
        "state": payment.state.value,
        "amount": payment.amount,
        "currency": payment.currency,
        "amount_captured": payment.amount_captured,
        "amount_refunded": payment.amount_refunded,
        "amount_refund_pending": payment.amount_refund_pending,
        "amount_refundable": payment.refundable,
        "reference": payment.reference,
        "description": payment.description,
        "capture_method": payment.capture_method,
        "payment_method": payment.payment_method,
        "failure_code": payment.failure_code,
        "created_at": _iso(payment.created_at),
        "updated_at": _iso(payment.updated_at),
        "captured_at": _iso(payment.captured_at),
    }
    if refunds is not None:
        body["refunds"] = [refund_json(refund) for refund in refunds]
    return body


def fingerprint(operation: str, body: Mapping[str, Any]) -> str:
    """The request's identity under a key: the operation and its canonical JSON body."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{operation}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What the API answers: a status and JSON body; ``replayed`` when it was stored."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


def stored_problem(error: HubError) -> dict[str, Any]:
    """A refusal as kept under its key (replayed with the replay's own request id)."""
    return {
        "problem": {
            "code": error.code,
            "title": error.title,
            "detail": error.detail,
            "extra": {k: v for k, v in error.extra.items() if not k.startswith("hub_")},
        }
    }


Work = Callable[[Claim], Awaitable[tuple[int, dict[str, Any]]]]


class Payments:
    """The payments API over the store and the payment adapters."""

    def __init__(
        self, store: PaymentStore, adapters: AdapterRegistry, *, lease_seconds: float = 30.0
    ) -> None:
        self.store = store
        self._adapters = adapters
        self._lease = lease_seconds

    def adapter(self, name: str) -> Any:
        """The payment adapter ``name`` (503 ``adapter_unavailable`` when it is not built)."""
        adapter = self._adapters.get(name).require()
        if "create_intent" not in adapter.operations:
            raise AdapterUnavailable(f"{name} is not a payment adapter")
        return adapter

    async def _keyed(
        self, *, owner: str, key: str, operation: str, body: Mapping[str, Any], work: Work
    ) -> Answer:
        claim = await self.store.claim(
            owner=owner,
            key=key,
            operation=operation,
            fingerprint=fingerprint(operation, body),
            lease=self._lease,
        )
        if claim.replay is not None:
            status, stored = claim.replay
            return Answer(status=status, body=stored, replayed=True)
        try:
            status, answer = await work(claim)
        except HubError as error:
            if error.status >= 500:
                # Outcome unknown or the hub unwell: the same key may try again at once.
                await self.store.release(owner=owner, key=key)
            else:
                await self.store.finish(
                    owner=owner, key=key, status=error.status, body=stored_problem(error)
                )
            raise
        await self.store.finish(owner=owner, key=key, status=status, body=answer)
        return Answer(status=status, body=answer)

    async def _owned(self, owner: str, payment_id: str) -> Payment:
        payment = await self.store.get(payment_id)
        if payment is None or payment.owner != owner:
            # Another caller's payment is not even acknowledged.
            raise PaymentNotFound(f"no payment {payment_id}")
        return payment

    # -- create --------------------------------------------------------------------------

    async def create(
        self,
        *,
        owner: str,
        key: str,
        adapter: str,
        body: Mapping[str, Any],
        context: CallContext,
    ) -> Answer:
        """A new payment: stored, then authorised (or captured at once) by the provider."""

        async def work(claim: Claim) -> tuple[int, dict[str, Any]]:
            payment = await self.store.get(claim.payment_id) if claim.payment_id else None
            if payment is None:
                draft = PaymentDraft(
                    id="pay_" + secrets.token_hex(12),
                    owner=owner,
                    reference=body.get("reference"),
                    description=str(body.get("description", "")),
                    amount=int(body["amount"]),
                    currency=str(body["currency"]),
                    capture_method=str(body.get("capture_method", "manual")),
                    payment_method=str(body.get("payment_method", "pm_card_ok")),
                    adapter=adapter,
                )
                payment = await self.store.create(draft, owner=owner, key=key)
            if payment.state == PaymentState.CREATED:
                payment = await self._authorise(payment, context)
            return 201, payment_json(payment, [])

        return await self._keyed(owner=owner, key=key, operation="create", body=body, work=work)

    async def _authorise(self, payment: Payment, context: CallContext) -> Payment:
        provider = self.adapter(payment.adapter)
        request = IntentRequest(
            merchant_reference=payment.id,
            amount=payment.amount,
            currency=payment.currency,
            payment_method=payment.payment_method,
            capture_method="automatic" if payment.capture_method == "automatic" else "manual",
            description=payment.description,
        )
        try:
            intent = await provider.operations["create_intent"].call(provider, request, context)
        except PaymentRefused as refused:
            code = str(refused.extra.get("provider_code", "refused"))
            await self.store.advance(payment.id, PaymentState.FAILED, failure_code=code)
            raise
        return await self._apply(payment, intent)

    async def _apply(self, payment: Payment, intent: Intent) -> Payment:
        updated, _ = await self.store.advance(
            payment.id,
            state_of(intent),
            provider_id=intent.id,
            captured=intent.amount_received or None,
            captured_at=_parse_time(intent.captured_at),
            failure_code=intent.failure_code,
        )
        return updated

    async def _refresh(self, payment: Payment, context: CallContext) -> Payment:
        """A payment whose provider answer was never heard: ask the provider how it stands."""
        if payment.state != PaymentState.CREATED:
            return payment
        provider = self.adapter(payment.adapter)
        intent = await provider.operations["get_intent"].call(
            provider, IntentQuery(merchant_reference=payment.id), context
        )
        if intent is None:
            return await self._authorise(payment, context)
        return await self._apply(payment, intent)

    # -- capture and cancel --------------------------------------------------------------

    async def capture(
        self,
        *,
        owner: str,
        key: str,
        payment_id: str,
        body: Mapping[str, Any],
        context: CallContext,
    ) -> Answer:
        """Capture an authorised payment (all of it, or ``amount``)."""
        await self._owned(owner, payment_id)
        amount = body.get("amount")

        async def work(_claim: Claim) -> tuple[int, dict[str, Any]]:
            payment = await self._refresh(await self._owned(owner, payment_id), context)
            check(payment.state, PaymentState.CAPTURED)
            if payment.state != PaymentState.REQUIRES_CAPTURE:
                raise InvalidPaymentState(
                    f"a payment that is {payment.state.value} is captured by the provider itself",
                    extra={"state": payment.state.value},
                )
            if amount is not None and amount > payment.amount:
                raise InvalidRequest(f"amount exceeds the authorised {payment.amount}")
            provider = self.adapter(payment.adapter)
            assert payment.provider_id is not None
            request = CaptureRequest(
                intent_id=payment.provider_id, merchant_reference=payment.id, amount=amount
            )
            intent = await provider.operations["capture"].call(provider, request, context)
            payment = await self._apply(payment, intent)
            if payment.state not in (
                PaymentState.CAPTURED,
                PaymentState.PARTIALLY_REFUNDED,
                PaymentState.REFUNDED,
            ):
                raise InvalidPaymentState(
                    f"the provider did not capture it: the payment is {payment.state.value}",
                    extra={"state": payment.state.value},
                )
            return 200, payment_json(payment, await self.store.refunds(payment.id))

        return await self._keyed(
            owner=owner, key=key, operation=f"capture:{payment_id}", body=body, work=work
        )

    async def cancel(
        self,
        *,
        owner: str,
        key: str,
        payment_id: str,
        body: Mapping[str, Any],
        context: CallContext,
    ) -> Answer:
        """Release the authorisation of a payment that will not be captured."""
        await self._owned(owner, payment_id)

        async def work(_claim: Claim) -> tuple[int, dict[str, Any]]:
            payment = await self._refresh(await self._owned(owner, payment_id), context)
            check(payment.state, PaymentState.CANCELLED)
            provider = self.adapter(payment.adapter)
            assert payment.provider_id is not None
            request = CancelRequest(intent_id=payment.provider_id, merchant_reference=payment.id)
            intent = await provider.operations["cancel"].call(provider, request, context)
            payment = await self._apply(payment, intent)
            if payment.state != PaymentState.CANCELLED:
                raise InvalidPaymentState(
                    f"the provider did not cancel it: the payment is {payment.state.value}",
                    extra={"state": payment.state.value},
                )
            return 200, payment_json(payment, [])

        return await self._keyed(
            owner=owner, key=key, operation=f"cancel:{payment_id}", body=body, work=work
        )

    # -- refunds -------------------------------------------------------------------------

    async def refund(
        self,
        *,
        owner: str,
        key: str,
        payment_id: str,
        body: Mapping[str, Any],
        context: CallContext,
    ) -> Answer:
        """Refund ``amount`` (default: all that is left) of a captured payment."""
        await self._owned(owner, payment_id)

        async def work(claim: Claim) -> tuple[int, dict[str, Any]]:
            refund = await self.store.get_refund(claim.refund_id) if claim.refund_id else None
            if refund is None:
                payment = await self._owned(owner, payment_id)
                amount = body.get("amount", payment.refundable)
                if amount <= 0:
                    raise InvalidRequest("nothing is left to refund", extra={"refundable": 0})
                refund = await self.store.reserve_refund(
                    payment_id=payment_id,
                    refund_id="rf_" + secrets.token_hex(12),
                    amount=amount,
                    reason=str(body.get("reason", "")),
                    owner=owner,
                    key=key,
                )
            refund = await self._book_refund(refund, context)
            payment = await self._owned(owner, payment_id)
            return 201, {**refund_json(refund), "payment": payment_json(payment)}

        return await self._keyed(
            owner=owner, key=key, operation=f"refund:{payment_id}", body=body, work=work
        )

    async def _book_refund(self, refund: Refund, context: CallContext) -> Refund:
        if refund.state.value != "pending":
            return refund
        payment = await self.store.get(refund.payment_id)
        assert payment is not None
        assert payment.provider_id is not None
        provider = self.adapter(payment.adapter)
        request = RefundRequest(
            intent_id=payment.provider_id, merchant_reference=refund.id, amount=refund.amount
        )
        try:
            booked: ProviderRefund = await provider.operations["refund"].call(
                provider, request, context
            )
        except PaymentRefused:
            await self.store.fail_refund(refund.id)
            raise
        _, settled, _ = await self.store.settle_refund(refund.id, provider_id=booked.id)
        return settled

    # -- reads ---------------------------------------------------------------------------

    async def get(self, *, owner: str, payment_id: str) -> Answer:
        payment = await self._owned(owner, payment_id)
        return Answer(status=200, body=payment_json(payment, await self.store.refunds(payment_id)))

    async def list_refunds(self, *, owner: str, payment_id: str) -> Answer:
        await self._owned(owner, payment_id)
        refunds = await self.store.refunds(payment_id)
        return Answer(status=200, body={"refunds": [refund_json(refund) for refund in refunds]})
