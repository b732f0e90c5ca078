"""Retention overrides, configuration errors, time-zone changes, partitions and restarts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from meterhub.config.loader import ConfigError, parse_config
from meterhub.model.readings import Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.storage import Storage

T0 = 1_798_761_600  # 2027-01-01T00:00:00Z
V = SeriesKey("main", "voltage", Phase.L1)
E = SeriesKey("main", "energy_active_import", Phase.TOTAL)


def readings(key: SeriesKey, pairs: list[tuple[float, float]]) -> list[Reading]:
    return [Reading(t, key.circuit, key.quantity, key.phase, v) for t, v in pairs]


def test_retention_override_per_quantity_keeps_energy_longer(storage_spec) -> None:
    storage = storage_spec.open(raw_retention_days=1, raw_retention_by_quantity={"energy_active_import": 10})
    hours = [(T0 + 3600 * i, float(i)) for i in range(72)]
    storage.write(readings(V, hours) + readings(E, hours))
    storage.flush()
    removed = storage.apply_retention(T0 + 72 * 3600)
    assert removed == 48  # voltage keeps its last 24 h, energy keeps all 72 values
    assert len(storage.history(V, 0, 2e9)) == 24
    assert len(storage.history(E, 0, 2e9)) == 72


def test_retention_drops_whole_old_months(storage_spec) -> None:
    # Two months of hourly values, 30-day retention at 2027-03-15: January goes entirely.
    storage = storage_spec.open(raw_retention_days=30)
    jan = int(datetime(2027, 1, 1, tzinfo=UTC).timestamp())
    storage.write(readings(V, [(jan + 3600 * i, 1.0) for i in range(59 * 24)]))  # Jan + Feb
    storage.flush()
    now = int(datetime(2027, 3, 15, tzinfo=UTC).timestamp())
    cutoff = now - 30 * 86400
    removed = storage.apply_retention(now)
    assert removed == (cutoff - jan) // 3600
    assert storage.history(V, 0, 2e9)[0].ts == cutoff
    assert len(storage.history(V, 0, 2e9, "1d")) == 59  # rollups stay


def test_unknown_quantity_in_retention_override_is_a_config_error() -> None:
    text = "site: {name: s}\nstorage:\n  raw_retention_by_quantity:\n    energy_imprt: 3\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text, "site.yaml")
    assert "site.yaml:" in str(err.value)
    assert (
        "site.yaml:3: storage.raw_retention_by_quantity: unknown quantity 'energy_imprt' (did you mean energy_"
        in str(err.value)
    )


def test_postgres_backend_without_dsn_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"site.yaml:2: storage: .*backend 'postgres' needs 'dsn'"):
        parse_config("site: {name: s}\nstorage:\n  backend: postgres\n", "site.yaml")


def test_changing_the_time_zone_rebuilds_day_buckets(storage_spec) -> None:
    storage = storage_spec.open(timezone="UTC")
    storage.write(readings(E, [(T0 + 3600 * i, float(i)) for i in range(48)]))
    storage.close()
    berlin = storage_spec.open(timezone="Europe/Berlin")  # CET = UTC+1: local midnight at 23:00Z
    days = berlin.history(E, 0, 2e9, "1d")
    assert [(p.ts, p.count, p.delta) for p in days] == [
        (T0 - 3600, 23, 22.0),  # 00:00Z…22:00Z: values 0…22
        (T0 + 23 * 3600, 24, 24.0),  # 23:00Z…46:00Z
        (T0 + 47 * 3600, 1, 1.0),
    ]


def test_restart_continues_rollups_and_deltas(storage_spec) -> None:
    first = storage_spec.open()
    first.write(readings(E, [(T0 + i, float(i)) for i in range(30)]))
    first.close()
    second = storage_spec.open()
    second.write(readings(E, [(T0 + i, float(i)) for i in range(30, 60)]))
    second.flush()
    (b,) = second.history(E, T0, T0 + 60, "1min")
    assert (b.count, b.delta, b.last) == (60, 59.0, 59.0)  # the step 29→30 spans the restart


def test_history_from_another_thread_during_writes(storage_backend: Storage) -> None:
    storage_backend.write(readings(V, [(T0 + i, 1.0) for i in range(100)]))
    storage_backend.flush()
    seen: list[int] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(20):
                seen.append(len(storage_backend.history(V, T0, T0 + 1000)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    for k in range(1, 11):
        storage_backend.write(readings(V, [(T0 + 100 * k + i, 1.0) for i in range(100)]))
        storage_backend.flush()
    t.join()
    assert errors == []
    assert all(n % 100 == 0 for n in seen)  # readers only ever see whole flushes
    assert len(storage_backend.history(V, T0, T0 + 2000)) == 1100


@pytest.mark.postgres
def test_postgres_creates_monthly_partitions(postgres_spec) -> None:
    storage = postgres_spec.open()
    dec = int(datetime(2026, 12, 31, 23, tzinfo=UTC).timestamp())
    storage.write(readings(V, [(dec, 1.0), (dec + 7200, 2.0)]))  # 2026-12-31 and 2027-01-01
    storage.flush()
    names = sorted(
        r[0]
        for r in storage._execute(  # type: ignore[attr-defined]
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'raw'::regclass"
        )
    )
    assert names == ["raw_202612", "raw_202701"]
    assert storage.layout == "partitioned"  # type: ignore[attr-defined]


def test_opening_without_a_time_zone_keeps_the_databases(storage_spec) -> None:
    berlin = storage_spec.open(timezone="Europe/Berlin")
    berlin.write(readings(E, [(T0 + 3600 * i, float(i)) for i in range(3)]))
    berlin.close()
    again = storage_spec.open(timezone=None)
    assert [p.ts for p in again.history(E, 0, 2e9, "1d")] == [T0 - 3600]  # still local (CET) days


def _all_rollups(storage: Storage, key: SeriesKey) -> dict[str, list[tuple]]:
    return {
        res: [
            (p.ts, p.count, p.min, p.max, p.last, round(p.mean, 9), round(p.delta or 0.0, 9))
            for p in storage.history(key, 0, 2e9, res)
        ]
        for res in ("1min", "15min", "1h", "1d")
    }


def test_shuffled_late_batches_give_the_same_rollups_as_one_ordered_batch(storage_spec, tmp_path) -> None:
    # Asia/Kolkata (UTC+5:30): local days start at 18:30Z, inside a UTC hour bucket.
    import numpy as np

    rng = np.random.default_rng(7)
    start = T0 + 17 * 3600  # 17:00Z, so the data crosses the local midnight at 18:30Z
    ts = np.sort(rng.choice(np.arange(0, 3 * 3600), size=600, replace=False)) + start
    vals = np.cumsum(rng.uniform(0, 5, size=600))
    data = readings(E, list(zip(ts.tolist(), vals.tolist(), strict=True)))
    ordered = storage_spec.open(timezone="Asia/Kolkata")
    ordered.write(data)
    ordered.flush()
    expected = _all_rollups(ordered, E)
    ordered.close()

    from meterhub.storage import open_storage

    cfg = storage_spec.config()
    if storage_spec.name == "sqlite":
        shuffled = open_storage(cfg, tmp_path / "other", timezone="Asia/Kolkata")
    else:  # a second schema-less key space: reuse the spec's schema under another circuit name
        shuffled = storage_spec.open(timezone="Asia/Kolkata")
    key = E if storage_spec.name == "sqlite" else SeriesKey("other", E.quantity, E.phase)
    items = [Reading(r.ts, key.circuit, r.quantity, r.phase, r.value) for r in data]
    order = rng.permutation(len(items))
    for chunk in np.array_split(order, 12):
        shuffled.write([items[i] for i in chunk])
        shuffled.flush()
    got = _all_rollups(shuffled, key)
    shuffled.close()
    assert got == expected
    assert sum(p[6] for p in expected["1d"]) == pytest.approx(vals[-1] - vals[0])
    assert len(expected["1d"]) == 2  # split at the local midnight 18:30Z


@pytest.mark.postgres
def test_postgres_connection_loss_spools_the_batch_and_delivers_it_after_reconnecting(postgres_spec) -> None:
    import time

    import psycopg

    from meterhub.storage import StorageState

    storage = postgres_spec.open()
    storage.write(readings(V, [(T0, 1.0)]))
    storage.flush()
    pid = storage._db.info.backend_pid  # type: ignore[attr-defined]
    with psycopg.connect(postgres_spec.dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    storage.write(readings(V, [(T0 + 1, 2.0)]))
    storage.flush()  # the connection is gone: spooled, not raised
    deadline = time.monotonic() + 10
    while storage.health().spooled_rows and time.monotonic() < deadline:
        time.sleep(0.05)
    assert storage.health().state is StorageState.CONNECTED
    assert [p.mean for p in storage.history(V, T0, T0 + 10)] == [1.0, 2.0]


def test_minute_rollup_retention_keeps_coarser_rollups(storage_spec) -> None:
    storage = storage_spec.open(raw_retention_days=1, minute_rollup_retention_days=2)
    storage.write(readings(E, [(T0 + 3600 * i, float(i)) for i in range(96)]))  # 4 days hourly
    storage.flush()
    now = T0 + 96 * 3600
    assert storage.apply_retention(now) == 72  # raw: the last 24 h stay
    minutes = storage.history(E, 0, 2e9, "1min")
    assert (len(minutes), minutes[0].ts) == (48, T0 + 48 * 3600)  # the last 2 days
    assert [p.delta for p in storage.history(E, 0, 2e9, "1d")] == [23.0, 24.0, 24.0, 24.0]
    # A late value older than the raw retention is stored but changes no rollup (its neighbours'
    # raw values are gone, so the buckets could not be rebuilt correctly).
    storage.write(readings(E, [(T0 + 1800, 0.5)]))
    storage.flush()
    assert [p.delta for p in storage.history(E, 0, 2e9, "1d")] == [23.0, 24.0, 24.0, 24.0]
    assert len(storage.history(E, 0, 2e9, "1min")) == 48  # nothing rebuilt from incomplete raw data
    # After a restart the register chain continues from the 15-minute rollups.
    storage.close()
    again = storage_spec.open()
    again.write(readings(E, [(now, 96.0)]))
    again.flush()
    assert again.history(E, now, now + 60, "1min")[0].delta == 1.0


def test_sqlite_full_disk_keeps_the_batch_for_the_next_flush(tmp_path) -> None:
    from meterhub.config.schema import StorageConfig
    from meterhub.storage import open_storage
    from meterhub.storage.base import StorageError

    storage = open_storage(StorageConfig(), tmp_path)
    pages = storage._execute("PRAGMA page_count")[0][0]  # type: ignore[attr-defined]
    storage._execute(f"PRAGMA max_page_count = {pages + 2}")  # type: ignore[attr-defined]
    batch = [Reading(T0 + i, f"c{i % 50}", "voltage", Phase.L1, 230.0) for i in range(5000)]
    storage.write(batch)
    with pytest.raises(StorageError, match="full"):
        storage.flush()
    assert storage.buffered == 5000  # type: ignore[attr-defined]
    storage._execute("PRAGMA max_page_count = 1073741823")  # type: ignore[attr-defined]
    storage.flush()
    assert (
        sum(len(storage.history(SeriesKey(f"c{c}", "voltage", Phase.L1), 0, 2e9)) for c in range(50)) == 5000
    )
    storage.close()
