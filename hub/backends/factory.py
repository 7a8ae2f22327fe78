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
from hub.backends.events.database import DatabaseEventBus
from hub.backends.notifier.base import ConfigNotifier
from hub.backends.notifier.memory import MemoryConfigNotifier
from hub.backends.notifier.redis import DEFAULT_CHANNEL, RedisConfigNotifier
from hub.ratelimit.base import FallbackMode, RateLimitStore
from hub.ratelimit.fallback import FallbackRateLimitStore
from hub.ratelimit.memory import MemoryRateLimitStore
from hub.ratelimit.redis import RedisRateLimitStore
from hub.settings import Settings

__all__ = [
    "build_ephemeral_store",
    "build_event_bus",
    "build_event_bus_for",
    "build_limiter",
    "build_notifier",
    "ephemeral_prefix",
]


def build_limiter(
    settings: Settings,
    *,
    on_unavailable: Callable[[FallbackMode], None] | None = None,
    on_engaged: Callable[[bool], None] | None = None,
) -> RateLimitStore:
    """Redis (shared by every replica) when ``HUB_REDIS_URL`` is set, in-process otherwise.

    Redis comes wrapped in its fallback; every worker process of every replica decides alone
    there, so each gets ``1 / (HUB_REPLICAS * HUB_WORKERS)`` of a limit. The hooks feed metrics.
    The keys are under the events namespace (``hub:rl:`` by default): hubs sharing one Redis
    keep their limits apart as they keep their queues apart.
    """
    if settings.redis_url:
        return FallbackRateLimitStore(
            RedisRateLimitStore.from_url(
                settings.redis_url, prefix=_namespaced(settings.events_namespace, "hub:rl:")
            ),
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
    exchange: str | None = None,
    dead_letter_exchange: str | None = None,
) -> EventBus:
    """RabbitMQ when ``HUB_AMQP_URL`` is set, else the bus on the hub's database.

    The database bus reaches every process that opens the same database (the hub's services
    too), which an in-process bus could not. Exchange names are overridable for tests.
    """
    return build_event_bus_for(
        amqp_url=settings.amqp_url,
        database_url=settings.database_url,
        namespace=settings.events_namespace,
        exchange=exchange,
        dead_letter_exchange=dead_letter_exchange,
    )


def build_event_bus_for(
    *,
    amqp_url: str | None,
    database_url: str | None,
    namespace: str = "hub",
    exchange: str | None = None,
    dead_letter_exchange: str | None = None,
) -> EventBus:
    """The same choice for a domain service, from its own settings: RabbitMQ when it has an
    AMQP URL (under the hub's namespace), else the bus on the hub's database (``database_url``,
    which every process of the system opens).
    """
    if amqp_url:
        return AmqpEventBus(
            amqp_url,
            exchange=exchange or _namespaced(namespace, DEFAULT_EXCHANGE),
            dead_letter_exchange=dead_letter_exchange
            or _namespaced(namespace, DEFAULT_DEAD_LETTER_EXCHANGE),
        )
    if not database_url:
        raise ValueError("an event bus needs an AMQP URL or the shared database's URL")
    return DatabaseEventBus(database_url)


def _namespaced(namespace: str, name: str) -> str:
    """``hub.events`` under namespace ``ns`` is ``ns.events`` (and ``hub:rl:`` is ``ns:rl:``)."""
    return namespace + name.removeprefix("hub")


def ephemeral_prefix(namespace: str) -> str:
    """The Redis key prefix of the ephemeral store of hubs under events namespace ``namespace``."""
    return _namespaced(namespace, "hub:eph:")


def build_ephemeral_store(settings: Settings) -> EphemeralStore:
    """Redis (seen by every replica) when ``HUB_REDIS_URL`` is set, in-process otherwise.

    Its keys are under the events namespace (``hub:eph:`` by default), as the limiter's are.
    """
    if settings.redis_url:
        return RedisEphemeralStore.from_url(
            settings.redis_url, prefix=ephemeral_prefix(settings.events_namespace)
        )
    return MemoryEphemeralStore()
