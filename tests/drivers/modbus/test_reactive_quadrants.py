"""A meter that counts reactive energy by quadrant only (SunSpec model 213) still gives reactive import
R+ = QI + QII and export R− = QIII + QIV (IEC 62053-23), per phase and total — read from a simulated
meter over Modbus TCP and compared with the physical model; and the quadrant sum by hand."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from meterhub.config.loader import parse_config
from meterhub.config.schema import Circuit
from meterhub.drivers.base import SourceContext
from meterhub.drivers.modbus.mapping import DeviceValues, circuit_readings
from meterhub.drivers.modbus.source import ModbusSource, link_for_bus
from meterhub.model.quantities import Q
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase
from meterhub.profiles.schema import ProfileKind
from meterhub.sim.base import SimContext
from meterhub.sim.modbus_server import modbus_simulator
from meterhub.sim.physics import SiteModel

from .conftest import ManualClock, free_port

SITE = """
site: {name: sunspec}
buses:
  - {id: lan, kind: modbus-tcp, host: 127.0.0.1, port: PORT, timeout: 0.5, retries: 1}
devices:
  - {id: meter, bus: lan, unit: 240, profile: sunspec-meter-213}
circuits:
  - {id: feeder, device: meter, channels: [1, 2, 3], wiring: 3P4W}
simulation:
  loads:
    feeder: {model: constant, rated_power: 9000, power_factor: 0.85}
"""
F32 = 2.0**-23


def test_sunspec_meter_reactive_import_is_the_sum_of_its_quadrant_registers(
    clock: ManualClock, tmp_path: Path
) -> None:
    cfg = parse_config(SITE.replace("PORT", str(free_port())))
    model = SiteModel(cfg, clock=clock)
    clock.t += 120.0  # two minutes at 9 kW, PF 0.85 lagging: QI only
    model.advance()

    async def go() -> list[Reading]:
        bus = cfg.buses[0]
        sim = await modbus_simulator(SimContext(cfg, bus, cfg.devices, model))
        src = ModbusSource(
            SourceContext(cfg, bus, cfg.devices, {}, tmp_path), link=link_for_bus(bus), wall=clock
        )
        got: list[Reading] = []
        src._emit = got.extend
        try:
            assert await src.scheduler.run_cycle() == 1
        finally:
            await src.close()
            await sim.close()
        return got

    rd = {(r.quantity, r.phase): r.value for r in asyncio.run(go()) if r.circuit == "feeder"}
    for k, ph in enumerate((Phase.L1, Phase.L2, Phase.L3)):
        e = model.channel("meter", k + 1).energy
        assert rd[(Q.ENERGY_REACTIVE_Q1, ph)] == pytest.approx(e[Q.ENERGY_REACTIVE_Q1], rel=F32)
        assert (
            rd[(Q.ENERGY_REACTIVE_IMPORT, ph)]
            == rd[(Q.ENERGY_REACTIVE_Q1, ph)] + rd[(Q.ENERGY_REACTIVE_Q2, ph)]
        )
        assert rd[(Q.ENERGY_REACTIVE_EXPORT, ph)] == 0.0
    total = model.circuit_energy("feeder")
    # 9 kW at PF 0.85 for 120 s: Q = 9000 · tan(acos 0.85) = 5578 var → 185.9 varh
    assert total[Q.ENERGY_REACTIVE_Q1] == pytest.approx(5577.7 * 120 / 3600, rel=0.01)
    assert rd[(Q.ENERGY_REACTIVE_IMPORT, Phase.TOTAL)] == pytest.approx(total[Q.ENERGY_REACTIVE_Q1], rel=F32)
    # TotVAhImp (offset 84) is the apparent energy: 9000 / 0.85 VA for 120 s = 352.9 VAh
    assert rd[(Q.ENERGY_APPARENT, Phase.TOTAL)] == pytest.approx(total[Q.ENERGY_APPARENT], rel=F32)
    assert rd[(Q.ENERGY_APPARENT, Phase.TOTAL)] == pytest.approx(9000 / 0.85 * 120 / 3600, rel=0.01)


def test_quadrant_sums_by_hand_and_a_meter_with_its_own_registers_keeps_them() -> None:
    circuit = Circuit(id="c", device="d", channels=[1], wiring="1P2W")
    quadrants = {Q.ENERGY_REACTIVE_Q1: 100.0, Q.ENERGY_REACTIVE_Q2: 20.0, Q.ENERGY_REACTIVE_Q3: 3.0,
                 Q.ENERGY_REACTIVE_Q4: 0.5}  # fmt: skip
    dv = DeviceValues(ProfileKind.METER, 0.0, channels={1: dict(quadrants)})
    got = {(r.quantity, r.phase): r.value for r in circuit_readings(0.0, circuit, dv)}
    assert got[(Q.ENERGY_REACTIVE_IMPORT, Phase.L1)] == 120.0  # 100 + 20
    assert got[(Q.ENERGY_REACTIVE_EXPORT, Phase.L1)] == 3.5  # 3 + 0.5
    own = DeviceValues(ProfileKind.METER, 0.0, channels={1: {**quadrants, Q.ENERGY_REACTIVE_IMPORT: 119.0}})
    got = {(r.quantity, r.phase): r.value for r in circuit_readings(0.0, circuit, own)}
    assert got[(Q.ENERGY_REACTIVE_IMPORT, Phase.L1)] == 119.0
