"""The store of numbered configuration versions and the pointer to the active one.

Every change (publish, activate, first-start seed) runs in one transaction that first locks the
pointer row, so concurrent writers are serialised: the loser of a race re-reads the pointer after
the winner commits and fails its ``expected_active`` check instead of overwriting the winner.

Each change also writes its ``config_changes`` row in that transaction: who, when, why, and the
summary the caller's ``review`` computed from the version being replaced. ``review`` runs under
the lock, so what it judged (the active document) is what gets replaced; raising refuses the
change and writes nothing. A publish from a draft deletes the draft in the same transaction,
and only while the draft is still at the revision that was read (and approved).

Four-eyes approvals work the same way: the caller's ``protect`` check names the protected items
the change touches, judged under the lock against the version really being replaced, and may
refuse the change (no valid approval); the items and ``approved_by`` go into the change's row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db._store import Store
from hub.db.models import ACTIVE_ROW_ID, ActiveConfig, ConfigChange, ConfigDraft, ConfigVersion
from hub.errors import Conflict, HubError, NotFound

__all__ = ["ConfigStore", "Protect", "Review", "StoredChange", "StoredVersion"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredVersion:
    """One stored configuration version and whether it is the active one."""

    version: int
    checksum: str
    document: dict[str, Any]
    created_at: datetime
    created_by: str
    comment: str
    based_on: int | None
    active: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredChange:
    """One change of the active version, as the audit keeps it."""

    id: int
    action: str
    version: int
    previous: int | None
    actor: str
    at: datetime
    comment: str
    draft_id: int | None
    summary: dict[str, Any] | None
    protected: list[dict[str, Any]] | None = None
    approved_by: str | None = None


#: Judges a change against the version it replaces (``None`` before the first); returns the
#: diff summary to record, or raises to refuse the change.
Review = Callable[["StoredVersion | None"], "dict[str, Any] | None"]
#: Names the protected items a change touches in the version it replaces, to record; raises
#: to refuse the change (it needs an approval it does not have).
Protect = Callable[["StoredVersion | None"], "list[dict[str, Any]] | None"]


_COLUMNS = (
    ConfigVersion.version,
    ConfigVersion.checksum,
    ConfigVersion.document,
    ConfigVersion.created_at,
    ConfigVersion.created_by,
    ConfigVersion.comment,
    ConfigVersion.based_on,
)


def _versions() -> Select[Any]:
    # One statement reads a version and its active flag, so both come from the same snapshot.
    return select(*_COLUMNS, ActiveConfig.id.is_not(None).label("active")).outerjoin(
        ActiveConfig, ActiveConfig.version == ConfigVersion.version
    )


def _stored(row: Mapping[str, Any]) -> StoredVersion:
    return StoredVersion(
        version=row["version"],
        checksum=row["checksum"],
        document=row["document"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        comment=row["comment"],
        based_on=row["based_on"],
        active=bool(row["active"]),
    )


def _check_expected(current: int | None, expected: int | None) -> None:
    if expected is not None and current != expected:
        shown = "none" if current is None else str(current)
        raise Conflict(
            f"configuration changed: active version is {shown}, not {expected}",
            extra={"active_version": current, "based_on": expected},
        )


class ConfigStore(Store):
    """Numbered configuration versions in the hub's database."""

    async def active(self) -> StoredVersion | None:
        """The active version, or ``None`` before anything was published."""
        statement = _versions().where(ActiveConfig.id == ACTIVE_ROW_ID)
        async with self._read() as conn:
            row = (await conn.execute(statement)).mappings().first()
        return None if row is None else _stored(row)

    async def active_version(self) -> int | None:
        """Only the active version number: cheap enough for replicas to poll."""
        statement = select(ActiveConfig.version).where(ActiveConfig.id == ACTIVE_ROW_ID)
        async with self._read() as conn:
            return await conn.scalar(statement)

    async def get(self, version: int) -> StoredVersion | None:
        """The stored ``version``, or ``None`` if there is no such version."""
        async with self._read() as conn:
            return await self._fetch(conn, version)

    async def history(self, *, limit: int = 50) -> list[StoredVersion]:
        """The newest ``limit`` versions, newest first."""
        statement = _versions().order_by(ConfigVersion.version.desc()).limit(limit)
        async with self._read() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [_stored(row) for row in rows]

    async def changes(self, version: int) -> list[StoredChange]:
        """Every recorded change that made ``version`` active, oldest first."""
        statement = (
            select(ConfigChange).where(ConfigChange.version == version).order_by(ConfigChange.id)
        )
        async with self._read() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [
            StoredChange(**{f: row[f] for f in StoredChange.__dataclass_fields__}) for row in rows
        ]

    async def publish(
        self,
        document: dict[str, Any],
        *,
        checksum: str,
        author: str,
        comment: str = "",
        expected_active: int | None = None,
        review: Review | None = None,
        draft_id: int | None = None,
        draft_revision: int | None = None,
        protect: Protect | None = None,
        approved_by: str | None = None,
    ) -> StoredVersion:
        """Store ``document`` as a new version and make it active, atomically.

        With ``expected_active``, refuse with :class:`Conflict` (and write nothing) unless that
        version is still the active one: two admins editing the same version cannot both win.
        With ``draft_id``, that draft is deleted in the same transaction (404 if it is gone,
        409 if it is no longer at ``draft_revision``).
        """
        async with self._write() as conn:
            current = await self._lock_pointer(conn)
            _check_expected(current, expected_active)
            active = None if current is None else await self._fetch(conn, current)
            summary = review(active) if review is not None else None
            protected = protect(active) if protect is not None else None
            if draft_id is not None:
                await self._delete_draft(conn, draft_id, draft_revision)
            version = await self._insert(
                conn, document, checksum=checksum, author=author, comment=comment, based_on=current
            )
            await self._point_at(conn, version, author=author)
            await self._record(
                conn,
                action="publish",
                version=version,
                previous=current,
                actor=author,
                comment=comment,
                draft_id=draft_id,
                summary=summary,
                protected=protected,
                approved_by=approved_by,
            )
            return await self._fetch_existing(conn, version)

    async def activate(
        self,
        version: int,
        *,
        author: str,
        expected_active: int | None = None,
        comment: str = "",
        review: Review | None = None,
        protect: Protect | None = None,
    ) -> StoredVersion:
        """Make the existing ``version`` active again (rollback or roll forward)."""
        async with self._write() as conn:
            current = await self._lock_pointer(conn)
            _check_expected(current, expected_active)
            found = await conn.scalar(
                select(ConfigVersion.version).where(ConfigVersion.version == version)
            )
            if found is None:
                raise NotFound(f"configuration version {version} does not exist")
            active = None if current is None else await self._fetch(conn, current)
            summary = review(active) if review is not None else None
            protected = protect(active) if protect is not None else None
            await self._point_at(conn, version, author=author)
            await self._record(
                conn,
                action="activate",
                version=version,
                previous=current,
                actor=author,
                comment=comment,
                summary=summary,
                protected=protected,
            )
            return await self._fetch_existing(conn, version)

    async def seed_if_empty(
        self,
        document: dict[str, Any],
        *,
        checksum: str,
        author: str,
        review: Review | None = None,
    ) -> StoredVersion | None:
        """On first start store ``document`` as version 1 and activate it; else do nothing.

        Returns the new version, or ``None`` when some version already existed (for instance
        because another replica seeded the database a moment earlier).
        """
        async with self._write() as conn:
            await self._lock_pointer(conn)
            if await conn.scalar(select(exists().select_from(ConfigVersion))):
                return None
            version = await self._insert(
                conn,
                document,
                checksum=checksum,
                author=author,
                comment="initial configuration",
                based_on=None,
            )
            await self._point_at(conn, version, author=author)
            await self._record(
                conn,
                action="seed",
                version=version,
                previous=None,
                actor=author,
                comment="initial configuration",
                summary=review(None) if review is not None else None,
            )
            return await self._fetch_existing(conn, version)

    @staticmethod
    async def _delete_draft(conn: AsyncConnection, draft_id: int, revision: int | None) -> None:
        statement = delete(ConfigDraft).where(ConfigDraft.id == draft_id)
        if revision is not None:
            statement = statement.where(ConfigDraft.revision == revision)
        if (await conn.execute(statement)).rowcount:
            return
        current = await conn.scalar(select(ConfigDraft.revision).where(ConfigDraft.id == draft_id))
        if current is None:
            raise NotFound(f"draft {draft_id} does not exist")
        raise Conflict(
            f"draft {draft_id} changed while it was being published: it is at revision"
            f" {current}, not {revision}",
            extra={"revision": current},
        )

    async def _record(
        self,
        conn: AsyncConnection,
        *,
        action: str,
        version: int,
        previous: int | None,
        actor: str,
        comment: str,
        summary: dict[str, Any] | None,
        draft_id: int | None = None,
        protected: list[dict[str, Any]] | None = None,
        approved_by: str | None = None,
    ) -> None:
        await conn.execute(
            insert(ConfigChange).values(
                action=action,
                version=version,
                previous=previous,
                actor=actor,
                at=self._clock(),
                comment=comment,
                draft_id=draft_id,
                summary=summary,
                protected=protected,
                approved_by=approved_by,
            )
        )

    @staticmethod
    async def _lock_pointer(conn: AsyncConnection) -> int | None:
        # FOR UPDATE serialises writers on PostgreSQL; SQLite already holds the write lock
        # (BEGIN IMMEDIATE) and the dialect leaves the clause out.
        result = await conn.execute(
            select(ActiveConfig.version).where(ActiveConfig.id == ACTIVE_ROW_ID).with_for_update()
        )
        row = result.first()
        if row is None:
            raise HubError("the configuration tables are not initialised: run `hub migrate`")
        current: int | None = row.version
        return current

    @staticmethod
    async def _insert(
        conn: AsyncConnection,
        document: dict[str, Any],
        *,
        checksum: str,
        author: str,
        comment: str,
        based_on: int | None,
    ) -> int:
        result = await conn.execute(
            insert(ConfigVersion).values(
                checksum=checksum,
                document=document,
                created_at=datetime.now(UTC),
                created_by=author,
                comment=comment,
                based_on=based_on,
            )
        )
        (version,) = result.inserted_primary_key or (None,)
        if not isinstance(version, int):
            raise HubError("the database did not return the new configuration version number")
        return version

    @staticmethod
    async def _point_at(conn: AsyncConnection, version: int, *, author: str) -> None:
        await conn.execute(
            update(ActiveConfig)
            .where(ActiveConfig.id == ACTIVE_ROW_ID)
            .values(version=version, activated_at=datetime.now(UTC), activated_by=author)
        )

    @staticmethod
    async def _fetch(conn: AsyncConnection, version: int) -> StoredVersion | None:
        statement = _versions().where(ConfigVersion.version == version)
        row = (await conn.execute(statement)).mappings().first()
        return None if row is None else _stored(row)

    @classmethod
    async def _fetch_existing(cls, conn: AsyncConnection, version: int) -> StoredVersion:
        stored = await cls._fetch(conn, version)
        if stored is None:
            raise HubError(f"configuration version {version} vanished inside its transaction")
        return stored
