"""Keyset pagination for a service's listings: newest first, with opaque cursors.

A listing orders its rows by a moment and an id, both descending; a page's cursor names the
last row it gave, so the next page starts strictly after it whatever is inserted meanwhile. A
cursor is the URL-safe base64 of ``<moment>|<id>``: opaque to clients, and one that this
listing did not give is refused as ``invalid_request``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, or_

from hub.errors import InvalidRequest

__all__ = ["PAGE_MAX", "Page", "after", "decode_cursor", "encode_cursor", "page_of"]

#: The most rows one page holds, whatever the caller asks.
PAGE_MAX: Final = 100
_FORGED: Final = "cursor: not a cursor this listing gave"


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """One page of a listing's rows and the cursor of the next (``None`` on the last)."""

    items: list[dict[str, Any]]
    next_cursor: str | None

    def body(self, view: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """The page as a listing answers it: each row as ``view`` shows it, and the next cursor."""
        return {"items": [view(row) for row in self.items], "next_cursor": self.next_cursor}


def encode_cursor(at: datetime, row_id: str) -> str:
    """The cursor that starts after the row of ``row_id`` at ``at``."""
    raw = f"{at.astimezone(UTC).isoformat()}|{row_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The moment and id a cursor of :func:`encode_cursor` names; a forged one is refused."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, row_id = raw.partition("|")
        moment = datetime.fromisoformat(at)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(_FORGED) from exc
    if not row_id or moment.tzinfo is None:
        raise InvalidRequest(_FORGED)
    return moment, row_id


def after(cursor: str, at: Any, row_id: Any) -> ColumnElement[bool]:
    """The condition on the columns ``at`` and ``row_id`` of the rows after ``cursor``."""
    moment, last = decode_cursor(cursor)
    condition: ColumnElement[bool] = or_(at < moment, and_(at == moment, row_id < last))
    return condition


def page_of(rows: Sequence[dict[str, Any]], limit: int, *, at: str, key: str = "id") -> Page:
    """The page of ``rows`` read with ``limit + 1``: the extra row only says there is more."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return Page(
        items=items, next_cursor=encode_cursor(items[-1][at], items[-1][key]) if more else None
    )
