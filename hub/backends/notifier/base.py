"""The config notifier: how "configuration version N is now active" reaches every hub replica.

Each replica subscribes a callback; a publish from any replica (itself included) calls it. The
callbacks run one at a time, in publish order, on a dispatcher task of their own, so a slow
callback never stalls the transport. A back-end that may have missed announcements (a dropped
connection) calls the callbacks with :data:`RESYNC`, meaning "re-read the active version from the
database" rather than trusting any particular number.

Beside versions the channel carries *signals*: a short name (``shadow``) meaning "re-read that
state from the database", for state every replica must follow within a second (shadow mode).
A signal carries no state of its own, so a missed one costs only the safety-net poll.
Signal callbacks get :data:`RESYNC_SIGNAL` when announcements may have been missed. Versions
and signals are delivered in publish order by the same dispatcher; on the wire a version stays
its bare number, so a replica of an older release ignores a signal and keeps working.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Final

import structlog

__all__ = ["RESYNC", "RESYNC_SIGNAL", "ConfigNotifier", "NotifierCallback", "SignalCallback"]

RESYNC: Final = -1
"""The version passed to callbacks when announcements may have been missed."""

RESYNC_SIGNAL: Final = "*"
"""The signal passed to signal callbacks when announcements may have been missed."""

NotifierCallback = Callable[[int], Awaitable[None]]
SignalCallback = Callable[[str], Awaitable[None]]

logger = structlog.get_logger(__name__)


class ConfigNotifier(ABC):
    """Announces active configuration versions to every replica; implementations add transport."""

    def __init__(self) -> None:
        self._callbacks: list[NotifierCallback] = []
        self._signal_callbacks: list[SignalCallback] = []
        self._inbox: asyncio.Queue[int | str] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None

    @abstractmethod
    async def start(self) -> None:
        """Connect and begin delivering announcements to the callbacks."""

    @abstractmethod
    async def publish(self, version: int) -> None:
        """Announce that ``version`` is now active; raises ``BackendUnavailable`` on failure."""

    @abstractmethod
    async def publish_signal(self, name: str) -> None:
        """Tell every replica to re-read state ``name``; raises ``BackendUnavailable``."""

    @abstractmethod
    async def check(self) -> None:
        """Readiness: return when usable, raise ``BackendUnavailable`` otherwise."""

    @abstractmethod
    async def aclose(self) -> None:
        """Stop delivering and release connections; pending announcements are dropped."""

    def subscribe(self, callback: NotifierCallback) -> None:
        """Call ``callback(version)`` for every announcement, this replica's own included."""
        self._callbacks.append(callback)

    def subscribe_signals(self, callback: SignalCallback) -> None:
        """Call ``callback(name)`` for every signal, this replica's own included."""
        self._signal_callbacks.append(callback)

    def _start_dispatch(self) -> None:
        if self._dispatcher is None:
            self._dispatcher = asyncio.create_task(
                self._dispatch_forever(), name=f"{type(self).__name__}.dispatch"
            )

    def _deliver(self, item: int | str) -> None:
        """Queue a version or a signal for the callbacks (called by the transport, never blocks)."""
        self._inbox.put_nowait(item)

    async def _stop_dispatch(self) -> None:
        task, self._dispatcher = self._dispatcher, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _dispatch_forever(self) -> None:
        while True:
            item = await self._inbox.get()
            if isinstance(item, str):
                await self._signal(item)
                continue
            for callback in list(self._callbacks):
                try:
                    await callback(item)
                except Exception:
                    # One broken subscriber must not silence the others or later versions.
                    logger.exception("config_notifier.callback_failed", version=item)
            if item == RESYNC:
                await self._signal(RESYNC_SIGNAL)

    async def _signal(self, name: str) -> None:
        for callback in list(self._signal_callbacks):
            try:
                await callback(name)
            except Exception:
                logger.exception("config_notifier.signal_callback_failed", signal=name)
