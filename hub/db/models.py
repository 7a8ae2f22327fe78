"""Tables of the hub's own database: configuration versions, the active pointer, drafts, audit.

Versions are immutable once written. Which one is live is a single row (``active_config.id = 1``)
so publishing and rolling back are one UPDATE of that row, and writers serialise by locking it.
The row exists from the first migration on; ``version`` is NULL until something is published.
Drafts are an admin's work in progress on a whole document (migration ``0005``); every change of
the active version (seed, publish, activate) leaves one append-only ``config_changes`` row.
A shadow run (migration ``0007``) is a draft's document decided beside the active one on live
traffic; each request decided differently leaves one ``shadow_decisions`` row.
Four-eyes approvals (migration ``0008``): every admin who created or edited a draft is one
``config_draft_editors`` row (gone with the draft), and every approval of a draft's revision one
append-only ``config_approvals`` row, kept after the draft is published or deleted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
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
    "ConfigApproval",
    "ConfigChange",
    "ConfigDraft",
    "ConfigDraftEditor",
    "ConfigVersion",
    "ShadowDecision",
    "ShadowRun",
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
    # Four-eyes (0008): the protected items the change touched, and who approved them.
    protected: Mapped[list[dict[str, Any]] | None] = mapped_column(_DOCUMENT)
    approved_by: Mapped[str | None] = mapped_column(String(200))


class ConfigDraftEditor(Base):
    """One admin who created or edited a draft: editors may not approve it."""

    __tablename__ = "config_draft_editors"

    draft_id: Mapped[int] = mapped_column(
        ForeignKey("config_drafts.id", ondelete="CASCADE"), primary_key=True
    )
    actor: Mapped[str] = mapped_column(String(200), primary_key=True)
    first_revision: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConfigApproval(Base):
    """A second admin's approval of one revision of a draft (append-only, outlives the draft)."""

    __tablename__ = "config_approvals"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # No foreign key: the approval stays in the audit when its draft is published or deleted.
    draft_id: Mapped[int] = mapped_column(Integer, index=True)
    revision: Mapped[int] = mapped_column(Integer)
    approver: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    comment: Mapped[str] = mapped_column(Text)
    based_on: Mapped[int | None] = mapped_column(Integer)
    items: Mapped[list[dict[str, Any]]] = mapped_column(_DOCUMENT)


class ShadowRun(Base):
    """A draft decided beside the active configuration on live traffic, for a while.

    Running while ``stopped_at`` is NULL and ``ends_at`` is in the future. Who started and who
    stopped it (``expired`` when it ran out) are its audit. The document is the draft's at the
    start: later edits of the draft do not change a run. The counters are added to by every
    replica's decision-log writer.
    """

    __tablename__ = "shadow_runs"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    draft_id: Mapped[int] = mapped_column(Integer)
    draft_revision: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(_DOCUMENT)
    base_version: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    started_by: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stopped_by: Mapped[str | None] = mapped_column(String(200))
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    compared: Mapped[int] = mapped_column(Integer, default=0)
    differences: Mapped[int] = mapped_column(Integer, default=0)
    dropped: Mapped[int] = mapped_column(Integer, default=0)


class ShadowDecision(Base):
    """One request the shadow draft decided differently from the active configuration.

    Identifiers are pseudonyms (``hub.ops.pseudonym``): the path's non-literal segments and the
    principal's subject; never a raw identifier, address or credential.
    """

    __tablename__ = "shadow_decisions"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("shadow_runs.id"), index=True)
    request_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    method: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    route_active: Mapped[str] = mapped_column(String(200))
    route_shadow: Mapped[str] = mapped_column(String(200))
    auth_active: Mapped[str] = mapped_column(String(64))
    auth_shadow: Mapped[str] = mapped_column(String(64))
    decision_active: Mapped[str] = mapped_column(String(16))
    decision_shadow: Mapped[str] = mapped_column(String(16))
    permission_active: Mapped[str | None] = mapped_column(String(200))
    permission_shadow: Mapped[str | None] = mapped_column(String(200))
    rule_active: Mapped[str | None] = mapped_column(String(200))
    rule_shadow: Mapped[str | None] = mapped_column(String(200))
    limit_active: Mapped[str | None] = mapped_column(String(200))
    limit_shadow: Mapped[str | None] = mapped_column(String(200))
    route_changed: Mapped[bool] = mapped_column(Boolean)
    auth_changed: Mapped[bool] = mapped_column(Boolean)
    decision_changed: Mapped[bool] = mapped_column(Boolean)
    limit_changed: Mapped[bool] = mapped_column(Boolean)
    flip: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[int] = mapped_column(Integer)
    config_version: Mapped[int] = mapped_column(Integer)
    draft_id: Mapped[int] = mapped_column(Integer)
    draft_revision: Mapped[int] = mapped_column(Integer)
    principal: Mapped[dict[str, Any]] = mapped_column(_DOCUMENT)
