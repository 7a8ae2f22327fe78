"""Payments: payments, refunds, idempotency records and webhook receipts.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02

``payments`` keeps ``amount_refunded + amount_refund_pending <= amount_captured`` as a CHECK
constraint, so no sequence of refunds, concurrent or not, can exceed a capture on either
database. ``payment_webhooks`` is keyed by the provider's event id: a duplicate is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def upgrade() -> None:
    op.create_table(
        "payment_idempotency",
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("refund_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("response", _json(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('in_progress', 'done')", name=op.f("ck_payment_idempotency_state")
        ),
        sa.PrimaryKeyConstraint("owner", "key", name=op.f("pk_payment_idempotency")),
    )
    with op.batch_alter_table("payment_idempotency", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payment_idempotency_created_at"), ["created_at"], unique=False
        )

    op.create_table(
        "payment_webhooks",
        sa.Column("adapter", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("adapter", "event_id", name=op.f("pk_payment_webhooks")),
    )
    with op.batch_alter_table("payment_webhooks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payment_webhooks_payment_id"), ["payment_id"], unique=False
        )

    op.create_table(
        "payments",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("capture_method", sa.String(length=16), nullable=False),
        sa.Column("payment_method", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("adapter", sa.String(length=64), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=True),
        sa.Column("amount_captured", sa.BigInteger(), nullable=False),
        sa.Column("amount_refunded", sa.BigInteger(), nullable=False),
        sa.Column("amount_refund_pending", sa.BigInteger(), nullable=False),
        sa.Column("failure_code", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('created', 'requires_capture', 'pending', 'captured',"
            " 'partially_refunded', 'refunded', 'failed', 'cancelled', 'expired')",
            name=op.f("ck_payments_state"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payments_amount_positive")),
        sa.CheckConstraint(
            "amount_captured >= 0 AND amount_captured <= amount", name=op.f("ck_payments_captured")
        ),
        sa.CheckConstraint(
            "amount_refunded >= 0 AND amount_refund_pending >= 0"
            " AND amount_refunded + amount_refund_pending <= amount_captured",
            name=op.f("ck_payments_refunds_within_capture"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("adapter", "provider_id", name="uq_payments_provider"),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_captured_at"), ["captured_at"], unique=False)
        batch_op.create_index("ix_payments_owner_created", ["owner", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_payments_reference"), ["reference"], unique=False)

    op.create_table(
        "payment_refunds",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("payment_id", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'succeeded', 'failed')", name=op.f("ck_payment_refunds_state")
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payment_refunds_amount_positive")),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_payment_refunds_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_refunds")),
        sa.UniqueConstraint("provider_id", name=op.f("uq_payment_refunds_provider_id")),
    )
    with op.batch_alter_table("payment_refunds", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payment_refunds_booked_at"), ["booked_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_payment_refunds_payment_id"), ["payment_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("payment_refunds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_refunds_payment_id"))
        batch_op.drop_index(batch_op.f("ix_payment_refunds_booked_at"))

    op.drop_table("payment_refunds")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_reference"))
        batch_op.drop_index("ix_payments_owner_created")
        batch_op.drop_index(batch_op.f("ix_payments_captured_at"))

    op.drop_table("payments")
    with op.batch_alter_table("payment_webhooks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_webhooks_payment_id"))

    op.drop_table("payment_webhooks")
    with op.batch_alter_table("payment_idempotency", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_idempotency_created_at"))

    op.drop_table("payment_idempotency")
