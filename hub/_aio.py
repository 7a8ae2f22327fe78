"""asyncio helpers that keep cancellation intact.

``asyncio.wait_for`` on Python 3.11 returns the result, and drops a cancellation, when the task is
cancelled just as the awaited thing completes (fixed in 3.12). A background loop that waits for
a wake-up event that way can swallow its stop: ``task.cancel()`` is lost, and whoever awaits the
task waits for ever. ``asyncio.timeout`` tells its own cancellation from anyone else's, so the
waits below are built on it.
"""

from __future__ import annotations

import asyncio

__all__ = ["wait_set"]


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True if it is set, False on time-out."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
