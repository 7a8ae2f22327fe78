"""In-process event bus: the embedded default, with the AMQP bus's retry and dead-letter rules."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import structlog

from hub.backends.events.base import (
    DEFAULT_MAX_RETRIES,
    DeadLetter,
    Event,
    EventBus,
    EventHandler,
    topic_matches,
)
from hub.errors import BackendUnavailable

__all__ = ["DeadLetter", "MemoryEventBus"]

logger = structlog.get_logger(__name__)


class _Queue:
    def __init__(self, name: str) -> None:
        self.name = name
        self.patterns: set[str] = set()
        self.items: asyncio.Queue[Event] = asyncio.Queue()


class MemoryEventBus(EventBus):
    """Queues live in this process; nothing survives it (use AMQP when that matters)."""

    def __init__(self, *, max_retries: int = DEFAULT_MAX_RETRIES, retry_delay: float = 0.0) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.dead_letters_kept: list[DeadLetter] = []
        self._queues: dict[str, _Queue] = {}
        self._consumers: set[asyncio.Task[None]] = set()
        self._running = False

    async def start(self) -> None:
        self._running = True

    async def publish(self, event: Event) -> None:
        self._require_running()
        # Through the wire form, as on AMQP: a payload that cannot be sent fails here too, and
        # handlers never share mutable payloads with the publisher.
        delivered = Event.decode(event.encode())
        for queue in self._queues.values():
            if any(topic_matches(pattern, event.type) for pattern in queue.patterns):
                queue.items.put_nowait(delivered)

    async def subscribe(self, queue: str, pattern: str, handler: EventHandler) -> None:
        self._require_running()
        target = self._queues.get(queue)
        if target is None:
            target = self._queues[queue] = _Queue(queue)
        target.patterns.add(pattern)
        task = asyncio.create_task(self._consume(target, handler), name=f"events.{queue}")
        self._consumers.add(task)
        task.add_done_callback(self._consumers.discard)

    async def check(self) -> None:
        self._require_running()

    async def aclose(self) -> None:
        self._running = False
        consumers = list(self._consumers)
        for task in consumers:
            task.cancel()
        for task in consumers:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def dead_letters(self, queue: str | None = None, *, limit: int = 100) -> list[DeadLetter]:
        found = [d for d in self.dead_letters_kept if queue is None or d.queue == queue]
        return found[:limit]

    async def replay(self, queue: str, event_ids: list[str] | None = None) -> int:
        self._require_running()
        target = self._queues.get(queue)
        chosen = [
            d
            for d in self.dead_letters_kept
            if d.queue == queue and (event_ids is None or d.event.id in event_ids)
        ]
        if target is None:
            return 0
        for dead in chosen:
            self.dead_letters_kept.remove(dead)
            target.items.put_nowait(dead.event)
        return len(chosen)

    def _require_running(self) -> None:
        if not self._running:
            raise BackendUnavailable("event bus is not running")

    async def _consume(self, queue: _Queue, handler: EventHandler) -> None:
        while True:
            event = await queue.items.get()
            # Retried in place, before the next event, as a broker redelivers to the head.
            for attempt in range(self.max_retries + 1):
                try:
                    await handler(event)
                    break
                except Exception as exc:
                    logger.warning(
                        "events.handler_failed",
                        queue=queue.name,
                        event_id=event.id,
                        event_type=event.type,
                        attempt=attempt + 1,
                        error=repr(exc),
                    )
                    if attempt == self.max_retries:
                        self.dead_letters_kept.append(
                            DeadLetter(
                                queue=queue.name,
                                event=event,
                                error=repr(exc),
                                attempts=attempt + 1,
                                dead_at=datetime.now(UTC),
                            )
                        )
                    elif self.retry_delay:
                        await asyncio.sleep(self.retry_delay * 2**attempt)
