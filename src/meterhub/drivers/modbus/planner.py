"""Block-read planner: the fewest Modbus reads that cover a set of points (pure).

A read request may cover at most 125 registers (Modbus Application Protocol V1.1b3 §6.3/§6.4,
quantity 1…125) or 2000 bits (§6.1/§6.2). Points of the same table are sorted by address and
merged greedily: a point joins the current block when the block stays within ``max_block`` and the
hole between them is at most ``max_gap`` registers. Bridging a hole costs 2 bytes per register on
the wire; a new request costs a full frame plus a response turnaround (RTU: 8 request + 5 response
bytes and two 3.5-character silences, about 20 byte times plus the device's reply latency), so small
holes are cheaper to read than to skip. The profile's ``max_gap`` also says whether the device
tolerates reads over unmapped registers (0 = it does not).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from meterhub.profiles.schema import Function, Point

__all__ = ["Block", "MAX_BITS", "MAX_REGISTERS", "plan_reads"]

MAX_REGISTERS = 125
MAX_BITS = 2000


@dataclass
class Block:
    """One read request: ``count`` registers (or bits) of ``function`` from ``start``."""

    function: Function
    start: int
    count: int
    points: list[Point] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.start + self.count

    def slice(self, values: Sequence[int], point: Point) -> Sequence[int]:
        """The registers (bits) of ``point`` within a response to this block."""
        off = point.address - self.start
        return values[off : off + point.size]

    def __str__(self) -> str:
        return f"{self.function.value} {self.start}+{self.count}"


def plan_reads(points: Iterable[Point], *, max_block: int = MAX_REGISTERS, max_gap: int = 16) -> list[Block]:
    """Group points into block reads.

    Parameters
    ----------
    points : resolved profile points (any tables, any order).
    max_block : registers per request the device accepts (≤ 125; bits use 2000). [registers]
    max_gap : largest unmapped hole a block may bridge. [registers]

    Returns
    -------
    Blocks ordered by table then address; every point is in exactly one block.
    """
    by_fn: dict[Function, list[Point]] = {}
    for p in points:
        by_fn.setdefault(p.function, []).append(p)
    blocks: list[Block] = []
    for fn in sorted(by_fn, key=lambda f: f.read_code):
        limit = MAX_BITS if fn.is_bit else min(max_block, MAX_REGISTERS)
        gap = max_gap * 16 if fn.is_bit else max_gap
        current: Block | None = None
        for p in sorted(by_fn[fn], key=lambda p: (p.address, p.size)):
            if p.size > limit:
                raise ValueError(f"{p.label()} is wider than a read of {limit}")
            if current is not None:
                new_end = max(current.end, p.end)
                if p.address - current.end <= gap and new_end - current.start <= limit:
                    current.count = new_end - current.start
                    current.points.append(p)
                    continue
                blocks.append(current)
            current = Block(fn, p.address, p.size, [p])
        if current is not None:
            blocks.append(current)
    return blocks
