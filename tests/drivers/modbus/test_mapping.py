"""Device values → circuit readings (pure): channel → supply phase, totals, shared voltage, raw registers."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterhub.config.loader import parse_config
from meterhub.drivers.base import SourceContext
from meterhub.drivers.modbus.mapping import DeviceValues, circuit_readings
from meterhub.drivers.modbus.memory import MemoryLink
from meterhub.drivers.modbus.reader import DeviceRead
from meterhub.drivers.modbus.source import ModbusSource
from meterhub.model.readings import Quality, Reading
from meterhub.model.topology import Phase
from meterhub.profiles import get_profile
from meterhub.profiles.schema import ProfileKind

SITE = """
site: {name: t}
buses: [{id: b, kind: modbus-tcp, port: 1502}]
devices:
  - {id: vu, bus: b, unit: 1, profile: enertrek-v10}
  - {id: m20, bus: b, unit: 2, profile: enertrek-m20}
  - {id: sdm, bus: b, unit: 3, profile: eastron-sdm630}
circuits:
  - {id: a, device: m20, channels: [2], wiring: 1P2W, phases: [L3], voltage_reference: vu}
  - {id: pump, device: sdm, channels: [1], wiring: 1P2W, phases: [L1]}
"""


def _values(profile_id: str, device_id: str, mapping: dict[tuple[str, Phase | None, int | None], float]):
    p = get_profile(profile_id)
    out = {}
    for pt in p.points():
        key = (pt.quantity, pt.phase, pt.channel)
        if key in mapping:
            out[pt] = mapping[key]
    return p, out


def _by_key(readings: list[Reading]) -> dict[tuple[str, str, Phase | None], float]:
    return {(r.circuit, r.quantity, r.phase): r.value for r in readings}


def test_channel_2_of_an_m20_on_l3_takes_the_voltage_units_l3():
    cfg = parse_config(SITE)
    _, vu_vals = _values(
        "enertrek-v10",
        "vu",
        {
            ("voltage", Phase.L1, None): 229.0,
            ("voltage", Phase.L3, None): 233.0,
            ("frequency", Phase.TOTAL, None): 50.01,
        },
    )
    _, m_vals = _values(
        "enertrek-m20",
        "m20",
        {
            ("current", None, 2): 4.0,
            ("active_power", None, 2): 880.0,
            ("apparent_power", None, 2): 932.0,
            ("energy_active_import", None, 2): 1234.5,
        },
    )
    vref = DeviceValues.from_points(ProfileKind.VOLTAGE_UNIT, 10.0, vu_vals)
    dv = DeviceValues.from_points(ProfileKind.CURRENT_MODULE, 10.0, m_vals, [1, 2])
    r = _by_key(circuit_readings(10.0, cfg.circuit("a"), dv, vref))
    assert r[("a", "current", Phase.L3)] == 4.0
    assert r[("a", "voltage", Phase.L3)] == 233.0 and r[("a", "voltage", Phase.TOTAL)] == 233.0
    assert ("a", "voltage", Phase.L1) not in r  # not this circuit's phase
    assert r[("a", "frequency", Phase.TOTAL)] == 50.01
    assert (
        r[("a", "energy_active_import", Phase.L3)] == r[("a", "energy_active_import", Phase.TOTAL)] == 1234.5
    )
    assert r[("a", "power_factor", Phase.TOTAL)] == pytest.approx(880.0 / 932.0)  # P/S, computed


def test_a_circuit_on_one_phase_of_a_meter_does_not_take_the_meters_totals():
    cfg = parse_config(SITE)
    _, vals = _values(
        "eastron-sdm630",
        "sdm",
        {
            ("active_power", Phase.L1, None): 1000.0,
            ("active_power", Phase.L2, None): 2000.0,
            ("active_power", Phase.TOTAL, None): 3000.0,
            ("voltage", Phase.L1, None): 231.0,
            ("energy_active_import", Phase.L1, None): 10.0,
            ("energy_active_import", Phase.TOTAL, None): 30.0,
        },
    )
    dv = DeviceValues.from_points(ProfileKind.METER, 5.0, vals, [1, 2, 3])
    r = _by_key(circuit_readings(5.0, cfg.circuit("pump"), dv))
    assert r[("pump", "active_power", Phase.TOTAL)] == 1000.0  # its own phase, not the meter's 3000
    assert r[("pump", "energy_active_import", Phase.TOTAL)] == 10.0
    assert r[("pump", "voltage", Phase.L1)] == 231.0  # a meter measures its own voltage
    assert ("pump", "active_power", Phase.L2) not in r


def test_energy_registers_pass_through_raw_the_register_guard_is_downstream(tmp_path: Path):
    """A drop, a float-noise wobble and a recovery leave the source exactly as the device gave them,
    GOOD: judging a decrease is energy/registers' job alone (issue 9 item 8)."""
    cfg = parse_config(SITE)
    src = ModbusSource(SourceContext(cfg, cfg.buses[0], cfg.devices, {}, tmp_path), link=MemoryLink())
    dev = next(d for d in src.polled if d.id == "m20")
    p = dev.reader.profile

    def read(wh: float) -> Reading:
        _, vals = _values(
            p.id, "m20", {("energy_active_import", None, 2): wh, ("active_power", None, 2): 1.0}
        )
        res = DeviceRead()
        res.values.update(vals)
        res.ok_blocks = 1
        out = {(r.circuit, r.quantity, r.phase): r for r in src.readings_for(dev, res, 1.0)}
        return out[("a", "energy_active_import", Phase.L3)]

    seen = [read(wh) for wh in (1000.0, 1000.0 - 1e-7, 0.0, 5.0, 1001.0)]
    assert [(r.value, r.quality) for r in seen] == [
        (1000.0, Quality.GOOD),
        (1000.0 - 1e-7, Quality.GOOD),
        (0.0, Quality.GOOD),
        (5.0, Quality.GOOD),
        (1001.0, Quality.GOOD),
    ]
