"""IO modules end to end: a simulated pulse concentrator and DIO-4/2 served over Modbus TCP on loopback,
read by the running gateway (Modbus source → IO processing → energy stage → live cache).

The simulators take their inputs from :class:`IOSimulation` on a clock the test moves, so the expected
counts and contact states are computed by hand from the same functions.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import meterhub.runtime.demo  # noqa: F401 - registers the simulators
from meterhub.config.loader import parse_config
from meterhub.drivers.io.config import AnalogInPoint, DigitalPoint, PulsePoint, io_section
from meterhub.model.readings import SeriesKey
from meterhub.model.topology import Phase
from meterhub.runtime import Gateway
from meterhub.sim.base import SimContext, simulator_factory
from meterhub.sim.io import IOSimulation
from meterhub.sim.physics import SiteModel
from meterhub.storage import open_storage

SITE = """\
site: {name: io path}
buses: [{id: rs485, kind: modbus-tcp, port: PORT, timeout: 3}]
devices:
  - {id: vu, bus: rs485, unit: 1, profile: enertrek-v10, poll_interval: 5}
  - {id: conc1, bus: rs485, unit: 2, profile: pulse-concentrator-7, poll_interval: 0.1}
  - {id: dio1, bus: rs485, unit: 3, profile: enertrek-dio-4-2, poll_interval: 0.1}
  - {id: aio1, bus: rs485, unit: 4, profile: enertrek-aio-2-2, poll_interval: 0.1}
io:
  points:
    - {id: heat, kind: pulse, device: conc1, channel: 1, medium: electricity, unit: kWh, weight: 0.001}
    - {id: gas, kind: pulse, device: conc1, channel: 2, medium: gas, unit: m3, weight: 0.01, contact: NC,
       debounce: 0.2}
    - {id: door, kind: digital, device: dio1, channel: 1, function: generic}
    - {id: fan, kind: relay, device: dio1, channel: 1}
    - {id: tank, kind: analog-in, device: aio1, channel: 1, signal: 4-20mA, range: [0, 10], unit: bar}
    - {id: supply-temp, kind: analog-in, device: aio1, channel: 2, signal: 0-10V, range: [-20, 80]}
    - {id: valve, kind: analog-out, device: aio1, channel: 1, signal: 4-20mA, range: [0, 100]}
"""


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_pulses_and_inputs_of_simulated_modules_reach_the_live_values(tmp_path: Path):
    cfg = parse_config(SITE.replace("PORT", str(free_port())))
    points = {p.id: p for p in io_section(cfg).points}
    heat, gas, door = points["heat"], points["gas"], points["door"]
    assert isinstance(heat, PulsePoint) and isinstance(gas, PulsePoint) and isinstance(door, DigitalPoint)
    sim = IOSimulation(cfg)
    # start where the generic input is on (minutes 0…9 of its 20-minute cycle); 10 min later it is off
    t0 = 1_790_000_000.0
    while not sim.contact_closed(door, t0) or sim.contact_closed(door, t0 - 60):
        t0 += 60.0
    t1 = t0 + 600.0
    assert sim.contact_closed(door, t0) and not sim.contact_closed(door, t1)
    clock = Clock(t0)

    def key(point: str, quantity: str) -> SeriesKey:
        return SeriesKey(point, quantity, Phase.TOTAL)

    async def until(gw: Gateway, check) -> dict[SeriesKey, float]:
        for _ in range(200):  # bounded wait for the polls (not a timing assertion)
            values = {r.key: r.value for r in gw.live.readings()}
            if check(values):
                return values
            await asyncio.sleep(0.05)
        return values

    async def go() -> tuple[dict[SeriesKey, float], dict[SeriesKey, float]]:
        bus = cfg.buses[0]
        factory = simulator_factory(bus.kind)
        assert factory is not None
        server = await factory(SimContext(cfg, bus, cfg.devices, SiteModel(cfg, clock=clock)))
        gw = Gateway(cfg, data_dir=tmp_path, storage=open_storage(cfg.storage, tmp_path))
        await gw.start()
        try:
            first = await until(
                gw, lambda v: key("heat", "pulse_count") in v and key("door", "digital_input") in v
            )
            clock.t = t1  # ten minutes of consumption; the input opens
            second = await until(gw, lambda v: v.get(key("door", "digital_input")) == 0.0)
            await asyncio.sleep(0.5)  # the module images refresh every 0.2 s: all values are at t1 now
            second = {r.key: r.value for r in gw.live.readings()}
            return first, second
        finally:
            await gw.stop()
            await server.close()

    first, second = asyncio.run(go())
    n_heat = sim.pulse_count(heat, t1) - sim.pulse_count(heat, t0)
    n_gas = sim.pulse_count(gas, t1) - sim.pulse_count(gas, t0)
    assert n_heat > 100 and n_gas > 5  # 10 min of ~2 kW and ~1.5 m³/h
    assert first[key("door", "digital_input")] == 1.0
    assert second[key("door", "digital_input")] == 0.0
    assert second[key("heat", "pulse_count")] - first[key("heat", "pulse_count")] == n_heat
    assert second[key("gas", "pulse_count")] - first[key("gas", "pulse_count")] == n_gas
    heat_wh = second[key("heat", "energy_active_import")] - first[key("heat", "energy_active_import")]
    assert abs(heat_wh - n_heat * 1.0) < 1e-6  # 0.001 kWh = 1 Wh per pulse
    gas_m3 = second[key("gas", "volume_gas")] - first[key("gas", "volume_gas")]
    assert abs(gas_m3 - n_gas * 0.01) < 1e-9
    assert second[key("fan", "relay_output")] == 0.0  # relay state is read too (not energised)
    # analog inputs: the simulated signal [mA or V], served in µA / mV, scaled to the range
    for name, (s_lo, s_hi) in (("tank", (4.0, 20.0)), ("supply-temp", (0.0, 10.0))):
        p = points[name]
        assert isinstance(p, AnalogInPoint)
        lo, hi = p.range
        signal = round(sim.analog_signal(p, t1) * 1000) / 1000  # the register's µA / mV resolution
        expected = lo + (signal - s_lo) * (hi - lo) / (s_hi - s_lo)
        assert abs(second[key(name, "analog_input")] - expected) < 1e-9, name
    assert second[key("valve", "analog_output")] == 0.0  # not written yet: 4 mA, the low end
    # the totals survive a restart: the source persisted them on close
    state = json.loads((tmp_path / "io" / "conc1.json").read_text())
    assert state["pulses"]["heat"]["pulses"] == n_heat
    assert state["pulses"]["gas"]["pulses"] == n_gas


def test_each_bus_source_owns_only_the_io_state_of_its_own_devices(tmp_path: Path):
    """Two buses, a concentrator on each: a source closing must not overwrite the other bus's totals."""
    from meterhub.drivers.base import SourceContext
    from meterhub.drivers.modbus.memory import MemoryLink
    from meterhub.drivers.modbus.source import ModbusSource

    cfg = parse_config(
        """\
site: {name: two buses}
buses:
  - {id: a, kind: modbus-tcp, port: 1502}
  - {id: b, kind: modbus-tcp, port: 1503}
devices:
  - {id: conc-a, bus: a, unit: 1, profile: pulse-concentrator-7}
  - {id: conc-b, bus: b, unit: 1, profile: pulse-concentrator-7}
io:
  points:
    - {id: gas-a, kind: pulse, device: conc-a, channel: 1, medium: gas, unit: m3, weight: 0.01}
    - {id: gas-b, kind: pulse, device: conc-b, channel: 1, medium: gas, unit: m3, weight: 0.01}
"""
    )
    sources = {
        bus.id: ModbusSource(
            SourceContext(cfg, bus, [d for d in cfg.devices if d.bus == bus.id], {}, tmp_path),
            link=MemoryLink(),
        )
        for bus in cfg.buses
    }
    assert {k: sorted(s.io) for k, s in sources.items()} == {"a": ["conc-a"], "b": ["conc-b"]}
