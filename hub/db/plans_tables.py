"""Tables of plans and quotas: subscriptions, their audit trail, and usage per day.

A subscription ties a vendor application (an OAuth client) to an API product under a plan; the
plan and product are ids of the active configuration. At most one subscription per client and
product is live (pending or active) at a time, which a partial unique index enforces on both
databases. Every change appends a ``subscription_events`` row. ``usage_daily`` holds the count
of admitted requests per client, product and UTC day; replicas add to it with an UPSERT, so it
has no foreign key that could make a flush of usage fail.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from hub.db.models import Base, UTCDateTime

__all__ = [
    "LIVE_STATUSES",
    "SUBSCRIPTION_STATUSES",
    "SubscriptionEventRow",
    "SubscriptionRow",
    "UsageDailyRow",
]

SUBSCRIPTION_STATUSES = ("pending", "active", "rejected", "cancelled")
#: The statuses of a subscription that still counts: one per client and product at most.
LIVE_STATUSES = ("pending", "active")
_LIVE = "status IN ('pending', 'active')"

_JSON = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class SubscriptionRow(Base):
    """A vendor application's subscription to a product under a plan, and its state."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'active', 'rejected', 'cancelled')", name="status"),
        Index(
            "uq_subscriptions_live",
            "client_id",
            "product",
            unique=True,
            sqlite_where=text(_LIVE),
            postgresql_where=text(_LIVE),
        ),
    )

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.client_id"), index=True)
    product: Mapped[str] = mapped_column(String(64), index=True)
    plan: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(200))
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_by: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, server_default=text("''"))


class SubscriptionEventRow(Base):
    """One change of a subscription: created, approved, rejected, cancelled or plan_changed."""

    __tablename__ = "subscription_events"
    __table_args__ = (
        CheckConstraint(
            "action IN ('created', 'approved', 'rejected', 'cancelled', 'plan_changed')",
            name="action",
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(_JSON)


class UsageDailyRow(Base):
    """Admitted requests of one application on one product on one UTC day."""

    __tablename__ = "usage_daily"

    client_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    product: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date(), primary_key=True, index=True)
    count: Mapped[int] = mapped_column(BigInteger())
