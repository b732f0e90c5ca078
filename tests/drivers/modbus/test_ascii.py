"""Modbus ASCII (Modbus over Serial Line V1.02 §2.5.2) on the acquisition side: golden frames, and
meterhub's link against pymodbus's own ASCII servers — over TCP (a serial-to-Ethernet converter) and on
a serial line (a socat pty pair)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from meterhub.checks import parse_site
from meterhub.config import ConfigError
from meterhub.drivers.modbus.ascii import ascii_adu, cut_ascii, lrc
from meterhub.drivers.modbus.errors import (
    ModbusCrcError,
    ModbusExceptionResponse,
    ModbusFrameError,
    ModbusTimeout,
)
from meterhub.drivers.modbus.reader import DeviceReader
from meterhub.drivers.modbus.source import link_for_bus
from meterhub.drivers.modbus.transport import ModbusLink, TransportKind
from meterhub.model.quantities import Q
from meterhub.model.topology import Phase
from meterhub.profiles import get_profile
from meterhub.profiles.schema import Function
from meterhub.sim.modbus_server import Framing, ProfileDevice, serve_devices
from meterhub.sim.physics import SiteModel

from .conftest import free_port

# (unit, PDU, frame): the Modbus Application Protocol V1.1b3 §6.3 example request (read holding
# registers 108-110 of slave 0x11) and its answer, framed as ASCII; LRCs worked out by hand:
# 0x100 - (0x11 + 0x03 + 0x00 + 0x6B + 0x00 + 0x03) = 0x7E.
GOLDEN = [
    (0x11, bytes.fromhex("03 00 6B 00 03"), b":1103006B00037E\r\n"),
    (0x11, bytes.fromhex("03 06 02 2B 00 00 00 64"), b":110306022B0000006455\r\n"),  # 0x100 - 0xAB
    (0x01, bytes.fromhex("03 00 00 00 02"), b":010300000002FA\r\n"),
    (0x01, bytes.fromhex("83 02"), b":0183027A\r\n"),  # exception 02: 0x100 - 0x86
]


@pytest.mark.parametrize(("unit", "pdu", "frame"), GOLDEN)
def test_golden_frames_encode(unit: int, pdu: bytes, frame: bytes) -> None:
    assert ascii_adu(unit, pdu) == frame


@pytest.mark.parametrize(("unit", "pdu", "frame"), GOLDEN)
def test_golden_frames_decode_with_noise_before_and_in_pieces(unit: int, pdu: bytes, frame: bytes) -> None:
    assert cut_ascii(b"\x00\xff" + frame + b":01") == (unit, pdu, len(frame) + 2)
    assert cut_ascii(frame[:-1]) is None


def test_lrc_is_the_twos_complement_of_the_byte_sum() -> None:
    assert lrc(bytes.fromhex("11 03 00 6B 00 03")) == 0x7E
    assert (sum(bytes.fromhex("11 03 00 6B 00 03")) + lrc(bytes.fromhex("11 03 00 6B 00 03"))) % 256 == 0


def test_bad_frames_are_refused_naming_what_is_wrong() -> None:
    with pytest.raises(ModbusCrcError, match="LRC error.*ends in 7F, the LRC of its content is 7E"):
        cut_ascii(b":1103006B00037F\r\n")
    with pytest.raises(ModbusFrameError, match="not a Modbus ASCII frame"):
        cut_ascii(b":11030G6B00037E\r\n")
    with pytest.raises(ModbusFrameError, match="cut-off"):
        cut_ascii(b":110300:010300000002FA\r\n")
    with pytest.raises(ModbusFrameError, match="without the ':'"):
        cut_ascii(b"x" * 600)


def _device() -> SimDevice:
    return SimDevice(1, simdata=[SimData(100, values=[230, 0x4366, 0x6666], datatype=DataType.REGISTERS)])


def test_the_link_reads_a_pymodbus_ascii_server_over_tcp() -> None:
    port = free_port()

    async def go() -> None:
        server = ModbusTcpServer(_device(), framer=FramerType.ASCII, address=("127.0.0.1", port))
        await server.serve_forever(background=True)
        link = ModbusLink(TransportKind.ASCII_OVER_TCP, port=port, timeout=0.5)
        try:
            assert await link.read(Function.HOLDING, 1, 100, 3) == [230, 0x4366, 0x6666]
            assert link.last_sent == b":0103006400039\x35\r\n"  # 0x100 - 0x6B = 0x95
            assert link.endpoint == f"ascii+tcp://127.0.0.1:{port}"
            with pytest.raises(ModbusExceptionResponse):
                await link.read(Function.HOLDING, 1, 5000, 2)  # unmapped
            assert await link.read(Function.HOLDING, 1, 101, 2) == [0x4366, 0x6666]  # still in step
            assert link.stats.requests == 3
        finally:
            await link.close()
            await server.shutdown()

    asyncio.run(go())


@pytest.fixture
def ptys(tmp_path: Path) -> Iterator[tuple[str, str]]:
    if shutil.which("socat") is None:
        pytest.skip("needs socat")
    a, b = tmp_path / "server", tmp_path / "client"
    proc = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while not (a.exists() and b.exists()):
            assert time.monotonic() < deadline, "socat made no pty pair"
            time.sleep(0.02)
        yield str(a), str(b)
    finally:
        proc.terminate()
        proc.wait(5)


def test_the_link_reads_a_pymodbus_ascii_server_on_a_serial_line(ptys: tuple[str, str]) -> None:
    async def go() -> None:
        server = ModbusSerialServer(
            _device(), framer=FramerType.ASCII, port=ptys[0], baudrate=19200, bytesize=8, parity="N"
        )
        await server.serve_forever(background=True)
        # 8 data bits: a pty refuses 7 (and parity), as it refuses parity for RTU (test_peers.py)
        link = ModbusLink(TransportKind.ASCII, serial=ptys[1], baud=19200, timeout=0.5, bytesize=8)
        try:
            assert await link.read(Function.HOLDING, 1, 100, 3) == [230, 0x4366, 0x6666]
            assert link.endpoint.endswith("&ascii")
        finally:
            await link.close()
            await server.shutdown()

    asyncio.run(go())


SITE = """\
site: {name: Lab}
buses:
  - {id: line, kind: modbus-rtu-over-tcp, host: 10.0.0.9, port: 4001, framing: ascii}
  - {id: tty, kind: modbus-rtu, serial: /dev/ttyUSB0, framing: ascii, parity: E}
devices: []
"""


def test_a_bus_with_ascii_framing_gets_an_ascii_link() -> None:
    cfg = parse_site(SITE, "site.yaml")
    tcp, tty = (link_for_bus(b) for b in cfg.buses)
    assert tcp.kind is TransportKind.ASCII_OVER_TCP and tcp.endpoint == "ascii+tcp://10.0.0.9:4001"
    assert tty.kind is TransportKind.ASCII and tty.bytesize is None  # 7 data bits when opened


def test_ascii_framing_on_a_modbus_tcp_bus_is_refused_at_its_line() -> None:
    with pytest.raises(ConfigError) as err:
        parse_site(SITE.replace("modbus-rtu-over-tcp", "modbus-tcp"), "site.yaml")
    (issue,) = err.value.issues
    assert str(issue).startswith("site.yaml:3: buses[0]: framing ascii is for a serial Modbus line")


def test_a_simulated_meter_on_an_ascii_line_is_read_through_the_bus_link() -> None:
    clock = [1_790_000_000.0]
    model = SiteModel.single_meter("m", rated_power=6000.0, clock=lambda: clock[0])
    clock[0] += 30.0
    model.advance()
    profile = get_profile("eastron-sdm630")
    port = free_port()
    cfg = parse_site(
        SITE.replace("host: 10.0.0.9, port: 4001", f"host: 127.0.0.1, port: {port}"), "site.yaml"
    )

    async def go() -> None:
        srv = await serve_devices(
            {3: ProfileDevice("m", profile, model)}, kind=Framing.ASCII_OVER_TCP, port=port
        )
        link = link_for_bus(cfg.buses[0])
        link.timeout = 0.3
        try:
            assert srv.endpoint == f"ascii+tcp://127.0.0.1:{port}"
            result = await DeviceReader("m", profile, 3).read(link)
            assert result.errors == []
            values = {(pt.quantity, pt.phase): v for pt, v in result.values.items()}
            assert values[(Q.CURRENT, Phase.L1)] == pytest.approx(model.channel("m", 1).current, rel=2**-23)
            with pytest.raises(ModbusTimeout):
                await link.read(Function.INPUT, 7, 0, 2)  # nobody at unit 7: silence, as on the line
            assert link.stats.timeouts == 1 and link.stats.errors == 0
        finally:
            await link.close()
            await srv.close()

    asyncio.run(go())
