"""The outbox relay: publishes committed outbox rows to the event bus, then marks them sent.

One pass (:meth:`OutboxRelay.run_once`):

1. **Claim** a batch in a short transaction: the oldest unsent rows that are due (past their
   backoff) and not leased to another relay, skipping any row whose key has an earlier row
   still waiting (leased elsewhere or backing off), so events of one key keep their order. The
   claim writes a lease (``claimed_by``, ``claimed_until``). On PostgreSQL the candidate rows are
   read ``FOR UPDATE SKIP LOCKED`` and claimers take a transaction-scoped advisory lock, so two
   relays never claim the same row nor the two halves of one key; on SQLite the claim runs
   under ``BEGIN IMMEDIATE``, the database's write lock.
2. **Publish** the batch outside any transaction, in waves of at most one event per key (the
   whole batch at once on a bus whose batches are atomic, the database bus), each wave one
   ``EventBus.publish_many`` call that returns once the broker confirmed every message
   (publisher confirms on RabbitMQ, awaited together).
3. **Settle**: confirmed rows get ``sent_at``; a row that failed gets ``attempts + 1`` and a
   ``next_attempt_at`` with exponential backoff, and the rest of its key waits for it. When the
   bus is unavailable (RabbitMQ down) the pass stops at the first failure and the relay backs
   off as a whole, doubling up to ``backoff_max``, until a publish succeeds again.

A relay that dies between publish and settle leaves its rows leased; when the lease runs out
any relay claims and publishes them again. Nothing is lost; a few events may be published
twice, which consumers absorb by deduplicating on the event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import delete, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub._aio import wait_set
from hub.backends.events.base import Event, EventBus
from hub.db.engine import WRITE_LOCK, database_errors
from hub.errors import BackendUnavailable, HubError
from hub.events.outbox import OutboxStats, outbox_stats
from hub.events.tables import outbox_events

__all__ = ["OutboxRelay", "RelayObserver", "RelayOptions"]

log = structlog.get_logger(__name__)

# Every relay on one PostgreSQL database contends for this key while it claims ("hub_obx").
_PG_CLAIM_LOCK_KEY = 0x6875625F6F6278


class RelayObserver(Protocol):
    """What a relay reports, for metrics."""

    def published(self, count: int) -> None: ...

    def failed(self, count: int) -> None: ...

    def backlog(self, stats: OutboxStats) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayOptions:
    """How a relay paces itself."""

    batch_size: int = 100
    lease_seconds: float = 30.0
    poll_interval: float = 0.5
    backoff_initial: float = 0.2
    backoff_max: float = 30.0
    #: Sent rows are deleted after this long (they are kept a while for inspection).
    retention_seconds: float = 24 * 3600.0
    stats_interval: float = 5.0


@dataclass(slots=True, kw_only=True)
class _Settled:
    sent: list[int] = field(default_factory=list)
    failed: list[tuple[int, int, str]] = field(default_factory=list)  # seq, attempts, error
    released: list[int] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(UTC)


class OutboxRelay:
    """Moves outbox rows of one database to one event bus, in a background task or by hand."""

    def __init__(
        self,
        engine: AsyncEngine,
        bus: EventBus,
        *,
        options: RelayOptions | None = None,
        observer: RelayObserver | None = None,
        name: str | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._engine = engine
        self._bus = bus
        self.options = options or RelayOptions()
        self._observer = observer
        self.name = name or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._delay = self.options.backoff_initial

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Run passes in a background task until :meth:`aclose`."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"outbox-relay:{self.name}")

    def wake(self) -> None:
        """Run the next pass now (a producer just committed events)."""
        self._wake.set()

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def stats(self) -> OutboxStats:
        """The outbox's backlog now."""
        with database_errors():
            async with self._engine.connect() as conn:
                return await outbox_stats(conn, now=self._clock())

    # ---- one pass -------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim, publish and settle one batch; the number published (0: nothing was due).

        Raises ``BackendUnavailable`` when the bus refused a publish (after settling), and the
        database's errors translated to hub errors.
        """
        with database_errors():
            rows = await self._claim()
        if not rows:
            return 0
        settled, refusal = await self._publish(rows)
        with database_errors():
            await self._settle(settled)
        if self._observer is not None:
            if settled.sent:
                self._observer.published(len(settled.sent))
            if settled.failed:
                self._observer.failed(len(settled.failed))
        if refusal is not None:
            raise refusal
        return len(settled.sent)

    async def _claim(self) -> list[Any]:
        now = self._clock()
        table = outbox_events
        earlier = table.alias("earlier")
        waiting = (
            select(earlier.c.seq)
            .where(
                earlier.c.key == table.c.key,
                earlier.c.sent_at.is_(None),
                earlier.c.seq < table.c.seq,
                or_(earlier.c.next_attempt_at > now, earlier.c.claimed_until > now),
            )
            .exists()
        )
        query = (
            select(table)
            .where(
                table.c.sent_at.is_(None),
                table.c.next_attempt_at <= now,
                or_(table.c.claimed_until.is_(None), table.c.claimed_until <= now),
                or_(table.c.key.is_(None), ~waiting),
            )
            .order_by(table.c.seq)
            .limit(self.options.batch_size)
        )
        async with self._engine.connect() as conn:
            await conn.execution_options(**WRITE_LOCK)
            async with conn.begin():
                postgres = conn.dialect.name == "postgresql"
                if postgres:
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_CLAIM_LOCK_KEY}
                    )
                    query = query.with_for_update(skip_locked=True, of=table)
                rows = list((await conn.execute(query)).all())
                if rows:
                    await conn.execute(
                        update(table)
                        .where(table.c.seq.in_([row.seq for row in rows]))
                        .values(
                            claimed_by=self.name,
                            claimed_until=now + timedelta(seconds=self.options.lease_seconds),
                        )
                    )
        return rows

    async def _publish(self, rows: list[Any]) -> tuple[_Settled, BackendUnavailable | None]:
        """Publish a claimed batch in waves; a key's later events wait for its earlier ones.

        A wave holds at most one event per key (all of them on a bus whose batches are atomic)
        and goes to the bus in one :meth:`~EventBus.publish_many` call, so the confirms of a
        wave are awaited together rather than one round trip per event.
        """
        settled = _Settled()
        blocked: set[str] = set()
        refusal: BackendUnavailable | None = None
        pending = list(rows)
        while pending:
            if refusal is not None:
                # The bus is down: the rest go back for the next pass.
                settled.released.extend(row.seq for row in pending)
                break
            wave: list[Any] = []
            later: list[Any] = []
            keys: set[str] = set()
            for row in pending:
                if row.key is not None and row.key in blocked:
                    settled.released.append(row.seq)  # behind a failed event of its key
                elif self._bus.atomic_batches or row.key is None or row.key not in keys:
                    wave.append(row)
                    if row.key is not None:
                        keys.add(row.key)
                else:
                    later.append(row)
            pending = later
            if not wave:
                continue
            events = [
                Event(id=row.id, type=row.type, payload=row.payload, occurred_at=row.occurred_at)
                for row in wave
            ]
            outcomes = await self._bus.publish_many(events)
            for row, outcome in zip(wave, outcomes, strict=True):
                if outcome is None:
                    settled.sent.append(row.seq)
                    continue
                settled.failed.append((row.seq, row.attempts + 1, str(outcome)))
                if row.key is not None:
                    blocked.add(row.key)
                log.warning(
                    "outbox.publish_failed",
                    relay=self.name,
                    event_id=row.id,
                    event_type=row.type,
                    attempts=row.attempts + 1,
                    error=str(outcome),
                )
                if isinstance(outcome, BackendUnavailable) and refusal is None:
                    refusal = outcome
        return settled, refusal

    async def _settle(self, settled: _Settled) -> None:
        table = outbox_events
        now = self._clock()
        async with self._engine.connect() as conn, conn.begin():
            if settled.sent:
                await conn.execute(
                    update(table)
                    .where(table.c.seq.in_(settled.sent), table.c.sent_at.is_(None))
                    .values(sent_at=now, claimed_by=None, claimed_until=None, last_error=None)
                )
            for seq, attempts, error in settled.failed:
                await conn.execute(
                    update(table)
                    .where(table.c.seq == seq)
                    .values(
                        attempts=attempts,
                        next_attempt_at=now + timedelta(seconds=self._row_backoff(attempts)),
                        last_error=error[:2000],
                        claimed_by=None,
                        claimed_until=None,
                    )
                )
            if settled.released:
                await self._release(conn, settled.released)

    async def _release(self, conn: AsyncConnection, seqs: list[int]) -> None:
        table = outbox_events
        await conn.execute(
            update(table)
            .where(table.c.seq.in_(seqs), table.c.claimed_by == self.name)
            .values(claimed_by=None, claimed_until=None)
        )

    def _row_backoff(self, attempts: int) -> float:
        base: float = self.options.backoff_initial * float(2 ** min(attempts - 1, 20))
        # Full jitter on the upper half, so relays that failed together do not retry together.
        capped: float = min(base, self.options.backoff_max)
        return capped / 2 + random.uniform(0, capped / 2)  # noqa: S311 - jitter, not security

    async def purge_sent(self, *, older_than: float | None = None) -> int:
        """Delete rows sent longer ago than ``older_than`` seconds (the retention)."""
        cutoff = self._clock() - timedelta(
            seconds=self.options.retention_seconds if older_than is None else older_than
        )
        with database_errors():
            async with self._engine.connect() as conn, conn.begin():
                result = await conn.execute(
                    delete(outbox_events).where(outbox_events.c.sent_at < cutoff)
                )
        return int(result.rowcount or 0)

    # ---- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        options = self.options
        loop = asyncio.get_running_loop()
        next_stats = next_purge = 0.0
        while True:
            busy = False
            try:
                published = await self.run_once()
                self._delay = options.backoff_initial
                busy = published >= options.batch_size
                if loop.time() >= next_purge:
                    next_purge = loop.time() + 60.0
                    await self.purge_sent()
            except HubError as exc:
                log.warning(
                    "outbox.relay_backoff",
                    relay=self.name,
                    error=str(exc),
                    retry_in=round(self._delay, 3),
                )
                await asyncio.sleep(self._delay)
                self._delay = min(self._delay * 2, options.backoff_max)
                continue
            if self._observer is not None and loop.time() >= next_stats:
                next_stats = loop.time() + options.stats_interval
                with contextlib.suppress(HubError):
                    self._observer.backlog(await self.stats())
            if busy:
                continue
            await wait_set(self._wake, options.poll_interval)
            self._wake.clear()
