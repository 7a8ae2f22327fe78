"""What the people stores share: input checks, id allocation, row locks and delegation events."""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, RowMapping, Table, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db._identity_common import UNIQUE_ATTEMPTS, insert_ignore
from hub.db.people_tables import DelegationEventRow, DelegationRow, EstablishmentRow, PersonRow
from hub.errors import HubError, InvalidRequest, NotFound

__all__ = [
    "MAX_PAGE",
    "check_choice",
    "check_code",
    "check_email",
    "check_page",
    "check_reason",
    "insert_new",
    "locked_establishment",
    "person_row",
    "record_event",
    "revoke_delegations",
]

#: The largest page a list call returns.
MAX_PAGE = 500
_REASON_LENGTH = 1000
_EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path
# Deliberately loose: one @, no spaces, a dot in the domain. Deliverability is the mailer's job.
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
# Lower-case codes such as "moi" or "retail"; sectors may also be ISIC-style ("G47").
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")

_PERSONS = cast(Table, PersonRow.__table__)
_ESTABLISHMENTS = cast(Table, EstablishmentRow.__table__)
_EVENTS = cast(Table, DelegationEventRow.__table__)


def check_choice(value: str, choices: Collection[str], name: str) -> str:
    """``value`` when it is one of ``choices``; InvalidRequest naming them otherwise."""
    if value not in choices:
        allowed = ", ".join(repr(choice) for choice in choices)
        raise InvalidRequest(f"{name} must be one of {allowed}, not {value!r}")
    return value


def check_code(value: str, name: str) -> str:
    """``value`` when it is a short code (letters, digits, ``_.-``, up to 32); InvalidRequest."""
    if _CODE.fullmatch(value) is None:
        raise InvalidRequest(
            f"{name} must be a short code of 1 to 32 letters, digits, '_', '.' or '-'"
        )
    return value


def check_email(value: str, name: str = "email") -> str:
    """``value`` when it looks like an e-mail address; InvalidRequest otherwise."""
    if len(value) > _EMAIL_LENGTH or _EMAIL.fullmatch(value) is None:
        raise InvalidRequest(f"{name} is not a valid e-mail address")
    return value


def check_page(limit: int, offset: int) -> None:
    """InvalidRequest unless ``1 <= limit <= MAX_PAGE`` and ``offset >= 0``."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequest(f"limit must be between 1 and {MAX_PAGE}")
    if offset < 0:
        raise InvalidRequest("offset must not be negative")


def check_reason(reason: str, *, required: bool) -> str:
    """``reason`` when it fits an audit line (and, if ``required``, is not blank)."""
    if len(reason) > _REASON_LENGTH or (required and not reason.strip()):
        low = 1 if required else 0
        raise InvalidRequest(f"reason must be {low} to {_REASON_LENGTH} characters")
    return reason


async def insert_new(
    conn: AsyncConnection,
    table: Table,
    prefix: str,
    values: Mapping[str, Any],
    *,
    on_conflict: Callable[[], Awaitable[None]] | None = None,
) -> RowMapping:
    """Insert a row under a fresh ``<prefix>_<16 hex>`` id and return it.

    When the insert is ignored, ``on_conflict`` is awaited first: it raises when a unique value
    of the row (an identifier, a registration number) is taken; otherwise the id collided and
    another one is drawn.
    """
    for _ in range(UNIQUE_ATTEMPTS):
        statement = (
            insert_ignore(conn, table)
            .values(id=f"{prefix}_{secrets.token_hex(8)}", **values)
            .returning(*table.columns)
        )
        row = (await conn.execute(statement)).mappings().first()
        if row is not None:
            return row
        if on_conflict is not None:
            await on_conflict()
    raise HubError(f"could not allocate a unique {prefix} id")


async def person_row(conn: AsyncConnection, person_id: str, *, lock: bool) -> RowMapping:
    """The person's row, locked for the rest of the transaction if asked; NotFound if none."""
    statement = select(_PERSONS).where(PersonRow.id == person_id)
    if lock:
        statement = statement.with_for_update()
    row = (await conn.execute(statement)).mappings().first()
    if row is None:
        raise NotFound(f"person {person_id!r} does not exist")
    return row


async def locked_establishment(conn: AsyncConnection, establishment_id: str) -> RowMapping:
    """The establishment's row, locked: its memberships and delegations change one at a time."""
    statement = (
        select(_ESTABLISHMENTS).where(EstablishmentRow.id == establishment_id).with_for_update()
    )
    row = (await conn.execute(statement)).mappings().first()
    if row is None:
        raise NotFound(f"establishment {establishment_id!r} does not exist")
    return row


async def record_event(
    conn: AsyncConnection,
    delegation_id: str,
    *,
    action: str,
    actor: str,
    at: datetime,
    reason: str,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one line to a delegation's audit trail."""
    await conn.execute(
        insert(_EVENTS).values(
            delegation_id=delegation_id,
            action=action,
            actor=actor,
            at=at,
            reason=reason,
            details=dict(details or {}),
        )
    )


async def revoke_delegations(
    conn: AsyncConnection,
    condition: ColumnElement[bool],
    *,
    actor: str,
    reason: str,
    at: datetime,
) -> list[str]:
    """Revoke every unrevoked, unexpired delegation matching ``condition``, each audited."""
    statement = (
        select(DelegationRow.id)
        .where(condition, DelegationRow.revoked_at.is_(None), DelegationRow.valid_until > at)
        .order_by(DelegationRow.id)
        .with_for_update()
    )
    ids = list((await conn.execute(statement)).scalars())
    for delegation_id in ids:
        await conn.execute(
            update(DelegationRow)
            .where(DelegationRow.id == delegation_id)
            .values(revoked_at=at, revoked_by=actor)
        )
        await record_event(conn, delegation_id, action="revoked", actor=actor, at=at, reason=reason)
    return ids
