"""Config fan-out: the :class:`ConfigNotifier` interface; implementations sit beside it."""

from __future__ import annotations

from hub.backends.notifier.base import RESYNC, ConfigNotifier, NotifierCallback

__all__ = ["RESYNC", "ConfigNotifier", "NotifierCallback"]
