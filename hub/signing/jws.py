"""The hub's signature over a signed document: a compact JWS of who signed which hash, when.

A domain service (the contracts service) computes the SHA-256 of a document's canonical JSON
and asks the hub to sign ``{contract_id, document_hash, signer, signed_at}``. The signer is the
principal the hub itself authenticated (from the internal token the hub minted for the person
or client who signed), never what the request body claims. The JWS is signed with the hub's
``signature`` EdDSA key (which stays in the JWKS after it retires, so old signatures still
verify), so anyone verifies it against the hub's JWKS; its ``typ`` differs from the internal
token's, so one can never pass for the other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import jwt

from hub.auth.principal import Principal

__all__ = ["ALGORITHM", "SIGNATURE_TYP", "Signer", "sign_document"]

#: The ``typ`` of a signature JWS (an internal token's is ``hub-principal+jwt``).
SIGNATURE_TYP: Final = "hub-signature+jws"
ALGORITHM: Final = "EdDSA"


@dataclass(frozen=True, slots=True, kw_only=True)
class Signer:
    """Who signed, as the hub authenticated them, and for which establishment."""

    kind: str
    id: str
    issuer: str
    client_id: str | None = None
    on_behalf_of: str | None = None

    @classmethod
    def of(cls, principal: Principal, on_behalf_of: str | None) -> Signer:
        return cls(
            kind=principal.kind,
            id=principal.subject,
            issuer=principal.issuer,
            client_id=principal.client_id,
            on_behalf_of=on_behalf_of,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "idp": self.issuer,
            "client_id": self.client_id,
            "on_behalf_of": self.on_behalf_of,
        }


def sign_document(
    *,
    kid: str,
    key: Any,
    issuer: str,
    contract_id: str,
    document_hash: str,
    signer: Signer,
    signed_at: datetime,
) -> str:
    """The compact JWS over the signature's claims, with the hub's key ``kid``."""
    claims = {
        "iss": issuer,
        "iat": int(signed_at.timestamp()),
        "jti": uuid.uuid4().hex,
        "contract_id": contract_id,
        "document_hash": document_hash,
        "signer": signer.as_dict(),
        "signed_at": signed_at.isoformat(),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid, "typ": SIGNATURE_TYP})
