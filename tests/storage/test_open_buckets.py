"""Coarse rollups (15 min, 1 h, 1 day) are stored when their bucket closes; until then a query
computes the open bucket from the finer rollups. Every answer must equal the aggregate of the raw
values, whatever the flush sizes, restarts, gaps, late values or retention in between.

The oracle below aggregates the raw (ts, value) pairs in plain Python, independently of
:mod:`meterhub.storage.rollup`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from meterhub.model.readings import Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.storage import HistoryPoint, Storage

T0 = 1_798_761_600  # 2027-01-01T00:00:00Z
E = SeriesKey("main", "energy_active_import", Phase.TOTAL)
V = SeriesKey("main", "voltage", Phase.L1)
WIDTH = {"15min": 900, "1h": 3600}


def readings(key: SeriesKey, pairs: list[tuple[float, float]]) -> list[Reading]:
    return [Reading(t, key.circuit, key.quantity, key.phase, v) for t, v in pairs]


def bucket_of(ts: int, res: str, tz: str) -> int:
    if res == "1d":
        zone = ZoneInfo(tz)
        local = datetime.fromtimestamp(ts, zone)
        return int(datetime(local.year, local.month, local.day, tzinfo=zone).timestamp())
    return ts - ts % WIDTH[res]


def expected(
    pairs: list[tuple[int, float]], res: str, tz: str = "UTC", cumulative: bool = True
) -> list[tuple]:
    """(bucket, count, mean, min, max, last, delta) per bucket of the raw pairs, by hand."""
    out: dict[int, list] = {}
    prev = None
    for ts, v in sorted(pairs):
        b = bucket_of(ts, res, tz)
        row = out.setdefault(b, [b, 0, 0.0, v, v, v, 0.0])
        row[1] += 1
        row[2] += v
        row[3] = min(row[3], v)
        row[4] = max(row[4], v)
        row[5] = v
        if prev is not None:
            row[6] += max(v - prev, 0.0)
        prev = v
    return [
        (b, n, pytest.approx(s / n), lo, hi, last, pytest.approx(d) if cumulative else None)
        for b, n, s, lo, hi, last, d in out.values()
    ]


def got(points: list[HistoryPoint]) -> list[tuple]:
    return [(int(p.ts), p.count, p.mean, p.min, p.max, p.last, p.delta) for p in points]


def check(storage: Storage, key: SeriesKey, pairs: list[tuple[int, float]], tz: str = "UTC") -> None:
    """Every coarse resolution, as points and as columns, equals the oracle over all the data."""
    cumulative = key.quantity.startswith("energy")
    for res in ("15min", "1h", "1d"):
        want = expected(pairs, res, tz, cumulative)
        assert got(storage.history(key, 0, 2e9, res)) == want, res
        cols = storage.history_columns(key, 0, 2e9, res)
        assert [(int(t), int(n), v) for t, n, v in zip(cols.ts, cols.count, cols.last, strict=True)] == [
            (w[0], w[1], w[5]) for w in want
        ], res


def register(ts: int) -> float:
    """A register [Wh] that grows 0.5 Wh every 10 s, with a flat stretch in the second hour."""
    return 1000.0 + 0.5 * min((ts - T0) // 10, 400) + 0.25 * max((ts - T0) // 10 - 500, 0)


def test_open_buckets_match_raw_after_every_flush(storage_backend: Storage) -> None:
    # 3 h of a register read every 10 s, flushed in uneven parts; after each flush the open 15-min,
    # hour and day buckets (and the closed ones) equal the raw aggregates.
    pairs = [(T0 + 10 * i, register(T0 + 10 * i)) for i in range(1080)]
    sizes = [1, 7, 90, 3, 200, 45, 1, 333, 400]
    at = 0
    for size in sizes:
        part = pairs[at : at + size]
        storage_backend.write(readings(E, [(float(t), v) for t, v in part]))
        storage_backend.flush()
        at += size
        check(storage_backend, E, pairs[:at])
    assert at == len(pairs)


def test_a_query_inside_the_open_bucket_selects_only_its_range(storage_backend: Storage) -> None:
    pairs = [(T0 + 60 * i, float(230 + i % 7)) for i in range(100)]  # 1 h 40 min of voltage
    storage_backend.write(readings(V, [(float(t), v) for t, v in pairs]))
    storage_backend.flush()
    # The open 15-min bucket starts at T0 + 5400; a span ending before it leaves it out.
    assert [p.ts for p in storage_backend.history(V, T0, T0 + 5400, "15min")] == [
        T0 + 900 * k for k in range(6)
    ]
    last = storage_backend.history(V, T0 + 5400, T0 + 5401, "15min")
    assert got(last) == expected(pairs, "15min", cumulative=False)[-1:]
    assert (
        got(storage_backend.history(V, T0 + 3600, T0 + 7200, "1h"))
        == expected(pairs, "1h", cumulative=False)[-1:]
    )


def test_restart_in_the_middle_of_an_hour_continues_the_open_buckets(storage_spec) -> None:
    pairs = [(T0 + 10 * i, register(T0 + 10 * i)) for i in range(720)]  # 2 h
    first = storage_spec.open()
    first.write(readings(E, [(float(t), v) for t, v in pairs[:250]]))  # up to 00:41:30
    first.flush()
    first.close()
    again = storage_spec.open()
    check(again, E, pairs[:250])
    for k in range(250, 720, 100):
        again.write(readings(E, [(float(t), v) for t, v in pairs[k : k + 100]]))
        again.flush()
    check(again, E, pairs)
    # Hour 1: 359 steps of 0.5 Wh; hour 2: 41 of 0.5 Wh, flat to 500, then 219 of 0.25 Wh.
    assert [p.delta for p in again.history(E, 0, 2e9, "1h")] == [179.5, 75.25]


def test_a_gap_closes_the_open_bucket_without_values_in_it(storage_backend: Storage) -> None:
    # The next flush's values all lie hours later: the bucket open before it is stored as it was.
    pairs = [(T0 + 60 * i, 10.0 + i) for i in range(5)]
    later = [(T0 + 3 * 3600 + 60 * i, 100.0 + i) for i in range(3)]
    next_day = [(T0 + 86400 + 120, 200.0)]
    for part in (pairs, later, next_day):
        storage_backend.write(readings(E, [(float(t), v) for t, v in part]))
        storage_backend.flush()
    check(storage_backend, E, pairs + later + next_day)
    assert [p.delta for p in storage_backend.history(E, 0, 2e9, "1d")] == [92.0, 98.0]


@pytest.mark.parametrize("tz", ["Europe/Berlin", "Asia/Kolkata"])
def test_open_local_day_matches_raw(storage_spec, tz: str) -> None:
    storage = storage_spec.open(timezone=tz)
    start = T0 + 20 * 3600  # evening in UTC: the local day changes inside the data
    pairs = [(start + 300 * i, 5.0 * i) for i in range(60)]  # 5 h every 5 min
    for k in range(0, 60, 13):
        storage.write(readings(E, [(float(t), v) for t, v in pairs[k : k + 13]]))
        storage.flush()
        check(storage, E, pairs[: k + 13], tz)


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata"])
def test_minute_rollup_retention_stores_the_open_buckets_first(storage_spec, tz: str) -> None:
    # The series stops; 1-minute rollups of its open buckets expire; its 15-min, hour and day
    # buckets keep their values, and data arriving later continues them.
    storage = storage_spec.open(timezone=tz, minute_rollup_retention_days=1)
    pairs = [(T0 + 600 * i, 2.0 * i) for i in range(100)]  # 16.5 h every 10 min
    storage.write(readings(E, [(float(t), v) for t, v in pairs]))
    storage.flush()
    storage.apply_retention(T0 + 86400 + 50_000)  # horizon inside the open 15-min bucket's day
    assert not storage.history(E, 0, T0 + 50_000, "1min")
    check(storage, E, pairs, tz)
    more = [(T0 + 600 * i, 2.0 * i) for i in range(100, 110)]  # the same day, later
    storage.write(readings(E, [(float(t), v) for t, v in more]))
    storage.flush()
    check(storage, E, pairs + more, tz)
    tomorrow = [(T0 + 86400 + 60, 300.0)]
    storage.write(readings(E, [(float(t), v) for t, v in tomorrow]))
    storage.flush()
    check(storage, E, pairs + more + tomorrow, tz)


def test_late_values_inside_the_open_bucket(storage_backend: Storage) -> None:
    pairs = [(T0 + 60 * i, float(i)) for i in range(0, 50, 2)]
    storage_backend.write(readings(E, [(float(t), v) for t, v in pairs]))
    storage_backend.flush()
    late = [(T0 + 60 * i, float(i)) for i in range(1, 50, 2)]  # the odd minutes, afterwards
    storage_backend.write(readings(E, [(float(t), v) for t, v in late]))
    storage_backend.flush()
    later = [(T0 + 60 * i, float(i)) for i in range(50, 130)]
    storage_backend.write(readings(E, [(float(t), v) for t, v in later]))
    storage_backend.flush()
    check(storage_backend, E, pairs + late + later)


def test_expected_helper_counts_local_days() -> None:
    # The oracle's own day boundary: Berlin midnight is 23:00 UTC in winter.
    start = bucket_of(T0 + 3600, "1d", "Europe/Berlin")
    assert start == T0 + 23 * 3600 - 86400
    assert bucket_of(T0 + 23 * 3600, "1d", "Europe/Berlin") == start + int(timedelta(days=1).total_seconds())


def test_flushes_inside_the_open_buckets_write_only_minute_rollups(storage_backend: Storage) -> None:
    # What makes a flush cheap: while a series stays in its 15-min bucket, no coarse row is written;
    # crossing into the next one stores the closed 15-min bucket (hour and day stay open).
    from meterhub.storage.relational import SqlStorage

    assert isinstance(storage_backend, SqlStorage)

    def count(table: str) -> int:
        return int(storage_backend._execute(f"SELECT COUNT(*) FROM {table}")[0][0])

    for i in range(0, 890, 10):
        storage_backend.write(readings(E, [(float(T0 + i), float(i))]))
        storage_backend.flush()
    assert [count(t) for t in ("r_1min", "r_15min", "r_1h", "r_1d")] == [15, 0, 0, 0]
    storage_backend.write(readings(E, [(float(T0 + 900), 900.0)]))
    storage_backend.flush()
    assert [count(t) for t in ("r_1min", "r_15min", "r_1h", "r_1d")] == [16, 1, 0, 0]
    assert storage_backend._execute("SELECT n, delta FROM r_15min")[0] == (89, 880.0)
