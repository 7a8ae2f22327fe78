"""Pluggable back-ends, each an interface with an embedded and a real implementation.

``notifier`` fans configuration publishes out to every replica (in-process or Redis pub/sub);
``events`` carries domain events (in-process or RabbitMQ). :mod:`hub.backends.factory` is the one
place that picks an implementation from the settings.
"""

from __future__ import annotations

__all__: list[str] = []
