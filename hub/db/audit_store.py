"""The registrar audit log's store: chained appends under one lock, reads, and the raw walk.

Appends take the head row's lock (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE``
on SQLite), so appenders of every replica form one chain: each batch reads the head's ``seq``
and ``hash``, chains its entries onto them, inserts them and moves the head, in one transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select, update

from hub.audit.chain import AuditDraft
from hub.db._store import Store
from hub.db.audit_tables import HEAD_ROW_ID, AuditEntryRow, AuditHeadRow

__all__ = ["AuditEntry", "AuditHead", "AuditStore"]

_ENTRIES = cast(Table, AuditEntryRow.__table__)
_HEAD = cast(Table, AuditHeadRow.__table__)
_COLUMNS = tuple(column.name for column in _ENTRIES.columns)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One stored entry, exactly as in the database."""

    seq: int
    at: datetime
    kind: str
    actor: str
    actor_kind: str
    client_id: str | None
    on_behalf_of: str | None
    adapter: str | None
    operation: str | None
    record_kind: str | None
    record_ref: str | None
    person_ref: str | None
    purpose: str | None
    fields: tuple[str, ...]
    outcome: str | None
    request_id: str | None
    config_version: int | None
    target_seq: int | None
    embargo_until: datetime | None
    reason: str | None
    prev_hash: str
    hash: str

    def values(self) -> dict[str, Any]:
        """The columns as stored, for re-hashing."""
        values = {name: getattr(self, name) for name in _COLUMNS}
        values["fields"] = list(self.fields)
        return values


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditHead:
    """The last entry the chain's head row records."""

    seq: int
    hash: str


def _entry(row: Any) -> AuditEntry:
    data = dict(row._mapping)
    data["fields"] = tuple(data["fields"] or ())
    return AuditEntry(**data)


class AuditStore(Store):
    """Appends to and reads the registrar audit log."""

    async def append(self, drafts: Sequence[AuditDraft]) -> list[AuditEntry]:
        """Chain ``drafts`` onto the log in one transaction; the stored entries, in order."""
        async with self._write() as conn:
            head = (
                await conn.execute(
                    select(AuditHeadRow.seq, AuditHeadRow.hash)
                    .where(AuditHeadRow.id == HEAD_ROW_ID)
                    .with_for_update()
                )
            ).one()
            seq, previous = int(head.seq), str(head.hash)
            rows: list[dict[str, Any]] = []
            for draft in drafts:
                seq += 1
                row = draft.row(seq=seq, prev_hash=previous)
                previous = row["hash"]
                rows.append(row)
            await conn.execute(insert(_ENTRIES), rows)
            await conn.execute(
                update(_HEAD).where(AuditHeadRow.id == HEAD_ROW_ID).values(seq=seq, hash=previous)
            )
        return [_entry_from(row) for row in rows]

    async def append_release(self, draft: AuditDraft) -> AuditEntry:
        """Append a release of restriction ``draft.target_seq`` unless one exists already."""
        async with self._write() as conn:
            head = (
                await conn.execute(
                    select(AuditHeadRow.seq, AuditHeadRow.hash)
                    .where(AuditHeadRow.id == HEAD_ROW_ID)
                    .with_for_update()
                )
            ).one()
            existing = (
                await conn.execute(
                    select(_ENTRIES).where(
                        AuditEntryRow.kind == "release",
                        AuditEntryRow.target_seq == draft.target_seq,
                    )
                )
            ).first()
            if existing is not None:
                return _entry(existing)
            row = draft.row(seq=int(head.seq) + 1, prev_hash=str(head.hash))
            await conn.execute(insert(_ENTRIES), [row])
            await conn.execute(
                update(_HEAD)
                .where(AuditHeadRow.id == HEAD_ROW_ID)
                .values(seq=row["seq"], hash=row["hash"])
            )
        return _entry_from(row)

    async def get(self, seq: int) -> AuditEntry | None:
        async with self._read() as conn:
            row = (await conn.execute(select(_ENTRIES).where(AuditEntryRow.seq == seq))).first()
        return _entry(row) if row is not None else None

    async def for_person(
        self, person_ref: str, *, limit: int, before: int | None = None
    ) -> list[AuditEntry]:
        """Reads of one person's data, newest first."""
        statement = select(_ENTRIES).where(
            AuditEntryRow.person_ref == person_ref, AuditEntryRow.kind == "read"
        )
        if before is not None:
            statement = statement.where(AuditEntryRow.seq < before)
        statement = statement.order_by(AuditEntryRow.seq.desc()).limit(limit)
        async with self._read() as conn:
            return [_entry(row) for row in await conn.execute(statement)]

    async def targeting(self, kind: str, targets: Sequence[int]) -> list[AuditEntry]:
        """Entries of ``kind`` (restrict, release) pointing at any of ``targets``."""
        if not targets:
            return []
        statement = (
            select(_ENTRIES)
            .where(AuditEntryRow.kind == kind, AuditEntryRow.target_seq.in_(list(targets)))
            .order_by(AuditEntryRow.seq)
        )
        async with self._read() as conn:
            return [_entry(row) for row in await conn.execute(statement)]

    async def by_kind(
        self, kind: str, *, limit: int, before: int | None = None
    ) -> list[AuditEntry]:
        """The newest entries of one kind."""
        statement = select(_ENTRIES).where(AuditEntryRow.kind == kind)
        if before is not None:
            statement = statement.where(AuditEntryRow.seq < before)
        statement = statement.order_by(AuditEntryRow.seq.desc()).limit(limit)
        async with self._read() as conn:
            return [_entry(row) for row in await conn.execute(statement)]

    async def head(self) -> AuditHead:
        async with self._read() as conn:
            row = (
                await conn.execute(
                    select(AuditHeadRow.seq, AuditHeadRow.hash).where(
                        AuditHeadRow.id == HEAD_ROW_ID
                    )
                )
            ).one()
        return AuditHead(seq=int(row.seq), hash=str(row.hash))

    async def walk(self, *, batch: int = 1000) -> AsyncIterator[AuditEntry]:
        """Every entry in ``seq`` order, read in batches."""
        after = 0
        while True:
            statement = (
                select(_ENTRIES)
                .where(AuditEntryRow.seq > after)
                .order_by(AuditEntryRow.seq)
                .limit(batch)
            )
            async with self._read() as conn:
                rows = [_entry(row) for row in await conn.execute(statement)]
            if not rows:
                return
            for entry in rows:
                yield entry
            after = rows[-1].seq


def _entry_from(row: dict[str, Any]) -> AuditEntry:
    data = dict(row)
    data["fields"] = tuple(data["fields"])
    return AuditEntry(**data)
