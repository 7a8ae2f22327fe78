"""What the identity stores share: secret hashing, input checks and the connection helpers."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Insert, Table
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db._store import Clock, Store, utcnow
from hub.errors import InvalidRequest

__all__ = [
    "UNIQUE_ATTEMPTS",
    "Clock",
    "Store",
    "check_aware",
    "check_label",
    "check_scopes",
    "hash_secret",
    "insert_ignore",
    "secret_matches",
    "utcnow",
]


#: How many random identifiers a store draws before it gives up on finding a free one.
UNIQUE_ATTEMPTS = 5
_LABEL_LENGTH = 200  # names and owners (String(200) columns)


def hash_secret(value: str) -> str:
    """The SHA-256 hex digest under which a secret (client secret or API key) is stored."""
    return hashlib.sha256(value.encode()).hexdigest()


def secret_matches(value: str, stored_hash: str) -> bool:
    """Whether ``value`` hashes to ``stored_hash``, compared in constant time."""
    return hmac.compare_digest(hash_secret(value), stored_hash)


def check_scopes(scopes: Sequence[str]) -> list[str]:
    """The scope names, deduplicated in order; InvalidRequest for a string or a bad name."""
    if isinstance(scopes, str):
        raise InvalidRequest("scopes must be a list of scope names, not one string")
    for scope in scopes:
        if not scope or any(char.isspace() for char in scope):
            raise InvalidRequest(f"invalid scope name: {scope!r}")
    return list(dict.fromkeys(scopes))


def check_label(value: str, name: str) -> str:
    """``value`` when it fits a name or owner column; InvalidRequest otherwise."""
    if not value.strip() or len(value) > _LABEL_LENGTH:
        raise InvalidRequest(f"{name} must be 1 to {_LABEL_LENGTH} characters")
    return value


def check_aware(value: datetime | None, name: str) -> None:
    """InvalidRequest when ``value`` is a naive datetime."""
    if value is not None and value.tzinfo is None:
        raise InvalidRequest(f"{name} must be a timezone-aware datetime")


def insert_ignore(conn: AsyncConnection, table: Table) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the connection's dialect."""
    # The database decides a race, with no error to catch (a failed INSERT would abort the
    # whole PostgreSQL transaction).
    if conn.dialect.name == "postgresql":
        return postgresql_insert(table).on_conflict_do_nothing()
    return sqlite_insert(table).on_conflict_do_nothing()
