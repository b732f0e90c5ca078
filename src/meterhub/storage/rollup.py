"""Rollup arithmetic: pure numpy, no I/O.

A rollup bucket of one series holds ``count``, ``sum`` (so the mean is exact when buckets are
merged), ``min``, ``max``, ``last`` (value with the greatest timestamp), ``last_ts``, the worst
``quality`` of the values in it and ``delta``: the sum of the non-negative increments between
consecutive values, each increment attributed to the bucket of its later value. For a cumulative
register that never goes backwards, ``delta`` of a bucket equals ``last − last of the previous
non-empty bucket`` — the interval energy [Wh]. A register that drops (reset, replacement) adds 0,
never a negative amount; repairing such steps is the register guard's job upstream
(``meterhub.energy``).

Buckets are aligned to UTC multiples of their width for 1 min, 15 min and 1 h. Day buckets follow the
site's time zone (a local day starts at local midnight and lasts 23, 24 or 25 h on DST days); a
day is derived from the 15-minute bucket, which every IANA zone offset in use is a multiple of.

Timestamps inside this module are integer milliseconds since the epoch (UTC) and bucket starts
integer seconds, so that buckets compare exactly in SQL and in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

__all__ = [
    "RESOLUTIONS",
    "Aggregates",
    "DayCalendar",
    "aggregate_raw",
    "auto_resolution",
    "check_span_edges",
    "merge_aggregates",
    "RAW_MAX_POINTS",
]

#: Rollup resolutions and their nominal width [s] (a local day may last 23 or 25 h).
RESOLUTIONS: dict[str, int] = {"1min": 60, "15min": 900, "1h": 3600, "1d": 86400}

#: :func:`auto_resolution` returns "raw" when a span at 1 s would give at most this many points.
RAW_MAX_POINTS = 3600

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


class DayCalendar:
    """Maps 15-minute bucket starts to the start of their local day in one IANA time zone.

    timezone : IANA name, e.g. ``"Europe/Berlin"``.
    """

    def __init__(self, timezone: str = "UTC") -> None:
        self.timezone = timezone
        self._tz = ZoneInfo(timezone)
        self._cache: dict[int, int] = {}

    def day_start(self, ts: int) -> int:
        """Start of the local day containing ``ts`` [s] as a UTC timestamp [s]."""
        q = ts - ts % 900
        hit = self._cache.get(q)
        if hit is not None:
            return hit
        local = datetime.fromtimestamp(q, self._tz)
        midnight = datetime(local.year, local.month, local.day, tzinfo=self._tz)
        start = int(midnight.timestamp())
        if len(self._cache) > 200_000:
            self._cache.clear()
        self._cache[q] = start
        return start

    def day_end(self, ts: int) -> int:
        """Start of the local day after the one containing ``ts`` [s] (UTC) [s]."""
        start = self.day_start(ts)
        local = datetime.fromtimestamp(start, self._tz)
        nxt = (local.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=self._tz)
        return int(datetime(nxt.year, nxt.month, nxt.day, tzinfo=self._tz).astimezone(UTC).timestamp())

    def day_starts(self, ts: I64) -> I64:
        """Vectorised :meth:`day_start` for an array of timestamps [s]."""
        q = ts - ts % 900
        uniq, inverse = np.unique(q, return_inverse=True)
        starts = np.fromiter((self.day_start(int(u)) for u in uniq), dtype=np.int64, count=len(uniq))
        return starts[inverse.reshape(-1)]


#: Resolutions whose buckets :func:`check_span_edges` can group into spans (fixed, UTC-aligned widths).
SPAN_RESOLUTIONS = ("1min", "15min", "1h")


def check_span_edges(edges: npt.ArrayLike, resolution: str) -> I64:
    """Span boundaries [s] as integers, checked: increasing and on bucket starts of ``resolution``
    (a bucket lies wholly in one span), so summing bucket deltas per span is exact.

    Raises ValueError naming the first bad edge (as UTC time) or the resolution.
    """
    if resolution not in SPAN_RESOLUTIONS:
        raise ValueError(f"spans group buckets of {', '.join(SPAN_RESOLUTIONS)}, not {resolution!r}")
    e = np.asarray(edges, dtype=np.float64)
    width = RESOLUTIONS[resolution]
    whole = np.isfinite(e) & (np.mod(e, width) == 0.0)
    if not whole.all():
        bad = float(e[np.flatnonzero(~whole)[0]])
        when = datetime.fromtimestamp(bad, UTC).isoformat() if np.isfinite(bad) else repr(bad)
        raise ValueError(f"span edge {when} is not the start of a {resolution} bucket")
    if len(e) > 1 and not (np.diff(e) > 0).all():
        at = int(np.flatnonzero(np.diff(e) <= 0)[0]) + 1
        raise ValueError(f"span edges must increase; edge {at} ({e[at]:.0f} s) does not")
    return e.astype(np.int64)


def bucket_starts(resolution: str, ts_s: I64, calendar: DayCalendar) -> I64:
    """Bucket start [s] of each timestamp [s] at ``resolution``."""
    if resolution == "1d":
        return calendar.day_starts(ts_s)
    width = RESOLUTIONS[resolution]
    return ts_s - ts_s % width


def bucket_end(resolution: str, bucket: int, calendar: DayCalendar) -> int:
    """End [s] (exclusive) of the bucket starting at ``bucket`` [s]."""
    if resolution == "1d":
        return calendar.day_end(bucket)
    return bucket + RESOLUTIONS[resolution]


@dataclass(frozen=True, slots=True)
class Aggregates:
    """Rollup rows, one per (series, bucket), ordered by series then bucket."""

    series: I64
    bucket: I64  # bucket start [s]
    count: I64
    sum: F64
    min: F64
    max: F64
    last: F64
    last_ts: I64  # [ms]
    quality: I64
    delta: F64

    def __len__(self) -> int:
        return len(self.series)

    def rows(self) -> list[tuple[int, int, int, float, float, float, float, int, int, float]]:
        """Plain Python tuples in column order, for ``executemany``."""
        return list(
            zip(
                self.series.tolist(),
                self.bucket.tolist(),
                self.count.tolist(),
                self.sum.tolist(),
                self.min.tolist(),
                self.max.tolist(),
                self.last.tolist(),
                self.last_ts.tolist(),
                self.quality.tolist(),
                self.delta.tolist(),
                strict=True,
            )
        )


def steps(series: I64, value: F64, prev: F64) -> F64:
    """Non-negative increments between consecutive values of each series.

    series : series id of each value, rows grouped by series and sorted by time.
    value : the values. [unit of the quantity]
    prev : per row, the value preceding the first row of its series (NaN if none); only the
        entries at the first row of each series are read.
    Returns max(value[i] − value[i−1], 0) with the predecessor from ``prev`` at series starts; 0
    where there is no predecessor.
    """
    before = np.empty_like(value)
    if len(value):
        before[1:] = value[:-1]
        first = np.ones(len(value), dtype=bool)
        first[1:] = series[1:] != series[:-1]
        before[first] = prev[first]
    d = value - before
    d[~np.isfinite(d)] = 0.0
    return np.maximum(d, 0.0)


def aggregate_raw(
    series: I64,
    ts_ms: I64,
    value: F64,
    quality: I64,
    step: F64,
    resolution: str,
    calendar: DayCalendar,
) -> Aggregates:
    """Aggregate raw values into buckets of ``resolution``.

    All arrays are per value, grouped by series and sorted by time, INVALID values already removed;
    ``step`` comes from :func:`steps`. Timestamps [ms]; values in the quantity's unit.
    """
    buckets = bucket_starts(resolution, ts_ms // 1000, calendar)
    n = len(series)
    if n == 0:
        return _empty()
    brk = np.ones(n, dtype=bool)
    brk[1:] = (series[1:] != series[:-1]) | (buckets[1:] != buckets[:-1])
    starts = np.flatnonzero(brk)
    ends = np.append(starts[1:], n) - 1
    return Aggregates(
        series=series[starts],
        bucket=buckets[starts],
        count=np.diff(np.append(starts, n)).astype(np.int64),
        sum=np.add.reduceat(value, starts),
        min=np.minimum.reduceat(value, starts),
        max=np.maximum.reduceat(value, starts),
        last=value[ends],
        last_ts=ts_ms[ends],
        quality=np.maximum.reduceat(quality, starts),
        delta=np.add.reduceat(step, starts),
    )


def merge_aggregates(rows: Aggregates, resolution: str, calendar: DayCalendar) -> Aggregates:
    """Merge finer rollup rows (grouped by series, sorted by bucket) into ``resolution`` buckets."""
    n = len(rows)
    if n == 0:
        return _empty()
    buckets = bucket_starts(resolution, rows.bucket, calendar)
    brk = np.ones(n, dtype=bool)
    brk[1:] = (rows.series[1:] != rows.series[:-1]) | (buckets[1:] != buckets[:-1])
    starts = np.flatnonzero(brk)
    ends = np.append(starts[1:], n) - 1
    return Aggregates(
        series=rows.series[starts],
        bucket=buckets[starts],
        count=np.add.reduceat(rows.count, starts),
        sum=np.add.reduceat(rows.sum, starts),
        min=np.minimum.reduceat(rows.min, starts),
        max=np.maximum.reduceat(rows.max, starts),
        last=rows.last[ends],
        last_ts=rows.last_ts[ends],
        quality=np.maximum.reduceat(rows.quality, starts),
        delta=np.add.reduceat(rows.delta, starts),
    )


def aggregates_from_rows(rows: list[tuple]) -> Aggregates:
    """Build :class:`Aggregates` from database rows in column order (see :meth:`Aggregates.rows`)."""
    if not rows:
        return _empty()
    cols = list(zip(*rows, strict=True))
    i = lambda k: np.asarray(cols[k], dtype=np.int64)  # noqa: E731
    f = lambda k: np.asarray(cols[k], dtype=np.float64)  # noqa: E731
    return Aggregates(i(0), i(1), i(2), f(3), f(4), f(5), f(6), i(7), i(8), f(9))


def _empty() -> Aggregates:
    ei = np.empty(0, dtype=np.int64)
    ef = np.empty(0, dtype=np.float64)
    return Aggregates(ei, ei, ei, ef, ef, ef, ef, ei, ei, ef)


def auto_resolution(start: float, end: float, max_points: int = 2000) -> str:
    """The finest resolution giving at most ``max_points`` buckets over ``[start, end)`` [s].

    "raw" is chosen for spans up to :data:`RAW_MAX_POINTS` seconds (at most that many points at a
    1 s poll interval). Example: a 1 h span → "raw", 1 day → "1min" (1440 points), 1 week → "15min"
    (672), 1 year → "1d" (365).
    """
    span = max(end - start, 0.0)
    if span <= RAW_MAX_POINTS:
        return "raw"
    for name, width in RESOLUTIONS.items():
        if span / width <= max_points:
            return name
    return "1d"
