"""A stand-in for the hub at the notification service's door (httpx.MockTransport), for tests.

It answers the token endpoint, the JWKS (through :class:`tests.visas_support.FakeHub`) and the
two adapter routes the service sends through, ``/api/notify/v1/sms`` and ``/email``: like the
providers behind them, a repeat of a reference is the same message. A channel can be made to
fail (``503``) or to refuse (``400``); every send is recorded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.visas_support import FakeHub

__all__ = ["NotifyHub"]


@dataclass
class NotifyHub(FakeHub):
    """The hub as the notification service sees it."""

    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    failing: dict[str, str] = field(default_factory=dict)  # channel → "fail" | "refuse"
    #: What a status lookup answers, by provider id (unknown: "sent").
    statuses: dict[str, str] = field(default_factory=dict)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if not path.startswith("/api/notify/v1/"):
            return super().handle(request)
        self.calls.append((request.method, path))
        if request.headers.get("authorization") != "Bearer svc-token":
            return httpx.Response(401, json={"code": "invalid_token"})
        channel, _, provider_id = path.removeprefix("/api/notify/v1/").partition("/")
        if request.method == "GET":
            status = self.statuses.get(provider_id, "sent")
            return httpx.Response(
                200, json={"id": provider_id, "reference": "r", "status": status, "to": "x",
                           "accepted_at": "2026-12-03T08:00:00Z"},
            )  # fmt: skip
        mode = self.failing.get(channel)
        if mode == "fail":
            return httpx.Response(503, json={"code": "adapter_unavailable", "detail": "down"})
        if mode == "refuse":
            return httpx.Response(400, json={"code": "invalid_request", "detail": "no"})
        body = json.loads(request.content)
        self.sent.append((channel, body))
        digest = hashlib.sha256(body["reference"].encode()).hexdigest()[:20]
        prefix = "sms" if channel == "sms" else "em"
        return httpx.Response(
            200,
            json={
                "id": f"{prefix}_{digest}",
                "reference": body["reference"],
                "status": "accepted",
                "accepted_at": "2026-12-03T08:00:00Z",
            },
        )

    def sends(self, channel: str) -> list[dict[str, Any]]:
        return [body for sent_channel, body in self.sent if sent_channel == channel]
