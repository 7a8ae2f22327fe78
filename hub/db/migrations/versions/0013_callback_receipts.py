"""Notification providers' delivery receipts, for dedupe of their callbacks.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03

- ``callback_receipts``: (adapter, receipt id) of every receipt the hub took, with the
  message reference, the status and the id of the outbox event it became.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "callback_receipts",
        sa.Column("adapter", sa.String(length=64), nullable=False),
        sa.Column("receipt_id", sa.String(length=128), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("adapter", "receipt_id", name=op.f("pk_callback_receipts")),
    )
    with op.batch_alter_table("callback_receipts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_callback_receipts_reference"), ["reference"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("callback_receipts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_callback_receipts_reference"))
    op.drop_table("callback_receipts")
