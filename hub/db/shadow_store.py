"""Shadow runs and their decision log: the ``shadow_runs`` and ``shadow_decisions`` tables.

At most one run is on at a time: :meth:`ShadowStore.start` checks under the write lock and
refuses with 409 ``shadow_running`` while another is on. A run is on until it is stopped or
its ``ends_at`` passes; it then reads as ``stopped`` or ``expired``. Replicas add their
decision-log rows and counters in batches (:meth:`ShadowStore.record`), one transaction each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db._store import Store
from hub.db.models import ShadowDecision, ShadowRun
from hub.errors import NotFound, ShadowRunning

__all__ = ["DECISION_KINDS", "ShadowStore", "StoredDecision", "StoredRun"]

#: What a decision-log row can differ in; each is a boolean column ``<kind>_changed``.
DECISION_KINDS = ("route", "auth", "decision", "limit")


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredRun:
    """One shadow run; ``state`` is ``running``, ``stopped`` or ``expired`` at ``now``."""

    id: int
    draft_id: int
    draft_revision: int
    document: dict[str, Any]
    base_version: int | None
    comment: str
    started_by: str
    started_at: datetime
    ends_at: datetime
    stopped_by: str | None
    stopped_at: datetime | None
    compared: int
    differences: int
    dropped: int
    state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredDecision:
    """One logged difference (every column of ``shadow_decisions`` but the run id)."""

    id: int
    request_id: str
    at: datetime
    method: str
    path: str
    route_active: str
    route_shadow: str
    auth_active: str
    auth_shadow: str
    decision_active: str
    decision_shadow: str
    permission_active: str | None
    permission_shadow: str | None
    rule_active: str | None
    rule_shadow: str | None
    limit_active: str | None
    limit_shadow: str | None
    route_changed: bool
    auth_changed: bool
    decision_changed: bool
    limit_changed: bool
    flip: str | None
    status: int
    config_version: int
    draft_id: int
    draft_revision: int
    principal: dict[str, Any]


_RUN_FIELDS = tuple(name for name in StoredRun.__dataclass_fields__ if name != "state")


def _run(row: Mapping[Any, Any], now: datetime) -> StoredRun:
    values = {name: row[name] for name in _RUN_FIELDS}
    if row["stopped_at"] is not None:
        state = "stopped"
    elif row["ends_at"] <= now:
        state = "expired"
    else:
        state = "running"
    return StoredRun(**values, state=state)


def _on(now: datetime) -> Any:
    return and_(ShadowRun.stopped_at.is_(None), ShadowRun.ends_at > now)


class ShadowStore(Store):
    """Shadow runs and their decision log."""

    async def start(
        self,
        *,
        draft_id: int,
        draft_revision: int,
        document: dict[str, Any],
        base_version: int | None,
        comment: str,
        author: str,
        seconds: int,
    ) -> StoredRun:
        """A new run for ``seconds``; 409 ``shadow_running`` while another one is on."""
        now = self._clock()
        async with self._write() as conn:
            running = await self._running(conn, now)
            if running is not None:
                raise ShadowRunning(
                    f"shadow run {running.id} (draft {running.draft_id}) is on until"
                    f" {running.ends_at.isoformat()}: stop it first",
                    extra={"run": running.id, "draft": running.draft_id},
                )
            result = await conn.execute(
                insert(ShadowRun).values(
                    draft_id=draft_id,
                    draft_revision=draft_revision,
                    document=document,
                    base_version=base_version,
                    comment=comment,
                    started_by=author,
                    started_at=now,
                    ends_at=now + timedelta(seconds=seconds),
                    compared=0,
                    differences=0,
                    dropped=0,
                )
            )
            (run_id,) = result.inserted_primary_key or (0,)
            return await self._get(conn, int(run_id), now)

    async def stop(self, *, author: str) -> StoredRun:
        """Stop the run that is on; 404 when none is."""
        now = self._clock()
        async with self._write() as conn:
            running = await self._running(conn, now)
            if running is None:
                raise NotFound("no shadow run is on")
            await conn.execute(
                update(ShadowRun)
                .where(ShadowRun.id == running.id)
                .values(stopped_by=author, stopped_at=now)
            )
            return await self._get(conn, running.id, now)

    async def running(self) -> StoredRun | None:
        """The run that is on now, if any."""
        async with self._read() as conn:
            return await self._running(conn, self._clock())

    async def latest(self) -> StoredRun | None:
        """The newest run, whatever its state."""
        statement = select(ShadowRun).order_by(ShadowRun.id.desc()).limit(1)
        async with self._read() as conn:
            row = (await conn.execute(statement)).mappings().first()
        return None if row is None else _run(row, self._clock())

    async def get(self, run_id: int) -> StoredRun:
        """The run, or 404."""
        async with self._read() as conn:
            return await self._get(conn, run_id, self._clock())

    async def record(
        self, run_id: int, rows: Sequence[dict[str, Any]], *, compared: int, dropped: int
    ) -> None:
        """Add a replica's batch: its decision-log rows and what it compared and dropped."""
        async with self._write() as conn:
            if rows:
                await conn.execute(insert(ShadowDecision), [{**r, "run_id": run_id} for r in rows])
            await conn.execute(
                update(ShadowRun)
                .where(ShadowRun.id == run_id)
                .values(
                    compared=ShadowRun.compared + compared,
                    differences=ShadowRun.differences + len(rows),
                    dropped=ShadowRun.dropped + dropped,
                )
            )

    async def counts(self, run_id: int) -> dict[str, int]:
        """Logged differences of a run: in total, per kind and per flip."""
        columns = [
            func.count().label("total"),
            *(
                func.count().filter(getattr(ShadowDecision, f"{kind}_changed")).label(kind)
                for kind in DECISION_KINDS
            ),
            func.count().filter(ShadowDecision.flip == "allow_to_deny").label("allow_to_deny"),
            func.count().filter(ShadowDecision.flip == "deny_to_allow").label("deny_to_allow"),
        ]
        statement = select(*columns).where(ShadowDecision.run_id == run_id)
        async with self._read() as conn:
            row = (await conn.execute(statement)).mappings().one()
        return {name: int(value or 0) for name, value in row.items()}

    async def decisions(
        self, run_id: int, *, kind: str | None = None, after: int = 0, limit: int = 100
    ) -> list[StoredDecision]:
        """A page of a run's differences, oldest first, after the row id ``after``."""
        statement = select(ShadowDecision).where(
            ShadowDecision.run_id == run_id, ShadowDecision.id > after
        )
        if kind is not None:
            statement = statement.where(getattr(ShadowDecision, f"{kind}_changed").is_(True))
        statement = statement.order_by(ShadowDecision.id).limit(limit)
        async with self._read() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        fields = StoredDecision.__dataclass_fields__
        return [StoredDecision(**{name: row[name] for name in fields}) for row in rows]

    @staticmethod
    async def _running(conn: AsyncConnection, now: datetime) -> StoredRun | None:
        statement = select(ShadowRun).where(_on(now)).order_by(ShadowRun.id.desc()).limit(1)
        row = (await conn.execute(statement)).mappings().first()
        return None if row is None else _run(row, now)

    @staticmethod
    async def _get(conn: AsyncConnection, run_id: int, now: datetime) -> StoredRun:
        row = (
            (await conn.execute(select(ShadowRun).where(ShadowRun.id == run_id))).mappings().first()
        )
        if row is None:
            raise NotFound(f"shadow run {run_id} does not exist")
        return _run(row, now)
