"""Registered OAuth clients of vendor platforms: a secret hash or a public JWK set each."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import RowMapping, Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db._identity_common import (
    UNIQUE_ATTEMPTS,
    Store,
    check_label,
    check_scopes,
    hash_secret,
    insert_ignore,
)
from hub.db.identity_tables import OAuthClientRow
from hub.errors import Conflict, HubError, InvalidRequest, NotFound

__all__ = ["AuthMethod", "ClientStore", "OAuthClient"]

AuthMethod = Literal["client_secret_basic", "private_key_jwt"]

# JWK members that only a private key has: a client registering one has leaked its key.
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

_CLIENTS = cast(Table, OAuthClientRow.__table__)


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


class ClientStore(Store):
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
            "name": check_label(name, "name"),
            "owner": check_label(owner, "owner"),
            "auth_method": auth_method,
            "secret_hash": None if secret is None else hash_secret(secret),
            "jwks": jwks,
            "scopes": check_scopes(scopes),
            "grant_types": list(grant_types),
            "created_at": self._clock(),
            "disabled_at": None,
        }
        async with self._write() as conn:
            for _ in range(UNIQUE_ATTEMPTS):
                client_id = "cli_" + secrets.token_hex(8)
                inserted = await conn.execute(
                    insert_ignore(conn, _CLIENTS)
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
