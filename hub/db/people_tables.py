"""Tables of people and organisations: persons, establishments, roles, vendors, delegations.

A person's credential columns (password hash, TOTP secret, recovery code hashes, lock-out
counters) live on ``persons`` for the login step; nothing in this module's admin surface reads
them out. ``delegation_events`` is append-only: migration 0003 adds triggers that refuse any
UPDATE or DELETE of its rows, so the audit trail cannot be rewritten through the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from hub.db.models import Base, UTCDateTime

__all__ = [
    "DelegationEventRow",
    "DelegationRow",
    "EstablishmentRow",
    "MembershipRow",
    "PersonRow",
    "StaffRoleRow",
    "VendorRow",
]

_JSON = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_ACTIVE = text("until IS NULL")


class PersonRow(Base):
    """A citizen (national ID starting with 1) or a resident (resident ID starting with 2)."""

    __tablename__ = "persons"
    __table_args__ = (
        CheckConstraint("kind IN ('citizen', 'resident')", name="kind"),
        # The identifier's first digit says which register it comes from.
        CheckConstraint(
            "(kind = 'citizen' AND identifier LIKE '1%') "
            "OR (kind = 'resident' AND identifier LIKE '2%')",
            name="identifier_kind",
        ),
    )

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    identifier: Mapped[str] = mapped_column(String(10), unique=True, index=True)
    given_name: Mapped[str] = mapped_column(String(200))
    family_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    password_hash: Mapped[str | None] = mapped_column(Text)
    totp_secret: Mapped[str | None] = mapped_column(String(200))
    recovery_code_hashes: Mapped[list[str]] = mapped_column(_JSON)
    failed_logins: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EstablishmentRow(Base):
    """An establishment (employer), known by its commercial-registration number."""

    __tablename__ = "establishments"
    __table_args__ = (
        CheckConstraint("size IN ('micro', 'small', 'medium', 'large')", name="size"),
    )

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    cr_number: Mapped[str] = mapped_column(String(10), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(200))
    sector: Mapped[str] = mapped_column(String(32))
    size: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MembershipRow(Base):
    """A person's role in an establishment from ``since`` until ``until`` (NULL: still held)."""

    __tablename__ = "memberships"
    __table_args__ = (
        CheckConstraint("role IN ('owner', 'hr_officer', 'employee')", name="role"),
        # One active membership per (person, establishment, role); ended ones are history.
        Index(
            "uq_memberships_active",
            "person_id",
            "establishment_id",
            "role",
            unique=True,
            sqlite_where=_ACTIVE,
            postgresql_where=_ACTIVE,
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    establishment_id: Mapped[str] = mapped_column(ForeignKey("establishments.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StaffRoleRow(Base):
    """A government role: an agency officer (of one agency) or a platform admin."""

    __tablename__ = "staff_roles"
    __table_args__ = (
        CheckConstraint("role IN ('agency_officer', 'platform_admin')", name="role"),
        CheckConstraint(
            "(role = 'agency_officer' AND agency IS NOT NULL) "
            "OR (role = 'platform_admin' AND agency IS NULL)",
            name="agency",
        ),
    )

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    agency: Mapped[str | None] = mapped_column(String(32))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class VendorRow(Base):
    """A vendor organisation, whose applications are OAuth clients."""

    __tablename__ = "vendor_organisations"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    contact_email: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DelegationRow(Base):
    """An owner's grant to an HR officer or a vendor application to act for an establishment."""

    __tablename__ = "delegations"
    __table_args__ = (
        CheckConstraint(
            "(grantee_person_id IS NULL) <> (grantee_client_id IS NULL)", name="one_grantee"
        ),
        CheckConstraint("valid_until > valid_from", name="window"),
    )

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    establishment_id: Mapped[str] = mapped_column(ForeignKey("establishments.id"), index=True)
    grantor_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    grantee_person_id: Mapped[str | None] = mapped_column(ForeignKey("persons.id"), index=True)
    grantee_client_id: Mapped[str | None] = mapped_column(
        ForeignKey("oauth_clients.client_id"), index=True
    )
    scopes: Mapped[list[str]] = mapped_column(_JSON)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime())
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_by: Mapped[str | None] = mapped_column(String(200))


class DelegationEventRow(Base):
    """One grant or revocation of a delegation: who, what, when and why (append-only)."""

    __tablename__ = "delegation_events"
    __table_args__ = (
        CheckConstraint("action IN ('granted', 'revoked')", name="action"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delegation_id: Mapped[str] = mapped_column(ForeignKey("delegations.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(_JSON)
