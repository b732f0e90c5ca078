"""Golden values for the register codec (IEEE 754 and two's complement, hand-checkable)."""

from __future__ import annotations

import math

import pytest

from meterhub.drivers.modbus.codec import ByteOrder, CodecError, DataType, WordOrder, decode, encode

# (registers on the wire, type, word order, byte order, value)
GOLDEN = [
    ([0x4366, 0x0000], DataType.FLOAT32, WordOrder.BIG, ByteOrder.BIG, 230.0),  # 230.0 = 0x43660000
    ([0x0000, 0x4366], DataType.FLOAT32, WordOrder.LITTLE, ByteOrder.BIG, 230.0),
    ([0x6643, 0x0000], DataType.FLOAT32, WordOrder.BIG, ByteOrder.LITTLE, 230.0),
    ([0x3F80, 0x0000], DataType.FLOAT32, WordOrder.BIG, ByteOrder.BIG, 1.0),
    ([0xBF80, 0x0000], DataType.FLOAT32, WordOrder.BIG, ByteOrder.BIG, -1.0),
    ([0x4059, 0x0000, 0x0000, 0x0000], DataType.FLOAT64, WordOrder.BIG, ByteOrder.BIG, 100.0),
    ([0x0000, 0x0000, 0x0000, 0x4059], DataType.FLOAT64, WordOrder.LITTLE, ByteOrder.BIG, 100.0),
    ([0x08FC], DataType.UINT16, WordOrder.BIG, ByteOrder.BIG, 2300.0),
    ([0xFFFF], DataType.INT16, WordOrder.BIG, ByteOrder.BIG, -1.0),
    ([0xFFFF], DataType.UINT16, WordOrder.BIG, ByteOrder.BIG, 65535.0),
    ([0x0001, 0x0000], DataType.UINT32, WordOrder.BIG, ByteOrder.BIG, 65536.0),
    ([0x0000, 0x0001], DataType.UINT32, WordOrder.LITTLE, ByteOrder.BIG, 65536.0),
    ([0xFFFF, 0xFFFE], DataType.INT32, WordOrder.BIG, ByteOrder.BIG, -2.0),
    ([0x0000, 0x0000, 0x0001, 0x0000], DataType.UINT64, WordOrder.BIG, ByteOrder.BIG, 65536.0),
    ([0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF], DataType.INT64, WordOrder.BIG, ByteOrder.BIG, -1.0),
]


@pytest.mark.parametrize(("regs", "dtype", "word", "byte", "value"), GOLDEN)
def test_decode_golden_registers(regs, dtype, word, byte, value):
    assert decode(regs, dtype, word_order=word, byte_order=byte) == value


@pytest.mark.parametrize(("regs", "dtype", "word", "byte", "value"), GOLDEN)
def test_encode_gives_the_golden_registers(regs, dtype, word, byte, value):
    assert encode(value, dtype, word_order=word, byte_order=byte) == regs


def test_scale_turns_tenths_of_a_volt_into_volts():
    assert decode([2301], DataType.UINT16, scale=0.1) == pytest.approx(230.1)
    assert encode(230.1, DataType.UINT16, scale=0.1) == [2301]


def test_float64_energy_register_keeps_milliwatt_hours_at_a_gigawatt_hour():
    wh = 1_000_000_000.001  # 1 GWh and 1 mWh
    assert decode(encode(wh, DataType.FLOAT64), DataType.FLOAT64) == wh


def test_integer_out_of_range_saturates_or_raises():
    assert encode(70000, DataType.UINT16) == [0xFFFF]
    assert encode(-5, DataType.UINT32) == [0, 0]
    with pytest.raises(CodecError, match="outside the uint16 range"):
        encode(70000, DataType.UINT16, saturate=False)


def test_wrong_register_count_is_an_error():
    with pytest.raises(CodecError, match="float32 needs 2 register"):
        decode([1], DataType.FLOAT32)


def test_nan_passes_through_float_and_is_refused_by_integers():
    assert math.isnan(decode(encode(math.nan, DataType.FLOAT32), DataType.FLOAT32))
    with pytest.raises(CodecError):
        encode(math.nan, DataType.INT32)
