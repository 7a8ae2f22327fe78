"""Repositories of the identity slice: signing keys, OAuth clients, API keys and jti ledgers.

Every store takes the engine (and, for tests, a clock) in its constructor and hands out frozen
dataclasses. Client secrets and API keys are 32 random bytes shown once to their owner and kept
only as SHA-256 hex: a slow password hash buys nothing against secrets of that entropy.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import Insert, RowMapping, Table, delete, exists, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hub.db.engine import WRITE_LOCK, database_errors
from hub.db.identity_tables import (
    JTI_LENGTH,
    ApiKeyRow,
    OAuthClientRow,
    RevokedTokenRow,
    SigningKeyRow,
    UsedAssertionRow,
)
from hub.errors import Conflict, HubError, InvalidClient, InvalidRequest, NotFound

# AsyncEngine is re-exported so modules outside hub/db (which may not import SQLAlchemy) can
# annotate the engine they hand to these stores.
__all__ = [
    "API_KEY_PATTERN",
    "AlgName",
    "ApiKeyRecord",
    "ApiKeyStore",
    "AssertionLedger",
    "AsyncEngine",
    "AuthMethod",
    "ClientStore",
    "Clock",
    "KeyStore",
    "KeyUse",
    "OAuthClient",
    "RevocationStore",
    "StoredKey",
    "api_key_prefix",
    "hash_secret",
    "secret_matches",
]

KeyUse = Literal["access", "internal"]
AlgName = Literal["RS256", "EdDSA"]
AuthMethod = Literal["client_secret_basic", "private_key_jwt"]
Clock = Callable[[], datetime]

#: ``hub_<prefix>_<secret>``: the prefix is the public lookup key, the hash covers the whole key.
API_KEY_PATTERN = re.compile(r"hub_(?P<prefix>[0-9a-f]{10})_(?P<secret>[A-Za-z0-9_-]{20,})")

_UNIQUE_ATTEMPTS = 5
_LABEL_LENGTH = 200  # names and owners (String(200) columns)
# Expired ledger rows are deleted at most this often per store, a batch at a time.
_PRUNE_EVERY = timedelta(seconds=60)
_PRUNE_BATCH = 1000
# A used assertion is remembered a little past the expiry it was given, so a replica whose clock
# runs behind (or a verifier's leeway) cannot accept it again right after the row is pruned.
_REPLAY_GRACE = timedelta(minutes=5)
# Serialises key writers on PostgreSQL, where an empty table offers no row to lock.
_PG_KEYS_LOCK = 0x6875625F6B657973  # "hub_keys"
# JWK members that only a private key has: a client registering one has leaked its key.
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


_KEYS = cast(Table, SigningKeyRow.__table__)
_CLIENTS = cast(Table, OAuthClientRow.__table__)
_API_KEYS = cast(Table, ApiKeyRow.__table__)
_USED = cast(Table, UsedAssertionRow.__table__)
_REVOKED = cast(Table, RevokedTokenRow.__table__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def hash_secret(value: str) -> str:
    """The SHA-256 hex digest under which a secret (client secret or API key) is stored."""
    return hashlib.sha256(value.encode()).hexdigest()


def secret_matches(value: str, stored_hash: str) -> bool:
    """Whether ``value`` hashes to ``stored_hash``, compared in constant time."""
    return hmac.compare_digest(hash_secret(value), stored_hash)


def api_key_prefix(plaintext: str) -> str | None:
    """The lookup prefix of an API key, or ``None`` if it does not have the hub's format."""
    match = API_KEY_PATTERN.fullmatch(plaintext)
    return None if match is None else match["prefix"]


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


@dataclass(frozen=True, slots=True, kw_only=True)
class OAuthClient:
    """A registered OAuth client; ``secret_hash`` or ``jwks`` depending on ``auth_method``."""

    client_id: str
    name: str
    owner: str
    auth_method: AuthMethod
    secret_hash: str | None
    jwks: dict[str, Any] | None
    scopes: tuple[str, ...]
    grant_types: tuple[str, ...]
    created_at: datetime
    disabled_at: datetime | None


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


def _client(row: RowMapping) -> OAuthClient:
    return OAuthClient(
        client_id=row["client_id"],
        name=row["name"],
        owner=row["owner"],
        auth_method=cast(AuthMethod, row["auth_method"]),
        secret_hash=row["secret_hash"],
        jwks=None if row["jwks"] is None else dict(row["jwks"]),
        scopes=tuple(row["scopes"]),
        grant_types=tuple(row["grant_types"]),
        created_at=row["created_at"],
        disabled_at=row["disabled_at"],
    )


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


def _scopes(scopes: Sequence[str]) -> list[str]:
    if isinstance(scopes, str):
        raise InvalidRequest("scopes must be a list of scope names, not one string")
    for scope in scopes:
        if not scope or any(char.isspace() for char in scope):
            raise InvalidRequest(f"invalid scope name: {scope!r}")
    return list(dict.fromkeys(scopes))


def _label(value: str, name: str) -> str:
    if not value.strip() or len(value) > _LABEL_LENGTH:
        raise InvalidRequest(f"{name} must be 1 to {_LABEL_LENGTH} characters")
    return value


def _valid_jti(jti: str) -> bool:
    # Control characters are refused here rather than by the database (PostgreSQL rejects NUL).
    return 0 < len(jti) <= JTI_LENGTH and jti.isprintable()


def _aware(value: datetime | None, name: str) -> None:
    if value is not None and value.tzinfo is None:
        raise InvalidRequest(f"{name} must be a timezone-aware datetime")


def _check_public_jwks(jwks: Mapping[str, Any]) -> None:
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys:
        raise InvalidRequest("jwks must be a JWK set with at least one key")
    for key in keys:
        if not isinstance(key, dict) or not isinstance(key.get("kty"), str):
            raise InvalidRequest("every key of the jwks must be a JWK object with a kty")
        if _PRIVATE_JWK_MEMBERS & key.keys():
            raise InvalidRequest(
                "the jwks holds private or symmetric key material; send public keys only"
            )


def _insert_ignore(conn: AsyncConnection, table: Table) -> Insert:
    # INSERT ... ON CONFLICT DO NOTHING: the database decides a race, with no error to catch
    # (a failed INSERT would abort the whole PostgreSQL transaction).
    if conn.dialect.name == "postgresql":
        return postgresql_insert(table).on_conflict_do_nothing()
    return sqlite_insert(table).on_conflict_do_nothing()


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


class _Store:
    def __init__(self, engine: AsyncEngine, *, clock: Clock = _utcnow) -> None:
        self._engine = engine
        self._clock = clock

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        with database_errors():
            async with self._engine.connect() as conn:
                yield conn

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        with database_errors():
            async with self._engine.connect() as conn:
                await conn.execution_options(**WRITE_LOCK)
                async with conn.begin():
                    yield conn


class _Pruning(_Store):
    """A store of rows that expire, deleted opportunistically by the store's own writes."""

    _table: Table
    _keep_for = timedelta(0)

    def __init__(self, engine: AsyncEngine, *, clock: Clock = _utcnow) -> None:
        super().__init__(engine, clock=clock)
        self._next_prune: datetime | None = None

    async def _maybe_prune(self, now: datetime) -> None:
        if self._next_prune is not None and now < self._next_prune:
            return
        self._next_prune = now + _PRUNE_EVERY
        async with self._write() as conn:
            await _prune(conn, self._table, now - self._keep_for)


class KeyStore(_Store):
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
        _aware(at, "at")
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
        _aware(key.activates_at, "activates_at")
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
            _insert_ignore(conn, _KEYS).values(row).returning(SigningKeyRow.kid)
        )
        if inserted.first() is None:
            raise Conflict(f"signing key {key.kid!r} already exists")


class ClientStore(_Store):
    """Registered OAuth clients."""

    async def create(
        self,
        name: str,
        owner: str,
        auth_method: AuthMethod,
        scopes: Sequence[str],
        jwks: dict[str, Any] | None = None,
        *,
        grant_types: Sequence[str] = ("client_credentials",),
    ) -> tuple[OAuthClient, str | None]:
        """Register a client; returns it and, with ``client_secret_basic``, its one-time secret."""
        secret: str | None = None
        if auth_method == "client_secret_basic":
            if jwks is not None:
                raise InvalidRequest("a client_secret_basic client registers no jwks")
            secret = secrets.token_urlsafe(32)
        elif auth_method == "private_key_jwt":
            if jwks is None:
                raise InvalidRequest("a private_key_jwt client must register its public jwks")
            _check_public_jwks(jwks)
        else:
            raise InvalidRequest(f"unsupported client authentication method: {auth_method!r}")
        values = {
            "name": _label(name, "name"),
            "owner": _label(owner, "owner"),
            "auth_method": auth_method,
            "secret_hash": None if secret is None else hash_secret(secret),
            "jwks": jwks,
            "scopes": _scopes(scopes),
            "grant_types": list(grant_types),
            "created_at": self._clock(),
            "disabled_at": None,
        }
        async with self._write() as conn:
            for _ in range(_UNIQUE_ATTEMPTS):
                client_id = "cli_" + secrets.token_hex(8)
                inserted = await conn.execute(
                    _insert_ignore(conn, _CLIENTS)
                    .values(client_id=client_id, **values)
                    .returning(*_CLIENTS.columns)
                )
                row = inserted.mappings().first()
                if row is not None:
                    return _client(row), secret
        raise HubError("could not allocate a unique client id")

    async def get(self, client_id: str) -> OAuthClient | None:
        """The client ``client_id``, disabled or not, or ``None``."""
        statement = select(_CLIENTS).where(OAuthClientRow.client_id == client_id)
        async with self._read() as conn:
            row = (await conn.execute(statement)).mappings().first()
        return None if row is None else _client(row)

    async def list(self) -> list[OAuthClient]:
        """Every client, oldest first."""
        statement = select(_CLIENTS).order_by(OAuthClientRow.created_at, OAuthClientRow.client_id)
        async with self._read() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [_client(row) for row in rows]

    async def rotate_secret(self, client_id: str) -> str:
        """Replace the secret of a ``client_secret_basic`` client; the old one stops at once."""
        secret = secrets.token_urlsafe(32)
        async with self._write() as conn:
            client = await self._locked(conn, client_id)
            if client.auth_method != "client_secret_basic":
                raise Conflict(f"client {client_id!r} authenticates with {client.auth_method}")
            if client.disabled_at is not None:
                raise Conflict(f"client {client_id!r} is disabled")
            await conn.execute(
                update(OAuthClientRow)
                .where(OAuthClientRow.client_id == client_id)
                .values(secret_hash=hash_secret(secret))
            )
        return secret

    async def disable(self, client_id: str) -> None:
        """Disable the client for good; disabling it again keeps the first date."""
        async with self._write() as conn:
            client = await self._locked(conn, client_id)
            if client.disabled_at is None:
                await conn.execute(
                    update(OAuthClientRow)
                    .where(OAuthClientRow.client_id == client_id)
                    .values(disabled_at=self._clock())
                )

    @staticmethod
    async def _locked(conn: AsyncConnection, client_id: str) -> OAuthClient:
        statement = select(_CLIENTS).where(OAuthClientRow.client_id == client_id).with_for_update()
        row = (await conn.execute(statement)).mappings().first()
        if row is None:
            raise NotFound(f"client {client_id!r} does not exist")
        return _client(row)


def _random_prefix() -> str:
    return secrets.token_hex(5)


class ApiKeyStore(_Store):
    """API keys: ``hub_<prefix>_<secret>``, found by prefix, checked against the stored hash."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock = _utcnow,
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
        _aware(expires_at, "expires_at")
        values = {
            "id": uuid.uuid4().hex,
            "client_id": client_id,
            "name": _label(name, "name"),
            "scopes": _scopes(scopes),
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
            for _ in range(_UNIQUE_ATTEMPTS):
                prefix, plaintext = self._new_key()
                inserted = await conn.execute(
                    _insert_ignore(conn, _API_KEYS)
                    .values(prefix=prefix, secret_hash=hash_secret(plaintext), **values)
                    .returning(*_API_KEYS.columns)
                )
                row = inserted.mappings().first()
                if row is not None:
                    return _api_key(row), plaintext
        raise HubError("could not allocate a unique API key prefix")

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
            for _ in range(_UNIQUE_ATTEMPTS):
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


class AssertionLedger(_Pruning):
    """The ``jti`` of every accepted ``private_key_jwt`` assertion, until it has expired."""

    _table = _USED
    _keep_for = _REPLAY_GRACE

    async def use_once(self, jti: str, client_id: str, expires_at: datetime) -> bool:
        """Record the assertion ``jti`` of ``client_id``; ``False`` if it was seen before (replay).

        ``expires_at`` is the last instant the assertion could be accepted: its ``exp`` plus any
        leeway the verifier allows. Exactly one of concurrent callers with the same jti wins.
        """
        _aware(expires_at, "expires_at")
        if not _valid_jti(jti):
            raise InvalidClient(f"the assertion jti must be 1 to {JTI_LENGTH} printable characters")
        await self._maybe_prune(self._clock())
        async with self._write() as conn:
            inserted = await conn.execute(
                _insert_ignore(conn, self._table)
                .values(client_id=client_id, jti=jti, expires_at=expires_at)
                .returning(self._table.c.jti)
            )
            return inserted.first() is not None


class RevocationStore(_Pruning):
    """Tokens revoked before they expired, by ``jti``."""

    _table = _REVOKED

    async def revoke(self, jti: str, expires_at: datetime) -> None:
        """Revoke the token ``jti`` until ``expires_at`` (its own expiry); idempotent."""
        _aware(expires_at, "expires_at")
        if not _valid_jti(jti):
            raise InvalidRequest(f"a token jti must be 1 to {JTI_LENGTH} printable characters")
        now = self._clock()
        await self._maybe_prune(now)
        async with self._write() as conn:
            await conn.execute(
                _insert_ignore(conn, self._table).values(
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
