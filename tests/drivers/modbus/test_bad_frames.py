"""Hand-made bad answers from a raw asyncio server (RTU frames over TCP): each one becomes a typed
error naming the unit, the line keeps working, nothing is raised past the reader."""

from __future__ import annotations

import asyncio

import pytest

from meterhub.drivers.modbus.transport import (
    ModbusCrcError,
    ModbusExceptionResponse,
    ModbusFrameError,
    ModbusLink,
    ModbusTimeout,
    TransportKind,
)
from meterhub.profiles.schema import Function


def crc16(frame: bytes) -> bytes:
    """Modbus CRC-16 (polynomial 0xA001, init 0xFFFF, low byte first; Modbus over Serial Line §6.2.2)."""
    crc = 0xFFFF
    for b in frame:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return bytes([crc & 0xFF, crc >> 8])


def test_crc16_matches_the_vendor_manual_frame():
    # Eastron SDM320Y manual §4.3: "Send: 01 04 01 56 00 02 90 27"
    assert crc16(bytes.fromhex("01 04 01 56 00 02")) == bytes.fromhex("90 27")


GOOD = bytes.fromhex("01 04 04 43 66 00 00")  # two registers: 230.0 as float32
ANSWERS = {
    "good": GOOD + crc16(GOOD),
    "bad_crc": GOOD + b"\x00\x00",
    "short": bytes.fromhex("01 04 04 43 66"),  # cut off mid-frame
    "exception": bytes.fromhex("01 84 02") + crc16(bytes.fromhex("01 84 02")),
    "silence": b"",
}


async def _serve(answer: list[bytes]) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readexactly(8)  # one RTU request
                if answer[0]:
                    writer.write(answer[0])
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize(
    ("answer", "error", "text"),
    [
        (
            "bad_crc",
            ModbusCrcError,
            "unit 1: CRC error: 01 04 04 43 66 00 00 00 00 ends in 00 00, the CRC of its content is 0e 1f",
        ),
        (
            "short",
            ModbusFrameError,
            "unit 1: cut-off frame: 5 byte(s) and no more within 0.5 s: 01 04 04 43 66",
        ),
        ("exception", ModbusExceptionResponse, "unit 1: exception 02 (illegal data address)"),
        ("silence", ModbusTimeout, "no response from unit 1 within 0.5 s"),
    ],
)
def test_bad_answer_is_a_typed_error_and_the_next_good_answer_still_reads(answer, error, text):
    current = [ANSWERS[answer]]

    async def go():
        server = await _serve(current)
        port = server.sockets[0].getsockname()[1]
        link = ModbusLink(TransportKind.RTU_OVER_TCP, port=port, timeout=0.5)
        try:
            with pytest.raises(error) as exc:
                await link.read(Function.INPUT, 1, 0, 2)
            current[0] = ANSWERS["good"]
            await asyncio.sleep(0.05)  # let any late bytes of the bad answer drain
            regs = await link.read(Function.INPUT, 1, 0, 2)
            return str(exc.value), regs
        finally:
            await link.close()
            server.close()
            await server.wait_closed()

    message, regs = asyncio.run(go())
    assert message == text
    assert regs == [0x4366, 0x0000]
