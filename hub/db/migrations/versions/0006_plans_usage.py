"""Subscriptions of vendor applications to products, their audit trail, and daily usage.

Revision ID: 0006
Revises: 0005
Create Date: 2025-05-08

``subscriptions`` ties an OAuth client to a product under a plan (pending, active, rejected,
cancelled), with at most one live (pending or active) subscription per client and product;
``subscription_events`` is its append-only history; ``usage_daily`` counts admitted requests
per client, product and UTC day, written by the replicas' usage meters with an UPSERT.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = "status IN ('pending', 'active')"


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True), "postgresql"
    )


def _at(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("product", sa.String(length=64), nullable=False),
        sa.Column("plan", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _at("created_at"),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        _at("updated_at"),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        _at("decided_at", nullable=True),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        _at("cancelled_at", nullable=True),
        sa.Column("cancelled_by", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'rejected', 'cancelled')",
            name=op.f("ck_subscriptions_status"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["oauth_clients.client_id"],
            name=op.f("fk_subscriptions_client_id_oauth_clients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    op.create_index(
        op.f("ix_subscriptions_client_id"), "subscriptions", ["client_id"], unique=False
    )
    op.create_index(op.f("ix_subscriptions_product"), "subscriptions", ["product"], unique=False)
    op.create_index(
        "uq_subscriptions_live",
        "subscriptions",
        ["client_id", "product"],
        unique=True,
        sqlite_where=sa.text(_LIVE),
        postgresql_where=sa.text(_LIVE),
    )
    op.create_table(
        "subscription_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        _at("at"),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", _json(), nullable=False),
        sa.CheckConstraint(
            "action IN ('created', 'approved', 'rejected', 'cancelled', 'plan_changed')",
            name=op.f("ck_subscription_events_action"),
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_subscription_events_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_events")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_subscription_events_subscription_id"),
        "subscription_events",
        ["subscription_id"],
        unique=False,
    )
    op.create_table(
        "usage_daily",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("product", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "product", "day", name=op.f("pk_usage_daily")),
    )
    op.create_index(op.f("ix_usage_daily_day"), "usage_daily", ["day"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_usage_daily_day"), table_name="usage_daily")
    op.drop_table("usage_daily")
    op.drop_index(op.f("ix_subscription_events_subscription_id"), table_name="subscription_events")
    op.drop_table("subscription_events")
    op.drop_index("uq_subscriptions_live", table_name="subscriptions")
    op.drop_index(op.f("ix_subscriptions_product"), table_name="subscriptions")
    op.drop_index(op.f("ix_subscriptions_client_id"), table_name="subscriptions")
    op.drop_table("subscriptions")
