"""Receipts taken from notification providers: one row and one outbox event, or a duplicate."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from hub.db.callback_tables import CallbackReceipt
from hub.db.engine import WRITE_LOCK, database_errors
from hub.events.outbox import enqueue

__all__ = ["CallbackStore"]


class CallbackStore:
    """The ``callback_receipts`` table, written with the receipt's outbox event."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def take(
        self,
        *,
        adapter: str,
        receipt_id: str,
        event_id: str,
        event_type: str,
        payload: dict[str, Any],
    ) -> bool:
        """Record the receipt and enqueue its event in one transaction; False if known."""
        with database_errors():
            async with self._engine.connect() as conn:
                await conn.execution_options(**WRITE_LOCK)
                async with conn.begin():
                    postgres = conn.dialect.name == "postgresql"
                    insert = postgresql.insert if postgres else sqlite.insert
                    taken = await conn.execute(
                        insert(CallbackReceipt)
                        .values(
                            adapter=adapter,
                            receipt_id=receipt_id,
                            reference=str(payload["reference"]),
                            status=str(payload["status"]),
                            event_id=event_id,
                            received_at=datetime.now(UTC),
                        )
                        .on_conflict_do_nothing(index_elements=["adapter", "receipt_id"])
                    )
                    if not taken.rowcount:
                        return False
                    # The key orders one message's receipts on the bus.
                    await enqueue(
                        conn,
                        type=event_type,
                        payload=payload,
                        key=str(payload["reference"]),
                        event_id=event_id,
                    )
        return True
