"""PostgreSQL outage benchmark: readings lost and delivered-once counts; prints one JSON object.

Each scenario runs on its own throw-away database of the PostgreSQL server given by ``--dsn``
(default: this machine's, 127.0.0.1:5432, user postgres). The database is made unavailable with
``ALTER DATABASE … ALLOW_CONNECTIONS false`` plus ``pg_terminate_backend`` on its connections and
available again with ``ALLOW_CONNECTIONS true``; the server is never restarted or reconfigured.

A writer produces ``--series`` readings every 20 ms (timestamps 1 s apart per series, so every
reading has its own (series, time)) and flushes every ``--flush`` seconds like the gateway's flusher.

Scenarios:

``away_at_start``   the database is away when the storage opens and for ``--outage`` s of writing.
``outage_during_run``  connected, then away for ``--outage`` s (default 40, as in issue 10), then back.
``sigterm_during_outage``  a writer *process* gets SIGTERM while the database is away: its exit
                    code, whether stderr holds a traceback, the readings left in the spool; then a new
                    storage on the same data folder delivers them when the database is back.
``kill9_during_outage``  the same with SIGKILL: readings reported flushed before the kill vs delivered.
``demo_gateway`` (``--demo``)  the real gateway: ``meterhub demo`` with ``examples/demo-site.yaml`` on
                    PostgreSQL (simulators on ports 25020/25021/25030, web on 28080, flush every 2 s):
                    database away at start for 12 s, back for 6 s, away again, SIGTERM after 8 s; then
                    every (series, time) left in the spool is looked up in the database after delivery.

Per scenario: ``written`` (readings produced), ``delivered`` (rows in the database afterwards),
``distinct`` (distinct (series, time) among them), ``lost`` = written − delivered, ``duplicates`` =
delivered − distinct, ``reconnect_s`` (database back → storage connected) and ``delivered_s``
(database back → spool empty).

Usage: ``.venv/bin/python bench/storage_outage.py [--outage 40] [--flush 1] [--series 10] [--demo]``
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from meterhub.config.schema import StorageConfig
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase
from meterhub.storage import Storage, StorageState, open_storage
from meterhub.storage.spool import SPOOL_FILE, Spool

T0 = 1_798_761_600.0  # 2027-01-01T00:00:00Z
STEP = 0.02  # [s] between two rounds of readings


class Database:
    """A throw-away database that can be made unavailable and available again."""

    def __init__(self, dsn: str) -> None:
        self.admin = psycopg.connect(dsn, autocommit=True)
        self.name = f"mh_bench_{uuid.uuid4().hex[:10]}"
        self.admin.execute(f"CREATE DATABASE {self.name}")
        self.dsn = make_conninfo(dsn, dbname=self.name)

    def away(self) -> None:
        self.admin.execute(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS false")
        self.admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (self.name,),
        )

    def back(self) -> None:
        self.admin.execute(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS true")

    def counts(self) -> tuple[int, int]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute("SELECT count(*), count(DISTINCT (series, ts)) FROM raw").fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def drop(self) -> None:
        self.back()
        self.admin.execute(f"DROP DATABASE {self.name} WITH (FORCE)")
        self.admin.close()


def _open(db: Database, data: Path) -> Storage:
    return open_storage(StorageConfig(backend="postgres", dsn=db.dsn), data)


def _until(cond: Callable[[], bool], timeout: float = 120.0) -> float:
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise TimeoutError("condition not met")
        time.sleep(0.01)
    return time.monotonic() - start


class Writer(threading.Thread):
    """Writes ``series`` readings per round into a storage and flushes every ``flush`` seconds."""

    def __init__(self, storage: Storage, series: int, flush: float) -> None:
        super().__init__(daemon=True)
        self.storage, self.series, self.flush = storage, series, flush
        self.written = 0
        self.halt = threading.Event()

    def run(self) -> None:
        i, last = 0, time.monotonic()
        while not self.halt.is_set():
            self.storage.write(
                [Reading(T0 + i, f"c{c}", "voltage", Phase.L1, 230.0) for c in range(self.series)]
            )
            self.written += self.series
            i += 1
            if time.monotonic() - last >= self.flush:
                self.storage.flush()
                last = time.monotonic()
            time.sleep(STEP)
        self.storage.flush()


def _result(db: Database, written: int, **extra: Any) -> dict[str, Any]:
    delivered, distinct = db.counts()
    return {
        "written": written,
        "delivered": delivered,
        "distinct": distinct,
        "lost": written - delivered,
        "duplicates": delivered - distinct,
        **extra,
    }


def _connected(storage: Storage) -> Callable[[], bool]:
    return lambda: storage.health().state is StorageState.CONNECTED


def _drained(storage: Storage) -> Callable[[], bool]:
    return lambda: storage.health().state is StorageState.CONNECTED and storage.health().spooled_rows == 0


def away_at_start(dsn: str, outage: float, series: int, flush: float) -> dict[str, Any]:
    db = Database(dsn)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db.away()
            storage = _open(db, Path(tmp))
            state_at_open = storage.health().state.value
            w = Writer(storage, series, flush)
            w.start()
            time.sleep(outage)
            spooled = storage.health().spooled_rows
            db.back()
            reconnect = _until(_connected(storage))
            drained = reconnect + _until(_drained(storage))
            time.sleep(2 * flush)  # a few flushes after delivery
            w.halt.set()
            w.join()
            storage.close()
            return _result(
                db,
                w.written,
                state_at_open=state_at_open,
                spooled_at_return=spooled,
                reconnect_s=round(reconnect, 2),
                delivered_s=round(drained, 2),
            )
    finally:
        db.drop()


def outage_during_run(dsn: str, outage: float, series: int, flush: float) -> dict[str, Any]:
    db = Database(dsn)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            storage = _open(db, Path(tmp))
            w = Writer(storage, series, flush)
            w.start()
            time.sleep(2 * flush)
            db.away()
            time.sleep(outage)
            spooled = storage.health().spooled_rows
            db.back()
            reconnect = _until(_connected(storage))
            drained = reconnect + _until(_drained(storage))
            time.sleep(2 * flush)
            w.halt.set()
            w.join()
            storage.close()
            return _result(
                db,
                w.written,
                outage_s=outage,
                spooled_at_return=spooled,
                reconnect_s=round(reconnect, 2),
                delivered_s=round(drained, 2),
            )
    finally:
        db.drop()


def _writer_process(db: Database, data: Path, report: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--writer", db.dsn, str(data), str(report)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def signal_during_outage(dsn: str, outage: float, sig: signal.Signals) -> dict[str, Any]:
    db = Database(dsn)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data, report = Path(tmp), Path(tmp) / "report.json"
            proc = _writer_process(db, data, report)
            assert proc.stdout is not None
            proc.stdout.readline()
            db.away()
            flushed = 0
            deadline = time.monotonic() + outage
            while time.monotonic() < deadline:
                flushed = int(proc.stdout.readline().split()[1])
            proc.send_signal(sig)
            _out, err = proc.communicate(timeout=60)
            written = json.loads(report.read_text())["written"] if report.exists() else None
            spool = Spool(data / SPOOL_FILE)
            on_disk = spool.rows
            spool.close()
            db.back()
            storage = _open(db, data)
            delivered_s = _until(_drained(storage))
            storage.close()
            extra: dict[str, Any] = {
                "exit_code": proc.returncode,
                "traceback": "Traceback" in err,
                "spooled_on_disk_after_exit": on_disk,
                "flushed_before_signal": flushed,
                "delivered_s": round(delivered_s, 2),
            }
            if written is None:  # SIGKILL: the process could not say how much it wrote
                delivered, distinct = db.counts()
                return {
                    "delivered": delivered,
                    "duplicates": delivered - distinct,
                    "lost_of_flushed": max(flushed - delivered, 0),
                    **extra,
                }
            return _result(db, written, **extra)
    finally:
        db.drop()


def demo_gateway(dsn: str) -> dict[str, Any]:
    import re

    from meterhub.storage.spool import decode

    db = Database(dsn)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            site = Path(__file__).resolve().parent.parent / "examples" / "demo-site.yaml"
            text = site.read_text(encoding="utf-8")
            for old, new in (
                ("15020", "25020"),
                ("15021", "25021"),
                ("15030", "25030"),
                ("port: 8080", "port: 28080"),
            ):
                text = text.replace(old, new)
            text = re.sub(r"  backend: sqlite[^\n]*\n", f'  backend: postgres\n  dsn: "{db.dsn}"\n', text)
            text = re.sub(r"flush_interval: 5\b", "flush_interval: 2", text)
            (root / "site.yaml").write_text(text, encoding="utf-8")
            data = root / "data"
            db.away()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "meterhub",
                    "demo",
                    "--config",
                    str(root / "site.yaml"),
                    "--data",
                    str(data),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            time.sleep(12)
            db.back()
            time.sleep(6)
            rows_while_connected = db.counts()[0]
            db.away()
            time.sleep(8)
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
            spool = Spool(data / SPOOL_FILE)
            spooled_rows = spool.rows
            keys: set[tuple[str, str, str, int]] = set()
            for (blob,) in spool._db.execute("SELECT payload FROM chunk ORDER BY id"):
                readings, _registers = decode(blob)
                keys |= {
                    (r.circuit, r.quantity, r.phase.value if r.phase else "", round(r.ts * 1000))
                    for r in readings
                }
            spool.close()
            db.back()
            storage = _open(db, data)
            delivered_s = _until(_drained(storage))
            storage.close()
            delivered, distinct = db.counts()
            with psycopg.connect(db.dsn, autocommit=True) as conn:
                stored = set(
                    conn.execute(
                        "SELECT s.circuit, s.quantity, s.phase, r.ts FROM raw r JOIN series s ON s.id = r.series"
                    ).fetchall()
                )
            return {
                "exit_code": proc.returncode,
                "traceback": "Traceback" in out,
                "rows_stored_after_first_outage": rows_while_connected,
                "spooled_rows_after_sigterm": spooled_rows,
                "spooled_distinct_series_time": len(keys),
                "spooled_missing_after_delivery": len(keys - stored),
                "delivered": delivered,
                "duplicates": delivered - distinct,
                "delivered_s": round(delivered_s, 2),
            }
    finally:
        db.drop()


def writer_main(dsn: str, data: str, report: str) -> int:
    """The writer process: like the gateway, SIGTERM → stop writing, close the storage, exit 0."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    storage = open_storage(StorageConfig(backend="postgres", dsn=dsn), Path(data))
    written, i, last = 0, 0, time.monotonic()
    while not stop.is_set():
        storage.write([Reading(T0 + i, f"c{c}", "voltage", Phase.L1, 230.0) for c in range(10)])
        written += 10
        i += 1
        if time.monotonic() - last >= 0.5:
            storage.flush()
            last = time.monotonic()
            print(f"flushed {written}", flush=True)
        time.sleep(STEP)
    storage.close()
    Path(report).write_text(json.dumps({"written": written}))
    return 0


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--writer":
        sys.exit(writer_main(*sys.argv[2:5]))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default="host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    ap.add_argument("--outage", type=float, default=40.0, help="outage during the run [s]")
    ap.add_argument("--flush", type=float, default=1.0, help="flush interval [s]")
    ap.add_argument("--series", type=int, default=10, help="readings per 20 ms round")
    ap.add_argument("--demo", action="store_true", help="also run the demo gateway scenario")
    args = ap.parse_args()
    out = {
        "away_at_start": away_at_start(args.dsn, 5.0, args.series, args.flush),
        "outage_during_run": outage_during_run(args.dsn, args.outage, args.series, args.flush),
        "sigterm_during_outage": signal_during_outage(args.dsn, 3.0, signal.SIGTERM),
        "kill9_during_outage": signal_during_outage(args.dsn, 3.0, signal.SIGKILL),
    }
    if args.demo:
        out["demo_gateway"] = demo_gateway(args.dsn)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
