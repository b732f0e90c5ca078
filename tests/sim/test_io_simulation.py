"""The simulated 1-wire folder: kernel-exact w1_slave text, read back by the gateway's 1-wire source."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import meterhub.drivers.io
from meterhub.config.loader import parse_config
from meterhub.config.schema import BusKind
from meterhub.drivers.io.config import TemperaturePoint
from meterhub.drivers.io.errors import ProbeCrcError, ProbePowerOnValue
from meterhub.drivers.io.onewire import OneWireSource, discover, parse_w1_slave
from meterhub.sim.base import SimContext, simulator_factory
from meterhub.sim.io import IOSimulation, W1Simulator, format_w1_slave, probe_temperature


def test_power_on_scratchpad_is_byte_exact_to_a_real_probe():
    # a DS18B20 read before its first conversion, as the kernel prints it
    assert format_w1_slave(0, power_on=True) == (
        "50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n"
    )
    with pytest.raises(ProbePowerOnValue):
        parse_w1_slave(format_w1_slave(0, power_on=True), "28-000000000001")


@pytest.mark.parametrize(
    ("celsius", "milli"),
    [(23.125, 23125), (0.0625, 62), (-0.0625, -62), (-10.125, -10125), (-55.0, -55000), (125.0, 125000)],
)
def test_format_then_parse_gives_the_kernel_millidegrees(celsius, milli):
    text = format_w1_slave(celsius)
    assert text.splitlines()[1].endswith(f"t={milli}")
    assert parse_w1_slave(text, "28-000000000001").temperature == milli / 1000


def test_crc_error_is_reported_as_the_kernel_does():
    text = format_w1_slave(20.0, crc_error=True)
    assert " NO\n" in text
    with pytest.raises(ProbeCrcError):
        parse_w1_slave(text, "28-000000000001")


def test_simulator_refuses_real_sysfs():
    with pytest.raises(ValueError, match="refusing"):
        W1Simulator("/sys/bus/w1/devices", ["28-0316a2795bff"])


def test_simulated_probes_are_read_by_the_gateway_source(tmp_path: Path):
    cfg = parse_config(
        f"""\
site: {{name: w1}}
buses: [{{id: local, kind: io}}]
devices: [{{id: w1, bus: local, profile: linux-w1}}]
io:
  w1_root: {tmp_path}
  points:
    - {{id: boiler, kind: temperature, device: w1, sensor: 28-0316a2795bff}}
    - {{id: room, kind: temperature, device: w1, sensor: 28-00000a1b2c3d}}
"""
    )
    t = 1_790_000_000.0
    factory = simulator_factory(BusKind.IO)
    assert factory is not None

    async def go():
        sim = await factory(SimContext(cfg, cfg.buses[0], cfg.devices, None))  # type: ignore[arg-type]
        try:
            assert isinstance(sim, W1Simulator)
            sim.clock = lambda: t
            sim.write_all()
            points = [
                p for p in meterhub.drivers.io.io_section(cfg).points if isinstance(p, TemperaturePoint)
            ]
            src = OneWireSource(device="w1", points=points, root=tmp_path, interval=5.0, clock=lambda: t)
            return await src.poll(points)
        finally:
            await sim.close()

    readings = asyncio.run(go())
    assert discover(tmp_path) == ["28-00000a1b2c3d", "28-0316a2795bff"]
    for r, sensor in zip(readings, ["28-0316a2795bff", "28-00000a1b2c3d"], strict=True):
        expected = probe_temperature(sensor, t)
        assert 15.0 - 3 <= expected <= 65.0 + 3
        assert abs(r.value - expected) <= 1 / 32 + 1e-3  # 1/16 °C steps, rounded; kernel truncates m°C


IO_SITE = """\
site: {name: io sim}
buses: [{id: rs485, kind: modbus-tcp, port: 1502}]
devices:
  - {id: vu, bus: rs485, unit: 1, profile: enertrek-v10}
  - {id: dio1, bus: rs485, unit: 6, profile: enertrek-dio-4-2}
  - {id: aio1, bus: rs485, unit: 7, profile: enertrek-aio-2-2}
io:
  points:
    - {id: q1-of, kind: digital, device: dio1, channel: 1, function: breaker-of, contact: NC}
    - {id: q1-sd, kind: digital, device: dio1, channel: 2, function: breaker-sd}
    - {id: heat, kind: pulse, device: dio1, channel: 3, medium: electricity, unit: Wh, weight: 1, counter_bits: 16}
    - {id: tank, kind: analog-in, device: aio1, channel: 1, signal: 4-20mA, range: [0, 10], unit: bar}
"""


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_simulated_consumption_over_a_day_is_the_mean_rate_times_a_day():
    from meterhub.drivers.io.config import PulsePoint
    from meterhub.sim.io import _unit_hash

    p = PulsePoint.model_validate({"id": "heat", "device": "d", "kind": "pulse", "channel": 1, "weight": 1})
    t = 1_790_000_000.0
    day = IOSimulation.consumption(p, t + 86400) - IOSimulation.consumption(p, t)
    mean_w = 2000.0 * (0.5 + _unit_hash("heat"))
    assert day == pytest.approx(mean_w * 24, rel=1e-9)  # the daily sine integrates to zero
    steps = [IOSimulation.consumption(p, t + k * 600) for k in range(145)]
    assert steps == sorted(steps)


def test_simulated_modules_round_trip_through_modbus_into_point_readings(tmp_path: Path):
    """IOSimulation values served by meterhub's Modbus simulator, read with the module profiles, given
    meaning by IODevice: the readings are the simulated states and consumption."""
    from meterhub.drivers.io.processor import io_devices
    from meterhub.drivers.modbus.reader import DeviceReader
    from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
    from meterhub.profiles import get_profile
    from meterhub.sim.modbus_server import ProfileDevice, serve_devices

    cfg = parse_config(IO_SITE)
    clock = Clock(1_790_000_000.0)
    sim_values = IOSimulation(cfg, clock=clock)
    io = io_devices(cfg, tmp_path)

    async def read_all() -> dict[str, list]:
        devices = {
            6: ProfileDevice("dio1", get_profile("enertrek-dio-4-2"), sim_values),  # type: ignore[arg-type]
            7: ProfileDevice("aio1", get_profile("enertrek-aio-2-2"), sim_values),  # type: ignore[arg-type]
        }
        sim = await serve_devices(devices)
        link = ModbusLink(TransportKind.TCP, port=int(sim.endpoint.rsplit(":", 1)[1]), timeout=3.0)
        out = {}
        try:
            for unit, dev in devices.items():
                read = await DeviceReader(dev.device_id, dev.profile, unit).read(link)
                assert read.errors == []
                out[dev.device_id] = io[dev.device_id].process_points(clock.t, read.values).readings
        finally:
            await link.close()
            await sim.close()
        return out

    first = asyncio.run(read_all())
    clock.t += 3600.0
    second = asyncio.run(read_all())
    got = {(r.circuit, r.quantity): r.value for r in first["dio1"] + first["aio1"]}
    assert got[("q1-of", "digital_input")] == 1.0  # breaker closed (NC contact open)
    assert got[("q1-sd", "digital_input")] == 0.0  # not tripped
    tank = got[("tank", "analog_input")]
    assert 5.0 - 3.0 <= tank <= 5.0 + 3.0  # middle of 0…10 bar ± 30 %
    heat = {r.quantity: r.value for r in second["dio1"] if r.circuit == "heat"}
    from meterhub.drivers.io.config import PulsePoint

    (hp,) = [p for p in meterhub.drivers.io.io_section(cfg).points if isinstance(p, PulsePoint)]
    expected = IOSimulation.consumption(hp, clock.t) - IOSimulation.consumption(hp, clock.t - 3600)
    assert abs(heat["energy_active_import"] - expected) <= 1.0  # whole 1 Wh pulses (16-bit counter wraps)
