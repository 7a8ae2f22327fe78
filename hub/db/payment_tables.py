"""Tables of the payments API: payments, refunds, idempotency records and webhook receipts.

``payments`` holds each payment's state and three amounts (minor units): captured, refunded
(booked by the provider) and refund_pending (refunds asked for and not yet booked). A CHECK
constraint keeps ``amount_refunded + amount_refund_pending <= amount_captured`` on every
database: a refund reserves its amount with one conditional UPDATE before the provider is
called, so concurrent refunds can never together exceed the capture. ``payment_idempotency``
remembers each caller's ``Idempotency-Key`` with a fingerprint of its request and, once
answered, the answer. ``payment_webhooks`` has one row per provider event taken (its id is the
primary key: a duplicate delivery is refused by the database itself).
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
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from hub.db.models import Base, UTCDateTime
from hub.payments.states import PaymentState, RefundState

__all__ = ["IdempotencyRow", "PaymentRow", "RefundRow", "WebhookReceiptRow"]

_JSON = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_STATES = ", ".join(f"'{state.value}'" for state in PaymentState)
_REFUND_STATES = ", ".join(f"'{state.value}'" for state in RefundState)


class PaymentRow(Base):
    """One payment, as the hub knows it."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(f"state IN ({_STATES})", name="state"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("amount_captured >= 0 AND amount_captured <= amount", name="captured"),
        CheckConstraint(
            "amount_refunded >= 0 AND amount_refund_pending >= 0"
            " AND amount_refunded + amount_refund_pending <= amount_captured",
            name="refunds_within_capture",
        ),
        UniqueConstraint("adapter", "provider_id", name="uq_payments_provider"),
        Index("ix_payments_owner_created", "owner", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    reference: Mapped[str | None] = mapped_column(String(128), index=True)
    description: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    capture_method: Mapped[str] = mapped_column(String(16))
    payment_method: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(24))
    adapter: Mapped[str] = mapped_column(String(64))
    provider_id: Mapped[str | None] = mapped_column(String(64))
    amount_captured: Mapped[int] = mapped_column(BigInteger)
    amount_refunded: Mapped[int] = mapped_column(BigInteger)
    amount_refund_pending: Mapped[int] = mapped_column(BigInteger)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    captured_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)


class RefundRow(Base):
    """One refund of a payment."""

    __tablename__ = "payment_refunds"
    __table_args__ = (
        CheckConstraint(f"state IN ({_REFUND_STATES})", name="state"),
        CheckConstraint("amount > 0", name="amount_positive"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200))
    provider_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    booked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)


class IdempotencyRow(Base):
    """A caller's ``Idempotency-Key``: what it was for, and the answer once there is one."""

    __tablename__ = "payment_idempotency"
    __table_args__ = (CheckConstraint("state IN ('in_progress', 'done')", name="state"),)

    owner: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    operation: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    locked_until: Mapped[datetime] = mapped_column(UTCDateTime())
    payment_id: Mapped[str | None] = mapped_column(String(40))
    refund_id: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(_JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class WebhookReceiptRow(Base):
    """One provider event taken (or its duplicate refused by the primary key)."""

    __tablename__ = "payment_webhooks"

    adapter: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    payment_id: Mapped[str | None] = mapped_column(String(40), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
