"""Authentication at the gateway: bearer JWTs, API keys, and the principal passed upstream."""

from __future__ import annotations

from hub.auth.apikeys import ApiKeyRecordLike, ApiKeyVerifier, hash_api_key, parse_api_key
from hub.auth.internal import (
    INTERNAL_TYP,
    InternalTokenSigner,
    InternalTokenVerifier,
)
from hub.auth.jwks import JwksCache, load_jwks
from hub.auth.principal import ANONYMOUS, Kind, Principal
from hub.auth.verify import ASYMMETRIC_ALGORITHMS, IssuerConfig, LocalKeys, TokenVerifier

__all__ = [
    "ANONYMOUS",
    "ASYMMETRIC_ALGORITHMS",
    "INTERNAL_TYP",
    "ApiKeyRecordLike",
    "ApiKeyVerifier",
    "InternalTokenSigner",
    "InternalTokenVerifier",
    "IssuerConfig",
    "JwksCache",
    "Kind",
    "LocalKeys",
    "Principal",
    "TokenVerifier",
    "hash_api_key",
    "load_jwks",
    "parse_api_key",
]
