"""Site-local calendar on top of UTC timestamps.

Everything is stored in UTC (seconds since the epoch). Days, months and tariff bands are local to the
site's IANA time zone, so a local day is 23 h on the spring daylight-saving change and 25 h in autumn
(Europe/Berlin 2026-03-29 and 2026-10-25). Fixed-length intervals (1 min … 1 h) are steps of absolute
time from the first local midnight, so the autumn day has 100 quarter hours and two 02:00 hours.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np

__all__ = [
    "Interval",
    "interval_edges",
    "local_date",
    "local_iso",
    "local_midnight",
    "month_start",
    "parse_date",
    "zone",
]


class Interval(StrEnum):
    """Report and rollup intervals."""

    MIN1 = "1min"
    MIN5 = "5min"
    MIN10 = "10min"
    MIN15 = "15min"
    MIN30 = "30min"
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"

    @property
    def seconds(self) -> float | None:
        """Fixed length [s], or None for calendar intervals (day, month)."""
        return _FIXED.get(self)


_FIXED: dict[Interval, float] = {
    Interval.MIN1: 60.0,
    Interval.MIN5: 300.0,
    Interval.MIN10: 600.0,
    Interval.MIN15: 900.0,
    Interval.MIN30: 1800.0,
    Interval.HOUR: 3600.0,
}


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The ZoneInfo of an IANA name (cached)."""
    return ZoneInfo(name)


def local_midnight(day: date, tz: str) -> float:
    """UTC timestamp of local 00:00 of ``day`` in ``tz`` [s]."""
    return datetime(day.year, day.month, day.day, tzinfo=zone(tz)).timestamp()


def month_start(year: int, month: int, tz: str) -> float:
    """UTC timestamp of local 00:00 on the first of a month [s]; ``month`` may overflow (13 → next year)."""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    return local_midnight(date(year, month, 1), tz)


def local_date(ts: float, tz: str) -> date:
    """Local calendar date of a UTC timestamp [s]."""
    return datetime.fromtimestamp(ts, zone(tz)).date()


def local_datetime(ts: float, tz: str) -> datetime:
    """Aware local datetime of a UTC timestamp [s]."""
    return datetime.fromtimestamp(ts, zone(tz))


def local_iso(ts: float, tz: str) -> str:
    """ISO 8601 local time with its UTC offset, e.g. ``2026-10-25T02:00:00+01:00``."""
    return datetime.fromtimestamp(ts, zone(tz)).isoformat(timespec="seconds")


def parse_date(text: str) -> date:
    """``YYYY-MM-DD`` → date, with an error that shows the expected form."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date of the form YYYY-MM-DD") from None


def parse_time(text: str, tz: str) -> float:
    """ISO 8601 date or date-time → UTC timestamp [s]; naive values are local to ``tz``."""
    text = text.strip()
    try:
        if len(text) == 10:
            return local_midnight(date.fromisoformat(text), tz)
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 date or date-time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=zone(tz))
    return dt.timestamp()


def interval_edges(start: date, end: date, interval: Interval | str, tz: str) -> np.ndarray:
    """Boundaries of the report intervals covering local days ``start`` ≤ day < ``end`` [s, UTC].

    Returns N+1 ascending timestamps for N intervals. ``day`` edges are local midnights (so a DST day
    spans 23 or 25 h); ``month`` edges are the first of each month, clipped to [start, end); fixed
    intervals step absolute time from the first local midnight.
    """
    interval = Interval(interval)
    if end <= start:
        raise ValueError(f"the end date {end} must be after the start date {start}")
    t0, t1 = local_midnight(start, tz), local_midnight(end, tz)
    step = interval.seconds
    if step is not None:
        n = int(round((t1 - t0) / step))
        edges = t0 + step * np.arange(n + 1, dtype=np.float64)
        if edges[-1] < t1:  # zones whose midnight is not on the step grid: close on the midnight
            edges = np.append(edges, t1)
        edges[-1] = t1
        return edges
    if interval is Interval.DAY:
        days = (end - start).days
        return np.array([local_midnight(start + timedelta(days=i), tz) for i in range(days + 1)])
    out = [t0]
    y, m = start.year, start.month + 1
    while True:
        t = month_start(y, m, tz)
        if t >= t1:
            break
        out.append(t)
        m += 1
    out.append(t1)
    return np.array(out, dtype=np.float64)
