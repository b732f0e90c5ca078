"""Storage benchmark: prints one JSON object.

1. ``ingest`` — readings through the real ``write()`` / ``flush()`` path of the SQLite backend
   (raw upsert + 1-minute rollups on every flush, the coarser rollups stored as their buckets close),
   in flushes of ``--flush-rows`` readings, against the baseline of one reading per transaction
   measured in the same run. Target ≥ 200 000 points/s.
2. ``bytes_per_point`` — database size (file + WAL after a checkpoint) per stored raw point, with and
   without the rollup tables (SQLite ``dbstat`` when compiled in).
3. ``year`` — one year × ``--circuits`` cumulative registers at 1-minute resolution (525 600 values per
   circuit). Raw rows are generated inside SQLite (a recursive CTE, in bulk, journal off — setup only);
   the 15-min, 1-h and 1-day rollups are computed by the storage's own aggregation functions
   (``meterhub.storage.rollup``) from the same values and written in bulk. (The 1-minute rollup of
   1-minute data is as large as the raw table and is not read by this query, so it is not materialised
   here.) Then: daily totals of every circuit over the year from the day rollups through
   ``Storage.history`` (target ≤ 0.2 s) vs a plain scan of the raw table grouping by day. The rollup answer
   is checked against totals computed directly from the generated values.

4. ``report`` — the energy report (:func:`meterhub.energy.reports.energy_report`) of one circuit whose
   register was read once a minute for a year, ingested through ``write()`` / ``flush()``: the year by
   day and one month by 15 min, with every raw value kept and again after a 30-day raw retention (the
   older part then comes from the 1-minute rollups). ``history_objects_s`` is the time only to build
   the ``HistoryPoint`` objects of the same raw range, the cost the array path avoids.

Usage: ``.venv/bin/python bench/storage.py [--circuits 100] [--days 365] [--postgres DSN]``
(``--postgres`` adds the ingest figures of the PostgreSQL backend on a throw-away schema).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from meterhub.config.schema import StorageConfig
from meterhub.model.readings import Reading, SeriesKey
from meterhub.model.topology import Phase
from meterhub.storage import open_storage
from meterhub.storage.relational import ROLLUP_COLUMNS, ROLLUP_TABLES, SqlStorage
from meterhub.storage.rollup import DayCalendar, aggregate_raw, merge_aggregates, steps
from meterhub.storage.sqlite import SqliteStorage

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
PHASES = (Phase.L1, Phase.L2, Phase.L3)


def live_readings(n_circuits: int, seconds: int, start: int) -> list[list[Reading]]:
    """One list of readings per second: every circuit's voltage per phase and its energy register."""
    out = []
    for s in range(seconds):
        t = float(start + s)
        batch = []
        for c in range(n_circuits):
            cid = f"c{c:03d}"
            for p in PHASES:
                batch.append(Reading(t, cid, "voltage", p, 230.0 + 0.01 * ((s * 7 + c) % 100)))
            batch.append(Reading(t, cid, "energy_active_import", Phase.TOTAL, 1000.0 + 2.5 * s + c))
        out.append(batch)
    return out


def bench_ingest(storage: SqlStorage, flush_rows: int, n_circuits: int, seconds: int) -> dict[str, float]:
    per_second = live_readings(n_circuits, seconds, T0)
    points = sum(len(b) for b in per_second)
    per_flush = max(1, flush_rows // len(per_second[0]))
    latencies = []
    t_all = time.perf_counter()
    for k in range(0, len(per_second), per_flush):
        for b in per_second[k : k + per_flush]:
            storage.write(b)
        t = time.perf_counter()
        storage.flush()
        latencies.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - t_all
    # Baseline: one reading per transaction (what a naive sink does), on fresh series of the same db.
    base = [Reading(float(T0 + i), "baseline", "voltage", Phase.L1, 230.0) for i in range(2000)]
    t = time.perf_counter()
    for r in base:
        storage.write([r])
        storage.flush()
    base_elapsed = time.perf_counter() - t
    return {
        "points": points,
        "flush_rows": per_flush * len(per_second[0]),
        "batched_points_per_s": round(points / elapsed),
        "flush_ms_median": round(1000 * statistics.median(latencies), 2),
        "flush_ms_max": round(1000 * max(latencies), 2),
        "one_row_per_transaction_points_per_s": round(len(base) / base_elapsed),
        "speedup": round((points / elapsed) / (len(base) / base_elapsed), 1),
    }


def bytes_per_point(storage: SqliteStorage, points: int) -> dict[str, float]:
    storage._execute("PRAGMA wal_checkpoint(TRUNCATE)")
    total = storage.size_bytes()
    out: dict[str, float] = {"bytes_per_point_with_rollups": round(total / points, 1)}
    try:
        rows = dict(storage._execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
        out["bytes_per_point_raw_table"] = round(rows["raw"] / points, 1)
    except Exception:  # dbstat not compiled into this SQLite
        pass
    return out


def register(i: np.ndarray, k: float) -> np.ndarray:
    """The generated register [Wh]: slope k per minute plus a bounded wobble; never decreases."""
    return k * i + ((i * 7919) % 1000) / 1000.0 * k


def bench_year(path: Path, n_circuits: int, days: int) -> dict[str, float | int | bool]:
    n = days * 1440
    cal = DayCalendar("UTC")
    keys = [SeriesKey(f"y{c:03d}", "energy_active_import", Phase.TOTAL) for c in range(n_circuits)]
    storage = open_storage(StorageConfig(), path)
    assert isinstance(storage, SqliteStorage)
    storage._begin()
    sids = [storage._series_id(key) for key in keys]
    storage._commit()
    db_file = storage.path
    storage.close()
    # Bulk generation on a plain connection without a journal (setup only, not what is measured).
    db = sqlite3.connect(db_file, isolation_level=None)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    i = np.arange(n, dtype=np.int64)
    ts_ms = T0 * 1000 + i * 60_000
    expected = np.empty((n_circuits, days))
    t_gen = time.perf_counter()
    db.execute("BEGIN")
    for c, sid in enumerate(sids):
        k = 1.0 + c % 7
        db.execute(
            "INSERT INTO raw (series, ts, value, quality) "
            "WITH RECURSIVE m(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM m WHERE i < ?) "
            "SELECT ?, ? + i * 60000, ? * i + ((i * 7919) % 1000) / 1000.0 * ?, 0 FROM m",
            (n - 1, sid, T0 * 1000, k, k),
        )
        v = register(i, k)
        s = np.full(n, sid, dtype=np.int64)
        step = steps(s, v, np.full(n, np.nan))
        minute = aggregate_raw(s, ts_ms, v, np.zeros(n, dtype=np.int64), step, "1min", cal)
        for res in ("15min", "1h", "1d"):
            db.executemany(
                f"INSERT INTO {ROLLUP_TABLES[res]} ({ROLLUP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                merge_aggregates(minute, res, cal).rows(),
            )
        day_last = v.reshape(days, 1440)[:, -1]
        expected[c] = np.diff(np.r_[v[0], day_last])
    db.execute("COMMIT")
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    gen_s = time.perf_counter() - t_gen

    storage = open_storage(StorageConfig(), path)
    assert isinstance(storage, SqliteStorage)
    end = T0 + days * 86400
    t = time.perf_counter()
    totals = np.array([[p.delta for p in storage.history(key, T0, end, "1d")] for key in keys])
    rollup_s = time.perf_counter() - t

    t = time.perf_counter()
    scan = storage._execute(
        "SELECT series, ts / 86400000 AS day, MAX(value) - MIN(value) FROM raw GROUP BY series, day"
    )
    scan_s = time.perf_counter() - t
    size = storage.size_bytes()
    storage.close()
    return {
        "circuits": n_circuits,
        "days": days,
        "raw_points": n * n_circuits,
        "generate_s": round(gen_s, 1),
        "db_bytes_per_raw_point": round(size / (n * n_circuits), 1),
        "daily_totals_from_rollups_s": round(rollup_s, 4),
        "daily_totals_raw_scan_s": round(scan_s, 2),
        "speedup": round(scan_s / rollup_s),
        "daily_rows": int(totals.size),
        "scan_rows": len(scan),
        "rollup_totals_match_generated": bool(np.allclose(totals, expected, rtol=0, atol=1e-6)),
    }


def bench_report(path: Path) -> dict[str, float | int]:
    from datetime import date

    from meterhub.config import parse_config
    from meterhub.energy.reports import energy_report

    cfg = parse_config("site: {name: bench, timezone: UTC}\n")
    storage = open_storage(StorageConfig(raw_retention_days=30), path, timezone="UTC")
    assert isinstance(storage, SqliteStorage)
    n = 366 * 1440
    k = np.arange(n)
    ts = (T0 - 86400 + 60 * k).astype(np.float64).tolist()
    val = register(k, 2.5).tolist()
    t = time.perf_counter()
    for a in range(0, n, 20_000):
        storage.write(
            [
                Reading(ts[i], "main", "energy_active_import", Phase.TOTAL, val[i])
                for i in range(a, min(a + 20_000, n))
            ]
        )
        storage.flush()
    ingest_s = time.perf_counter() - t
    key = SeriesKey("main", "energy_active_import", Phase.TOTAL)

    def timed(start: date, end: date, interval: str) -> tuple[float, int]:
        best = math.inf
        rows = 0
        for _ in range(3):
            t = time.perf_counter()
            rows = len(
                energy_report(storage, cfg, start=start, end=end, interval=interval, circuit="main")[
                    "intervals"
                ]
            )
            best = min(best, time.perf_counter() - t)
        return best, rows

    year = (date(2026, 1, 1), date(2027, 1, 1))
    month = (date(2026, 12, 1), date(2027, 1, 1))
    out: dict[str, float | int] = {"raw_points": n, "ingest_s": round(ingest_s, 2)}
    t = time.perf_counter()
    storage.history(key, T0 - 86400, T0 + 366 * 86400, "raw")
    out["history_objects_s"] = round(time.perf_counter() - t, 3)
    out["year_by_day_s"], out["year_by_day_rows"] = timed(*year, "day")
    out["month_by_15min_s"], out["month_by_15min_rows"] = timed(*month, "15min")
    storage.apply_retention(T0 + 365 * 86400)
    out["year_by_day_after_retention_s"], _ = timed(*year, "day")
    out["month_by_15min_after_retention_s"], _ = timed(*month, "15min")
    storage.close()
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}


def bench_postgres(dsn: str, flush_rows: int) -> dict[str, float]:
    import psycopg

    schema = f"mh_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(dsn, autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        cfg = StorageConfig(backend="postgres", dsn=f"{dsn} options='-c search_path={schema}'")
        storage = open_storage(cfg, Path(tempfile.gettempdir()))
        assert isinstance(storage, SqlStorage)
        try:
            return bench_ingest(storage, flush_rows, n_circuits=100, seconds=300)
        finally:
            storage.close()
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--circuits", type=int, default=100)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument(
        "--flush-rows",
        type=int,
        nargs="+",
        default=[1000, 4000, 20000],
        help="readings per flush (ingest test)",
    )
    ap.add_argument(
        "--postgres",
        metavar="DSN",
        help="also measure PostgreSQL ingest (e.g. 'host=127.0.0.1 user=postgres dbname=test')",
    )
    ap.add_argument("--skip-year", action="store_true", help="leave out the 100-circuit year test")
    ap.add_argument("--only-report", action="store_true", help="run only the report test")
    args = ap.parse_args()
    if args.only_report:
        work = Path(tempfile.mkdtemp(prefix="meterhub-bench-"))
        try:
            json.dump({"bench": "storage", "report": bench_report(work / "report")}, sys.stdout, indent=2)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print()
        return
    work = Path(tempfile.mkdtemp(prefix="meterhub-bench-"))
    result: dict[str, object] = {"bench": "storage", "sqlite": sqlite3.sqlite_version}
    try:
        curve = []
        for i, rows in enumerate(args.flush_rows):
            storage = open_storage(StorageConfig(), work / f"ingest{i}")
            assert isinstance(storage, SqliteStorage)
            ingest = bench_ingest(storage, rows, n_circuits=100, seconds=600)
            if i == 0:
                result["storage_size"] = bytes_per_point(storage, int(ingest["points"]) + 2000)
            storage.close()
            curve.append(ingest)
        result["ingest_sqlite"] = curve
        if args.postgres:
            result["ingest_postgres"] = [bench_postgres(args.postgres, rows) for rows in args.flush_rows]
        result["report"] = bench_report(work / "report")
        if not args.skip_year:
            result["year"] = bench_year(work / "year", args.circuits, args.days)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
