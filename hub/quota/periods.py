"""Quota arithmetic: UTC days and months, what is left of a quota, and when it comes back.

A daily quota resets at 00:00 UTC, a monthly one at 00:00 UTC on the first of the month. The
functions are pure (the time is an argument), so they are tested exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

__all__ = [
    "Calendar",
    "Period",
    "QuotaCheck",
    "check_quota",
    "month_seconds",
    "period_end",
    "seconds_until",
]

Period = Literal["daily", "monthly"]

_DAY = 86_400.0


def period_end(now: datetime, period: Period) -> datetime:
    """The instant ``period`` (containing ``now``) ends and its quota is whole again."""
    today = now.astimezone(UTC).date()
    if period == "daily":
        end = today + timedelta(days=1)
    else:
        end = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    return datetime(end.year, end.month, end.day, tzinfo=UTC)


def seconds_until(now: datetime, period: Period) -> int:
    """Whole seconds from ``now`` until the period resets, at least 1 (a ``Retry-After``)."""
    return max(1, math.ceil((period_end(now, period) - now).total_seconds()))


def month_seconds(day: date) -> int:
    """The length of ``day``'s UTC month in seconds (the ``w`` of a monthly quota)."""
    start = datetime(day.year, day.month, 1, tzinfo=UTC)
    return int((period_end(start, "monthly") - start).total_seconds())


@dataclass(frozen=True, slots=True, kw_only=True)
class _Today:
    day: date
    day_end: float  # epoch seconds
    month_end: float
    month_window: int


class Calendar:
    """:func:`seconds_until` and :func:`month_seconds` for the hot path, worked out once a day.

    ``at(now)`` answers from the day it last computed while ``now`` lies inside it, so a
    request pays two float comparisons instead of building datetimes.
    """

    def __init__(self) -> None:
        self._today: _Today | None = None

    def _for(self, now: datetime) -> _Today:
        today = self._today
        stamp = now.timestamp()
        if today is None or not today.day_end - _DAY <= stamp < today.day_end:
            day = now.astimezone(UTC).date()
            today = self._today = _Today(
                day=day,
                day_end=period_end(now, "daily").timestamp(),
                month_end=period_end(now, "monthly").timestamp(),
                month_window=month_seconds(day),
            )
        return today

    def day(self, now: datetime) -> date:
        """The UTC day of ``now``."""
        return self._for(now).day

    def seconds_until(self, now: datetime, period: Period) -> int:
        """As :func:`seconds_until`."""
        today = self._for(now)
        end = today.day_end if period == "daily" else today.month_end
        return max(1, math.ceil(end - now.timestamp()))

    def month_seconds(self, now: datetime) -> int:
        """As :func:`month_seconds` for ``now``'s month."""
        return self._for(now).month_window


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaCheck:
    """One request against an application's quotas: allowed, or which period ran out.

    ``remaining`` maps each capped period to what is left after this request (when allowed)
    or now (when refused); ``exceeded`` names the period that refuses it, the one whose reset
    lies furthest ahead when both do.
    """

    allowed: bool
    remaining: dict[Period, int]
    exceeded: Period | None = None


def check_quota(
    *, daily: int | None, monthly: int | None, used_day: int, used_month: int, cost: int = 1
) -> QuotaCheck:
    """Whether ``cost`` more requests fit under the quotas, given the usage so far."""
    remaining: dict[Period, int] = {}
    exceeded: Period | None = None
    if daily is not None:
        left = daily - used_day
        if left < cost:
            exceeded = "daily"
        remaining["daily"] = left
    if monthly is not None:
        left = monthly - used_month
        if left < cost:
            exceeded = "monthly"  # its reset is never before the daily one
        remaining["monthly"] = left
    if exceeded is not None:
        return QuotaCheck(
            allowed=False,
            remaining={p: max(0, r) for p, r in remaining.items()},
            exceeded=exceeded,
        )
    return QuotaCheck(allowed=True, remaining={p: r - cost for p, r in remaining.items()})
