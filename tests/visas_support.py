"""A stand-in for the hub at the visa service's only door (httpx.MockTransport), for tests.

It answers what the service calls: the token endpoint, the JWKS with the internal key, the
registrar routes (commercial and civil) and the payments API (idempotent by key, as the hub's
is), and records every call. Internal tokens are minted with the hub's own signer, so the
service verifies them exactly as it would in production.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519

from hub.auth.internal import INTERNAL_TYP

__all__ = ["ISSUER", "FakeHub"]

ISSUER = "http://hub.test"
KID = "internal-test-1"

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
class FakeHub:
    """The hub as the visa service sees it; ``calls`` records (method, path) of every request."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)  # by idempotency key
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    fail_payments: bool = False
    fail_registry: bool = False

    def __post_init__(self) -> None:
        self.key = ed25519.Ed25519PrivateKey.generate()

    def token(
        self,
        subject: str,
        *,
        kind: str = "person",
        establishment: str | None = None,
        memberships: tuple[str, ...] = (),
        delegated: tuple[str, ...] = (),
        roles: tuple[str, ...] = (),
        client_id: str | None = None,
        audience: str = "visas",
        national_id: str | None = None,
        registrations: tuple[str, ...] = (),
    ) -> str:
        """An internal token as the hub mints it, with the affiliation claims."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER, "aud": audience, "sub": subject, "kind": kind, "scope": "",
            "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex, "idp": ISSUER,
        }  # fmt: skip
        for name, value in (
            ("client_id", client_id),
            ("establishment", establishment),
            ("national_id", national_id),
        ):
            if value is not None:
                claims[name] = value
        for name, values in (
            ("memberships", memberships),
            ("delegated_scopes", delegated),
            ("roles", roles),
            ("registrations", registrations),
        ):
            if values:
                claims[name] = sorted(values)
        return jwt.encode(
            claims, self.key, algorithm="EdDSA", headers={"kid": KID, "typ": INTERNAL_TYP}
        )

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": KID, "use": "sig", "alg": "EdDSA"}]}

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.calls.append((request.method, path))
        if path == "/.well-known/jwks.json":
            return httpx.Response(200, json=self.jwks())
        if path == "/oauth2/token":
            return httpx.Response(200, json={"access_token": "svc-token", "expires_in": 300})
        if request.headers.get("authorization") != "Bearer svc-token":
            return httpx.Response(401, json={"code": "invalid_token"})
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
        return httpx.Response(404, json={"code": "route_not_found"})

    def payment_for(self, application_id: str) -> dict[str, Any]:
        return self.payments[f"visa-fee:{application_id}"]
