"""The gateway's share of the line (``modbus_gateway.share``): forwarded requests hold a line at most that
fraction of its time, polling keeps the rest, a request that cannot get the line in its timeout is told
"busy" (06) — and every answer a client does get is the meter's registers."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from meterhub.checks import parse_site
from meterhub.profiles import get_profile
from meterhub.profiles.schema import Function
from meterhub.publish.modbus_gateway import BURST, WireShare
from meterhub.runtime import Gateway
from meterhub.sim.modbus_server import Framing, ProfileDevice, serve_devices
from meterhub.sim.physics import SiteModel
from meterhub.storage import open_storage


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def site(line: int, gateway: int) -> str:
    return f"""\
site: {{name: Lab}}
buses:
  - {{id: line, kind: modbus-rtu-over-tcp, port: {line}, timeout: 0.5}}
devices:
  - {{id: m, bus: line, unit: 3, profile: eastron-sdm630, poll_interval: 0.05}}
circuits:
  - {{id: m, device: m, channels: [1, 2, 3], wiring: 3P4W}}
modbus_gateway:
  tcp: {{host: 127.0.0.1, port: {gateway}}}
  routes:
    - {{unit: 13, bus: line, address: 3}}
"""


def test_the_credit_grows_by_the_share_and_a_spent_credit_makes_requests_wait() -> None:
    t = [0.0]
    w = WireShare(0.25, burst=1.0, clock=lambda: t[0])
    assert w.wait() == 0.0  # a full burst at the start
    w.spend(1.2)  # one request held the line 1.2 s: 0.2 s of debt
    assert w.wait() == pytest.approx(0.2 / 0.25)  # 0.8 s at 0.25 s per s pays it back
    t[0] = 0.8
    assert w.wait() == pytest.approx(0.0)
    t[0] = 100.0
    w.wait()
    assert w.credit == 1.0  # never more than the burst
    # over 100 s of full demand the gateway gets 0.25 · 100 + burst
    t[0], used = 0.0, 0.0
    w = WireShare(0.25, burst=1.0, clock=lambda: t[0])
    while t[0] < 100.0:
        t[0] += w.wait()
        w.spend(0.1)
        used += 0.1
        t[0] += 0.1
    assert used <= 0.25 * t[0] + 1.0 + 0.1


def test_under_load_the_gateway_keeps_to_its_share_and_polling_keeps_the_rest(tmp_path: Path) -> None:
    line, gw_port = free_port(), free_port()
    text = site(line, gw_port) + "  share: 0.25\n"
    cfg = parse_site(text, "lab.yaml")
    model = SiteModel.single_meter("m", rated_power=6000.0, clock=lambda: 1_790_000_030.0)
    model.advance()
    device = ProfileDevice("m", get_profile("eastron-sdm630"), model)
    expected = device.registers(Function.INPUT, 0, 60)
    assert isinstance(expected, list)

    async def go() -> dict[str, float]:
        # a 19200-baud RS485 line: a 60-register read takes ~70 ms of wire time
        sim = await serve_devices({3: device}, kind=Framing.RTU_OVER_TCP, port=line, line_baud=19200)
        gw = Gateway(cfg, data_dir=tmp_path, storage=open_storage(cfg.storage, tmp_path, timezone="UTC"))
        await gw.start()
        wrong, ok, busy = 0, 0, 0
        try:
            await asyncio.sleep(0.3)
            link = gw.modbus_links()["line"]
            assert gw.modbus_gateway is not None
            stats = gw.modbus_gateway.stats
            line_busy0, gw_busy0, polls0 = link.stats.busy, stats.wire_time, gw.status["m"].requests
            t0 = time.monotonic()
            stop = t0 + 4.0

            async def client() -> None:  # a SCADA asking as fast as it is answered
                nonlocal wrong, ok, busy
                c = AsyncModbusTcpClient("127.0.0.1", port=gw_port, timeout=5)
                await c.connect()
                while time.monotonic() < stop:
                    rr = await c.read_input_registers(0, count=60, device_id=13)
                    if rr.isError():
                        busy += rr.exception_code == 6
                        wrong += rr.exception_code != 6
                    elif list(rr.registers) == expected:
                        ok += 1
                    else:
                        wrong += 1
                c.close()

            await asyncio.gather(*(client() for _ in range(4)))
            elapsed = time.monotonic() - t0
            gateway = stats.wire_time - gw_busy0
            polling = link.stats.busy - line_busy0 - gateway
            return {
                "elapsed": elapsed,
                "gateway": gateway,
                "polling": polling,
                "polls": gw.status["m"].requests - polls0,
                "poll_failures": gw.status["m"].errors + gw.status["m"].timeouts,
                "ok": ok,
                "busy": busy,
                "wrong": wrong,
                "counted_busy": stats.busy,
            }
        finally:
            await gw.stop()
            await sim.close()

    r = asyncio.run(go())
    assert r["gateway"] <= 0.25 * r["elapsed"] + BURST + 0.2  # the share, its burst, one request
    assert r["polling"] > r["gateway"]  # polling kept the larger part of the line
    assert r["ok"] >= 5 and r["wrong"] == 0  # what a client gets is the meter's registers or 06
    assert r["busy"] == r["counted_busy"]
    assert r["poll_failures"] == 0 and r["polls"] >= 10
