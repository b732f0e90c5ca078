"""IO modules over Modbus: a pymodbus device set up by the test with known register values, read with
the module's profile by meterhub's reader, given meaning by IODevice — and the io bus source factory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

import meterhub.drivers.io  # noqa: F401  (registers the io source and check)
from meterhub.config.loader import parse_config
from meterhub.config.schema import BusKind
from meterhub.drivers.base import DeviceStatus, SourceContext, source_factory
from meterhub.drivers.io.onewire import OneWireSource
from meterhub.drivers.io.processor import io_devices
from meterhub.drivers.modbus.reader import DeviceReader
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.profiles import get_profile

SITE = """\
site: {name: modules}
buses:
  - {id: rs485, kind: modbus-tcp, port: 1502}
  - {id: local, kind: io}
devices:
  - {id: vu, bus: rs485, unit: 1, profile: enertrek-v10}  # supplies the module bus (seed 000 §7)
  - {id: dio1, bus: rs485, unit: 6, profile: enertrek-dio-4-2}
  - {id: conc1, bus: rs485, unit: 9, profile: pulse-concentrator-7}
  - {id: w1, bus: local, profile: linux-w1, poll_interval: 30}
  - {id: odd, bus: local, profile: eastron-sdm630}
io:
  w1_root: W1ROOT
  points:
    - {id: q1-of, kind: digital, device: dio1, channel: 1, function: breaker-of}
    - {id: q1-sd, kind: digital, device: dio1, channel: 2, function: breaker-sd}
    - {id: water, kind: pulse, device: dio1, channel: 3, medium: water, unit: l, weight: 1}
    - {id: alarm-horn, kind: relay, device: dio1, channel: 2}
    - {id: oil, kind: pulse, device: conc1, channel: 7, medium: oil, unit: l, weight: 0.5}
    - {id: boiler, kind: temperature, device: w1, sensor: 28-0316a2795bff}
"""


def counters(values: list[int]) -> list[int]:
    """uint32 big-endian word order, as the profiles say: high word first."""
    return [w for v in values for w in (v >> 16, v & 0xFFFF)]


async def serve(device: SimDevice) -> tuple[ModbusTcpServer, int]:
    server = ModbusTcpServer(device, address=("127.0.0.1", 0))
    await server.serve_forever(background=True)
    return server, server.transport.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def test_dio_and_concentrator_registers_become_point_readings(tmp_path: Path):
    cfg = parse_config(SITE.replace("W1ROOT", str(tmp_path)))
    io = io_devices(cfg, tmp_path)

    async def read(profile_id: str, unit: int, device: SimDevice):
        server, port = await serve(device)
        link = ModbusLink(TransportKind.TCP, port=port, timeout=3.0)
        try:
            reader = DeviceReader(profile_id, get_profile(profile_id), unit)
            result = await reader.read(link)
            assert result.errors == []
            return result.values, result.requests
        finally:
            await link.close()
            await server.shutdown()

    dio = SimDevice(
        6,
        simdata=(
            [SimData(0, values=[False, True] + [False] * 14, datatype=DataType.BITS)],  # coils
            [SimData(0, values=[True, False, True, False] + [False] * 12, datatype=DataType.BITS)],
            [SimData(0xF000, values=0x0D42, datatype=DataType.REGISTERS)],
            [SimData(0, values=counters([0, 0, 70_000, 5]), datatype=DataType.REGISTERS)],
        ),
    )
    conc = SimDevice(
        9,
        simdata=[
            SimData(0, values=counters([1, 2, 3, 4, 5, 6, 4_294_967_290]), datatype=DataType.REGISTERS),
            SimData(0xF000, values=0x0C07, datatype=DataType.REGISTERS),
        ],
    )

    async def go():
        return await read("enertrek-dio-4-2", 6, dio), await read("pulse-concentrator-7", 9, conc)

    (dio_raw, dio_requests), (conc_raw, conc_requests) = asyncio.run(go())
    assert dio_requests == 3  # coils, discrete inputs, counters: one block each
    assert conc_requests == 1
    res = io["dio1"].process_points(1000.0, dio_raw)
    got = {(r.circuit, r.quantity): r.value for r in res.readings}
    assert got == {
        ("q1-of", "digital_input"): 1.0,  # OF contact closed: breaker closed
        ("q1-sd", "digital_input"): 0.0,  # SD contact open: not tripped
        ("water", "pulse_count"): 0.0,  # the first counter value is the baseline
        ("water", "volume_water"): 0.0,
        ("alarm-horn", "relay_output"): 1.0,
    }
    assert [e.label for e in res.events] == ["closed", "normal"]

    raw = {(p.quantity, p.channel): v for p, v in dio_raw.items()}
    assert raw[("pulse_count", 3)] == 70_000 and raw[("digital_input", 1)] == 1.0
    raw[("pulse_count", 3)] = 70_120.0
    later = io["dio1"].process(1060.0, raw)
    water = {r.quantity: r.value for r in later.readings if r.circuit == "water"}
    assert water["volume_water"] == pytest.approx(0.12)  # 120 pulses × 1 l
    assert water["volume_flow"] == pytest.approx(7.2)  # 0.12 m³ per minute

    conc_dev = io["conc1"]
    conc_dev.process_points(0.0, conc_raw)
    conc_raw = {(p.quantity, p.channel): v for p, v in conc_raw.items()}
    conc_raw[("pulse_count", 7)] = 4.0  # the 32-bit counter rolled over: 6 + 4 + 1 pulses
    oil = {r.quantity: r.value for r in conc_dev.process(10.0, conc_raw).readings}
    assert oil["pulse_count"] == 10.0
    assert oil["volume_oil"] == pytest.approx(0.005)


def test_io_bus_factory_builds_one_1wire_source_and_skips_other_profiles(tmp_path: Path, caplog):
    cfg = parse_config(SITE.replace("W1ROOT", str(tmp_path)))
    bus = cfg.bus("local")
    devices = [d for d in cfg.devices if d.bus == "local"]
    status = {d.id: DeviceStatus(d.id, d.id, d.profile, d.bus) for d in devices}
    factory = source_factory(BusKind.IO)
    assert factory is not None
    sources = list(factory(SourceContext(cfg, bus, devices, status, tmp_path)))
    assert len(sources) == 1
    (src,) = sources
    assert isinstance(src, OneWireSource)
    assert (src.name, src.interval, src.root, [p.id for p in src.points]) == (
        "io/w1",
        30.0,
        tmp_path,
        ["boiler"],
    )
    assert src.status is status["w1"]
    assert "device odd on io bus local has profile 'eastron-sdm630'" in caplog.text
