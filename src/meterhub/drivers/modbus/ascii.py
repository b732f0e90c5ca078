"""Modbus ASCII frames (pure, no I/O): build a request, cut an answer out of a byte stream, check its LRC.

Modbus over Serial Line V1.02 §2.5.2: a frame is ``:`` (0x3A), then every byte of unit id, PDU and LRC
as two upper-case hexadecimal characters, then CR LF. The LRC (§6.2.1) is the two's complement of the
8-bit sum of unit id and PDU bytes. Unlike RTU, the frame carries its own delimiters, so an answer of
any function code can be cut out without knowing its length, and a receiver resynchronises at the
next ``:``. Serial lines carry ASCII with 7 data bits (§2.5.2.1, e.g. 7E1); converters and many
devices also do 8 bits.

:func:`cut_ascii` takes the bytes received so far and says whether a whole frame is there (returning
unit, PDU and how many bytes it used, noise before the ``:`` included), more bytes are needed (None), or
the bytes cannot be a frame (:class:`~.errors.ModbusFrameError`; an LRC mismatch is a
:class:`~.errors.ModbusCrcError`, the checksum error family).
"""

from __future__ import annotations

from meterhub.drivers.modbus.errors import ModbusCrcError, ModbusFrameError

__all__ = ["MAX_ASCII_FRAME", "ascii_adu", "cut_ascii", "lrc"]

#: Longest ASCII frame (§2.5.2.1): ':' + 2 × (unit + 253-byte PDU + LRC) + CR LF = 513 characters.
MAX_ASCII_FRAME = 513
_START = 0x3A  # ':'
_END = b"\r\n"
_HEX = frozenset(b"0123456789ABCDEFabcdef")


def lrc(data: bytes) -> int:
    """Longitudinal redundancy check of ``data`` (unit id and PDU): −(Σ bytes) mod 256 (§6.2.1)."""
    return (-sum(data)) & 0xFF


def ascii_adu(unit: int, pdu: bytes) -> bytes:
    """The ASCII frame of ``pdu`` for ``unit``, e.g. ``b":010300000002FA\\r\\n"``."""
    body = bytes((unit,)) + pdu
    return b":" + (body + bytes((lrc(body),))).hex().upper().encode("ascii") + _END


def cut_ascii(buf: bytes | bytearray) -> tuple[int, bytes, int] | None:
    """(unit, PDU, bytes used) of the first ASCII frame in ``buf``; None while it is incomplete.

    Bytes before the first ``:`` are line noise and are counted in the bytes used. Raises
    :class:`ModbusFrameError` for a frame that is not hexadecimal, has an odd number of characters, is
    too short or too long, and :class:`ModbusCrcError` when its LRC does not match.
    """
    start = buf.find(b":")
    if start < 0:
        if len(buf) > MAX_ASCII_FRAME:
            raise ModbusFrameError(f"{len(buf)} bytes without the ':' that starts a Modbus ASCII frame")
        return None
    end = buf.find(_END, start)
    if end < 0:
        if len(buf) - start > MAX_ASCII_FRAME:
            raise ModbusFrameError(f"a Modbus ASCII frame longer than {MAX_ASCII_FRAME} characters")
        nxt = buf.find(b":", start + 1)
        if nxt > 0:  # a new frame started before this one ended: this one was cut off
            raise ModbusFrameError(f"cut-off Modbus ASCII frame: {bytes(buf[start:nxt])!r}")
        return None
    nxt = buf.find(b":", start + 1, end)
    if nxt > 0:  # a new frame started before this one ended: this one was cut off
        raise ModbusFrameError(f"cut-off Modbus ASCII frame: {bytes(buf[start:nxt])!r}")
    text = bytes(buf[start + 1 : end])
    used = end + len(_END)
    if len(text) % 2 or len(text) < 6 or not _HEX.issuperset(text):
        raise ModbusFrameError(f"not a Modbus ASCII frame: {bytes(buf[start:used])!r}")
    raw = bytes.fromhex(text.decode("ascii"))
    body, check = raw[:-1], raw[-1]
    if lrc(body) != check:
        raise ModbusCrcError(
            f"unit {body[0]}: LRC error: {bytes(buf[start:used])!r} ends in {check:02X}, the LRC of its "
            f"content is {lrc(body):02X}"
        )
    return body[0], body[1:], used
