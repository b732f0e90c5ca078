"""The storage contract on hand-checkable series, run against every backend (see conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from meterhub.model.readings import Quality, Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.storage import Storage, auto_resolution
from meterhub.storage.base import StorageError

T0 = 1_798_761_600  # 2027-01-01T00:00:00Z, a whole day, hour and minute
V = SeriesKey("main", "voltage", Phase.L1)
E = SeriesKey("main", "energy_active_import", Phase.TOTAL)


def readings(
    key: SeriesKey, pairs: list[tuple[float, float]], quality: Quality = Quality.GOOD
) -> list[Reading]:
    return [Reading(t, key.circuit, key.quantity, key.phase, v, quality) for t, v in pairs]


def test_120_values_at_1s_give_two_1min_buckets(storage_backend: Storage) -> None:
    storage_backend.write(readings(V, [(T0 + i, float(i)) for i in range(120)]))
    storage_backend.flush()
    b = storage_backend.history(V, T0, T0 + 120, "1min")
    assert [p.ts for p in b] == [T0, T0 + 60]
    assert [(p.count, p.mean, p.min, p.max, p.last) for p in b] == [
        (60, 29.5, 0.0, 59.0, 59.0),  # mean of 0…59
        (60, 89.5, 60.0, 119.0, 119.0),
    ]
    assert b[0].delta is None  # voltage is not cumulative
    raw = storage_backend.history(V, T0 + 10, T0 + 13)
    assert [(p.ts, p.mean, p.count) for p in raw] == [
        (T0 + 10, 10.0, 1),
        (T0 + 11, 11.0, 1),
        (T0 + 12, 12.0, 1),
    ]


def test_rollups_merge_across_flushes(storage_backend: Storage) -> None:
    # The same 120 values written in four flushes of 30 give the same buckets as one flush.
    for part in range(4):
        storage_backend.write(readings(V, [(T0 + i, float(i)) for i in range(30 * part, 30 * part + 30)]))
        storage_backend.flush()
    b = storage_backend.history(V, T0, T0 + 120, "1min")
    assert [(p.count, p.mean, p.min, p.max, p.last) for p in b] == [
        (60, 29.5, 0.0, 59.0, 59.0),
        (60, 89.5, 60.0, 119.0, 119.0),
    ]


def test_energy_deltas_per_15min_hour_and_day(storage_backend: Storage) -> None:
    # A register growing 1 Wh per minute for two hours, one value per minute, starting at 1000 Wh.
    storage_backend.write(readings(E, [(T0 + 60 * i, 1000.0 + i) for i in range(120)]))
    storage_backend.flush()
    q = storage_backend.history(E, T0, T0 + 7200, "15min")
    # The first value has no predecessor, so the first bucket holds 14 increments, the others 15.
    assert [p.delta for p in q] == [14.0] + [15.0] * 7
    assert [p.last for p in q] == [1000.0 + 15 * k + 14 for k in range(8)]
    h = storage_backend.history(E, T0, T0 + 7200, "1h")
    assert [(p.delta, p.count, p.min, p.max) for p in h] == [
        (59.0, 60, 1000.0, 1059.0),
        (60.0, 60, 1060.0, 1119.0),
    ]
    d = storage_backend.history(E, T0 - 86400, T0 + 86400, "1d")
    assert [(p.ts, p.delta, p.count, p.last) for p in d] == [(T0, 119.0, 120, 1119.0)]


def test_register_reset_never_gives_negative_delta(storage_backend: Storage) -> None:
    storage_backend.write(readings(E, [(T0, 100.0), (T0 + 10, 110.0), (T0 + 20, 5.0), (T0 + 30, 15.0)]))
    storage_backend.flush()
    (p,) = storage_backend.history(E, T0, T0 + 60, "1min")
    assert p.delta == 20.0  # +10, drop ignored, +10
    storage_backend.write(readings(E, [(T0 + 60, 12.0)]))  # drops again in the next flush
    storage_backend.flush()
    assert [x.delta for x in storage_backend.history(E, T0, T0 + 120, "1min")] == [20.0, 0.0]


def test_late_value_recomputes_touched_buckets(storage_backend: Storage) -> None:
    # Register 0, 1, 2 … per second; the value at T0+30 and the whole second minute arrive late.
    storage_backend.write(readings(E, [(T0 + i, float(i)) for i in range(60) if i != 30]))
    storage_backend.write(readings(E, [(T0 + 150, 150.0)]))
    storage_backend.flush()
    before = storage_backend.history(E, T0, T0 + 180, "1min")
    assert [(p.count, p.delta) for p in before] == [(59, 59.0), (1, 91.0)]
    storage_backend.write(readings(E, [(T0 + 30, 30.0)] + [(T0 + i, float(i)) for i in range(60, 120)]))
    storage_backend.flush()
    after = storage_backend.history(E, T0, T0 + 180, "1min")
    assert [(p.ts, p.count, p.mean, p.delta) for p in after] == [
        (T0, 60, 29.5, 59.0),
        (T0 + 60, 60, 89.5, 60.0),
        (T0 + 120, 1, 150.0, 31.0),  # from 119 to 150
    ]
    (day,) = storage_backend.history(E, T0, T0 + 86400, "1d")
    assert (day.count, day.delta, day.last, day.min, day.max) == (121, 150.0, 150.0, 0.0, 150.0)
    (q15,) = storage_backend.history(E, T0, T0 + 900, "15min")
    assert (q15.count, q15.delta) == (121, 150.0)


def test_reimport_is_idempotent(storage_backend: Storage) -> None:
    data = readings(E, [(T0 + 60 * i, 10.0 * i) for i in range(30)])
    storage_backend.write(data)
    storage_backend.flush()
    first = storage_backend.history(E, T0, T0 + 86400, "15min")
    storage_backend.write(data)
    storage_backend.flush()
    assert storage_backend.history(E, T0, T0 + 86400, "15min") == first
    assert len(storage_backend.history(E, T0, T0 + 86400)) == 30
    assert [p.delta for p in first] == [140.0, 150.0]  # 0→140 in 15 values, then 140→290


def test_repeated_timestamp_in_one_batch_keeps_the_last(storage_backend: Storage) -> None:
    storage_backend.write(readings(V, [(T0, 1.0), (T0, 2.0), (T0 + 1, 3.0)]))
    storage_backend.flush()
    assert [p.mean for p in storage_backend.history(V, T0, T0 + 2)] == [2.0, 3.0]
    (b,) = storage_backend.history(V, T0, T0 + 60, "1min")
    assert (b.count, b.mean) == (2, 2.5)


def test_invalid_values_are_kept_but_never_aggregated(storage_backend: Storage) -> None:
    storage_backend.write(readings(V, [(T0, 230.0), (T0 + 2, 232.0)]))
    storage_backend.write(readings(V, [(T0 + 1, 9999.0)], Quality.INVALID))
    storage_backend.write(readings(V, [(T0 + 3, 240.0)], Quality.ESTIMATED))
    storage_backend.write(readings(V, [(T0 + 4, float("nan"))]))
    storage_backend.flush()
    assert [p.mean for p in storage_backend.history(V, T0, T0 + 60)] == [230.0, 232.0, 240.0]
    (b,) = storage_backend.history(V, T0, T0 + 60, "1min")
    assert (b.count, b.mean, b.quality) == (3, 234.0, Quality.ESTIMATED)


def test_day_buckets_follow_local_days_on_dst_change(storage_spec) -> None:
    # Europe/Berlin 2026-03-29 has 23 hours: local midnight is 2026-03-28T23:00Z, the next one
    # 2026-03-29T22:00Z. A register rising 1 Wh per hour on the hour gives 23 Wh that day.
    storage = storage_spec.open(timezone="Europe/Berlin")
    start = int(datetime(2026, 3, 28, 22, tzinfo=UTC).timestamp())
    storage.write(readings(E, [(start + 3600 * i, float(i)) for i in range(28)]))
    storage.flush()
    days = storage.history(E, start - 86400, start + 3 * 86400, "1d")
    day_start = int(datetime(2026, 3, 28, 23, tzinfo=UTC).timestamp())
    assert [(p.ts, p.count, p.delta) for p in days] == [
        (day_start - 86400, 1, 0.0),
        (day_start, 23, 23.0),
        (day_start + 23 * 3600, 4, 4.0),
    ]


def test_registers_persist_with_the_flush(storage_spec) -> None:
    storage = storage_spec.open()
    storage.save_registers({E: 1234.5678901234567})
    assert storage.load_registers() == {E: 1234.5678901234567}
    other = storage_spec.open()
    assert other.load_registers() == {}  # not durable before the flush
    storage.flush()
    assert other.load_registers() == {E: 1234.5678901234567}  # float64 round trip
    storage.save_registers({E: 2000.0})
    storage.close()
    assert storage_spec.open().load_registers() == {E: 2000.0}  # close flushes


def test_persisted_registers_never_go_backwards(storage_spec) -> None:
    storage = storage_spec.open()
    storage.save_registers({E: 500.0})
    storage.flush()
    storage.save_registers({E: 499.0})  # below the persisted value: ignored
    storage.flush()
    assert storage.load_registers() == {E: 500.0}
    other = storage_spec.open()  # a second handle that has not seen 500 is stopped by the database
    other.save_registers({E: 10.0})
    other.flush()
    assert other.load_registers() == {E: 500.0}
    other.save_registers({E: 501.0})
    other.flush()
    assert storage_spec.open().load_registers() == {E: 501.0}


def test_retention_removes_old_raw_values_and_keeps_rollups(storage_spec) -> None:
    storage = storage_spec.open(raw_retention_days=1)
    storage.write(readings(V, [(T0 + 3600 * i, 230.0 + i) for i in range(48)]))
    storage.flush()
    now = T0 + 48 * 3600  # values older than T0 + 24 h go
    assert storage.apply_retention(now) == 24
    raw = storage.history(V, T0, now)
    assert (len(raw), raw[0].ts) == (24, T0 + 24 * 3600)
    assert len(storage.history(V, T0, now, "1h")) == 48
    assert storage.apply_retention(now) == 0


def test_series_lists_every_stored_series(storage_backend: Storage) -> None:
    storage_backend.write(readings(V, [(T0, 1.0)]) + readings(E, [(T0, 1.0)]))
    storage_backend.write([Reading(T0, "pv", "frequency", None, 50.0)])
    storage_backend.flush()
    assert storage_backend.series() == [E, V, SeriesKey("pv", "frequency", None)]
    assert storage_backend.history(SeriesKey("nope", "voltage", None), 0, 2e9) == []


def test_value_at_returns_last_value_at_or_before(storage_backend: Storage) -> None:
    storage_backend.write(readings(E, [(T0, 5.0), (T0 + 10, 6.0)]))
    storage_backend.flush()
    assert storage_backend.value_at(E, T0 + 9.999) == (T0, 5.0)
    assert storage_backend.value_at(E, T0 + 10) == (T0 + 10, 6.0)
    assert storage_backend.value_at(E, T0 - 1) is None


def test_unknown_resolution_is_a_clear_error(storage_backend: Storage) -> None:
    with pytest.raises(ValueError, match="unknown resolution '5min'; use one of raw, 1min"):
        storage_backend.history(V, 0, 1, "5min")


def test_bad_timestamps_are_dropped_not_fatal(storage_backend: Storage) -> None:
    storage_backend.write(readings(V, [(float("nan"), 1.0), (-5.0, 2.0), (T0, 3.0)]))
    storage_backend.flush()
    assert [p.mean for p in storage_backend.history(V, 0, 2e9)] == [3.0]


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        (600, "raw"),
        (3600, "raw"),
        (86400, "1min"),
        (7 * 86400, "15min"),
        (60 * 86400, "1h"),
        (365 * 86400, "1d"),
    ],
)
def test_auto_resolution_picks_finest_under_2000_points(span: int, expected: str) -> None:
    assert auto_resolution(0, span) == expected


def test_storage_error_is_an_exception() -> None:
    assert issubclass(StorageError, Exception)


def test_one_flush_of_many_series_and_values(storage_backend: Storage) -> None:
    # 250 series × 10 values: large enough for the bulk (COPY) path of PostgreSQL.
    batch = [
        Reading(T0 + s, f"c{c:03d}", "energy_active_import", Phase.TOTAL, 100.0 * c + 2.0 * s)
        for c in range(250)
        for s in range(10)
    ]
    storage_backend.write(batch)
    storage_backend.flush()
    assert len(storage_backend.series()) == 250
    key = SeriesKey("c123", "energy_active_import", Phase.TOTAL)
    (b,) = storage_backend.history(key, T0, T0 + 60, "1min")
    assert (b.count, b.min, b.max, b.delta) == (10, 12300.0, 12318.0, 18.0)
    storage_backend.write(batch)  # the same again: an upsert, rollups unchanged
    storage_backend.flush()
    assert storage_backend.history(key, T0, T0 + 60, "1min") == [b]


def test_buffer_counts_until_flush(storage_backend: Storage) -> None:
    storage_backend.write(readings(V, [(T0, 1.0), (T0 + 1, 2.0)]))
    assert storage_backend.buffered == 2  # type: ignore[attr-defined]
    assert storage_backend.history(V, 0, 2e9) == []  # not visible before the flush
    storage_backend.flush()
    assert storage_backend.buffered == 0  # type: ignore[attr-defined]
    assert len(storage_backend.history(V, 0, 2e9)) == 2
