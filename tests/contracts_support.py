"""A stand-in for the hub at the contracts service's only door (httpx.MockTransport), for tests.

It answers what the service calls: the token endpoint, the JWKS with the internal key, the
commercial registry route (purpose ``employment-contract``) and the signing endpoint. The
signing endpoint does what the hub's does (``hub.signing``): it verifies the signer's internal
token with the hub's key and signs with :func:`hub.signing.jws.sign_document`, so the JWS the
service stores and verifies is the real format. Internal tokens are minted with the hub's
own token format, so the service verifies them exactly as in production.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519

from hub.auth.internal import INTERNAL_TYP, InternalTokenVerifier
from hub.errors import HubError
from hub.signing.jws import Signer, sign_document

__all__ = ["ESTABLISHMENTS", "ISSUER", "ContractsHub"]

ISSUER = "http://hub.test"
KID = "internal-test-1"

ESTABLISHMENTS: dict[str, dict[str, Any]] = {
    "4030000001": {"cr_number": "4030000001", "name": "Demo Trading Co", "status": "active"},
    "4030000002": {"cr_number": "4030000002", "name": "Falcon Contracting Est",
                   "status": "suspended"},
    "4030000003": {"cr_number": "4030000003", "name": "Old Mill Co", "status": "struck_off"},
    "4030000005": {"cr_number": "4030000005", "name": "Tiny Shop", "status": "active"},
}  # fmt: skip


@dataclass
class ContractsHub:
    """The hub as the contracts service sees it; ``calls`` records (method, path)."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    signed: list[dict[str, Any]] = field(default_factory=list)
    fail_registry: bool = False
    fail_signing: bool = False
    #: Sign as someone else than the token says (a hub that is not the hub).
    forge_signer: str | None = None

    def __post_init__(self) -> None:
        self.key = ed25519.Ed25519PrivateKey.generate()
        self._verifier = InternalTokenVerifier(
            lambda kid: self.key.public_key() if kid == KID else None,
            issuer=ISSUER,
            audience="contracts",
            cache_size=0,
        )

    def token(
        self,
        subject: str,
        *,
        kind: str = "person",
        establishment: str | None = None,
        memberships: tuple[str, ...] = (),
        delegated: tuple[str, ...] = (),
        client_id: str | None = None,
        audience: str = "contracts",
        idp: str = ISSUER,
    ) -> str:
        """An internal token as the hub mints it, with the affiliation claims."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER, "aud": audience, "sub": subject, "kind": kind, "scope": "",
            "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex, "idp": idp,
        }  # fmt: skip
        for name, value in (("client_id", client_id), ("establishment", establishment)):
            if value is not None:
                claims[name] = value
        for name, values in (("memberships", memberships), ("delegated_scopes", delegated)):
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
        if path.startswith("/api/registry/v1/establishments/"):
            if self.fail_registry:
                return httpx.Response(503, json={"code": "adapter_unavailable", "detail": "down"})
            assert request.url.params.get("purpose") == "employment-contract"
            record = ESTABLISHMENTS.get(path.rsplit("/", 1)[1])
            if record is None:
                return httpx.Response(404, json={"code": "record_not_found"})
            return httpx.Response(200, json=record)
        if path == "/api/signatures/v1/sign" and request.method == "POST":
            return self._sign(json.loads(request.content))
        return httpx.Response(404, json={"code": "route_not_found"})

    def _sign(self, body: dict[str, Any]) -> httpx.Response:
        if self.fail_signing:
            return httpx.Response(503, json={"code": "service_unavailable", "detail": "down"})
        try:
            principal = self._verifier.verify(body["signer_token"])
        except HubError as exc:
            return httpx.Response(401, json={"code": exc.code, "detail": str(exc)})
        signer = Signer.of(principal, body.get("on_behalf_of"))
        if self.forge_signer is not None:
            signer = Signer(kind="person", id=self.forge_signer, issuer=ISSUER)
        signed_at = datetime.now(UTC).replace(microsecond=0)
        jws = sign_document(
            kid=KID,
            key=self.key,
            issuer=ISSUER,
            contract_id=body["contract_id"],
            document_hash=body["document_hash"],
            signer=signer,
            signed_at=signed_at,
        )
        self.signed.append(body)
        return httpx.Response(
            200,
            json={"jws": jws, "kid": KID, "signer": signer.as_dict(),
                  "signed_at": signed_at.isoformat()},
        )  # fmt: skip
