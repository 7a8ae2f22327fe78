"""The receipts notification providers called back with (migration ``0013``).

One row per (adapter, receipt id) the hub took: a provider that sends a receipt twice (or a
retried delivery whose first answer was lost) finds its row and changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from hub.db.models import Base, UTCDateTime

__all__ = ["CallbackReceipt"]


class CallbackReceipt(Base):
    """A delivery receipt taken from a provider, once."""

    __tablename__ = "callback_receipts"

    adapter: Mapped[str] = mapped_column(String(64), primary_key=True)
    receipt_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    reference: Mapped[str] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
