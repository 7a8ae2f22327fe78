"""The notification service's settings: one typed object, built once from ``NOTIFICATIONS_*``.

The settings every service has (:mod:`hub.servicekit.settings`: its own database, the hub and
its own client credentials there, scope ``notifications.send``, and the event bus it consumes
from), and its own: how it dispatches, retries and waits for receipts, and how many requests it
takes in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from hub.servicekit.settings import ServiceEnv, ServiceSettings

__all__ = ["NotificationSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationSettings(ServiceSettings):
    """Everything the notification service is configured with at start-up."""

    prefix: ClassVar[str] = "NOTIFICATIONS"
    database_file: ClassVar[str] = "notifications.db"

    port: int = 9600
    audience: str = "notifications"
    #: How often the dispatcher looks for messages to send (it is also woken at once).
    dispatch_seconds: float = 0.5
    #: Sends of one channel before the next channel is tried.
    max_attempts: int = 3
    #: First pause between two sends of one channel (doubled each time).
    retry_seconds: float = 1.0
    #: How long a sent message waits for its receipt before the provider is asked.
    receipt_seconds: float = 300.0
    #: Requests taken in parallel (subscriptions of the requests queue).
    consumers: int = 4

    @classmethod
    def own_settings(cls, env: ServiceEnv) -> dict[str, Any]:
        return {
            "consumers": env.whole("CONSUMERS", 4, low=1, high=64),
            "max_attempts": env.whole("MAX_ATTEMPTS", 3, low=1, high=20),
            "dispatch_seconds": env.number("DISPATCH_SECONDS", 0.5),
            "retry_seconds": env.number("RETRY_SECONDS", 1.0),
            "receipt_seconds": env.number("RECEIPT_SECONDS", 300.0),
        }
