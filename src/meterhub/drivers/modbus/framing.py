"""Modbus frames and PDUs (pure, no I/O): build requests, cut answers out of a byte stream, check them.

* PDU (MODBUS Application Protocol V1.1b3 §4.1, §6): function code + data. Reads (FC 01–04) answer
  function code, byte count, data; writes (FC 05, 06, 15, 16) echo address and value or quantity; an
  exception answer is ``function | 0x80`` + exception code (§7).
* Modbus TCP ADU (Modbus Messaging on TCP/IP Implementation Guide V1.0b §3.1.3): MBAP header —
  transaction id, protocol id 0, length of what follows, unit id — then the PDU.
* RTU ADU (Modbus over Serial Line V1.02 §2.5.1): unit id, PDU, CRC-16 low byte first (§6.2.2). RTU
  has no length field: the length of an answer follows from its function code (and byte count).

Each ``cut_*`` function takes the bytes received so far and says whether a whole frame is there
(returning it and its length), more bytes are needed (None), or the bytes cannot be a frame
(:class:`~.errors.ModbusFrameError`, :class:`~.errors.ModbusCrcError`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from meterhub.drivers.modbus.errors import ModbusCrcError, ModbusFrameError, exception_response

__all__ = [
    "MBAP_HEADER",
    "Request",
    "check_answer",
    "crc16",
    "cut_rtu",
    "cut_tcp",
    "rtu_adu",
    "tcp_adu",
]

MBAP_HEADER = 7  # transaction id (2), protocol id (2), length (2), unit id (1)
MAX_PDU = 253  # §4.1: 256-byte RTU ADU − unit − CRC
READS = (1, 2, 3, 4)
WRITES = (5, 6, 15, 16)


def crc16(frame: bytes) -> bytes:
    """CRC-16/MODBUS of ``frame`` (polynomial 0xA001 reflected, initial 0xFFFF), low byte first."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return bytes((crc & 0xFF, crc >> 8))


@dataclass(frozen=True)
class Request:
    """One request: unit, function code, address and either a quantity (reads) or values (writes)."""

    unit: int
    function: int
    address: int
    count: int = 1  # registers or bits asked (reads) or written (writes)
    data: bytes = b""  # the write's value field(s) as sent

    def pdu(self) -> bytes:
        fc = self.function
        if fc in READS:
            return struct.pack(">BHH", fc, self.address, self.count)
        if fc in (5, 6):
            return struct.pack(">BH", fc, self.address) + self.data
        if fc in (15, 16):
            return struct.pack(">BHHB", fc, self.address, self.count, len(self.data)) + self.data
        raise ValueError(f"function code {fc} is not supported")

    @property
    def data_bytes(self) -> int:
        """Bytes of data a read's answer carries: 2 per register, 1 per 8 bits. [byte]"""
        return (self.count + 7) // 8 if self.function in (1, 2) else 2 * self.count


def tcp_adu(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def rtu_adu(unit: int, pdu: bytes) -> bytes:
    frame = bytes((unit,)) + pdu
    return frame + crc16(frame)


def cut_tcp(buf: bytes | bytearray) -> tuple[int, int, bytes, int] | None:
    """(transaction id, unit, PDU, frame length) of the first MBAP frame in ``buf``; None if incomplete.

    A header that cannot start a frame (protocol id ≠ 0, a length of 0 or beyond the 254 bytes a PDU
    and unit id can take) is a :class:`ModbusFrameError`: the stream has lost its framing.
    """
    if len(buf) < MBAP_HEADER:
        return None
    tid, proto, length, unit = struct.unpack_from(">HHHB", buf)
    if proto != 0 or not 2 <= length <= MAX_PDU + 1:
        raise ModbusFrameError(
            f"not a Modbus TCP header: {bytes(buf[:MBAP_HEADER]).hex(' ')} (protocol id {proto}, length {length})"
        )
    end = 6 + length
    if len(buf) < end:
        return None
    return tid, unit, bytes(buf[MBAP_HEADER:end]), end


def _rtu_length(buf: bytes | bytearray) -> int | None:
    """The length an RTU answer starting ``buf`` has, from its function code; None until known."""
    if len(buf) < 2:
        return None
    fc = buf[1]
    if fc & 0x80:
        return 5  # unit, function | 0x80, exception code, CRC
    if fc in READS:
        return None if len(buf) < 3 else 3 + buf[2] + 2
    if fc in WRITES:
        return 8  # unit, function, address, value or quantity, CRC
    raise ModbusFrameError(f"unit {buf[0]}: an answer with function code {fc} (0x{fc:02X}) cannot be framed")


def cut_rtu(buf: bytes | bytearray) -> tuple[int, bytes, int] | None:
    """(unit, PDU, frame length) of the RTU frame at the start of ``buf``; None if incomplete.

    Raises :class:`ModbusCrcError` when the frame is complete but its CRC does not match.
    """
    n = _rtu_length(buf)
    if n is None or len(buf) < n:
        return None
    frame = bytes(buf[: n - 2])
    if crc16(frame) != bytes(buf[n - 2 : n]):
        raise ModbusCrcError(
            f"unit {buf[0]}: CRC error: {bytes(buf[:n]).hex(' ')} ends in {bytes(buf[n - 2 : n]).hex(' ')}, "
            f"the CRC of its content is {crc16(frame).hex(' ')}"
        )
    return buf[0], frame[1:], n


def check_answer(req: Request, pdu: bytes) -> list[int]:
    """The registers (or bits as 0/1) of a read's answer; nothing for a write's confirmed echo.

    Raises :class:`~.errors.ModbusExceptionResponse` for an exception answer and
    :class:`ModbusFrameError` for an answer that does not fit ``req`` (each naming what is wrong).
    """
    u = req.unit
    if not pdu:
        raise ModbusFrameError(f"unit {u}: an empty answer")
    fc = pdu[0]
    if fc == req.function | 0x80:
        if len(pdu) != 2:
            raise ModbusFrameError(f"unit {u}: an exception answer of {len(pdu)} bytes (2 expected)")
        raise exception_response(u, pdu[1])
    if fc != req.function:
        raise ModbusFrameError(
            f"unit {u}: answer with function code {fc} to a request with function code {req.function}"
        )
    if req.function in WRITES:
        # the echo names the address (and for FC 15/16 the quantity); the value a device echoes for FC
        # 05/06 may be what it holds rather than what was asked, which the caller's read-back judges
        n = 3 if req.function in (5, 6) else 5
        if len(pdu) != 5 or pdu[1:n] != req.pdu()[1:n]:
            raise ModbusFrameError(f"unit {u}: the write's echo {pdu.hex(' ')} does not match the request")
        return []
    if len(pdu) < 2:
        raise ModbusFrameError(f"unit {u}: an answer without its byte count")
    count, data = pdu[1], pdu[2:]
    if count != len(data):
        raise ModbusFrameError(f"unit {u}: byte count {count} but {len(data)} data bytes follow")
    if count != req.data_bytes:
        what = "bits" if req.function in (1, 2) else "registers"
        raise ModbusFrameError(
            f"unit {u}: byte count {count} for {req.count} {what} asked ({req.data_bytes} expected)"
        )
    if req.function in (1, 2):
        return [(data[i // 8] >> (i % 8)) & 1 for i in range(req.count)]
    return list(struct.unpack(f">{req.count}H", data))
