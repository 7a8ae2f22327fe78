"""Tables of the hub's own database: configuration versions, the active pointer, drafts, audit.

Versions are immutable once written. Which one is live is a single row (``active_config.id = 1``)
so publishing and rolling back are one UPDATE of that row, and writers serialise by locking it.
The row exists from the first migration on; ``version`` is NULL until something is published.
Drafts are an admin's work in progress on a whole document (migration ``0005``); every change of
the active version (seed, publish, activate) leaves one append-only ``config_changes`` row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ACTIVE_ROW_ID",
    "ActiveConfig",
    "Base",
    "ConfigChange",
    "ConfigDraft",
    "ConfigVersion",
    "UTCDateTime",
]

# Explicit names keep migrations reproducible and let later ones drop/alter constraints by name.
_NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ACTIVE_ROW_ID = 1

_DOCUMENT = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every dialect (SQLite stores no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; the hub stores aware UTC timestamps only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the hub's tables."""

    metadata = MetaData(naming_convention=_NAMING_CONVENTION)


class ConfigVersion(Base):
    """One published configuration document; never updated after insert."""

    __tablename__ = "config_versions"
    # AUTOINCREMENT keeps SQLite from ever reusing a number, as a PostgreSQL sequence does.
    __table_args__ = {"sqlite_autoincrement": True}

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    checksum: Mapped[str] = mapped_column(String(64))
    document: Mapped[dict[str, Any]] = mapped_column(_DOCUMENT)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text, default="")
    based_on: Mapped[int | None] = mapped_column(ForeignKey("config_versions.version"))


class ActiveConfig(Base):
    """The single pointer row naming the live version."""

    __tablename__ = "active_config"
    __table_args__ = (CheckConstraint(f"id = {ACTIVE_ROW_ID}", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int | None] = mapped_column(ForeignKey("config_versions.version"))
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    activated_by: Mapped[str | None] = mapped_column(String(200))


class ConfigDraft(Base):
    """An admin's edit of the whole document, not yet published; ``revision`` guards edits."""

    __tablename__ = "config_drafts"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    based_on: Mapped[int | None] = mapped_column(ForeignKey("config_versions.version"))
    document: Mapped[dict[str, Any]] = mapped_column(_DOCUMENT)
    revision: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConfigChange(Base):
    """One change of the active version: who, when, why, and what changed (append-only)."""

    __tablename__ = "config_changes"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(16))  # seed, publish, activate
    version: Mapped[int] = mapped_column(ForeignKey("config_versions.version"), index=True)
    previous: Mapped[int | None] = mapped_column(ForeignKey("config_versions.version"))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    comment: Mapped[str] = mapped_column(Text, default="")
    draft_id: Mapped[int | None] = mapped_column(Integer)
    summary: Mapped[dict[str, Any] | None] = mapped_column(_DOCUMENT)
