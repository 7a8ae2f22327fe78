"""The embedded event bus: queues as rows of a database that every process of the system opens.

Services are separate processes, so an in-process bus cannot reach them. Without RabbitMQ the
hub and its services share the hub's database (the SQLite file of ``make run``, or PostgreSQL)
and this bus keeps RabbitMQ's semantics on two tables (:mod:`hub.db.event_tables`):

- ``event_bindings`` (queue, pattern) is the topic exchange: :meth:`publish` copies the event
  into ``event_deliveries`` once per queue with a matching pattern, in one transaction.
- Consumers of a queue, in any process, **compete**: each subscription claims a batch of the
  queue's oldest ready rows (``batch_size``) under a lease in one transaction (``BEGIN
  IMMEDIATE`` on SQLite, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), runs its handler over them
  in order and deletes the handled rows in one more. One handler call is in flight per
  subscription, so a queue with one subscriber sees events in publish order.
- A handler that raises is retried in place, up to ``max_retries`` more times, after
  ``retry_delay`` doubling each time; then the row is kept with ``dead_at`` set: the queue's
  **dead letters**, listed and replayed by an admin (:meth:`dead_letters`, :meth:`replay`).
  The delivery count is written at each claim, so a consumer that dies mid-handler counts too.
- A consumer that dies leaves its row leased; when the lease runs out another takes it:
  at-least-once, as on RabbitMQ.

Consumers poll (cheaply: a read first, the write lock only when something is ready) and are
woken at once by publishes made in their own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import Table, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub._aio import wait_set
from hub.backends.events.base import (
    DEFAULT_MAX_RETRIES,
    DeadLetter,
    Event,
    EventBus,
    EventHandler,
    topic_matches,
)
from hub.db.engine import WRITE_LOCK, create_engine, database_errors, ping
from hub.db.event_tables import EventBinding, EventDelivery
from hub.errors import BackendUnavailable, HubError

__all__ = ["DatabaseEventBus"]

logger = structlog.get_logger(__name__)

_bindings = cast(Table, EventBinding.__table__)
_deliveries = cast(Table, EventDelivery.__table__)


def _now() -> datetime:
    return datetime.now(UTC)


@contextlib.asynccontextmanager
async def _writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction holding the write lock from its start (SQLite cannot upgrade a reader)."""
    async with engine.connect() as conn:
        await conn.execution_options(**WRITE_LOCK)
        async with conn.begin():
            yield conn


class DatabaseEventBus(EventBus):
    """An event bus on the shared database: works across processes without a broker."""

    def __init__(
        self,
        url: str,
        *,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_delay: float = 0.0,
        poll_interval: float = 0.1,
        lease_seconds: float = 60.0,
        batch_size: int = 50,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._url = url
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self._poll_interval = poll_interval
        self._lease = timedelta(seconds=lease_seconds)
        self._batch_size = batch_size
        self._clock = clock
        self._name = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._engine: AsyncEngine | None = None
        self._consumers: set[asyncio.Task[None]] = set()
        self._wakers: dict[str, list[asyncio.Event]] = {}

    async def start(self) -> None:
        if self._engine is None:
            self._engine = create_engine(self._url)

    def _require_engine(self) -> AsyncEngine:
        if self._engine is None:
            raise BackendUnavailable("event bus is not running")
        return self._engine

    atomic_batches = True

    async def publish(self, event: Event) -> None:
        await self._insert([event])

    async def publish_many(self, events: Sequence[Event]) -> list[HubError | None]:
        """Every event in one transaction: all accepted, in order, or all refused."""
        if not events:
            return []
        try:
            await self._insert(events)
        except HubError as exc:
            return [exc] * len(events)
        return [None] * len(events)

    async def _insert(self, events: Sequence[Event]) -> None:
        engine = self._require_engine()
        bodies = [(event, event.encode().decode()) for event in events]
        now = self._clock()
        woken: set[str] = set()
        with database_errors():
            async with _writing(engine) as conn:
                rows = (await conn.execute(select(_bindings.c.queue, _bindings.c.pattern))).all()
                deliveries = []
                for event, body in bodies:
                    queues = sorted(
                        {row.queue for row in rows if topic_matches(row.pattern, event.type)}
                    )
                    woken.update(queues)
                    deliveries += [
                        {
                            "queue": queue,
                            "event_id": event.id,
                            "event_type": event.type,
                            "body": body,
                            "attempts": 0,
                            "available_at": now,
                            "enqueued_at": now,
                        }
                        for queue in queues
                    ]
                if deliveries:
                    await conn.execute(_deliveries.insert(), deliveries)
        for queue in woken:
            for waker in self._wakers.get(queue, ()):
                waker.set()

    async def subscribe(self, queue: str, pattern: str, handler: EventHandler) -> None:
        engine = self._require_engine()
        if not queue:
            raise ValueError("a queue needs a name")
        insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        with database_errors():
            async with _writing(engine) as conn:
                await conn.execute(
                    insert(_bindings)
                    .values(queue=queue, pattern=pattern, created_at=self._clock())
                    .on_conflict_do_nothing(index_elements=["queue", "pattern"])
                )
        waker = asyncio.Event()
        self._wakers.setdefault(queue, []).append(waker)
        task = asyncio.create_task(self._consume(queue, handler, waker), name=f"events.{queue}")
        self._consumers.add(task)
        task.add_done_callback(self._consumers.discard)

    async def check(self) -> None:
        await ping(self._require_engine())

    async def aclose(self) -> None:
        consumers = list(self._consumers)
        for task in consumers:
            task.cancel()
        for task in consumers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._wakers.clear()
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    # ---- dead letters -----------------------------------------------------------------------

    async def dead_letters(self, queue: str | None = None, *, limit: int = 100) -> list[DeadLetter]:
        engine = self._require_engine()
        query = select(_deliveries).where(_deliveries.c.dead_at.is_not(None))
        if queue is not None:
            query = query.where(_deliveries.c.queue == queue)
        with database_errors():
            async with engine.connect() as conn:
                rows = (await conn.execute(query.order_by(_deliveries.c.id).limit(limit))).all()
        return [
            DeadLetter(
                queue=row.queue,
                event=Event.decode(row.body.encode()),
                error=row.last_error or "",
                attempts=row.attempts,
                dead_at=row.dead_at,
            )
            for row in rows
        ]

    async def replay(self, queue: str, event_ids: list[str] | None = None) -> int:
        engine = self._require_engine()
        where = [_deliveries.c.queue == queue, _deliveries.c.dead_at.is_not(None)]
        if event_ids is not None:
            where.append(_deliveries.c.event_id.in_(event_ids))
        with database_errors():
            async with _writing(engine) as conn:
                result = await conn.execute(
                    update(_deliveries)
                    .where(*where)
                    .values(
                        dead_at=None,
                        attempts=0,
                        available_at=self._clock(),
                        claimed_by=None,
                        claimed_until=None,
                    )
                )
        for waker in self._wakers.get(queue, ()):
            waker.set()
        return int(result.rowcount or 0)

    # ---- consuming --------------------------------------------------------------------------

    def _ready(self, queue: str, now: datetime, limit: int) -> Any:
        return (
            select(_deliveries.c.id)
            .where(
                _deliveries.c.queue == queue,
                _deliveries.c.dead_at.is_(None),
                _deliveries.c.available_at <= now,
                or_(_deliveries.c.claimed_until.is_(None), _deliveries.c.claimed_until <= now),
            )
            .order_by(_deliveries.c.id)
            .limit(limit)
        )

    async def _claim(self, queue: str) -> list[Any]:
        """Lease up to ``batch_size`` of the queue's oldest ready rows in one transaction."""
        engine = self._require_engine()
        now = self._clock()
        async with engine.connect() as conn:
            # A read first: idle polls never take SQLite's write lock.
            if await conn.scalar(self._ready(queue, now, 1)) is None:
                return []
        async with _writing(engine) as conn:
            query = self._ready(queue, now, self._batch_size)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            found = list((await conn.scalars(query)).all())
            if not found:
                return []
            await conn.execute(
                update(_deliveries)
                .where(_deliveries.c.id.in_(found))
                .values(
                    claimed_by=self._name,
                    claimed_until=now + self._lease,
                    attempts=_deliveries.c.attempts + 1,
                )
            )
            rows = (
                await conn.execute(
                    select(_deliveries)
                    .where(_deliveries.c.id.in_(found))
                    .order_by(_deliveries.c.id)
                )
            ).all()
            return list(rows)

    async def _consume(self, queue: str, handler: EventHandler, waker: asyncio.Event) -> None:
        delay = self._poll_interval
        while True:
            try:
                with database_errors():
                    rows = await self._claim(queue)
                if rows:
                    await self._handle_batch(rows, handler)
                    delay = self._poll_interval
                    continue
            except BackendUnavailable as exc:
                logger.warning("events.poll_failed", queue=queue, error=str(exc))
                delay = min(max(delay * 2, self._poll_interval), 5.0)
            await wait_set(waker, delay)
            waker.clear()

    async def _handle_batch(self, rows: list[Any], handler: EventHandler) -> None:
        """Run the handler over a claimed batch in order; delete the done rows together."""
        engine = self._require_engine()
        done: list[int] = []
        try:
            for row in rows:
                if await self._handle(row, handler):
                    done.append(row.id)
        finally:
            # A row left out (the task was cancelled mid-batch) keeps its lease and comes back
            # when it runs out: at-least-once, as for a consumer that died.
            if done:
                with database_errors():
                    async with _writing(engine) as conn:
                        await conn.execute(delete(_deliveries).where(_deliveries.c.id.in_(done)))

    async def _handle(self, row: Any, handler: EventHandler) -> bool:
        """Handle one claimed row; ``True`` when it is done and may be deleted."""
        engine = self._require_engine()
        try:
            event = Event.decode(row.body.encode())
        except ValueError as exc:
            # Retrying cannot fix a malformed body: straight to the dead letters.
            await self._bury(engine, row.id, f"undecodable: {exc}")
            return False
        attempts = row.attempts
        while True:
            try:
                await handler(event)
            except Exception as exc:
                logger.warning(
                    "events.handler_failed",
                    queue=row.queue,
                    event_id=event.id,
                    event_type=event.type,
                    attempt=attempts,
                    error=repr(exc),
                )
                if attempts > self.max_retries:
                    await self._bury(engine, row.id, repr(exc))
                    return False
                if self.retry_delay:
                    await asyncio.sleep(self.retry_delay * 2 ** (attempts - 1))
                attempts += 1
                with database_errors():
                    async with _writing(engine) as conn:
                        await self._renew(conn, row.id, attempts)
                continue
            return True

    async def _renew(self, conn: AsyncConnection, row_id: int, attempts: int) -> None:
        await conn.execute(
            update(_deliveries)
            .where(_deliveries.c.id == row_id)
            .values(attempts=attempts, claimed_until=self._clock() + self._lease)
        )

    async def _bury(self, engine: AsyncEngine, row_id: int, error: str) -> None:
        with database_errors():
            async with _writing(engine) as conn:
                await conn.execute(
                    update(_deliveries)
                    .where(_deliveries.c.id == row_id)
                    .values(
                        dead_at=self._clock(),
                        last_error=error[:2000],
                        claimed_by=None,
                        claimed_until=None,
                    )
                )

    async def depth(self, queue: str) -> int:
        """Events waiting in ``queue`` (dead letters excluded)."""
        engine = self._require_engine()
        with database_errors():
            async with engine.connect() as conn:
                count = await conn.scalar(
                    select(func.count()).where(
                        _deliveries.c.queue == queue, _deliveries.c.dead_at.is_(None)
                    )
                )
        return int(count or 0)
