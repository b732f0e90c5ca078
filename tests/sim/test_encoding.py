"""The simulator's own register encoder, checked against layouts worked out by hand from IEEE 754 and
two's complement (not against the driver's codec, which it must not share code with)."""

from __future__ import annotations

import math

import pytest

from meterhub.profiles.datatypes import ByteOrder, DataType, WordOrder
from meterhub.sim.encoding import encode_registers, registers_to_bytes

BIG, LITTLE = WordOrder.BIG, WordOrder.LITTLE


@pytest.mark.parametrize(
    ("value", "dtype", "word", "byte", "factor", "expected"),
    [
        # 230.0 = 1.796875 × 2^7: sign 0, exponent 134 (0x86), mantissa 0x660000 → 0x43660000
        (230.0, DataType.FLOAT32, BIG, ByteOrder.BIG, 1.0, [0x4366, 0x0000]),
        (230.0, DataType.FLOAT32, LITTLE, ByteOrder.BIG, 1.0, [0x0000, 0x4366]),
        (230.0, DataType.FLOAT32, BIG, ByteOrder.LITTLE, 1.0, [0x6643, 0x0000]),
        # 50 Hz as a float64: 0x4049000000000000
        (50.0, DataType.FLOAT64, BIG, ByteOrder.BIG, 1.0, [0x4049, 0, 0, 0]),
        # 230.5 V in a uint16 of 0.1 V steps: 2305 = 0x0901
        (230.5, DataType.UINT16, BIG, ByteOrder.BIG, 0.1, [0x0901]),
        # −1 W in an int16: two's complement 0xFFFF
        (-1.0, DataType.INT16, BIG, ByteOrder.BIG, 1.0, [0xFFFF]),
        # 123 456 789 in a uint32: 0x075BCD15, least significant word first (CDAB)
        (123_456_789.0, DataType.UINT32, LITTLE, ByteOrder.BIG, 1.0, [0xCD15, 0x075B]),
        # −2 as int32: 0xFFFFFFFE
        (-2.0, DataType.INT32, BIG, ByteOrder.BIG, 1.0, [0xFFFF, 0xFFFE]),
        # 2^40 + 1 in a uint64: 0x0000 0100 0000 0001
        (float(2**40 + 1), DataType.UINT64, BIG, ByteOrder.BIG, 1.0, [0x0000, 0x0100, 0x0000, 0x0001]),
    ],
)
def test_encoder_lays_out_registers_as_worked_by_hand(
    value: float, dtype: DataType, word: WordOrder, byte: ByteOrder, factor: float, expected: list[int]
) -> None:
    assert encode_registers(value, dtype, word_order=word, byte_order=byte, factor=factor) == expected


def test_integer_registers_peg_at_their_limits_like_a_display() -> None:
    assert encode_registers(70_000.0, DataType.UINT16) == [0xFFFF]
    assert encode_registers(-5.0, DataType.UINT16) == [0x0000]
    assert encode_registers(40_000.0, DataType.INT16) == [0x7FFF]


def test_float32_pegs_at_its_largest_finite_value() -> None:
    assert encode_registers(1e39, DataType.FLOAT32) == [0x7F7F, 0xFFFF]
    assert encode_registers(-1e39, DataType.FLOAT32) == [0xFF7F, 0xFFFF]


def test_a_value_the_model_lacks_is_nan_in_floats_and_zero_in_integers() -> None:
    regs = encode_registers(None, DataType.FLOAT32)
    assert regs[0] & 0x7F80 == 0x7F80 and (regs[0] & 0x007F or regs[1])  # exponent all ones, mantissa ≠ 0
    assert encode_registers(math.nan, DataType.UINT32) == [0, 0]
    assert encode_registers(None, DataType.INT16) == [0]


def test_registers_travel_high_byte_first() -> None:
    assert registers_to_bytes([0x4366, 0x0000, 0x0901]) == bytes.fromhex("43660000 0901")
