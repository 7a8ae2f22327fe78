"""Public keys of external issuers, fetched from their JWKS and cached by ``kid``.

A key set is refetched when it is older than ``ttl``, or when a token names a ``kid`` it does
not hold (the issuer may have rotated). Both are rate-limited to one attempt per issuer every
``min_refresh_interval`` seconds, so tokens with made-up ``kid`` values cannot turn the gateway
into a load generator against the issuer. Concurrent callers share one fetch. When a fetch fails
the previous key set stays in use: an issuer's outage must not refuse tokens it signed earlier.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import jwt
import structlog

from hub.auth.principal import invalid_token

if TYPE_CHECKING:
    from hub.auth.verify import IssuerConfig

__all__ = ["JwksCache", "load_jwks"]

logger = structlog.get_logger(__name__)


def load_jwks(document: Any, *, algorithms: Container[str] | None = None) -> dict[str, Any]:
    """Usable public signing keys of a JWKS document, by ``kid``; every other key is skipped.

    Skipped: keys without a string ``kid``, with ``use`` other than ``sig``, symmetric (``oct``)
    keys, keys carrying private material, keys whose declared ``alg`` is not in ``algorithms``
    (when given), and keys pyjwt cannot load. The first key wins when a ``kid`` repeats.
    """
    keys: dict[str, Any] = {}
    entries = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        return keys
    for jwk in entries:
        if not isinstance(jwk, Mapping):
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid or kid in keys:
            continue
        if jwk.get("use", "sig") != "sig" or jwk.get("kty") == "oct" or "d" in jwk:
            continue
        alg = jwk.get("alg")
        if alg is not None and algorithms is not None and alg not in algorithms:
            continue
        try:
            keys[kid] = jwt.PyJWK(dict(jwk)).key
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
    return keys


@dataclass(slots=True)
class _IssuerKeys:
    """One issuer's key set and when it was fetched (or last tried)."""

    keys: dict[str, Any] | None = None
    fetched_at: float = 0.0
    attempted_at: float | None = None
    generation: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class JwksCache:
    """Keys of external issuers by ``kid``, over an httpx client the caller owns."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        ttl: float = 300,
        min_refresh_interval: float = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or min_refresh_interval < 0:
            raise ValueError("ttl must be positive and min_refresh_interval not negative")
        self._client = client
        self._ttl = ttl
        self._min_refresh = min_refresh_interval
        self._clock = clock
        self._issuers: dict[str, _IssuerKeys] = {}

    async def key(self, issuer: IssuerConfig, kid: str) -> Any:
        """The public key ``kid`` of ``issuer``; raises InvalidToken("unknown key") if none."""
        state = self._issuers.get(issuer.issuer)
        if state is None:
            state = self._issuers[issuer.issuer] = _IssuerKeys()
        now = self._clock()
        if state.keys is not None and now - state.fetched_at < self._ttl:
            found = state.keys.get(kid)
            if found is not None:
                return found
        if (
            state.lock.locked()  # a fetch is in flight: wait for its result
            or state.attempted_at is None
            or now - state.attempted_at >= self._min_refresh
        ):
            await self._refresh(issuer, state)
        # after a failed or rate-limited refresh the older (possibly stale) set still answers
        found = state.keys.get(kid) if state.keys is not None else None
        if found is None:
            raise invalid_token("unknown key")
        return found

    async def _refresh(self, issuer: IssuerConfig, state: _IssuerKeys) -> None:
        generation = state.generation
        async with state.lock:
            if state.generation != generation:
                return  # another caller fetched while this one waited for the lock
            state.attempted_at = self._clock()
            keys = await self._fetch(issuer)
            if keys is not None:
                state.keys = keys
                state.fetched_at = self._clock()
            # only a completed attempt counts: if the fetcher was cancelled, a waiter fetches
            state.generation += 1

    async def _fetch(self, issuer: IssuerConfig) -> dict[str, Any] | None:
        if issuer.jwks_uri is None:
            logger.warning("jwks.no_uri", issuer=issuer.issuer)
            return None
        try:
            response = await self._client.get(issuer.jwks_uri)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("jwks.fetch_failed", issuer=issuer.issuer, error=repr(exc))
            return None
        keys = load_jwks(document, algorithms=issuer.algorithms)
        if not keys:
            # an empty or unreadable set is treated as a failed fetch: keep what we had
            logger.warning("jwks.no_usable_keys", issuer=issuer.issuer)
            return None
        return keys
