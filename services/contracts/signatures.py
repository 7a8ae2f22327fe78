"""Checking a hub-signed signature: the JWS against the hub's JWKS, and what it says.

A signature is valid when the JWS is the hub's (type ``hub-signature+jws``, EdDSA, a key the
hub publishes, the hub as issuer), and its claims name this contract, the hash of the document
as stored *now*, and the signer and time the service recorded. A stored document changed after
signing (tampered with) has another hash, so every signature over it fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import jwt

__all__ = ["SIGNATURE_TYP", "verify_signature"]

#: The hub's ``typ`` of a signature JWS (``hub.signing.jws``).
SIGNATURE_TYP: Final = "hub-signature+jws"
_ALGORITHM: Final = "EdDSA"


def verify_signature(
    jws: str,
    *,
    key_of: Callable[[str], Any | None],
    issuer: str,
    contract_id: str,
    document_hash: str,
    signer: dict[str, Any],
    signed_at: str,
) -> list[str]:
    """Every problem of the signature (none: it verifies)."""
    try:
        header = jwt.get_unverified_header(jws)
    except jwt.PyJWTError:
        return ["jws_malformed"]
    if header.get("typ") != SIGNATURE_TYP or header.get("alg") != _ALGORITHM:
        return ["jws_not_a_hub_signature"]
    kid = header.get("kid")
    key = key_of(kid) if isinstance(kid, str) and kid else None
    if key is None:
        return ["jws_key_unknown"]
    try:
        claims = jwt.decode(
            jws,
            key,
            algorithms=[_ALGORITHM],
            issuer=issuer,
            options={"require": ["iss", "iat", "jti"], "verify_aud": False},
        )
    except jwt.PyJWTError:
        return ["jws_signature_invalid"]
    except (ValueError, TypeError):  # a key of the wrong type
        return ["jws_key_unusable"]
    problems: list[str] = []
    if claims.get("contract_id") != contract_id:
        problems.append("contract_id_mismatch")
    if claims.get("document_hash") != document_hash:
        problems.append("document_hash_mismatch")
    if claims.get("signer") != signer:
        problems.append("signer_mismatch")
    if claims.get("signed_at") != signed_at:
        problems.append("signed_at_mismatch")
    return problems
