"""Shadow mode: the shadow runs and their decision log.

Revision ID: 0007
Revises: 0006
Create Date: 2025-05-20

``shadow_runs`` holds each run of a draft beside the active configuration (who started it,
when it ends, who stopped it, the document it decides with, and the counters every replica adds
to); ``shadow_decisions`` holds one row per request the draft decided differently, with
pseudonymised identifiers only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _at(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str, length: int, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "shadow_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("draft_revision", sa.Integer(), nullable=False),
        sa.Column("document", _json(), nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        _text("started_by", 200),
        _at("started_at"),
        _at("ends_at"),
        _text("stopped_by", 200, nullable=True),
        _at("stopped_at", nullable=True),
        sa.Column("compared", sa.Integer(), nullable=False),
        sa.Column("differences", sa.Integer(), nullable=False),
        sa.Column("dropped", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shadow_runs")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "shadow_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        _text("request_id", 64),
        _at("at"),
        _text("method", 16),
        sa.Column("path", sa.Text(), nullable=False),
        _text("route_active", 200),
        _text("route_shadow", 200),
        _text("auth_active", 64),
        _text("auth_shadow", 64),
        _text("decision_active", 16),
        _text("decision_shadow", 16),
        _text("permission_active", 200, nullable=True),
        _text("permission_shadow", 200, nullable=True),
        _text("rule_active", 200, nullable=True),
        _text("rule_shadow", 200, nullable=True),
        _text("limit_active", 200, nullable=True),
        _text("limit_shadow", 200, nullable=True),
        sa.Column("route_changed", sa.Boolean(), nullable=False),
        sa.Column("auth_changed", sa.Boolean(), nullable=False),
        sa.Column("decision_changed", sa.Boolean(), nullable=False),
        sa.Column("limit_changed", sa.Boolean(), nullable=False),
        _text("flip", 16, nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("config_version", sa.Integer(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("draft_revision", sa.Integer(), nullable=False),
        sa.Column("principal", _json(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["shadow_runs.id"], name=op.f("fk_shadow_decisions_run_id_shadow_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shadow_decisions")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_shadow_decisions_run_id"), "shadow_decisions", ["run_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_shadow_decisions_run_id"), table_name="shadow_decisions")
    op.drop_table("shadow_decisions")
    op.drop_table("shadow_runs")
