"""The live upstream pools, carried across configuration versions.

:meth:`UpstreamRegistry.apply` is called with the upstreams of each new configuration version.
A pool whose spec is unchanged is kept as it is (breakers, health, keep-alive connections); a
new or changed spec gets a fresh pool with its own :class:`aiohttp.ClientSession` and health
checker. A pool that is dropped or replaced is retired in the background: it is closed once its
leases are all released, or after ``grace_seconds``, so requests still being served by the old
version finish normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import aiohttp

from hub.config.model import UpstreamSpec
from hub.upstream.health import HealthChangeListener, HealthChecker
from hub.upstream.pool import BreakerListener, UpstreamPool

__all__ = ["ConnectorFactory", "UpstreamRegistry", "default_connector"]

logger = logging.getLogger(__name__)

ConnectorFactory = Callable[[UpstreamSpec], aiohttp.BaseConnector]
"""Builds the connector of a pool's session (tests and TLS settings plug in here)."""

# The proxy forwards the client's own headers; aiohttp must not invent any. Accept-Encoding in
# particular: with auto_decompress off, a default "gzip, deflate" would hand the client a body
# encoded in a way it never asked for.
_SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")


@dataclass(slots=True, kw_only=True)
class _Entry:
    pool: UpstreamPool
    checker: HealthChecker | None


def default_connector(spec: UpstreamSpec) -> aiohttp.BaseConnector:
    """A keep-alive TCP connector sized by the upstream's spec."""
    return aiohttp.TCPConnector(
        limit=spec.max_connections,
        limit_per_host=0,
        keepalive_timeout=spec.keepalive_seconds,
        enable_cleanup_closed=False,
        ttl_dns_cache=300,
    )


class UpstreamRegistry:
    """Owns every pool's session and health checker; created and closed in the app's lifespan."""

    def __init__(
        self,
        *,
        connector_factory: ConnectorFactory | None = None,
        grace_seconds: float = 30.0,
        on_breaker_change: BreakerListener | None = None,
        on_health_change: HealthChangeListener | None = None,
    ) -> None:
        self._connector_factory = connector_factory or default_connector
        self._grace_seconds = grace_seconds
        self._on_breaker_change = on_breaker_change
        self._on_health_change = on_health_change
        self._entries: dict[str, _Entry] = {}
        self._pools: Mapping[str, UpstreamPool] = MappingProxyType({})
        self._retiring: dict[asyncio.Task[None], _Entry] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def pools(self) -> Mapping[str, UpstreamPool]:
        """The current pools by upstream id (a read-only view replaced on every apply)."""
        return self._pools

    @property
    def retiring(self) -> int:
        """Pools replaced or removed but not yet closed."""
        return len(self._retiring)

    def get(self, upstream_id: str) -> UpstreamPool | None:
        """The current pool of ``upstream_id``, if any."""
        return self._pools.get(upstream_id)

    async def apply(self, specs: Sequence[UpstreamSpec]) -> Mapping[str, UpstreamPool]:
        """Make the pools match ``specs``; returns the new mapping (also kept as :attr:`pools`)."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("the upstream registry is closed")
            entries: dict[str, _Entry] = {}
            created: list[_Entry] = []
            try:
                for spec in specs:
                    if spec.id in entries:
                        raise ValueError(f"upstream {spec.id!r} is listed twice")
                    current = self._entries.get(spec.id)
                    if current is not None and current.pool.spec == spec:
                        entries[spec.id] = current
                    else:
                        entries[spec.id] = entry = self._create(spec)
                        created.append(entry)
            except BaseException:
                # All or nothing: the previous pools stay in service untouched.
                for entry in created:
                    await _close(entry)
                raise
            for upstream_id, old in self._entries.items():
                if entries.get(upstream_id) is not old:
                    self._retire(old)
            self._entries = entries
            self._pools = MappingProxyType({k: e.pool for k, e in entries.items()})
            return self._pools

    async def aclose(self) -> None:
        """Stop every health checker and close every session, retiring ones included."""
        async with self._lock:
            self._closed = True
            entries, self._entries = list(self._entries.values()), {}
            self._pools = MappingProxyType({})
        retiring = dict(self._retiring)
        for task in retiring:
            task.cancel()
        await asyncio.gather(*retiring, return_exceptions=True)
        # A task cancelled before its first step never ran its finally: close here as well.
        for entry in [*entries, *retiring.values()]:
            await _close(entry)

    def _create(self, spec: UpstreamSpec) -> _Entry:
        # The pool first: a bad target URL must fail before a session exists to leak.
        pool = UpstreamPool(spec, on_breaker_change=self._on_breaker_change)
        pool.session = session = aiohttp.ClientSession(
            connector=self._connector_factory(spec),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            # Every timeout comes from the route, per request.
            timeout=aiohttp.ClientTimeout(),
        )
        checker = None
        if spec.health_check is not None:
            checker = HealthChecker(pool, session, on_change=self._on_health_change)
            checker.start()
        return _Entry(pool=pool, checker=checker)

    def _retire(self, entry: _Entry) -> None:
        task = asyncio.create_task(
            self._drain_and_close(entry), name=f"retire-upstream:{entry.pool.spec.id}"
        )
        self._retiring[task] = entry
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._retiring.pop(task, None)

    async def _drain_and_close(self, entry: _Entry) -> None:
        pool = entry.pool
        try:
            async with asyncio.timeout(self._grace_seconds):
                await pool.wait_idle()
        except TimeoutError:
            logger.warning(
                "upstream %s retired with %d requests still in flight after %.0f s",
                pool.spec.id,
                pool.in_flight,
                self._grace_seconds,
            )
        finally:
            await _close(entry)


async def _close(entry: _Entry) -> None:
    if entry.checker is not None:
        await entry.checker.stop()
    session = entry.pool.session
    if session is not None and not session.closed:
        with contextlib.suppress(aiohttp.ClientError, OSError):
            await session.close()
