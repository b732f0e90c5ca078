"""PostgreSQL outages: away at start, lost during the run, SIGTERM while away — nothing lost, nothing twice.

Each test gets its own database on this machine's server and makes it unavailable with
``ALTER DATABASE … ALLOW_CONNECTIONS false`` plus ``pg_terminate_backend`` on that database's
connections, and available again with ``ALLOW_CONNECTIONS true``; the server itself is never touched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from meterhub import errors
from meterhub.config.schema import StorageConfig
from meterhub.model.readings import Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.storage import Storage, StorageState, StorageUnavailableError, open_storage
from meterhub.storage.spool import SPOOL_FILE, Spool

from .conftest import PG_DSN, _pg_admin

pytestmark = pytest.mark.postgres

T0 = 1_798_761_600.0  # 2027-01-01T00:00:00Z
E = SeriesKey("main", "energy_active_import", Phase.TOTAL)


@dataclass
class OwnDatabase:
    """A database of this test only, that the test can make unavailable and available again."""

    admin: Any
    name: str
    dsn: str

    def away(self) -> None:
        self.admin.execute(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS false")
        self.admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (self.name,),
        )

    def back(self) -> None:
        self.admin.execute(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS true")

    def count(self, sql: str = "SELECT count(*) FROM raw") -> int:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return int(conn.execute(sql).fetchone()[0])  # type: ignore[index]


@pytest.fixture
def own_db() -> Iterator[OwnDatabase]:
    from psycopg.conninfo import make_conninfo

    admin = _pg_admin()
    name = f"mh_outage_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE DATABASE {name}")
    db = OwnDatabase(admin, name, make_conninfo(PG_DSN, dbname=name))
    try:
        yield db
    finally:
        db.back()
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


def _open(db: OwnDatabase, data_dir: Path) -> Storage:
    return open_storage(StorageConfig(backend="postgres", dsn=db.dsn), data_dir)


def _wait(cond: Callable[[], bool], timeout: float = 15.0) -> float:
    """Seconds until ``cond()`` holds (fails the test after ``timeout``)."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


def _energy(start: int, n: int) -> list[Reading]:
    """n energy readings 1 s apart from T0 + start, value = 10 Wh per second since T0."""
    return [Reading(T0 + i, E.circuit, E.quantity, E.phase, 10.0 * i) for i in range(start, start + n)]


def _delivered(storage: Storage) -> Callable[[], bool]:
    def cond() -> bool:
        h = storage.health()
        return h.state is StorageState.CONNECTED and h.spooled_rows == 0

    return cond


def test_database_away_at_start_spools_and_delivers_when_it_returns(own_db, tmp_path) -> None:
    own_db.away()
    storage = _open(own_db, tmp_path)  # does not raise
    assert storage.health().state is StorageState.SPOOLING
    assert storage.load_registers() == {}
    for k in range(3):
        storage.write(_energy(100 * k, 100))
        storage.save_registers({E: 10.0 * (100 * k + 99)})
        storage.flush()  # returns normally: spooled
    h = storage.health()
    assert (h.state, h.spooled_rows, h.oldest_spooled) == (StorageState.SPOOLING, 300, T0)
    assert "not currently accepting connections" in (h.last_error or "")
    assert (tmp_path / SPOOL_FILE).exists()
    with pytest.raises(StorageUnavailableError, match="unreachable") as err:
        storage.history(E, T0, T0 + 300)
    assert isinstance(err.value, errors.StorageError) and err.value.http_status == 503
    own_db.back()
    took = _wait(_delivered(storage))
    assert took < 5.0
    assert own_db.count() == 300
    assert own_db.count("SELECT count(DISTINCT (series, ts)) FROM raw") == 300
    assert own_db.count("SELECT value FROM registers") == 2990
    # 299 one-second steps of 10 Wh: the rollups carry all of it.
    assert sum(p.delta or 0.0 for p in storage.history(E, T0, T0 + 300, "1min")) == pytest.approx(2990.0)
    storage.close()


def test_outage_during_the_run_loses_nothing_and_reconnects_within_seconds(own_db, tmp_path) -> None:
    storage = _open(own_db, tmp_path)
    storage.write(_energy(0, 50))
    storage.flush()
    assert storage.health().state is StorageState.CONNECTED
    own_db.away()
    for k in range(1, 6):  # five flushes while the database is away
        storage.write(_energy(50 * k, 50))
        storage.flush()
    h = storage.health()
    assert (h.state, h.spooled_rows, h.oldest_spooled) == (StorageState.SPOOLING, 250, T0 + 50)
    own_db.back()
    assert _wait(_delivered(storage)) < 5.0
    storage.write(_energy(300, 50))  # after delivery, flushes go to the database again
    storage.flush()
    assert own_db.count() == 350
    points = storage.history(E, T0, T0 + 400)
    assert [p.ts for p in points] == [T0 + i for i in range(350)]
    assert storage.health().dropped_rows == 0
    storage.close()


def test_spool_survives_a_restart_and_is_delivered_at_the_next_start(own_db, tmp_path) -> None:
    own_db.away()
    storage = _open(own_db, tmp_path)
    storage.write(_energy(0, 40))
    storage.save_registers({E: 390.0})
    storage.close()  # away: the spool keeps the readings
    assert Spool(tmp_path / SPOOL_FILE).rows == 40
    again = _open(own_db, tmp_path)
    assert again.load_registers() == {E: 390.0}  # restored from the data folder while away
    own_db.back()
    _wait(_delivered(again))
    assert own_db.count() == 40
    again.close()


def test_a_flush_delivered_twice_is_stored_once(own_db, tmp_path) -> None:
    # kill -9 between the database commit and the removal from the spool delivers a chunk again.
    storage = _open(own_db, tmp_path)
    storage.write(_energy(0, 120))
    storage.flush()
    before = storage.history(E, T0, T0 + 120, "1min")
    storage.close()
    spool = Spool(tmp_path / SPOOL_FILE)
    spool.append(_energy(60, 60), {E: 1190.0})  # the second minute once more
    spool.close()
    again = _open(own_db, tmp_path)
    _wait(_delivered(again))
    assert own_db.count() == 120
    assert again.history(E, T0, T0 + 120, "1min") == before  # counts and deltas unchanged
    again.close()


def test_registers_and_readings_of_a_failed_flush_are_stored_together(own_db, tmp_path, monkeypatch) -> None:
    storage = _open(own_db, tmp_path)
    cls = type(storage)
    real = cls._flush_registers  # type: ignore[attr-defined]

    def fail_after_the_readings(self: Any, registers: dict[SeriesKey, float]) -> None:
        raise StorageUnavailableError("connection lost mid-flush (test)")

    monkeypatch.setattr(cls, "_flush_registers", fail_after_the_readings)
    storage.write(_energy(0, 30))
    storage.save_registers({E: 290.0})
    storage.flush()  # the readings were written, then the transaction failed: spooled
    time.sleep(0.5)
    assert own_db.count() == 0  # readings rolled back with the registers
    assert own_db.count("SELECT count(*) FROM registers") == 0
    assert storage.health().spooled_rows == 30
    monkeypatch.setattr(cls, "_flush_registers", real)
    _wait(_delivered(storage))
    assert own_db.count() == 30
    assert own_db.count("SELECT value FROM registers") == 290
    storage.close()


@pytest.mark.slow
def test_sigterm_during_an_outage_exits_0_and_the_spool_is_delivered_once(own_db, tmp_path) -> None:
    report = tmp_path / "report.json"
    writer = Path(__file__).with_name("outage_writer.py")
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, str(writer), own_db.dsn, str(tmp_path), str(report)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("flushed ")
        own_db.away()
        time.sleep(1.5)  # several flushes into the spool
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    result = json.loads(report.read_text())
    assert result["health"] == "spooling"
    spooled = Spool(tmp_path / SPOOL_FILE).rows
    assert spooled > 0
    own_db.back()
    storage = _open(own_db, tmp_path)
    _wait(_delivered(storage))
    assert own_db.count() == result["written"]  # every reading, once
    assert own_db.count("SELECT count(DISTINCT (series, ts)) FROM raw") == result["written"]
    storage.close()


@pytest.mark.slow
def test_kill_9_during_an_outage_loses_at_most_the_readings_since_the_last_flush(own_db, tmp_path) -> None:
    writer = Path(__file__).with_name("outage_writer.py")
    proc = subprocess.Popen(
        [sys.executable, str(writer), own_db.dsn, str(tmp_path), str(tmp_path / "unused.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("flushed ")
        own_db.away()
        flushed = 0
        for _ in range(6):  # six flushes into the spool
            flushed = int(proc.stdout.readline().split()[1])
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    own_db.back()
    storage = _open(own_db, tmp_path)
    _wait(_delivered(storage))
    delivered = own_db.count()
    # Everything reported flushed survived; at most one flush interval (0.2 s: ≤ 60 readings) more.
    assert flushed <= delivered <= flushed + 60
    assert own_db.count("SELECT count(DISTINCT (series, ts)) FROM raw") == delivered
    storage.close()


def test_without_a_spool_a_flush_raises_while_away_and_the_next_one_reconnects(own_db, tmp_path) -> None:
    # ``meterhub import`` opens the storage this way: it reports what reached the database.
    storage = open_storage(StorageConfig(backend="postgres", dsn=own_db.dsn), tmp_path, spool=False)
    storage.write(_energy(0, 10))
    storage.flush()
    own_db.away()
    storage.write(_energy(10, 10))
    with pytest.raises(StorageUnavailableError):
        storage.flush()
    assert storage.health().buffered == 10  # kept for the next attempt, not spooled
    assert not (tmp_path / SPOOL_FILE).exists()
    own_db.back()
    storage.flush()
    assert own_db.count() == 20
    storage.close()


def test_an_import_while_the_database_is_away_stops_with_what_was_committed(own_db, tmp_path) -> None:
    from meterhub.storage.importer import import_csv

    f = tmp_path / "in.csv"
    f.write_text(
        "timestamp,circuit,quantity,phase,value\n"
        + "".join(f"2027-01-01T00:00:{s:02d}Z,main,voltage,L1,230\n" for s in range(30)),
        encoding="utf-8",
    )
    storage = open_storage(StorageConfig(backend="postgres", dsn=own_db.dsn), tmp_path, spool=False)
    real = storage.flush
    calls = {"n": 0}

    def flush_then_lose_the_database() -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            own_db.away()
        real()

    storage.flush = flush_then_lose_the_database  # type: ignore[method-assign]
    res = import_csv(f, storage, chunk=10)
    assert (res.imported, res.exit_code, res.stopped is not None and res.stopped.line) == (10, 1, 12)
    assert "terminating connection due to administrator command" in str(res.stopped)
    own_db.back()
    storage.close()
    assert own_db.count() == 10  # the count printed is the count stored


def test_computed_registers_are_spooled_with_their_readings_and_restored_while_away(own_db, tmp_path) -> None:
    # a waveform circuit's own energy register: computed by the gateway, stored beside the guarded one
    own_db.away()
    storage = _open(own_db, tmp_path)
    storage.write(_energy(0, 20))
    storage.save_registers({E: 190.0})
    storage.save_computed_registers({E: 196.0})
    storage.flush()  # spooled, computed register with it
    storage.close()
    again = _open(own_db, tmp_path)
    assert again.load_computed_registers() == {E: 196.0}  # from the data folder while away
    assert again.load_registers() == {E: 190.0}  # the guarded register is another table
    own_db.back()
    _wait(_delivered(again))
    assert own_db.count("SELECT value FROM computed_registers") == 196.0
    again.save_computed_registers({E: 150.0})  # lower: never stored
    again.flush()
    assert again.load_computed_registers() == {E: 196.0}
    again.close()
