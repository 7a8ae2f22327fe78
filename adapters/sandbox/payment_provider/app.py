"""The sandbox payment provider as a Litestar app: ``create_app(ProviderConfig(...))``.

API (``Authorization: Bearer <api key>``; amounts in minor units; POSTs honour
``Idempotency-Key``: the same key and body answer the first result again, with
``Idempotent-Replayed: true``, and the same key with another body is ``409
idempotency_conflict``):

- ``POST /v1/payment_intents`` ``{amount, currency, payment_method, capture_method,
  merchant_reference, description}`` → ``201`` intent; ``GET /v1/payment_intents/{id}``;
  ``GET /v1/payment_intents?merchant_reference=`` → ``{"data": [...]}``;
- ``POST /v1/payment_intents/{id}/capture`` ``{amount_to_capture?}``, ``…/cancel`` → intent;
- ``POST /v1/refunds`` ``{payment_intent, amount, merchant_reference}`` → ``201`` refund;
  ``GET /v1/refunds/{id}``, ``GET /v1/refunds?merchant_reference=``;
- ``GET /v1/settlements?date=YYYY-MM-DD`` → the settlement ledger's lines of that day;
- ``GET /v1/health``.

Errors are ``{"error": {"code", "message"}}``. Control endpoints (not counted, never faulted):
``GET /_sandbox/health``, ``POST /_sandbox/faults`` (see :mod:`.faults`), ``GET
/_sandbox/stats``, ``POST /_sandbox/reset`` (faults, counts and the whole book; all four from
:mod:`adapters.sandbox._control.endpoints`),
``GET|POST /_sandbox/webhooks`` (the delivery log; ``{"url": ...}`` sets the receiver),
``POST /_sandbox/webhooks/{event_id}/redeliver``, ``POST /_sandbox/expire`` (lapse the
authorisations older than ``{"older_than": seconds}``, by default the configured term), and
``GET /_sandbox/book`` (every intent and refund, and the number of captures booked).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any, Final, cast

from litestar import Litestar, Request, Response, get, post
from litestar.params import FromPath

from adapters.sandbox._control.endpoints import (
    bad_request,
    callback_handlers,
    cut_short,
    key_matches,
    sandbox_app,
)
from adapters.sandbox.payment_provider.book import Book, BookError
from adapters.sandbox.payment_provider.faults import Action, PaymentFaults
from adapters.sandbox.payment_provider.webhooks import WebhookSender

__all__ = ["ProviderConfig", "create_app"]

_STATE: Final = "provider"
_DAY: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderConfig:
    """How the sandbox provider runs."""

    api_key: str | None = field(default=None, repr=False)
    webhook_secret: str = field(default="whsec_sandbox", repr=False)
    webhook_url: str | None = None
    seed: int = 2026
    latency_ms: int = 0
    settle_seconds: float = 0.3
    webhook_max_attempts: int = 8
    authorisation_seconds: float = 7 * 86400  # an uncaptured authorisation lapses after this


@dataclass(slots=True)
class _Traffic:
    received: int = 0
    served: int = 0
    unauthorized: int = 0
    by_path: dict[str, int] = field(default_factory=dict)

    def reset(self) -> None:
        self.received = self.served = self.unauthorized = 0
        self.by_path.clear()


class Provider:
    """The state of a running sandbox provider."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)  # noqa: S311 - fault draws, not secrets
        self.faults = PaymentFaults(latency_ms=config.latency_ms)
        self.traffic = _Traffic()
        self.book = Book(authorisation_seconds=config.authorisation_seconds)
        self.webhooks = WebhookSender(
            self.book,
            self.faults,
            self.rng,
            secret=config.webhook_secret,
            url=config.webhook_url,
            max_attempts=config.webhook_max_attempts,
            settle_seconds=config.settle_seconds,
        )

    def describe(self) -> dict[str, Any]:
        return {"provider": "payment-provider", "faults": self.faults.as_dict()}

    def stats(self) -> dict[str, Any]:
        """What the provider received and booked."""
        traffic, book = self.traffic, self.book
        return {
            "received": traffic.received,
            "served": traffic.served,
            "unauthorized": traffic.unauthorized,
            "by_path": dict(traffic.by_path),
            "intents": len(book.intents),
            "refunds": len(book.refunds),
            "captures": book.captures,
            "webhooks_pending": self.webhooks.pending,
        }

    def reset(self) -> None:
        """Clear the faults, the counts and the whole book."""
        self.faults.reset(latency_ms=self.config.latency_ms)
        self.traffic.reset()
        book = Book(authorisation_seconds=self.config.authorisation_seconds)
        self.book = self.webhooks.book = book
        self.webhooks.log.clear()

    async def gate(self, request: Request[Any, Any, Any]) -> tuple[Response[Any] | None, Action]:
        """An early answer (key, injected error) or ``None``; and the fault to apply after."""
        traffic = self.traffic
        traffic.received += 1
        label = f"{request.method} {_label(request.scope['path'])}"
        traffic.by_path[label] = traffic.by_path.get(label, 0) + 1
        expected = self.config.api_key
        if expected is not None:
            given = request.headers.get("Authorization", "")
            if not key_matches(given, f"Bearer {expected}"):
                traffic.unauthorized += 1
                return _error(401, "unauthorized", "a valid API key is required"), "ok"
        faults = self.faults
        await faults.hold()
        action = cast(Action, faults.draw(self.rng))
        if action == "error":
            return _error(faults.error_status, "injected", "an injected failure"), "ok"
        traffic.served += 1
        return None, action

    async def answer(self, status: int, body: Any, action: Action, **headers: str) -> Response[Any]:
        """The answer, held back or cut short as the drawn fault says."""
        if action == "accept_then_timeout":
            await asyncio.sleep(self.faults.hang_seconds)  # done, but the client never hears
        if action == "malformed":
            return cut_short(status, body)
        return Response(body, status_code=status, headers=headers or None)


def _label(path: str) -> str:
    return re.sub(r"/(pi|re)_[0-9a-f]+", r"/\1_*", path)


def _error(status: int, code: str, message: str) -> Response[Any]:
    return Response({"error": {"code": code, "message": message}}, status_code=status)


def provider_of(request: Request[Any, Any, Any]) -> Provider:
    provider: Provider = request.app.state[_STATE]
    return provider


async def _json(request: Request[Any, Any, Any]) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise BookError(400, "invalid_request", "the body is not JSON") from None


async def _mutation(request: Request[Any, Any, Any], work: Any, status: int) -> Response[Any]:
    """A POST: gate, replay or do ``work(body)`` and remember it, then apply the fault."""
    provider = provider_of(request)
    early, action = await provider.gate(request)
    if early is not None:
        return early
    raw = await request.body()
    key = request.headers.get("Idempotency-Key")
    book = provider.book
    fingerprint = book.fingerprint(request.method, request.scope["path"], raw)
    try:
        stored = book.replay(key, fingerprint)
    except BookError as exc:
        return await provider.answer(exc.status, exc.body(), action)
    if stored is not None:
        return await provider.answer(
            stored.status, stored.body, action, **{"Idempotent-Replayed": "true"}
        )
    try:
        result, code = work(await _json(request)), status
    except BookError as exc:
        result, code = exc.body(), exc.status
    book.remember(key, fingerprint, code, result)
    return await provider.answer(code, result, action)


async def _read(request: Request[Any, Any, Any], work: Any) -> Response[Any]:
    provider = provider_of(request)
    early, action = await provider.gate(request)
    if early is not None:
        return early
    if action == "accept_then_timeout":
        action = "ok"  # a read does no work whose answer could be lost (``hang`` holds reads)
    try:
        return await provider.answer(200, work(provider.book), action)
    except BookError as exc:
        return await provider.answer(exc.status, exc.body(), action)


@post("/v1/payment_intents")
async def create_intent(request: Request[Any, Any, Any]) -> Response[Any]:
    """Create (and authorise) a payment intent."""
    return await _mutation(request, provider_of(request).book.create_intent, 201)


@get("/v1/payment_intents")
async def find_intents(request: Request[Any, Any, Any]) -> Response[Any]:
    """Intents by the merchant's reference (how a client finds one whose answer it lost)."""
    reference = request.query_params.get("merchant_reference", "")
    return await _read(request, lambda book: {"data": book.find_intents(reference)})


@get("/v1/payment_intents/{intent_id:str}")
async def get_intent(request: Request[Any, Any, Any], intent_id: FromPath[str]) -> Response[Any]:
    """One intent as it stands."""
    return await _read(request, lambda book: dict(book.intent(intent_id)))


@post("/v1/payment_intents/{intent_id:str}/capture")
async def capture(request: Request[Any, Any, Any], intent_id: FromPath[str]) -> Response[Any]:
    """Capture an authorised intent (all of it, or ``amount_to_capture``)."""
    book = provider_of(request).book
    return await _mutation(request, lambda body: book.capture(intent_id, body), 200)


@post("/v1/payment_intents/{intent_id:str}/cancel")
async def cancel(request: Request[Any, Any, Any], intent_id: FromPath[str]) -> Response[Any]:
    """Release an authorisation that will not be captured."""
    book = provider_of(request).book
    return await _mutation(request, lambda _body: book.cancel(intent_id), 200)


@post("/v1/refunds")
async def refund(request: Request[Any, Any, Any]) -> Response[Any]:
    """Refund part or all of a captured intent."""
    return await _mutation(request, provider_of(request).book.refund, 201)


@get("/v1/refunds")
async def find_refunds(request: Request[Any, Any, Any]) -> Response[Any]:
    """Refunds by the merchant's reference."""
    reference = request.query_params.get("merchant_reference", "")
    return await _read(request, lambda book: {"data": book.find_refunds(reference)})


@get("/v1/refunds/{refund_id:str}")
async def get_refund(request: Request[Any, Any, Any], refund_id: FromPath[str]) -> Response[Any]:
    """One refund."""

    def lookup(book: Book) -> dict[str, Any]:
        found = book.refunds.get(refund_id)
        if found is None:
            raise BookError(404, "not_found", "no such refund")
        return dict(found)

    return await _read(request, lookup)


@get("/v1/settlements")
async def settlements(request: Request[Any, Any, Any]) -> Response[Any]:
    """The settlement ledger: every capture and refund booked on ``date`` (UTC)."""
    day = request.query_params.get("date")
    if day is not None and _DAY.fullmatch(day) is None:
        return _error(400, "invalid_request", "date is YYYY-MM-DD")
    disagree = provider_of(request).faults.ledger_disagree
    return await _read(
        request,
        lambda book: {"date": day, "lines": book.settlement(day, disagree=disagree)},
    )


@get("/v1/health")
async def api_health(request: Request[Any, Any, Any]) -> Response[Any]:
    """The provider's own health endpoint (part of its API: counted, delayed, faulted)."""
    return await _read(request, lambda _book: {"status": "ok"})


# -- control ---------------------------------------------------------------------------


@post("/_sandbox/expire", status_code=200)
async def expire(request: Request[Any, Any, Any]) -> Response[Any]:
    """Lapse authorisations now: ``{"older_than": seconds}`` (default: the configured term)."""
    try:
        body = json.loads(await request.body() or b"{}")
        older_than = body.get("older_than") if isinstance(body, dict) else None
        if older_than is not None and (
            isinstance(older_than, bool) or not isinstance(older_than, int | float)
        ):
            raise ValueError("older_than must be a number of seconds")
    except ValueError as exc:
        return bad_request(str(exc))
    lapsed = provider_of(request).book.expire_lapsed(older_than=older_than)
    return Response({"expired": lapsed})


@get("/_sandbox/book", sync_to_thread=False)
def book_view(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Every intent and refund as the provider holds them."""
    book = provider_of(request).book
    return {
        "intents": list(book.intents.values()),
        "refunds": list(book.refunds.values()),
        "captures": book.captures,
    }


def create_app(config: ProviderConfig) -> Litestar:
    """A sandbox payment provider."""
    provider = Provider(config)
    webhooks = callback_handlers(
        "/_sandbox/webhooks",
        lambda request: provider_of(request).webhooks,
        entries="deliveries",
        noun="event",
        id_field="event_id",
    )
    handlers = [
        create_intent,
        find_intents,
        get_intent,
        capture,
        cancel,
        refund,
        find_refunds,
        get_refund,
        settlements,
        api_health,
        expire,
        book_view,
        *webhooks,
    ]
    return sandbox_app(handlers, state_key=_STATE, sandbox=provider, sender=provider.webhooks)
