"""A stand-in for the hub at the contracts service's only door (httpx.MockTransport), for tests.

Built on :class:`tests.standin_support.HubStandIn` (the token endpoint, the JWKS with the
internal key, tokens in the hub's own format, every call recorded), it answers the commercial
registry route (purpose ``employment-contract``) and the signing endpoint. The signing endpoint
does what the hub's does (``hub.signing``): it verifies the signer's internal token with the
hub's key and signs with :func:`hub.signing.jws.sign_document`, so the JWS the service stores
and verifies is the real format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from hub.auth.internal import InternalTokenVerifier
from hub.errors import HubError
from hub.signing.jws import Signer, sign_document
from tests.standin_support import ISSUER, KID, HubStandIn

__all__ = ["ESTABLISHMENTS", "ISSUER", "ContractsHub"]

ESTABLISHMENTS: dict[str, dict[str, Any]] = {
    "4030000001": {"cr_number": "4030000001", "name": "Demo Trading Co", "status": "active"},
    "4030000002": {"cr_number": "4030000002", "name": "Falcon Contracting Est",
                   "status": "suspended"},
    "4030000003": {"cr_number": "4030000003", "name": "Old Mill Co", "status": "struck_off"},
    "4030000005": {"cr_number": "4030000005", "name": "Tiny Shop", "status": "active"},
}  # fmt: skip


@dataclass
class ContractsHub(HubStandIn):
    """The hub as the contracts service sees it; ``calls`` records (method, path)."""

    audience = "contracts"

    signed: list[dict[str, Any]] = field(default_factory=list)
    fail_registry: bool = False
    fail_signing: bool = False
    #: Sign as someone else than the token says (a hub that is not the hub).
    forge_signer: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._verifier = InternalTokenVerifier(
            lambda kid: self.key.public_key() if kid == KID else None,
            issuer=ISSUER,
            audience="contracts",
            cache_size=0,
        )

    def route(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
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
        return super().route(request)

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
