"""At-least-once end to end: central killed with SIGKILL mid-stream and the broker restarted mid-stream —
the database ends up with exactly what the simulated gateways sent, each point once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import Broker, count, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "PYTHONPATH": src}


def _central(broker: Broker, dsn: str, data: Path, worker: str, *extra: str) -> subprocess.Popen[bytes]:
    log = (data / f"{worker}.out").open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meterhub",
            "central",
            "--mqtt",
            broker.url,
            "--dsn",
            dsn,
            "--port",
            "0",
            "--data",
            str(data),
            "--worker-id",
            worker,
            *extra,
        ],
        env=_env(),
        stdout=log,
        stderr=log,
    )


@pytest.mark.parametrize("outage", ["kill-9", "broker-restart"])
def test_kill_9_or_broker_restart_lose_nothing_and_duplicate_nothing(
    broker: Broker, dsn: str, tmp_path: Path, outage: str
) -> None:
    """kill -9 of a worker of the shared subscription; a broker restart with a plain subscription (Mosquitto
    2.0.11 does not restore shared subscriptions from its persistence file: docs/fleet.md)."""
    data = tmp_path / "central"
    data.mkdir()
    extra = ("--no-share",) if outage == "broker-restart" else ()
    central = _central(broker, dsn, data, "w1", *extra)
    # up and subscribed (a few seconds alone; much longer on two shared cores under CI load)
    assert wait_until(lambda: count(dsn, "SELECT count(*) FROM fleet_meta") == 1, 60)
    time.sleep(0.5)  # subscribed: the session (and its queue) exists on the broker from here
    # 20 sites × 2 circuits × 10 one-second intervals, 5 series per circuit
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meterhub",
            "simulate-fleet",
            "--sites",
            "20",
            "--mqtt",
            broker.url,
            "--series",
            "10",
            "--circuits",
            "2",
            "--interval",
            "1",
            "--count",
            "10",
            "--processes",
            "2",
        ],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(3)
    if outage == "kill-9":
        central.send_signal(
            signal.SIGKILL
        )  # no flush, no disconnect: its unacknowledged messages stay queued
        central.wait(5)
        time.sleep(1)
        central = _central(broker, dsn, data, "w1", *extra)  # the same worker id: the same session
    else:
        broker.stop()  # the broker goes away with messages queued for central and from the gateways
        time.sleep(1)
        broker.start()
    out, err = sim.communicate(timeout=120)
    assert sim.returncode == 0, err.decode()
    sent = json.loads(out.decode().strip().splitlines()[-1])
    assert sent["messages"] == 20 * 2 * 10
    try:
        assert wait_until(lambda: count(dsn, "SELECT count(*) FROM fleet_messages") == 400, 120)
        assert count(dsn, "SELECT count(*) FROM fleet_points") == 400 * 5
        # every message once per (series, ts): the primary key; and the received counter saw ≥ 400
        assert (
            count(dsn, "SELECT count(*) FROM (SELECT series, ts FROM fleet_points GROUP BY 1, 2) t") == 2000
        )
        assert count(dsn, "SELECT sum(messages) FROM fleet_sites") >= 400
        assert count(dsn, "SELECT count(DISTINCT site) FROM fleet_messages") == 20
    finally:
        central.send_signal(signal.SIGTERM)
        central.wait(15)
