"""Persons: citizens and residents, with the credential columns the login step will use."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, cast, get_args

from sqlalchemy import RowMapping, Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db._identity_common import Store, check_aware, check_label
from hub.db._people_common import check_choice, check_email, check_page, insert_new, person_row
from hub.db.people_tables import PersonRow
from hub.errors import Conflict, InvalidRequest

__all__ = ["Person", "PersonKind", "PersonStore", "check_identifier"]

PersonKind = Literal["citizen", "resident"]

# National IDs of citizens start with 1, resident (iqama) IDs with 2; both are 10 ASCII digits.
_FIRST_DIGIT: dict[str, str] = {"citizen": "1", "resident": "2"}
_TEN_DIGITS = re.compile(r"[0-9]{10}")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_TOTP_SECRET_LENGTH = 200

_PERSONS = cast(Table, PersonRow.__table__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Person:
    """A citizen or resident.

    The credential fields are for the login step only and are kept out of ``repr`` so a log
    line cannot carry them; ``totp_secret`` is stored as given for now, to be encrypted at rest
    (envelope encryption, like the signing keys) later.
    """

    id: str
    kind: PersonKind
    identifier: str
    given_name: str
    family_name: str
    email: str | None
    phone: str | None
    created_at: datetime
    disabled_at: datetime | None
    password_hash: str | None = field(repr=False)
    totp_secret: str | None = field(repr=False)
    recovery_code_hashes: tuple[str, ...] = field(repr=False)
    failed_logins: int
    locked_until: datetime | None


def _person(row: RowMapping) -> Person:
    return Person(
        id=row["id"],
        kind=cast(PersonKind, row["kind"]),
        identifier=row["identifier"],
        given_name=row["given_name"],
        family_name=row["family_name"],
        email=row["email"],
        phone=row["phone"],
        created_at=row["created_at"],
        disabled_at=row["disabled_at"],
        password_hash=row["password_hash"],
        totp_secret=row["totp_secret"],
        recovery_code_hashes=tuple(row["recovery_code_hashes"]),
        failed_logins=row["failed_logins"],
        locked_until=row["locked_until"],
    )


def check_identifier(kind: str, identifier: str) -> str:
    """``identifier`` when it is a valid ID for ``kind``; InvalidRequest saying why otherwise."""
    check_choice(kind, get_args(PersonKind), "kind")
    if _TEN_DIGITS.fullmatch(identifier) is None:
        raise InvalidRequest("identifier must be exactly 10 digits")
    if identifier[0] != _FIRST_DIGIT[kind]:
        raise InvalidRequest(
            f"a {kind}'s identifier starts with {_FIRST_DIGIT[kind]}"
            f" ({'national ID' if kind == 'citizen' else 'resident ID'})"
        )
    return identifier


def _check_phone(phone: str) -> str:
    if _E164.fullmatch(phone) is None:
        raise InvalidRequest("phone must be in E.164 form, such as +966501234567")
    return phone


class PersonStore(Store):
    """Persons, and the credential columns of their accounts."""

    async def create(
        self,
        *,
        kind: PersonKind,
        identifier: str,
        given_name: str,
        family_name: str,
        email: str | None = None,
        phone: str | None = None,
    ) -> Person:
        """Record a person; Conflict when the identifier is already someone's."""
        values: dict[str, object] = {
            "kind": kind,
            "identifier": check_identifier(kind, identifier),
            "given_name": check_label(given_name, "given_name"),
            "family_name": check_label(family_name, "family_name"),
            "email": None if email is None else check_email(email),
            "phone": None if phone is None else _check_phone(phone),
            "created_at": self._clock(),
            "disabled_at": None,
            "password_hash": None,
            "totp_secret": None,
            "recovery_code_hashes": [],
            "failed_logins": 0,
            "locked_until": None,
        }
        async with self._write() as conn:

            async def taken() -> None:
                if await self._by_identifier(conn, identifier) is not None:
                    raise Conflict("a person with this identifier already exists")

            row = await insert_new(conn, _PERSONS, "per", values, on_conflict=taken)
        return _person(row)

    async def get(self, person_id: str) -> Person | None:
        """The person ``person_id``, disabled or not, or ``None``."""
        statement = select(_PERSONS).where(PersonRow.id == person_id)
        async with self._read() as conn:
            row = (await conn.execute(statement)).mappings().first()
        return None if row is None else _person(row)

    async def by_identifier(self, identifier: str) -> Person | None:
        """The person holding a national or resident ID, or ``None``."""
        async with self._read() as conn:
            return await self._by_identifier(conn, identifier)

    async def list(
        self, *, identifier: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[Person]:
        """A page of persons, oldest first, optionally only the one holding ``identifier``."""
        check_page(limit, offset)
        statement = select(_PERSONS).order_by(PersonRow.created_at, PersonRow.id)
        if identifier is not None:
            statement = statement.where(PersonRow.identifier == identifier)
        async with self._read() as conn:
            rows = (await conn.execute(statement.limit(limit).offset(offset))).mappings().all()
        return [_person(row) for row in rows]

    async def disable(self, person_id: str) -> Person:
        """Disable the person for good; disabling again keeps the first date."""
        async with self._write() as conn:
            row = await person_row(conn, person_id, lock=True)
            if row["disabled_at"] is None:
                await self._set(conn, person_id, disabled_at=self._clock())
            return await self._get(conn, person_id)

    # --- credentials, for the login step ---------------------------------------------------

    async def set_password_hash(self, person_id: str, password_hash: str | None) -> None:
        """Store (or clear) the person's argon2 password hash; the hashing happens elsewhere."""
        if password_hash is not None and not password_hash.startswith("$argon2"):
            raise InvalidRequest("password_hash must be an argon2 hash string, never a password")
        async with self._write() as conn:
            await person_row(conn, person_id, lock=True)
            await self._set(conn, person_id, password_hash=password_hash)

    async def set_totp(
        self,
        person_id: str,
        secret: str | None,
        recovery_code_hashes: Sequence[str] = (),
    ) -> None:
        """Enrol (or, with ``None``, remove) the TOTP second factor and its recovery codes."""
        if secret is not None and not 0 < len(secret) <= _TOTP_SECRET_LENGTH:
            raise InvalidRequest(f"totp secret must be 1 to {_TOTP_SECRET_LENGTH} characters")
        async with self._write() as conn:
            await person_row(conn, person_id, lock=True)
            await self._set(
                conn,
                person_id,
                totp_secret=secret,
                recovery_code_hashes=_hashes(recovery_code_hashes),
            )

    async def reset_mfa(self, person_id: str) -> Person:
        """Remove the TOTP secret and recovery codes (a lost device); Conflict when none."""
        async with self._write() as conn:
            row = await person_row(conn, person_id, lock=True)
            if row["totp_secret"] is None and not row["recovery_code_hashes"]:
                raise Conflict("the person has no second factor enrolled")
            await self._set(conn, person_id, totp_secret=None, recovery_code_hashes=[])
            return await self._get(conn, person_id)

    async def set_recovery_code_hashes(self, person_id: str, hashes: Sequence[str]) -> None:
        """Replace the hashes of the person's unused recovery codes (one was used, or new ones)."""
        async with self._write() as conn:
            await person_row(conn, person_id, lock=True)
            await self._set(conn, person_id, recovery_code_hashes=_hashes(hashes))

    async def record_login_failure(
        self, person_id: str, *, lock_until: datetime | None = None
    ) -> int:
        """Count one more failed login, optionally locking the account; the new count."""
        check_aware(lock_until, "lock_until")
        async with self._write() as conn:
            row = await person_row(conn, person_id, lock=True)
            count = int(row["failed_logins"]) + 1
            changes: dict[str, object] = {"failed_logins": count}
            if lock_until is not None:
                changes["locked_until"] = lock_until
            await self._set(conn, person_id, **changes)
        return count

    async def record_login_success(self, person_id: str) -> None:
        """Reset the failure count and any lock after a successful login."""
        async with self._write() as conn:
            await person_row(conn, person_id, lock=True)
            await self._set(conn, person_id, failed_logins=0, locked_until=None)

    async def unlock(self, person_id: str) -> Person:
        """Clear the failure count and any lock (an operator's unlock); the person as now."""
        async with self._write() as conn:
            await person_row(conn, person_id, lock=True)
            await self._set(conn, person_id, failed_logins=0, locked_until=None)
            return await self._get(conn, person_id)

    # --- helpers ---------------------------------------------------------------------------

    @staticmethod
    async def _by_identifier(conn: AsyncConnection, identifier: str) -> Person | None:
        statement = select(_PERSONS).where(PersonRow.identifier == identifier)
        row = (await conn.execute(statement)).mappings().first()
        return None if row is None else _person(row)

    @staticmethod
    async def _get(conn: AsyncConnection, person_id: str) -> Person:
        statement = select(_PERSONS).where(PersonRow.id == person_id)
        return _person((await conn.execute(statement)).mappings().one())

    @staticmethod
    async def _set(conn: AsyncConnection, person_id: str, **values: object) -> None:
        await conn.execute(update(PersonRow).where(PersonRow.id == person_id).values(**values))


def _hashes(hashes: Sequence[str]) -> list[str]:
    if isinstance(hashes, str):
        raise InvalidRequest("recovery code hashes must be a list, not one string")
    if any(not value for value in hashes):
        raise InvalidRequest("a recovery code hash must not be empty")
    return list(hashes)
