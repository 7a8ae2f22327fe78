"""API keys at the gateway: ``hub_<prefix>_<secret>``, looked up by prefix, checked by hash.

Only the SHA-256 of the whole plaintext is stored; a key is high-entropy (32 random bytes), so a
fast hash is enough and a slow one would only cost CPU. The comparison is constant-time. Keys
that verified are cached briefly by prefix, so a busy client does not cost a database lookup per
request; revoking a key calls :meth:`ApiKeyVerifier.invalidate` (on every replica) and the cache
horizon bounds how long a revocation that missed a replica can go unnoticed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

from hub.auth.principal import Principal, invalid_token

__all__ = ["ApiKeyRecordLike", "ApiKeyVerifier", "hash_api_key", "parse_api_key"]

# prefix: 10 lowercase hex or base32 characters; secret: token_urlsafe output (43 for 32 bytes)
_FORMAT: Final = re.compile(r"hub_([a-z0-9]{10})_([A-Za-z0-9_-]{16,128})")


class ApiKeyRecordLike(Protocol):
    """What the verifier reads of a stored key (hub.db.identity_store.ApiKeyRecord has it)."""

    @property
    def id(self) -> str: ...
    @property
    def prefix(self) -> str: ...
    @property
    def secret_hash(self) -> str: ...
    @property
    def client_id(self) -> str | None: ...
    @property
    def name(self) -> str: ...
    @property
    def scopes(self) -> tuple[str, ...]: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def revoked_at(self) -> datetime | None: ...


def parse_api_key(text: str) -> tuple[str, str]:
    """``(prefix, full)`` of an API key; anything not in the key format is InvalidToken."""
    match = _FORMAT.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise invalid_token("malformed API key")
    return match.group(1), text


def hash_api_key(full: str) -> str:
    """The stored form of an API key: SHA-256 hex of the whole plaintext."""
    return hashlib.sha256(full.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class _Verified:
    secret_hash: str
    principal: Principal
    until: float


class ApiKeyVerifier:
    """Turns an API key into a Principal of kind ``api_key``, or raises InvalidToken."""

    def __init__(
        self,
        lookup: Callable[[str], Awaitable[ApiKeyRecordLike | None]],
        *,
        cache_seconds: float = 30,
        max_entries: int = 10_000,
        issuer: str = "hub",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if cache_seconds < 0 or max_entries < 0:
            raise ValueError("cache_seconds and max_entries must not be negative")
        self._lookup = lookup
        self._cache_seconds = cache_seconds
        self._max_entries = max_entries
        self._issuer = issuer
        self._clock = clock
        self._cache: OrderedDict[str, _Verified] = OrderedDict()

    def __len__(self) -> int:
        """How many verified keys are cached."""
        return len(self._cache)

    async def verify(self, text: str) -> Principal:
        """The principal of the API key ``text``; InvalidToken when unknown, wrong or spent."""
        prefix, full = parse_api_key(text)
        digest = hash_api_key(full)
        now = self._clock()
        hit = self._cache.get(prefix)
        if hit is not None:
            if now < hit.until and hmac.compare_digest(hit.secret_hash, digest):
                self._cache.move_to_end(prefix)
                return hit.principal
            if now >= hit.until:
                del self._cache[prefix]
        record = await self._lookup(prefix)
        if record is None or record.prefix != prefix:
            raise invalid_token("unknown API key")
        if not hmac.compare_digest(record.secret_hash.encode(), digest.encode()):
            raise invalid_token("invalid API key")
        if record.revoked_at is not None:
            raise invalid_token("API key revoked")
        expires_at = _epoch(record.expires_at)
        if expires_at is not None and expires_at <= now:
            raise invalid_token("API key expired")
        principal = Principal(
            subject=record.id,
            kind="api_key",
            issuer=self._issuer,
            client_id=record.client_id,
            scopes=frozenset(record.scopes),
            expires_at=expires_at,
        )
        if self._max_entries and self._cache_seconds:
            until = now + self._cache_seconds
            if expires_at is not None:
                until = min(until, expires_at)
            self._cache.pop(prefix, None)
            if len(self._cache) >= self._max_entries:
                self._cache.popitem(last=False)
            self._cache[prefix] = _Verified(secret_hash=digest, principal=principal, until=until)
        return principal

    def invalidate(self, prefix: str) -> None:
        """Forget the cached verification of ``prefix`` (the key was revoked or rotated)."""
        self._cache.pop(prefix, None)

    def clear(self) -> None:
        """Forget every cached verification."""
        self._cache.clear()


def _epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # stored naive timestamps are UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
