"""CT/VT semantics per profile (issue 10 item 12): secondary values are scaled by the circuit's ratios,
primary values are not; the simulator serves what such a device would, so the round trip still matches
the physical model."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest

from meterhub.config.loader import parse_config
from meterhub.config.schema import Circuit
from meterhub.drivers.base import SourceContext
from meterhub.drivers.modbus.mapping import DeviceValues, circuit_readings
from meterhub.drivers.modbus.source import ModbusSource, link_for_bus
from meterhub.model.quantities import Q
from meterhub.model.readings import Reading
from meterhub.model.topology import Phase, Wiring
from meterhub.profiles import all_profiles, get_profile
from meterhub.profiles.schema import Function, ProfileKind, parse_profile
from meterhub.profiles.transformers import circuit_ratios, fixed_ratio_reason, ratio_factor
from meterhub.sim.base import SimContext
from meterhub.sim.modbus_server import modbus_simulator
from meterhub.sim.physics import SiteModel

from .conftest import free_port

F32 = 2.0**-23

SITE = """
site: {name: ratios}
buses:
  - {id: panel, kind: modbus-tcp, host: 127.0.0.1, port: PORT, timeout: 0.5, retries: 1}
devices:
  - {id: vu, bus: panel, unit: 1, profile: enertrek-v10}
  - {id: e21, bus: panel, unit: 2, profile: enertrek-e21}
  - {id: meter, bus: panel, unit: 3, profile: eastron-sdm630}
circuits:
  # a conventional 800/5 A CT behind the Enertrek 5 A adapter: the module sees the 5 A side
  - {id: chiller, device: e21, channels: [1, 2, 3], wiring: 3P4W, voltage_reference: vu,
     ct: {kind: adapter-5a, ratio: 800/5}}
  # the SDM630MCT applies its own CT ratio: 800/5 here only documents what is set in the meter
  - {id: grid, device: meter, channels: [1, 2, 3], wiring: 3P4W, ct: {kind: adapter-5a, ratio: 800/5}}
simulation:
  loads:
    chiller: {model: constant, rated_power: 90000, power_factor: 0.85}
    grid: {model: supply, rated_power: 20000}
"""

SECONDARY_METER = """
id: test-secondary-meter
vendor: Test
model: secondary meter
source: a meter that reports what its 100 V / 5 A inputs see (test profile)
kind: meter
registers:
  - {quantity: voltage, phase: L1, address: 0}
  - {quantity: current, phase: L1, address: 2}
  - {quantity: active_power, phase: L1, address: 4}
  - {quantity: power_factor, phase: L1, address: 6}
  - {quantity: frequency, phase: total, address: 8}
  - {quantity: energy_active_import, phase: L1, address: 10}
transformers:
  values: secondary
  ct_register: {function: holding, address: 0x0100, holds: primary, source: test table 1}
"""


def _circuit(yaml_text: str, cid: str) -> Circuit:
    return parse_config(yaml_text.replace("PORT", "15999")).circuit(cid)


def _by_key(rs: list[Reading]) -> dict[tuple[str, Phase | None], float]:
    return {(r.quantity, r.phase): r.value for r in rs}


def test_adapter_secondary_current_times_ct_ratio_is_the_primary_current() -> None:
    chiller = _circuit(SITE, "chiller")
    assert circuit_ratios(get_profile("enertrek-e21"), chiller) == (160.0, 1.0)  # 800/5; no VT input
    dv = DeviceValues(ProfileKind.CURRENT_MODULE, 0.0, all_channels=frozenset({1, 2, 3}))
    for ch in (1, 2, 3):
        # what the module measures on the 5 A side: 2.5 A, 575 W at 230 V and PF 1, 1 kWh
        dv.channels[ch] = {
            Q.CURRENT: 2.5,
            Q.ACTIVE_POWER: 575.0,
            Q.POWER_FACTOR: 1.0,
            Q.ENERGY_ACTIVE_IMPORT: 1000.0,
        }
    out = _by_key(circuit_readings(0.0, chiller, dv, ratios=(160.0, 1.0)))
    assert out[(Q.CURRENT, Phase.L1)] == 400.0  # 2.5 A × 800/5
    assert out[(Q.ACTIVE_POWER, Phase.L2)] == 92_000.0  # 575 W × 160
    assert out[(Q.ACTIVE_POWER, Phase.TOTAL)] == 276_000.0  # 3 × 92 kW
    assert out[(Q.ENERGY_ACTIVE_IMPORT, Phase.L3)] == 160_000.0  # 1 kWh × 160 = 160 kWh
    assert out[(Q.POWER_FACTOR, Phase.L1)] == 1.0  # a ratio of like quantities: unchanged


def test_secondary_meter_applies_ct_and_vt_ratio() -> None:
    profile = parse_profile(SECONDARY_METER)
    site = SITE.replace(
        "ct: {kind: adapter-5a, ratio: 800/5}}",
        "ct: {kind: adapter-5a, ratio: 800/5},\n     vt_ratio: 20000/100}",
    )
    grid = _circuit(site, "grid")
    ratios = circuit_ratios(profile, grid)
    assert ratios == (160.0, 200.0)
    dv = DeviceValues.from_points(
        ProfileKind.METER,
        0.0,
        dict(zip(profile.points(), (100.0, 2.5, 250.0, 1.0, 50.0, 10.0), strict=True)),
    )
    out = _by_key(
        circuit_readings(
            0.0, grid.model_copy(update={"channels": [1], "wiring": Wiring.P1W2}), dv, ratios=ratios
        )
    )
    assert out[(Q.VOLTAGE, Phase.L1)] == 20_000.0  # 100 V × 20000/100
    assert out[(Q.CURRENT, Phase.L1)] == 400.0  # 2.5 A × 800/5
    assert out[(Q.ACTIVE_POWER, Phase.L1)] == 8_000_000.0  # 250 W × 160 × 200 = 8 MW
    assert out[(Q.ENERGY_ACTIVE_IMPORT, Phase.L1)] == 320_000.0  # 10 Wh × 32 000
    assert out[(Q.FREQUENCY, Phase.TOTAL)] == 50.0
    assert out[(Q.POWER_FACTOR, Phase.L1)] == 1.0
    reason = fixed_ratio_reason(profile, grid, vt=False)
    assert reason is None  # meterhub applies it: a change is allowed
    assert ratio_factor(Q.ENERGY_REACTIVE_IMPORT, 160.0, 200.0) == 32_000.0
    assert ratio_factor(Q.THD_CURRENT, 160.0, 200.0) == 1.0


def test_a_primary_meter_ignores_the_site_files_ratio() -> None:
    grid = _circuit(SITE, "grid")
    sdm = get_profile("eastron-sdm630")
    assert circuit_ratios(sdm, grid) == (1.0, 1.0)
    assert fixed_ratio_reason(sdm, grid, vt=False) == (
        "eastron-sdm630 reports primary values; set the CT ratio in the device "
        "(its set-up menu or vendor software)"
    )


def test_a_ratio_register_is_named_in_the_reason() -> None:
    profile = parse_profile(SECONDARY_METER.replace("values: secondary", "values: primary"))
    reason = fixed_ratio_reason(profile, _circuit(SITE, "grid"), vt=False)
    assert reason == (
        "test-secondary-meter reports primary values; set the CT ratio in the device "
        "(holding register 0x0100, test table 1)"
    )
    assert profile.transformers is not None and profile.transformers.ct_register is not None
    assert profile.transformers.ct_register.function is Function.HOLDING


def test_every_shipped_profile_declares_its_transformer_semantics() -> None:
    missing = [p.id for p in all_profiles() if p.transformers is None]
    assert missing == []


def test_round_trip_of_a_secondary_module_matches_the_model(tmp_path: Path) -> None:
    """The simulated E21 serves 5 A-side values (model / 160); the gateway multiplies them back."""
    cfg = parse_config(SITE.replace("PORT", str(free_port())))
    t = [1_790_000_000.0]
    model = SiteModel(cfg, clock=lambda: t[0])
    t[0] += 60.0
    model.advance()

    async def go() -> tuple[list[Reading], list[int]]:
        bus = cfg.buses[0]
        sim = await modbus_simulator(SimContext(cfg, bus, cfg.devices, model))
        src = ModbusSource(
            SourceContext(cfg, bus, cfg.devices, {}, tmp_path), link=link_for_bus(bus), wall=lambda: t[0]
        )
        got: list[Reading] = []
        src._emit = got.extend
        try:
            assert await src.scheduler.run_cycle() == 3
            raw = await src.link.read(Function.INPUT, 2, 0x0000, 2)  # E21 channel 1 current, float32
        finally:
            await src.close()
            await sim.close()
        return got, raw

    got, raw = asyncio.run(go())
    rd = {(r.circuit, r.quantity, r.phase): r.value for r in got}
    for k, ph in enumerate((Phase.L1, Phase.L2, Phase.L3), start=1):
        ch = model.channel("e21", k)
        assert rd[("chiller", Q.CURRENT, ph)] == pytest.approx(ch.current, rel=F32)
        assert rd[("chiller", Q.ACTIVE_POWER, ph)] == pytest.approx(ch.active_power, rel=F32)
        assert rd[("chiller", Q.ENERGY_ACTIVE_IMPORT, ph)] == pytest.approx(
            ch.energy["energy_active_import"], rel=1e-12
        )
    # on the wire: the 5 A side (≈ 90 kW / 3 / 230 V / 0.85 ≈ 153 A primary → ≈ 0.96 A)
    secondary = struct.unpack(">f", struct.pack(">HH", *raw))[0]
    assert secondary == pytest.approx(model.channel("e21", 1).current / 160.0, rel=F32)
    assert 0.5 < secondary < 5.0
    # the primary-valued SDM630 serves and reports its own values, the ratio untouched
    meter = model.channel("meter", 1)
    assert rd[("grid", Q.CURRENT, Phase.L1)] == pytest.approx(meter.current, rel=F32)
