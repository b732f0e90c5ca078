"""Read one device: execute its block plan on a link and decode every point.

Errors are per block and name the device and the register range; a bad block never hides the
values of the others. A block the device rejects with exception 02 (illegal data address — it does
not tolerate holes) is split into one read per point, and the split plan is kept.
"""

from __future__ import annotations

import logging
import math
import struct
from dataclasses import dataclass, field

from meterhub.drivers.modbus.codec import ByteOrder, CodecError, DataType, WordOrder, decode
from meterhub.drivers.modbus.planner import Block, plan_reads
from meterhub.drivers.modbus.profile import Point, Profile
from meterhub.drivers.modbus.transport import (
    ModbusConnectionError,
    ModbusError,
    ModbusExceptionResponse,
    ModbusLink,
    ModbusTimeout,
)

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

    @property
    def any_ok(self) -> bool:
        return self.ok_blocks > 0

    @property
    def values(self) -> dict[Point, float]:
        """Decoded values in catalogue units; NaN registers ("not available") are left out."""
        if self._values is None:
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
        self._plans: dict[int, list[tuple[Point, str | None, int]]] = {}

    def _where(self, block: Block) -> str:
        return (
            f"device {self.device_id} (unit {self.unit}, {self.profile.id}) "
            f"{block.function.value} registers {block.start}…{block.end - 1}"
        )

    async def read(self, link: ModbusLink, *, stop_on_timeout: bool = True) -> DeviceRead:
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

    def _plan(self, block: Block) -> list[tuple[Point, str | None, int]]:
        """Per point of a block: its struct format when it can be unpacked straight from the block's
        big-endian bytes (None: bits, or swapped word/byte order), and its byte offset."""
        plan = self._plans.get(id(block))
        if plan is None:
            plan = []
            for p in block.points:
                direct = (
                    not p.function.is_bit and p.word_order is WordOrder.BIG and p.byte_order is ByteOrder.BIG
                )
                plan.append((p, _FMT[p.dtype] if direct else None, 2 * (p.address - block.start)))
            self._plans[id(block)] = plan
        return plan

    def decode_block(self, block: Block, regs: list[int], out: DeviceRead) -> None:
        values = out.values if out._values is None else out._values
        is_bit = block.function.is_bit
        buf = b"" if is_bit else struct.pack(f">{len(regs)}H", *regs)
        isfinite = math.isfinite
        for p, fmt, offset in self._plan(block):
            try:
                if fmt is not None:
                    value = struct.unpack_from(fmt, buf, offset)[0] * p.factor
                elif is_bit:
                    value = float(block.slice(regs, p)[0])
                else:
                    raw = block.slice(regs, p)
                    value = decode(raw, p.dtype, word_order=p.word_order, byte_order=p.byte_order) * p.factor
            except (CodecError, struct.error) as exc:
                out.errors.append(f"device {self.device_id} {p.label()}: {exc}")
                continue
            if isfinite(value):  # NaN is how float registers say "not available"
                values[p] = value


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
