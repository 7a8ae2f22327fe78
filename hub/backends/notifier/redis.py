"""Redis pub/sub config notifier: publishes on ``hub:config``, every replica listens.

Pub/sub is fire-and-forget, so a replica that was disconnected may have missed an announcement.
The listener therefore treats every subscription confirmation after the first as a reconnection
and calls the callbacks with :data:`~hub.backends.notifier.base.RESYNC`, whether the reconnection
was redis-py's own retry or this module's backoff loop. A version travels as its number, a
signal as ``signal:<name>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from hub._aio import wait_set
from hub.backends.notifier.base import RESYNC, ConfigNotifier
from hub.errors import BackendUnavailable

__all__ = ["DEFAULT_CHANNEL", "RedisConfigNotifier"]

DEFAULT_CHANNEL = "hub:config"
_SIGNAL = "signal:"

logger = structlog.get_logger(__name__)

# Everything the redis client can raise when the server is unreachable or misbehaves.
_FAILURES = (RedisError, OSError, TimeoutError)


class RedisConfigNotifier(ConfigNotifier):
    """Announces configuration versions over Redis pub/sub and survives Redis going away."""

    def __init__(
        self,
        url: str,
        *,
        channel: str = DEFAULT_CHANNEL,
        start_timeout: float = 2.0,
        operation_timeout: float = 2.0,
        reconnect_initial: float = 0.1,
        reconnect_max: float = 5.0,
        health_check_interval: float = 5.0,
    ) -> None:
        super().__init__()
        self._url = url
        self._channel = channel
        self._start_timeout = start_timeout
        self._operation_timeout = operation_timeout
        self._reconnect_initial = reconnect_initial
        self._reconnect_max = reconnect_max
        self._health_check_interval = health_check_interval
        self._client: aioredis.Redis | None = None
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        # Set when start() gave up waiting: the first subscription then comes "late" and may
        # have missed announcements just like a reconnection.
        self._late_start = False

    @property
    def channel(self) -> str:
        return self._channel

    async def start(self) -> None:
        """Subscribe; waits up to ``start_timeout`` but never fails if Redis is down."""
        if self._client is not None:
            return
        self._client = aioredis.Redis.from_url(
            self._url,
            socket_connect_timeout=self._operation_timeout,
            socket_timeout=self._operation_timeout,
            health_check_interval=self._health_check_interval,
        )
        self._start_dispatch()
        self._listener = asyncio.create_task(self._listen(), name="RedisConfigNotifier.listen")
        if not await wait_set(self._subscribed, self._start_timeout):
            # The hub must start (and serve its current snapshot) without Redis; readiness
            # reports the outage and the listener keeps trying.
            self._late_start = True
            logger.warning("config_notifier.start_unsubscribed", channel=self._channel)

    async def publish(self, version: int) -> None:
        client = self._require_client()
        try:
            async with asyncio.timeout(self._operation_timeout):
                await client.publish(self._channel, str(version))
        except _FAILURES as exc:
            raise BackendUnavailable(f"redis: cannot publish config version: {exc}") from exc

    async def publish_signal(self, name: str) -> None:
        client = self._require_client()
        try:
            async with asyncio.timeout(self._operation_timeout):
                await client.publish(self._channel, _SIGNAL + name)
        except _FAILURES as exc:
            raise BackendUnavailable(f"redis: cannot publish signal {name!r}: {exc}") from exc

    async def check(self) -> None:
        client = self._require_client()
        try:
            async with asyncio.timeout(self._operation_timeout):
                await client.ping()
        except _FAILURES as exc:
            raise BackendUnavailable(f"redis: unreachable: {exc}") from exc

    async def aclose(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        await self._stop_dispatch()
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(*_FAILURES):
                await client.aclose()

    def _require_client(self) -> aioredis.Redis:
        if self._client is None:
            raise BackendUnavailable("config notifier is not running")
        return self._client

    async def _listen(self) -> None:
        """Subscribe and deliver until cancelled; reconnect with capped, jittered backoff."""
        client = self._require_client()
        delay = self._reconnect_initial
        while True:
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._on_message(message)
                        delay = self._reconnect_initial
            except _FAILURES as exc:
                logger.warning(
                    "config_notifier.disconnected",
                    channel=self._channel,
                    error=str(exc) or type(exc).__name__,
                    retry_in=round(delay, 3),
                )
            except Exception:
                # The listener is the replica's only ear: never let it die, whatever happened.
                logger.exception("config_notifier.listener_error", channel=self._channel)
            finally:
                with contextlib.suppress(*_FAILURES):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
            # Jitter spreads the replicas' reconnections; it is not a secret.
            await asyncio.sleep(delay * (1 + random.random() / 2))  # noqa: S311
            delay = min(delay * 2, self._reconnect_max)

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            if self._subscribed.is_set() or self._late_start:
                logger.info("config_notifier.resubscribed", channel=self._channel)
                self._deliver(RESYNC)
            self._subscribed.set()
            return
        if kind != "message":
            return
        data = message.get("data")
        text = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
        if text.startswith(_SIGNAL) and len(text) > len(_SIGNAL):
            self._deliver(text[len(_SIGNAL) :])
            return
        try:
            version = int(text)
        except ValueError:
            logger.warning("config_notifier.bad_message", channel=self._channel, data=repr(data))
            return
        self._deliver(version)
