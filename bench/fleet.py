"""Fleet benchmark (issue 15): prints one JSON object.

Everything runs here, on loopback: a private Mosquitto (persistence off, no queue or inflight bounds) on a
free port, a private PostgreSQL database (created and dropped), central workers as separate processes
(``meterhub central --port 0 --worker-id wN``) and ``meterhub.central.simulate`` publishing the
meterhub-json messages of ``--sites`` sites × ``--series`` series (``--circuits`` circuits per site).

1. ``raw_copy`` — the rows of the burst below (series, ts, value, quality, samples), binary-COPYed
   straight into a table shaped as ``fleet_points`` (same primary key, same monthly partition), in one
   transaction: the database's own ceiling for these rows, in the same run. The rows are ready in memory
   (parsed and given series ids before the clock starts); the clock covers producing the COPY data, the
   COPY and the commit, two ways: ``raw_copy_numpy_stream`` (the stream built with the numpy builder
   central uses, ``meterhub.central.pgcopy.point_rows``, one ``write``) and ``raw_copy_write_row``
   (psycopg's C ``write_row`` per row, the previous baseline). Best of three alternating rounds into an
   emptied table each; ``raw_copy`` is the faster of the two (``method``) and is the ratio's baseline.
2. ``burst`` — for 1 and for 2 workers: a fleet replaying its outboxes. The workers subscribe once and
   stop (their sessions stay on the broker, with their shares), the simulator publishes ``--burst`` past
   intervals of every site (``publish_seconds``), then the workers start again and drain the broker.
   Points/s = points committed after the first commit / (last commit − first commit), the commit times
   from ``fleet_messages.stored_at`` — the workers' own rate, not the simulator's publishing rate (which
   bounded the previous method, timed from the start of publishing); ``per_worker`` = that / workers;
   ``ratio`` = per_worker / raw_copy (target ≥ 0.5). With 2 workers the second worker's first batch falls
   inside the span (at most ``batch_messages`` messages: about 2 % of the default burst).
   The burst's sites are new to central: its first interval also creates their series (``fleet_series``).
3. ``live`` — with ``--live-workers`` workers running, the simulator sends one message per circuit every
   ``--interval`` s for ``--live`` s (all sites at the same Unix-aligned instant, as real gateways do);
   lag = commit time − interval end per message: p50, p99, max (target p99 ≤ 2 s). Worker RSS at the end.

Usage: ``PYTHONPATH=src .venv/bin/python bench/fleet.py [--sites 1000] [--series 50] [--burst 6] [--live 60]``
The machine's load is printed with the figures (2 cores, shared).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from meterhub.central.payload import parse_circuit_message
from meterhub.central.pgcopy import COPY_TYPES, point_rows
from meterhub.central.simulate import FleetSpec, _messages, run_fleet

ADMIN = os.environ.get("METERHUB_BENCH_PG_ADMIN", "host=127.0.0.1 user=postgres dbname=postgres")
SRC = str(Path(__file__).resolve().parents[1] / "src")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    conf = folder / "mosquitto.conf"
    lines = [
        f"listener {port} 127.0.0.1",
        "persistence false",
        "allow_anonymous true",
        "max_queued_messages 0",
        "max_queued_bytes 0",
        "max_inflight_messages 0",
    ]
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        ["/usr/sbin/mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    return proc, f"mqtt://127.0.0.1:{port}"


def worker(url: str, dsn: str, data: Path, wid: str, group: str) -> subprocess.Popen[bytes]:
    # each phase has its own share group: a stopped worker's persistent session would keep taking its
    # share of the group's messages (docs/fleet.md, "Workers")
    conf = data / f"{group}.yaml"
    conf.write_text(f"share_group: {group}\n")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meterhub",
            "central",
            "--config",
            str(conf),
            "--mqtt",
            url,
            "--dsn",
            dsn,
            "--port",
            "0",
            "--data",
            str(data),
            "--worker-id",
            wid,
        ],
        env={**os.environ, "PYTHONPATH": SRC},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_started(data: Path, ids: list[str], timeout: float = 60) -> None:
    """Until every worker logged its start (then 1.5 s for the SUBACK): a message published before the
    subscription exists reaches nobody. Starting takes seconds on a loaded machine."""
    deadline = time.monotonic() + timeout
    log = data / "meterhub.log"
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        if all(f"central worker {w}:" in text for w in ids):
            break
        time.sleep(0.2)
    time.sleep(1.5)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def note(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def q(dsn: str, sql: str) -> list[tuple]:
    with psycopg.connect(dsn) as db:
        return db.execute(sql).fetchall()


def wait_count(dsn: str, n: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    got = 0
    while time.monotonic() < deadline:
        try:
            got = q(dsn, "SELECT count(*) FROM fleet_messages")[0][0]
        except psycopg.errors.UndefinedTable:
            got = 0
        if got >= n:
            break
        time.sleep(0.2)
    return got


def raw_copy(dsn: str, spec: FleetSpec, stamps: list[int]) -> dict[str, dict[str, object]]:
    """The burst's rows COPYed into a fresh ``fleet_points``-shaped table: with the numpy-built stream
    (the baseline) and with psycopg's ``write_row`` (for comparison)."""
    rows = []
    ids: dict[tuple[str, str, str, str], int] = {}
    numbers = list(range(spec.sites))
    for ts in stamps:
        for topic, payload in _messages(spec, numbers, ts):
            _, site, _, circuit = topic.split("/")
            m = parse_circuit_message(payload, site, circuit)
            for p in m.points:
                sid = ids.setdefault((m.site, m.circuit, p.quantity, p.phase), len(ids) + 1)
                rows.append((sid, m.ts, p.value, p.quality, p.samples))
    columns = [list(c) for c in zip(*rows, strict=True)]
    out: dict[str, dict[str, object]] = {}
    with psycopg.connect(dsn) as db:
        for schema in ("rawcopy", "rawcopy_rows"):
            db.execute(f"CREATE SCHEMA {schema}")
            db.execute(
                f"CREATE TABLE {schema}.points (series BIGINT NOT NULL, ts BIGINT NOT NULL, value DOUBLE "
                "PRECISION NOT NULL, quality SMALLINT NOT NULL, samples INTEGER NOT NULL, "
                "PRIMARY KEY (series, ts)) PARTITION BY RANGE (ts)"
            )
            db.execute(
                f"CREATE TABLE {schema}.p PARTITION OF {schema}.points FOR VALUES FROM (0) TO (9999999999)"
            )
        db.commit()

        def stream(cur: psycopg.Cursor) -> None:
            with cur.copy("COPY rawcopy.points FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(point_rows(*columns))

        def by_row(cur: psycopg.Cursor) -> None:
            with cur.copy("COPY rawcopy_rows.points FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(list(COPY_TYPES))
                for r in rows:
                    copy.write_row(r)

        # three rounds, alternating, into emptied tables: the best of each (the first COPY of a new
        # database pays for catalogue caches and WAL segments)
        best = {"raw_copy": math.inf, "raw_copy_write_row": math.inf}
        for _ in range(3):
            for key, schema, fn in (
                ("raw_copy", "rawcopy", stream),
                ("raw_copy_write_row", "rawcopy_rows", by_row),
            ):
                db.execute(f"TRUNCATE {schema}.points")
                db.commit()
                t0 = time.perf_counter()
                with db.cursor() as cur:
                    fn(cur)
                db.commit()
                best[key] = min(best[key], time.perf_counter() - t0)
        for key, dt in best.items():
            out[key] = {"points": len(rows), "seconds": round(dt, 3), "points_per_s": round(len(rows) / dt)}
        # the baseline of the ratio: the faster of the two in this run
        fastest = min(best, key=best.__getitem__)
        out["raw_copy_numpy_stream"] = out.pop("raw_copy")
        out["raw_copy"] = {
            **out["raw_copy_numpy_stream" if fastest == "raw_copy" else "raw_copy_write_row"],
            "method": "numpy stream" if fastest == "raw_copy" else "write_row",
        }
        for schema in ("rawcopy", "rawcopy_rows"):
            got = db.execute(f"SELECT count(*) FROM {schema}.points").fetchone()
            if not got or got[0] != len(rows):
                raise SystemExit(f"raw copy into {schema}: {got} rows, expected {len(rows)}")
    return out


def cpu_s(pid: int) -> float | None:
    """User + system CPU time of a process so far [s] (/proc/<pid>/stat fields 14 and 15)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sites", type=int, default=1000)
    ap.add_argument("--series", type=int, default=50)
    ap.add_argument("--circuits", type=int, default=5)
    ap.add_argument("--interval", type=int, default=10)
    ap.add_argument(
        "--burst", type=int, default=6, help="past intervals per site in the burst (0: live only)"
    )
    ap.add_argument("--live", type=int, default=60, help="seconds of live sending")
    ap.add_argument("--live-workers", type=int, default=1)
    ap.add_argument("--processes", type=int, default=2, help="simulator processes")
    args = ap.parse_args()
    out: dict[str, object] = {
        "sites": args.sites,
        "series_per_site": args.series,
        "interval_s": args.interval,
        "load_before": os.getloadavg(),
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    broker, url = start_broker(tmp)
    name = f"mh_bench_fleet_{os.getpid()}"
    admin = psycopg.connect(ADMIN, autocommit=True)
    admin.execute(f"CREATE DATABASE {name}")
    base = " ".join(p for p in ADMIN.split() if not p.startswith("dbname="))
    try:
        spec = FleetSpec(
            broker=url,
            sites=args.sites,
            series=args.series,
            circuits=args.circuits,
            interval=args.interval,
            processes=args.processes,
        )
        now = int(time.time()) // args.interval * args.interval
        stamps = [now - args.interval * k for k in range(args.burst, 0, -1)]
        if args.burst:
            out.update(raw_copy(f"{base} dbname={name}", spec, stamps))
        else:
            out["raw_copy"] = None
        note("raw copy", out["raw_copy"], out.get("raw_copy_numpy_stream"), out.get("raw_copy_write_row"))
        burst = {}
        for n in (1, 2) if args.burst else ():
            schema = f"burst{n}"
            with psycopg.connect(f"{base} dbname={name}", autocommit=True) as db:
                db.execute(f"CREATE SCHEMA {schema}")
            dsn = f"{base} dbname={name} options='-c search_path={schema}'"
            ids = [f"b{n}w{i}" for i in range(n)]
            # subscribe once and stop: the sessions (and their shares of the group) stay on the broker,
            # which queues the burst for them (no queue bounds in this broker's config)
            procs = [worker(url, dsn, tmp, w, f"burst{n}") for w in ids]
            wait_started(tmp, ids)
            stop(procs)
            t_pub = time.time()
            sent = run_fleet(
                FleetSpec(
                    **{
                        **spec.__dict__,
                        "backfill": args.interval * args.burst,
                        "count": 0,
                        "prefix": f"b{n}-",
                    }
                )
            )
            t_sent = time.time()
            expected = int(sent["messages"])
            note(f"burst {n}: sent {sent} in {t_sent - t_pub:.1f} s; starting {n} worker(s)")
            load = os.getloadavg()
            procs = [worker(url, dsn, tmp, w, f"burst{n}") for w in ids]
            got = wait_count(dsn, expected, 300)
            note(f"burst {n}: stored {got}")
            cpu = [cpu_s(p.pid) for p in procs]
            stop(procs)
            first, last = q(dsn, "SELECT min(stored_at), max(stored_at) FROM fleet_messages")[0]
            points = q(dsn, "SELECT count(*) FROM fleet_points")[0][0]
            after_first = q(
                dsn,
                "SELECT count(*) FROM fleet_points p JOIN fleet_series s ON s.id = p.series "
                "JOIN fleet_messages m ON (m.site, m.circuit, m.ts) = (s.site, s.circuit, p.ts) "
                f"WHERE m.stored_at > {float(first)!r}",
            )[0][0]
            span = max(float(last) - float(first), 1e-3)
            pps = after_first / span
            burst[f"workers_{n}"] = {
                "messages_sent": expected,
                "messages_stored": got,
                "points_stored": points,
                "publish_seconds": round(t_sent - t_pub, 2),
                "drain_seconds": round(span, 2),
                "points_after_first_commit": after_first,
                "points_per_s": round(pps),
                "per_worker_points_per_s": round(pps / n),
                "ratio_per_worker_to_raw_copy": round(pps / n / out["raw_copy"]["points_per_s"], 3),  # type: ignore[index]
                "load_at_start": load,
                # what each worker process used, start-up included: on a shared machine the drain's wall
                # time also holds waiting for a core
                "worker_cpu_seconds": cpu,
            }
        out["burst"] = burst
        # live
        with psycopg.connect(f"{base} dbname={name}", autocommit=True) as db:
            db.execute("CREATE SCHEMA live")
        dsn = f"{base} dbname={name} options='-c search_path=live'"
        live_ids = [f"lw{i}" for i in range(args.live_workers)]
        procs = [worker(url, dsn, tmp, w, "live") for w in live_ids]
        wait_started(tmp, live_ids)
        count = max(1, args.live // args.interval)
        sent = run_fleet(FleetSpec(**{**spec.__dict__, "count": count, "prefix": "live-"}))
        got = wait_count(dsn, int(sent["messages"]), 60)
        rss = [rss_mb(p.pid) for p in procs]
        stop(procs)
        lags = sorted(r[0] for r in q(dsn, "SELECT stored_at - ts FROM fleet_messages"))
        pct = lambda p: round(lags[min(len(lags) - 1, int(p * len(lags)))], 3) if lags else None  # noqa: E731
        out["live"] = {
            "workers": args.live_workers,
            "intervals": count,
            "messages_sent": sent["messages"],
            "messages_stored": got,
            "lag_p50_s": pct(0.5),
            "lag_p99_s": pct(0.99),
            "lag_max_s": round(lags[-1], 3) if lags else None,
            "worker_rss_mb": rss,
        }
        out["load_after"] = os.getloadavg()
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(10)
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
