"""The sandbox vendor receiver: an HTTP endpoint a vendor would run to take the hub's webhooks.

- ``POST /hooks/{name}``: a delivery. Checked with the reference verifier against the secret of
  endpoint ``name``; a bad signature is ``401`` and recorded as refused. A good one is ``204``
  and recorded (a repeated ``webhook-id`` is counted as a duplicate, as a vendor would dedupe).
- ``PUT /_sandbox/endpoints/{name}`` ``{"secret": "whsec_..."}``: the secret for that endpoint
  (what a vendor stores when the hub shows it once).
- ``POST /_sandbox/faults`` ``{"fail_next": N, "status": 503, "hang_seconds": 0}``: the next N
  deliveries answer ``status`` (or hang first), then it recovers; ``{}`` clears.
- ``GET /_sandbox/received`` (``?name=``): what came in; ``DELETE /_sandbox/received`` clears.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from litestar import Litestar, Request, Response, delete, get, post, put
from litestar.status_codes import HTTP_204_NO_CONTENT

from adapters.sandbox.vendor_receiver.verify import WebhookVerificationError, verify_webhook

__all__ = ["ReceiverState", "create_app"]


@dataclass(slots=True)
class Received:
    name: str
    webhook_id: str
    verified: bool
    duplicate: bool
    status: int
    error: str | None
    body: Any


@dataclass(slots=True)
class ReceiverState:
    secrets: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    fail_next: int = 0
    fail_status: int = 503
    hang_seconds: float = 0.0


def create_app(state: ReceiverState | None = None) -> Litestar:
    current = state or ReceiverState()

    @post("/hooks/{name:str}")
    async def hook(request: Request[Any, Any, Any], name: str) -> Response[Any]:
        body = await request.body()
        headers = dict(request.headers.items())
        webhook_id = headers.get("webhook-id", "")
        if current.fail_next > 0:
            current.fail_next -= 1
            if current.hang_seconds:
                await asyncio.sleep(current.hang_seconds)
            current.received.append(
                Received(name, webhook_id, False, False, current.fail_status, "fault", None)
            )
            return Response({"error": "injected fault"}, status_code=current.fail_status)
        secret = current.secrets.get(name)
        try:
            if secret is None:
                raise WebhookVerificationError("no secret set for this endpoint")
            verify_webhook(secret, headers, body)
        except WebhookVerificationError as exc:
            current.received.append(Received(name, webhook_id, False, False, 401, str(exc), None))
            return Response({"error": str(exc)}, status_code=401)
        duplicate = any(r.verified and r.webhook_id == webhook_id for r in current.received)
        current.received.append(
            Received(name, webhook_id, True, duplicate, 204, None, json.loads(body))
        )
        return Response(None, status_code=HTTP_204_NO_CONTENT)

    @put("/_sandbox/endpoints/{name:str}", status_code=HTTP_204_NO_CONTENT)
    async def set_secret(name: str, data: dict[str, str]) -> None:
        current.secrets[name] = data["secret"]

    @post("/_sandbox/faults", status_code=HTTP_204_NO_CONTENT)
    async def faults(data: dict[str, Any]) -> None:
        current.fail_next = int(data.get("fail_next", 0))
        current.fail_status = int(data.get("status", 503))
        current.hang_seconds = float(data.get("hang_seconds", 0.0))

    @get("/_sandbox/received")
    async def received(name: str | None = None) -> list[dict[str, Any]]:
        return [asdict(r) for r in current.received if name is None or r.name == name]

    @delete("/_sandbox/received", status_code=HTTP_204_NO_CONTENT)
    async def clear() -> None:
        current.received.clear()

    @get("/healthz", sync_to_thread=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar(
        route_handlers=[hook, set_secret, faults, received, clear, healthz], openapi_config=None
    )
