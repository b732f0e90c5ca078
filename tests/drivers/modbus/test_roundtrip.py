"""Round trip: simulate a seed-000 bus (V10 + M30 + M20) → read it as the gateway does → the
circuit readings equal the physical model within the register resolution (float32: 2⁻²³ relative;
float64 energy: exact)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from meterhub.config.loader import parse_config
from meterhub.drivers.base import SourceContext
from meterhub.drivers.modbus.source import ModbusSource, link_for_bus
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase
from meterhub.sim.base import SimContext
from meterhub.sim.modbus_server import modbus_simulator
from meterhub.sim.physics import SiteModel

from .conftest import SMALL_SITE, free_port

F32 = 2.0**-23  # relative resolution of a float32 register


def _read_site(
    clock, tmp_path: Path
) -> tuple[dict[tuple[str, str, Phase | None], Reading], SiteModel, ModbusSource]:
    cfg = parse_config(SMALL_SITE.replace("PORT", str(free_port())))
    model = SiteModel(cfg, clock=clock)
    clock.t += 120.0  # two minutes of load, so the energy registers are well above zero
    model.advance()

    async def go() -> tuple[list[Reading], ModbusSource]:
        bus = cfg.buses[0]
        sim = await modbus_simulator(SimContext(cfg, bus, cfg.devices, model))
        src = ModbusSource(
            SourceContext(cfg, bus, cfg.devices, {}, tmp_path), link=link_for_bus(bus), wall=clock
        )
        got: list[Reading] = []
        src._emit = got.extend
        try:
            assert await src.scheduler.run_cycle() == 3
        finally:
            await src.close()
            await sim.close()
        return got, src

    got, src = asyncio.run(go())
    return {(r.circuit, r.quantity, r.phase): r for r in got}, model, src


def test_three_phase_circuit_on_m30_matches_the_model(clock, tmp_path):
    rd, model, src = _read_site(clock, tmp_path)
    sup = model.supply()
    for k, ph in enumerate((Phase.L1, Phase.L2, Phase.L3)):
        ch = model.channel("m-hvac", k + 1)
        for q in ("current", "active_power", "reactive_power", "apparent_power", "power_factor"):
            assert rd[("hvac", q, ph)].value == pytest.approx(getattr(ch, q), rel=F32)
        # float64 Wh registers: not one bit lost
        assert rd[("hvac", "energy_active_import", ph)].value == ch.energy["energy_active_import"]
        assert rd[("hvac", "voltage", ph)].value == pytest.approx(sup.voltage[k], rel=F32)
        assert rd[("hvac", "voltage_line", ph)].value == pytest.approx(sup.voltage_line[k], rel=F32)
    total = model.circuit_energy("hvac")["energy_active_import"]
    assert total > 250.0  # 9 kW for 120 s = 300 Wh
    assert rd[("hvac", "energy_active_import", Phase.TOTAL)].value == pytest.approx(total, rel=1e-12)
    assert rd[("hvac", "active_power", Phase.TOTAL)].value == pytest.approx(
        model.value("m-hvac", "active_power", Phase.TOTAL), rel=F32
    )
    assert rd[("hvac", "power_factor", Phase.TOTAL)].value == pytest.approx(
        model.value("m-hvac", "power_factor", Phase.TOTAL), rel=4 * F32
    )
    assert rd[("hvac", "frequency", Phase.TOTAL)].value == pytest.approx(sup.frequency, rel=F32)
    assert all(st.online and st.errors == 0 for st in src.ctx.status.values())


def test_single_phase_circuits_share_one_m20_and_take_their_own_phase_voltage(clock, tmp_path):
    rd, model, _ = _read_site(clock, tmp_path)
    sup = model.supply()
    for cid, ch_no, ph in (("sockets-1", 1, Phase.L2), ("sockets-2", 2, Phase.L3)):
        ch = model.channel("m-sockets", ch_no)
        assert rd[(cid, "active_power", ph)].value == pytest.approx(ch.active_power, rel=F32)
        assert rd[(cid, "active_power", Phase.TOTAL)].value == pytest.approx(ch.active_power, rel=F32)
        e = ch.energy["energy_active_import"]
        assert rd[(cid, "energy_active_import", ph)].value == e
        assert rd[(cid, "energy_active_import", Phase.TOTAL)].value == e
        idx = ("L1", "L2", "L3").index(ph.value)
        assert rd[(cid, "voltage", ph)].value == pytest.approx(sup.voltage[idx], rel=F32)
        # a single-phase circuit has no line-to-line voltage and no other phase
        assert (cid, "voltage_line", Phase.L1) not in rd
        assert (cid, "current", Phase.L1) not in rd


def test_voltage_unit_readings_go_out_under_its_device_id(clock, tmp_path):
    rd, model, _ = _read_site(clock, tmp_path)
    sup = model.supply()
    assert rd[("vu", "voltage", Phase.L1)].value == pytest.approx(sup.voltage[0], rel=F32)
    assert rd[("vu", "voltage", Phase.TOTAL)].value == pytest.approx(float(sup.voltage.mean()), rel=F32)
    assert rd[("vu", "thd_voltage", Phase.L3)].value == pytest.approx(sup.thd_voltage[2], rel=F32)
    assert not math.isnan(rd[("vu", "voltage_unbalance_negative", Phase.TOTAL)].value)


def test_a_reversed_ct_is_simulated_as_minus_i_and_corrected_by_the_gateway(clock, tmp_path):
    site = SMALL_SITE.replace(
        "{id: sockets-1, device: m-sockets, channels: [1], wiring: 1P2W, phases: [L2], voltage_reference: vu}",
        "{id: sockets-1, device: m-sockets, channels: [1], wiring: 1P2W, phases: [L2], voltage_reference: vu, "
        "reversed: true}",
    )
    cfg = parse_config(site.replace("PORT", str(free_port())))
    model = SiteModel(cfg, clock=clock)
    clock.t += 60.0
    model.advance()

    async def go():
        from meterhub.drivers.modbus.reader import DeviceReader
        from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
        from meterhub.profiles import get_profile

        bus = cfg.buses[0]
        sim = await modbus_simulator(SimContext(cfg, bus, cfg.devices, model))
        src = ModbusSource(
            SourceContext(cfg, bus, cfg.devices, {}, tmp_path), link=link_for_bus(bus), wall=clock
        )
        got: list[Reading] = []
        src._emit = got.extend
        link = ModbusLink(TransportKind.TCP, port=bus.port or 0, timeout=0.5)
        try:
            await src.scheduler.run_cycle()
            raw = await DeviceReader("m-sockets", get_profile("enertrek-m20"), 3).read(link)
        finally:
            await link.close()
            await src.close()
            await sim.close()
        return got, raw

    got, raw = asyncio.run(go())
    ch = model.channel("m-sockets", 1)
    wire = {(p.quantity, p.channel): v for p, v in raw.values.items()}
    assert wire[("active_power", 1)] == pytest.approx(-ch.active_power, rel=F32)  # what the module sees
    assert wire[("energy_active_export", 1)] == ch.energy["energy_active_import"]
    rd = {(r.circuit, r.quantity, r.phase): r.value for r in got}
    assert rd[("sockets-1", "active_power", Phase.L2)] == pytest.approx(ch.active_power, rel=F32)
    assert rd[("sockets-1", "energy_active_import", Phase.TOTAL)] == ch.energy["energy_active_import"]
    assert rd[("sockets-1", "energy_active_export", Phase.TOTAL)] == ch.energy["energy_active_export"] == 0.0
