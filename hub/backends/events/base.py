"""The event bus: domain events published to a topic exchange, consumed through named queues.

Semantics every implementation keeps (and the contract suite checks): an event goes to each
queue bound with a matching topic pattern; within a queue, subscribers compete and one handler
call is in flight per subscription, so a queue with one subscriber sees events in publish order.
A handler that raises gets the event again, up to ``max_retries`` more times; then the event is
dead-lettered. Delivery is at-least-once: handlers must be idempotent.
"""

from __future__ import annotations

import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from hub.errors import BackendUnavailable, HubError

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DeadLetter",
    "Event",
    "EventBus",
    "EventHandler",
    "topic_matches",
]

DEFAULT_MAX_RETRIES = 3


def _new_id() -> str:
    return uuid.uuid4().hex


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One domain event; ``type`` is its routing key (``config.published``)."""

    type: str
    payload: dict[str, Any]
    id: str = field(default_factory=_new_id)
    occurred_at: datetime = field(default_factory=_now)

    def __post_init__(self) -> None:
        if not self.type or any(not word for word in self.type.split(".")):
            raise ValueError(f"event type {self.type!r} must be dot-separated non-empty words")
        if self.occurred_at.tzinfo is None:
            raise ValueError("event occurred_at must be timezone-aware")

    def encode(self) -> bytes:
        """The JSON wire form (the payload must be JSON-serialisable)."""
        return json.dumps(
            {
                "id": self.id,
                "type": self.type,
                "occurred_at": self.occurred_at.astimezone(UTC).isoformat(),
                "payload": self.payload,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, body: bytes) -> Event:
        """Parse the wire form; raises ``ValueError`` when it is not an event."""
        try:
            data = json.loads(body)
            payload = data["payload"]
            if not isinstance(payload, dict):
                raise TypeError("payload is not an object")
            return cls(
                id=str(data["id"]),
                type=str(data["type"]),
                payload=payload,
                occurred_at=datetime.fromisoformat(data["occurred_at"]),
            )
        except (KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not an event: {exc}") from exc


EventHandler = Callable[[Event], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """An event whose handler kept failing, kept for inspection and replay."""

    queue: str
    event: Event
    error: str
    attempts: int = 0
    dead_at: datetime | None = None


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more words."""
    return _match(pattern.split("."), routing_key.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[skip:]) for skip in range(len(words) + 1))
    if not words:
        return False
    return (head in {"*", words[0]}) and _match(rest, words[1:])


class EventBus(ABC):
    """Publishes domain events and runs handlers for the queues this process consumes."""

    @abstractmethod
    async def start(self) -> None:
        """Connect and declare the exchange."""

    @abstractmethod
    async def publish(self, event: Event) -> None:
        """Publish durably; raises ``BackendUnavailable`` when the event was not accepted."""

    #: ``True`` when :meth:`publish_many` is all or nothing and keeps the events' order (one
    #: database transaction): a relay may then hand it a whole batch, several events of a key
    #: included. Otherwise a relay passes at most one event per key to each call.
    atomic_batches: ClassVar[bool] = False

    async def publish_many(self, events: Sequence[Event]) -> list[HubError | None]:
        """Publish independent events together; one outcome per event (``None``: accepted).

        Buses override this to pipeline (AMQP: every publish sent, the confirms awaited
        together) or to write them in one transaction (the database bus). This default
        publishes one at a time and stops trying once the bus is unavailable: the rest get
        that error without a round trip each.
        """
        outcomes: list[HubError | None] = []
        refusal: BackendUnavailable | None = None
        for event in events:
            if refusal is not None:
                outcomes.append(refusal)
                continue
            try:
                await self.publish(event)
            except BackendUnavailable as exc:
                refusal = exc
                outcomes.append(exc)
            except HubError as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes

    @abstractmethod
    async def subscribe(self, queue: str, pattern: str, handler: EventHandler) -> None:
        """Bind ``queue`` to ``pattern`` (declaring it) and run ``handler`` for its events."""

    @abstractmethod
    async def check(self) -> None:
        """Readiness: return when usable, raise ``BackendUnavailable`` otherwise."""

    @abstractmethod
    async def aclose(self) -> None:
        """Stop consuming and release connections."""

    async def dead_letters(self, queue: str | None = None, *, limit: int = 100) -> list[DeadLetter]:
        """The dead-lettered events of ``queue`` (every queue this bus knows when ``None``)."""
        raise NotImplementedError

    async def replay(self, queue: str, event_ids: list[str] | None = None) -> int:
        """Put dead letters of ``queue`` back on it (all, or those ids); how many moved."""
        raise NotImplementedError
