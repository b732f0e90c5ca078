"""The issue's "done when": pysunspec2, an independent SunSpec client, walks ``meterhub demo --modbus-server``
and decodes every circuit; its values equal ``GET /api/v1/live`` within their scale factors."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sunspec2.modbus.client as sunspec_client

from meterhub.publish.sunspec import Point, PointType, Role, meter_points

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def walk(port: int, unit: int) -> tuple[int, dict[str, object], dict[str, object]]:
    dev = sunspec_client.SunSpecModbusClientDeviceTCP(
        slave_id=unit, ipaddr="127.0.0.1", ipport=port, timeout=5
    )
    try:
        dev.scan()
        common = dev.models["common"][0]
        (meter,) = [m[0] for k, m in dev.models.items() if isinstance(k, int) and k != 1]
        return (
            int(meter.ID.value),
            {k: p.cvalue for k, p in common.points.items()},
            {k: p.cvalue for k, p in meter.points.items()},
        )
    finally:
        dev.close()


def live(web: int, circuit: str) -> dict[tuple[str, str], float]:
    rows = httpx.get(f"http://127.0.0.1:{web}/api/v1/live", params={"circuit": circuit}, timeout=10).json()
    return {(x["quantity"], x["phase"]): x["value"] for x in rows["readings"] if x["value"] is not None}


def expected(point: Point, values: dict[tuple[str, str], float], supply: list[str]) -> float | None:
    assert point.quantity is not None and point.role is not None
    if point.role is Role.SUM:
        parts = [values.get((point.quantity, p)) for p in supply]
        return None if None in parts else sum(v for v in parts if v is not None)
    fixed = {Role.TOTAL: "total", Role.AB: "L1", Role.BC: "L2", Role.CA: "L3"}
    i = "ABC".find(point.role.value) if point.role not in fixed else -1
    phase = fixed.get(point.role) or (supply[i] if 0 <= i < len(supply) else None)
    if phase is None:
        return None
    v = values.get((point.quantity, phase))
    return None if v is None else v * point.scale


def test_pysunspec2_decodes_every_circuit_of_the_demo(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    data.mkdir()
    site = (ROOT / "examples" / "demo-site.yaml").read_text(encoding="utf-8")
    (data / "site.yaml").write_text(
        site.replace("web:\n", "web:\n  public_live: true\n", 1), encoding="utf-8"
    )
    web, port = free_port(), free_port()
    log = (data / "console.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meterhub",
            "demo",
            "--port",
            str(web),
            "--data",
            str(data),
            "--modbus-server",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "PYTHONPATH": str(ROOT / "src")},
    )
    try:
        circuits = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                got = httpx.get(f"http://127.0.0.1:{web}/api/v1/circuits", timeout=5).json()
                walk(port, 1)
                circuits = got
                break
            except Exception:
                time.sleep(1)
        assert circuits is not None, (data / "console.log").read_text()[-3000:]
        time.sleep(3)  # every device polled at least once
        ac = [
            c for c in circuits if not c.get("virtual") and c["wiring"] != "DC"
        ]  # virtual: computed, not served
        assert len(ac) >= 12
        decoded = 0
        for unit, c in enumerate(ac, start=1):
            supply = c["phases"] if c["wiring"] in ("1P2W", "1P3W") else ["L1", "L2", "L3"]
            for _attempt in range(5):
                before = live(web, c["id"])
                model, common, meter = walk(port, unit)
                after = live(web, c["id"])
                if before == after:  # no poll in between: one snapshot on both sides
                    break
            assert common["SN"] == c["id"] and common["DA"] == unit
            assert model == {"1P2W": 201, "1P3W": 202, "3P4W": 203, "3P3W": 204}[c["wiring"]]
            sfs = {k: v for k, v in meter.items() if k.endswith("_SF")}
            for p in meter_points(model):
                if p.quantity is None:
                    continue
                want = expected(p, before, supply)
                got = meter[p.name]
                if want is None:
                    assert got is None, (c["id"], p.name, got)
                    continue
                if p.type is PointType.ACC32 and round(want) == 0:
                    assert got is None, (c["id"], p.name, got)  # SunSpec: an acc32 of 0 is "not implemented"
                    continue
                assert got is not None, (c["id"], p.name, want)
                step = 10.0 ** int(sfs[p.sf]) if p.sf else 0.0  # type: ignore[call-overload]
                assert math.isclose(float(got), want, abs_tol=step / 2 + 1e-9 + abs(want) * 1e-6), (
                    c["id"],
                    p.name,
                    got,
                    want,
                )
                decoded += 1
        assert decoded >= 10 * len(ac)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        log.close()
    assert code == 0, (data / "console.log").read_text()[-3000:]
    assert f"tcp://127.0.0.1:{port}" in (data / "console.log").read_text()  # the banner names it
