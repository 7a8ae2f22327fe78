"""The notification service's Prometheus metrics (``GET /metrics``), on its own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["NotificationMetrics"]


class NotificationMetrics:
    """Counters by channel and outcome; one registry per app (tests build several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.sends = Counter(
            "notifications_sends_total",
            "Sends through the hub by channel and outcome (accepted, error).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "notifications_deliveries_total",
            "Deliveries ended, by channel and outcome (delivered, failed, skipped).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.events = Counter(
            "notifications_events_total",
            "Events consumed by type and outcome (applied, duplicate, invalid, stale, unknown).",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.send_seconds = Histogram(
            "notifications_send_seconds",
            "Time of one send through the hub, by channel.",
            ["channel"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
