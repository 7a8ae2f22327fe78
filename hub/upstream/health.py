"""Active health checks: one task per pool probes every target's health endpoint.

Each round sends ``GET origin + base_path + health_check.path`` to every target at once, with
the configured timeout and without following redirects; a 2xx or 3xx answer is a success,
anything else (other status, refused connection, timeout, protocol error) a failure. A target
turns unhealthy after ``unhealthy_threshold`` failures in a row and healthy again after
``healthy_threshold`` successes in a row; targets start healthy, so a new pool serves at once.
No aiohttp exception leaves this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import aiohttp

from hub.config.model import HealthCheckSpec
from hub.upstream.pool import Target, UpstreamPool

__all__ = ["HealthChangeListener", "HealthChecker"]

logger = logging.getLogger(__name__)

HealthChangeListener = Callable[[Target, bool], None]
"""Called as ``(target, healthy)`` when a target's health flips."""

# Health bodies are tiny; read this much so the connection can go back to the keep-alive pool.
_MAX_BODY = 64 * 1024


class HealthChecker:
    """Runs the active health checks of one pool until stopped."""

    def __init__(
        self,
        pool: UpstreamPool,
        session: aiohttp.ClientSession,
        *,
        on_change: HealthChangeListener | None = None,
    ) -> None:
        if pool.spec.health_check is None:
            raise ValueError(f"upstream {pool.spec.id!r} has no health_check")
        self._pool = pool
        self._spec: HealthCheckSpec = pool.spec.health_check
        self._session = session
        self._on_change = on_change
        self._timeout = aiohttp.ClientTimeout(total=self._spec.timeout)
        self._successes = [0] * len(pool.targets)
        self._failures = [0] * len(pool.targets)
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the background task is alive."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start checking in the background (first round at once); a second call is a no-op."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"health-check:{self._pool.spec.id}")

    async def stop(self) -> None:
        """Cancel the background task and wait for it to end."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def check_once(self) -> None:
        """Probe every target once and apply the thresholds."""
        targets = self._pool.targets
        results = await asyncio.gather(*(self._probe(target) for target in targets))
        for target, ok in zip(targets, results, strict=True):
            self._record(target, ok)

    async def _run(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception:
                # A failing listener must not stop the checks of the whole pool.
                logger.exception("health check round of %s failed", self._pool.spec.id)
            await asyncio.sleep(self._spec.interval)

    async def _probe(self, target: Target) -> bool:
        url = target.url(self._spec.path)
        try:
            async with self._session.get(
                url, timeout=self._timeout, allow_redirects=False
            ) as response:
                await response.content.read(_MAX_BODY)
                return 200 <= response.status < 400
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            # ValueError: aiohttp rejects some malformed answers with it rather than ClientError.
            logger.debug("health check %s failed: %r", url, exc)
            return False

    def _record(self, target: Target, ok: bool) -> None:
        index = target.index
        if ok:
            self._failures[index] = 0
            self._successes[index] += 1
            if not target.healthy and self._successes[index] >= self._spec.healthy_threshold:
                self._flip(target, healthy=True)
        else:
            self._successes[index] = 0
            self._failures[index] += 1
            if target.healthy and self._failures[index] >= self._spec.unhealthy_threshold:
                self._flip(target, healthy=False)

    def _flip(self, target: Target, *, healthy: bool) -> None:
        target.healthy = healthy
        logger.warning(
            "upstream %s target %s is now %s",
            self._pool.spec.id,
            target.origin,
            "healthy" if healthy else "unhealthy",
        )
        if self._on_change is not None:
            self._on_change(target, healthy)
