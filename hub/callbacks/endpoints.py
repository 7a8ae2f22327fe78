"""``POST /api/callbacks/v1/{adapter}``: notification providers' delivery receipts.

No credential: the HMAC signature and its timestamp are the proof (:mod:`.receipts`). The
answer is ``200 {"receipt_id", "outcome": "accepted" | "duplicate"}``; a refused receipt is a
problem (400 ``invalid_webhook_signature``, ``stale_webhook``, ``invalid_request``; 404
``not_found`` for an adapter that takes no callbacks), and the provider retries it. A flood from
one address is refused before any HMAC is checked (429 ``rate_limited``, see
:mod:`hub.ratelimit.guard`).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.params import FromPath

from hub.errors import ServiceUnavailable
from hub.proxy.headers import client_address
from hub.ratelimit.guard import CALLBACK_LIMIT, guard
from hub.runtime import Runtime

__all__ = ["CallbacksController"]


class CallbacksController(Controller):
    """Receipt callbacks of the notification adapters."""

    path = "/api/callbacks/v1"
    tags = ["callbacks"]

    @post("/{adapter:str}", status_code=200)
    async def receipt(
        self, request: Request[Any, Any, Any], adapter: FromPath[str]
    ) -> dict[str, str]:
        runtime: Runtime = request.app.state.runtime
        receiver = runtime.receipts
        if receiver is None:
            raise ServiceUnavailable("callbacks are not started")
        peer = request.client.host if request.client else ""
        address, _ = client_address(
            peer, list(request.scope["headers"]), runtime.settings.trusted_proxies
        )
        await guard(runtime.limiter, "callbacks", f"{adapter}:{address}", CALLBACK_LIMIT)
        body = await request.body()
        outcome = await receiver.receive(adapter, request.headers, body)
        return {"receipt_id": outcome.receipt_id, "outcome": outcome.outcome}
