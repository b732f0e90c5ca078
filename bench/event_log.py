"""Event-log benchmark: prints one JSON object.

What the alarm engine pays per event on the event loop, and how fast the logs are written, for each
storage backend (SQLite in a temporary folder; PostgreSQL on this machine in a schema of its own, dropped
afterwards, when it can be reached):

* ``listener_call_us`` — p50 / p99 / max of ``AlarmLogListener.on_event`` [µs] over ``--events`` alarm
  events handed over back to back (a burst: a site-level outage raising many alarms at once), while the
  writer thread writes them, and how many calls took over 1 ms (the loop waiting for the GIL while the
  writer thread runs Python code: up to ``sys.getswitchinterval()``, 5 ms, plus what the machine adds);
* ``drain_s`` / ``events_per_s`` — from the first call until every event is committed;
* ``baseline_sync_call_us`` — the same events written by a naive listener, one transaction per event on
  the calling thread (what the loop would wait for without the writer thread) [µs per event, p50 / p99].

Usage: ``PYTHONPATH=src .venv/bin/python bench/event_log.py [--events 10000] [--baseline 500]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from meterhub.alarms.model import AlarmEvent, AlarmState, EventKind, Severity
from meterhub.config.schema import StorageConfig
from meterhub.model.quantities import Q
from meterhub.storage import Storage, open_storage
from meterhub.storage.events import AlarmLogListener, EventStore, EventWriter

PG_DSN = os.environ.get("METERHUB_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test")
T0 = 1_798_761_600.0


def event(seq: int) -> AlarmEvent:
    return AlarmEvent(
        seq=seq,
        alarm_id=f"u-high/c{seq % 500}/L1",
        rule="u-high",
        kind=EventKind.RAISED,
        state=AlarmState.UNACK_ACTIVE,
        severity=Severity.HIGH,
        target=f"c{seq % 500}",
        phase="L1",
        quantity=Q.VOLTAGE,
        value=255.0 + seq % 7,
        limit=253.0,
        unit="V",
        ts=T0 + seq * 0.001,
        title="Overvoltage",
        message="voltage above 253 V",
    )


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


@contextmanager
def sqlite() -> Iterator[Callable[[], Storage]]:
    with tempfile.TemporaryDirectory() as tmp:
        opened: list[Storage] = []

        def open_() -> Storage:
            opened.append(open_storage(StorageConfig(), Path(tmp)))
            return opened[-1]

        yield open_
        for s in opened:
            s.close()


@contextmanager
def postgres() -> Iterator[Callable[[], Storage] | None]:
    try:
        import psycopg  # lazy: only when PostgreSQL is benchmarked

        admin = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=3)
    except Exception:
        yield None
        return
    schema = f"mh_bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    opened: list[Storage] = []
    with tempfile.TemporaryDirectory() as tmp:

        def open_() -> Storage:
            cfg = StorageConfig(backend="postgres", dsn=f"{PG_DSN} options='-c search_path={schema}'")
            opened.append(open_storage(cfg, Path(tmp)))
            return opened[-1]

        try:
            yield open_
        finally:
            for s in opened:
                s.close()
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
            admin.close()


def run(open_: Callable[[], Storage], n: int, baseline: int) -> dict[str, Any]:
    storage = open_()
    assert isinstance(storage, EventStore)
    store: EventStore = storage
    writer = EventWriter(lambda: store)
    listener = AlarmLogListener(writer)
    calls: list[float] = []
    began = time.perf_counter()
    for seq in range(1, n + 1):
        t = time.perf_counter()
        listener.on_event(event(seq))
        calls.append((time.perf_counter() - t) * 1e6)
    if not writer.wait_written(120.0):
        raise RuntimeError("the writer did not drain within 120 s")
    drain = time.perf_counter() - began
    writer.close()
    stored = len(store.alarm_log(0, T0 + n, limit=n).rows)
    sync: list[float] = []
    for seq in range(n + 1, n + baseline + 1):
        t = time.perf_counter()
        store.write_events(alarms=[event(seq)])
        sync.append((time.perf_counter() - t) * 1e6)
    return {
        "events": n,
        "stored": stored,
        "listener_call_us": {
            "p50": round(statistics.median(calls), 2),
            "p99": round(pct(calls, 0.99), 2),
            "max": round(max(calls), 1),
            "over_1ms": sum(
                c > 1000 for c in calls
            ),  # GIL hand-overs to the writer thread (5 ms switch interval)
        },
        "drain_s": round(drain, 3),
        "events_per_s": round(n / drain),
        "baseline_sync_call_us": {"p50": round(statistics.median(sync), 1), "p99": round(pct(sync, 0.99), 1)},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--baseline", type=int, default=500)
    args = ap.parse_args()
    out: dict[str, Any] = {}
    with sqlite() as open_:
        out["sqlite"] = run(open_, args.events, args.baseline)
    with postgres() as open_pg:
        out["postgres"] = run(open_pg, args.events, args.baseline) if open_pg is not None else "unreachable"
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
