"""The sandbox IdP's one RSA signing key, generated at start and never stored."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = ["ID_TOKEN_ALGORITHM", "SigningKey"]

ID_TOKEN_ALGORITHM: Final = "RS256"  # noqa: S105 - an algorithm name
_RSA_BITS: Final = 2048


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64url(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An RSA key pair; its kid is the RFC 7638 thumbprint of the public key."""

    private: rsa.RSAPrivateKey = field(repr=False)
    kid: str
    public_jwk: dict[str, str]

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh RSA 2048 key."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
        numbers = private.public_key().public_numbers()
        members = {"e": _int_b64url(numbers.e), "kty": "RSA", "n": _int_b64url(numbers.n)}
        canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
        kid = _b64url(hashlib.sha256(canonical).digest())
        jwk = {**members, "kid": kid, "use": "sig", "alg": ID_TOKEN_ALGORITHM}
        return cls(private, kid, jwk)

    def sign(self, claims: dict[str, Any]) -> str:
        """``claims`` as a compact RS256 JWS whose header names this key."""
        return jwt.encode(
            claims, self.private, algorithm=ID_TOKEN_ALGORITHM, headers={"kid": self.kid}
        )

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWK set that verifies this key's signatures."""
        return {"keys": [dict(self.public_jwk)]}
