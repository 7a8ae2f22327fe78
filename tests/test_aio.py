"""A background loop's stop is never lost, even when it lands as the loop is woken."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from hub._aio import wait_set

ROOT = Path(__file__).resolve().parent.parent


async def _wait_for(event: asyncio.Event, seconds: float) -> bool:
    # What the loops did before: Python 3.11's wait_for loses a cancel that meets the wake-up.
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def _stopped_as_woken(wait: Callable[[asyncio.Event, float], Awaitable[bool]]) -> bool:
    """Run a wake-up loop, then wake it and cancel it in the same step: did it stop?"""
    event = asyncio.Event()

    async def loop() -> None:
        while True:
            await wait(event, 30)
            event.clear()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)  # the loop is now waiting for the event
    event.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=1)
    if not done:
        task.cancel()  # a second cancel ends the old loop, so the test itself never hangs
        await asyncio.wait({task}, timeout=1)
    return bool(done) and task.cancelled()


async def test_a_cancel_that_meets_the_wake_up_stops_the_loop() -> None:
    assert await _stopped_as_woken(wait_set)


@pytest.mark.skipif(
    sys.version_info >= (3, 12), reason="the lost cancel is a Python 3.11 wait_for behaviour"
)
async def test_the_old_wait_lost_that_cancel_on_python_3_11() -> None:
    # Shows the scenario above is the one that hung the service tests' teardown.
    assert not await _stopped_as_woken(_wait_for)


async def test_wait_set_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    event.set()
    assert await wait_set(event, 0.01) is True


def test_no_code_waits_with_asyncio_wait_for() -> None:
    pattern = re.compile(r"\basyncio\.wait_for\(|\bfrom asyncio import .*\bwait_for\b")
    offenders = [
        str(path.relative_to(ROOT))
        for top in ("hub", "adapters", "services")
        for path in sorted((ROOT / top).rglob("*.py"))
        if pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "use hub._aio.wait_set or asyncio.timeout instead"
