"""The simulator's own register encoder: a catalogue value → the registers a device shows.

It follows the profile format (:mod:`meterhub.profiles.datatypes`) and nothing of the reader: it does
not use the driver's codec or mapping tables, so a bug in the driver's decoding cannot be cancelled by
the same bug here — a profile round trip (simulator → wire → reader) only passes when both sides read
the vendor's layout the same way on their own. It is also what the golden-frame tests compare against
the bytes hand-encoded from the vendor manuals.

A device stores ``raw`` where ``value = raw × factor`` (the profile's scale, exponent and unit prefix
folded into one factor). Integers are rounded to the nearest raw step and peg at the type's limits, as
a meter's display does (a counter that overflows its register is a different matter: the model's
business, not the encoder's). Float32 values beyond its range peg at ±3.4028235e38. A value the model
does not have is NaN in a float register ("not available") and 0 in an integer one.
"""

from __future__ import annotations

import math
import struct

from meterhub.profiles.datatypes import ByteOrder, DataType, WordOrder

__all__ = ["encode_registers", "registers_to_bytes"]

#: struct code (no byte order), signed?, bits — per type; packed big-endian (most significant byte first)
_LAYOUT: dict[DataType, tuple[str, bool, int]] = {
    DataType.INT16: ("h", True, 16),
    DataType.UINT16: ("H", False, 16),
    DataType.INT32: ("i", True, 32),
    DataType.UINT32: ("I", False, 32),
    DataType.INT64: ("q", True, 64),
    DataType.UINT64: ("Q", False, 64),
    DataType.FLOAT32: ("f", True, 32),
    DataType.FLOAT64: ("d", True, 64),
}
_FLOAT32_MAX = struct.unpack(">f", b"\x7f\x7f\xff\xff")[0]  # 3.4028234663852886e38


def _raw_bytes(value: float, dtype: DataType) -> bytes:
    """``value`` (already divided by the factor) as big-endian bytes of ``dtype``."""
    code, signed, bits = _LAYOUT[dtype]
    if dtype in (DataType.FLOAT32, DataType.FLOAT64):
        if dtype is DataType.FLOAT32 and math.isfinite(value) and abs(value) > _FLOAT32_MAX:
            value = math.copysign(_FLOAT32_MAX, value)
        return struct.pack(">" + code, value)
    if not math.isfinite(value):
        value = 0.0  # an integer register cannot say "not available"
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return struct.pack(">" + code, min(max(round(value), lo), hi))


def encode_registers(
    value: float | None,
    dtype: DataType,
    *,
    word_order: WordOrder = WordOrder.BIG,
    byte_order: ByteOrder = ByteOrder.BIG,
    factor: float = 1.0,
) -> list[int]:
    """The 16-bit registers, in address order, a device stores for ``value``.

    Parameters
    ----------
    value : the value in catalogue units (e.g. [V], [W], [Wh]); None or NaN: not available.
    dtype : the register type of the profile entry.
    word_order : ``big`` puts the most significant register at the lowest address.
    byte_order : ``little`` swaps the two bytes of every register.
    factor : catalogue units per raw step (e.g. 1000 for a register in kWh, 0.1 for "0.1 V"). [-]
    """
    raw = math.nan if value is None else value / factor
    data = _raw_bytes(raw, dtype)
    words = [data[i : i + 2] for i in range(0, len(data), 2)]  # most significant word first
    if byte_order is ByteOrder.LITTLE:
        words = [w[::-1] for w in words]
    if word_order is WordOrder.LITTLE:
        words.reverse()
    return [int.from_bytes(w, "big") for w in words]


def registers_to_bytes(registers: list[int]) -> bytes:
    """Registers as they travel in a read response's data field: each one high byte first
    (MODBUS Application Protocol V1.1b3 §4.2)."""
    return b"".join(r.to_bytes(2, "big") for r in registers)
