"""In-process config notifier: the embedded default, and several "replicas" within one process."""

from __future__ import annotations

from hub.backends.notifier.base import ConfigNotifier
from hub.errors import BackendUnavailable

__all__ = ["MemoryChannel", "MemoryConfigNotifier"]


class MemoryChannel:
    """The in-process stand-in for a Redis channel: its notifiers see each other's publishes."""

    def __init__(self) -> None:
        self.members: list[MemoryConfigNotifier] = []


class MemoryConfigNotifier(ConfigNotifier):
    """Delivers announcements to the notifiers on the same :class:`MemoryChannel`."""

    def __init__(self, *, channel: MemoryChannel | None = None) -> None:
        super().__init__()
        self._channel = channel if channel is not None else MemoryChannel()
        self._running = False

    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        self._start_dispatch()
        self._channel.members.append(self)

    async def publish(self, version: int) -> None:
        if not self._running:
            raise BackendUnavailable("config notifier is not running")
        for member in list(self._channel.members):
            member._deliver(version)

    async def publish_signal(self, name: str) -> None:
        if not self._running:
            raise BackendUnavailable("config notifier is not running")
        for member in list(self._channel.members):
            member._deliver(name)

    async def check(self) -> None:
        if not self._running:
            raise BackendUnavailable("config notifier is not running")

    async def aclose(self) -> None:
        if self in self._channel.members:
            self._channel.members.remove(self)
        self._running = False
        await self._stop_dispatch()
