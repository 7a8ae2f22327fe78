"""The payment provider adapter: intents, capture, cancel, refunds, state lookups, settlements.

Plugin ``payment_provider``; contract ``contracts/adapters/payment-provider``. Amounts are whole
minor units. Every call that changes something carries an idempotency key derived from the
hub's own ids (``create:<payment>``, ``capture:<payment>``, ``cancel:<payment>``,
``refund:<refund>``), so the provider never does one thing twice however often the hub asks.

Those calls are not retried blindly. The resilience path repeats them only when the attempt
never left the hub (connection refused); when an attempt may have reached the provider (a
timeout after sending, a broken or malformed answer, a 5xx), the adapter first asks the
provider for the state of the payment or refund by the hub's reference, and returns what it
finds when the work was done; only when it was not does it send again, with the same key.
After ``retries.max_retries`` such rounds the last failure stands: the caller keeps the
payment as it was and can resume with the same key.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, TypeVar

import httpx

from adapters._plugin import HubClientAdapter, matched, only
from adapters.base import (
    AdapterConfig,
    CallContext,
    HubError,
    InvalidRequest,
    Operation,
    PaymentRefused,
    UpstreamContractViolation,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    call_extensions,
)

__all__ = [
    "CancelRequest",
    "CaptureRequest",
    "Intent",
    "IntentQuery",
    "IntentRequest",
    "PaymentProvider",
    "Refund",
    "RefundQuery",
    "RefundRequest",
    "Settlement",
    "SettlementLine",
    "SettlementQuery",
    "is_ambiguous",
]

IntentStatus = Literal["requires_capture", "processing", "succeeded", "canceled", "failed"]
_REFERENCE: Final = re.compile(r"[A-Za-z0-9_:.-]{1,64}")
_PROVIDER_ID: Final = re.compile(r"[A-Za-z0-9_]{1,64}")
_DAY: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SYSTEM = "payment provider"

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Intent:
    """A payment intent as the provider holds it."""

    id: str
    status: IntentStatus
    amount: int
    currency: str
    amount_capturable: int
    amount_received: int
    amount_refunded: int
    merchant_reference: str
    failure_code: str | None = None
    captured_at: str | None = None
    #: Why a ``canceled`` intent was cancelled: ``automatic`` is an authorisation that lapsed.
    cancellation_reason: str | None = None

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Intent:
        values: dict[str, Any] = {name: data.get(name) for name in cls.__dataclass_fields__}
        return cls(**values)


@dataclass(frozen=True, slots=True, kw_only=True)
class Refund:
    """A refund as the provider holds it."""

    id: str
    payment_intent: str
    amount: int
    currency: str
    status: str
    merchant_reference: str

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Refund:
        values: dict[str, Any] = {name: data.get(name) for name in cls.__dataclass_fields__}
        return cls(**values)


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementLine:
    """One line of the settlement ledger: a capture or a refund booked on a day."""

    type: Literal["capture", "refund"]
    payment_intent: str
    merchant_reference: str
    amount: int
    currency: str
    booked_at: str
    refund: str | None = None
    refund_reference: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Settlement:
    """The ledger's lines of one day (every day when ``date`` is ``None``)."""

    date: str | None
    lines: tuple[SettlementLine, ...]


def _not_routable(_params: Mapping[str, str]) -> Any:
    # Money moves only through the payments API, which keeps the hub's own book and keys.
    raise InvalidRequest("this payment operation is served by the payments API only")


@dataclass(frozen=True, slots=True, kw_only=True)
class IntentRequest:
    """Create an intent for the hub's payment ``merchant_reference``."""

    merchant_reference: str
    amount: int
    currency: str
    payment_method: str
    capture_method: Literal["manual", "automatic"] = "manual"
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CaptureRequest:
    """Capture intent ``intent_id`` (all of it, or ``amount``)."""

    intent_id: str
    merchant_reference: str
    amount: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelRequest:
    """Release the authorisation of intent ``intent_id``."""

    intent_id: str
    merchant_reference: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundRequest:
    """Refund ``amount`` of intent ``intent_id``; ``merchant_reference`` is the hub's refund id."""

    intent_id: str
    merchant_reference: str
    amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class IntentQuery:
    """An intent by the provider's id, or by the hub's reference."""

    intent_id: str | None = None
    merchant_reference: str | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> IntentQuery:
        only(params, "intent_id", "merchant_reference")
        intent = params.get("intent_id")
        reference = params.get("merchant_reference")
        if (intent is None) == (reference is None):
            raise InvalidRequest("give one of intent_id and merchant_reference")
        return cls(
            intent_id=matched(intent, _PROVIDER_ID, "intent_id") if intent else None,
            merchant_reference=matched(reference, _REFERENCE, "merchant_reference")
            if reference
            else None,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RefundQuery:
    """A refund by the hub's refund id."""

    merchant_reference: str

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> RefundQuery:
        only(params, "merchant_reference")
        reference = matched(params.get("merchant_reference"), _REFERENCE, "merchant_reference")
        return cls(merchant_reference=reference)


@dataclass(frozen=True, slots=True, kw_only=True)
class SettlementQuery:
    """The settlement ledger of one day (``YYYY-MM-DD``, UTC), or all of it."""

    date: str | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> SettlementQuery:
        only(params, "date")
        day = params.get("date")
        return cls(date=matched(day, _DAY, "date (YYYY-MM-DD)") if day else None)


def is_ambiguous(error: HubError) -> bool:
    """Whether a failed call may have reached the provider (so its outcome is unknown)."""
    if error.extra.get("hub_unsent"):
        return False
    return isinstance(error, UpstreamTimeout | UpstreamProtocolError | UpstreamContractViolation)


class _Ambiguous(Exception):
    def __init__(self, error: HubError) -> None:
        super().__init__(error.detail)
        self.error = error


class PaymentProvider(HubClientAdapter):
    """The ``payment_provider`` plugin."""

    system: ClassVar[str] = _SYSTEM

    def __init__(self, config: AdapterConfig, http: httpx.AsyncClient) -> None:
        super().__init__(config, http)
        self._rounds = 1 + max(0, config.retry.max_retries)
        self._pause = config.retry.backoff_initial

    # -- changes -------------------------------------------------------------------------

    async def create_intent(self, request: IntentRequest, context: CallContext) -> Intent:
        body: dict[str, Any] = {
            "amount": request.amount,
            "currency": request.currency,
            "merchant_reference": request.merchant_reference,
            "payment_method": request.payment_method,
            "capture_method": request.capture_method,
        }
        if request.description:
            body["description"] = request.description
        reference = request.merchant_reference

        async def lookup() -> Intent | None:
            return await self.get_intent(IntentQuery(merchant_reference=reference), context)

        data = await self._change(
            "/v1/payment_intents",
            body,
            CREATE_INTENT,
            context,
            key=f"create:{reference}",
            lookup=lookup,
        )
        return data if isinstance(data, Intent) else Intent.of(data)

    async def capture(self, request: CaptureRequest, context: CallContext) -> Intent:
        body: dict[str, Any] = {}
        if request.amount is not None:
            body["amount_to_capture"] = request.amount
        return await self._intent_change(
            f"/v1/payment_intents/{request.intent_id}/capture",
            body,
            CAPTURE,
            context,
            key=f"capture:{request.merchant_reference}",
            intent_id=request.intent_id,
            done=("succeeded",),
        )

    async def cancel(self, request: CancelRequest, context: CallContext) -> Intent:
        return await self._intent_change(
            f"/v1/payment_intents/{request.intent_id}/cancel",
            {},
            CANCEL,
            context,
            key=f"cancel:{request.merchant_reference}",
            intent_id=request.intent_id,
            done=("canceled",),
        )

    async def refund(self, request: RefundRequest, context: CallContext) -> Refund:
        body = {
            "payment_intent": request.intent_id,
            "amount": request.amount,
            "merchant_reference": request.merchant_reference,
        }
        reference = request.merchant_reference

        async def lookup() -> Refund | None:
            return await self.find_refund(RefundQuery(merchant_reference=reference), context)

        data = await self._change(
            "/v1/refunds", body, REFUND, context, key=f"refund:{reference}", lookup=lookup
        )
        return data if isinstance(data, Refund) else Refund.of(data)

    async def _intent_change(
        self,
        path: str,
        body: dict[str, Any],
        operation: Operation[Any, Any],
        context: CallContext,
        *,
        key: str,
        intent_id: str,
        done: tuple[str, ...],
    ) -> Intent:
        async def lookup() -> Intent | None:
            intent = await self.get_intent(IntentQuery(intent_id=intent_id), context)
            return intent if intent is not None and intent.status in done else None

        try:
            data = await self._change(path, body, operation, context, key=key, lookup=lookup)
        except PaymentRefused as refused:
            if refused.extra.get("provider_code") != "invalid_state":
                raise
            # Already captured (or cancelled) by an earlier attempt: the intent as it stands.
            current = await self.get_intent(IntentQuery(intent_id=intent_id), context)
            if current is None:
                raise
            return current
        return data if isinstance(data, Intent) else Intent.of(data)

    async def _change(
        self,
        path: str,
        body: dict[str, Any],
        operation: Operation[Any, Any],
        context: CallContext,
        *,
        key: str,
        lookup: Callable[[], Awaitable[T | None]],
    ) -> dict[str, Any] | T:
        """POST ``body``; after an ambiguous failure, look the outcome up before sending again."""
        last: HubError | None = None
        for round_ in range(self._rounds):
            if round_:
                await asyncio.sleep(self._pause * 2 ** (round_ - 1))
            try:
                return await self._post(path, body, operation, context, key=key)
            except _Ambiguous as ambiguous:
                last = ambiguous.error
            # It may have been done: ask before doing it again (a lookup is a safe GET).
            try:
                found = await lookup()
            except UpstreamError as error:
                last = error
                continue
            if found is not None:
                return found
        assert last is not None
        raise last

    async def _post(
        self,
        path: str,
        body: dict[str, Any],
        operation: Operation[Any, Any],
        context: CallContext,
        *,
        key: str,
    ) -> dict[str, Any]:
        try:
            response = await self._http.post(
                path,
                json=body,
                headers={
                    "X-Request-ID": context.request_id,
                    "Accept": "application/json",
                    "Idempotency-Key": key,
                },
                # Not marked idempotent: the resilience path repeats it only when it never left.
                extensions=call_extensions(operation, context),
            )
        except HubError as error:
            if is_ambiguous(error):
                raise _Ambiguous(error) from error
            raise
        status = response.status_code
        if status >= 500:
            raise _Ambiguous(UpstreamError(f"the {_SYSTEM} answered {status}"))
        return _answer(response)

    # -- reads ---------------------------------------------------------------------------

    async def get_intent(self, query: IntentQuery, context: CallContext) -> Intent | None:
        if query.intent_id is not None:
            data = await self._get(f"/v1/payment_intents/{query.intent_id}", {}, context)
            return Intent.of(data) if data is not None else None
        data = await self._get(
            "/v1/payment_intents", {"merchant_reference": query.merchant_reference}, context
        )
        found = (data or {}).get("data") or []
        return Intent.of(found[0]) if found else None

    async def find_refund(self, query: RefundQuery, context: CallContext) -> Refund | None:
        data = await self._get(
            "/v1/refunds", {"merchant_reference": query.merchant_reference}, context, FIND_REFUND
        )
        found = (data or {}).get("data") or []
        return Refund.of(found[0]) if found else None

    async def list_settlements(self, query: SettlementQuery, context: CallContext) -> Settlement:
        params = {"date": query.date} if query.date else {}
        data = await self._get("/v1/settlements", params, context, LIST_SETTLEMENTS) or {}
        return Settlement(
            date=data.get("date"),
            lines=tuple(
                SettlementLine(**{k: line.get(k) for k in SettlementLine.__dataclass_fields__})
                for line in data.get("lines", [])
            ),
        )

    async def _get(
        self,
        path: str,
        params: Mapping[str, Any],
        context: CallContext,
        operation: Operation[Any, Any] | None = None,
    ) -> dict[str, Any] | None:
        response = await self._http.get(
            path,
            params=dict(params),
            headers={"X-Request-ID": context.request_id, "Accept": "application/json"},
            extensions=call_extensions(operation or GET_INTENT, context),
        )
        if response.status_code == 404:
            return None
        if response.status_code >= 500:
            raise UpstreamError(f"the {_SYSTEM} answered {response.status_code}")
        return _answer(response)


def _answer(response: httpx.Response) -> dict[str, Any]:
    """A 2xx answer's JSON (already checked against the contract); refusals become errors."""
    status = response.status_code
    data: dict[str, Any] = response.json()
    if status in (200, 201):
        return data
    error = data.get("error") if isinstance(data, dict) else None
    code = str(error.get("code", "")) if isinstance(error, dict) else ""
    if status == 401:
        raise UpstreamError(f"the {_SYSTEM} refused the hub's credentials")
    raise PaymentRefused(
        f"the {_SYSTEM} refused the request ({code or status})",
        extra={"provider_code": code or str(status)},
    )


CREATE_INTENT: Final[Operation[IntentRequest, Intent]] = Operation(
    name="create_intent",
    parse=_not_routable,
    call=PaymentProvider.create_intent,
    idempotent=False,
    fields=tuple(Intent.__dataclass_fields__),
    summary="Create and authorise a payment intent.",
)
GET_INTENT: Final[Operation[IntentQuery, Intent]] = Operation(
    name="get_intent",
    parse=IntentQuery.parse,
    call=PaymentProvider.get_intent,
    fields=tuple(Intent.__dataclass_fields__),
    summary="An intent by the provider's id or the hub's reference.",
)
CAPTURE: Final[Operation[CaptureRequest, Intent]] = Operation(
    name="capture",
    parse=_not_routable,
    call=PaymentProvider.capture,
    idempotent=False,
    fields=tuple(Intent.__dataclass_fields__),
    summary="Capture an authorised intent.",
)
CANCEL: Final[Operation[CancelRequest, Intent]] = Operation(
    name="cancel",
    parse=_not_routable,
    call=PaymentProvider.cancel,
    idempotent=False,
    fields=tuple(Intent.__dataclass_fields__),
    summary="Release an authorisation.",
)
REFUND: Final[Operation[RefundRequest, Refund]] = Operation(
    name="refund",
    parse=_not_routable,
    call=PaymentProvider.refund,
    idempotent=False,
    fields=tuple(Refund.__dataclass_fields__),
    summary="Refund part or all of a captured intent.",
)
FIND_REFUND: Final[Operation[RefundQuery, Refund]] = Operation(
    name="find_refund",
    parse=RefundQuery.parse,
    call=PaymentProvider.find_refund,
    fields=tuple(Refund.__dataclass_fields__),
    summary="A refund by the hub's refund id.",
)
LIST_SETTLEMENTS: Final[Operation[SettlementQuery, Settlement]] = Operation(
    name="list_settlements",
    parse=SettlementQuery.parse,
    call=PaymentProvider.list_settlements,
    fields=tuple(Settlement.__dataclass_fields__),
    summary="The settlement ledger of one day.",
)
PaymentProvider.operations = {
    op.name: op
    for op in (CREATE_INTENT, GET_INTENT, CAPTURE, CANCEL, REFUND, FIND_REFUND, LIST_SETTLEMENTS)
}
