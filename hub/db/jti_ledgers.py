"""Ledgers of token ids: spent ``private_key_jwt`` assertions and revoked tokens, until expiry."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.db._identity_common import Clock, Store, check_aware, insert_ignore, utcnow
from hub.db.identity_tables import JTI_LENGTH, RevokedTokenRow, UsedAssertionRow
from hub.errors import InvalidClient, InvalidRequest

__all__ = ["AssertionLedger", "RevocationStore"]

# Expired ledger rows are deleted at most this often per store, a batch at a time.
_PRUNE_EVERY = timedelta(seconds=60)
_PRUNE_BATCH = 1000
# A used assertion is remembered a little past the expiry it was given, so a replica whose clock
# runs behind (or a verifier's leeway) cannot accept it again right after the row is pruned.
_REPLAY_GRACE = timedelta(minutes=5)

_USED = cast(Table, UsedAssertionRow.__table__)
_REVOKED = cast(Table, RevokedTokenRow.__table__)


def _valid_jti(jti: str) -> bool:
    # Control characters are refused here rather than by the database (PostgreSQL rejects NUL).
    return 0 < len(jti) <= JTI_LENGTH and jti.isprintable()


async def _prune(conn: AsyncConnection, table: Table, before: datetime) -> None:
    primary_key = tuple(table.primary_key.columns)
    # SKIP LOCKED: replicas pruning at once take disjoint batches instead of waiting on (or
    # deadlocking with) each other; SQLite ignores it and holds the write lock anyway.
    batch = (
        select(*primary_key)
        .where(table.c.expires_at < before)
        .limit(_PRUNE_BATCH)
        .with_for_update(skip_locked=True)
    )
    await conn.execute(delete(table).where(tuple_(*primary_key).in_(batch)))


class _Pruning(Store):
    """A store of rows that expire, deleted opportunistically by the store's own writes."""

    _table: Table
    _keep_for = timedelta(0)

    def __init__(self, engine: AsyncEngine, *, clock: Clock = utcnow) -> None:
        super().__init__(engine, clock=clock)
        self._next_prune: datetime | None = None

    async def _maybe_prune(self, now: datetime) -> None:
        if self._next_prune is not None and now < self._next_prune:
            return
        self._next_prune = now + _PRUNE_EVERY
        async with self._write() as conn:
            await _prune(conn, self._table, now - self._keep_for)


class AssertionLedger(_Pruning):
    """The ``jti`` of every accepted ``private_key_jwt`` assertion, until it has expired."""

    _table = _USED
    _keep_for = _REPLAY_GRACE

    async def use_once(self, jti: str, client_id: str, expires_at: datetime) -> bool:
        """Record the assertion ``jti`` of ``client_id``; ``False`` if it was seen before (replay).

        ``expires_at`` is the last instant the assertion could be accepted: its ``exp`` plus any
        leeway the verifier allows. Exactly one of concurrent callers with the same jti wins.
        """
        check_aware(expires_at, "expires_at")
        if not _valid_jti(jti):
            raise InvalidClient(f"the assertion jti must be 1 to {JTI_LENGTH} printable characters")
        await self._maybe_prune(self._clock())
        async with self._write() as conn:
            inserted = await conn.execute(
                insert_ignore(conn, self._table)
                .values(client_id=client_id, jti=jti, expires_at=expires_at)
                .returning(self._table.c.jti)
            )
            return inserted.first() is not None


class RevocationStore(_Pruning):
    """Tokens revoked before they expired, by ``jti``."""

    _table = _REVOKED

    async def revoke(self, jti: str, expires_at: datetime) -> None:
        """Revoke the token ``jti`` until ``expires_at`` (its own expiry); idempotent."""
        check_aware(expires_at, "expires_at")
        if not _valid_jti(jti):
            raise InvalidRequest(f"a token jti must be 1 to {JTI_LENGTH} printable characters")
        now = self._clock()
        await self._maybe_prune(now)
        async with self._write() as conn:
            await conn.execute(
                insert_ignore(conn, self._table).values(
                    jti=jti, expires_at=expires_at, revoked_at=now
                )
            )

    async def is_revoked(self, jti: str) -> bool:
        """Whether the token ``jti`` is revoked and not yet expired."""
        statement = select(self._table.c.jti).where(
            self._table.c.jti == jti, self._table.c.expires_at > self._clock()
        )
        async with self._read() as conn:
            return await conn.scalar(statement) is not None

    async def active(self) -> set[str]:
        """The jti of every revoked token that has not expired yet."""
        now = self._clock()
        await self._maybe_prune(now)
        statement = select(self._table.c.jti).where(self._table.c.expires_at > now)
        async with self._read() as conn:
            return set((await conn.scalars(statement)).all())
