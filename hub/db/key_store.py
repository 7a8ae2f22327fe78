"""The hub's signing key pairs (access and internal tokens, document signatures), as stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import RowMapping, Table, exists, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db._identity_common import Store, check_aware, insert_ignore
from hub.db.identity_tables import SigningKeyRow
from hub.errors import Conflict, NotFound

__all__ = ["AlgName", "KeyStore", "KeyUse", "StoredKey"]

#: ``signature``: the hub's signatures of documents (``hub.signing``, employment contracts).
KeyUse = Literal["access", "internal", "signature"]
AlgName = Literal["RS256", "EdDSA"]

# Serialises key writers on PostgreSQL, where an empty table offers no row to lock.
_PG_KEYS_LOCK = 0x6875625F6B657973  # "hub_keys"

_KEYS = cast(Table, SigningKeyRow.__table__)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredKey:
    """A signing key pair as stored; the private half is a PKCS#8 PEM."""

    kid: str
    use: KeyUse
    alg: AlgName
    private_pem: str
    public_jwk: dict[str, Any]
    created_at: datetime
    activates_at: datetime
    retired_at: datetime | None


def _key(row: RowMapping) -> StoredKey:
    return StoredKey(
        kid=row["kid"],
        use=cast(KeyUse, row["use"]),
        alg=cast(AlgName, row["alg"]),
        private_pem=row["private_pem"],
        public_jwk=dict(row["public_jwk"]),
        created_at=row["created_at"],
        activates_at=row["activates_at"],
        retired_at=row["retired_at"],
    )


class KeyStore(Store):
    """Signing key pairs of the hub, for access tokens and internal tokens."""

    async def add(self, key: StoredKey) -> None:
        """Store a new key pair."""
        async with self._write() as conn:
            await self._insert(conn, key)

    async def add_first(self, key: StoredKey) -> bool:
        """Store ``key`` unless its use already has a key; ``False`` if another replica won."""
        async with self._write() as conn:
            await self._serialise(conn)
            found = await conn.scalar(
                select(exists().where(SigningKeyRow.use == key.use).select_from(SigningKeyRow))
            )
            if found:
                return False
            await self._insert(conn, key)
            return True

    async def rotate(self, key: StoredKey) -> None:
        """Store ``key`` and retire every other unretired key of its use when ``key`` activates."""
        async with self._write() as conn:
            await self._serialise(conn)
            await conn.execute(
                update(SigningKeyRow)
                .where(SigningKeyRow.use == key.use, SigningKeyRow.retired_at.is_(None))
                .values(retired_at=key.activates_at)
            )
            await self._insert(conn, key)

    async def list(self, use: KeyUse | None = None) -> list[StoredKey]:
        """The keys of ``use`` (all keys when ``None``), newest activation first."""
        statement = select(_KEYS).order_by(
            SigningKeyRow.activates_at.desc(), SigningKeyRow.created_at.desc()
        )
        if use is not None:
            statement = statement.where(SigningKeyRow.use == use)
        async with self._read() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [_key(row) for row in rows]

    async def retire(self, kid: str, at: datetime) -> None:
        """Mark key ``kid`` as retired from ``at`` on: it no longer signs after that instant."""
        check_aware(at, "at")
        async with self._write() as conn:
            result = await conn.execute(
                update(SigningKeyRow).where(SigningKeyRow.kid == kid).values(retired_at=at)
            )
            if result.rowcount == 0:
                raise NotFound(f"signing key {kid!r} does not exist")

    @staticmethod
    async def _serialise(conn: AsyncConnection) -> None:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_KEYS_LOCK})

    @staticmethod
    async def _insert(conn: AsyncConnection, key: StoredKey) -> None:
        check_aware(key.activates_at, "activates_at")
        row = {
            "kid": key.kid,
            "use": key.use,
            "alg": key.alg,
            "private_pem": key.private_pem,
            "public_jwk": key.public_jwk,
            "created_at": key.created_at,
            "activates_at": key.activates_at,
            "retired_at": key.retired_at,
        }
        inserted = await conn.execute(
            insert_ignore(conn, _KEYS).values(row).returning(SigningKeyRow.kid)
        )
        if inserted.first() is None:
            raise Conflict(f"signing key {key.kid!r} already exists")
