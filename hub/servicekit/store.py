"""The base of a service's store: its own tables, its schema, its reads and write transactions.

A service's tables live on its own metadata (:func:`service_metadata`, with the outbox's
tables copied on by :func:`hub.events.tables.include_event_tables`), in its own database: an
SQLite file by default, its own PostgreSQL database or schema (``schema_translate_map``), never
the hub's. Every write is one transaction holding the database's write lock; after it commits,
:attr:`ServiceStore.on_commit` runs (the runtime points it at the outbox relay, so a step's
events go out at once rather than at the relay's next poll).

The helpers below are what every store's methods repeat: a row read (and locked) by its id, an
update that holds only if nobody changed the row meanwhile, a step's events put on the outbox,
a listing's page read newest first, rows inserted and updated over their version with their
step's events (:class:`VersionedRows`). And three kinds of table several services keep, each
with the code that reads and writes it:

- a state machine's history (:func:`transitions_table`, :class:`Transitions`): each move of a
  row (a visa application, a permit, a contract) numbered 1, 2, ... within the row, with the
  state it left and the one it entered, who moved it, when and why; the row's ``version``
  increments with each move, so a move holds only over the row as it was read;
- the ``Idempotency-Key`` s a service remembers (:func:`idempotency_table`,
  :class:`IdempotencyKeys`): per scope (who used the key, for what) and key, the hash of the
  request (:func:`hub.servicekit.idempotency.request_hash`) and the id of what it made; a retry
  with the same request gets that id back, another request with the key is refused;
- payment events that come before their row (:func:`receipts_table`, :class:`PaymentReceipts`):
  a fast webhook may outrun the commit of the request that asked for the payment, so the first
  event per payment is kept for that request to find.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ColumnElement,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Executable

from hub.db.engine import WRITE_LOCK, database_errors
from hub.db.models import UTCDateTime
from hub.errors import HubError, IdempotencyConflict
from hub.events.outbox import enqueue
from hub.servicekit.paging import PAGE_MAX, Page, after, page_of

__all__ = [
    "SEQUENCE",
    "Actor",
    "Events",
    "IdempotencyKeys",
    "PaymentReceipts",
    "ServiceStore",
    "Transitions",
    "VersionedRows",
    "as_dict",
    "emit",
    "equal_to",
    "idempotency_table",
    "locked",
    "receipts_table",
    "service_metadata",
    "transitions_table",
    "upsert",
    "versioned_update",
]

#: The column type of an autoincrementing sequence number (SQLite wants a plain INTEGER).
SEQUENCE = BigInteger().with_variant(Integer(), "sqlite")

#: A step's domain events: ``(type, payload)`` in the order they happen.
Events = Sequence[tuple[str, dict[str, Any]]]


def service_metadata() -> MetaData:
    """A service's own metadata, with the constraint names every service uses."""
    return MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


def as_dict(row: Row[Any] | None) -> dict[str, Any] | None:
    """A result row as a dict of its columns; ``None`` stays ``None``."""
    return None if row is None else dict(row._mapping)


def equal_to(*filters: tuple[Any, object]) -> list[ColumnElement[bool]]:
    """The conditions ``column == value`` of a listing's filters; a ``None`` value means any."""
    return [column == value for column, value in filters if value is not None]


def upsert(conn: AsyncConnection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into ``table`` that can say what a conflict does, in ``conn``'s dialect."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    return insert(table)


async def locked(conn: AsyncConnection, table: Table, row_id: str) -> dict[str, Any] | None:
    """The row of ``table`` with ``row_id``, read (and locked on PostgreSQL) in ``conn``."""
    statement = select(table).where(table.c.id == row_id).with_for_update()
    return as_dict((await conn.execute(statement)).first())


async def versioned_update(
    conn: AsyncConnection,
    table: Table,
    current: dict[str, Any],
    values: dict[str, Any],
    *,
    what: str,
) -> dict[str, Any]:
    """Write ``values`` and the next version over ``current``; answers what was written.

    The update holds only while the row is still at ``current``'s version: one that another
    writer moved meanwhile refuses as :class:`~hub.errors.IdempotencyConflict`, naming ``what``.
    """
    written = {**values, "version": current["version"] + 1}
    updated = await conn.execute(
        table.update()
        .where(table.c.id == current["id"], table.c.version == current["version"])
        .values(**written)
    )
    if updated.rowcount != 1:
        raise IdempotencyConflict(f"the {what} changed meanwhile; retry")
    return written


async def emit(conn: AsyncConnection, events: Events, *, key: str, prefix: str) -> None:
    """Put a step's events on the outbox in ``conn``'s transaction, ordered by ``key``.

    Their ids are ``<prefix>.<index>.<type>``: the same step retried makes the same ids, so
    the outbox adds nothing the second time.
    """
    for index, (event_type, payload) in enumerate(events):
        await enqueue(
            conn,
            type=event_type,
            payload=payload,
            key=key,
            event_id=f"{prefix}.{index}.{event_type}",
        )


class VersionedRows:
    """Inserts and versioned updates of ``table``'s rows, each with its step's events.

    A row's events are ordered by ``<stream>:<id>`` and their ids start ``<id>.<version>``
    (the version the write made), so a step retried puts nothing on the outbox twice; ``what``
    names a row in the refusal of an update that lost a race.
    """

    def __init__(self, table: Table, *, stream: str, what: str) -> None:
        self.table = table
        self._stream = stream
        self._what = what

    async def insert(self, conn: AsyncConnection, row: dict[str, Any], events: Events) -> None:
        """Insert ``row`` (at its first version) and its events."""
        await conn.execute(self.table.insert().values(**row))
        await self._emit(conn, row["id"], row["version"], events)

    async def update(
        self,
        conn: AsyncConnection,
        current: dict[str, Any],
        changes: dict[str, Any],
        events: Events,
    ) -> dict[str, Any]:
        """Write ``changes`` over ``current`` (:func:`versioned_update`); the row as it became."""
        written = await versioned_update(conn, self.table, current, changes, what=self._what)
        await self._emit(conn, current["id"], written["version"], events)
        return {**current, **written}

    async def _emit(self, conn: AsyncConnection, row_id: str, version: int, events: Events) -> None:
        await emit(conn, events, key=f"{self._stream}:{row_id}", prefix=f"{row_id}.{version}")


class ServiceStore:
    """Reads and writes of one service's tables; a subclass names its :attr:`metadata`."""

    #: The service's tables (and the outbox's, copied on).
    metadata: ClassVar[MetaData]
    #: What a write that lost a race on a unique key raises (``None``: the database error).
    lost_race: ClassVar[type[HubError] | None] = IdempotencyConflict

    def __init__(self, engine: AsyncEngine, *, schema: str | None = None) -> None:
        self.engine = engine
        self._schema = schema
        #: Called after each committed write (the app wakes its outbox relay with it).
        self.on_commit: Callable[[], None] = lambda: None

    @property
    def _postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    async def create_schema(self) -> None:
        """Create the service's tables (and its schema on PostgreSQL)."""
        with database_errors():
            async with self.engine.begin() as conn:
                if self._postgres and self._schema:
                    await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"'))
                await conn.run_sync(self.metadata.create_all)
                await self._complete_schema(conn)

    async def _complete_schema(self, conn: AsyncConnection) -> None:
        """What a service adds to its schema beyond the metadata (an index SQL must spell)."""

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads outside any write transaction."""
        with database_errors():
            async with self.engine.connect() as conn:
                yield conn

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction holding the database's write lock (BEGIN IMMEDIATE on SQLite)."""
        try:
            with database_errors():
                async with self.engine.connect() as conn:
                    await conn.execution_options(**WRITE_LOCK)
                    async with conn.begin():
                        yield conn
        except HubError as exc:
            lost = self.lost_race
            if lost is not None and isinstance(exc.__cause__, IntegrityError):
                # a concurrent writer got there first
                raise lost("a concurrent request made the same change; retry it") from exc.__cause__
            raise
        self.on_commit()

    async def _one(self, statement: Executable) -> dict[str, Any] | None:
        """The first row ``statement`` reads, in a connection of its own."""
        async with self.reading() as conn:
            return as_dict((await conn.execute(statement)).first())

    async def _all(self, statement: Executable) -> list[dict[str, Any]]:
        """Every row ``statement`` reads, in a connection of its own."""
        async with self.reading() as conn:
            return [dict(row._mapping) for row in (await conn.execute(statement)).all()]

    async def _page(
        self,
        table: Table,
        conditions: list[ColumnElement[bool]],
        *,
        at: str,
        limit: int,
        cursor: str | None,
    ) -> Page:
        """One page of ``table``'s rows meeting ``conditions``, newest by ``at`` first (keyset)."""
        limit = max(1, min(limit, PAGE_MAX))
        if cursor:
            conditions = [*conditions, after(cursor, table.c[at], table.c.id)]
        rows = await self._all(
            select(table)
            .where(*conditions)
            .order_by(table.c[at].desc(), table.c.id.desc())
            .limit(limit + 1)
        )
        return page_of(rows, limit, at=at)

    async def _advisory_lock(self, conn: AsyncConnection, name: str) -> None:
        """Serialise the writers of ``name`` on PostgreSQL (SQLite's write lock already does)."""
        if self._postgres:
            await conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(name))))

    async def table_counts(self) -> dict[str, int]:
        """Rows per table (tests check that a failed step left none behind)."""
        counts: dict[str, int] = {}
        async with self.reading() as conn:
            for table in self.metadata.sorted_tables:
                counts[table.name] = (
                    await conn.execute(select(func.count()).select_from(table))
                ).scalar_one()
        return counts


# ---- a state machine's history -----------------------------------------------------------


class Actor(Protocol):
    """Who moves a row, as the record keeps them (each service's own ``Actor`` is one)."""

    @property
    def kind(self) -> str: ...

    @property
    def id(self) -> str: ...


def transitions_table(
    name: str, metadata: MetaData, *, owner: str, rows: str, detail: bool = True
) -> Table:
    """The transitions of the rows of table ``rows``, each naming its row in column ``owner``.

    ``detail`` adds the JSON column a service keeps a move's particulars in (the checks that
    decided it, say).
    """
    columns: list[Column[Any]] = [
        Column("seq", SEQUENCE, primary_key=True, autoincrement=True),
        Column(
            owner,
            String(40),
            ForeignKey(f"{rows}.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        Column("number", Integer, nullable=False),  # 1, 2, ... within the row
        Column("from_state", String(20), nullable=True),
        Column("to_state", String(20), nullable=False),
        Column("actor_kind", String(20), nullable=False),
        Column("actor_id", String(200), nullable=False),
        Column("at", UTCDateTime(), nullable=False),
        Column("reason", String(500), nullable=True),
    ]
    if detail:
        columns.append(Column("detail", JSON, nullable=False))
    return Table(name, metadata, *columns, sqlite_autoincrement=True)


class Transitions:
    """The moves of the rows of ``rows``, recorded in ``history`` (from :func:`transitions_table`).

    ``what`` names a row in the refusal of a move that lost a race ("the permit changed
    meanwhile; retry").
    """

    def __init__(self, rows: Table, history: Table, *, owner: str, what: str) -> None:
        self.rows = rows
        self.history = history
        self._owner = history.c[owner]
        self._what = what

    async def of(self, conn: AsyncConnection, row_id: str) -> list[dict[str, Any]]:
        """The transitions of one row, first to last."""
        statement = (
            select(self.history).where(self._owner == row_id).order_by(self.history.c.number)
        )
        return [dict(row._mapping) for row in (await conn.execute(statement)).all()]

    async def record(
        self,
        conn: AsyncConnection,
        row_id: str,
        *,
        number: int,
        from_state: str | None,
        to_state: str,
        actor: Actor,
        at: Any,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Insert one transition of ``row_id`` (``detail`` only where the table keeps it)."""
        values: dict[str, Any] = {
            self._owner.key: row_id,
            "number": number,
            "from_state": from_state,
            "to_state": to_state,
            "actor_kind": actor.kind,
            "actor_id": actor.id,
            "at": at,
            "reason": reason,
        }
        if "detail" in self.history.c:
            values["detail"] = detail or {}
        await conn.execute(self.history.insert().values(**values))

    async def move(
        self,
        conn: AsyncConnection,
        current: dict[str, Any],
        target: str,
        actor: Actor,
        *,
        now: Any,
        changes: dict[str, Any] | None = None,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], int]:
        """Move the row ``current`` (read locked, its move checked) to ``target``.

        Writes the row's new state, ``changes`` and version, and the transition numbered after
        the row's last; answers the row as it became and that number (a step's events take it
        into their ids).
        """
        row_id = current["id"]
        number = (
            await conn.execute(select(func.count()).where(self._owner == row_id))
        ).scalar_one() + 1
        values = {**(changes or {}), "state": target, "updated_at": now}
        written = await versioned_update(conn, self.rows, current, values, what=self._what)
        await self.record(
            conn,
            row_id,
            number=number,
            from_state=current["state"],
            to_state=target,
            actor=actor,
            at=now,
            reason=reason,
            detail=detail,
        )
        return {**current, **written}, number


# ---- idempotency keys ------------------------------------------------------------------------


def idempotency_table(name: str, metadata: MetaData, *, result: str) -> Table:
    """The keys' table; ``result`` names the column holding the id of what a request made."""
    return Table(
        name,
        metadata,
        Column("scope", String(300), primary_key=True),
        Column("key", String(200), primary_key=True),
        Column("request_sha256", String(64), nullable=False),
        Column(result, String(40), nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
    )


class IdempotencyKeys:
    """Look-ups and records of one table of :func:`idempotency_table`."""

    def __init__(self, table: Table, *, result: str) -> None:
        self.table = table
        self._result = result

    async def made(self, conn: AsyncConnection, scope: str, key: str, digest: str) -> str | None:
        """The id an earlier request with this key made (``None``: none did).

        An earlier request with another body (``digest``) refuses this one.
        """
        row = (
            await conn.execute(
                select(self.table).where(self.table.c.scope == scope, self.table.c.key == key)
            )
        ).first()
        if row is None:
            return None
        if row.request_sha256 != digest:
            raise IdempotencyConflict(
                "this Idempotency-Key was used for a different request; use a new key"
            )
        return str(row._mapping[self._result])

    async def remember(
        self, conn: AsyncConnection, scope: str, key: str, digest: str, result_id: str, *, at: Any
    ) -> None:
        """Record what a request with this key made, in the request's own transaction."""
        await conn.execute(
            self.table.insert().values(
                scope=scope,
                key=key,
                request_sha256=digest,
                created_at=at,
                **{self._result: result_id},
            )
        )


# ---- payment receipts ------------------------------------------------------------------------


def receipts_table(name: str, metadata: MetaData) -> Table:
    """The table of the payment events a service heard, one row per payment."""
    return Table(
        name,
        metadata,
        Column("payment_id", String(100), primary_key=True),
        Column("state", String(20), nullable=False),
        Column("received_at", UTCDateTime(), nullable=False),
    )


class PaymentReceipts:
    """Records and look-ups of one table of :func:`receipts_table`, in the caller's transaction."""

    def __init__(self, table: Table) -> None:
        self.table = table

    async def record(self, conn: AsyncConnection, payment_id: str, state: str) -> None:
        """Remember a payment event; a later one for the same payment changes nothing."""
        if await self.state(conn, payment_id) is None:
            await conn.execute(
                self.table.insert().values(
                    payment_id=payment_id, state=state, received_at=datetime.now(UTC)
                )
            )

    async def state(self, conn: AsyncConnection, payment_id: str) -> str | None:
        """The state of the payment event heard for ``payment_id``, if one came."""
        statement = select(self.table.c.state).where(self.table.c.payment_id == payment_id)
        return (await conn.execute(statement)).scalar_one_or_none()
