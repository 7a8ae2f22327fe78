"""API keys: ``hub_<prefix>_<secret>``, stored as prefix and SHA-256 hash, shown once."""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import RowMapping, Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.db._identity_common import (
    UNIQUE_ATTEMPTS,
    Clock,
    Store,
    check_aware,
    check_label,
    check_scopes,
    hash_secret,
    insert_ignore,
    utcnow,
)
from hub.db.identity_tables import ApiKeyRow, OAuthClientRow
from hub.errors import Conflict, HubError, NotFound

__all__ = ["API_KEY_PATTERN", "ApiKeyRecord", "ApiKeyStore", "api_key_prefix"]

#: ``hub_<prefix>_<secret>``: the prefix is the public lookup key, the hash covers the whole key.
API_KEY_PATTERN = re.compile(r"hub_(?P<prefix>[0-9a-f]{10})_(?P<secret>[A-Za-z0-9_-]{20,})")

_API_KEYS = cast(Table, ApiKeyRow.__table__)


def api_key_prefix(plaintext: str) -> str | None:
    """The lookup prefix of an API key, or ``None`` if it does not have the hub's format."""
    match = API_KEY_PATTERN.fullmatch(plaintext)
    return None if match is None else match["prefix"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKeyRecord:
    """An API key as stored: never the key itself, only its prefix and hash."""

    id: str
    prefix: str
    secret_hash: str
    client_id: str | None
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


def _api_key(row: RowMapping) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row["id"],
        prefix=row["prefix"],
        secret_hash=row["secret_hash"],
        client_id=row["client_id"],
        name=row["name"],
        scopes=tuple(row["scopes"]),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


def _random_prefix() -> str:
    return secrets.token_hex(5)


class ApiKeyStore(Store):
    """API keys: ``hub_<prefix>_<secret>``, found by prefix, checked against the stored hash."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock = utcnow,
        new_prefix: Callable[[], str] = _random_prefix,
    ) -> None:
        super().__init__(engine, clock=clock)
        self._new_prefix = new_prefix

    async def create(
        self,
        name: str,
        scopes: Sequence[str],
        client_id: str | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[ApiKeyRecord, str]:
        """Issue a key; returns its record and the key itself, which is shown only this once."""
        check_aware(expires_at, "expires_at")
        values = {
            "id": uuid.uuid4().hex,
            "client_id": client_id,
            "name": check_label(name, "name"),
            "scopes": check_scopes(scopes),
            "created_at": self._clock(),
            "expires_at": expires_at,
            "revoked_at": None,
        }
        async with self._write() as conn:
            if client_id is not None:
                found = await conn.scalar(
                    select(OAuthClientRow.client_id).where(OAuthClientRow.client_id == client_id)
                )
                if found is None:
                    raise NotFound(f"client {client_id!r} does not exist")
            for _ in range(UNIQUE_ATTEMPTS):
                prefix, plaintext = self._new_key()
                inserted = await conn.execute(
                    insert_ignore(conn, _API_KEYS)
                    .values(prefix=prefix, secret_hash=hash_secret(plaintext), **values)
                    .returning(*_API_KEYS.columns)
                )
                row = inserted.mappings().first()
                if row is not None:
                    return _api_key(row), plaintext
        raise HubError("could not allocate a unique API key prefix")

    async def get(self, id: str) -> ApiKeyRecord | None:
        """The key record ``id``, revoked or not, or ``None``."""
        statement = select(_API_KEYS).where(ApiKeyRow.id == id)
        async with self._read() as conn:
            row = (await conn.execute(statement)).mappings().first()
        return None if row is None else _api_key(row)

    async def by_prefix(self, prefix: str) -> ApiKeyRecord | None:
        """The key with ``prefix``, even if revoked or expired (the caller decides), or ``None``."""
        statement = select(_API_KEYS).where(ApiKeyRow.prefix == prefix)
        async with self._read() as conn:
            row = (await conn.execute(statement)).mappings().first()
        return None if row is None else _api_key(row)

    async def list(self) -> list[ApiKeyRecord]:
        """Every API key record, oldest first."""
        statement = select(_API_KEYS).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        async with self._read() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [_api_key(row) for row in rows]

    async def revoke(self, id: str) -> None:
        """Revoke the key for good; revoking it again keeps the first date."""
        async with self._write() as conn:
            record = await self._locked(conn, id)
            if record.revoked_at is None:
                await conn.execute(
                    update(ApiKeyRow).where(ApiKeyRow.id == id).values(revoked_at=self._clock())
                )

    async def rotate(self, id: str) -> tuple[ApiKeyRecord, str]:
        """Give the key a new prefix and secret, keeping its id; the old key stops at once."""
        async with self._write() as conn:
            record = await self._locked(conn, id)
            if record.revoked_at is not None:
                raise Conflict(f"API key {id!r} is revoked")
            for _ in range(UNIQUE_ATTEMPTS):
                prefix, plaintext = self._new_key()
                taken = await conn.scalar(select(ApiKeyRow.id).where(ApiKeyRow.prefix == prefix))
                if taken is not None:
                    continue
                updated = await conn.execute(
                    update(ApiKeyRow)
                    .where(ApiKeyRow.id == id)
                    .values(prefix=prefix, secret_hash=hash_secret(plaintext))
                    .returning(*_API_KEYS.columns)
                )
                return _api_key(updated.mappings().one()), plaintext
        raise HubError("could not allocate a unique API key prefix")

    def _new_key(self) -> tuple[str, str]:
        prefix = self._new_prefix()
        return prefix, f"hub_{prefix}_{secrets.token_urlsafe(32)}"

    @staticmethod
    async def _locked(conn: AsyncConnection, id: str) -> ApiKeyRecord:
        statement = select(_API_KEYS).where(ApiKeyRow.id == id).with_for_update()
        row = (await conn.execute(statement)).mappings().first()
        if row is None:
            raise NotFound(f"API key {id!r} does not exist")
        return _api_key(row)
