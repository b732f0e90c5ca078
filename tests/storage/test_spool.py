"""The on-disk outage spool, idempotent writes and one-transaction flushes on both backends."""

from __future__ import annotations

import logging
import math
import random

import pytest

from meterhub.config.schema import StorageConfig
from meterhub.model.readings import Quality, Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.storage import StorageError, StorageState, open_storage
from meterhub.storage.spool import Spool, decode, encode

T0 = 1_798_761_600.0  # 2027-01-01T00:00:00Z
E = SeriesKey("main", "energy_active_import", Phase.TOTAL)


def _batch(start: int, n: int) -> list[Reading]:
    return [
        Reading(T0 + i, "main", "energy_active_import", Phase.TOTAL, float(i))
        for i in range(start, start + n)
    ]


def test_a_chunk_round_trips_every_field() -> None:
    batch = [
        Reading(T0 + 0.125, "main", "voltage", Phase.L2, 230.5, Quality.FLAGGED),
        Reading(T0 + 1, "pump", "frequency", None, math.nan, Quality.INVALID),
        Reading(T0 + 2, "main", "voltage", Phase.L2, -1e300),
    ]
    readings, registers, _ = decode(encode(batch, {E: 12345.678}))
    assert readings[:1] + readings[2:] == batch[:1] + batch[2:]
    assert (readings[1].circuit, readings[1].phase, readings[1].quality) == ("pump", None, Quality.INVALID)
    assert math.isnan(readings[1].value)
    assert registers == {E: 12345.678}


def test_spooled_flushes_survive_reopening_in_order(tmp_path) -> None:
    spool = Spool(tmp_path / "s.db")
    spool.append(_batch(0, 10), {E: 9.0})
    spool.append(_batch(10, 5), {E: 14.0})
    spool.close()
    again = Spool(tmp_path / "s.db")
    assert (again.chunks, again.rows, again.oldest_ts) == (2, 15, T0)
    first = again.first()
    assert first is not None and first.readings == _batch(0, 10) and first.registers == {E: 9.0}
    again.remove(first.id)
    second = again.first()
    assert second is not None and second.readings == _batch(10, 5)
    assert (again.rows, again.oldest_ts) == (5, T0 + 10)
    assert again.registers() == {E: 14.0}  # the newest register value is kept


def test_a_full_spool_drops_the_oldest_flushes_and_says_so(tmp_path, caplog) -> None:
    one = len(encode(_batch(0, 1000), {}))
    spool = Spool(tmp_path / "s.db", max_bytes=int(2.5 * one))
    with caplog.at_level(logging.ERROR, logger="meterhub.storage.spool"):
        for k in range(4):
            spool.append(_batch(1000 * k, 1000), {})
    # Room for two flushes: the two oldest went, the two newest are kept.
    assert (spool.chunks, spool.rows, spool.dropped_rows) == (2, 2000, 2000)
    assert spool.oldest_ts == T0 + 2000
    assert spool.bytes <= spool.max_bytes
    assert "storage spool full" in caplog.text and "dropped the 1000 oldest spooled readings" in caplog.text


def test_registers_in_the_spool_never_go_down(tmp_path) -> None:
    spool = Spool(tmp_path / "s.db")
    spool.remember_registers({E: 100.0})
    spool.remember_registers({E: 90.0})
    assert spool.registers() == {E: 100.0}


def test_writing_the_same_readings_twice_stores_them_once(storage_spec) -> None:
    storage = storage_spec.open()
    storage.write(_batch(0, 180))
    storage.flush()
    before = storage.history(E, T0, T0 + 180, "1min")
    storage.write(_batch(60, 60))  # a repeated delivery of the second minute
    storage.flush()
    assert len(storage.history(E, T0, T0 + 180)) == 180
    assert storage.history(E, T0, T0 + 180, "1min") == before
    assert [p.delta for p in before] == [59.0, 60.0, 60.0]


def test_sqlite_readings_and_registers_of_a_failed_flush_are_stored_together(tmp_path, monkeypatch) -> None:
    # PostgreSQL spools a failed flush instead: tests/storage/test_outage.py.
    storage = open_storage(StorageConfig(), tmp_path)
    cls = type(storage)
    real = cls._flush_registers  # type: ignore[attr-defined]

    def fail(self: object, registers: dict[SeriesKey, float]) -> None:
        raise StorageError("disk I/O error (test)")

    monkeypatch.setattr(cls, "_flush_registers", fail)
    storage.write(_batch(0, 30))
    storage.save_registers({E: 29.0})
    with pytest.raises(StorageError, match="disk I/O error"):
        storage.flush()
    h = storage.health()
    assert (h.state, h.buffered, h.last_error) == (StorageState.DOWN, 30, "disk I/O error (test)")
    assert storage._execute("SELECT count(*) FROM raw") == [(0,)]  # type: ignore[attr-defined]
    assert storage._execute("SELECT count(*) FROM registers") == [(0,)]  # type: ignore[attr-defined]
    monkeypatch.setattr(cls, "_flush_registers", real)
    storage.flush()
    assert storage._execute("SELECT count(*) FROM raw") == [(30,)]  # type: ignore[attr-defined]
    assert storage._execute("SELECT value FROM registers") == [(29.0,)]  # type: ignore[attr-defined]
    assert storage.health().state is StorageState.CONNECTED
    storage.close()


def test_health_of_a_working_storage(storage_spec) -> None:
    storage = storage_spec.open()
    storage.write(_batch(0, 3))
    h = storage.health()
    assert (h.state, h.backend, h.buffered, h.spooled_rows, h.dropped_rows, h.last_error) == (
        StorageState.CONNECTED,
        storage_spec.name,
        3,
        0,
        0,
        None,
    )


class _Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_default_bound_holds_24_hours_at_the_measured_rate(tmp_path, monkeypatch, caplog) -> None:
    from collections import namedtuple

    from meterhub.storage import spool as spool_module

    usage = namedtuple("usage", "total used free")
    free = {"bytes": 100 * 1024**3}
    monkeypatch.setattr(spool_module.shutil, "disk_usage", lambda _p: usage(0, 0, free["bytes"]))
    clock = _Clock()
    spool = Spool(tmp_path / "s.db", clock=clock)
    rng = random.Random(7)
    for k in range(120):  # a site of 1000 noisy readings/s, flushed every second for 2 min
        spool.append(
            [Reading(T0 + k, f"c{i}", "voltage", Phase.L1, 230 + rng.random()) for i in range(1000)], {}
        )
        clock.now += 1.0
    rate = spool.bytes / (clock.now - 1.0 - 1_800_000_000.0)  # [B/s] between first and last flush
    assert 5_000 < rate < 14_000  # 5–14 B a reading
    assert spool.limit() == pytest.approx(1.25 * 86_400 * rate, rel=0.02)
    assert spool.limit() / rate >= 86_400  # ≥ 24 h at this rate
    assert spool.limit() >= spool_module.MIN_BYTES
    free["bytes"] = 2 * 1024**3  # a small disk: half its free space, and a warning
    with caplog.at_level(logging.WARNING, logger="meterhub.storage.spool"):
        assert spool.limit() == pytest.approx(max(spool.bytes + 1024**3, spool_module.MIN_BYTES))
    assert "an outage longer than" in caplog.text


@pytest.mark.postgres
def test_storage_spool_max_mb_in_the_site_file_bounds_the_outage_spool(postgres_spec, tmp_path) -> None:
    config = StorageConfig(backend="postgres", dsn=postgres_spec.dsn, spool_max_mb=2)
    storage = open_storage(config, tmp_path, timezone="UTC")
    try:
        assert storage._spool is not None and storage._spool.max_bytes == 2 * 1024 * 1024  # type: ignore[attr-defined]
    finally:
        storage.close()
