"""Refresh tokens of the SSO: single use, rotated on every refresh, revoked as a family on reuse.

A refresh token is 32 random bytes shown once to the client and kept only as its SHA-256 hex.
Each use spends it (``used_at``) and the token endpoint issues a successor in the same family;
the spend is one conditional UPDATE, so of two concurrent refreshes with one token exactly one
wins. A spent token presented again means it was copied (OAuth 2.0 Security BCP §4.14.2): the
whole family is revoked, the newest token included, and :class:`~hub.errors.ReuseDetected`
raised.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import RowMapping, Table, insert, select, update

from hub.db._identity_common import Store, check_aware, check_scopes, hash_secret
from hub.db.identity_tables import RefreshTokenRow
from hub.errors import InvalidGrant, InvalidRequest, ReuseDetected

__all__ = ["RefreshToken", "RefreshTokenStore"]

_TOKENS = cast(Table, RefreshTokenRow.__table__)
# A token value is 43 URL-safe characters; anything much longer is not ours.
_MAX_TOKEN_LENGTH = 128


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshToken:
    """A stored refresh token (never its value); ``id`` is the SHA-256 hex of the value."""

    id: str
    family_id: str
    client_id: str
    person_id: str
    scopes: tuple[str, ...]
    acr: str
    amr: tuple[str, ...]
    auth_time: int
    sid: str | None
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


def _token(row: RowMapping) -> RefreshToken:
    return RefreshToken(
        id=row["id"],
        family_id=row["family_id"],
        client_id=row["client_id"],
        person_id=row["person_id"],
        scopes=tuple(row["scopes"]),
        acr=row["acr"],
        amr=tuple(row["amr"]),
        auth_time=row["auth_time"],
        sid=row["sid"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        used_at=row["used_at"],
        revoked_at=row["revoked_at"],
    )


def _token_id(raw: str) -> str | None:
    if not raw or len(raw) > _MAX_TOKEN_LENGTH:
        return None
    return hash_secret(raw)


class RefreshTokenStore(Store):
    """Issues, rotates and revokes refresh tokens."""

    async def issue(
        self,
        *,
        client_id: str,
        person_id: str,
        scopes: Sequence[str],
        acr: str,
        amr: Sequence[str],
        auth_time: int,
        sid: str | None,
        expires_at: datetime,
        family_id: str | None = None,
    ) -> tuple[str, RefreshToken]:
        """A new token and its one-time value; ``family_id`` continues a family (rotation)."""
        check_aware(expires_at, "expires_at")
        now = self._clock()
        if expires_at <= now:
            raise InvalidRequest("expires_at must lie in the future")
        raw = secrets.token_urlsafe(32)
        values = {
            "id": hash_secret(raw),
            "family_id": family_id or secrets.token_hex(16),
            "client_id": client_id,
            "person_id": person_id,
            "scopes": check_scopes(scopes),
            "acr": acr,
            "amr": list(dict.fromkeys(amr)),
            "auth_time": auth_time,
            "sid": sid,
            "created_at": now,
            "expires_at": expires_at,
            "used_at": None,
            "revoked_at": None,
        }
        async with self._write() as conn:
            row = (
                (await conn.execute(insert(_TOKENS).values(**values).returning(*_TOKENS.columns)))
                .mappings()
                .one()
            )
        return raw, _token(row)

    async def get(self, raw: str) -> RefreshToken | None:
        """The token behind a value, whatever its state, or ``None``."""
        token_id = _token_id(raw)
        if token_id is None:
            return None
        async with self._read() as conn:
            row = (
                (await conn.execute(select(_TOKENS).where(RefreshTokenRow.id == token_id)))
                .mappings()
                .first()
            )
        return None if row is None else _token(row)

    async def rotate(self, raw: str, client_id: str) -> RefreshToken:
        """Spend a live token of ``client_id`` and return it; the caller issues its successor.

        Raises :class:`~hub.errors.InvalidGrant` for an unknown, expired or revoked token or one
        of another client, and :class:`~hub.errors.ReuseDetected` (after revoking the family)
        for a token already spent.
        """
        token_id = _token_id(raw)
        if token_id is None:
            raise InvalidGrant("unknown refresh token")
        now = self._clock()
        async with self._write() as conn:
            spent = (
                (
                    await conn.execute(
                        update(RefreshTokenRow)
                        .where(
                            RefreshTokenRow.id == token_id,
                            RefreshTokenRow.client_id == client_id,
                            RefreshTokenRow.used_at.is_(None),
                            RefreshTokenRow.revoked_at.is_(None),
                            RefreshTokenRow.expires_at > now,
                        )
                        .values(used_at=now)
                        .returning(*_TOKENS.columns)
                    )
                )
                .mappings()
                .first()
            )
            if spent is not None:
                return _token(spent)
            row = (
                (await conn.execute(select(_TOKENS).where(RefreshTokenRow.id == token_id)))
                .mappings()
                .first()
            )
            reused = (
                row is not None and row["client_id"] == client_id and row["used_at"] is not None
            )
            if reused:
                assert row is not None
                await conn.execute(
                    update(RefreshTokenRow)
                    .where(
                        RefreshTokenRow.family_id == row["family_id"],
                        RefreshTokenRow.revoked_at.is_(None),
                    )
                    .values(revoked_at=now)
                )
        # Raised outside the transaction, which must commit the family's revocation.
        if reused:
            raise ReuseDetected("the refresh token was already used; its family is revoked")
        if row is None or row["client_id"] != client_id:
            raise InvalidGrant("unknown refresh token")
        if row["revoked_at"] is not None:
            raise InvalidGrant("the refresh token was revoked")
        raise InvalidGrant("the refresh token has expired")

    async def revoke(self, raw: str, client_id: str) -> bool:
        """Revoke the family of a token of ``client_id`` (RFC 7009); ``False`` if not found."""
        token_id = _token_id(raw)
        if token_id is None:
            return False
        async with self._write() as conn:
            family = await conn.scalar(
                select(RefreshTokenRow.family_id).where(
                    RefreshTokenRow.id == token_id, RefreshTokenRow.client_id == client_id
                )
            )
            if family is None:
                return False
            await conn.execute(
                update(RefreshTokenRow)
                .where(RefreshTokenRow.family_id == family, RefreshTokenRow.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )
        return True

    async def revoke_family(self, family_id: str) -> int:
        """Revoke every token of a family; how many were still unrevoked."""
        async with self._write() as conn:
            result = await conn.execute(
                update(RefreshTokenRow)
                .where(RefreshTokenRow.family_id == family_id, RefreshTokenRow.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )
        return int(result.rowcount)

    async def revoke_session(self, sid: str) -> int:
        """Revoke every token issued in the login session ``sid`` (logout); how many."""
        async with self._write() as conn:
            result = await conn.execute(
                update(RefreshTokenRow)
                .where(RefreshTokenRow.sid == sid, RefreshTokenRow.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )
        return int(result.rowcount)

    async def revoke_person(self, person_id: str) -> int:
        """Revoke every token of ``person_id``, whatever the client; how many were unrevoked."""
        async with self._write() as conn:
            result = await conn.execute(
                update(RefreshTokenRow)
                .where(RefreshTokenRow.person_id == person_id, RefreshTokenRow.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )
        return int(result.rowcount)
