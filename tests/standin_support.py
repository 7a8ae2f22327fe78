"""The hub at a service's only door (httpx.MockTransport), as the in-process service tests see it.

The part every stand-in shares (``tests/visas_support.py``, ``tests/contracts_support.py``): an
Ed25519 internal key published at the JWKS, the token endpoint, the service's bearer checked on
everything else, and every call recorded. Internal tokens are minted in the hub's own format, so
the service verifies them exactly as in production; a subclass answers its service's routes.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519

from hub.auth.internal import INTERNAL_TYP

__all__ = ["ISSUER", "KID", "HubStandIn"]

ISSUER = "http://hub.test"
KID = "internal-test-1"


@dataclass
class HubStandIn:
    """The hub's token endpoint and keys; ``calls`` records (method, path) of every request."""

    #: the audience of the tokens minted for the service under test
    audience: ClassVar[str]

    calls: list[tuple[str, str]] = field(default_factory=list)

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
        audience: str | None = None,
        national_id: str | None = None,
        registrations: tuple[str, ...] = (),
        idp: str = ISSUER,
    ) -> str:
        """An internal token as the hub mints it, with the affiliation claims."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER, "aud": audience or self.audience, "sub": subject, "kind": kind,
            "scope": "", "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex, "idp": idp,
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
        return self.route(request)

    def route(self, request: httpx.Request) -> httpx.Response:
        """The service's own routes at the hub, past the bearer check."""
        return httpx.Response(404, json={"code": "route_not_found"})
