"""The readout client against the seed 002 meter emulator over TCP: modes A, B, C, the mode E switch,
corrupted frames, garbage and silence; and an independent hand-written readout of the emulator."""

from __future__ import annotations

import asyncio
import socket
from functools import reduce

import pytest

from meterhub.drivers.iec62056.client import read_out, switch_to_mode_e
from meterhub.drivers.iec62056.errors import BccError, FrameError, Iec62056LinkError, Iec62056Timeout
from meterhub.drivers.iec62056.link import TcpLink
from meterhub.drivers.iec62056.protocol import Mode, obis_values
from meterhub.model.quantities import Q
from meterhub.profiles.obis import get_obis_profile
from meterhub.sim.iec62056 import serve_iec_tcp

from .conftest import frozen_meter


@pytest.mark.parametrize(("mode", "baud"), [("A", 300), ("B", 9600), ("C", 9600)])
def test_each_mode_reads_the_meter_values(mode: str, baud: int) -> None:
    meter = frozen_meter(mode)
    expected = meter.values()

    async def go() -> None:
        srv = await serve_iec_tcp(meter)
        link = TcpLink("127.0.0.1", srv.port)
        try:
            r = await read_out(link, timeout=1.0)
            again = await read_out(link, timeout=1.0)  # the meter is idle again after a readout
        finally:
            await link.close()
            await srv.close()
        assert r.identification.mode is Mode(mode) and r.baud == baud
        assert again.datasets == r.datasets
        values, _ = obis_values(r.datasets)
        mapped, problems = get_obis_profile("seed002-1p-dlms").decode(values)
        got = {m.quantity: m.value for m in mapped}
        assert problems == []
        # energy with 1 Wh resolution (kWh with 3 decimals), U to 0.1 V, I to 0.01 A, P to 1 W
        assert got[Q.ENERGY_ACTIVE_IMPORT] == pytest.approx(expected[Q.ENERGY_ACTIVE_IMPORT], abs=1.0)
        assert got[Q.ENERGY_ACTIVE_IMPORT] > 12_345_678.0  # the base plus an hour at 7 kW
        assert got[Q.VOLTAGE] == pytest.approx(expected[Q.VOLTAGE], abs=0.05)
        assert got[Q.CURRENT] == pytest.approx(expected[Q.CURRENT], abs=0.005)
        assert got[Q.ACTIVE_POWER] == pytest.approx(expected[Q.ACTIVE_POWER], abs=0.5)
        assert get_obis_profile("seed002-1p-dlms").serial_number(values) == "20260002"

    asyncio.run(go())


def test_mode_c_negotiates_the_lower_of_both_rates() -> None:
    async def go() -> int:
        srv = await serve_iec_tcp(frozen_meter("C"))
        link = TcpLink("127.0.0.1", srv.port)
        try:
            return (await read_out(link, max_baud=2400)).baud
        finally:
            await link.close()
            await srv.close()

    assert asyncio.run(go()) == 2400


def test_a_corrupted_data_message_is_a_bcc_error_and_the_next_readout_works() -> None:
    meter = frozen_meter("C")
    meter.corrupt = 1

    async def go() -> None:
        srv = await serve_iec_tcp(meter)
        link = TcpLink("127.0.0.1", srv.port)
        try:
            with pytest.raises(BccError, match="block check character"):
                await read_out(link, timeout=1.0)
            r = await read_out(link, timeout=1.0)
            assert len(r.datasets) > 10
        finally:
            await link.close()
            await srv.close()

    asyncio.run(go())


def test_mode_e_switch_is_offered_and_taken() -> None:
    async def go() -> None:
        srv = await serve_iec_tcp(frozen_meter("C"))
        link = TcpLink("127.0.0.1", srv.port)
        try:
            ident = await switch_to_mode_e(link, timeout=1.0)
            assert ident.mode_e and link.baud == 9600
        finally:
            await link.close()
            await srv.close()
        srv = await serve_iec_tcp(frozen_meter("B"))
        link = TcpLink("127.0.0.1", srv.port)
        try:
            with pytest.raises(FrameError, match="does not offer mode E"):
                await switch_to_mode_e(link, timeout=1.0)
        finally:
            await link.close()
            await srv.close()

    asyncio.run(go())


async def _fake_meter(answer: bytes) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(answer)
        await writer.drain()
        await asyncio.sleep(2)
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1]


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (b"", Iec62056Timeout, r"no identification message within 0.3 s"),
        (b"\x00\xff garbage without a line end", Iec62056Timeout, r"got b'\\x00\\xff garbage"),
        (b"noise\r\n/ISk5\\2MT382\r\n", Iec62056Timeout, r"no data message \(STX … ETX BCC\) within 0.3 s"),
        (b"?!?\r\n", Iec62056Timeout, "no identification message"),
        (b"/12\r\n", FrameError, "not an identification message"),
    ],
)
def test_garbage_and_silence_are_clear_errors(answer: bytes, error: type[Exception], message: str) -> None:
    async def go() -> None:
        srv, port = await _fake_meter(answer)
        link = TcpLink("127.0.0.1", port)
        try:
            with pytest.raises(error, match=message):
                await read_out(link, timeout=0.3)
        finally:
            await link.close()
            srv.close()

    asyncio.run(go())


def test_no_meter_at_the_endpoint_is_a_link_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused

    async def go() -> None:
        with pytest.raises(Iec62056LinkError, match=f"tcp://127.0.0.1:{port}"):
            await read_out(TcpLink("127.0.0.1", port), timeout=0.3)

    asyncio.run(go())


def _independent_readout(port: int) -> tuple[bytes, bytes]:
    """A readout written from IEC 62056-21 §6.4.4 alone, on a blocking socket (no meterhub code)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"/?!\r\n")
        ident = b""
        while not ident.endswith(b"\r\n"):
            ident += s.recv(1)
        s.sendall(b"\x06" + b"0" + ident[4:5] + b"0" + b"\r\n")  # ACK 0 Z 0: readout at the meter's rate
        block = b""
        while len(block) < 2 or block[-2] != 0x03:
            block += s.recv(1)
        return ident, block


def test_an_independent_hand_written_readout_gets_a_valid_data_block() -> None:
    meter = frozen_meter("C")

    async def go() -> tuple[bytes, bytes]:
        srv = await serve_iec_tcp(meter)
        try:
            return await asyncio.to_thread(_independent_readout, srv.port)
        finally:
            await srv.close()

    ident, block = asyncio.run(go())
    assert ident == b"/MHB5\\2MH-1P-IEC-SIM\r\n"
    assert block[0] == 0x02 and block.endswith(b"!\r\n\x03" + block[-1:])
    assert reduce(lambda a, b: a ^ b, block[1:-1], 0) == block[-1]  # BCC over STX+1 … ETX
    lines = block[1:-4].decode("ascii").split("\r\n")
    assert lines[-1] == "!"
    energy = next(line for line in lines if line.startswith("1.8.0("))
    kwh = float(energy[len("1.8.0(") : energy.index("*")])
    assert energy.endswith("*kWh)")
    assert kwh == pytest.approx(meter.values()[Q.ENERGY_ACTIVE_IMPORT] / 1000, abs=0.001)
