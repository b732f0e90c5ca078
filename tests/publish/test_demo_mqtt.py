"""``meterhub demo --mqtt``: the issue's "done when", as a newcomer would check it with ``mosquitto_sub -t '#'``
on the demo's broker — rtdata payloads holding every seed 001 field with plausible values, Home Assistant
discovery configs for energy and power, and native JSON valid against its schema."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema_rs
import pytest

from .conftest import Broker, Subscriber, free_port
from .test_mqtt_publish import SCHEMA, SEED_FIELDS

pytestmark = pytest.mark.slow


def test_demo_publishes_all_three_formats(
    broker: Broker, subscribers: list[Subscriber], tmp_path: Path
) -> None:
    sub = Subscriber(tmp_path, broker.port, "#")
    subscribers.append(sub)
    data = tmp_path / "demo"
    data.mkdir()
    log = (data / "console.log").open("wb")
    src = str(Path(__file__).parents[2] / "src")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meterhub",
            "demo",
            "--port",
            str(free_port()),
            "--data",
            str(data),
            "--mqtt",
            broker.url,
            "--site-id",
            "lab",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": src},
    )
    try:
        msgs = sub.wait_for(
            lambda m: sum(1 for x in m if x["topic"] == "meterhub/lab/rtdata") >= 1, timeout=60
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        log.close()
    assert code == 0, (data / "console.log").read_text()[-3000:]
    time.sleep(0.3)
    msgs = sub.messages()
    rt = [json.loads(str(m["payload"])) for m in msgs if m["topic"] == "meterhub/lab/rtdata"]
    assert rt, (data / "console.log").read_text()[-3000:]
    entries = rt[0]["rtdata"]
    assert len(entries) >= 12
    grid = next(e for e in entries if e["did"] == 1)  # the demo's first circuit: the 3P4W incomer
    assert list(grid) == SEED_FIELDS
    for f in ("V1", "V2", "V3", "V"):
        assert 180 <= grid[f] <= 260, (f, grid[f])
    for f in ("U1", "U2", "U3"):
        assert 310 <= grid[f] <= 450, (f, grid[f])
    assert 49.5 <= grid["F"] <= 50.5
    assert grid["P"] == pytest.approx(grid["P1"] + grid["P2"] + grid["P3"], rel=0.01)
    assert grid["I"] == pytest.approx(grid["I1"] + grid["I2"] + grid["I3"], rel=1e-6)
    assert -1 <= grid["PF"] <= 1 and grid["E"] >= 0 and grid["AE"] >= 0
    assert abs(grid["ts"] - time.time()) < 120
    topics = {str(m["topic"]) for m in msgs}
    assert "homeassistant/sensor/lab_grid/energy_active_import_total/config" in topics
    assert "homeassistant/sensor/lab_grid/active_power_total/config" in topics
    native = [json.loads(str(m["payload"])) for m in msgs if m["topic"] == "meterhub/lab/circuits/grid"]
    assert native
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    assert [e.message for e in validator.iter_errors(native[0])] == []
    status = [m["payload"] for m in msgs if m["topic"] == "meterhub/lab/status"]
    assert status[0] == "online" and status[-1] == "offline"
