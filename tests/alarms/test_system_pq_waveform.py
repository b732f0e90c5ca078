"""The ``system:pq`` rule end to end: the simulated ADC board (sim/adc.py) dips one phase, the gateway's
waveform source detects it on raw samples (IEC 61000-4-30 §5.4.2, metering/events.py), hands the
PqEvent to the power-quality log and to the alarm engine, and the alarm of that device and phase is
raised with the residual voltage the simulator logged."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest

from meterhub.alarms.model import AlarmEvent
from meterhub.checks import parse_site
from meterhub.runtime import Gateway
from meterhub.sim.adc import AdcBoard, AdcServer
from meterhub.sim.physics import SiteModel
from meterhub.storage import open_storage

SITE = """\
site: {name: PQ waveform}
buses:
  - {id: adc, kind: waveform, port: PORT}
devices:
  - {id: board, bus: adc, profile: meterhub-adc-8x3}
circuits:
  - {id: press, device: board, channels: [1, 2, 3], wiring: 3P4W, ct: {kind: adapter-5a, ratio: 100/5}}
alarms:
  system:
    pq: {recovery: 60}
simulation:
  voltage_variation: 0
  loads: {press: {model: constant, rated_power: 9000, power_factor: 0.9}}
"""


@pytest.mark.slow
def test_a_simulated_dip_raises_the_pq_alarm_of_its_phase(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="meterhub")
    raised: list[AlarmEvent] = []

    class Listener:
        def on_event(self, event: AlarmEvent) -> None:
            if event.rule == "system:pq":
                raised.append(event)

    async def go() -> None:
        base = parse_site(SITE.replace("PORT", "1"), "site.yaml")
        board = AdcBoard(SiteModel(base), base.devices[0], base.circuits, dip_interval=0.5, seed=3)
        server = AdcServer(board, "127.0.0.1", 0, max_lag=1e9)
        await server.start()
        cfg = parse_site(SITE.replace("PORT", str(server.port)), "site.yaml")
        gw = Gateway(cfg, data_dir=tmp_path, storage=open_storage(cfg.storage, tmp_path))
        gw.alarms.add_listener(Listener())
        await gw.start()
        try:
            for _ in range(300):  # the first dip comes 5 s + about 0.5 s after the board starts
                await asyncio.sleep(0.1)
                if raised:
                    break
        finally:
            await gw.stop()
            await server.close()

    asyncio.run(go())
    assert raised, "no power-quality alarm within 30 s"
    ev = raised[0]
    sim = re.search(r"dip on L(\d) to (\d+) %", caplog.text)
    assert sim is not None, caplog.text
    assert ev.kind.value == "raised" and ev.alarm_id == f"system:pq/board/L{sim.group(1)}"
    # the residual voltage [V] is the simulator's depth × 230 V, within the half-cycle rms's smoothing
    assert ev.value is not None and abs(ev.value - int(sim.group(2)) / 100 * 230) < 0.05 * 230, (
        ev.value,
        sim[0],
    )
