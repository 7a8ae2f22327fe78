"""The one place that chooses back-end implementations from the settings."""

from __future__ import annotations

from collections.abc import Callable

from hub.backends.ephemeral.base import EphemeralStore
from hub.backends.ephemeral.memory import MemoryEphemeralStore
from hub.backends.ephemeral.redis import RedisEphemeralStore
from hub.backends.events.amqp import (
    DEFAULT_DEAD_LETTER_EXCHANGE,
    DEFAULT_EXCHANGE,
    AmqpEventBus,
)
from hub.backends.events.base import EventBus
from hub.backends.events.memory import MemoryEventBus
from hub.backends.notifier.base import ConfigNotifier
from hub.backends.notifier.memory import MemoryConfigNotifier
from hub.backends.notifier.redis import DEFAULT_CHANNEL, RedisConfigNotifier
from hub.ratelimit.base import FallbackMode, RateLimitStore
from hub.ratelimit.fallback import FallbackRateLimitStore
from hub.ratelimit.memory import MemoryRateLimitStore
from hub.ratelimit.redis import RedisRateLimitStore
from hub.settings import Settings

__all__ = ["build_ephemeral_store", "build_event_bus", "build_limiter", "build_notifier"]


def build_limiter(
    settings: Settings,
    *,
    on_unavailable: Callable[[FallbackMode], None] | None = None,
    on_engaged: Callable[[bool], None] | None = None,
) -> RateLimitStore:
    """Redis (shared by every replica) when ``HUB_REDIS_URL`` is set, in-process otherwise.

    Redis comes wrapped in its fallback; every worker process of every replica decides alone
    there, so each gets ``1 / (HUB_REPLICAS * HUB_WORKERS)`` of a limit. The hooks feed metrics.
    """
    if settings.redis_url:
        return FallbackRateLimitStore(
            RedisRateLimitStore.from_url(settings.redis_url),
            replicas=settings.replicas * settings.workers,
            on_unavailable=on_unavailable,
            on_engaged=on_engaged,
        )
    return MemoryRateLimitStore()


def build_notifier(settings: Settings, *, channel: str | None = None) -> ConfigNotifier:
    """Redis pub/sub when ``HUB_REDIS_URL`` is set, in-process otherwise.

    The channel is ``HUB_CONFIG_CHANNEL`` unless given (tests isolate themselves with it).
    """
    if settings.redis_url:
        return RedisConfigNotifier(
            settings.redis_url, channel=channel or settings.config_channel or DEFAULT_CHANNEL
        )
    return MemoryConfigNotifier()


def build_event_bus(
    settings: Settings,
    *,
    exchange: str = DEFAULT_EXCHANGE,
    dead_letter_exchange: str = DEFAULT_DEAD_LETTER_EXCHANGE,
) -> EventBus:
    """RabbitMQ when ``HUB_AMQP_URL`` is set, in-process otherwise (names overridable for tests)."""
    if settings.amqp_url:
        return AmqpEventBus(
            settings.amqp_url, exchange=exchange, dead_letter_exchange=dead_letter_exchange
        )
    return MemoryEventBus()


def build_ephemeral_store(settings: Settings) -> EphemeralStore:
    """Redis (seen by every replica) when ``HUB_REDIS_URL`` is set, in-process otherwise."""
    if settings.redis_url:
        return RedisEphemeralStore.from_url(settings.redis_url)
    return MemoryEphemeralStore()
