"""Read one device: execute its block plan on a link and decode every point.

Errors are per block and name the device and the register range; a bad block never hides the
values of the others. A block the device rejects with exception 02 (illegal data address — it does
not tolerate holes) is split into one read per point, and the split plan is kept.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import mul
from typing import Any, TypeVar

from meterhub.drivers.modbus.codec import ByteOrder, CodecError, DataType, WordOrder, decode
from meterhub.drivers.modbus.planner import Block, plan_reads
from meterhub.drivers.modbus.transport import (
    ModbusConnectionError,
    ModbusError,
    ModbusExceptionResponse,
    ModbusTimeout,
    RegisterLink,
)
from meterhub.profiles.schema import Point, Profile

__all__ = ["DeviceRead", "DeviceReader"]

log = logging.getLogger("meterhub.modbus")


@dataclass
class DeviceRead:
    """Result of one read of a device.

    The registers are decoded on first access to :attr:`values`, so the poll loop can send the next
    request while the previous answer is decoded and fanned out (the line never waits for the CPU).
    """

    errors: list[str] = field(default_factory=list)
    timed_out: bool = False
    requests: int = 0
    ok_blocks: int = 0
    raw: list[tuple[Block, list[int]]] = field(default_factory=list)
    reader: DeviceReader | None = None
    _values: dict[Point, float] | None = None
    _tagged: tuple[Any, list[tuple[Any, Point, float]]] | None = None  # DeviceReader.tagged_items

    @property
    def any_ok(self) -> bool:
        return self.ok_blocks > 0

    @property
    def values(self) -> dict[Point, float]:
        """Decoded values in catalogue units; NaN registers ("not available") are left out."""
        if self._values is None:
            if self._tagged is not None:  # decoded already (and its errors noted): not twice
                self._values = {p: v for _, p, v in self._tagged[1]}
                return self._values
            self._values = {}
            if self.reader is not None:
                for block, regs in self.raw:
                    self.reader.decode_block(block, regs, self)
        return self._values


class DeviceReader:
    """The read plan of one device and its decoding."""

    def __init__(
        self, device_id: str, profile: Profile, unit: int, *, points: list[Point] | None = None
    ) -> None:
        self.device_id = device_id
        self.profile = profile
        self.unit = unit
        self.points = points if points is not None else profile.points()
        d = profile.defaults
        self.blocks: list[Block] = plan_reads(self.points, max_block=d.max_block, max_gap=d.max_gap)
        self._plans: dict[int, _BlockPlan] = {}  # by id(block): blocks live as long as the reader
        self._tags: dict[int, tuple[Any, Block, list[Any]]] = {}

    def _where(self, block: Block) -> str:
        return (
            f"device {self.device_id} (unit {self.unit}, {self.profile.id}) "
            f"{block.function.value} registers {block.start}…{block.end - 1}"
        )

    async def read(self, link: RegisterLink, *, stop_on_timeout: bool = True) -> DeviceRead:
        """Read every block; after a timeout the rest is skipped (a silent device costs one timeout)."""
        out = DeviceRead(reader=self)
        i = 0
        while i < len(self.blocks):
            block = self.blocks[i]
            out.requests += 1
            try:
                regs = await link.read(block.function, self.unit, block.start, block.count)
            except ModbusTimeout as exc:
                out.errors.append(f"{self._where(block)}: {exc}")
                out.timed_out = True
                if stop_on_timeout:
                    break
                i += 1
                continue
            except ModbusExceptionResponse as exc:
                if exc.code == 2 and len(block.points) > 1:
                    log.warning("%s: %s; reading its points one by one from now on", self._where(block), exc)
                    singles = [Block(block.function, p.address, p.size, [p]) for p in block.points]
                    self.blocks[i : i + 1] = singles
                    continue
                out.errors.append(f"{self._where(block)}: {exc}")
                i += 1
                continue
            except ModbusConnectionError as exc:
                out.errors.append(f"{self._where(block)}: {exc}")
                out.timed_out = True
                break
            except ModbusError as exc:
                out.errors.append(f"{self._where(block)}: {exc}")
                i += 1
                continue
            out.ok_blocks += 1
            out.raw.append((block, regs))
            i += 1
        return out

    def _plan(self, block: Block) -> _BlockPlan:
        """Per point of a block: its struct format when it can be unpacked straight from the block's
        big-endian bytes (None: bits, or swapped word/byte order), and its byte offset; plus one struct
        that unpacks every point of the block in a single call when all of them are direct and none
        overlap (the common case)."""
        plan = self._plans.get(id(block))
        if plan is None or plan[4] is not block:  # (a split plan frees blocks, and ids are reused)
            entries: list[tuple[Point, str | None, int]] = []
            for p in block.points:
                direct = (
                    not p.function.is_bit and p.word_order is WordOrder.BIG and p.byte_order is ByteOrder.BIG
                )
                entries.append((p, _FMT[p.dtype] if direct else None, 2 * (p.address - block.start)))
            whole: struct.Struct | None = None
            if entries and all(fmt is not None for _, fmt, _ in entries):
                parts, pos = [">"], 0
                for _p, fmt, offset in entries:
                    if fmt is None or offset < pos:
                        break  # overlapping or unsorted points: one unpack per point
                    parts.append(f"{offset - pos}x{fmt[1:]}" if offset > pos else fmt[1:])
                    pos = offset + struct.calcsize(fmt)
                else:
                    if pos <= 2 * block.count:
                        whole = struct.Struct("".join(parts))
            factors = [p.factor for p, _, _ in entries]
            plan = self._plans[id(block)] = (
                entries,
                whole,
                factors,
                struct.Struct(f">{block.count}H"),
                block,
                [p for p, _, _ in entries],
            )
        return plan

    def decode_block(self, block: Block, regs: list[int], out: DeviceRead) -> None:
        values = out.values if out._values is None else out._values
        for p, value in self.decode_items(block, regs, out.errors):
            values[p] = value

    def decode_items(self, block: Block, regs: list[int], errors: list[str]) -> list[tuple[Point, float]]:
        """(point, value) of every point of a block that decodes to a finite value, in block order;
        a point that cannot be decoded adds a message to ``errors``."""
        entries, whole, factors, words, _, points = self._plan(block)
        is_bit = block.function.is_bit
        isfinite = math.isfinite
        items: list[tuple[Point, float]] = []
        if whole is not None and len(regs) == block.count:
            values = list(map(mul, whole.unpack_from(words.pack(*regs)), factors))
            if isfinite(sum(values)):  # every value is finite (a NaN or inf would make the sum one)
                return list(zip(points, values, strict=True))
            for p, value in zip(points, values, strict=True):
                if isfinite(value):  # NaN is how float registers say "not available"
                    items.append((p, value))
            return items
        buf = b"" if is_bit else struct.pack(f">{len(regs)}H", *regs)
        for p, fmt, offset in entries:
            try:
                if fmt is not None:
                    value = struct.unpack_from(fmt, buf, offset)[0] * p.factor
                elif is_bit:
                    value = float(block.slice(regs, p)[0])
                else:
                    raw = block.slice(regs, p)
                    value = decode(raw, p.dtype, word_order=p.word_order, byte_order=p.byte_order) * p.factor
            except (CodecError, struct.error) as exc:
                errors.append(f"device {self.device_id} {p.label()}: {exc}")
                continue
            if isfinite(value):  # NaN is how float registers say "not available"
                items.append((p, value))
        return items

    def tagged_items(
        self, result: DeviceRead, tag: Callable[[Point], _T]
    ) -> list[tuple[_T, Point, float]] | None:
        """The decoded values of ``result`` as (tag, point, value), in :attr:`DeviceRead.values` order,
        with ``tag(point)`` computed once per point of the plan (the mapping's placement), so a caller
        can arrange the values without a dict keyed by point. None when ``result`` was not read by
        this reader or its values were already decoded (use :attr:`DeviceRead.values` then)."""
        if result.reader is not self or result._values is not None:
            return None
        if result._tagged is not None:  # decoded already: once only (errors are noted once)
            return result._tagged[1] if result._tagged[0] is tag else None
        out: list[tuple[_T, Point, float]] = []
        isfinite = math.isfinite
        for block, regs in result.raw:
            _, whole, factors, words, _, points = self._plan(block)
            key = id(block)
            tags = self._tags.get(key)
            if tags is None or tags[0] is not tag or tags[1] is not block:
                tags = self._tags[key] = (tag, block, [tag(p) for p in points])
            if whole is not None and len(regs) == block.count:  # decode_items' fast case, inline
                values = list(map(mul, whole.unpack_from(words.pack(*regs)), factors))
                if isfinite(sum(values)):  # every value is finite (a NaN or inf would make the sum one)
                    out.extend(zip(tags[2], points, values, strict=True))
                    continue
            by_id = dict(zip(map(id, points), tags[2], strict=True))
            out.extend([(by_id[id(p)], p, v) for p, v in self.decode_items(block, regs, result.errors)])
        result._tagged = (tag, out)
        return out


_T = TypeVar("_T")
_BlockPlan = tuple[
    list[tuple[Point, str | None, int]], struct.Struct | None, list[float], struct.Struct, Block, list[Point]
]

_FMT = {
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.INT64: ">q",
    DataType.UINT64: ">Q",
    DataType.FLOAT32: ">f",
    DataType.FLOAT64: ">d",
}
