"""The per-replica usage meter: counts in memory, adds them to the database every second.

Admitted requests are counted per application, product and UTC day in a dict, never one
database write per request. Every ``flush_seconds`` the meter adds what it counted to the
database in one transaction (an UPSERT that adds, so replicas never overwrite each other), then
reads back the totals of the pairs in use, which brings in the other replicas' flushed usage.

Quotas are judged on those flushed totals plus what this replica counted and has not flushed
yet (including a batch being written). So a replica sees its own requests at once and the
others' within about one flush interval: across ``n`` replicas an application can overshoot a
quota by at most what the other ``n - 1`` replicas admit in that interval (bounded in turn by
the plan's rate).

If the database is down, a flush puts its batch back and the meter retries with a backoff that
doubles up to ``max_backoff`` seconds; every failure is counted (``on_flush("failed")``) and
logged with the number of requests waiting. Nothing is dropped: at shutdown a last flush is
tried, and what still cannot be written is logged row by row (``usage.unflushed``) so it can
be added by hand. The first use of a pair on a replica reads its totals from the database once;
if that fails the pair is judged on this replica's counts until the next successful refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol

import structlog

from hub.errors import HubError

__all__ = ["UsageBackend", "UsageMeter"]

log = structlog.get_logger("hub.usage")

Pair = tuple[str, str]  # (client id, product)
Counts = dict[Pair, dict[date, int]]

# A pair not used for this long is left out of refreshes; twice as long, it is forgotten.
_ACTIVE_SECONDS = 60.0
_FORGET_SECONDS = 600.0


class _Totals(Protocol):
    @property
    def day(self) -> int: ...

    @property
    def month(self) -> int: ...


class UsageBackend(Protocol):
    """Where usage is stored (:class:`hub.db.usage_store.UsageStore`)."""

    async def add(self, increments: Mapping[tuple[str, str, date], int]) -> None: ...

    async def totals(self, pairs: Collection[Pair], day: date) -> Mapping[Pair, _Totals]: ...


@dataclass(slots=True)
class _Flushed:
    """A pair's totals in the database, as last read, for ``day`` and its month."""

    day: date
    on_day: int
    in_month: int


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _add(into: Counts, pair: Pair, day: date, count: int) -> None:
    days = into.setdefault(pair, {})
    days[day] = days.get(day, 0) + count


def _merge(into: Counts, counts: Counts) -> None:
    for pair, days in counts.items():
        for day, count in days.items():
            _add(into, pair, day, count)


def _flat(counts: Counts) -> dict[tuple[str, str, date], int]:
    return {(c, p, day): n for (c, p), days in counts.items() for day, n in days.items()}


class UsageMeter:
    """Counts admitted requests per application, product and UTC day; flushes them durably."""

    def __init__(
        self,
        backend: UsageBackend,
        *,
        flush_seconds: float = 1.0,
        max_backoff: float = 30.0,
        close_timeout: float = 5.0,
        clock: Callable[[], datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        on_flush: Callable[[str], None] | None = None,
        on_pending: Callable[[int], None] | None = None,
    ) -> None:
        if flush_seconds <= 0:
            raise ValueError(f"flush_seconds must be positive, got {flush_seconds}")
        self._backend = backend
        self._flush_seconds = flush_seconds
        self._max_backoff = max_backoff
        self._close_timeout = close_timeout
        self._clock = clock
        self._monotonic = monotonic
        self._on_flush = on_flush
        self._on_pending = on_pending
        self._pending: Counts = {}
        self._inflight: Counts = {}
        self._flushed: dict[Pair, _Flushed] = {}
        self._seen: dict[Pair, float] = {}
        self._loading: dict[Pair, asyncio.Future[None]] = {}
        self._lock = asyncio.Lock()
        self._failures = 0
        self._retry_at = 0.0
        self._task: asyncio.Task[None] | None = None

    # --- the hot path: no await, no database -------------------------------------------------

    def now(self) -> datetime:
        """The meter's clock (UTC): a request counts on this instant's day."""
        return self._clock()

    def used(self, client_id: str, product: str, day: date) -> tuple[int, int]:
        """Requests of the pair on ``day`` and in its month so far, as this replica knows."""
        pair = (client_id, product)
        self._seen[pair] = self._monotonic()
        on_day = in_month = 0
        flushed = self._flushed.get(pair)
        if flushed is not None and (flushed.day.year, flushed.day.month) == (day.year, day.month):
            in_month = flushed.in_month
            on_day = flushed.on_day if flushed.day == day else 0
        for counts in (self._pending, self._inflight):
            for counted, n in counts.get(pair, {}).items():
                if (counted.year, counted.month) == (day.year, day.month):
                    in_month += n
                    if counted == day:
                        on_day += n
        return on_day, in_month

    def count(self, client_id: str, product: str, day: date, n: int = 1) -> None:
        """Count ``n`` admitted requests; they reach the database at the next flush."""
        pair = (client_id, product)
        self._seen[pair] = self._monotonic()
        _add(self._pending, pair, day, n)

    @property
    def pending(self) -> int:
        """Requests counted here and not yet in the database."""
        return sum(
            sum(days.values()) for c in (self._pending, self._inflight) for days in c.values()
        )

    def knows(self, client_id: str, product: str) -> bool:
        """Whether the pair's database totals have been read on this replica."""
        return (client_id, product) in self._flushed

    # --- the database side -------------------------------------------------------------------

    async def ensure(self, client_id: str, product: str) -> None:
        """Read the pair's totals from the database once (concurrent callers share the read).

        A failure is logged and the pair is judged on this replica's counts until a refresh
        succeeds: billing quotas fail open, the rate limits still protect the upstream.
        """
        pair = (client_id, product)
        if pair in self._flushed:
            return
        waiting = self._loading.get(pair)
        if waiting is not None:
            await asyncio.shield(waiting)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._loading[pair] = future
        try:
            day = self._clock().date()
            try:
                totals = await self._backend.totals([pair], day)
            except HubError as exc:
                log.warning(
                    "usage.totals_failed", client_id=client_id, product=product, error=str(exc)
                )
                self._flushed[pair] = _Flushed(day=day, on_day=0, in_month=0)
            else:
                found = totals.get(pair)
                self._flushed.setdefault(
                    pair,
                    _Flushed(
                        day=day,
                        on_day=found.day if found else 0,
                        in_month=found.month if found else 0,
                    ),
                )
            self._seen[pair] = self._monotonic()
        finally:
            del self._loading[pair]
            future.set_result(None)

    async def flush(self) -> bool:
        """Add everything counted so far to the database, then refresh the totals in use.

        Returns whether the write succeeded (or there was nothing to write). On failure the
        counts are kept for the next attempt.
        """
        async with self._lock:
            batch, self._pending = self._pending, {}
            self._inflight = batch
            if batch:
                try:
                    await self._backend.add(_flat(batch))
                except HubError as exc:
                    _merge(self._pending, batch)
                    self._inflight = {}
                    self._failed(exc)
                    return False
                if self._on_flush is not None:
                    self._on_flush("ok")
                if self._failures:
                    log.info("usage.flush_recovered", after_failures=self._failures)
                self._failures = 0
            await self._refresh(batch)
            self._inflight = {}
            self._report()
            return True

    async def _refresh(self, written: Counts) -> None:
        now = self._monotonic()
        for pair in [p for p, at in self._seen.items() if now - at > _FORGET_SECONDS]:
            del self._seen[pair]
            self._flushed.pop(pair, None)
        # only pairs under a quota (ensure() read them once) need the totals
        active = [
            p for p, at in self._seen.items() if now - at <= _ACTIVE_SECONDS and p in self._flushed
        ]
        day = self._clock().date()
        try:
            totals = await self._backend.totals(active, day) if active else {}
        except HubError as exc:
            # written but not re-read: what this replica wrote is part of the totals now
            log.warning("usage.refresh_failed", error=str(exc))
            for pair, days in written.items():
                flushed = self._flushed.get(pair)
                if flushed is None:
                    continue
                for counted, n in days.items():
                    if (counted.year, counted.month) == (flushed.day.year, flushed.day.month):
                        flushed.in_month += n
                        if counted == flushed.day:
                            flushed.on_day += n
            return
        for pair in active:
            found = totals.get(pair)
            self._flushed[pair] = _Flushed(
                day=day, on_day=found.day if found else 0, in_month=found.month if found else 0
            )

    def _failed(self, exc: HubError) -> None:
        self._failures += 1
        backoff = min(self._max_backoff, self._flush_seconds * 2 ** (self._failures - 1))
        self._retry_at = self._monotonic() + backoff
        if self._on_flush is not None:
            self._on_flush("failed")
        self._report()
        log.warning(
            "usage.flush_failed",
            error=str(exc),
            pending_requests=self.pending,
            failures=self._failures,
            retry_in=backoff,
        )

    def _report(self) -> None:
        if self._on_pending is not None:
            self._on_pending(self.pending)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start flushing in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="hub-usage-meter")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            if self._monotonic() < self._retry_at:
                continue
            try:
                await self.flush()
            except Exception:  # the meter must outlive any bug of one flush
                log.exception("usage.flush_crashed")

    async def aclose(self) -> None:
        """Stop the background flushes, flush one last time, and log what could not be saved."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._close_timeout):
                await self.flush()
        leftover: Counts = {}
        _merge(leftover, self._inflight)
        _merge(leftover, self._pending)
        for (client_id, product, day), count in sorted(_flat(leftover).items()):
            log.error(
                "usage.unflushed",
                client_id=client_id,
                product=product,
                day=day.isoformat(),
                requests=count,
            )
