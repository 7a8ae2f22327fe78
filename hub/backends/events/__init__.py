"""Domain events: the :class:`EventBus` interface and :class:`Event`; implementations sit beside."""

from __future__ import annotations

from hub.backends.events.base import Event, EventBus, EventHandler, topic_matches

__all__ = ["Event", "EventBus", "EventHandler", "topic_matches"]
