"""A sandbox notification provider as a Litestar app: ``create_app(Channel, MessagingConfig)``.

API (``Authorization: Bearer <api key>``):

- ``POST <path>`` (``/v1/messages`` for SMS, ``/v1/emails`` for e-mail): accept one message →
  ``202`` ``{id, to, reference, status: accepted, accepted_at, ...}``. The id is derived from
  the seed and the ``reference`` (deterministic); a repeat of the same reference (or
  ``Idempotency-Key``) with the same body answers the same message (``200``,
  ``Idempotent-Replayed: true``), with another body ``409 idempotency_conflict``;
- ``GET <path>/{id}``: the message and its status; ``GET /v1/health``.

Then the provider "delivers" it and reports by signed receipt callbacks (``sent``, then
``delivered``; ``failed`` for addresses the channel calls undeliverable, or by the
``undeliverable_rate`` fault). Control endpoints (never counted, never faulted): ``GET
/_sandbox/health``, ``POST /_sandbox/faults`` (:mod:`.faults`), ``GET /_sandbox/stats``, ``POST
/_sandbox/reset`` (these four: :mod:`adapters.sandbox._control.endpoints`), ``GET
/_sandbox/messages`` (every accepted message with its body: what a test looks at), ``GET|POST
/_sandbox/receipts`` (the receipt log; ``{"url": ...}`` sets the callback URL) and ``POST
/_sandbox/receipts/{id}/redeliver``.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from litestar import Litestar, Request, Response, get, post
from litestar.params import FromPath

from adapters.sandbox._control.endpoints import (
    callback_handlers,
    cut_short,
    key_matches,
    sandbox_app,
)
from adapters.sandbox._messaging.faults import MessagingFaults
from adapters.sandbox._messaging.receipts import ReceiptSender

__all__ = ["Channel", "MessagingConfig", "create_app"]

_STATE: Final = "messaging"


@dataclass(frozen=True, slots=True, kw_only=True)
class Channel:
    """What one kind of provider accepts: its path, id prefix, body check and bounces."""

    name: str  # sms-provider, email-provider
    path: str  # /v1/messages
    id_prefix: str  # sms, em
    #: A problem with the body (``None``: fine); the body has ``reference`` checked already.
    check: Callable[[dict[str, Any]], str | None]
    #: Why a message to this address cannot be delivered (``None``: it can).
    bounce: Callable[[dict[str, Any]], str | None]
    #: Fields of the stored message answered by the API, besides the common ones.
    fields: Callable[[dict[str, Any]], dict[str, Any]] = lambda _body: {}


@dataclass(frozen=True, slots=True, kw_only=True)
class MessagingConfig:
    """How the sandbox runs."""

    api_key: str | None = field(default=None, repr=False)
    callback_secret: str = field(default="cbsec_sandbox", repr=False)
    callback_url: str | None = None
    seed: int = 2026
    latency_ms: int = 0
    receipt_max_attempts: int = 8


class Provider:
    """The state of one running sandbox provider."""

    def __init__(self, channel: Channel, config: MessagingConfig) -> None:
        self.channel = channel
        self.config = config
        self.rng = random.Random(config.seed)  # noqa: S311 - fault draws, not secrets
        self.faults = MessagingFaults(latency_ms=config.latency_ms)
        self.messages: dict[str, dict[str, Any]] = {}
        self.bodies: dict[str, dict[str, Any]] = {}
        self.by_reference: dict[str, str] = {}
        self.received = self.served = self.unauthorized = 0
        self.receipts = ReceiptSender(
            self.faults,
            self.rng,
            seed=config.seed,
            secret=config.callback_secret,
            url=config.callback_url,
            max_attempts=config.receipt_max_attempts,
        )

    def describe(self) -> dict[str, Any]:
        return {"provider": self.channel.name, "faults": self.faults.as_dict()}

    def stats(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "served": self.served,
            "unauthorized": self.unauthorized,
            "messages": len(self.messages),
            "receipts_pending": self.receipts.pending,
        }

    def reset(self) -> None:
        """Clear the faults, the counts, the messages and the receipt log."""
        self.faults.reset(latency_ms=self.config.latency_ms)
        self.messages.clear()
        self.bodies.clear()
        self.by_reference.clear()
        self.received = self.served = self.unauthorized = 0
        self.receipts.log.clear()

    def message_id(self, reference: str) -> str:
        digest = hashlib.sha256(f"{self.config.seed}:{reference}".encode()).hexdigest()
        return f"{self.channel.id_prefix}_{digest[:20]}"


def _error(status: int, code: str, message: str) -> Response[Any]:
    return Response({"error": {"code": code, "message": message}}, status_code=status)


def _provider(request: Request[Any, Any, Any]) -> Provider:
    provider: Provider = request.app.state[_STATE]
    return provider


async def _gate(provider: Provider, request: Request[Any, Any, Any]) -> Response[Any] | str:
    """An early answer (key, injected error), or the drawn action for the answer."""
    provider.received += 1
    expected = provider.config.api_key
    if expected is not None:
        given = request.headers.get("Authorization", "")
        if not key_matches(given, f"Bearer {expected}"):
            provider.unauthorized += 1
            return _error(401, "unauthorized", "a valid API key is required")
    faults = provider.faults
    await faults.hold()
    action = faults.draw(provider.rng)
    if action == "error":
        return _error(faults.error_status, "injected", "an injected failure")
    provider.served += 1
    return action


def _answer(status: int, body: dict[str, Any], action: str, **headers: str) -> Response[Any]:
    if action == "malformed":
        return cut_short(status, body)
    return Response(body, status_code=status, headers=headers or None)


@post("/v1/{kind:str}", status_code=202)
async def accept(request: Request[Any, Any, Any], kind: FromPath[str]) -> Response[Any]:
    """Accept one message for delivery."""
    provider = _provider(request)
    channel = provider.channel
    if f"/v1/{kind}" != channel.path:
        return _error(404, "not_found", "no such resource")
    gated = await _gate(provider, request)
    if isinstance(gated, Response):
        return gated
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        return _error(400, "invalid_request", "the body is not JSON")
    if not isinstance(body, dict):
        return _error(400, "invalid_request", "the body must be a JSON object")
    reference = body.get("reference")
    if not isinstance(reference, str) or not 1 <= len(reference) <= 128:
        return _error(400, "invalid_request", "reference is required")
    key = request.headers.get("Idempotency-Key") or reference
    if key != reference:
        return _error(400, "invalid_request", "the Idempotency-Key must be the reference")
    problem = channel.check(body)
    if problem is not None:
        return _error(400, "invalid_request", problem)
    known = provider.by_reference.get(reference)
    if known is not None:
        if provider.bodies[known] != body:
            return _error(409, "idempotency_conflict", "another message has this reference")
        return _answer(200, provider.messages[known], gated, **{"Idempotent-Replayed": "true"})
    message_id = provider.message_id(reference)
    message = {
        "id": message_id,
        "to": body["to"],
        "reference": reference,
        "status": "accepted",
        "accepted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **channel.fields(body),
    }
    provider.messages[message_id] = message
    provider.bodies[message_id] = body
    provider.by_reference[reference] = message_id
    error = channel.bounce(body)
    if error is None and provider.rng.random() < provider.faults.undeliverable_rate:
        error = "injected: the recipient's network refused the message"
    provider.receipts.schedule(message, "failed" if error else "delivered", error)
    return _answer(202, message, gated)


@get("/v1/{kind:str}/{message_id:str}")
async def lookup(
    request: Request[Any, Any, Any], kind: FromPath[str], message_id: FromPath[str]
) -> Response[Any]:
    """One message; its status follows the receipts sent so far."""
    provider = _provider(request)
    if f"/v1/{kind}" != provider.channel.path:
        return _error(404, "not_found", "no such resource")
    gated = await _gate(provider, request)
    if isinstance(gated, Response):
        return gated
    message = provider.messages.get(message_id)
    if message is None:
        return _error(404, "not_found", "no such message")
    return _answer(200, _view(provider, message), gated)


def _view(provider: Provider, message: dict[str, Any]) -> dict[str, Any]:
    """The message with the status its receipts sent so far say (a final one wins)."""
    rank = {"accepted": 0, "sent": 1, "delivered": 2, "failed": 2}
    status = "accepted"
    for entry in provider.receipts.log.values():
        reported = entry.body["status"]
        if entry.body["message_id"] == message["id"] and entry.attempts:
            status = reported if rank[reported] > rank[status] else status
    return {**message, "status": status}


@get("/v1/health")
async def api_health(request: Request[Any, Any, Any]) -> Response[Any]:
    """The provider's own health endpoint (part of its API: counted, delayed, faulted)."""
    provider = _provider(request)
    gated = await _gate(provider, request)
    if isinstance(gated, Response):
        return gated
    return _answer(200, {"status": "ok"}, gated)


# -- control ---------------------------------------------------------------------------


@get("/_sandbox/messages", sync_to_thread=False)
def messages(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Every accepted message with the body it was sent with."""
    provider = _provider(request)
    return {
        "messages": [
            {**_view(provider, message), "body": provider.bodies[message_id]}
            for message_id, message in provider.messages.items()
        ]
    }


def create_app(channel: Channel, config: MessagingConfig) -> Litestar:
    """A sandbox notification provider of ``channel``."""
    provider = Provider(channel, config)
    receipts = callback_handlers(
        "/_sandbox/receipts",
        lambda request: _provider(request).receipts,
        entries="receipts",
        noun="receipt",
        id_field="id",
    )
    return sandbox_app(
        [accept, lookup, api_health, messages, *receipts],
        state_key=_STATE,
        sandbox=provider,
        sender=provider.receipts,
    )
