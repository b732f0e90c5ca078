"""The live waveform source publishes reactive import and export registers per phase and total.

The simulated ADC board streams a motor (9 kW rated) at PF 0.8 (inductive: QI); the source's readings must
carry R+ = Q1 + Q2 growing at the model's reactive power and R− = Q3 + Q4 = 0, and both must continue
across a restart of the source.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from meterhub.config.schema import (
    Bus,
    BusKind,
    Circuit,
    CTSpec,
    Device,
    LoadSpec,
    Simulation,
    SiteConfig,
    SiteInfo,
)
from meterhub.drivers.base import SourceContext
from meterhub.drivers.waveform.source import waveform_sources
from meterhub.model.quantities import Q
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase
from meterhub.sim.adc import start_adc_simulator
from meterhub.sim.base import SimContext
from meterhub.sim.physics import SiteModel

PHASES = (Phase.L1, Phase.L2, Phase.L3, Phase.TOTAL)


def site(port: int | None = None) -> SiteConfig:
    return SiteConfig(
        site=SiteInfo(name="reactive test"),
        buses=[Bus(id="adc", kind=BusKind.WAVEFORM, port=port)],
        devices=[Device(id="board", bus="adc", profile="meterhub-adc-8x3")],
        circuits=[
            Circuit(
                id="press",
                device="board",
                channels=[1, 2, 3],
                wiring="3P4W",
                ct=CTSpec(kind="current-output", ratio="100/0.05", burden=10),
            )
        ],
        simulation=Simulation(
            voltage_variation=0.0,
            loads={"press": LoadSpec(rated_power=9000, model="motor", power_factor=0.8, period=1e6)},
        ),
    )


async def _readings(tmp_path: Path, seconds: int) -> tuple[list[Reading], SiteModel]:
    cfg = site()
    model = SiteModel(cfg)
    server = await start_adc_simulator(SimContext(cfg, cfg.buses[0], cfg.devices, model))
    try:
        port = int(server.endpoint.rsplit(":", 1)[1])
        live = site(port)
        (src,) = waveform_sources(SourceContext(live, live.buses[0], live.devices, {}, tmp_path))
        batches: list[list[Reading]] = []
        task = asyncio.create_task(src.run(lambda rs: batches.append(list(rs))))
        for _ in range(400):
            await asyncio.sleep(0.05)
            if len(batches) >= seconds:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await src.close()
    finally:
        await server.close()
    return [r for b in batches for r in b], model


def _series(readings: list[Reading], quantity: str, phase: Phase) -> list[Reading]:
    return [r for r in readings if (r.circuit, r.quantity, r.phase) == ("press", quantity, phase)]


def test_waveform_circuit_publishes_reactive_import_and_export_per_phase(tmp_path: Path) -> None:
    readings, model = asyncio.run(_readings(tmp_path, 4))
    at_last = {(r.quantity, r.phase): r.value for r in readings if r.ts == readings[-1].ts}
    for ph in PHASES:
        q1, q2 = at_last[(Q.ENERGY_REACTIVE_Q1, ph)], at_last[(Q.ENERGY_REACTIVE_Q2, ph)]
        q3, q4 = at_last[(Q.ENERGY_REACTIVE_Q3, ph)], at_last[(Q.ENERGY_REACTIVE_Q4, ph)]
        assert at_last[(Q.ENERGY_REACTIVE_IMPORT, ph)] == q1 + q2 > 0
        assert at_last[(Q.ENERGY_REACTIVE_EXPORT, ph)] == q3 + q4 == 0.0  # an inductive load: QI only
    # R+ grows at the model's Q (the motor's load point at this time of day, PF 0.8: Q = 0.75·P)
    rp = _series(readings, Q.ENERGY_REACTIVE_IMPORT, Phase.TOTAL)
    assert len(rp) >= 3 and all(b.value >= a.value for a, b in zip(rp, rp[1:], strict=False))
    q_model = sum(model.channel("board", ch).reactive_power for ch in (1, 2, 3))
    p_model = sum(model.channel("board", ch).active_power for ch in (1, 2, 3))
    assert q_model == pytest.approx(0.75 * p_model, rel=0.02)
    rate = (rp[-1].value - rp[0].value) * 3600.0 / (rp[-1].ts - rp[0].ts)  # [var]
    assert rate == pytest.approx(q_model, rel=0.02)


def test_reactive_registers_continue_after_a_restart(tmp_path: Path) -> None:
    first, _ = asyncio.run(_readings(tmp_path, 2))
    second, _ = asyncio.run(_readings(tmp_path, 2))
    e1 = _series(first, Q.ENERGY_REACTIVE_IMPORT, Phase.TOTAL)[-1].value
    e2 = _series(second, Q.ENERGY_REACTIVE_IMPORT, Phase.TOTAL)[0].value
    assert e1 > 0 and e2 >= e1
