"""Analysis benchmark (issue 16): time to a one-year Sankey of 100 circuits with a warm server.

A site of ``--circuits`` consumable circuits in 10 zones, a grid and a PV circuit, SQLite storage, every
register read once an hour for ``--days`` days (ingested through ``write()`` / ``flush()``, so the
rollups are the storage's own). Circuit i draws (i + 1) × 10 W, PV gives 1 kW, the grid the rest plus
2 kW of unmetered load, so the flow's answer is checked against hand-computed totals.

A real uvicorn server on loopback serves the app; after one cold request, each endpoint is asked
``--repeat`` times (median and worst reported) with the response size:

* ``flow_year`` — ``GET /api/v1/analysis/flow`` over the whole span (target ≤ 1 s, issue 16); with a
  time-of-use tariff (default) the flow reads hour rollups, with ``--flat`` the day rollups;
* ``flow_csv_year``, ``ranking_year`` (energy, with the 15-minute peak), ``compare_month``, ``heatmap_month``;
* ``energies_year``: in process, the year's site and circuit energies and cost through the hourly
  path (the baseline, as before bands were summed in the database) and through the band sums,
  alternating, with the speed-up and whether both give the same cost;
* ``band_sums_year`` (``--postgres``): in process, the flow's one ``delta_sums`` call against the same
  statement at the server's default ``work_mem`` (the baseline, as before), alternating;
* baseline in the same run: ``balance_year`` — the existing ``/api/v1/reports/balance`` by day over the
  same span (3 series from raw values), and ``site`` — ``GET /api/v1/site`` (the request round trip).

With a time-of-use tariff the flow, the comparison and the ranking's cost add up energy per local day
and tariff band in the database (``Storage.delta_sums``: a few rows per day and series instead of 24).
``--postgres`` runs the same on the PostgreSQL server of this machine, in a database created for the
run and dropped after it.

Usage: ``PYTHONPATH=src .venv/bin/python bench/analysis.py [--circuits 100] [--days 365] [--repeat 5]
[--flat] [--postgres [--pg-dsn DSN]]``. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import uvicorn

from meterhub.config import parse_config
from meterhub.energy.analysis import Analysis
from meterhub.model.quantities import Q
from meterhub.model.readings import Reading, SeriesKey
from meterhub.model.topology import Phase, Purpose
from meterhub.runtime import Gateway
from meterhub.storage import open_storage
from meterhub.web.app import create_app

START = date(2026, 1, 1)
TARGET_S = 1.0
BERLIN = ZoneInfo("Europe/Berlin")


def local(day: date) -> float:
    """Berlin midnight of ``day`` [s, UTC]."""
    return datetime(day.year, day.month, day.day, tzinfo=BERLIN).timestamp()


@contextmanager
def postgres_database(admin_dsn: str) -> Iterator[str]:
    """A PostgreSQL database for this run (its DSN), dropped afterwards."""
    import psycopg  # lazy: only --postgres needs the driver

    name = f"mh_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield f"host=127.0.0.1 port=5432 user=postgres dbname={name}"
        finally:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def site_yaml(n: int, flat: bool = False, dsn: str | None = None) -> str:
    devices = [
        f"  - {{id: d{i}, bus: b1, unit: {i % 240 + 1}, profile: eastron-sdm630}}" for i in range(n + 2)
    ]
    circuits = ["  - {id: grid, device: d0, purpose: grid}", "  - {id: pv, device: d1, purpose: renewable}"]
    circuits += [f"  - {{id: c{i:03d}, device: d{i + 2}, zone: z{i % 10}}}" for i in range(n)]
    tariff = (
        "energy:\n  tariffs: {rates: [{id: flat, price: 0.25}]}\n"
        if flat
        else "energy:\n  tariffs:\n    rates: [{id: peak, price: 0.30}, {id: offpeak, price: 0.20}]\n"
        '    seasons:\n      - start: "01-01"\n'
        '        weekday: [{from: "00:00", rate: offpeak}, {from: "07:00", rate: peak},'
        ' {from: "20:00", rate: offpeak}]\n'
        '        weekend: [{from: "00:00", rate: offpeak}]\n'
    )
    storage = f'storage: {{backend: postgres, dsn: "{dsn}"}}\n' if dsn else ""
    return (
        storage + "site: {name: Bench, timezone: Europe/Berlin, currency: EUR, co2_factor: 0.4}\n"
        "buses: [{id: b1, kind: modbus-tcp, port: 5020}]\n"
        "devices:\n" + "\n".join(devices) + "\ncircuits:\n" + "\n".join(circuits) + "\n" + tariff
    )


def load(gw: Gateway, n: int, days: int) -> tuple[float, int]:
    """Hourly register readings from an hour before START to an hour after the span; returns the ingest
    time [s] and the number of readings."""
    loads = {f"c{i:03d}": (i + 1) * 10.0 for i in range(n)}  # [W]
    metered = sum(loads.values())
    t0 = time.perf_counter()
    first = local(START) - 3 * 3600
    count = 0
    hours = days * 24 + 6
    batch: list[Reading] = []
    for k in range(hours):
        t = first + 3600 * k
        batch.append(Reading(t, "grid", "energy_active_import", Phase.TOTAL, (metered + 2000.0 - 1000.0) * k))
        batch.append(Reading(t, "grid", "energy_active_export", Phase.TOTAL, 0.0))
        batch.append(Reading(t, "pv", "energy_active_export", Phase.TOTAL, 1000.0 * k))
        batch += [Reading(t, c, "energy_active_import", Phase.TOTAL, w * k) for c, w in loads.items()]
        if len(batch) > 50_000:
            gw.storage.write(batch)
            gw.storage.flush()
            count += len(batch)
            batch = []
    gw.storage.write(batch)
    gw.storage.flush()
    count += len(batch)
    return time.perf_counter() - t0, count


def timed(client: httpx.Client, path: str, repeat: int) -> dict[str, Any]:
    t = time.perf_counter()
    r = client.get(path)
    cold = time.perf_counter() - t
    r.raise_for_status()
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = client.get(path)
        runs.append(time.perf_counter() - t)
        r.raise_for_status()
    return {
        "cold_s": round(cold, 4),
        "median_s": round(statistics.median(runs), 4),
        "max_s": round(max(runs), 4),
        "bytes": len(r.content),
        "_json": r.json() if r.headers["content-type"].startswith("application/json") else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--circuits", type=int, default=100)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--flat", action="store_true", help="a flat tariff (day rollups) instead of time of use")
    ap.add_argument("--postgres", action="store_true", help="PostgreSQL storage (a database of its own)")
    ap.add_argument("--pg-dsn", default="host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    args = ap.parse_args()
    if args.postgres:
        with postgres_database(args.pg_dsn) as dsn:
            run(args, dsn)
    else:
        run(args, None)


def run(args: argparse.Namespace, dsn: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="mh-bench-analysis-") as tmp:
        cfg = parse_config(site_yaml(args.circuits, args.flat, dsn))
        data = Path(tmp) / "data"
        gw = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone="Europe/Berlin"))
        ingest_s, n_readings = load(gw, args.circuits, args.days)
        app = create_app(gw)
        app.state.auth.store.add("bench", "correct horse battery", "reader")
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        th = threading.Thread(target=server.run, daemon=True)
        th.start()
        while not server.started:
            time.sleep(0.05)
        end = START + timedelta(days=args.days)
        month_end = START + timedelta(days=31)
        out: dict[str, Any] = {
            "circuits": args.circuits,
            "days": args.days,
            "tariff": "flat" if args.flat else "time of use (peak 07-20 on weekdays)",
            "backend": "postgres" if dsn else "sqlite",
            "readings": n_readings,
            "ingest_s": round(ingest_s, 2),
            "load_avg_before": [round(x, 2) for x in os.getloadavg()],  # 1, 5, 15 min: a shared machine
        }
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as c:
                c.post("/api/v1/auth/login", json={"username": "bench", "password": "correct horse battery"})
                paths = {
                    "site": "/api/v1/site",
                    "flow_year": f"/api/v1/analysis/flow?from={START}&to={end}",
                    "flow_csv_year": f"/api/v1/analysis/flow?from={START}&to={end}&format=csv",
                    "ranking_year": f"/api/v1/analysis/ranking?from={START}&to={end}&by=energy",
                    "compare_month": f"/api/v1/analysis/compare?period=month&at={START}",
                    "heatmap_month": f"/api/v1/analysis/heatmap?circuit=c000&from={START}&to={month_end}",
                    "balance_year": f"/api/v1/reports/balance?from={START}&to={end}&interval=day",
                }
                for name, path in paths.items():
                    out[name] = timed(c, path, args.repeat)
            out["energies_year"] = hourly_vs_bands(gw.storage, cfg, end, args.repeat)  # the server idles
            if dsn:
                out["band_sums_year"] = band_sums_vs_default_memory(gw.storage, cfg, end, args.repeat)
        finally:
            server.should_exit = True
            th.join(30)
            gw.storage.close()
        flow = out["flow_year"].pop("_json")
        for v in out.values():
            if isinstance(v, dict):
                v.pop("_json", None)
        hours = (local(end) - local(START)) / 3600  # hours of the span in Berlin (DST days 23 and 25 h)
        metered_kwh = sum((i + 1) * 10.0 for i in range(args.circuits)) * hours / 1000
        out["check"] = {
            "metered_kwh": flow["balance"]["metered_kwh"],
            "expected_metered_kwh": round(metered_kwh, 3),
            "unmetered_kwh": flow["balance"]["unmetered_kwh"],
            "expected_unmetered_kwh": round(2.0 * hours, 3),
            "nodes": len(flow["nodes"]),
            "links": len(flow["links"]),
        }
        out["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
        out["target_flow_year_s"] = TARGET_S
        out["flow_year_within_target"] = out["flow_year"]["median_s"] <= TARGET_S
        print(json.dumps(out, indent=1))


def hourly_vs_bands(storage: Any, cfg: Any, end: date, repeat: int) -> dict[str, Any]:
    """The year's energies and cost of the site and every circuit, in process, both ways, alternating
    so that both see the same machine load: ``hourly`` (the baseline: one rollup row per hour and
    series, priced per hour) and ``bands`` (the database sums per local day and tariff band)."""
    runs: dict[str, list[float]] = {"hourly": [], "bands": []}
    totals: dict[str, dict[str, float]] = {}
    for _ in range(repeat):
        for name in runs:
            t = time.perf_counter()
            a = Analysis(storage, cfg, START, end, hourly=name == "hourly")
            site = a.site()
            rows = {c.id: a.summary(a.circuit(c.id)[0]) for c in a.by_purpose(Purpose.CONSUMABLE)}
            runs[name].append(time.perf_counter() - t)
            totals[name] = {
                "grid_cost": round(float(a.net_cost(site).sum()), 6),
                "metered_cost": round(sum(r[Q.COST] for r in rows.values()), 6),
            }
    return {
        **{f"{k}_median_s": round(statistics.median(v), 4) for k, v in runs.items()},
        "speedup": round(statistics.median(runs["hourly"]) / statistics.median(runs["bands"]), 2),
        "same_answer": totals["hourly"] == totals["bands"],
        **{f"{k}_{q}": v for k, t in totals.items() for q, v in t.items()},
    }


def band_sums_vs_default_memory(storage: Any, cfg: Any, end: date, repeat: int) -> dict[str, Any]:
    """PostgreSQL, in process: the year's sums per local day and tariff band of every import and
    export register (the flow's one ``delta_sums`` call), alternating with the baseline: the same
    statement at the server's default ``work_mem`` (as before, the hash table may spill to disk)
    with the rows added up one by one in Python (and without the open-hour check delta_sums makes)."""
    a = Analysis(storage, cfg, START, end)
    keys = [
        SeriesKey(c.id, q, Phase.TOTAL)
        for c in cfg.circuits
        for q in (Q.ENERGY_ACTIVE_IMPORT, Q.ENERGY_ACTIVE_EXPORT)
    ]
    e = a.edges.astype(np.int64)

    def baseline() -> dict[SeriesKey, np.ndarray]:
        ids = {k: storage._lookup_series(k) for k in keys}
        by_sid = {sid: k for k, sid in ids.items() if sid is not None}
        out = {k: np.zeros(len(e) - 1) for k in keys}
        bounds = ", ".join(str(int(x)) for x in e.tolist())
        rows = storage._execute(
            f"SELECT series, width_bucket(bucket, ARRAY[{bounds}]::int8[]) - 1 AS k, SUM(delta) FROM r_1h "
            f"WHERE series IN ({', '.join(map(str, sorted(by_sid)))}) AND bucket >= {int(e[0])} "
            f"AND bucket < {int(e[-1])} GROUP BY series, k"
        )
        for sid, k, total in rows:
            out[by_sid[int(sid)]][int(k)] += float(total)
        return out

    runs: dict[str, list[float]] = {"default_memory": [], "delta_sums": []}
    answers: dict[str, dict[SeriesKey, np.ndarray]] = {}
    for _ in range(repeat):
        for name, f in (("default_memory", baseline), ("delta_sums", lambda: storage.delta_sums(keys, e))):
            t = time.perf_counter()
            answers[name] = f()
            runs[name].append(time.perf_counter() - t)
    same = all(np.array_equal(answers["default_memory"][k], answers["delta_sums"][k]) for k in keys)
    return {
        "spans": len(e) - 1,
        "registers": len(keys),
        **{f"{k}_median_s": round(statistics.median(v), 4) for k, v in runs.items()},
        "speedup": round(
            statistics.median(runs["default_memory"]) / statistics.median(runs["delta_sums"]), 2
        ),
        "same_answer": same,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    main()
