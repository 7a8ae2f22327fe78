"""Four-eyes approvals of configuration drafts.

Revision ID: 0008
Revises: 0007
Create Date: 2025-05-20

``config_draft_editors`` lists every admin who created or edited a draft (they may not approve
it), back-filled from each existing draft's ``created_by`` and ``updated_by``; the editors in
between were never recorded. ``config_approvals`` keeps each approval of a draft's revision,
also after the draft is gone. ``config_changes`` gains the protected items a change touched and
who approved them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "config_draft_editors",
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("first_revision", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["draft_id"],
            ["config_drafts.id"],
            name=op.f("fk_config_draft_editors_draft_id_config_drafts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("draft_id", "actor", name=op.f("pk_config_draft_editors")),
    )
    op.execute(
        "INSERT INTO config_draft_editors (draft_id, actor, first_revision, at)"
        " SELECT id, created_by, 1, created_at FROM config_drafts"
    )
    op.execute(
        "INSERT INTO config_draft_editors (draft_id, actor, first_revision, at)"
        " SELECT id, updated_by, revision, updated_at FROM config_drafts"
        " WHERE updated_by <> created_by"
    )
    op.create_table(
        "config_approvals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("approver", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("based_on", sa.Integer(), nullable=True),
        sa.Column("items", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_approvals")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_config_approvals_draft_id"), "config_approvals", ["draft_id"], unique=False
    )
    op.add_column("config_changes", sa.Column("protected", _json(), nullable=True))
    op.add_column("config_changes", sa.Column("approved_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("config_changes") as batch:
        batch.drop_column("approved_by")
        batch.drop_column("protected")
    op.drop_index(op.f("ix_config_approvals_draft_id"), table_name="config_approvals")
    op.drop_table("config_approvals")
    op.drop_table("config_draft_editors")
