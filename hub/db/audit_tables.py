"""Tables of the registrar audit log: the hash-chained entries and the chain's head (lock row).

``registrar_audit`` is append-only: migration 0010 adds triggers that refuse any UPDATE or
DELETE (and TRUNCATE on PostgreSQL). Each row carries ``seq`` (1, 2, 3... with no gaps), the
previous row's ``hash`` and its own, over its content and that previous hash
(:mod:`hub.audit.chain`). ``registrar_audit_head`` is one row (``id = 1``) holding the last
``seq`` and ``hash``: appenders lock it, so entries from every replica form one chain, and a
verifier compares it with the last entry, so a removed tail shows too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from hub.db.models import Base, UTCDateTime

__all__ = ["HEAD_ROW_ID", "AuditEntryRow", "AuditHeadRow"]

HEAD_ROW_ID = 1
_JSON = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class AuditEntryRow(Base):
    """One entry: a registrar read, or the restriction or release of one (append-only)."""

    __tablename__ = "registrar_audit"
    __table_args__ = (CheckConstraint("kind IN ('read', 'restrict', 'release')", name="kind"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    actor_kind: Mapped[str] = mapped_column(String(16))
    client_id: Mapped[str | None] = mapped_column(String(200))
    on_behalf_of: Mapped[str | None] = mapped_column(String(200))
    adapter: Mapped[str | None] = mapped_column(String(64))
    operation: Mapped[str | None] = mapped_column(String(64))
    record_kind: Mapped[str | None] = mapped_column(String(16))
    record_ref: Mapped[str | None] = mapped_column(String(128))
    person_ref: Mapped[str | None] = mapped_column(String(32), index=True)
    purpose: Mapped[str | None] = mapped_column(String(64))
    fields: Mapped[list[str]] = mapped_column(_JSON)
    outcome: Mapped[str | None] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(64))
    config_version: Mapped[int | None] = mapped_column(Integer)
    target_seq: Mapped[int | None] = mapped_column(BigInteger, index=True)
    embargo_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    def content(self) -> dict[str, Any]:
        """The columns as plain values, for hashing and reading."""
        return {column.name: getattr(self, column.name) for column in self.__table__.columns}


class AuditHeadRow(Base):
    """The chain's last ``seq`` and ``hash``; its one row is the appenders' lock."""

    __tablename__ = "registrar_audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
