"""Configuration drafts and the audit of changes to the active version.

Revision ID: 0005
Revises: 0004
Create Date: 2025-05-01

``config_drafts`` holds admins' edits of the whole document before they are published;
``config_changes`` records every seed, publish and activation with who, when, why and a summary
of the diff against the version it replaced. Versions stored before this migration have no
change rows; nothing is back-filled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _at(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "config_drafts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("based_on", sa.Integer(), nullable=True),
        sa.Column("document", _json(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        _at("created_at"),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        _at("updated_at"),
        sa.ForeignKeyConstraint(
            ["based_on"],
            ["config_versions.version"],
            name=op.f("fk_config_drafts_based_on_config_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_drafts")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "config_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("previous", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        _at("at"),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=True),
        sa.Column("summary", _json(), nullable=True),
        sa.ForeignKeyConstraint(
            ["version"],
            ["config_versions.version"],
            name=op.f("fk_config_changes_version_config_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["previous"],
            ["config_versions.version"],
            name=op.f("fk_config_changes_previous_config_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_changes")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_config_changes_version"), "config_changes", ["version"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_config_changes_version"), table_name="config_changes")
    op.drop_table("config_changes")
    op.drop_table("config_drafts")
