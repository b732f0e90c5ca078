"""Register codec: Modbus 16-bit registers ⇄ numbers (pure, no I/O).

The data types, word and byte orders are part of the profile format
(:mod:`meterhub.profiles.datatypes`, where the vendor differences are described); this module is the
reader's code for them.

A raw value is turned into an engineering value with ``raw * scale``; the scale already folds in a
decimal exponent and any unit prefix (see :mod:`meterhub.profiles.schema`).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from meterhub.profiles.datatypes import ByteOrder, DataType, WordOrder, is_float, register_count

__all__ = [
    "ByteOrder",
    "CodecError",
    "DataType",
    "WordOrder",
    "decode",
    "encode",
    "is_float",
    "register_count",
]


class CodecError(ValueError):
    """A value that cannot be encoded or registers that cannot be decoded."""


#: struct format (big-endian) and register count of each type.
_FORMAT: dict[DataType, tuple[str, int]] = {
    DataType.INT16: (">h", 1),
    DataType.UINT16: (">H", 1),
    DataType.INT32: (">i", 2),
    DataType.UINT32: (">I", 2),
    DataType.INT64: (">q", 4),
    DataType.UINT64: (">Q", 4),
    DataType.FLOAT32: (">f", 2),
    DataType.FLOAT64: (">d", 4),
}

_INT_RANGE: dict[DataType, tuple[int, int]] = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT64: (0, 2**64 - 1),
}


def _to_bytes(regs: Sequence[int], word: WordOrder, byte: ByteOrder) -> bytes:
    words = list(regs) if word is WordOrder.BIG else list(reversed(regs))
    raw = struct.pack(f">{len(words)}H", *(w & 0xFFFF for w in words))
    if byte is ByteOrder.LITTLE:
        raw = b"".join(raw[i + 1 : i + 2] + raw[i : i + 1] for i in range(0, len(raw), 2))
    return raw


def _from_bytes(raw: bytes, word: WordOrder, byte: ByteOrder) -> list[int]:
    if byte is ByteOrder.LITTLE:
        raw = b"".join(raw[i + 1 : i + 2] + raw[i : i + 1] for i in range(0, len(raw), 2))
    words = [struct.unpack(">H", raw[i : i + 2])[0] for i in range(0, len(raw), 2)]
    return words if word is WordOrder.BIG else list(reversed(words))


def decode(
    regs: Sequence[int],
    dtype: DataType,
    *,
    word_order: WordOrder = WordOrder.BIG,
    byte_order: ByteOrder = ByteOrder.BIG,
    scale: float = 1.0,
) -> float:
    """Decode the registers of one value and apply ``scale``.

    Parameters
    ----------
    regs : exactly :func:`register_count` registers, each 0…65535, in wire order.
    dtype : the register data type.
    word_order, byte_order : the vendor's layout (module docstring).
    scale : multiplier from raw to catalogue unit, e.g. 0.1 for "0.1 V" or 1000 for kWh → Wh. [-]

    Returns
    -------
    The value in the catalogue unit. NaN/inf in float registers are returned as they are (the caller
    marks them invalid).
    """
    fmt, n = _FORMAT[dtype]
    if len(regs) != n:
        raise CodecError(f"{dtype.value} needs {n} register(s), got {len(regs)}")
    raw = _to_bytes(regs, word_order, byte_order)
    (value,) = struct.unpack(fmt, raw)
    return float(value) if scale == 1.0 else float(value) * scale


def encode(
    value: float,
    dtype: DataType,
    *,
    word_order: WordOrder = WordOrder.BIG,
    byte_order: ByteOrder = ByteOrder.BIG,
    scale: float = 1.0,
    saturate: bool = True,
) -> list[int]:
    """Inverse of :func:`decode`: catalogue value → registers (used by simulators and writes).

    Integer types round ``value / scale`` to the nearest integer. Out-of-range values saturate at
    the type limit when ``saturate`` (a meter display pegs, it does not wrap), otherwise raise
    :class:`CodecError`. Unsigned counters never go negative.
    """
    fmt, _n = _FORMAT[dtype]
    raw_value = value / scale if scale != 1.0 else value
    packed: bytes
    if is_float(dtype):
        if dtype is DataType.FLOAT32 and math.isfinite(raw_value) and abs(raw_value) > 3.4028234e38:
            raw_value = math.copysign(3.4028234e38, raw_value)
        packed = struct.pack(fmt, float(raw_value))
    else:
        if not math.isfinite(raw_value):
            raise CodecError(f"cannot encode {value!r} as {dtype.value}")
        lo, hi = _INT_RANGE[dtype]
        iv = round(raw_value)
        if iv < lo or iv > hi:
            if not saturate:
                raise CodecError(f"{value!r} (raw {iv}) is outside the {dtype.value} range {lo}…{hi}")
            iv = min(max(iv, lo), hi)
        packed = struct.pack(fmt, iv)
    return _from_bytes(packed, word_order, byte_order)
