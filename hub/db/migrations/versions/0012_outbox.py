"""Events: the transactional outbox, consumers' processed events, the embedded bus, webhooks.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02

- ``outbox_events``: events written in the producer's transaction, until a relay published them.
- ``processed_events``: (consumer, event id) of every event a consumer applied, for dedupe.
- ``event_bindings`` / ``event_deliveries``: the embedded event bus when RabbitMQ is not used.
- ``webhook_subscriptions`` / ``webhook_deliveries``: outbound vendor webhooks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.types.TypeEngine[Any]:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _seq() -> sa.types.TypeEngine[Any]:
    # SQLite numbers rows only for an INTEGER PRIMARY KEY.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "event_bindings",
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("pattern", sa.String(length=200), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("queue", "pattern", name=op.f("pk_event_bindings")),
    )
    op.create_table(
        "event_deliveries",
        sa.Column("id", _seq(), autoincrement=True, nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("available_at", _ts(), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", _ts(), nullable=True),
        sa.Column("enqueued_at", _ts(), nullable=False),
        sa.Column("dead_at", _ts(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_deliveries")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("event_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_event_deliveries_ready", ["queue", "dead_at", "id"], unique=False)

    op.create_table(
        "outbox_events",
        sa.Column("seq", _seq(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=True),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("occurred_at", _ts(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _ts(), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", _ts(), nullable=True),
        sa.Column("sent_at", _ts(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox_events")),
        sa.UniqueConstraint("id", name=op.f("uq_outbox_events_id")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_events_key", ["key", "seq"], unique=False)
        batch_op.create_index("ix_outbox_events_pending", ["sent_at", "seq"], unique=False)

    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("processed_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_processed_events")),
    )
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("event_types", _json(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("secret_ciphertext", sa.Text(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("disabled_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
    )
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_subscriptions_client_id"), ["client_id"], unique=False
        )

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", _seq(), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _ts(), nullable=False),
        sa.Column("claimed_until", _ts(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("delivered_at", _ts(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'parked')",
            name=op.f("ck_webhook_deliveries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["webhook_subscriptions.id"],
            name=op.f("fk_webhook_deliveries_subscription_id_webhook_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_event"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_deliveries_due", ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_subscription_id"), ["subscription_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_subscription_id"))
        batch_op.drop_index("ix_webhook_deliveries_due")

    op.drop_table("webhook_deliveries")
    with op.batch_alter_table("webhook_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_subscriptions_client_id"))

    op.drop_table("webhook_subscriptions")
    op.drop_table("processed_events")
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_events_pending")
        batch_op.drop_index("ix_outbox_events_key")

    op.drop_table("outbox_events")
    with op.batch_alter_table("event_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_event_deliveries_ready")

    op.drop_table("event_deliveries")
    op.drop_table("event_bindings")
