"""A stand-in for the hub at the visa service's only door (httpx.MockTransport), for tests.

Built on :class:`tests.standin_support.HubStandIn` (the token endpoint, the JWKS with the
internal key, tokens in the hub's own format, every call recorded), it answers the registrar
routes (commercial and civil) and the payments API (idempotent by key, as the hub's is).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.standin_support import ISSUER, HubStandIn

__all__ = ["ISSUER", "FakeHub"]

ESTABLISHMENTS: dict[str, dict[str, Any]] = {
    "4030000001": {"cr_number": "4030000001", "name": "Demo Trading Co", "sector": "retail",
                   "size": "small", "status": "active", "owner_national_id": "1000000001"},
    "4030000002": {"cr_number": "4030000002", "name": "Falcon Contracting Est",
                   "sector": "construction", "size": "medium", "status": "suspended"},
    "4030000005": {"cr_number": "4030000005", "name": "Tiny Shop", "sector": "retail",
                   "size": "micro", "status": "active"},
}  # fmt: skip
PERSONS: dict[str, dict[str, Any]] = {
    "1000000001": {"national_id": "1000000001", "alive": True},
    "1000000009": {"national_id": "1000000009", "alive": False},
}


@dataclass
class FakeHub(HubStandIn):
    """The hub as the visa service sees it; ``calls`` records (method, path) of every request."""

    audience = "visas"

    payments: dict[str, dict[str, Any]] = field(default_factory=dict)  # by idempotency key
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_payments: bool = False
    fail_registry: bool = False

    def route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.startswith("/api/registry/v1/"):
            if self.fail_registry:
                return httpx.Response(503, json={"code": "adapter_unavailable", "detail": "down"})
            assert request.url.params.get("purpose") == "visa-eligibility"
            kind, _, key = path.removeprefix("/api/registry/v1/").partition("/")
            record = (ESTABLISHMENTS if kind == "establishments" else PERSONS).get(key)
            if record is None:
                return httpx.Response(404, json={"code": "record_not_found"})
            return httpx.Response(200, json=record)
        if path == "/api/payments/v1/payments" and request.method == "POST":
            if self.fail_payments:
                return httpx.Response(503, json={"code": "adapter_unavailable", "detail": "down"})
            key = request.headers["idempotency-key"]
            body = json.loads(request.content)
            if key not in self.payments:
                self.payments[key] = {
                    "id": f"pay_{len(self.payments):024x}",
                    "state": "authorised",
                    "amount": body["amount"],
                    "reference": body["reference"],
                }
            return httpx.Response(201, json=self.payments[key])
        if path.endswith("/refunds") and request.method == "POST":
            key = request.headers["idempotency-key"]
            self.refunds.setdefault(key, json.loads(request.content))
            return httpx.Response(201, json={"id": "re_1", **self.refunds[key]})
        return super().route(request)

    def payment_for(self, application_id: str) -> dict[str, Any]:
        return self.payments[f"visa-fee:{application_id}"]
