"""Configuration versions and the active-version pointer.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "config_versions",
        sa.Column("version", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column(
            "document",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("based_on", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["based_on"],
            ["config_versions.version"],
            name=op.f("fk_config_versions_based_on_config_versions"),
        ),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_config_versions")),
        sqlite_autoincrement=True,
    )
    active = op.create_table(
        "active_config",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("activated_by", sa.String(length=200), nullable=True),
        sa.CheckConstraint("id = 1", name=op.f("ck_active_config_single_row")),
        sa.ForeignKeyConstraint(
            ["version"],
            ["config_versions.version"],
            name=op.f("fk_active_config_version_config_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_active_config")),
    )
    # The pointer row exists before anything is published so writers always have a row to lock.
    op.bulk_insert(active, [{"id": 1, "version": None, "activated_at": None, "activated_by": None}])


def downgrade() -> None:
    op.drop_table("active_config")
    op.drop_table("config_versions")
