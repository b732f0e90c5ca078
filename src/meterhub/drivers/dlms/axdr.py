"""A-XDR encoding of COSEM ``Data`` (IEC 61334-6, DLMS UA Green Book Ed. 9 §9.5, Blue Book §4.1.5).

Decoded values are plain Python: ``None`` (null-data), ``bool``, ``int``, ``float``, ``bytes``
(octet-string, also date-time octet strings), ``str`` (visible-string, utf8-string), ``BitString``,
``list`` (array) and ``tuple`` (structure), ``Enum`` (enum, kept apart from unsigned so a value keeps its
meaning). The encoders build the few data a client sends (selective access parameters, SET values).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from meterhub.drivers.dlms.errors import DlmsApduError

__all__ = [
    "BitString",
    "Enum",
    "Tag",
    "array",
    "decode_data",
    "decode_length",
    "double_long_unsigned",
    "encode_length",
    "integer",
    "long_unsigned",
    "octet_string",
    "structure",
    "unsigned",
]


class Tag:
    """Data CHOICE tags (Green Book §9.5, Table "Data")."""

    NULL = 0
    ARRAY = 1
    STRUCTURE = 2
    BOOLEAN = 3
    BIT_STRING = 4
    DOUBLE_LONG = 5
    DOUBLE_LONG_UNSIGNED = 6
    OCTET_STRING = 9
    VISIBLE_STRING = 10
    UTF8_STRING = 12
    BCD = 13
    INTEGER = 15
    LONG = 16
    UNSIGNED = 17
    LONG_UNSIGNED = 18
    LONG64 = 20
    LONG64_UNSIGNED = 21
    ENUM = 22
    FLOAT32 = 23
    FLOAT64 = 24
    DATE_TIME = 25
    DATE = 26
    TIME = 27


@dataclass(frozen=True, slots=True)
class BitString:
    """A bit-string: ``bits`` valid bits of ``data`` (most significant bit first)."""

    data: bytes
    bits: int


@dataclass(frozen=True, slots=True)
class Enum:
    """An enum value (e.g. the unit of a scaler_unit, Blue Book §4.3.2 Table 4)."""

    value: int


_FIXED: dict[int, tuple[str, int]] = {
    Tag.DOUBLE_LONG: (">i", 4),
    Tag.DOUBLE_LONG_UNSIGNED: (">I", 4),
    Tag.INTEGER: (">b", 1),
    Tag.LONG: (">h", 2),
    Tag.UNSIGNED: (">B", 1),
    Tag.LONG_UNSIGNED: (">H", 2),
    Tag.LONG64: (">q", 8),
    Tag.LONG64_UNSIGNED: (">Q", 8),
    Tag.FLOAT32: (">f", 4),
    Tag.FLOAT64: (">d", 8),
    Tag.BCD: (">b", 1),
}
_OCTETS = {Tag.DATE_TIME: 12, Tag.DATE: 5, Tag.TIME: 4}


def encode_length(n: int) -> bytes:
    """A-XDR / BER length: one byte below 128, else 0x81 n, 0x82 nn, 0x84 nnnn."""
    if n < 0x80:
        return bytes([n])
    for size, lead in ((1, 0x81), (2, 0x82), (4, 0x84)):
        if n < 1 << (8 * size):
            return bytes([lead]) + n.to_bytes(size, "big")
    raise ValueError(f"length {n} too large")


def decode_length(data: bytes, pos: int) -> tuple[int, int]:
    """(length, position after it)."""
    if pos >= len(data):
        raise DlmsApduError("length field missing: the APDU is cut off")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    size = first & 0x7F
    if size == 0 or size > 4 or pos + 1 + size > len(data):
        raise DlmsApduError(f"bad length field 0x{first:02X} at byte {pos}")
    return int.from_bytes(data[pos + 1 : pos + 1 + size], "big"), pos + 1 + size


def decode_data(data: bytes, pos: int = 0, depth: int = 0) -> tuple[Any, int]:
    """Decode one ``Data`` at ``pos``; (value, position after it). :class:`DlmsApduError` when cut off
    or unknown."""
    if depth > 16:
        raise DlmsApduError("Data nested deeper than 16 levels")
    if pos >= len(data):
        raise DlmsApduError("Data missing: the APDU is cut off")
    tag = data[pos]
    pos += 1
    if tag == Tag.NULL:
        return None, pos
    if tag in (Tag.ARRAY, Tag.STRUCTURE):
        n, pos = decode_length(data, pos)
        items = []
        for _ in range(n):
            v, pos = decode_data(data, pos, depth + 1)
            items.append(v)
        return (items if tag == Tag.ARRAY else tuple(items)), pos
    if tag == Tag.BOOLEAN:
        _need(data, pos, 1)
        return data[pos] != 0, pos + 1
    if tag == Tag.ENUM:
        _need(data, pos, 1)
        return Enum(data[pos]), pos + 1
    if tag in _FIXED:
        fmt, size = _FIXED[tag]
        _need(data, pos, size)
        return struct.unpack(fmt, data[pos : pos + size])[0], pos + size
    if tag in (Tag.OCTET_STRING, Tag.VISIBLE_STRING, Tag.UTF8_STRING):
        n, pos = decode_length(data, pos)
        _need(data, pos, n)
        raw = bytes(data[pos : pos + n])
        if tag == Tag.OCTET_STRING:
            return raw, pos + n
        return raw.decode("utf-8" if tag == Tag.UTF8_STRING else "ascii", errors="replace"), pos + n
    if tag == Tag.BIT_STRING:
        bits, pos = decode_length(data, pos)
        n = (bits + 7) // 8
        _need(data, pos, n)
        return BitString(bytes(data[pos : pos + n]), bits), pos + n
    if tag in _OCTETS:
        n = _OCTETS[tag]
        _need(data, pos, n)
        return bytes(data[pos : pos + n]), pos + n
    raise DlmsApduError(f"unknown Data tag {tag} at byte {pos - 1}")


def _need(data: bytes, pos: int, n: int) -> None:
    if pos + n > len(data):
        raise DlmsApduError(f"Data cut off: {n} bytes needed at byte {pos}, {len(data) - pos} left")


# -- encoders for what a client sends ----------------------------------------------------------
def octet_string(value: bytes) -> bytes:
    return bytes([Tag.OCTET_STRING]) + encode_length(len(value)) + value


def long_unsigned(value: int) -> bytes:
    return bytes([Tag.LONG_UNSIGNED]) + value.to_bytes(2, "big")


def double_long_unsigned(value: int) -> bytes:
    return bytes([Tag.DOUBLE_LONG_UNSIGNED]) + value.to_bytes(4, "big")


def integer(value: int) -> bytes:
    return bytes([Tag.INTEGER]) + value.to_bytes(1, "big", signed=True)


def unsigned(value: int) -> bytes:
    return bytes([Tag.UNSIGNED, value])


def structure(*items: bytes) -> bytes:
    return bytes([Tag.STRUCTURE]) + encode_length(len(items)) + b"".join(items)


def array(*items: bytes) -> bytes:
    return bytes([Tag.ARRAY]) + encode_length(len(items)) + b"".join(items)
