"""The hub's published keys, held by a service so it can verify internal tokens offline.

A service gives :meth:`HubKeys.key` to :class:`~hub.auth.internal.InternalTokenVerifier`. The
keys are fetched from the hub's ``/.well-known/jwks.json`` by :meth:`refresh`, which the
service's lifespan runs in a loop (:meth:`run`): soon after start (the hub may come up after
the service), then every ``interval`` seconds, and at once when a token names a key not yet
seen (a rotation), at most every ``min_refresh`` seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import structlog

from hub._aio import wait_set

__all__ = ["HubKeys"]

log = structlog.get_logger(__name__)


class HubKeys:
    """Public keys of the hub by ``kid``, refreshed in the background."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        *,
        interval: float = 300.0,
        min_refresh: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._url = url
        self._interval = interval
        self._min_refresh = min_refresh
        self._clock = clock
        self._keys: dict[str, Any] = {}
        self._last = float("-inf")
        self._wanted = asyncio.Event()

    @property
    def loaded(self) -> bool:
        return bool(self._keys)

    def key(self, kid: str) -> Any | None:
        """The key ``kid``; an unknown one asks the refresher to fetch the keys again."""
        found = self._keys.get(kid)
        if found is None:
            self._wanted.set()
        return found

    async def refresh(self) -> bool:
        """Fetch the hub's JWKS now; False (keeping the old keys) when the hub did not answer."""
        self._last = self._clock()
        try:
            answer = await self._client.get(self._url)
            answer.raise_for_status()
            document = answer.json()
        except (httpx.HTTPError, json.JSONDecodeError) as exc:
            log.warning("hub_keys.fetch_failed", url=self._url, error=repr(exc))
            return False
        keys: dict[str, Any] = {}
        for item in document.get("keys", []) if isinstance(document, dict) else []:
            try:
                keys[str(item["kid"])] = jwt.PyJWK(item).key
            except (KeyError, jwt.PyJWKError, jwt.InvalidKeyError):
                continue
        if keys:
            self._keys = keys
        return bool(keys)

    async def run(self) -> None:
        """Keep the keys fresh until cancelled."""
        delay = 0.2
        while True:
            ok = await self.refresh()
            wait = self._interval if ok else delay
            delay = min(delay * 2, 5.0)
            await wait_set(self._wanted, wait)
            self._wanted.clear()
            pause = self._min_refresh - (self._clock() - self._last)
            if pause > 0:
                await asyncio.sleep(pause)
