"""Outbound vendor webhooks (migration ``0012``): subscriptions and their deliveries.

A subscription belongs to one OAuth client (a vendor application) and names the event types it
wants and the HTTPS endpoint that receives them. Its signing secret (``whsec_...``) is shown
once at creation and stored encrypted (AES-GCM under the hub's webhook key), since the hub must
be able to sign with it; a hash would not do. Each matching event becomes one delivery row per
subscription (unique on the pair, so a redelivered event is not sent twice), tried with
exponential backoff and parked (``status = 'parked'``) after the last try until an admin
replays it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from hub.db.models import Base, UTCDateTime

__all__ = ["DELIVERY_STATUSES", "WebhookDeliveryRow", "WebhookSubscriptionRow"]

_JSON = JSON().with_variant(JSONB(), "postgresql")
_SEQ = BigInteger().with_variant(Integer(), "sqlite")

#: pending (to be tried), delivered (2xx), parked (gave up; an admin may replay it).
DELIVERY_STATUSES = ("pending", "delivered", "parked")


class WebhookSubscriptionRow(Base):
    """A vendor application's subscription to some event types."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(200), index=True)
    url: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list[str]] = mapped_column(_JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(200))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookDeliveryRow(Base):
    """One event to one subscription, with its attempts."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_event"),
        CheckConstraint("status IN ('pending', 'delivered', 'parked')", name="status"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(_JSON)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
