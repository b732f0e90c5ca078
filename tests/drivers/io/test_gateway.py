"""The io bus in the running gateway: simulated DS18B20 probes → 1-wire source → live values."""

from __future__ import annotations

import asyncio
from pathlib import Path

from meterhub.config.loader import parse_config
from meterhub.model.readings import SeriesKey
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway
from meterhub.storage import open_storage


def test_gateway_reads_simulated_probes_into_the_live_cache(tmp_path: Path):
    w1 = tmp_path / "w1"
    cfg = parse_config(
        f"""\
site: {{name: w1 gateway}}
buses: [{{id: local, kind: io}}]
devices: [{{id: w1, bus: local, profile: linux-w1, poll_interval: 0.2}}]
io:
  w1_root: {w1}
  points:
    - {{id: boiler, kind: temperature, device: w1, sensor: 28-0316a2795bff}}
    - {{id: return, kind: temperature, device: w1, sensor: 28-0316a2795c00, offset: 0.5}}
"""
    )
    from meterhub.sim.io import W1Simulator, format_w1_slave

    async def go() -> tuple[dict[str, float], bool]:
        sim = W1Simulator(w1, ["28-0316a2795bff"])
        sim.write_all()
        # the second probe reads a fixed value, so the offset can be checked by hand: 40 + 0.5 °C
        (w1 / "28-0316a2795c00").mkdir()
        (w1 / "28-0316a2795c00" / "w1_slave").write_text(format_w1_slave(40.0))
        gw = Gateway(cfg, data_dir=tmp_path / "data", storage=open_storage(cfg.storage, tmp_path / "data"))
        await gw.start()
        try:
            for _ in range(200):  # wait for the first poll (bounded; not a timing assertion)
                if len(gw.live) >= 2:
                    break
                await asyncio.sleep(0.05)
            values = {r.circuit: r.value for r in gw.live.readings()}
            return values, gw.status["w1"].online
        finally:
            await gw.stop()

    values, online = asyncio.run(go())
    assert values["return"] == 40.5
    assert 12.0 <= values["boiler"] <= 68.0  # the simulator's 15…65 °C ± 3 K
    assert online
    storage = open_storage(cfg.storage, tmp_path / "data")
    try:
        assert SeriesKey("return", "temperature", Phase.TOTAL) in storage.series()  # flushed on stop
    finally:
        storage.close()
