"""``meterhub demo`` serves kind iec62056-21 and dlms buses with the meter emulator, and the gateway
reads both (values from the demo's physical model on the optical port)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from meterhub.checks import parse_site
from meterhub.model.quantities import Q
from meterhub.model.readings import SeriesKey
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway
from meterhub.runtime.demo import start_simulators
from meterhub.storage import open_storage


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_demo_simulates_optical_and_dlms_buses_and_the_gateway_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_PW", "22222222")  # the emulator's reader password
    text = f"""
site: {{name: demo meters}}
buses:
  - {{id: optical, kind: iec62056-21, port: {_port()}, timeout: 1.0}}
  - {{id: dlms-mode-e, kind: dlms, port: {_port()}, framing: mode-e, client_sap: 17, password_env: DEMO_PW}}
devices:
  - {{id: m-iec, bus: optical, profile: seed002-1p-dlms, poll_interval: 0.2}}
  - {{id: m-dlms, bus: dlms-mode-e, profile: seed002-1p-dlms, poll_interval: 0.2}}
circuits:
  - {{id: flat, device: m-iec, channels: [1], wiring: 1P2W}}
  - {{id: shop, device: m-dlms, channels: [1], wiring: 1P2W}}
simulation:
  loads:
    flat: {{model: constant, rated_power: 2300, power_factor: 1.0}}
"""
    cfg = parse_site(text, "site.yaml")

    async def go() -> Gateway:
        sims, model = await start_simulators(cfg, tmp_path)
        data = tmp_path / "data"
        gw = Gateway(cfg, data_dir=data, storage=open_storage(cfg.storage, data, timezone="UTC"))
        await gw.start()
        try:
            deadline = time.monotonic() + 15
            keys = [SeriesKey("flat", Q.ACTIVE_POWER, Phase.TOTAL), SeriesKey("shop", Q.VOLTAGE, Phase.L1)]
            while any(gw.live.get(k) is None for k in keys):
                assert time.monotonic() < deadline, [
                    (s.id, s.online, s.last_error) for s in gw.status.values()
                ]
                await asyncio.sleep(0.05)
        finally:
            await gw.stop()
            for s in sims:
                await s.close()
        return gw

    gw = asyncio.run(go())
    power = gw.live.get(SeriesKey("flat", Q.ACTIVE_POWER, Phase.TOTAL))
    assert power is not None and abs(power.value - 2300) < 50  # the demo's constant 2.3 kW load
    assert gw.status["m-iec"].online and gw.status["m-dlms"].online
