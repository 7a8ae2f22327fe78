"""Moments as a service reads them from another's events: aware datetimes, UTC when unzoned."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["moment_of"]


def moment_of(value: object, default: datetime) -> datetime:
    """The ISO 8601 moment ``value`` names (UTC when it has no zone); else ``default``."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return default
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return default
