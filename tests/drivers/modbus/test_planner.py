"""Block planner: ≤ 125 registers per read, small holes bridged, large ones split."""

from __future__ import annotations

from meterhub.drivers.modbus.codec import ByteOrder, DataType, WordOrder
from meterhub.drivers.modbus.planner import plan_reads
from meterhub.profiles import get_profile
from meterhub.profiles.schema import Function, Point


def _pt(address: int, size: int = 2, fn: Function = Function.INPUT) -> Point:
    return Point(
        0, "voltage", None, None, fn, address, DataType.FLOAT32, WordOrder.BIG, ByteOrder.BIG, 1.0, size
    )


def test_adjacent_points_make_one_block():
    blocks = plan_reads([_pt(0), _pt(2), _pt(4)])
    assert [(b.start, b.count) for b in blocks] == [(0, 6)]


def test_hole_up_to_max_gap_is_bridged_and_larger_hole_splits():
    blocks = plan_reads([_pt(0), _pt(12), _pt(40)], max_gap=10)
    assert [(b.start, b.count) for b in blocks] == [(0, 14), (40, 2)]


def test_block_never_exceeds_125_registers():
    blocks = plan_reads([_pt(a) for a in range(0, 300, 2)])
    assert [b.count for b in blocks] == [124, 124, 52]
    assert sum(len(b.points) for b in blocks) == 150


def test_device_limit_and_tables_are_separate():
    pts = [_pt(a) for a in range(0, 100, 2)] + [_pt(0, fn=Function.HOLDING)]
    blocks = plan_reads(pts, max_block=80)
    assert [(b.function, b.start, b.count) for b in blocks] == [
        (Function.HOLDING, 0, 2),
        (Function.INPUT, 0, 80),
        (Function.INPUT, 80, 20),
    ]


def test_sdm630_full_read_needs_at_most_five_requests():
    p = get_profile("eastron-sdm630")
    blocks = plan_reads(p.points(), max_block=p.defaults.max_block, max_gap=p.defaults.max_gap)
    assert len(blocks) <= 5
    assert len(p.points()) == sum(len(b.points) for b in blocks) == 58  # vs 58 single reads
    assert all(b.count <= 80 for b in blocks)  # Eastron: at most 40 parameters per request
