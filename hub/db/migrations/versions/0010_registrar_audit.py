"""The registrar audit log: hash-chained, append-only entries of every registrar read.

Revision ID: 0010
Revises: 0008
Create Date: 2026-11-26

``registrar_audit`` rows are never changed or removed: triggers refuse UPDATE and DELETE (and
TRUNCATE on PostgreSQL). ``registrar_audit_head`` is the single lock row appenders take, holding
the chain's last sequence number and hash; it starts at 0 and the genesis hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GENESIS = "0" * 64
_APPEND_ONLY = "registrar_audit is append-only"
_SQLITE_TRIGGERS = [
    f"CREATE TRIGGER registrar_audit_no_{verb.lower()} BEFORE {verb} ON registrar_audit "
    f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
    for verb in ("UPDATE", "DELETE")
]
_PG_TRIGGERS = [
    "CREATE FUNCTION registrar_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN RAISE EXCEPTION '{_APPEND_ONLY}'; END $$",
    "CREATE TRIGGER registrar_audit_append_only BEFORE UPDATE OR DELETE ON registrar_audit "
    "FOR EACH ROW EXECUTE FUNCTION registrar_audit_append_only()",
    "CREATE TRIGGER registrar_audit_no_truncate BEFORE TRUNCATE ON registrar_audit "
    "FOR EACH STATEMENT EXECUTE FUNCTION registrar_audit_append_only()",
]


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def _text(name: str, length: int) -> sa.Column[Any]:
    return sa.Column(name, sa.String(length=length), nullable=True)


def upgrade() -> None:
    op.create_table(
        "registrar_audit",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        _text("client_id", 200),
        _text("on_behalf_of", 200),
        _text("adapter", 64),
        _text("operation", 64),
        _text("record_kind", 16),
        _text("record_ref", 128),
        _text("person_ref", 32),
        _text("purpose", 64),
        sa.Column("fields", _json(), nullable=False),
        _text("outcome", 16),
        _text("request_id", 64),
        sa.Column("config_version", sa.Integer(), nullable=True),
        sa.Column("target_seq", sa.BigInteger(), nullable=True),
        sa.Column("embargo_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "kind IN ('read', 'restrict', 'release')", name=op.f("ck_registrar_audit_kind")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_registrar_audit")),
    )
    op.create_index(
        op.f("ix_registrar_audit_person_ref"), "registrar_audit", ["person_ref"], unique=False
    )
    op.create_index(
        op.f("ix_registrar_audit_target_seq"), "registrar_audit", ["target_seq"], unique=False
    )
    head = op.create_table(
        "registrar_audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registrar_audit_head")),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": _GENESIS}])
    triggers = _PG_TRIGGERS if op.get_bind().dialect.name == "postgresql" else _SQLITE_TRIGGERS
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER registrar_audit_no_truncate ON registrar_audit")
        op.execute("DROP TRIGGER registrar_audit_append_only ON registrar_audit")
        op.execute("DROP FUNCTION registrar_audit_append_only()")
    else:
        op.execute("DROP TRIGGER registrar_audit_no_delete")
        op.execute("DROP TRIGGER registrar_audit_no_update")
    op.drop_table("registrar_audit_head")
    op.drop_index(op.f("ix_registrar_audit_target_seq"), table_name="registrar_audit")
    op.drop_index(op.f("ix_registrar_audit_person_ref"), table_name="registrar_audit")
    op.drop_table("registrar_audit")
