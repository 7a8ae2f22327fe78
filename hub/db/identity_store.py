"""Repositories of the identity slice: keys, OAuth clients, API keys, jti ledgers and SSO state.

Every store takes the engine (and, for tests, a clock) in its constructor and hands out frozen
dataclasses. Client secrets and API keys are 32 random bytes shown once to their owner and kept
only as SHA-256 hex: a slow password hash buys nothing against secrets of that entropy.

Each store lives in its own module (:mod:`hub.db.key_store`, :mod:`hub.db.client_store`,
:mod:`hub.db.api_key_store`, :mod:`hub.db.jti_ledgers`, :mod:`hub.db.refresh_store`,
:mod:`hub.db.consent_store`); this module gathers them in one place.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from hub.db._identity_common import Clock, hash_secret, secret_matches
from hub.db.api_key_store import API_KEY_PATTERN, ApiKeyRecord, ApiKeyStore, api_key_prefix
from hub.db.client_store import AuthMethod, ClientStore, ClientType, OAuthClient
from hub.db.consent_store import Consent, ConsentStore
from hub.db.jti_ledgers import AssertionLedger, RevocationStore
from hub.db.key_store import AlgName, KeyStore, KeyUse, StoredKey
from hub.db.refresh_store import RefreshToken, RefreshTokenStore

# AsyncEngine is re-exported so modules outside hub/db (which may not import SQLAlchemy) can
# annotate the engine they hand to these stores.
__all__ = [
    "API_KEY_PATTERN",
    "AlgName",
    "ApiKeyRecord",
    "ApiKeyStore",
    "AssertionLedger",
    "AsyncEngine",
    "AuthMethod",
    "ClientStore",
    "ClientType",
    "Clock",
    "Consent",
    "ConsentStore",
    "KeyStore",
    "KeyUse",
    "OAuthClient",
    "RefreshToken",
    "RefreshTokenStore",
    "RevocationStore",
    "StoredKey",
    "api_key_prefix",
    "hash_secret",
    "secret_matches",
]
