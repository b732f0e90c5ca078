"""End to end: 20 ``kill -9`` restarts of ``meterhub demo`` — every register monotone, loss ≤ one flush.

The demo runs the site of ``examples/demo-site.yaml`` with ``storage.flush_interval: 1`` in its own data
folder on a free port; each run lasts a random 1.5–6 s (seeded, so a failure can be replayed), then the
process is killed with SIGKILL — simulators, gateway and all — and started again. Just before each kill
the live API gives the values published last. After the 20th restart the SQLite database is read:

* every cumulative series (energy, pulse counts, volumes, run hours): its valid values in time order
  never decrease — across every kill too;
* across each kill, the first stored value after the restart is one the register had at most one flush
  interval (plus the commit's duration and the series' poll interval) before the value published last
  before the kill: what was counted after the last commit is the most a crash may lose. A simulated
  meter keeps counting while the demo is down, so its registers come back higher.

The figures (restarts, series checked, registers that went down, largest loss in seconds of
consumption) are printed and written to ``crash-figures.json`` in the data folder.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest

from meterhub.model.quantities import CATALOGUE, Kind
from meterhub.model.readings import Quality

from .test_demo import free_port

pytestmark = pytest.mark.slow

DEMO_SITE = Path(__file__).resolve().parents[2] / "examples" / "demo-site.yaml"
RESTARTS = 20
FLUSH = 1.0  # [s] storage.flush_interval of the site under test
START_TIMEOUT = 60.0  # [s]
CUMULATIVE = {str(k) for k, q in CATALOGUE.items() if q.kind is Kind.CUMULATIVE}
#: Slack of the loss bound [s]: a flush runs every interval *plus* its commit (in a worker thread). The
#: bound adds the series' poll interval, the resolution with which a restarted value is placed on the
#: register's course before the kill (a pulse counter polled every 2 s steps by whole pulses).
COMMIT_SLACK = 1.0

Key = tuple[str, str, str]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Run:
    """One demo process on the shared data folder."""

    def __init__(self, data: Path, config: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data / "console.log"
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "meterhub", "demo", "--port", str(self.port), "--data", str(data),
                "--config", str(config),
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
        )  # fmt: skip
        self.started = time.time()
        t0 = time.monotonic()
        while time.monotonic() - t0 < START_TIMEOUT:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"demo exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            try:
                _get(f"{self.url}/api/v1/health")
                return
            except OSError:
                time.sleep(0.1)
        self.proc.kill()
        raise AssertionError(f"demo did not serve within {START_TIMEOUT} s")

    def published(self) -> dict[Key, tuple[float, float]]:
        """The cumulative values the live API shows now: key → (ts [s], value)."""
        out: dict[Key, tuple[float, float]] = {}
        for r in _get(f"{self.url}/api/v1/live")["readings"]:
            if r["quantity"] in CUMULATIVE:
                out[(r["circuit"], r["quantity"], r["phase"] or "")] = (_ts(r["ts"]), float(r["value"]))
        return out

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def _stored(db: Path) -> dict[Key, list[tuple[float, float, int]]]:
    """Every stored value of the cumulative series: key → [(ts [s], value, quality)] in time order."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT s.circuit, s.quantity, s.phase, r.ts, r.value, r.quality FROM raw r "
            "JOIN series s ON s.id = r.series ORDER BY r.series, r.ts"
        ).fetchall()
    finally:
        con.close()
    out: dict[Key, list[tuple[float, float, int]]] = defaultdict(list)
    for circuit, quantity, phase, ts, value, quality in rows:
        if quantity in CUMULATIVE and value is not None:
            out[(circuit, quantity, phase)].append((ts / 1000.0, float(value), int(quality)))
    return out


def _seconds_back(course: list[tuple[float, float]], value: float) -> float:
    """How long before the end of ``course`` [(ts [s], register)] the register last had ``value``
    (interpolated between two points; the whole course when it never was that low) [s]."""
    t_end, v_end = course[-1]
    if value >= v_end:
        return 0.0
    for (t0, v0), (t1, v1) in zip(course[-2::-1], course[::-1], strict=False):
        if v0 <= value:
            return t_end - (t0 + (value - v0) / (v1 - v0) * (t1 - t0) if v1 > v0 else t1)
    return t_end - course[0][0]


def test_twenty_kill_9_restarts_keep_every_register_monotone_and_lose_at_most_one_flush(tmp_path):
    rng = random.Random(20261206)
    data = tmp_path / "data"
    data.mkdir()
    site = tmp_path / "site.yaml"
    text = DEMO_SITE.read_text(encoding="utf-8")
    assert "  flush_interval: 5 " in text
    site.write_text(text.replace("  flush_interval: 5 ", f"  flush_interval: {FLUSH:g} "), encoding="utf-8")
    kills: list[tuple[float, float, dict[Key, tuple[float, float]]]] = []  # (run start, kill time, published)
    t_begin = time.monotonic()
    for _ in range(RESTARTS):
        run = Run(data, site)
        time.sleep(rng.uniform(1.5, 6.0))
        published = run.published()
        killed_at = time.time()
        run.kill()
        kills.append((run.started, killed_at, published))
    last = Run(data, site)
    time.sleep(3.0)  # the first values after the 20th kill are stored
    assert last.stop() == 0
    elapsed = time.monotonic() - t_begin

    series = _stored(data / "meterhub.db")
    assert len(series) >= 100
    went_down: list[str] = []
    invalid_rows = 0
    for key, points in series.items():
        valid = [(t, v) for t, v, q in points if q < Quality.INVALID]
        invalid_rows += len(points) - len(valid)
        for (t0, v0), (t1, v1) in zip(valid, valid[1:], strict=False):
            if v1 < v0:
                went_down.append(f"{key}: {v0!r} at {t0:.3f} → {v1!r} at {t1:.3f}")

    # Across each kill: how far back in time the register restarted. The first value stored after the
    # restart is placed on the register's own course before the kill (stored values and the value
    # published last): restarting at the value it had ``s`` seconds before that publication is a loss
    # of ``s`` seconds of consumption, whatever the load did meanwhile.
    loss_s: list[tuple[float, Key, int]] = []
    too_far: list[str] = []
    compared = 0
    for n, (started, killed_at, published) in enumerate(kills):
        for key, (t_pub, v_pub) in published.items():
            points = [(t, v) for t, v, q in series.get(key, []) if q < Quality.INVALID]
            after = [v for t, v in points if t > killed_at]
            course = [(t, v) for t, v in points if started <= t <= t_pub] + [(t_pub, v_pub)]
            if not after or len(course) < 2 or course[-1][1] <= course[0][1]:
                continue  # nothing after the restart, or the register did not count before the kill
            compared += 1
            # a counter polled every few seconds (pulses) is placed on its course only to its poll
            tail = course[-3:]
            resolution = max(t1 - t0 for (t0, _), (t1, _) in zip(tail, tail[1:], strict=False))
            back = _seconds_back(course, after[0])
            loss_s.append((back, key, n))
            if back > FLUSH + COMMIT_SLACK + resolution:
                too_far.append(
                    f"{'/'.join(key)} across kill {n + 1}: {back:.2f} s; {course[-3:]} then {after[0]}"
                )
    loss_s.sort(reverse=True)
    for seconds, key, n in loss_s[:5]:
        print(f"loss {seconds:.3f} s: {'/'.join(key)} across kill {n + 1}")
    worst = loss_s[0] if loss_s else (0.0, ("-", "-", "-"), -1)
    figures = {
        "restarts": RESTARTS,
        "flush_interval_s": FLUSH,
        "series_checked": len(series),
        "values_checked": sum(len(p) for p in series.values()),
        "invalid_values": invalid_rows,
        "registers_that_went_down": len(went_down),
        "kill_comparisons": compared,
        "largest_loss_s_of_consumption": round(worst[0], 3),
        "largest_loss_series": "/".join(worst[1]),
        "test_duration_s": round(elapsed, 1),
    }
    (data / "crash-figures.json").write_text(json.dumps(figures, indent=1))
    print("\ncrash figures:", json.dumps(figures))
    assert went_down == [], "\n".join(went_down[:20])
    assert compared >= RESTARTS * 50
    assert too_far == [], "\n".join(too_far[:20])
