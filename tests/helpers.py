"""Small helpers shared by the integration tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["LoopThread", "metric", "until", "wait_until"]

_T = TypeVar("_T")


class LoopThread:
    """An event loop in a daemon thread, for module-scoped async resources (proxies, databases)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float = 60.0) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


def metric(client: httpx.Client, name: str, **labels: str) -> float | None:
    """One sample of the hub's /metrics, or None when it is absent."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def until(
    check: Callable[[], Any],
    what: str | Callable[[], str],
    seconds: float = 30,
    interval: float = 0.1,
) -> Any:
    """Poll ``check`` until it returns something true, and return that; ``what`` says what not."""
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, what() if callable(what) else what
        time.sleep(interval)
    return found


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    until(condition, f"condition not met within {timeout} s", seconds=timeout, interval=interval)
