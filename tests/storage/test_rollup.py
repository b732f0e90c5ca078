"""The pure rollup arithmetic (no database): steps, buckets, merging, local days."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from meterhub.storage.rollup import DayCalendar, aggregate_raw, merge_aggregates, steps


def utc(*a: int) -> int:
    return int(datetime(*a, tzinfo=UTC).timestamp())


def test_steps_are_non_negative_increments_with_carried_predecessor() -> None:
    series = np.array([1, 1, 1, 2, 2])
    value = np.array([10.0, 12.0, 11.0, 5.0, 7.5])
    prev = np.array([9.0, 0, 0, np.nan, 0])  # series 1 continues from 9; series 2 has no past
    assert steps(series, value, prev).tolist() == [1.0, 2.0, 0.0, 0.0, 2.5]


def test_aggregate_raw_groups_by_series_and_minute() -> None:
    series = np.array([1, 1, 1, 2], dtype=np.int64)
    ts_ms = np.array([0, 30_000, 60_000, 59_999], dtype=np.int64) + utc(2026, 1, 1) * 1000
    value = np.array([1.0, 3.0, 5.0, 7.0])
    quality = np.array([0, 1, 0, 0], dtype=np.int64)
    step = steps(series, value, np.full(4, np.nan))
    agg = aggregate_raw(series, ts_ms, value, quality, step, "1min", DayCalendar())
    t0 = utc(2026, 1, 1)
    assert agg.rows() == [
        (1, t0, 2, 4.0, 1.0, 3.0, 3.0, t0 * 1000 + 30_000, 1, 2.0),
        (1, t0 + 60, 1, 5.0, 5.0, 5.0, 5.0, t0 * 1000 + 60_000, 0, 2.0),
        (2, t0, 1, 7.0, 7.0, 7.0, 7.0, t0 * 1000 + 59_999, 0, 0.0),
    ]


def test_merging_minutes_into_hours_keeps_sum_count_last_and_delta() -> None:
    t0 = utc(2026, 1, 1)
    minutes = np.arange(120)
    ts_ms = (t0 + 60 * minutes) * 1000
    value = minutes.astype(float)
    s = np.ones(120, dtype=np.int64)
    cal = DayCalendar()
    fine = aggregate_raw(
        s, ts_ms, value, np.zeros(120, dtype=np.int64), steps(s, value, np.full(120, -1.0)), "1min", cal
    )
    hours = merge_aggregates(fine, "1h", cal)
    assert hours.bucket.tolist() == [t0, t0 + 3600]
    assert hours.count.tolist() == [60, 60]
    assert hours.sum.tolist() == [sum(range(60)), sum(range(60, 120))]
    assert hours.last.tolist() == [59.0, 119.0]
    assert hours.delta.tolist() == [60.0, 60.0]  # the first step is from the carried −1


def test_local_days_last_23_and_25_hours_on_dst_changes() -> None:
    cal = DayCalendar("Europe/Berlin")
    spring = cal.day_start(utc(2026, 3, 29, 12))
    assert spring == utc(2026, 3, 28, 23)  # 00:00 CET
    assert cal.day_end(spring) - spring == 23 * 3600
    autumn = cal.day_start(utc(2026, 10, 25, 12))
    assert autumn == utc(2026, 10, 24, 22)  # 00:00 CEST
    assert cal.day_end(autumn) - autumn == 25 * 3600
    ts = np.array(
        [utc(2026, 10, 24, 21, 59), utc(2026, 10, 24, 22), utc(2026, 10, 25, 22, 59), utc(2026, 10, 25, 23)]
    )
    assert cal.day_starts(ts).tolist() == [utc(2026, 10, 23, 22), autumn, autumn, utc(2026, 10, 25, 23)]


def test_half_hour_zone_days_start_inside_a_utc_hour() -> None:
    cal = DayCalendar("Asia/Kolkata")  # UTC+5:30
    assert cal.day_start(utc(2026, 6, 1, 12)) == utc(2026, 5, 31, 18, 30)
